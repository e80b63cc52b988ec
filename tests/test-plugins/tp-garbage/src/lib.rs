//! Returns decisions the host must refuse: a status code of 99 with a CR/LF
//! injection in `on-invite`, a non-SIP target in `select-uri`, an edit of
//! the Via header in `pre-dial`.
use trunkline_sdk::*;
#[derive(Default)]
struct Garbage;
#[policy]
impl Policy for Garbage {
    fn on_invite(&self, _: &Call, _: &Request) -> InviteDecision {
        Decision::reject(99, "OK\r\nVia: SIP/2.0/UDP evil.example")
    }
    fn select_uri(&self, _: &Call, _: &[Target]) -> Selection {
        Selection::Ordered(vec![Target::new("http://evil.example/")])
    }
    fn pre_dial(&self, _: &Call, _: &Request, _: &Target) -> DialDecision {
        DialDecision::edit(vec![HeaderEdit::set("Via", "SIP/2.0/UDP evil.example")])
    }
}
