//! SIP messages (RFC 3261 §7): start line, headers in order, body.

mod parse;

pub use parse::{ParseError, MAX_MESSAGE};

/// One header line, name as received (compact forms expanded), value trimmed
/// and unfolded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Header name in its canonical long form when it was compact (`v` -> `Via`).
    pub name: String,
    /// Value with leading/trailing whitespace removed and line folding joined.
    pub value: String,
}

/// First line of a SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD request-uri SIP/2.0`
    Request {
        /// Method token, case-sensitive (`INVITE`).
        method: String,
        /// Request-URI as received.
        uri: String,
    },
    /// `SIP/2.0 code reason`
    Response {
        /// Status code 100..=699.
        status: u16,
        /// Reason phrase (may be empty).
        reason: String,
    },
}

/// A parsed SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Request or status line.
    pub start: StartLine,
    /// Headers in wire order.
    pub headers: Vec<Header>,
    /// Body bytes (exactly Content-Length of them when the header is present).
    pub body: Vec<u8>,
}

/// Compact header forms (RFC 3261 §7.3.3 and extensions) and their long names.
const COMPACT: [(&str, &str); 14] = [
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("e", "Content-Encoding"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("f", "From"),
    ("s", "Subject"),
    ("k", "Supported"),
    ("t", "To"),
    ("v", "Via"),
    ("o", "Event"),
    ("r", "Refer-To"),
    ("b", "Referred-By"),
    ("x", "Session-Expires"),
];

/// The standard reason phrase of a status code (RFC 3261 §21), or "".
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    }
}

/// The long form of a compact header name; other names unchanged.
pub fn long_name(name: &str) -> &str {
    COMPACT.iter().find(|(c, _)| c.eq_ignore_ascii_case(name)).map(|(_, l)| *l).unwrap_or(name)
}

/// The headers among `headers` called `name`, in order: names compare
/// case-insensitively, and a compact `name` matches its long form (stored
/// headers carry long names). The one statement of this rule for every
/// header type: this crate's, the plugin host's and the plugin SDK's.
pub fn named<'h, 'n, H>(
    headers: &'h [H],
    name: &'n str,
    name_of: fn(&H) -> &str,
) -> impl Iterator<Item = &'h H> + use<'h, 'n, H> {
    let name = long_name(name);
    headers.iter().filter(move |h| name_of(h).eq_ignore_ascii_case(name))
}

impl Message {
    /// Parse one message from a datagram or a framed stream chunk.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        parse::parse(bytes)
    }

    /// The first header called `name` (case-insensitive, compact forms match).
    pub fn header(&self, name: &str) -> Option<&str> {
        named(&self.headers, name, |h| &h.name).next().map(|h| h.value.as_str())
    }

    /// Every header called `name`, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        named(&self.headers, name, |h| &h.name).map(|h| h.value.as_str())
    }

    /// The method of a request, or `None` for a response.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// Serialise with a correct Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.serialize().0
    }

    /// [`Message::to_bytes`], and where the (first) Call-ID's value is in
    /// them (an empty range if none): whoever files sent messages by call
    /// finds it without scanning the bytes again.
    pub fn serialize(&self) -> (Vec<u8>, std::ops::Range<usize>) {
        let mut out = String::with_capacity(512);
        match &self.start {
            StartLine::Request { method, uri } => out.push_str(&format!("{method} {uri} SIP/2.0\r\n")),
            StartLine::Response { status, reason } => out.push_str(&format!("SIP/2.0 {status} {reason}\r\n")),
        }
        // `None` until the first Call-ID: an empty first value must not let
        // a later one take its place.
        let mut call_id = None;
        for h in self.headers.iter().filter(|h| !h.name.eq_ignore_ascii_case("Content-Length")) {
            out.push_str(&h.name);
            out.push_str(": ");
            if call_id.is_none() && (h.name.eq_ignore_ascii_case("Call-ID") || h.name.eq_ignore_ascii_case("i")) {
                call_id = Some(out.len()..out.len() + h.value.len());
            }
            out.push_str(&h.value);
            out.push_str("\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        (bytes, call_id.unwrap_or(0..0))
    }
}
