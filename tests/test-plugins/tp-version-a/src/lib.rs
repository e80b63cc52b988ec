//! Version "a" of one plugin (tests install it as `versioned.wasm`): sets
//! variable `version` to `a` in `on-invite`.
use trunkline_sdk::*;
#[derive(Default)]
struct Versioned;
#[policy]
impl Policy for Versioned {
    fn on_invite(&self, _: &Call, _: &Request) -> InviteDecision {
        Decision::edit(InviteEdits::new().set_variable("version", "a"))
    }
}
