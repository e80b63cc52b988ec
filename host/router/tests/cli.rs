//! The `trunkline` binary, driven as a user would, with real components.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trunkline_tests::wasm;

fn trunkline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trunkline")).args(args).output().expect("running trunkline")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(rel)
}

fn named(wasm: &str, dir: &Path, name: &str) -> String {
    trunkline_tests::install(wasm, dir, name).display().to_string()
}

#[test]
fn plugin_check_prints_the_world_exports_imports_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let o = trunkline(&["plugin", "check", &named(wasm::E164_GUARD, dir.path(), "e164-guard")]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("plugin:   e164-guard"), "{out}");
    assert!(out.contains("world:    trunkline:policy@0.2.0 (ok)"), "{out}");
    assert!(out.contains("exports:  trunkline:policy/hooks@0.2.0"), "{out}");
    assert!(out.contains("  trunkline:policy/config@0.2.0"), "{out}");
    assert!(out.contains("limits:   hook 10 ms, memory 32 MiB"), "{out}");
}

#[test]
fn plugin_check_refuses_what_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.wasm");
    std::fs::write(&bad, b"not wasm").unwrap();
    let o = trunkline(&["plugin", "check", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("broken: not a valid Wasm component"), "{}", text(&o).1);
    let o = trunkline(&["plugin", "check", "/nonexistent/x.wasm"]);
    assert!(text(&o).1.contains("cannot read plugin file /nonexistent/x.wasm"), "{}", text(&o).1);
}

#[test]
fn plugin_run_on_invite_prints_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let file = named(wasm::E164_GUARD, dir.path(), "e164-guard");
    let req = fixture("sip/invite-termination-national.sip");
    let o = trunkline(&[
        "plugin",
        "run",
        &file,
        "--hook",
        "on-invite",
        "--direction",
        "termination",
        "--request",
        req.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains(r#"decision: Reject(Reject { code: 400, reason: "To is not an E.164 number" })"#), "{out}");
    assert!(out.contains("metric e164-guard.rejected_not_e164 = 1"), "{out}");
}

#[test]
fn plugin_run_pre_dial_and_on_redirect_with_config() {
    let dir = tempfile::tempdir().unwrap();
    let div = named(wasm::DIVERSION_GUARD, dir.path(), "diversion-guard");
    let req = fixture("sip/invite-origination.sip");
    let o = trunkline(&[
        "plugin",
        "run",
        &div,
        "--hook",
        "pre-dial",
        "--request",
        req.to_str().unwrap(),
        "--target",
        "sip:127.0.0.1:5080",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("  Diversion: <sip:+14155550100@trunkline.test>"), "{out}");

    let rec = named(wasm::TP_RECORDER, dir.path(), "recorder");
    let cfg = dir.path().join("recorder.toml");
    std::fs::write(&cfg, "follow = \"sip:+14155550100@pbx9.example\"\n").unwrap();
    let resp = fixture("sip/302.sip");
    let o = trunkline(&[
        "plugin",
        "run",
        &rec,
        "--hook",
        "on-redirect",
        "--request",
        req.to_str().unwrap(),
        "--response",
        resp.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains(r#"decision: RedirectDecision::Follow("sip:+14155550100@pbx9.example")"#), "{out}");
}

#[test]
fn plugin_run_reports_a_looping_plugin_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let file = named(wasm::TP_LOOP, dir.path(), "loop");
    let req = fixture("sip/invite-origination.sip");
    let o = trunkline(&["plugin", "run", &file, "--request", req.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("decision: Continue"), "fail-open default: {out}");
    assert!(err.contains("plugin ran past its 10 ms deadline"), "logged once: {err}");
    assert_eq!(err.matches("deadline").count(), 1, "{err}");
}

/// A copy of the quickstart configuration with its plugins installed.
fn quickstart() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/trunkline.toml");
    std::fs::copy(src, dir.path().join("trunkline.toml")).unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    trunkline_tests::install_first_party(&plugins);
    dir
}

#[test]
fn simulate_fails_over_on_503_but_not_on_486() {
    let dir = quickstart();
    let cfg = dir.path().join("trunkline.toml");
    let req = fixture("sip/invite-origination.sip");
    let run = |answers: &[&str]| {
        let mut args = vec!["simulate", "--config", cfg.to_str().unwrap(), "--request", req.to_str().unwrap()];
        for a in answers {
            args.extend(["--answer", a]);
        }
        let o = trunkline(&args);
        assert!(o.status.success(), "{}", text(&o).1);
        text(&o).0
    };
    let out = run(&["5080=503"]);
    assert!(out.contains("INVITE sip:+14155550100@127.0.0.1:5081 [X-Route: backup; Diversion: <sip:+14155550100@trunkline.test>] -> 200 OK"), "{out}");
    assert!(out.contains("outcome: answered (200) by sip:+14155550100@127.0.0.1:5081"), "{out}");
    let out = run(&["5080=486"]);
    assert!(out.contains("outcome: failed 486 Busy Here"), "{out}");
    assert!(!out.contains("5081"), "no failover on 486: {out}");
    let out = run(&["5080=503", "5081=503"]);
    assert!(out.contains("dr-twiml-fallback") && out.contains("twiml-url http://127.0.0.1:18080/dr"), "{out}");
}

#[test]
fn check_refuses_a_chain_naming_a_missing_plugin() {
    let dir = quickstart();
    std::fs::remove_file(dir.path().join("plugins/e164-guard.wasm")).unwrap();
    let o = trunkline(&["check", "--config", dir.path().join("trunkline.toml").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("trunk `acme-prod` names plugin `e164-guard`"), "{}", text(&o).1);
}
