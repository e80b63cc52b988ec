//! A record sealed from where the engine keeps its fields: encoded as a
//! [`CallRecord`] holding the same values would be, without a copy of
//! each value first. Building the `CallRecord` (some twenty strings
//! allocated, then freed once encoded) was most of what sealing cost the
//! engine's thread (bench/README.md, session 18).

use serde::{Serialize, Serializer};

use crate::{CallRecord, RawTrace, Sealed, TargetRecord, TraceEntry};

/// [`CallRecord`]'s fields, borrowed, in its order: postcard encodes a
/// `&str` as a `String`, a slice as a `Vec`, and a struct by its fields
/// alone, so the bytes are the same
/// (`tests::a_borrowed_record_encodes_as_the_record_it_borrows_from`).
/// `H`: the hook decisions, any sequence of [`HookRef`]s.
#[derive(Serialize)]
pub struct RecordRef<'a, H: Serialize> {
    /// 0: the store numbers records.
    pub id: i64,
    pub call_id: &'a str,
    pub leg_call_ids: &'a [String],
    pub trunk: &'a str,
    pub account: &'a str,
    pub direction: &'a str,
    pub caller: &'a str,
    pub called: &'a str,
    pub source: &'a str,
    pub transport: &'a str,
    /// 0: set by the writer ([`Sealed::store_into`]).
    pub started_at: i64,
    pub ended_at: i64,
    pub pdd_ms: Option<u64>,
    pub answer_ms: Option<u64>,
    pub duration_ms: u64,
    pub hangup_by: &'a str,
    pub outcome: &'a str,
    pub status: u16,
    pub reason: &'a str,
    pub targets: &'a [TargetRecord],
    pub hooks: H,
    pub route: &'a [String],
    pub media: &'a [String],
    /// Empty: the trace is stored apart.
    pub trace: &'a [TraceEntry],
    /// 0: set by the writer.
    pub trace_dropped: u32,
}

/// A [`crate::HookRecord`], borrowed.
#[derive(Serialize)]
pub struct HookRef<'a> {
    pub plugin: &'a str,
    pub version: &'a str,
    pub hook: &'a str,
    pub decision: &'a str,
    pub micros: u64,
}

/// Hook decisions as a sequence of [`HookRef`]s, made from `T`s on the fly.
pub struct HooksRef<'a, T>(pub &'a [T], pub fn(&'a T) -> HookRef<'a>);

impl<T> Serialize for HooksRef<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(self.1))
    }
}

impl<H: Serialize> RecordRef<'_, H> {
    /// [`crate::Draft::seal`] from borrowed fields: encoded into `buffer`
    /// (emptied first), with the trace's buffers moved.
    pub fn seal(
        &self,
        call: u64,
        (started, ended): (std::time::Instant, std::time::Instant),
        trace: RawTrace,
        buffer: Vec<u8>,
    ) -> Sealed {
        Sealed::new(call, (started, ended), trace, encode(self, buffer))
    }
}

/// `record` as postcard encodes it, into `buffer` (emptied first).
pub(crate) fn encode<R: Serialize>(record: &R, mut buffer: Vec<u8>) -> Vec<u8> {
    buffer.clear();
    // Writing into a Vec cannot fail, and every field is a type postcard encodes.
    postcard::to_extend(record, buffer).expect("a record encodes into a Vec")
}

/// Keeps [`RecordRef`] in step with [`CallRecord`]: a field added to one
/// and not the other does not compile.
#[allow(dead_code)]
fn same_fields(r: CallRecord) -> RecordRef<'static, ()> {
    let CallRecord {
        id: _,
        call_id: _,
        leg_call_ids: _,
        trunk: _,
        account: _,
        direction: _,
        caller: _,
        called: _,
        source: _,
        transport: _,
        started_at: _,
        ended_at: _,
        pdd_ms: _,
        answer_ms: _,
        duration_ms: _,
        hangup_by: _,
        outcome: _,
        status: _,
        reason: _,
        targets: _,
        hooks: _,
        route: _,
        media: _,
        trace: _,
        trace_dropped: _,
    } = r;
    RecordRef {
        id: 0,
        call_id: "",
        leg_call_ids: &[],
        trunk: "",
        account: "",
        direction: "",
        caller: "",
        called: "",
        source: "",
        transport: "",
        started_at: 0,
        ended_at: 0,
        pdd_ms: None,
        answer_ms: None,
        duration_ms: 0,
        hangup_by: "",
        outcome: "",
        status: 0,
        reason: "",
        targets: &[],
        hooks: (),
        route: &[],
        media: &[],
        trace: &[],
        trace_dropped: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::sample;

    #[test]
    fn a_borrowed_record_encodes_as_the_record_it_borrows_from() {
        let r = CallRecord { trace_dropped: 3, ..sample() };
        let hooks = HooksRef(&r.hooks, |h| HookRef {
            plugin: &h.plugin,
            version: &h.version,
            hook: &h.hook,
            decision: &h.decision,
            micros: h.micros,
        });
        let borrowed = RecordRef {
            id: r.id,
            call_id: &r.call_id,
            leg_call_ids: &r.leg_call_ids,
            trunk: &r.trunk,
            account: &r.account,
            direction: &r.direction,
            caller: &r.caller,
            called: &r.called,
            source: &r.source,
            transport: &r.transport,
            started_at: r.started_at,
            ended_at: r.ended_at,
            pdd_ms: r.pdd_ms,
            answer_ms: r.answer_ms,
            duration_ms: r.duration_ms,
            hangup_by: &r.hangup_by,
            outcome: &r.outcome,
            status: r.status,
            reason: &r.reason,
            targets: &r.targets,
            hooks,
            route: &r.route,
            media: &r.media,
            trace: &r.trace,
            trace_dropped: r.trace_dropped,
        };
        assert_eq!(encode(&borrowed, vec![7; 4]), encode(&r, Vec::new()));
    }
}
