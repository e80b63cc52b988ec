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

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use trunkline_plugin_host::{LoadSource, Runtime};

/// What the handlers share.
#[derive(Clone)]
struct Admin {
    runtime: Runtime,
    /// The plugins folder (`[plugins] dir`).
    dir: PathBuf,
}

/// An error answer: its status and a JSON `{"error": message}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// The admin API's routes.
fn routes(runtime: Runtime, dir: PathBuf) -> Router {
    Router::new()
        .route("/plugins", get(plugins))
        .route("/instances", get(instances))
        .route("/plugins/reload", post(reload))
        .route("/plugins/{name}/release", post(release))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "GET /plugins, GET /instances, POST /plugins/reload, POST /plugins/NAME/release".into(),
            )
        })
        .with_state(Admin { runtime, dir })
}

/// Serve the admin API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, runtime: Runtime, dir: PathBuf) {
    if let Err(e) = axum::serve(listener, routes(runtime, dir)).await {
        tracing::error!("admin API stopped: {e}");
    }
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
