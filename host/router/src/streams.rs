//! Stream transports (TCP and TLS) for the tokio driver: one
//! connection per peer address, reused in both directions, framed by the
//! sans-IO [`Framer`], closed after an idle timeout.
//!
//! Each connection is one task that reads frames and writes what the engine
//! sends it; it reports frames, failures and its end on one channel the
//! driver's loop reads. The table of connections lives in that loop only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use trunkline_sip_core::transport::{Frame, Framer};
use trunkline_sip_core::{Peer, Transport};

/// What connection tasks tell the driver.
#[derive(Debug)]
pub enum StreamEvent {
    /// A whole SIP message from `from`.
    Message { from: Peer, bytes: Vec<u8> },
    /// `peer` could not be reached or written to.
    Failed(Peer),
    /// Connection `id` to `peer` is gone.
    Closed { peer: Peer, id: u64 },
}

/// Limits of stream connections.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamLimits {
    /// Close a connection without traffic for this long.
    pub idle: Duration,
    /// Most connections open at once; more are refused.
    pub max_connections: usize,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
}

struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

/// TLS for stream connections (only with a `tls://` listener): accepting on it and
/// connecting to `;transport=tls` targets.
#[derive(Clone)]
pub struct TlsContext {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
}

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The driver's table of stream connections.
pub struct Streams {
    conns: HashMap<Peer, Conn>,
    next_id: u64,
    events: mpsc::Sender<StreamEvent>,
    limits: StreamLimits,
    tls: Option<TlsContext>,
    /// Where connection tasks run (TLS handshakes, framing): off the engine's thread.
    tasks: tokio::runtime::Handle,
    /// The host name a target address was resolved from: a TLS target's
    /// certificate must name it (an address without one: its IP).
    names: HashMap<IpAddr, String>,
    /// TLS handshakes that failed, both ways (for the metrics).
    tls_failures: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Most addresses whose host name is remembered for TLS.
const MAX_NAMES: usize = 10_000;

impl Streams {
    /// An empty table; connection tasks run on `tasks` and report on `events`.
    pub fn new(
        events: mpsc::Sender<StreamEvent>,
        limits: StreamLimits,
        tls: Option<TlsContext>,
        tasks: tokio::runtime::Handle,
    ) -> Self {
        Streams {
            conns: HashMap::new(),
            next_id: 0,
            events,
            limits,
            tls,
            tasks,
            names: HashMap::new(),
            tls_failures: Default::default(),
        }
    }

