//! One call's attempts: sending the INVITE to the next target, the
//! failover and ring timers, what targets answer (1xx, 2xx, 3xx through
//! `on-redirect`, failures), and what happens when none is left.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use trunkline_plugin_host::chain::DialOutcome;
use trunkline_plugin_host::types::{Fallback, Header, Outcome, RedirectDecision};
use trunkline_sip_core::dialog::Dialog;
use trunkline_sip_core::message::Message;
use trunkline_sip_core::transaction::{status_of, ClientEvent, TransactionKey};
use trunkline_sip_core::Peer;
use trunkline_sip_core::Transport as SipTransport;

use super::build::cancel_for;
use super::build::{self, relay_response, uri_destination, Destination, Ids, Locals, OutgoingInvite};
use super::call::{Leg, Phase, Queued};
use super::dns::{srv_order, Answer, Dns, Lookup, Question};
use super::in_dialog::Side;
use super::{media, reason_of, twiml, Engine, Timer, MAX_REDIRECTS};
use crate::routing;
use crate::sipcall::{party, response_from};
use trunkline_media_core::session::MediaError;

impl Engine {
    /// Send the INVITE to the next target, or fall back when none is left.
    pub(super) fn try_next(&mut self, now: Instant, id: u64) {
        loop {
            let Some(c) = self.calls.get_mut(&id) else { return };
            if c.queue.is_empty() {
                return self.all_failed(now, id);
            }
            let queued = c.queue.remove(0);
            // A target that is down costs the caller no wait, unless every
            // target left is down: then it is tried anyway.
            if self.health.is_down(&queued.target.uri) && c.queue.iter().any(|q| !self.health.is_down(&q.target.uri)) {
                c.route.push(format!("{}: skipped (down: OPTIONS pings unanswered)", queued.target.uri));
                continue;
            }
            let (uri, x_headers) = routing::request_uri(&queued.target.uri, &c.dialed);
            // Resolved before `pre-dial`, so that a call waiting for a name
            // runs that hook once per attempt.
            let cx = Context { locals: &self.locals, now, call: id, uri: &uri };
            let (peer, named) = match locate(&mut self.dns, &mut self.ids, cx, &queued, &mut c.queue) {
                Located::At(peer) => (peer, false),
                Located::AtNamed(peer) => (peer, true),
                Located::Skip(why) => {
                    c.route.push(format!("{uri}: skipped ({why})"));
                    continue;
                }
                Located::Wait => {
                    c.queue.insert(0, queued);
                    return;
                }
                Located::Expanded => continue,
            };
            let target = queued.target;
            let mut outgoing = c.request.clone();
            outgoing.uri = uri.clone();
            if c.call.direction == trunkline_plugin_host::types::Direction::Origination {
                super::diversion::add_dialed(&c.settings, &c.settings.trunks[c.trunk], &c.dialed, &mut outgoing);
            }
            outgoing.headers.extend(x_headers.into_iter().map(|(name, value)| Header { name, value }));
            let dial = c.session.pre_dial(&c.call, &mut outgoing, &target);
            if let Some(mode) = c.session.recording_requested() {
                c.record = Some(media::record_mode(mode));
                std::sync::Arc::make_mut(&mut c.call.record).media.recording = true;
            }
            match dial {
                Ok(DialOutcome::Send) => {}
                Ok(DialOutcome::Skip) => {
                    c.route.push(format!("{uri}: skipped by a plugin"));
                    continue;
                }
                Err(r) => return self.finish(now, id, r.code, &r.reason, Outcome::Rejected),
            }
            if !self.locals.serves(peer.transport) {
                c.route.push(format!("{uri}: skipped (no {} listener configured)", peer.transport));
                continue;
            }
            c.attempts += 1;
            let (call_id, from_tag, branch) = (self.ids.next(), self.ids.next(), self.ids.next());
            let mut invite = OutgoingInvite {
                uri: &uri,
                request: &outgoing,
                from: c.a_invite.header("From").unwrap_or_default(),
                to: c.a_invite.header("To").unwrap_or_default(),
                max_forwards: c.max_forwards,
                locals: &self.locals,
                transport: peer.transport,
                call_id: &call_id,
                from_tag: &from_tag,
                branch: &branch,
                offer_100rel: c.a_reliable.is_some(),
            }
            .build();
            // A new target: it gets the caller's offer, anchored.
            self.media_new_party(id, Side::Callee);
            if let Err(e) = self.anchor(now, id, Side::Caller, &mut invite) {
                let (code, why) = media::refusal(&e);
                return self.finish(now, id, code, &why, Outcome::Failed);
            }
            let Some(c) = self.calls.get_mut(&id) else { return };
            let Some(tx) = self.layer.send_request(now, peer, invite.clone()) else { return };
            let attempt = c.attempts;
            c.route.push(if named { format!("INVITE {uri} at {}", peer.addr) } else { format!("INVITE {uri}") });
            c.target_sent(now, &uri, peer, &call_id);
            c.b_call_ids.push(call_id.clone());
            c.leg = Some(Leg::new(attempt, tx.clone(), invite, peer, uri));
            self.by_b_tx.insert(tx, (id, attempt));
            self.by_b_call_id.insert(call_id, id);
            let wait = Duration::from_millis(c.settings.failover_timeout_ms);
            self.timers.push(Reverse((now + wait, id, Timer::Failover(attempt))));
            return;
        }
    }

