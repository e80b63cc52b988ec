//! # trunkline-records
//!
//! Call records (call insight), sans-IO: what the router keeps of every
//! call once it has ended.
//!
//! The engine builds a [`Draft`] when a call ends (its fields, the targets
//! tried with their responses, the hook decisions and the raw SIP messages
//! of both legs, [`trace`]) and seals it at once ([`Draft::seal`]: the
//! record encoded, the trace's buffers moved); the sealed record lingers
//! for the call's last messages, then the router's writer finishes it off
//! the engine's thread ([`Sealed::store_into`]: wall-clock times, the
//! trace packed and redacted, the record's bytes kept as they are,
//! [`stored`]), stores it and gives the buffers back. [`query`] checks
//! the filters of the admin API and `trunkline calls`; [`ladder`] draws
//! one call as a SIP ladder diagram. No I/O here: the store (SQLite) is
//! the router's.

pub mod borrowed;
pub mod ladder;
pub mod query;
pub mod stored;
pub mod trace;

use serde::{Deserialize, Serialize};
use trunkline_sip_core::Peer;

pub use borrowed::{HookRef, HooksRef, RecordRef};
pub use stored::{Columns, Stored, RECORD_V1, RECORD_V2};
pub use trace::{RawTrace, TraceEntry};

/// One finished call, as stored and served.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The store's number for the record (`trunkline calls show ID`); 0
    /// until stored.
    #[serde(default)]
    pub id: i64,
    /// The caller's Call-ID.
    pub call_id: String,
    /// Call-IDs of the router's outgoing legs (one per attempt).
    pub leg_call_ids: Vec<String>,
    /// Empty for an INVITE no trunk accepted (404).
    pub trunk: String,
    pub account: String,
    /// `origination` or `termination`; empty when no trunk matched.
    pub direction: String,
    /// Caller and called numbers (user parts of From and the Request-URI).
    pub caller: String,
    pub called: String,
    /// Where the caller's INVITE came from, and over what (`udp`, `tcp`, `tls`).
    pub source: String,
    pub transport: String,
    /// Unix milliseconds.
    pub started_at: i64,
    pub ended_at: i64,
    /// Post-dial delay: INVITE to the first 18x or 2xx.
    pub pdd_ms: Option<u64>,
    /// From the INVITE to the answer, if answered.
    pub answer_ms: Option<u64>,
    /// Talk time.
    pub duration_ms: u64,
    /// `caller`, `callee`, `router`, or `none` (never answered).
    pub hangup_by: String,
    /// `answered`, `rejected`, `failed`, `cancelled`.
    pub outcome: String,
    /// The last final status the caller got (200 when answered).
    pub status: u16,
    /// What happened, in words (as `--print-calls` prints it).
    pub reason: String,
    /// Each target tried, in order.
    pub targets: Vec<TargetRecord>,
    /// Each plugin hook run, in order.
    pub hooks: Vec<HookRecord>,
    /// The route as the call report prints it (skips, disaster recovery, transfers).
    pub route: Vec<String>,
    /// The media streams (addresses, ports, packets), if relayed.
    pub media: Vec<String>,
    /// Both legs' SIP messages, in order (capped; credentials and keys
    /// redacted). Stored apart from the rest, packed (see [`trace`]).
    #[serde(default)]
    pub trace: Vec<TraceEntry>,
    /// Messages left out of `trace` by the caps.
    pub trace_dropped: u32,
}

/// One target tried.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecord {
    pub uri: String,
    /// The address the INVITE went to (`udp:192.0.2.1:5060`).
    pub address: String,
    /// The attempt's Call-ID (the router's outgoing leg).
    pub call_id: String,
    /// When the INVITE was sent, from the call's start.
    pub at_ms: u64,
    /// Responses received (each status once), in order.
    pub responses: Vec<ResponseMark>,
    /// How the attempt ended when no final response did (`no response in
    /// 4000 ms`, `cancelled`, `transport error`...).
    pub ended: Option<String>,
}

/// A response a target sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseMark {
    pub at_ms: u64,
    pub status: u16,
    pub reason: String,
}

/// One plugin hook's decision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRecord {
    pub plugin: String,
    pub version: String,
    pub hook: String,
    pub decision: String,
    pub micros: u64,
}

