//! Allocates 1 GiB in `on-invite`.
use trunkline_sdk::*;
#[derive(Default)]
struct Oom;
#[policy]
impl Policy for Oom {
    fn on_invite(&self, _: &Call, _: &Request) -> InviteDecision {
        let v = vec![1u8; 1 << 30];
        Decision::reject(400, format!("allocated {}", std::hint::black_box(v).len()))
    }
}
