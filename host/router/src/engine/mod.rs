//! The B2BUA call engine, sans-IO: datagrams and time in, datagrams and
//! call reports out. It owns the transaction layer, runs each call's plugin
//! chain, and routes with the reference algorithm (`crate::routing`).
//!
//! Handlers: [`Engine::handle_datagram`], [`Engine::handle_timeout`].
//! Polls: [`Engine::poll_transmit`], [`Engine::poll_timeout`],
//! [`Engine::poll_report`].
//!
//! This first increment covers UDP, origination calls to IP-literal
//! targets: INVITE with 100/18x/2xx relay, failover on silence and on
//! failover responses, ring timeout (Timer C, CANCEL), 3xx through
//! `on-redirect`, `on-failure`, the caller's 2xx resent until its ACK, BYE
//! from either side, CANCEL before answer, OPTIONS. Not yet: re-INVITE,
//! UPDATE, INFO relay (answered 501), DNS names, TCP, TwiML execution.

mod build;
mod call;
mod flood;
mod termination;
mod in_dialog;
mod twiml;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trunkline_plugin_host::chain::{DialOutcome, InviteOutcome};
use trunkline_plugin_host::types::{Direction, Fallback, HangupBy, Header, Outcome, RedirectDecision, Summary, Target, Transport};
use trunkline_plugin_host::Runtime;
use trunkline_sip_core::dialog::Dialog;
use trunkline_sip_core::{Peer, Transport as SipTransport};
use trunkline_sip_core::message::{Header as SipHeader, Message, StartLine};
use trunkline_sip_core::transaction::{
    response_to, status_of, ClientEvent, Layer, LayerEvent, Timers, TransactionKey, Transmit,
};

pub use call::CallReport;
pub use flood::Rate;
pub use twiml::FetchRequest;
pub use build::Locals;
use build::{relay_response, uri_peer, Ids, OutgoingInvite};
use call::{CallState, Leg, Phase};

use crate::config::Settings;
use crate::routing;
use crate::sipcall::{call_from_invite, party, response_from, CallOrigin};

/// Methods we answer or relay (the Allow header of OPTIONS and 405/501).
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, MESSAGE, NOTIFY, SUBSCRIBE, PRACK";

/// Digest nonces whose counts are remembered (older ones are re-challenged).
const MAX_NONCES: usize = 10_000;

/// Most redirects one call follows.
const MAX_REDIRECTS: u32 = 3;

/// The engine's own timers (the transaction layer keeps its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// No response from attempt N within `failover_timeout_ms`.
    Failover(u32),
    /// Attempt N rang for `ring_timeout_ms` without answering (Timer C).
    Ring(u32),
    /// Resend the caller's 2xx until its ACK; the next interval in ms.
    OkRetransmit(u64),
    /// A TwiML `<Pause>` of step N is over.
    TwimlPause(u64),
}

/// The engine. See the module docs.
pub struct Engine {
    layer: Layer,
    settings: Arc<Settings>,
    runtime: Runtime,
    locals: Locals,
    ids: Ids,
    calls: HashMap<u64, CallState>,
    next_call: u64,
    by_a_call_id: HashMap<String, u64>,
    by_b_call_id: HashMap<String, u64>,
    by_b_tx: HashMap<TransactionKey, (u64, u32)>,
    /// Engine timers: (deadline, call, which).
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    reports: VecDeque<CallReport>,
    /// TwiML documents the driver must fetch.
    fetches: VecDeque<FetchRequest>,
    /// In-dialog requests relayed to the other leg, by client transaction.
    relays: HashMap<TransactionKey, in_dialog::Relay>,
    /// Mints and checks digest nonces (termination authentication).
    nonces: trunkline_sip_core::digest::NonceKey,
    /// Nonce counts seen, against replays.
    replays: trunkline_sip_core::digest::ReplayGuard,
    /// Per-source limits on out-of-dialog OPTIONS and new INVITEs.
    options_limit: flood::SourceLimiter,
    invite_limit: flood::SourceLimiter,
    /// The engine's clock origin, the first instant it was given (nonce
    /// timestamps count from it).
    started: Option<Instant>,
}

