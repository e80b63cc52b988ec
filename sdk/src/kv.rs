//! Per-plugin, per-account values and counters with a TTL, shared by every
//! call of the account through this plugin (e.g. "calls to this number today").
//!
//! The operator decides where the kv lives: in the router (kept across
//! restarts) or in Redis, shared by every router. A shared store may be
//! slow or down: calls then fail with [`Error::Unavailable`] within a
//! bounded time, and the plugin decides what the call gets. [`FailMode`]
//! makes that decision one line:
//!
//! ```no_run
//! use trunkline_sdk::kv::{self, FailMode};
//! use trunkline_sdk::{Decision, InviteDecision};
//!
//! fn on_invite() -> InviteDecision {
//!     match kv::incr("calls", 1, Some(86_400)) {
//!         Ok(n) if n > 100 => Decision::reject(403, "Too many calls today"),
//!         Ok(_) => Decision::proceed(),
//!         Err(e) => FailMode::from_config("on_kv_error", FailMode::Open).decide("the daily cap", e),
//!     }
//! }
//! ```

#[doc(inline)]
pub use crate::wit::trunkline::policy::kv::Error;

/// The value of `key`, if present and not expired.
///
/// ```no_run
/// let last = trunkline_sdk::kv::get("last-caller").ok().flatten();
/// ```
pub fn get(key: &str) -> Result<Option<String>, Error> {
    #[cfg(target_arch = "wasm32")]
    return crate::wit::trunkline::policy::kv::get(key);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::with(|s| s.kv_get(key));
}

/// The values of `keys` (at most 64), in order: one round trip to a
/// shared store instead of one per key.
///
/// ```no_run
/// let days = ["calls:d:1", "calls:d:2"].map(String::from);
/// let values = trunkline_sdk::kv::get_many(&days).unwrap_or_default();
/// ```
pub fn get_many(keys: &[String]) -> Result<Vec<Option<String>>, Error> {
    #[cfg(target_arch = "wasm32")]
    return crate::wit::trunkline::policy::kv::get_many(keys);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::with(|s| s.kv_get_many(keys));
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

/// What a policy does with a call when its kv cannot answer: let it go
/// on uncounted (open) or refuse it (closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// The call goes on; a warning is logged and the plugin metric
    /// `kv_failures` counts it.
    Open,
    /// The call is refused with `503 Service Unavailable` (the caller may
    /// try another route); the plugin metric `kv_failures` counts it.
    Closed,
}

impl FailMode {
    /// The mode the plugin's configuration names at `key`: `"open"` (or
    /// `"continue"`) and `"closed"` (or `"refuse"`); `default` when unset
    /// or anything else.
    ///
    /// ```
    /// use trunkline_sdk::kv::FailMode;
    /// let h = trunkline_sdk::testing::Harness::new();
    /// h.set_config("on_kv_error = \"refuse\"");
    /// assert_eq!(FailMode::from_config("on_kv_error", FailMode::Open), FailMode::Closed);
    /// ```
    pub fn from_config(key: &str, default: FailMode) -> FailMode {
        match crate::config::text(key).as_deref() {
            Some("open" | "continue") => FailMode::Open,
            Some("closed" | "refuse") => FailMode::Closed,
            _ => default,
        }
    }

    /// The decision for a call whose kv call failed with `error` while the
    /// plugin was checking `what` (named in the log and the 503's reason).
    ///
    /// ```
    /// use trunkline_sdk::kv::{Error, FailMode};
    /// use trunkline_sdk::{Decision, InviteDecision};
    /// let _h = trunkline_sdk::testing::Harness::new();
    /// assert_eq!(FailMode::Open.decide("the cap", Error::Unavailable), Decision::proceed());
    /// assert!(matches!(FailMode::Closed.decide("the cap", Error::Unavailable), InviteDecision::Reject(r) if r.code == 503));
    /// ```
    pub fn decide(self, what: &str, error: Error) -> crate::InviteDecision {
        crate::metrics::counter("kv_failures", 1);
        match self {
            FailMode::Open => {
                crate::log::warn(&format!("{what} could not be checked ({error:?}); the call goes on"));
                crate::Decision::proceed()
            }
            FailMode::Closed => crate::Decision::reject(503, format!("{what} cannot be checked now")),
        }
    }
}
