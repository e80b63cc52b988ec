//! RFC 3261 §17 transactions (with RFC 6026's Accepted state), sans-IO.
//!
//! Each transaction is a state machine driven by its owner:
//! - **handlers** (`handle_*`): a message arrived, a timer may have fired
//!   (`handle_timeout(now)`), the transport failed;
//! - **polls** (`poll_*`): messages to send (`poll_transmit`), events for
//!   the transaction user (`poll_event`), and the next instant at which
//!   `handle_timeout` must be called (`poll_timeout`).
//!
//! After any handler, drain `poll_transmit` and `poll_event`, then re-arm
//! the timer from `poll_timeout`. Time is always an argument: tests run
//! Timer B's 32 s in microseconds.

mod client;
mod client_inv;
mod key;
mod layer;
mod outbox;
mod server;
mod server_inv;
mod timers;

pub use client::{ClientNonInvite, NonInviteClientState};
pub use client_inv::{ClientInvite, InviteClientState};
pub use key::TransactionKey;
pub use layer::{response_to, Layer, LayerEvent, Transmit, MAX_TRANSACTIONS};
pub use server::{NonInviteServerState, ServerNonInvite};
pub use server_inv::{InviteServerState, ServerInvite};
pub use timers::{Reliability, Timers};

use crate::message::{Message, StartLine};

/// What a client transaction tells its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// A 1xx response.
    Provisional(Message),
    /// A final response (the first one, and for INVITE every 2xx retransmission).
    Final(Message),
    /// Timer B or F fired: no final response in time (act as if 408).
    Timeout,
    /// The transport reported a failure (act as if 503).
    TransportError,
}

/// What a server transaction tells its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// Timer H fired: the ACK for a final non-2xx response never came.
    AckTimeout,
    /// The transport reported a failure.
    TransportError,
}

/// Status code of a response message (0 for a request).
pub fn status_of(m: &Message) -> u16 {
    status(m)
}

pub(crate) fn status(m: &Message) -> u16 {
    match m.start {
        StartLine::Response { status, .. } => status,
        StartLine::Request { .. } => 0,
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::message::{Header, Message, StartLine};

    pub(crate) fn request(method: &str) -> Message {
        let h = |n: &str, v: &str| Header { name: n.into(), value: v.into() };
        Message {
            start: StartLine::Request { method: method.into(), uri: "sip:+14155550100@127.0.0.1:5080".into() },
            headers: vec![
                h("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-test-1"),
                h("Max-Forwards", "70"),
                h("From", "<sip:+12125550123@trunkline.test>;tag=from1"),
                h("To", "<sip:+14155550100@trunkline.test>"),
                h("Call-ID", "tx-test@127.0.0.1"),
                h("CSeq", &format!("1 {method}")),
                h("Route", "<sip:proxy.example;lr>"),
            ],
            body: vec![],
        }
    }

    pub(crate) fn response(to: &Message, status: u16) -> Message {
        let mut headers: Vec<Header> = to
            .headers
            .iter()
            .filter(|h| ["Via", "From", "To", "Call-ID", "CSeq"].contains(&h.name.as_str()))
            .cloned()
            .collect();
        if status > 100 {
            for h in headers.iter_mut().filter(|h| h.name == "To") {
                h.value.push_str(";tag=to1");
            }
        }
        Message { start: StartLine::Response { status, reason: "X".into() }, headers, body: vec![] }
    }
}
