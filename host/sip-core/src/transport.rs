//! Transports as the SIP core sees them (RFC 3261 §18): which one a message
//! travels on, the peer it is exchanged with, and how messages are cut out
//! of a byte stream (TCP, TLS). No sockets here: drivers move the bytes.

use std::fmt;
use std::net::SocketAddr;

use crate::transaction::Reliability;

/// A SIP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// Datagrams; transactions retransmit.
    Udp,
    /// A byte stream; framed by Content-Length.
    Tcp,
    /// TCP with TLS on top.
    Tls,
}

impl Transport {
    /// Whether the transport retransmits for us.
    pub fn reliability(self) -> Reliability {
        match self {
            Transport::Udp => Reliability::Unreliable,
            Transport::Tcp | Transport::Tls => Reliability::Reliable,
        }
    }

    /// The token in a Via sent-by (`SIP/2.0/UDP`).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The `;transport=` URI parameter value.
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// Port used when a URI names none (5060, or 5061 for TLS).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            _ => 5060,
        }
    }

    /// The transport a URI asks for: `sips:` means TLS, else its
    /// `;transport=` parameter, else UDP. `None` for an unknown transport.
    pub fn of_uri(uri: &str) -> Option<Transport> {
        let uri = uri.trim().trim_start_matches('<');
        if uri.len() >= 5 && uri[..5].eq_ignore_ascii_case("sips:") {
            return Some(Transport::Tls);
        }
        let params = uri.split('?').next().unwrap_or("");
        let value = params
            .split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("transport"))
            .map(|(_, v)| v.trim().trim_end_matches('>'));
        match value {
            None => Some(Transport::Udp),
            Some(v) if v.eq_ignore_ascii_case("udp") => Some(Transport::Udp),
            Some(v) if v.eq_ignore_ascii_case("tcp") => Some(Transport::Tcp),
            Some(v) if v.eq_ignore_ascii_case("tls") => Some(Transport::Tls),
            Some(_) => None,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.uri_param())
    }
}

/// The other end of a message: a transport and an address. For stream
/// transports it names a connection (the driver keeps one per address and
/// reuses it in both directions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    /// How.
    pub transport: Transport,
    /// Where.
    pub addr: SocketAddr,
}

impl Peer {
    /// A UDP peer.
    pub fn udp(addr: SocketAddr) -> Self {
        Peer { transport: Transport::Udp, addr }
    }

    /// A TCP peer.
    pub fn tcp(addr: SocketAddr) -> Self {
        Peer { transport: Transport::Tcp, addr }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.transport, self.addr)
    }
}

/// Largest message accepted on a stream (headers and body).
pub const MAX_STREAM_MESSAGE: usize = 65_535;

/// What [`Framer::next_frame`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole message (headers and `Content-Length` bytes of body).
    Message(Vec<u8>),
    /// A CRLFCRLF keep-alive ping (RFC 5626 §3.5.1): answer with CRLF.
    Ping,
    /// The stream cannot be framed any more; close the connection.
    Broken(&'static str),
}

/// Cuts SIP messages out of a byte stream by `Content-Length`
/// (RFC 3261 §18.3). Push bytes with [`push`](Framer::push), then take
/// frames with [`next_frame`](Framer::next_frame) until it returns `None`.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    broken: bool,
}

impl Framer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.broken {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete frame, if the buffered bytes hold one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        if self.broken {
            return None;
        }
        // Keep-alives: a CRLFCRLF ping, or stray CRLFs between messages.
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.drain(..4);
            return Some(Frame::Ping);
        }
        let blank = self.buf.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
        if blank == self.buf.len() {
            // Only line ends so far: wait, unless it can't become a ping.
            if blank > 4 || (blank > 0 && !b"\r\n\r\n".starts_with(&self.buf)) {
                self.buf.clear();
            }
            return None;
        }
        if blank > 0 {
            self.buf.drain(..blank);
        }
        let Some(head_end) = find(&self.buf, b"\r\n\r\n").map(|i| i + 4) else {
            return self.too_big(self.buf.len());
        };
        let length = match content_length(&self.buf[..head_end]) {
            Ok(n) => n,
            Err(why) => return Some(self.break_with(why)),
        };
        let total = head_end.saturating_add(length);
        if total > MAX_STREAM_MESSAGE {
            return Some(self.break_with("message larger than 64 KiB"));
        }
        if self.buf.len() < total {
            return None;
        }
        let rest = self.buf.split_off(total);
        Some(Frame::Message(std::mem::replace(&mut self.buf, rest)))
    }

    fn too_big(&mut self, len: usize) -> Option<Frame> {
        (len > MAX_STREAM_MESSAGE).then(|| self.break_with("header section larger than 64 KiB"))
    }

    fn break_with(&mut self, why: &'static str) -> Frame {
        self.broken = true;
        self.buf = Vec::new();
        Frame::Broken(why)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The Content-Length (or compact `l`) of a header section. On a stream it
/// is mandatory: without it the next message cannot be found.
fn content_length(head: &[u8]) -> Result<usize, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "header section is not UTF-8")?;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            return value.trim().parse().map_err(|_| "Content-Length is not a number");
        }
    }
    Err("Content-Length missing on a stream transport")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabc";

    #[test]
    fn frames_split_and_joined_messages() {
        let mut f = Framer::new();
        for chunk in MSG.chunks(7) {
            f.push(chunk);
        }
        f.push(MSG);
        assert_eq!(f.next_frame(), Some(Frame::Message(MSG.to_vec())));
        assert_eq!(f.next_frame(), Some(Frame::Message(MSG.to_vec())));
        assert_eq!(f.next_frame(), None);
        f.push(&MSG[..10]);
        assert_eq!(f.next_frame(), None, "half a message waits");
    }

    #[test]
    fn keepalives_and_errors() {
        let mut f = Framer::new();
        f.push(b"\r\n\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Ping));
        f.push(b"\r\n");
        f.push(MSG);
        assert_eq!(f.next_frame(), Some(Frame::Message(MSG.to_vec())), "a lone CRLF before a message is skipped");
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_frame(), Some(Frame::Broken("Content-Length missing on a stream transport")));
        f.push(MSG);
        assert_eq!(f.next_frame(), None, "a broken stream yields nothing more");
        let mut big = Framer::new();
        big.push(b"INVITE sip:a@b SIP/2.0\r\nl: 99999999999\r\n\r\n");
        assert_eq!(big.next_frame(), Some(Frame::Broken("message larger than 64 KiB")));
        let mut endless = Framer::new();
        endless.push(&vec![b'a'; MAX_STREAM_MESSAGE + 1]);
        assert!(matches!(endless.next_frame(), Some(Frame::Broken(_))));
    }

    #[test]
    fn transport_of_uri() {
        assert_eq!(Transport::of_uri("sip:a@1.2.3.4"), Some(Transport::Udp));
        assert_eq!(Transport::of_uri("sip:a@1.2.3.4:5080;transport=TCP"), Some(Transport::Tcp));
        assert_eq!(Transport::of_uri("<sips:a@host>"), Some(Transport::Tls));
        assert_eq!(Transport::of_uri("sip:a@h;lr;transport=tls?X-A=1"), Some(Transport::Tls));
        assert_eq!(Transport::of_uri("sip:a@h;transport=sctp"), None);
    }
}
