//! Plugin kv in Redis (`[store] redis_url`), shared by every router that
//! points at the same server.
//!
//! Plugins call the kv synchronously from a hook on the engine thread, so
//! the call goes to Redis from that thread: a request and its reply on a
//! connection of a small pool, with socket timeouts set to what is left of
//! the hook's kv budget (`[store] redis_timeout_ms`). No other thread takes
//! part: on a loaded machine a hand-off to a runtime thread cost more than
//! Redis itself (bench/README.md, session 14). A connection that failed or
//! timed out is dropped (its reply may still come) and a new one is made on
//! the next call; a [`Breaker`] makes calls fail at once while Redis is
//! down, letting one call a second probe it. Writes are Lua scripts
//! (EVALSHA), so `incr` with its first TTL and the namespace's key quota
//! are one atomic step however many routers count at once.
//!
//! Keys: `trunkline:kv:{PLUGIN/ACCOUNT}:KEY`; each namespace's live keys
//! and their expiry (ms) in the sorted set `trunkline:kvkeys:{PLUGIN/ACCOUNT}`
//! (the quota). The braces keep a namespace in one Redis Cluster slot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{Connection, RedisResult};
use trunkline_plugin_host::{KvRefusal, SharedKv};

use super::breaker::{Breaker, Circuit};
use crate::config::RedisSettings;

/// Idle connections kept (hooks run on one engine thread: one is used).
const POOL: usize = 4;
/// Failures in a row that mark Redis down, and the pause between probes.
const OPEN_AFTER: u32 = 3;
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// `incr`: ARGV delta, ttl ms (-1: none), max keys, key name.
/// Returns {0, value}, {1} (quota) or {2} (not a number).
const INCR: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  local v = redis.pcall('INCRBY', KEYS[1], ARGV[1])
  if type(v) == 'table' and v.err then return {2} end
  return {0, v}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREM', KEYS[2], ARGV[4])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return {1} end
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl >= 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[4])
else
  redis.call('ZADD', KEYS[2], '+inf', ARGV[4])
end
return {0, v}
"#;

/// `set`: ARGV value, ttl ms (-1: none), max keys, key name.
/// Returns {0} or {1} (quota).
const SET: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('ZREM', KEYS[2], ARGV[4])
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return {1} end
end
local ttl = tonumber(ARGV[2])
if ttl == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[4])
elseif ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[2], '+inf', ARGV[4])
end
return {0}
"#;

/// Counts since start, for metrics and the admin API.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Calls Redis answered.
    pub ok: AtomicU64,
    /// Calls that failed (no connection, connection lost, an error reply).
    pub failed: AtomicU64,
    /// Calls not answered within their deadline.
    pub timed_out: AtomicU64,
    /// Calls failed at once while Redis is marked down.
    pub shed: AtomicU64,
}

/// The Redis kv: one per router, shared by its hooks.
pub struct RedisKv {
    client: redis::Client,
    /// Idle connections, each ready for a request.
    idle: Mutex<Vec<Connection>>,
    /// Redis has answered once (until then the state is `connecting`).
    connected: AtomicBool,
    breaker: Breaker,
    budget: Duration,
    stats: StoreStats,
    /// Redis was marked down and has not answered since (log once each way).
    down: AtomicBool,
    incr: redis::Script,
    set: redis::Script,
    /// The URL with any password hidden, for logs and the API.
    shown: String,
}

fn value_key(ns: &str, key: &str) -> String {
    format!("trunkline:kv:{{{ns}}}:{key}")
}

fn index_key(ns: &str) -> String {
    format!("trunkline:kvkeys:{{{ns}}}")
}

fn ttl_ms(ttl_s: Option<u32>) -> i64 {
    ttl_s.map_or(-1, |s| i64::from(s) * 1000)
}

impl RedisKv {
    /// Make the client and connect a first connection in the background
    /// (calls fail with `unavailable` until Redis answers; a Redis down at
    /// start is retried every second, with nothing to restart).
    pub fn start(settings: &RedisSettings) -> anyhow::Result<Arc<RedisKv>> {
        let kv = Arc::new(RedisKv {
            client: match &settings.ca_pem {
                // rediss:// checked against these roots (else the system's).
                Some(pem) => redis::Client::build_with_tls(
                    settings.url.expose(),
                    redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
                )?,
                None => redis::Client::open(settings.url.expose())?,
            },
            idle: Mutex::new(Vec::new()),
            connected: AtomicBool::new(false),
            breaker: Breaker::new(OPEN_AFTER, PROBE_EVERY),
            budget: settings.timeout,
            stats: StoreStats::default(),
            down: AtomicBool::new(false),
            incr: redis::Script::new(INCR),
            set: redis::Script::new(SET),
            shown: settings.url.to_string(),
        });
        let weak = Arc::downgrade(&kv);
        std::thread::Builder::new().name("redis-connect".into()).spawn(move || {
            let mut logged = false;
            while let Some(kv) = weak.upgrade() {
                match kv.client.get_connection_with_timeout(PROBE_EVERY) {
                    Ok(conn) => {
                        tracing::info!("plugin kv in Redis at {}", kv.shown);
                        kv.lock_idle().push(conn);
                        kv.connected.store(true, Relaxed);
                        return;
                    }
                    Err(e) if !logged => {
                        tracing::warn!(
                            "Redis at {}: cannot connect ({e}); plugin kv calls fail as unavailable, retrying every second",
                            kv.shown
                        );
                        logged = true;
                    }
                    Err(_) => {}
                }
                drop(kv);
                std::thread::sleep(PROBE_EVERY);
            }
        })?;
        Ok(kv)
    }

