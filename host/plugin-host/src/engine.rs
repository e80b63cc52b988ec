//! The one wasmtime `Engine`: epoch interruption for CPU deadlines, the
//! pooling allocator for cheap per-call instances, and the epoch ticker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// One epoch tick. Hook deadlines are whole ticks, so they are precise to about this.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Sizing of the instance pool.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Plugin instances alive at once (calls in their routing phase × plugins per chain).
    pub max_live_instances: u32,
    /// Largest memory any plugin may be configured with.
    pub max_memory_bytes: usize,
    /// Linear memory kept mapped and zeroed with memset when a pooled slot
    /// is reused, instead of being returned to the kernel: no page faults
    /// and no `madvise` per call for the first this-many bytes.
    pub keep_resident_bytes: usize,
    /// Freed slots whose memory is returned to the kernel in one batch
    /// (fewer syscalls and TLB shootdowns).
    pub decommit_batch: usize,
    /// Initialise memories from copy-on-write images (fast to map, but the
    /// first writes fault) instead of copying the data segments. Off: a
    /// pool slot that served another plugin must have its image mapped
    /// again, and the pages a hook touches that its `init` did not then
    /// fault on the call path (bench/README.md, calls alternating between
    /// plugins); copying happens while the instance is prepared, off it.
    pub memory_init_cow: bool,
    /// Reset kept-resident memory by scanning for the pages a call actually
    /// dirtied (Linux `PAGEMAP_SCAN`, kernel 6.7+; ignored elsewhere).
    pub pagemap_scan: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_live_instances: 1000,
            max_memory_bytes: 256 << 20,
            // Measured on this 2-core machine (bench/README.md): keeping 2 MiB
            // resident and resetting only the pages a call dirtied (PAGEMAP_SCAN)
            // takes a 4-plugin chain from ~340 to ~185 us; keeping memory
            // resident without the scan or batching decommits did not help.
            // Copying data segments instead of copy-on-write images: no
            // change for one plugin called again and again, but with calls
            // alternating between two plugins `e164-guard`'s p99 fell from
            // 26-42 us to 13-19 us (session 6).
            keep_resident_bytes: 2 << 20,
            decommit_batch: 1,
            memory_init_cow: false,
            pagemap_scan: true,
        }
    }
}

pub(crate) fn build_engine(opts: &EngineOptions) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    let n = opts.max_live_instances;
    pool.total_component_instances(n);
    // A Rust wasip2 component has a handful of core instances (main module, shims).
    pool.total_core_instances(n.saturating_mul(8));
    pool.total_memories(n.saturating_mul(2));
    pool.total_tables(n.saturating_mul(4));
    pool.max_memory_size(opts.max_memory_bytes);
    pool.max_memories_per_module(2);
    pool.max_tables_per_module(4);
    pool.table_elements(20_000);
    pool.total_stacks(0);
    pool.linear_memory_keep_resident(opts.keep_resident_bytes);
    pool.table_keep_resident(opts.keep_resident_bytes.min(64 << 10));
    pool.decommit_batch_size(opts.decommit_batch.max(1));
    pool.pagemap_scan(if opts.pagemap_scan { wasmtime::Enabled::Auto } else { wasmtime::Enabled::No });
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .wasm_component_model(true)
        .memory_init_cow(opts.memory_init_cow)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // For `perf`: name the plugins' JIT code (docs/plugin-runtime.md).
    if std::env::var_os("TL_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config)
}

/// Increments the engine's epoch every [`EPOCH_TICK`], then runs `on_tick`,
/// until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine, on_tick: impl Fn() + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                    on_tick();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker { stop, thread: Some(thread) }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
