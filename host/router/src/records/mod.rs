//! Call records (call insight): the record itself, its trace and its
//! ladder are in the sans-IO crate `trunkline-records`; here is where they
//! are kept. The driver hands each finished call's [`Draft`] to the
//! [`writer`], a thread behind a bounded queue that finishes it and stores
//! it in the embedded [`store`] (SQLite, the SIP traces in [`traces`]
//! segment files beside it); [`cli`] is `trunkline calls`. The store also
//! keeps the plugins' kv ([`kv`]). With `[store] postgres_url` the
//! records and the audit log go to PostgreSQL instead ([`pg`]); [`source`]
//! reads either.

pub mod cli;
pub mod kv;
pub mod pg;
pub mod pg_tls;
pub mod source;
pub mod store;
pub mod traces;
pub mod writer;

pub use trunkline_records::{
    ladder, query, trace, CallRecord, Draft, HookRecord, RawTrace, ResponseMark, TargetRecord, TraceEntry, OUTCOMES,
};
