//! TwiML `<Play>`: the router answers the caller itself and streams a WAV
//! file through its relay, as the reference platform does for a
//! disaster-recovery announcement ("we are closed", then `<Hangup/>`).
//!
//! 1. The verb asks the driver for the file (a GET, [`FetchKind::Audio`]);
//!    the call waits, still ringing.
//! 2. The file is read (`trunkline_media_core::wav`: 8 kHz mono PCMU, PCMA
//!    or 16-bit PCM). If the call is not answered yet, the media session
//!    answers the caller's offer itself (`Session::answer_here`: PCMU or
//!    PCMA, SRTP if offered) and the caller gets a 200 OK, resent until
//!    its ACK like any 2xx.
//! 3. The relay plays the file ([`MediaCommand::Play`]), `loop` times;
//!    the next verb runs when it is over (`loop="0"`: never, the call
//!    ends with the caller or `max_call_duration_secs`).
//!
//! A file that cannot be fetched or read, a trunk that does not relay
//! media, an INVITE without an offer or without G.711: the verb is skipped
//! with the reason in the call's route, as unknown verbs are.
//! After the router answered there is no callee: in-dialog requests are
//! answered here (a re-offer gets a new answer of the router's), and
//! `<Dial>` is skipped.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use trunkline_media_core::g711::Law;
use trunkline_media_core::wav::Wav;
use trunkline_relay::play::Clip;
use trunkline_sip_core::dialog::Dialog;
use trunkline_sip_core::message::{Header, Message};
use trunkline_sip_core::transaction::{response_to, TransactionKey};

use super::build::{self, relay_response};
use super::call::Phase;
use super::media::{self, MediaCommand};
use super::twiml::{FetchKind, FetchRequest};
use super::{Engine, Timer};
use crate::twiml::fetch::HttpUrl;

/// A `<Play>` whose file is being fetched.
#[derive(Clone, Debug)]
pub(crate) struct PendingPlay {
    pub(crate) url: HttpUrl,
    pub(crate) loops: Option<u32>,
}

/// What the router agreed with the caller when it answered it itself.
#[derive(Clone, Debug)]
pub(crate) struct Here {
    /// The router's RTP port facing the caller (the played stream).
    pub(crate) port: u16,
    pub(crate) payload_type: u8,
    pub(crate) law: Law,
    /// The description the caller got (offered again in a re-INVITE without one).
    pub(crate) body: Vec<u8>,
}

/// Extra time after a clip's length before the next verb (the playing
/// thread started a moment after the engine's clock).
const TAIL: Duration = Duration::from_millis(200);

impl Engine {
    /// `<Play>` of `url`: fetch the file (true), or skip the verb (false,
    /// with the reason in the route).
    pub(super) fn start_play(&mut self, id: u64, url: &str, loops: Option<u32>) -> bool {
        let Some(c) = self.calls.get_mut(&id) else { return false };
        let timeout = c.settings.disaster_recovery.fetch_timeout;
        if c.media.is_none() {
            c.route
                .push(format!("TwiML <Play> {url}: skipped (the trunk does not relay media: media = \"passthrough\")"));
            return false;
        }
        if c.phase == Phase::Routing && !media::carries_sdp(&c.a_invite) {
            c.route.push(format!("TwiML <Play> {url}: skipped (the caller's INVITE has no offer to answer)"));
            return false;
        }
        let Some(run) = c.twiml.as_mut() else { return false };
        let parsed = match &run.base {
            Some(base) => base.join(url),
            None => HttpUrl::parse(url),
        };
        let url = match parsed {
            Ok(u) => u,
            Err(why) => {
                c.route.push(format!("TwiML <Play> {url}: skipped ({why})"));
                return false;
            }
        };
        c.route.push(format!("TwiML <Play> GET {url}"));
        run.audio = Some(PendingPlay { url: url.clone(), loops });
        self.fetches.push_back(FetchRequest { token: id, url, params: Vec::new(), timeout, kind: FetchKind::Audio });
        true
    }

    /// The driver fetched (or failed to fetch) the file of call `token`'s `<Play>`.
    pub fn handle_audio_fetched(&mut self, now: Instant, token: u64, result: Result<Vec<u8>, String>) {
        let Some(c) = self.calls.get_mut(&token) else { return }; // the call ended meanwhile
        let Some(pending) = c.twiml.as_mut().and_then(|r| r.audio.take()) else { return };
        let wav = result.and_then(|bytes| Wav::read(&bytes).map_err(|e| e.to_string()));
        let wav = match wav {
            Ok(w) if w.samples() > 0 => w,
            Ok(_) => return self.skip_play(now, token, &pending, "the file holds no audio"),
            Err(why) => return self.skip_play(now, token, &pending, &why),
        };
        if c.phase == Phase::Routing {
            if let Err(why) = self.answer_here(now, token) {
                return self.skip_play(now, token, &pending, &why);
            }
        }
        let Some(c) = self.calls.get_mut(&token) else { return };
        let Some(run) = c.twiml.as_mut() else { return };
        let Some(here) = run.here.clone() else {
            return self.skip_play(now, token, &pending, "the call was answered by a target, not the router");
        };
        let clip =
            Clip { payload_type: here.payload_type, silence: here.law.silence(), codes: wav.encode(here.law).into() };
        let length = clip.duration();
        let loops = match pending.loops {
            Some(n) => format!("{n} time(s)"),
            None => "until the call ends".into(),
        };
        c.route.push(format!(
            "TwiML <Play> {}: {} ms of {} played {loops}",
            pending.url,
            length.as_millis(),
            here.law.name()
        ));
        let step = run.step;
        if let Some(n) = pending.loops {
            self.timers.push(Reverse((now + length * n + TAIL, token, Timer::TwimlPause(step))));
        }
        self.media_out.push_back(MediaCommand::Play { call: token, port: here.port, clip, loops: pending.loops });
    }

