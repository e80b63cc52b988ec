//! INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §7.2).
//!
//! ```text
//!   Calling --1xx--> Proceeding --2xx--> Accepted --Timer M--> Terminated
//!      |   \--2xx--> Accepted        \--300-699 (send ACK)--> Completed --Timer D--> Terminated
//!      |--300-699 (send ACK)--> Completed
//!      '--Timer B / transport error--> Terminated
//! ```

use std::time::{Duration, Instant};

use super::outbox::Outbox;
use super::{status, ClientEvent, Reliability, Timers};
use crate::message::{Header, Message, StartLine};

/// States of an INVITE client transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteClientState {
    /// INVITE sent, no response yet (Timers A and B run).
    Calling,
    /// A provisional response was sent or received.
    Proceeding,
    /// A 2xx was received; 2xx retransmissions still go to the user (RFC 6026).
    Accepted,
    /// A 300-699 was received and ACKed; absorbing retransmissions.
    /// A final response was sent or received; absorbing retransmissions.
    Completed,
    /// Over: the transaction can be dropped.
    Terminated,
}

/// An INVITE client transaction. See the module docs for the state chart.
#[derive(Debug)]
pub struct ClientInvite {
    state: InviteClientState,
    request: Message,
    reliability: Reliability,
    timers: Timers,
    /// Timer A: next retransmission and the interval after it.
    timer_a: Option<(Instant, Duration)>,
    /// Timer B (in Calling), D (in Completed) or M (in Accepted).
    deadline: Option<Instant>,
    ack: Option<Message>,
    out: Outbox<ClientEvent>,
}

impl ClientInvite {
    /// Start the transaction: the INVITE is queued for sending, Timer A (UDP)
    /// and Timer B are armed.
    pub fn new(request: Message, reliability: Reliability, timers: Timers, now: Instant) -> Self {
        let timer_a = (reliability == Reliability::Unreliable).then(|| (now + timers.t1, timers.t1));
        ClientInvite {
            state: InviteClientState::Calling,
            out: Outbox::sending(request.clone()),
            request,
            reliability,
            timers,
            timer_a,
            deadline: Some(now + timers.timeout()),
            ack: None,
        }
    }

    /// Current state.
    pub fn state(&self) -> InviteClientState {
        self.state
    }

    /// The INVITE this transaction sends.
    pub fn request(&self) -> &Message {
        &self.request
    }

    /// Whether the transaction is over and can be dropped.
    pub fn is_terminated(&self) -> bool {
        self.state == InviteClientState::Terminated
    }

    /// A response matching this transaction arrived.
    pub fn handle_response(&mut self, now: Instant, response: Message) {
        use InviteClientState::*;
        let code = status(&response);
        match (self.state, code) {
            (Calling | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.timer_a = None;
                // Timer B guards only the Calling state; ringing is bounded by the user (Timer C).
                self.deadline = None;
                self.out.emit(ClientEvent::Provisional(response));
            }
            (Calling | Proceeding, 200..=299) => {
                self.state = Accepted;
                self.timer_a = None;
                self.deadline = Some(now + self.timers.timeout());
                self.out.emit(ClientEvent::Final(response));
            }
            (Calling | Proceeding, 300..=699) => {
                self.state = Completed;
                self.timer_a = None;
                let ack = self.ack_for(&response);
                self.out.send(ack.clone());
                self.ack = Some(ack);
                self.deadline = Some(now + self.reliability.wait(Duration::from_secs(32)));
                self.out.emit(ClientEvent::Final(response));
            }
            (Accepted, 200..=299) => self.out.emit(ClientEvent::Final(response)),
            (Completed, 300..=699) => {
                if let Some(ack) = &self.ack {
                    self.out.send(ack.clone());
                }
            }
            _ => {}
        }
    }

