//! Target host names resolved to addresses, sans-IO: the engine asks a
//! [`Question`] ([`Engine::poll_resolve`](super::Engine::poll_resolve)),
//! the driver looks it up off the engine's loop and answers
//! ([`Engine::handle_resolved`](super::Engine::handle_resolved)). Calls
//! waiting on a question resume when the answer comes; a call tries the
//! answers in order (`attempts.rs`).
//!
//! RFC 3263 §4.2: a URI naming a host without a port is first looked up as
//! a SIP service (SRV `_sip._udp.host` or `_sip._tcp.host`); its records,
//! ordered by priority and weight (RFC 2782), give the hosts and ports to
//! try; without SRV records the host itself is used, on the transport's
//! default port. NAPTR records are not looked up (the URI's transport is
//! used), nor SRV for TLS targets (their certificate is checked against the
//! URI's host).
//!
//! Answers are kept [`KEEP_ANSWER`] (the system resolver gives no TTL)
//! and failures [`KEEP_FAILURE`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long an answer is used before the name is looked up again.
pub(crate) const KEEP_ANSWER: Duration = Duration::from_secs(60);
/// How long a failed lookup is remembered (calls meanwhile skip the name).
pub(crate) const KEEP_FAILURE: Duration = Duration::from_secs(10);
/// Most questions remembered; beyond, expired and then settled ones are forgotten.
const MAX_NAMES: usize = 10_000;

/// What the engine asks the driver to look up.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Question {
    /// The A and AAAA records of a host name.
    Host(String),
    /// The SRV records of a service, e.g. `_sip._udp.example.com`.
    Srv(String),
}

impl fmt::Display for Question {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Question::Host(name) => write!(f, "{name}"),
            Question::Srv(name) => write!(f, "SRV {name}"),
        }
    }
}

/// One SRV record (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The host to resolve, without a trailing dot; `.` means "no such service here".
    pub target: String,
}

/// The driver's answer to a [`Question`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A host's addresses, in the resolver's order.
    Addrs(Vec<IpAddr>),
    /// A service's records.
    Srv(Vec<SrvRecord>),
}

impl Answer {
    fn is_empty(&self) -> bool {
        match self {
            Answer::Addrs(a) => a.is_empty(),
            Answer::Srv(r) => r.is_empty(),
        }
    }
}

