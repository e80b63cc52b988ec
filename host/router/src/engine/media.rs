//! Media anchoring (RFC 3264 through the B2BUA): every session description
//! that crosses the router on a call whose trunk relays media (`media =
//! "relay"`, the default) is rewritten by the call's media session
//! (`trunkline_media_core::session`), so that each party sees only the
//! router's media address; the relay is told each call's streams after
//! every rewrite ([`Engine::poll_media`]) and to stop when the call ends.
//!
//! Where descriptions cross: the caller's offer in each attempt's INVITE
//! (the next target starts afresh: what an earlier one said is
//! forgotten); the target's 18x and 2xx; the caller's answer in its ACK
//! (delayed offer) or PRACK; re-INVITE, UPDATE, their responses and ACKs
//! in the dialog; a transfer target's offer and the transferee's answer.
//! A refused re-offer (a failure response) restores what the session was.
//!
//! Errors: an offer that is not readable SDP is refused with 488, no free
//! port pair with 503 (both with a reason); a target's unreadable answer
//! fails that target like a failure response (502), the call going on to
//! the next. Every call gives its ports back in `close`, whatever ended it.

use std::net::IpAddr;
use std::time::Instant;

use trunkline_media_core::crypto::MasterKey;
use trunkline_media_core::ports::{Exhausted, PortPool, PortSource};
use trunkline_media_core::session::{MediaError, Session, Side as MediaSide, Stream};
use trunkline_sip_core::message::Message;

use super::in_dialog::Side;
use super::Engine;
use crate::config::{MediaMode, RecordingMode, Settings};
pub(super) use trunkline_relay::record::RecordMode;
use trunkline_relay::record::Recording;

/// What the relay must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaCommand {
    /// Relay call `call`'s streams as they now are; `symmetric`: learn
    /// each party's source from its packets (the trunk's `symmetric_rtp`);
    /// `recording`: record the call so (the trunk's `recording`).
    Relay { call: u64, streams: Vec<Stream>, symmetric: bool, recording: Option<Recording> },
    /// Play `clip` to the caller of call `call` out of the router's port
    /// `port` (facing the caller), `loops` times (`None`: until the call
    /// ends): a TwiML `<Play>`.
    Play { call: u64, port: u16, clip: trunkline_relay::play::Clip, loops: Option<u32> },
    /// Call `call` is over: stop relaying it.
    Stop { call: u64 },
}

/// A source of no ports (a range that holds no pair; configuration
/// validation prevents it).
struct NoPorts;

impl PortSource for NoPorts {
    fn take(&mut self, _: Instant) -> Result<u16, Exhausted> {
        Err(Exhausted { first: 0, last: 0, in_use: 0, resting: 0 })
    }
    fn release(&mut self, _: Instant, _: u16) {}
    fn in_use(&self) -> usize {
        0
    }
}

/// The engine's port pairs from `[media]` (tests and simulations; the
/// driver replaces them with the relay's bound ones).
pub(super) fn default_ports(settings: &Settings) -> Box<dyn PortSource + Send> {
    let m = &settings.media;
    match PortPool::new(m.port_min..=m.port_max, m.port_rest) {
        Ok(pool) => Box::new(pool),
        Err(_) => Box::new(NoPorts),
    }
}

/// A new media session for a call on `trunk`, if it relays media. On a
/// secure trunk the PBX's side (`pbx`: the callee of an origination call,
/// the caller of a termination call) must speak SRTP.
pub(super) fn session_for(settings: &Settings, trunk: usize, pbx: MediaSide) -> Option<Session> {
    let t = &settings.trunks[trunk];
    let session = (t.media == MediaMode::Relay).then(|| Session::new(settings.media.advertise).with_keys(random_key));
    match session {
        Some(s) if t.secure => Some(s.require_srtp(pbx)),
        s => s,
    }
}

/// An SRTP master key and salt from the system's CSPRNG (`getrandom`).
fn random_key() -> Option<MasterKey> {
    use ring::rand::SecureRandom;
    let mut key = [0u8; trunkline_media_core::crypto::MASTER_LEN];
    match ring::rand::SystemRandom::new().fill(&mut key) {
        Ok(()) => Some(MasterKey(key)),
        Err(_) => {
            tracing::error!("no random bytes for an SRTP key: the SRTP offer is refused");
            None
        }
    }
}

fn side(s: Side) -> MediaSide {
    match s {
        Side::Caller => MediaSide::Caller,
        Side::Callee => MediaSide::Callee,
    }
}

/// How call `id` (Call-ID `call_id`) of `trunk` is recorded, if it is:
/// `media.recording_dir/<id>-<Call-ID>` (characters other than letters,
/// digits, `.`, `-` and `_` replaced: a Call-ID is the peer's text).
/// `asked`: a plugin's request, which wins over the trunk's setting.
fn recording_of(
    settings: &Settings,
    trunk: usize,
    asked: Option<RecordMode>,
    id: u64,
    call_id: &str,
) -> Option<Recording> {
    let mode = match (asked, settings.trunks[trunk].recording) {
        (Some(m), _) => m,
        (None, RecordingMode::Off) => return None,
        (None, RecordingMode::Single) => RecordMode::Single,
        (None, RecordingMode::Dual) => RecordMode::Dual,
    };
    let safe: String = call_id
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect();
    Some(Recording { mode, path: settings.media.recording_dir.join(format!("{id}-{safe}")) })
}

/// A plugin's recording mode as the relay knows it.
pub(super) fn record_mode(m: trunkline_plugin_host::types::RecordingMode) -> RecordMode {
    match m {
        trunkline_plugin_host::types::RecordingMode::Single => RecordMode::Single,
        trunkline_plugin_host::types::RecordingMode::Dual => RecordMode::Dual,
    }
}

