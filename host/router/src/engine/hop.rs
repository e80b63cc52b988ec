//! Where the requests the router sends inside a dialog go (RFC 3261
//! §12.2.1.1, §8.1.2; RFC 3263): to the first hop of the dialog's route
//! set (a record-routing proxy, an SBC, a load balancer), or to the remote
//! target when there is none. Every request on either leg takes this path:
//! ACK for a 2xx, BYE, re-INVITE, UPDATE, INFO, MESSAGE, NOTIFY,
//! SUBSCRIBE, PRACK, and the requests of a transfer.
//!
//! - The hop's transport is its URI's (`sips:`, `;transport=`), its port
//!   the URI's or, without one, the SIP service's SRV record (first by
//!   priority, RFC 3263 §4.2; not for TLS), its address the host's first
//!   usable one, all through the engine's DNS cache. A request whose hop
//!   must be looked up waits for the answer, then goes (or, if the name
//!   does not resolve, fails like an unreachable peer).
//! - With no route set over a stream transport, the dialog's own
//!   connection is used: a peer behind NAT cannot be connected to.
//! - With no route set, a remote target whose host does not resolve (or is
//!   unusable) falls back to where the peer's messages come from.

use std::collections::HashMap;
use std::time::Instant;

use trunkline_sip_core::dialog::Dialog;
use trunkline_sip_core::message::Message;
use trunkline_sip_core::transaction::TransactionKey;
use trunkline_sip_core::{Peer, Transport};

use super::attempts::{service, usable_addresses};
use super::build::{uri_destination, Destination, Locals};
use super::dns::{srv_order, Answer, Dns, Lookup, Question};
use super::Engine;

/// The next hop of a request inside a dialog (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    /// The first route, or the remote target.
    uri: String,
    /// `uri` is the remote target (the dialog has no route set).
    direct: bool,
    /// How the request travels (its Via and Contact name this transport).
    pub(crate) transport: Transport,
    /// Where the dialog's messages come from: the caller's source, or the
    /// address our INVITE went to (a connection on a stream transport).
    peer: Peer,
}

impl Hop {
    /// The next hop of `dialog`, whose peer's messages come from `peer`.
    pub(crate) fn of(dialog: &Dialog, peer: Peer) -> Hop {
        let direct = dialog.route_set.is_empty();
        let uri = dialog.next_hop().to_owned();
        let transport = if direct && peer.transport != Transport::Udp {
            peer.transport
        } else {
            Transport::of_uri(&uri).unwrap_or(if direct { peer.transport } else { Transport::Udp })
        };
        Hop { uri, direct, transport, peer }
    }
}

/// Where a hop is, as far as is known now.
#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    At(Peer),
    /// A name is being looked up; the waiter is resumed with the answer.
    Wait,
    Unreachable(String),
}

/// Requests held until their hop's name resolves.
#[derive(Default)]
pub(crate) struct Held {
    waiting: HashMap<u64, (Hop, Message, Option<TransactionKey>)>,
    next: u64,
}

/// Waiters for held requests are numbered from here (below: calls).
pub(crate) const HELD_WAITER: u64 = 1 << 63;

/// Most requests held at once; beyond, a new one fails at once.
const MAX_HELD: usize = 10_000;

fn resolve(dns: &mut Dns, locals: &Locals, now: Instant, waiter: u64, hop: &Hop) -> Resolved {
    if hop.direct && hop.peer.transport != Transport::Udp {
        return Resolved::At(hop.peer);
    }
    let found = match uri_destination(&hop.uri) {
        Some(Destination::Addr(peer)) => Resolved::At(peer),
        Some(Destination::Name { transport, host, port, port_given }) => {
            resolve_name(dns, locals, now, waiter, transport, host, (port, port_given))
        }
        None => Resolved::Unreachable(format!("{}: no host, or an unknown transport", hop.uri)),
    };
    match found {
        Resolved::Unreachable(why) if hop.direct => {
            tracing::debug!(uri = %hop.uri, "in-dialog request to where the peer's messages come from ({why})");
            Resolved::At(hop.peer)
        }
        other => other,
    }
}

