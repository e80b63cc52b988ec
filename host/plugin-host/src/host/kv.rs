//! `kv`: per-plugin, per-account values and counters.

use crate::bindings::trunkline::policy::kv::{Error, Host};
use crate::services::{now_unix_ms, KvRefusal};
use crate::state::HostState;

fn wit_error(r: KvRefusal) -> Error {
    match r {
        KvRefusal::QuotaExceeded => Error::QuotaExceeded,
        KvRefusal::TooLarge => Error::TooLarge,
        KvRefusal::NotANumber => Error::NotANumber,
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        let s = self.scope.of_call()?;
        s.services.kv.get(s.kv_namespace(), &key, now_unix_ms())
    }

    fn set(&mut self, key: String, value: String, ttl_seconds: Option<u32>) -> Result<(), Error> {
        let Some(s) = self.scope.of_call() else { return Ok(()) };
        s.services.kv.set(s.kv_namespace(), &key, &value, ttl_seconds, now_unix_ms()).map_err(wit_error)
    }

    fn incr(&mut self, key: String, delta: i64, ttl_seconds: Option<u32>) -> Result<i64, Error> {
        let Some(s) = self.scope.of_call() else { return Ok(delta) };
        s.services.kv.incr(s.kv_namespace(), &key, delta, ttl_seconds, now_unix_ms()).map_err(wit_error)
    }
}
