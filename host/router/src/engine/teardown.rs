//! The end of calls: the caller's 2xx resent until its ACK, BYE from
//! either side, CANCEL before answer, stray and late 2xx responses, and
//! closing a call (final response, `on-call-end`, report).

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use trunkline_plugin_host::types::{HangupBy, Outcome, Summary};
use trunkline_sip_core::dialog::Dialog;
use trunkline_sip_core::message::Message;
use trunkline_sip_core::transaction::{response_to, status_of, Timers, TransactionKey};
use trunkline_sip_core::{Peer, Transport as SipTransport};

use super::build::cancel_for;
use super::build::{self, relay_response, uri_peer};
use super::call::{Leg, Phase};
use super::hop::Hop;
use super::in_dialog::{other, seq_of, Side};
use super::{Engine, Timer};

impl Engine {
    /// RFC 3261 §13.3.1.4: the caller's 2xx is resent until its ACK comes;
    /// after 64*T1 without one, the call is ended with BYE on both sides.
    pub(super) fn ok_retransmit(&mut self, now: Instant, id: u64, interval_ms: u64) {
        let timers = Timers::default();
        let Some(c) = self.calls.get(&id) else { return };
        let (Some(ok), false) = (c.a_ok.clone(), c.a_acked) else { return };
        if c.a_ok_sent.is_some_and(|a| now.saturating_duration_since(a) >= timers.timeout()) {
            tracing::warn!(call_id = %c.call.call_id, "no ACK for the 200 OK in {} s: hanging up", timers.timeout().as_secs());
            return self.hang_up_both(now, id);
        }
        if c.a_from.transport == SipTransport::Udp {
            self.layer.send_stateless(c.a_reply(), &ok); // streams deliver it once
        }
        let next = interval_ms.min(timers.t2.as_millis() as u64);
        self.timers.push(Reverse((now + Duration::from_millis(next), id, Timer::OkRetransmit(next * 2))));
    }

    /// A response no transaction wants. A 2xx to an INVITE is either a
    /// retransmission for a call's answered leg (ACK it again) or an answer
    /// from a target we abandoned after silence (ACK it and hang up).
    pub(super) fn on_stray_response(&mut self, now: Instant, from: Peer, m: Message) {
        let to_invite = m.header("CSeq").is_some_and(|c| c.ends_with("INVITE"));
        if !to_invite || !(200..300).contains(&status_of(&m)) {
            tracing::debug!(%from, "stray response ignored");
            return;
        }
        let call_id = m.header("Call-ID").unwrap_or_default();
        let answered_leg =
            self.by_b_call_id.get(call_id).and_then(|id| self.calls.get(id).map(|c| (*id, c))).filter(|(_, c)| {
                c.phase == Phase::Answered && c.b_dialog.as_ref().is_some_and(|d| d.id.call_id == call_id)
            });
        match answered_leg {
            Some((id, _)) => self.answered(now, id, m),
            None => self.hang_up_stray(now, Some(from), m),
        }
    }

    /// The caller's ACK for our 2xx (no transaction: matched by Call-ID).
    pub(super) fn on_ack(&mut self, now: Instant, m: Message) {
        if m.method() != Some("ACK") {
            return; // a request without an RFC 3261 branch: not served
        }
        let call_id = m.header("Call-ID").unwrap_or_default();
        if let Some(&id) = self.by_a_call_id.get(call_id) {
            let Some(c) = self.calls.get_mut(&id) else { return };
            // (After a transfer by the caller, the caller's side is another
            // dialog: its ACKs are for re-INVITEs.)
            if call_id == c.call.call_id && seq_of(&m) == seq_of(&c.a_invite) {
                c.a_acked = true;
                if std::mem::take(&mut c.b_ack_waits) {
                    self.ack_target(now, id, Some(&m));
                }
                return;
            }
            self.forward_reinvite_ack(now, &m, id);
        } else if let Some(&id) = self.by_b_call_id.get(call_id) {
            self.forward_reinvite_ack(now, &m, id);
        }
    }

