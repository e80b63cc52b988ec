//! The transaction layer: owns every transaction, matches incoming messages
//! to them (RFC 3261 §17.1.3, §17.2.3), and drives all their timers.
//!
//! Method taxonomy (as in quinn's `Connection`):
//! - handlers: [`handle_message`](Layer::handle_message) (bytes from a
//!   peer), [`handle_timeout`](Layer::handle_timeout);
//! - user actions: [`send_request`](Layer::send_request),
//!   [`send_response`](Layer::send_response),
//!   [`send_stateless`](Layer::send_stateless);
//! - polls: [`poll_transmit`](Layer::poll_transmit),
//!   [`poll_event`](Layer::poll_event), [`poll_timeout`](Layer::poll_timeout).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

use super::{
    ClientEvent, ClientInvite, ClientNonInvite, Reliability, ServerEvent, ServerInvite, ServerNonInvite, Timers,
    TransactionKey,
};
use crate::header::Via;
use crate::message::{Header, Message, ParseError, StartLine};
use crate::transport::Peer;

/// Bytes to send to a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination (for a stream transport, the connection to use).
    pub to: Peer,
    /// A whole SIP message.
    pub bytes: Vec<u8>,
    /// Where its Call-ID's value is in `bytes` (empty: it has none).
    pub call_id: std::ops::Range<usize>,
}

impl Transmit {
    /// `message` serialized, to `to`.
    pub fn of(to: Peer, message: &Message) -> Transmit {
        let (bytes, call_id) = message.serialize();
        Transmit { to, bytes, call_id }
    }

    /// The message's Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        let value = self.bytes.get(self.call_id.clone()).filter(|v| !v.is_empty())?;
        std::str::from_utf8(value).ok()
    }
}

/// What the layer tells its user (the call engine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerEvent {
    /// A new request. `key` names its server transaction (answer with
    /// `send_response`); ACKs for 2xx responses have none (they belong to
    /// the dialog).
    Request {
        /// Server transaction, if any.
        key: Option<TransactionKey>,
        /// Where it came from.
        from: Peer,
        /// The request.
        message: Message,
    },
    /// A client transaction's response, timeout or transport error.
    Client {
        /// The client transaction.
        key: TransactionKey,
        /// What happened.
        event: ClientEvent,
    },
    /// A server transaction gave up (no ACK) or could not send.
    Server {
        /// The server transaction.
        key: TransactionKey,
        /// What happened.
        event: ServerEvent,
    },
    /// A message that could not be parsed. A 400 was sent if it was a
    /// request with enough headers to answer; logged once by the user.
    Malformed {
        /// Where it came from.
        from: Peer,
        /// Why it is not SIP.
        error: ParseError,
    },
    /// A response that matches no transaction (a stray or late one).
    StrayResponse {
        /// Where it came from.
        from: Peer,
        /// The response.
        message: Message,
    },
}

/// Where a message came from, and where responses to it go.
#[derive(Clone, Copy)]
struct Endpoints {
    from: Peer,
    reply_to: Peer,
}

enum Tx {
    ClientInv(ClientInvite),
    Client(ClientNonInvite),
    ServerInv(ServerInvite),
    Server(ServerNonInvite),
}

struct Entry {
    tx: Tx,
    peer: Peer,
    /// The deadline a wake-up is queued for (to avoid queueing it again).
    armed: Option<Instant>,
}

/// Move a transaction's queued messages and events into the layer's queues;
/// yields its next deadline and whether it is over.
macro_rules! pump {
    ($t:expr, $key:expr, $peer:expr, $layer:expr, $variant:ident) => {{
        while let Some(m) = $t.poll_transmit() {
            $layer.transmits.push_back(Transmit::of($peer, &m));
        }
        while let Some(event) = $t.poll_event() {
            $layer.events.push_back(LayerEvent::$variant { key: $key.clone(), event });
        }
        ($t.poll_timeout(), $t.is_terminated())
    }};
}

/// Most transactions alive at once; new requests beyond are answered 503.
pub const MAX_TRANSACTIONS: usize = 200_000;

