//! The admin HTTP listener (loopback, or HTTPS with tokens beyond it), on axum: list plugins, reload
//! the plugins folder, lift a quarantine, metrics, drain, digest bans.
//! JSON answers; errors are JSON with a message.
//!
//! With `[admin] tokens`, every request must carry one of them
//! (`Authorization: Bearer TOKEN`; compared in constant time) and what it
//! changes is audited under the token's name; else 401.
//!
//! | request | does |
//! |---|---|
//! | `GET /plugins` | name, version and quarantine state of each loaded plugin |
//! | `GET /instances` | where the plugin instances made so far were made (idle engine thread, background thread, call path) |
//! | `POST /plugins/reload` | reload every `.wasm` of the folder (audited as `admin`) |
//! | `POST /plugins/NAME/release` | lift NAME's quarantine (audited) |
//! | `GET /` | the operator console (a page; its data through the API with the operator's token) |
//! | `GET /openapi.json` | this API as an OpenAPI 3.0 document |
//! | `GET /metrics` | Prometheus metrics (OpenMetrics text, [`crate::metrics`]) |
//! | `POST /drain` | stop taking calls, let those in progress finish (`sip.drain_timeout_secs`), exit |
//! | `GET /health/live` | 200 while the process serves |
//! | `GET /health/ready` | 200 while it takes calls, 503 while draining (for load balancers); calls in progress |
//! | `GET /store` | where plugin kv lives (memory, embedded, redis) and a shared store's state and counts |
//! | `GET /calls/active` | the calls in progress: Call-ID, trunk, direction, parties, answered, target, age |
//! | `GET /bans` | sources banned after failed digest authentications, with the seconds left |
//! | `DELETE /bans/IP` | lift the ban on IP |
//! | `GET /trunks` | trunks with their numbers, targets (and their health), termination and plugins |
//! | `POST /config/reload` | reload `trunkline.toml` (validated whole; refused with the reason, or the changes; audited) |
//! | `GET /calls?trunk=&number=&since=&outcome=&limit=` | call records, newest first ([`calls`]) |
//! | `GET /calls/ID` | one call record with its SIP trace (ID: its number or the caller's Call-ID) |
//! | `GET /calls/ID/ladder` | the call as a SIP ladder diagram (text) |
//! | `GET /audit?limit=` | the audit log, newest first |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use trunkline_plugin_host::{LoadSource, Runtime};

use crate::metrics::Metrics;

mod calls;
mod console;
mod https;
mod trunks;

/// The API's OpenAPI 3.0 document (`GET /openapi.json`), checked against
/// the API by schemathesis in the tests.
const OPENAPI: &str = include_str!("openapi.json");

pub use trunks::trunks_json;

/// What the admin API asks of the engine's loop.
#[derive(Debug)]
pub enum Control {
    /// Drain, as on SIGTERM.
    Drain,
    /// The sources banned now (address, seconds left).
    Bans(tokio::sync::oneshot::Sender<Vec<(std::net::IpAddr, u64)>>),
    /// Lift a ban; whether there was one.
    Lift(std::net::IpAddr, tokio::sync::oneshot::Sender<bool>),
    /// The calls in progress and whether the router is draining.
    Calls(tokio::sync::oneshot::Sender<(Vec<crate::engine::ActiveCall>, bool)>),
    /// The configuration now, with the targets' health (the API makes the
    /// trunks' JSON off the engine's thread: a million numbers take a while).
    Trunks(tokio::sync::oneshot::Sender<(Arc<crate::config::Settings>, Vec<crate::engine::TargetHealth>)>),
    /// Reload the configuration file (`source`: `admin`, `signal`, `watch`;
    /// `by`: the admin token's name); the outcome to `reply` if given.
    Reload { source: &'static str, by: Option<String>, reply: Option<crate::live::Reply> },
    /// A reload's file, read and checked off the engine's thread against
    /// the settings `against`: to apply (if they are still the current ones).
    Loaded {
        loaded: crate::live::Loaded,
        against: Arc<crate::config::Settings>,
        source: &'static str,
        by: Option<String>,
        reply: Option<crate::live::Reply>,
    },
}

/// What the handlers share.
#[derive(Clone)]
pub struct Admin {
    runtime: Runtime,
    /// The plugins folder (`[plugins] dir`).
    dir: PathBuf,
    metrics: Arc<Metrics>,
    control: tokio::sync::mpsc::Sender<Control>,
    /// `[admin] tokens`: (name, SHA-256 of the token).
    tokens: Arc<Vec<(String, [u8; 32])>>,
    /// Where call records are read (`[records] path`, or `[store]
    /// postgres_url`), if records are on.
    records: Option<crate::records::source::RecordSource>,
    /// The records writer's counts, when a server holds the records.
    records_writer: Option<Arc<crate::records::writer::WriterStats>>,
    /// Plugin kv in Redis (`[store] redis_url`), if configured.
    shared_kv: Option<Arc<crate::store::redis_kv::RedisKv>>,
}

/// The name of the token a request carried (`None`: no tokens configured).
#[derive(Clone, Debug)]
struct Caller(Option<String>);

impl Admin {
    /// The API over `runtime`'s plugins (from `dir`), `metrics`, and the
    /// engine's loop (`control`).
    pub fn new(
        runtime: Runtime,
        dir: PathBuf,
        metrics: Arc<Metrics>,
        control: tokio::sync::mpsc::Sender<Control>,
    ) -> Admin {
        Admin {
            runtime,
            dir,
            metrics,
            control,
            tokens: Arc::new(Vec::new()),
            records: None,
            records_writer: None,
            shared_kv: None,
        }
    }