    pub(super) fn failover_timer(&mut self, now: Instant, id: u64, attempt: u32) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        let Some(leg) = c.leg.as_ref().filter(|l| l.attempt == attempt && !l.responded) else { return };
        if c.phase != Phase::Routing {
            return;
        }
        let tx = leg.tx.clone();
        if let Some(last) = c.route.last_mut() {
            last.push_str(&format!(" -> no response in {} ms", c.settings.failover_timeout_ms));
        }
        c.target_ended(format!("no response in {} ms (failover)", c.settings.failover_timeout_ms));
        c.leg = None;
        self.layer.abandon(&tx);
        self.try_next(now, id);
    }

    /// Timer C: the target rang too long. CANCEL it and try the next one.
    pub(super) fn ring_timer(&mut self, now: Instant, id: u64, attempt: u32) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        let ring_ms = c
            .twiml
            .as_ref()
            .and_then(|t| t.dial_timeout)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(c.settings.ring_timeout_ms);
        if c.phase != Phase::Routing || c.leg.as_ref().is_none_or(|l| l.attempt != attempt) {
            return;
        }
        let leg = c.leg.take().expect("checked above");
        self.layer.send_request(now, leg.to, cancel_for(&leg.invite));
        if let Some(last) = c.route.last_mut() {
            last.push_str(&format!(" -> no answer in {ring_ms} ms (CANCEL)"));
        }
        c.target_ended(format!("no answer in {ring_ms} ms (CANCEL)"));
        c.last_failure = Some(
            trunkline_plugin_host::types::ResponseRecord {
                status: 408,
                reason: "Request Timeout".into(),
                contacts: vec![],
            }
            .into(),
        );
        self.try_next(now, id);
    }

    pub(super) fn on_client_event(&mut self, now: Instant, key: TransactionKey, event: ClientEvent) {
        if self.health.owns(&key) {
            return self.on_ping_event(&key, event);
        }
        if self.relays.contains_key(&key) {
            self.on_relay_event(now, &key, event);
            return;
        }
        if self.transfer_txs.contains_key(&key) {
            return self.on_transfer_event(now, &key, event);
        }
        let leg = self.by_b_tx.get(&key).copied();
        let current = leg.is_some_and(|(id, attempt)| {
            self.calls.get(&id).and_then(|c| c.leg.as_ref()).is_some_and(|l| l.attempt == attempt)
        });
        let Some((id, _)) = leg.filter(|_| current) else {
            // A late answer from a target we already gave up on: end it politely.
            if let ClientEvent::Final(m) = &event {
                let to_invite = m.header("CSeq").is_some_and(|c| c.ends_with("INVITE"));
                if to_invite && (200..300).contains(&status_of(m)) {
                    self.hang_up_stray(now, None, m.clone());
                }
            }
            return;
        };
        match event {
            ClientEvent::Provisional(m) => self.on_provisional(now, id, m),
            ClientEvent::Final(m) => self.on_final(now, id, m),
            ClientEvent::Timeout => self.leg_failed(now, id, 408, "Request Timeout", None),
            ClientEvent::TransportError => self.leg_failed(now, id, 503, "Service Unavailable", None),
        }
    }

    pub(super) fn on_provisional(&mut self, now: Instant, id: u64, mut m: Message) {
        if !self.target_provisional(now, id, &m) {
            return; // a reliable 1xx already seen
        }
        if let Err(e) = self.anchor(now, id, Side::Callee, &mut m) {
            // Early media we cannot anchor is not passed on; the call goes on.
            tracing::warn!(call_id = m.header("Call-ID").unwrap_or_default(), "target's 1xx: {e}: relayed without it");
            m.body.clear();
        }
        let Some(c) = self.calls.get_mut(&id) else { return };
        let status = status_of(&m);
        c.target_response(now, status, &reason_of(&m));
        let ring =
            c.twiml.as_ref().and_then(|t| t.dial_timeout).unwrap_or(Duration::from_millis(c.settings.ring_timeout_ms));
        if let Some(leg) = c.leg.as_mut() {
            if !leg.responded {
                self.timers.push(Reverse((now + ring, id, Timer::Ring(leg.attempt))));
            }
            leg.responded = true;
        }
        if status > 100 && c.phase == Phase::Routing {
            c.first_ring.get_or_insert(now);
            let reason_phrase = reason_of(&m);
            let resp = relay_response(
                &c.a_invite,
                status,
                &reason_phrase,
                &c.a_tag,
                (&self.locals, c.a_from.transport),
                Some(&m),
            );
            if let Some(last) = c.route.last_mut() {
                if !last.contains(&format!(" {status}")) {
                    last.push_str(&format!(" -> {status} {reason_phrase}"));
                }
            }
            self.provisional_to_caller(now, id, resp);
        }
    }

    pub(super) fn on_final(&mut self, now: Instant, id: u64, m: Message) {
        let status = status_of(&m);
        let reason_phrase = reason_of(&m);
        let Some(c) = self.calls.get_mut(&id) else { return };
        c.target_response(now, status, &reason_phrase);
        if (200..300).contains(&status) && c.phase == Phase::Answered {
            return self.answered(now, id, m); // a retransmission: ACK again
        }
        if let Some(last) = c.route.last_mut() {
            last.push_str(&format!(" -> {status} {reason_phrase}"));
        }
        if (200..300).contains(&status) {
            return self.answered(now, id, m);
        }
        if let Some(leg) = c.leg.as_mut() {
            leg.responded = true;
        }
        if (300..400).contains(&status) {
            let response = response_from(&m);
            let decision = match &response {
                Some(r) => c.session.on_redirect(&c.call, r),
                None => RedirectDecision::NextTarget,
            };
            let follow = match decision {
                RedirectDecision::Default => response.as_ref().and_then(|r| r.contacts.first().cloned()),
                RedirectDecision::Follow(u) => Some(u),
                RedirectDecision::NextTarget => None,
                RedirectDecision::Reject(r) => return self.finish(now, id, r.code, &r.reason, Outcome::Rejected),
            };
            let settings = c.settings.clone();
            let ours =
                |u: &str| party(u).is_some_and(|p| settings.domains.iter().any(|d| d.eq_ignore_ascii_case(&p.host)));
            match follow {
                Some(u) if c.redirects < MAX_REDIRECTS && !ours(&u) => {
                    c.redirects += 1;
                    c.queue.insert(0, routing::target(u, 0).into());
                }
                Some(u) => c.route.push(format!("redirect to {u} refused (our own domain or too many redirects)")),
                None => {}
            }
            c.last_failure = response;
            c.leg = None;
            return self.try_next(now, id);
        }
        self.leg_failed(now, id, status, &reason_phrase, Some(m));
    }

    pub(super) fn leg_failed(&mut self, now: Instant, id: u64, status: u16, reason_phrase: &str, m: Option<Message>) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        if m.is_none() {
            if let Some(last) = c.route.last_mut() {
                last.push_str(&format!(" -> {status} {reason_phrase}"));
            }
            let why = if status == 408 { "no final response (transaction timeout)" } else { "transport error" };
            c.target_ended(format!("{why}: {status} {reason_phrase} from the router"));
        }
        c.leg = None;
        c.last_failure = m.as_ref().and_then(response_from).or(Some(
            trunkline_plugin_host::types::ResponseRecord { status, reason: reason_phrase.into(), contacts: vec![] }
                .into(),
        ));
        // Inside a TwiML <Dial>, any failure moves on to the next target.
        if routing::fails_over(status) || c.twiml.is_some() {
            self.try_next(now, id);
        } else {
            self.finish(now, id, status, reason_phrase, Outcome::Failed);
        }
    }

    /// Every target failed: go on with the TwiML in progress, or ask the
    /// plugins (`on-failure`) and the trunk for a disaster-recovery plan.
    pub(super) fn all_failed(&mut self, now: Instant, id: u64) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        if c.twiml.is_some() {
            return self.run_twiml(now, id);
        }
        let last = c.last_failure.clone();
        let fallback = c.session.on_failure(&c.call, last.as_ref());
        let dr = c.settings.trunks[c.trunk].disaster_recovery_url.clone();
        let (code, why) = last.map(|l| (l.status, l.reason.clone())).unwrap_or((480, "Temporarily Unavailable".into()));
        match fallback {
            Fallback::Reject(r) => self.finish(now, id, r.code, &r.reason, Outcome::Rejected),
            Fallback::TwimlUrl(u) => self.start_twiml_fetch(now, id, &u),
            Fallback::TwimlDocument(doc) => match crate::twiml::parse(&doc) {
                Ok(verbs) => {
                    c.route.push(format!("disaster recovery: inline TwiML from a plugin: {} verb(s)", verbs.len()));
                    c.twiml = Some(twiml::TwimlRun { verbs: verbs.into(), ..Default::default() });
                    self.run_twiml(now, id)
                }
                Err(e) => {
                    tracing::warn!(call_id = %c.call.call_id, "disaster recovery: bad inline TwiML from a plugin: {e}");
                    c.route.push(format!("disaster recovery: bad inline TwiML: {e}"));
                    self.finish(now, id, 503, "Service Unavailable", Outcome::Failed)
                }
            },
            Fallback::Default => match dr {
                Some(u) => self.start_twiml_fetch(now, id, &u),
                None => self.finish(now, id, code, &why, Outcome::Failed),
            },
        }
    }

    pub(super) fn answered(&mut self, now: Instant, id: u64, ok: Message) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        if c.phase == Phase::Answered {
            // A retransmitted 2xx: our ACK was lost; send it again.
            if let (Some(ack), Some(to)) = (c.b_ack.clone(), c.b_hop()) {
                self.send_stateless_to(now, &to, &ack);
            }
            return;
        }
        let Some(to) = c.leg.as_ref().map(|l| l.to) else { return };
        let mut ok = ok;
        if let Err(e) = self.anchor(now, id, Side::Callee, &mut ok) {
            // A 2xx whose description cannot be anchored: that target fails.
            tracing::warn!(call_id = ok.header("Call-ID").unwrap_or_default(), "target's 2xx: {e}: hung up");
            self.hang_up_stray(now, Some(to), ok);
            let (code, why) = match e {
                MediaError::Crypto(..) => media::refusal(&e),
                _ => (502, "Bad Gateway (unusable session description)".to_owned()),
            };
            return self.leg_failed(now, id, code, &why, None);
        }
        let Some(c) = self.calls.get_mut(&id) else { return };
        let Some(leg) = c.leg.as_ref() else { return };
        // Delayed offer: the caller's answer comes in its ACK.
        c.b_ack_waits = c.a_invite.body.is_empty() && !ok.body.is_empty() && !leg.early_answered;
        // The 2xx confirms the early dialog of its To tag, if a reliable 1xx made one.
        let b_dialog = match Dialog::as_uac(&leg.invite, &ok) {
            Ok(d) => match leg.early.iter().find(|e| e.id == d.id) {
                Some(early) => {
                    let mut early = early.clone();
                    early.confirm(&ok);
                    Ok(early)
                }
                None => Ok(d),
            },
            Err(e) => Err(e),
        };
        let a_dialog = Dialog::as_uas(&c.a_invite, &c.a_tag);
        let mut resp =
            relay_response(&c.a_invite, 200, &reason_of(&ok), &c.a_tag, (&self.locals, c.a_from.transport), Some(&ok));
        if c.a_early_sdp.as_ref().is_some_and(|sdp| *sdp == resp.body) {
            // The caller has this description from a reliable 1xx already.
            resp.body.clear();
            resp.headers.retain(|h| !h.name.eq_ignore_ascii_case("Content-Type"));
        }
        c.a_ok = Some(resp);
        if let (Err(e), _) | (_, Err(e)) = (&b_dialog, &a_dialog) {
            tracing::warn!(call_id = %c.call.call_id, "answered call without a usable dialog: {e}");
        }
        c.b_dialog = b_dialog.ok();
        c.a_dialog = a_dialog.ok();
        c.phase = Phase::Answered;
        c.answered = Some(now);
        c.session.end_routing_phase();
        let longest = c.settings.trunks[c.trunk].max_call_duration;
        self.timers.push(Reverse((now + longest, id, Timer::MaxDuration)));
        // RFC 3262 §3: no 2xx while a 1xx with a session description awaits its PRACK.
        if !c.a_reliable.as_ref().is_some_and(|p| p.holds_final()) {
            self.send_ok(now, id);
        }
        if !self.calls.get(&id).is_some_and(|c| c.b_ack_waits) {
            self.ack_target(now, id, None);
        }
    }

    /// ACK the answering target's 2xx, with the body of the caller's ACK
    /// `answer` if the 2xx carried an offer (RFC 3264 delayed offer).
    pub(super) fn ack_target(&mut self, now: Instant, id: u64, answer: Option<&Message>) {
        let branch = self.ids.next();
        let Some(c) = self.calls.get_mut(&id) else { return };
        let (Some(d), Some(to)) = (&c.b_dialog, c.b_hop()) else { return };
        let mut ack = d.ack(1, &build::via(&self.locals, to.transport), &branch);
        if let Some(answer) = answer.filter(|a| !a.body.is_empty()) {
            if let Some(ct) = answer.header("Content-Type") {
                ack.headers.push(trunkline_sip_core::Header { name: "Content-Type".into(), value: ct.into() });
            }
            ack.body = answer.body.clone();
        }
        if let Err(e) = self.anchor(now, id, Side::Caller, &mut ack) {
            tracing::warn!(call_id = ack.header("Call-ID").unwrap_or_default(), "caller's answer in its ACK: {e}");
            ack.body.clear();
            ack.headers.retain(|h| !h.name.eq_ignore_ascii_case("Content-Type"));
        }
        self.send_stateless_to(now, &to, &ack);
        if let Some(c) = self.calls.get_mut(&id) {
            c.b_ack = Some(ack);
        }
    }
}

