//! # trunkline-records
//!
//! Call records (call insight), sans-IO: what the router keeps of every
//! call once it has ended.
//!
//! The engine builds a [`Draft`] when a call ends (its fields, the targets
//! tried with their responses, the hook decisions and the raw SIP messages
//! of both legs, [`trace`]); the router's writer finishes it off the
//! engine's thread ([`Draft::finish`]: wall-clock times, the trace
//! redacted) and stores it. [`query`] checks the filters of the admin API
//! and `trunkline calls`; [`ladder`] draws one call as a SIP ladder
//! diagram. No I/O here: the store (SQLite) is the router's.

pub mod ladder;
pub mod query;
pub mod trace;

use serde::{Deserialize, Serialize};

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

/// What the engine hands over when a call ends: the record without its
/// wall-clock times and with its trace still raw (both are finished off
/// the engine's thread, by [`Draft::finish`]).
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
    /// The record (its `trace` empty), with times on the wall clock (`now`
    /// and `wall` read together), and its trace packed and redacted.
    pub fn finish(self, now: std::time::Instant, wall: std::time::SystemTime) -> (CallRecord, Vec<u8>) {
        let unix_ms = |at: std::time::Instant| {
            let back = now.saturating_duration_since(at);
            let t = wall.checked_sub(back).unwrap_or(wall);
            t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
        };
        let mut record = self.record;
        record.started_at = unix_ms(self.started);
        record.ended_at = unix_ms(self.ended);
        record.trace_dropped = self.trace.dropped();
        (record, self.trace.pack(self.started))
    }
}

/// The outcomes `--outcome` accepts.
pub const OUTCOMES: [&str; 4] = ["answered", "rejected", "failed", "cancelled"];
