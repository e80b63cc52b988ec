//! Building the messages the B2BUA sends: the outgoing INVITE of a leg,
//! responses relayed to the caller, and branch/tag/Call-ID generation.

use std::net::SocketAddr;

use trunkline_plugin_host::types::Request;
use trunkline_sip_core::header::{list, MAGIC_COOKIE};
use trunkline_sip_core::message::{Header, Message, StartLine};
use trunkline_sip_core::reliable;
use trunkline_sip_core::transaction::response_to;
use trunkline_sip_core::{Peer, Transport};

/// Headers the B2BUA owns on each leg; never copied from one leg to the other.
pub(crate) const LEG_LOCAL: [&str; 11] = [
    "Via",
    "Route",
    "Record-Route",
    "Contact",
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Length",
    "Proxy-Authorization",
];

/// Unique-enough tokens for branches, tags and Call-IDs.
pub(crate) struct Ids {
    seed: u64,
    counter: u64,
}

impl Ids {
    pub(crate) fn new(seed: u64) -> Self {
        Ids { seed: seed | 1, counter: 0 }
    }

    /// A fresh token, 16 hex digits.
    pub(crate) fn next(&mut self) -> String {
        self.counter += 1;
        let mut x = self.seed ^ self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        format!("{x:016x}")
    }

    /// A uniform number in [0, 1), for the weighted target choice.
    pub(crate) fn rand01(&mut self) -> f64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Our listening addresses, one per transport served. Via and Contact of a
/// message name the listener of the transport it travels on, so that the
/// peer's responses and in-dialog requests come back to us.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Locals {
    /// The `udp://` listener.
    pub udp: Option<SocketAddr>,
    /// The `tcp://` listener.
    pub tcp: Option<SocketAddr>,
    /// The `tls://` listener.
    pub tls: Option<SocketAddr>,
}

impl Locals {
    /// Only a UDP listener (tests, simulations).
    pub fn udp(addr: SocketAddr) -> Self {
        Locals { udp: Some(addr), ..Self::default() }
    }

    /// The listener of `t`, or any other if `t` has none.
    pub fn addr(&self, t: Transport) -> SocketAddr {
        let own = match t {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
            Transport::Tls => self.tls,
        };
        own.or(self.udp).or(self.tcp).or(self.tls).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)))
    }

    /// Whether our listener of `t` can send to `ip`: same IP version (a
    /// socket bound to an IPv4 address cannot reach an IPv6 one, nor the
    /// reverse). Without a listener of `t`, any.
    pub fn reaches(&self, t: Transport, ip: std::net::IpAddr) -> bool {
        let own = match t {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
            Transport::Tls => self.tls,
        };
        own.is_none_or(|l| l.is_ipv4() == ip.is_ipv4())
    }

    /// Whether we can send over `t` (a stream transport needs a listener
    /// for the peer's requests to reach us).
    pub fn serves(&self, t: Transport) -> bool {
        match t {
            Transport::Udp => self.udp.is_some(),
            Transport::Tcp => self.tcp.is_some(),
            Transport::Tls => self.tls.is_some(),
        }
    }
}

/// Our Via value (without branch) for a message sent over `t`.
pub(crate) fn via(locals: &Locals, t: Transport) -> String {
    format!("SIP/2.0/{} {}", t.via_token(), locals.addr(t))
}

/// Our Contact for a dialog over `t`.
pub(crate) fn contact(locals: &Locals, t: Transport) -> String {
    format!("<sip:trunkline@{};transport={}>", locals.addr(t), t.uri_param())
}

pub(super) fn header(name: &str, value: impl Into<String>) -> Header {
    Header { name: name.into(), value: value.into() }
}

/// The INVITE of an outgoing leg: our Via, a new Call-ID and From tag, the
/// caller's From/To URIs, Max-Forwards decremented, the caller's other
/// headers (as plugins edited them) and body.
pub(crate) struct OutgoingInvite<'a> {
    pub(crate) uri: &'a str,
    pub(crate) request: &'a Request,
    pub(crate) from: &'a str,
    pub(crate) to: &'a str,
    pub(crate) max_forwards: u32,
    pub(crate) locals: &'a Locals,
    pub(crate) transport: Transport,
    pub(crate) call_id: &'a str,
    pub(crate) from_tag: &'a str,
    pub(crate) branch: &'a str,
    /// Offer the target reliable provisional responses (`Supported:
    /// 100rel`): we acknowledge them ourselves (`engine::reliable`).
    pub(crate) offer_100rel: bool,
}