/// What is known of one question.
enum Known {
    /// Asked; these calls wait for the answer.
    Pending {
        calls: Vec<u64>,
    },
    Answered {
        answer: Answer,
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
    Found(&'a Answer),
    Failed(&'a str),
    /// Being looked up: the call is resumed with the answer.
    Wait,
}

/// The engine's view of name resolution: cache, pending questions,
/// questions for the driver.
#[derive(Default)]
pub(crate) struct Dns {
    names: HashMap<Question, Known>,
    questions: VecDeque<Question>,
}

impl Dns {
    /// The answer to `question` if known, else ask it and have `call`
    /// wait for the answer. Names are compared without case.
    pub(crate) fn lookup(&mut self, now: Instant, question: &Question, call: u64) -> Lookup<'_> {
        let key = lowercase(question);
        let fresh = match self.names.get(&key) {
            Some(Known::Answered { until, .. } | Known::Failed { until, .. }) => *until > now,
            Some(Known::Pending { .. }) => true,
            None => false,
        };
        if !fresh {
            self.make_room(now);
            self.questions.push_back(key.clone());
            self.names.insert(key.clone(), Known::Pending { calls: Vec::new() });
        }
        match self.names.get_mut(&key).expect("present or just inserted") {
            Known::Pending { calls } => {
                if !calls.contains(&call) {
                    calls.push(call);
                }
                Lookup::Wait
            }
            Known::Answered { answer, .. } => Lookup::Found(answer),
            Known::Failed { why, .. } => Lookup::Failed(why),
        }
    }

    /// The next question the driver must look up.
    pub(crate) fn poll(&mut self) -> Option<Question> {
        self.questions.pop_front()
    }

    /// The driver's answer to `question`; returns the calls that waited
    /// for it. An answer nobody asked for (or already given) is ignored.
    pub(crate) fn answer(&mut self, now: Instant, question: &Question, result: Result<Answer, String>) -> Vec<u64> {
        let key = lowercase(question);
        let Some(Known::Pending { calls }) = self.names.get_mut(&key) else { return Vec::new() };
        let calls = std::mem::take(calls);
        let settled = match result {
            Ok(answer) if !answer.is_empty() => Known::Answered { answer, until: now + KEEP_ANSWER },
            Ok(Answer::Addrs(_)) => Known::Failed { why: "no address".into(), until: now + KEEP_FAILURE },
            Ok(Answer::Srv(_)) => Known::Failed { why: "no SRV record".into(), until: now + KEEP_FAILURE },
            Err(why) => Known::Failed { why, until: now + KEEP_FAILURE },
        };
        self.names.insert(key, settled);
        calls
    }

    /// Keep the cache bounded: forget expired questions, then, if still
    /// full, every settled one (pending ones have calls waiting on them).
    fn make_room(&mut self, now: Instant) {
        if self.names.len() < MAX_NAMES {
            return;
        }
        self.names.retain(|_, n| match n {
            Known::Answered { until, .. } | Known::Failed { until, .. } => *until > now,
            Known::Pending { .. } => true,
        });
        if self.names.len() >= MAX_NAMES {
            self.names.retain(|_, n| matches!(n, Known::Pending { .. }));
        }
    }
}

fn lowercase(q: &Question) -> Question {
    match q {
        Question::Host(n) => Question::Host(n.to_ascii_lowercase()),
        Question::Srv(n) => Question::Srv(n.to_ascii_lowercase()),
    }
}

/// `records` in the order to try them (RFC 2782): by priority, and within
/// one priority by weighted random choice (`rand01` in [0, 1)). Empty if
/// the service is declared absent (a single record with target `.`).
pub(crate) fn srv_order(records: &[SrvRecord], mut rand01: impl FnMut() -> f64) -> Vec<SrvRecord> {
    if records.len() == 1 && records[0].target == "." {
        return Vec::new();
    }
    let mut rest: Vec<SrvRecord> = records.iter().filter(|r| r.target != ".").cloned().collect();
    // Weight 0 first within its priority, so that it is chosen only by a
    // draw of 0 (RFC 2782's arrangement).
    rest.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut out = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        let priority = rest[0].priority;
        let group = rest.iter().take_while(|r| r.priority == priority).count();
        let total: u32 = rest[..group].iter().map(|r| u32::from(r.weight)).sum();
        let draw = (rand01() * f64::from(total + 1)) as u32;
        let mut running = 0;
        let pick = rest[..group]
            .iter()
            .position(|r| {
                running += u32::from(r.weight);
                running >= draw
            })
            .unwrap_or(group - 1);
        out.push(rest.remove(pick));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn host(name: &str) -> Question {
        Question::Host(name.into())
    }

    fn addrs(ips: &[&str]) -> Answer {
        Answer::Addrs(ips.iter().map(|s| ip(s)).collect())
    }

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord { priority, weight, port, target: target.into() }
    }

    #[test]
    fn srv_records_go_by_priority_then_weight_and_a_dot_means_no_service() {
        let records = [srv(20, 0, 5, "c"), srv(10, 1, 1, "a"), srv(10, 3, 2, "b"), srv(30, 0, 6, ".")];
        let order = |draw: f64| srv_order(&records, || draw).into_iter().map(|r| r.target).collect::<Vec<_>>();
        // Weights 1 and 3 in priority 10: a draw in [0, 4] picks a up to 1, b above.
        assert_eq!(order(0.0), ["a", "b", "c"]);
        assert_eq!(order(0.9), ["b", "a", "c"]);
        assert!(srv_order(&[srv(0, 0, 0, ".")], || 0.5).is_empty(), "service declared absent");
        let zero = [srv(10, 0, 1, "z"), srv(10, 5, 2, "w")];
        assert_eq!(srv_order(&zero, || 0.0)[0].target, "z", "weight 0 only on a draw of 0");
        assert_eq!(srv_order(&zero, || 0.5)[0].target, "w");
    }

    #[test]
    fn a_name_is_asked_once_answered_to_every_waiting_call_then_kept() {
        let t0 = Instant::now();
        let mut dns = Dns::default();
        assert_eq!(dns.lookup(t0, &host("PBX.example"), 1), Lookup::Wait);
        assert_eq!(dns.lookup(t0, &host("pbx.example"), 2), Lookup::Wait);
        assert_eq!(dns.poll(), Some(host("pbx.example")));
        assert_eq!(dns.poll(), None, "asked once for both calls");
        assert_eq!(dns.answer(t0, &host("pbx.example"), Ok(addrs(&["192.0.2.7"]))), vec![1, 2]);
        let later = t0 + Duration::from_secs(59);
        assert_eq!(dns.lookup(later, &host("pbx.example"), 3), Lookup::Found(&addrs(&["192.0.2.7"])));
        assert_eq!(dns.poll(), None, "answered from the cache");
        assert_eq!(dns.lookup(t0 + KEEP_ANSWER, &host("pbx.example"), 4), Lookup::Wait, "expired: asked again");
        assert_eq!(dns.poll(), Some(host("pbx.example")));
        let service = Question::Srv("_sip._udp.pbx.example".into());
        assert_eq!(dns.lookup(t0, &service, 5), Lookup::Wait, "a service is another question");
        assert_eq!(dns.answer(t0, &service, Ok(Answer::Srv(vec![]))), vec![5]);
        assert_eq!(dns.lookup(t0, &service, 6), Lookup::Failed("no SRV record"));
    }

    #[test]
    fn a_failure_is_remembered_for_a_while() {
        let t0 = Instant::now();
        let mut dns = Dns::default();
        let gone = host("gone.example");
        assert_eq!(dns.lookup(t0, &gone, 1), Lookup::Wait);
        assert_eq!(dns.answer(t0, &gone, Err("not found".into())), vec![1]);
        assert_eq!(dns.lookup(t0 + Duration::from_secs(1), &gone, 2), Lookup::Failed("not found"));
        assert_eq!(dns.lookup(t0 + KEEP_FAILURE, &gone, 3), Lookup::Wait);
        assert_eq!(dns.answer(t0 + KEEP_FAILURE, &gone, Ok(addrs(&[]))), vec![3]);
        assert_eq!(dns.lookup(t0 + KEEP_FAILURE, &gone, 4), Lookup::Failed("no address"));
    }

    #[test]
    fn unasked_answers_are_ignored_and_the_cache_stays_bounded() {
        let t0 = Instant::now();
        let mut dns = Dns::default();
        assert!(dns.answer(t0, &host("never.example"), Ok(addrs(&["192.0.2.1"]))).is_empty());
        assert_eq!(dns.lookup(t0, &host("never.example"), 1), Lookup::Wait, "the stray answer was not cached");
        for n in 0..MAX_NAMES + 10 {
            let name = host(&format!("n{n}.example"));
            dns.lookup(t0, &name, 1);
            dns.answer(t0, &name, Ok(addrs(&["192.0.2.1"])));
        }
        assert!(dns.names.len() <= MAX_NAMES);
    }
}
