//! Target health: OPTIONS pings to each origination URI and carrier gateway
//! whose trunk or carrier sets `health_check_interval_secs`. A target is
//! down after `health_check_down_after` pings in a row got no answer (any
//! response counts as an answer: the target is there), and up again after
//! `health_check_up_after` answers in a row. Routing skips a target that
//! is down at once (the caller does not wait out the failover timeout),
//! unless every target left is down: then they are tried anyway.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use trunkline_sip_core::message::Message;
use trunkline_sip_core::transaction::{ClientEvent, TransactionKey};
use trunkline_sip_core::Peer;

use super::build::{self, uri_destination, Destination};
use super::dns::{Answer, Lookup, Question};
use super::{Engine, Timer};
use crate::config::Settings;

/// The DNS waiter id of pings (a name's answer needs no resumption: the
/// next ping finds it in the cache).
pub(crate) const PROBE_WAITER: u64 = 1 << 62;
/// Longest wait for a ping's answer (shorter if the interval is).
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// A ping whose target's name is being looked up is tried again after this.
const RETRY: Duration = Duration::from_secs(1);

/// One target's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetHealth {
    /// The configured URI.
    pub uri: String,
    /// Routing skips it (unless every target left is down).
    pub up: bool,
    /// Pings in a row without an answer (while up), answers in a row (while down).
    pub streak: u32,
    pub pings: u64,
    pub answers: u64,
    /// The last answer's status.
    pub last_status: Option<u16>,
}

struct Probe {
    health: TargetHealth,
    interval: Duration,
    /// The ping in flight: its transaction and when it was sent.
    in_flight: Option<TransactionKey>,
}

/// Every probed target.
#[derive(Default)]
pub(crate) struct Probes {
    probes: Vec<Probe>,
    by_uri: HashMap<String, usize>,
    by_tx: HashMap<TransactionKey, usize>,
    /// Bumped at each reconfiguration: timers of an older one are stale.
    generation: u32,
    down_after: u32,
    up_after: u32,
}

impl Probes {
    /// Whether `uri` is probed and down.
    pub(crate) fn is_down(&self, uri: &str) -> bool {
        self.by_uri.get(uri).is_some_and(|&i| !self.probes[i].health.up)
    }

    pub(crate) fn snapshot(&self) -> Vec<TargetHealth> {
        self.probes.iter().map(|p| p.health.clone()).collect()
    }

    pub(crate) fn owns(&self, key: &TransactionKey) -> bool {
        self.by_tx.contains_key(key)
    }
}

impl Engine {
    /// Probe the targets `settings` asks to (keeping what is known of those
    /// probed before), the first pings now.
    pub fn start_health_checks(&mut self, now: Instant) {
        let s = self.settings.clone();
        let old = std::mem::take(&mut self.health);
        let mut next = Probes {
            generation: old.generation.wrapping_add(1),
            down_after: s.health.down_after,
            up_after: s.health.up_after,
            ..Probes::default()
        };
        for (uri, interval) in targets(&s) {
            if next.by_uri.contains_key(&uri) {
                continue;
            }
            let health = old.by_uri.get(&uri).map(|&i| old.probes[i].health.clone()).unwrap_or(TargetHealth {
                uri: uri.clone(),
                up: true,
                streak: 0,
                pings: 0,
                answers: 0,
                last_status: None,
            });
            next.by_uri.insert(uri, next.probes.len());
            next.probes.push(Probe { health, interval, in_flight: None });
        }
        for t in old.by_tx.keys() {
            self.layer.abandon(t);
        }
        let generation = next.generation;
        for i in 0..next.probes.len() {
            self.timers.push(Reverse((now, i as u64, Timer::Ping(generation))));
        }
        self.health = next;
    }

    /// The targets' health, as the API and the metrics show it.
    pub fn target_health(&self) -> Vec<TargetHealth> {
        self.health.snapshot()
    }

