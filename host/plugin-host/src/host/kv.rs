//! `kv`: per-plugin, per-account values and counters, in the router
//! ([`crate::services::KvStore`]) or in a store shared with other routers
//! ([`crate::services::SharedKv`]).
//!
//! A shared store answers over the network while the hook waits. Each
//! hook may wait on it at most the store's budget in all (a call past it
//! fails with `unavailable` at once), and that wait does not count against
//! the hook's CPU deadline: the epoch deadline is extended by it
//! ([`extend_deadline`]), so a slow store costs a call its kv answer,
//! never the plugin a timeout and a step towards quarantine.

use std::time::{Duration, Instant};

use crate::bindings::trunkline::policy::kv::{Error, Host};
use crate::services::{now_unix_ms, KvRefusal, SharedKv, KV_MAX_BATCH, KV_MAX_KEY, KV_MAX_VALUE};
use crate::state::HostState;

fn wit_error(r: KvRefusal) -> Error {
    match r {
        KvRefusal::QuotaExceeded => Error::QuotaExceeded,
        KvRefusal::TooLarge => Error::TooLarge,
        KvRefusal::NotANumber => Error::NotANumber,
        KvRefusal::Unavailable => Error::Unavailable,
    }
}

impl HostState {
    /// Run `op` against the shared store, if one is configured, with what
    /// is left of this hook's budget as its deadline.
    fn shared<R>(
        &mut self,
        op: impl FnOnce(&dyn SharedKv, &str, usize, Duration) -> Result<R, KvRefusal>,
    ) -> Option<Result<R, Error>> {
        let s = self.scope.of_call()?;
        let store = s.services.shared_kv.get()?;
        let left = store.budget().saturating_sub(self.kv_waited);
        if left.is_zero() {
            return Some(Err(Error::Unavailable));
        }
        let started = Instant::now();
        let result = op(&**store, s.kv_namespace(), s.services.kv.max_keys(), left);
        let waited = started.elapsed();
        self.kv_waited += waited;
        self.kv_wait_unpaid += waited;
        Some(result.map_err(wit_error))
    }
}

/// Epoch ticks to add to a hook's deadline for the time it spent waiting
/// on the shared kv since the last extension (0: the deadline stands).
pub(crate) fn extend_deadline(state: &mut HostState) -> u64 {
    let unpaid = std::mem::take(&mut state.kv_wait_unpaid);
    let tick = crate::engine::EPOCH_TICK.as_nanos();
    unpaid.as_nanos().div_ceil(tick) as u64
}

impl Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        if key.len() > KV_MAX_KEY {
            return Err(Error::TooLarge);
        }
        if let Some(r) = self.shared(|kv, ns, _, d| kv.get_many(ns, std::slice::from_ref(&key), d)) {
            return r.map(|mut v| v.pop().flatten());
        }
        let Some(s) = self.scope.of_call() else { return Ok(None) };
        Ok(s.services.kv.get(s.kv_namespace(), &key, now_unix_ms()))
    }

    fn get_many(&mut self, keys: Vec<String>) -> Result<Vec<Option<String>>, Error> {
        if keys.len() > KV_MAX_BATCH || keys.iter().any(|k| k.len() > KV_MAX_KEY) {
            return Err(Error::TooLarge);
        }
        if let Some(r) = self.shared(|kv, ns, _, d| kv.get_many(ns, &keys, d)) {
            return r;
        }
        let Some(s) = self.scope.of_call() else { return Ok(vec![None; keys.len()]) };
        let now = now_unix_ms();
        Ok(keys.iter().map(|k| s.services.kv.get(s.kv_namespace(), k, now)).collect())
    }

    fn set(&mut self, key: String, value: String, ttl_seconds: Option<u32>) -> Result<(), Error> {
        if key.len() > KV_MAX_KEY || value.len() > KV_MAX_VALUE {
            return Err(Error::TooLarge);
        }
        if let Some(r) = self.shared(|kv, ns, max, d| kv.set(ns, &key, &value, ttl_seconds, max, d)) {
            return r;
        }
        let Some(s) = self.scope.of_call() else { return Ok(()) };
        s.services.kv.set(s.kv_namespace(), &key, &value, ttl_seconds, now_unix_ms()).map_err(wit_error)
    }

    fn incr(&mut self, key: String, delta: i64, ttl_seconds: Option<u32>) -> Result<i64, Error> {
        if key.len() > KV_MAX_KEY {
            return Err(Error::TooLarge);
        }
        if let Some(r) = self.shared(|kv, ns, max, d| kv.incr(ns, &key, delta, ttl_seconds, max, d)) {
            return r;
        }
        let Some(s) = self.scope.of_call() else { return Ok(delta) };
        s.services.kv.incr(s.kv_namespace(), &key, delta, ttl_seconds, now_unix_ms()).map_err(wit_error)
    }
}