/// Where an attempt at `uri` goes.
enum Located {
    /// An IP address in the URI.
    At(Peer),
    /// An address of the URI's host name (or of its SRV record's host).
    AtNamed(Peer),
    /// Nowhere: why.
    Skip(String),
    /// The name is being resolved: the call resumes with the answer.
    Wait,
    /// The attempt was replaced by one per SRV record, queued first.
    Expanded,
}

/// The SRV service of a transport (RFC 3263 §4.2), if we look one up.
pub(super) fn service(transport: SipTransport) -> Option<&'static str> {
    match transport {
        SipTransport::Udp => Some("_sip._udp"),
        SipTransport::Tcp => Some("_sip._tcp"),
        // A TLS target's certificate is checked against the URI's host,
        // which an SRV record would replace: not looked up.
        SipTransport::Tls => None,
    }
}

/// Where the attempt `queued` (at `uri`, for call `id`) goes.
/// - A host without a port is first looked up as a SIP service: its SRV
///   records, in RFC 2782 order, replace the attempt (each then resolved
///   as a host, with the record's port); without records, the host itself
///   is used on the default port (RFC 3263 §4.2).
/// - A name's first usable address is used now and its others are queued
///   right after it (RFC 3263 §4.3), unless `queued` already carries one.
fn locate(dns: &mut Dns, ids: &mut Ids, cx: Context<'_>, queued: &Queued, queue: &mut Vec<Queued>) -> Located {
    let (transport, uri_host, uri_port, port_given) = match uri_destination(cx.uri) {
        None => return Located::Skip("no host, or unknown transport".into()),
        Some(Destination::Addr(peer)) => return Located::At(peer),
        Some(Destination::Name { transport, host, port, port_given }) => (transport, host, port, port_given),
    };
    let (host, port) = match &queued.via {
        Some((host, port)) => (host.clone(), *port),
        None => (uri_host, uri_port),
    };
    if let Some(ip) = queued.addr {
        return Located::AtNamed(Destination::at(transport, ip, port));
    }
    if let (None, false, Some(service)) = (&queued.via, port_given, service(transport)) {
        match dns.lookup(cx.now, &Question::Srv(format!("{service}.{host}")), cx.call) {
            Lookup::Wait => return Located::Wait,
            Lookup::Found(Answer::Srv(records)) => {
                let ordered = srv_order(records, || ids.rand01());
                if ordered.is_empty() {
                    return Located::Skip(format!("{host} declares no SIP service (SRV target \".\")"));
                }
                let entries = ordered.into_iter().map(|r| Queued {
                    target: queued.target.clone(),
                    addr: None,
                    via: Some((r.target.to_ascii_lowercase(), r.port)),
                });
                queue.splice(0..0, entries);
                return Located::Expanded;
            }
            // No SRV record (or no answer): the host itself.
            Lookup::Found(Answer::Addrs(_)) | Lookup::Failed(_) => {}
        }
    }
    match usable_addresses(dns, cx.locals, cx.now, cx.call, transport, &host) {
        Ok(None) => Located::Wait,
        Err(why) => Located::Skip(why),
        Ok(Some(addrs)) => {
            let rest: Vec<Queued> = addrs[1..]
                .iter()
                .map(|ip| Queued { target: queued.target.clone(), addr: Some(*ip), via: queued.via.clone() })
                .collect();
            queue.splice(0..0, rest);
            Located::AtNamed(Destination::at(transport, addrs[0], port))
        }
    }
}

