//! Call transfer (RFC 3515 REFER, blind): one party of an answered call
//! asks us to connect the other party to a third address instead of
//! itself. With the trunk's `call_transfer` on, the REFER is accepted (202,
//! then a NOTIFY "100 Trying", RFC 3515 §2.4.4), the Refer-To target is
//! sent an INVITE without an offer, its offer goes to the party transferred
//! in a re-INVITE, and that party's answer goes back in the target's ACK
//! (RFC 3725 flow I). The referrer then gets a NOTIFY with the final status
//! and a BYE, and the target takes its place in the call. If the target
//! fails, the referrer is told (NOTIFY with the failure) and the call stays
//! as it was; if the referrer has hung up meanwhile, the call ends.
//!
//! Either party may refer: the PBX that answered an origination call, or
//! the caller (a PBX on a termination call). A Refer-To naming a number at
//! one of our domains (`sip:+14155550177@` `sip.domains` or the trunk's
//! termination domain) is a transfer to the PSTN: the number is called
//! through the gateways `<Dial><Number>` uses. A Refer-To host named by DNS
//! is resolved first (its first address; the transfer fails with 503 if it
//! does not resolve).
//!
//! Not (yet) done: attended transfer (`Replaces`, 501).

use std::time::Instant;

use trunkline_sip_core::dialog::Dialog;
use trunkline_sip_core::message::Message;
use trunkline_sip_core::transaction::{status_of, ClientEvent, TransactionKey};
use trunkline_sip_core::Peer;

use super::attempts::usable_addresses;
use super::build::{self, header, uri_destination, Destination, OutgoingInvite};
use super::call::{Leg, Phase};
use super::hop::Hop;
use super::in_dialog::{contact_uri, other, Side};
use super::{reason_of, Engine};
use trunkline_plugin_host::types::HangupBy;

/// A transfer in progress.
pub(crate) struct Transfer {
    /// The URI called (the Refer-To, or a PSTN number at a gateway).
    pub(crate) uri: String,
    /// The REFER's Referred-By, passed on to the target.
    referred_by: Option<String>,
    /// The INVITE to the target; `None` while its host name resolves.
    target: Option<TargetCall>,
    /// Call-ID of the target's leg.
    pub(crate) call_id: String,
    /// The target's dialog, once it answered (its 2xx carried its offer).
    dialog: Option<Dialog>,
    /// The re-INVITE to the caller with the target's offer, and its CSeq.
    reinvite: Option<(TransactionKey, u32)>,
    /// The target sent a provisional response (a CANCEL may be sent).
    responded: bool,
    /// The call's route line about this transfer (what happens is added).
    route_line: usize,
    /// Who sent the REFER; the other party is the one transferred.
    pub(crate) referrer: Side,
    /// The referrer hung up while the target was being called.
    pub(crate) referrer_gone: bool,
    /// The call's media session before the target's offer went to the
    /// transferee (restored if the transfer fails).
    media_before: Option<trunkline_media_core::session::Session>,
}

/// The INVITE sent to a transfer's target.
struct TargetCall {
    invite: Message,
    to: Peer,
    tx: TransactionKey,
}

/// One of a transfer's client transactions (kept after the transfer, while
/// a 2xx may be retransmitted, to send the same ACK again).
pub(crate) struct TransferTx {
    pub(crate) call: u64,
    step: Step,
    ack: Option<(Hop, Message)>,
}

/// Which of a transfer's client transactions an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The INVITE to the target.
    Target,
    /// The re-INVITE to the party transferred.
    Transferee,
}

