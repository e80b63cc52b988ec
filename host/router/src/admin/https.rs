//! The admin API over HTTPS (`[admin] cert` and `key`): an axum listener
//! whose connections are TLS (rustls, TLS 1.2+, our ring provider).
//! Handshakes run in tasks of their own with a deadline, so a client that
//! never finishes one holds no other; failures are counted
//! (`trunkline_tls_handshake_failures_total{listener="admin"}`) and logged
//! at debug level.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Longest TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server.
const BACKLOG: usize = 64;

/// TLS connections of the admin listener, for `axum::serve`.
pub(super) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accept on `tcp`, handshake with `config`; `failed` counts the handshakes that fail.
    pub(super) fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        failed: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(BACKLOG);
        let acceptor = TlsAcceptor::from(config);
        let failed = Arc::new(failed);
        tokio::spawn(async move {
            loop {
                let (stream, from) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("admin listener: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx, failed) = (acceptor.clone(), tx.clone(), failed.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, from)).await;
                        }
                        Ok(Err(e)) => {
                            failed();
                            tracing::debug!(%from, "admin listener: TLS handshake failed: {e}");
                        }
                        Err(_) => {
                            failed();
                            tracing::debug!(%from, "admin listener: TLS handshake not finished in {} s", HANDSHAKE.as_secs());
                        }
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accepting task never ends while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
