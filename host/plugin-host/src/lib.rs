//! # trunkline-plugin-host
//!
//! Runs Trunkline policy plugins: Wasm components of the
//! `trunkline:policy@0.2.0` world (see `wit/`), on wasmtime.
//!
//! - One [`Runtime`] owns the engine, the loaded plugins and the host services.
//! - Plugins are compiled once (cached on disk by content hash) and
//!   validated against the world before they can serve; a reload swaps the
//!   new version in atomically, and calls in flight keep the version they
//!   started with.
//! - Each call gets its own instance of each plugin of its chain
//!   ([`CallSession`]) for its routing phase, with CPU, memory and table
//!   limits; a failing plugin costs its call the configured failure mode,
//!   never the host.
//!
//! It is not a SIP stack: it takes and returns plain data (the WIT types).
#![deny(unsafe_code)]

pub mod audit;
pub mod bindings;
mod cache;
pub mod chain;
mod edits;
mod engine;
pub mod error;
mod host;
pub mod limits;
mod linker;
mod message;
mod plugin;
mod runtime;
pub mod services;
mod signatures;
mod state;
mod validate;
mod warm;
pub mod watch;

pub use chain::{CallSession, Chain, ChainEntry, HookTrace};
pub use engine::EngineOptions;
pub use error::{HookFailure, LoadError};
pub use limits::{FailureMode, Limits};
pub use plugin::{Plugin, PluginInfo};
pub use runtime::{LoadSource, Loaded, Runtime, RuntimeOptions, WORLD_VERSION};
pub use services::{KvRefusal, NumberDirectory, PluginConfig, SharedKv, StaticDirectory};
pub use state::Services;
pub use warm::InstanceCounts;

/// The WIT types, as the host sees them. [`Call`](types::Call) and
/// [`Request`](types::Request) are the host's records (what a plugin's
/// `call` and `request` handles answer) plus headers;
/// [`Response`](types::Response) is the WIT record plus its headers.
/// Plugins read the call's and the request's parts and the headers on
/// demand.
pub mod types {
    pub use crate::bindings::exports::trunkline::policy::hooks::{
        DialDecision, Fallback, InviteDecision, RedirectDecision, Selection,
    };
    pub use crate::bindings::trunkline::policy::types::{Response as ResponseRecord, *};
    pub use crate::message::{Call, CallRecord, HeaderList, Request, RequestRecord, Response, WithHeaders};
}
