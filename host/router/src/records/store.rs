//! The embedded store: one SQLite file (WAL journal: crash-safe, readers
//! beside the one writer) holding the call records and the audit log.
//!
//! SQLite through rusqlite: no server to install, SQL for the queries of
//! the API and the CLI, and a file format that has stayed readable for
//! decades. The schema is the list of [`MIGRATIONS`]; `PRAGMA user_version`
//! says how many a file has had, so a newer router opens an older file
//! (the missing steps run in one transaction) and an older router refuses
//! a newer file instead of misreading it.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::query::{Filter, SqlArg};
use super::traces::{self, dir_of, TraceAt, TraceLog};
use super::{CallRecord, Stored};

/// The schema, one step per version. Append only: never edit a step that
/// has shipped.
pub const MIGRATIONS: &[&str] = &[
    // 1: call records. The columns filters use; the whole record as JSON
    // (until 5).
    "CREATE TABLE calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER NOT NULL,
        trunk TEXT NOT NULL,
        direction TEXT NOT NULL,
        caller TEXT NOT NULL,
        called TEXT NOT NULL,
        outcome TEXT NOT NULL,
        status INTEGER NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX calls_started_at ON calls(started_at);
    CREATE INDEX calls_call_id ON calls(call_id);",
    // 2: the audit log (plugin loads and releases, configuration reloads).
    "CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        outcome TEXT NOT NULL,
        source TEXT NOT NULL,
        by_token TEXT,
        detail TEXT
    );",
    // 3: each call's SIP trace apart from the record, packed (trunkline_records::trace).
    "ALTER TABLE calls ADD COLUMN trace BLOB;",
    // 4: the trace in a segment file beside the store (super::traces); `trace` stays for older rows.
    "ALTER TABLE calls ADD COLUMN trace_segment INTEGER;
     ALTER TABLE calls ADD COLUMN trace_offset INTEGER;
     ALTER TABLE calls ADD COLUMN trace_length INTEGER;",
    // 5: `record` holds a BLOB for new rows (trunkline_records::RECORD_V1:
    // a version byte, then postcard; JSON cost the writer a fifth of a
    // call's records), so what lists show gets columns of its own, filled
    // in for the rows of earlier versions (their `record` stays JSON text).
    "ALTER TABLE calls ADD COLUMN pdd_ms INTEGER;
     ALTER TABLE calls ADD COLUMN duration_ms INTEGER;
     ALTER TABLE calls ADD COLUMN hangup_by TEXT;
     ALTER TABLE calls ADD COLUMN attempts INTEGER;
     UPDATE calls SET pdd_ms = json_extract(record, '$.pdd_ms'),
                      duration_ms = json_extract(record, '$.duration_ms'),
                      hangup_by = json_extract(record, '$.hangup_by'),
                      attempts = json_array_length(record, '$.targets');",
    // 6: plugin kv (super::kv): the latest value of each key, written behind the memory copy.
    "CREATE TABLE kv (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_ms INTEGER,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;",
    // 7: a new row's compact record goes in the trace segment, just before
    // its trace (the `record_length` bytes that end at `trace_offset`), and
    // `record` holds an empty BLOB: written once, by the same system call
    // as the trace, instead of twice through SQLite's log (bench/README.md,
    // session 16).
    "ALTER TABLE calls ADD COLUMN record_length INTEGER;",
];

/// Rows in one INSERT statement at most.
const ROWS: usize = 16;
/// Values in a row of `calls` as [`Store::write`] inserts it.
const COLUMNS: usize = 18;

