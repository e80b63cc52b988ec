//! Each hook is called and its decision applied; chain order; defaults;
//! per-call isolation; the first-party plugins as real components.

use trunkline_plugin_host::chain::{DialOutcome, InviteOutcome};
use trunkline_plugin_host::types::{
    Direction, Fallback, Header, RedirectDecision, Response, ResponseRecord, Summary, Target,
};
use trunkline_plugin_host::types::{HangupBy, Health, Outcome, Transport};
use trunkline_plugin_host::RuntimeOptions;
use trunkline_tests::{call, chain, entry, wasm};

use crate::{directory, fixture, fixture_with};

fn target(uri: &str, priority: u16) -> Target {
    Target {
        uri: uri.into(),
        priority,
        weight: 1,
        enabled: true,
        transport: Transport::Udp,
        health: Health::Unknown,
        group: None,
    }
}

fn var<'a>(c: &'a trunkline_plugin_host::types::Call, name: &str) -> Option<&'a str> {
    c.variables.iter().find(|v| v.name == name).map(|v| v.value.as_str())
}

fn summary() -> Summary {
    Summary {
        outcome: Outcome::Answered,
        status: 200,
        target_uri: Some("sip:127.0.0.1:5080".into()),
        pdd_ms: Some(120),
        duration_ms: 1000,
        hangup_by: HangupBy::Caller,
        attempts: 1,
    }
}

