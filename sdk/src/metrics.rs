//! Plugin metrics, exported by the router under the plugin's name.

/// Add `delta` to the counter `name`.
///
/// ```no_run
/// trunkline_sdk::metrics::counter("rejected_toll_free", 1);
/// ```
pub fn counter(name: &str, delta: u64) {
    #[cfg(target_arch = "wasm32")]
    crate::wit::trunkline::policy::metrics::counter(name, delta);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::with(|s| s.counter(name, delta));
}

/// Record one observation of the histogram `name`.
///
/// ```no_run
/// trunkline_sdk::metrics::histogram("candidates", 3.0);
/// ```
pub fn histogram(name: &str, value: f64) {
    #[cfg(target_arch = "wasm32")]
    crate::wit::trunkline::policy::metrics::histogram(name, value);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::with(|s| s.histogram(name, value));
}