    fn skip_play(&mut self, now: Instant, id: u64, pending: &PendingPlay, why: &str) {
        if let Some(c) = self.calls.get_mut(&id) {
            tracing::info!(call_id = %c.call.call_id, url = %pending.url, "TwiML <Play> skipped: {why}");
            c.route.push(format!("TwiML <Play> {}: skipped ({why})", pending.url));
        }
        self.run_twiml(now, id);
    }

    /// Answer the ringing call `id` from the router: the media session
    /// answers the caller's offer, the caller gets a 200 OK (resent until
    /// its ACK) and the call is answered with nobody on the other side.
    fn answer_here(&mut self, now: Instant, id: u64) -> Result<(), String> {
        let Some(c) = self.calls.get_mut(&id) else { return Err("the call ended".into()) };
        let Some(session) = c.media.as_mut() else { return Err("no media session".into()) };
        let answer = session.answer_here(now, &c.a_invite.body, self.ports.as_mut()).map_err(|e| e.to_string())?;
        let port = session.streams()[answer.stream].local[0].unwrap_or(0);
        let mut ok = relay_response(&c.a_invite, 200, "OK", &c.a_tag, (&self.locals, c.a_from.transport), None);
        ok.headers.push(Header { name: "Content-Type".into(), value: "application/sdp".into() });
        ok.body = answer.body.clone();
        c.a_dialog = Dialog::as_uas(&c.a_invite, &c.a_tag).ok();
        c.a_ok = Some(ok);
        c.phase = Phase::Answered;
        c.answered = Some(now);
        c.session.end_routing_phase();
        c.route.push(format!("TwiML <Play>: answered by the router ({})", answer.law.name()));
        if let Some(run) = c.twiml.as_mut() {
            run.here = Some(Here { port, payload_type: answer.payload_type, law: answer.law, body: answer.body });
        }
        let longest = c.settings.trunks[c.trunk].max_call_duration;
        self.timers.push(Reverse((now + longest, id, Timer::MaxDuration)));
        self.push_relay(id, false);
        // RFC 3262 §3: no 2xx while a 1xx with a session description awaits its PRACK.
        let c = &self.calls[&id];
        if !c.a_reliable.as_ref().is_some_and(|p| p.holds_final()) {
            self.send_ok(now, id);
        }
        Ok(())
    }

    /// Whether call `id` was answered by the router itself (a `<Play>`).
    pub(super) fn answered_here(&self, id: u64) -> bool {
        self.calls.get(&id).and_then(|c| c.twiml.as_ref()).is_some_and(|r| r.here.is_some())
    }

    /// A request in the dialog of a call the router answered itself: there
    /// is nobody to relay it to, so it is answered here. A re-offer
    /// (re-INVITE, UPDATE) gets the router's answer to it; a re-INVITE
    /// without one gets the router's description as an offer.
    pub(super) fn on_request_here(&mut self, now: Instant, key: TransactionKey, m: Message, id: u64) {
        let method = m.method().unwrap_or_default().to_owned();
        let Some(c) = self.calls.get_mut(&id) else { return };
        if !c.a_dialog.as_mut().is_some_and(|d| d.accept_remote_seq(&m)) {
            return self.respond(now, &key, &m, 500, "Server Internal Error (CSeq out of order)");
        }
        let mut ok = response_to(&m, 200, "OK");
        if matches!(method.as_str(), "INVITE" | "UPDATE") {
            if let (Some(contact), Some(d)) = (m.header("Contact"), c.a_dialog.as_mut()) {
                d.remote_target = super::in_dialog::contact_uri(contact);
            }
            ok.headers.push(Header { name: "Contact".into(), value: build::contact(&self.locals, c.a_from.transport) });
            let body = if media::carries_sdp(&m) {
                let Some(session) = c.media.as_mut() else { return };
                match session.answer_here(now, &m.body, self.ports.as_mut()) {
                    Ok(a) => {
                        self.push_relay(id, false);
                        Some(a.body)
                    }
                    Err(e) => {
                        let (code, why) = media::refusal(&e);
                        return self.respond(now, &key, &m, code, &why);
                    }
                }
            } else {
                (method == "INVITE")
                    .then(|| c.twiml.as_ref().and_then(|r| r.here.as_ref()).map(|h| h.body.clone()))
                    .flatten()
            };
            if let Some(body) = body {
                ok.headers.push(Header { name: "Content-Type".into(), value: "application/sdp".into() });
                ok.body = body;
            }
        } else if !matches!(method.as_str(), "OPTIONS" | "INFO") {
            let mut r = response_to(&m, 501, "Not Implemented (the router answered this call itself)");
            r.headers
                .push(Header { name: "Allow".into(), value: "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE".into() });
            self.layer.send_response(now, &key, r);
            return;
        }
        self.layer.send_response(now, &key, ok);
    }
}