    /// The trunk's maximum call duration is reached: hang up.
    pub(super) fn max_duration_reached(&mut self, now: Instant, id: u64) {
        let Some(c) = self.calls.get_mut(&id).filter(|c| c.phase == Phase::Answered) else {
            return; // ended before
        };
        let secs = c.settings.trunks[c.trunk].max_call_duration.as_secs();
        c.route.push(format!("max call duration ({secs} s) reached: BYE to both parties"));
        tracing::info!(call_id = %c.call.call_id, "call hung up after max_call_duration_secs = {secs}");
        self.hang_up_both(now, id);
    }

    /// End an answered call from our side: BYE to both parties.
    pub(super) fn hang_up_both(&mut self, now: Instant, id: u64) {
        self.hang_up(now, id, Side::Callee);
        self.hang_up(now, id, Side::Caller);
        self.end_answered(now, id, HangupBy::Router);
    }

    /// BYE to the party on `side` of answered call `id`, in its dialog.
    pub(super) fn hang_up(&mut self, now: Instant, id: u64, side: Side) {
        let branch = self.ids.next();
        let Some(c) = self.calls.get_mut(&id) else { return };
        let (Some(to), Some(d)) = (c.hop_of(side), c.dialog_mut(side)) else { return };
        let bye = d.request("BYE", &build::via(&self.locals, to.transport), &branch);
        self.send_request_to(now, &to, bye);
    }

    pub(super) fn on_bye(&mut self, now: Instant, key: TransactionKey, m: Message) {
        let call_id = m.header("Call-ID").unwrap_or_default().to_owned();
        let (id, from_caller) = match (self.by_a_call_id.get(&call_id), self.by_b_call_id.get(&call_id)) {
            (Some(&id), _) => (id, true),
            (None, Some(&id)) => (id, false),
            _ => return self.respond(now, &key, &m, 481, "Call/Transaction Does Not Exist"),
        };
        self.layer.send_response(now, &key, response_to(&m, 200, "OK"));
        let side = if from_caller { Side::Caller } else { Side::Callee };
        if self.bye_during_transfer(now, id, side, &call_id) {
            return;
        }
        let Some(c) = self.calls.get(&id) else { return };
        // A referrer that already hung up during a transfer gets no BYE.
        let gone = c.transfer.as_ref().filter(|t| t.referrer_gone).map(|t| t.referrer);
        if gone != Some(other(side)) {
            self.hang_up(now, id, other(side));
        }
        let by = if from_caller { HangupBy::Caller } else { HangupBy::Callee };
        self.end_answered(now, id, by);
    }

    pub(super) fn on_cancel(&mut self, now: Instant, key: TransactionKey, m: Message) {
        let call_id = m.header("Call-ID").unwrap_or_default().to_owned();
        let Some(&id) = self.by_a_call_id.get(&call_id) else {
            return self.respond(now, &key, &m, 481, "Call/Transaction Does Not Exist");
        };
        self.layer.send_response(now, &key, response_to(&m, 200, "OK"));
        let Some(c) = self.calls.get_mut(&id) else { return };
        if c.phase != Phase::Routing {
            return;
        }
        if let Some(leg) = c.leg.take() {
            if let Some(last) = c.route.last_mut() {
                last.push_str(" -> cancelled");
            }
            c.target_ended("cancelled (the caller's CANCEL)".into());
            self.withdraw(now, leg);
        }
        self.finish(now, id, 487, "Request Terminated", Outcome::Cancelled);
    }

    /// Stop an attempt the call no longer wants: CANCEL it if the target
    /// answered anything (RFC 3261 §9.1), else forget its transaction.
    pub(super) fn withdraw(&mut self, now: Instant, leg: Leg) {
        if leg.responded {
            self.layer.send_request(now, leg.to, cancel_for(&leg.invite));
        } else {
            self.layer.abandon(&leg.tx);
        }
    }

