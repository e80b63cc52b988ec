//! Reliable provisional responses (RFC 3262, option tag `100rel`), sans-IO.
//!
//! A UAS that sends a 1xx reliably numbers it (`RSeq`), marks it
//! (`Require: 100rel`) and repeats it until a PRACK names it (`RAck`); the
//! UAC acknowledges each new one with a PRACK inside the early dialog. A
//! B2BUA plays both parts, one per leg:
//! - [`Provisionals`]: our reliable 1xx to one INVITE (UAS side, §3);
//! - [`Receipts`]: which reliable 1xx of a target are new and get a PRACK
//!   (UAC side, §4).
//!
//! Method taxonomy of [`Provisionals`], as for transactions: handlers
//! (`send`, `handle_prack`, `handle_timeout`, `stop`), polls
//! (`poll_transmit`, `poll_timeout`), getters (`holds_final`, `failed`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::header::{has_option_tag, CSeq, RAck, RSeq};
use crate::message::{Header, Message, StartLine};
use crate::transaction::{Reliability, Timers};

/// The option tag of RFC 3262.
pub const OPTION_TAG: &str = "100rel";

/// Most reliable provisionals waiting behind the one not yet acknowledged;
/// beyond, the oldest waiting one is dropped (a later 1xx supersedes it).
const MAX_WAITING: usize = 8;

/// Whether `request` requires reliable provisional responses.
pub fn required(request: &Message) -> bool {
    has_option_tag(request, "Require", OPTION_TAG)
}

/// Whether `request` supports (or requires) reliable provisional responses.
pub fn supported(request: &Message) -> bool {
    has_option_tag(request, "Supported", OPTION_TAG) || required(request)
}

/// The RSeq of `response` if it is a reliable provisional response (a
/// 101-199 with `Require: 100rel` and an RSeq).
pub fn rseq_of(response: &Message) -> Option<u32> {
    let StartLine::Response { status: 101..=199, .. } = response.start else { return None };
    if !has_option_tag(response, "Require", OPTION_TAG) {
        return None;
    }
    response.header("RSeq").and_then(RSeq::parse).map(|r| r.0)
}

/// A reliable 1xx sent and not yet acknowledged.
struct Unacknowledged {
    rseq: u32,
    response: Message,
    first_sent: Instant,
    next: Instant,
    interval: Duration,
}

/// Our reliable provisional responses to one INVITE (RFC 3262 §3): one at
/// a time is outstanding; later ones wait for its PRACK. Over an
/// unreliable transport it is repeated at T1, 2*T1, 4*T1...; after 64*T1
/// without a PRACK the exchange has [`failed`](Provisionals::failed) and
/// the INVITE should be rejected with a 5xx.
pub struct Provisionals {
    invite_seq: u32,
    next_rseq: u32,
    retransmit: bool,
    timers: Timers,
    outstanding: Option<Unacknowledged>,
    waiting: VecDeque<Message>,
    transmit: VecDeque<Message>,
    failed: bool,
}

/// What a PRACK acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prack {
    /// The outstanding reliable 1xx (answer the PRACK 200).
    Acknowledged,
    /// No reliable 1xx waiting for it (answer 481, RFC 3262 §3).
    Unknown,
}

impl Provisionals {
    /// Reliable 1xx for the INVITE with CSeq number `invite_seq`, numbered
    /// from `first_rseq` (RFC 3262 §3: chosen at random below 2**31),
    /// sent over a transport of `reliability`.
    pub fn new(invite_seq: u32, first_rseq: u32, reliability: Reliability, timers: Timers) -> Self {
        Provisionals {
            invite_seq,
            next_rseq: first_rseq.clamp(1, (1 << 31) - 1),
            retransmit: reliability == Reliability::Unreliable,
            timers,
            outstanding: None,
            waiting: VecDeque::new(),
            transmit: VecDeque::new(),
            failed: false,
        }
    }

    /// Send `response` (a 101-199 to the INVITE) reliably: now if no other
    /// is waiting for its PRACK, else after it. `Require: 100rel` and the
    /// RSeq are added when it goes.
    pub fn send(&mut self, now: Instant, response: Message) {
        if self.failed {
            return;
        }
        if self.outstanding.is_some() {
            if self.waiting.len() >= MAX_WAITING {
                self.waiting.pop_front();
            }
            self.waiting.push_back(response);
        } else {
            self.start(now, response);
        }
    }

    fn start(&mut self, now: Instant, mut response: Message) {
        let rseq = self.next_rseq;
        self.next_rseq = self.next_rseq.wrapping_add(1).max(1);
        response.headers.retain(|h| !h.name.eq_ignore_ascii_case("RSeq"));
        response.headers.push(Header { name: "Require".into(), value: OPTION_TAG.into() });
        response.headers.push(Header { name: "RSeq".into(), value: rseq.to_string() });
        self.transmit.push_back(response.clone());
        let interval = self.timers.t1;
        self.outstanding = Some(Unacknowledged { rseq, response, first_sent: now, next: now + interval, interval });
    }