/// All transactions of one endpoint. See the module docs.
pub struct Layer {
    timers: Timers,
    entries: HashMap<TransactionKey, Entry>,
    /// Deadlines, possibly stale (checked against the transaction's own).
    wakeups: BinaryHeap<Reverse<(Instant, u64)>>,
    wake_keys: HashMap<u64, TransactionKey>,
    next_wake: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<LayerEvent>,
    /// Messages sent again: by a retransmission timer, or as the answer to
    /// a retransmitted request.
    retransmissions: u64,
    /// The Call-ID of the last message [`Layer::handle_message`] parsed
    /// (empty: it did not parse, or had none), for the driver's traces.
    last_call_id: String,
}

impl Layer {
    /// An empty layer using `timers`.
    pub fn new(timers: Timers) -> Self {
        Layer {
            timers,
            entries: HashMap::new(),
            wakeups: BinaryHeap::new(),
            wake_keys: HashMap::new(),
            next_wake: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            retransmissions: 0,
            last_call_id: String::new(),
        }
    }

    /// Transactions alive.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// One whole message arrived from `from` (a datagram, or a frame cut
    /// out of a stream by [`Framer`](crate::transport::Framer)).
    pub fn handle_message(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        let reliability = from.transport.reliability();
        self.last_call_id.clear();
        let mut message = match Message::parse(bytes) {
            Ok(m) => m,
            Err(error) => {
                if let Some(reply) = bad_request_reply(bytes, &error) {
                    self.transmits.push_back(Transmit::of(from, &reply));
                }
                self.events.push_back(LayerEvent::Malformed { from, error });
                return;
            }
        };
        if let Some(call_id) = message.header("Call-ID") {
            self.last_call_id.push_str(call_id);
        }
        // The top Via, parsed once: the transaction key, and for a
        // request its `received`/`rport` stamp and where responses go.
        let via = message.header("Via").and_then(|v| v.split(',').next()).and_then(Via::parse);
        let key = via.as_ref().and_then(|v| TransactionKey::with_via(&message, v));
        let reply_to = match (&via, message.method().is_some()) {
            (Some(v), true) => crate::response_route::stamp_via(&mut message, v, from),
            _ => from,
        };
        let to = Endpoints { from, reply_to };
        if let Some(k) = &key {
            let k = k.clone();
            self.dispatch(now, to, reliability, message, Some(k.clone()));
            self.pump(&k);
        } else {
            self.dispatch(now, to, reliability, message, None);
        }
    }

    fn dispatch(
        &mut self,
        now: Instant,
        Endpoints { from, reply_to }: Endpoints,
        reliability: Reliability,
        message: Message,
        key: Option<TransactionKey>,
    ) {
        match (&message.start, key) {
            (StartLine::Response { .. }, Some(key)) => match self.entries.get_mut(&key) {
                Some(Entry { tx: Tx::ClientInv(t), .. }) => t.handle_response(now, message),
                Some(Entry { tx: Tx::Client(t), .. }) => t.handle_response(now, message),
                _ => self.events.push_back(LayerEvent::StrayResponse { from, message }),
            },
            (StartLine::Response { .. }, None) => self.events.push_back(LayerEvent::StrayResponse { from, message }),
            (StartLine::Request { method, .. }, Some(key)) => {
                let is_ack = method == "ACK";
                match self.entries.get_mut(&key) {
                    Some(Entry { tx: Tx::ServerInv(t), .. }) if is_ack => {
                        // ACK of a non-2xx is absorbed; ACK of a 2xx (Accepted) goes to the dialog.
                        if t.state() == super::InviteServerState::Accepted {
                            self.events.push_back(LayerEvent::Request { key: None, from, message });
                        } else {
                            t.handle_ack(now);
                        }
                    }
                    Some(Entry { tx: Tx::ServerInv(t), .. }) => {
                        self.retransmissions += u64::from(t.handle_retransmission());
                    }
                    Some(Entry { tx: Tx::Server(t), .. }) => {
                        self.retransmissions += u64::from(t.handle_retransmission());
                    }
                    _ if is_ack => self.events.push_back(LayerEvent::Request { key: None, from, message }),
                    _ => {
                        if self.entries.len() >= MAX_TRANSACTIONS {
                            let reply = response_to(&message, 503, "Service Unavailable");
                            self.transmits.push_back(Transmit::of(from, &reply));
                            return;
                        }
                        let tx = if method == "INVITE" {
                            Tx::ServerInv(ServerInvite::new(reliability, self.timers))
                        } else {
                            Tx::Server(ServerNonInvite::new(reliability, self.timers))
                        };
                        // Responses go where RFC 3261 §18.2.2 and RFC 3581 say.
                        self.entries.insert(key.clone(), Entry { tx, peer: reply_to, armed: None });
                        self.events.push_back(LayerEvent::Request { key: Some(key), from, message });
                    }
                }
            }
            (StartLine::Request { .. }, None) => {
                // No RFC 3261 branch (RFC 2543 peer): handled statelessly by the user.
                self.events.push_back(LayerEvent::Request { key: None, from, message });
            }
        }
    }

