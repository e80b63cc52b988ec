//! One call's anchored media: the offer/answer exchanges of RFC 3264 seen
//! from the B2BUA in the middle, and the ports the router relays on.
//!
//! Every session description that crosses the router goes through
//! [`Session::rewrite`]: from one side (`from`), for the other (`to`). The
//! router keeps, per media description (stream), one port pair facing each
//! side, and learns from each description where that side wants media. The
//! description the other side gets names only the router: its address in
//! every `c=`, the port pair facing that side in `m=` and `a=rtcp`, and an
//! `o=` version that moves only when what that side is told changes.
//!
//! - A new media description takes a pair per side; a description with
//!   port 0 (rejected or removed, RFC 3264 §6, §8.2) gives both back and
//!   goes on with port 0.
//! - A new address or port in a later description (re-INVITE, UPDATE, a
//!   2xx after a preview in 183) replaces what was known: the relay
//!   follows it.
//! - Hold passes through: the direction attributes as written; `c=0.0.0.0`
//!   (RFC 2543 hold) stays `0.0.0.0` for the other side and the stream
//!   has no destination on that side meanwhile.
//! - Codecs, `a=rtpmap`/`fmtp` (telephone-event too) and every attribute
//!   the router does not own pass unchanged: no transcoding.
//! - Streams that are not RTP over UDP, nor UDPTL (T.38), cannot be
//!   relayed: they go to the other side with port 0 (declined).
//!
//! [`Session::release`] gives every pair back (call over, whatever path it
//! ended by).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::ports::{Exhausted, PortSource};
use crate::sdp::{Sdp, SdpError};

/// One side of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The party that called (the router is its UAS).
    Caller,
    /// The party called (the router is its UAC).
    Callee,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }

    fn at(self) -> usize {
        match self {
            Side::Caller => 0,
            Side::Callee => 1,
        }
    }
}

/// Why a description cannot be anchored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The body is not SDP (the peer's fault: 488 or 400).
    #[error("session description: {0}")]
    Sdp(#[from] SdpError),
    /// No port pair is free (ours: 503, retry later).
    #[error("{0}")]
    Exhausted(#[from] Exhausted),
    /// Secure media that cannot be agreed (the peer's fault: 488).
    #[error("media description {0}: {1}")]
    Crypto(usize, String),
    /// The router answers itself and has no codec in common (488).
    #[error("{0}")]
    Codec(String),
}

/// Where one side wants a stream's media.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remote {
    /// RTP destination; `None` while on hold with `0.0.0.0` or before its
    /// description names an IP address.
    pub rtp: Option<SocketAddr>,
    /// RTCP destination (`a=rtcp`, else RTP port + 1; the RTP address with
    /// `a=rtcp-mux`).
    pub rtcp: Option<SocketAddr>,
    /// `a=rtcp-mux` (RFC 5761): RTCP on the RTP port.
    pub mux: bool,
    /// The payload types the description offered (a packet with another
    /// cannot teach the relay a symmetric-RTP source).
    pub payload_types: crate::rtp::PayloadTypes,
}

/// One media description of the call, relayed between the two sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    /// The router's RTP port facing each side (`[caller, callee]`); RTCP is
    /// the next port. `None` for a rejected stream.
    pub local: [Option<u16>; 2],
    /// Where each side wants media, as its last description said.
    pub remote: [Option<Remote>; 2],
    /// `audio`, `video`, `image`...
    pub kind: String,
    /// SRTP agreed with each side (`[caller, callee]`); `None`: plain RTP.
    pub srtp: [Option<crate::crypto::Srtp>; 2],
}

impl Stream {
    /// The router's RTP port facing `side`.
    pub fn local(&self, side: Side) -> Option<u16> {
        self.local[side.at()]
    }

    /// Where `side` wants media.
    pub fn remote(&self, side: Side) -> Option<Remote> {
        self.remote[side.at()]
    }
}

/// What the router last told one side.
#[derive(Clone, Debug, Default)]
struct Told {
    /// The `o=` version it got.
    version: Option<u64>,
    /// The description it got, with the version left out (to compare).
    body: Vec<u8>,
}

/// One call's anchored media. See the module docs.
#[derive(Clone, Debug)]
pub struct Session {
    /// The router's media address, written in every `c=`.
    address: IpAddr,
    streams: Vec<Stream>,
    told: [Told; 2],
    /// SDES state per stream (`sdes`).
    sdes: Vec<sdes::Negotiation>,
    /// Who made the last offer, and whether it was answered.
    last_offer: Option<Side>,
    answered: bool,
    /// The last description each side sent (a repeat is not a new offer).
    last_in: [Vec<u8>; 2],
    /// Whether each side's last description put the call on hold (every
    /// stream `sendonly`, `recvonly`, `inactive` or at `0.0.0.0`).
    held: [bool; 2],
    /// Sides that must get SRTP whatever the other side offered.
    require_srtp: [bool; 2],
    /// Where the router's SRTP keys come from (a CSPRNG; `None` if it failed).
    keys: fn() -> Option<crate::crypto::MasterKey>,
}