    /// A PRACK arrived for this INVITE: does its RAck name the outstanding 1xx?
    pub fn handle_prack(&mut self, now: Instant, prack: &Message) -> Prack {
        let Some(rack) = prack.header("RAck").and_then(RAck::parse) else { return Prack::Unknown };
        let matches = self.outstanding.as_ref().is_some_and(|u| {
            u.rseq == rack.rseq && rack.cseq == self.invite_seq && rack.method.eq_ignore_ascii_case("INVITE")
        });
        if !matches {
            return Prack::Unknown;
        }
        self.outstanding = None;
        if let Some(next) = self.waiting.pop_front() {
            self.start(now, next);
        }
        Prack::Acknowledged
    }

    /// Repeat the outstanding 1xx if due, or give up after 64*T1.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(u) = self.outstanding.as_mut() else { return };
        if now < u.next {
            return;
        }
        if now.saturating_duration_since(u.first_sent) >= self.timers.timeout() {
            self.outstanding = None;
            self.waiting.clear();
            self.failed = true;
            return;
        }
        if self.retransmit {
            self.transmit.push_back(u.response.clone());
            u.interval *= 2;
            u.next = (now + u.interval).min(u.first_sent + self.timers.timeout());
        } else {
            // Streams deliver it once; only the 64*T1 limit remains.
            u.next = u.first_sent + self.timers.timeout();
        }
    }

    /// A final response was sent: nothing more is sent or repeated.
    pub fn stop(&mut self) {
        self.outstanding = None;
        self.waiting.clear();
    }

    /// Next response to send (through the INVITE's server transaction).
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.transmit.pop_front()
    }

    /// When [`handle_timeout`](Provisionals::handle_timeout) must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outstanding.as_ref().map(|u| u.next)
    }

    /// Whether a 2xx must wait: an outstanding reliable 1xx carries a
    /// session description (RFC 3262 §3: no 2xx until it is acknowledged).
    pub fn holds_final(&self) -> bool {
        self.outstanding.as_ref().is_some_and(|u| !u.response.body.is_empty())
    }

    /// Whether a reliable 1xx went unacknowledged for 64*T1.
    pub fn failed(&self) -> bool {
        self.failed
    }
}

/// Which reliable 1xx from a target are new (RFC 3262 §4): per early
/// dialog (To tag), the first may have any RSeq, each later one must be one
/// higher than the last; others (repeats, gaps) are neither acknowledged
/// nor processed.
#[derive(Default)]
pub struct Receipts {
    last: Vec<(String, u32)>,
}

/// Most early dialogs of one INVITE remembered (forking proxies).
const MAX_EARLY_DIALOGS: usize = 16;

/// What [`Receipts::check`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// Not a reliable provisional response: process it as usual.
    Unreliable,
    /// A new reliable one, to acknowledge with a PRACK carrying this RAck.
    New(RAck),
    /// A repeat or out of order: ignore it.
    Ignore,
}

impl Receipts {
    /// Classify `response` (a response to our INVITE).
    pub fn check(&mut self, response: &Message) -> Receipt {
        let Some(rseq) = rseq_of(response) else { return Receipt::Unreliable };
        let (Some(tag), Some(cseq)) = (to_tag(response), response.header("CSeq").and_then(CSeq::parse)) else {
            return Receipt::Ignore;
        };
        match self.last.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, last)) if *last != u32::MAX && rseq == *last + 1 => *last = rseq,
            Some(_) => return Receipt::Ignore,
            None => {
                if self.last.len() >= MAX_EARLY_DIALOGS {
                    self.last.remove(0);
                }
                self.last.push((tag, rseq));
            }
        }
        Receipt::New(RAck { rseq, cseq: cseq.seq, method: cseq.method })
    }
}

