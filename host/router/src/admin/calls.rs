//! Call records and the audit log through the admin API, read from the
//! embedded store or PostgreSQL (off the async threads): `GET /calls`,
//! `GET /calls/ID`, `GET /calls/ID/ladder`, `GET /audit`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::{Admin, ApiError};
use crate::records::query::Filter;
use crate::records::source::RecordSource;
use crate::records::store::{AuditRow, CallRow, StoreError};
use crate::records::CallRecord;

/// Query parameters a list accepts.
const CALL_FILTERS: [&str; 5] = ["trunk", "number", "since", "outcome", "limit"];

/// `GET /calls?trunk=&number=&since=1h&outcome=failed&limit=50`: newest first.
pub(super) async fn list(
    State(a): State<Admin>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<CallRow>>, ApiError> {
    if let Some(unknown) = q.keys().find(|k| !CALL_FILTERS.contains(&k.as_str())) {
        return Err(bad(format!("{unknown}: unknown filter (known: {})", CALL_FILTERS.join(", "))));
    }
    let limit = match q.get("limit") {
        Some(l) => Some(l.parse::<usize>().map_err(|_| bad(format!("limit: `{l}` is not a whole number")))?),
        None => None,
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let filter = Filter::new(
        q.get("trunk").cloned(),
        q.get("number").cloned(),
        q.get("since").map(String::as_str),
        q.get("outcome").cloned(),
        limit,
        now,
    )
    .map_err(|e| bad(e.to_string()))?;
    let rows = read(&a, move |s| s.list(&filter)).await?;
    Ok(Json(rows))
}

/// `GET /calls/ID` (the record's number or the caller's Call-ID): the
/// whole record, trace included.
pub(super) async fn one(State(a): State<Admin>, Path(id): Path<String>) -> Result<Json<CallRecord>, ApiError> {
    Ok(Json(record(&a, id).await?))
}

/// `GET /calls/ID/ladder`: the record as `trunkline calls show ID` prints it.
pub(super) async fn ladder(State(a): State<Admin>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let r = record(&a, id).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], crate::records::ladder::draw(&r)))
}

/// `GET /audit?limit=100`: newest first.
pub(super) async fn audit(
    State(a): State<Admin>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<AuditRow>>, ApiError> {
    if let Some(unknown) = q.keys().find(|k| k.as_str() != "limit") {
        return Err(bad(format!("{unknown}: unknown parameter (known: limit)")));
    }
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| bad(format!("limit: `{l}` is not 1..=10000")))?,
        None => 100,
    };
    Ok(Json(read(&a, move |s| s.audit_log(limit)).await?))
}

async fn record(a: &Admin, id: String) -> Result<CallRecord, ApiError> {
    let key = id.clone();
    read(a, move |s| s.get(&key))
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("id: no call record {id}")))
}

/// Run `f` on the records, on a blocking thread.
async fn read<T: Send + 'static>(
    a: &Admin,
    f: impl FnOnce(&RecordSource) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let Some(source) = a.records.clone() else {
        return Err(ApiError(StatusCode::NOT_FOUND, "records: [records] enabled = false: no call records".into()));
    };
    tokio::task::spawn_blocking(move || f(&source))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| {
            tracing::warn!("admin API: {e}");
            ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        })
}

fn bad(message: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message)
}