/// Strip a `;tag=` parameter from a From/To value.
pub(crate) fn without_tag(value: &str) -> String {
    let (addr, params) = match value.find('>') {
        Some(i) => (&value[..=i], &value[i + 1..]),
        None => match value.split_once(';') {
            Some((a, p)) => (a, p),
            None => (value, ""),
        },
    };
    let kept: Vec<&str> = params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.to_ascii_lowercase().starts_with("tag="))
        .collect();
    if kept.is_empty() {
        addr.trim().to_owned()
    } else {
        format!("{};{}", addr.trim(), kept.join(";"))
    }
}

impl OutgoingInvite<'_> {
    pub(crate) fn build(&self) -> Message {
        let mut headers = vec![
            header("Via", format!("{};branch={MAGIC_COOKIE}{}", via(self.locals, self.transport), self.branch)),
            header("Max-Forwards", self.max_forwards.to_string()),
            header("From", format!("{};tag={}", without_tag(self.from), self.from_tag)),
            header("To", without_tag(self.to)),
            header("Call-ID", self.call_id),
            header("CSeq", "1 INVITE"),
            header("Contact", contact(self.locals, self.transport)),
        ];
        let mut supported = self.offer_100rel.then_some(reliable::OPTION_TAG).into_iter().collect::<Vec<_>>();
        for x in &self.request.headers {
            if LEG_LOCAL.iter().any(|n| n.eq_ignore_ascii_case(&x.name)) {
                continue;
            }
            // Reliable provisionals are the router's business on each leg
            // (RFC 3262, `engine::reliable`): the caller's 100rel is not
            // passed on as such, nor required of the target.
            let name = trunkline_sip_core::message::long_name(&x.name);
            if name.eq_ignore_ascii_case("Supported") || name.eq_ignore_ascii_case("Require") {
                let others = list(&x.value).filter(|t| !t.eq_ignore_ascii_case(reliable::OPTION_TAG));
                if name.eq_ignore_ascii_case("Supported") {
                    supported.extend(others);
                } else {
                    let others: Vec<&str> = others.collect();
                    if !others.is_empty() {
                        headers.push(header("Require", others.join(", ")));
                    }
                }
                continue;
            }
            headers.push(header(&x.name, x.value.clone()));
        }
        if !supported.is_empty() {
            headers.push(header("Supported", supported.join(", ")));
        }
        Message {
            start: StartLine::Request { method: "INVITE".into(), uri: self.uri.to_owned() },
            headers,
            body: self.request.body.clone().into_bytes(),
        }
    }
}

/// CANCEL for an INVITE we sent (RFC 3261 §9.1): same Request-URI, Call-ID,
/// From, To, CSeq number, top Via and Route headers.
pub(crate) fn cancel_for(invite: &Message) -> Message {
    let uri = match &invite.start {
        StartLine::Request { uri, .. } => uri.clone(),
        StartLine::Response { .. } => String::new(),
    };
    let mut headers: Vec<Header> = Vec::new();
    for name in ["Via", "From", "To", "Call-ID"] {
        if let Some(v) = invite.header(name) {
            headers.push(Header { name: name.into(), value: v.to_owned() });
        }
    }
    headers.push(Header { name: "Max-Forwards".into(), value: "70".into() });
    let seq = invite.header("CSeq").and_then(trunkline_sip_core::header::CSeq::parse).map_or(1, |c| c.seq);
    headers.push(Header { name: "CSeq".into(), value: format!("{seq} CANCEL") });
    headers.extend(invite.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("Route")).cloned());
    Message { start: StartLine::Request { method: "CANCEL".into(), uri }, headers, body: vec![] }
}

/// A request of the router's own, outside any dialog (an OPTIONS ping to
/// a target): a new branch, From tag and Call-ID; `extra` headers after
/// the usual ones; `from` is the user and domain of From.
pub(crate) fn own_request(
    locals: &Locals,
    ids: &mut Ids,
    transport: Transport,
    method: &str,
    uri: &str,
    from: (&str, &str),
    extra: Vec<Header>,
) -> Message {
    let (user, domain) = from;
    let mut headers = vec![
        header("Via", format!("{};branch={MAGIC_COOKIE}{}", via(locals, transport), ids.next())),
        header("Max-Forwards", "70"),
        header("From", format!("<sip:{user}@{domain}>;tag={}", ids.next())),
        header("To", format!("<{uri}>")),
        header("Call-ID", ids.next()),
        header("CSeq", format!("1 {method}")),
    ];
    headers.extend(extra);
    headers.push(header("Content-Length", "0"));
    Message { start: StartLine::Request { method: method.into(), uri: uri.to_owned() }, headers, body: vec![] }
}

