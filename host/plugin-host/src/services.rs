//! Host-side services behind the plugin imports: the number directory, the
//! kv store, metrics and plugin config tables. Shared by all instances.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;

/// What each account owns, for the `numbers` interface.
pub trait NumberDirectory: Send + Sync {
    /// `number` is one of `account`'s numbers.
    fn is_owned(&self, account: &str, number: &str) -> bool;
    /// `number` is a verified caller ID of `account` (owned numbers count).
    fn is_verified_caller_id(&self, account: &str, number: &str) -> bool;
    /// The operator's label for one of `account`'s numbers.
    fn label(&self, account: &str, number: &str) -> Option<String>;
}

/// One account's numbers.
#[derive(Clone, Debug, Default)]
pub struct AccountNumbers {
    /// Owned numbers (DIDs) with their optional labels.
    pub owned: HashMap<String, Option<String>>,
    /// Verified caller IDs that are not owned numbers.
    pub verified: Vec<String>,
}

/// A [`NumberDirectory`] from configuration: account id -> numbers.
#[derive(Clone, Debug, Default)]
pub struct StaticDirectory {
    pub accounts: HashMap<String, AccountNumbers>,
}

impl NumberDirectory for StaticDirectory {
    fn is_owned(&self, account: &str, number: &str) -> bool {
        self.accounts.get(account).is_some_and(|a| a.owned.contains_key(number))
    }

    fn is_verified_caller_id(&self, account: &str, number: &str) -> bool {
        self.accounts
            .get(account)
            .is_some_and(|a| a.owned.contains_key(number) || a.verified.iter().any(|v| v == number))
    }

    fn label(&self, account: &str, number: &str) -> Option<String> {
        self.accounts.get(account)?.owned.get(number)?.clone()
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Longest key and value the kv store accepts.
pub const KV_MAX_KEY: usize = 256;
pub const KV_MAX_VALUE: usize = 4096;

/// Most keys one `get-many` may ask for.
pub const KV_MAX_BATCH: usize = 64;

/// Why a kv call failed (mirrors `kv.error` in the WIT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvRefusal {
    QuotaExceeded,
    TooLarge,
    NotANumber,
    /// A shared store did not answer in time, or is known to be down.
    Unavailable,
}

/// A kv store outside the router, shared with other routers (Redis).
///
/// Calls block the calling hook, so each one is given a deadline and
/// must return by then: `Unavailable` when the store did not answer
/// (a write may still have been applied) or is known to be down (fail
/// fast, without waiting). Namespaces, quotas and TTLs mean what they
/// mean in [`KvStore`].
pub trait SharedKv: Send + Sync {
    /// The values of `keys` (at most [`KV_MAX_BATCH`], each checked for size).
    fn get_many(&self, ns: &str, keys: &[String], deadline: Duration) -> Result<Vec<Option<String>>, KvRefusal>;
    /// Set `key`, refusing a new key beyond `max_keys` in the namespace.
    fn set(
        &self,
        ns: &str,
        key: &str,
        value: &str,
        ttl_s: Option<u32>,
        max_keys: usize,
        deadline: Duration,
    ) -> Result<(), KvRefusal>;
    /// Add `delta` to `key` (a new key gets `ttl_s`), refusing a new key
    /// beyond `max_keys` in the namespace.
    fn incr(
        &self,
        ns: &str,
        key: &str,
        delta: i64,
        ttl_s: Option<u32>,
        max_keys: usize,
        deadline: Duration,
    ) -> Result<i64, KvRefusal>;
    /// How long one hook may wait on the store in all (each call's
    /// deadline is what is left of it).
    fn budget(&self) -> Duration;
}

#[derive(Clone)]
struct KvEntry {
    value: String,
    expires_ms: Option<u64>,
}

/// A key's value after a write, for whoever keeps the kv on disk
/// ([`KvStore::journal_to`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvWrite {
    /// `plugin/account` ([`KvStore::namespace`]).
    pub namespace: Arc<str>,
    pub key: String,
    pub value: String,
    /// Unix milliseconds; `None`: never.
    pub expires_ms: Option<u64>,
}

