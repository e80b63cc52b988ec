//! Instances prepared ahead of time, and dropped, off the call path.
//!
//! Creating an instance (a store with its WASI context, instantiation from
//! the pool, the guest's `init`) costs tens of microseconds, and dropping
//! one several more. A call should pay neither, so a few never-used
//! instances are kept ready per plugin version and limits, and the
//! instances calls are done with are dropped later.
//!
//! Isolation is unchanged: an instance is prepared with no call's data
//! (empty config, no account, kv writes ignored), serves exactly one call,
//! and is then dropped, never reused.
//!
//! The thread that runs the hooks does that work itself when it is idle
//! ([`Warmer::work_here`]; the router's engine loop does): an instance made
//! on the core that will call it is in that core's caches, while one made
//! on another core must be fetched from there, which on this shared machine
//! at times doubled a hook call. The background thread takes what that
//! thread leaves undone for [`HANDOFF_TICKS`] epoch ticks (it is busy), or
//! at once when a plugin's set runs dry.
//!
//! A call never wakes the thread itself: it only queues work, and the epoch
//! ticker, which wakes every millisecond anyway, wakes the thread when work
//! is due. Waking a sleeping thread from the call path (a futex call and an
//! inter-processor interrupt, slow on a virtual machine) cost more than the
//! hook call it served.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;

use wasmtime::{Engine, Store};

use crate::bindings::exports::trunkline::policy::hooks::HookSet;
use crate::bindings::Policy;
use crate::limits::Limits;
use crate::plugin::Plugin;
use crate::state::{HostState, Scope, Services};

/// One instance of one plugin version, with its store.
pub(crate) struct Live {
    pub(crate) store: Store<HostState>,
    pub(crate) policy: Policy,
    /// What the guest's `init` answered.
    pub(crate) hooks: HookSet,
}

/// Why [`prepare`] failed.
pub(crate) struct PrepareError {
    pub(crate) error: wasmtime::Error,
    /// The limiter refused memory (the error is then out-of-memory).
    pub(crate) refused_memory: bool,
}

/// Create an instance of `plugin` under `limits` and run its `init`, with
/// no call assigned yet.
pub(crate) fn prepare(
    engine: &Engine,
    services: &Arc<Services>,
    plugin: &Plugin,
    limits: &Limits,
) -> Result<Live, PrepareError> {
    let mut store = new_store(engine, services, plugin, limits);
    let started = plugin
        .pre
        .instantiate(&mut store)
        .and_then(|policy| policy.trunkline_policy_hooks().call_init(&mut store).map(|hooks| (policy, hooks)));
    store.data_mut().flush_output();
    match started {
        Ok((policy, hooks)) => Ok(Live { store, policy, hooks }),
        Err(error) => Err(PrepareError { error, refused_memory: store.data().limiter.refused_memory }),
    }
}

/// A store for an instance of `plugin` under `limits` (memory limiter,
/// epoch deadline), with no call assigned yet.
pub(crate) fn new_store(
    engine: &Engine,
    services: &Arc<Services>,
    plugin: &Plugin,
    limits: &Limits,
) -> Store<HostState> {
    let scope = Scope::unassigned(plugin, services.clone());
    let mut store = Store::new(engine, HostState::new(scope, limits));
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(limits.hook_timeout_ms.max(1));
    // At the deadline: trap, unless the hook spent time waiting on a
    // shared kv store since, which does not count (its own budget bounds it).
    store.epoch_deadline_callback(|mut cx| match crate::host::kv::extend_deadline(cx.data_mut()) {
        0 => Err(wasmtime::Trap::Interrupt.into()),
        ticks => Ok(wasmtime::UpdateDeadline::Continue(ticks)),
    });
    store
}

/// Ready instances of one plugin version under one set of limits.
struct ReadySet {
    limits: Limits,
    ready: Vec<Live>,
    /// A refill is queued or running: do not queue another.
    refilling: bool,
}

impl ReadySet {
    /// Claim the refill of this set if it holds fewer than `below` and no
    /// refill is queued or running. True: the caller must queue it.
    fn claim_refill(&mut self, below: usize) -> bool {
        let claim = !self.refilling && self.ready.len() < below;
        self.refilling |= claim;
        claim
    }
}

/// A plugin version's ready instances, one set per distinct limits.
#[derive(Default)]
pub(crate) struct ReadyInstances {
    sets: Mutex<Vec<ReadySet>>,
}

impl ReadyInstances {
    fn lock(&self) -> MutexGuard<'_, Vec<ReadySet>> {
        self.sets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set<'a>(sets: &'a mut Vec<ReadySet>, limits: &Limits) -> &'a mut ReadySet {
        match sets.iter().position(|s| s.limits == *limits) {
            Some(i) => &mut sets[i],
            None => {
                sets.push(ReadySet { limits: limits.clone(), ready: Vec::new(), refilling: false });
                sets.last_mut().expect("just pushed")
            }
        }
    }

    /// The limits this version has had instances prepared under.
    pub(crate) fn limits(&self) -> Vec<Limits> {
        self.lock().iter().map(|s| s.limits.clone()).collect()
    }

    /// Instances ready under `limits`.
    pub(crate) fn count(&self, limits: &Limits) -> usize {
        self.lock().iter().find(|s| s.limits == *limits).map_or(0, |s| s.ready.len())
    }
}

