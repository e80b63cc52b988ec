//! Plugin kv in Redis (`[store] redis_url`), shared by every router that
//! points at the same server.
//!
//! Plugins call the kv synchronously from a hook on the engine thread, so
//! each call is handed to a task on the connections runtime and waited for
//! at most what is left of the hook's kv budget (`[store]
//! redis_timeout_ms`). One multiplexed connection (redis-rs'
//! `ConnectionManager`) carries every call and reconnects by itself; a
//! [`Breaker`] makes calls fail at once while Redis is down, probing it
//! once a second. Writes are Lua scripts, so `incr` with its first TTL and
//! the namespace's key quota are one atomic step however many routers
//! count at once.
//!
//! Keys: `trunkline:kv:{PLUGIN/ACCOUNT}:KEY`; each namespace's live keys
//! and their expiry (ms) in the sorted set `trunkline:kvkeys:{PLUGIN/ACCOUNT}`
//! (the quota). The braces keep a namespace in one Redis Cluster slot.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use trunkline_plugin_host::{KvRefusal, SharedKv};

use super::breaker::{Breaker, Circuit};
use crate::config::RedisSettings;

/// Calls waiting on Redis at most; beyond, calls fail at once.
const MAX_IN_FLIGHT: usize = 4096;
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
    /// Calls that failed (connection lost, an error reply).
    pub failed: AtomicU64,
    /// Calls not answered within their deadline.
    pub timed_out: AtomicU64,
    /// Calls failed at once: not connected, marked down, or too many waiting.
    pub shed: AtomicU64,
}

/// The Redis kv: cheap to share, one per router.
pub struct RedisKv {
    /// A thread of its own runs the connection, so that a hook waiting
    /// on Redis never waits on a busy runtime (or on its own thread).
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    conn: Arc<OnceLock<ConnectionManager>>,
    breaker: Breaker,
    budget: Duration,
    in_flight: Arc<AtomicUsize>,
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
    /// Connect in the background (calls fail with `unavailable` until
    /// connected; a Redis down at start is retried every second, with
    /// nothing to restart).
    pub fn start(settings: &RedisSettings) -> anyhow::Result<Arc<RedisKv>> {
        let client = redis::Client::open(settings.url.expose())?;
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("redis").enable_all().build()?;
        let handle = runtime.handle().clone();
        let kv = Arc::new(RedisKv {
            runtime: Some(runtime),
            handle: handle.clone(),
            conn: Arc::new(OnceLock::new()),
            breaker: Breaker::new(OPEN_AFTER, PROBE_EVERY),
            budget: settings.timeout,
            in_flight: Arc::new(AtomicUsize::new(0)),
            stats: StoreStats::default(),
            down: AtomicBool::new(false),
            incr: redis::Script::new(INCR),
            set: redis::Script::new(SET),
            shown: settings.url.to_string(),
        });
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(1))
            .set_response_timeout(Duration::from_secs(1).max(settings.timeout))
            .set_number_of_retries(2)
            .set_factor(100)
            .set_max_delay(1000);
        let conn = kv.conn.clone();
        let shown = kv.shown.clone();
        handle.spawn(async move {
            let mut logged = false;
            loop {
                match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                    Ok(c) => {
                        tracing::info!("plugin kv in Redis at {shown}");
                        let _ = conn.set(c);
                        return;
                    }
                    Err(e) if !logged => {
                        tracing::warn!("Redis at {shown}: cannot connect ({e}); plugin kv calls fail as unavailable, retrying every second");
                        logged = true;
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(PROBE_EVERY).await;
            }
        });
        Ok(kv)
    }

