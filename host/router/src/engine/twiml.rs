//! Disaster recovery: when no origination URI took a call, fetch TwiML
//! (through the driver: the engine stays sans-IO) and execute it.
//!
//! The engine asks for a document with [`Engine::poll_fetch`]; the driver
//! POSTs and hands the answer to [`Engine::handle_fetched`]. `<Dial>` targets
//! go through the same leg machinery as origination URIs (pre-dial, failover
//! on silence, ring timeout = the Dial's `timeout`); when they all fail,
//! execution goes on with the next verb. The end of the document, or
//! `<Hangup/>`, ends the unanswered call.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use trunkline_plugin_host::types::Outcome;

use super::{Engine, Timer};
use crate::routing;
use crate::twiml::fetch::HttpUrl;
use crate::twiml::{self, DialTarget, Verb};

/// A TwiML document the driver must fetch for call `token`.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// Give it back to [`Engine::handle_fetched`].
    pub token: u64,
    pub url: HttpUrl,
    /// Form parameters (CallSid, AccountSid, From, To, Direction, CallStatus...).
    pub params: Vec<(String, String)>,
    pub timeout: Duration,
    /// A TwiML document (POST the parameters) or a `<Play>`ed file (GET);
    /// the answer goes to [`Engine::handle_fetched`] or
    /// [`Engine::handle_audio_fetched`].
    pub kind: FetchKind,
}

/// What a [`FetchRequest`] fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchKind {
    /// A TwiML document: POST the call's parameters.
    Twiml,
    /// A WAV file for `<Play>`: GET it.
    Audio,
}

/// A call's TwiML execution.
#[derive(Debug, Default)]
pub(crate) struct TwimlRun {
    pub(crate) verbs: VecDeque<Verb>,
    /// Documents fetched so far (bounded by `max_fetches`).
    pub(crate) fetches: u32,
    /// URL of the current document (relative `<Redirect>`s resolve against it).
    pub(crate) base: Option<HttpUrl>,
    /// Ring limit of the `<Dial>` in progress.
    pub(crate) dial_timeout: Option<Duration>,
    /// Bumped by each verb, so a stale pause timer is ignored.
    pub(crate) step: u64,
    /// A `<Play>` waiting for its file.
    pub(crate) audio: Option<super::play::PendingPlay>,
    /// The router answered the caller itself (a `<Play>`).
    pub(crate) here: Option<super::play::Here>,
}

impl Engine {
    /// Next TwiML document to fetch.
    pub fn poll_fetch(&mut self) -> Option<FetchRequest> {
        self.fetches.pop_front()
    }

    /// The driver fetched (or failed to fetch) the document for `token`.
    pub fn handle_fetched(&mut self, now: Instant, token: u64, result: Result<String, String>) {
        let Some(c) = self.calls.get_mut(&token) else { return }; // the call ended meanwhile
        let Some(run) = c.twiml.as_mut() else { return };
        let url = run.base.as_ref().map(ToString::to_string).unwrap_or_default();
        let verbs = match result
            .map_err(|e| format!("fetch failed: {e}"))
            .and_then(|doc| twiml::parse(&doc).map_err(|e| format!("bad TwiML: {e}")))
        {
            Ok(v) => v,
            Err(why) => {
                tracing::warn!(call_id = %c.call.call_id, %url, "disaster recovery: {why}");
                c.route.push(format!("disaster recovery: {url}: {why}"));
                return self.twiml_end(now, token, 503, "Service Unavailable", Outcome::Failed);
            }
        };
        c.route.push(format!("disaster recovery: {url}: {} verb(s)", verbs.len()));
        run.verbs = verbs.into();
        self.run_twiml(now, token);
    }

