//! Overrides no hook: every decision is the SDK default.
#[derive(Default)]
struct Defaults;
impl trunkline_sdk::Policy for Defaults {}
trunkline_sdk::export_policy!(Defaults);