/// The kv store: one namespace per (plugin, account), a bounded number of
/// keys per namespace, lazy expiry. It answers from memory; with a journal
/// every write is also queued (never waited for) for a writer that keeps
/// it on disk, and [`KvStore::restore`] reads it back at start.
pub struct KvStore {
    namespaces: DashMap<Arc<str>, HashMap<String, KvEntry>>,
    max_keys: usize,
    journal: std::sync::OnceLock<std::sync::mpsc::SyncSender<KvWrite>>,
    /// Writes the journal's queue had no room for (not kept on disk).
    journal_dropped: AtomicU64,
}

impl KvStore {
    /// A store allowing `max_keys` live keys per namespace.
    pub fn new(max_keys: usize) -> Self {
        KvStore {
            namespaces: DashMap::new(),
            max_keys,
            journal: Default::default(),
            journal_dropped: AtomicU64::new(0),
        }
    }

    /// Queue every write from now on to `journal` (once; false if a
    /// journal is already set). A full queue drops the write from the
    /// journal (counted), never from the store.
    pub fn journal_to(&self, journal: std::sync::mpsc::SyncSender<KvWrite>) -> bool {
        self.journal.set(journal).is_ok()
    }

    /// Writes the journal could not take.
    pub fn journal_dropped(&self) -> u64 {
        self.journal_dropped.load(Ordering::Relaxed)
    }

