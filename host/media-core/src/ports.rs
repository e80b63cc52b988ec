//! RTP/RTCP port pairs from a configured range, sans-IO.
//!
//! Each anchored stream takes a pair: an even RTP port and the odd port
//! after it for RTCP (RFC 3550 §11), used or not (with `a=rtcp-mux` RTCP
//! shares the RTP port, but the pair stays reserved so that a re-offer
//! without mux still has its port). A released pair rests for
//! [`PortPool::rest`] before it is handed out again, so that late packets
//! of the old stream do not reach the new one. When no pair is free the
//! caller gets [`Exhausted`] (the call is refused with 503), never a panic.
//! A pair the driver could not bind (another program holds one of its
//! ports) is retired: never handed out again.
//!
//! Pairs that finished resting are handed out before pairs never used, so
//! that the set of ports (and the sockets the relay keeps bound for them)
//! stays as small as the load needs.
//!
//! [`PortSource`] is what the call engine takes ports from: this pool in
//! tests, the pool wrapped by the relay (which binds each pair before
//! handing it out) in the router.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// How long a released pair rests by default before reuse: longer than
/// the jitter and the round trip of a late packet of the old stream, short
/// enough that thousands of short calls per second do not hold the range.
pub const DEFAULT_REST: Duration = Duration::from_secs(2);

/// Where a call takes RTP/RTCP port pairs from and gives them back.
pub trait PortSource {
    /// Take a pair: its RTP (even) port; RTCP is the next one.
    fn take(&mut self, now: Instant) -> Result<u16, Exhausted>;
    /// Give back the pair of RTP port `port`.
    fn release(&mut self, now: Instant, port: u16);
    /// Pairs taken and not given back.
    fn in_use(&self) -> usize;
}

/// No port pair is free: the range is too small for the calls in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no free RTP port pair in {first}-{last} ({in_use} in use, {resting} resting before reuse)")]
pub struct Exhausted {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range.
    pub last: u16,
    /// Pairs taken.
    pub in_use: usize,
    /// Pairs released and not yet reusable.
    pub resting: usize,
}

/// Why a range cannot make a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The range holds no even port with an odd port after it.
    #[error("the port range {0}-{1} holds no RTP/RTCP pair (an even port and the next)")]
    NoPair(u16, u16),
}

/// The pool of pairs. See the module docs.
#[derive(Debug)]
pub struct PortPool {
    first: u16,
    last: u16,
    free: VecDeque<u16>,
    resting: VecDeque<(Instant, u16)>,
    /// Whether each pair (by `(port - base) / 2`) is taken: a pair given
    /// back twice, or never taken, is ignored.
    taken: Vec<bool>,
    base: u16,
    in_use: usize,
    /// Pairs retired (could not be bound).
    retired: usize,
    rest: Duration,
}

impl PortPool {
    /// A pool of every even port in `range` whose next port is in it too;
    /// released pairs rest `rest`.
    pub fn new(range: RangeInclusive<u16>, rest: Duration) -> Result<PortPool, RangeError> {
        let (first, last) = (*range.start(), *range.end());
        let free: VecDeque<u16> = (first..last).filter(|p| p % 2 == 0).collect();
        let Some(&base) = free.front() else { return Err(RangeError::NoPair(first, last)) };
        let taken = vec![false; free.len()];
        Ok(PortPool { first, last, free, resting: VecDeque::new(), taken, base, in_use: 0, retired: 0, rest })
    }

    /// How long a released pair rests.
    pub fn rest(&self) -> Duration {
        self.rest
    }

    /// Take a pair: its RTP (even) port; RTCP is the next one.
    pub fn take(&mut self, now: Instant) -> Result<u16, Exhausted> {
        while let Some(&(since, port)) = self.resting.front() {
            if now.saturating_duration_since(since) < self.rest {
                break;
            }
            self.resting.pop_front();
            self.free.push_front(port);
        }
        match self.free.pop_front() {
            Some(port) => {
                self.taken[usize::from((port - self.base) / 2)] = true;
                self.in_use += 1;
                Ok(port)
            }
            None => {
                Err(Exhausted { first: self.first, last: self.last, in_use: self.in_use, resting: self.resting.len() })
            }
        }
    }

    /// Give back the pair of RTP port `port` (taken from this pool); it
    /// rests before reuse. A port not taken from this pool is ignored.
    pub fn release(&mut self, now: Instant, port: u16) {
        let slot = port.checked_sub(self.base).filter(|d| d % 2 == 0).map(|d| usize::from(d / 2));
        let Some(taken) = slot.and_then(|s| self.taken.get_mut(s)).filter(|t| **t) else { return };
        *taken = false;
        self.in_use -= 1;
        self.resting.push_back((now, port));
    }

