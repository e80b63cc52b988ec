//! The plugin runtime: engine, linker, loaded plugins, shared services, and
//! loading/reloading with validation and audit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use wasmtime::component::Linker;
use wasmtime::Engine;

use crate::audit::{AuditEntry, AuditLog};
use crate::bindings::exports::trunkline::policy::hooks::HookSet;
use crate::bindings::PolicyPre;
use crate::cache::ArtifactCache;
use crate::chain::{CallSession, Chain};
use crate::engine::{build_engine, EngineOptions, EpochTicker};
use crate::error::LoadError;
use crate::limits::Limits;
use crate::plugin::{Plugin, PluginInfo};
use crate::services::{KvStore, Metrics, NumberDirectory, PluginConfig, StaticDirectory};
use crate::state::{HostState, Scope, Services};
use crate::warm::{InstanceCounts, Warmer};

/// One file of a plugins folder and what loading it gave.
pub type Loaded = (PathBuf, Result<Arc<Plugin>, LoadError>);
/// What triggered a load, for the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadSource {
    Startup,
    Watch,
    Signal,
    Admin,
    Cli,
}

impl LoadSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Watch => "watch",
            Self::Signal => "signal",
            Self::Admin => "admin",
            Self::Cli => "cli",
        }
    }
}

/// How to build a [`Runtime`].
pub struct RuntimeOptions {
    pub engine: EngineOptions,
    /// Where compiled plugins are cached (none: compile every time).
    pub cache_dir: Option<PathBuf>,
    /// Where audit entries are appended as JSON lines (none: log only).
    pub audit_path: Option<PathBuf>,
    /// Live keys per (plugin, account) kv namespace.
    pub kv_max_keys: usize,
    pub numbers: Arc<dyn NumberDirectory>,
    /// Limits of the trial instantiation that validates a new version.
    pub validation_limits: Limits,
    /// Instances prepared ahead of time per plugin version and limits, so
    /// that a call does not wait for instantiation (0: instantiate on the
    /// call path).
    pub prewarm: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            engine: EngineOptions::default(),
            cache_dir: None,
            audit_path: None,
            kv_max_keys: 10_000,
            numbers: Arc::new(StaticDirectory::default()),
            validation_limits: Limits::default(),
            prewarm: 8,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    linker: Linker<HostState>,
    pub(crate) plugins: ArcSwap<HashMap<String, Arc<Plugin>>>,
    pub(crate) services: Arc<Services>,
    pub(crate) audit: AuditLog,
    cache: ArtifactCache,
    validation_limits: Limits,
    /// Serialises loads so two reloads of one plugin cannot interleave.
    load_lock: Mutex<()>,
    pub(crate) warmer: Warmer,
    _ticker: EpochTicker,
}

/// The plugin runtime. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn plugin_name(path: &Path) -> Result<String, LoadError> {
    let ok = path.extension().is_some_and(|e| e == "wasm");
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let valid = !stem.is_empty()
        && stem.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok && valid {
        Ok(stem.to_owned())
    } else {
        Err(LoadError::BadName(path.to_owned()))
    }
}

impl Runtime {
    /// Build the engine (pooling allocator, epoch interruption) and start the epoch ticker.
    pub fn new(opts: RuntimeOptions) -> wasmtime::Result<Self> {
        let engine = build_engine(&opts.engine)?;
        let linker = crate::linker::build_linker(&engine)?;
        let audit = AuditLog::open(opts.audit_path.as_deref())
            .map_err(|e| wasmtime::Error::msg(format!("cannot open audit log: {e}")))?;
        let services = Arc::new(Services {
            kv: KvStore::new(opts.kv_max_keys),
            shared_kv: Default::default(),
            metrics: Metrics::default(),
            numbers: ArcSwap::from_pointee(opts.numbers),
        });
        let warmer = Warmer::start(engine.clone(), services.clone(), opts.prewarm);
        let inner = Inner {
            _ticker: EpochTicker::start(engine.clone(), warmer.kicker()),
            warmer,
            engine,
            linker,
            plugins: ArcSwap::from_pointee(HashMap::new()),
            services,
            audit,
            cache: ArtifactCache::new(opts.cache_dir),
            validation_limits: opts.validation_limits,
            load_lock: Mutex::new(()),
        };
        Ok(Runtime { inner: Arc::new(inner) })
    }