    fn journal(&self, ns: &Arc<str>, key: &str, entry: &KvEntry) {
        if let Some(j) = self.journal.get() {
            let w = KvWrite {
                namespace: ns.clone(),
                key: key.to_owned(),
                value: entry.value.clone(),
                expires_ms: entry.expires_ms,
            };
            if j.try_send(w).is_err() {
                self.journal_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Put back what a journal kept (at start, before any call): entries
    /// expired by `now_ms` are skipped, and so are keys beyond a
    /// namespace's quota. Returns how many were restored.
    pub fn restore(&self, rows: impl IntoIterator<Item = KvWrite>, now_ms: u64) -> usize {
        let mut restored = 0;
        for w in rows {
            if w.expires_ms.is_some_and(|x| x <= now_ms) {
                continue;
            }
            let mut map = self.namespaces.entry(w.namespace).or_default();
            if map.len() < self.max_keys || map.contains_key(&w.key) {
                map.insert(w.key, KvEntry { value: w.value, expires_ms: w.expires_ms });
                restored += 1;
            }
        }
        restored
    }

    /// Live keys a namespace may hold.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Namespace name for a plugin and account.
    pub fn namespace(plugin: &str, account: &str) -> Arc<str> {
        format!("{plugin}/{account}").into()
    }

    pub fn get(&self, ns: &str, key: &str, now_ms: u64) -> Option<String> {
        let map = self.namespaces.get(ns)?;
        map.get(key).filter(|e| e.expires_ms.is_none_or(|x| x > now_ms)).map(|e| e.value.clone())
    }

    fn room(map: &mut HashMap<String, KvEntry>, key: &str, max: usize, now_ms: u64) -> Result<(), KvRefusal> {
        if map.contains_key(key) || map.len() < max {
            return Ok(());
        }
        map.retain(|_, e| e.expires_ms.is_none_or(|x| x > now_ms));
        if map.len() < max {
            Ok(())
        } else {
            Err(KvRefusal::QuotaExceeded)
        }
    }

    pub fn set(&self, ns: &Arc<str>, key: &str, value: &str, ttl_s: Option<u32>, now_ms: u64) -> Result<(), KvRefusal> {
        if key.len() > KV_MAX_KEY || value.len() > KV_MAX_VALUE {
            return Err(KvRefusal::TooLarge);
        }
        let mut map = self.namespaces.entry(ns.clone()).or_default();
        Self::room(&mut map, key, self.max_keys, now_ms)?;
        let expires_ms = ttl_s.map(|t| now_ms + u64::from(t) * 1000);
        let entry = KvEntry { value: value.to_owned(), expires_ms };
        self.journal(ns, key, &entry);
        map.insert(key.to_owned(), entry);
        Ok(())
    }

    pub fn incr(
        &self,
        ns: &Arc<str>,
        key: &str,
        delta: i64,
        ttl_s: Option<u32>,
        now_ms: u64,
    ) -> Result<i64, KvRefusal> {
        if key.len() > KV_MAX_KEY {
            return Err(KvRefusal::TooLarge);
        }
        let mut map = self.namespaces.entry(ns.clone()).or_default();
        Self::room(&mut map, key, self.max_keys, now_ms)?;
        let live = map.get(key).filter(|e| e.expires_ms.is_none_or(|x| x > now_ms));
        let (current, expires_ms) = match live {
            Some(e) => (e.value.parse::<i64>().map_err(|_| KvRefusal::NotANumber)?, e.expires_ms),
            None => (0, ttl_s.map(|t| now_ms + u64::from(t) * 1000)),
        };
        let next = current.saturating_add(delta);
        let entry = KvEntry { value: next.to_string(), expires_ms };
        self.journal(ns, key, &entry);
        map.insert(key.to_owned(), entry);
        Ok(next)
    }
}

/// Counter and histogram summaries, per plugin.
#[derive(Default)]
pub struct Metrics {
    counters: DashMap<(Arc<str>, String), AtomicU64>,
    histograms: DashMap<(Arc<str>, String), HistogramSummary>,
}

/// Count, sum, min and max of a histogram's observations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HistogramSummary {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

/// Most distinct metric names one plugin may create.
const MAX_METRICS_PER_PLUGIN: usize = 1000;

impl Metrics {
    pub fn counter(&self, plugin: &Arc<str>, name: &str, delta: u64) {
        if let Some(c) = self.counters.get(&(plugin.clone(), name.to_owned())) {
            c.fetch_add(delta, Ordering::Relaxed);
            return;
        }
        if self.counters.len() < MAX_METRICS_PER_PLUGIN * 64 {
            self.counters.entry((plugin.clone(), name.to_owned())).or_default().fetch_add(delta, Ordering::Relaxed);
        }
    }

    pub fn histogram(&self, plugin: &Arc<str>, name: &str, value: f64) {
        if !value.is_finite() || self.histograms.len() >= MAX_METRICS_PER_PLUGIN * 64 {
            return;
        }
        let mut h = self.histograms.entry((plugin.clone(), name.to_owned())).or_default();
        h.min = if h.count == 0 { value } else { h.min.min(value) };
        h.max = if h.count == 0 { value } else { h.max.max(value) };
        h.count += 1;
        h.sum += value;
    }

    /// Current value of `plugin`'s counter `name`.
    pub fn counter_value(&self, plugin: &str, name: &str) -> u64 {
        self.counters
            .iter()
            .find(|e| &*e.key().0 == plugin && e.key().1 == name)
            .map(|e| e.value().load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Every counter as `(plugin, name, value)`, sorted.
    pub fn counters(&self) -> Vec<(String, String, u64)> {
        let mut v: Vec<_> = self
            .counters
            .iter()
            .map(|e| (e.key().0.to_string(), e.key().1.clone(), e.value().load(Ordering::Relaxed)))
            .collect();
        v.sort();
        v
    }

    /// Summary of `plugin`'s histogram `name`.
    pub fn histogram_summary(&self, plugin: &str, name: &str) -> Option<HistogramSummary> {
        self.histograms.iter().find(|e| &*e.key().0 == plugin && e.key().1 == name).map(|e| *e.value())
    }
}

/// A plugin's config table from the operator, looked up by dotted path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PluginConfig(pub toml::Table);

impl PluginConfig {
    /// The value at `path` (`a.b.0.c`); array elements by index.
    pub fn lookup(&self, path: &str) -> Option<&toml::Value> {
        let mut parts = path.split('.').filter(|p| !p.is_empty());
        let first = parts.next()?;
        let mut cur = self.0.get(first)?;
        for part in parts {
            cur = match cur {
                toml::Value::Table(t) => t.get(part)?,
                toml::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_ttl_quota_and_counters() {
        let kv = KvStore::new(2);
        let ns = KvStore::namespace("p", "a");
        kv.set(&ns, "k", "v", Some(1), 1000).unwrap();
        assert_eq!(kv.get(&ns, "k", 1999).as_deref(), Some("v"));
        assert_eq!(kv.get(&ns, "k", 2000), None);
        assert_eq!(kv.incr(&ns, "c", 2, None, 1000), Ok(2));
        assert_eq!(kv.incr(&ns, "c", 3, None, 1000), Ok(5));
        assert_eq!(kv.set(&ns, "x", "1", None, 1000), Err(KvRefusal::QuotaExceeded));
        // the expired key makes room
        assert_eq!(kv.set(&ns, "x", "1", None, 5000), Ok(()));
        assert_eq!(kv.incr(&ns, "x", 1, None, 5000), Ok(2));
        kv.set(&ns, "x", "text", None, 5000).unwrap();
        assert_eq!(kv.incr(&ns, "x", 1, None, 5000), Err(KvRefusal::NotANumber));
        assert_eq!(kv.set(&ns, &"k".repeat(300), "v", None, 0), Err(KvRefusal::TooLarge));
        let other = KvStore::namespace("p", "b");
        assert_eq!(kv.get(&other, "c", 1000), None, "accounts are isolated");
    }

    #[test]
    fn a_journal_sees_every_write_and_restore_puts_back_what_is_live() {
        let kv = KvStore::new(2);
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        assert!(kv.journal_to(tx));
        let ns = KvStore::namespace("p", "a");
        kv.set(&ns, "k", "v", Some(10), 1_000).unwrap();
        assert_eq!(kv.incr(&ns, "c", 5, None, 1_000), Ok(5));
        assert_eq!(kv.incr(&ns, "c", 1, None, 1_000), Ok(6), "a full journal never fails the write");
        assert_eq!(kv.journal_dropped(), 1);
        let got: Vec<KvWrite> = rx.try_iter().collect();
        assert_eq!(
            got[0],
            KvWrite { namespace: ns.clone(), key: "k".into(), value: "v".into(), expires_ms: Some(11_000) }
        );
        assert_eq!((got[1].key.as_str(), got[1].value.as_str(), got[1].expires_ms), ("c", "5", None));

        let again = KvStore::new(2);
        let row =
            |key: &str, expires_ms| KvWrite { namespace: ns.clone(), key: key.into(), value: "7".into(), expires_ms };
        let restored =
            again.restore([row("gone", Some(1_500)), row("a", Some(9_000)), row("b", None), row("c", None)], 2_000);
        assert_eq!(restored, 2, "the expired one skipped, the third beyond the quota of 2");
        assert_eq!(again.get(&ns, "a", 2_000).as_deref(), Some("7"));
        assert_eq!(again.incr(&ns, "b", 1, None, 2_000), Ok(8), "a restored counter goes on counting");
        assert_eq!(again.get(&ns, "gone", 2_000), None);
    }

    #[test]
    fn config_paths() {
        let c = PluginConfig(toml::from_str("a = 1\n[g]\nx = [\"u\", {y = true}]").unwrap());
        assert_eq!(c.lookup("a"), Some(&toml::Value::Integer(1)));
        assert_eq!(c.lookup("g.x.0"), Some(&toml::Value::String("u".into())));
        assert_eq!(c.lookup("g.x.1.y"), Some(&toml::Value::Boolean(true)));
        assert_eq!(c.lookup("g.x.9"), None);
        assert_eq!(c.lookup(""), None);
        assert_eq!(c.lookup("a.b"), None);
    }
}
