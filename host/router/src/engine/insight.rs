//! Call insight: each call's SIP trace and the record the engine hands over
//! when the call ends ([`Engine::poll_record`]).
//!
//! Messages are filed under their call by Call-ID (the caller's or one of
//! the router's legs) as they cross the wire, raw and capped. A record
//! lingers for [`RECORD_LINGER`] after its call ends, so that what still
//! belongs to it (the 200 to the BYE the router sent, the ACK of a final
//! response) is in its trace.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use trunkline_plugin_host::types::{Call, Direction, HangupBy, Outcome, Summary};
use trunkline_plugin_host::HookTrace;
use trunkline_sip_core::message::Message;
use trunkline_sip_core::Peer;

use super::call::CallState;
use super::{Engine, Timer};
use crate::records::{
    trace, CallRecord, Draft, HookRef, HooksRef, RawTrace, RecordRef, Recycled, ResponseMark, Sealed, TargetRecord,
};

/// How long a record waits after its call for the call's last messages.
pub(crate) const RECORD_LINGER: Duration = Duration::from_secs(2);
/// Records fall due together, on ticks this far apart: a timer per record
/// woke the engine's loop once per call when it was otherwise idle (at
/// 1000 calls/s that cost more than the records themselves).
pub(crate) const RECORD_TICK: Duration = Duration::from_millis(250);

impl Engine {
    /// A message with Call-ID `call_id` crossed the wire (`sent`: by the
    /// router): into its call's trace; false if it has no call (yet).
    pub(super) fn trace_under(&mut self, now: Instant, call_id: &str, sent: bool, peer: Peer, bytes: &[u8]) -> bool {
        let Some(caps) = self.trace_caps else { return true };
        let pool = &mut self.buffer_pool;
        if let Some(c) = self.trace_recent.get(call_id).and_then(|id| self.calls.get_mut(&id)) {
            pool.lend(&mut c.trace);
            c.trace.push(caps, now, sent, peer, bytes);
            return true;
        }
        let id = self.by_a_call_id.get(call_id).or_else(|| self.by_b_call_id.get(call_id)).copied();
        if let Some((id, c)) = id.and_then(|id| Some((id, self.calls.get_mut(&id)?))) {
            pool.lend(&mut c.trace);
            c.trace.push(caps, now, sent, peer, bytes);
            self.trace_recent.put(call_id, id);
            return true;
        }
        if let Some(l) = self.lingering.get(call_id).and_then(|id| self.pending_records.get_mut(id)) {
            l.sealed.push_trace(caps, now, sent, peer, bytes);
            return true;
        }
        false
    }

    /// The next finished call's record (after its linger), sealed for the
    /// writer; give its buffers back through [`Engine::recycle`].
    pub fn poll_record(&mut self) -> Option<Sealed> {
        self.records_out.pop_front()
    }

    /// Buffers of a record the writer has stored (or dropped), for the
    /// next calls' traces and records: in steady state the engine's
    /// allocator serves no record and frees none that another thread used.
    pub fn recycle(&mut self, r: Recycled) {
        self.buffer_pool.give_back(r);
    }

    /// What the relay said of call `id`'s media (its report): into the
    /// record, if the call has one lingering.
    pub fn record_media(&mut self, id: u64, media: &[String]) {
        if let Some(l) = self.pending_records.get_mut(&id) {
            l.sealed.add_media(media);
        }
    }

    /// Hand over every record still lingering (the router exits).
    pub fn flush_records(&mut self) {
        let ids: Vec<u64> = self.pending_records.keys().copied().collect();
        for id in ids {
            self.record_due(id);
        }
    }

    /// `RECORD_LINGER` after call `id` ended: its record is ready.
    pub(super) fn record_due(&mut self, id: u64) {
        let Some(Lingering { sealed, call_ids }) = self.pending_records.remove(&id) else { return };
        for c in &call_ids {
            self.lingering.remove(c);
        }
        self.records_out.push_back(sealed);
    }

