//! The plugin's own configuration table, as the operator wrote it for this
//! trunk. Paths are dotted: `zone`, `groups.sales`, `rules.0.prefix`.

#[doc(inline)]
pub use crate::wit::trunkline::policy::config::Value;

/// The value at `path`, or `None`.
///
/// ```no_run
/// use trunkline_sdk::config::{self, Value};
/// if let Some(Value::Integer(n)) = config::get("max_calls") { let _ = n; }
/// ```
pub fn get(path: &str) -> Option<Value> {
    #[cfg(target_arch = "wasm32")]
    return crate::wit::trunkline::policy::config::get(path);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::with(|s| s.config_get(path));
}

/// The text at `path`, if it is text.
///
/// ```no_run
/// let zone = trunkline_sdk::config::text("zone").unwrap_or_else(|| "UTC".into());
/// ```
pub fn text(path: &str) -> Option<String> {
    match get(path)? {
        Value::Text(s) => Some(s),
        _ => None,
    }
}

/// The integer at `path`, if it is one.
///
/// ```no_run
/// let limit = trunkline_sdk::config::integer("limit").unwrap_or(2);
/// ```
pub fn integer(path: &str) -> Option<i64> {
    match get(path)? {
        Value::Integer(n) => Some(n),
        _ => None,
    }
}

/// The boolean at `path`, if it is one.
///
/// ```no_run
/// let strict = trunkline_sdk::config::boolean("strict").unwrap_or(false);
/// ```
pub fn boolean(path: &str) -> Option<bool> {
    match get(path)? {
        Value::Boolean(b) => Some(b),
        _ => None,
    }
}

/// Number of elements of the array at `path` (0 if it is not an array).
///
/// ```no_run
/// for i in 0..trunkline_sdk::config::len("rules") { let _ = i; }
/// ```
pub fn len(path: &str) -> u32 {
    match get(path) {
        Some(Value::Array(n)) => n,
        _ => 0,
    }
}

/// Keys of the table at `path` (empty if it is not a table).
///
/// ```no_run
/// let groups = trunkline_sdk::config::keys("groups");
/// ```
pub fn keys(path: &str) -> Vec<String> {
    match get(path) {
        Some(Value::Table(keys)) => keys,
        _ => Vec::new(),
    }
}

/// The array of text at `path` (non-text elements are skipped).
///
/// ```no_run
/// let uris = trunkline_sdk::config::texts("groups.sales");
/// ```
pub fn texts(path: &str) -> Vec<String> {
    (0..len(path)).filter_map(|i| text(&format!("{path}.{i}"))).collect()
}

/// Whether the plugin acts on calls in `direction`: by its `directions`
/// setting (a list of `"termination"` and `"origination"`), or by
/// `default` when its configuration has none.
///
/// ```
/// use trunkline_sdk::{config, Direction};
/// let h = trunkline_sdk::testing::Harness::new();
/// assert!(config::applies_to(Direction::Termination, &["termination"]));
/// h.set_config("directions = [\"origination\"]");
/// assert!(config::applies_to(Direction::Origination, &["termination"]));
/// assert!(!config::applies_to(Direction::Termination, &["termination"]));
/// ```
pub fn applies_to(direction: crate::Direction, default: &[&str]) -> bool {
    let name = match direction {
        crate::Direction::Termination => "termination",
        crate::Direction::Origination => "origination",
    };
    let listed = texts("directions");
    if listed.is_empty() {
        default.contains(&name)
    } else {
        listed.iter().any(|d| d == name)
    }
}
