//! INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1).
//!
//! ```text
//!   Proceeding --2xx--> Accepted --Timer L--> Terminated
//!      '--300-699--> Completed --ACK--> Confirmed --Timer I--> Terminated
//!                       '--Timer H--> Terminated (ACK timeout)
//! ```
//! The user sends responses with `send_response`; retransmitted INVITEs are
//! answered from here; ACKs of non-2xx responses are absorbed here.

use std::time::{Duration, Instant};

use super::outbox::Outbox;
use super::{status, Reliability, ServerEvent, Timers};
use crate::message::Message;

/// States of an INVITE server transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteServerState {
    /// A provisional response was sent or received.
    Proceeding,
    /// A 2xx was sent; its retransmission and ACK belong to the dialog (RFC 6026).
    Accepted,
    /// A 300-699 was sent; waiting for the ACK.
    /// A final response was sent or received; absorbing retransmissions.
    Completed,
    /// The ACK arrived; absorbing further ACKs (Timer I).
    Confirmed,
    /// Over: the transaction can be dropped.
    Terminated,
}

/// An INVITE server transaction.
#[derive(Debug)]
pub struct ServerInvite {
    state: InviteServerState,
    reliability: Reliability,
    timers: Timers,
    /// Timer G: next retransmission of the final response and the interval after it.
    timer_g: Option<(Instant, Duration)>,
    /// Timer H (Completed), I (Confirmed) or L (Accepted).
    deadline: Option<Instant>,
    out: Outbox<ServerEvent>,
}

impl ServerInvite {
    /// A new INVITE arrived; the user answers it with `send_response`.
    pub fn new(reliability: Reliability, timers: Timers) -> Self {
        ServerInvite {
            state: InviteServerState::Proceeding,
            reliability,
            timers,
            timer_g: None,
            deadline: None,
            out: Outbox::default(),
        }
    }

    /// Current state.
    pub fn state(&self) -> InviteServerState {
        self.state
    }

    /// Whether the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == InviteServerState::Terminated
    }

    /// The user's response. Ignored once a final response was sent (except
    /// further 2xx in Accepted, which are sent).
    pub fn send_response(&mut self, now: Instant, response: Message) {
        use InviteServerState::*;
        let code = status(&response);
        match (self.state, code) {
            (Proceeding, 100..=199) => {
                self.out.respond(response);
            }
            (Proceeding, 200..=299) => {
                self.state = Accepted;
                self.out.respond(response);
                self.deadline = Some(now + self.timers.timeout());
            }
            (Accepted, 200..=299) => self.out.send(response),
            (Proceeding, 300..=699) => {
                self.state = Completed;
                self.out.respond(response);
                if self.reliability == Reliability::Unreliable {
                    self.timer_g = Some((now + self.timers.t1, self.timers.t1));
                }
                self.deadline = Some(now + self.timers.timeout());
            }
            _ => {}
        }
    }

    /// A retransmission of the INVITE arrived: answer with the last response.
    /// Returns whether the last response was sent again.
    pub fn handle_retransmission(&mut self) -> bool {
        matches!(self.state, InviteServerState::Proceeding | InviteServerState::Completed) && self.out.repeat_last()
    }

    /// An ACK matching this transaction arrived (for a non-2xx response).
    pub fn handle_ack(&mut self, now: Instant) {
        if self.state == InviteServerState::Completed {
            self.state = InviteServerState::Confirmed;
            self.timer_g = None;
            self.deadline = Some(now + self.reliability.wait(self.timers.t4));
        }
    }

    /// Call at (or after) the instant `poll_timeout` returned.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((at, interval)) = self.timer_g {
            if now >= at && self.state == InviteServerState::Completed {
                self.out.repeat_last();
                let next = (interval * 2).min(self.timers.t2);
                self.timer_g = Some((now + next, next));
            }
        }
        if self.deadline.is_some_and(|d| now >= d) {
            if self.state == InviteServerState::Completed {
                self.out.emit(ServerEvent::AckTimeout);
            }
            self.state = InviteServerState::Terminated;
            self.timer_g = None;
            self.deadline = None;
        }
    }

    /// The transport could not send a response.
    pub fn handle_transport_error(&mut self) {
        self.out.emit(ServerEvent::TransportError);
        self.state = InviteServerState::Terminated;
        self.timer_g = None;
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
        [self.timer_g.map(|(t, _)| t), self.deadline].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::{request, response};

    #[test]
    fn retransmitted_invite_gets_the_last_provisional() {
        let t0 = Instant::now();
        let inv = request("INVITE");
        let mut tx = ServerInvite::new(Reliability::Unreliable, Timers::default());
        tx.handle_retransmission();
        assert!(tx.poll_transmit().is_none(), "nothing sent yet: nothing to repeat");
        tx.send_response(t0, response(&inv, 100));
        tx.send_response(t0, response(&inv, 180));
        assert_eq!(std::iter::from_fn(|| tx.poll_transmit()).count(), 2);
        tx.handle_retransmission();
        assert_eq!(tx.poll_transmit().map(|m| status(&m)), Some(180));
    }

    #[test]
    fn final_error_retransmits_with_timer_g_until_ack() {
        let t0 = Instant::now();
        let inv = request("INVITE");
        let mut tx = ServerInvite::new(Reliability::Unreliable, Timers::default());
        tx.send_response(t0, response(&inv, 486));
        tx.poll_transmit().unwrap();
        let mut sent = vec![];
        for _ in 0..5 {
            let at = tx.poll_timeout().unwrap();
            tx.handle_timeout(at);
            if tx.poll_transmit().is_some() {
                sent.push((at - t0).as_millis());
            }
        }
        // G: 0.5, 1.5, 3.5, 7.5, 11.5 s (capped at T2).
        assert_eq!(sent, [500, 1500, 3500, 7500, 11500]);
        tx.handle_ack(t0 + Duration::from_secs(12));
        assert_eq!(tx.state(), InviteServerState::Confirmed);
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(17)), "Timer I = T4");
        tx.handle_timeout(t0 + Duration::from_secs(17));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_event(), None);
    }

    #[test]
    fn missing_ack_fires_timer_h() {
        let t0 = Instant::now();
        let inv = request("INVITE");
        let mut tx = ServerInvite::new(Reliability::Reliable, Timers::default());
        tx.send_response(t0, response(&inv, 503));
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)), "no Timer G on TCP");
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert_eq!(tx.poll_event(), Some(ServerEvent::AckTimeout));
        assert!(tx.is_terminated());
    }

    #[test]
    fn accepted_sends_further_2xx_and_ends_with_timer_l() {
        let t0 = Instant::now();
        let inv = request("INVITE");
        let mut tx = ServerInvite::new(Reliability::Unreliable, Timers::default());
        tx.send_response(t0, response(&inv, 200));
        tx.send_response(t0 + Duration::from_millis(500), response(&inv, 200));
        assert_eq!(std::iter::from_fn(|| tx.poll_transmit()).count(), 2);
        tx.handle_retransmission();
        assert!(tx.poll_transmit().is_none(), "2xx retransmission belongs to the dialog layer");
        tx.send_response(t0, response(&inv, 486));
        assert!(tx.poll_transmit().is_none(), "no error after a 2xx");
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }
}
