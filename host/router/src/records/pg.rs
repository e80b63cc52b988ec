//! Call records and the audit log in PostgreSQL (`[store] postgres_url`),
//! so that the records of several routers are in one place.
//!
//! The tables are the embedded store's (`calls`, `audit`: the same columns,
//! PostgreSQL's types), so a query written for one works on the other; the
//! SIP trace is in the row's `trace` column (the embedded store keeps it in
//! segment files beside its file, which a database server has no use for).
//! The schema's version is in `trunkline_schema`; routers that start
//! together migrate one at a time (an advisory lock).
//!
//! rust-postgres (`postgres`, the blocking face of `tokio-postgres`): the
//! writer is a thread of its own, and the API reads on blocking threads,
//! so an async client would only add a hand-off. With `sslmode=require`
//! the connection is TLS, the server verified ([`super::pg_tls`]); other
//! modes connect in the clear. Every connection has a
//! connect timeout, a statement timeout and TCP keepalives
//! (`[store] postgres_timeout_ms`), so no read or write hangs on a server
//! that is slow or gone; a connection that failed is dropped and a new one
//! made on the next use.

use std::sync::Mutex;
use std::time::Duration;

use postgres::{Client, NoTls};

use super::query::{Filter, SqlArg};
use super::store::{AuditRow, CallRow, StoreError};
use super::{CallRecord, Stored};
use crate::config::PostgresSettings;

/// The schema, one step per version. Append only: never edit a step that
/// has shipped. Step 1 is the embedded store's schema 5 (records and the
/// audit log; plugin kv is not kept here).
pub const MIGRATIONS: &[&str] = &["CREATE TABLE calls (
        id BIGSERIAL PRIMARY KEY,
        call_id TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        ended_at BIGINT NOT NULL,
        trunk TEXT NOT NULL,
        direction TEXT NOT NULL,
        caller TEXT NOT NULL,
        called TEXT NOT NULL,
        outcome TEXT NOT NULL,
        status INTEGER NOT NULL,
        record BYTEA NOT NULL,
        trace BYTEA,
        trace_segment BIGINT,
        trace_offset BIGINT,
        trace_length BIGINT,
        pdd_ms BIGINT,
        duration_ms BIGINT,
        hangup_by TEXT,
        attempts BIGINT
    );
    CREATE INDEX calls_started_at ON calls(started_at);
    CREATE INDEX calls_call_id ON calls(call_id);
    CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        time TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        outcome TEXT NOT NULL,
        source TEXT NOT NULL,
        by_token TEXT,
        detail TEXT
    );"];

/// The advisory lock routers take to migrate one at a time ("trunkline" in ASCII).
const MIGRATION_LOCK: i64 = 0x7472_756e_6b6c_696e;

/// Connect to `settings` (and bring its schema up to date).
pub fn connect(settings: &PostgresSettings) -> Result<Client, StoreError> {
    let mut config: postgres::Config = settings.url.expose().parse().map_err(StoreError::Postgres)?;
    let ms = settings.timeout.as_millis();
    config
        .connect_timeout(settings.timeout)
        .tcp_user_timeout(settings.timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .options(&format!("-c statement_timeout={ms} -c lock_timeout={ms}"))
        .application_name("trunkline");
    let mut client = match config.get_ssl_mode() {
        // sslmode=require: TLS, the server's certificate verified.
        postgres::config::SslMode::Require => {
            let tls = crate::tls::client_config_for(settings.ca_pem.as_deref()).map_err(StoreError::Tls)?;
            config.connect(super::pg_tls::Rustls(tls))
        }
        _ => config.connect(NoTls),
    }
    .map_err(StoreError::Postgres)?;
    migrate(&mut client)?;
    Ok(client)
}

/// Run the steps the database has not had yet, in one transaction, under
/// the advisory lock (another router may be doing the same).
fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS trunkline_schema (version BIGINT NOT NULL)")?;
    let found: i64 = match tx.query_opt("SELECT version FROM trunkline_schema", &[])? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO trunkline_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    if found > known {
        return Err(StoreError::TooNewServer { found, known });
    }
    for step in &MIGRATIONS[found as usize..] {
        tx.batch_execute(step)?;
    }
    tx.execute("UPDATE trunkline_schema SET version = $1", &[&known])?;
    tx.commit()?;
    Ok(())
}

