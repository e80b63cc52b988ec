//! A new INVITE becomes a call: which trunk and direction (termination
//! by domain after `termination`'s admission, origination by number),
//! `on-invite` and `select-uri`, then the first attempt (`attempts`). Calls
//! that end before routing are reported here too.

use std::time::Instant;

use trunkline_plugin_host::chain::InviteOutcome;
use trunkline_plugin_host::types::{Direction, HangupBy, Outcome, Summary};
use trunkline_sip_core::header::{list, CSeq};
use trunkline_sip_core::message::{Header as SipHeader, Message, StartLine};
use trunkline_sip_core::reliable::{self, Provisionals};
use trunkline_sip_core::transaction::{response_to, Timers, TransactionKey};
use trunkline_sip_core::{Peer, Transport};

use super::build::relay_response;
use super::call::{self, CallReport, CallState, Phase};
use super::{termination, Engine};
use crate::routing;
use crate::sipcall::{call_from_invite, party, CallOrigin};

impl Engine {
    pub(super) fn new_call(&mut self, now: Instant, key: TransactionKey, from: Peer, m: Message) {
        let max_forwards = match m.header("Max-Forwards").map(str::parse::<u32>) {
            None => 70,
            Some(Ok(0)) => return self.respond(now, &key, &m, 483, "Too Many Hops"),
            Some(Ok(n)) => n.min(255),
            Some(Err(_)) => return self.respond(now, &key, &m, 400, "Bad Request (Max-Forwards)"),
        };
        // RFC 3261 §8.2.2.3: of the extensions a caller may require we
        // support 100rel (RFC 3262) only.
        let unsupported: Vec<&str> = m
            .headers_named("Require")
            .flat_map(list)
            .filter(|t| !t.eq_ignore_ascii_case(reliable::OPTION_TAG))
            .collect();
        if !unsupported.is_empty() {
            let mut r = response_to(&m, 420, "Bad Extension");
            r.headers.push(SipHeader { name: "Unsupported".into(), value: unsupported.join(", ") });
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
                .and_then(|u| settings.numbers.trunk_of(&u))
                .map(|t| (t, Direction::Origination, routing::candidates(&settings.trunks[t].origination))),
        };
        let Some((trunk_idx, direction, candidates)) = route else {
            self.keep_not_found(now, from, &m);
            return self.respond(now, &key, &m, 404, "Not Found");
        };
        // Secure trunking: the PBX sends its calls over TLS.
        if settings.trunks[trunk_idx].secure && direction == Direction::Termination && from.transport != Transport::Tls
        {
            tracing::warn!(%from, trunk = %settings.trunks[trunk_idx].name, "secure trunk: INVITE not over TLS refused (403)");
            return self.respond(now, &key, &m, 403, "Forbidden (secure trunk: SIP must arrive over TLS)");
        }
        let pbx_side = match direction {
            Direction::Termination => trunkline_media_core::session::Side::Caller,
            _ => trunkline_media_core::session::Side::Callee,
        };
        // Plugins are about to run: tell the caller we are on it.
        self.respond(now, &key, &m, 100, "Trying");
        let mut m = m;
        let diversions_removed = match direction {
            Direction::Termination => super::diversion::check_termination(&settings, trunk_idx, &mut m),
            Direction::Origination => 0,
        };
        if diversions_removed > 0 {
            tracing::info!(trunk = %settings.trunks[trunk_idx].name, "removed {diversions_removed} Diversion header(s) naming our domain with a number the account neither owns nor verified");
        }
        let trunk = &settings.trunks[trunk_idx];
        let origin = CallOrigin {
            direction,
            account_id: &trunk.account,
            trunk_id: &trunk.id,
            trunk_name: &trunk.name,
            source_address: from.addr.to_string(),
            transport: routing::plugin_transport(from.transport),
            media: crate::sipcall::media_facts(trunk, &m.body),
        };
        let (mut call, mut request) = match call_from_invite(&m, &origin) {
            Ok(v) => v,
            Err(e) => return self.respond(now, &key, &m, 400, &format!("Bad Request ({e})")),
        };
        let mut session = self.runtime.start_call(&trunk.chain, &trunk.account, &call.call_id.clone());
        let a_tag = self.ids.next();
        let rejected = match session.on_invite(&mut call, &mut request) {
            InviteOutcome::Continue => None,
            InviteOutcome::Reject(r) => Some(r),
            InviteOutcome::Redirect(contacts) => {
                let mut resp =
                    relay_response(&m, 302, "Moved Temporarily", &a_tag, (&self.locals, from.transport), None);
                resp.headers.retain(|h| !h.name.eq_ignore_ascii_case("Contact"));
                for c in &contacts {
                    resp.headers.push(SipHeader { name: "Contact".into(), value: format!("<{c}>") });
                }
                self.layer.send_response(now, &key, resp);
                return self.report_unrouted(
                    now,
                    (session, from),
                    &call,
                    trunk_idx,
                    302,
                    &format!("redirected to {}", contacts.join(", ")),
                );
            }
        };
        // A reject from `on-invite` or `select-uri` ends the call the same way.
        let queue = match rejected.map_or_else(|| session.select_uri(&call, candidates), Err) {
            Ok(sel) if sel.ordered => sel.targets,
            Ok(sel) => {
                let ids = &mut self.ids;
                routing::order(&sel.targets, || ids.rand01())
            }
            Err(r) => {
                let resp = relay_response(&m, r.code, &r.reason, &a_tag, (&self.locals, from.transport), None);
                self.layer.send_response(now, &key, resp);
                return self.report_unrouted(
                    now,
                    (session, from),
                    &call,
                    trunk_idx,
                    r.code,
                    &format!("rejected {} {}", r.code, r.reason),
                );
            }
        };
        // RFC 3262 §3: RSeq numbers start at random below 2**31.
        let a_reliable = reliable::supported(&m).then(|| {
            let first = (self.ids.rand01() * f64::from(1u32 << 30)) as u32 + 1;
            let seq = m.header("CSeq").and_then(CSeq::parse).map_or(0, |c| c.seq);
            Provisionals::new(seq, first, from.transport.reliability(), Timers::default())
        });
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
                settings: settings.clone(),
                trunk: trunk_idx,
                dialed,
                max_forwards: max_forwards - 1,
                queue: queue.into_iter().map(call::Queued::from).collect(),
                leg: None,
                attempts: 0,
                redirects: 0,
                last_failure: None,
                phase: Phase::Routing,
                a_ok: None,
                a_ok_sent: None,
                a_acked: false,
                a_reliable,
                a_reliable_armed: None,
                a_early_sdp: None,
                a_dialog: None,
                b_dialog: None,
                b_ack: None,
                b_ack_waits: false,
                b_call_ids: Vec::new(),
                route: if diversions_removed > 0 {
                    vec![format!(
                        "{diversions_removed} Diversion header(s) naming our domain with a number the account neither owns nor verified: removed"
                    )]
                } else {
                    Vec::new()
                },
                started: now,
                first_ring: None,
                answered: None,
                twiml: None,
                transfer: None,
                media: super::media::session_for(&settings, trunk_idx, pbx_side),
                record: None,
                targets: Vec::new(),
                trace: crate::records::RawTrace::default(),
            },
        );
        self.try_next(now, id);
    }

    /// A call that never reached routing (rejected or redirected by a plugin).
    pub(super) fn report_unrouted(
        &mut self,
        now: Instant,
        (session, from): (trunkline_plugin_host::CallSession, Peer),
        call: &trunkline_plugin_host::types::Call,
        trunk: usize,
        status: u16,
        outcome: &str,
    ) {
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
        self.keep_unrouted(now, (call, trunk, from), &trace, (&summary, outcome));
        let name = self.settings.trunks[trunk].name.clone();
        self.report(call, name, Vec::new(), &trace, (outcome.to_owned(), summary), (0, Vec::new()));
    }

    pub(super) fn report(
        &mut self,
        call: &trunkline_plugin_host::types::Call,
        trunk: String,
        route: Vec<String>,
        trace: &[trunkline_plugin_host::HookTrace],
        (outcome, summary): (String, Summary),
        (id, media): (u64, Vec<String>),
    ) {
        self.reports.push_back(CallReport {
            call: id,
            media,
            summary,
            direction: call.direction,
            hook_times: trace.iter().map(|t| (t.plugin.clone(), t.hook, t.micros)).collect(),
            call_id: call.call_id.clone(),
            trunk,
            from: call.from.user.clone().unwrap_or_else(|| "anonymous".into()),
            to: call.to.user.clone().unwrap_or_default(),
            route,
            hooks: trace
                .iter()
                .map(|t| format!("{} {} {}: {} ({} us)", t.plugin, t.version, t.hook, t.outcome, t.micros))
                .collect(),
            outcome,
        });
    }
}
