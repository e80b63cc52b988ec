//! `[records]`: the call records and the audit log (the embedded store).
//! Every key is optional: a file without `[records]` keeps 30 days (at most
//! a million calls) in `trunkline.db` beside the configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx};
use crate::records::trace::TraceCaps;
use crate::records::writer::Retention;

/// `[records]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRecords {
    /// Keep call records at all.
    enabled: bool,
    /// The store's file (relative: to the configuration's folder).
    path: PathBuf,
    /// Records older than this many days are deleted.
    max_age_days: Spanned<u64>,
    /// Beyond this many records the oldest are deleted.
    max_count: Spanned<u64>,
    /// Records waiting for the disk; beyond, they are dropped and counted.
    queue: Spanned<usize>,
    /// SIP messages kept per call (both legs together)...
    trace_messages: Spanned<usize>,
    /// ...and their bytes.
    trace_bytes: Spanned<usize>,
}

impl Default for RawRecords {
    fn default() -> Self {
        RawRecords {
            enabled: true,
            path: PathBuf::from("trunkline.db"),
            max_age_days: Spanned::new(0..0, 30),
            max_count: Spanned::new(0..0, 1_000_000),
            queue: Spanned::new(0..0, 10_000),
            trace_messages: Spanned::new(0..0, 64),
            trace_bytes: Spanned::new(0..0, 64 * 1024),
        }
    }
}

/// Where and how long call records are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSettings {
    /// `None`: records off (`enabled = false`).
    pub path: Option<PathBuf>,
    pub retention: Retention,
    pub queue: usize,
    pub trace: TraceCaps,
}

pub(super) fn records(cx: &Ctx<'_>, raw: RawRecords, base: &Path) -> Result<RecordSettings, ConfigError> {
    let range = |v: &Spanned<u64>, key: &str, max: u64| {
        if (1..=max).contains(v.get_ref()) {
            Ok(*v.get_ref())
        } else {
            Err(cx.err(v.span(), key, format!("must be 1..={max}")))
        }
    };
    let days = range(&raw.max_age_days, "records.max_age_days", 36_500)?;
    let count = range(&raw.max_count, "records.max_count", 1_000_000_000)?;
    let usize_range = |v: &Spanned<usize>, key: &str, min: usize, max: usize| {
        if (min..=max).contains(v.get_ref()) {
            Ok(*v.get_ref())
        } else {
            Err(cx.err(v.span(), key, format!("must be {min}..={max}")))
        }
    };
    let queue = usize_range(&raw.queue, "records.queue", 1, 1_000_000)?;
    let messages = usize_range(&raw.trace_messages, "records.trace_messages", 0, 10_000)?;
    let bytes = usize_range(&raw.trace_bytes, "records.trace_bytes", 0, 16 * 1024 * 1024)?;
    Ok(RecordSettings {
        path: raw.enabled.then(|| base.join(&raw.path)),
        retention: Retention { max_age: Duration::from_secs(days * 86_400), max_count: count },
        queue,
        trace: TraceCaps { messages, bytes },
    })
}

/// Where the records of a configuration are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordsAt {
    /// The embedded store's file.
    File(PathBuf),
    /// `[store] postgres_url`.
    Postgres(super::PostgresSettings),
}

/// Where the configuration at `file` keeps its records, reading only its
/// `[records]` and `[store]` (for `trunkline calls`: the rest, secrets
/// included, is not needed). `None`: records are off.
pub fn records_at(file: &Path) -> Result<Option<RecordsAt>, ConfigError> {
    #[derive(Deserialize)]
    struct OnlyRecords {
        #[serde(default)]
        records: RawRecords,
        #[serde(default)]
        store: super::store::RawStore,
    }
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_owned(),
        line: 0,
        column: 0,
        key: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    let cx = Ctx { file, text: &text };
    let raw: OnlyRecords =
        toml::from_str(&text).map_err(|e| cx.err(e.span().unwrap_or(0..0), "records", e.message().trim()))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let Some(path) = records(&cx, raw.records, base)?.path else { return Ok(None) };
    Ok(Some(match super::store::store(&cx, &raw.store, true, base)?.postgres {
        Some(pg) => RecordsAt::Postgres(pg),
        None => RecordsAt::File(path),
    }))
}
