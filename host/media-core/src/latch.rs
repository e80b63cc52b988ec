//! Where one party's media comes from, and where the relay sends it:
//! strict (the address its session description names) or symmetric RTP
//! (latching to the source the packets actually come from, for a party
//! behind NAT whose description names a private address). Sans-IO: the
//! relay passes in each packet's source, whether it is valid for the
//! stream, and the time.
//!
//! Rules with symmetric RTP (the trunk's `symmetric_rtp = true`):
//! - Until a packet is accepted, the party is sent media at the address
//!   its description names.
//! - The first **valid** packet (RTP version 2 with a payload type of
//!   the session: one either party's description lists; or RTCP version 2
//!   on an RTCP port)
//!   latches its source: from then on the party is sent media there, and
//!   packets from any other source are dropped.
//! - A latched source that has been silent for [`RELATCH_AFTER_MS`] can be
//!   replaced by another that sends [`RELATCH_PACKETS`] valid packets in a
//!   row with one SSRC (the party moved: a NAT rebinding, a failover of its
//!   SBC). Never by a source whose packets fail validation.
//! - A new description from the party starts over (the relay resets the
//!   latch when the party's address in its description changes).
//!
//! Without symmetric RTP, only the described address is accepted.

use std::net::SocketAddr;

/// How long a latched source must be silent before another may replace it.
pub const RELATCH_AFTER_MS: u64 = 2_000;

/// Valid packets in a row, with one SSRC, a new source must send to
/// replace a silent latched one.
pub const RELATCH_PACKETS: u32 = 5;

/// What became of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// From the party: relay it.
    Accept,
    /// Latched to this packet's source (which is now where the party is
    /// sent media): relay it.
    Latched,
    /// Not from the party: drop it (and count it).
    Reject,
}

/// One party's source, for one port (RTP or RTCP). See the module docs.
#[derive(Clone, Debug)]
pub struct Latch {
    symmetric: bool,
    described: Option<SocketAddr>,
    latched: Option<SocketAddr>,
    /// When a packet from the latched source last came.
    last_ms: u64,
    /// A new source proving itself: where, its SSRC, valid packets so far.
    candidate: Option<(SocketAddr, u32, u32)>,
}

impl Latch {
    /// A party described at `described`; `symmetric`: learn from packets.
    pub fn new(symmetric: bool, described: Option<SocketAddr>) -> Latch {
        Latch { symmetric, described, latched: None, last_ms: 0, candidate: None }
    }

    /// The address described; a new one starts over.
    pub fn describe(&mut self, described: Option<SocketAddr>) {
        if described != self.described {
            *self = Latch::new(self.symmetric, described);
        }
    }

    /// Where the party is sent media.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.described)
    }

    /// Where packets were latched from, if they were.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// A packet from `from` at `now_ms`; `valid`: it passed the stream's
    /// checks; `ssrc`: its RTP SSRC (0 for RTCP).
    pub fn check(&mut self, from: SocketAddr, valid: bool, ssrc: u32, now_ms: u64) -> Verdict {
        if !self.symmetric {
            return if Some(from) == self.described { Verdict::Accept } else { Verdict::Reject };
        }
        match self.latched {
            Some(l) if l == from => {
                self.last_ms = now_ms;
                self.candidate = None;
                Verdict::Accept
            }
            None if valid => {
                self.latched = Some(from);
                self.last_ms = now_ms;
                Verdict::Latched
            }
            None => Verdict::Reject,
            Some(_) if !valid || now_ms.saturating_sub(self.last_ms) < RELATCH_AFTER_MS => {
                self.candidate = None;
                Verdict::Reject
            }
            Some(_) => {
                let seen = match self.candidate {
                    Some((addr, s, n)) if addr == from && s == ssrc => n + 1,
                    _ => 1,
                };
                if seen >= RELATCH_PACKETS {
                    self.latched = Some(from);
                    self.last_ms = now_ms;
                    self.candidate = None;
                    Verdict::Latched
                } else {
                    self.candidate = Some((from, ssrc, seen));
                    Verdict::Reject
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn strict_accepts_only_the_described_address() {
        let mut l = Latch::new(false, Some(a("10.0.0.2:4000")));
        assert_eq!(l.check(a("10.0.0.2:4000"), true, 1, 0), Verdict::Accept);
        assert_eq!(l.check(a("203.0.113.1:61000"), true, 1, 0), Verdict::Reject);
        assert_eq!(l.destination(), Some(a("10.0.0.2:4000")));
    }

    #[test]
    fn symmetric_latches_the_first_valid_source_and_keeps_it() {
        let nat = a("203.0.113.1:61000");
        let mut l = Latch::new(true, Some(a("10.0.0.2:4000")));
        assert_eq!(l.check(a("198.51.100.66:1234"), false, 9, 0), Verdict::Reject, "invalid: never latched");
        assert_eq!(l.destination(), Some(a("10.0.0.2:4000")), "the description until then");
        assert_eq!(l.check(nat, true, 7, 10), Verdict::Latched);
        assert_eq!(l.destination(), Some(nat));
        assert_eq!(
            l.check(a("198.51.100.66:1234"), true, 9, 20),
            Verdict::Reject,
            "another source, the latched one active"
        );
        assert_eq!(l.check(nat, true, 7, 30), Verdict::Accept);
    }

    #[test]
    fn a_silent_latched_source_is_replaced_only_by_a_steady_valid_one() {
        let (old, new) = (a("203.0.113.1:61000"), a("203.0.113.1:62000"));
        let mut l = Latch::new(true, None);
        l.check(old, true, 7, 0);
        let quiet = RELATCH_AFTER_MS + 100;
        for i in 0..RELATCH_PACKETS - 1 {
            assert_eq!(l.check(new, true, 8, quiet + u64::from(i)), Verdict::Reject);
        }
        assert_eq!(l.check(new, false, 8, quiet + 10), Verdict::Reject, "an invalid packet breaks the run");
        for i in 0..RELATCH_PACKETS - 1 {
            assert_eq!(l.check(new, true, 8, quiet + 20 + u64::from(i)), Verdict::Reject);
        }
        assert_eq!(l.check(new, true, 8, quiet + 30), Verdict::Latched);
        assert_eq!(l.destination(), Some(new));
        // The old source is now the stranger, and the new one is not silent.
        assert_eq!(l.check(old, true, 7, quiet + 40), Verdict::Reject);
    }

    #[test]
    fn a_new_description_starts_over() {
        let mut l = Latch::new(true, Some(a("10.0.0.2:4000")));
        l.check(a("203.0.113.1:61000"), true, 7, 0);
        l.describe(Some(a("10.0.0.2:4000")));
        assert_eq!(l.latched(), Some(a("203.0.113.1:61000")), "the same description: kept");
        l.describe(Some(a("10.0.0.9:4000")));
        assert_eq!((l.latched(), l.destination()), (None, Some(a("10.0.0.9:4000"))));
    }
}