impl Engine {
    /// A REFER inside answered call `id`, from `side`.
    pub(super) fn on_refer(&mut self, now: Instant, key: TransactionKey, m: Message, id: u64, side: Side) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        if !c.settings.trunks[c.trunk].call_transfer {
            return self.respond(now, &key, &m, 403, "Call transfer is not enabled on this trunk");
        }
        if !c.dialog_mut(side).is_some_and(|d| d.accept_remote_seq(&m)) {
            return self.respond(now, &key, &m, 500, "Server Internal Error (CSeq out of order)");
        }
        if c.transfer.is_some() {
            return self.respond(now, &key, &m, 491, "Request Pending (a transfer is in progress)");
        }
        let Some(value) = m.header("Refer-To").or_else(|| m.header("r")) else {
            return self.respond(now, &key, &m, 400, "Bad Request (no Refer-To)");
        };
        // Headers embedded in the URI (`?Replaces=...`) are not part of the
        // Request-URI (RFC 3261 §19.1.5); Replaces asks for an attended transfer.
        let full = contact_uri(value);
        let (uri, embedded) = full.split_once('?').unwrap_or((&full, ""));
        if embedded.to_ascii_lowercase().split('&').any(|h| h.starts_with("replaces=")) {
            return self.respond(now, &key, &m, 501, "Not Implemented (attended transfer, Replaces)");
        }
        let uri = uri.to_owned();
        let lower = uri.to_ascii_lowercase();
        if !(lower.starts_with("sip:") || lower.starts_with("sips:")) {
            return self.respond(now, &key, &m, 400, "Bad Request (Refer-To must be a sip: or sips: URI)");
        }
        // A number at one of our domains is a transfer to the PSTN.
        let dialed = Self::pstn_number_uri(&c.settings, c.trunk, &uri).unwrap_or_else(|| uri.clone());
        let reachable = match uri_destination(&dialed) {
            Some(Destination::Addr(p)) => self.locals.serves(p.transport),
            Some(Destination::Name { transport, .. }) => self.locals.serves(transport),
            None => false,
        };
        if !reachable {
            return self.respond(now, &key, &m, 501, "Not Implemented (no listener for the Refer-To transport)");
        }

        // Accepted: 202, then the first NOTIFY of the implicit subscription.
        let mut accepted = self.tagged_response(&m, 202, "Accepted");
        let Some(c) = self.calls.get_mut(&id) else { return };
        let Some(referrer) = c.hop_of(side) else { return };
        accepted.headers.push(header("Contact", build::contact(&self.locals, referrer.transport)));
        self.layer.send_response(now, &key, accepted);
        self.notify(now, id, side, "100 Trying", false);