    /// Compile and validate a plugin file without installing it.
    pub fn check_file(&self, path: &Path) -> Result<Arc<Plugin>, LoadError> {
        let name = plugin_name(path)?;
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        self.prepare(&name, path, &bytes, &sha256_hex(&bytes))
    }

    /// Compile, check against the world and trial-instantiate `bytes`, whose
    /// SHA-256 (hex) is `sha256`.
    fn prepare(&self, name: &str, path: &Path, bytes: &[u8], sha256: &str) -> Result<Arc<Plugin>, LoadError> {
        let engine = &self.inner.engine;
        let component = self
            .inner
            .cache
            .compile(engine, bytes, sha256)
            .map_err(|reason| LoadError::Compile { plugin: name.into(), reason })?;
        let ty = component.component_type();
        let world = |e: wasmtime::Error| {
            LoadError::World {
            plugin: name.into(),
            reason: match other_world(ty.imports(engine).map(|(n, _)| n)) {
                Some(version) => format!(
                    "built against trunkline:policy@{version}; this router speaks @{WORLD_VERSION}: rebuild the plugin with this trunkline-sdk"
                ),
                None => format!("{e:#}"),
            },
        }
        };
        let instance_pre = self.inner.linker.instantiate_pre(&component).map_err(world)?;
        let pre = PolicyPre::new(instance_pre).map_err(world)?;
        let info = PluginInfo {
            name: name.into(),
            version: sha256[..12].into(),
            sha256: sha256.to_owned(),
            path: path.display().to_string(),
            size_bytes: bytes.len() as u64,
            imports: ty.imports(engine).map(|(n, _)| n.to_owned()).collect(),
            exports: ty.exports(engine).map(|(n, _)| n.to_owned()).collect(),
        };
        let mut plugin = Plugin::new(info, pre);
        plugin.hooks = self.trial_instantiate(&plugin)?;
        Ok(Arc::new(plugin))
    }

    /// Instantiate once under the validation limits and run `init`: a
    /// component whose start code traps, loops or needs too much memory is
    /// refused here, not on a call. Returns the hooks it implements.
    fn trial_instantiate(&self, plugin: &Plugin) -> Result<HookSet, LoadError> {
        // A first instantiation may be slower than later ones: allow 10x.
        let limits = Limits {
            hook_timeout_ms: self.inner.validation_limits.hook_timeout_ms.saturating_mul(10),
            ..self.inner.validation_limits.clone()
        };
        let inner = &self.inner;
        crate::warm::prepare(&inner.engine, &inner.services, plugin, &limits).map(|live| live.hooks).map_err(|e| {
            let name = plugin.info.name.clone();
            // Export types are only checked when the hooks are looked up,
            // i.e. while instantiating: ask which hook, if any, differs (a
            // plugin built against another version of the WIT).
            match crate::signatures::mismatched_hook(&inner.engine, &inner.services, plugin, &limits) {
                Some(hook) => LoadError::World {
                    plugin: name,
                    reason: format!(
                        "`{hook}` has another signature than this host's WIT (rebuild the plugin with this trunkline-sdk)"
                    ),
                },
                None => LoadError::Start { plugin: name, reason: format!("{:#}", e.error) },
            }
        })
    }

    pub(crate) fn scope(
        &self,
        plugin: &Plugin,
        account: &Arc<str>,
        call_id: &Arc<str>,
        config: Arc<PluginConfig>,
    ) -> Scope {
        Scope::assigned(plugin, account.clone(), call_id.clone(), config, self.inner.services.clone())
    }

