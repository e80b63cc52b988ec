//! The router as the answerer: a disaster-recovery `<Play>` answers the
//! caller itself and streams a file, with no callee. The answer accepts
//! the first audio description that offers PCMU or PCMA (in the caller's
//! order of preference), with the caller's chosen SRTP suite and a key of
//! the router's if the caller offered SRTP; every other description is
//! rejected (port 0, RFC 3264 §6) and gives its ports back.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Instant;

use super::{release_stream, MediaError, Session, Side};
use crate::crypto::{Crypto, Srtp};
use crate::g711::Law;
use crate::ports::PortSource;
use crate::sdp::{Direction, Sdp};

/// What the router answered, and what its audio goes out as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalAnswer {
    /// The session description for the caller.
    pub body: Vec<u8>,
    /// The accepted stream (index of its media description).
    pub stream: usize,
    /// The codec agreed.
    pub law: Law,
    /// Its payload type (the static one, or the number the caller mapped it to).
    pub payload_type: u8,
}

impl Session {
    /// Answer the caller's `offer` from the router itself (see the module
    /// docs). Ports are taken as for any offer; an offer without G.711
    /// audio is [`MediaError::Codec`] (488).
    pub fn answer_here(
        &mut self,
        now: Instant,
        offer: &[u8],
        ports: &mut (impl PortSource + ?Sized),
    ) -> Result<LocalAnswer, MediaError> {
        self.forget(Side::Callee);
        // Takes the pairs, learns where the caller wants media, reads its SDES.
        self.rewrite(now, Side::Caller, offer, ports)?;
        let sdp = Sdp::parse(offer)?;
        let chosen = (0..sdp.media_count()).find_map(|i| {
            let m = sdp.media(i)?;
            let usable = m.port != 0 && m.kind == "audio" && m.is_rtp() && self.streams[i].local[0].is_some();
            let (pt, law) = m.formats.iter().find_map(|f| g711_format(&sdp, i, f)).filter(|_| usable)?;
            Some((i, pt, law))
        });
        let Some((stream, payload_type, law)) = chosen else {
            return Err(MediaError::Codec("no PCMU or PCMA audio offered".into()));
        };
        let crypto = match self.sdes[stream].offer[0].clone() {
            Some(c) => {
                let ours = self.our_key(stream, Side::Caller, c.suite)?;
                self.streams[stream].srtp[0] = Some(Srtp { suite: c.suite, theirs: c.key, ours: ours.clone() });
                Some(Crypto { tag: c.tag, suite: c.suite, key: ours })
            }
            None => None,
        };
        let family = if matches!(self.address, IpAddr::V6(_)) { "IP6" } else { "IP4" };
        let mut text = format!(
            "v=0\r\no=trunkline {} 0 IN {family} {addr}\r\ns=trunkline\r\nc=IN {family} {addr}\r\nt=0 0\r\n",
            u64::from(self.streams[stream].local[0].unwrap_or(0)) * 1000 + 1,
            addr = self.address
        );
        for i in 0..sdp.media_count() {
            let Some(m) = sdp.media(i) else { continue };
            if i != stream {
                // Rejected: same protocol and formats, port 0.
                let _ = write!(text, "m={} 0 {} {}\r\n", m.kind, m.proto, m.formats.join(" "));
                self.streams[i].remote[0] = None;
                release_stream(now, &mut self.streams[i], ports);
                continue;
            }
            let port = self.streams[i].local[0].unwrap_or(0);
            let _ = write!(text, "m=audio {port} {} {payload_type}\r\n", m.proto);
            let _ = write!(text, "a=rtpmap:{payload_type} {}/8000\r\na=ptime:20\r\n", law.name());
            let direction = match sdp.direction(i) {
                Direction::SendRecv => Direction::SendRecv,
                Direction::SendOnly => Direction::RecvOnly,
                Direction::RecvOnly => Direction::SendOnly,
                Direction::Inactive => Direction::Inactive,
            };
            let _ = write!(text, "a={direction}\r\n");
            if let Some(c) = &crypto {
                let _ = write!(text, "a=crypto:{}\r\n", c.to_value());
            }
        }
        // The caller's offer is answered; nobody else is in the session.
        self.answered = true;
        self.held[1] = false;
        let answer = Sdp::parse(text.as_bytes())?;
        let body = self.version_for(Side::Caller, answer);
        Ok(LocalAnswer { body, stream, law, payload_type })
    }
}

/// Format `f` of media description `i`, if it is G.711 at 8 kHz: its
/// payload type and law (by `a=rtpmap`, else the static numbers).
fn g711_format(sdp: &Sdp, i: usize, f: &str) -> Option<(u8, Law)> {
    let pt: u8 = f.parse().ok().filter(|pt| *pt < 128)?;
    let mapped = sdp.attributes(Some(i), "rtpmap").find_map(|v| {
        let (n, codec) = v.split_once(' ')?;
        (n.trim() == f).then(|| codec.trim().to_ascii_uppercase())
    });
    let law = match mapped.as_deref() {
        Some(c) if c.starts_with("PCMU/8000") => Law::Ulaw,
        Some(c) if c.starts_with("PCMA/8000") => Law::Alaw,
        Some(_) => return None,
        None => Law::of_payload_type(pt)?,
    };
    Some((pt, law))
}