    /// Serve the call records and the audit log kept in `source`.
    pub fn with_records(mut self, source: Option<crate::records::source::RecordSource>) -> Admin {
        self.records = source;
        self
    }

    /// Report on the writer of records to a server (`[store] postgres_url`).
    pub fn with_records_writer(mut self, stats: Option<Arc<crate::records::writer::WriterStats>>) -> Admin {
        self.records_writer = stats;
        self
    }

    /// Report on plugin kv in Redis.
    pub fn with_shared_kv(mut self, kv: Option<Arc<crate::store::redis_kv::RedisKv>>) -> Admin {
        self.shared_kv = kv;
        self
    }

    /// Require one of `tokens` on every request.
    pub fn with_tokens(mut self, tokens: &[crate::config::AdminToken]) -> Admin {
        self.tokens = Arc::new(tokens.iter().map(|t| (t.name.clone(), digest(t.secret.expose().as_bytes()))).collect());
        self
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Equal in time independent of where they differ (both are digests, so
/// of the same length whatever the token's).
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Check the bearer token (when tokens are configured) and tell the
/// handler whose it is.
async fn authenticate(
    State(a): State<Admin>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if a.tokens.is_empty() {
        request.extensions_mut().insert(Caller(None));
        return next.run(request).await;
    }
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| digest(t.trim().as_bytes()));
    // Every token is compared, whichever matches.
    let name = offered.and_then(|d| {
        a.tokens.iter().fold(None, |found, (name, want)| if same(&d, want) { Some(name.clone()) } else { found })
    });
    match name {
        Some(name) => {
            request.extensions_mut().insert(Caller(Some(name)));
            next.run(request).await
        }
        None => {
            let why = if offered.is_some() {
                "authorization: unknown token"
            } else {
                "authorization: a bearer token is required"
            };
            let mut r = ApiError(StatusCode::UNAUTHORIZED, why.into()).into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
            r
        }
    }
}

/// An error answer: its status and a JSON `{"error": message}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// The admin API's routes.
fn routes(admin: Admin) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/drain", post(drain))
        .route("/config/reload", post(reload_config))
        .route("/trunks", get(trunks))
        .route("/bans", get(bans))
        .route("/health/live", get(|| async { Json(json!({ "live": true })) }))
        .route("/health/ready", get(ready))
        .route("/store", get(store))
        .route("/calls/active", get(active_calls))
        .route("/calls", get(calls::list))
        .route("/calls/{id}", get(calls::one))
        .route("/calls/{id}/ladder", get(calls::ladder))
        .route("/audit", get(calls::audit))
        .route("/bans/{ip}", axum::routing::delete(lift))
        .route("/plugins", get(plugins))
        .route("/instances", get(instances))
        .route("/plugins/reload", post(reload))
        .route("/plugins/{name}/release", post(release))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "GET /plugins, GET /instances, GET /metrics, POST /plugins/reload, POST /plugins/NAME/release, \
                 POST /drain, POST /config/reload, GET /trunks, GET /bans, DELETE /bans/IP, GET /health/live, GET /health/ready, GET /calls/active, \
                 GET /calls, GET /calls/ID, GET /calls/ID/ladder, GET /audit"
                    .into(),
            )
        })
        .layer(axum::middleware::from_fn_with_state(admin.clone(), authenticate))
        // Static documents, no data: served without a token.
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/", get(|| async { axum::response::Html(console::PAGE) }))
        .with_state(admin)
}

