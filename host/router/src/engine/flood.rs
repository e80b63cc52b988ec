//! Per-source rate limits (token buckets) for OPTIONS keep-alives and new
//! INVITEs, in constant memory: a fixed table of buckets indexed by a keyed
//! hash of the source IP. Rotating ports or addresses cannot grow it; two
//! sources that collide share a bucket (the key is random per process, so a
//! peer cannot aim a collision at another).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// One limit: `rate` tokens a second, up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    tokens: f64,
    last: Option<Instant>,
    /// When the current refusal window started (for "logged once per window").
    refused_since: Option<Instant>,
}

/// What to do with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    /// Over the limit; `first` is the first refusal of this window (answer
    /// it and log it; later ones are dropped silently).
    Refuse {
        first: bool,
    },
}

/// Token buckets per source address, bounded.
pub(crate) struct SourceLimiter {
    buckets: Box<[Bucket]>,
    rate: Rate,
    hasher: RandomState,
}

impl SourceLimiter {
    pub(crate) fn new(rate: Rate, slots: usize) -> Self {
        SourceLimiter {
            buckets: vec![Bucket::default(); slots.max(1)].into_boxed_slice(),
            rate,
            hasher: RandomState::new(),
        }
    }

    /// Take a token for `ip` at `now`.
    pub(crate) fn check(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        let i = (self.hasher.hash_one(ip) % self.buckets.len() as u64) as usize;
        let rate = self.rate;
        let b = &mut self.buckets[i];
        let elapsed = b.last.map(|l| now.saturating_duration_since(l).as_secs_f64()).unwrap_or(f64::INFINITY);
        b.tokens = (b.tokens + elapsed * rate.per_second).min(rate.burst);
        b.last = Some(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.refused_since = None;
            return Verdict::Allow;
        }
        // A window lasts as long as one token takes to come back.
        let window = Duration::from_secs_f64((1.0 / rate.per_second).min(3600.0));
        let first = b.refused_since.is_none_or(|s| now.saturating_duration_since(s) >= window);
        if first {
            b.refused_since = Some(now);
        }
        Verdict::Refuse { first }
    }

    /// Seconds until a token is back (for Retry-After).
    pub(crate) fn retry_after_secs(&self) -> u64 {
        (1.0 / self.rate.per_second).ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval_and_bounded_memory() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(Rate { per_second: 0.1, burst: 3.0 }, 64);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..5).map(|_| l.check(t0, ip)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Allow,
                Verdict::Allow,
                Verdict::Allow,
                Verdict::Refuse { first: true },
                Verdict::Refuse { first: false }
            ]
        );
        assert_eq!(l.check(t0 + Duration::from_secs(5), ip), Verdict::Refuse { first: false }, "half a token");
        assert_eq!(l.check(t0 + Duration::from_secs(10), ip), Verdict::Allow, "one token per 10 s");
        assert_eq!(l.check(t0 + Duration::from_secs(10), ip), Verdict::Refuse { first: true }, "a new window");
        assert_eq!(l.retry_after_secs(), 10);
        // A million rotating addresses: the table stays at 64 buckets.
        for n in 0..1_000_000u32 {
            l.check(t0, IpAddr::from(n.to_be_bytes()));
        }
        assert_eq!(l.buckets.len(), 64);
    }
}
