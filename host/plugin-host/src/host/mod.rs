//! One module per WIT interface the host implements for plugins.

mod call;
mod clock;
mod config;
mod headers;
pub(crate) mod kv;
mod log;
mod metrics;
mod numbers;
mod request;

use crate::bindings::trunkline::policy::types;
use crate::state::HostState;

impl types::Host for HostState {}