/// Whether `m`'s body is a session description (SDP).
pub(super) fn carries_sdp(m: &Message) -> bool {
    !m.body.is_empty()
        && m.header("Content-Type")
            .is_none_or(|ct| ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/sdp"))
}

/// Why an offer could not be anchored: the response the sender gets.
pub(super) fn refusal(e: &MediaError) -> (u16, String) {
    match e {
        MediaError::Sdp(_) | MediaError::Crypto(..) | MediaError::Codec(_) => {
            (488, format!("Not Acceptable Here ({e})"))
        }
        MediaError::Exhausted(why) => {
            tracing::warn!("call refused: {why} (widen media.port_min..media.port_max)");
            (503, "Service Unavailable (no media ports free)".into())
        }
    }
}

impl Engine {
    /// Replace where port pairs come from (the relay's, bound before use).
    pub fn set_ports(&mut self, ports: Box<dyn PortSource + Send>) {
        self.ports = ports;
    }

    /// Next instruction for the relay.
    pub fn poll_media(&mut self) -> Option<MediaCommand> {
        self.media_out.pop_front()
    }

    /// The relay saw no packet of call `call` for `media.rtp_timeout_secs`:
    /// an answered call not on hold is hung up (BYE to both parties, the
    /// report says why); a call still ringing, or on hold, is left alone.
    pub fn handle_media_idle(&mut self, now: Instant, call: u64) {
        let Some(secs) = self.settings.media.rtp_timeout.map(|t| t.as_secs()) else { return };
        let Some(c) = self.calls.get_mut(&call) else { return };
        let held = c.media.as_ref().is_none_or(Session::on_hold);
        if c.phase != super::call::Phase::Answered || held || c.transfer.is_some() {
            return;
        }
        tracing::info!(call_id = %c.call.call_id, "no RTP for {secs} s: hanging up");
        c.route.push(format!("no media for {secs} s (media.rtp_timeout_secs): BYE to both parties"));
        self.hang_up_both(now, call);
        self.process(now);
    }

    /// RTP/RTCP port pairs held by calls in progress.
    pub fn media_ports_in_use(&self) -> usize {
        self.ports.in_use()
    }

    /// The router's media address (written in every description it rewrites).
    pub fn media_address(&self) -> IpAddr {
        self.settings.media.advertise
    }

    /// Rewrite `m`'s session description, sent by the party on `from` of
    /// call `id`, for the other party. Nothing to do (Ok) if the call does
    /// not relay media or `m` carries no SDP.
    pub(super) fn anchor(&mut self, now: Instant, id: u64, from: Side, m: &mut Message) -> Result<(), MediaError> {
        if !carries_sdp(m) {
            return Ok(());
        }
        let Some(c) = self.calls.get_mut(&id) else { return Ok(()) };
        let Some(session) = c.media.as_mut() else { return Ok(()) };
        m.body = session.rewrite(now, side(from), &m.body, self.ports.as_mut())?;
        self.push_relay(id, true);
        Ok(())
    }

    /// Tell the relay call `id`'s streams as they now are (with the
    /// trunk's or the plugin's recording if `recorded`).
    pub(super) fn push_relay(&mut self, id: u64, recorded: bool) {
        let Some(c) = self.calls.get(&id) else { return };
        let Some(session) = c.media.as_ref() else { return };
        let symmetric = c.settings.trunks[c.trunk].symmetric_rtp;
        let recording = recorded.then(|| recording_of(&c.settings, c.trunk, c.record, id, &c.call.call_id)).flatten();
        let streams = session.streams().to_vec();
        self.media_out.push_back(MediaCommand::Relay { call: id, streams, symmetric, recording });
    }

    /// A new party on `side` of call `id` (the next target, a transfer
    /// target): what the one before said is forgotten.
    pub(super) fn media_new_party(&mut self, id: u64, on: Side) {
        if let Some(s) = self.calls.get_mut(&id).and_then(|c| c.media.as_mut()) {
            s.forget(side(on));
        }
    }

    /// A copy of call `id`'s media session, to restore if an offer is refused.
    pub(super) fn media_checkpoint(&self, id: u64) -> Option<Session> {
        self.calls.get(&id).and_then(|c| c.media.clone())
    }

    /// An offer was refused: call `id`'s media goes back to `earlier`.
    pub(super) fn media_restore(&mut self, id: u64, earlier: &Session) {
        let Some(session) = self.calls.get_mut(&id).and_then(|c| c.media.as_mut()) else { return };
        session.restore(earlier);
        self.push_relay(id, true);
    }

    /// Call `id` is over: its ports go back (they rest) and the relay stops.
    pub(super) fn media_release(&mut self, now: Instant, id: u64, session: Option<Session>) {
        if let Some(mut s) = session {
            s.release(now, self.ports.as_mut());
            self.media_out.push_back(MediaCommand::Stop { call: id });
        }
    }
}

/// The call report's lines about where `session` anchored the media.
pub(super) fn describe(session: &Session) -> Vec<String> {
    session
        .streams()
        .iter()
        .filter_map(|s| {
            let (a, b) = (s.local(MediaSide::Caller)?, s.local(MediaSide::Callee)?);
            let remote = |side| match s.remote(side).and_then(|r: trunkline_media_core::session::Remote| r.rtp) {
                Some(addr) => addr.to_string(),
                None => "-".into(),
            };
            Some(format!(
                "{}: caller {} <-> router :{a} | :{b} <-> callee {}",
                s.kind,
                remote(MediaSide::Caller),
                remote(MediaSide::Callee)
            ))
        })
        .collect()
}
