//! Where the admin API and `trunkline calls` read records: the embedded
//! store's file, or PostgreSQL (`[store] postgres_url`: the records of
//! every router that writes there).

use std::path::PathBuf;
use std::sync::Arc;

use super::pg::PgReader;
use super::query::Filter;
use super::store::{AuditRow, CallRow, Store, StoreError};
use super::CallRecord;
use crate::config::RecordsAt;

/// A place records are read from. Every read blocks: call it off async threads.
#[derive(Clone)]
pub enum RecordSource {
    /// The embedded store's file (a read-only connection per read).
    File(PathBuf),
    Postgres(Arc<PgReader>),
}

impl From<RecordsAt> for RecordSource {
    fn from(at: RecordsAt) -> Self {
        match at {
            RecordsAt::File(path) => RecordSource::File(path),
            RecordsAt::Postgres(settings) => RecordSource::Postgres(Arc::new(PgReader::new(settings))),
        }
    }
}

impl RecordSource {
    /// Calls matching `filter`, newest first.
    pub fn list(&self, filter: &Filter) -> Result<Vec<CallRow>, StoreError> {
        match self {
            RecordSource::File(path) => Store::open_read(path)?.list(filter),
            RecordSource::Postgres(pg) => pg.list(filter),
        }
    }

    /// One record, trace included: by its number, or by the caller's Call-ID.
    pub fn get(&self, key: &str) -> Result<Option<CallRecord>, StoreError> {
        match self {
            RecordSource::File(path) => Store::open_read(path)?.get(key),
            RecordSource::Postgres(pg) => pg.get(key),
        }
    }

    /// The newest `limit` audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        match self {
            RecordSource::File(path) => Store::open_read(path)?.audit_log(limit),
            RecordSource::Postgres(pg) => pg.audit_log(limit),
        }
    }

    /// What it is, for messages: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            RecordSource::File(path) => path.display().to_string(),
            RecordSource::Postgres(pg) => pg.shown_url(),
        }
    }
}
