//! The message parser. It never panics and never allocates without bound:
//! every rejection says why, so the transport can answer 400 with a reason.

use super::{long_name, Header, Message, StartLine};

/// Why bytes are not a SIP message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No CRLF CRLF (or LF LF) ends the header section.
    #[error("incomplete message: no empty line after the headers")]
    Incomplete,
    /// Start line not `METHOD uri SIP/2.0` or `SIP/2.0 code reason`.
    #[error("bad start line: {0}")]
    StartLine(String),
    /// The SIP version is not 2.0 (answer 505).
    #[error("unsupported SIP version {0}")]
    Version(String),
    /// A header line without a colon, or with an invalid name.
    #[error("bad header line: {0}")]
    HeaderLine(String),
    /// Content-Length is not a number, or several disagree.
    #[error("bad Content-Length: {0}")]
    ContentLength(String),
    /// Fewer body bytes than Content-Length says.
    #[error("body shorter than Content-Length ({have} of {want} bytes)")]
    Truncated {
        /// Body bytes present.
        have: usize,
        /// Content-Length.
        want: usize,
    },
    /// Message larger than we accept.
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
}

/// Largest message accepted (a UDP datagram cannot be larger).
pub const MAX_MESSAGE: usize = 65_535;

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

fn head_end(bytes: &[u8]) -> Option<(usize, usize)> {
    if let Some(i) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some((i, i + 4));
    }
    bytes.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2))
}

