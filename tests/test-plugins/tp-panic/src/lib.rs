//! Panics in `on-invite` (a trap, since plugins abort on panic).
use trunkline_sdk::*;
#[derive(Default)]
struct Panic;
#[policy]
impl Policy for Panic {
    fn on_invite(&self, call: &Call, _: &Request) -> InviteDecision {
        panic!("tp-panic was asked to route {}", call.call_id())
    }
}