/// The records writer's side: one connection, made when first needed and
/// again after a failure.
pub struct PgWriter {
    settings: PostgresSettings,
    client: Option<Client>,
}

impl PgWriter {
    pub fn new(settings: PostgresSettings) -> PgWriter {
        PgWriter { settings, client: None }
    }

    /// Run `f` on the connection; a failure drops it (the next call reconnects).
    fn with<T>(&mut self, f: impl FnOnce(&mut Client) -> Result<T, StoreError>) -> Result<T, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect(&self.settings)?);
        }
        let client = self.client.as_mut().expect("connected above");
        let result = f(client);
        if result.is_err() {
            self.client = None;
        }
        result
    }
}

impl super::writer::Backend for PgWriter {
    fn write(&mut self, records: &mut [Stored], audit: &[AuditRow]) -> Result<(), StoreError> {
        if records.is_empty() && audit.is_empty() {
            return Ok(());
        }
        self.with(|client| {
            let mut tx = client.transaction()?;
            if !records.is_empty() {
                let insert = tx.prepare(
                    "INSERT INTO calls (call_id, started_at, ended_at, trunk, direction, caller, called, outcome, status,
                                        record, trace, pdd_ms, duration_ms, hangup_by, attempts)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
                )?;
                let mut ids = Vec::with_capacity(records.len());
                type Param<'a> = dyn postgres::types::ToSql + Sync + 'a;
                for s in records.iter() {
                    let c = s.columns().map_err(StoreError::Unreadable)?;
                    let status = i32::from(c.status);
                    let rest: [&Param<'_>; 7] =
                        [&status, &s.record, &s.trace, &c.pdd_ms, &c.duration_ms, &c.hangup_by, &c.attempts];
                    let params: Vec<&Param<'_>> = super::leading_columns!(c, Param<'_>).into_iter().chain(rest).collect();
                    let row = tx.query_one(&insert, &params)?;
                    ids.push(row.get::<_, i64>(0));
                }
                if !audit.is_empty() {
                    insert_audit(&mut tx, audit)?;
                }
                tx.commit()?;
                // Ids only once committed: a batch that failed is tried again whole.
                for (s, id) in records.iter_mut().zip(ids) {
                    s.id = id;
                }
                return Ok(());
            }
            insert_audit(&mut tx, audit)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn retain(&mut self, oldest_ms: i64, max_count: u64) -> Result<usize, StoreError> {
        self.with(|client| {
            let max = max_count.min(i64::MAX as u64) as i64;
            let mut gone = client.execute("DELETE FROM calls WHERE started_at < $1", &[&oldest_ms])?;
            gone += client.execute(
                "DELETE FROM calls WHERE id <= (SELECT id FROM calls ORDER BY id DESC LIMIT 1 OFFSET $1)",
                &[&max],
            )?;
            client.execute(
                "DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET $1)",
                &[&max.saturating_mul(10)],
            )?;
            Ok(gone as usize)
        })
    }

    fn retries(&self) -> bool {
        true
    }
}

fn insert_audit(tx: &mut postgres::Transaction<'_>, audit: &[AuditRow]) -> Result<(), StoreError> {
    let insert = tx.prepare(
        "INSERT INTO audit (time, action, subject, outcome, source, by_token, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )?;
    for a in audit {
        tx.execute(&insert, &[&a.time, &a.action, &a.subject, &a.outcome, &a.source, &a.by, &a.detail])?;
    }
    Ok(())
}

/// Readers (the admin API, `trunkline calls`): a few idle connections kept
/// between requests.
pub struct PgReader {
    settings: PostgresSettings,
    idle: Mutex<Vec<Client>>,
}

/// Idle connections kept for readers.
const IDLE_READERS: usize = 2;

impl PgReader {
    pub fn new(settings: PostgresSettings) -> PgReader {
        PgReader { settings, idle: Mutex::new(Vec::new()) }
    }

    /// The URL as shown (no password).
    pub fn shown_url(&self) -> String {
        self.settings.url.to_string()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut client = match idle {
            Some(c) if !c.is_closed() => c,
            _ => connect(&self.settings)?,
        };
        let result = f(&mut client);
        if result.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < IDLE_READERS {
                idle.push(client);
            }
        }
        result
    }

    /// Calls matching `filter`, newest first.
    pub fn list(&self, filter: &Filter) -> Result<Vec<CallRow>, StoreError> {
        let (clause, args) = filter_sql(filter);
        let sql = format!(
            "SELECT id, call_id, started_at, trunk, direction, caller, called, outcome, status,
                    pdd_ms, duration_ms, hangup_by, attempts
             FROM calls {clause} ORDER BY started_at DESC, id DESC LIMIT {}",
            filter.limit
        );
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
        self.with(|client| {
            let rows = client.query(&sql, &params)?;
            Ok(rows
                .iter()
                .map(|r| CallRow {
                    id: r.get(0),
                    call_id: r.get(1),
                    started_at: r.get(2),
                    trunk: r.get(3),
                    direction: r.get(4),
                    caller: r.get(5),
                    called: r.get(6),
                    outcome: r.get(7),
                    status: r.get::<_, i32>(8).clamp(0, 999) as u16,
                    pdd_ms: r.get::<_, Option<i64>>(9).map(|v| v.max(0) as u64),
                    duration_ms: r.get::<_, Option<i64>>(10).unwrap_or(0).max(0) as u64,
                    hangup_by: r.get::<_, Option<String>>(11).unwrap_or_default(),
                    attempts: r.get::<_, Option<i64>>(12).unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
                })
                .collect())
        })
    }

    /// One record: by its number, or by the caller's Call-ID (the newest).
    pub fn get(&self, key: &str) -> Result<Option<CallRecord>, StoreError> {
        let row = self.with(|client| {
            Ok(match key.parse::<i64>() {
                Ok(id) => client.query_opt("SELECT id, record, trace FROM calls WHERE id = $1", &[&id])?,
                Err(_) => client.query_opt(
                    "SELECT id, record, trace FROM calls WHERE call_id = $1 ORDER BY id DESC LIMIT 1",
                    &[&key],
                )?,
            })
        })?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.get(0);
        let mut record = CallRecord::decode(row.get::<_, &[u8]>(1)).map_err(|why| StoreError::Corrupt { id, why })?;
        record.id = id;
        if let Some(packed) = row.get::<_, Option<&[u8]>>(2) {
            record.trace = super::trace::unpack(packed)
                .ok_or_else(|| StoreError::Corrupt { id, why: "the SIP trace does not decode".into() })?;
        }
        Ok(Some(record))
    }

    /// The newest `limit` audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        self.with(|client| {
            let rows = client.query(
                "SELECT id, time, action, subject, outcome, source, by_token, detail FROM audit ORDER BY id DESC LIMIT $1",
                &[&(limit.min(i64::MAX as usize) as i64)],
            )?;
            Ok(rows
                .iter()
                .map(|r| AuditRow {
                    id: r.get(0),
                    time: r.get(1),
                    action: r.get(2),
                    subject: r.get(3),
                    outcome: r.get(4),
                    source: r.get(5),
                    by: r.get(6),
                    detail: r.get(7),
                })
                .collect())
        })
    }
}

/// A bound argument of a filter.
type Arg = Box<dyn postgres::types::ToSql + Sync>;

/// The WHERE clause and its arguments in PostgreSQL's placeholders.
fn filter_sql(filter: &Filter) -> (String, Vec<Arg>) {
    let (clause, args) = filter.sql_where(|n| format!("${n}"));
    let args = args
        .into_iter()
        .map(|a| -> Arg {
            match a {
                SqlArg::Text(t) => Box::new(t),
                SqlArg::Int(i) => Box::new(i),
            }
        })
        .collect();
    (clause, args)
}
