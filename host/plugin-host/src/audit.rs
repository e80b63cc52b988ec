//! The audit log: every plugin load, reload, refusal, quarantine and release,
//! with time, plugin, version hash and outcome. JSON lines in a file (if
//! configured), the tracing log, and the recent entries in memory.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// RFC 3339, UTC.
    pub time: String,
    /// `load`, `reload`, `refuse`, `quarantine`, `release`, `unchanged`, `removed`.
    pub action: String,
    pub plugin: String,
    /// Version hash (first 12 hex digits of the file's SHA-256), when known.
    pub version: Option<String>,
    /// Version it replaced, on reload.
    pub previous: Option<String>,
    /// `ok` or `refused`.
    pub outcome: String,
    /// What triggered it: `startup`, `watch`, `signal`, `admin`, `cli`, `runtime`.
    pub source: String,
    /// Who, when known: the name of the admin API token that asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Why, for refusals and quarantines.
    pub detail: Option<String>,
}

/// Recent entries kept in memory.
const KEEP: usize = 1024;

/// Where audit entries go.
pub struct AuditLog {
    file: Option<Mutex<File>>,
    recent: Mutex<VecDeque<AuditEntry>>,
    /// Also handed to this (the router's store), if set.
    forward: Mutex<Option<Forward>>,
}

/// A receiver of every audit entry (see [`AuditLog::forward_to`]).
pub type Forward = Box<dyn Fn(&AuditEntry) + Send + Sync>;

impl AuditLog {
    /// Append to `path` if given (created if missing).
    pub fn open(path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => Some(Mutex::new(OpenOptions::new().create(true).append(true).open(p)?)),
            None => None,
        };
        Ok(AuditLog { file, recent: Mutex::new(VecDeque::new()), forward: Mutex::new(None) })
    }

    /// Record an entry (the time is filled in).
    pub fn record(&self, mut entry: AuditEntry) {
        entry.time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let line = serde_json::to_string(&entry).unwrap_or_default();
        if entry.outcome == "ok" {
            tracing::info!(target: "trunkline::audit", "{line}");
        } else {
            tracing::warn!(target: "trunkline::audit", "{line}");
        }
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = writeln!(f, "{line}") {
                tracing::error!("audit log write failed: {e}");
            }
        }
        if let Some(forward) = self.forward.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            forward(&entry);
        }
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == KEEP {
            recent.pop_front();
        }
        recent.push_back(entry);
    }

    /// Hand every entry from now on to `forward` too (entries recorded
    /// before are in [`AuditLog::recent`]).
    pub fn forward_to(&self, forward: Forward) {
        *self.forward.lock().unwrap_or_else(|p| p.into_inner()) = Some(forward);
    }

    /// The most recent entries, oldest first.
    pub fn recent(&self) -> Vec<AuditEntry> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }
}

impl AuditEntry {
    /// An entry with the given action, plugin and source; the rest empty.
    pub fn new(action: &str, plugin: &str, source: &str) -> Self {
        AuditEntry {
            time: String::new(),
            action: action.into(),
            plugin: plugin.into(),
            version: None,
            previous: None,
            outcome: "ok".into(),
            source: source.into(),
            by: None,
            detail: None,
        }
    }
}
