//! Hot reload: new versions swap in atomically with zero failed calls, calls
//! in flight finish on the version they started with, a broken version is
//! refused while the old one keeps serving, and all of it is audited.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trunkline_plugin_host::chain::InviteOutcome;
use trunkline_plugin_host::types::Direction;
use trunkline_plugin_host::{LoadError, LoadSource, RuntimeOptions};
use trunkline_tests::{call, chain, entry, install, wasm};

use crate::{fixture, fixture_with};

fn version_var(c: &trunkline_plugin_host::types::Call) -> Option<String> {
    c.variables.iter().find(|v| v.name == "version").map(|v| v.value.clone())
}

#[test]
fn in_flight_calls_keep_their_version() {
    let f = fixture(&[(wasm::TP_VERSION_A, "versioned")]);
    let ch = chain(vec![entry("versioned", "", trunkline_tests::steady())]);
    let (mut c1, mut r1) = call(Direction::Origination, "+12125550123", "+14155550100");
    let mut in_flight = f.rt.start_call(&ch, "AC0001", "old");
    let new_path = install(wasm::TP_VERSION_B, f.dir.path(), "versioned");
    f.rt.load_file(&new_path, LoadSource::Admin).unwrap();
    assert_eq!(in_flight.on_invite(&mut c1, &mut r1), InviteOutcome::Continue);
    assert_eq!(version_var(&c1).as_deref(), Some("a"), "started before the swap: old version");
    let (mut c2, mut r2) = call(Direction::Origination, "+12125550123", "+14155550100");
    f.rt.start_call(&ch, "AC0001", "new").on_invite(&mut c2, &mut r2);
    assert_eq!(version_var(&c2).as_deref(), Some("b"));
}

