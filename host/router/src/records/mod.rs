//! Call records (call insight): the record itself, its trace and its
//! ladder are in the sans-IO crate `trunkline-records`; here is where they
//! are kept. The driver hands each finished call's record, [`Sealed`], to
//! the [`writer`], a thread behind a bounded queue that finishes it
//! ([`Stored`]: the engine's bytes kept as they are), stores it, and gives
//! its buffers back to the engine ([`Recycled`]); it stores it in the
//! embedded [`store`] (SQLite, the SIP traces in [`traces`]
//! segment files beside it); [`cli`] is `trunkline calls`. The store also
//! keeps the plugins' kv ([`kv`]). With `[store] postgres_url` the
//! records and the audit log go to PostgreSQL instead ([`pg`]); [`source`]
//! reads either.

/// The columns both stores (SQLite, PostgreSQL) fill first in a row of
/// `calls`, from a record's [`Columns`] `$c`, as an array of `&$t` (each
/// store's own parameter trait object): `call_id` to `outcome`, in that
/// order.
macro_rules! leading_columns {
    ($c:expr, $t:ty) => {
        [
            &$c.call_id as &$t,
            &$c.started_at,
            &$c.ended_at,
            &$c.trunk,
            &$c.direction,
            &$c.caller,
            &$c.called,
            &$c.outcome,
        ]
    };
}
pub(crate) use leading_columns;

pub mod cli;
pub mod kv;
pub mod pg;
pub mod pg_tls;
pub mod source;
pub mod store;
pub mod traces;
pub mod writer;

pub use trunkline_records::{
    ladder, query, trace, CallRecord, Columns, Draft, HookRecord, HookRef, HooksRef, RawTrace, RecordRef, Recycled,
    ResponseMark, Sealed, Stored, TargetRecord, TraceEntry, OUTCOMES,
};
