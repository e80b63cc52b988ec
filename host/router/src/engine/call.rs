//! One call's state in the B2BUA: the caller's leg, the attempt in
//! progress, what routing has left, and what happened (for call insight).

use std::time::Instant;

use trunkline_plugin_host::types::{Call, Request, Response, Target};
use trunkline_plugin_host::CallSession;
use trunkline_sip_core::dialog::Dialog;
use trunkline_sip_core::header::RAck;
use trunkline_sip_core::message::Message;
use trunkline_sip_core::reliable::{Provisionals, Receipts};
use trunkline_sip_core::transaction::TransactionKey;
use trunkline_sip_core::Peer;

use super::hop::Hop;

/// Where a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Routing,
    Answered,
}

/// A target waiting its turn.
#[derive(Clone, Debug)]
pub(crate) struct Queued {
    pub(crate) target: Target,
    /// For a target named by host: the address to use, when an earlier
    /// attempt used another address of the same name (RFC 3263 §4.3: a
    /// failed address is followed by the name's next one).
    pub(crate) addr: Option<std::net::IpAddr>,
    /// For a target whose host has SRV records (RFC 3263 §4.2): the
    /// record's host and port, used instead of the URI's.
    pub(crate) via: Option<(String, u16)>,
}

impl From<Target> for Queued {
    fn from(target: Target) -> Self {
        Queued { target, addr: None, via: None }
    }
}

/// An outgoing attempt (one INVITE to one target).
pub(crate) struct Leg {
    pub(crate) attempt: u32,
    pub(crate) tx: TransactionKey,
    pub(crate) invite: Message,
    pub(crate) to: Peer,
    pub(crate) uri: String,
    /// Any response received (stops the failover timer).
    pub(crate) responded: bool,
    /// The target's reliable 1xx seen so far (RFC 3262 §4).
    pub(crate) receipts: Receipts,
    /// Early dialogs the target's reliable 1xx created (their PRACKs; a
    /// 2xx confirms one).
    pub(crate) early: Vec<Dialog>,
    /// A reliable 1xx whose PRACK must carry the caller's answer (its
    /// offer went to the caller; the caller's PRACK brings the answer):
    /// the early dialog's To tag and the RAck.
    pub(crate) prack_pending: Option<(String, RAck)>,
    /// An offer of this target's (in a reliable 1xx) was answered in our
    /// PRACK: its 2xx carries no new offer.
    pub(crate) early_answered: bool,
}

impl Leg {
    /// Attempt `attempt`: `invite` sent to `to` in transaction `tx`.
    pub(crate) fn new(attempt: u32, tx: TransactionKey, invite: Message, to: Peer, uri: String) -> Leg {
        Leg {
            attempt,
            tx,
            invite,
            to,
            uri,
            responded: false,
            receipts: Receipts::default(),
            early: Vec::new(),
            prack_pending: None,
            early_answered: false,
        }
    }
}