    /// Start disaster recovery with the document at `url`.
    pub(super) fn start_twiml_fetch(&mut self, now: Instant, id: u64, url: &str) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        let max = c.settings.disaster_recovery.max_fetches;
        let timeout = c.settings.disaster_recovery.fetch_timeout;
        let run = c.twiml.get_or_insert_with(TwimlRun::default);
        let parsed = match &run.base {
            Some(base) => base.join(url),
            None => HttpUrl::parse(url),
        };
        let checked = match parsed {
            Ok(_) if run.fetches >= max => {
                Err(format!("more than {max} documents fetched (disaster_recovery.max_fetches)"))
            }
            other => other,
        };
        let url = match checked {
            Ok(u) => u,
            Err(why) => {
                c.route.push(format!("disaster recovery: {url}: {why}"));
                return self.twiml_end(now, id, 503, "Service Unavailable", Outcome::Failed);
            }
        };
        run.fetches += 1;
        run.base = Some(url.clone());
        run.verbs.clear();
        run.step += 1;
        let call = &c.call;
        let user = |p: &trunkline_plugin_host::types::Party| p.user.clone().unwrap_or_default();
        let params = vec![
            ("CallSid".to_owned(), call_sid(&call.call_id)),
            ("AccountSid".to_owned(), call.account_id.clone()),
            ("From".to_owned(), user(&call.from)),
            ("To".to_owned(), user(&call.to)),
            ("Called".to_owned(), user(&call.to)),
            ("Caller".to_owned(), user(&call.from)),
            ("Direction".to_owned(), "inbound".to_owned()),
            ("CallStatus".to_owned(), "ringing".to_owned()),
            ("SipCallId".to_owned(), call.call_id.clone()),
        ];
        c.route.push(format!("disaster recovery: POST {url}"));
        self.fetches.push_back(FetchRequest { token: id, url, params, timeout, kind: FetchKind::Twiml });
    }

    /// The TwiML ends the call: a final response to a ringing caller; BYE
    /// to a caller the router answered itself.
    fn twiml_end(&mut self, now: Instant, id: u64, code: u16, why: &str, outcome: Outcome) {
        if self.calls.get(&id).is_some_and(|c| c.phase == super::call::Phase::Answered) {
            self.hang_up(now, id, super::in_dialog::Side::Caller);
            return self.end_answered(now, id, trunkline_plugin_host::types::HangupBy::Router);
        }
        self.finish(now, id, code, why, outcome)
    }

    /// Execute the call's next verbs until one waits (a Dial, a Pause, a
    /// fetch) or ends the call.
    pub(super) fn run_twiml(&mut self, now: Instant, id: u64) {
        loop {
            let Some(c) = self.calls.get_mut(&id) else { return };
            let number_gateways = number_gateways(&c.settings, c.trunk);
            let Some(run) = c.twiml.as_mut() else { return };
            run.step += 1;
            run.dial_timeout = None;
            let Some(verb) = run.verbs.pop_front() else {
                // The document is over and nothing answered: end the call.
                let (code, why) = c
                    .last_failure
                    .as_ref()
                    .map(|l| (l.status, l.reason.clone()))
                    .unwrap_or((480, "Temporarily Unavailable".into()));
                c.route.push("disaster recovery: end of TwiML".into());
                return self.twiml_end(now, id, code, &why, Outcome::Failed);
            };
            let answered = c.phase == super::call::Phase::Answered;
            match verb {
                Verb::Dial(_) if answered => {
                    c.route.push("TwiML <Dial> after the router answered the call: not supported, skipped".into());
                }
                Verb::Dial(d) => {
                    let mut queue = Vec::new();
                    for t in d.targets {
                        let uris = match t {
                            DialTarget::Sip(u) => vec![u],
                            DialTarget::Number(n) => {
                                let uris: Vec<String> =
                                    number_gateways.iter().filter_map(|g| number_uri(g, &n)).collect();
                                if uris.is_empty() {
                                    c.route.push(format!(
                                        "TwiML <Dial><Number>{n}: skipped (not E.164, or neither a termination carrier nor disaster_recovery.pstn_gateway)"
                                    ));
                                }
                                uris
                            }
                        };
                        queue.extend(uris.into_iter().map(|uri| routing::target(uri, 0)));
                    }
                    if queue.is_empty() {
                        continue;
                    }
                    run.dial_timeout = Some(Duration::from_secs(d.timeout_secs.into()));
                    c.route.push(format!("TwiML <Dial timeout=\"{}\"> {} target(s)", d.timeout_secs, queue.len()));
                    c.queue = queue.into_iter().map(super::call::Queued::from).collect();
                    return self.try_next(now, id);
                }
                Verb::Reject { busy: true } => return self.twiml_end(now, id, 486, "Busy Here", Outcome::Rejected),
                Verb::Reject { busy: false } => return self.twiml_end(now, id, 603, "Decline", Outcome::Rejected),
                Verb::Hangup => {
                    c.route.push("TwiML <Hangup/>".into());
                    return self.twiml_end(now, id, 603, "Decline", Outcome::Rejected);
                }
                Verb::Play { url, loops } => {
                    if self.start_play(id, &url, loops) {
                        return;
                    }
                }
                Verb::Redirect { url } => return self.start_twiml_fetch(now, id, &url),
                Verb::Pause { secs } => {
                    c.route.push(format!("TwiML <Pause length=\"{secs}\">"));
                    let step = run.step;
                    self.timers.push(Reverse((now + Duration::from_secs(secs.into()), id, Timer::TwimlPause(step))));
                    return;
                }
                Verb::Unsupported(name) => {
                    tracing::info!(call_id = %c.call.call_id, "TwiML <{name}> is not supported by this router: skipped");
                    c.route.push(format!("TwiML <{name}>: not supported, skipped"));
                }
            }
        }
    }

    /// A `<Pause>` is over: go on, unless the call moved on meanwhile.
    pub(super) fn twiml_pause_over(&mut self, now: Instant, id: u64, step: u64) {
        let current = self.calls.get(&id).and_then(|c| c.twiml.as_ref()).is_some_and(|r| r.step == step);
        if current {
            self.run_twiml(now, id);
        }
    }
}

