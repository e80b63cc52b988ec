//! Non-INVITE client transaction (RFC 3261 §17.1.2).
//!
//! ```text
//!   Trying --1xx--> Proceeding --final--> Completed --Timer K--> Terminated
//!     '--final--> Completed        Trying/Proceeding --Timer F--> Terminated (timeout)
//! ```

use std::time::{Duration, Instant};

use super::outbox::Outbox;
use super::{status, ClientEvent, Reliability, Timers};
use crate::message::Message;

/// States of a non-INVITE client transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonInviteClientState {
    /// Request sent or received, no response yet.
    Trying,
    /// A provisional response was sent or received.
    Proceeding,
    /// A final response was sent or received; absorbing retransmissions.
    Completed,
    /// Over: the transaction can be dropped.
    Terminated,
}

/// A non-INVITE client transaction (BYE, CANCEL, OPTIONS, INFO, UPDATE...).
#[derive(Debug)]
pub struct ClientNonInvite {
    state: NonInviteClientState,
    request: Message,
    reliability: Reliability,
    timers: Timers,
    /// Timer E: next retransmission and the interval after it.
    timer_e: Option<(Instant, Duration)>,
    /// Timer F (Trying/Proceeding) or K (Completed).
    deadline: Option<Instant>,
    out: Outbox<ClientEvent>,
}

impl ClientNonInvite {
    /// Start: the request is queued, Timer E (UDP) and Timer F armed.
    pub fn new(request: Message, reliability: Reliability, timers: Timers, now: Instant) -> Self {
        let timer_e = (reliability == Reliability::Unreliable).then(|| (now + timers.t1, timers.t1));
        ClientNonInvite {
            state: NonInviteClientState::Trying,
            out: Outbox::sending(request.clone()),
            request,
            reliability,
            timers,
            timer_e,
            deadline: Some(now + timers.timeout()),
        }
    }

    /// Current state.
    pub fn state(&self) -> NonInviteClientState {
        self.state
    }

    /// Whether the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == NonInviteClientState::Terminated
    }

    /// A matching response arrived.
    pub fn handle_response(&mut self, now: Instant, response: Message) {
        use NonInviteClientState::*;
        match (self.state, status(&response)) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.out.emit(ClientEvent::Provisional(response));
            }
            (Trying | Proceeding, 200..=699) => {
                self.state = Completed;
                self.timer_e = None;
                self.deadline = Some(now + self.reliability.wait(self.timers.t4));
                self.out.emit(ClientEvent::Final(response));
            }
            _ => {}
        }
    }

    /// Call at (or after) the instant `poll_timeout` returned.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((at, interval)) = self.timer_e {
            // `interval` is the wait that just elapsed; the next one doubles
            // up to T2 in Trying, and is T2 in Proceeding.
            if now >= at {
                self.out.send(self.request.clone());
                // In Proceeding the interval is T2; in Trying it doubles up to T2.
                let next = if self.state == NonInviteClientState::Proceeding {
                    self.timers.t2
                } else {
                    (interval * 2).min(self.timers.t2)
                };
                self.timer_e = Some((now + next, next));
            }
        }
        if self.deadline.is_some_and(|d| now >= d) {
            if self.state != NonInviteClientState::Completed {
                self.out.emit(ClientEvent::Timeout);
            }
            self.state = NonInviteClientState::Terminated;
            self.timer_e = None;
            self.deadline = None;
        }
    }

    /// The transport could not send the request.
    pub fn handle_transport_error(&mut self) {
        if self.state != NonInviteClientState::Completed {
            self.out.emit(ClientEvent::TransportError);
        }
        self.state = NonInviteClientState::Terminated;
        self.timer_e = None;
        self.deadline = None;
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.out.poll_transmit()
    }

    /// Next event for the user.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.out.poll_event()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.timer_e.map(|(t, _)| t), self.deadline].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::{request, response};

    #[test]
    fn timer_e_doubles_to_t2_and_timer_f_times_out() {
        let t0 = Instant::now();
        let mut tx = ClientNonInvite::new(request("BYE"), Reliability::Unreliable, Timers::default(), t0);
        tx.poll_transmit().unwrap();
        let mut sent = vec![];
        while let Some(at) = tx.poll_timeout() {
            tx.handle_timeout(at);
            if tx.poll_transmit().is_some() {
                sent.push((at - t0).as_millis());
            }
        }
        // 0.5, 1.5, 3.5, 7.5, then every 4 s until F at 32 s.
        assert_eq!(sent, [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
        assert_eq!(tx.poll_event(), Some(ClientEvent::Timeout));
    }

    #[test]
    fn proceeding_retransmits_every_t2_and_completed_waits_t4() {
        let t0 = Instant::now();
        let bye = request("BYE");
        let mut tx = ClientNonInvite::new(bye.clone(), Reliability::Unreliable, Timers::default(), t0);
        tx.poll_transmit();
        tx.handle_response(t0 + Duration::from_millis(10), response(&bye, 100));
        assert_eq!(tx.state(), NonInviteClientState::Proceeding);
        tx.handle_timeout(t0 + Duration::from_millis(500));
        assert!(tx.poll_transmit().is_some());
        // RFC 3261 §17.1.2.2: in Proceeding, Timer E is reset to T2.
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_millis(4500)));
        tx.handle_timeout(t0 + Duration::from_millis(4500));
        assert!(tx.poll_transmit().is_some());
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_millis(8500)));
        tx.handle_response(t0 + Duration::from_secs(2), response(&bye, 200));
        assert!(matches!(tx.poll_event(), Some(ClientEvent::Provisional(_))));
        assert!(matches!(tx.poll_event(), Some(ClientEvent::Final(_))));
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(7)), "Timer K = T4");
        tx.handle_timeout(t0 + Duration::from_secs(7));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_event(), None);
    }

    #[test]
    fn transport_error_is_reported_once() {
        let t0 = Instant::now();
        let mut tx = ClientNonInvite::new(request("OPTIONS"), Reliability::Reliable, Timers::default(), t0);
        tx.handle_transport_error();
        assert_eq!(tx.poll_event(), Some(ClientEvent::TransportError));
        assert_eq!(tx.poll_event(), None);
        assert!(tx.is_terminated() && tx.poll_timeout().is_none());
    }
}
