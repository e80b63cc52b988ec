//! Where responses go (RFC 3261 §18.2.1-18.2.2, RFC 3581 `rport`).
//!
//! A server marks the top Via of each request it receives with the address
//! the request really came from (`received`, and `rport=PORT` when the
//! client asked for it), and sends its responses back:
//! - over a stream transport, on the connection the request came in on;
//! - over UDP with `rport`, to the source address and port (RFC 3581 §4),
//!   which is what reaches a client behind a NAT;
//! - over UDP without `rport`, to the source address and the Via's port
//!   (5060 if it names none) when the Via names the source address; when it
//!   names another host (a client behind a NAT that does not ask for
//!   `rport`, or one naming itself by DNS name), to the source address and
//!   port, as Kamailio's usual `nat_uac_test` + `force_rport` does. `maddr`
//!   is not honoured (multicast responses are not sent).

use std::net::IpAddr;

use crate::header::{param, Via};
use crate::message::Message;
use crate::transport::{Peer, Transport};

/// Add `received` and the `rport` value to the top Via of `request`,
/// received from `from`, whose top Via, parsed, is `via`; return where its
/// responses go. The header is rewritten only when something is added.
pub fn stamp_via(request: &mut Message, via: &Via, from: Peer) -> Peer {
    let asked_rport = param(&via.params, "rport").is_some();
    let names_source = names(via, from);
    let reply = reply_peer(via, from, asked_rport, names_source);
    let stale = param(&via.params, "received").is_some();
    if !asked_rport && names_source && !stale {
        return reply; // nothing to add (the usual case for a peer on its own address)
    }
    let Some(h) = request.headers.iter_mut().find(|h| h.name.eq_ignore_ascii_case("Via")) else { return reply };
    let Some(first) = h.value.split(',').next() else { return reply };
    let start = first.as_ptr() as usize - h.value.as_ptr() as usize;
    let end = start + first.len();
    let mut params: Vec<&str> = via
        .params
        .split(';')
        .map(str::trim)
        .filter(|p| {
            let name = p.split('=').next().unwrap_or("").trim();
            !p.is_empty() && !name.eq_ignore_ascii_case("received") && !name.eq_ignore_ascii_case("rport")
        })
        .collect();
    let received = format!("received={}", from.addr.ip());
    let rport = format!("rport={}", from.addr.port());
    if asked_rport {
        params.push(&rport);
    }
    if asked_rport || !names_source {
        params.push(&received);
    }
    let stamped = Via { params: params.join(";"), ..via.clone() };
    h.value.replace_range(start..end, &stamped.to_string());
    reply
}

/// Where responses to `request` (stamped by [`stamp_via`]) received from
/// `from` go: see the module docs.
pub fn response_peer(request: &Message, from: Peer) -> Peer {
    match request.header("Via").and_then(|v| v.split(',').next()).and_then(Via::parse) {
        Some(via) => reply_peer(&via, from, param(&via.params, "rport").is_some(), names(&via, from)),
        None => from,
    }
}

/// Whether `via`'s sent-by host is the address `from` sent from.
fn names(via: &Via, from: Peer) -> bool {
    via.host.parse::<IpAddr>().is_ok_and(|ip| ip == from.addr.ip())
}

fn reply_peer(via: &Via, from: Peer, rport: bool, names_source: bool) -> Peer {
    if from.transport != Transport::Udp || rport || !names_source {
        return from;
    }
    let port = via.port.unwrap_or(Transport::Udp.default_port());
    Peer::udp(std::net::SocketAddr::new(from.addr.ip(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(via: &str) -> Message {
        let text = format!("OPTIONS sip:a@b SIP/2.0\r\nVia: {via}\r\nCall-ID: c\r\n\r\n");
        Message::parse(text.as_bytes()).unwrap()
    }

    fn udp(s: &str) -> Peer {
        Peer::udp(s.parse().unwrap())
    }

    /// Stamp as the transaction layer does; where responses go.
    fn stamp(m: &mut Message, from: Peer) -> Option<Peer> {
        let via = Via::parse(m.header("Via")?.split(',').next()?)?;
        Some(stamp_via(m, &via, from))
    }

    #[test]
    fn rport_answers_the_source_and_is_stamped() {
        let mut m = request("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP p;branch=z9hG4bK0");
        assert_eq!(stamp(&mut m, udp("203.0.113.7:40123")), Some(udp("203.0.113.7:40123")));
        assert_eq!(
            m.header("Via"),
            Some(
                "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;rport=40123;received=203.0.113.7, SIP/2.0/UDP p;branch=z9hG4bK0"
            )
        );
        assert_eq!(response_peer(&m, udp("203.0.113.7:40123")), udp("203.0.113.7:40123"));
    }

    #[test]
    fn without_rport_the_via_port_unless_the_via_names_another_host() {
        let mut m = request("SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1");
        assert_eq!(stamp(&mut m, udp("127.0.0.1:40000")), Some(udp("127.0.0.1:5090")));
        assert_eq!(m.header("Via"), Some("SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1"), "same host: no received");
        assert_eq!(response_peer(&m, udp("127.0.0.1:40000")), udp("127.0.0.1:5090"));
        let no_port = request("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1");
        assert_eq!(response_peer(&no_port, udp("127.0.0.1:40000")), udp("127.0.0.1:5060"));
        let mut natted = request("SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK1;received=1.1.1.1");
        assert_eq!(stamp(&mut natted, udp("198.51.100.2:6000")), Some(udp("198.51.100.2:6000")));
        assert_eq!(natted.header("Via"), Some("SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK1;received=198.51.100.2"));
        assert_eq!(response_peer(&natted, udp("198.51.100.2:6000")), udp("198.51.100.2:6000"));
    }

    #[test]
    fn streams_answer_on_their_connection_and_garbage_is_left_alone() {
        let tcp = Peer::tcp("127.0.0.1:41000".parse().unwrap());
        let mut m = request("SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1;rport");
        assert_eq!(stamp(&mut m, tcp), Some(tcp));
        assert_eq!(m.header("Via"), Some("SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1;rport=41000;received=127.0.0.1"));
        assert_eq!(response_peer(&m, tcp), tcp);
        let mut bad = request("garbage");
        assert_eq!(stamp(&mut bad, udp("127.0.0.1:1")), None);
        assert_eq!(bad.header("Via"), Some("garbage"));
        assert_eq!(response_peer(&bad, udp("127.0.0.1:1")), udp("127.0.0.1:1"));
        let mut v6 = request("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;rport");
        stamp(&mut v6, Peer::udp("[2001:db8::2]:7000".parse().unwrap()));
        assert_eq!(
            v6.header("Via"),
            Some("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;rport=7000;received=2001:db8::2")
        );
    }
}
