//! The per-store state: what one plugin instance, serving one call, may see.

use std::sync::Arc;

use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use crate::limits::{Limiter, Limits};
use crate::message::Messages;
use crate::services::{KvStore, Metrics, NumberDirectory, PluginConfig, SharedKv};

/// Services shared by every instance of every plugin.
pub struct Services {
    /// The kv in the router (memory, kept on disk by the router).
    pub kv: KvStore,
    /// The kv shared with other routers, when configured: then plugins'
    /// kv calls go there, not to [`Services::kv`].
    pub shared_kv: std::sync::OnceLock<Arc<dyn SharedKv>>,
    pub metrics: Metrics,
    /// Replaced whole when the router's configuration is reloaded
    /// ([`crate::Runtime::set_numbers`]); a hook sees one directory.
    pub numbers: arc_swap::ArcSwap<Arc<dyn NumberDirectory>>,
}

/// Who an instance runs for: one plugin version, one account, one call.
pub(crate) struct Scope {
    pub(crate) plugin: Arc<str>,
    pub(crate) version: Arc<str>,
    pub(crate) account: Arc<str>,
    pub(crate) call_id: Arc<str>,
    /// `plugin/account`, made on the first `kv` call (most calls make none).
    kv_namespace: std::cell::OnceCell<Arc<str>>,
    pub(crate) config: Arc<PluginConfig>,
    pub(crate) services: Arc<Services>,
    /// False while the instance is being prepared for a call not yet known:
    /// `kv` and `numbers` then answer as for no account and ignore writes.
    pub(crate) assigned: bool,
}

impl Scope {
    /// The scope of an instance serving call `call_id` of `account`.
    pub(crate) fn assigned(
        plugin: &crate::plugin::Plugin,
        account: Arc<str>,
        call_id: Arc<str>,
        config: Arc<PluginConfig>,
        services: Arc<Services>,
    ) -> Self {
        Scope {
            plugin: plugin.shared_name.clone(),
            version: plugin.shared_version.clone(),
            account,
            call_id,
            kv_namespace: std::cell::OnceCell::new(),
            config,
            services,
            assigned: true,
        }
    }

    /// This scope if it belongs to a call; `None` while the instance is
    /// being prepared ahead, when `kv`, `numbers` and `metrics` answer as
    /// for no account and ignore writes.
    pub(crate) fn of_call(&self) -> Option<&Scope> {
        self.assigned.then_some(self)
    }

    /// This plugin's and account's `kv` namespace.
    pub(crate) fn kv_namespace(&self) -> &Arc<str> {
        self.kv_namespace.get_or_init(|| crate::services::KvStore::namespace(&self.plugin, &self.account))
    }

    /// The scope of an instance prepared ahead of time, before any call.
    pub(crate) fn unassigned(plugin: &crate::plugin::Plugin, services: Arc<Services>) -> Self {
        let config = Arc::new(PluginConfig::default());
        Scope { assigned: false, ..Scope::assigned(plugin, "".into(), "".into(), config, services) }
    }
}

/// Most bytes of stdout/stderr kept per instance (the rest is dropped).
const CAPTURE_BYTES: usize = 4096;
/// Log lines a plugin may write per instance before the rest are dropped.
pub(crate) const LOG_BUDGET: u32 = 64;

/// State of one store. WASI is linked with an empty context: no arguments,
/// no environment, no files, no sockets; stdout/stderr go to the plugin log.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) scope: Scope,
    pub(crate) log_budget: u32,
    /// Headers the running hook may read (none between hooks).
    pub(crate) messages: Messages,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// Bytes of each stream already written to the log.
    stdout_seen: usize,
    stderr_seen: usize,
    /// Time the running hook has spent waiting on a shared kv store:
    /// counted against the store's budget, not the hook's CPU deadline.
    pub(crate) kv_waited: std::time::Duration,
    /// Of that, what the epoch deadline has not yet been extended by.
    pub(crate) kv_wait_unpaid: std::time::Duration,
}

impl HostState {
    pub(crate) fn new(scope: Scope, limits: &Limits) -> Self {
        let stdout = MemoryOutputPipe::new(CAPTURE_BYTES);
        let stderr = MemoryOutputPipe::new(CAPTURE_BYTES);
        let wasi = WasiCtx::builder().stdout(stdout.clone()).stderr(stderr.clone()).build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter::new(limits),
            scope,
            log_budget: LOG_BUDGET,
            messages: Messages::default(),
            stdout,
            stderr,
            stdout_seen: 0,
            stderr_seen: 0,
            kv_waited: std::time::Duration::ZERO,
            kv_wait_unpaid: std::time::Duration::ZERO,
        }
    }

    /// A hook starts: its waits on the shared kv start from nothing.
    pub(crate) fn start_hook(&mut self) {
        self.kv_waited = std::time::Duration::ZERO;
        self.kv_wait_unpaid = std::time::Duration::ZERO;
    }

    /// Give a prepared instance to the call of `scope`.
    pub(crate) fn assign(&mut self, scope: Scope) {
        self.scope = scope;
        self.log_budget = LOG_BUDGET;
    }

    /// Write what the plugin printed to stdout/stderr since the last flush
    /// into the log, once.
    pub(crate) fn flush_output(&mut self) {
        for (stream, pipe, seen) in
            [("stdout", &self.stdout, &mut self.stdout_seen), ("stderr", &self.stderr, &mut self.stderr_seen)]
        {
            let all = pipe.contents();
            let bytes = all.get(*seen..).unwrap_or_default();
            *seen = all.len();
            if !bytes.is_empty() {
                tracing::info!(
                    plugin = %self.scope.plugin,
                    version = %self.scope.version,
                    call_id = %self.scope.call_id,
                    stream,
                    "{}",
                    String::from_utf8_lossy(bytes).trim_end()
                );
            }
        }
    }
}

/// What a plugin printed is logged when its instance is dropped (off the
/// call path, on the thread that drops retired instances), not after each
/// hook: looking at the pipes costs two locks and a copy per hook, and
/// plugins log through the `log` import, not stdout.
impl Drop for HostState {
    fn drop(&mut self) {
        self.flush_output();
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