/// Serve the admin API on `listener` (over TLS with `tls`) until the task is dropped.
pub async fn serve(listener: TcpListener, admin: Admin, tls: Option<Arc<rustls::ServerConfig>>) {
    let result = match tls {
        Some(config) => {
            let metrics = admin.metrics.clone();
            match https::TlsListener::new(listener, config, move || metrics.tls_handshake_failed("admin")) {
                Ok(l) => axum::serve(l, routes(admin)).await,
                Err(e) => Err(e),
            }
        }
        None => axum::serve(listener, routes(admin)).await,
    };
    if let Err(e) = result {
        tracing::error!("admin API stopped: {e}");
    }
}

/// OpenMetrics if the scraper asks for it (Prometheus does), else the
/// Prometheus text format.
async fn metrics_text(State(a): State<Admin>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    let body = a.metrics.encode_openmetrics(&a.runtime);
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("application/openmetrics-text")));
    if openmetrics {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], crate::metrics::prometheus_text(&body))
    }
}

async fn drain(
    State(a): State<Admin>,
    Extension(who): Extension<Caller>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    tracing::warn!(by = who.0.as_deref().unwrap_or("-"), "drain asked through the admin API");
    a.control
        .send(Control::Drain)
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "the router is stopping".into()))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "draining": true }))))
}

/// Ask the engine's loop something; 503 if it is gone.
async fn ask<T>(a: &Admin, make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Control) -> Result<T, ApiError> {
    let gone = || ApiError(StatusCode::SERVICE_UNAVAILABLE, "the router is stopping".into());
    let (tx, rx) = tokio::sync::oneshot::channel();
    a.control.send(make(tx)).await.map_err(|_| gone())?;
    rx.await.map_err(|_| gone())
}

async fn trunks(State(a): State<Admin>) -> Result<Json<Value>, ApiError> {
    let (settings, health) = ask(&a, Control::Trunks).await?;
    let json = tokio::task::spawn_blocking(move || trunks_json(&settings, &health))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("trunks: {e}")))?;
    Ok(Json(json))
}

async fn reload_config(State(a): State<Admin>, Extension(who): Extension<Caller>) -> Result<Json<Value>, ApiError> {
    let outcome = ask(&a, |reply| Control::Reload { source: "admin", by: who.0.clone(), reply: Some(reply) }).await?;
    match outcome {
        Ok(changes) => Ok(Json(json!({ "reloaded": true, "changes": changes }))),
        Err(why) => Err(ApiError(StatusCode::BAD_REQUEST, format!("config: {why}"))),
    }
}

async fn ready(State(a): State<Admin>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (calls, draining) = ask(&a, Control::Calls).await?;
    let status = if draining { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    Ok((status, Json(json!({ "ready": !draining, "draining": draining, "calls": calls.len() }))))
}

async fn store(State(a): State<Admin>) -> Json<Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let kv = match &a.shared_kv {
        Some(kv) => {
            let s = kv.stats();
            json!({
                "backend": "redis", "state": kv.state(), "url": kv.shown_url(),
                "timeout_ms": trunkline_plugin_host::SharedKv::budget(&**kv).as_millis() as u64,
                "ok": s.ok.load(Relaxed), "failed": s.failed.load(Relaxed),
                "timed_out": s.timed_out.load(Relaxed), "shed": s.shed.load(Relaxed),
            })
        }
        None if a.records.is_some() => json!({ "backend": "embedded", "state": "up" }),
        None => json!({ "backend": "memory", "state": "up" }),
    };
    let records = match (&a.records, &a.records_writer) {
        (Some(crate::records::source::RecordSource::Postgres(pg)), Some(s)) => json!({
            "backend": "postgres", "state": if s.failing.load(Relaxed) { "down" } else { "up" },
            "url": pg.shown_url(), "written": s.written.load(Relaxed), "held": s.held.load(Relaxed),
            "dropped": s.dropped.load(Relaxed), "errors": s.errors.load(Relaxed),
        }),
        (Some(_), _) => json!({ "backend": "embedded", "state": "up" }),
        (None, _) => json!({ "backend": "off", "state": "up" }),
    };
    Json(json!({ "kv": kv, "records": records }))
}

