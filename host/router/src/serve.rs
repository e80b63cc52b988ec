//! `trunkline run`: the tokio driver around the sans-IO [`Engine`]. It only
//! moves datagrams and deadlines; every SIP decision is in the engine.
//! Also here: plugin hot reload on file change (watcher), on SIGHUP, and
//! through the admin listener.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use trunkline_plugin_host::{LoadSource, Runtime};
use trunkline_sip_core::{Peer, Transport};

use std::collections::HashMap;

use trunkline_relay::{Relay, RelayConfig};

use std::sync::atomic::Ordering::Relaxed;

use crate::admin::Control;
use crate::config::{ListenTransport, MediaMode, Settings};
use crate::engine::{Answer, Engine, FetchKind, FetchRequest, Locals, MediaCommand, Question};
use crate::metrics::Metrics;
use crate::records::source::RecordSource;
use crate::records::store::AuditRow;
use crate::records::writer::RecordSink;
use crate::resolve::Resolver;
use crate::streams::{StreamEvent, Streams, TlsContext};
use crate::twiml::fetch::Fetcher;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Options of `trunkline run`.
pub struct RunOptions {
    /// Print each finished call's report on stdout (the quickstart does).
    pub print_calls: bool,
    /// Runtime for TCP/TLS connection tasks; `None`: the calling one.
    pub connections: Option<tokio::runtime::Handle>,
    /// The configuration's file, for live reloads (`None`: not reloadable).
    pub config: Option<std::path::PathBuf>,
}

