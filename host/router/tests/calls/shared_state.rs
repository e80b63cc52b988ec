//! Routers sharing plugin kv in Redis (`[store] redis_url`): a real
//! `redis-server` started here on a loopback port of its own, two
//! `trunkline run` processes, SIPp customers calling both at once, the
//! call-frequency plugin counting across both; Redis stopped and started
//! under them.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use trunkline_plugin_host::{KvRefusal, SharedKv};
use trunkline_router::config::{RedisSettings, SecretUrl};
use trunkline_router::store::redis_kv::RedisKv;

use super::termination::{call_frequency_router, VERIFIED};
use super::*;

const DOMAIN: &str = "acme-prod.trunkline.test";

/// A `redis-server` on 127.0.0.1:`port`, nothing saved to disk; stopped when dropped.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Redis::on(port)
    }

    fn on(port: u16) -> Redis {
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Redis { port, child };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kill it (SIGKILL: nothing is saved, as a crash).
    fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kv_on(redis: &Redis, timeout_ms: u64) -> Arc<RedisKv> {
    let settings = RedisSettings { url: SecretUrl::new(redis.url()), timeout: Duration::from_millis(timeout_ms) };
    let kv = RedisKv::start(&settings).unwrap();
    for _ in 0..100 {
        if kv.state() == "up" {
            return kv;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not connected to Redis: {}", kv.state());
}

#[test]
fn redis_kv_counts_exactly_across_clients_with_quotas_and_expiry() {
    let redis = Redis::start();
    let d = Duration::from_millis(500);
    // Two clients, as two routers: 8 threads add 250 each to one key.
    let (a, b) = (kv_on(&redis, 500), kv_on(&redis, 500));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let kv = if i % 2 == 0 { a.clone() } else { b.clone() };
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for _ in 0..250 {
                    seen.push(kv.incr("cf/AC1", "calls", 1, Some(3600), 100, d).unwrap());
                }
                seen
            })
        })
        .collect();
    let mut all: Vec<i64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    all.sort_unstable();
    assert_eq!(all, (1..=2000).collect::<Vec<_>>(), "every increment saw its own count");
    assert_eq!(b.get_many("cf/AC1", &["calls".into(), "none".into()], d).unwrap(), vec![Some("2000".into()), None]);
    assert_eq!(a.get_many("cf/AC2", &["calls".into()], d).unwrap(), vec![None], "accounts are apart");

    // Quota: 3 keys a namespace; overwriting is not a new key; an expired key frees its place.
    let ns = "cf/AC3";
    a.set(ns, "k1", "v", None, 3, d).unwrap();
    a.set(ns, "k2", "v", Some(1), 3, d).unwrap();
    b.incr(ns, "k3", 5, None, 3, d).unwrap();
    assert_eq!(b.set(ns, "k4", "v", None, 3, d), Err(KvRefusal::QuotaExceeded));
    assert_eq!(a.incr(ns, "k4", 1, None, 3, d), Err(KvRefusal::QuotaExceeded));
    a.set(ns, "k1", "again", None, 3, d).unwrap();
    assert_eq!(a.incr(ns, "k1", 1, None, 3, d), Err(KvRefusal::NotANumber));
    // An existing key keeps its expiry when counted.
    assert_eq!(a.incr(ns, "k3", 1, Some(1), 3, d), Ok(6));
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(a.get_many(ns, &["k2".into(), "k3".into()], d).unwrap(), vec![None, Some("6".into())]);
    assert_eq!(b.set(ns, "k4", "v", None, 3, d), Ok(()), "k2 expired: room for one");

    // Redis gone: calls fail as unavailable, within their deadline, then at once.
    let port = redis.kill();
    for _ in 0..5 {
        assert_eq!(a.incr("cf/AC1", "calls", 1, None, 100, d), Err(KvRefusal::Unavailable));
    }
    assert_eq!(a.state(), "down");
    assert!(a.stats().shed.load(std::sync::atomic::Ordering::Relaxed) >= 2, "failing fast once marked down");
    // Back (empty: nothing was saved): counting resumes, no restart.
    let _redis = Redis::on(port);
    let (mut back, mut tries) = (None, 0);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        tries += 1;
        if let Ok(n) = a.incr("cf/AC1", "calls", 1, None, 100, d) {
            back = Some(n);
            break;
        }
    }
    // On the new, empty server; a try that timed out while the client
    // reconnected may have been applied after all (as the WIT says).
    assert!(back.is_some_and(|n| (1..=tries).contains(&n)), "counting resumed: {back:?} after {tries} tries");
    assert_eq!(a.state(), "up");
}

