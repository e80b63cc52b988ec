//! Where one hook call's time goes: runs `on-invite` of one plugin with an
//! instance prepared ahead, many times, for a profiler (`perf record`).
//!
//! Prints the mean time of `start_call`, the hook and the session's drop,
//! and the page faults a call takes (minor, and major: read from disk).
//!
//! Run: `cargo run --release -p trunkline-bench --example hook_probe -- [PLUGIN] [CALLS] [full|once|bare]`
//! - `once`: headers only in `call`, not again in `request`; `bare`: no headers;
//! - `TWICE=1`: time a second `on-invite` on the same instance (no first-call costs);
//! - `PACED=1`: before each call, spin until the warmer thread is idle;
//! - `HERE=1`: before each call, prepare the instances on this thread
//!   (`Runtime::work_while_idle`, as the router's engine loop does when
//!   idle) instead of leaving them to the background thread;
//! - `PREWARM=N`: instances kept ready (default 8);
//! - `LOOP=1`: hooks back to back, 1,000 per instance (for `perf record`);
//! - `FRESH=1`: calls back to back, each on a fresh prepared instance, in
//!   rounds of `PREWARM - 1` (waiting for a full set between rounds);
//! - `NATIVE=1`: time parsing a SIP INVITE (native code) instead of the
//!   hook: a reference for what the machine does to any code, e.g. after
//!   the thread slept (`QUIET`);
//! - `QUIET=1`: before each call, sleep 50 us (a call after idle);
//!   `QUIET=N`: sleep N us;
//! - `AB=1`: two runtimes in this process, A with the default engine
//!   options and B with those the `TL_*` variables set (`TL_NO_PAGEMAP=1`,
//!   `TL_COW=1`, `TL_KEEP_RESIDENT=bytes`, `TL_DECOMMIT_BATCH=n`), calls
//!   alternating between them (paced): both see the same machine, so an
//!   effect smaller than this shared machine's slow periods shows.

/// The allocator the router binary ships with (host/router/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use trunkline_plugin_host::types::Direction;
use trunkline_plugin_host::{Limits, LoadSource, Runtime, RuntimeOptions};
use trunkline_tests::{call, chain, entry, install, wasm};

/// What `NATIVE=1` parses instead of calling the hook.
const INVITE: &[u8] = include_bytes!("../../tests/fixtures/sip/invite-origination.sip");