    /// Call at (or after) the instant `poll_timeout` returned.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((at, interval)) = self.timer_a {
            if now >= at && self.state == InviteClientState::Calling {
                self.out.send(self.request.clone());
                self.timer_a = Some((now + interval * 2, interval * 2));
            }
        }
        if self.deadline.is_some_and(|d| now >= d) {
            if self.state == InviteClientState::Calling {
                self.out.emit(ClientEvent::Timeout);
            }
            self.terminate();
        }
    }

    /// The transport could not send the request.
    pub fn handle_transport_error(&mut self) {
        if matches!(self.state, InviteClientState::Calling | InviteClientState::Proceeding) {
            self.out.emit(ClientEvent::TransportError);
        }
        self.terminate();
    }

    fn terminate(&mut self) {
        self.state = InviteClientState::Terminated;
        self.timer_a = None;
        self.deadline = None;
    }

    /// Next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.out.poll_transmit()
    }

    /// Next event for the user, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.out.poll_event()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.timer_a.map(|(t, _)| t), self.deadline].into_iter().flatten().min()
    }

    /// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3).
    fn ack_for(&self, response: &Message) -> Message {
        let uri = match &self.request.start {
            StartLine::Request { uri, .. } => uri.clone(),
            StartLine::Response { .. } => String::new(),
        };
        let mut headers = Vec::new();
        if let Some(via) = self.request.header("Via") {
            headers.push(Header { name: "Via".into(), value: via.split(',').next().unwrap_or(via).trim().to_owned() });
        }
        headers.push(Header { name: "Max-Forwards".into(), value: "70".into() });
        for name in ["From", "Call-ID"] {
            if let Some(v) = self.request.header(name) {
                headers.push(Header { name: name.into(), value: v.to_owned() });
            }
        }
        if let Some(to) = response.header("To").or_else(|| self.request.header("To")) {
            headers.push(Header { name: "To".into(), value: to.to_owned() });
        }
        let seq = self.request.header("CSeq").and_then(crate::header::CSeq::parse).map(|c| c.seq).unwrap_or(1);
        headers.push(Header { name: "CSeq".into(), value: format!("{seq} ACK") });
        for r in self.request.headers_named("Route") {
            headers.push(Header { name: "Route".into(), value: r.to_owned() });
        }
        Message { start: StartLine::Request { method: "ACK".into(), uri }, headers, body: vec![] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::{request, response};

    fn drain(tx: &mut ClientInvite) -> Vec<String> {
        std::iter::from_fn(|| tx.poll_transmit()).map(|m| m.method().unwrap_or("response").to_owned()).collect()
    }

    #[test]
    fn udp_retransmits_with_timer_a_doubling_then_times_out_with_timer_b() {
        let t0 = Instant::now();
        let mut tx = ClientInvite::new(request("INVITE"), Reliability::Unreliable, Timers::default(), t0);
        assert_eq!(drain(&mut tx), ["INVITE"]);
        let mut sent_at = vec![];
        // Drive the clock from timeout to timeout, as a driver would.
        while let Some(at) = tx.poll_timeout() {
            tx.handle_timeout(at);
            if tx.poll_transmit().is_some() {
                sent_at.push((at - t0).as_millis());
            }
        }
        // Timer A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; Timer B at 32 s.
        assert_eq!(sent_at, [500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(tx.poll_event(), Some(ClientEvent::Timeout));
        assert!(tx.is_terminated());
    }

    #[test]
    fn provisional_stops_retransmissions_and_timer_b() {
        let t0 = Instant::now();
        let inv = request("INVITE");
        let mut tx = ClientInvite::new(inv.clone(), Reliability::Unreliable, Timers::default(), t0);
        drain(&mut tx);
        tx.handle_response(t0 + Duration::from_millis(100), response(&inv, 180));
        assert_eq!(tx.state(), InviteClientState::Proceeding);
        assert!(matches!(tx.poll_event(), Some(ClientEvent::Provisional(_))));
        assert_eq!(tx.poll_timeout(), None, "ringing is bounded by the user, not Timer B");
    }

    #[test]
    fn non_2xx_is_acked_and_retransmissions_reacked_until_timer_d() {
        let t0 = Instant::now();
        let inv = request("INVITE");
        let mut tx = ClientInvite::new(inv.clone(), Reliability::Unreliable, Timers::default(), t0);
        drain(&mut tx);
        let busy = response(&inv, 486);
        tx.handle_response(t0, busy.clone());
        let ack = tx.poll_transmit().unwrap();
        assert_eq!(ack.method(), Some("ACK"));
        assert_eq!(ack.header("CSeq"), Some("1 ACK"));
        assert_eq!(ack.header("To"), busy.header("To"), "To carries the response's tag");
        assert_eq!(ack.header("Via"), inv.header("Via"));
        assert_eq!(ack.header("Route"), inv.header("Route"));
        assert!(matches!(tx.poll_event(), Some(ClientEvent::Final(m)) if status(&m) == 486));
        tx.handle_response(t0 + Duration::from_secs(1), busy);
        assert_eq!(drain(&mut tx), ["ACK"]);
        assert_eq!(tx.poll_event(), None, "a retransmitted final is absorbed");
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }

    #[test]
    fn accepted_passes_2xx_retransmissions_up_until_timer_m() {
        let t0 = Instant::now();
        let inv = request("INVITE");
        let mut tx = ClientInvite::new(inv.clone(), Reliability::Reliable, Timers::default(), t0);
        drain(&mut tx);
        tx.handle_response(t0, response(&inv, 200));
        tx.handle_response(t0 + Duration::from_millis(500), response(&inv, 200));
        assert!(matches!(tx.poll_event(), Some(ClientEvent::Final(_))));
        assert!(matches!(tx.poll_event(), Some(ClientEvent::Final(_))));
        assert_eq!(drain(&mut tx), Vec::<String>::new(), "the user ACKs a 2xx, not the transaction");
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_transport_neither_retransmits_nor_waits_in_completed() {
        let t0 = Instant::now();
        let inv = request("INVITE");
        let mut tx = ClientInvite::new(inv.clone(), Reliability::Reliable, Timers::default(), t0);
        drain(&mut tx);
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)), "only Timer B");
        tx.handle_response(t0, response(&inv, 503));
        assert_eq!(drain(&mut tx), ["ACK"]);
        assert_eq!(tx.poll_timeout(), Some(t0), "Timer D is zero on TCP");
        tx.handle_timeout(t0);
        assert!(tx.is_terminated());
    }
}