    /// Start a client transaction sending `request` to `to`.
    pub fn send_request(&mut self, now: Instant, to: Peer, request: Message) -> Option<TransactionKey> {
        let key = TransactionKey::of(&request)?;
        let reliability = to.transport.reliability();
        let tx = if request.method() == Some("INVITE") {
            Tx::ClientInv(ClientInvite::new(request, reliability, self.timers, now))
        } else {
            Tx::Client(ClientNonInvite::new(request, reliability, self.timers, now))
        };
        self.entries.insert(key.clone(), Entry { tx, peer: to, armed: None });
        self.pump(&key);
        Some(key)
    }

    /// Answer the server transaction `key`. False if it no longer exists.
    pub fn send_response(&mut self, now: Instant, key: &TransactionKey, response: Message) -> bool {
        match self.entries.get_mut(key) {
            Some(Entry { tx: Tx::ServerInv(t), .. }) => t.send_response(now, response),
            Some(Entry { tx: Tx::Server(t), .. }) => t.send_response(now, response),
            _ => return false,
        }
        self.pump(key);
        true
    }

    /// Forget a client transaction without further retransmissions or
    /// events (failover after silence: the target never answered).
    pub fn abandon(&mut self, key: &TransactionKey) {
        self.entries.remove(key);
    }

    /// Send a message outside any transaction (ACK for a 2xx, 2xx
    /// retransmissions by the dialog layer).
    pub fn send_stateless(&mut self, to: Peer, message: &Message) {
        self.transmits.push_back(Transmit::of(to, message));
    }

    /// The user could not send the request of client transaction `key` at
    /// all (its next hop has no address): report it as a transport error,
    /// in turn with the other events, without starting the transaction.
    pub fn report_unsendable(&mut self, key: TransactionKey) {
        self.events.push_back(LayerEvent::Client { key, event: ClientEvent::TransportError });
    }

    /// The driver could not reach `peer` (a refused or broken connection):
    /// every transaction exchanging messages with it fails at once instead
    /// of waiting for its timeout (RFC 3261 §17.1.4, §17.2.4).
    pub fn handle_transport_error(&mut self, peer: Peer) {
        let keys: Vec<TransactionKey> =
            self.entries.iter().filter(|(_, e)| e.peer == peer).map(|(k, _)| k.clone()).collect();
        for key in keys {
            if let Some(e) = self.entries.get_mut(&key) {
                match &mut e.tx {
                    Tx::ClientInv(t) => t.handle_transport_error(),
                    Tx::Client(t) => t.handle_transport_error(),
                    Tx::ServerInv(t) => t.handle_transport_error(),
                    Tx::Server(t) => t.handle_transport_error(),
                }
            }
            self.pump(&key);
        }
    }

    /// The Call-ID of the last message given to [`Layer::handle_message`],
    /// if it parsed and had one (a driver files the message under its call
    /// without searching its bytes again).
    pub fn last_call_id(&self) -> Option<&str> {
        (!self.last_call_id.is_empty()).then_some(self.last_call_id.as_str())
    }