fn main() {
    let mut args = std::env::args().skip(1);
    let plugin = args.next().unwrap_or_else(|| "defaults".into());
    let calls: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    install(wasm::TP_DEFAULTS, dir.path(), "defaults");
    install(wasm::E164_GUARD, dir.path(), "e164-guard");
    let prewarm = std::env::var("PREWARM").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let rt = runtime(dir.path(), RuntimeOptions { prewarm, ..RuntimeOptions::default() });
    let ch = chain(vec![entry(&plugin, "", Limits::default())]);
    let twice = std::env::var_os("TWICE").is_some();
    let paced = std::env::var_os("PACED").is_some();
    // QUIET=N: sleep N microseconds before each call (QUIET=1: 50).
    let quiet: Option<u64> = std::env::var("QUIET").ok().map(|v| match v.parse() {
        Ok(1) | Err(_) => 50,
        Ok(n) => n,
    });
    let here = std::env::var_os("HERE").is_some();
    let native = std::env::var_os("NATIVE").is_some();
    let (mut c0, mut r0) = call(Direction::Termination, "+14155550199", "+12125550123");
    if std::env::var_os("AB").is_some() {
        let mut b = RuntimeOptions { prewarm, ..RuntimeOptions::default() };
        let var = |n: &str| std::env::var(n).ok().and_then(|v| v.parse::<usize>().ok());
        b.engine.pagemap_scan = std::env::var_os("TL_NO_PAGEMAP").is_none();
        b.engine.memory_init_cow = std::env::var_os("TL_COW").is_some();
        b.engine.keep_resident_bytes = var("TL_KEEP_RESIDENT").unwrap_or(b.engine.keep_resident_bytes);
        b.engine.decommit_batch = var("TL_DECOMMIT_BATCH").unwrap_or(b.engine.decommit_batch);
        println!("B: {:?}", b.engine);
        let rb = runtime(dir.path(), b);
        let mut times = [Vec::with_capacity(calls), Vec::with_capacity(calls)];
        // The first call of each finds nothing ready and asks for a refill.
        for r in [&rt, &rb] {
            r.start_call(&ch, "AC0001", "probe").on_invite(&mut c0.clone(), &mut r0.clone());
        }
        for n in 0..2 * calls {
            let which = n % 2;
            let (this, other) = if which == 0 { (&rt, &rb) } else { (&rb, &rt) };
            while this.ready_instances(&plugin, &Limits::default()) == 0 || !this.warmer_idle() || !other.warmer_idle()
            {
                std::hint::spin_loop();
            }
            let (mut c, mut r) = (c0.clone(), r0.clone());
            let t = Instant::now();
            std::hint::black_box(this.start_call(&ch, "AC0001", "probe").on_invite(&mut c, &mut r));
            times[which].push(t.elapsed());
        }
        for (name, mut t) in ["A", "B"].into_iter().zip(times) {
            t.sort();
            let at = |q: f64| t[((t.len() as f64 * q) as usize).min(t.len() - 1)].as_secs_f64() * 1e6;
            println!(
                "{name}: {plugin} call (start, on-invite, drop): median {:.2} us, p90 {:.2} us, p99 {:.2} us",
                at(0.5),
                at(0.9),
                at(0.99)
            );
        }
        return;
    }
    match args.next().as_deref() {
        Some("bare") => {
            c0.headers.clear();
            r0.headers.clear();
        }
        Some("once") => r0.headers.clear(),
        _ => {}
    }
    if std::env::var_os("FRESH").is_some() {
        // Rounds of calls back to back, each on a fresh instance prepared
        // ahead: wait (spinning) for a full set, then use all but one.
        // The first call finds nothing ready and asks for a refill.
        rt.start_call(&ch, "AC0001", "probe").on_invite(&mut c0.clone(), &mut r0.clone());
        let mut done = 0;
        let mut busy = Duration::ZERO;
        while done < calls {
            // Sleep, not spin: a profile of this thread then shows the calls alone.
            while rt.ready_instances(&plugin, &Limits::default()) < prewarm || !rt.warmer_idle() {
                std::thread::sleep(Duration::from_micros(200));
            }
            let t0 = Instant::now();
            for _ in 0..prewarm - 1 {
                let (mut c, mut r) = (c0.clone(), r0.clone());
                let mut s = rt.start_call(&ch, "AC0001", "probe");
                std::hint::black_box(s.on_invite(&mut c, &mut r));
            }
            busy += t0.elapsed();
            done += prewarm - 1;
        }
        println!(
            "{plugin}: {:.3} us per call on a fresh instance, clone included (mean of {done})",
            busy.as_secs_f64() * 1e6 / done as f64
        );
        return;
    }
    if std::env::var_os("LOOP").is_some() {
        // Hooks back to back, 1,000 per instance: a profile of the hook call
        // alone (no waiting; instance changes are rare).
        let t0 = Instant::now();
        for _ in 0..calls / 1000 {
            let mut s = rt.start_call(&ch, "AC0001", "probe");
            for _ in 0..1000 {
                let (mut c, mut r) = (c0.clone(), r0.clone());
                std::hint::black_box(s.on_invite(&mut c, &mut r));
            }
        }
        println!(
            "{plugin}: {:.3} us per on-invite, clone included (mean of {calls}, 1,000 per instance)",
            t0.elapsed().as_secs_f64() * 1e6 / (calls / 1000 * 1000) as f64
        );
        return;
    }
    // The first call finds nothing ready and asks for a refill.
    let (mut c, mut r) = (c0.clone(), r0.clone());
    rt.start_call(&ch, "AC0001", "probe").on_invite(&mut c, &mut r);
    let (mut start, mut hook, mut end) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut hooks = Vec::with_capacity(calls);
    let (mut faults, mut major) = (0u64, 0u64);
    for _ in 0..calls {
        // Wait until instances are ready (PACED: and the warmer has caught
        // up; QUIET: and the thread slept 50 us, i.e. a call after idle).
        if here {
            while rt.work_while_idle() {}
        }
        loop {
            let n = rt.ready_instances(&plugin, &Limits::default());
            if n > 0 && paced && !rt.warmer_idle() {
                std::hint::spin_loop();
                continue;
            }
            let Some(pause) = quiet else {
                if n > 0 {
                    break;
                }
                std::thread::yield_now();
                continue;
            };
            if n > 0 {
                std::thread::sleep(Duration::from_micros(pause));
                if rt.ready_instances(&plugin, &Limits::default()) == n {
                    break;
                }
            }
            std::thread::yield_now();
        }
        let (mut c, mut r) = (c0.clone(), r0.clone());
        let (f0, m0) = (minor_faults(), major_faults());
        let t0 = Instant::now();
        let mut s = rt.start_call(&ch, "AC0001", "probe");
        if twice {
            let (mut c, mut r) = (c0.clone(), r0.clone());
            std::hint::black_box(s.on_invite(&mut c, &mut r));
        }
        let t1 = Instant::now();
        if native {
            std::hint::black_box(trunkline_sip_core::message::Message::parse(std::hint::black_box(INVITE)).is_ok());
        } else {
            std::hint::black_box(s.on_invite(&mut c, &mut r));
        }
        let t2 = Instant::now();
        drop(s);
        let t3 = Instant::now();
        faults += minor_faults() - f0;
        major += major_faults() - m0;
        start += t1 - t0;
        hook += t2 - t1;
        hooks.push(t2 - t1);
        end += t3 - t2;
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / calls as f64;
    hooks.sort();
    let at = |q: f64| hooks[((calls as f64 * q) as usize).min(calls - 1)].as_secs_f64() * 1e6;
    println!(
        "{plugin}: start_call {:.2} us, on-invite {:.2} us (median {:.2}, p99 {:.2}), drop {:.2} us (means of {calls})",
        per(start),
        per(hook),
        at(0.5),
        at(0.99),
        per(end)
    );
    println!(
        "page faults per call: {:.3} minor, {:.3} major",
        faults as f64 / calls as f64,
        major as f64 / calls as f64
    );
}

/// A runtime with the plugins of `dir` loaded.
fn runtime(dir: &std::path::Path, opts: RuntimeOptions) -> Runtime {
    let rt = Runtime::new(opts).unwrap();
    for (_, r) in rt.load_dir(dir, LoadSource::Startup).unwrap() {
        r.unwrap();
    }
    rt
}

/// This thread's minor page faults so far (`/proc/thread-self/stat`, field 10).
fn minor_faults() -> u64 {
    fault_field(7)
}

/// This thread's major page faults so far (pages read back from disk).
fn major_faults() -> u64 {
    fault_field(9)
}

/// Field `n` after the command name of `/proc/thread-self/stat`.
fn fault_field(n: usize) -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    after_comm.split_whitespace().nth(n).and_then(|v| v.parse().ok()).unwrap_or(0)
}