/// A response to the caller's INVITE, relaying `status`, and the body and
/// Content-Type of the callee's response if any. A response that creates
/// a dialog (101-299) carries the INVITE's Record-Route values back, in
/// order (RFC 3261 §12.1.1), so that the caller's proxies stay in its path.
pub(crate) fn relay_response(
    invite: &Message,
    status: u16,
    reason: &str,
    to_tag: &str,
    contact_as: (&Locals, Transport),
    from_peer: Option<&Message>,
) -> Message {
    let mut r = response_to(invite, status, reason);
    if status > 100 {
        for x in r.headers.iter_mut().filter(|x| x.name.eq_ignore_ascii_case("To")) {
            if !x.value.contains(";tag=") {
                x.value = format!("{};tag={to_tag}", x.value);
            }
        }
    }
    if (101..300).contains(&status) {
        r.headers.extend(invite.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("Record-Route")).cloned());
        r.headers.push(header("Contact", contact(contact_as.0, contact_as.1)));
    }
    if let Some(p) = from_peer {
        if !p.body.is_empty() {
            if let Some(ct) = p.header("Content-Type") {
                r.headers.push(header("Content-Type", ct));
                r.body = p.body.clone();
            }
        }
    }
    r
}

/// Where to send a request for `uri`: its transport (`sips:` or
/// `;transport=`, else UDP) and address. `None` unless the host is an IP
/// literal and the transport is known (in-dialog targets: a Contact with a
/// name falls back to where the peer's messages come from).
pub(crate) fn uri_peer(uri: &str) -> Option<Peer> {
    match uri_destination(uri)? {
        Destination::Addr(peer) => Some(peer),
        Destination::Name { .. } => None,
    }
}

/// Where a URI points: an address, or a host name to resolve first.
#[derive(Debug, PartialEq)]
pub(crate) enum Destination {
    Addr(Peer),
    /// `port_given`: the URI names the port (else `port` is the
    /// transport's default, and SRV records may say otherwise).
    Name {
        transport: Transport,
        host: String,
        port: u16,
        port_given: bool,
    },
}

impl Destination {
    /// The peer at `ip` for a named destination.
    pub(crate) fn at(transport: Transport, ip: std::net::IpAddr, port: u16) -> Peer {
        Peer { transport, addr: SocketAddr::new(ip, port) }
    }
}

/// The destination of `uri`: its transport (`sips:` or `;transport=`, else
/// UDP), host and port (else the transport's default). `None` if the URI
/// has no host or asks for an unknown transport.
pub(crate) fn uri_destination(uri: &str) -> Option<Destination> {
    let transport = Transport::of_uri(uri)?;
    let p = trunkline_sip_core::NameAddr::parse(uri)?;
    let after =
        uri.split_once('@').map(|(_, h)| h).unwrap_or_else(|| uri.split_once(':').map(|(_, h)| h).unwrap_or(""));
    let hostport = after.split([';', '?']).next().unwrap_or("");
    let port = if hostport.starts_with('[') {
        hostport.rsplit_once("]:").and_then(|(_, p)| p.parse().ok())
    } else {
        hostport.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
    };
    let port_given = port.is_some();
    let port = port.unwrap_or(transport.default_port());
    let host = p.host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(Destination::Addr(Peer { transport, addr: SocketAddr::new(ip, port) }));
    }
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then(|| Destination::Name { transport, host: host.to_ascii_lowercase(), port, port_given })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_addresses() {
        assert_eq!(without_tag("\"A\" <sip:a@b>;tag=1;x=2"), "\"A\" <sip:a@b>;x=2");
        assert_eq!(without_tag("sip:a@b;tag=1"), "sip:a@b");
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(uri_peer("sip:+1@127.0.0.1:5080;transport=udp"), Some(Peer::udp(a("127.0.0.1:5080"))));
        assert_eq!(uri_peer("sip:127.0.0.1"), Some(Peer::udp(a("127.0.0.1:5060"))));
        assert_eq!(uri_peer("sip:127.0.0.1;transport=tcp"), Some(Peer::tcp(a("127.0.0.1:5060"))));
        assert_eq!(uri_peer("sips:[::1]"), Some(Peer { transport: Transport::Tls, addr: a("[::1]:5061") }));
        assert_eq!(uri_peer("sip:pbx.example:5080"), None, "a name is resolved first");
        assert_eq!(
            uri_destination("sip:+1@PBX.example:5080;transport=tcp"),
            Some(Destination::Name {
                transport: Transport::Tcp,
                host: "pbx.example".into(),
                port: 5080,
                port_given: true
            })
        );
        assert_eq!(
            uri_destination("sips:sbc.example"),
            Some(Destination::Name {
                transport: Transport::Tls,
                host: "sbc.example".into(),
                port: 5061,
                port_given: false
            })
        );
        assert_eq!(uri_destination("sip:bad_host!.example"), None);
        let mut ids = Ids::new(7);
        assert_ne!(ids.next(), ids.next());
    }
}
