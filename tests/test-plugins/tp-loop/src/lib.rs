//! Loops forever in `on-invite`; every other hook is default.
use trunkline_sdk::*;
#[derive(Default)]
struct Loop;
#[policy]
impl Policy for Loop {
    fn on_invite(&self, _: &Call, _: &Request) -> InviteDecision {
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}