#[test]
fn first_party_plugins_load_and_declare_the_policy_world() {
    let f = fixture(&[
        (wasm::E164_GUARD, "e164-guard"),
        (wasm::DIVERSION_GUARD, "diversion-guard"),
        (wasm::CUSTOMER_ROUTING, "customer-routing"),
        (wasm::DR_TWIML_FALLBACK, "dr-twiml-fallback"),
    ]);
    let plugins = f.rt.plugins();
    assert_eq!(plugins.len(), 4);
    for p in plugins {
        assert_eq!(p.info.exports, vec!["trunkline:policy/hooks@0.2.0".to_string()], "{}", p.info.name);
        assert!(p.info.version.len() == 12 && p.info.version.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(
            p.info.imports.iter().any(|i| i.starts_with("wasi:cli/")),
            "std guests import WASI: {:?}",
            p.info.imports
        );
    }
}

#[test]
fn e164_guard_component_rejects_as_the_reference_says() {
    let f = fixture(&[(wasm::E164_GUARD, "e164-guard")]);
    let ch = chain(vec![entry("e164-guard", "", trunkline_tests::steady())]);
    let cases = [
        ("+14155550199", "+12125550123", InviteOutcome::Continue),
        ("+14155550199", "2125550123", InviteOutcome::Reject(reject(400, "To is not an E.164 number"))),
        ("+18005550100", "+12125550123", InviteOutcome::Reject(reject(403, "Toll-free caller ID not allowed"))),
    ];
    for (from, to, want) in cases {
        let (mut c, mut r) = call(Direction::Termination, from, to);
        let mut s = f.rt.start_call(&ch, "AC0001", &c.call_id.clone());
        assert_eq!(s.on_invite(&mut c, &mut r), want, "{from} -> {to}");
    }
    assert_eq!(f.rt.services().metrics.counter_value("e164-guard", "rejected_toll_free"), 1);
}

fn reject(code: u16, reason: &str) -> trunkline_plugin_host::types::Reject {
    trunkline_plugin_host::types::Reject { code, reason: reason.into() }
}

#[test]
fn diversion_guard_component_checks_and_adds_diversion() {
    let opts = RuntimeOptions { numbers: directory(), ..RuntimeOptions::default() };
    let f = fixture_with(&[(wasm::DIVERSION_GUARD, "diversion-guard")], opts);
    let ch = chain(vec![entry("diversion-guard", "", trunkline_tests::steady())]);

    // Termination: ours+foreign removed, ours+owned kept, other domain kept.
    let (mut c, mut r) = call(Direction::Termination, "+14155550199", "+12125550123");
    for req in [&mut r.headers, &mut c.headers] {
        req.retain(|h| h.name != "Diversion");
        req.push(Header { name: "Diversion".into(), value: "<sip:+19995550000@trunkline.test>".into() });
        req.push(Header { name: "Diversion".into(), value: "<sip:+14155550100@trunkline.test>".into() });
        req.push(Header { name: "Diversion".into(), value: "<sip:+19995550001@other.example>".into() });
    }
    let mut s = f.rt.start_call(&ch, "AC0001", "div-1");
    assert_eq!(s.on_invite(&mut c, &mut r), InviteOutcome::Continue);
    let kept: Vec<&str> = r.headers.iter().filter(|h| h.name == "Diversion").map(|h| h.value.as_str()).collect();
    assert_eq!(kept, ["<sip:+14155550100@trunkline.test>", "<sip:+19995550001@other.example>"]);

    // Origination: the dialed number is added in pre-dial.
    let (c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    let mut s = f.rt.start_call(&ch, "AC0001", "div-2");
    assert_eq!(s.pre_dial(&c, &mut r, &target("sip:127.0.0.1:5080", 10)), Ok(DialOutcome::Send));
    assert!(r.headers.iter().any(|h| h.name == "Diversion" && h.value == "<sip:+14155550100@trunkline.test>"));

    // A reload took +14155550100 from the account: the plugin sees it at once.
    f.rt.set_numbers(std::sync::Arc::new(trunkline_plugin_host::StaticDirectory::default()));
    let (mut c, mut r) = call(Direction::Termination, "+14155550199", "+12125550123");
    for req in [&mut r.headers, &mut c.headers] {
        req.retain(|h| h.name != "Diversion");
        req.push(Header { name: "Diversion".into(), value: "<sip:+14155550100@trunkline.test>".into() });
    }
    let mut s = f.rt.start_call(&ch, "AC0001", "div-3");
    assert_eq!(s.on_invite(&mut c, &mut r), InviteOutcome::Continue);
    assert!(!r.headers.iter().any(|h| h.name == "Diversion"), "no longer the account's number: removed");
}

#[test]
fn customer_routing_component_orders_the_group() {
    let f = fixture(&[(wasm::CUSTOMER_ROUTING, "customer-routing")]);
    let cfg = r#"
        zone = "America/New_York"
        [groups]
        sales = ["sip:127.0.0.1:5081", "sip:127.0.0.1:5082"]
        [[rules]]
        prefix = "+1415"
        group = "sales"
    "#;
    let ch = chain(vec![entry("customer-routing", cfg, trunkline_tests::steady())]);
    let (c, _) = call(Direction::Origination, "+12125550123", "+14155550100");
    let mut s = f.rt.start_call(&ch, "AC0001", "cr-1");
    let sel = s.select_uri(&c, vec![target("sip:127.0.0.1:5080", 10)]).unwrap();
    assert!(sel.ordered);
    let uris: Vec<&str> = sel.targets.iter().map(|t| t.uri.as_str()).collect();
    assert_eq!(uris, ["sip:127.0.0.1:5081", "sip:127.0.0.1:5082"]);
    assert_eq!(sel.targets[0].group.as_deref(), Some("sales"));
    // Not matching: the trunk's own candidates stay, unordered.
    let (c, _) = call(Direction::Origination, "+12125550123", "+16505550100");
    let sel = s.select_uri(&c, vec![target("sip:127.0.0.1:5080", 10)]).unwrap();
    assert!(!sel.ordered);
    assert_eq!(sel.targets.len(), 1);
}

#[test]
fn dr_twiml_fallback_component_returns_the_dr_url() {
    let f = fixture(&[(wasm::DR_TWIML_FALLBACK, "dr-twiml-fallback")]);
    let ch = chain(vec![entry("dr-twiml-fallback", r#"url = "http://127.0.0.1:18080/dr""#, trunkline_tests::steady())]);
    let (c, _) = call(Direction::Origination, "+12125550123", "+14155550100");
    let mut s = f.rt.start_call(&ch, "AC0001", "dr-1");
    assert_eq!(s.on_failure(&c, None), Fallback::TwimlUrl("http://127.0.0.1:18080/dr".into()));
}

#[test]
fn chain_runs_in_order_and_edits_accumulate() {
    let f = fixture(&[(wasm::TP_RECORDER, "recorder")]);
    let ch = chain(
        ["one", "two", "three"]
            .iter()
            .map(|n| entry("recorder", &format!("name = \"{n}\""), trunkline_tests::steady()))
            .collect(),
    );
    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    let mut s = f.rt.start_call(&ch, "AC0001", "chain-1");
    assert_eq!(s.on_invite(&mut c, &mut r), InviteOutcome::Continue);
    assert_eq!(var(&c, "order"), Some("one,two,three"));
    let chain_headers: Vec<&str> = r.headers.iter().filter(|h| h.name == "X-Chain").map(|h| h.value.as_str()).collect();
    assert_eq!(chain_headers, ["one", "two", "three"]);
    let hooks: Vec<&str> = s.trace().iter().map(|t| t.hook).collect();
    assert_eq!(hooks, ["on-invite"; 3]);
}

#[test]
fn a_reject_stops_the_chain() {
    let f = fixture(&[(wasm::TP_RECORDER, "recorder")]);
    let ch = chain(vec![
        entry("recorder", "name = \"one\"", trunkline_tests::steady()),
        entry("recorder", "name = \"two\"\nreject_code = 486", trunkline_tests::steady()),
        entry("recorder", "name = \"three\"", trunkline_tests::steady()),
    ]);
    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    let mut s = f.rt.start_call(&ch, "AC0001", "chain-2");
    assert_eq!(s.on_invite(&mut c, &mut r), InviteOutcome::Reject(reject(486, "rejected by two")));
    assert_eq!(s.trace().len(), 2, "the third plugin never ran");
}

#[test]
fn defaults_change_nothing() {
    let f = fixture(&[(wasm::TP_DEFAULTS, "defaults")]);
    let ch = chain(vec![entry("defaults", "", trunkline_tests::steady())]);
    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    let (c0, r0) = (c.clone(), r.clone());
    let mut s = f.rt.start_call(&ch, "AC0001", "defaults-1");
    assert_eq!(s.on_invite(&mut c, &mut r), InviteOutcome::Continue);
    assert_eq!((&c, &r), (&c0, &r0));
    let cands = vec![target("sip:a.example", 10), target("sip:b.example", 20)];
    let sel = s.select_uri(&c, cands.clone()).unwrap();
    assert_eq!((sel.targets, sel.ordered), (cands, false));
    assert_eq!(s.pre_dial(&c, &mut r, &target("sip:a.example", 10)), Ok(DialOutcome::Send));
    assert_eq!(r, r0);
    let resp = Response::from(ResponseRecord {
        status: 302,
        reason: "Moved".into(),
        contacts: vec!["sip:x@y.example".into()],
    });
    assert_eq!(s.on_redirect(&c, &resp), RedirectDecision::Default);
    assert_eq!(s.on_failure(&c, Some(&resp)), Fallback::Default);
    let trace = s.on_call_end(&c, &summary());
    let hooks: Vec<&str> = trace.iter().map(|t| t.hook).collect();
    assert_eq!(hooks, ["on-invite", "select-uri", "pre-dial", "on-redirect", "on-failure", "on-call-end"]);
}

/// Headers travel on demand (`headers` interface), not with the hook's
/// arguments: each read sees the right message, with earlier plugins'
/// edits, and compact names find their full-name headers.
#[test]
fn plugins_read_the_headers_of_the_hooks_message_on_demand() {
    let f = fixture(&[(wasm::TP_RECORDER, "recorder")]);
    let a = entry("recorder", "name = \"a\"", trunkline_tests::steady());
    let b = entry("recorder", "name = \"b\"\nfollow_header = \"X-Next\"", trunkline_tests::steady());
    let ch = chain(vec![a, b]);
    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    let from = r.headers.first("From").expect("the fixture has a From").to_owned();
    let mut s = f.rt.start_call(&ch, "AC0001", "headers-1");
    assert_eq!(s.on_invite(&mut c, &mut r), InviteOutcome::Continue);
    // `b` ran last: it saw the X-Chain header `a` added, and the From by `f`.
    assert_eq!(var(&c, "seen-x-chain"), Some("a"));
    assert_eq!(var(&c, "request-from"), Some(from.as_str()));

    assert_eq!(s.pre_dial(&c, &mut r, &target("sip:a.example", 10)), Ok(DialOutcome::Send));
    let saw: Vec<&str> = r.headers.named("X-Saw-Dialed-By").collect();
    assert_eq!(saw, ["a"], "b read the outgoing request after a's edit");

    let mut resp = Response::from(ResponseRecord {
        status: 302,
        reason: "Moved".into(),
        contacts: vec!["sip:x@y.example".into()],
    });
    resp.headers.push(Header { name: "x-next".into(), value: "sip:+14155550100@pbx3.example".into() });
    assert_eq!(s.on_redirect(&c, &resp), RedirectDecision::Follow("sip:+14155550100@pbx3.example".into()));
    let bare = Response::from(ResponseRecord { status: 302, reason: "Moved".into(), contacts: vec![] });
    assert_eq!(s.on_redirect(&c, &bare), RedirectDecision::NextTarget, "no X-Next header in this response");
}

#[test]
fn plugins_read_the_call_and_request_through_their_handles_with_earlier_plugins_edits() {
    let f = fixture(&[(wasm::TP_RECORDER, "recorder")]);
    let a = entry("recorder", "name = \"a\"\nrewrite_user = \"+14155550199\"", trunkline_tests::steady());
    let b = entry("recorder", "name = \"b\"", trunkline_tests::steady());
    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    let mut s = f.rt.start_call(&chain(vec![a, b]), "AC0001", "call-1");
    assert_eq!(s.on_invite(&mut c, &mut r), InviteOutcome::Continue);
    // `b` ran last: it read every part of the call through its handle, and
    // saw the request-URI user `a` rewrote and the 7 variables `a` set.
    let parts = "3848276298220188511@127.0.0.1 Direction::Origination AC0001 TK00000000000000000000000000000001 acme-prod \
                 127.0.0.1:5070 Transport::Udp from=+12125550123@carrier.example to=+14155550100 ruri=+14155550199 vars=7";
    assert_eq!(var(&c, "call-parts"), Some(parts));
    // ... and the request through its handle, with `a`'s rewrite.
    assert!(r.body.len() > 100, "the INVITE carries an SDP offer");
    let line = format!("INVITE sip:+14155550199@trunkline.test body={}", r.body.len());
    assert_eq!(var(&c, "request-line"), Some(line.as_str()));
    assert_eq!(c.request_uri.user.as_deref(), Some("+14155550199"));
}

#[test]
fn every_hook_decision_is_applied() {
    let opts = RuntimeOptions { numbers: directory(), ..RuntimeOptions::default() };
    let f = fixture_with(&[(wasm::TP_RECORDER, "recorder")], opts);
    let cfg = "name = \"rec\"\nreverse = true\nfollow = \"sip:+14155550100@pbx2.example\"\ntwiml_url = \"http://127.0.0.1:18080/dr\"";
    let ch = chain(vec![entry("recorder", cfg, trunkline_tests::steady())]);
    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    let mut s = f.rt.start_call(&ch, "AC0001", "hooks-1");
    assert_eq!(s.on_invite(&mut c, &mut r), InviteOutcome::Continue);
    assert_eq!(var(&c, "order"), Some("rec"));
    let sel = s.select_uri(&c, vec![target("sip:a.example", 10), target("sip:b.example", 20)]).unwrap();
    assert!(sel.ordered);
    assert_eq!(sel.targets[0].uri, "sip:b.example");
    assert_eq!(s.pre_dial(&c, &mut r, &target("sip:a.example", 10)), Ok(DialOutcome::Send));
    assert!(r.headers.iter().any(|h| h.name == "X-Dialed-By" && h.value == "rec"));
    // pre-dial read the outgoing request's line through its handle.
    assert_eq!(r.headers.first("X-Dialed-Request"), Some("INVITE sip:+14155550100@trunkline.test"));
    assert_eq!(s.pre_dial(&c, &mut r, &target("sip:skip.example", 10)), Ok(DialOutcome::Skip));
    let resp = Response::from(ResponseRecord {
        status: 302,
        reason: "Moved".into(),
        contacts: vec!["sip:x@y.example".into()],
    });
    assert_eq!(s.on_redirect(&c, &resp), RedirectDecision::Follow("sip:+14155550100@pbx2.example".into()));
    assert_eq!(s.on_failure(&c, None), Fallback::TwimlUrl("http://127.0.0.1:18080/dr".into()));
    s.on_call_end(&c, &summary());
    assert_eq!(f.rt.services().metrics.counter_value("recorder", "ended"), 1);
}

#[test]
fn instances_are_per_call_and_kv_is_per_account() {
    let f = fixture(&[(wasm::TP_RECORDER, "recorder")]);
    let ch = chain(vec![entry("recorder", "name = \"r\"", trunkline_tests::steady())]);
    for (n, account) in [(1, "AC0001"), (2, "AC0001"), (1, "AC0002"), (3, "AC0001")] {
        let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
        let mut s = f.rt.start_call(&ch, account, "iso");
        s.on_invite(&mut c, &mut r);
        assert_eq!(var(&c, "instance-invites"), Some("1"), "a fresh instance per call: no guest memory survives");
        assert_eq!(var(&c, "invites-r"), Some(n.to_string().as_str()), "kv counts per account ({account})");
    }
}

#[test]
fn hooks_a_plugin_does_not_define_are_not_called_and_cost_no_instance() {
    let f = fixture(&[(wasm::TP_VERSION_A, "versioned"), (wasm::TP_DEFAULTS, "defaults")]);
    // `#[policy]` on an impl that defines only on_invite; `export_policy!` declares every hook.
    assert_eq!(f.rt.plugin("versioned").unwrap().hook_names(), ["on-invite"]);
    assert_eq!(f.rt.plugin("defaults").unwrap().hook_names().len(), 6);

    let limits = trunkline_tests::steady();
    let ch = chain(vec![entry("versioned", "", limits.clone())]);
    let (c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    let mut s = f.rt.start_call(&ch, "AC0001", "skip-1");
    let cands = vec![target("sip:a.example", 10)];
    assert_eq!(s.select_uri(&c, cands.clone()).unwrap().targets, cands);
    assert_eq!(s.pre_dial(&c, &mut r, &cands[0]), Ok(DialOutcome::Send));
    assert_eq!(s.on_failure(&c, None), Fallback::Default);
    let trace = s.on_call_end(&c, &summary());
    assert!(trace.is_empty(), "no hook of the plugin ran: {trace:?}");
    assert_eq!(f.rt.ready_instances("versioned", &limits), 0, "no instance was asked for, so none was prepared");

    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    let mut s = f.rt.start_call(&ch, "AC0001", "skip-2");
    assert_eq!(s.on_invite(&mut c, &mut r), InviteOutcome::Continue);
    assert_eq!(var(&c, "version"), Some("a"), "the hook it defines still runs");
}

/// Wait (bounded; not a timing assertion) until `plugin` has an instance prepared ahead.
fn until_ready(rt: &trunkline_plugin_host::Runtime, plugin: &str, limits: &trunkline_plugin_host::Limits) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while rt.ready_instances(plugin, limits) == 0 {
        assert!(std::time::Instant::now() < deadline, "no instance of {plugin} was ever prepared");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn instances_prepared_ahead_serve_one_call_each_with_that_calls_scope() {
    let f = fixture(&[(wasm::TP_RECORDER, "recorder")]);
    let limits = trunkline_tests::steady();
    let first = chain(vec![entry("recorder", "name = \"first\"", limits.clone())]);
    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    f.rt.start_call(&first, "AC0009", "warm-0").on_invite(&mut c, &mut r);
    for (i, (account, name, n)) in
        [("AC0001", "a", 1), ("AC0002", "b", 1), ("AC0001", "c", 2), ("AC0001", "d", 3)].iter().enumerate()
    {
        // An instance is ready, so the call takes it (a take never instantiates when one is ready).
        until_ready(&f.rt, "recorder", &limits);
        let ch = chain(vec![entry("recorder", &format!("name = \"{name}\""), limits.clone())]);
        let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
        let mut s = f.rt.start_call(&ch, account, &format!("warm-{i}"));
        assert_eq!(s.on_invite(&mut c, &mut r), InviteOutcome::Continue);
        assert_eq!(var(&c, "order"), Some(*name), "the call's own plugin config");
        assert_eq!(var(&c, "instance-invites"), Some("1"), "a never-used instance: no guest memory from another call");
        let count = n.to_string();
        assert_eq!(
            var(&c, &format!("invites-{name}")),
            Some(count.as_str()),
            "kv is the call's account's ({account}), not the preparer's"
        );
    }
}

#[test]
fn the_calling_thread_prepares_instances_when_it_works_while_idle() {
    let f = fixture(&[(wasm::TP_VERSION_A, "versioned")]);
    let limits = trunkline_tests::steady();
    let ch = chain(vec![entry("versioned", "", limits.clone())]);
    let one_call = |id: &str| {
        let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
        assert_eq!(f.rt.start_call(&ch, "AC0001", id).on_invite(&mut c, &mut r), InviteOutcome::Continue);
        assert_eq!(var(&c, "version"), Some("a"));
    };
    let full_and_idle = || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while f.rt.ready_instances("versioned", &limits) < 8 || !f.rt.warmer_idle() {
            assert!(std::time::Instant::now() < deadline, "the set of 8 was never refilled");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    };
    // The first call finds none ready: it makes its own, and the empty set
    // is refilled at once by the background thread.
    one_call("idle-0");
    full_and_idle();
    assert_eq!(f.rt.instance_counts().made_on_call_path, 1);
    // Each round takes 5 of the 8; the refill (and the drops) wait 2 ms
    // for this thread before the background thread takes them.
    for round in 1..=5 {
        for i in 0..5 {
            one_call(&format!("idle-{round}-{i}"));
        }
        while f.rt.work_while_idle() {}
        full_and_idle();
    }
    assert!(!f.rt.work_while_idle(), "nothing left to do");
    let counts = f.rt.instance_counts();
    assert_eq!(counts.made_on_call_path, 1, "{counts:?}");
    assert_eq!(counts.prepared_while_idle + counts.prepared_in_background, 8 + 5 * 5, "{counts:?}");
    assert!(counts.prepared_while_idle > 0, "{counts:?}");
}

#[test]
fn a_chain_and_a_reloaded_version_get_instances_before_their_first_call() {
    let f = fixture(&[(wasm::TP_VERSION_A, "versioned")]);
    let limits = trunkline_tests::steady();
    let ch = chain(vec![entry("versioned", "", limits.clone())]);
    let ready_after_idle_work = || {
        while f.rt.work_while_idle() {}
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while f.rt.ready_instances("versioned", &limits) < 8 || !f.rt.warmer_idle() {
            assert!(std::time::Instant::now() < deadline, "the set of 8 was never filled");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    };
    let one_call = |id: &str| {
        let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
        assert_eq!(f.rt.start_call(&ch, "AC0001", id).on_invite(&mut c, &mut r), InviteOutcome::Continue);
        var(&c, "version").map(str::to_owned)
    };
    assert_eq!(f.rt.ready_instances("versioned", &limits), 0, "nothing is prepared unasked");
    f.rt.prepare_for(&ch);
    ready_after_idle_work();
    assert_eq!(one_call("first").as_deref(), Some("a"));
    // A new version: it gets a set under the limits the old one served.
    trunkline_tests::install(wasm::TP_VERSION_B, f.dir.path(), "versioned");
    f.rt.load_file(&f.dir.path().join("versioned.wasm"), trunkline_plugin_host::LoadSource::Admin).unwrap();
    ready_after_idle_work();
    assert_eq!(one_call("after-reload").as_deref(), Some("b"));
    let counts = f.rt.instance_counts();
    assert_eq!(counts.made_on_call_path, 0, "{counts:?}");
    assert_eq!(counts.prepared_while_idle + counts.prepared_in_background, 16, "{counts:?}");
}

#[test]
fn prewarm_zero_prepares_nothing() {
    let opts = RuntimeOptions { prewarm: 0, ..RuntimeOptions::default() };
    let f = fixture_with(&[(wasm::TP_VERSION_A, "versioned")], opts);
    let limits = trunkline_tests::steady();
    let ch = chain(vec![entry("versioned", "", limits.clone())]);
    for i in 0..3 {
        let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
        assert_eq!(
            f.rt.start_call(&ch, "AC0001", &format!("cold-{i}")).on_invite(&mut c, &mut r),
            InviteOutcome::Continue
        );
        assert_eq!(var(&c, "version"), Some("a"));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(f.rt.ready_instances("versioned", &limits), 0);
}

#[test]
fn a_plugin_reads_the_media_facts_and_asks_for_recording_only_in_pre_dial_on_an_anchored_call() {
    let f = fixture(&[(wasm::TP_RECORDER, "recorder")]);
    let ch = chain(vec![entry("recorder", "name = \"rec\"\nrecord = \"dual\"", trunkline_tests::steady())]);
    let (c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    let mut s = f.rt.start_call(&ch, "AC0001", "media-1");
    assert_eq!(s.recording_requested(), None);
    assert_eq!(s.pre_dial(&c, &mut r, &target("sip:127.0.0.1:5080", 10)), Ok(DialOutcome::Send));
    let header = |name: &str| r.headers.iter().find(|h| h.name == name).map(|h| h.value.clone());
    assert_eq!(header("X-Media").as_deref(), Some("anchored=true secure=false codecs=PCMU/8000,telephone-event/8000"));
    assert_eq!(header("X-Recording").as_deref(), Some("true"));
    assert_eq!(s.recording_requested(), Some(trunkline_plugin_host::types::RecordingMode::Dual));
    // A trunk that does not relay media cannot record: refused.
    let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
    std::sync::Arc::make_mut(&mut c.record).media.anchored = false;
    let mut s = f.rt.start_call(&ch, "AC0001", "media-2");
    assert_eq!(s.pre_dial(&c, &mut r, &target("sip:127.0.0.1:5080", 10)), Ok(DialOutcome::Send));
    assert_eq!(r.headers.iter().find(|h| h.name == "X-Recording").map(|h| h.value.as_str()), Some("false"));
    assert_eq!(s.recording_requested(), None);
}

/// A shared kv that answers each call after `delay` (or, given less time,
/// fails as unavailable when its deadline is up), counting `incr`s.
struct SlowKv {
    delay: std::time::Duration,
    budget: std::time::Duration,
    count: std::sync::atomic::AtomicI64,
}

impl SlowKv {
    fn wait(&self, deadline: std::time::Duration) -> Result<(), trunkline_plugin_host::KvRefusal> {
        std::thread::sleep(self.delay.min(deadline));
        if deadline < self.delay {
            return Err(trunkline_plugin_host::KvRefusal::Unavailable);
        }
        Ok(())
    }
}

impl trunkline_plugin_host::SharedKv for SlowKv {
    fn get_many(
        &self,
        _: &str,
        keys: &[String],
        deadline: std::time::Duration,
    ) -> Result<Vec<Option<String>>, trunkline_plugin_host::KvRefusal> {
        self.wait(deadline).map(|_| vec![None; keys.len()])
    }
    fn set(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<u32>,
        _: usize,
        deadline: std::time::Duration,
    ) -> Result<(), trunkline_plugin_host::KvRefusal> {
        self.wait(deadline)
    }
    fn incr(
        &self,
        _: &str,
        _: &str,
        delta: i64,
        _: Option<u32>,
        _: usize,
        deadline: std::time::Duration,
    ) -> Result<i64, trunkline_plugin_host::KvRefusal> {
        self.wait(deadline)?;
        Ok(self.count.fetch_add(delta, std::sync::atomic::Ordering::Relaxed) + delta)
    }
    fn budget(&self) -> std::time::Duration {
        self.budget
    }
}

#[test]
fn waiting_on_a_shared_kv_is_bounded_and_not_counted_against_the_hooks_cpu_deadline() {
    use std::time::Duration;
    for (budget, want) in [(Duration::from_secs(2), "1"), (Duration::from_millis(100), "-1")] {
        let f = fixture(&[(wasm::TP_RECORDER, "recorder")]);
        let kv = SlowKv { delay: Duration::from_millis(300), budget, count: Default::default() };
        assert!(f.rt.share_kv(std::sync::Arc::new(kv)));
        // A 50 ms deadline, and 300 ms (or the 100 ms budget) waiting on
        // the kv: the hook still completes, with the kv's answer (or with
        // `unavailable`, which tp-recorder records as -1).
        let limits = trunkline_plugin_host::Limits { hook_timeout_ms: 50, ..trunkline_tests::steady() };
        let ch = chain(vec![entry("recorder", "name = \"r\"", limits)]);
        let (mut c, mut r) = call(Direction::Origination, "+12125550123", "+14155550100");
        let mut s = f.rt.start_call(&ch, "AC0001", "slow-kv");
        s.on_invite(&mut c, &mut r);
        assert_eq!(var(&c, "invites-r"), Some(want), "budget {budget:?}: the hook ran to its end");
        assert!(f.rt.plugin("recorder").is_some_and(|p| !p.is_quarantined()));
    }
}