fn start_line(line: &str) -> Result<StartLine, ParseError> {
    let bad = || ParseError::StartLine(truncate(line));
    if let Some(rest) = line.strip_prefix("SIP/") {
        let (version, rest) = rest.split_once(' ').ok_or_else(bad)?;
        if version != "2.0" {
            return Err(ParseError::Version(truncate(version)));
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let status: u16 = code.parse().map_err(|_| bad())?;
        if !(100..=699).contains(&status) || code.len() != 3 {
            return Err(bad());
        }
        return Ok(StartLine::Response { status, reason: reason.to_owned() });
    }
    let mut parts = line.split(' ');
    let (method, uri, version) =
        (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
    if parts.next().is_some() || !is_token(method) || uri.is_empty() {
        return Err(bad());
    }
    match version.strip_prefix("SIP/") {
        Some("2.0") => Ok(StartLine::Request { method: method.to_owned(), uri: uri.to_owned() }),
        Some(v) => Err(ParseError::Version(truncate(v))),
        None => Err(bad()),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

pub(super) fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(ParseError::TooLarge(MAX_MESSAGE));
    }
    // RFC 3261 §7.5: ignore CRLFs before the start line (keep-alives).
    let skip = bytes.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
    let bytes = &bytes[skip..];
    let (head_len, body_start) = head_end(bytes).ok_or(ParseError::Incomplete)?;
    let head = std::str::from_utf8(&bytes[..head_len])
        .map_err(|_| ParseError::HeaderLine("header section is not UTF-8".into()))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = start_line(lines.next().unwrap_or(""))?;

    let mut headers: Vec<Header> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // Folded continuation of the previous header (RFC 3261 §7.3.1).
            // An empty first line folds to nothing (no leading space), and
            // a blank continuation adds nothing (no trailing space).
            let prev = headers.last_mut().ok_or_else(|| ParseError::HeaderLine(truncate(line)))?;
            let more = line.trim();
            if !more.is_empty() && !prev.value.is_empty() {
                prev.value.push(' ');
            }
            prev.value.push_str(more);
            continue;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| ParseError::HeaderLine(truncate(line)))?;
        let name = name.trim_end();
        if !is_token(name) {
            return Err(ParseError::HeaderLine(truncate(line)));
        }
        headers.push(Header { name: long_name(name).to_owned(), value: value.trim().to_owned() });
        if headers.len() > 256 {
            return Err(ParseError::HeaderLine("more than 256 headers".into()));
        }
    }

    let body = &bytes[body_start..];
    let mut lengths = headers.iter().filter(|h| h.name.eq_ignore_ascii_case("Content-Length"));
    let body = match lengths.next() {
        None => body.to_vec(),
        Some(h) => {
            let want: usize = h.value.parse().map_err(|_| ParseError::ContentLength(truncate(&h.value)))?;
            if lengths.any(|o| o.value != h.value) {
                return Err(ParseError::ContentLength("several Content-Length headers disagree".into()));
            }
            if body.len() < want {
                return Err(ParseError::Truncated { have: body.len(), want });
            }
            body[..want].to_vec()
        }
    };
    Ok(Message { start, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+14155550100@trunkline.test SIP/2.0\r\n\
        v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:+12125550123@carrier.example>;tag=1\r\n\
        To: <sip:+14155550100@trunkline.test>\r\n\
        Call-ID: abc@127.0.0.1\r\n\
        CSeq: 1 INVITE\r\n\
        Subject: folded\r\n  continues here\r\n\
        Content-Length: 4\r\n\r\nv=0\nEXTRA";

    #[test]
    fn parses_a_request() {
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.header("via"), Some("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1"));
        assert_eq!(m.header("v"), m.header("Via"));
        assert_eq!(m.header("Subject"), Some("folded continues here"));
        // Found by fuzzing (RFC 4475 esc01): a value that starts on the next line.
        let late =
            Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nContact:\r\n <sip:c@d>\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(late.header("Contact"), Some("<sip:c@d>"));
        // Found by fuzzing: a blank continuation line must not leave a
        // trailing space, which printing and parsing again would lose.
        let blank = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x =\r\n  \r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(blank.header("Via"), Some("x ="));
        assert_eq!(Message::parse(&blank.to_bytes()).unwrap(), blank);
        assert_eq!(m.body, b"v=0\n");
        let again = Message::parse(&m.to_bytes()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn serializing_notes_where_the_call_id_is() {
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        let (bytes, at) = m.serialize();
        assert_eq!(bytes, m.to_bytes());
        assert_eq!(&bytes[at], b"abc@127.0.0.1");
        let compact = Message::parse(b"BYE sip:a SIP/2.0\r\ni: short\r\nCall-ID: second\r\n\r\n").unwrap();
        let (bytes, at) = compact.serialize();
        assert_eq!(&bytes[at], b"short", "the compact form, and the first one");
        // A fuzzer's find: an empty first Call-ID is still the first one.
        let empty_first = Message::parse(b"OPTIONS sip:a SIP/2.0\r\nCall-ID: \r\nCall-ID: later\r\n\r\n").unwrap();
        let (bytes, at) = empty_first.serialize();
        assert_eq!((&bytes[at.clone()], at.start), (&b""[..], b"OPTIONS sip:a SIP/2.0\r\nCall-ID: ".len()));
        let (_, none) = Message::parse(b"SIP/2.0 200 OK\r\n\r\n").unwrap().serialize();
        assert!(none.is_empty());
    }

    #[test]
    fn parses_a_response() {
        let m = Message::parse(b"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(m.start, StartLine::Response { status: 486, reason: "Busy Here".into() });
    }

    #[test]
    fn rejects_with_reasons() {
        let cases: [(&[u8], &str); 7] = [
            (b"INVITE sip:a SIP/2.0\r\nVia: x\r\n", "incomplete"),
            (b"INVITE sip:a SIP/7.0\r\n\r\n", "version"),
            (b"INVITE  sip:a SIP/2.0\r\n\r\n", "start line"),
            (b"SIP/2.0 99 Nope\r\n\r\n", "start line"),
            (b"INVITE sip:a SIP/2.0\r\nNoColon\r\n\r\n", "header line"),
            (b"INVITE sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n", "Content-Length"),
            (b"INVITE sip:a SIP/2.0\r\nContent-Length: 9\r\n\r\nabc", "shorter"),
        ];
        for (bytes, want) in cases {
            let e = Message::parse(bytes).unwrap_err().to_string();
            assert!(e.contains(want), "{e} should mention {want}");
        }
    }

    #[test]
    fn never_panics_on_prefixes_and_noise() {
        let full = INVITE.as_bytes();
        for i in 0..full.len() {
            let _ = Message::parse(&full[..i]);
        }
        let mut x: u32 = 1;
        for _ in 0..2000 {
            let mut b = full.to_vec();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % b.len();
                b[i] = (x >> 8) as u8;
            }
            let _ = Message::parse(&b);
        }
    }
}
