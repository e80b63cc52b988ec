//! Plugin kv kept in the embedded store, so that counters and their
//! expiry survive a restart.
//!
//! Write-behind: plugins read and write the kv in memory
//! (`trunkline_plugin_host::services::KvStore`, never a disk wait on the
//! call path); every write is queued to this thread, which stores the
//! latest value of each key written in the last [`WINDOW`] in one
//! transaction (table `kv` of the store, schema 6). At start the live rows
//! are read back before the first call. What a crash (SIGKILL, power) can
//! lose: the writes of the last [`WINDOW`] and the transaction being
//! committed; a full queue drops writes from the disk copy (counted by
//! `KvStore::journal_dropped`), never from memory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};
use trunkline_plugin_host::services::{KvStore, KvWrite};

use super::store::{self, StoreError};

/// How long writes gather before they are stored together (the most a
/// crash can lose).
pub const WINDOW: Duration = Duration::from_millis(100);
/// Writes waiting for the disk at most.
const QUEUE: usize = 65_536;
/// How often expired rows are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// The thread that keeps the kv on disk.
pub struct KvKeeper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Open the store at `path`, read its live kv rows back into `kv`, and keep
/// `kv`'s writes from now on. Returns the keeper and how many keys came back.
pub fn start(path: &Path, kv: &KvStore) -> Result<(KvKeeper, usize), StoreError> {
    let conn = store::open_connection(path)?;
    let rows = load(&conn, now_ms())?;
    let restored = kv.restore(rows, now_ms());
    let (tx, rx) = sync_channel(QUEUE);
    kv.journal_to(tx);
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::Builder::new()
        .name("trunkline-kv".into())
        .spawn({
            let stop = stop.clone();
            move || keep(conn, rx, &stop)
        })
        .map_err(StoreError::Thread)?;
    Ok((KvKeeper { stop, thread: Some(thread) }, restored))
}

impl KvKeeper {
    /// Store what is queued and stop (the router exits).
    pub fn close(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The live rows of the `kv` table.
pub fn load(conn: &Connection, now_ms: u64) -> Result<Vec<KvWrite>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT namespace, key, value, expires_ms FROM kv WHERE expires_ms IS NULL OR expires_ms > ?1")?;
    let rows = stmt.query_map(params![now_ms as i64], |r| {
        Ok(KvWrite {
            namespace: r.get::<_, String>(0)?.into(),
            key: r.get(1)?,
            value: r.get(2)?,
            expires_ms: r.get::<_, Option<i64>>(3)?.map(|v| v.max(0) as u64),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Store `writes` (the latest of each key) in one transaction.
pub fn store(conn: &mut Connection, writes: impl IntoIterator<Item = KvWrite>) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO kv (namespace, key, value, expires_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms",
        )?;
        for w in writes {
            upsert.execute(params![
                &*w.namespace,
                w.key,
                w.value,
                w.expires_ms.map(|v| v.min(i64::MAX as u64) as i64)
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn keep(mut conn: Connection, rx: Receiver<KvWrite>, stop: &AtomicBool) {
    let mut pending: HashMap<(Arc<str>, String), KvWrite> = HashMap::new();
    let mut since: Option<Instant> = None;
    let mut last_purge = Instant::now();
    let mut failing = false;
    loop {
        match rx.recv_timeout(WINDOW) {
            Ok(w) => {
                since.get_or_insert_with(Instant::now);
                pending.insert((w.namespace.clone(), w.key.clone()), w);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => stop.store(true, Ordering::Relaxed),
        }
        let stopping = stop.load(Ordering::Relaxed);
        if stopping {
            pending.extend(rx.try_iter().map(|w| ((w.namespace.clone(), w.key.clone()), w)));
        }
        let due = since.is_some_and(|s| s.elapsed() >= WINDOW) || stopping;
        if due && !pending.is_empty() {
            match store(&mut conn, pending.drain().map(|(_, w)| w)) {
                Ok(()) if failing => {
                    tracing::info!("plugin kv: stored on disk again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) => {
                    if !failing {
                        tracing::error!("plugin kv: cannot store writes on disk ({e}); they stay in memory");
                    }
                    failing = true;
                }
            }
            since = None;
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            if let Err(e) = conn
                .execute("DELETE FROM kv WHERE expires_ms IS NOT NULL AND expires_ms <= ?1", params![now_ms() as i64])
            {
                tracing::warn!("plugin kv: purging expired keys: {e}");
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_kept_latest_first_and_read_back_while_live() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let kv = KvStore::new(100);
        let (mut keeper, restored) = start(&path, &kv).unwrap();
        assert_eq!(restored, 0);
        let ns = KvStore::namespace("call-frequency", "AC1");
        let now = now_ms();
        kv.incr(&ns, "calls:+1", 1, Some(3600), now).unwrap();
        kv.incr(&ns, "calls:+1", 1, Some(3600), now).unwrap();
        kv.set(&ns, "short", "x", Some(1), now - 5_000).unwrap(); // already expired
        keeper.close();

        let again = KvStore::new(100);
        let (mut keeper, restored) = start(&path, &again).unwrap();
        assert_eq!(restored, 1, "the live key only");
        assert_eq!(again.get(&ns, "calls:+1", now).as_deref(), Some("2"));
        assert_eq!(again.incr(&ns, "calls:+1", 1, Some(3600), now), Ok(3), "it keeps counting, and its expiry");
        keeper.close();
        let conn = store::open_connection(&path).unwrap();
        let rows = load(&conn, now).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].value.as_str(), rows[0].expires_ms), ("3", Some(now + 3_600_000)));
    }
}
