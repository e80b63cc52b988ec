//! The admin HTTP listener (loopback only): list plugins, reload the
//! plugins folder, lift a quarantine. Deliberately tiny: one request per
//! connection, bounded reads, JSON answers.
//!
//! | request | does |
//! |---|---|
//! | `GET /plugins` | name, version and quarantine state of each loaded plugin |
//! | `GET /instances` | where the plugin instances made so far were made (idle engine thread, background thread, call path) |
//! | `POST /plugins/reload` | reload every `.wasm` of the folder (audited as `admin`) |
//! | `POST /plugins/NAME/release` | lift NAME's quarantine (audited) |

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use trunkline_plugin_host::{LoadSource, Runtime};

/// Largest request head read.
const MAX_HEAD: usize = 8192;

/// Serve the admin API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, runtime: Runtime, dir: PathBuf) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let (rt, dir) = (runtime.clone(), dir.clone());
        tokio::spawn(async move {
            if let Err(e) = handle(stream, rt, dir).await {
                tracing::debug!(%peer, "admin request: {e}");
            }
        });
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

async fn handle(mut stream: TcpStream, rt: Runtime, dir: PathBuf) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next().unwrap_or("").split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = match (method, path.trim_end_matches('/')) {
        ("GET", "/plugins") => {
            let items: Vec<String> = rt
                .plugins()
                .iter()
                .map(|p| {
                    format!(
                        "{{\"name\":{},\"version\":{},\"quarantined\":{}}}",
                        json_str(&p.info.name),
                        json_str(&p.info.version),
                        p.is_quarantined()
                    )
                })
                .collect();
            (200, format!("[{}]", items.join(",")))
        }
        ("GET", "/instances") => {
            let c = rt.instance_counts();
            let body = format!(
                "{{\"prepared_while_idle\":{},\"prepared_in_background\":{},\"made_on_call_path\":{}}}",
                c.prepared_while_idle, c.prepared_in_background, c.made_on_call_path
            );
            (200, body)
        }
        ("POST", "/plugins/reload") => {
            let rt2 = rt.clone();
            let results = tokio::task::spawn_blocking(move || rt2.load_dir(&dir, LoadSource::Admin)).await;
            match results {
                Ok(Ok(results)) => {
                    let items: Vec<String> = results
                        .iter()
                        .map(|(path, r)| match r {
                            Ok(p) => format!(
                                "{{\"file\":{},\"version\":{}}}",
                                json_str(&path.display().to_string()),
                                json_str(&p.info.version)
                            ),
                            Err(e) => format!(
                                "{{\"file\":{},\"refused\":{}}}",
                                json_str(&path.display().to_string()),
                                json_str(&e.to_string())
                            ),
                        })
                        .collect();
                    (200, format!("[{}]", items.join(",")))
                }
                Ok(Err(e)) => (500, format!("{{\"error\":{}}}", json_str(&e.to_string()))),
                Err(e) => (500, format!("{{\"error\":{}}}", json_str(&e.to_string()))),
            }
        }
        ("POST", p) if p.starts_with("/plugins/") && p.ends_with("/release") => {
            let name = &p["/plugins/".len()..p.len() - "/release".len()];
            if rt.release(name) {
                (200, format!("{{\"released\":{}}}", json_str(name)))
            } else {
                (404, format!("{{\"error\":\"no plugin named {}\"}}", name.escape_default()))
            }
        }
        _ => (
            404,
            "{\"error\":\"GET /plugins, GET /instances, POST /plugins/reload, POST /plugins/NAME/release\"}"
                .to_string(),
        ),
    };
    let reason = if status == 200 {
        "OK"
    } else if status == 404 {
        "Not Found"
    } else {
        "Internal Server Error"
    };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

/// Bind the admin listener and print where it is.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = TcpListener::bind(addr).await?;
    println!("admin on http://{}", l.local_addr()?);
    Ok(l)
}