impl Session {
    /// A call whose media the router anchors on `address`.
    pub fn new(address: IpAddr) -> Session {
        Session {
            address,
            streams: Vec::new(),
            told: [Told::default(), Told::default()],
            sdes: Vec::new(),
            last_offer: None,
            answered: false,
            last_in: [Vec::new(), Vec::new()],
            require_srtp: [false, false],
            held: [false, false],
            keys: sdes::no_keys,
        }
    }

    /// The router's SRTP keys for this call come from `keys` (a
    /// cryptographically secure source). Without it, an SRTP offer is
    /// refused (488).
    pub fn with_keys(mut self, keys: fn() -> Option<crate::crypto::MasterKey>) -> Session {
        self.keys = keys;
        self
    }

    /// `side` gets SRTP (offered RTP/SAVP) even when the other side's offer
    /// was plain RTP (a secure trunk's PBX).
    pub fn require_srtp(mut self, side: Side) -> Session {
        self.require_srtp[side.at()] = true;
        self
    }

    /// The streams, in the order of the media descriptions.
    pub fn streams(&self) -> &[Stream] {
        &self.streams
    }

    /// Whether a side's last description put the call on hold (no media
    /// is expected both ways meanwhile: no inactivity timeout).
    pub fn on_hold(&self) -> bool {
        self.held[0] || self.held[1]
    }

    /// Port pairs held.
    pub fn ports_held(&self) -> usize {
        self.streams.iter().flat_map(|s| s.local).flatten().count()
    }

    /// A description `body` from side `from`, rewritten for the other side
    /// (see the module docs). New streams take port pairs from `ports`; if
    /// none is free, the pairs this call of it took are given back and
    /// the error says so.
    pub fn rewrite(
        &mut self,
        now: Instant,
        from: Side,
        body: &[u8],
        ports: &mut (impl PortSource + ?Sized),
    ) -> Result<Vec<u8>, MediaError> {
        let mut sdp = Sdp::parse(body)?;
        let to = from.other();
        let before = self.streams.len();
        let answer = self.classify(from, body);
        let mut taken = Vec::new();
        for i in 0..sdp.media_count() {
            let Some(media) = sdp.media(i) else {
                self.undo(now, before, &taken, ports);
                return Err(SdpError::BadMedia(i).into());
            };
            let relayable = media.is_rtp() || media.proto.eq_ignore_ascii_case("udptl");
            let (port, kind) = (media.port, media.kind.to_owned());
            if i >= self.streams.len() {
                self.streams.push(Stream { local: [None, None], remote: [None, None], kind, srtp: [None, None] });
                self.sdes.push(sdes::Negotiation::default());
            }
            if port == 0 || !relayable {
                self.streams[i].remote[from.at()] = None;
                release_stream(now, &mut self.streams[i], ports);
                sdp.set_port(i, 0);
                continue;
            }
            if self.streams[i].local.iter().any(Option::is_none) {
                for side in [Side::Caller, Side::Callee] {
                    if self.streams[i].local[side.at()].is_none() {
                        match ports.take(now) {
                            Ok(p) => {
                                self.streams[i].local[side.at()] = Some(p);
                                taken.push((i, side));
                            }
                            Err(e) => {
                                self.undo(now, before, &taken, ports);
                                return Err(e.into());
                            }
                        }
                    }
                }
            }
            self.streams[i].remote[from.at()] = Some(remote_of(&sdp, i, port));
            let local = self.streams[i].local[to.at()].unwrap_or(0);
            sdp.set_port(i, local);
            let rtcp = match sdp.attribute(Some(i), "rtcp").and_then(|v| v.split_ascii_whitespace().next()) {
                Some(p) if p.parse::<u16>().ok() == Some(port) => local, // muxed on the RTP port
                _ => local.wrapping_add(1),
            };
            sdp.set_rtcp(i, rtcp, self.address);
            if let Err(e) = self.negotiate(i, from, answer, &mut sdp) {
                self.undo(now, before, &taken, ports);
                return Err(e);
            }
        }
        let all_on_hold = (0..sdp.media_count()).all(|i| sdp.connection(i).is_some_and(|c| c.is_hold()));
        self.held[from.at()] = (0..sdp.media_count()).all(|i| {
            sdp.media(i).is_none_or(|m| m.port == 0)
                || sdp.direction(i) != crate::sdp::Direction::SendRecv
                || sdp.connection(i).is_some_and(|c| c.is_hold())
        });
        if !all_on_hold {
            sdp.set_connection(self.address);
        }
        Ok(self.version_for(to, sdp))
    }

