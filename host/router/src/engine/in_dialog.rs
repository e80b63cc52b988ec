//! Requests inside an answered call (re-INVITE, UPDATE, INFO, OPTIONS,
//! MESSAGE, NOTIFY...) relayed from one leg's dialog to the other's, and
//! their responses relayed back (RFC 3261 §12.2, §14).
//!
//! Each relayed request is a client transaction on the other leg, tied to
//! the requester's server transaction by a [`Relay`]. A re-INVITE's 2xx is
//! relayed end to end: the requester's ACK (with its body, for a delayed
//! offer) is turned into the ACK on the other leg, and 2xx retransmissions
//! from the answerer are relayed until then. Glare gets 491, an out-of-order
//! CSeq 500, a request pending when the call ends 487.

use std::time::Instant;

use trunkline_sip_core::dialog::Dialog;
use trunkline_sip_core::header::CSeq;
use trunkline_sip_core::message::{Header as SipHeader, Message};
use trunkline_sip_core::transaction::{response_to, status_of, ClientEvent, TransactionKey};
use trunkline_sip_core::Peer;

use super::build::{self, LEG_LOCAL};
use super::call::{CallState, Phase};
use super::hop::Hop;
use super::{media, Engine};

/// One leg of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// The carrier side (our UAS dialog).
    Caller,
    /// The answering target (our UAC dialog).
    Callee,
}

/// A request relayed from one leg to the other, waiting for its answer.
pub(crate) struct Relay {
    pub(crate) call: u64,
    /// The requester's server transaction.
    server_tx: TransactionKey,
    from: Side,
    /// The request as the requester sent it (responses are built on it).
    request: Message,
    /// Where responses to the requester go.
    requester: Peer,
    /// CSeq number of the relayed copy (its ACK reuses it).
    sent_seq: u32,
    /// A final response was relayed.
    answered: bool,
    /// The ACK sent on the other leg for a 2xx (sent again if the 2xx is).
    ack: Option<(Hop, Message)>,
    /// The call's media session before the request's offer (restored if
    /// the offer is refused).
    media_before: Option<trunkline_media_core::session::Session>,
}

/// Methods relayed inside a dialog (BYE, ACK and CANCEL have their own
/// paths; PRACK is answered on each leg, `reliable`).
const RELAYED: [&str; 7] = ["INVITE", "UPDATE", "INFO", "OPTIONS", "MESSAGE", "NOTIFY", "SUBSCRIBE"];

/// The CSeq number of a message (0 if it has none).
pub(super) fn seq_of(m: &Message) -> u32 {
    m.header("CSeq").and_then(CSeq::parse).map(|c| c.seq).unwrap_or(0)
}

/// The URI inside a Contact (or Refer-To) value.
pub(super) fn contact_uri(value: &str) -> String {
    let v = value.trim();
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].to_owned(),
        _ => v.split(';').next().unwrap_or(v).to_owned(),
    }
}

impl CallState {
    pub(super) fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::Caller => self.a_dialog.as_mut(),
            Side::Callee => self.b_dialog.as_mut(),
        }
    }

    /// The next hop of requests to the party on `side`.
    pub(super) fn hop_of(&self, side: Side) -> Option<Hop> {
        match side {
            Side::Caller => self.a_hop(),
            Side::Callee => self.b_hop(),
        }
    }
}

pub(super) fn other(side: Side) -> Side {
    match side {
        Side::Caller => Side::Callee,
        Side::Callee => Side::Caller,
    }
}