    /// `connecting`, `up`, `down` (failing fast) or `probing`.
    pub fn state(&self) -> &'static str {
        if self.conn.get().is_none() {
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

    fn shed<T>(&self) -> Result<T, KvRefusal> {
        self.stats.shed.fetch_add(1, Relaxed);
        Err(KvRefusal::Unavailable)
    }

    /// Run `query` on Redis and wait for its answer at most `deadline`;
    /// `done` reads the answer.
    fn run<T>(
        &self,
        deadline: Duration,
        query: impl FnOnce(ConnectionManager) -> Query,
        done: impl FnOnce(redis::Value) -> Result<T, KvRefusal>,
    ) -> Result<T, KvRefusal> {
        let Some(conn) = self.conn.get() else { return self.shed() };
        if self.in_flight.fetch_add(1, Relaxed) >= MAX_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Relaxed);
            return self.shed();
        }
        if !self.breaker.admit(Instant::now()) {
            self.in_flight.fetch_sub(1, Relaxed);
            return self.shed();
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let answer = query(conn.clone());
        let in_flight = self.in_flight.clone();
        self.handle.spawn(async move {
            let answer = answer.await;
            in_flight.fetch_sub(1, Relaxed);
            let _ = tx.send(answer);
        });
        let outcome = match rx.recv_timeout(deadline) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                self.stats.failed.fetch_add(1, Relaxed);
                Err(format!("{e}"))
            }
            Err(_) => {
                self.stats.timed_out.fetch_add(1, Relaxed);
                Err(format!("no answer within {} ms", deadline.as_millis()))
            }
        };
        match outcome {
            Ok(value) => {
                self.stats.ok.fetch_add(1, Relaxed);
                self.breaker.succeeded();
                if self.down.swap(false, Relaxed) {
                    tracing::info!("Redis at {} answers again: plugin kv calls go through", self.shown);
                }
                done(value)
            }
            Err(why) => {
                if self.breaker.failed(Instant::now()) && !self.down.swap(true, Relaxed) {
                    tracing::warn!(
                        "Redis at {} is down ({why}): plugin kv calls fail as unavailable, probing every second",
                        self.shown
                    );
                }
                Err(KvRefusal::Unavailable)
            }
        }
    }

    /// One of the write scripts on `ns`/`key` with `value`, a TTL and the quota
    /// (EVALSHA, loading the script first if the server does not know it).
    fn script(
        script: &redis::Script,
        ns: &str,
        key: &str,
        value: String,
        ttl_ms: i64,
        max_keys: usize,
    ) -> impl FnOnce(ConnectionManager) -> Query {
        let script = script.clone();
        let (keys, name) = ([value_key(ns, key), index_key(ns)], key.to_owned());
        move |mut conn| {
            Box::pin(async move {
                let mut invocation = script.prepare_invoke();
                invocation.key(&keys[..]).arg(value).arg(ttl_ms).arg(max_keys).arg(name);
                invocation.invoke_async(&mut conn).await
            })
        }
    }
}

/// Dropped where blocking is not allowed (the engine's runtime): the
/// thread is told to stop, not waited for.
impl Drop for RedisKv {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A Redis call under way.
type Query = std::pin::Pin<Box<dyn std::future::Future<Output = redis::RedisResult<redis::Value>> + Send>>;

impl SharedKv for RedisKv {
    fn get_many(&self, ns: &str, keys: &[String], deadline: Duration) -> Result<Vec<Option<String>>, KvRefusal> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(value_key(ns, k));
        }
        let query = move |mut conn: ConnectionManager| -> Query {
            Box::pin(async move { cmd.query_async::<redis::Value>(&mut conn).await })
        };
        self.run(deadline, query, |v| {
            redis::from_redis_value::<Vec<Option<String>>>(&v).map_err(|_| KvRefusal::Unavailable)
        })
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
        let query = Self::script(&self.set, ns, key, value.to_owned(), ttl_ms(ttl_s), max_keys);
        self.run(deadline, query, |v| match redis::from_redis_value::<Vec<i64>>(&v).as_deref() {
            Ok([0]) => Ok(()),
            Ok([1]) => Err(KvRefusal::QuotaExceeded),
            _ => Err(KvRefusal::Unavailable),
        })
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
        let query = Self::script(&self.incr, ns, key, delta.to_string(), ttl_ms(ttl_s), max_keys);
        self.run(deadline, query, |v| match redis::from_redis_value::<Vec<i64>>(&v).as_deref() {
            Ok([0, n]) => Ok(*n),
            Ok([1]) => Err(KvRefusal::QuotaExceeded),
            Ok([2]) => Err(KvRefusal::NotANumber),
            _ => Err(KvRefusal::Unavailable),
        })
    }

    fn budget(&self) -> Duration {
        self.budget
    }
}