    /// Time for probe `i`'s ping.
    pub(super) fn ping_due(&mut self, now: Instant, i: usize, generation: u32) {
        if generation != self.health.generation {
            return;
        }
        let Some((uri, interval)) = self.health.probes.get(i).map(|p| (p.health.uri.clone(), p.interval)) else {
            return;
        };
        let next = now + interval;
        let peer = match uri_destination(&uri) {
            Some(Destination::Addr(peer)) => Some(peer),
            Some(Destination::Name { transport, host, port, .. }) => {
                match self.dns.lookup(now, &Question::Host(host), PROBE_WAITER) {
                    Lookup::Found(Answer::Addrs(a)) if !a.is_empty() => Some(Destination::at(transport, a[0], port)),
                    Lookup::Wait => {
                        self.timers.push(Reverse((now + RETRY, i as u64, Timer::Ping(generation))));
                        return;
                    }
                    _ => None, // no address: as good as no answer
                }
            }
            None => None,
        };
        self.timers.push(Reverse((next, i as u64, Timer::Ping(generation))));
        // The previous ping still unanswered (its timeout not run yet): a miss.
        if let Some(old) = self.health.probes[i].in_flight.take() {
            self.health.by_tx.remove(&old);
            self.layer.abandon(&old);
            self.ping_result(i, None);
        }
        let Some(peer) = peer.filter(|p| self.locals.serves(p.transport)) else {
            return self.ping_result(i, None);
        };
        let options = self.ping_request(&uri, peer);
        let Some(tx) = self.layer.send_request(now, peer, options) else { return };
        let p = &mut self.health.probes[i];
        p.in_flight = Some(tx.clone());
        p.health.pings += 1;
        self.health.by_tx.insert(tx, i);
        let wait = PING_TIMEOUT.min(interval);
        self.timers.push(Reverse((now + wait, i as u64, Timer::PingTimeout(generation, p.health.pings))));
    }

    /// Probe `i`'s ping number `ping` got no answer in time.
    pub(super) fn ping_timed_out(&mut self, i: usize, generation: u32, ping: u64) {
        if generation != self.health.generation {
            return;
        }
        let Some(p) = self.health.probes.get_mut(i) else { return };
        if p.health.pings != ping {
            return;
        }
        if let Some(tx) = p.in_flight.take() {
            self.health.by_tx.remove(&tx);
            self.layer.abandon(&tx);
            self.ping_result(i, None);
        }
    }

    /// An event of a ping's transaction.
    pub(super) fn on_ping_event(&mut self, key: &TransactionKey, event: ClientEvent) {
        let status = match &event {
            ClientEvent::Provisional(_) => return,
            ClientEvent::Final(m) => trunkline_sip_core::transaction::status_of(m),
            ClientEvent::Timeout | ClientEvent::TransportError => 0,
        };
        let Some(i) = self.health.by_tx.remove(key) else { return };
        self.health.probes[i].in_flight = None;
        self.ping_result(i, (status != 0).then_some(status));
    }

    fn ping_result(&mut self, i: usize, status: Option<u16>) {
        let (down_after, up_after) = (self.health.down_after, self.health.up_after);
        let h = &mut self.health.probes[i].health;
        match (status, h.up) {
            (Some(code), true) => {
                h.answers += 1;
                h.last_status = Some(code);
                h.streak = 0;
            }
            (Some(code), false) => {
                h.answers += 1;
                h.last_status = Some(code);
                h.streak += 1;
                if h.streak >= up_after {
                    h.up = true;
                    h.streak = 0;
                    tracing::warn!(target = %h.uri, "target up again: {up_after} OPTIONS answered in a row");
                }
            }
            (None, true) => {
                h.streak += 1;
                if h.streak >= down_after {
                    h.up = false;
                    h.streak = 0;
                    tracing::warn!(target = %h.uri, "target down: {down_after} OPTIONS in a row unanswered; calls skip it");
                }
            }
            (None, false) => h.streak = 0,
        }
    }

    fn ping_request(&mut self, uri: &str, peer: Peer) -> Message {
        let domain = self.settings.domains.first().cloned().unwrap_or_else(|| "trunkline.invalid".into());
        let accept = vec![build::header("Accept", "application/sdp")];
        build::own_request(&self.locals, &mut self.ids, peer.transport, "OPTIONS", uri, ("ping", &domain), accept)
    }
}

/// Each probed target and its interval: origination URIs of trunks, and
/// gateways of carriers, that set `health_check_interval_secs`.
fn targets(s: &Settings) -> Vec<(String, Duration)> {
    let mut out = Vec::new();
    for t in &s.trunks {
        if let Some(every) = t.health_check_interval {
            out.extend(t.origination.iter().filter(|o| o.enabled).map(|o| (o.uri.clone(), every)));
        }
    }
    for c in &s.carriers {
        if let Some(every) = c.health_check_interval {
            out.extend(c.gateways.iter().map(|g| (g.clone(), every)));
        }
    }
    out
}
