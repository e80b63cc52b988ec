//! What the account of the current call owns: numbers, verified caller IDs, labels.

/// Is `number` (E.164) one of the account's numbers?
///
/// ```no_run
/// let ours = trunkline_sdk::numbers::is_owned("+14155550100");
/// ```
pub fn is_owned(number: &str) -> bool {
    #[cfg(target_arch = "wasm32")]
    return crate::wit::trunkline::policy::numbers::is_owned(number);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::with(|s| s.is_owned(number));
}

/// Is `number` a verified caller ID of the account? Owned numbers count.
///
/// ```no_run
/// let ok = trunkline_sdk::numbers::is_verified_caller_id("+14155550199");
/// ```
pub fn is_verified_caller_id(number: &str) -> bool {
    #[cfg(target_arch = "wasm32")]
    return crate::wit::trunkline::policy::numbers::is_verified_caller_id(number);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::with(|s| s.is_verified(number));
}

/// The operator's label of one of the account's numbers.
///
/// ```no_run
/// let label = trunkline_sdk::numbers::label("+14155550100");
/// ```
pub fn label(number: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return crate::wit::trunkline::policy::numbers::label(number);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::with(|s| s.label(number));
}