    /// `connecting`, `up`, `down` (failing fast) or `probing`.
    pub fn state(&self) -> &'static str {
        if !self.connected.load(Relaxed) {
            return "connecting";
        }
        match self.breaker.circuit() {
            Circuit::Closed { .. } => "up",
            Circuit::Open { .. } => "down",
            Circuit::Probing => "probing",
        }
    }

    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// The server, with any password hidden.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection whose requests time out after `left`: an idle one, or
    /// a new one (connecting within `left`).
    fn connection(&self, left: Duration) -> RedisResult<Connection> {
        let idle = self.lock_idle().pop();
        let conn = match idle {
            Some(c) => c,
            None => self.client.get_connection_with_timeout(left)?,
        };
        conn.set_read_timeout(Some(left))?;
        conn.set_write_timeout(Some(left))?;
        Ok(conn)
    }

    /// Run `query` on Redis, waiting for its answer at most `deadline`.
    fn run<T>(
        &self,
        deadline: Duration,
        query: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, KvRefusal> {
        if !self.breaker.admit(Instant::now()) {
            self.stats.shed.fetch_add(1, Relaxed);
            return Err(KvRefusal::Unavailable);
        }
        let answer = self.connection(deadline.max(Duration::from_millis(1))).and_then(|mut conn| {
            let answer = query(&mut conn)?;
            let mut idle = self.lock_idle();
            if idle.len() < POOL {
                idle.push(conn);
            }
            Ok(answer)
        });
        match answer {
            Ok(value) => {
                self.stats.ok.fetch_add(1, Relaxed);
                self.connected.store(true, Relaxed);
                self.breaker.succeeded();
                if self.down.swap(false, Relaxed) {
                    tracing::info!("Redis at {} answers again: plugin kv calls go through", self.shown);
                }
                Ok(value)
            }
            Err(e) => {
                // The connection is dropped: a late reply must not answer the next request.
                let counter = if e.is_timeout() { &self.stats.timed_out } else { &self.stats.failed };
                counter.fetch_add(1, Relaxed);
                if self.breaker.failed(Instant::now()) && !self.down.swap(true, Relaxed) {
                    tracing::warn!(
                        "Redis at {} is down ({e}): plugin kv calls fail as unavailable, probing every second",
                        self.shown
                    );
                }
                Err(KvRefusal::Unavailable)
            }
        }
    }

    /// One of the write scripts on `ns`/`key` with `value`, a TTL and the
    /// quota (EVALSHA, loading the script first if the server lacks it).
    #[allow(clippy::too_many_arguments)]
    fn script(
        &self,
        script: &redis::Script,
        ns: &str,
        key: &str,
        value: &str,
        ttl_ms: i64,
        max_keys: usize,
        deadline: Duration,
    ) -> Result<Vec<i64>, KvRefusal> {
        self.run(deadline, |conn| {
            script.key(value_key(ns, key)).key(index_key(ns)).arg(value).arg(ttl_ms).arg(max_keys).arg(key).invoke(conn)
        })
    }
}

impl SharedKv for RedisKv {
    fn get_many(&self, ns: &str, keys: &[String], deadline: Duration) -> Result<Vec<Option<String>>, KvRefusal> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(value_key(ns, k));
        }
        self.run(deadline, |conn| cmd.query(conn))
    }

    fn set(
        &self,
        ns: &str,
        key: &str,
        value: &str,
        ttl_s: Option<u32>,
        max_keys: usize,
        deadline: Duration,
    ) -> Result<(), KvRefusal> {
        match self.script(&self.set, ns, key, value, ttl_ms(ttl_s), max_keys, deadline)?.as_slice() {
            [0] => Ok(()),
            [1] => Err(KvRefusal::QuotaExceeded),
            _ => Err(KvRefusal::Unavailable),
        }
    }

    fn incr(
        &self,
        ns: &str,
        key: &str,
        delta: i64,
        ttl_s: Option<u32>,
        max_keys: usize,
        deadline: Duration,
    ) -> Result<i64, KvRefusal> {
        match self.script(&self.incr, ns, key, &delta.to_string(), ttl_ms(ttl_s), max_keys, deadline)?.as_slice() {
            [0, n] => Ok(*n),
            [1] => Err(KvRefusal::QuotaExceeded),
            [2] => Err(KvRefusal::NotANumber),
            _ => Err(KvRefusal::Unavailable),
        }
    }

    fn budget(&self) -> Duration {
        self.budget
    }
}