    /// Messages sent again so far (retransmission timers, and answers to
    /// retransmitted requests).
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Whatever a timer sends is a retransmission (RFC 3261 timers A, E, G).
        let before = self.transmits.len();
        self.run_timers(now);
        self.retransmissions += self.transmits.len().saturating_sub(before) as u64;
    }

    fn run_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.wakeups.peek().copied() {
            if at > now {
                break;
            }
            self.wakeups.pop();
            let Some(key) = self.wake_keys.remove(&id) else { continue };
            let Some(e) = self.entries.get_mut(&key) else { continue };
            if e.armed != Some(at) {
                continue; // stale: the deadline moved since this wake-up was queued
            }
            e.armed = None;
            match &mut e.tx {
                Tx::ClientInv(t) => t.handle_timeout(now),
                Tx::Client(t) => t.handle_timeout(now),
                Tx::ServerInv(t) => t.handle_timeout(now),
                Tx::Server(t) => t.handle_timeout(now),
            }
            self.pump(&key);
        }
    }

    /// Move what transaction `key` queued into the layer, reap it if it is
    /// over, and queue a wake-up if its deadline changed.
    fn pump(&mut self, key: &TransactionKey) {
        let Some(e) = self.entries.get_mut(key) else { return };
        let (deadline, terminated) = match &mut e.tx {
            Tx::ClientInv(t) => pump!(t, key, e.peer, self, Client),
            Tx::Client(t) => pump!(t, key, e.peer, self, Client),
            Tx::ServerInv(t) => pump!(t, key, e.peer, self, Server),
            Tx::Server(t) => pump!(t, key, e.peer, self, Server),
        };
        if terminated {
            self.entries.remove(key);
        } else if deadline != e.armed {
            e.armed = deadline;
            if let Some(at) = deadline {
                let id = self.next_wake;
                self.next_wake += 1;
                self.wakeups.push(Reverse((at, id)));
                self.wake_keys.insert(id, key.clone());
            }
        }
    }

    /// Next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the user.
    pub fn poll_event(&mut self) -> Option<LayerEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wakeups.peek().map(|Reverse((at, _))| *at)
    }
}

/// A response to `request` with its Via, From, To, Call-ID and CSeq.
pub fn response_to(request: &Message, status: u16, reason: &str) -> Message {
    let headers = request
        .headers
        .iter()
        .filter(|h| ["Via", "From", "To", "Call-ID", "CSeq"].iter().any(|n| h.name.eq_ignore_ascii_case(n)))
        .cloned()
        .collect();
    Message { start: StartLine::Response { status, reason: reason.into() }, headers, body: vec![] }
}