fn resolve_name(
    dns: &mut Dns,
    locals: &Locals,
    now: Instant,
    waiter: u64,
    transport: Transport,
    host: String,
    (port, port_given): (u16, bool),
) -> Resolved {
    let (host, port) = match service(transport).filter(|_| !port_given) {
        Some(service) => match dns.lookup(now, &Question::Srv(format!("{service}.{host}")), waiter) {
            Lookup::Wait => return Resolved::Wait,
            // The first record by priority (weight 0 draws: the same one each time).
            Lookup::Found(Answer::Srv(records)) => match srv_order(records, || 0.0).into_iter().next() {
                Some(r) => (r.target.to_ascii_lowercase(), r.port),
                None => return Resolved::Unreachable(format!("{host} declares no SIP service")),
            },
            Lookup::Found(Answer::Addrs(_)) | Lookup::Failed(_) => (host, port),
        },
        None => (host, port),
    };
    match usable_addresses(dns, locals, now, waiter, transport, &host) {
        Ok(None) => Resolved::Wait,
        Ok(Some(addrs)) => Resolved::At(Destination::at(transport, addrs[0], port)),
        Err(why) => Resolved::Unreachable(why),
    }
}

impl Engine {
    /// Start a client transaction for `request` (inside a dialog) toward
    /// `hop`; its key, also when it waits for a name.
    pub(super) fn send_request_to(&mut self, now: Instant, hop: &Hop, request: Message) -> Option<TransactionKey> {
        let waiter = HELD_WAITER | self.held.next;
        match resolve(&mut self.dns, &self.locals, now, waiter, hop) {
            Resolved::At(peer) => self.layer.send_request(now, peer, request),
            Resolved::Wait => {
                let key = TransactionKey::of(&request)?;
                self.hold(waiter, hop, request, Some(key.clone()));
                Some(key)
            }
            Resolved::Unreachable(why) => {
                let key = TransactionKey::of(&request)?;
                self.unreachable(hop, &why, Some(key.clone()));
                Some(key)
            }
        }
    }

    /// Send `message` (an ACK for a 2xx) toward `hop`, outside any transaction.
    pub(super) fn send_stateless_to(&mut self, now: Instant, hop: &Hop, message: &Message) {
        let waiter = HELD_WAITER | self.held.next;
        match resolve(&mut self.dns, &self.locals, now, waiter, hop) {
            Resolved::At(peer) => self.layer.send_stateless(peer, message),
            Resolved::Wait => self.hold(waiter, hop, message.clone(), None),
            Resolved::Unreachable(why) => self.unreachable(hop, &why, None),
        }
    }

    /// Hold a request whose hop's name is being looked up, under `waiter`
    /// (at most [`MAX_HELD`]; beyond, it fails).
    fn hold(&mut self, waiter: u64, hop: &Hop, message: Message, key: Option<TransactionKey>) {
        if self.held.waiting.len() >= MAX_HELD {
            return self.unreachable(hop, "too many requests waiting for DNS", key);
        }
        self.held.next = (self.held.next + 1) % HELD_WAITER;
        self.held.waiting.insert(waiter, (hop.clone(), message, key));
    }

    /// A request that cannot go anywhere: its transaction fails like one
    /// whose peer is unreachable (after its user registered it).
    fn unreachable(&mut self, hop: &Hop, why: &str, key: Option<TransactionKey>) {
        tracing::warn!(uri = %hop.uri, "in-dialog request not sent: {why}");
        if let Some(key) = key {
            self.layer.report_unsendable(key);
        }
    }

