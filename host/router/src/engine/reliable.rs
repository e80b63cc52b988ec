//! Reliable provisional responses (RFC 3262, `100rel`), terminated on each
//! leg: the router is the UAS of the caller's reliable 1xx and the UAC that
//! acknowledges the target's.
//!
//! Why not relay them end to end: a call may try several targets, each
//! with its own early dialog and RSeq numbers, while the caller sees one
//! answering party; and a caller that requires 100rel must get a call even
//! from a PBX that does not support it (end to end, the PBX would answer
//! 420). So:
//! - A caller whose INVITE supports or requires 100rel gets every 1xx
//!   reliably if it requires it, and those with a session description
//!   (early media) if it only supports it; one at a time, each repeated
//!   until its PRACK; a 2xx waits for the PRACK of a 1xx with a session
//!   description; 64*T1 without a PRACK ends the call with 500.
//! - Targets are offered 100rel (`Supported`) when the caller supports it;
//!   their reliable 1xx get a PRACK at once, except one carrying an offer
//!   (the caller's INVITE had none): its PRACK carries the caller's answer,
//!   from the caller's PRACK.
//! - If the caller already has a session description from a reliable 1xx
//!   and another target sends a different one, that goes in a new early
//!   dialog (a new To tag), as from a forking proxy; a 2xx repeating the
//!   description the caller has goes without it.

use std::cmp::Reverse;
use std::time::Instant;

use trunkline_plugin_host::types::HangupBy;
use trunkline_sip_core::dialog::Dialog;
use trunkline_sip_core::header::RAck;
use trunkline_sip_core::message::Message;
use trunkline_sip_core::reliable::{self, Prack, Receipt};
use trunkline_sip_core::transaction::{response_to, Timers, TransactionKey};
use trunkline_sip_core::Transport as SipTransport;

use super::build::{self, header};
use super::call::Phase;
use super::hop::Hop;
use super::in_dialog::Side;
use super::{Engine, Timer};
use trunkline_plugin_host::types::Outcome;

impl Engine {
    /// A 1xx from call `id`'s current target: PRACK it if it is a new
    /// reliable one. False if it must be ignored (a repeat, out of order).
    pub(super) fn target_provisional(&mut self, now: Instant, id: u64, m: &Message) -> bool {
        let Some(c) = self.calls.get_mut(&id) else { return false };
        let Some(leg) = c.leg.as_mut() else { return false };
        let rack = match leg.receipts.check(m) {
            Receipt::Unreliable => return true,
            Receipt::Ignore => return false,
            Receipt::New(rack) => rack,
        };
        let Ok(fresh) = Dialog::as_uac(&leg.invite, m) else {
            tracing::warn!(call_id = %c.call.call_id, "reliable 1xx without a usable early dialog: not acknowledged");
            return true;
        };
        let tag = fresh.id.remote_tag.clone();
        if !leg.early.iter().any(|d| d.id.remote_tag == tag) {
            leg.early.push(fresh);
        }
        // An offer in the 1xx (our INVITE had none): the caller's PRACK brings the answer.
        if leg.invite.body.is_empty() && !m.body.is_empty() {
            leg.prack_pending = Some((tag, rack));
            return true;
        }
        self.prack_target(now, id, &tag, &rack, None);
        true
    }

    /// PRACK the reliable 1xx `rack` of the current target's early dialog
    /// `tag`, carrying the body of `answer` (the caller's PRACK) if given.
    fn prack_target(&mut self, now: Instant, id: u64, tag: &str, rack: &RAck, answer: Option<&Message>) {
        let branch = self.ids.next();
        let Some(leg) = self.calls.get_mut(&id).and_then(|c| c.leg.as_mut()) else { return };
        let Some(d) = leg.early.iter_mut().find(|d| d.id.remote_tag == tag) else { return };
        let hop = Hop::of(d, leg.to);
        let mut prack = d.request("PRACK", &build::via(&self.locals, hop.transport), &branch);
        prack.headers.push(header("RAck", rack.to_string()));
        if let Some(answer) = answer {
            if let Some(ct) = answer.header("Content-Type") {
                prack.headers.push(header("Content-Type", ct));
            }
            prack.body = answer.body.clone();
            leg.early_answered = !prack.body.is_empty();
        }
        if let Err(e) = self.anchor(now, id, Side::Caller, &mut prack) {
            tracing::warn!(call_id = prack.header("Call-ID").unwrap_or_default(), "caller's answer in its PRACK: {e}");
            prack.body.clear();
            prack.headers.retain(|h| !h.name.eq_ignore_ascii_case("Content-Type"));
        }
        self.send_request_to(now, &hop, prack);
    }

