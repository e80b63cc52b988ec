//! Compiled plugins cached on disk, keyed by the component's content hash
//! and the engine's compatibility hash, so a restart or a reload of an
//! unchanged file does not compile again.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

use wasmtime::component::Component;
use wasmtime::Engine;

pub(crate) struct ArtifactCache {
    dir: Option<PathBuf>,
}

impl ArtifactCache {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        ArtifactCache { dir }
    }

    fn path(&self, engine: &Engine, sha256: &str) -> Option<PathBuf> {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Some(self.dir.as_ref()?.join(format!("{sha256}-{:016x}.cwasm", h.finish())))
    }

    /// The compiled component: from the cache if present, else compiled (and stored).
    pub(crate) fn compile(&self, engine: &Engine, bytes: &[u8], sha256: &str) -> Result<Component, String> {
        let path = self.path(engine, sha256);
        if let Some(p) = path.as_ref().filter(|p| p.exists()) {
            // Read into memory rather than mmap the file: a cache file rewritten
            // in place under a mapping would crash the host (SIGBUS).
            match std::fs::read(p) {
                Ok(artifact) => {
                    // SAFETY: the file was written by `Engine::precompile_component`
                    // of an engine with the same compatibility hash (its name says
                    // so, and wasmtime checks the header), into the operator's
                    // cache directory, which must be as trusted as the binary.
                    #[allow(unsafe_code)]
                    match unsafe { Component::deserialize(engine, &artifact) } {
                        Ok(c) => return Ok(c),
                        Err(e) => tracing::warn!("ignoring unusable cached plugin {}: {e}", p.display()),
                    }
                }
                Err(e) => tracing::warn!("cannot read cached plugin {}: {e}", p.display()),
            }
        }
        let component = Component::new(engine, bytes).map_err(|e| format!("{e:#}"))?;
        if let Some(p) = path {
            if let Err(e) = store(&component, &p) {
                tracing::warn!("cannot cache compiled plugin at {}: {e}", p.display());
            }
        }
        Ok(component)
    }
}

fn store(component: &Component, path: &PathBuf) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(|e| std::io::Error::other(format!("{e}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}