impl Engine {
    /// A request other than BYE/CANCEL/ACK for a call we know.
    pub(super) fn on_in_dialog_request(
        &mut self,
        now: Instant,
        key: TransactionKey,
        from: Peer,
        m: Message,
        id: u64,
        side: Side,
    ) {
        let method = m.method().unwrap_or_default().to_owned();
        if method == "PRACK" {
            return self.on_prack(now, key, m, id, side);
        }
        let Some(c) = self.calls.get_mut(&id) else { return };
        if c.phase != Phase::Answered {
            // RFC 3261 §14.2: a second INVITE while the first is unanswered gets 500 + Retry-After.
            let (code, reason) = if method == "INVITE" {
                (500, "Server Internal Error (call not answered yet)")
            } else {
                (501, "Not Implemented before the call is answered")
            };
            let mut r = response_to(&m, code, reason);
            if code == 500 {
                r.headers.push(SipHeader { name: "Retry-After".into(), value: "2".into() });
            }
            self.layer.send_response(now, &key, r);
            return;
        }
        if c.twiml.as_ref().is_some_and(|r| r.here.is_some()) {
            return self.on_request_here(now, key, m, id);
        }
        if method == "REFER" {
            return self.on_refer(now, key, m, id, side);
        }
        if !RELAYED.contains(&method.as_str()) {
            let mut r = response_to(&m, 501, "Not Implemented");
            r.headers.push(SipHeader { name: "Allow".into(), value: super::ALLOW.into() });
            self.layer.send_response(now, &key, r);
            return;
        }
        let in_order = c.dialog_mut(side).is_some_and(|d| d.accept_remote_seq(&m));
        if !in_order {
            return self.respond(now, &key, &m, 500, "Server Internal Error (CSeq out of order)");
        }
        let pending_invite =
            |r: &Relay| r.call == id && r.request.method() == Some("INVITE") && r.ack.is_none() && !r.answered;
        if method == "INVITE" && self.relays.values().any(pending_invite) {
            return self.respond(now, &key, &m, 491, "Request Pending");
        }
        let max_forwards = match m.header("Max-Forwards").map(str::parse::<u32>) {
            Some(Ok(0)) => return self.respond(now, &key, &m, 483, "Too Many Hops"),
            Some(Ok(n)) => n - 1,
            _ => 69,
        };
        let Some(c) = self.calls.get_mut(&id) else { return };
        // A target refresh (re-INVITE, UPDATE) moves the requester's remote target.
        if let (true, Some(contact)) = (method == "INVITE" || method == "UPDATE", m.header("Contact")) {
            if let Some(d) = c.dialog_mut(side) {
                d.remote_target = contact_uri(contact);
            }
        }
        let Some(to) = c.hop_of(other(side)) else {
            return self.respond(now, &key, &m, 481, "Call/Transaction Does Not Exist");
        };
        let branch = self.ids.next();
        let via = build::via(&self.locals, to.transport);
        let Some(d) = c.dialog_mut(other(side)) else {
            return self.respond(now, &key, &m, 481, "Call/Transaction Does Not Exist");
        };
        let mut req = d.request(&method, &via, &branch);
        let sent_seq = d.local_seq;
        for h in req.headers.iter_mut().filter(|h| h.name == "Max-Forwards") {
            h.value = max_forwards.to_string();
        }
        if method == "INVITE" || method == "UPDATE" || method == "SUBSCRIBE" {
            req.headers.push(SipHeader { name: "Contact".into(), value: build::contact(&self.locals, to.transport) });
        }
        copy_end_to_end(&m, &mut req);
        if let Some(last) = c.route.last_mut().filter(|_| method == "INVITE") {
            let who = if side == Side::Caller { "caller" } else { "callee" };
            last.push_str(&format!(" -> re-INVITE from the {who}"));
        }
        let media_before = if media::carries_sdp(&req) { self.media_checkpoint(id) } else { None };
        if let Err(e) = self.anchor(now, id, side, &mut req) {
            let (code, why) = media::refusal(&e);
            return self.respond(now, &key, &m, code, &why);
        }
        let Some(tx) = self.send_request_to(now, &to, req) else { return };
        let requester = trunkline_sip_core::response_route::response_peer(&m, from);
        self.relays.insert(
            tx,
            Relay {
                call: id,
                server_tx: key,
                from: side,
                request: m,
                requester,
                sent_seq,
                answered: false,
                ack: None,
                media_before,
            },
        );
    }

    /// A response (or failure) for the relayed request `key`.
    pub(super) fn on_relay_event(&mut self, now: Instant, key: &TransactionKey, event: ClientEvent) {
        let Some(relay) = self.relays.get_mut(key) else { return };
        let (status, response) = match event {
            ClientEvent::Provisional(r) => (status_of(&r), Some(r)),
            ClientEvent::Final(r) => (status_of(&r), Some(r)),
            ClientEvent::Timeout => (408, None),
            ClientEvent::TransportError => (503, None),
        };
        if status == 100 {
            return;
        }
        let is_invite = relay.request.method() == Some("INVITE");
        if relay.answered {
            // A 2xx retransmission: the answerer did not get our ACK yet, or
            // the requester's ACK has not come; repeat what we sent.
            if let Some((to, ack)) = relay.ack.clone() {
                self.send_stateless_to(now, &to, &ack);
            } else if let Some(r) = response.filter(|_| (200..300).contains(&status)) {
                let out = self.relayed_response(now, key, &r, status);
                let relay = &self.relays[key];
                if !self.layer.send_response(now, &relay.server_tx.clone(), out.clone()) {
                    self.layer.send_stateless(relay.requester, &out);
                }
            }
            return;
        }
        let out = match &response {
            Some(r) => self.relayed_response(now, key, r, status),
            None => {
                let relay = &self.relays[key];
                response_to(
                    &relay.request,
                    status,
                    if status == 408 { "Request Timeout" } else { "Service Unavailable" },
                )
            }
        };
        let Some(relay) = self.relays.get_mut(key) else { return };
        let server_tx = relay.server_tx.clone();
        if status >= 200 {
            relay.answered = true;
        }
        // RFC 3264 §8: a refused offer leaves the session as it was.
        if let (true, Some(before)) = (status >= 300, relay.media_before.take()) {
            let call = relay.call;
            self.media_restore(call, &before);
        }
        let Some(relay) = self.relays.get_mut(key) else { return };
        // A 2xx target refresh moves the answerer's remote target.
        if let (true, Some(r)) = ((200..300).contains(&status), &response) {
            let (call, side) = (relay.call, other(relay.from));
            let refresh = matches!(relay.request.method(), Some("INVITE" | "UPDATE"));
            if let (true, Some(contact), Some(c)) = (refresh, r.header("Contact"), self.calls.get_mut(&call)) {
                if let Some(d) = c.dialog_mut(side) {
                    d.remote_target = contact_uri(contact);
                }
            }
        }
        self.layer.send_response(now, &server_tx, out);
        if status >= 200 && !(is_invite && (200..300).contains(&status)) {
            self.relays.remove(key); // done; a 2xx to INVITE waits for the ACK
        }
    }

