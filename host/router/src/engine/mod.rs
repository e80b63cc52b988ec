//! The B2BUA call engine, sans-IO: messages and time in, messages, TwiML
//! fetches and call reports out. It owns the transaction layer, runs each
//! call's plugin chain, and routes with the reference algorithm
//! (`crate::routing`).
//!
//! Handlers: [`Engine::handle_message`] (a datagram or a stream frame),
//! [`Engine::handle_transport_error`], [`Engine::handle_timeout`],
//! [`Engine::handle_fetched`], [`Engine::handle_resolved`]. Polls:
//! [`Engine::poll_transmit`], [`Engine::poll_timeout`],
//! [`Engine::poll_fetch`], [`Engine::poll_resolve`], [`Engine::poll_report`].
//!
//! Here: dispatch of requests, OPTIONS, timers and the handlers above.
//! New calls (origination by number, termination by domain after
//! `termination`'s admission) are in `new_call`; attempts with failover on
//! silence and on failover responses, ring timeout (Timer C, CANCEL), 3xx
//! through `on-redirect` and `on-failure` in `attempts`; disaster-recovery
//! TwiML in `twiml`; the caller's 2xx resent until its ACK, BYE from either
//! side and CANCEL before answer in `teardown`; in-dialog requests in
//! `in_dialog`; where every request inside a dialog goes (its route set's
//! first hop) in `hop`; reliable provisional responses (100rel) on each
//! leg in `reliable`; call transfer (REFER) in `transfer`; per-source rate
//! limits in `flood`; target host names are resolved through the driver
//! (`dns`); session descriptions are rewritten for media anchoring and
//! the relay told what to do in `media`.

mod attempts;
mod auth_bans;
mod build;
mod call;
pub mod diversion;
mod dns;
mod flood;
mod health;
mod hop;
mod in_dialog;
mod insight;
mod media;
mod new_call;
mod play;
mod reliable;
mod teardown;
mod termination;
#[cfg(test)]
mod tests;
mod transfer;
mod twiml;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use trunkline_plugin_host::Runtime;
use trunkline_sip_core::message::{Header as SipHeader, Message, StartLine};
use trunkline_sip_core::transaction::{response_to, ClientEvent, Layer, LayerEvent, Timers, TransactionKey, Transmit};
use trunkline_sip_core::Peer;

pub use auth_bans::BanRule;
pub(crate) use build::uri_destination;
use build::Ids;
pub use build::Locals;
pub use call::CallReport;
use call::{CallState, Phase};
pub use dns::{Answer, Question, SrvRecord};
pub use flood::Rate;
pub use health::TargetHealth;
pub use media::MediaCommand;
pub use twiml::{FetchKind, FetchRequest};

use crate::config::Settings;

/// Methods we answer or relay (the Allow header of OPTIONS and 405/501).
pub(crate) const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, MESSAGE, NOTIFY, SUBSCRIBE, PRACK, REFER";

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
    /// The answered call reached its trunk's `max_call_duration_secs`.
    MaxDuration,
    /// A reliable 1xx to the caller is due to be repeated (or given up).
    Reliable,
    /// A finished call's record has lingered long enough (`insight`).
    RecordDue,
    /// Probe N's next OPTIONS ping (`health`; the probes' generation).
    Ping(u32),
    /// Probe N's ping number M got no answer in time.
    PingTimeout(u32, u64),
}

/// A map keyed by the engine's own call numbers: a fast hash (foldhash).
/// Maps keyed by what peers send (Call-IDs) keep the standard SipHash,
/// whose keys an attacker cannot learn from the router's behaviour.
type ByCall<V> = HashMap<u64, V, foldhash::fast::RandomState>;

