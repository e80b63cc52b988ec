//! The admin HTTP listener (loopback only), on axum: list plugins, reload
//! the plugins folder, lift a quarantine. JSON answers; errors are JSON
//! with a message.
//!
//! | request | does |
//! |---|---|
//! | `GET /plugins` | name, version and quarantine state of each loaded plugin |
//! | `GET /instances` | where the plugin instances made so far were made (idle engine thread, background thread, call path) |
//! | `POST /plugins/reload` | reload every `.wasm` of the folder (audited as `admin`) |
//! | `POST /plugins/NAME/release` | lift NAME's quarantine (audited) |
//! | `GET /metrics` | Prometheus metrics (OpenMetrics text, [`crate::metrics`]) |
//! | `POST /drain` | stop taking calls, let those in progress finish (`sip.drain_timeout_secs`), exit |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use trunkline_plugin_host::{LoadSource, Runtime};

use crate::metrics::Metrics;

/// What the admin API asks of the engine's loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Drain, as on SIGTERM.
    Drain,
}

/// What the handlers share.
#[derive(Clone)]
pub struct Admin {
    runtime: Runtime,
    /// The plugins folder (`[plugins] dir`).
    dir: PathBuf,
    metrics: Arc<Metrics>,
    control: tokio::sync::mpsc::Sender<Control>,
}

impl Admin {
    /// The API over `runtime`'s plugins (from `dir`), `metrics`, and the
    /// engine's loop (`control`).
    pub fn new(
        runtime: Runtime,
        dir: PathBuf,
        metrics: Arc<Metrics>,
        control: tokio::sync::mpsc::Sender<Control>,
    ) -> Admin {
        Admin { runtime, dir, metrics, control }
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
        .route("/plugins", get(plugins))
        .route("/instances", get(instances))
        .route("/plugins/reload", post(reload))
        .route("/plugins/{name}/release", post(release))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "GET /plugins, GET /instances, GET /metrics, POST /plugins/reload, POST /plugins/NAME/release, \
                 POST /drain"
                    .into(),
            )
        })
        .with_state(admin)
}

/// Serve the admin API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, admin: Admin) {
    if let Err(e) = axum::serve(listener, routes(admin)).await {
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

async fn drain(State(a): State<Admin>) -> Result<(StatusCode, Json<Value>), ApiError> {
    a.control
        .send(Control::Drain)
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "the router is stopping".into()))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "draining": true }))))
}

async fn plugins(State(a): State<Admin>) -> Json<Value> {
    let items: Vec<Value> = a
        .runtime
        .plugins()
        .iter()
        .map(|p| json!({ "name": p.info.name, "version": p.info.version, "quarantined": p.is_quarantined() }))
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

async fn reload(State(a): State<Admin>) -> Result<Json<Value>, ApiError> {
    let (rt, dir) = (a.runtime.clone(), a.dir.clone());
    let results = tokio::task::spawn_blocking(move || rt.load_dir(&dir, LoadSource::Admin))
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

async fn release(State(a): State<Admin>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    if a.runtime.release(&name) {
        Ok(Json(json!({ "released": name })))
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, format!("no plugin named {name}")))
    }
}

/// Bind the admin listener and print where it is.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = TcpListener::bind(addr).await?;
    println!("admin on http://{}", l.local_addr()?);
    Ok(l)
}
