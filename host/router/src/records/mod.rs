//! Call records (call insight): the record itself, its trace and its
//! ladder are in the sans-IO crate `trunkline-records`; here is where they
//! are kept. The driver hands each finished call's record, [`Sealed`], to
//! the [`writer`], a thread behind a bounded queue that opens it, stores
//! it, and gives its buffers back to the engine ([`Recycled`]); it stores
//! it in the embedded [`store`] (SQLite, the SIP traces in [`traces`]
//! segment files beside it); [`cli`] is `trunkline calls`. The store also
//! keeps the plugins' kv ([`kv`]). With `[store] postgres_url` the
//! records and the audit log go to PostgreSQL instead ([`pg`]); [`source`]
//! reads either.

/// The columns both stores (SQLite, PostgreSQL) fill first in a row of
/// `calls`, from the record `$r`, as an array of `&$t` (each store's own
/// parameter trait object): `call_id` to `outcome`, in that order.
macro_rules! leading_columns {
    ($r:expr, $t:ty) => {
        [
            &$r.call_id as &$t,
            &$r.started_at,
            &$r.ended_at,
            &$r.trunk,
            &$r.direction,
            &$r.caller,
            &$r.called,
            &$r.outcome,
        ]
    };
}
pub(crate) use leading_columns;

/// The numbers both stores derive for a row of `calls` from record `r`:
/// `pdd_ms` and `duration_ms` as SQL integers (clamped), and `attempts`
/// (the targets tried).
pub(crate) fn row_numbers(r: &CallRecord) -> (Option<i64>, i64, i64) {
    let integer = |v: u64| v.min(i64::MAX as u64) as i64;
    (r.pdd_ms.map(integer), integer(r.duration_ms), r.targets.len() as i64)
}

pub mod cli;
pub mod kv;
pub mod pg;
pub mod pg_tls;
pub mod source;
pub mod store;
pub mod traces;
pub mod writer;

pub use trunkline_records::{
    ladder, query, trace, CallRecord, Draft, HookRecord, RawTrace, Recycled, ResponseMark, Sealed, TargetRecord,
    TraceEntry, OUTCOMES,
};