impl Engine {
    /// An engine answering on `locals` (named in Via and Contact).
    pub fn new(settings: Arc<Settings>, runtime: Runtime, locals: Locals, seed: u64) -> Self {
        let limits = settings.limits;
        Engine {
            layer: Layer::new(Timers::default()),
            settings,
            runtime,
            locals,
            ids: Ids::new(seed),
            calls: HashMap::new(),
            next_call: 0,
            by_a_call_id: HashMap::new(),
            by_b_call_id: HashMap::new(),
            by_b_tx: HashMap::new(),
            timers: BinaryHeap::new(),
            reports: VecDeque::new(),
            fetches: VecDeque::new(),
            relays: HashMap::new(),
            nonces: trunkline_sip_core::digest::NonceKey::new(&seed.to_le_bytes()),
            replays: trunkline_sip_core::digest::ReplayGuard::new(MAX_NONCES),
            started: None,
            options_limit: flood::SourceLimiter::new(limits.options, limits.source_slots),
            invite_limit: flood::SourceLimiter::new(limits.invites, limits.source_slots),
        }
    }

    /// Sign digest nonces with `secret` (random bytes from the driver;
    /// without it nonces are keyed by the seed, which suits tests only).
    pub fn set_auth_secret(&mut self, secret: &[u8]) {
        self.nonces = trunkline_sip_core::digest::NonceKey::new(secret);
    }

