//! The store's writer: a thread of its own behind a bounded queue, so that
//! the engine never waits on the disk. A full queue drops the record and
//! counts it (`trunkline_records_dropped_total`), never a call. Retention
//! (`[records] max_age_days`, `max_count`) runs here too, once a minute.
//! The thread runs at the lowest priority: when the machine is short of
//! CPU, records wait (or are dropped), calls do not.
//!
//! The store behind it is a [`Backend`]: the embedded file, or PostgreSQL.
//! A file that fails drops the batch (a full disk will not heal in a
//! second); a server that fails keeps it, gathers what follows up to
//! `[records] queue` more (the excess is dropped and counted) and tries
//! again every second until it answers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::store::{AuditRow, Store, StoreError};
use super::{Recycled, Sealed, Stored};

/// Records stored per transaction at most.
const BATCH: usize = 256;
/// How long the writer gathers records into one transaction after the
/// first: a commit (write-ahead log frames, locks, system calls) costs
/// several rows, so under load rows share it; and while it gathers the
/// writer sleeps apart from the queue, so the engine's sends wake no
/// thread (a wake-up per call cost the engine a system call and the
/// machine two context switches). A flush or stop ends the wait; records
/// already linger 2 s after their call, a little more delays nobody.
const GATHER: Duration = Duration::from_millis(250);
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// How long the writer waits between attempts on a server that failed.
const RETRY: Duration = Duration::from_secs(1);

/// Where the writer stores records.
pub trait Backend: Send + 'static {
    /// Store `records` (each with its packed trace) and `audit` rows in one
    /// transaction; each record gets its id. The buffers may be taken.
    fn write(&mut self, records: &mut [Stored], audit: &[AuditRow]) -> Result<(), StoreError>;
    /// Delete records older than `oldest_ms`, then all but the newest `max_count`.
    fn retain(&mut self, oldest_ms: i64, max_count: u64) -> Result<usize, StoreError>;
    /// A failed write is kept and tried again (a server that may come back),
    /// not dropped.
    fn retries(&self) -> bool;
    /// An empty buffer to write a record or pack a trace into (one the
    /// backend reuses, or new).
    fn spare_buffer(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

impl Backend for Store {
    fn write(&mut self, records: &mut [Stored], audit: &[AuditRow]) -> Result<(), StoreError> {
        Store::write(self, records, audit)
    }

    fn retain(&mut self, oldest_ms: i64, max_count: u64) -> Result<usize, StoreError> {
        Store::retain(self, oldest_ms, max_count)
    }

    fn retries(&self) -> bool {
        false
    }

    fn spare_buffer(&mut self) -> Vec<u8> {
        Store::spare_buffer(self)
    }
}

/// How long records are kept (`[records]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Duration,
    pub max_count: u64,
}

enum Item {
    Call(Sealed),
    Audit(AuditRow),
    /// Reply once everything queued before is stored (tests, shutdown).
    Flush(std::sync::mpsc::Sender<()>),
    Stop,
}

/// Counters of the writer (for `/metrics`).
#[derive(Debug, Default)]
pub struct WriterStats {
    pub written: AtomicU64,
    /// Records dropped: the queue was full, or the store failed.
    pub dropped: AtomicU64,
    /// Failed store transactions.
    pub errors: AtomicU64,
    /// Records held by the writer for a server that failed, waiting to be tried again.
    pub held: AtomicU64,
    /// The last write failed (the server is down, or refuses).
    pub failing: std::sync::atomic::AtomicBool,
}

/// Buffers of stored records on their way back to the engine
/// ([`RecordSink::take_recycled`]), bounded.
#[derive(Debug, Default)]
struct Returned {
    /// How many wait (read without the lock by the engine's loop).
    waiting: AtomicUsize,
    list: Mutex<Vec<Recycled>>,
}

impl Returned {
    /// More than the engine keeps ([`crate::engine::Engine::recycle`]'s pool): the rest is freed.
    const MAX: usize = 2048;

    /// Give back what `from` holds (emptying it), up to the bound; the rest is freed.
    fn give(&self, from: &mut Vec<Recycled>) {
        if from.is_empty() {
            return;
        }
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        let room = Self::MAX.saturating_sub(list.len());
        list.extend(from.drain(..).take(room));
        self.waiting.store(list.len(), Ordering::Release);
    }
}