    /// Load (or reload) the plugin at `path`. On success the new version
    /// serves every call that starts from now on; on failure the previous
    /// version, if any, keeps serving. Either way an audit entry is written.
    pub fn load_file(&self, path: &Path, source: LoadSource) -> Result<Arc<Plugin>, LoadError> {
        self.load_file_by(path, source, None)
    }

    /// [`Runtime::load_file`], audited as asked by `by` (an admin token's name).
    pub fn load_file_by(&self, path: &Path, source: LoadSource, by: Option<&str>) -> Result<Arc<Plugin>, LoadError> {
        let _guard = self.inner.load_lock.lock().unwrap_or_else(|p| p.into_inner());
        let name_guess = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_owned();
        let previous = self.plugin(&name_guess);
        let result = plugin_name(path).and_then(|name| {
            let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
            Ok((name, bytes))
        });
        let (name, bytes) = match result {
            Ok(v) => v,
            Err(e) => {
                self.audit_refusal(&name_guess, None, previous.as_deref(), (source, by), &e);
                return Err(e);
            }
        };
        let sha256 = sha256_hex(&bytes);
        if let Some(p) = previous.as_ref().filter(|p| p.info.sha256 == sha256) {
            return Ok(p.clone());
        }
        match self.prepare(&name, path, &bytes, &sha256) {
            Ok(plugin) => {
                self.inner.plugins.rcu(|map| {
                    let mut map = HashMap::clone(map);
                    map.insert(name.clone(), plugin.clone());
                    map
                });
                // The new version gets ready instances under the limits the
                // old one served, before calls need them.
                let served = previous.iter().filter(|_| !plugin.hook_names().is_empty());
                for limits in served.flat_map(|p| p.ready.limits()) {
                    self.inner.warmer.request(&plugin, &limits);
                }
                let mut e = AuditEntry::new(if previous.is_some() { "reload" } else { "load" }, &name, source.as_str());
                e.version = Some(plugin.info.version.clone());
                e.previous = previous.map(|p| p.info.version.clone());
                e.by = by.map(str::to_owned);
                self.inner.audit.record(e);
                Ok(plugin)
            }
            Err(err) => {
                self.audit_refusal(&name, Some(sha256[..12].to_owned()), previous.as_deref(), (source, by), &err);
                Err(err)
            }
        }
    }

    fn audit_refusal(
        &self,
        name: &str,
        version: Option<String>,
        previous: Option<&Plugin>,
        (source, by): (LoadSource, Option<&str>),
        err: &LoadError,
    ) {
        let mut e = AuditEntry::new("refuse", name, source.as_str());
        e.by = by.map(str::to_owned);
        e.outcome = "refused".into();
        e.version = version;
        e.previous = previous.map(|p| p.info.version.clone());
        e.detail = Some(match previous {
            Some(p) => format!("{err}; version {} keeps serving", p.info.version),
            None => err.to_string(),
        });
        self.inner.audit.record(e);
    }

    /// Load every `*.wasm` file of `dir`; one result per file, in name order.
    pub fn load_dir(&self, dir: &Path, source: LoadSource) -> std::io::Result<Vec<Loaded>> {
        self.load_dir_by(dir, source, None)
    }

