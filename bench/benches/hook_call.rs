//! One hook call through the full plugin runtime, as a call makes it: a
//! fresh, isolated instance from the pool (new store, limits, deadline),
//! a realistic 15-header INVITE, the `on-invite` hook of a real plugin,
//! then the instance dropped.
//!
//! Besides criterion's report, prints the median and p99 of 20,000 single
//! calls, which is what the target is written in.
//!
//! Run: `cargo bench -p trunkline-bench --bench hook_call`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use trunkline_plugin_host::types::Direction;
use trunkline_plugin_host::{Limits, LoadSource, Runtime, RuntimeOptions};
use trunkline_tests::{call, chain, entry, install, wasm};

fn runtime_with(plugins: &[(&str, &str)]) -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    for (w, n) in plugins {
        install(w, dir.path(), n);
    }
    let mut opts = RuntimeOptions::default();
    // Experiments: TL_KEEP_RESIDENT=bytes TL_NO_PAGEMAP=1 TL_NO_COW=1.
    if let Some(v) = std::env::var("TL_KEEP_RESIDENT").ok().and_then(|v| v.parse().ok()) {
        opts.engine.keep_resident_bytes = v;
    }
    if std::env::var_os("TL_NO_PAGEMAP").is_some() {
        opts.engine.pagemap_scan = false;
    }
    if std::env::var_os("TL_NO_COW").is_some() {
        opts.engine.memory_init_cow = false;
    }
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

fn bench(c: &mut Criterion) {
    let (_dir, rt) = runtime_with(&[
        (wasm::E164_GUARD, "e164-guard"),
        (wasm::DIVERSION_GUARD, "diversion-guard"),
        (wasm::CUSTOMER_ROUTING, "customer-routing"),
        (wasm::DR_TWIML_FALLBACK, "dr-twiml-fallback"),
        (wasm::TP_DEFAULTS, "defaults"),
    ]);
    let (call0, req0) = call(Direction::Termination, "+14155550199", "+12125550123");

    let one = |plugin: &str| {
        let ch = chain(vec![entry(plugin, "", Limits::default())]);
        let (call0, req0) = (call0.clone(), req0.clone());
        let rt = rt.clone();
        move || {
            let (mut c, mut r) = (call0.clone(), req0.clone());
            let mut s = rt.start_call(&ch, "AC0001", "bench");
            let out = s.on_invite(&mut c, &mut r);
            std::hint::black_box(out);
        }
    };

    // Warm-up and percentile passes.
    for plugin in ["e164-guard", "defaults"] {
        let f = one(plugin);
        for _ in 0..2_000 {
            f();
        }
        let samples = (0..20_000)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect();
        percentiles(&format!("on-invite, fresh instance, {plugin}"), samples);
    }
    // The call path when the warmer keeps up: wait (unmeasured) until an
    // instance prepared ahead is ready, then time the hook call.
    for plugin in ["e164-guard", "defaults"] {
        let f = one(plugin);
        let samples = (0..20_000)
            .map(|_| {
                while rt.ready_instances(plugin, &Limits::default()) == 0 {
                    std::thread::yield_now();
                }
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect();
        percentiles(&format!("on-invite, instance prepared ahead, {plugin}"), samples);
    }
    // One on-invite through `ch` per sample, with a fresh session each time.
    let sessions = |label: &str, ch: &trunkline_plugin_host::Chain, c0: &trunkline_plugin_host::types::Call, r0: &trunkline_plugin_host::types::Request, n: usize| {
        let samples = (0..n)
            .map(|_| {
                let (mut c, mut r) = (c0.clone(), r0.clone());
                let t = Instant::now();
                let mut s = rt.start_call(ch, "AC0001", "bench");
                std::hint::black_box(s.on_invite(&mut c, &mut r));
                drop(s);
                t.elapsed()
            })
            .collect();
        percentiles(label, samples);
    };
    // The same without headers: how much of a hook call is lowering them.
    let (mut bare_call, mut bare_req) = (call0.clone(), req0.clone());
    bare_call.headers.clear();
    bare_req.headers.clear();
    let defaults = chain(vec![entry("defaults", "", Limits::default())]);
    sessions("on-invite, fresh instance, defaults, no headers", &defaults, &bare_call, &bare_req, 20_000);
    // The whole first-party chain on one call: 4 instances, 4 hooks.
    let first_party = chain(
        ["e164-guard", "diversion-guard", "customer-routing", "dr-twiml-fallback"]
            .iter()
            .map(|p| entry(p, "", Limits::default()))
            .collect(),
    );
    sessions("on-invite, 4-plugin first-party chain (4 fresh instances)", &first_party, &call0, &req0, 10_000);

    let mut g = c.benchmark_group("hook_call");
    g.bench_function("on_invite/fresh_instance/e164-guard", |b| b.iter(one("e164-guard")));
    g.bench_function("on_invite/fresh_instance/defaults", |b| b.iter(one("defaults")));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