    /// Call `id` ended (out of the call table), its plugins' decisions in
    /// `hooks`: its record, sealed from the call's own fields
    /// ([`RecordRef`]: no copy of them first), keeps the call's trace and
    /// Call-IDs.
    pub(super) fn keep_record(
        &mut self,
        now: Instant,
        (id, c): (u64, EndedCall<'_>),
        (summary, reason): (&Summary, &str),
        hooks: &[HookTrace],
    ) {
        if self.trace_caps.is_none() {
            return;
        }
        let source = c.from.addr.to_string();
        let text = Texts::of(c.call, summary);
        let record = RecordRef {
            id: 0,
            call_id: &c.call.call_id,
            leg_call_ids: c.legs,
            trunk: &c.trunk.name,
            account: &c.trunk.account,
            direction: text.direction,
            caller: text.caller,
            called: text.called,
            source: &source,
            transport: c.from.transport.uri_param(),
            started_at: 0,
            ended_at: 0,
            pdd_ms: summary.pdd_ms.map(u64::from),
            answer_ms: c.answered.map(|a| ms(a.saturating_duration_since(c.started))),
            duration_ms: summary.duration_ms,
            hangup_by: text.hangup_by,
            outcome: text.outcome,
            status: summary.status,
            reason,
            targets: c.targets,
            hooks: HooksRef(hooks, |h| HookRef {
                plugin: &h.plugin,
                version: &h.version,
                hook: h.hook,
                decision: &h.outcome,
                micros: h.micros,
            }),
            route: c.route,
            media: &[],
            trace: &[],
            trace_dropped: 0,
        };
        let sealed = record.seal(id, (c.started, now), std::mem::take(c.trace), self.buffer_pool.record_buffer());
        let mut call_ids = std::mem::take(c.legs);
        call_ids.push(c.call.call_id.clone());
        self.linger(now, id, sealed, call_ids);
    }

    /// A call that ended before routing (a plugin rejected or redirected
    /// it): its record, with the INVITE and the answer once they crossed.
    /// `(summary, reason)`: how it ended, as for a routed call.
    pub(super) fn keep_unrouted(
        &mut self,
        now: Instant,
        (call, trunk, from): (&Call, usize, Peer),
        hooks: &[HookTrace],
        (summary, reason): (&Summary, &str),
    ) {
        if self.trace_caps.is_none() {
            return;
        }
        let settings = self.settings.clone();
        let id = self.unrouted_id();
        let ended = EndedCall {
            call,
            trunk: &settings.trunks[trunk],
            from,
            started: now,
            answered: None,
            legs: &mut Vec::new(),
            targets: &[],
            route: &[],
            trace: &mut RawTrace::default(),
        };
        self.keep_record(now, (id, ended), (summary, reason), hooks);
    }

    /// An INVITE no trunk accepted (404): its record (no trunk, no hooks).
    pub(super) fn keep_not_found(&mut self, now: Instant, from: Peer, m: &Message) {
        if self.trace_caps.is_none() {
            return;
        }
        let user = |v: &str| crate::sipcall::party(v).and_then(|p| p.user).unwrap_or_default();
        let called = match &m.start {
            trunkline_sip_core::message::StartLine::Request { uri, .. } => user(uri),
            _ => String::new(),
        };
        let caller = m.header("From").map(user).unwrap_or_default();
        let record = CallRecord {
            call_id: m.header("Call-ID").unwrap_or_default().to_owned(),
            caller,
            called,
            source: from.addr.to_string(),
            transport: from.transport.to_string(),
            hangup_by: "none".into(),
            outcome: "rejected".into(),
            status: 404,
            reason: "rejected 404 Not Found (no trunk owns the number or domain)".into(),
            ..CallRecord::default()
        };
        self.keep_draft(now, record);
    }

    /// Keep the record of an INVITE that never became a call (no trace).
    fn keep_draft(&mut self, now: Instant, record: CallRecord) {
        let id = self.unrouted_id();
        let call_ids = std::iter::once(&record.call_id).chain(&record.leg_call_ids).cloned().collect();
        let draft = Draft { call: id, record, started: now, ended: now, trace: RawTrace::default() };
        let sealed = draft.seal(self.buffer_pool.record_buffer());
        self.linger(now, id, sealed, call_ids);
    }

    /// Keep `sealed` (sealed when its call ended, while what it holds was
    /// fresh in the cache: sealed 2 s later, when due, it cost the engine
    /// cache misses on every field) for `RECORD_LINGER` under its Call-IDs.
    fn linger(&mut self, now: Instant, id: u64, sealed: Sealed, call_ids: Vec<String>) {
        for c in &call_ids {
            self.lingering.insert(c.clone(), id);
        }
        self.pending_records.insert(id, Lingering { sealed, call_ids });
        let due = now + RECORD_LINGER;
        let tick = match self.record_tick {
            Some(t) if t >= due => t,
            _ => due + RECORD_TICK,
        };
        self.record_tick = Some(tick);
        self.timers.push(Reverse((tick, id, Timer::RecordDue)));
    }

    /// A number for a record with no call (never the number of a call).
    fn unrouted_id(&mut self) -> u64 {
        let id = self.next_call;
        self.next_call += 1;
        id
    }
}

/// What a call's record is made of, borrowed from the ended call (its
/// plugin session already gone: [`Engine::keep_record`]), or from a call
/// that ended before routing (no legs, targets or trace). The legs'
/// Call-IDs and the trace are taken.
pub(super) struct EndedCall<'a> {
    pub call: &'a Call,
    pub trunk: &'a crate::config::Trunk,
    pub from: Peer,
    pub started: Instant,
    pub answered: Option<Instant>,
    pub legs: &'a mut Vec<String>,
    pub targets: &'a [TargetRecord],
    pub route: &'a [String],
    pub trace: &'a mut RawTrace,
}