/// The engine. See the module docs.
pub struct Engine {
    layer: Layer,
    settings: Arc<Settings>,
    runtime: Runtime,
    locals: Locals,
    ids: Ids,
    calls: ByCall<CallState>,
    next_call: u64,
    by_a_call_id: HashMap<String, u64>,
    by_b_call_id: HashMap<String, u64>,
    by_b_tx: HashMap<TransactionKey, (u64, u32)>,
    /// Engine timers: (deadline, call, which).
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    reports: VecDeque<CallReport>,
    /// TwiML documents the driver must fetch.
    fetches: VecDeque<FetchRequest>,
    /// Target host names: cache, and names the driver must look up.
    dns: dns::Dns,
    /// In-dialog requests relayed to the other leg, by client transaction.
    relays: HashMap<TransactionKey, in_dialog::Relay>,
    /// The INVITEs of call transfers (to the target, and to the caller).
    transfer_txs: HashMap<TransactionKey, transfer::TransferTx>,
    /// In-dialog requests waiting for their next hop's name to resolve.
    held: hop::Held,
    /// Mints and checks digest nonces (termination authentication).
    nonces: trunkline_sip_core::digest::NonceKey,
    /// Nonce counts seen, against replays.
    replays: trunkline_sip_core::digest::ReplayGuard,
    /// Per-source limits on out-of-dialog OPTIONS and new INVITEs.
    options_limit: flood::SourceLimiter,
    invite_limit: flood::SourceLimiter,
    /// Draining (SIGTERM, the API): new calls and out-of-dialog OPTIONS get 503.
    draining: bool,
    /// Sources banned after failed digest authentications.
    auth_bans: auth_bans::AuthBans,
    /// The engine's clock origin, the first instant it was given (nonce
    /// timestamps count from it).
    started: Option<Instant>,
    /// RTP/RTCP port pairs of anchored calls.
    ports: Box<dyn trunkline_media_core::ports::PortSource + Send>,
    /// Instructions for the media relay.
    media_out: VecDeque<MediaCommand>,
    /// Call records: trace caps (`None`: records off), records lingering
    /// after their call (by call number, and by each of their Call-IDs),
    /// and records ready for the driver.
    trace_caps: Option<crate::records::trace::TraceCaps>,
    /// The last instant a handler was given (the time of what it sends).
    last_now: Option<Instant>,
    /// The Call-ID of the message being traced (a buffer kept between messages).
    trace_call_id: String,
    /// The calls of the last messages traced, by Call-ID (insight::RecentCalls).
    trace_recent: insight::RecentCalls,
    /// Buffers the writer gave back (traces, encoded records), for new calls.
    buffer_pool: insight::BufferPool,
    pending_records: ByCall<insight::Lingering>,
    lingering: HashMap<String, u64>,
    /// When the records lingering now fall due (insight::RECORD_TICK).
    record_tick: Option<Instant>,
    records_out: VecDeque<crate::records::Sealed>,
    /// OPTIONS pings of targets (`health`).
    health: health::Probes,
    counts: EngineCounts,
}

/// What the engine counted since it started (for the metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCounts {
    /// SIP messages sent again (retransmission timers, answers to retransmitted requests).
    pub retransmissions: u64,
    /// Client transactions that got no final response, server INVITE transactions whose ACK never came.
    pub timeouts: u64,
    /// Out-of-dialog OPTIONS and new INVITEs refused by the per-source limits.
    pub options_refused: u64,
    pub invites_refused: u64,
    /// Target host names that did not resolve.
    pub dns_failures: u64,
}