/// Hands out prepared instances and runs the background thread that makes
/// and drops them.
pub(crate) struct Warmer {
    shared: Arc<Shared>,
    /// Instances kept ready per plugin version and limits (0: none).
    depth: usize,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    work: Mutex<Work>,
    wake: Condvar,
    counts: Counts,
}

/// Where the instances calls took were made.
#[derive(Default)]
struct Counts {
    idle: AtomicU64,
    background: AtomicU64,
    call_path: AtomicU64,
}

/// Where the plugin instances made so far were made (monitoring: many made
/// on the call path or in the background mean the hooks' thread is busy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstanceCounts {
    /// Prepared ahead by the hooks' thread while it was idle (the fast case).
    pub prepared_while_idle: u64,
    /// Prepared ahead by the background thread.
    pub prepared_in_background: u64,
    /// Made by a call that found none ready.
    pub made_on_call_path: u64,
}

#[derive(Default)]
struct Work {
    refill: Vec<(Weak<Plugin>, Limits)>,
    /// Ticks since `refill` became non-empty or the hooks' thread last did
    /// a piece of it.
    refill_ticks: u32,
    retired: Vec<Live>,
    /// Ticks since `retired` became non-empty or the hooks' thread last
    /// dropped some.
    retired_ticks: u32,
    /// The ticker asked the thread to run.
    kicked: bool,
    /// The thread is waiting on `wake`.
    idle: bool,
    stop: bool,
}

/// Retired instances are dropped in batches of this many, or after
/// [`RETIRE_AFTER_TICKS`] epoch ticks, whichever comes first: each time the
/// thread runs it evicts from the caches what calls are using.
const RETIRE_BATCH: usize = 16;
const RETIRE_AFTER_TICKS: u32 = 20;
/// Most instances waiting to be dropped; beyond this a call drops its own.
const RETIRE_MAX: usize = 64;
/// Epoch ticks (1 ms) queued work waits for the hooks' thread to do it
/// itself (see [`Warmer::work_here`]) before the background thread does.
const HANDOFF_TICKS: u32 = 2;
/// Retired instances [`Warmer::work_here`] drops at a time.
const DROP_HERE: usize = 8;

impl Warmer {
    pub(crate) fn start(engine: Engine, services: Arc<Services>, depth: usize) -> Self {
        let shared =
            Arc::new(Shared { work: Mutex::new(Work::default()), wake: Condvar::new(), counts: Counts::default() });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("plugin-warmer".into())
            .spawn(move || worker.run(&engine, &services, depth))
            .expect("spawning the plugin warmer thread");
        Warmer { shared, depth, thread: Some(thread) }
    }