/// A Call SID in the reference platform's shape (`CA` + 32 hex digits),
/// derived from the SIP Call-ID so it is stable across fetches of one call.
fn call_sid(call_id: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in call_id.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
    }
    format!("CA{h:032x}")
}

/// Where a PSTN number of trunk `trunk`'s calls goes (`<Dial><Number>`, a
/// transfer to a number): through the trunk's termination carrier if it
/// has one, else through the configured PSTN gateway.
pub(super) fn number_gateways(settings: &crate::config::Settings, trunk: usize) -> Vec<String> {
    match settings.trunks[trunk].termination.as_ref() {
        Some(t) => settings.carriers[t.carrier].gateways.clone(),
        None => settings.disaster_recovery.pstn_gateway.iter().cloned().collect(),
    }
}

/// `sip:+NUMBER@gateway` for `<Dial><Number>`.
pub(super) fn number_uri(gateway: &str, number: &str) -> Option<String> {
    let e164 = trunkline_sip_core::E164::parse(number)?;
    let rest = gateway.strip_prefix("sip:").or_else(|| gateway.strip_prefix("SIP:"))?;
    let hostpart = rest.split_once('@').map(|(_, h)| h).unwrap_or(rest);
    Some(format!("sip:{e164}@{hostpart}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_uris_and_sids() {
        assert_eq!(
            number_uri("sip:127.0.0.1:5090;transport=tcp", "+14155550111").as_deref(),
            Some("sip:+14155550111@127.0.0.1:5090;transport=tcp")
        );
        assert_eq!(number_uri("sip:gw@10.0.0.1", "+14155550111").as_deref(), Some("sip:+14155550111@10.0.0.1"));
        assert_eq!(number_uri("sip:10.0.0.1", "555"), None, "not E.164");
        let sid = call_sid("abc@host");
        assert!(sid.starts_with("CA") && sid.len() == 34 && sid == call_sid("abc@host") && sid != call_sid("abd@host"));
    }
}