/// A finished call's record, sealed, waiting for its call's last messages.
#[derive(Debug)]
pub(super) struct Lingering {
    sealed: Sealed,
    /// The caller's Call-ID and the legs' (its keys in `Engine::lingering`).
    call_ids: Vec<String>,
}

/// Buffers the writer gave back ([`Engine::recycle`]) for the next calls:
/// trace buffers lent to new calls' traces, and buffers to encode records
/// into. The engine's allocator serves no per-call trace or record buffer
/// in steady state and sees none freed on another thread. Bounded in
/// count and in what each may hold.
#[derive(Debug, Default)]
pub(super) struct BufferPool {
    traces: Vec<RawTrace>,
    records: Vec<Vec<u8>>,
}

impl BufferPool {
    /// Buffers of each kind kept at most (a trace's about 9 KB: with calls
    /// in progress, lingering and being stored, a few thousand are in use
    /// at 1000 calls/s; a few hundred come back together each batch).
    const MAX: usize = 1024;
    /// A trace buffer that grew past this is let go, not kept.
    const MAX_BYTES: usize = 16 << 10;
    /// A record buffer that grew past this is let go, not kept.
    const MAX_RECORD_BYTES: usize = 4 << 10;

    /// Give `trace`, if it has no buffers yet, emptied ones from the pool.
    fn lend(&mut self, trace: &mut RawTrace) {
        if trace.capacity() == 0 {
            if let Some(t) = self.traces.pop() {
                *trace = t;
            }
        }
    }

    /// A buffer to encode a record into (empty, from the pool if it has one).
    fn record_buffer(&mut self) -> Vec<u8> {
        self.records.pop().unwrap_or_default()
    }

    /// Keep the emptied buffers of `r` for other calls.
    fn give_back(&mut self, r: Recycled) {
        let Recycled { mut record, mut trace } = r;
        if trace.capacity() > 0 && trace.capacity() <= Self::MAX_BYTES && self.traces.len() < Self::MAX {
            trace.clear();
            self.traces.push(trace);
        }
        if record.capacity() > 0 && record.capacity() <= Self::MAX_RECORD_BYTES && self.records.len() < Self::MAX {
            record.clear();
            self.records.push(record);
        }
    }
}

/// The calls of the last few messages traced, by Call-ID. A call's
/// messages come in runs (a request, its relay to the other leg, the
/// answers to both), so most find their call here by comparing a few
/// strings instead of hashing theirs into two maps (most of the
/// instructions a traced message cost the engine; in CPU time the lookups
/// were never what the trace cost: bench/README.md, session 16). Only calls in progress are kept: an entry
/// whose call has ended finds nothing and the maps are asked; a transfer,
/// which moves Call-IDs between calls, empties it.
#[derive(Debug, Default)]
pub(super) struct RecentCalls {
    entries: [(String, u64); 4],
    next: usize,
}

impl RecentCalls {
    fn get(&self, call_id: &str) -> Option<u64> {
        self.entries.iter().find(|(c, _)| c == call_id && !c.is_empty()).map(|&(_, id)| id)
    }

    /// A Call-ID changed calls (a transfer): forget them all.
    pub(super) fn clear(&mut self) {
        *self = RecentCalls::default();
    }

