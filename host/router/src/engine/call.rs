//! One call's state in the B2BUA: the caller's leg, the attempt in
//! progress, what routing has left, and what happened (for call insight).

use std::net::SocketAddr;
use std::time::Instant;

use trunkline_plugin_host::types::{Call, Request, Response, Target};
use trunkline_plugin_host::CallSession;
use trunkline_sip_core::dialog::Dialog;
use trunkline_sip_core::message::Message;
use trunkline_sip_core::transaction::TransactionKey;

/// Where a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Routing,
    Answered,
}

/// An outgoing attempt (one INVITE to one target).
pub(crate) struct Leg {
    pub(crate) attempt: u32,
    pub(crate) tx: TransactionKey,
    pub(crate) invite: Message,
    pub(crate) to: SocketAddr,
    pub(crate) uri: String,
    /// Any response received (stops the failover timer).
    pub(crate) responded: bool,
}

/// A call in the engine.
pub(crate) struct CallState {
    pub(crate) a_invite: Message,
    pub(crate) a_tx: TransactionKey,
    pub(crate) a_from: SocketAddr,
    pub(crate) a_tag: String,
    pub(crate) call: Call,
    pub(crate) request: Request,
    pub(crate) session: CallSession,
    pub(crate) trunk: usize,
    pub(crate) dialed: String,
    pub(crate) max_forwards: u32,
    pub(crate) queue: Vec<Target>,
    pub(crate) leg: Option<Leg>,
    pub(crate) attempts: u32,
    pub(crate) redirects: u32,
    pub(crate) last_failure: Option<Response>,
    pub(crate) phase: Phase,
    /// The 2xx we sent the caller, resent until `a_acked`.
    pub(crate) a_ok: Option<Message>,
    pub(crate) a_acked: bool,
    pub(crate) a_dialog: Option<Dialog>,
    pub(crate) b_dialog: Option<Dialog>,
    /// Call-IDs of every outgoing leg, for cleanup.
    pub(crate) b_call_ids: Vec<String>,
    pub(crate) route: Vec<String>,
    pub(crate) started: Instant,
    pub(crate) first_ring: Option<Instant>,
    pub(crate) answered: Option<Instant>,
}

/// What the router reports about a finished call.
#[derive(Clone, Debug)]
pub struct CallReport {
    pub call_id: String,
    pub trunk: String,
    pub from: String,
    pub to: String,
    /// Each attempt and what it got.
    pub route: Vec<String>,
    /// Each hook call with its decision.
    pub hooks: Vec<String>,
    /// `answered 200 ...`, `rejected 403 ...`, `failed 486 ...`, `cancelled`.
    pub outcome: String,
}

impl std::fmt::Display for CallReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "call {}: {} -> {} on trunk {}", self.call_id, self.from, self.to, self.trunk)?;
        writeln!(f, "  hooks:")?;
        for h in &self.hooks {
            writeln!(f, "    {h}")?;
        }
        writeln!(f, "  route:")?;
        for r in &self.route {
            writeln!(f, "    {r}")?;
        }
        if self.route.is_empty() {
            writeln!(f, "    (no target tried)")?;
        }
        write!(f, "  outcome: {}", self.outcome)
    }
}
