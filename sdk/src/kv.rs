//! Per-plugin, per-account values and counters with a TTL, shared by every
//! call of the account through this plugin (e.g. "calls to this number today").

#[doc(inline)]
pub use crate::wit::trunkline::policy::kv::Error;

/// The value of `key`, if present and not expired.
///
/// ```no_run
/// let last = trunkline_sdk::kv::get("last-caller");
/// ```
pub fn get(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return crate::wit::trunkline::policy::kv::get(key);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::with(|s| s.kv_get(key));
}

/// Set `key` to `value`; it expires after `ttl_seconds` (`None`: never).
///
/// ```no_run
/// trunkline_sdk::kv::set("last-caller", "+14155550100", Some(3600)).ok();
/// ```
pub fn set(key: &str, value: &str, ttl_seconds: Option<u32>) -> Result<(), Error> {
    #[cfg(target_arch = "wasm32")]
    return crate::wit::trunkline::policy::kv::set(key, value, ttl_seconds);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::with(|s| s.kv_set(key, value, ttl_seconds));
}

/// Add `delta` to the counter at `key` (absent counts as 0) and return the new
/// value. A new key expires after `ttl_seconds`; an existing one keeps its expiry.
///
/// ```no_run
/// let today = trunkline_sdk::kv::incr("calls:+14155550100", 1, Some(86_400)).unwrap_or(0);
/// ```
pub fn incr(key: &str, delta: i64, ttl_seconds: Option<u32>) -> Result<i64, Error> {
    #[cfg(target_arch = "wasm32")]
    return crate::wit::trunkline::policy::kv::incr(key, delta, ttl_seconds);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::with(|s| s.kv_incr(key, delta, ttl_seconds));
}
