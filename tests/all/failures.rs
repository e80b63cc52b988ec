//! A plugin that loops, traps, panics, eats memory or returns garbage costs
//! its own call the configured failure mode, never the host; a plugin that
//! keeps failing is quarantined.

use trunkline_plugin_host::chain::{DialOutcome, InviteOutcome};
use trunkline_plugin_host::types::{Direction, Health, Reject, Target, Transport};
use trunkline_plugin_host::{FailureMode, Limits};
use trunkline_tests::{call, chain, entry, wasm};

use crate::fixture;

fn closed(code: u16) -> Limits {
    Limits { failure_mode: FailureMode::FailClosed, fail_closed_code: code, ..Limits::default() }
}

/// Run on-invite through `[plugin, e164-guard]` and return the outcome and trace.
fn invite_through(plugin: (&str, &str), limits: Limits) -> (InviteOutcome, Vec<String>) {
    let f = fixture(&[plugin, (wasm::E164_GUARD, "e164-guard")]);
    let ch = chain(vec![entry(plugin.1, "", limits), entry("e164-guard", "", trunkline_tests::steady())]);
    let (mut c, mut r) = call(Direction::Termination, "+14155550199", "2125550123");
    let mut s = f.rt.start_call(&ch, "AC0001", "fail-1");
    let out = s.on_invite(&mut c, &mut r);
    (out, s.trace().iter().map(|t| format!("{} {}: {}", t.plugin, t.hook, t.outcome)).collect())
}

#[test]
fn infinite_loop_is_stopped_at_the_deadline_fail_open() {
    let (out, trace) = invite_through((wasm::TP_LOOP, "loop"), Limits::default());
    assert!(trace[0].contains("ran past its 10 ms deadline"), "{trace:?}");
    // fail-open: the chain went on, and the next plugin decided.
    assert_eq!(out, InviteOutcome::Reject(Reject { code: 400, reason: "To is not an E.164 number".into() }));
}

#[test]
fn infinite_loop_fail_closed_rejects_503() {
    let (out, _) = invite_through((wasm::TP_LOOP, "loop"), closed(503));
    assert_eq!(out, InviteOutcome::Reject(Reject { code: 503, reason: "Service Unavailable".into() }));
}

#[test]
fn panic_is_a_trap_fail_closed_500() {
    let (out, trace) = invite_through((wasm::TP_PANIC, "panic"), closed(500));
    assert_eq!(out, InviteOutcome::Reject(Reject { code: 500, reason: "Server Internal Error".into() }));
    assert!(trace[0].contains("trapped"), "{trace:?}");
}

#[test]
fn allocating_1_gib_hits_the_memory_limit() {
    let limits = Limits { memory_bytes: 32 << 20, ..Limits::default() };
    let (out, trace) = invite_through((wasm::TP_OOM, "oom"), limits);
    assert!(trace[0].contains("exceeded its memory limit of 33554432 bytes"), "{trace:?}");
    assert!(matches!(out, InviteOutcome::Reject(Reject { code: 400, .. })), "fail-open went on to e164-guard");
}

#[test]
fn garbage_decisions_are_refused_and_never_reach_the_message() {
    let f = fixture(&[(wasm::TP_GARBAGE, "garbage")]);
    let ch = chain(vec![entry("garbage", "", trunkline_tests::steady())]);
    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    let r0 = r.clone();
    let mut s = f.rt.start_call(&ch, "AC0001", "garbage-1");
    assert_eq!(s.on_invite(&mut c, &mut r), InviteOutcome::Continue);
    let t = Target {
        uri: "sip:a.example".into(),
        priority: 1,
        weight: 1,
        enabled: true,
        transport: Transport::Udp,
        health: Health::Up,
        group: None,
    };
    let sel = s.select_uri(&c, vec![t.clone()]).unwrap();
    assert_eq!(sel.targets, vec![t.clone()], "invalid selection ignored (fail-open)");
    assert_eq!(s.pre_dial(&c, &mut r, &t), Ok(DialOutcome::Send));
    assert_eq!(r, r0, "the Via edit was refused");
    let outcomes: Vec<&str> = s.trace().iter().map(|t| &*t.outcome).collect();
    assert!(outcomes[0].contains("reject code 99 is not 400..=699"), "{outcomes:?}");
    assert!(outcomes[1].contains("not a sip:, sips: or tel: URI"), "{outcomes:?}");
    assert!(outcomes[2].contains("header Via is managed by the host"), "{outcomes:?}");
}