    /// What the epoch ticker calls every tick: wakes the background thread
    /// if work is due (left undone by the hooks' thread, or a full batch of
    /// drops).
    pub(crate) fn kicker(&self) -> impl Fn() + Send + 'static {
        let shared = self.shared.clone();
        move || {
            let mut w = shared.work();
            if !w.retired.is_empty() {
                w.retired_ticks += 1;
            }
            if !w.refill.is_empty() {
                w.refill_ticks += 1;
            }
            let retire =
                w.retired.len() >= RETIRE_BATCH || (!w.retired.is_empty() && w.retired_ticks >= RETIRE_AFTER_TICKS);
            if w.refill_ticks >= HANDOFF_TICKS || retire {
                shared.kick(w);
            }
        }
    }

    fn work(&self) -> MutexGuard<'_, Work> {
        self.shared.work()
    }

    /// A never-used instance of `plugin` under `limits`, if one is ready.
    /// Asks for a refill when the set runs low.
    pub(crate) fn take(&self, plugin: &Arc<Plugin>, limits: &Limits) -> Option<Live> {
        if self.depth == 0 {
            return None;
        }
        let (live, refill, dry) = {
            let mut sets = plugin.ready.lock();
            let set = ReadyInstances::set(&mut sets, limits);
            let live = set.ready.pop();
            let refill = set.claim_refill(self.depth / 2 + 1);
            (live, refill, set.ready.is_empty())
        };
        if refill || dry {
            let mut w = self.work();
            if refill {
                w.refill.push((Arc::downgrade(plugin), limits.clone()));
            }
            // Ran dry: the next call would instantiate inline, so do not
            // wait for the tick (the one case a call wakes the thread).
            if dry && !w.refill.is_empty() {
                self.shared.kick(w);
            }
        }
        live
    }

    /// Ask for `plugin`'s set under `limits` to be filled before any call
    /// needs it (at startup, after a reload). Nothing if one is queued or
    /// the set is full.
    pub(crate) fn request(&self, plugin: &Arc<Plugin>, limits: &Limits) {
        if self.depth == 0 {
            return;
        }
        let queue = ReadyInstances::set(&mut plugin.ready.lock(), limits).claim_refill(self.depth);
        if queue {
            self.work().refill.push((Arc::downgrade(plugin), limits.clone()));
        }
    }

    /// Drop `live` on the background thread, or here if the thread is
    /// behind: instances waiting to be dropped still hold pool slots.
    pub(crate) fn retire(&self, live: Live) {
        let mut w = self.work();
        if w.retired.len() >= RETIRE_MAX {
            drop(w);
            drop(live);
            return;
        }
        w.retired.push(live);
    }

    /// A call found no instance ready and made one.
    pub(crate) fn count_call_path(&self) {
        self.shared.counts.call_path.fetch_add(1, Relaxed);
    }

    /// Where the instances made so far were made.
    pub(crate) fn counts(&self) -> InstanceCounts {
        let c = &self.shared.counts;
        InstanceCounts {
            prepared_while_idle: c.idle.load(Relaxed),
            prepared_in_background: c.background.load(Relaxed),
            made_on_call_path: c.call_path.load(Relaxed),
        }
    }

    /// Work is queued: instances to prepare or to drop.
    pub(crate) fn has_work(&self) -> bool {
        let w = self.work();
        !w.refill.is_empty() || !w.retired.is_empty()
    }

    /// Do one piece of the queued work on the calling thread, the one that
    /// runs the hooks, while it has nothing else to do: drop a few retired
    /// instances and prepare one instance. Instances prepared here are in
    /// this core's caches when a call takes them. False: nothing queued.
    pub(crate) fn work_here(&self, engine: &Engine, services: &Arc<Services>) -> bool {
        let (retired, item) = {
            let mut w = self.work();
            let n = w.retired.len().min(DROP_HERE);
            let retired: Vec<Live> = w.retired.drain(..n).collect();
            w.retired_ticks = 0;
            (retired, w.refill.pop())
        };
        // Drops first: the pool slots they free, in this core's caches, are
        // the ones the next instances of the same plugin take.
        let dropped = !retired.is_empty();
        drop(retired);
        let Some((weak, limits)) = item else { return dropped };
        let again = weak
            .upgrade()
            .is_some_and(|plugin| fill_one(engine, services, &plugin, &limits, self.depth, &self.shared.counts.idle));
        let mut w = self.work();
        if again {
            w.refill.push((weak, limits));
        }
        // This thread is keeping up: the background thread need not step in.
        w.refill_ticks = 0;
        true
    }

    /// The background thread is waiting and has nothing to do at the next
    /// tick (no refill asked for, fewer retired instances than a batch).
    pub(crate) fn is_idle(&self) -> bool {
        let w = self.work();
        w.idle && w.refill.is_empty() && w.retired.len() < RETIRE_BATCH
    }
}

impl Drop for Warmer {
    fn drop(&mut self) {
        self.work().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    /// The queued work (a panic elsewhere while holding it leaves it usable).
    fn work(&self) -> MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wake the thread if it is waiting (the caller saw work for it).
    fn kick(&self, mut w: MutexGuard<'_, Work>) {
        if w.idle {
            w.idle = false;
            w.kicked = true;
            drop(w);
            self.wake.notify_one();
        }
    }

    fn run(&self, engine: &Engine, services: &Arc<Services>, depth: usize) {
        loop {
            let (refill, retired) = {
                let mut w = self.work();
                while !w.stop && !w.kicked {
                    w.idle = true;
                    w = self.wake.wait(w).unwrap_or_else(|p| p.into_inner());
                }
                if w.stop {
                    return;
                }
                w.idle = false;
                w.kicked = false;
                w.retired_ticks = 0;
                w.refill_ticks = 0;
                (std::mem::take(&mut w.refill), std::mem::take(&mut w.retired))
            };
            drop(retired);
            for (plugin, limits) in refill {
                if let Some(plugin) = plugin.upgrade() {
                    while fill_one(engine, services, &plugin, &limits, depth, &self.counts.background) {}
                }
            }
        }
    }
}

/// Prepare one instance if `plugin`'s set for `limits` holds fewer than
/// `depth`. True: the set needs more. A failure ends the refill; the next
/// call then instantiates inline and meets (and reports) the failure itself.
/// `made` counts the instances prepared.
fn fill_one(
    engine: &Engine,
    services: &Arc<Services>,
    plugin: &Arc<Plugin>,
    limits: &Limits,
    depth: usize,
    made: &AtomicU64,
) -> bool {
    let needed = {
        let mut sets = plugin.ready.lock();
        let set = ReadyInstances::set(&mut sets, limits);
        set.refilling = set.ready.len() < depth;
        set.refilling
    };
    if !needed {
        return false;
    }
    let prepared = prepare(engine, services, plugin, limits);
    let mut sets = plugin.ready.lock();
    let set = ReadyInstances::set(&mut sets, limits);
    match prepared {
        Ok(live) => {
            made.fetch_add(1, Relaxed);
            set.ready.push(live);
            set.refilling = set.ready.len() < depth;
        }
        Err(e) => {
            tracing::debug!(plugin = %plugin.info.name, version = %plugin.info.version, "preparing an instance failed: {:#}", e.error);
            set.refilling = false;
        }
    }
    set.refilling
}