/// The engine's side of the writer.
#[derive(Clone)]
pub struct RecordSink {
    tx: SyncSender<Item>,
    stats: Arc<WriterStats>,
    returned: Arc<Returned>,
    path: PathBuf,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl RecordSink {
    /// Open (or create) the store at `path` and start its writer.
    pub fn start(path: &Path, queue: usize, retention: Retention) -> Result<RecordSink, StoreError> {
        RecordSink::start_on(Box::new(Store::open(path)?), path, queue, retention)
    }

    /// Start a writer to `backend`; `path` is the embedded store's file
    /// (the plugins' kv stays there whichever backend holds the records).
    pub fn start_on(
        backend: Box<dyn Backend>,
        path: &Path,
        queue: usize,
        retention: Retention,
    ) -> Result<RecordSink, StoreError> {
        let queue = queue.max(1);
        let (tx, rx) = sync_channel(queue);
        let stats = Arc::new(WriterStats::default());
        let returned = Arc::new(Returned::default());
        let thread = std::thread::Builder::new()
            .name("trunkline-records".into())
            .spawn({
                let (stats, returned) = (stats.clone(), returned.clone());
                move || write_loop(backend, rx, (&stats, &returned), retention, queue.max(BATCH))
            })
            .map_err(StoreError::Thread)?;
        Ok(RecordSink { tx, stats, returned, path: path.to_owned(), thread: Arc::new(Mutex::new(Some(thread))) })
    }

    /// The writer's counters, shared (for the admin API).
    pub fn shared_stats(&self) -> Arc<WriterStats> {
        self.stats.clone()
    }

    /// Queue a finished call's record; never waits. A full queue drops
    /// it (counted) and gives its buffers back here, for the engine.
    pub fn submit(&self, sealed: Sealed) -> Result<(), Recycled> {
        let Err(refused) = self.tx.try_send(Item::Call(sealed)) else { return Ok(()) };
        if self.stats.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!("call records queue full: records dropped (counted in trunkline_records_dropped_total)");
        }
        match refused {
            TrySendError::Full(Item::Call(s)) | TrySendError::Disconnected(Item::Call(s)) => Err(s.recycle()),
            _ => Ok(()),
        }
    }

