//! Reading single SDP lines: `m=`, `c=`, `o=` (RFC 4566 §5.2, §5.7, §5.14).
//! Lenient and never panicking: a line that does not read is `None`.

use std::net::IpAddr;

/// An `m=` line: `audio 49170 RTP/AVP 0 8 101`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media<'a> {
    /// `audio`, `video`, `image`...
    pub kind: &'a str,
    /// The transport port; 0 rejects or disables the stream (RFC 3264 §6).
    pub port: u16,
    /// `/N` after the port: N consecutive port pairs (rare; not anchored).
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, `udptl`...
    pub proto: &'a str,
    /// Payload types or format names, in the order of preference given.
    pub formats: Vec<&'a str>,
}

impl<'a> Media<'a> {
    /// Read the value of an `m=` line.
    pub fn parse(value: &'a str) -> Option<Media<'a>> {
        let mut it = value.split_ascii_whitespace();
        let kind = it.next()?;
        let port = it.next()?;
        let proto = it.next()?;
        let (port, port_count) = match port.split_once('/') {
            Some((p, n)) => (p.parse().ok()?, Some(n.parse().ok()?)),
            None => (port.parse().ok()?, None),
        };
        Some(Media { kind, port, port_count, proto, formats: it.collect() })
    }

    /// Whether the stream carries RTP (the protocols a relay forwards as RTP/RTCP).
    pub fn is_rtp(&self) -> bool {
        self.proto.to_ascii_uppercase().starts_with("RTP/")
    }

    /// Whether the protocol is secure RTP (`RTP/SAVP`, `RTP/SAVPF`).
    pub fn is_srtp(&self) -> bool {
        self.proto.to_ascii_uppercase().starts_with("RTP/SAVP")
    }
}

/// A `c=` line: `IN IP4 192.0.2.7` (a multicast `/ttl` is ignored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// `IP4` or `IP6` as written.
    pub addr_type: String,
    /// The address as written (without `/ttl`).
    pub address: String,
    /// The address, if it is an IP literal (not a name).
    pub ip: Option<IpAddr>,
}

impl Connection {
    /// Read the value of a `c=` line.
    pub fn parse(value: &str) -> Option<Connection> {
        let mut it = value.split_ascii_whitespace();
        let (net, addr_type, address) = (it.next()?, it.next()?, it.next()?);
        if !net.eq_ignore_ascii_case("IN") {
            return None;
        }
        let address = address.split('/').next().unwrap_or(address);
        Some(Connection { addr_type: addr_type.to_owned(), address: address.to_owned(), ip: address.parse().ok() })
    }

    /// Whether this is the RFC 2543 way to put a stream on hold (`0.0.0.0`).
    pub fn is_hold(&self) -> bool {
        self.ip.is_some_and(|ip| ip.is_unspecified())
    }
}

/// An `o=` line: `- 2890844526 2890842807 IN IP4 192.0.2.7`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The user name (`-` if none).
    pub username: &'a str,
    /// The session id.
    pub session_id: &'a str,
    /// The session version: it increases whenever the description changes.
    pub version: u64,
}

impl<'a> Origin<'a> {
    /// Read the value of an `o=` line.
    pub fn parse(value: &'a str) -> Option<Origin<'a>> {
        let mut it = value.split_ascii_whitespace();
        let (username, session_id, version) = (it.next()?, it.next()?, it.next()?);
        Some(Origin { username, session_id, version: version.parse().ok()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_lines() {
        let m = Media::parse("audio 49170 RTP/AVP 0 8 101").unwrap();
        assert_eq!((m.kind, m.port, m.port_count, m.proto), ("audio", 49170, None, "RTP/AVP"));
        assert_eq!(m.formats, ["0", "8", "101"]);
        assert!(m.is_rtp() && !m.is_srtp());
        let s = Media::parse("audio 5004/2 RTP/SAVP 0").unwrap();
        assert_eq!((s.port, s.port_count), (5004, Some(2)));
        assert!(s.is_srtp());
        assert!(!Media::parse("image 0 udptl t38").unwrap().is_rtp());
        for bad in ["", "audio", "audio x RTP/AVP 0", "audio 70000 RTP/AVP 0", "audio 1/x RTP/AVP"] {
            assert!(Media::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn connection_and_origin_lines() {
        let c = Connection::parse("IN IP4 224.2.36.42/127").unwrap();
        assert_eq!((c.address.as_str(), c.ip), ("224.2.36.42", Some("224.2.36.42".parse().unwrap())));
        assert!(Connection::parse("IN IP4 0.0.0.0").unwrap().is_hold());
        let named = Connection::parse("IN IP4 media.example").unwrap();
        assert_eq!(named.ip, None);
        assert!(Connection::parse("XX IP4 1.2.3.4").is_none());
        let o = Origin::parse("- 2890844526 2890842807 IN IP4 192.0.2.7").unwrap();
        assert_eq!((o.username, o.session_id, o.version), ("-", "2890844526", 2890842807));
        assert!(Origin::parse("- 1 x IN IP4 a").is_none());
    }
}