/// RFC 3261 §8.2 / RFC 4475: answer an unparsable request with 400 and
/// the reason, if its start line is a request and it has the headers a
/// response needs; otherwise drop it.
fn bad_request_reply(bytes: &[u8], error: &ParseError) -> Option<Message> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(8192)]);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let first = lines.next()?;
    if first.starts_with("SIP/") || first.split(' ').count() < 3 {
        return None;
    }
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else { continue };
        let name = crate::message::long_name(name.trim());
        if ["Via", "From", "To", "Call-ID", "CSeq"].iter().any(|n| n.eq_ignore_ascii_case(name)) {
            headers.push(Header { name: name.to_owned(), value: value.trim().to_owned() });
        }
    }
    let has = |n: &str| headers.iter().any(|h: &Header| h.name.eq_ignore_ascii_case(n));
    if !(has("Via") && has("Call-ID") && has("CSeq") && has("From") && has("To")) {
        return None;
    }
    // RFC 3261 §8.2.1 / RFC 4475 §3.1.2.15: an unknown SIP version gets 505.
    let (status, reason) = match error {
        ParseError::Version(_) => (505, format!("Version Not Supported ({error})")),
        _ => (400, format!("Bad Request ({error})")),
    };
    let reason: String = reason.chars().filter(|c| !c.is_control()).take(120).collect();
    Some(Message { start: StartLine::Response { status, reason }, headers, body: vec![] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::{request, response};

    fn peer() -> Peer {
        Peer::udp("127.0.0.1:5070".parse().unwrap())
    }

    fn sent(layer: &mut Layer) -> Vec<String> {
        std::iter::from_fn(|| layer.poll_transmit())
            .map(|t| String::from_utf8_lossy(&t.bytes).lines().next().unwrap_or("").to_owned())
            .collect()
    }

    #[test]
    fn server_invite_absorbs_retransmissions_and_answers_with_the_last_response() {
        let t0 = Instant::now();
        let mut l = Layer::new(Timers::default());
        let inv = request("INVITE");
        l.handle_message(t0, peer(), &inv.to_bytes());
        let Some(LayerEvent::Request { key: Some(key), .. }) = l.poll_event() else { panic!("new request expected") };
        l.send_response(t0, &key, response(&inv, 100));
        l.handle_message(t0, peer(), &inv.to_bytes());
        assert_eq!(l.poll_event(), None, "the retransmission is not a new request");
        assert_eq!(sent(&mut l), ["SIP/2.0 100 X", "SIP/2.0 100 X"]);
        assert_eq!(l.retransmissions(), 1, "the 100 sent again for the retransmitted INVITE");
        l.send_response(t0, &key, response(&inv, 486));
        assert_eq!(sent(&mut l), ["SIP/2.0 486 X"]);
        // The ACK of the 486 is absorbed; Timer I then ends the transaction.
        let mut ack = request("ACK");
        ack.headers.retain(|h| h.name != "CSeq");
        ack.headers.push(Header { name: "CSeq".into(), value: "1 ACK".into() });
        l.handle_message(t0, peer(), &ack.to_bytes());
        assert_eq!(l.poll_event(), None);
        while let Some(at) = l.poll_timeout() {
            l.handle_timeout(at);
        }
        assert!(l.is_empty());
        assert_eq!(sent(&mut l), Vec::<String>::new(), "no retransmission after the ACK");
    }

    #[test]
    fn the_call_id_of_the_last_parsed_message_is_kept_for_the_driver() {
        let t0 = Instant::now();
        let mut l = Layer::new(Timers::default());
        let inv = request("INVITE");
        l.handle_message(t0, peer(), &inv.to_bytes());
        assert_eq!(l.last_call_id(), inv.header("Call-ID"));
        assert!(l.last_call_id().is_some_and(|c| !c.is_empty()));
        l.handle_message(t0, peer(), b"NOT SIP AT ALL\r\n\r\n");
        assert_eq!(l.last_call_id(), None, "a message that did not parse has none");
    }

    #[test]
    fn client_invite_times_out_through_the_layer_clock() {
        let t0 = Instant::now();
        let mut l = Layer::new(Timers::default());
        let to = Peer::udp("127.0.0.1:5080".parse().unwrap());
        let key = l.send_request(t0, to, request("INVITE")).unwrap();
        let mut n = 0;
        while let Some(at) = l.poll_timeout() {
            l.handle_timeout(at);
            n += 1;
            assert!(n < 100);
        }
        assert_eq!(sent(&mut l).len(), 7, "INVITE + 6 retransmissions");
        assert_eq!(l.retransmissions(), 6, "counted");
        assert_eq!(l.poll_event(), Some(LayerEvent::Client { key, event: ClientEvent::Timeout }));
        assert!(l.poll_timeout().is_none() && l.is_empty());
    }

    #[test]
    fn responses_reach_their_client_transaction_and_strays_are_reported() {
        let t0 = Instant::now();
        let mut l = Layer::new(Timers::default());
        let inv = request("INVITE");
        let tcp = Peer::tcp("127.0.0.1:5070".parse().unwrap());
        let key = l.send_request(t0, tcp, inv.clone()).unwrap();
        sent(&mut l);
        l.handle_message(t0, tcp, &response(&inv, 180).to_bytes());
        assert!(
            matches!(l.poll_event(), Some(LayerEvent::Client { key: k, event: ClientEvent::Provisional(_) }) if k == key)
        );
        let mut other = response(&request("BYE"), 200);
        other.headers[0].value = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-unknown".into();
        l.handle_message(t0, tcp, &other.to_bytes());
        assert!(matches!(l.poll_event(), Some(LayerEvent::StrayResponse { .. })));
    }

    #[test]
    fn malformed_requests_get_400_with_the_reason_when_answerable() {
        let t0 = Instant::now();
        let mut l = Layer::new(Timers::default());
        let bad = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 99\r\n\r\nshort";
        l.handle_message(t0, peer(), bad);
        let reply = sent(&mut l);
        assert_eq!(reply.len(), 1);
        assert!(reply[0].starts_with("SIP/2.0 400 Bad Request (body shorter than Content-Length"), "{reply:?}");
        assert!(matches!(l.poll_event(), Some(LayerEvent::Malformed { .. })));
        let v7 = String::from_utf8_lossy(bad).replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia");
        l.handle_message(t0, peer(), v7.as_bytes());
        assert!(sent(&mut l)[0].starts_with("SIP/2.0 505 Version Not Supported"));
        l.poll_event();
        l.handle_message(t0, peer(), b"garbage\r\n\r\n");
        assert!(sent(&mut l).is_empty(), "nothing to answer to");
    }
}