/// `INSERT INTO calls ...` of `rows` rows.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO calls (call_id, started_at, ended_at, trunk, direction, caller, called, outcome, status, record,
                            trace_segment, trace_offset, trace_length, pdd_ms, duration_ms, hangup_by, attempts,
                            record_length) VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..COLUMNS {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("?{}", row * COLUMNS + column + 1));
        }
        sql.push(')');
    }
    sql
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file cannot be opened or created (the operator's to fix).
    #[error("call records store {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    /// Written by a newer trunkline (the operator's: upgrade, or another file).
    #[error("call records store {path}: schema version {found} is newer than this trunkline knows ({known}); use a newer trunkline or another [records] path")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    /// A query or a write failed (disk full, a corrupt file).
    #[error("call records store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The trace segments beside the file cannot be written (disk full,
    /// permissions: the operator's to fix).
    #[error("call records traces {path}: {source}")]
    Traces { path: PathBuf, source: std::io::Error },
    /// A write through a store opened to read (a bug).
    #[error("call records store: opened read-only")]
    ReadOnly,
    /// The writer's thread could not start.
    #[error("call records store: cannot start the writer thread: {0}")]
    Thread(std::io::Error),
    /// PostgreSQL (`[store] postgres_url`) refused, failed or is out of
    /// reach (the server's or the network's: the writer tries again).
    #[error("call records in PostgreSQL: {}", postgres_reason(.0))]
    Postgres(#[from] postgres::Error),
    /// TLS to PostgreSQL cannot be set up (a bad `postgres_ca_file`: the operator's).
    #[error("call records in PostgreSQL: TLS: {0}")]
    Tls(String),
    /// The database was migrated by a newer trunkline (the operator's: upgrade every router).
    #[error("call records in PostgreSQL: schema version {found} is newer than this trunkline knows ({known}); upgrade this router")]
    TooNewServer { found: i64, known: i64 },
    /// A record from the engine does not read (a bug: the engine wrote it).
    #[error("call records store: a record from the engine does not read: {0}")]
    Unreadable(String),
    /// A stored record does not decode (a corrupt row).
    #[error("call records store: record {id} does not decode: {why}")]
    Corrupt { id: i64, why: String },
}

/// A PostgreSQL error with its cause (the driver's own text is often just "db error").
fn postgres_reason(e: &postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{}: {}", db.code().code(), db.message()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

/// One audit log entry as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    #[serde(default)]
    pub id: i64,
    /// RFC 3339, UTC.
    pub time: String,
    /// `load`, `reload`, `release`, `config-reload`...
    pub action: String,
    /// A plugin's name, or `config`.
    pub subject: String,
    /// `ok` or `refused`.
    pub outcome: String,
    /// `startup`, `watch`, `signal`, `admin`...
    pub source: String,
    /// The admin API token's name, when a token asked.
    pub by: Option<String>,
    pub detail: Option<String>,
}

impl From<&trunkline_plugin_host::audit::AuditEntry> for AuditRow {
    fn from(e: &trunkline_plugin_host::audit::AuditEntry) -> Self {
        let mut detail: Vec<String> = Vec::new();
        if let Some(v) = &e.version {
            detail.push(format!("version {v}"));
        }
        if let Some(p) = &e.previous {
            detail.push(format!("replacing {p}"));
        }
        if let Some(d) = &e.detail {
            detail.push(d.clone());
        }
        AuditRow {
            id: 0,
            time: e.time.clone(),
            action: e.action.clone(),
            subject: e.plugin.clone(),
            outcome: e.outcome.clone(),
            source: e.source.clone(),
            by: e.by.clone(),
            detail: (!detail.is_empty()).then(|| detail.join("; ")),
        }
    }
}

/// A call in a list (the record without targets, hooks and trace).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRow {
    pub id: i64,
    pub call_id: String,
    pub started_at: i64,
    pub trunk: String,
    pub direction: String,
    pub caller: String,
    pub called: String,
    pub outcome: String,
    pub status: u16,
    pub pdd_ms: Option<u64>,
    pub duration_ms: u64,
    pub hangup_by: String,
    /// Targets tried.
    pub attempts: u32,
}

/// An open store.
pub struct Store {
    conn: Connection,
    /// The SQLite file (its traces are beside it).
    path: PathBuf,
    /// Where traces are appended (the writer's store only).
    traces: Option<TraceLog>,
    /// The file's schema version (a reader does not migrate: an older
    /// file, not yet opened by a newer router, lacks the newer columns).
    schema: i64,
}

impl Store {
    /// An empty buffer to pack a trace into, reused from an earlier batch
    /// if there is one (`TraceLog::spare`).
    pub fn spare_buffer(&mut self) -> Vec<u8> {
        self.traces.as_mut().map(TraceLog::spare).unwrap_or_default()
    }