/// A call in the engine.
pub(crate) struct CallState {
    pub(crate) a_invite: Message,
    pub(crate) a_tx: TransactionKey,
    /// Where the caller's INVITE came from (for TCP: its connection).
    pub(crate) a_from: Peer,
    pub(crate) a_tag: String,
    pub(crate) call: Call,
    pub(crate) request: Request,
    pub(crate) session: CallSession,
    /// The configuration the call started under (`trunk` indexes its
    /// trunks): a live reload changes only the calls that come after it.
    pub(crate) settings: std::sync::Arc<crate::config::Settings>,
    pub(crate) trunk: usize,
    pub(crate) dialed: String,
    pub(crate) max_forwards: u32,
    /// Targets still to try, in order.
    pub(crate) queue: Vec<Queued>,
    pub(crate) leg: Option<Leg>,
    pub(crate) attempts: u32,
    pub(crate) redirects: u32,
    pub(crate) last_failure: Option<Response>,
    pub(crate) phase: Phase,
    /// The 2xx for the caller, resent until `a_acked` once sent.
    pub(crate) a_ok: Option<Message>,
    /// When `a_ok` was sent (it waits while a reliable 1xx with a session
    /// description is not yet acknowledged, RFC 3262 §3).
    pub(crate) a_ok_sent: Option<Instant>,
    pub(crate) a_acked: bool,
    /// Our reliable 1xx to the caller, if its INVITE supports 100rel.
    pub(crate) a_reliable: Option<Provisionals>,
    /// The engine timer queued for `a_reliable`.
    pub(crate) a_reliable_armed: Option<Instant>,
    /// The session description the caller got in a reliable 1xx, under
    /// its current To tag (`a_tag`).
    pub(crate) a_early_sdp: Option<Vec<u8>>,
    pub(crate) a_dialog: Option<Dialog>,
    pub(crate) b_dialog: Option<Dialog>,
    /// The ACK sent for the answering target's 2xx (sent again when the
    /// 2xx is).
    pub(crate) b_ack: Option<Message>,
    /// The target's 2xx carried an offer (the caller's INVITE had none):
    /// its ACK waits for the caller's, which carries the answer.
    pub(crate) b_ack_waits: bool,
    /// Call-IDs of every outgoing leg, for cleanup.
    pub(crate) b_call_ids: Vec<String>,
    pub(crate) route: Vec<String>,
    pub(crate) started: Instant,
    pub(crate) first_ring: Option<Instant>,
    pub(crate) answered: Option<Instant>,
    /// Disaster-recovery TwiML being executed.
    pub(crate) twiml: Option<super::twiml::TwimlRun>,
    /// A transfer (REFER from the callee) in progress.
    pub(crate) transfer: Option<super::transfer::Transfer>,
    /// The call's anchored media, if its trunk relays media.
    pub(crate) media: Option<trunkline_media_core::session::Session>,
    /// A plugin asked in `pre-dial` for the call to be recorded, so
    /// (whatever the trunk's `recording`).
    pub(crate) record: Option<trunkline_relay::record::RecordMode>,
    /// Call insight: each target tried, and the SIP messages of both legs.
    pub(crate) targets: Vec<crate::records::TargetRecord>,
    pub(crate) trace: crate::records::RawTrace,
}

impl CallState {
    /// The next hop of requests to the caller, once its dialog exists.
    pub(crate) fn a_hop(&self) -> Option<Hop> {
        self.a_dialog.as_ref().map(|d| Hop::of(d, self.a_from))
    }

    /// The next hop of requests to the answering target.
    pub(crate) fn b_hop(&self) -> Option<Hop> {
        let leg = self.leg.as_ref()?;
        self.b_dialog.as_ref().map(|d| Hop::of(d, leg.to))
    }

    /// Where responses to the caller's INVITE go (its 2xx retransmissions).
    pub(crate) fn a_reply(&self) -> Peer {
        trunkline_sip_core::response_route::response_peer(&self.a_invite, self.a_from)
    }
}

/// What the router reports about a finished call.
#[derive(Clone, Debug)]
pub struct CallReport {
    /// The engine's number for the call (as in [`super::MediaCommand`]).
    pub call: u64,
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
    /// Where the call's media was anchored, and (added by the driver) what
    /// the relay carried; empty if the media was not relayed.
    pub media: Vec<String>,
    /// How it ended (outcome, final status, post-dial delay...), for counters.
    pub summary: trunkline_plugin_host::types::Summary,
    pub direction: trunkline_plugin_host::types::Direction,
    /// Each hook call: plugin, hook, microseconds.
    pub hook_times: Vec<(std::sync::Arc<str>, &'static str, u64)>,
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
        if !self.media.is_empty() {
            writeln!(f, "  media:")?;
            for m in &self.media {
                writeln!(f, "    {m}")?;
            }
        }
        write!(f, "  outcome: {}", self.outcome)
    }
}