/// What the engine has when a call ends: the record without its
/// wall-clock times and with its trace still raw (both are finished off
/// the engine's thread, by [`Sealed::store_into`]).
#[derive(Debug)]
pub struct Draft {
    /// The engine's number for the call (as in its report).
    pub call: u64,
    pub record: CallRecord,
    /// When the call started and ended, on the engine's clock.
    pub started: std::time::Instant,
    pub ended: std::time::Instant,
    pub trace: RawTrace,
}

impl Draft {
    /// What the engine keeps when the call ends and hands the writer when
    /// the record is due: the record encoded into `buffer` (emptied
    /// first), and the trace's own buffers, both of which the writer gives
    /// back ([`Sealed::store_into`]) for the engine to reuse. The record
    /// itself is freed here, on the engine's thread. Why: blocks allocated
    /// on the engine's thread and freed on the writer's cost the engine's
    /// allocator more than encoding the record (its page faults and page
    /// collection: bench/README.md, sessions 16 and 17).
    /// ([`RecordRef::seal`] does the same from borrowed fields.)
    pub fn seal(self, buffer: Vec<u8>) -> Sealed {
        let record = borrowed::encode(&self.record, buffer);
        Sealed::new(self.call, (self.started, self.ended), self.trace, record)
    }
}

/// A finished call's record on its way to the writer ([`Draft::seal`]).
#[derive(Debug)]
pub struct Sealed {
    /// The engine's number for the call.
    pub call: u64,
    /// The record as postcard encodes it (its wall-clock times not yet
    /// set), then the media facts if [`Sealed::add_media`] added them:
    /// the body of the stored form ([`stored::RECORD_V2`]).
    record: Vec<u8>,
    started: std::time::Instant,
    ended: std::time::Instant,
    trace: RawTrace,
    /// [`Sealed::add_media`] appended the media facts to `record`.
    media_added: bool,
}

/// A sealed record's buffers, emptied, for the engine to reuse.
#[derive(Debug, Default)]
pub struct Recycled {
    pub record: Vec<u8>,
    pub trace: RawTrace,
}

impl Sealed {
    fn new(
        call: u64,
        (started, ended): (std::time::Instant, std::time::Instant),
        trace: RawTrace,
        record: Vec<u8>,
    ) -> Sealed {
        Sealed { call, record, started, ended, trace, media_added: false }
    }

    /// Keep `bytes` in the record's trace (a message of the call that
    /// crossed the wire while its record lingered), if the caps allow.
    pub fn push_trace(&mut self, caps: trace::TraceCaps, at: std::time::Instant, sent: bool, peer: Peer, bytes: &[u8]) {
        self.trace.push(caps, at, sent, peer, bytes);
    }

    /// The record's media facts (the relay's report of the call), known
    /// after it was sealed: encoded after the record, where the stored
    /// form keeps them. Once only: a second call is ignored.
    pub fn add_media(&mut self, media: &[String]) {
        if self.media_added || media.is_empty() {
            return;
        }
        self.media_added = true;
        let buffer = std::mem::take(&mut self.record);
        // Writing into a Vec cannot fail, and strings encode.
        self.record = postcard::to_extend(media, buffer).expect("strings encode into a Vec");
    }

    /// The record ready to store: its stored form written into `record`
    /// (the sealed bytes as they are, behind the wall-clock times, `now`
    /// and `wall` read together, and the count of messages the caps left
    /// out) and its trace packed and redacted into `trace` (buffers the
    /// writer reuses: a batch's worth of fresh ones cost it page faults);
    /// and the buffers it came in, emptied.
    pub fn store_into(
        self,
        now: std::time::Instant,
        wall: std::time::SystemTime,
        mut record: Vec<u8>,
        mut trace: Vec<u8>,
    ) -> (Stored, Recycled) {
        let unix_ms = |at: std::time::Instant| {
            let back = now.saturating_duration_since(at);
            let t = wall.checked_sub(back).unwrap_or(wall);
            t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
        };
        record.clear();
        record.push(RECORD_V2);
        let head = (unix_ms(self.started), unix_ms(self.ended), self.trace.dropped());
        // Writing into a Vec cannot fail.
        let mut record = postcard::to_extend(&head, record).expect("integers encode into a Vec");
        record.extend_from_slice(&self.record);
        if !self.media_added {
            record.push(0); // no media facts
        }
        self.trace.pack_into(self.started, &mut trace);
        (Stored { id: 0, record, trace }, self.recycle())
    }

