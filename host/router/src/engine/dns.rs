//! Target host names resolved to addresses, sans-IO: the engine asks for a
//! name ([`Engine::poll_resolve`](super::Engine::poll_resolve)), the driver
//! looks it up (A/AAAA through the system resolver, off the engine's loop)
//! and answers ([`Engine::handle_resolved`](super::Engine::handle_resolved)).
//! Calls waiting on a name resume when the answer comes; a call tries the
//! name's addresses in order (`attempts.rs`).
//!
//! The system resolver gives no TTL, so answers are kept [`KEEP_ANSWER`]
//! and failures [`KEEP_FAILURE`]. SRV and NAPTR records (RFC 3263) are not
//! looked up: a name's port is the URI's, else the transport's default.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long an answer is used before the name is looked up again.
pub(crate) const KEEP_ANSWER: Duration = Duration::from_secs(60);
/// How long a failed lookup is remembered (calls meanwhile skip the name).
pub(crate) const KEEP_FAILURE: Duration = Duration::from_secs(10);
/// Most names remembered; beyond, expired and then settled names are forgotten.
const MAX_NAMES: usize = 10_000;

/// What is known of one name.
enum Name {
    /// Asked; these calls wait for the answer.
    Pending {
        calls: Vec<u64>,
    },
    Known {
        addrs: Vec<IpAddr>,
        until: Instant,
    },
    Failed {
        why: String,
        until: Instant,
    },
}

/// What [`Dns::lookup`] found.
#[derive(Debug, PartialEq)]
pub(crate) enum Lookup<'a> {
    Addrs(&'a [IpAddr]),
    Failed(&'a str),
    /// Being looked up: the call is resumed with the answer.
    Wait,
}

/// The engine's view of name resolution: cache, pending names, questions
/// for the driver.
#[derive(Default)]
pub(crate) struct Dns {
    names: HashMap<String, Name>,
    questions: VecDeque<String>,
}

impl Dns {
    /// The addresses of `name` if known, else ask for them and have `call`
    /// wait for the answer.
    pub(crate) fn lookup(&mut self, now: Instant, name: &str, call: u64) -> Lookup<'_> {
        let key = name.to_ascii_lowercase();
        let fresh = match self.names.get(&key) {
            Some(Name::Known { until, .. } | Name::Failed { until, .. }) => *until > now,
            Some(Name::Pending { .. }) => true,
            None => false,
        };
        if !fresh {
            self.make_room(now);
            self.questions.push_back(key.clone());
            self.names.insert(key.clone(), Name::Pending { calls: Vec::new() });
        }
        match self.names.get_mut(&key).expect("present or just inserted") {
            Name::Pending { calls } => {
                if !calls.contains(&call) {
                    calls.push(call);
                }
                Lookup::Wait
            }
            Name::Known { addrs, .. } => Lookup::Addrs(addrs),
            Name::Failed { why, .. } => Lookup::Failed(why),
        }
    }

    /// The next name the driver must look up.
    pub(crate) fn poll(&mut self) -> Option<String> {
        self.questions.pop_front()
    }

    /// The driver's answer for `name`; returns the calls that waited for it.
    /// An answer nobody asked for (or for a name already answered) is ignored.
    pub(crate) fn answer(&mut self, now: Instant, name: &str, result: Result<Vec<IpAddr>, String>) -> Vec<u64> {
        let key = name.to_ascii_lowercase();
        let Some(Name::Pending { calls }) = self.names.get_mut(&key) else { return Vec::new() };
        let calls = std::mem::take(calls);
        let settled = match result {
            Ok(addrs) if !addrs.is_empty() => Name::Known { addrs, until: now + KEEP_ANSWER },
            Ok(_) => Name::Failed { why: "no address".into(), until: now + KEEP_FAILURE },
            Err(why) => Name::Failed { why, until: now + KEEP_FAILURE },
        };
        self.names.insert(key, settled);
        calls
    }

    /// Keep the cache bounded: forget expired names, then, if still full,
    /// every settled one (pending names have calls waiting on them).
    fn make_room(&mut self, now: Instant) {
        if self.names.len() < MAX_NAMES {
            return;
        }
        self.names.retain(|_, n| match n {
            Name::Known { until, .. } | Name::Failed { until, .. } => *until > now,
            Name::Pending { .. } => true,
        });
        if self.names.len() >= MAX_NAMES {
            self.names.retain(|_, n| matches!(n, Name::Pending { .. }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_name_is_asked_once_answered_to_every_waiting_call_then_kept() {
        let t0 = Instant::now();
        let mut dns = Dns::default();
        assert_eq!(dns.lookup(t0, "PBX.example", 1), Lookup::Wait);
        assert_eq!(dns.lookup(t0, "pbx.example", 2), Lookup::Wait);
        assert_eq!(dns.poll().as_deref(), Some("pbx.example"));
        assert_eq!(dns.poll(), None, "asked once for both calls");
        assert_eq!(dns.answer(t0, "pbx.example", Ok(vec![ip("192.0.2.7")])), vec![1, 2]);
        assert_eq!(dns.lookup(t0 + Duration::from_secs(59), "pbx.example", 3), Lookup::Addrs(&[ip("192.0.2.7")]));
        assert_eq!(dns.poll(), None, "answered from the cache");
        assert_eq!(dns.lookup(t0 + KEEP_ANSWER, "pbx.example", 4), Lookup::Wait, "expired: asked again");
        assert_eq!(dns.poll().as_deref(), Some("pbx.example"));
    }

    #[test]
    fn a_failure_is_remembered_for_a_while() {
        let t0 = Instant::now();
        let mut dns = Dns::default();
        assert_eq!(dns.lookup(t0, "gone.example", 1), Lookup::Wait);
        assert_eq!(dns.answer(t0, "gone.example", Err("not found".into())), vec![1]);
        assert_eq!(dns.lookup(t0 + Duration::from_secs(1), "gone.example", 2), Lookup::Failed("not found"));
        assert_eq!(dns.lookup(t0 + KEEP_FAILURE, "gone.example", 3), Lookup::Wait);
        assert_eq!(dns.answer(t0 + KEEP_FAILURE, "gone.example", Ok(vec![])), vec![3]);
        assert_eq!(dns.lookup(t0 + KEEP_FAILURE, "gone.example", 4), Lookup::Failed("no address"));
    }

    #[test]
    fn unasked_answers_are_ignored_and_the_cache_stays_bounded() {
        let t0 = Instant::now();
        let mut dns = Dns::default();
        assert!(dns.answer(t0, "never.example", Ok(vec![ip("192.0.2.1")])).is_empty());
        assert_eq!(dns.lookup(t0, "never.example", 1), Lookup::Wait, "the stray answer was not cached");
        for n in 0..MAX_NAMES + 10 {
            let name = format!("n{n}.example");
            dns.lookup(t0, &name, 1);
            dns.answer(t0, &name, Ok(vec![ip("192.0.2.1")]));
        }
        assert!(dns.names.len() <= MAX_NAMES);
    }
}