/// Serve until SIGINT/SIGTERM.
pub async fn run(settings: Settings, runtime: Runtime, opts: RunOptions) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let metrics = Arc::new(Metrics::new());
    let listener = |t: ListenTransport| settings.listen.iter().find(|l| l.transport == t).map(|l| l.addr);
    let udp = match listener(ListenTransport::Udp) {
        Some(addr) => Some(bind_udp(addr).with_context(|| format!("binding udp://{addr}"))?),
        None => None,
    };
    let tcp = match listener(ListenTransport::Tcp) {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("binding tcp://{addr}"))?),
        None => None,
    };
    let tls_listener = match listener(ListenTransport::Tls) {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("binding tls://{addr}"))?),
        None => None,
    };
    // TLS targets need a tls:// listener (for their in-dialog requests), so
    // without one there is nothing to accept or dial: no certificates read.
    let tls = match &tls_listener {
        Some(_) => Some(TlsContext {
            acceptor: TlsAcceptor::from(crate::tls::server_config(&settings.tls).map_err(anyhow::Error::msg)?),
            connector: TlsConnector::from(crate::tls::client_config(&settings.tls).map_err(anyhow::Error::msg)?),
        }),
        None => None,
    };
    let locals = Locals {
        udp: udp.as_ref().map(UdpSocket::local_addr).transpose()?,
        tcp: tcp.as_ref().map(TcpListener::local_addr).transpose()?,
        tls: tls_listener.as_ref().map(TcpListener::local_addr).transpose()?,
    };
    for (scheme, addr) in [("udp", locals.udp), ("tcp", locals.tcp), ("tls", locals.tls)] {
        if let Some(addr) = addr {
            println!("listening on {scheme}://{addr}");
        }
    }

    let _watcher = if settings.plugins.watch {
        Some(
            trunkline_plugin_host::watch::watch_dir(runtime.clone(), &settings.plugins.dir)
                .context("watching the plugins folder")?,
        )
    } else {
        None
    };
    // What the admin API, signals and the file watcher ask of the engine's loop.
    let (control_tx, mut control) = mpsc::channel::<Control>(8);
    // Reloads read the file off this thread and send it back (`Control::Loaded`).
    let loaded_tx = control_tx.clone();
    spawn_sighup_reload(runtime.clone(), settings.plugins.dir.clone(), control_tx.clone())?;
    let _config_watcher = match (&opts.config, settings.watch_config) {
        (Some(path), true) => {
            let files: Vec<&std::path::Path> =
                std::iter::once(path.as_path()).chain(settings.numbers_file.as_deref()).collect();
            Some(
                crate::live::watch(&files, control_tx.clone())
                    .with_context(|| format!("watching {} (sip.watch_config)", path.display()))?,
            )
        }
        _ => None,
    };
    // The configuration new calls get (a live reload replaces it).
    let mut current = settings.clone();
    // Plugin kv in Redis, shared with other routers (before the first call).
    let shared_kv = match &settings.store.redis {
        Some(redis) => {
            let kv = crate::store::redis_kv::RedisKv::start(redis).context("[store] redis_url")?;
            runtime.share_kv(kv.clone());
            Some(kv)
        }
        None => None,
    };
    let mut insight = Insight::start(&settings, &runtime, metrics.clone())?;
    if let Some(addr) = settings.admin {
        let tls = match &settings.admin_tls {
            Some(files) => {
                let mut config = (*crate::tls::server_config(files).map_err(anyhow::Error::msg)?).clone();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(Arc::new(config))
            }
            None => None,
        };
        let listener = crate::admin::bind(addr, tls.is_some())
            .await
            .with_context(|| format!("binding the admin listener {addr}"))?;
        let admin =
            crate::admin::Admin::new(runtime.clone(), settings.plugins.dir.clone(), metrics.clone(), control_tx)
                .with_tokens(&settings.admin_tokens)
                .with_records(insight.source.clone())
                .with_records_writer(insight.server_stats())
                .with_shared_kv(shared_kv.clone());
        tokio::spawn(crate::admin::serve(listener, admin, tls));
    }

    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    // Kept to prepare plugin instances on this thread while it is idle,
    // starting with those of every trunk's chain: no first call waits.
    let plugins = runtime.clone();
    for t in &settings.trunks {
        plugins.prepare_for(&t.chain);
    }
    let mut engine = Engine::new(settings.clone(), runtime, locals, seed);
    match &settings.nonce_secret {
        Some(shared) => engine.set_auth_secret(shared.expose()),
        None => engine.set_auth_secret(&server_secret()?),
    }
    engine.start_health_checks(Instant::now());
    let mut media = start_relay(&settings, &mut engine)?;
    let (events_tx, mut events) = mpsc::channel(1024);
    let tasks = opts.connections.clone().unwrap_or_else(tokio::runtime::Handle::current);
    let mut streams = Streams::new(events_tx, settings.streams, tls, tasks);
    let (fetched_tx, mut fetched) = mpsc::channel(256);
    let (resolved_tx, mut resolved) = mpsc::channel(256);
    let resolver = Resolver::new(&settings.dns_servers);
    // The HTTP client of disaster recovery, made on the first fetch.
    let mut fetcher: Option<Fetcher> = None;
    let mut buf = vec![0u8; 65_535];
    let mut shutdown = Box::pin(shutdown_signal());
    // Once a second: the relay's counters into the metrics, and calls whose
    // media went silent (media.rtp_timeout_secs).
    let rtp_timeout = settings.media.rtp_timeout.filter(|_| media.is_some());
    let mut media_tick = tokio::time::interval(std::time::Duration::from_secs(1));
    media_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drain = Drain::default();
    loop {
        flush(udp.as_ref(), &mut streams, &mut engine, &mut media, (opts.print_calls, &metrics, &mut insight)).await;
        if drain.due(Instant::now(), &mut engine) {
            engine.flush_records();
            flush(udp.as_ref(), &mut streams, &mut engine, &mut media, (opts.print_calls, &metrics, &mut insight))
                .await;
            insight.close();
            tracing::info!("drained: exiting");
            return Ok(());
        }
        while let Some(f) = engine.poll_fetch() {
            let client = fetcher.get_or_insert_with(|| make_fetcher(&settings)).clone();
            spawn_fetch(f, fetched_tx.clone(), client);
        }
        while let Some(question) = engine.poll_resolve() {
            resolver.spawn(question, resolved_tx.clone());
        }
        let deadline = engine.poll_timeout();
        tokio::select! {
            r = recv(udp.as_ref(), &mut buf) => match r {
                Ok((n, from)) => {
                    engine.handle_datagram(Instant::now(), from, &buf[..n]);
                    // Take what else is already queued before sending: one
                    // pass of this loop per burst, not per datagram.
                    if let Some(socket) = udp.as_ref() {
                        for _ in 0..RECV_BATCH {
                            match socket.try_recv_from(&mut buf) {
                                Ok((n, from)) => engine.handle_datagram(Instant::now(), from, &buf[..n]),
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                                Err(e) => tracing::debug!("udp receive: {e}"),
                            }
                        }
                    }
                }
                // ICMP errors surface here on some systems; they concern one peer only.
                Err(e) => tracing::debug!("udp receive: {e}"),
            },
            r = accept(tcp.as_ref()) => match r {
                Ok((stream, from)) => streams.accepted(stream, Peer::tcp(from)),
                Err(e) => tracing::warn!("tcp accept: {e}"),
            },
            r = accept(tls_listener.as_ref()) => match r {
                Ok((stream, from)) => streams.accepted(stream, Peer { transport: Transport::Tls, addr: from }),
                Err(e) => tracing::warn!("tls accept: {e}"),
            },
            Some(ev) = events.recv() => match ev {
                StreamEvent::Message { from, bytes } => engine.handle_message(Instant::now(), from, &bytes),
                StreamEvent::Failed(peer) => engine.handle_transport_error(Instant::now(), peer),
                StreamEvent::Closed { peer, id } => streams.closed(peer, id),
            },
            Some((token, result)) = fetched.recv() => match result {
                Fetched::Document(r) => engine.handle_fetched(Instant::now(), token, r),
                Fetched::Audio(r) => engine.handle_audio_fetched(Instant::now(), token, r),
            },
            Some((question, result)) = resolved.recv() => {
                if let (Question::Host(name), Ok(Answer::Addrs(addrs))) = (&question, &result) {
                    streams.learn_name(name, addrs);
                }
                engine.handle_resolved(Instant::now(), &question, result);
            }
            _ = sleep_until(deadline) => engine.handle_timeout(Instant::now()),
            _ = media_tick.tick() => {
                metrics.auth_bans(engine.auth_ban_counts());
                metrics.targets(&engine.target_health());
                metrics.engine(engine.counts(), streams.tls_failures());
                if let Some(sink) = &insight.sink {
                    let stats = sink.stats();
                    metrics.records((stats.written.load(Relaxed), stats.dropped.load(Relaxed)));
                }
                if let Some(stats) = insight.server_stats() {
                    metrics.records_server("postgres", !stats.failing.load(Relaxed), stats.held.load(Relaxed));
                }
                if let Some(kv) = &shared_kv {
                    metrics.store("redis", kv.state() == "up", kv.stats());
                }
                if let Some(m) = media.as_ref() {
                    metrics.media(m.relay.stats(), engine.media_ports_in_use());
                    if let Some(idle) = rtp_timeout {
                        for call in m.relay.idle_calls(idle) {
                            engine.handle_media_idle(Instant::now(), call);
                        }
                    }
                }
            }
            // Prepare (and drop) plugin instances here, where the hooks run
            // (see `work_while_idle`). `yield_now` is pending when first
            // polled, so this runs only after a pass found nothing else
            // ready; a message arriving meanwhile waits one piece (~10 us).
            _ = tokio::task::yield_now(), if plugins.has_idle_work() => {
                plugins.work_while_idle();
            }
            _ = &mut shutdown => {
                drain.start(Instant::now(), &mut engine, current.drain_timeout, "a signal");
                shutdown = Box::pin(shutdown_signal()); // a second one ends the calls at once
            }
            Some(c) = control.recv() => match c {
                Control::Drain => drain.start(Instant::now(), &mut engine, current.drain_timeout, "the admin API"),
                Control::Trunks(reply) => {
                    let _ = reply.send((current.clone(), engine.target_health()));
                }
                Control::Reload { source, by, reply } => match &opts.config {
                    Some(path) => reload_off_thread(path, &current, &plugins, &loaded_tx, (source, by, reply)),
                    None => {
                        let why = "this router was started without a configuration file to reload";
                        answer_reload(Err(why.into()), source, reply);
                    }
                },
                Control::Loaded { loaded, against, source, by, reply } => match &opts.config {
                    // Another reload landed while this one was read: read it again against that.
                    Some(path) if !Arc::ptr_eq(&against, &current) => {
                        reload_off_thread(path, &current, &plugins, &loaded_tx, (source, by, reply))
                    }
                    _ => {
                        let outcome =
                            crate::live::commit(loaded, &mut current, &mut engine, &plugins, (source, by.as_deref()));
                        answer_reload(outcome, source, reply);
                    }
                },
                Control::Bans(reply) => {
                    let _ = reply.send(engine.banned_sources(Instant::now()));
                }
                Control::Lift(ip, reply) => {
                    let _ = reply.send(engine.lift_ban(Instant::now(), ip));
                }
                Control::Calls(reply) => {
                    let _ = reply.send((engine.active_calls(Instant::now()), engine.draining()));
                }
            },
            _ = sleep_until(drain.next()) => {}
        }
    }
}

