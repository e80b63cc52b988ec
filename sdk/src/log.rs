//! Log to the router's log, tagged with the plugin, its version and the call.

#[doc(inline)]
pub use crate::wit::trunkline::policy::log::Level;

/// Log `message` at `level`.
///
/// ```no_run
/// trunkline_sdk::log::log(trunkline_sdk::log::Level::Info, "hello");
/// ```
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::wit::trunkline::policy::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::with(|s| s.log(level, message));
}

/// Log at debug level.
///
/// ```no_run
/// trunkline_sdk::log::debug("considering 3 targets");
/// ```
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// Log at info level.
///
/// ```no_run
/// trunkline_sdk::log::info("routing to sales");
/// ```
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Log at warn level.
///
/// ```no_run
/// trunkline_sdk::log::warn("zone missing, using UTC");
/// ```
pub fn warn(message: &str) {
    log(Level::Warn, message)
}