    /// Send the caller `resp`, a 1xx to its INVITE: reliably if the caller
    /// asks for that (see the module docs), else as it is.
    pub(super) fn provisional_to_caller(&mut self, now: Instant, id: u64, mut resp: Message) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        let required = reliable::required(&c.a_invite);
        let a_tx = c.a_tx.clone();
        let Some(p) = c.a_reliable.as_mut().filter(|_| required || !resp.body.is_empty()) else {
            self.layer.send_response(now, &a_tx, resp);
            return;
        };
        if !resp.body.is_empty() {
            match &c.a_early_sdp {
                Some(sdp) if *sdp != resp.body => {
                    // Another description: a new early dialog for it.
                    c.a_tag = self.ids.next();
                    set_to_tag(&mut resp, &c.a_tag);
                    c.a_early_sdp = Some(resp.body.clone());
                }
                Some(_) => {}
                None => c.a_early_sdp = Some(resp.body.clone()),
            }
        }
        p.send(now, resp);
        self.flush_reliable(now, id);
    }

    /// A PRACK from the caller (or, wrongly, the callee) of call `id`.
    pub(super) fn on_prack(&mut self, now: Instant, key: TransactionKey, m: Message, id: u64, side: Side) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        let verdict = match (side, c.a_reliable.as_mut()) {
            (Side::Caller, Some(p)) => p.handle_prack(now, &m),
            _ => Prack::Unknown,
        };
        if verdict == Prack::Unknown {
            return self.respond(now, &key, &m, 481, "Call/Transaction Does Not Exist (no such reliable response)");
        }
        self.respond(now, &key, &m, 200, "OK");
        // The target's PRACK that waited for this answer.
        let pending = self.calls.get_mut(&id).and_then(|c| c.leg.as_mut()).and_then(|l| l.prack_pending.take());
        if let Some((tag, rack)) = pending {
            self.prack_target(now, id, &tag, &rack, Some(&m));
        }
        self.flush_reliable(now, id);
        let held = self.calls.get(&id).is_some_and(|c| {
            c.a_ok.is_some() && c.a_ok_sent.is_none() && !c.a_reliable.as_ref().is_some_and(|p| p.holds_final())
        });
        if held {
            self.send_ok(now, id);
        }
    }

    /// Send what the caller's reliable 1xx queued, and keep their timer.
    fn flush_reliable(&mut self, now: Instant, id: u64) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        let Some(p) = c.a_reliable.as_mut() else { return };
        let a_tx = c.a_tx.clone();
        let out: Vec<Message> = std::iter::from_fn(|| p.poll_transmit()).collect();
        let next = p.poll_timeout();
        if let Some(at) = next.filter(|_| next != c.a_reliable_armed) {
            c.a_reliable_armed = next;
            self.timers.push(Reverse((at, id, Timer::Reliable)));
        }
        for r in out {
            self.layer.send_response(now, &a_tx, r);
        }
    }

    /// The caller's reliable 1xx timer: repeat, or give up after 64*T1.
    pub(super) fn reliable_timer(&mut self, now: Instant, id: u64) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        let Some(p) = c.a_reliable.as_mut() else { return };
        if p.poll_timeout().is_none_or(|due| due > now) {
            return; // a wake-up for a deadline that moved since
        }
        c.a_reliable_armed = None;
        p.handle_timeout(now);
        if !p.failed() {
            return self.flush_reliable(now, id);
        }
        tracing::warn!(call_id = %c.call.call_id, "no PRACK for a reliable provisional response in 32 s: call ended with 500");
        c.route.push("no PRACK from the caller for a reliable 1xx: 500".into());
        match c.phase {
            Phase::Routing => {
                if let Some(leg) = c.leg.take() {
                    self.withdraw(now, leg);
                }
                self.finish(now, id, 500, WHY, Outcome::Failed);
            }
            Phase::Answered => {
                // The target answered; the caller never got its 2xx.
                let (a_tx, resp) = (c.a_tx.clone(), response_to(&c.a_invite, 500, WHY));
                self.layer.send_response(now, &a_tx, resp);
                self.hang_up(now, id, Side::Callee);
                self.end_answered(now, id, HangupBy::Router);
            }
        }
    }

    /// Send the caller its 2xx (`a_ok`), then resend it until its ACK.
    pub(super) fn send_ok(&mut self, now: Instant, id: u64) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        let Some(ok) = c.a_ok.clone() else { return };
        if let Some(p) = c.a_reliable.as_mut() {
            p.stop();
        }
        c.a_ok_sent = Some(now);
        let a_tx = c.a_tx.clone();
        if c.a_from.transport == SipTransport::Udp {
            let t1 = Timers::default().t1;
            self.timers.push(Reverse((now + t1, id, Timer::OkRetransmit(2 * t1.as_millis() as u64))));
        }
        self.layer.send_response(now, &a_tx, ok);
    }
}

/// Why a call whose caller never acknowledged a reliable 1xx ends.
const WHY: &str = "Server Internal Error (no PRACK for a reliable provisional response)";

/// Set the To tag of a response we built (replacing the one it has).
fn set_to_tag(resp: &mut Message, tag: &str) {
    for h in resp.headers.iter_mut().filter(|h| h.name.eq_ignore_ascii_case("To")) {
        h.value = format!("{};tag={tag}", build::without_tag(&h.value));
    }
}