    /// Give back what this description took before failing, and forget
    /// the streams it added.
    fn undo(&mut self, now: Instant, before: usize, taken: &[(usize, Side)], ports: &mut (impl PortSource + ?Sized)) {
        for &(i, side) in taken {
            if let Some(p) = self.streams[i].local[side.at()].take() {
                ports.release(now, p);
            }
        }
        self.streams.truncate(before);
        self.sdes.truncate(before);
    }

    /// Set the `o=` version side `to` gets: the one it got last time if
    /// the description is otherwise the same, else one more than that (or
    /// the writer's own version, if higher).
    fn version_for(&mut self, to: Side, mut sdp: Sdp) -> Vec<u8> {
        let theirs = sdp.origin().map(|o| o.version);
        sdp.set_origin_version(0);
        let body = sdp.to_bytes();
        let told = &mut self.told[to.at()];
        let version = match (told.version, theirs) {
            (Some(v), _) if told.body == body => v,
            (Some(v), Some(t)) => t.max(v + 1),
            (Some(v), None) => v + 1,
            (None, t) => t.unwrap_or(0),
        };
        told.version = Some(version);
        told.body = body;
        sdp.set_origin_version(version);
        sdp.to_bytes()
    }

    /// A new party on `side` (the next target of a call, after a failover
    /// or a redirect): what the previous one said and was told is
    /// forgotten; the ports stay.
    pub fn forget(&mut self, side: Side) {
        for s in &mut self.streams {
            s.remote[side.at()] = None;
            s.srtp[side.at()] = None;
        }
        for n in &mut self.sdes {
            n.forget(side);
        }
        self.told[side.at()] = Told::default();
        self.last_in[side.at()].clear();
        if self.last_offer == Some(side.other()) {
            self.answered = false; // the offer goes to the new party
        } else if self.last_offer == Some(side) {
            self.last_offer = None;
        }
    }

    /// An offer this session rewrote was refused (a re-INVITE or UPDATE
    /// answered with a failure, RFC 3264 §8: the session stays as it
    /// was): where each side wants media and what each was told come back
    /// from `earlier`, a copy taken before the offer, for every stream
    /// that still has the same ports. Ports are not given back here: a
    /// stream the refused offer added keeps its pairs until the call ends.
    pub fn restore(&mut self, earlier: &Session) {
        for (i, (s, e)) in self.streams.iter_mut().zip(&earlier.streams).enumerate() {
            if s.local == e.local {
                s.remote = e.remote;
                s.srtp = e.srtp.clone();
                if let (Some(n), Some(m)) = (self.sdes.get_mut(i), earlier.sdes.get(i)) {
                    *n = m.clone();
                }
            }
        }
        self.told = earlier.told.clone();
        (self.last_offer, self.answered, self.last_in) =
            (earlier.last_offer, earlier.answered, earlier.last_in.clone());
    }

    /// The call is over: every port pair goes back to `ports`.
    pub fn release(&mut self, now: Instant, ports: &mut (impl PortSource + ?Sized)) {
        for s in &mut self.streams {
            release_stream(now, s, ports);
        }
    }
}

fn release_stream(now: Instant, s: &mut Stream, ports: &mut (impl PortSource + ?Sized)) {
    for local in &mut s.local {
        if let Some(p) = local.take() {
            ports.release(now, p);
        }
    }
}

/// Where the side that wrote `sdp` wants stream `i` (its RTP port `port`).
fn remote_of(sdp: &Sdp, i: usize, port: u16) -> Remote {
    let ip = sdp.connection_ip(i).filter(|ip| !ip.is_unspecified());
    let mux = sdp.attribute(Some(i), "rtcp-mux").is_some();
    let rtcp = sdp.attribute(Some(i), "rtcp").and_then(|v| {
        let mut it = v.split_ascii_whitespace();
        let port: u16 = it.next()?.parse().ok()?;
        let addr = it.nth(2).and_then(|a| a.parse::<IpAddr>().ok()).or(ip)?;
        Some(SocketAddr::new(addr, port))
    });
    let rtp = ip.map(|ip| SocketAddr::new(ip, port));
    let rtcp = if mux { rtp } else { rtcp.or_else(|| ip.map(|ip| SocketAddr::new(ip, port.wrapping_add(1)))) };
    let payload_types = crate::rtp::PayloadTypes::of(sdp.media(i).map(|m| m.formats).unwrap_or_default());
    Remote { rtp, rtcp, mux, payload_types }
}

mod local;
mod sdes;

pub use local::LocalAnswer;
#[cfg(test)]
mod tests;
