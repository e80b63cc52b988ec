//! The call and its SIP messages as a hook sees them, and accessors on
//! them, on headers and on targets.

use crate::wit::trunkline::policy::headers::Message;
use crate::wit::trunkline::policy::types as wit;
use crate::{Direction, Header, HeaderEdit, Headers, Party, Target, Transport, Variable, E164};

/// The call a hook runs for.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// SIP Call-ID of the inbound leg.
    pub call_id: String,
    /// Which way the call flows through the trunk.
    pub direction: Direction,
    /// Account that owns the trunk.
    pub account_id: String,
    /// Trunk id (`TK` + 32 hex).
    pub trunk_id: String,
    /// The trunk's friendly name.
    pub trunk_name: String,
    /// The caller (From).
    pub from: Party,
    /// The callee (To).
    pub to: Party,
    /// The request-URI of the INVITE (the number routed on).
    pub request_uri: Party,
    /// Address the inbound INVITE came from, `ip:port`.
    pub source_address: String,
    /// Transport the inbound INVITE came over.
    pub transport: Transport,
    /// Headers of the inbound INVITE, after edits of earlier plugins.
    pub headers: Headers,
    /// Call variables set so far.
    pub variables: Vec<Variable>,
}

/// A SIP request: the inbound INVITE, or an outgoing one in `pre_dial`.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// `INVITE`.
    pub method: String,
    /// The request-URI.
    pub uri: String,
    /// Its headers.
    pub headers: Headers,
    /// Its body (SDP), as text.
    pub body: String,
}

/// A SIP response received from a target.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Its headers.
    pub headers: Headers,
    /// URIs of the Contact headers, in order (for 3xx).
    pub contacts: Vec<String>,
}

impl Call {
    /// The call a hook was given; its headers stay in the host until read.
    #[doc(hidden)]
    pub fn __from_host(c: wit::Call) -> Self {
        Call {
            call_id: c.call_id,
            direction: c.direction,
            account_id: c.account_id,
            trunk_id: c.trunk_id,
            trunk_name: c.trunk_name,
            from: c.from,
            to: c.to,
            request_uri: c.request_uri,
            source_address: c.source_address,
            transport: c.transport,
            headers: Headers::__from_host(Message::Inbound),
            variables: c.variables,
        }
    }
}

impl Request {
    /// The request a hook is about; its headers stay in the host until read.
    #[doc(hidden)]
    pub fn __from_host(r: wit::Request) -> Self {
        Request { method: r.method, uri: r.uri, headers: Headers::__from_host(Message::Current), body: r.body }
    }
}

impl Response {
    /// The response a hook is about; its headers stay in the host until read.
    #[doc(hidden)]
    pub fn __from_host(r: wit::Response) -> Self {
        Response {
            status: r.status,
            reason: r.reason,
            headers: Headers::__from_host(Message::Current),
            contacts: r.contacts,
        }
    }
}

impl Header {
    /// A header `name: value`.
    ///
    /// ```no_run
    /// let h = trunkline_sdk::Header::new("X-Tier", "gold");
    /// ```
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header { name: name.into(), value: value.into() }
    }
}

impl HeaderEdit {
    /// Append a header.
    ///
    /// ```no_run
    /// let e = trunkline_sdk::HeaderEdit::add("X-Tier", "gold");
    /// ```
    pub fn add(name: impl Into<String>, value: impl Into<String>) -> Self {
        HeaderEdit::Add(Header::new(name, value))
    }

    /// Replace every header called `name` with this one.
    ///
    /// ```no_run
    /// let e = trunkline_sdk::HeaderEdit::set("P-Asserted-Identity", "<sip:+14155550100@example.com>");
    /// ```
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        HeaderEdit::Set(Header::new(name, value))
    }

    /// Remove every header called `name`.
    ///
    /// ```no_run
    /// let e = trunkline_sdk::HeaderEdit::remove("Diversion");
    /// ```
    pub fn remove(name: impl Into<String>) -> Self {
        HeaderEdit::Remove(name.into())
    }
}

impl Party {
    /// The user part as an E.164 number, if it is one.
    ///
    /// ```no_run
    /// # fn f(call: &trunkline_sdk::Call) {
    /// if let Some(n) = call.from.number() { let _ = n.is_toll_free(); }
    /// # }
    /// ```
    pub fn number(&self) -> Option<E164> {
        self.user.as_deref().and_then(E164::parse)
    }
}

impl Call {
    /// The first inbound header called `name` (case-insensitive).
    ///
    /// ```no_run
    /// # fn f(call: &trunkline_sdk::Call) {
    /// let pai = call.header("P-Asserted-Identity");
    /// # }
    /// ```
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.first(name)
    }

    /// Every inbound header called `name`, in order.
    pub fn headers_named(&self, name: &str) -> Vec<String> {
        self.headers.named(name)
    }

    /// The value of a call variable set by an earlier hook.
    ///
    /// ```no_run
    /// # fn f(call: &trunkline_sdk::Call) {
    /// let tier = call.variable("tier").unwrap_or("standard");
    /// # }
    /// ```
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables.iter().rev().find(|v| v.name == name).map(|v| v.value.as_str())
    }
}

impl Request {
    /// The first header called `name` (case-insensitive).
    ///
    /// ```no_run
    /// # fn f(r: &trunkline_sdk::Request) { let _ = r.header("Diversion"); }
    /// ```
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.first(name)
    }

    /// Every header called `name`, in order.
    pub fn headers_named(&self, name: &str) -> Vec<String> {
        self.headers.named(name)
    }
}

impl Response {
    /// The first header called `name` (case-insensitive).
    ///
    /// ```no_run
    /// # fn f(r: &trunkline_sdk::Response) { let _ = r.header("Retry-After"); }
    /// ```
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.first(name)
    }
}

impl Target {
    /// An enabled UDP target of priority 10, weight 1, health unknown.
    ///
    /// ```no_run
    /// let t = trunkline_sdk::Target::new("sip:pbx.example.com");
    /// ```
    pub fn new(uri: impl Into<String>) -> Self {
        let uri = uri.into();
        let transport = crate::Transport::from_uri(&uri);
        Target {
            uri,
            priority: 10,
            weight: 1,
            enabled: true,
            transport,
            health: crate::Health::Unknown,
            group: None,
        }
    }
}

impl crate::Transport {
    /// The transport a URI asks for: `;transport=tcp|tls`, `sips:` = TLS, else UDP.
    ///
    /// ```no_run
    /// use trunkline_sdk::Transport;
    /// assert_eq!(Transport::from_uri("sips:pbx.example.com"), Transport::Tls);
    /// ```
    pub fn from_uri(uri: &str) -> Self {
        let lower = uri.to_ascii_lowercase();
        if lower.starts_with("sips:") || lower.contains(";transport=tls") {
            crate::Transport::Tls
        } else if lower.contains(";transport=tcp") {
            crate::Transport::Tcp
        } else {
            crate::Transport::Udp
        }
    }
}