        let Some(c) = self.calls.get_mut(&id) else { return };
        let who = if side == Side::Callee { "callee" } else { "caller" };
        c.route.push(format!("REFER by the {who} to {uri}:"));
        c.transfer = Some(Transfer {
            uri: dialed,
            referred_by: m.header("Referred-By").or_else(|| m.header("b")).map(str::to_owned),
            target: None,
            call_id: self.ids.next(),
            dialog: None,
            reinvite: None,
            responded: false,
            route_line: c.route.len() - 1,
            referrer: side,
            referrer_gone: false,
            media_before: None,
        });
        self.call_transfer_target(now, id);
    }

    /// Send call `id`'s transfer target its INVITE, once its host name (if
    /// it has one) resolved; called again with the answer if it had to wait.
    pub(super) fn call_transfer_target(&mut self, now: Instant, id: u64) {
        let (from_tag, branch) = (self.ids.next(), self.ids.next());
        let Some(c) = self.calls.get_mut(&id) else { return };
        let Some(t) = c.transfer.as_ref().filter(|t| t.target.is_none()) else { return };
        let (to, named) = match uri_destination(&t.uri) {
            Some(Destination::Addr(peer)) => (peer, false),
            Some(Destination::Name { transport, host, port, .. }) => {
                match usable_addresses(&mut self.dns, &self.locals, now, id, transport, &host) {
                    Ok(None) => return,
                    Ok(Some(addrs)) => (Destination::at(transport, addrs[0], port), true),
                    Err(why) => return self.transfer_failed(now, id, 503, &format!("Service Unavailable ({why})")),
                }
            }
            None => return self.transfer_failed(now, id, 400, "Bad Request (Refer-To)"),
        };
        let mut request = c.request.clone();
        request.headers.clear();
        request.body.clear();
        if let Some(by) = &t.referred_by {
            request
                .headers
                .push(trunkline_plugin_host::types::Header { name: "Referred-By".into(), value: by.clone() });
        }
        // The target is called as the party transferred: the caller, or the
        // number the caller dialled.
        let identity = if t.referrer == Side::Callee { "From" } else { "To" };
        let invite = OutgoingInvite {
            uri: &t.uri,
            request: &request,
            from: c.a_invite.header(identity).unwrap_or_default(),
            to: &format!("<{}>", t.uri),
            max_forwards: c.max_forwards,
            locals: &self.locals,
            transport: to.transport,
            call_id: &t.call_id,
            from_tag: &from_tag,
            branch: &branch,
            offer_100rel: false,
        }
        .build();
        let Some(tx) = self.layer.send_request(now, to, invite.clone()) else { return };
        let Some(t) = c.transfer.as_mut() else { return };
        if let Some(line) = c.route.get_mut(t.route_line) {
            line.push_str(&format!(" INVITE {}", t.uri));
            if named {
                line.push_str(&format!(" at {}", to.addr));
            }
        }
        c.b_call_ids.push(t.call_id.clone());
        if t.referrer == Side::Callee {
            self.by_b_call_id.insert(t.call_id.clone(), id);
        }
        self.transfer_txs.insert(tx.clone(), TransferTx { call: id, step: Step::Target, ack: None });
        t.target = Some(TargetCall { invite, to, tx });
    }

    /// An event of the transfer transaction `key`.
    pub(super) fn on_transfer_event(&mut self, now: Instant, key: &TransactionKey, event: ClientEvent) {
        let Some(tx) = self.transfer_txs.get(key) else { return };
        let (id, step) = (tx.call, tx.step);
        if let (ClientEvent::Final(r), Some((to, ack))) = (&event, tx.ack.clone()) {
            if (200..300).contains(&status_of(r)) {
                self.send_stateless_to(now, &to, &ack); // a 2xx retransmission
            }
            return;
        }
        let (status, response) = match event {
            ClientEvent::Provisional(_) => {
                if let Some(t) = self.calls.get_mut(&id).and_then(|c| c.transfer.as_mut()) {
                    t.responded = true;
                }
                return;
            }
            ClientEvent::Final(r) => (status_of(&r), Some(r)),
            ClientEvent::Timeout => (408, None),
            ClientEvent::TransportError => (503, None),
        };
        let Some(c) = self.calls.get_mut(&id) else { return };
        let Some(t) = c.transfer.as_mut() else { return };
        let reason = response.as_ref().map(reason_of).unwrap_or_else(|| "no response".into());
        match (step, response) {
            (Step::Target, Some(ok)) if (200..300).contains(&status) => {
                if t.dialog.is_some() {
                    return; // a retransmission: the caller has not answered yet
                }
                let Some(sent) = t.target.as_ref() else { return };
                let (Ok(dialog), false) = (Dialog::as_uac(&sent.invite, &ok), ok.body.is_empty()) else {
                    // No offer to give the caller: end the target's call.
                    t.dialog = Dialog::as_uac(&sent.invite, &ok).ok();
                    return self.transfer_failed(now, id, 488, "Not Acceptable Here (the target made no offer)");
                };
                t.dialog = Some(dialog);
                let (referrer, transferee) = (t.referrer, other(t.referrer));
                let whom = if transferee == Side::Caller { "caller" } else { "callee" };
                if let Some(line) = c.route.get_mut(t.route_line) {
                    line.push_str(&format!(" -> 200 OK -> re-INVITE to the {whom}"));
                }
                let branch = self.ids.next();
                let (Some(peer), Some(d)) = (c.hop_of(transferee), c.dialog_mut(transferee)) else {
                    return self.transfer_failed(now, id, 500, "Server Internal Error (no dialog with the transferee)");
                };
                let mut reinvite = d.request("INVITE", &build::via(&self.locals, peer.transport), &branch);
                let seq = d.local_seq;
                reinvite.headers.push(header("Contact", build::contact(&self.locals, peer.transport)));
                reinvite.headers.push(header("Content-Type", ok.header("Content-Type").unwrap_or("application/sdp")));
                reinvite.body = ok.body.clone();
                // The target takes the referrer's place in the media too.
                let before = self.media_checkpoint(id);
                self.media_new_party(id, referrer);
                if let Err(e) = self.anchor(now, id, referrer, &mut reinvite) {
                    if let Some(before) = &before {
                        self.media_restore(id, before);
                    }
                    let (code, why) = super::media::refusal(&e);
                    return self.transfer_failed(now, id, code, &why);
                }
                let Some(tx) = self.send_request_to(now, &peer, reinvite) else { return };
                if let Some(t) = self.calls.get_mut(&id).and_then(|c| c.transfer.as_mut()) {
                    t.reinvite = Some((tx.clone(), seq));
                    t.media_before = before;
                }
                self.transfer_txs.insert(tx, TransferTx { call: id, step: Step::Transferee, ack: None });
            }
            (Step::Target, _) => {
                if let Some(line) = c.route.get_mut(t.route_line) {
                    line.push_str(&format!(" -> {status} {reason}"));
                }
                t.dialog = None;
                self.transfer_failed(now, id, status, &reason);
            }
            (Step::Transferee, Some(answer)) if (200..300).contains(&status) => self.transfer_done(now, id, &answer),
            (Step::Transferee, _) if status >= 200 => {
                if let Some(line) = c.route.get_mut(t.route_line) {
                    line.push_str(&format!(" -> refused: {status} {reason}"));
                }
                self.transfer_failed(now, id, status, &reason);
            }
            (Step::Transferee, _) => {}
        }
    }

    /// The transferee answered the target's offer: ACK both, tell the
    /// referrer, hang it up, and put the target in its place.
    fn transfer_done(&mut self, now: Instant, id: u64, answer: &Message) {
        let (b1, b2) = (self.ids.next(), self.ids.next());
        let Some(c) = self.calls.get_mut(&id) else { return };
        let Some(t) = c.transfer.as_ref() else { return };
        let (Some(target), Some((reinvite_tx, seq)), Some((sent_to, sent_tx))) =
            (t.dialog.clone(), t.reinvite.clone(), t.target.as_ref().map(|s| (s.to, s.tx.clone())))
        else {
            return;
        };
        let (referrer, transferee, referrer_gone) = (t.referrer, other(t.referrer), t.referrer_gone);
        let mut acks = Vec::new();
        if let (Some(hop), Some(d)) = (c.hop_of(transferee), c.dialog_mut(transferee)) {
            acks.push((reinvite_tx, hop.clone(), d.ack(seq, &build::via(&self.locals, hop.transport), &b1)));
        }
        let target_hop = Hop::of(&target, sent_to);
        let mut ack = target.ack(1, &build::via(&self.locals, target_hop.transport), &b2);
        ack.headers.push(header("Content-Type", answer.header("Content-Type").unwrap_or("application/sdp")));
        ack.body = answer.body.clone();
        if let Err(e) = self.anchor(now, id, transferee, &mut ack) {
            tracing::warn!(call_id = ack.header("Call-ID").unwrap_or_default(), "transferee's answer: {e}");
            ack.body.clear();
        }
        acks.push((sent_tx, target_hop, ack));
        for (key, to, ack) in acks {
            self.send_stateless_to(now, &to, &ack);
            if let Some(tx) = self.transfer_txs.get_mut(&key) {
                tx.ack = Some((to, ack));
            }
        }
        if !referrer_gone {
            self.notify(now, id, referrer, "200 OK", true);
            self.hang_up(now, id, referrer);
        }
        let Some(c) = self.calls.get_mut(&id) else { return };
        let Some(t) = c.transfer.take() else { return };
        let Some(sent) = t.target else { return };
        let new_call_id = target.id.call_id.clone();
        match referrer {
            Side::Callee => {
                if let Some(old) = c.b_dialog.as_ref().map(|d| d.id.call_id.clone()) {
                    self.by_b_call_id.remove(&old);
                    self.trace_recent.clear();
                }
                c.attempts += 1;
                let mut leg = Leg::new(c.attempts, sent.tx, sent.invite, sent.to, t.uri.clone());
                leg.responded = true;
                c.leg = Some(leg);
                c.b_dialog = Some(target);
            }
            Side::Caller => {
                // The target takes the caller's place: its requests come
                // as the caller's, and go where it is.
                if let Some(old) = c.a_dialog.as_ref().map(|d| d.id.call_id.clone()) {
                    self.by_a_call_id.remove(&old);
                    self.trace_recent.clear();
                }
                self.by_a_call_id.insert(new_call_id, id);
                c.a_from = sent.to;
                c.a_dialog = Some(target);
            }
        }
        if let Some(line) = c.route.get_mut(t.route_line) {
            line.push_str(" -> 200 OK");
        }
        c.route.push(format!("transferred to {}", t.uri));
    }

    /// The transfer did not happen (`status`): tell the referrer, end the
    /// target's call if it answered; if the referrer is gone, end the call.
    fn transfer_failed(&mut self, now: Instant, id: u64, status: u16, reason: &str) {
        let (b1, b2) = (self.ids.next(), self.ids.next());
        let Some(c) = self.calls.get_mut(&id) else { return };
        let Some(t) = c.transfer.take() else { return };
        if t.referrer_gone {
            c.route.push("transfer failed after the referrer hung up: BYE to the other party".into());
        }
        if let Some(before) = &t.media_before {
            self.media_restore(id, before);
        }
        self.by_b_call_id.remove(&t.call_id);
        self.trace_recent.clear();
        if let (Some(mut d), Some(sent)) = (t.dialog, t.target) {
            let hop = Hop::of(&d, sent.to);
            let via = build::via(&self.locals, hop.transport);
            self.send_stateless_to(now, &hop, &d.ack(1, &via, &b1));
            let bye = d.request("BYE", &via, &b2);
            self.send_request_to(now, &hop, bye);
        }
        if t.referrer_gone {
            self.hang_up(now, id, other(t.referrer));
            let by = if t.referrer == Side::Callee { HangupBy::Callee } else { HangupBy::Caller };
            return self.end_answered(now, id, by);
        }
        self.notify(now, id, t.referrer, &format!("{status} {reason}"), true);
    }

    /// For a Refer-To `sip:+E164@` one of our domains (`sip.domains`, the
    /// trunk's termination domain): that number at the first gateway
    /// numbers of the trunk go through (its termination carrier, else
    /// `disaster_recovery.pstn_gateway`).
    fn pstn_number_uri(settings: &crate::config::Settings, trunk: usize, uri: &str) -> Option<String> {
        let p = trunkline_sip_core::NameAddr::parse(uri)?;
        let host = p.host.to_ascii_lowercase();
        let ours = settings.domains.iter().any(|d| d.eq_ignore_ascii_case(&host))
            || settings.trunks[trunk].termination.as_ref().is_some_and(|t| t.domain.eq_ignore_ascii_case(&host));
        let number = p.user.filter(|_| ours)?;
        let number = number.split(';').next().unwrap_or(number);
        super::twiml::number_gateways(settings, trunk).iter().find_map(|g| super::twiml::number_uri(g, number))
    }

    /// NOTIFY the referrer (on `side`) of the transfer's progress
    /// (`status`: "100 Trying", "200 OK"...); `last` ends the implicit
    /// subscription.
    fn notify(&mut self, now: Instant, id: u64, side: Side, status: &str, last: bool) {
        let branch = self.ids.next();
        let Some(c) = self.calls.get_mut(&id) else { return };
        let (Some(to), Some(d)) = (c.hop_of(side), c.dialog_mut(side)) else { return };
        let mut notify = d.request("NOTIFY", &build::via(&self.locals, to.transport), &branch);
        notify.headers.push(header("Event", "refer"));
        let state = if last { "terminated;reason=noresource" } else { "active;expires=60" };
        notify.headers.push(header("Subscription-State", state));
        notify.headers.push(header("Contact", build::contact(&self.locals, to.transport)));
        notify.headers.push(header("Content-Type", "message/sipfrag;version=2.0"));
        notify.body = format!("SIP/2.0 {status}\r\n").into_bytes();
        self.send_request_to(now, &to, notify);
    }

    /// A BYE from `side` of call `id` that does not end the call: from the
    /// referrer during a transfer (the transfer goes on), from the
    /// transfer's target before it is connected (the transfer fails), or
    /// from a callee-side dialog that is no longer the call's. True if it
    /// was one of those (it was answered 200).
    pub(super) fn bye_during_transfer(&mut self, now: Instant, id: u64, side: Side, call_id: &str) -> bool {
        let Some(c) = self.calls.get_mut(&id) else { return false };
        let current = match side {
            Side::Caller => c.a_dialog.as_ref(),
            Side::Callee => c.b_dialog.as_ref(),
        }
        .is_some_and(|d| d.id.call_id == call_id);
        match c.transfer.as_mut() {
            Some(t) if current && t.referrer == side => {
                t.referrer_gone = true;
                c.route.push("the referrer hung up; the transfer goes on".into());
                true
            }
            Some(t) if t.call_id == call_id => {
                t.dialog = None; // gone: no BYE for it
                self.transfer_failed(now, id, 487, "Request Terminated (the target hung up)");
                true
            }
            _ => side == Side::Callee && !current && c.phase == Phase::Answered,
        }
    }

    /// The call is over: CANCEL or BYE a transfer's target.
    pub(super) fn end_transfer(&mut self, now: Instant, id: u64) {
        let branch = self.ids.next();
        self.transfer_txs.retain(|_, tx| tx.call != id);
        let Some(c) = self.calls.get_mut(&id) else { return };
        let Some(t) = c.transfer.take() else { return };
        let Some(sent) = t.target else { return }; // its name was resolving
        match t.dialog {
            Some(mut d) => {
                let hop = Hop::of(&d, sent.to);
                let bye = d.request("BYE", &build::via(&self.locals, hop.transport), &branch);
                self.send_request_to(now, &hop, bye);
            }
            None if t.responded => {
                self.layer.send_request(now, sent.to, super::build::cancel_for(&sent.invite));
            }
            None => self.layer.abandon(&sent.tx),
        }
    }
}
