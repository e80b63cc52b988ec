//! Digest brute force stopped: a source address that fails digest
//! authentication `failures` times within `window` is banned for `ban`
//! (fail2ban's way, by default 5 failures in 60 s, 10 minutes), in constant
//! memory: a fixed table of slots indexed by a keyed hash of the address,
//! as the flood limits. Two sources that collide share a slot (the key is
//! random per process, so a peer cannot aim at another's slot).
//!
//! A banned source's terminating INVITEs get no answer at all (silence):
//! no oracle for the guesser, no amplification, and its own retransmission
//! timers slow it down; its other requests are served as usual.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The rule: `failures` within `window` ban for `ban`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanRule {
    pub failures: u32,
    pub window: Duration,
    pub ban: Duration,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// The last address that failed here (for the log and the API).
    ip: Option<IpAddr>,
    failures: u32,
    window_start: Option<Instant>,
    banned_until: Option<Instant>,
}

/// Failed attempts and bans per source address, bounded.
pub(crate) struct AuthBans {
    slots: Box<[Slot]>,
    rule: BanRule,
    hasher: RandomState,
    /// Bans started since the router started (for the metrics).
    pub(crate) bans_started: u64,
    /// Requests refused (dropped) because their source was banned.
    pub(crate) refused: u64,
}

impl AuthBans {
    pub(crate) fn new(rule: BanRule, slots: usize) -> AuthBans {
        AuthBans {
            slots: vec![Slot::default(); slots.max(1)].into_boxed_slice(),
            rule,
            hasher: RandomState::new(),
            bans_started: 0,
            refused: 0,
        }
    }

    fn slot(&mut self, ip: IpAddr) -> &mut Slot {
        let i = (self.hasher.hash_one(ip) % self.slots.len() as u64) as usize;
        &mut self.slots[i]
    }

    /// Whether `ip` is banned at `now` (counted if so).
    pub(crate) fn banned(&mut self, now: Instant, ip: IpAddr) -> bool {
        let banned = self.slot(ip).banned_until.is_some_and(|until| now < until);
        if banned {
            self.refused += 1;
        }
        banned
    }

    /// `ip` failed authentication at `now`; true if that starts a ban.
    pub(crate) fn failed(&mut self, now: Instant, ip: IpAddr) -> bool {
        let rule = self.rule;
        let s = self.slot(ip);
        s.ip = Some(ip);
        if s.window_start.is_none_or(|start| now.saturating_duration_since(start) >= rule.window) {
            s.window_start = Some(now);
            s.failures = 0;
        }
        s.failures += 1;
        if s.failures < rule.failures {
            return false;
        }
        s.failures = 0;
        s.window_start = None;
        s.banned_until = Some(now + rule.ban);
        self.bans_started += 1;
        true
    }

    /// Lift the ban on `ip` (and forget its failures); true if it was banned.
    pub(crate) fn lift(&mut self, now: Instant, ip: IpAddr) -> bool {
        let s = self.slot(ip);
        let was = s.banned_until.is_some_and(|until| now < until);
        *s = Slot::default();
        was
    }

    /// The sources banned at `now`, with the seconds left.
    pub(crate) fn list(&self, now: Instant) -> Vec<(IpAddr, u64)> {
        self.slots
            .iter()
            .filter_map(|s| {
                let left = s.banned_until?.checked_duration_since(now)?;
                Some((s.ip?, left.as_secs().max(1)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_in_a_minute_ban_for_the_ban_time_and_others_are_spared() {
        let rule = BanRule { failures: 5, window: Duration::from_secs(60), ban: Duration::from_secs(600) };
        let mut b = AuthBans::new(rule, 1024);
        let (t0, guesser, other): (Instant, IpAddr, IpAddr) =
            (Instant::now(), "192.0.2.66".parse().unwrap(), "198.51.100.7".parse().unwrap());
        // Four failures, a minute apart from the fifth: no ban.
        for _ in 0..4 {
            assert!(!b.failed(t0, guesser));
        }
        assert!(!b.failed(t0 + Duration::from_secs(61), guesser), "a new window");
        assert!(!b.banned(t0 + Duration::from_secs(61), guesser));
        // Five within the window: banned.
        let t1 = t0 + Duration::from_secs(200); // the window of the failure at 61 s is over
        let started: Vec<bool> = (0..5).map(|i| b.failed(t1 + Duration::from_secs(i), guesser)).collect();
        assert_eq!(started, [false, false, false, false, true]);
        assert!(b.banned(t1 + Duration::from_secs(10), guesser));
        assert!(!b.banned(t1 + Duration::from_secs(10), other), "another source is spared");
        assert_eq!(b.list(t1 + Duration::from_secs(4)), [(guesser, 600)]);
        assert!(b.banned(t1 + Duration::from_secs(603), guesser));
        assert!(!b.banned(t1 + Duration::from_secs(605), guesser), "the ban ends");
        assert_eq!((b.bans_started, b.refused), (1, 2));
        // Lifted through the API.
        for i in 0..5 {
            b.failed(t1 + Duration::from_secs(700 + i), guesser);
        }
        assert!(b.banned(t1 + Duration::from_secs(705), guesser));
        assert!(b.lift(t1 + Duration::from_secs(705), guesser));
        assert!(!b.banned(t1 + Duration::from_secs(705), guesser));
        assert!(b.list(t1 + Duration::from_secs(705)).is_empty());
    }

    #[test]
    fn memory_is_bounded_whatever_the_number_of_sources() {
        let rule = BanRule { failures: 1, window: Duration::from_secs(60), ban: Duration::from_secs(600) };
        let mut b = AuthBans::new(rule, 64);
        let t0 = Instant::now();
        for n in 0..100_000u32 {
            b.failed(t0, IpAddr::from(n.to_be_bytes()));
        }
        assert_eq!(b.slots.len(), 64);
        assert!(b.list(t0).len() <= 64);
    }
}