fn to_tag(m: &Message) -> Option<String> {
    let to = m.header("To")?;
    let params = match to.find('>') {
        Some(i) => &to[i + 1..],
        None => to.split_once(';').map(|(_, p)| p).unwrap_or(""),
    };
    crate::header::param(params, "tag").filter(|t| !t.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> Message {
        Message::parse(text.replace('\n', "\r\n").as_bytes()).unwrap()
    }

    fn ringing(body: &str) -> Message {
        let mut m = msg("SIP/2.0 183 Session Progress
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1
From: <sip:a@x>;tag=f
To: <sip:b@y>;tag=t
Call-ID: c
CSeq: 5 INVITE

");
        m.body = body.as_bytes().to_vec();
        m
    }

    fn prack(rack: &str) -> Message {
        msg(&format!(
            "PRACK sip:b@y SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK2\nCSeq: 6 PRACK\nRAck: {rack}\n\n"
        ))
    }

    #[test]
    fn one_at_a_time_numbered_repeated_until_its_prack() {
        let t0 = Instant::now();
        let mut p = Provisionals::new(5, 100, Reliability::Unreliable, Timers::default());
        p.send(t0, ringing(""));
        p.send(t0, ringing("v=0"));
        let first = p.poll_transmit().unwrap();
        assert_eq!((first.header("RSeq"), first.header("Require")), (Some("100"), Some("100rel")));
        assert_eq!(rseq_of(&first), Some(100));
        assert!(p.poll_transmit().is_none(), "the second waits for the first's PRACK");
        assert!(!p.holds_final(), "the first carries no session description");
        // Repeated at T1, then 2*T1 later.
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_millis(500)));
        p.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(p.poll_transmit().and_then(|m| m.header("RSeq").map(str::to_owned)), Some("100".into()));
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_millis(1500)));
        // A PRACK for another number, or another INVITE, does not match.
        assert_eq!(p.handle_prack(t0, &prack("99 5 INVITE")), Prack::Unknown);
        assert_eq!(p.handle_prack(t0, &prack("100 4 INVITE")), Prack::Unknown);
        assert_eq!(p.handle_prack(t0, &prack("100 5 INVITE")), Prack::Acknowledged);
        let second = p.poll_transmit().unwrap();
        assert_eq!(second.header("RSeq"), Some("101"));
        assert!(p.holds_final(), "an unacknowledged session description holds the 2xx");
        assert_eq!(p.handle_prack(t0, &prack("100 5 INVITE")), Prack::Unknown, "already acknowledged");
        assert_eq!(p.handle_prack(t0, &prack("101 5 INVITE")), Prack::Acknowledged);
        assert!(!p.holds_final() && p.poll_timeout().is_none());
    }

    #[test]
    fn gives_up_after_64_t1_and_streams_are_not_repeated() {
        let t0 = Instant::now();
        let mut p = Provisionals::new(1, 7, Reliability::Reliable, Timers::default());
        p.send(t0, ringing(""));
        assert!(p.poll_transmit().is_some());
        let mut sent = 0;
        while let Some(at) = p.poll_timeout() {
            p.handle_timeout(at);
            sent += std::iter::from_fn(|| p.poll_transmit()).count();
        }
        assert_eq!(sent, 0, "TCP delivers it once");
        assert!(p.failed());
        let mut u = Provisionals::new(1, 7, Reliability::Unreliable, Timers::default());
        u.send(t0, ringing(""));
        let mut last = t0;
        while let Some(at) = u.poll_timeout() {
            u.handle_timeout(at);
            last = at;
        }
        assert!(u.failed());
        assert_eq!(last - t0, Timers::default().timeout(), "T1 doubling: 0.5+1+2+4+8+16 = 31.5 s, then 32 s");
        u.send(t0, ringing(""));
        assert!(u.poll_transmit().is_some(), "the first was sent");
    }

    #[test]
    fn a_final_response_stops_everything_and_waiting_ones_are_bounded() {
        let t0 = Instant::now();
        let mut p = Provisionals::new(1, 1, Reliability::Unreliable, Timers::default());
        for _ in 0..20 {
            p.send(t0, ringing(""));
        }
        assert_eq!(p.waiting.len(), MAX_WAITING);
        p.stop();
        assert!(p.poll_timeout().is_none() && p.waiting.is_empty());
    }

    #[test]
    fn receipts_acknowledge_each_new_number_once_per_early_dialog() {
        let mut r = Receipts::default();
        let mut m = ringing("");
        assert_eq!(r.check(&m), Receipt::Unreliable);
        m.headers.push(Header { name: "Require".into(), value: "100rel".into() });
        m.headers.push(Header { name: "RSeq".into(), value: "42".into() });
        assert_eq!(r.check(&m), Receipt::New(RAck { rseq: 42, cseq: 5, method: "INVITE".into() }));
        assert_eq!(r.check(&m), Receipt::Ignore, "a repeat");
        let with = |rseq: &str, tag: &str| {
            let mut m = m.clone();
            for h in &mut m.headers {
                match h.name.as_str() {
                    "RSeq" => h.value = rseq.into(),
                    "To" => h.value = format!("<sip:b@y>;tag={tag}"),
                    _ => {}
                }
            }
            m
        };
        assert_eq!(r.check(&with("44", "t")), Receipt::Ignore, "a gap");
        assert!(matches!(r.check(&with("43", "t")), Receipt::New(RAck { rseq: 43, .. })));
        assert!(matches!(r.check(&with("9", "other")), Receipt::New(RAck { rseq: 9, .. })), "another early dialog");
        assert_eq!(r.check(&with("x", "t")), Receipt::Unreliable, "no usable RSeq");
    }
}