    /// TLS handshakes (accepted and initiated) that failed so far.
    pub fn tls_failures(&self) -> u64 {
        self.tls_failures.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `name` resolved to `addrs`: a TLS connection to one of them verifies
    /// the certificate against `name`. (An address shared by two names is
    /// verified against the last one resolved.)
    pub fn learn_name(&mut self, name: &str, addrs: &[IpAddr]) {
        if self.names.len() >= MAX_NAMES {
            self.names.clear();
        }
        for ip in addrs {
            self.names.insert(*ip, name.to_owned());
        }
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Send `bytes` to `to`, over its connection or a new one. False if
    /// the message cannot be sent at all (too many connections, or a
    /// transport this build cannot dial); the caller reports the failure.
    pub fn send(&mut self, to: Peer, bytes: Vec<u8>) -> bool {
        let bytes = match self.conns.get(&to) {
            Some(c) => match c.tx.send(bytes) {
                Ok(()) => return true,
                Err(e) => e.0, // the task ended; its Closed event is on the way
            },
            None => bytes,
        };
        let connector = match (to.transport, &self.tls) {
            (Transport::Tcp, _) => None,
            (Transport::Tls, Some(tls)) => Some(tls.connector.clone()),
            _ => return false,
        };
        // A target named in its URI is verified against that name, one
        // given as an IP address against the IP.
        let server_name = match self.names.get(&to.addr.ip()).and_then(|n| ServerName::try_from(n.clone()).ok()) {
            Some(name) => name,
            None => ServerName::IpAddress(to.addr.ip().into()),
        };
        if self.conns.len() >= self.limits.max_connections {
            return false;
        }
        let (id, rx) = self.register(to);
        let _ = self.conns[&to].tx.send(bytes);
        let (events, limits, failures) = (self.events.clone(), self.limits, self.tls_failures.clone());
        self.tasks.spawn(async move {
            match within(limits.connect_timeout, TcpStream::connect(to.addr)).await {
                Err(why) => {
                    tracing::info!(peer = %to, "cannot connect: {why}");
                    let _ = events.send(StreamEvent::Failed(to)).await;
                }
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    match connector {
                        None => run(stream, to, rx, &events, limits.idle).await,
                        Some(c) => match within(HANDSHAKE_TIMEOUT, c.connect(server_name, stream)).await {
                            Ok(tls) => run(tls, to, rx, &events, limits.idle).await,
                            Err(why) => {
                                failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                tracing::warn!(peer = %to, "TLS handshake failed: {why}");
                                let _ = events.send(StreamEvent::Failed(to)).await;
                            }
                        },
                    }
                }
            }
            let _ = events.send(StreamEvent::Closed { peer: to, id }).await;
        });
        true
    }

    /// A peer connected to one of our listeners. Refused (closed) beyond
    /// `max_connections`.
    pub fn accepted(&mut self, stream: TcpStream, peer: Peer) {
        if self.conns.len() >= self.limits.max_connections {
            tracing::warn!(%peer, "connection refused: {} connections open (sip.max_connections)", self.conns.len());
            return;
        }
        let acceptor = match (peer.transport, &self.tls) {
            (Transport::Tls, Some(tls)) => Some(tls.acceptor.clone()),
            (Transport::Tls, _) => return,
            _ => None,
        };
        let _ = stream.set_nodelay(true);
        // Moved to the connection tasks' runtime: registered there, not with the engine's.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%peer, "accepted connection unusable: {e}");
                return;
            }
        };
        let (id, rx) = self.register(peer);
        let (events, idle, failures) = (self.events.clone(), self.limits.idle, self.tls_failures.clone());
        self.tasks.spawn(async move {
            let stream = match TcpStream::from_std(stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%peer, "accepted connection unusable: {e}");
                    let _ = events.send(StreamEvent::Closed { peer, id }).await;
                    return;
                }
            };
            match acceptor {
                None => run(stream, peer, rx, &events, idle).await,
                Some(a) => match within(HANDSHAKE_TIMEOUT, a.accept(stream)).await {
                    Ok(tls) => run(tls, peer, rx, &events, idle).await,
                    // Old protocol versions, bad certificates, port scans: one line each.
                    Err(why) => {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!(%peer, "TLS handshake refused: {why}");
                    }
                },
            }
            let _ = events.send(StreamEvent::Closed { peer, id }).await;
        });
    }

    /// Connection `id` to `peer` ended: forget it (unless a newer one
    /// to the same peer replaced it meanwhile).
    pub fn closed(&mut self, peer: Peer, id: u64) {
        if self.conns.get(&peer).is_some_and(|c| c.id == id) {
            self.conns.remove(&peer);
        }
    }

    fn register(&mut self, peer: Peer) -> (u64, mpsc::UnboundedReceiver<Vec<u8>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.next_id += 1;
        let id = self.next_id;
        self.conns.insert(peer, Conn { id, tx });
        (id, rx)
    }
}

/// `fut` within `limit`: its error, or the timeout, as text.
async fn within<T, E: std::fmt::Display>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Serve one connection until it fails, its peer closes it, or it idles.
async fn run<S>(
    stream: S,
    peer: Peer,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    events: &mpsc::Sender<StreamEvent>,
    idle: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut framer = Framer::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut deadline = Instant::now() + idle;
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) => {
                        tracing::debug!(%peer, "connection read: {e}");
                        return;
                    }
                };
                deadline = Instant::now() + idle;
                framer.push(&buf[..n]);
                while let Some(frame) = framer.next_frame() {
                    match frame {
                        Frame::Message(bytes) => {
                            if events.send(StreamEvent::Message { from: peer, bytes }).await.is_err() {
                                return;
                            }
                        }
                        // RFC 5626 §3.5.1: answer a CRLFCRLF ping with a CRLF pong.
                        Frame::Ping => {
                            if writer.write_all(b"\r\n").await.is_err() {
                                return;
                            }
                        }
                        Frame::Broken(why) => {
                            tracing::warn!(%peer, "closing connection: {why}");
                            return;
                        }
                    }
                }
            }
            msg = outgoing.recv() => {
                let Some(bytes) = msg else { return };
                deadline = Instant::now() + idle;
                if let Err(e) = writer.write_all(&bytes).await {
                    tracing::info!(%peer, "connection write: {e}");
                    let _ = events.send(StreamEvent::Failed(peer)).await;
                    return;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::debug!(%peer, "closing idle connection");
                return;
            }
        }
    }
}