    /// Calls in progress.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// A UDP datagram arrived.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.handle_message(now, Peer::udp(from), bytes);
    }

    /// A whole message arrived from `from` (a datagram or a stream frame).
    pub fn handle_message(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        self.layer.handle_message(now, from, bytes);
        self.process(now);
    }

    /// `peer` cannot be reached (connection refused, reset or timed out):
    /// its transactions fail now (a target leg fails over at once).
    pub fn handle_transport_error(&mut self, now: Instant, peer: Peer) {
        self.layer.handle_transport_error(peer);
        self.process(now);
    }

    /// Run timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        while let Some(Reverse((at, id, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Failover(attempt) => self.failover_timer(now, id, attempt),
                Timer::Ring(attempt) => self.ring_timer(now, id, attempt),
                Timer::OkRetransmit(interval) => self.ok_retransmit(now, id, interval),
                Timer::TwimlPause(step) => self.twiml_pause_over(now, id, step),
            }
        }
        self.process(now);
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.layer.poll_transmit()
    }

    /// When `handle_timeout` must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ours = self.timers.peek().map(|Reverse((t, _, _))| *t);
        [self.layer.poll_timeout(), ours].into_iter().flatten().min()
    }

    /// Next finished call.
    pub fn poll_report(&mut self) -> Option<CallReport> {
        self.reports.pop_front()
    }

    fn process(&mut self, now: Instant) {
        while let Some(ev) = self.layer.poll_event() {
            match ev {
                LayerEvent::Request { key: Some(key), from, message } => self.on_request(now, key, from, message),
                LayerEvent::Request { key: None, message, .. } => self.on_ack(message),
                LayerEvent::Client { key, event } => self.on_client_event(now, key, event),
                LayerEvent::Server { key, event } => tracing::debug!(?key, ?event, "server transaction ended"),
                LayerEvent::Malformed { from, error } => tracing::warn!(%from, "malformed SIP message: {error}"),
                LayerEvent::StrayResponse { from, message } => self.on_stray_response(now, from, message),
            }
        }
    }

    fn respond(&mut self, now: Instant, key: &TransactionKey, request: &Message, code: u16, reason_phrase: &str) {
        let mut r = response_to(request, code, reason_phrase);
        if code > 100 {
            for h in r.headers.iter_mut().filter(|h| h.name.eq_ignore_ascii_case("To") && !h.value.contains(";tag=")) {
                h.value = format!("{};tag={}", h.value, self.ids.next());
            }
        }
        self.layer.send_response(now, key, r);
    }

    fn on_request(&mut self, now: Instant, key: TransactionKey, from: Peer, m: Message) {
        let method = m.method().unwrap_or_default().to_owned();
        let call_id = m.header("Call-ID").unwrap_or_default().to_owned();
        let known = match (self.by_a_call_id.get(&call_id), self.by_b_call_id.get(&call_id)) {
            (Some(&id), _) => Some((id, in_dialog::Side::Caller)),
            (None, Some(&id)) => Some((id, in_dialog::Side::Callee)),
            _ => None,
        };
        let to_tagged = m.header("To").is_some_and(|t| t.contains(";tag="));
        let options_verdict = if method == "OPTIONS" && known.is_none() && !to_tagged {
            self.options_limit.check(now, from.addr.ip())
        } else {
            flood::Verdict::Allow
        };
        match (method.as_str(), known) {
            ("BYE", _) => self.on_bye(now, key, m),
            ("CANCEL", _) => self.on_cancel(now, key, m),
            // RFC 3261 §8.2.2.2: a new request with a call's Call-ID but no
            // To tag reached us twice (a loop or a fork): 482.
            ("INVITE", Some(_)) if !to_tagged => self.respond(now, &key, &m, 482, "Loop Detected"),
            (_, Some((id, side))) if to_tagged => self.on_in_dialog_request(now, key, from, m, id, side),
            ("INVITE", _) if to_tagged => self.respond(now, &key, &m, 481, "Call/Transaction Does Not Exist"),
            ("INVITE", _) => match self.invite_limit.check(now, from.addr.ip()) {
                flood::Verdict::Allow => self.new_call(now, key, from, m),
                flood::Verdict::Refuse { first } => {
                    if first {
                        tracing::warn!(%from, "INVITE rate limit exceeded (limits.invites_per_second): answering 503 until it slows down");
                    }
                    let retry = self.invite_limit.retry_after_secs();
                    self.refuse_flood(now, &key, &m, retry);
                }
            },
            ("OPTIONS", _) if options_verdict != flood::Verdict::Allow => {
                // Answered once per window, then dropped: a flood gets no amplification.
                if options_verdict == (flood::Verdict::Refuse { first: true }) {
                    tracing::warn!(%from, "OPTIONS rate limit exceeded (limits.options_interval_ms): 503, then dropped this window");
                    let retry = self.options_limit.retry_after_secs();
                    self.refuse_flood(now, &key, &m, retry);
                } else {
                    self.layer.abandon(&key);
                }
            }
            ("OPTIONS", _) => {
                let mut r = response_to(&m, 200, "OK");
                r.headers.push(SipHeader { name: "Allow".into(), value: ALLOW.into() });
                r.headers.push(SipHeader { name: "Accept".into(), value: "application/sdp".into() });
                r.headers.push(SipHeader { name: "Supported".into(), value: String::new() });
                self.layer.send_response(now, &key, r);
            }
            (_, _) if to_tagged => self.respond(now, &key, &m, 481, "Call/Transaction Does Not Exist"),
            _ => {
                let mut r = response_to(&m, 405, "Method Not Allowed");
                r.headers.push(SipHeader { name: "Allow".into(), value: ALLOW.into() });
                self.layer.send_response(now, &key, r);
            }
        }
    }

    fn refuse_flood(&mut self, now: Instant, key: &TransactionKey, m: &Message, retry_after: u64) {
        let mut r = response_to(m, 503, "Service Unavailable (rate limited)");
        r.headers.push(SipHeader { name: "Retry-After".into(), value: retry_after.to_string() });
        self.layer.send_response(now, key, r);
    }

    fn new_call(&mut self, now: Instant, key: TransactionKey, from: Peer, m: Message) {
        let max_forwards = match m.header("Max-Forwards").map(str::parse::<u32>) {
            None => 70,
            Some(Ok(0)) => return self.respond(now, &key, &m, 483, "Too Many Hops"),
            Some(Ok(n)) => n.min(255),
            Some(Err(_)) => return self.respond(now, &key, &m, 400, "Bad Request (Max-Forwards)"),
        };
        // RFC 3261 §8.2.2.3: we support no extension a caller could require.
        if let Some(required) = m.header("Require") {
            let mut r = response_to(&m, 420, "Bad Extension");
            r.headers.push(SipHeader { name: "Unsupported".into(), value: required.to_owned() });
            self.layer.send_response(now, &key, r);
            return;
        }
        let ruri = match &m.start {
            StartLine::Request { uri, .. } => party(uri),
            StartLine::Response { .. } => None,
        };
        let settings = self.settings.clone();
        // A trunk's termination domain in the Request-URI: the customer
        // calls out (termination); else a number we own: a call in (origination).
        let route = match ruri.as_ref().and_then(|p| settings.trunk_for_domain(&p.host)) {
            Some(t) => {
                if !self.admit_termination(now, &key, from, &m, t) {
                    return;
                }
                let carrier = settings.trunks[t].termination.as_ref().map(|x| x.carrier).unwrap_or(0);
                Some((t, Direction::Termination, termination::carrier_targets(&settings.carriers[carrier])))
            }
            None => ruri
                .and_then(|p| p.user)
                .and_then(|u| settings.trunks.iter().position(|t| t.numbers.iter().any(|n| *n == u)))
                .map(|t| (t, Direction::Origination, routing::candidates(&settings.trunks[t].origination))),
        };
        let Some((trunk_idx, direction, candidates)) = route else {
            return self.respond(now, &key, &m, 404, "Not Found");
        };
        // Plugins are about to run: tell the caller we are on it.
        self.respond(now, &key, &m, 100, "Trying");
        let trunk = &settings.trunks[trunk_idx];
        let origin = CallOrigin {
            direction,
            account_id: &trunk.account,
            trunk_id: &trunk.id,
            trunk_name: &trunk.name,
            source_address: from.addr.to_string(),
            transport: plugin_transport(from.transport),
        };
        let (mut call, mut request) = match call_from_invite(&m, &origin) {
            Ok(v) => v,
            Err(e) => return self.respond(now, &key, &m, 400, &format!("Bad Request ({e})")),
        };
        let mut session = self.runtime.start_call(&trunk.chain, &trunk.account, &call.call_id.clone());
        let a_tag = self.ids.next();
        match session.on_invite(&mut call, &mut request) {
            InviteOutcome::Continue => {}
            InviteOutcome::Reject(r) => {
                let resp = relay_response(&m, r.code, &r.reason, &a_tag, (&self.locals, from.transport), None);
                self.layer.send_response(now, &key, resp);
                return self.report_unrouted(session, &call, trunk_idx, r.code, &format!("rejected {} {}", r.code, r.reason));
            }
            InviteOutcome::Redirect(contacts) => {
                let mut resp = relay_response(&m, 302, "Moved Temporarily", &a_tag, (&self.locals, from.transport), None);
                resp.headers.retain(|h| !h.name.eq_ignore_ascii_case("Contact"));
                for c in &contacts {
                    resp.headers.push(SipHeader { name: "Contact".into(), value: format!("<{c}>") });
                }
                self.layer.send_response(now, &key, resp);
                return self.report_unrouted(session, &call, trunk_idx, 302, &format!("redirected to {}", contacts.join(", ")));
            }
        }
        let queue = match session.select_uri(&call, candidates) {
            Ok(sel) if sel.ordered => sel.targets,
            Ok(sel) => {
                let ids = &mut self.ids;
                routing::order(&sel.targets, || ids.rand01())
            }
            Err(r) => {
                let resp = relay_response(&m, r.code, &r.reason, &a_tag, (&self.locals, from.transport), None);
                self.layer.send_response(now, &key, resp);
                return self.report_unrouted(session, &call, trunk_idx, r.code, &format!("rejected {} {}", r.code, r.reason));
            }
        };
        let id = self.next_call;
        self.next_call += 1;
        self.by_a_call_id.insert(call.call_id.clone(), id);
        let dialed = call.request_uri.user.clone().unwrap_or_default();
        self.calls.insert(
            id,
            CallState {
                a_invite: m,
                a_tx: key,
                a_from: from,
                a_tag,
                call,
                request,
                session,
                trunk: trunk_idx,
                dialed,
                max_forwards: max_forwards - 1,
                queue,
                leg: None,
                attempts: 0,
                redirects: 0,
                last_failure: None,
                phase: Phase::Routing,
                a_ok: None,
                a_acked: false,
                a_dialog: None,
                b_dialog: None,
                b_call_ids: Vec::new(),
                route: Vec::new(),
                started: now,
                first_ring: None,
                answered: None,
                twiml: None,
            },
        );
        self.try_next(now, id);
    }

    /// A call that never reached routing (rejected or redirected by a plugin).
    fn report_unrouted(&mut self, session: trunkline_plugin_host::CallSession, call: &trunkline_plugin_host::types::Call, trunk: usize, status: u16, outcome: &str) {
        let summary = Summary {
            outcome: Outcome::Rejected,
            status,
            target_uri: None,
            pdd_ms: None,
            duration_ms: 0,
            hangup_by: HangupBy::None,
            attempts: 0,
        };
        let trace = session.on_call_end(call, &summary);
        self.report(call, trunk, Vec::new(), &trace, outcome.to_owned());
    }

    fn report(&mut self, call: &trunkline_plugin_host::types::Call, trunk: usize, route: Vec<String>, trace: &[trunkline_plugin_host::HookTrace], outcome: String) {
        self.reports.push_back(CallReport {
            call_id: call.call_id.clone(),
            trunk: self.settings.trunks[trunk].name.clone(),
            from: call.from.user.clone().unwrap_or_else(|| "anonymous".into()),
            to: call.to.user.clone().unwrap_or_default(),
            route,
            hooks: trace.iter().map(|t| format!("{} {} {}: {} ({} us)", t.plugin, t.version, t.hook, t.outcome, t.micros)).collect(),
            outcome,
        });
    }

    /// Send the INVITE to the next target, or fall back when none is left.
    fn try_next(&mut self, now: Instant, id: u64) {
        loop {
            let Some(c) = self.calls.get_mut(&id) else { return };
            if c.queue.is_empty() {
                return self.all_failed(now, id);
            }
            let target = c.queue.remove(0);
            let (uri, x_headers) = routing::request_uri(&target.uri, &c.dialed);
            let mut outgoing = c.request.clone();
            outgoing.uri = uri.clone();
            outgoing.headers.extend(x_headers.into_iter().map(|(name, value)| Header { name, value }));
            match c.session.pre_dial(&c.call, &mut outgoing, &target) {
                Ok(DialOutcome::Send) => {}
                Ok(DialOutcome::Skip) => {
                    c.route.push(format!("{uri}: skipped by a plugin"));
                    continue;
                }
                Err(r) => return self.finish(now, id, r.code, &r.reason, Outcome::Rejected),
            }
            let Some(peer) = uri_peer(&uri) else {
                c.route.push(format!("{uri}: skipped (host is not an IP address: DNS is not supported yet; or unknown transport)"));
                continue;
            };
            if !self.locals.serves(peer.transport) {
                c.route.push(format!("{uri}: skipped (no {} listener configured)", peer.transport));
                continue;
            }
            c.attempts += 1;
            let (call_id, from_tag, branch) = (self.ids.next(), self.ids.next(), self.ids.next());
            let invite = OutgoingInvite {
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
            }
            .build();
            let Some(tx) = self.layer.send_request(now, peer, invite.clone()) else { return };
            let attempt = c.attempts;
            c.route.push(format!("INVITE {uri}"));
            c.b_call_ids.push(call_id.clone());
            c.leg = Some(Leg { attempt, tx: tx.clone(), invite, to: peer, uri, responded: false });
            self.by_b_tx.insert(tx, (id, attempt));
            self.by_b_call_id.insert(call_id, id);
            let wait = Duration::from_millis(self.settings.failover_timeout_ms);
            self.timers.push(Reverse((now + wait, id, Timer::Failover(attempt))));
            return;
        }
    }

    fn failover_timer(&mut self, now: Instant, id: u64, attempt: u32) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        let Some(leg) = c.leg.as_ref().filter(|l| l.attempt == attempt && !l.responded) else { return };
        if c.phase != Phase::Routing {
            return;
        }
        let tx = leg.tx.clone();
        if let Some(last) = c.route.last_mut() {
            last.push_str(&format!(" -> no response in {} ms", self.settings.failover_timeout_ms));
        }
        c.leg = None;
        self.layer.abandon(&tx);
        self.try_next(now, id);
    }

    /// Timer C: the target rang too long. CANCEL it and try the next one.
    fn ring_timer(&mut self, now: Instant, id: u64, attempt: u32) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        let ring_ms = c.twiml.as_ref().and_then(|t| t.dial_timeout).map(|d| d.as_millis() as u64).unwrap_or(self.settings.ring_timeout_ms);
        if c.phase != Phase::Routing || !c.leg.as_ref().is_some_and(|l| l.attempt == attempt) {
            return;
        }
        let leg = c.leg.take().expect("checked above");
        self.layer.send_request(now, leg.to, cancel_for(&leg.invite));
        if let Some(last) = c.route.last_mut() {
            last.push_str(&format!(" -> no answer in {ring_ms} ms (CANCEL)"));
        }
        c.last_failure = Some(trunkline_plugin_host::types::Response {
            status: 408,
            reason: "Request Timeout".into(),
            headers: vec![],
            contacts: vec![],
        });
        self.try_next(now, id);
    }

    /// RFC 3261 §13.3.1.4: the caller's 2xx is resent until its ACK comes;
    /// after 64*T1 without one, the call is ended with BYE on both sides.
    fn ok_retransmit(&mut self, now: Instant, id: u64, interval_ms: u64) {
        let timers = Timers::default();
        let Some(c) = self.calls.get(&id) else { return };
        let (Some(ok), false) = (c.a_ok.clone(), c.a_acked) else { return };
        if c.answered.is_some_and(|a| now.saturating_duration_since(a) >= timers.timeout()) {
            tracing::warn!(call_id = %c.call.call_id, "no ACK for the 200 OK in {} s: hanging up", timers.timeout().as_secs());
            return self.hang_up_both(now, id);
        }
        if c.a_from.transport == SipTransport::Udp {
            self.layer.send_stateless(c.a_from, &ok); // streams deliver it once
        }
        let next = interval_ms.min(timers.t2.as_millis() as u64);
        self.timers.push(Reverse((now + Duration::from_millis(next), id, Timer::OkRetransmit(next * 2))));
    }

    /// A response no transaction wants. A 2xx to an INVITE is either a
    /// retransmission for a call's answered leg (ACK it again) or an answer
    /// from a target we abandoned after silence (ACK it and hang up).
    fn on_stray_response(&mut self, now: Instant, from: Peer, m: Message) {
        let to_invite = m.header("CSeq").is_some_and(|c| c.ends_with("INVITE"));
        if !to_invite || !(200..300).contains(&status_of(&m)) {
            tracing::debug!(%from, "stray response ignored");
            return;
        }
        let call_id = m.header("Call-ID").unwrap_or_default();
        let answered_leg = self.by_b_call_id.get(call_id).and_then(|id| self.calls.get(id).map(|c| (*id, c))).filter(|(_, c)| {
            c.phase == Phase::Answered && c.b_dialog.as_ref().is_some_and(|d| d.id.call_id == call_id)
        });
        match answered_leg {
            Some((id, _)) => self.answered(now, id, m),
            None => self.hang_up_stray(now, Some(from), m),
        }
    }

    /// The caller's ACK for our 2xx (no transaction: matched by Call-ID).
    fn on_ack(&mut self, m: Message) {
        if m.method() != Some("ACK") {
            return; // a request without an RFC 3261 branch: not served
        }
        let call_id = m.header("Call-ID").unwrap_or_default();
        let seq = m.header("CSeq").and_then(trunkline_sip_core::header::CSeq::parse).map(|c| c.seq);
        if let Some(&id) = self.by_a_call_id.get(call_id) {
            let Some(c) = self.calls.get_mut(&id) else { return };
            let initial = c.a_invite.header("CSeq").and_then(trunkline_sip_core::header::CSeq::parse).map(|c| c.seq);
            if seq == initial {
                c.a_acked = true;
                return;
            }
            self.forward_reinvite_ack(&m, id);
        } else if let Some(&id) = self.by_b_call_id.get(call_id) {
            self.forward_reinvite_ack(&m, id);
        }
    }

    /// End an answered call from our side: BYE to both parties.
    fn hang_up_both(&mut self, now: Instant, id: u64) {
        let (b1, b2) = (self.ids.next(), self.ids.next());
        let Some(c) = self.calls.get_mut(&id) else { return };
        let (a_peer, b_peer) = (c.a_peer(), c.b_peer());
        let mut byes = Vec::new();
        if let (Some(d), Some(to)) = (c.b_dialog.as_mut(), b_peer) {
            byes.push((to, d.request("BYE", &build::via(&self.locals, to.transport), &b1)));
        }
        if let Some(d) = c.a_dialog.as_mut() {
            byes.push((a_peer, d.request("BYE", &build::via(&self.locals, a_peer.transport), &b2)));
        }
        for (to, bye) in byes {
            self.layer.send_request(now, to, bye);
        }
        self.end_answered(now, id, HangupBy::Router);
    }

    fn on_client_event(&mut self, now: Instant, key: TransactionKey, event: ClientEvent) {
        if self.relays.contains_key(&key) {
            self.on_relay_event(now, &key, event);
            return;
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

    fn on_provisional(&mut self, now: Instant, id: u64, m: Message) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        let status = status_of(&m);
        let ring = c.twiml.as_ref().and_then(|t| t.dial_timeout).unwrap_or(Duration::from_millis(self.settings.ring_timeout_ms));
        if let Some(leg) = c.leg.as_mut() {
            if !leg.responded {
                self.timers.push(Reverse((now + ring, id, Timer::Ring(leg.attempt))));
            }
            leg.responded = true;
        }
        if status > 100 && c.phase == Phase::Routing {
            c.first_ring.get_or_insert(now);
            let (a_tx, a_tag) = (c.a_tx.clone(), c.a_tag.clone());
            let reason_phrase = reason_of(&m);
            let resp = relay_response(&c.a_invite, status, &reason_phrase, &a_tag, (&self.locals, c.a_from.transport), Some(&m));
            if let Some(last) = c.route.last_mut() {
                if !last.contains(&format!(" {status}")) {
                    last.push_str(&format!(" -> {status} {reason_phrase}"));
                }
            }
            self.layer.send_response(now, &a_tx, resp);
        }
    }

    fn on_final(&mut self, now: Instant, id: u64, m: Message) {
        let status = status_of(&m);
        let reason_phrase = reason_of(&m);
        let Some(c) = self.calls.get_mut(&id) else { return };
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
            let ours = |u: &str| party(u).is_some_and(|p| self.settings.domains.iter().any(|d| d.eq_ignore_ascii_case(&p.host)));
            match follow {
                Some(u) if c.redirects < MAX_REDIRECTS && !ours(&u) => {
                    c.redirects += 1;
                    let template = Target {
                        priority: 0,
                        weight: 1,
                        enabled: true,
                        transport: plugin_transport(SipTransport::of_uri(&u).unwrap_or(SipTransport::Udp)),
                        uri: u,
                        health: trunkline_plugin_host::types::Health::Unknown,
                        group: None,
                    };
                    c.queue.insert(0, template);
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

    fn leg_failed(&mut self, now: Instant, id: u64, status: u16, reason_phrase: &str, m: Option<Message>) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        if m.is_none() {
            if let Some(last) = c.route.last_mut() {
                last.push_str(&format!(" -> {status} {reason_phrase}"));
            }
        }
        c.leg = None;
        c.last_failure = m.as_ref().and_then(response_from).or(Some(trunkline_plugin_host::types::Response {
            status,
            reason: reason_phrase.into(),
            headers: vec![],
            contacts: vec![],
        }));
        // Inside a TwiML <Dial>, any failure moves on to the next target.
        if routing::fails_over(status) || c.twiml.is_some() {
            self.try_next(now, id);
        } else {
            self.finish(now, id, status, reason_phrase, Outcome::Failed);
        }
    }

    /// Every target failed: go on with the TwiML in progress, or ask the
    /// plugins (`on-failure`) and the trunk for a disaster-recovery plan.
    fn all_failed(&mut self, now: Instant, id: u64) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        if c.twiml.is_some() {
            return self.run_twiml(now, id);
        }
        let last = c.last_failure.clone();
        let fallback = c.session.on_failure(&c.call, last.as_ref());
        let dr = self.settings.trunks[c.trunk].disaster_recovery_url.clone();
        let (code, why) = last.map(|l| (l.status, l.reason)).unwrap_or((480, "Temporarily Unavailable".into()));
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

    fn answered(&mut self, now: Instant, id: u64, ok: Message) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        if c.phase == Phase::Answered {
            // A retransmitted 2xx: our ACK was lost; send it again.
            if let (Some(d), Some(to)) = (&c.b_dialog, c.b_peer()) {
                let ack = d.ack(1, &build::via(&self.locals, to.transport), &self.ids.next());
                self.layer.send_stateless(to, &ack);
            }
            return;
        }
        let Some(leg) = c.leg.as_ref() else { return };
        let b_dialog = Dialog::as_uac(&leg.invite, &ok);
        let a_dialog = Dialog::as_uas(&c.a_invite, &c.a_tag);
        let resp = relay_response(&c.a_invite, 200, &reason_of(&ok), &c.a_tag, (&self.locals, c.a_from.transport), Some(&ok));
        self.layer.send_response(now, &c.a_tx.clone(), resp.clone());
        c.a_ok = Some(resp);
        if c.a_from.transport == SipTransport::Udp {
            let t1 = Timers::default().t1;
            self.timers.push(Reverse((now + t1, id, Timer::OkRetransmit(2 * t1.as_millis() as u64))));
        }
        if let (Err(e), _) | (_, Err(e)) = (&b_dialog, &a_dialog) {
            tracing::warn!(call_id = %c.call.call_id, "answered call without a usable dialog: {e}");
        }
        c.b_dialog = b_dialog.ok();
        c.a_dialog = a_dialog.ok();
        if let (Some(d), Some(to)) = (&c.b_dialog, c.b_peer()) {
            let ack = d.ack(1, &build::via(&self.locals, to.transport), &self.ids.next());
            self.layer.send_stateless(to, &ack);
        }
        c.phase = Phase::Answered;
        c.answered = Some(now);
        c.session.end_routing_phase();
    }

    fn on_bye(&mut self, now: Instant, key: TransactionKey, m: Message) {
        let call_id = m.header("Call-ID").unwrap_or_default().to_owned();
        let (id, from_caller) = match (self.by_a_call_id.get(&call_id), self.by_b_call_id.get(&call_id)) {
            (Some(&id), _) => (id, true),
            (None, Some(&id)) => (id, false),
            _ => return self.respond(now, &key, &m, 481, "Call/Transaction Does Not Exist"),
        };
        self.layer.send_response(now, &key, response_to(&m, 200, "OK"));
        let branch = self.ids.next();
        let Some(c) = self.calls.get_mut(&id) else { return };
        let to = if from_caller { c.b_peer() } else { Some(c.a_peer()) };
        let other = if from_caller { c.b_dialog.as_mut() } else { c.a_dialog.as_mut() };
        if let (Some(d), Some(to)) = (other, to) {
            let bye = d.request("BYE", &build::via(&self.locals, to.transport), &branch);
            self.layer.send_request(now, to, bye);
        }
        let by = if from_caller { HangupBy::Caller } else { HangupBy::Callee };
        self.end_answered(now, id, by);
    }

    fn on_cancel(&mut self, now: Instant, key: TransactionKey, m: Message) {
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
            if leg.responded {
                let cancel = cancel_for(&leg.invite);
                self.layer.send_request(now, leg.to, cancel);
            } else {
                self.layer.abandon(&leg.tx);
            }
            if let Some(last) = c.route.last_mut() {
                last.push_str(" -> cancelled");
            }
        }
        self.finish(now, id, 487, "Request Terminated", Outcome::Cancelled);
    }

    /// Send the caller the final response, tell the plugins, report, forget.
    fn finish(&mut self, now: Instant, id: u64, code: u16, reason_phrase: &str, outcome: Outcome) {
        let Some(c) = self.calls.get(&id) else { return };
        if c.phase == Phase::Routing {
            let resp = relay_response(&c.a_invite, code, reason_phrase, &c.a_tag, (&self.locals, c.a_from.transport), None);
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

    fn end_answered(&mut self, now: Instant, id: u64, by: HangupBy) {
        let Some(c) = self.calls.get(&id) else { return };
        let target = c.leg.as_ref().map(|l| l.uri.clone()).unwrap_or_default();
        let talk = c.answered.map(|a| now.saturating_duration_since(a)).unwrap_or_default();
        let who = match by {
            HangupBy::Caller => "caller",
            HangupBy::Callee => "callee",
            _ => "router",
        };
        let what = format!("answered by {target}, {} ms, hung up by the {who}", talk.as_millis());
        self.close(now, id, Outcome::Answered, 200, by, what);
    }

    fn close(&mut self, now: Instant, id: u64, outcome: Outcome, status: u16, by: HangupBy, what: String) {
        self.end_relays(now, id);
        let Some(c) = self.calls.remove(&id) else { return };
        self.by_a_call_id.remove(&c.call.call_id);
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
        self.report(&c.call, c.trunk, c.route, &trace, what);
    }

    /// ACK and BYE a 2xx to an INVITE we no longer want (a target we
    /// failed over from, or a call already over). The response carries all
    /// the dialog needs: From, Call-ID, CSeq, To tag and Contact.
    fn hang_up_stray(&mut self, now: Instant, from: Option<Peer>, ok: Message) {
        let Ok(mut d) = Dialog::as_uac(&ok, &ok) else { return };
        let to = match from {
            Some(p) if p.transport != SipTransport::Udp => p,
            _ => match uri_peer(&d.remote_target).or(from) {
                Some(p) => p,
                None => return,
            },
        };
        let via = build::via(&self.locals, to.transport);
        let ack = d.ack(1, &via, &self.ids.next());
        self.layer.send_stateless(to, &ack);
        let bye = d.request("BYE", &via, &self.ids.next());
        self.layer.send_request(now, to, bye);
        tracing::info!(call_id = ok.header("Call-ID").unwrap_or_default(), "late 2xx from an abandoned target: ACKed and hung up");
    }
}

/// The plugin API's name for a transport.
fn plugin_transport(t: SipTransport) -> Transport {
    match t {
        SipTransport::Udp => Transport::Udp,
        SipTransport::Tcp => Transport::Tcp,
        SipTransport::Tls => Transport::Tls,
    }
}

fn reason_of(m: &Message) -> String {
    match &m.start {
        StartLine::Response { reason, .. } => reason.clone(),
        StartLine::Request { .. } => String::new(),
    }
}

/// CANCEL for an INVITE we sent (RFC 3261 §9.1): same Request-URI, Call-ID,
/// From, To, CSeq number and top Via.
fn cancel_for(invite: &Message) -> Message {
    let uri = match &invite.start {
        StartLine::Request { uri, .. } => uri.clone(),
        StartLine::Response { .. } => String::new(),
    };
    let mut headers: Vec<SipHeader> = Vec::new();
    for name in ["Via", "From", "To", "Call-ID"] {
        if let Some(v) = invite.header(name) {
            headers.push(SipHeader { name: name.into(), value: v.to_owned() });
        }
    }
    headers.push(SipHeader { name: "Max-Forwards".into(), value: "70".into() });
    headers.push(SipHeader { name: "CSeq".into(), value: "1 CANCEL".into() });
    Message { start: StartLine::Request { method: "CANCEL".into(), uri }, headers, body: vec![] }
}