    /// The requester's response, built from the answerer's (its session
    /// description anchored).
    fn relayed_response(&mut self, now: Instant, key: &TransactionKey, r: &Message, status: u16) -> Message {
        let relay = &self.relays[key];
        let (call, answerer) = (relay.call, other(relay.from));
        let mut out = response_to(&relay.request, status, &super::reason_of(r));
        let refresh = matches!(relay.request.method(), Some("INVITE" | "UPDATE" | "SUBSCRIBE"));
        if refresh && (101..300).contains(&status) {
            out.headers.push(SipHeader {
                name: "Contact".into(),
                value: build::contact(&self.locals, relay.requester.transport),
            });
        }
        copy_end_to_end(r, &mut out);
        if let Err(e) = self.anchor(now, call, answerer, &mut out) {
            tracing::warn!(
                call_id = r.header("Call-ID").unwrap_or_default(),
                "in-dialog response: {e}: relayed without it"
            );
            out.body.clear();
            out.headers.retain(|h| !h.name.eq_ignore_ascii_case("Content-Type"));
        }
        out
    }

    /// An ACK for a 2xx to a relayed re-INVITE: ACK the other leg.
    /// True if it was one.
    pub(super) fn forward_reinvite_ack(&mut self, now: Instant, ack: &Message, id: u64) -> bool {
        let seq = seq_of(ack);
        let Some((key, _)) = self.relays.iter().find(|(_, r)| {
            r.call == id
                && r.answered
                && r.ack.is_none()
                && r.request.method() == Some("INVITE")
                && seq_of(&r.request) == seq
        }) else {
            return false;
        };
        let key = key.clone();
        let (requester, sent_seq) = (self.relays[&key].from, self.relays[&key].sent_seq);
        let side = other(requester);
        let Some(c) = self.calls.get_mut(&id) else { return false };
        let Some(to) = c.hop_of(side) else { return false };
        let via = build::via(&self.locals, to.transport);
        let branch = self.ids.next();
        let Some(d) = c.dialog_mut(side) else { return false };
        let mut out = d.ack(sent_seq, &via, &branch);
        copy_end_to_end(ack, &mut out);
        if let Err(e) = self.anchor(now, id, requester, &mut out) {
            tracing::warn!(call_id = ack.header("Call-ID").unwrap_or_default(), "answer in an ACK: {e}");
            out.body.clear();
            out.headers.retain(|h| !h.name.eq_ignore_ascii_case("Content-Type"));
        }
        self.send_stateless_to(now, &to, &out);
        if let Some(r) = self.relays.get_mut(&key) {
            r.ack = Some((to, out));
        }
        true
    }

    /// The call is over: requests still waiting for an answer get 487.
    pub(super) fn end_relays(&mut self, now: Instant, id: u64) {
        let keys: Vec<TransactionKey> =
            self.relays.iter().filter(|(_, r)| r.call == id).map(|(k, _)| k.clone()).collect();
        for k in keys {
            let Some(r) = self.relays.remove(&k) else { continue };
            if !r.answered {
                let resp = response_to(&r.request, 487, "Request Terminated");
                self.layer.send_response(now, &r.server_tx, resp);
            }
            self.layer.abandon(&k);
        }
    }
}

/// Copy the headers and body that travel end to end (everything but what
/// each leg owns), e.g. Content-Type, Info-Package, Session-Expires.
fn copy_end_to_end(from: &Message, to: &mut Message) {
    for h in &from.headers {
        if !LEG_LOCAL.iter().any(|n| n.eq_ignore_ascii_case(&h.name)) && !h.name.eq_ignore_ascii_case("Authorization") {
            to.headers.push(h.clone());
        }
    }
    to.body = from.body.clone();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_uris() {
        assert_eq!(
            contact_uri("\"A\" <sip:a@1.2.3.4:5060;transport=tcp>;expires=60"),
            "sip:a@1.2.3.4:5060;transport=tcp"
        );
        assert_eq!(contact_uri("sip:a@1.2.3.4;x=1"), "sip:a@1.2.3.4");
    }
}
