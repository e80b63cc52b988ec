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
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { max_live_instances: 1000, max_memory_bytes: 256 << 20 }
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
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .wasm_component_model(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Increments the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
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
