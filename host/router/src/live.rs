//! Live configuration: `trunkline.toml` reloaded on SIGHUP, on `POST
//! /config/reload`, and on file change (`[sip] watch_config = true`).
//!
//! The new file is validated whole (as `trunkline check` does) before
//! anything changes; a bad file, or one that changes what only a restart
//! can apply, is refused and the running configuration stays. The engine
//! then takes the new settings for calls that arrive from now on; calls in
//! progress keep theirs. Every attempt is audited: who (token name,
//! signal, file watch), when, and what changed or why it was refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot};
use trunkline_plugin_host::audit::AuditEntry;
use trunkline_plugin_host::Runtime;

use crate::admin::Control;
use crate::config::{self, Settings};
use crate::engine::Engine;

/// What a reload answers: the changes, or why nothing changed.
pub type Outcome = Result<Vec<String>, String>;

/// A configuration read and checked against the one running: the new
/// settings and what changes, or why it cannot be applied.
pub type Loaded = Result<(Arc<Settings>, Vec<String>), String>;

/// Read and check `path` against `current` (off the engine's thread: a
/// large `numbers_file` takes a while to read).
pub fn load(path: &Path, current: &Settings, runtime: &Runtime) -> Loaded {
    let new = config::load(path).map_err(|e| e.to_string())?;
    for t in &new.trunks {
        for e in &t.chain.entries {
            if runtime.plugin(&e.plugin).is_none() {
                return Err(format!(
                    "{}: trunk {}: plugin `{}` is not loaded (add its .wasm to [plugins] dir first)",
                    path.display(),
                    t.name,
                    e.plugin
                ));
            }
        }
    }
    let changes = config::live_change(current, &new)?;
    Ok((Arc::new(new), changes))
}

/// Put what [`load`] read into `current`, the engine and the plugins'
/// number directory (on the engine's thread); audited under `source` and
/// `by`.
pub fn commit(
    loaded: Loaded,
    current: &mut Arc<Settings>,
    engine: &mut Engine,
    runtime: &Runtime,
    (source, by): (&str, Option<&str>),
) -> Outcome {
    let mut entry = AuditEntry::new("config-reload", "config", source);
    entry.by = by.map(str::to_owned);
    match &loaded {
        Ok((_, changes)) => {
            entry.detail = Some(if changes.is_empty() { "no change".into() } else { changes.join("; ") });
        }
        Err(why) => {
            entry.outcome = "refused".into();
            entry.detail = Some(why.clone());
        }
    }
    runtime.audit().record(entry);
    let (new, changes) = loaded?;
    for t in &new.trunks {
        runtime.prepare_for(&t.chain);
    }
    runtime.set_numbers(Arc::new(new.directory()));
    if new.nonce_secret != current.nonce_secret {
        match &new.nonce_secret {
            Some(shared) => engine.set_auth_secret(shared.expose()),
            None => match crate::serve::server_secret() {
                Ok(own) => engine.set_auth_secret(&own),
                Err(e) => tracing::error!("the nonce secret stays the shared one: {e:#}"),
            },
        }
    }
    engine.reconfigure(new.clone());
    engine.start_health_checks(std::time::Instant::now());
    *current = new;
    Ok(changes)
}

/// Ask the engine's loop to reload (from a signal or the file watcher).
pub fn ask(control: &mpsc::Sender<Control>, source: &'static str) {
    if control.try_send(Control::Reload { source, by: None, reply: None }).is_err() {
        tracing::warn!("configuration reload ({source}) not queued: the router is busy or stopping");
    }
}

/// The reply channel of an API reload.
pub type Reply = oneshot::Sender<Outcome>;

/// Quiet time after the last change of the file before reloading (an
/// editor writes it in several steps).
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Keeps the watcher alive; dropping it stops watching.
pub struct ConfigWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Watch `paths` (the configuration and its `numbers_file`; their folders,
/// for editors that replace a file) and ask for a reload when one changes.
pub fn watch(paths: &[&Path], control: mpsc::Sender<Control>) -> notify::Result<ConfigWatcher> {
    let files: Vec<PathBuf> =
        paths.iter().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())).collect();
    let mut dirs: Vec<PathBuf> =
        files.iter().map(|f| f.parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from("."))).collect();
    dirs.dedup();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let ours = ev.paths.iter().any(|p| files.iter().any(|f| p == f));
            if ours && matches!(ev.kind, notify::EventKind::Create(_) | notify::EventKind::Modify(_)) {
                let _ = tx.send(());
            }
        }
    })?;
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    std::thread::Builder::new()
        .name("config-watch".into())
        .spawn(move || {
            let mut pending = false;
            loop {
                match rx.recv_timeout(DEBOUNCE) {
                    Ok(()) => pending = true,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) if pending => {
                        pending = false;
                        ask(&control, "watch");
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        })
        .map_err(|e| notify::Error::generic(&e.to_string()))?;
    Ok(ConfigWatcher { _watcher: watcher })
}