    /// A DNS answer came for held request `waiter`: send it, hold it for
    /// the next lookup (SRV, then the host), or fail it.
    pub(super) fn release_held(&mut self, now: Instant, waiter: u64) {
        let Some((hop, message, key)) = self.held.waiting.remove(&waiter) else { return };
        match resolve(&mut self.dns, &self.locals, now, waiter, &hop) {
            Resolved::At(peer) if key.is_some() => {
                self.layer.send_request(now, peer, message);
            }
            Resolved::At(peer) => self.layer.send_stateless(peer, &message),
            Resolved::Wait => {
                self.held.waiting.insert(waiter, (hop, message, key));
            }
            Resolved::Unreachable(why) => self.unreachable(&hop, &why, key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_sip_core::dialog::DialogId;

    fn dialog(route_set: &[&str], target: &str) -> Dialog {
        Dialog {
            id: DialogId { call_id: "c".into(), local_tag: "l".into(), remote_tag: "r".into() },
            local_party: "<sip:a@x>;tag=l".into(),
            remote_party: "<sip:b@y>;tag=r".into(),
            remote_target: target.into(),
            route_set: route_set.iter().map(|r| r.to_string()).collect(),
            local_seq: 1,
            remote_seq: None,
        }
    }

    fn udp(s: &str) -> Peer {
        Peer::udp(s.parse().unwrap())
    }

    #[test]
    fn the_first_route_wins_over_the_remote_target_and_the_source() {
        let (t0, locals) = (Instant::now(), Locals::udp("127.0.0.1:5060".parse().unwrap()));
        let mut dns = Dns::default();
        let routed = Hop::of(&dialog(&["sip:127.0.0.9:5070;lr"], "sip:ua@127.0.0.5:5080"), udp("127.0.0.9:5070"));
        assert_eq!(resolve(&mut dns, &locals, t0, 1, &routed), Resolved::At(udp("127.0.0.9:5070")));
        let tcp_route =
            Hop::of(&dialog(&["sip:127.0.0.9:5070;transport=tcp;lr"], "sip:ua@127.0.0.5"), udp("1.2.3.4:1"));
        assert_eq!(tcp_route.transport, Transport::Tcp);
        assert_eq!(
            resolve(&mut dns, &locals, t0, 1, &tcp_route),
            Resolved::At(Peer::tcp("127.0.0.9:5070".parse().unwrap()))
        );
        let direct = Hop::of(&dialog(&[], "sip:ua@127.0.0.5:5080"), udp("127.0.0.6:6000"));
        assert_eq!(resolve(&mut dns, &locals, t0, 1, &direct), Resolved::At(udp("127.0.0.5:5080")));
        // Over a stream without a route set: the dialog's connection.
        let conn = Peer::tcp("127.0.0.6:41000".parse().unwrap());
        let stream = Hop::of(&dialog(&[], "sip:ua@127.0.0.5:5080;transport=tcp"), conn);
        assert_eq!(resolve(&mut dns, &locals, t0, 1, &stream), Resolved::At(conn));
    }

    #[test]
    fn a_named_route_is_looked_up_srv_first_and_a_named_target_falls_back_to_the_source() {
        let (t0, locals) = (Instant::now(), Locals::udp("127.0.0.1:5060".parse().unwrap()));
        let mut dns = Dns::default();
        let hop = Hop::of(&dialog(&["sip:edge.example;lr"], "sip:ua@127.0.0.5"), udp("127.0.0.9:5070"));
        assert_eq!(resolve(&mut dns, &locals, t0, 7, &hop), Resolved::Wait);
        let srv = Question::Srv("_sip._udp.edge.example".into());
        assert_eq!(dns.poll(), Some(srv.clone()));
        let record = super::super::dns::SrvRecord { priority: 1, weight: 0, port: 5088, target: "sbc.example".into() };
        assert_eq!(dns.answer(t0, &srv, Ok(Answer::Srv(vec![record]))), vec![7]);
        assert_eq!(resolve(&mut dns, &locals, t0, 7, &hop), Resolved::Wait);
        let host = Question::Host("sbc.example".into());
        assert_eq!(dns.poll(), Some(host.clone()));
        dns.answer(t0, &host, Ok(Answer::Addrs(vec!["127.0.0.77".parse().unwrap()])));
        assert_eq!(resolve(&mut dns, &locals, t0, 7, &hop), Resolved::At(udp("127.0.0.77:5088")));
        // A route that does not resolve is unreachable; a remote target falls back.
        let gone = Hop::of(&dialog(&["sip:gone.example:5060;lr"], "sip:ua@127.0.0.5"), udp("127.0.0.9:5070"));
        assert_eq!(resolve(&mut dns, &locals, t0, 8, &gone), Resolved::Wait);
        dns.answer(t0, &Question::Host("gone.example".into()), Err("NXDOMAIN".into()));
        assert!(matches!(resolve(&mut dns, &locals, t0, 8, &gone), Resolved::Unreachable(_)));
        let named = Hop::of(&dialog(&[], "sip:ua@gone.example:5060"), udp("127.0.0.9:5070"));
        assert_eq!(resolve(&mut dns, &locals, t0, 9, &named), Resolved::At(udp("127.0.0.9:5070")));
    }
}
