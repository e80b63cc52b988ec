//! `trunkline run`: the tokio driver around the sans-IO [`Engine`]. It only
//! moves datagrams and deadlines; every SIP decision is in the engine.
//! Also here: plugin hot reload on file change (watcher), on SIGHUP, and
//! through the admin listener.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::net::UdpSocket;
use trunkline_plugin_host::{LoadSource, Runtime};

use crate::config::{ListenTransport, Settings};
use crate::engine::Engine;

/// Options of `trunkline run`.
pub struct RunOptions {
    /// Print each finished call's report on stdout (the quickstart does).
    pub print_calls: bool,
}

/// Serve until SIGINT/SIGTERM.
pub async fn run(settings: Settings, runtime: Runtime, opts: RunOptions) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let udp = settings
        .listen
        .iter()
        .find(|l| l.transport == ListenTransport::Udp)
        .context("sip.listen has no udp:// listener (TCP and TLS listeners are not served yet)")?;
    for l in settings.listen.iter().filter(|l| l.transport != ListenTransport::Udp) {
        tracing::warn!("listener {:?} {} is not served yet (UDP only in this version)", l.transport, l.addr);
    }
    let socket = UdpSocket::bind(udp.addr).await.with_context(|| format!("binding udp://{}", udp.addr))?;
    let local = socket.local_addr()?;
    println!("listening on udp://{local}");

    let _watcher = if settings.plugins.watch {
        Some(trunkline_plugin_host::watch::watch_dir(runtime.clone(), &settings.plugins.dir).context("watching the plugins folder")?)
    } else {
        None
    };
    spawn_sighup_reload(runtime.clone(), settings.plugins.dir.clone())?;
    if let Some(addr) = settings.admin {
        let listener = crate::admin::bind(addr).await.with_context(|| format!("binding the admin listener {addr}"))?;
        tokio::spawn(crate::admin::serve(listener, runtime.clone(), settings.plugins.dir.clone()));
    }

    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    let mut engine = Engine::new(settings.clone(), runtime, local, seed);
    let mut buf = vec![0u8; 65_535];
    let mut shutdown = Box::pin(shutdown_signal());
    loop {
        flush(&socket, &mut engine, opts.print_calls).await;
        let deadline = engine.poll_timeout();
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => engine.handle_datagram(Instant::now(), from, &buf[..n]),
                // ICMP errors surface here on some systems; they concern one peer only.
                Err(e) => tracing::debug!("udp receive: {e}"),
            },
            _ = sleep_until(deadline) => engine.handle_timeout(Instant::now()),
            _ = &mut shutdown => {
                tracing::info!("shutting down with {} call(s) in progress", engine.calls());
                flush(&socket, &mut engine, opts.print_calls).await;
                return Ok(());
            }
        }
    }
}

async fn flush(socket: &UdpSocket, engine: &mut Engine, print: bool) {
    while let Some(t) = engine.poll_transmit() {
        if let Err(e) = socket.send_to(&t.bytes, t.to).await {
            tracing::warn!(to = %t.to, "udp send failed: {e}");
        }
    }
    while let Some(r) = engine.poll_report() {
        if print {
            println!("{r}");
        }
        tracing::info!(call_id = %r.call_id, trunk = %r.trunk, outcome = %r.outcome, "call ended");
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
fn spawn_sighup_reload(runtime: Runtime, dir: std::path::PathBuf) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("installing the SIGHUP handler")?;
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
            }
        });
    }
    Ok(())
}