    /// Hand out the free pairs from the `n`-th (modulo their number) on,
    /// wrapping around.
    pub fn rotate(&mut self, n: u64) {
        if !self.free.is_empty() {
            let k = (n % self.free.len() as u64) as usize;
            self.free.rotate_left(k);
        }
    }

    /// Never hand out the pair of RTP port `port` (taken from this pool)
    /// again: one of its ports cannot be bound.
    pub fn retire(&mut self, port: u16) {
        let slot = port.checked_sub(self.base).filter(|d| d % 2 == 0).map(|d| usize::from(d / 2));
        let Some(taken) = slot.and_then(|s| self.taken.get_mut(s)).filter(|t| **t) else { return };
        *taken = false;
        self.in_use -= 1;
        self.retired += 1;
    }

    /// Pairs retired by [`PortPool::retire`].
    pub fn retired(&self) -> usize {
        self.retired
    }

    /// Pairs resting before reuse.
    pub fn resting(&self) -> usize {
        self.resting.len()
    }

    /// Pairs taken and not released.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Pairs in the range.
    pub fn capacity(&self) -> usize {
        self.free.len() + self.resting.len() + self.in_use
    }
}

impl PortSource for PortPool {
    fn take(&mut self, now: Instant) -> Result<u16, Exhausted> {
        PortPool::take(self, now)
    }

    fn release(&mut self, now: Instant, port: u16) {
        PortPool::release(self, now, port)
    }

    fn in_use(&self) -> usize {
        PortPool::in_use(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_ports_with_their_odd_neighbour_in_range() {
        let t0 = Instant::now();
        let mut pool = PortPool::new(30001..=30008, DEFAULT_REST).unwrap();
        assert_eq!(pool.capacity(), 3, "30002, 30004, 30006 (30008 has no 30009)");
        assert_eq!([pool.take(t0), pool.take(t0), pool.take(t0)], [Ok(30002), Ok(30004), Ok(30006)]);
        assert_eq!(pool.take(t0), Err(Exhausted { first: 30001, last: 30008, in_use: 3, resting: 0 }));
        assert_eq!(PortPool::new(7..=7, DEFAULT_REST).unwrap_err(), RangeError::NoPair(7, 7));
        let (hi, lo) = (9, 2);
        assert_eq!(PortPool::new(hi..=lo, DEFAULT_REST).unwrap_err(), RangeError::NoPair(9, 2), "an empty range");
    }

    #[test]
    fn a_released_pair_rests_before_it_is_reused() {
        let t0 = Instant::now();
        let rest = Duration::from_secs(30);
        let mut pool = PortPool::new(40000..=40003, rest).unwrap();
        let (a, b) = (pool.take(t0).unwrap(), pool.take(t0).unwrap());
        pool.release(t0, a);
        let e = pool.take(t0 + Duration::from_secs(29)).unwrap_err();
        assert_eq!((e.in_use, e.resting), (1, 1));
        assert_eq!(e.to_string(), "no free RTP port pair in 40000-40003 (1 in use, 1 resting before reuse)");
        assert_eq!(pool.take(t0 + rest), Ok(a));
        pool.release(t0, b);
        pool.release(t0, b); // twice: ignored
        pool.release(t0, 40001); // odd: not a pair
        pool.release(t0, 50000); // not ours
        assert_eq!((pool.in_use(), pool.capacity()), (1, 2));
        assert_eq!(pool.take(t0 + rest), Ok(b));
        assert!(pool.take(t0 + rest).is_err(), "b was queued once");
    }

    #[test]
    fn rested_pairs_come_before_pairs_never_used_and_retired_ones_never_come_back() {
        let t0 = Instant::now();
        let rest = Duration::from_secs(2);
        let mut pool = PortPool::new(40000..=40007, rest).unwrap();
        let a = pool.take(t0).unwrap();
        pool.release(t0, a);
        assert_eq!(pool.take(t0), Ok(40002), "a rests");
        assert_eq!(pool.take(t0 + rest), Ok(a), "then a again, before 40004 was ever used");
        pool.retire(40002);
        pool.retire(40002); // twice: ignored
        assert_eq!((pool.in_use(), pool.retired()), (1, 1));
        pool.release(t0 + rest, 40002); // retired, not taken: ignored
        assert_eq!(pool.take(t0 + rest * 9), Ok(40004));
        assert_eq!(pool.take(t0 + rest * 9), Ok(40006));
        assert!(pool.take(t0 + rest * 9).is_err());
    }
}