    /// Move the buffers of stored records into `into` (for
    /// [`crate::engine::Engine::recycle`]); a load, and no lock, when there
    /// are none. `into` should be empty: the two vectors trade places.
    pub fn take_recycled(&self, into: &mut Vec<Recycled>) {
        if self.returned.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut list = self.returned.list.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *list, into);
        self.returned.waiting.store(0, Ordering::Release);
    }

    /// Queue an audit entry (as a record: full means dropped and counted).
    pub fn audit(&self, row: AuditRow) {
        if self.tx.try_send(Item::Audit(row)).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Wait until everything queued so far is stored.
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.tx.send(Item::Flush(done)).is_ok() {
            self.wake();
            let _ = wait.recv();
        }
    }

    /// Store what is queued and stop the writer (the router exits).
    pub fn close(&self) {
        let _ = self.tx.send(Item::Stop);
        self.wake();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }

    /// End the writer's gathering sleep now (a flush or stop waits).
    fn wake(&self) {
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            t.thread().unpark();
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `hold`: records the writer keeps for a server that failed.
fn write_loop(
    mut store: Box<dyn Backend>,
    rx: Receiver<Item>,
    (stats, returned): (&WriterStats, &Returned),
    retention: Retention,
    hold: usize,
) {
    lowest_priority();
    let mut last_retention = Instant::now() - RETENTION_EVERY;
    let mut failing = false;
    // What is to be stored; after a failed write of a server, what it still holds.
    let mut batch = Batch::default();
    loop {
        if !failing && last_retention.elapsed() >= RETENTION_EVERY {
            last_retention = Instant::now();
            let oldest = unix_ms(SystemTime::now()) - retention.max_age.as_millis().min(i64::MAX as u128) as i64;
            match store.retain(oldest, retention.max_count) {
                Ok(0) => {}
                Ok(n) => tracing::info!("call records retention: {n} records deleted"),
                Err(e) => tracing::warn!("call records retention: {e}"),
            }
        }
        if batch.is_empty() {
            match rx.recv_timeout(RETENTION_EVERY) {
                Ok(item) => batch.take(item, hold, stats, &mut *store),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        // Gather: drain what is queued, then sleep (parked, not blocked on
        // the queue, so that the engine's sends wake nobody) until the
        // batch is full, the time is up, or a flush or stop unparks us.
        // While a server is failing, wait out the retry delay whatever the
        // batch holds.
        let until = Instant::now() + if failing { RETRY } else { GATHER };
        'gather: while !batch.done(failing) {
            loop {
                match rx.try_recv() {
                    Ok(item) => batch.take(item, hold, stats, &mut *store),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        batch.stop = true;
                        break 'gather;
                    }
                }
                if batch.done(failing) {
                    break 'gather;
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            returned.give(&mut batch.recycled);
            std::thread::park_timeout(left);
        }
        returned.give(&mut batch.recycled);
        match store.write(&mut batch.calls, &batch.audits) {
            Ok(()) => {
                stats.written.fetch_add(batch.calls.len() as u64, Ordering::Relaxed);
                if failing {
                    tracing::info!("call records store: writing again ({} held records stored)", batch.calls.len());
                    failing = false;
                }
                batch.calls.clear();
                batch.audits.clear();
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                let keep = store.retries() && !batch.stop;
                if !failing {
                    if keep {
                        tracing::error!("call records store: {e}: records held in memory (at most {hold}) and tried again every second");
                    } else {
                        tracing::error!("call records store: {e}: records dropped until it works again");
                    }
                    failing = true;
                }
                if !keep {
                    stats.dropped.fetch_add(batch.calls.len() as u64, Ordering::Relaxed);
                    batch.calls.clear();
                    batch.audits.clear();
                }
            }
        }
        stats.failing.store(failing, Ordering::Relaxed);
        stats.held.store(batch.calls.len() as u64, Ordering::Relaxed);
        for r in batch.replies.drain(..) {
            let _ = r.send(());
        }
        if batch.stop {
            return;
        }
    }
}

/// What one transaction stores, and who waits for it.
#[derive(Default)]
struct Batch {
    calls: Vec<Stored>,
    /// Buffers of the records taken, for the engine (`Returned`).
    recycled: Vec<Recycled>,
    audits: Vec<AuditRow>,
    replies: Vec<std::sync::mpsc::Sender<()>>,
    /// The writer stops after this batch (asked to, or the queue is gone).
    stop: bool,
    /// An unreadable record was logged (once).
    said_unreadable: bool,
}

impl Batch {
    /// Add `item`; beyond `hold` records (a server failing), it is dropped and counted.
    fn take(&mut self, item: Item, hold: usize, stats: &WriterStats, store: &mut dyn Backend) {
        match item {
            Item::Call(s) if self.calls.len() + self.audits.len() >= hold => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                self.recycled.push(s.recycle());
            }
            Item::Audit(_) if self.calls.len() + self.audits.len() >= hold => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Item::Call(s) => {
                let (record, trace) = (store.spare_buffer(), store.spare_buffer());
                let (stored, recycled) = s.store_into(Instant::now(), SystemTime::now(), record, trace);
                self.recycled.push(recycled);
                // Its columns are read again by the store: checked here, so
                // that a bad one costs itself only, not its batch.
                match stored.columns().map(|_| ()) {
                    Ok(()) => self.calls.push(stored),
                    Err(e) => {
                        // The engine wrote these bytes: a bug, logged once.
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        if !std::mem::replace(&mut self.said_unreadable, true) {
                            tracing::error!(
                                "call records writer: a record from the engine does not read ({e}): dropped"
                            );
                        }
                    }
                }
            }
            Item::Audit(a) => self.audits.push(a),
            Item::Flush(reply) => self.replies.push(reply),
            Item::Stop => self.stop = true,
        }
    }

    fn is_empty(&self) -> bool {
        self.calls.is_empty() && self.audits.is_empty() && self.replies.is_empty() && !self.stop
    }

    /// Store now: full (unless a server is failing: then only its retry
    /// delay, a flush or a stop end the wait), or someone waits.
    fn done(&self, failing: bool) -> bool {
        (!failing && self.calls.len() >= BATCH) || self.stop || !self.replies.is_empty()
    }
}

/// Give this thread the lowest CPU priority (nice 19): on a busy machine
/// the engine's threads win, the queue fills and records are dropped
/// (counted), never calls slowed.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on this thread's own id; no memory is shared.
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
        if r != 0 {
            tracing::debug!("call records writer: nice 19 refused: {}", std::io::Error::last_os_error());
        }
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
