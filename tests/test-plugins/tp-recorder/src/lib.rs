//! Does what its config says, and leaves traces tests can read:
//! - `on-invite`: appends config `name` to variable `order`, adds header
//!   `X-Chain: <name>`, counts invites in kv `invites` (returned as variable
//!   `invites-<name>`) and invites seen by this instance in static memory
//!   (variable `instance-invites`); rejects with `reject_code` if set.
//! - `select-uri`: reverses the candidates if `reverse = true` (as `ordered`).
//! - `pre-dial`: adds `X-Dialed-By: <name>`; skips targets containing `skip`;
//!   with `record` (`single` or `dual`) asks for the call to be recorded,
//!   setting `X-Media` (the media facts it read) and `X-Recording` (granted).
//! - `on-redirect`: follows `follow` if set, else default.
//! - `on-failure`: returns `twiml_url` if set, else default.
//! - `on-call-end`: increments metric `ended` and kv `ended`.
//!
//! Headers, read on demand: `on-invite` sets variable `seen-x-chain` to the
//! inbound `X-Chain` values (earlier plugins' edits) and `request-from` to
//! the request's From read by its compact name `f`; `pre-dial` adds
//! `X-Saw-Dialed-By` with the outgoing request's `X-Dialed-By` values, if
//! any; `on-redirect` follows the response's header named `follow_header`
//! if that is set.
//!
//! The call, read on demand: `on-invite` sets variable `call-parts` to every
//! part of the call it reads through its handle, and rewrites the
//! request-URI user to `rewrite_user` if set.
use std::sync::atomic::{AtomicU32, Ordering};
use trunkline_sdk::*;
static INSTANCE_INVITES: AtomicU32 = AtomicU32::new(0);
#[derive(Default)]
struct Recorder;
fn name() -> String {
    config::text("name").unwrap_or_else(|| "recorder".into())
}
#[policy]
impl Policy for Recorder {
    fn on_invite(&self, call: &Call, request: &Request) -> InviteDecision {
        let me = name();
        if let Some(code) = config::integer("reject_code") {
            return Decision::reject(code as u16, format!("rejected by {me}"));
        }
        let order = match call.variable("order") {
            Some(o) => format!("{o},{me}"),
            None => me.clone(),
        };
        let invites = kv::incr("invites", 1, None).unwrap_or(-1);
        let seen = INSTANCE_INVITES.fetch_add(1, Ordering::Relaxed) + 1;
        let user = |p: &Party| p.user.clone().unwrap_or_default();
        let parts = format!(
            "{} {:?} {} {} {} {} {:?} from={}@{} to={} ruri={} vars={}",
            call.call_id(),
            call.direction(),
            call.account_id(),
            call.trunk_id(),
            call.trunk_name(),
            call.source_address(),
            call.transport(),
            user(call.from()),
            call.from().host,
            user(call.to()),
            user(call.request_uri()),
            call.variables().len(),
        );
        let mut edits = InviteEdits::new();
        if let Some(u) = config::text("rewrite_user") {
            edits = edits.rewrite_user(u);
        }
        Decision::edit(
            edits
                .add_header("X-Chain", me.clone())
                .set_variable("order", order)
                .set_variable(format!("invites-{me}"), invites.to_string())
                .set_variable("instance-invites", seen.to_string())
                .set_variable("seen-x-chain", call.headers_named("X-Chain").join(","))
                .set_variable("request-from", request.header("f").unwrap_or_default())
                .set_variable(
                    "request-line",
                    format!("{} {} body={}", request.method(), request.uri(), request.body().len()),
                )
                .set_variable("call-parts", parts),
        )
    }
    fn select_uri(&self, _: &Call, candidates: &[Target]) -> Selection {
        if config::boolean("reverse").unwrap_or(false) {
            Selection::Ordered(candidates.iter().rev().cloned().collect())
        } else {
            Selection::Default
        }
    }
    fn pre_dial(&self, call: &Call, request: &Request, target: &Target) -> DialDecision {
        if target.uri.contains("skip") {
            return DialDecision::Skip;
        }
        let mut edits = vec![
            HeaderEdit::add("X-Dialed-By", name()),
            HeaderEdit::set("X-Dialed-Request", format!("{} {}", request.method(), request.uri())),
        ];
        // Config `record = "single" | "dual"`: ask for the call to be
        // recorded, and say what the media facts were and whether it was granted.
        if let Some(mode) = config::text("record") {
            let mode = if mode == "single" { RecordingMode::Single } else { RecordingMode::Dual };
            let m = call.media();
            let facts = format!("anchored={} secure={} codecs={}", m.anchored, m.secure, m.codecs.join(","));
            edits.push(HeaderEdit::set("X-Media", facts));
            edits.push(HeaderEdit::set("X-Recording", call.start_recording(mode).to_string()));
        }
        let prior = request.headers_named("X-Dialed-By");
        if !prior.is_empty() {
            edits.push(HeaderEdit::add("X-Saw-Dialed-By", prior.join(",")));
        }
        DialDecision::edit(edits)
    }
    fn on_redirect(&self, _: &Call, response: &Response) -> RedirectDecision {
        if let Some(h) = config::text("follow_header") {
            return response.header(&h).map_or(RedirectDecision::NextTarget, RedirectDecision::Follow);
        }
        match config::text("follow") {
            Some(uri) => RedirectDecision::Follow(uri),
            None => RedirectDecision::Default,
        }
    }
    fn on_failure(&self, _: &Call, _: Option<&Response>) -> Fallback {
        match config::text("twiml_url") {
            Some(u) => Fallback::TwimlUrl(u),
            None => Fallback::Default,
        }
    }
    fn on_call_end(&self, _: &Call, _: &Summary) {
        metrics::counter("ended", 1);
        let _ = kv::incr("ended", 1, None);
    }
}
