//! RFC 3261 timer values (§17, Table 4) and transport reliability.

use std::time::Duration;

/// Base timer values; every RFC 3261 timer derives from these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Maximum time a message can remain in the network (5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers { t1: Duration::from_millis(500), t2: Duration::from_secs(4), t4: Duration::from_secs(5) }
    }
}

impl Timers {
    /// Timers B, F, H, J, L, M: 64*T1 (32 s by default).
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }
}

/// Whether the transport retransmits for us (TCP/TLS) or not (UDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reliability {
    /// UDP: the transaction retransmits and waits for stragglers.
    Unreliable,
    /// TCP/TLS: no retransmissions, no waiting states.
    Reliable,
}

impl Reliability {
    /// `d` on an unreliable transport, zero on a reliable one (timers D, I, J, K).
    pub(crate) fn wait(self, d: Duration) -> Duration {
        match self {
            Reliability::Unreliable => d,
            Reliability::Reliable => Duration::ZERO,
        }
    }
}
