//! Hot reload: watch the plugins directory and reload changed `.wasm` files
//! (compiled and validated off the hot path, then swapped atomically).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::runtime::{LoadSource, Runtime};

/// Quiet time after the last change before reloading (a copy in progress
/// produces several events).
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Keeps the watcher alive; dropping it stops watching.
pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Watch `dir` and reload every `.wasm` file that changes. Runs its own
/// thread; each reload is audited by [`Runtime::load_file`].
pub fn watch_dir(runtime: Runtime, dir: &Path) -> notify::Result<DirWatcher> {
    let (tx, rx) = mpsc::channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            if matches!(ev.kind, notify::EventKind::Create(_) | notify::EventKind::Modify(_)) {
                for p in ev.paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "wasm")) {
                    let _ = tx.send(p);
                }
            }
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    std::thread::Builder::new()
        .name("plugin-watch".into())
        .spawn(move || {
            let mut pending: Vec<PathBuf> = Vec::new();
            loop {
                match rx.recv_timeout(DEBOUNCE) {
                    Ok(p) => {
                        if !pending.contains(&p) {
                            pending.push(p);
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        for p in pending.drain(..) {
                            if p.exists() {
                                if let Err(e) = runtime.load_file(&p, LoadSource::Watch) {
                                    tracing::warn!("reload of {} refused: {e}", p.display());
                                }
                            }
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        })
        .map_err(|e| notify::Error::generic(&e.to_string()))?;
    Ok(DirWatcher { _watcher: watcher })
}
