//! Non-INVITE server transaction (RFC 3261 §17.2.2).
//!
//! ```text
//!   Trying --1xx--> Proceeding --final--> Completed --Timer J--> Terminated
//!     '--final--> Completed
//! ```

use std::time::Instant;

use super::outbox::Outbox;
use super::{status, Reliability, ServerEvent, Timers};
use crate::message::Message;

/// States of a non-INVITE server transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonInviteServerState {
    /// Request sent or received, no response yet.
    Trying,
    /// A provisional response was sent or received.
    Proceeding,
    /// A final response was sent or received; absorbing retransmissions.
    Completed,
    /// Over: the transaction can be dropped.
    Terminated,
}

/// A non-INVITE server transaction.
#[derive(Debug)]
pub struct ServerNonInvite {
    state: NonInviteServerState,
    reliability: Reliability,
    timers: Timers,
    /// Timer J.
    deadline: Option<Instant>,
    out: Outbox<ServerEvent>,
}

impl ServerNonInvite {
    /// A new request arrived; the user answers it with `send_response`.
    pub fn new(reliability: Reliability, timers: Timers) -> Self {
        ServerNonInvite {
            state: NonInviteServerState::Trying,
            reliability,
            timers,
            deadline: None,
            out: Outbox::default(),
        }
    }

    /// Current state.
    pub fn state(&self) -> NonInviteServerState {
        self.state
    }

    /// Whether the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == NonInviteServerState::Terminated
    }

    /// The user's response; ignored after a final one.
    pub fn send_response(&mut self, now: Instant, response: Message) {
        use NonInviteServerState::*;
        match (self.state, status(&response)) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.out.respond(response);
            }
            (Trying | Proceeding, 200..=699) => {
                self.state = Completed;
                self.out.respond(response);
                self.deadline = Some(now + self.reliability.wait(self.timers.timeout()));
            }
            _ => {}
        }
    }

    /// A retransmission of the request arrived: repeat the last response
    /// (none in Trying: the request is absorbed).
    /// Returns whether the last response was sent again.
    pub fn handle_retransmission(&mut self) -> bool {
        matches!(self.state, NonInviteServerState::Proceeding | NonInviteServerState::Completed)
            && self.out.repeat_last()
    }

    /// Call at (or after) the instant `poll_timeout` returned.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| now >= d) {
            self.state = NonInviteServerState::Terminated;
            self.deadline = None;
        }
    }

    /// The transport could not send a response.
    pub fn handle_transport_error(&mut self) {
        self.out.emit(ServerEvent::TransportError);
        self.state = NonInviteServerState::Terminated;
        self.deadline = None;
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.out.poll_transmit()
    }

    /// Next event for the user.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.out.poll_event()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::{request, response};
    use std::time::Duration;

    #[test]
    fn absorbs_in_trying_repeats_later_and_ends_with_timer_j() {
        let t0 = Instant::now();
        let bye = request("BYE");
        let mut tx = ServerNonInvite::new(Reliability::Unreliable, Timers::default());
        tx.handle_retransmission();
        assert!(tx.poll_transmit().is_none());
        tx.send_response(t0, response(&bye, 200));
        assert!(tx.poll_transmit().is_some());
        tx.handle_retransmission();
        assert_eq!(tx.poll_transmit().map(|m| status(&m)), Some(200));
        tx.send_response(t0, response(&bye, 500));
        assert!(tx.poll_transmit().is_none(), "one final response only");
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_transport_terminates_at_once() {
        let t0 = Instant::now();
        let opt = request("OPTIONS");
        let mut tx = ServerNonInvite::new(Reliability::Reliable, Timers::default());
        tx.send_response(t0, response(&opt, 200));
        tx.handle_timeout(t0);
        assert!(tx.is_terminated());
    }
}