    /// Send the caller the final response, tell the plugins, report, forget.
    pub(super) fn finish(&mut self, now: Instant, id: u64, code: u16, reason_phrase: &str, outcome: Outcome) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        if let Some(p) = c.a_reliable.as_mut() {
            p.stop(); // a final response: no more reliable 1xx
        }
        if c.phase == Phase::Routing {
            let resp =
                relay_response(&c.a_invite, code, reason_phrase, &c.a_tag, (&self.locals, c.a_from.transport), None);
            let a_tx = c.a_tx.clone();
            self.layer.send_response(now, &a_tx, resp);
        }
        let what = match outcome {
            Outcome::Rejected => format!("rejected {code} {reason_phrase}"),
            Outcome::Cancelled => "cancelled (487 to the caller)".into(),
            _ => format!("failed {code} {reason_phrase}"),
        };
        self.close(now, id, outcome, code, HangupBy::None, what);
    }

    pub(super) fn end_answered(&mut self, now: Instant, id: u64, by: HangupBy) {
        let Some(c) = self.calls.get(&id) else { return };
        let target = match &c.leg {
            Some(l) => l.uri.clone(),
            None if self.answered_here(id) => "the router (TwiML <Play>)".into(),
            None => String::new(),
        };
        let talk = c.answered.map(|a| now.saturating_duration_since(a)).unwrap_or_default();
        let who = match by {
            HangupBy::Caller => "caller",
            HangupBy::Callee => "callee",
            _ => "router",
        };
        let what = format!("answered by {target}, {} ms, hung up by the {who}", talk.as_millis());
        self.close(now, id, Outcome::Answered, 200, by, what);
    }

    pub(super) fn close(&mut self, now: Instant, id: u64, outcome: Outcome, status: u16, by: HangupBy, what: String) {
        self.end_relays(now, id);
        self.end_transfer(now, id);
        let Some(mut c) = self.calls.remove(&id) else { return };
        let media = c.media.as_ref().map(super::media::describe).unwrap_or_default();
        self.media_release(now, id, c.media.take());
        self.by_a_call_id.remove(&c.call.call_id);
        // After a transfer by the caller, the caller's dialog is another.
        if let Some(d) = &c.a_dialog {
            self.by_a_call_id.remove(&d.id.call_id);
        }
        for b in &c.b_call_ids {
            self.by_b_call_id.remove(b);
        }
        self.by_b_tx.retain(|_, (cid, _)| *cid != id);
        let summary = Summary {
            outcome,
            status,
            target_uri: c.leg.as_ref().map(|l| l.uri.clone()),
            pdd_ms: c.first_ring.or(c.answered).map(|t| t.saturating_duration_since(c.started).as_millis() as u32),
            duration_ms: c.answered.map(|a| now.saturating_duration_since(a).as_millis() as u64).unwrap_or(0),
            hangup_by: by,
            attempts: c.attempts,
        };
        let trace = c.session.on_call_end(&c.call, &summary);
        let ended = super::insight::EndedCall {
            call: &c.call,
            trunk: &c.settings.trunks[c.trunk],
            from: c.a_from,
            started: c.started,
            answered: c.answered,
            legs: &mut c.b_call_ids,
            targets: &c.targets,
            route: &c.route,
            trace: &mut c.trace,
        };
        self.keep_record(now, (id, ended), (&summary, &what), &trace);
        let trunk = c.settings.trunks[c.trunk].name.clone();
        self.report(&c.call, trunk, c.route, &trace, (what, summary), (id, media));
    }

    /// ACK and BYE a 2xx to an INVITE we no longer want (a target we
    /// failed over from, or a call already over). The response carries all
    /// the dialog needs: From, Call-ID, CSeq, To tag and Contact.
    pub(super) fn hang_up_stray(&mut self, now: Instant, from: Option<Peer>, ok: Message) {
        let Ok(mut d) = Dialog::as_uac(&ok, &ok) else { return };
        let Some(peer) = from.or_else(|| uri_peer(&d.remote_target)) else { return };
        let to = Hop::of(&d, peer);
        let via = build::via(&self.locals, to.transport);
        let ack = d.ack(1, &via, &self.ids.next());
        self.send_stateless_to(now, &to, &ack);
        let bye = d.request("BYE", &via, &self.ids.next());
        self.send_request_to(now, &to, bye);
        tracing::info!(
            call_id = ok.header("Call-ID").unwrap_or_default(),
            "late 2xx from an abandoned target: ACKed and hung up"
        );
    }
}