impl Engine {
    /// An engine answering on `locals` (named in Via and Contact).
    pub fn new(settings: Arc<Settings>, runtime: Runtime, locals: Locals, seed: u64) -> Self {
        let limits = settings.limits;
        let ports = media::default_ports(&settings);
        let trace_caps = settings.records.path.as_ref().map(|_| settings.records.trace);
        Engine {
            layer: Layer::new(Timers::default()),
            settings,
            runtime,
            locals,
            ids: Ids::new(seed),
            calls: ByCall::default(),
            next_call: 0,
            by_a_call_id: HashMap::new(),
            by_b_call_id: HashMap::new(),
            by_b_tx: HashMap::new(),
            timers: BinaryHeap::new(),
            reports: VecDeque::new(),
            fetches: VecDeque::new(),
            dns: dns::Dns::default(),
            relays: HashMap::new(),
            transfer_txs: HashMap::new(),
            held: hop::Held::default(),
            nonces: trunkline_sip_core::digest::NonceKey::new(&seed.to_le_bytes()),
            replays: trunkline_sip_core::digest::ReplayGuard::new(MAX_NONCES),
            started: None,
            options_limit: flood::SourceLimiter::new(limits.options, limits.source_slots),
            invite_limit: flood::SourceLimiter::new(limits.invites, limits.source_slots),
            draining: false,
            auth_bans: auth_bans::AuthBans::new(limits.auth_bans, limits.source_slots),
            ports,
            media_out: VecDeque::new(),
            trace_caps,
            last_now: None,
            trace_call_id: String::new(),
            trace_recent: insight::RecentCalls::default(),
            buffer_pool: insight::BufferPool::default(),
            pending_records: ByCall::default(),
            lingering: HashMap::new(),
            record_tick: None,
            records_out: VecDeque::new(),
            health: health::Probes::default(),
            counts: EngineCounts::default(),
        }
    }

    /// Sign digest nonces with `secret` (random bytes from the driver;
    /// without it nonces are keyed by the seed, which suits tests only).
    pub fn set_auth_secret(&mut self, secret: &[u8]) {
        self.nonces = trunkline_sip_core::digest::NonceKey::new(secret);
    }

