//! Integration tests of the plugin platform: real compiled components
//! (built by `tests/build.rs` from `plugins/` and `tests/test-plugins/`).

mod failures;
mod hooks;
mod reload;

use std::sync::Arc;

use tempfile::TempDir;
use trunkline_plugin_host::{Runtime, RuntimeOptions, StaticDirectory};
use trunkline_tests::install;

/// A plugins directory with some plugins installed and loaded.
pub struct Fixture {
    pub dir: TempDir,
    pub rt: Runtime,
}

/// Install `(wasm path, plugin name)` pairs and load the directory.
pub fn fixture(plugins: &[(&str, &str)]) -> Fixture {
    fixture_with(plugins, RuntimeOptions::default())
}

pub fn fixture_with(plugins: &[(&str, &str)], opts: RuntimeOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    for (wasm, name) in plugins {
        install(wasm, dir.path(), name);
    }
    let rt = Runtime::new(opts).unwrap();
    for (path, r) in rt.load_dir(dir.path(), trunkline_plugin_host::LoadSource::Startup).unwrap() {
        r.unwrap_or_else(|e| panic!("{} failed to load: {e}", path.display()));
    }
    Fixture { dir, rt }
}

/// Account AC0001 owns +14155550100 (labelled) and has verified +14155550199.
pub fn directory() -> Arc<StaticDirectory> {
    let mut d = StaticDirectory::default();
    let mut acct = trunkline_plugin_host::services::AccountNumbers::default();
    acct.owned.insert("+14155550100".into(), Some("Support - Primary".into()));
    acct.verified.push("+14155550199".into());
    d.accounts.insert("AC0001".into(), acct);
    Arc::new(d)
}
