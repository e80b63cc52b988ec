//! One hook call through the full plugin runtime, as a call makes it: a
//! never-used, isolated instance (new store, limits, deadline), a realistic
//! 15-header INVITE, the `on-invite` hook of a real plugin, then the
//! instance dropped.
//!
//! Three ways to get the instance, all measured:
//! - made on the call path (`prewarm = 0`): the call pays instantiation,
//!   the guest's `init` and the drop;
//! - prepared ahead by the calling thread while it is idle
//!   (`Runtime::work_while_idle`), as the router's engine loop does when
//!   no message is waiting: the call pays the hook;
//! - prepared ahead by the background thread, as when the engine thread is
//!   busy: the call pays the hook, on memory last written by the other core.
//!
//! Instances kept ready: 8 per plugin. Samples wait (unmeasured, spinning)
//! until an instance is ready and no preparing or dropping is pending,
//! i.e. the rate is one the router keeps up with, below saturation.
//!
//! The call's data is cloned before the clock starts (the router builds it
//! once per call, not per hook). Neither the call nor the headers are
//! lowered into the plugin whole: it reads the parts it wants through its
//! `call` handle and the `headers` interface.
//!
//! Besides criterion's report, prints the median and p99 of 20,000 single
//! calls, which is what the target is written in; then `e164-guard` and the
//! plugin that does nothing again, calls alternating between them (both
//! see the same machine; each call follows one of another plugin).
//!
//! Run: `cargo bench -p trunkline-bench --bench hook_call`
//! Experiments: TL_KEEP_RESIDENT=bytes TL_NO_PAGEMAP=1 TL_COW=1.

/// The allocator the router binary ships with (host/router/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use trunkline_plugin_host::types::{Call, Direction, Request};
use trunkline_plugin_host::{Chain, Limits, LoadSource, Runtime, RuntimeOptions};
use trunkline_tests::{call, chain, entry, install, wasm};

const PLUGINS: [(&str, &str); 5] = [
    (wasm::E164_GUARD, "e164-guard"),
    (wasm::DIVERSION_GUARD, "diversion-guard"),
    (wasm::CUSTOMER_ROUTING, "customer-routing"),
    (wasm::DR_TWIML_FALLBACK, "dr-twiml-fallback"),
    (wasm::TP_DEFAULTS, "defaults"),
];

fn runtime(prewarm: usize) -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    for (w, n) in PLUGINS {
        install(w, dir.path(), n);
    }
    let mut opts = RuntimeOptions { prewarm, ..RuntimeOptions::default() };
    if let Some(v) = std::env::var("TL_KEEP_RESIDENT").ok().and_then(|v| v.parse().ok()) {
        opts.engine.keep_resident_bytes = v;
    }
    opts.engine.pagemap_scan = std::env::var_os("TL_NO_PAGEMAP").is_none();
    opts.engine.memory_init_cow = std::env::var_os("TL_COW").is_some();
    let rt = Runtime::new(opts).unwrap();
    for (_, r) in rt.load_dir(dir.path(), LoadSource::Startup).unwrap() {
        r.unwrap();
    }
    (dir, rt)
}

fn percentiles(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{label}: n={} median={:.2} us p90={:.2} us p99={:.2} us",
        samples.len(),
        at(0.50).as_secs_f64() * 1e6,
        at(0.90).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6
    );
}

/// One call's `on-invite` through `ch`: a fresh session, then dropped.
fn one_call(rt: &Runtime, ch: &Chain, c: &mut Call, r: &mut Request) {
    let mut s = rt.start_call(ch, "AC0001", "bench");
    std::hint::black_box(s.on_invite(c, r));
}

/// Where instances are prepared ahead.
#[derive(Clone, Copy, PartialEq)]
enum Prep {
    /// Not at all: each call makes its own.
    CallPath,
    /// By the calling thread, while it waits for the next call.
    Idle,
    /// By the runtime's background thread.
    Background,
}

/// Until every plugin of `ch` that defines `on-invite` has an instance
/// ready (the first call of a chain finds none and asks for them) and no
/// work is pending; `Prep::Idle` does that work here.
fn wait_ready(rt: &Runtime, ch: &Chain, prep: Prep) {
    if prep == Prep::Idle {
        while rt.work_while_idle() {}
    }
    for e in &ch.entries {
        if !rt.plugin(&e.plugin).is_some_and(|p| p.hook_names().contains(&"on-invite")) {
            continue;
        }
        while rt.ready_instances(&e.plugin, &e.limits) == 0 {
            std::hint::spin_loop();
        }
    }
    while !rt.warmer_idle() {
        std::hint::spin_loop();
    }
}