    /// Take `settings` for the calls that arrive from now on (a live
    /// reload, checked by [`crate::config::live_change`]); calls in
    /// progress keep the settings they started with.
    pub fn reconfigure(&mut self, settings: Arc<Settings>) {
        let (old, new) = (self.settings.limits, settings.limits);
        if (old.options, old.invites, old.source_slots) != (new.options, new.invites, new.source_slots) {
            self.options_limit = flood::SourceLimiter::new(new.options, new.source_slots);
            self.invite_limit = flood::SourceLimiter::new(new.invites, new.source_slots);
        }
        if (old.auth_bans, old.source_slots) != (new.auth_bans, new.source_slots) {
            // Bans in force are forgotten with the old rule.
            self.auth_bans = auth_bans::AuthBans::new(new.auth_bans, new.source_slots);
        }
        self.settings = settings;
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
        if self.trace_caps.is_none() {
            self.process(now);
            return;
        }
        // Into its call's trace before what the engine makes of it is sent
        // (sends are traced as they are polled): under the Call-ID the
        // layer parsed, or for a message that did not parse, the one its
        // bytes hold.
        let mut call_id = std::mem::take(&mut self.trace_call_id);
        call_id.clear();
        match self.layer.last_call_id() {
            Some(c) => call_id.push_str(c),
            None => call_id.push_str(crate::records::trace::call_id(bytes).unwrap_or_default()),
        }
        let traced = call_id.is_empty() || self.trace_under(now, &call_id, false, from, bytes);
        self.process(now);
        if !traced {
            // The INVITE of a call that exists now.
            self.trace_under(now, &call_id, false, from, bytes);
        }
        self.trace_call_id = call_id;
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
                Timer::MaxDuration => self.max_duration_reached(now, id),
                Timer::Reliable => self.reliable_timer(now, id),
                Timer::RecordDue => self.record_due(id),
                Timer::Ping(generation) => self.ping_due(now, id as usize, generation),
                Timer::PingTimeout(generation, ping) => self.ping_timed_out(id as usize, generation, ping),
            }
        }
        self.process(now);
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.layer.poll_transmit()?;
        if let (Some(_), Some(call_id)) = (self.trace_caps, t.call_id()) {
            // The trace's clock: the last instant the engine was given.
            let now = self.last_now.unwrap_or_else(Instant::now);
            self.trace_under(now, call_id, true, t.to, &t.bytes);
        }
        Some(t)
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

    /// Next question to look up (a host's A/AAAA records, or a SIP
    /// service's SRV records); answer with [`Engine::handle_resolved`].
    pub fn poll_resolve(&mut self) -> Option<Question> {
        self.dns.poll()
    }

    /// The answer to `question`, or why there is none: calls waiting for
    /// it go on routing (to the target, or past it).
    pub fn handle_resolved(&mut self, now: Instant, question: &Question, result: Result<Answer, String>) {
        if matches!((&result, question), (Err(_), Question::Host(_))) {
            self.counts.dns_failures += 1;
        }
        match (&result, question) {
            (Err(why), Question::Host(name)) => tracing::warn!(%name, "target host name does not resolve: {why}"),
            (Err(why), Question::Srv(name)) => tracing::debug!(%name, "no SRV records: {why}"),
            _ => {}
        }
        for id in self.dns.answer(now, question, result) {
            if id & health::PROBE_WAITER != 0 && id & hop::HELD_WAITER == 0 {
                continue; // a ping: the next one finds the answer cached
            }
            if id & hop::HELD_WAITER != 0 {
                self.release_held(now, id);
                continue;
            }
            // A call still routing and between attempts, or a transfer
            // whose target is named by host, was waiting.
            match self.calls.get(&id) {
                Some(c) if c.phase == Phase::Routing && c.leg.is_none() => self.try_next(now, id),
                Some(c) if c.transfer.is_some() => self.call_transfer_target(now, id),
                _ => {}
            }
        }
        self.process(now);
    }

    fn process(&mut self, now: Instant) {
        self.last_now = Some(now);
        while let Some(ev) = self.layer.poll_event() {
            if matches!(
                ev,
                LayerEvent::Client { event: ClientEvent::Timeout, .. }
                    | LayerEvent::Server { event: trunkline_sip_core::transaction::ServerEvent::AckTimeout, .. }
            ) {
                self.counts.timeouts += 1;
            }
            match ev {
                LayerEvent::Request { key: Some(key), from, message } => self.on_request(now, key, from, message),
                LayerEvent::Request { key: None, message, .. } => self.on_ack(now, message),
                LayerEvent::Client { key, event } => self.on_client_event(now, key, event),
                LayerEvent::Server { key, event } => tracing::debug!(?key, ?event, "server transaction ended"),
                LayerEvent::Malformed { from, error } => tracing::warn!(%from, "malformed SIP message: {error}"),
                LayerEvent::StrayResponse { from, message } => self.on_stray_response(now, from, message),
            }
        }
    }

    fn respond(&mut self, now: Instant, key: &TransactionKey, request: &Message, code: u16, reason_phrase: &str) {
        let r = self.tagged_response(request, code, reason_phrase);
        self.layer.send_response(now, key, r);
    }

    /// Our response to `request`, with a To tag unless it is a 100 or the
    /// request had one.
    fn tagged_response(&mut self, request: &Message, code: u16, reason_phrase: &str) -> Message {
        let mut r = response_to(request, code, reason_phrase);
        if code > 100 {
            for h in r.headers.iter_mut().filter(|h| h.name.eq_ignore_ascii_case("To") && !h.value.contains(";tag=")) {
                h.value = format!("{};tag={}", h.value, self.ids.next());
            }
        }
        r
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
            ("INVITE" | "OPTIONS", _) if self.draining => {
                // Upstreams fail over to another router (OPTIONS pings see it too).
                let mut r = response_to(&m, 503, "Service Unavailable (draining)");
                r.headers.push(SipHeader { name: "Retry-After".into(), value: DRAIN_RETRY_AFTER.into() });
                self.layer.send_response(now, &key, r);
            }
            ("INVITE", _) => match self.invite_limit.check(now, from.addr.ip()) {
                flood::Verdict::Allow => self.new_call(now, key, from, m),
                flood::Verdict::Refuse { first } => {
                    self.counts.invites_refused += 1;
                    if first {
                        tracing::warn!(%from, "INVITE rate limit exceeded (limits.invites_per_second): answering 503 until it slows down");
                    }
                    let retry = self.invite_limit.retry_after_secs();
                    self.refuse_flood(now, &key, &m, retry);
                }
            },
            ("OPTIONS", _) if options_verdict != flood::Verdict::Allow => {
                self.counts.options_refused += 1;
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
                r.headers.push(SipHeader { name: "Supported".into(), value: "100rel".into() });
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

    /// Stop taking calls: new INVITEs and out-of-dialog OPTIONS get 503
    /// with Retry-After; calls in progress go on.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// What the engine counted so far.
    pub fn counts(&self) -> EngineCounts {
        EngineCounts { retransmissions: self.layer.retransmissions(), ..self.counts }
    }

    /// Digest brute force: (bans started, requests dropped from banned sources) so far.
    pub fn auth_ban_counts(&self) -> (u64, u64) {
        (self.auth_bans.bans_started, self.auth_bans.refused)
    }

    /// Sources banned now, with the seconds left.
    pub fn banned_sources(&self, now: Instant) -> Vec<(std::net::IpAddr, u64)> {
        self.auth_bans.list(now)
    }

    /// Lift the ban on `ip`; true if it was banned.
    pub fn lift_ban(&mut self, now: Instant, ip: std::net::IpAddr) -> bool {
        let lifted = self.auth_bans.lift(now, ip);
        if lifted {
            tracing::info!(%ip, "digest ban lifted");
        }
        lifted
    }

    /// The calls in progress, for the admin API (no media address, no key).
    pub fn active_calls(&self, now: Instant) -> Vec<ActiveCall> {
        let mut calls: Vec<ActiveCall> = self
            .calls
            .values()
            .map(|c| ActiveCall {
                call_id: c.call.call_id.clone(),
                trunk: c.settings.trunks[c.trunk].name.clone(),
                direction: match c.call.direction {
                    trunkline_plugin_host::types::Direction::Origination => "origination",
                    trunkline_plugin_host::types::Direction::Termination => "termination",
                },
                from: c.call.from.user.clone().unwrap_or_else(|| "anonymous".into()),
                to: c.call.to.user.clone().unwrap_or_default(),
                answered: c.phase == Phase::Answered,
                target: c.leg.as_ref().map(|l| l.uri.clone()),
                seconds: now.saturating_duration_since(c.started).as_secs(),
            })
            .collect();
        calls.sort_by(|a, b| b.seconds.cmp(&a.seconds).then_with(|| a.call_id.cmp(&b.call_id)));
        calls
    }

    /// Whether [`Engine::drain`] was called.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// End every call now (the drain's time is up): BYE to both parties of
    /// answered calls, CANCEL to the target and 503 to the caller of
    /// ringing ones.
    pub fn end_all(&mut self, now: Instant) {
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            let Some(c) = self.calls.get_mut(&id) else { continue };
            c.route.push("router shutting down (sip.drain_timeout_secs): call ended".into());
            if c.phase == Phase::Answered {
                self.hang_up_both(now, id);
            } else {
                if let Some(leg) = c.leg.take() {
                    self.withdraw(now, leg);
                }
                self.finish(
                    now,
                    id,
                    503,
                    "Service Unavailable (router shutting down)",
                    trunkline_plugin_host::types::Outcome::Failed,
                );
            }
        }
        self.process(now);
    }

    fn refuse_flood(&mut self, now: Instant, key: &TransactionKey, m: &Message, retry_after: u64) {
        let mut r = response_to(m, 503, "Service Unavailable (rate limited)");
        r.headers.push(SipHeader { name: "Retry-After".into(), value: retry_after.to_string() });
        self.layer.send_response(now, key, r);
    }
}

/// A call in progress, as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveCall {
    pub call_id: String,
    pub trunk: String,
    pub direction: &'static str,
    pub from: String,
    pub to: String,
    /// Answered (else ringing, or executing disaster-recovery TwiML).
    pub answered: bool,
    /// The target being tried, or that answered.
    pub target: Option<String>,
    /// Since the INVITE arrived.
    pub seconds: u64,
}

/// Retry-After (seconds) of the 503 a draining router answers.
const DRAIN_RETRY_AFTER: &str = "30";

fn reason_of(m: &Message) -> String {
    match &m.start {
        StartLine::Response { reason, .. } => reason.clone(),
        StartLine::Request { .. } => String::new(),
    }
}
