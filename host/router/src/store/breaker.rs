//! A circuit breaker for a shared store: after a run of failures the store
//! counts as down and calls fail at once instead of each waiting out its
//! deadline; after a pause one call probes it, and a success closes the
//! circuit again. Sans-IO: the time is passed in.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where the circuit stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit {
    /// Calls go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// Calls fail at once until `until`.
    Open { until: Instant },
    /// One call is probing the store; the others fail at once.
    Probing,
}

/// The breaker: shared by every caller of one store.
pub struct Breaker {
    circuit: Mutex<Circuit>,
    /// Failures in a row that open the circuit.
    open_after: u32,
    /// How long it stays open before a probe.
    open_for: Duration,
}

impl Breaker {
    pub fn new(open_after: u32, open_for: Duration) -> Self {
        Breaker { circuit: Mutex::new(Circuit::Closed { failures: 0 }), open_after: open_after.max(1), open_for }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Circuit> {
        self.circuit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go to the store now (an open circuit past its
    /// pause lets this one call through as the probe).
    pub fn admit(&self, now: Instant) -> bool {
        let mut c = self.lock();
        match *c {
            Circuit::Closed { .. } => true,
            Circuit::Open { until } if now >= until => {
                *c = Circuit::Probing;
                true
            }
            Circuit::Open { .. } | Circuit::Probing => false,
        }
    }

    /// The store answered.
    pub fn succeeded(&self) {
        *self.lock() = Circuit::Closed { failures: 0 };
    }

    /// The store failed or did not answer in time. True when this opened
    /// the circuit (the store has just gone down).
    pub fn failed(&self, now: Instant) -> bool {
        let mut c = self.lock();
        let (next, opened) = match *c {
            Circuit::Closed { failures } if failures + 1 >= self.open_after => {
                (Circuit::Open { until: now + self.open_for }, true)
            }
            Circuit::Closed { failures } => (Circuit::Closed { failures: failures + 1 }, false),
            Circuit::Probing | Circuit::Open { .. } => (Circuit::Open { until: now + self.open_for }, false),
        };
        *c = next;
        opened
    }

    /// The circuit now.
    pub fn circuit(&self) -> Circuit {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_a_run_of_failures_probes_once_and_closes_on_success() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let b = Breaker::new(3, Duration::from_secs(1));
        assert!(b.admit(at(0)));
        assert!(!b.failed(at(0)));
        b.succeeded();
        // A success in between resets the run.
        assert!(!b.failed(at(1)) && !b.failed(at(2)));
        assert!(b.failed(at(3)), "the third failure in a row opens it");
        assert!(!b.admit(at(4)) && !b.admit(at(1002)), "open: fail fast for a second");
        assert!(b.admit(at(1003)), "then one probe");
        assert!(!b.admit(at(1004)), "only one");
        assert!(!b.failed(at(1010)), "a failed probe re-opens it (not a new opening)");
        assert_eq!(b.circuit(), Circuit::Open { until: at(2010) });
        assert!(!b.admit(at(2000)) && b.admit(at(2010)));
        b.succeeded();
        assert_eq!(b.circuit(), Circuit::Closed { failures: 0 });
        assert!(b.admit(at(2011)));
    }
}
