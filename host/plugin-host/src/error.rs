//! Typed errors: loading a plugin, and a plugin failing during a hook.

use std::path::PathBuf;

/// Why a plugin file could not be loaded or reloaded. The previous version
/// (if any) keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read. Check the path and its permissions.
    #[error("cannot read plugin file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file name does not give a plugin name (`NAME.wasm`, NAME of
    /// letters, digits, `-` and `_`).
    #[error("plugin file {0} must be named NAME.wasm with NAME of [a-z0-9_-]")]
    BadName(PathBuf),
    /// Not a valid Wasm component (a core module, corrupt file, or built for
    /// another component-model version). Build it for `wasm32-wasip2`.
    #[error("{plugin}: not a valid Wasm component: {reason}")]
    Compile { plugin: String, reason: String },
    /// The component does not fit the `trunkline:policy@0.2.0` world: it
    /// imports something the host does not offer, or lacks the hooks export.
    #[error("{plugin}: does not match the trunkline:policy world: {reason}")]
    World { plugin: String, reason: String },
    /// Instantiating it failed (its start code trapped, or exceeded its limits).
    #[error("{plugin}: fails to start under its limits: {reason}")]
    Start { plugin: String, reason: String },
    /// The compiled-artifact cache could not be written (the plugin still loads).
    #[error("compiled-plugin cache {path}: {source}")]
    Cache { path: PathBuf, source: std::io::Error },
}

/// How a plugin failed during one hook. The call gets the plugin's failure
/// mode; faults of the plugin count towards its quarantine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookFailure {
    /// Ran past its CPU deadline (epoch interruption).
    #[error("ran past its {0} ms deadline")]
    Timeout(u64),
    /// Tried to grow its memory past its limit.
    #[error("exceeded its memory limit of {0} bytes")]
    OutOfMemory(usize),
    /// Trapped (panic, unreachable, out-of-bounds access...).
    #[error("trapped: {0}")]
    Trap(String),
    /// Returned a decision the host cannot apply (bad status code, header
    /// with CR/LF, empty redirect...).
    #[error("returned an invalid decision: {0}")]
    InvalidDecision(String),
    /// Failed too often; not called until released.
    #[error("is quarantined")]
    Quarantined,
    /// The chain names a plugin that is not loaded (a deployment error).
    #[error("is not loaded")]
    NotLoaded,
    /// The host could not create an instance (pool exhausted): not the
    /// plugin's fault, and retriable.
    #[error("could not be instantiated: {0}")]
    HostBusy(String),
}

impl HookFailure {
    /// Whether this counts against the plugin (towards quarantine).
    pub fn is_plugin_fault(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::OutOfMemory(_) | Self::Trap(_) | Self::InvalidDecision(_))
    }

    /// Short machine-readable kind for logs, metrics and audit entries.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::OutOfMemory(_) => "out-of-memory",
            Self::Trap(_) => "trap",
            Self::InvalidDecision(_) => "invalid-decision",
            Self::Quarantined => "quarantined",
            Self::NotLoaded => "not-loaded",
            Self::HostBusy(_) => "host-busy",
        }
    }
}