    fn put(&mut self, call_id: &str, id: u64) {
        let (c, slot) = &mut self.entries[self.next];
        c.clear();
        c.push_str(call_id);
        *slot = id;
        self.next = (self.next + 1) % self.entries.len();
    }
}

impl CallState {
    /// The INVITE of attempt to `uri` went to `peer` under `call_id`.
    pub(crate) fn target_sent(&mut self, now: Instant, uri: &str, peer: Peer, call_id: &str) {
        self.targets.push(TargetRecord {
            uri: uri.to_owned(),
            address: trace::peer_text(peer),
            call_id: call_id.to_owned(),
            at_ms: ms(now.saturating_duration_since(self.started)),
            responses: Vec::new(),
            ended: None,
        });
    }

    /// The current target answered `status` (each status noted once).
    pub(crate) fn target_response(&mut self, now: Instant, status: u16, reason: &str) {
        let at_ms = ms(now.saturating_duration_since(self.started));
        if let Some(t) = self.targets.last_mut() {
            if !t.responses.iter().any(|r| r.status == status) {
                t.responses.push(ResponseMark { at_ms, status, reason: reason.to_owned() });
            }
        }
    }

    /// The current target's attempt ended without a final response of its own.
    pub(crate) fn target_ended(&mut self, what: String) {
        if let Some(t) = self.targets.last_mut() {
            t.ended.get_or_insert(what);
        }
    }
}

/// A record's words for how a call went, and its parties.
struct Texts<'a> {
    direction: &'static str,
    caller: &'a str,
    called: &'a str,
    hangup_by: &'static str,
    outcome: &'static str,
}

impl<'a> Texts<'a> {
    fn of(call: &'a Call, summary: &Summary) -> Texts<'a> {
        Texts {
            direction: match call.direction {
                Direction::Origination => "origination",
                Direction::Termination => "termination",
            },
            caller: call.from.user.as_deref().unwrap_or("anonymous"),
            called: call.to.user.as_deref().unwrap_or_default(),
            hangup_by: match summary.hangup_by {
                HangupBy::Caller => "caller",
                HangupBy::Callee => "callee",
                HangupBy::Router => "router",
                HangupBy::None => "none",
            },
            outcome: match summary.outcome {
                Outcome::Answered => "answered",
                Outcome::Rejected => "rejected",
                Outcome::Failed => "failed",
                Outcome::Cancelled => "cancelled",
            },
        }
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::trace::TraceCaps;

    /// A trace that kept `bytes` bytes, cleared (as the writer gives it back).
    fn used(bytes: usize) -> Recycled {
        let mut t = RawTrace::default();
        let caps = TraceCaps { messages: 4, bytes: 64 << 10 };
        t.push(caps, Instant::now(), false, Peer::udp("127.0.0.1:5060".parse().unwrap()), &vec![b'x'; bytes]);
        t.clear();
        Recycled { record: Vec::with_capacity(bytes.min(8 << 10)), trace: t }
    }

    #[test]
    fn the_pool_lends_given_back_buffers_to_new_traces_only_and_keeps_a_bounded_few() {
        let mut pool = BufferPool::default();
        let kept = used(100);
        let (capacity, record_capacity) = (kept.trace.capacity(), kept.record.capacity());
        pool.give_back(kept);
        // A trace that has buffers keeps them; a new one gets the pool's.
        let mut busy = used(10).trace;
        let own = busy.capacity();
        pool.lend(&mut busy);
        assert_eq!(busy.capacity(), own);
        let mut new = RawTrace::default();
        pool.lend(&mut new);
        assert_eq!((new.capacity(), new.len()), (capacity, 0));
        assert_eq!(pool.record_buffer().capacity(), record_capacity);
        // Empty pool: the new trace allocates when it first keeps a message.
        let mut other = RawTrace::default();
        pool.lend(&mut other);
        assert_eq!((other.capacity(), pool.record_buffer().capacity()), (0, 0));
        // A buffer that grew large, or one past the count, is let go.
        pool.give_back(used(40 << 10));
        assert!(pool.traces.is_empty() && pool.records.is_empty());
        for _ in 0..BufferPool::MAX + 5 {
            pool.give_back(used(10));
        }
        assert_eq!((pool.traces.len(), pool.records.len()), (BufferPool::MAX, BufferPool::MAX));
    }
}