#[test]
fn a_plugin_that_keeps_failing_is_quarantined_then_released() {
    let f = fixture(&[(wasm::TP_PANIC, "panic")]);
    let limits = Limits { quarantine_after: 3, quarantine_secs: 3600, ..Limits::default() };
    let ch = chain(vec![entry("panic", "", limits)]);
    let run = || {
        let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
        let mut s = f.rt.start_call(&ch, "AC0001", "q");
        assert_eq!(s.on_invite(&mut c, &mut r), InviteOutcome::Continue);
        s.trace()[0].outcome.clone()
    };
    for _ in 0..3 {
        assert!(run().contains("trapped"));
    }
    let plugin = f.rt.plugin("panic").unwrap();
    assert!(plugin.is_quarantined());
    assert!(run().contains("is quarantined"), "no instance is even created while quarantined");
    let audit = f.rt.audit().recent();
    let q = audit.iter().find(|e| e.action == "quarantine").expect("quarantine audited");
    assert_eq!(q.plugin, "panic");
    assert!(q.detail.as_deref().unwrap().contains("3 consecutive failures"));
    assert_eq!(f.rt.services().metrics.counter_value("panic", "failures.trap"), 3);
    assert_eq!(f.rt.services().metrics.counter_value("panic", "failures.quarantined"), 1);
    assert!(f.rt.release("panic"));
    assert!(!plugin.is_quarantined());
    assert!(run().contains("trapped"), "called again after release");
}

#[test]
fn the_sandbox_has_no_env_files_args_or_network() {
    let f = fixture(&[(wasm::TP_SANDBOX, "sandbox")]);
    let ch = chain(vec![entry("sandbox", "", trunkline_tests::steady())]);
    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    let mut s = f.rt.start_call(&ch, "AC0001", "sandbox-1");
    assert_eq!(s.on_invite(&mut c, &mut r), InviteOutcome::Continue);
    let v = |n: &str| c.variables.iter().find(|v| v.name == n).map(|v| v.value.clone()).unwrap();
    assert_eq!((v("env"), v("file"), v("args"), v("net")), ("0".into(), "false".into(), "0".into(), "false".into()));
    // What it printed goes to the log, tagged with the plugin and the call,
    // once its instance is dropped (off the call path).
    let log = captured_log();
    drop(s);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let line = |needle: &str| log.lock().unwrap().lines().find(|l| l.contains(needle)).map(str::to_owned);
    while line("tp-sandbox stderr line").is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for (stream, text) in [("stdout", "tp-sandbox stdout line"), ("stderr", "tp-sandbox stderr line")] {
        let l = line(text).unwrap_or_else(|| panic!("{text} not logged:\n{}", log.lock().unwrap()));
        for part in ["plugin=sandbox", "call_id=sandbox-1", &format!("stream=\"{stream}\"")] {
            assert!(l.contains(part), "{part} missing in {l}");
        }
    }
    assert_eq!(log.lock().unwrap().matches("tp-sandbox stdout line").count(), 1, "logged once");
}

/// Everything logged in this test process from now on (one subscriber for
/// the whole process: the instance is dropped on another thread).
fn captured_log() -> std::sync::Arc<std::sync::Mutex<String>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static LOG: OnceLock<Arc<Mutex<String>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let writer = move || Sink(sink.clone());
        let _ = tracing_subscriber::fmt().with_writer(writer).with_ansi(false).try_init();
        log
    })
    .clone()
}

struct Sink(std::sync::Arc<std::sync::Mutex<String>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_missing_plugin_gets_the_failure_mode() {
    let f = fixture(&[]);
    let ch = chain(vec![entry("not-there", "", closed(503))]);
    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    let mut s = f.rt.start_call(&ch, "AC0001", "missing");
    assert_eq!(
        s.on_invite(&mut c, &mut r),
        InviteOutcome::Reject(Reject { code: 503, reason: "Service Unavailable".into() })
    );
}