#[test]
fn file_watch_reload_under_concurrent_calls_loses_nothing() {
    let f = fixture(&[(wasm::TP_VERSION_A, "versioned")]);
    let _watch = trunkline_plugin_host::watch::watch_dir(f.rt.clone(), f.dir.path()).unwrap();
    // Compiling the new version while workers hammer calls: not about deadlines.
    let ch = Arc::new(chain(vec![entry("versioned", "", trunkline_tests::steady())]));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, saw_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (rt, ch, stop, ok, failed, saw_b) =
                (f.rt.clone(), ch.clone(), stop.clone(), ok.clone(), failed.clone(), saw_b.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 200_000 {
                    n += 1;
                    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
                    let mut s = rt.start_call(&ch, "AC0001", &format!("w{w}-{n}"));
                    let pinned = s.versions()[0].1.clone();
                    let out = s.on_invite(&mut c, &mut r);
                    let v = version_var(&c);
                    let consistent = pinned.as_deref()
                        == rt.plugin("versioned").map(|p| p.info.version.clone()).as_deref()
                        || v.as_deref() == Some("a");
                    if out == InviteOutcome::Continue && matches!(v.as_deref(), Some("a" | "b")) && consistent {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if v.as_deref() == Some("b") {
                            saw_b.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        eprintln!("failed call: {out:?} version={v:?} pinned={pinned:?} trace={:?}", s.trace());
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    while ok.load(Ordering::Relaxed) < 200 {
        std::thread::yield_now();
    }
    let old = f.rt.plugin("versioned").unwrap().info.version.clone();
    install(wasm::TP_VERSION_B, f.dir.path(), "versioned");
    let deadline = Instant::now() + Duration::from_secs(60);
    while f.rt.plugin("versioned").unwrap().info.version == old {
        assert!(Instant::now() < deadline, "the watcher never reloaded the plugin");
        std::thread::sleep(Duration::from_millis(20));
    }
    let after_swap = ok.load(Ordering::Relaxed);
    while ok.load(Ordering::Relaxed) < after_swap + 200 {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no call failed across the reload");
    assert!(saw_b.load(Ordering::Relaxed) >= 200, "calls after the swap ran the new version");
    let audit = f.rt.audit().recent();
    let reload = audit.iter().find(|e| e.action == "reload").expect("reload audited");
    assert_eq!((reload.source.as_str(), reload.previous.as_deref()), ("watch", Some(old.as_str())));
}

#[test]
fn a_broken_version_is_refused_and_the_old_one_keeps_serving() {
    let audit_dir = tempfile::tempdir().unwrap();
    let audit_path = audit_dir.path().join("audit.jsonl");
    let opts = RuntimeOptions { audit_path: Some(audit_path.clone()), ..RuntimeOptions::default() };
    let f = fixture_with(&[(wasm::TP_VERSION_A, "versioned")], opts);
    let good = f.rt.plugin("versioned").unwrap().info.version.clone();
    let ch = chain(vec![entry("versioned", "", trunkline_tests::steady())]);

    // Not Wasm at all.
    let path = f.dir.path().join("versioned.wasm");
    std::fs::write(&path, b"\0asm garbage that is not a component").unwrap();
    assert!(matches!(f.rt.load_file(&path, LoadSource::Signal), Err(LoadError::Compile { .. })));
    // A valid component of another world: a core module is not a component either.
    std::fs::write(&path, [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]).unwrap();
    assert!(matches!(f.rt.load_file(&path, LoadSource::Signal), Err(LoadError::Compile { .. })));
    // Real plugins built against earlier WITs (one whose hooks take the
    // call as a record, one of the last 0.1.0 world): a world mismatch that
    // names the version and says to rebuild.
    for fixture in ["e164-guard-previous-wit.wasm", "e164-guard-policy-0.1.0.wasm"] {
        let fixture = format!("{}/fixtures/wasm/{fixture}", env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(&fixture, &path).unwrap();
        match f.rt.load_file(&path, LoadSource::Signal) {
            Err(LoadError::World { reason, .. }) => assert!(
                reason.contains("built against trunkline:policy@0.1.0; this router speaks @0.2.0")
                    && reason.contains("rebuild the plugin"),
                "{fixture}: {reason}"
            ),
            Err(other) => panic!("{fixture}: expected a world mismatch, got {other}"),
            Ok(_) => panic!("{fixture}: a plugin built against an earlier WIT was loaded"),
        }
    }

    assert_eq!(f.rt.plugin("versioned").unwrap().info.version, good);
    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    f.rt.start_call(&ch, "AC0001", "still").on_invite(&mut c, &mut r);
    assert_eq!(version_var(&c).as_deref(), Some("a"));

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines.iter().all(|e| e["time"].as_str().is_some_and(|t| t.starts_with("20"))), "{lines:?}");
    assert_eq!(lines[0]["action"], "load");
    assert!(lines[1..].iter().all(|e| e["action"] == "refuse" && e["outcome"] == "refused"));
    let detail = lines[1]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&format!("version {good} keeps serving")), "{:?}", lines[1]);
}

#[test]
fn compiled_plugins_are_cached_by_content_hash() {
    let cache = tempfile::tempdir().unwrap();
    let opts = || RuntimeOptions { cache_dir: Some(cache.path().to_owned()), ..RuntimeOptions::default() };
    let f = fixture_with(&[(wasm::TP_VERSION_A, "versioned")], opts());
    let sha = f.rt.plugin("versioned").unwrap().info.sha256.clone();
    let cached: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].starts_with(&sha) && cached[0].ends_with(".cwasm"), "{cached:?}");
    // A second runtime loads the same version from the cache and it runs.
    let g = fixture_with(&[(wasm::TP_VERSION_A, "versioned")], opts());
    assert_eq!(g.rt.plugin("versioned").unwrap().info.sha256, sha);
    let ch = chain(vec![entry("versioned", "", trunkline_tests::steady())]);
    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    g.rt.start_call(&ch, "AC0001", "cached").on_invite(&mut c, &mut r);
    assert_eq!(version_var(&c).as_deref(), Some("a"));
    // An unusable cache file is ignored, not fatal: the plugin compiles again.
    std::fs::write(cache.path().join(&cached[0]), b"corrupt").unwrap();
    let h = fixture_with(&[(wasm::TP_VERSION_A, "versioned")], opts());
    assert_eq!(h.rt.plugin("versioned").unwrap().info.sha256, sha);
}