    /// [`Runtime::load_dir`], audited as asked by `by` (an admin token's name).
    pub fn load_dir_by(&self, dir: &Path, source: LoadSource, by: Option<&str>) -> std::io::Result<Vec<Loaded>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        files.sort();
        Ok(files
            .into_iter()
            .map(|p| {
                let r = self.load_file_by(&p, source, by);
                (p, r)
            })
            .collect())
    }

    /// The current version of plugin `name`.
    pub fn plugin(&self, name: &str) -> Option<Arc<Plugin>> {
        self.inner.plugins.load().get(name).cloned()
    }

    /// Every loaded plugin, by name.
    pub fn plugins(&self) -> Vec<Arc<Plugin>> {
        let mut v: Vec<_> = self.inner.plugins.load().values().cloned().collect();
        v.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        v
    }

    /// Instances of plugin `name` prepared ahead of time for `limits` and
    /// not yet taken by a call (monitoring, benchmarks, tests).
    pub fn ready_instances(&self, name: &str, limits: &Limits) -> usize {
        self.plugin(name).map_or(0, |p| p.ready.count(limits))
    }

    /// The background thread that prepares and drops instances has nothing
    /// to do. Benchmarks wait for this to measure calls at a rate it keeps
    /// up with.
    pub fn warmer_idle(&self) -> bool {
        self.inner.warmer.is_idle()
    }

    /// Instances are waiting to be prepared or dropped: the thread that
    /// runs the hooks should call [`Runtime::work_while_idle`] when it has
    /// nothing else to do.
    pub fn has_idle_work(&self) -> bool {
        self.inner.warmer.has_work()
    }

    /// Do one piece (a few microseconds) of the queued preparing and
    /// dropping of instances here. Call it from the thread that runs the
    /// hooks when that thread is idle: instances prepared on the core that
    /// will call them are in its caches (a hook call on one prepared by the
    /// background thread, on the other core, measured up to twice as
    /// long). What is left undone goes to the background thread within
    /// 2 ms. False: nothing was queued.
    pub fn work_while_idle(&self) -> bool {
        self.inner.warmer.work_here(&self.inner.engine, &self.inner.services)
    }

    /// Have instances of `chain`'s plugins prepared before its first call
    /// (the router does this for every trunk at startup): that call then
    /// does not make its own. Plugins not loaded, and plugins that define
    /// no hook, are skipped.
    pub fn prepare_for(&self, chain: &Chain) {
        for e in &chain.entries {
            if let Some(p) = self.plugin(&e.plugin).filter(|p| !p.hook_names().is_empty()) {
                self.inner.warmer.request(&p, &e.limits);
            }
        }
    }

    /// Where the plugin instances made so far were made.
    pub fn instance_counts(&self) -> InstanceCounts {
        self.inner.warmer.counts()
    }

    /// Lift plugin `name`'s quarantine (admin request). False if not loaded.
    pub fn release(&self, name: &str) -> bool {
        self.release_by(name, None)
    }

    /// [`Runtime::release`], audited as asked by `by` (an admin token's name).
    pub fn release_by(&self, name: &str, by: Option<&str>) -> bool {
        let Some(p) = self.plugin(name) else { return false };
        p.release();
        let mut e = AuditEntry::new("release", name, "admin");
        e.by = by.map(str::to_owned);
        e.version = Some(p.info.version.clone());
        self.inner.audit.record(e);
        true
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// The numbers plugins see from now on (a configuration reload moved,
    /// added or removed some); each question a hook asks is answered by the
    /// directory current at that moment.
    pub fn set_numbers(&self, numbers: Arc<dyn NumberDirectory>) {
        self.inner.services.numbers.store(Arc::new(numbers));
    }

    /// Put plugins' kv in a store shared with other routers (once, before
    /// the first call; false if one is set already).
    pub fn share_kv(&self, kv: Arc<dyn crate::services::SharedKv>) -> bool {
        self.inner.services.shared_kv.set(kv).is_ok()
    }

    /// Services shared by the plugins (kv, metrics, numbers).
    pub fn services(&self) -> &Arc<Services> {
        &self.inner.services
    }

    /// Start a call's routing phase on `chain`: pins the current version of
    /// each plugin for the whole session.
    pub fn start_call(&self, chain: &Chain, account_id: &str, call_id: &str) -> CallSession {
        CallSession::new(self.clone(), chain, account_id, call_id)
    }
}

/// The version of the `trunkline:policy` world this host implements.
pub const WORLD_VERSION: &str = "0.2.0";

/// The `trunkline:policy` version a component's imports name, if it is
/// not this host's (a plugin built with an older or newer SDK).
fn other_world<'a>(imports: impl Iterator<Item = &'a str>) -> Option<String> {
    imports
        .filter_map(|i| i.strip_prefix("trunkline:policy/")?.split_once('@').map(|(_, v)| v))
        .find(|v| *v != WORLD_VERSION)
        .map(str::to_owned)
}
