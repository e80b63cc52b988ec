//! # trunkline-router
//!
//! The `trunkline` binary's library: configuration, origination routing,
//! the offline simulator and the plugin commands. The SIP engine (sans-IO
//! core in `trunkline-sip-core`, tokio drivers here) plugs into the same
//! routing steps.

pub mod admin;
pub mod config;
pub mod engine;
pub mod live;
pub mod metrics;
pub mod plugin_cmd;
pub mod records;
pub mod resolve;
pub mod routing;
pub mod serve;
pub mod simulate;
pub mod sipcall;
pub mod store;
pub mod streams;
pub mod tls;
pub mod twiml;