/// Read and check the configuration at `path` against `current` on a
/// blocking thread; the result comes back to the engine's loop as
/// [`Control::Loaded`].
fn reload_off_thread(
    path: &std::path::Path,
    current: &Arc<Settings>,
    runtime: &trunkline_plugin_host::Runtime,
    back: &mpsc::Sender<Control>,
    (source, by, reply): (&'static str, Option<String>, Option<crate::live::Reply>),
) {
    let (path, against, runtime, back) = (path.to_owned(), current.clone(), runtime.clone(), back.clone());
    tokio::task::spawn_blocking(move || {
        let loaded = crate::live::load(&path, &against, &runtime);
        if back.blocking_send(Control::Loaded { loaded, against, source, by, reply }).is_err() {
            tracing::warn!("configuration reload ({source}) dropped: the router is stopping");
        }
    });
}

/// Tell who asked for a reload how it went (the API's caller), or log it.
fn answer_reload(outcome: crate::live::Outcome, source: &str, reply: Option<crate::live::Reply>) {
    match (&outcome, reply) {
        (_, Some(reply)) => {
            let _ = reply.send(outcome);
        }
        (Ok(changes), None) => tracing::info!("configuration reloaded ({source}): {}", changes.join("; ")),
        (Err(why), None) => tracing::error!("configuration reload ({source}) refused: {why}"),
    }
}

/// Graceful drain: new calls refused (503), calls in progress go on up to
/// `sip.drain_timeout_secs`, then the rest are ended with BYE; the router
/// exits once no call is left (after a short grace for the last BYEs'
/// answers). A second signal ends the calls at once.
#[derive(Default)]
struct Drain {
    /// When calls in progress are ended.
    deadline: Option<Instant>,
    /// When the router exits.
    exit_at: Option<Instant>,
}

/// Time given to the last messages (a BYE's 200, a retransmission) before exiting.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(1000);

impl Drain {
    fn start(&mut self, now: Instant, engine: &mut Engine, timeout: std::time::Duration, by: &str) {
        if self.deadline.is_some() {
            tracing::warn!("drain: asked again by {by}: ending {} call(s) now", engine.calls());
            engine.end_all(now);
            self.exit_at = Some(now + EXIT_GRACE);
            return;
        }
        tracing::info!(
            "draining (asked by {by}): new calls get 503; {} call(s) in progress may go on for up to {} s",
            engine.calls(),
            timeout.as_secs()
        );
        engine.drain();
        self.deadline = Some(now + timeout);
        if engine.calls() == 0 {
            self.exit_at = Some(now); // nothing to wait for
        }
    }

    /// After each pass: end what is left at the deadline; true when it is time to exit.
    fn due(&mut self, now: Instant, engine: &mut Engine) -> bool {
        let Some(deadline) = self.deadline else { return false };
        if self.exit_at.is_none() {
            if engine.calls() == 0 {
                self.exit_at = Some(now + EXIT_GRACE);
            } else if now >= deadline {
                tracing::warn!("drain timeout: ending {} call(s) with BYE", engine.calls());
                engine.end_all(now);
                self.exit_at = Some(now + EXIT_GRACE);
            }
        }
        self.exit_at.is_some_and(|t| now >= t)
    }

    /// When the loop must wake for the drain.
    fn next(&self) -> Option<Instant> {
        self.exit_at.or(self.deadline)
    }
}

/// Datagrams taken from the UDP socket in one pass after the first.
const RECV_BATCH: usize = 63;

/// Socket buffers asked of the kernel for the UDP listener (it caps them at
/// `net.core.rmem_max` / `wmem_max`). The default (~208 KiB) holds only a
/// hundred or so datagrams, so a burst of calls overflows it and the peers
/// must retransmit.
const UDP_BUFFER_BYTES: usize = 4 << 20;

fn bind_udp(addr: std::net::SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    for (what, r) in [
        ("receive", socket.set_recv_buffer_size(UDP_BUFFER_BYTES)),
        ("send", socket.set_send_buffer_size(UDP_BUFFER_BYTES)),
    ] {
        if let Err(e) = r {
            tracing::warn!("udp {what} buffer of {UDP_BUFFER_BYTES} bytes refused: {e}");
        }
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// 32 random bytes that sign digest nonces (new at each start: nonces of a
/// previous run are re-challenged).
/// A random digest nonce secret (no `[auth] nonce_secret_file`).
pub(crate) fn server_secret() -> anyhow::Result<[u8; 32]> {
    use std::io::Read;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .context("reading /dev/urandom for the digest nonce secret")?;
    Ok(secret)
}

/// The media relay, if a trunk relays media: its threads started and the
/// engine's port pairs taken from it (bound before use).
fn start_relay(settings: &Settings, engine: &mut Engine) -> anyhow::Result<Option<MediaRelay>> {
    if !settings.trunks.iter().any(|t| t.media == MediaMode::Relay) {
        return Ok(None);
    }
    let m = &settings.media;
    let files = trunkline_relay::raise_fd_limit().unwrap_or(0);
    let config = RelayConfig {
        bind: m.bind,
        first_port: m.port_min,
        last_port: m.port_max,
        threads: m.threads,
        kernel_forwarding: m.kernel_forwarding,
    };
    let relay = Relay::start(&config).context("starting the media relay")?;
    if settings.trunks.iter().any(|t| t.recording != crate::config::RecordingMode::Off) {
        trunkline_relay::record::prepare_dir(&m.recording_dir)
            .with_context(|| format!("making the recordings folder {}", m.recording_dir.display()))?;
    }
    let mut ports = relay.ports(m.port_rest).map_err(anyhow::Error::msg)?;
    // Start somewhere unpredictable in the range: another router on the
    // same address collides less, and a stream's port is harder to guess.
    ports.start_at(seed_from_clock());
    engine.set_ports(Box::new(ports));
    tracing::info!(
        "media relay on {} (advertised as {}), ports {}-{}, {} thread(s)",
        m.bind,
        m.advertise,
        m.port_min,
        m.port_max,
        m.threads
    );
    let pairs = usize::from(m.port_max - m.port_min) / 2;
    if files > 0 && (files as usize) < pairs * 2 + 256 {
        tracing::warn!(
            "open files limit {files} < the {} sockets media.port_min..port_max may need: calls past it get 503",
            pairs * 2
        );
    }
    Ok(Some(MediaRelay { relay, finished: HashMap::new() }))
}

fn seed_from_clock() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    u64::from(nanos) ^ u64::from(std::process::id()).rotate_left(20)
}

/// The relay and what finished calls' media did, until their reports go.
struct MediaRelay {
    relay: Relay,
    finished: HashMap<u64, trunkline_relay::CallMedia>,
}

/// Send what the engine has queued; a stream message that cannot even be
/// attempted fails its transactions at once.
async fn flush(
    udp: Option<&UdpSocket>,
    streams: &mut Streams,
    engine: &mut Engine,
    media: &mut Option<MediaRelay>,
    (print, metrics, insight): (bool, &Metrics, &mut Insight),
) {
    // The relay first: a party told our ports in the messages below may
    // send media at once.
    apply_media(engine, media);
    loop {
        let mut failed = Vec::new();
        while let Some(t) = engine.poll_transmit() {
            match (t.to.transport, udp) {
                (Transport::Udp, Some(socket)) => {
                    if let Err(e) = socket.send_to(&t.bytes, t.to.addr).await {
                        tracing::warn!(to = %t.to, "udp send failed: {e}");
                    }
                }
                (Transport::Udp, None) => failed.push(t.to),
                (_, _) => {
                    if !streams.send(t.to, t.bytes) {
                        failed.push(t.to);
                    }
                }
            }
        }
        if failed.is_empty() {
            break;
        }
        for peer in failed {
            tracing::info!(%peer, "cannot send (no listener for this transport, or sip.max_connections reached)");
            engine.handle_transport_error(Instant::now(), peer);
        }
    }
    apply_media(engine, media); // what the transport errors above changed
    while let Some(mut r) = engine.poll_report() {
        if let Some(done) = media.as_mut().and_then(|m| m.finished.remove(&r.call)) {
            r.media.push(done.to_string());
        }
        if print {
            println!("{r}");
        }
        tracing::info!(call_id = %r.call_id, trunk = %r.trunk, outcome = %r.outcome, "call ended");
        metrics.call_ended(&r);
        if insight.sink.is_some() && !r.media.is_empty() {
            engine.record_media(r.call, &r.media);
        }
    }
    if let Some(sink) = &insight.sink {
        while let Some(sealed) = engine.poll_record() {
            if let Err(buffers) = sink.submit(sealed) {
                engine.recycle(buffers);
            }
        }
        sink.take_recycled(&mut insight.recycled);
        for r in insight.recycled.drain(..) {
            engine.recycle(r);
        }
    }
    metrics.set_active_calls(engine.calls());
}

/// Call records: the store's writer, where they are read, and the kv.
struct Insight {
    sink: Option<RecordSink>,
    /// Where the records are read (the admin API).
    source: Option<RecordSource>,
    /// The plugins' kv kept in the same store.
    kv: Option<crate::records::kv::KvKeeper>,
    /// Buffers the writer gave back, on their way to the engine (kept
    /// between passes: it trades places with the writer's list).
    recycled: Vec<crate::records::Recycled>,
}

impl Insight {
    /// Open the store (`[records]`), and send the plugins' audit entries to it.
    /// (The metrics count plugin loads and quarantines from the audit log too.)
    fn start(settings: &Settings, runtime: &Runtime, metrics: Arc<Metrics>) -> anyhow::Result<Insight> {
        let r = &settings.records;
        let (sink, source) = match (&r.path, &settings.store.postgres) {
            (Some(path), Some(pg)) => {
                // Connected by the writer, off this thread: a server that is
                // down at start holds records until it answers.
                let writer = crate::records::pg::PgWriter::new(pg.clone());
                let sink = RecordSink::start_on(Box::new(writer), path, r.queue, r.retention)?;
                tracing::info!("call records in PostgreSQL {}", pg.url);
                let reader = crate::records::pg::PgReader::new(pg.clone());
                (Some(sink), Some(RecordSource::Postgres(Arc::new(reader))))
            }
            (Some(path), None) => {
                let sink = RecordSink::start(path, r.queue, r.retention)?;
                tracing::info!("call records in {}", path.display());
                (Some(sink), Some(RecordSource::File(path.clone())))
            }
            (None, _) => (None, None),
        };
        // The plugins' kv survives restarts in the same file (before the
        // first call), unless it lives in a shared store.
        let kv = match &settings.records.path {
            Some(path) if settings.store.redis.is_none() => {
                let (keeper, restored) = crate::records::kv::start(path, &runtime.services().kv)?;
                tracing::info!("plugin kv kept in {} ({restored} keys read back)", path.display());
                Some(keeper)
            }
            _ => None,
        };
        let audit = sink.clone();
        runtime.audit().forward_to(Box::new(move |e| {
            metrics.audited(e);
            if let Some(sink) = &audit {
                sink.audit(AuditRow::from(e));
            }
        }));
        Ok(Insight { sink, source, kv, recycled: Vec::new() })
    }

    /// The writer's counts when a server holds the records.
    fn server_stats(&self) -> Option<Arc<crate::records::writer::WriterStats>> {
        self.sink
            .as_ref()
            .filter(|_| matches!(self.source, Some(RecordSource::Postgres(_))))
            .map(RecordSink::shared_stats)
    }

    /// Store what is queued and stop the writers.
    fn close(&mut self) {
        if let Some(sink) = self.sink.take() {
            sink.close();
        }
        if let Some(mut kv) = self.kv.take() {
            kv.close();
        }
    }
}

/// Give the relay what the engine decided about media.
fn apply_media(engine: &mut Engine, media: &mut Option<MediaRelay>) {
    while let Some(cmd) = engine.poll_media() {
        let Some(m) = media.as_mut() else { continue };
        match cmd {
            MediaCommand::Relay { call, streams, symmetric, recording } => {
                m.relay.apply(call, &streams, symmetric, recording.as_ref())
            }
            MediaCommand::Play { call, port, clip, loops } => {
                if !m.relay.play(call, port, clip, loops) {
                    tracing::warn!(call, port, "<Play>: the call has no relayed stream on that port");
                }
            }
            MediaCommand::Stop { call } => {
                if let Some(done) = m.relay.stop(call) {
                    m.finished.insert(call, done);
                }
            }
        }
    }
}

/// The HTTP client of disaster recovery: `https://` verified against the
/// system's roots or `sip.tls.ca` (TLS 1.2+). If that TLS configuration
/// cannot be made, `http://` still works and `https://` fetches fail with
/// the reason (logged once here).
fn make_fetcher(settings: &Settings) -> Fetcher {
    let tls = match crate::tls::client_config(&settings.tls) {
        Ok(config) => Some(config),
        Err(e) => {
            tracing::error!("no TLS client for https:// TwiML URLs: {e}");
            None
        }
    };
    Fetcher::new(tls).unwrap_or_else(|e| {
        tracing::error!("HTTP client for TwiML: {e}; retrying without TLS");
        Fetcher::new(None).expect("a plain HTTP client")
    })
}

/// What a fetch brought back.
enum Fetched {
    /// A TwiML document.
    Document(Result<String, String>),
    /// A `<Play>`ed file.
    Audio(Result<Vec<u8>, String>),
}

/// Fetch a disaster-recovery TwiML document or `<Play>` file off the
/// engine's loop. The engine gets an answer even if the fetch task panics
/// (its call then goes on like after any failed fetch, instead of waiting
/// forever).
fn spawn_fetch(f: FetchRequest, done: mpsc::Sender<(u64, Fetched)>, fetcher: Fetcher) {
    let (kind, token) = (f.kind, f.token);
    let task = tokio::spawn(async move {
        match f.kind {
            FetchKind::Twiml => {
                Fetched::Document(fetcher.post_form(&f.url, &f.params, f.timeout).await.map_err(|e| e.to_string()))
            }
            FetchKind::Audio => Fetched::Audio(fetcher.get(&f.url, f.timeout).await.map_err(|e| e.to_string())),
        }
    });
    tokio::spawn(async move {
        let result = task.await.unwrap_or_else(|e| {
            tracing::error!("TwiML fetch task failed: {e}");
            let why = format!("internal error: {e}");
            match kind {
                FetchKind::Twiml => Fetched::Document(Err(why)),
                FetchKind::Audio => Fetched::Audio(Err(why)),
            }
        });
        let _ = done.send((token, result)).await;
    });
}

async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, std::net::SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// SIGHUP reloads every plugin of the folder (off the hot path).
/// SIGHUP: reload the plugins folder, then the configuration (whose trunks
/// may name the new plugins).
fn spawn_sighup_reload(
    runtime: Runtime,
    dir: std::path::PathBuf,
    control: mpsc::Sender<Control>,
) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let (rt, dir) = (runtime.clone(), dir.clone());
                let _ = tokio::task::spawn_blocking(move || match rt.load_dir(&dir, LoadSource::Signal) {
                    Ok(results) => {
                        for (path, r) in results {
                            if let Err(e) = r {
                                tracing::warn!("SIGHUP reload of {} refused: {e}", path.display());
                            }
                        }
                    }
                    Err(e) => tracing::error!("SIGHUP reload: cannot read {}: {e}", dir.display()),
                })
                .await;
                crate::live::ask(&control, "signal");
            }
        });
    }
    Ok(())
}
