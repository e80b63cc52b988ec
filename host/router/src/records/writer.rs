//! The store's writer: a thread of its own behind a bounded queue, so that
//! the engine never waits on the disk. A full queue drops the record and
//! counts it (`trunkline_records_dropped_total`), never a call. Retention
//! (`[records] max_age_days`, `max_count`) runs here too, once a minute.
//! The thread runs at the lowest priority: when the machine is short of
//! CPU, records wait (or are dropped), calls do not.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::store::{AuditRow, Store, StoreError};
use super::Draft;

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

/// How long records are kept (`[records]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Duration,
    pub max_count: u64,
}

enum Item {
    Call(Box<Draft>),
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
}

/// The engine's side of the writer.
#[derive(Clone)]
pub struct RecordSink {
    tx: SyncSender<Item>,
    stats: Arc<WriterStats>,
    path: PathBuf,
    thread: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl RecordSink {
    /// Open (or create) the store at `path` and start its writer.
    pub fn start(path: &Path, queue: usize, retention: Retention) -> Result<RecordSink, StoreError> {
        let store = Store::open(path)?;
        let (tx, rx) = sync_channel(queue.max(1));
        let stats = Arc::new(WriterStats::default());
        let thread = std::thread::Builder::new()
            .name("trunkline-records".into())
            .spawn({
                let stats = stats.clone();
                move || write_loop(store, rx, &stats, retention)
            })
            .map_err(StoreError::Thread)?;
        Ok(RecordSink { tx, stats, path: path.to_owned(), thread: Arc::new(std::sync::Mutex::new(Some(thread))) })
    }

    /// Queue a finished call's record; never waits (full: dropped and counted).
    pub fn submit(&self, draft: Draft) {
        match self.tx.try_send(Item::Call(Box::new(draft))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                if self.stats.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        "call records queue full: records dropped (counted in trunkline_records_dropped_total)"
                    );
                }
            }
        }
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

fn write_loop(mut store: Store, rx: Receiver<Item>, stats: &WriterStats, retention: Retention) {
    lowest_priority();
    let mut last_retention = Instant::now() - RETENTION_EVERY;
    let mut failing = false;
    loop {
        if last_retention.elapsed() >= RETENTION_EVERY {
            last_retention = Instant::now();
            let oldest = unix_ms(SystemTime::now()) - retention.max_age.as_millis().min(i64::MAX as u128) as i64;
            match store.retain(oldest, retention.max_count) {
                Ok(0) => {}
                Ok(n) => tracing::info!("call records retention: {n} records deleted"),
                Err(e) => tracing::warn!("call records retention: {e}"),
            }
        }
        let first = match rx.recv_timeout(RETENTION_EVERY) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = Batch::default();
        batch.take(first);
        let until = Instant::now() + GATHER;
        // Gather: drain what is queued, then sleep (parked, not blocked on
        // the queue, so that the engine's sends wake nobody) until the
        // batch is full, the time is up, or a flush or stop unparks us.
        'gather: while !batch.done() {
            loop {
                match rx.try_recv() {
                    Ok(item) => batch.take(item),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        batch.stop = true;
                        break 'gather;
                    }
                }
                if batch.done() {
                    break 'gather;
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::park_timeout(left);
        }
        let Batch { mut calls, audits, replies, stop } = batch;
        let result = store.write(&mut calls, &audits);
        match result {
            Ok(()) => {
                stats.written.fetch_add(calls.len() as u64, Ordering::Relaxed);
                if failing {
                    tracing::info!("call records store: writing again");
                    failing = false;
                }
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                stats.dropped.fetch_add(calls.len() as u64, Ordering::Relaxed);
                if !failing {
                    tracing::error!("call records store: {e}: records dropped until it works again");
                    failing = true;
                }
            }
        }
        for r in replies {
            let _ = r.send(());
        }
        if stop {
            return;
        }
    }
}

/// What one transaction stores, and who waits for it.
#[derive(Default)]
struct Batch {
    calls: Vec<(super::CallRecord, Vec<u8>)>,
    audits: Vec<AuditRow>,
    replies: Vec<std::sync::mpsc::Sender<()>>,
    /// The writer stops after this batch (asked to, or the queue is gone).
    stop: bool,
}

impl Batch {
    fn take(&mut self, item: Item) {
        match item {
            Item::Call(d) => self.calls.push(d.finish(Instant::now(), SystemTime::now())),
            Item::Audit(a) => self.audits.push(a),
            Item::Flush(reply) => self.replies.push(reply),
            Item::Stop => self.stop = true,
        }
    }

    /// Store now: full, or someone waits.
    fn done(&self) -> bool {
        self.calls.len() >= BATCH || self.stop || !self.replies.is_empty()
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