/// A router terminating calls to the carrier at `gw`, with call-frequency
/// at `per_day` calls a day and kv in `redis_url`.
fn router_on_redis(redis_url: &str, gw: u16, per_day: u32, on_kv_error: &str) -> Router {
    let plugin = format!("per_day = {per_day}, per_month = 0, per_rolling_days = 0, on_kv_error = \"{on_kv_error}\"");
    let sections = format!("[store]\nredis_url = \"{redis_url}\"\n[records]\nenabled = false");
    call_frequency_router(gw, &plugin, &sections).0
}

/// SIPp calling `dialed` through `router` `calls` times, `rate` a second,
/// each call answered or refused (`uac-term-either.xml`).
fn customers(router: &Router, scenario: &Path, dialed: &str, calls: u32, rate: u32) -> Child {
    let target = format!("127.0.0.1:{}", router.port);
    let port = free_udp_port().to_string();
    let (m, r) = (calls.to_string(), rate.to_string());
    sipp(&["-sf", scenario.to_str().unwrap(), &target, "-s", dialed, "-p", &port, "-m", &m, "-r", &r, "-l", &m])
        .spawn()
        .unwrap()
}

/// Of `n` call reports of `router`: (answered, refused by the limit, 503 as kv was down).
fn tally(router: &Router, n: usize) -> (usize, usize, usize) {
    let reports = router.outcomes(n);
    let outcomes: Vec<&str> = reports.lines().filter_map(|l| l.trim_start().strip_prefix("outcome: ")).collect();
    let count = |p: &dyn Fn(&str) -> bool| outcomes.iter().filter(|o| p(o)).count();
    (
        count(&|o| o.starts_with("answered")),
        count(&|o| o.contains("403") && o.contains("Call frequency limit")),
        count(&|o| o.contains("503") && o.contains("call frequency cannot be checked now")),
    )
}

fn scenario(dir: &Path, hold_ms: u32) -> PathBuf {
    let text = std::fs::read_to_string(fixture("uac-term-either.xml"))
        .unwrap()
        .replace("DOMAIN", DOMAIN)
        .replace("CALLER", VERIFIED)
        .replace("HOLD", &hold_ms.to_string());
    let p = dir.join("either.xml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn two_routers_count_calls_together_in_redis_and_apply_the_failure_mode_while_it_is_down() {
    let redis = Redis::start();
    let gw = free_udp_port();
    // The carrier answers whatever the routers let through.
    // 10 counted calls, 6 let through while Redis is down, 1 once it is back.
    let mut carrier = sipp(&["-sn", "uas", "-p", &gw.to_string(), "-m", "17"]).spawn().unwrap();
    let a = router_on_redis(&redis.url(), gw, 10, "continue");
    let b = router_on_redis(&redis.url(), gw, 10, "refuse");
    std::thread::sleep(Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let either = scenario(dir.path(), 200);

    // 15 calls through each router at once, to one number: exactly 10 of
    // the 30 are answered, counted across both routers.
    let (mut ca, mut cb) =
        (customers(&a, &either, "+12125550123", 15, 30), customers(&b, &either, "+12125550123", 15, 30));
    assert!(ca.wait().unwrap().success() && cb.wait().unwrap().success(), "every call got its answer");
    let (ta, tb) = (tally(&a, 15), tally(&b, 15));
    assert_eq!(ta.0 + tb.0, 10, "answered: {ta:?} {tb:?}");
    assert_eq!(ta.1 + tb.1, 20, "refused over the limit: {ta:?} {tb:?}");

    // Redis killed: no call hangs; router A lets calls go (fail open),
    // router B refuses them with 503 (fail closed).
    let port = redis.kill();
    let (mut ca, mut cb) =
        (customers(&a, &either, "+13105550100", 6, 20), customers(&b, &either, "+13105550100", 6, 20));
    assert!(ca.wait().unwrap().success() && cb.wait().unwrap().success(), "every call got its answer");
    assert_eq!(tally(&a, 6), (6, 0, 0), "fail open: answered, uncounted");
    assert_eq!(tally(&b, 6), (0, 0, 6), "fail closed: 503");

    // Redis back (empty): router B counts again by itself, no restart.
    let _redis = Redis::on(port);
    let mut resumed = false;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        let mut c = customers(&b, &either, "+16175550100", 1, 1);
        assert!(c.wait().unwrap().success());
        if tally(&b, 1).0 == 1 {
            resumed = true;
            break;
        }
    }
    assert!(resumed, "router B never got its kv back");
    assert!(carrier.wait().unwrap().success(), "the carrier got exactly the calls let through");
}
