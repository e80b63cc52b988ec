//! Per-plugin limits and failure policy, and the resource limiter that
//! enforces memory/table/instance limits inside one store.

use serde::Deserialize;

/// What a call gets when its plugin fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    /// Continue as if the plugin had returned its hook's default.
    #[default]
    FailOpen,
    /// Reject the call with `fail_closed_code` (500 or 503).
    FailClosed,
}

/// Limits of one plugin in one chain, set by the operator.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// CPU time one hook (or instantiation) may take.
    pub hook_timeout_ms: u64,
    /// Linear memory an instance may grow to.
    pub memory_bytes: usize,
    /// Elements a table may grow to.
    pub table_elements: usize,
    /// Instances, tables and memories a component may create.
    pub max_instances: usize,
    pub max_tables: usize,
    pub max_memories: usize,
    pub failure_mode: FailureMode,
    /// Status used by `fail-closed` (500 or 503).
    pub fail_closed_code: u16,
    /// Consecutive failures after which the plugin is quarantined.
    pub quarantine_after: u32,
    /// How long a quarantine lasts before one call may probe the plugin again.
    pub quarantine_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            hook_timeout_ms: 10,
            memory_bytes: 32 << 20,
            table_elements: 20_000,
            max_instances: 32,
            max_tables: 16,
            max_memories: 4,
            failure_mode: FailureMode::FailOpen,
            fail_closed_code: 503,
            quarantine_after: 5,
            quarantine_secs: 60,
        }
    }
}

/// Enforces [`Limits`] in a store, and remembers whether it refused memory
/// so that the resulting trap is reported as out-of-memory.
pub(crate) struct Limiter {
    pub(crate) memory_bytes: usize,
    table_elements: usize,
    max_instances: usize,
    max_tables: usize,
    max_memories: usize,
    pub(crate) refused_memory: bool,
}

impl Limiter {
    pub(crate) fn new(l: &Limits) -> Self {
        Limiter {
            memory_bytes: l.memory_bytes,
            table_elements: l.table_elements,
            max_instances: l.max_instances,
            max_tables: l.max_tables,
            max_memories: l.max_memories,
            refused_memory: false,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes;
        self.refused_memory |= !ok;
        Ok(ok)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        self.max_tables
    }

    fn memories(&self) -> usize {
        self.max_memories
    }
}