/// The addresses of `host` that our `transport` listener can reach (never
/// empty), in the resolver's order; `Ok(None)`: being looked up (call
/// `call` resumes with the answer); `Err`: why there is none.
pub(super) fn usable_addresses(
    dns: &mut Dns,
    locals: &Locals,
    now: Instant,
    call: u64,
    transport: SipTransport,
    host: &str,
) -> Result<Option<Vec<std::net::IpAddr>>, String> {
    match dns.lookup(now, &Question::Host(host.to_owned()), call) {
        Lookup::Wait => Ok(None),
        Lookup::Failed(why) => Err(format!("{host} does not resolve: {why}")),
        Lookup::Found(Answer::Srv(_)) => Err(format!("{host}: unexpected answer")),
        Lookup::Found(Answer::Addrs(addrs)) => {
            let usable: Vec<_> = addrs.iter().copied().filter(|ip| locals.reaches(transport, *ip)).collect();
            if usable.is_empty() {
                Err(format!("{host} has no address of our listener's IP version"))
            } else {
                Ok(Some(usable))
            }
        }
    }
}

/// What [`locate`] needs to know of the attempt besides the queue.
#[derive(Clone, Copy)]
struct Context<'a> {
    locals: &'a Locals,
    now: Instant,
    call: u64,
    uri: &'a str,
}