    /// The buffers, emptied, without storing the record (it was dropped).
    pub fn recycle(mut self) -> Recycled {
        self.record.clear();
        self.trace.clear();
        Recycled { record: self.record, trace: self.trace }
    }
}

/// The outcomes `--outcome` accepts.
pub const OUTCOMES: [&str; 4] = ["answered", "rejected", "failed", "cancelled"];

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> CallRecord {
        CallRecord {
            call_id: "a@h".into(),
            leg_call_ids: vec!["b1".into()],
            trunk: "t".into(),
            account: "AC1".into(),
            direction: "origination".into(),
            caller: "+1555".into(),
            called: "+1666".into(),
            source: "127.0.0.1:5060".into(),
            transport: "udp".into(),
            started_at: 1_796_000_000_000,
            ended_at: 1_796_000_000_300,
            pdd_ms: Some(2),
            answer_ms: None,
            duration_ms: 300,
            hangup_by: "caller".into(),
            outcome: "answered".into(),
            status: 200,
            reason: "ok".into(),
            targets: vec![TargetRecord {
                uri: "sip:x".into(),
                address: "udp:127.0.0.1:5080".into(),
                call_id: "b1".into(),
                at_ms: 1,
                responses: vec![ResponseMark { at_ms: 2, status: 200, reason: "OK".into() }],
                ended: Some("cancelled".into()),
            }],
            hooks: vec![HookRecord {
                plugin: "p".into(),
                version: "1.0.0".into(),
                hook: "pre-dial".into(),
                decision: "continue".into(),
                micros: 70,
            }],
            route: vec!["r".into()],
            media: vec!["m".into()],
            ..CallRecord::default()
        }
    }

    #[test]
    fn a_sealed_record_is_stored_with_wall_clock_times_and_its_trace_and_gives_its_buffers_back() {
        use std::time::{Duration, Instant, UNIX_EPOCH};
        let t0 = Instant::now();
        let mut trace = RawTrace::default();
        let caps = trace::TraceCaps { messages: 1, bytes: 1000 };
        let peer = trunkline_sip_core::Peer::udp("127.0.0.1:5060".parse().unwrap());
        trace.push(caps, t0, false, peer, b"INVITE sip:a SIP/2.0\r\n\r\n");
        trace.push(caps, t0, true, peer, b"SIP/2.0 100 Trying\r\n\r\n"); // over the cap
        let expected_trace = trace.pack(t0);
        let record = CallRecord { started_at: 0, ended_at: 0, ..sample() };
        let draft = Draft { call: 7, record, started: t0, ended: t0 + Duration::from_millis(300), trace };
        let mut sealed = draft.seal(vec![0xEE; 3]);
        assert_eq!(sealed.call, 7);
        // Known later: the media, and a message that crossed while it lingered (over the cap).
        sealed.add_media(&["audio: relayed".to_owned()]);
        sealed.add_media(&["a second time".to_owned()]);
        sealed.push_trace(caps, t0, true, peer, b"SIP/2.0 200 OK\r\n\r\n");
        // Stored 700 ms after the call ended, at wall time W: it ended at W - 700 ms.
        let wall = UNIX_EPOCH + Duration::from_millis(1_796_000_001_000);
        let (stored, recycled) = sealed.store_into(t0 + Duration::from_millis(1000), wall, vec![1; 9], vec![2; 9]);
        let want = CallRecord { trace_dropped: 2, media: vec!["audio: relayed".into()], ..sample() };
        assert_eq!(stored.trace, expected_trace);
        assert_eq!(CallRecord::decode(&stored.record), Ok(want.clone()));
        assert_eq!(stored.columns().map(|c| (c.started_at, c.ended_at)), Ok((want.started_at, want.ended_at)));
        assert!(recycled.record.is_empty() && recycled.record.capacity() > 0);
        assert!(recycled.trace.is_empty() && recycled.trace.dropped() == 0 && recycled.trace.capacity() > 0);
    }

    #[test]
    fn a_sealed_record_without_media_facts_keeps_its_own() {
        let t0 = std::time::Instant::now();
        let draft = Draft { call: 1, record: sample(), started: t0, ended: t0, trace: RawTrace::default() };
        let (stored, _) = draft.seal(Vec::new()).store_into(t0, std::time::SystemTime::now(), Vec::new(), Vec::new());
        assert_eq!(CallRecord::decode(&stored.record).map(|r| r.media), Ok(vec!["m".to_owned()]));
    }
}
