//! SDES through the B2BUA (RFC 4568): SRTP is terminated on each leg.
//!
//! - An offer from side X with `RTP/SAVP` (or `SAVPF`): the router picks X's
//!   best acceptable `a=crypto` line (`crypto::choose`); none acceptable is
//!   a 488 with the reason. The other side Y is offered SRTP too (or when
//!   Y requires it: a secure trunk's PBX), with the router's own keys, one
//!   line per suite (`_80` first); else plain RTP, without crypto lines.
//! - The answer from Y: the line it accepted (by tag) gives the suite, Y's
//!   key and the router's key for Y. An answer without SRTP to an SRTP
//!   offer is accepted as plain RTP unless Y requires SRTP.
//! - The answer the router gives X names X's chosen line's tag and suite
//!   with a key of the router's for X.
//! - A side that requires SRTP (a secure trunk's PBX) offering plain RTP,
//!   or answering the router's SRTP offer with plain RTP: refused (488).
//!
//! The router keeps its keys for the life of the call; a party's new key
//! (a re-offer with another `inline:`) is taken as it comes.

use super::{MediaError, Session, Side};
use crate::crypto::{self, Crypto, MasterKey, Srtp, Suite};
use crate::sdp::Sdp;

/// A stream's negotiation, per side (`[caller, callee]`).
#[derive(Clone, Debug, Default)]
pub(super) struct Negotiation {
    /// The line the router accepted from each side's last offer (`None`:
    /// plain RTP offered).
    pub(super) offer: [Option<Crypto>; 2],
    /// Whether the router offered each side SRTP.
    offered_srtp: [bool; 2],
    /// The router's keys toward each side, per suite (`Suite::ALL` order).
    ours: [[Option<MasterKey>; 2]; 2],
}

impl Negotiation {
    pub(super) fn forget(&mut self, side: Side) {
        self.offer[side.at()] = None;
        self.offered_srtp[side.at()] = false;
    }
}

/// No key source: SRTP offers are refused.
pub(super) fn no_keys() -> Option<MasterKey> {
    None
}

fn suite_at(suite: Suite) -> usize {
    Suite::ALL.iter().position(|s| *s == suite).unwrap_or(0)
}

/// `RTP/AVP` <-> `RTP/SAVP`, `RTP/AVPF` <-> `RTP/SAVPF`.
fn proto_for(proto: &str, secure: bool) -> String {
    let feedback = proto.to_ascii_uppercase().ends_with('F');
    match (secure, feedback) {
        (true, false) => "RTP/SAVP",
        (true, true) => "RTP/SAVPF",
        (false, false) => "RTP/AVP",
        (false, true) => "RTP/AVPF",
    }
    .to_owned()
}

impl Session {
    /// Whether `body` from `from` answers the other side's offer (else it
    /// is an offer, or a repeat of what `from` last said).
    pub(super) fn classify(&mut self, from: Side, body: &[u8]) -> bool {
        let repeat = self.last_in[from.at()] == body;
        self.last_in[from.at()] = body.to_vec();
        match self.last_offer {
            Some(o) if o == from.other() && (!self.answered || repeat) => {
                self.answered = true;
                true
            }
            Some(o) if o == from && repeat => false,
            _ => {
                self.last_offer = Some(from);
                self.answered = false;
                false
            }
        }
    }

    /// The router's key toward `side` for `suite` in stream `i` (made once).
    pub(super) fn our_key(&mut self, i: usize, side: Side, suite: Suite) -> Result<MasterKey, MediaError> {
        let slot = &mut self.sdes[i].ours[side.at()][suite_at(suite)];
        if let Some(key) = slot {
            return Ok(key.clone());
        }
        let key = (self.keys)().ok_or_else(|| MediaError::Crypto(i, "no source of SRTP keys".into()))?;
        *slot = Some(key.clone());
        Ok(key)
    }

    /// SDES for stream `i` of a description from `from` (an answer if
    /// `answer`), rewritten in `sdp` for the other side.
    pub(super) fn negotiate(&mut self, i: usize, from: Side, answer: bool, sdp: &mut Sdp) -> Result<(), MediaError> {
        let Some(media) = sdp.media(i) else { return Ok(()) };
        if !media.is_rtp() {
            return Ok(());
        }
        let (secure_in, proto) = (media.is_srtp(), media.proto.to_owned());
        let lines: Vec<String> = sdp.attributes(Some(i), "crypto").map(str::to_owned).collect();
        let to = from.other();
        let bad = |why: String| MediaError::Crypto(i, why);
        if !answer {
            // An offer from `from`.
            if !secure_in && self.require_srtp[from.at()] {
                return Err(bad("SRTP is required (RTP/SAVP with a=crypto)".into()));
            }
            self.sdes[i].offer[from.at()] = if secure_in {
                Some(crypto::choose(lines.iter().map(String::as_str)).map_err(|e| bad(e.to_string()))?)
            } else {
                None
            };
            let secure_out = secure_in || self.require_srtp[to.at()];
            self.sdes[i].offered_srtp[to.at()] = secure_out;
            sdp.set_proto(i, &proto_for(&proto, secure_out));
            let mut ours = Vec::new();
            if secure_out {
                for (tag, suite) in (1..).zip(Suite::ALL) {
                    ours.push(Crypto { tag, suite, key: self.our_key(i, to, suite)? }.to_value());
                }
            }
            sdp.set_crypto(i, &ours);
            return Ok(());
        }
        // An answer from `from` to the router's offer.
        let offered = self.sdes[i].offered_srtp[from.at()];
        self.streams[i].srtp[from.at()] = match (offered, secure_in) {
            (true, true) => {
                let c = crypto::choose(lines.iter().map(String::as_str)).map_err(|e| bad(e.to_string()))?;
                let suite = Suite::ALL.get(c.tag.wrapping_sub(1) as usize).copied();
                if suite != Some(c.suite) {
                    return Err(bad(format!("the answer's crypto line {} was not offered", c.tag)));
                }
                Some(Srtp { suite: c.suite, theirs: c.key, ours: self.our_key(i, from, c.suite)? })
            }
            (true, false) if self.require_srtp[from.at()] => return Err(bad("SRTP is required".into())),
            (false, true) => return Err(bad("SRTP in an answer to a plain RTP offer".into())),
            _ => None,
        };
        // The router's answer to `to`'s offer.
        let chosen = self.sdes[i].offer[to.at()].clone();
        sdp.set_proto(i, &proto_for(&proto, chosen.is_some()));
        self.streams[i].srtp[to.at()] = match chosen {
            Some(c) => {
                let ours = self.our_key(i, to, c.suite)?;
                sdp.set_crypto(i, &[Crypto { tag: c.tag, suite: c.suite, key: ours.clone() }.to_value()]);
                Some(Srtp { suite: c.suite, theirs: c.key, ours })
            }
            None => {
                sdp.set_crypto(i, &[]);
                None
            }
        };
        Ok(())
    }
}