async fn active_calls(State(a): State<Admin>) -> Result<Json<Value>, ApiError> {
    let (calls, _) = ask(&a, Control::Calls).await?;
    let items: Vec<Value> = calls
        .iter()
        .map(|c| {
            json!({
                "call_id": c.call_id, "trunk": c.trunk, "direction": c.direction, "from": c.from, "to": c.to,
                "answered": c.answered, "target": c.target, "seconds": c.seconds,
            })
        })
        .collect();
    Ok(Json(Value::Array(items)))
}

async fn bans(State(a): State<Admin>) -> Result<Json<Value>, ApiError> {
    let list = ask(&a, Control::Bans).await?;
    let items: Vec<Value> =
        list.iter().map(|(ip, secs)| json!({ "ip": ip.to_string(), "seconds_left": secs })).collect();
    Ok(Json(Value::Array(items)))
}

async fn lift(
    State(a): State<Admin>,
    Extension(who): Extension<Caller>,
    Path(ip): Path<String>,
) -> Result<Json<Value>, ApiError> {
    tracing::info!(by = who.0.as_deref().unwrap_or("-"), %ip, "ban lift asked through the admin API");
    let addr: std::net::IpAddr =
        ip.parse().map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("ip: `{ip}` is not an IP address")))?;
    if ask(&a, |tx| Control::Lift(addr, tx)).await? {
        Ok(Json(json!({ "lifted": addr.to_string() })))
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, format!("ip: {addr} is not banned")))
    }
}

async fn plugins(State(a): State<Admin>) -> Json<Value> {
    let items: Vec<Value> = a
        .runtime
        .plugins()
        .iter()
        .map(|p| {
            let latency: Vec<Value> = a
                .metrics
                .hook_stats(&p.info.name)
                .into_iter()
                .map(|(hook, calls, mean_us, max_us)| json!({ "hook": hook, "calls": calls, "mean_us": mean_us, "max_us": max_us }))
                .collect();
            json!({
                "name": p.info.name, "version": p.info.version, "quarantined": p.is_quarantined(),
                "hooks": p.hook_names(), "latency": latency,
            })
        })
        .collect();
    Json(Value::Array(items))
}

async fn instances(State(a): State<Admin>) -> Json<Value> {
    let c = a.runtime.instance_counts();
    Json(json!({
        "prepared_while_idle": c.prepared_while_idle,
        "prepared_in_background": c.prepared_in_background,
        "made_on_call_path": c.made_on_call_path,
    }))
}

async fn reload(State(a): State<Admin>, Extension(who): Extension<Caller>) -> Result<Json<Value>, ApiError> {
    let (rt, dir) = (a.runtime.clone(), a.dir.clone());
    let results = tokio::task::spawn_blocking(move || rt.load_dir_by(&dir, LoadSource::Admin, who.0.as_deref()))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let items: Vec<Value> = results
        .iter()
        .map(|(path, r)| match r {
            Ok(p) => json!({ "file": path.display().to_string(), "version": p.info.version }),
            Err(e) => json!({ "file": path.display().to_string(), "refused": e.to_string() }),
        })
        .collect();
    Ok(Json(Value::Array(items)))
}

async fn release(
    State(a): State<Admin>,
    Extension(who): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if a.runtime.release_by(&name, who.0.as_deref()) {
        Ok(Json(json!({ "released": name })))
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, format!("no plugin named {name}")))
    }
}

/// Bind the admin listener and print where it is.
pub async fn bind(addr: SocketAddr, tls: bool) -> std::io::Result<TcpListener> {
    let l = TcpListener::bind(addr).await?;
    println!("admin on {}://{}", if tls { "https" } else { "http" }, l.local_addr()?);
    Ok(l)
}