    /// Open `path` for writing, creating it (and its schema) if missing.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = open_connection(path)?;
        let traces = TraceLog::open(path).map_err(traces_failed(path))?;
        Ok(Store { conn, path: path.to_owned(), traces: Some(traces), schema: MIGRATIONS.len() as i64 })
    }

    /// Open `path` to read (the API, the CLI): never creates it.
    pub fn open_read(path: &Path) -> Result<Store, StoreError> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| StoreError::Open { path: path.to_owned(), source: e })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew { path: path.to_owned(), found, known: MIGRATIONS.len() as i64 });
        }
        Ok(Store { conn, path: path.to_owned(), traces: None, schema: found })
    }

    /// Store `records` (each with its packed trace) in one transaction;
    /// each gets its id.
    pub fn insert(&mut self, records: &mut [Stored]) -> Result<(), StoreError> {
        self.write(records, &[])
    }

    /// Store `records` and `audit` rows in one transaction (the writer's
    /// batch: a commit costs more than a row, so rows share one). The
    /// records' buffers are taken (written from where they are, not
    /// copied; the trace log keeps them for [`Store::spare_buffer`]).
    pub fn write(&mut self, records: &mut [Stored], audit: &[AuditRow]) -> Result<(), StoreError> {
        if records.is_empty() && audit.is_empty() {
            return Ok(());
        }
        let traces = self.traces.as_mut().ok_or(StoreError::ReadOnly)?;
        let tx = self.conn.transaction()?;
        // Rows go in by statements of ROWS rows: a statement's own work
        // (its cursors, the AUTOINCREMENT counter) is shared. The rows
        // that do not fill a statement go one by one: two statements, each
        // prepared once, not one for every length.
        let whole = records.len() / ROWS * ROWS;
        let (full, rest) = records.split_at_mut(whole);
        for chunk in full.chunks_mut(ROWS).chain(rest.chunks_mut(1)) {
            static ONE: LazyLock<String> = LazyLock::new(|| insert_sql(1));
            static MANY: LazyLock<String> = LazyLock::new(|| insert_sql(ROWS));
            let mut insert = tx.prepare_cached(if chunk.len() == ROWS { &MANY } else { &ONE })?;
            for (row, s) in chunk.iter_mut().enumerate() {
                // Each value is bound (SQLite copies it) before the
                // record's bytes, which the columns borrow, move to the
                // trace log. The row's number is the row's own; the record
                // and its trace go in the segment.
                let column = |n: usize| row * COLUMNS + n;
                {
                    let c = s.columns().map_err(StoreError::Unreadable)?;
                    const IN_SEGMENT: &[u8] = &[];
                    let record_length = s.record.len() as i64;
                    let leading = super::leading_columns!(c, dyn rusqlite::ToSql);
                    let rest: [&dyn rusqlite::ToSql; 2] = [&c.status, &IN_SEGMENT];
                    for (n, value) in leading.into_iter().chain(rest).enumerate() {
                        insert.raw_bind_parameter(column(n + 1), value)?;
                    }
                    let after: [&dyn rusqlite::ToSql; 5] =
                        [&c.pdd_ms, &c.duration_ms, &c.hangup_by, &c.attempts, &record_length];
                    for (n, value) in after.into_iter().enumerate() {
                        insert.raw_bind_parameter(column(n + 14), value)?;
                    }
                }
                let (record, trace) = (std::mem::take(&mut s.record), std::mem::take(&mut s.trace));
                let at = traces.append(record, trace).map_err(traces_failed(&self.path))?;
                for (n, value) in [at.segment, at.offset, at.length].into_iter().enumerate() {
                    insert.raw_bind_parameter(column(n + 11), value)?;
                }
            }
            insert.raw_execute()?;
            // One statement's rows have consecutive ids, the last one's known.
            let last = tx.last_insert_rowid();
            let n = chunk.len() as i64;
            for (i, s) in chunk.iter_mut().enumerate() {
                s.id = last - (n - 1 - i as i64);
            }
        }
        // The traces are written before the rows that point at them.
        traces.flush().map_err(traces_failed(&self.path))?;
        if !audit.is_empty() {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit (time, action, subject, outcome, source, by_token, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for a in audit {
                insert.execute(params![a.time, a.action, a.subject, a.outcome, a.source, a.by, a.detail])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Append audit entries.
    pub fn audit(&mut self, rows: &[AuditRow]) -> Result<(), StoreError> {
        self.write(&mut [], rows)
    }

    /// Delete records that started before `oldest_ms`, then all but the
    /// newest `max_count`; the audit log keeps ten times as many rows.
    /// Returns how many call records went.
    pub fn retain(&mut self, oldest_ms: i64, max_count: u64) -> Result<usize, StoreError> {
        let mut gone = self.conn.execute("DELETE FROM calls WHERE started_at < ?1", params![oldest_ms])?;
        gone += self.conn.execute(
            "DELETE FROM calls WHERE id <= (SELECT id FROM calls ORDER BY id DESC LIMIT 1 OFFSET ?1)",
            params![max_count as i64],
        )?;
        self.conn.execute(
            "DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?1)",
            params![max_count.saturating_mul(10).min(i64::MAX as u64) as i64],
        )?;
        let oldest: Option<i64> = self.conn.query_row("SELECT MIN(trace_segment) FROM calls", [], |r| r.get(0))?;
        if let Some(traces) = self.traces.as_mut() {
            traces.remove_before(oldest).map_err(traces_failed(&self.path))?;
        }
        Ok(gone)
    }

    /// Calls matching `filter`, newest first.
    pub fn list(&self, filter: &Filter) -> Result<Vec<CallRow>, StoreError> {
        let (clause, args) = filter_sql(filter);
        // A file of schema 1 to 4 not yet migrated (read before a newer
        // router opened it): what lists show beyond its columns is empty.
        let listed =
            if self.schema >= 5 { "pdd_ms, duration_ms, hangup_by, attempts" } else { "NULL, NULL, NULL, NULL" };
        let sql = format!(
            "SELECT id, call_id, started_at, trunk, direction, caller, called, outcome, status, {listed}
             FROM calls {clause} ORDER BY started_at DESC, id DESC LIMIT {}",
            filter.limit
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok(CallRow {
                id: r.get(0)?,
                call_id: r.get(1)?,
                started_at: r.get(2)?,
                trunk: r.get(3)?,
                direction: r.get(4)?,
                caller: r.get(5)?,
                called: r.get(6)?,
                outcome: r.get(7)?,
                status: r.get(8)?,
                pdd_ms: r.get::<_, Option<i64>>(9)?.map(|v| v.max(0) as u64),
                duration_ms: r.get::<_, Option<i64>>(10)?.unwrap_or(0).max(0) as u64,
                hangup_by: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
                attempts: r.get::<_, Option<i64>>(12)?.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One record: by its number, or by the caller's Call-ID (the newest).
    pub fn get(&self, key: &str) -> Result<Option<CallRecord>, StoreError> {
        type Row = (i64, rusqlite::types::Value, Option<Vec<u8>>, Option<TraceAt>, Option<i64>);
        let read = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Row> {
            let at = match (r.get(3)?, r.get(4)?, r.get(5)?) {
                (Some(segment), Some(offset), Some(length)) => Some(TraceAt { segment, offset, length }),
                _ => None,
            };
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, at, r.get(6)?))
        };
        // Columns a file of an earlier schema lacks are read as NULL.
        let columns = format!(
            "id, record, {}, {}, {}",
            if self.schema >= 3 { "trace" } else { "NULL" },
            if self.schema >= 4 { "trace_segment, trace_offset, trace_length" } else { "NULL, NULL, NULL" },
            if self.schema >= 7 { "record_length" } else { "NULL" },
        );
        let row: Option<Row> = match key.parse::<i64>() {
            Ok(id) => self.conn.query_row(&format!("SELECT {columns} FROM calls WHERE id = ?1"), params![id], read),
            Err(_) => self.conn.query_row(
                &format!("SELECT {columns} FROM calls WHERE call_id = ?1 ORDER BY id DESC LIMIT 1"),
                params![key],
                read,
            ),
        }
        .optional()?;
        let Some((id, stored, blob, at, record_length)) = row else { return Ok(None) };
        let corrupt = |why: String| StoreError::Corrupt { id, why };
        let segment =
            |at: TraceAt| traces::read(&self.path, at).map_err(|e| corrupt(format!("its SIP trace segment: {e}")));
        use rusqlite::types::Value;
        // Rows of schema 7 on: the record and its trace in a segment, read together.
        let (stored, packed) = match (record_length, at) {
            (Some(length), Some(at)) => {
                let (Some(offset), Some(both)) = (at.offset.checked_sub(length), at.length.checked_add(length)) else {
                    return Err(corrupt("a record length past its segment".into()));
                };
                let mut bytes = segment(TraceAt { segment: at.segment, offset, length: both })?;
                let trace = bytes.split_off(length.clamp(0, both) as usize);
                (Value::Blob(bytes), Some(trace))
            }
            // Schema 4 to 6: the trace in a segment; 3: in a column; 1 and 2: in the JSON.
            (None, Some(at)) => (stored, Some(segment(at)?)),
            (_, None) => (stored, blob),
        };
        let mut record = match stored {
            Value::Blob(bytes) => CallRecord::decode(&bytes),
            // Rows of schema 1 to 4.
            Value::Text(json) => serde_json::from_str(&json).map_err(|e| e.to_string()),
            other => Err(format!("a record of type {:?}", other.data_type())),
        }
        .map_err(corrupt)?;
        record.id = id;
        if let Some(packed) = packed {
            record.trace = crate::records::trace::unpack(&packed)
                .ok_or_else(|| corrupt("the SIP trace does not decode".into()))?;
        }
        Ok(Some(record))
    }

    /// The newest `limit` audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, time, action, subject, outcome, source, by_token, detail FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64], |r| {
            Ok(AuditRow {
                id: r.get(0)?,
                time: r.get(1)?,
                action: r.get(2)?,
                subject: r.get(3)?,
                outcome: r.get(4)?,
                source: r.get(5)?,
                by: r.get(6)?,
                detail: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The schema version of the open file.
    pub fn version(&self) -> Result<i64, StoreError> {
        Ok(self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }
}

/// The error of a failed read or write of the trace segments of the store at `db`.
/// (Lazy: nothing is made unless it failed.)
fn traces_failed(db: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Traces { path: dir_of(db), source }
}

/// The WHERE clause and its arguments in SQLite's placeholders.
fn filter_sql(filter: &Filter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let (clause, args) = filter.sql_where(|n| format!("?{n}"));
    let args = args
        .into_iter()
        .map(|a| match a {
            SqlArg::Text(t) => Value::Text(t),
            SqlArg::Int(i) => Value::Integer(i),
        })
        .collect();
    (clause, args)
}

/// A connection to write the store at `path` (created, and its schema
/// brought up to date, if need be).
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let open = |e| StoreError::Open { path: path.to_owned(), source: e };
    let mut conn = Connection::open(path).map_err(open)?;
    // WAL: readers do not block the writer; NORMAL: a crash loses no
    // committed transaction (a power cut may lose the last ones).
    conn.pragma_update(None, "journal_mode", "WAL").map_err(open)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(open)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open)?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Run the migrations `conn` has not had yet, in one transaction.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > known {
        return Err(StoreError::TooNew { path: path.to_owned(), found, known });
    }
    if found == known {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for step in &MIGRATIONS[found as usize..] {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", known)?;
    tx.commit()?;
    Ok(())
}

/// Open a store at `path` with the first `steps` migrations only (tests of
/// upgrades).
#[doc(hidden)]
pub fn create_at_version(path: &Path, steps: usize) -> Result<(), StoreError> {
    let mut conn = Connection::open(path).map_err(|e| StoreError::Open { path: path.to_owned(), source: e })?;
    let tx = conn.transaction()?;
    for step in &MIGRATIONS[..steps] {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", steps as i64)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::writer::{RecordSink, Retention};
    use crate::records::{Draft, RawTrace};
    use std::sync::atomic::Ordering;

    fn record(call_id: &str, started_at: i64, outcome: &str) -> CallRecord {
        CallRecord {
            call_id: call_id.into(),
            started_at,
            ended_at: started_at + 10,
            trunk: "t".into(),
            direction: "origination".into(),
            caller: "+15551230001".into(),
            called: "+15557654321".into(),
            outcome: outcome.into(),
            status: 200,
            ..CallRecord::default()
        }
    }

    #[test]
    fn a_batch_of_more_rows_than_a_statement_holds_keeps_each_record_with_its_own_trace() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("b.db")).unwrap();
        let t0 = std::time::Instant::now();
        let caps = crate::records::trace::TraceCaps { messages: 4, bytes: 4096 };
        let peer = trunkline_sip_core::Peer::udp("127.0.0.1:5060".parse().unwrap());
        // Two whole statements of ROWS rows, then rows one by one; twice, so
        // that the second batch's ids follow the first's.
        for batch in 0..2 {
            let n = 2 * ROWS + 5;
            let mut records: Vec<Stored> = (0..n)
                .map(|i| {
                    let mut r = record(&format!("c{batch}-{i}"), (batch * 100 + i) as i64, "answered");
                    r.pdd_ms = Some(i as u64);
                    let mut raw = crate::records::RawTrace::default();
                    raw.push(caps, t0, false, peer, format!("INVITE sip:{batch}-{i}@x SIP/2.0\r\n\r\n").as_bytes());
                    Stored::new(&r, raw.pack(t0))
                })
                .collect();
            store.write(&mut records, &[]).unwrap();
            for (i, s) in records.iter().enumerate() {
                assert_eq!(s.id, (batch * n + i + 1) as i64, "ids in the order of the batch");
                assert!(s.trace.is_empty() && s.record.is_empty(), "the buffers were taken, not copied");
                let back = store.get(&s.id.to_string()).unwrap().unwrap();
                assert_eq!((back.call_id.as_str(), back.pdd_ms), (format!("c{batch}-{i}").as_str(), Some(i as u64)));
                assert_eq!(back.trace.len(), 1);
                assert_eq!(back.trace[0].first_line(), format!("INVITE sip:{batch}-{i}@x SIP/2.0"));
            }
        }
        let stored: String = store
            .conn
            .query_row("SELECT typeof(record) || length(record) FROM calls WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, "blob0", "the record is in the segment, not the row");
    }

    #[test]
    fn a_file_of_an_earlier_schema_opens_and_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        create_at_version(&path, 1).unwrap();
        // A record as version 1 wrote it (no audit table yet).
        let conn = Connection::open(&path).unwrap();
        let mut old = record("old@x", 1_000, "answered");
        (old.pdd_ms, old.duration_ms, old.hangup_by) = (Some(7), 1_200, "callee".into());
        old.targets = vec![crate::records::TargetRecord::default(); 2];
        // Before schema 3 the trace was in the record's JSON.
        old.trace = vec![crate::records::TraceEntry { message: "INVITE sip:x SIP/2.0".into(), ..Default::default() }];
        conn.execute(
            "INSERT INTO calls (call_id, started_at, ended_at, trunk, direction, caller, called, outcome, status, record)
             VALUES ('old@x', 1000, 1010, 't', 'origination', '+15551230001', '+15557654321', 'answered', 200, ?1)",
            params![serde_json::to_string(&old).unwrap()],
        )
        .unwrap();
        drop(conn);
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(store.get("1").unwrap().map(|r| r.call_id), Some("old@x".into()));
        assert_eq!(store.get("old@x").unwrap().map(|r| r.id), Some(1));
        assert_eq!(store.get("1").unwrap().unwrap().trace[0].message, "INVITE sip:x SIP/2.0");
        // What lists show came out of the old row's JSON (schema 5).
        let listed = store.list(&Filter { limit: 10, ..Filter::default() }).unwrap();
        assert_eq!(
            (listed[0].pdd_ms, listed[0].duration_ms, listed[0].hangup_by.as_str(), listed[0].attempts),
            (Some(7), 1_200, "callee", 2)
        );
        // A record of today: its trace in its own column.
        let t0 = std::time::Instant::now();
        let mut raw = crate::records::RawTrace::default();
        let caps = crate::records::trace::TraceCaps { messages: 4, bytes: 4096 };
        raw.push(
            caps,
            t0,
            true,
            trunkline_sip_core::Peer::udp("127.0.0.1:5060".parse().unwrap()),
            b"BYE sip:y SIP/2.0\r\n\r\n",
        );
        // A record of schema 3: its trace in a column of the row.
        let packed = raw.pack(t0);
        store
            .conn
            .execute(
                "INSERT INTO calls (call_id, started_at, ended_at, trunk, direction, caller, called, outcome, status, record, trace)
                 VALUES ('three@x', 1500, 1510, 't', 'origination', '', '', 'answered', 200, ?1, ?2)",
                params![serde_json::to_string(&record("three@x", 1_500, "answered")).unwrap(), packed],
            )
            .unwrap();
        let three = store.get("three@x").unwrap().unwrap();
        assert!(three.trace[0].message.starts_with("BYE sip:y"));
        // A record of today: its trace in a segment file beside the store.
        let mut today = record("new@x", 2_000, "answered");
        (today.pdd_ms, today.hangup_by) = (Some(3), "caller".into());
        store.insert(&mut [Stored::new(&today, packed)]).unwrap();
        let new = store.get("new@x").unwrap().unwrap();
        assert_eq!((new.pdd_ms, new.hangup_by.as_str(), new.id), (Some(3), "caller", 3));
        let (stored, length): (String, i64) = store
            .conn
            .query_row("SELECT typeof(record), record_length FROM calls WHERE id = 3", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(stored, "blob", "today's records are stored in their compact form");
        assert!(length > 0, "in the segment, before the trace");
        let listed = store.list(&Filter { limit: 10, ..Filter::default() }).unwrap();
        assert_eq!((listed[0].id, listed[0].pdd_ms, listed[0].hangup_by.as_str()), (3, Some(3), "caller"));
        // A record of schema 5 and 6: compact in the row, its trace in a segment.
        let mut six = record("six@x", 2_100, "failed");
        six.status = 503;
        let mut body = Vec::new();
        six.encode_into(&mut body);
        store
            .conn
            .execute(
                "INSERT INTO calls (call_id, started_at, ended_at, trunk, direction, caller, called, outcome, status, record,
                                    trace_segment, trace_offset, trace_length)
                 SELECT 'six@x', 2100, 2110, trunk, direction, caller, called, 'failed', 503, ?1,
                        trace_segment, trace_offset, trace_length FROM calls WHERE id = 3",
                params![body],
            )
            .unwrap();
        let six = store.get("six@x").unwrap().unwrap();
        assert_eq!((six.status, six.outcome.as_str(), six.trace.len()), (503, "failed", 1));
        assert!(six.trace[0].message.starts_with("BYE sip:y"));
        assert_eq!((new.trace.len(), new.trace[0].direction.as_str()), (1, "out"));
        assert!(new.trace[0].message.starts_with("BYE sip:y"));
        // The API and the CLI read it through a read-only store.
        let reader = Store::open_read(&path).unwrap();
        assert_eq!(reader.get("new@x").unwrap().unwrap().trace, new.trace);
        store.audit(&[AuditRow { action: "load".into(), subject: "p".into(), ..AuditRow::default() }]).unwrap();
        assert_eq!(store.audit_log(10).unwrap().len(), 1);
    }

    #[test]
    fn a_reader_reads_a_file_of_an_earlier_schema_that_no_router_has_migrated_yet() {
        let dir = tempfile::tempdir().unwrap();
        for steps in [1, 4, 6] {
            let path = dir.path().join(format!("v{steps}.db"));
            create_at_version(&path, steps).unwrap();
            let conn = Connection::open(&path).unwrap();
            conn.execute(
                "INSERT INTO calls (call_id, started_at, ended_at, trunk, direction, caller, called, outcome, status, record)
                 VALUES ('old@x', 1000, 1010, 't', 'origination', '', '', 'answered', 200, ?1)",
                params![serde_json::to_string(&record("old@x", 1_000, "answered")).unwrap()],
            )
            .unwrap();
            drop(conn);
            // `trunkline calls` after an upgrade, before the router ran: no migration, no error.
            let reader = Store::open_read(&path).unwrap();
            assert_eq!(reader.get("old@x").unwrap().unwrap().call_id, "old@x", "schema {steps}");
            assert_eq!(reader.list(&Filter { limit: 5, ..Filter::default() }).unwrap().len(), 1, "schema {steps}");
        }
    }

    #[test]
    fn a_file_of_a_newer_schema_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        for e in [Store::open(&path).err().unwrap(), Store::open_read(&path).err().unwrap()] {
            assert!(matches!(e, StoreError::TooNew { found: 99, .. }), "{e}");
            assert!(e.to_string().contains("schema version 99 is newer"), "{e}");
        }
    }

    #[test]
    fn retention_deletes_by_age_then_by_count_and_lists_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.db")).unwrap();
        let mut rs: Vec<Stored> =
            (0..10).map(|i| Stored::new(&record(&format!("c{i}"), 1_000 * i, "answered"), vec![1])).collect();
        store.insert(&mut rs).unwrap();
        assert_eq!(rs.iter().map(|r| r.id).collect::<Vec<_>>(), (1..=10).collect::<Vec<i64>>());
        // Older than 3000 ms: c0, c1, c2; then keep the newest 5 of c3..c9.
        assert_eq!(store.retain(3_000, 5).unwrap(), 3 + 2);
        let left: Vec<String> = store.list(&Filter::default()).unwrap().into_iter().map(|r| r.call_id).collect();
        assert_eq!(left, ["c9", "c8", "c7", "c6", "c5"]);
    }

    #[test]
    fn retention_deletes_the_trace_segments_no_record_points_into() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let segments = || std::fs::read_dir(traces::dir_of(&path)).unwrap().count();
        // Three starts of the router: three segments, one record each.
        for i in 0..3 {
            let mut store = Store::open(&path).unwrap();
            store.insert(&mut [Stored::new(&record(&format!("s{i}"), 1_000 * (i + 1), "answered"), vec![1])]).unwrap();
        }
        assert_eq!(segments(), 3);
        let mut store = Store::open(&path).unwrap();
        // s0 ages out: its segment goes; s1's stays and still reads.
        assert_eq!(store.retain(1_500, 100).unwrap(), 1);
        assert_eq!(segments(), 2);
        assert!(store.get("s1").unwrap().is_some());
        // A segment gone under a record's feet: the record says so.
        std::fs::remove_file(traces::dir_of(&path).join("00000002.trace")).unwrap();
        let e = store.get("s1").unwrap_err().to_string();
        assert!(e.contains("its SIP trace segment") && e.contains("00000002.trace"), "{e}");
    }

    #[test]
    fn filters_select_in_sql_with_bound_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("f.db")).unwrap();
        let mut a = record("a", 1_000, "answered");
        let mut b = record("b", 2_000, "failed");
        b.trunk = "x'; DROP TABLE calls; --".into();
        b.called = "+4930123".into();
        a.targets = vec![Default::default(), Default::default()];
        store.insert(&mut [Stored::new(&a, vec![1]), Stored::new(&b, vec![1])]).unwrap();
        let ids = |f: Filter| store.list(&f).unwrap().into_iter().map(|r| r.call_id).collect::<Vec<_>>();
        let f = |trunk: Option<&str>, number: Option<&str>, since: Option<&str>, outcome: Option<&str>| {
            Filter::new(trunk.map(Into::into), number.map(Into::into), since, outcome.map(Into::into), None, 2_500)
                .unwrap()
        };
        assert_eq!(ids(f(None, None, None, None)), ["b", "a"]);
        assert_eq!(ids(f(Some("x'; DROP TABLE calls; --"), None, None, None)), ["b"]);
        assert_eq!(ids(f(None, Some("4930123"), None, None)), ["b"]);
        assert_eq!(ids(f(None, None, Some("1s"), None)), ["b"]);
        assert_eq!(ids(f(None, None, None, Some("answered"))), ["a"]);
        assert_eq!(store.list(&f(None, None, None, Some("answered"))).unwrap()[0].attempts, 2);
    }

    #[test]
    fn a_full_queue_drops_and_counts_records_and_loses_no_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let retention = Retention { max_age: std::time::Duration::from_secs(86_400), max_count: 1_000_000 };
        let sink = RecordSink::start(&path, 1, retention).unwrap();
        let now = std::time::Instant::now();
        let total = 5_000;
        let mut refused = 0;
        for i in 0..total {
            let record = record(&format!("q{i}"), 0, "answered");
            let sealed =
                Draft { call: i, record, started: now, ended: now, trace: RawTrace::default() }.seal(Vec::new());
            if let Err(buffers) = sink.submit(sealed) {
                assert!(buffers.record.is_empty() && buffers.record.capacity() > 0, "given back for reuse");
                refused += 1;
            }
        }
        sink.flush();
        let (written, dropped) =
            (sink.stats().written.load(Ordering::Relaxed), sink.stats().dropped.load(Ordering::Relaxed));
        assert_eq!(written + dropped, total, "every record is either stored or counted as dropped");
        assert_eq!(refused, dropped, "each dropped record's buffers came back");
        let mut back = Vec::new();
        sink.take_recycled(&mut back);
        assert_eq!(back.len() as u64, written.min(2048), "a stored record's buffers come back");
        assert!(dropped > 0, "a queue of 1 cannot take {total} records at once");
        sink.close();
        let stored = Store::open_read(&path).unwrap().list(&Filter { limit: 1000, ..Filter::default() }).unwrap().len();
        assert_eq!(stored as u64, written.min(1000));
    }
}