/// `n` samples of one call through `ch`, each timed alone, prepared
/// instances waited for (unmeasured) before each unless `prep` is `CallPath`.
fn samples(rt: &Runtime, ch: &Chain, c0: &Call, r0: &Request, n: usize, prep: Prep) -> Vec<Duration> {
    interleaved(rt, &[ch], c0, r0, n, prep).pop().expect("one chain")
}

/// `n` samples of one call through each of `chains`, taken in turn (call
/// 1 through each chain, then call 2...), so that every chain sees the
/// same machine: on this shared machine speed changes within a run.
fn interleaved(rt: &Runtime, chains: &[&Chain], c0: &Call, r0: &Request, n: usize, prep: Prep) -> Vec<Vec<Duration>> {
    for ch in chains {
        one_call(rt, ch, &mut c0.clone(), &mut r0.clone());
    }
    let mut out = vec![Vec::with_capacity(n); chains.len()];
    for _ in 0..n {
        for (ch, times) in chains.iter().zip(&mut out) {
            if prep != Prep::CallPath {
                wait_ready(rt, ch, prep);
            }
            let (mut c, mut r) = (c0.clone(), r0.clone());
            let t = Instant::now();
            one_call(rt, ch, &mut c, &mut r);
            times.push(t.elapsed());
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let (call0, req0) = call(Direction::Termination, "+14155550199", "+12125550123");
    let (mut bare_call, mut bare_req) = (call0.clone(), req0.clone());
    bare_call.headers.clear();
    bare_req.headers.clear();
    let single = |p: &str| chain(vec![entry(p, "", Limits::default())]);
    let first_party = chain(
        ["e164-guard", "diversion-guard", "customer-routing", "dr-twiml-fallback"]
            .iter()
            .map(|p| entry(p, "", Limits::default()))
            .collect(),
    );

    let cases = [
        (Prep::CallPath, "instance made on the call path"),
        (Prep::Idle, "instance prepared ahead while idle"),
        (Prep::Background, "instance prepared ahead in the background"),
    ];
    for (prep, how) in cases {
        let prewarm = if prep == Prep::CallPath { 0 } else { 8 };
        let (_dir, rt) = runtime(prewarm);
        for p in ["e164-guard", "defaults"] {
            let ch = single(p);
            for _ in 0..2_000 {
                one_call(&rt, &ch, &mut call0.clone(), &mut req0.clone());
            }
            percentiles(&format!("on-invite, {how}, {p}"), samples(&rt, &ch, &call0, &req0, 20_000, prep));
        }
        // The same two, calls alternating: each sees the same machine, and
        // each call follows one of another plugin (as in a router).
        let (guard, noop) = (single("e164-guard"), single("defaults"));
        let mut both = interleaved(&rt, &[&guard, &noop], &call0, &req0, 20_000, prep);
        let noop_samples = both.pop().expect("two chains");
        percentiles(
            &format!("on-invite, {how}, e164-guard, alternating with defaults"),
            both.pop().expect("two chains"),
        );
        percentiles(&format!("on-invite, {how}, defaults, alternating with e164-guard"), noop_samples);
        if prep == Prep::Background {
            continue;
        }
        let ch = single("defaults");
        percentiles(
            &format!("on-invite, {how}, defaults, no headers"),
            samples(&rt, &ch, &bare_call, &bare_req, 20_000, prep),
        );
        // The first-party chain on one call: e164-guard and diversion-guard
        // define on-invite; the other two do not, so they get no instance.
        percentiles(
            &format!("on-invite, {how}, 4-plugin first-party chain"),
            samples(&rt, &first_party, &call0, &req0, 10_000, prep),
        );

        let mut g = c.benchmark_group(format!("hook_call/prewarm_{prewarm}"));
        // Back to back, as fast as calls come: the background thread runs
        // beside the calls (and falls behind: calls then make instances).
        g.bench_function("on_invite/e164-guard", |b| {
            let ch = single("e164-guard");
            b.iter_batched(
                || (call0.clone(), req0.clone()),
                |(mut c, mut r)| one_call(&rt, &ch, &mut c, &mut r),
                criterion::BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
