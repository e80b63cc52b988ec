//! The call and its SIP messages as a hook sees them, and accessors on
//! them, on headers and on targets.

use std::cell::OnceCell;
use std::mem::ManuallyDrop;

use crate::wit::trunkline::policy::headers::Message;
use crate::wit::trunkline::policy::types as wit;
use crate::{Direction, Header, HeaderEdit, Headers, Party, Target, Transport, Variable, E164};

/// The call a hook runs for.
///
/// Read its parts through methods (`call.to().number()`). Inside a plugin
/// each part is fetched from the host the first time it is read, then kept:
/// a hook pays for the parts it looks at, not for the whole call. In native
/// tests ([`testing::CallBuilder`](crate::testing::CallBuilder)) every part
/// is held in memory.
///
/// A `Call` belongs to the hook it was given to: its handle is only lent for
/// that hook. Keep values (or call variables), not the `Call`.
///
/// ```
/// use trunkline_sdk::testing::CallBuilder;
/// let call = CallBuilder::termination().from("+14155550123").to("+12125550100").build();
/// assert_eq!(call.to().number().map(|n| n.to_string()).as_deref(), Some("+12125550100"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The host's handle for the call, inside a plugin during a hook.
    host: Option<u32>,
    call_id: OnceCell<String>,
    direction: OnceCell<Direction>,
    account_id: OnceCell<String>,
    trunk_id: OnceCell<String>,
    trunk_name: OnceCell<String>,
    from: OnceCell<Party>,
    to: OnceCell<Party>,
    request_uri: OnceCell<Party>,
    source_address: OnceCell<String>,
    transport: OnceCell<Transport>,
    variables: OnceCell<Vec<Variable>>,
    /// Headers of the inbound INVITE, after edits of earlier plugins.
    pub headers: Headers,
}

/// Every part of a [`Call`], held in memory: what
/// [`testing::CallBuilder`](crate::testing::CallBuilder) fills in.
///
/// ```
/// let mut data = trunkline_sdk::testing::CallBuilder::origination().build_data();
/// data.trunk_name = "acme-staging".into();
/// let call = trunkline_sdk::Call::from_data(data, trunkline_sdk::Headers::new());
/// assert_eq!(call.trunk_name(), "acme-staging");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CallData {
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
    /// Call variables set so far.
    pub variables: Vec<Variable>,
}

/// A SIP request: the inbound INVITE, or an outgoing one in `pre_dial`.
///
/// Like [`Call`], read on demand: inside a plugin the request line and the
/// body are fetched from the host when first read, then kept, and the
/// headers when asked for. Belongs to the hook it was given to.
///
/// ```
/// use trunkline_sdk::{Headers, Request};
/// let r = Request::new("INVITE", "sip:+14155550100@example.com", Headers::new(), "");
/// assert_eq!(r.uri(), "sip:+14155550100@example.com");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The host's handle for the request, inside a plugin during a hook.
    host: Option<u32>,
    method: OnceCell<String>,
    uri: OnceCell<String>,
    body: OnceCell<String>,
    /// Its headers.
    pub headers: Headers,
}

/// A SIP response received from a target.
///
/// ```
/// # fn f(r: &trunkline_sdk::Response) {
/// if r.status == 302 { let first = r.contacts.first(); }
/// # }
/// ```
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
    /// The call a hook was given: a handle; parts are fetched when read.
    #[doc(hidden)]
    pub fn __from_host(c: &wit::Call) -> Self {
        let mut call = Call::empty(Headers::__from_host(Message::Inbound));
        call.host = Some(c.handle());
        call
    }

    /// A call whose every part is `data` (native tests; `CallBuilder` is
    /// the shorter way).
    ///
    /// ```no_run
    /// use trunkline_sdk::{testing::CallBuilder, Call, Headers};
    /// let data = CallBuilder::termination().build_data();
    /// let call = Call::from_data(data, Headers::new());
    /// assert!(call.to().number().is_some());
    /// ```
    pub fn from_data(data: CallData, headers: Headers) -> Self {
        let call = Call::empty(headers);
        let _ = call.call_id.set(data.call_id);
        let _ = call.direction.set(data.direction);
        let _ = call.account_id.set(data.account_id);
        let _ = call.trunk_id.set(data.trunk_id);
        let _ = call.trunk_name.set(data.trunk_name);
        let _ = call.from.set(data.from);
        let _ = call.to.set(data.to);
        let _ = call.request_uri.set(data.request_uri);
        let _ = call.source_address.set(data.source_address);
        let _ = call.transport.set(data.transport);
        let _ = call.variables.set(data.variables);
        call
    }

    fn empty(headers: Headers) -> Self {
        Call {
            host: None,
            call_id: OnceCell::new(),
            direction: OnceCell::new(),
            account_id: OnceCell::new(),
            trunk_id: OnceCell::new(),
            trunk_name: OnceCell::new(),
            from: OnceCell::new(),
            to: OnceCell::new(),
            request_uri: OnceCell::new(),
            source_address: OnceCell::new(),
            transport: OnceCell::new(),
            variables: OnceCell::new(),
            headers,
        }
    }

    fn part<'a, T>(
        &self,
        cell: &'a OnceCell<T>,
        fetch: impl FnOnce(&wit::Call) -> T,
        missing: impl FnOnce() -> T,
    ) -> &'a T {
        // SAFETY: `host` is the borrowed `call` of the running hook.
        lazily(cell, self.host, |h| unsafe { wit::Call::from_handle(h) }, fetch, missing)
    }

    /// SIP Call-ID of the inbound leg.
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::origination().build();
    /// assert!(!call.call_id().is_empty());
    /// ```
    pub fn call_id(&self) -> &str {
        self.part(&self.call_id, |c| c.call_id(), String::new).as_str()
    }

    /// Which way the call flows through the trunk.
    ///
    /// ```no_run
    /// # fn f(call: &trunkline_sdk::Call) {
    /// if call.direction() == trunkline_sdk::Direction::Origination { /* from the carrier */ }
    /// # }
    /// ```
    pub fn direction(&self) -> Direction {
        *self.part(&self.direction, |c| c.direction(), || Direction::Termination)
    }

    /// Account that owns the trunk.
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::origination().build();
    /// assert!(call.account_id().starts_with("AC"));
    /// ```
    pub fn account_id(&self) -> &str {
        self.part(&self.account_id, |c| c.account_id(), String::new).as_str()
    }

    /// Trunk id (`TK` + 32 hex).
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::origination().build();
    /// assert!(call.trunk_id().starts_with("TK"));
    /// ```
    pub fn trunk_id(&self) -> &str {
        self.part(&self.trunk_id, |c| c.trunk_id(), String::new).as_str()
    }

    /// The trunk's friendly name.
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::origination().build();
    /// assert_eq!(call.trunk_name(), "acme-prod");
    /// ```
    pub fn trunk_name(&self) -> &str {
        self.part(&self.trunk_name, |c| c.trunk_name(), String::new).as_str()
    }

    /// The caller (From).
    ///
    /// ```no_run
    /// # fn f(call: &trunkline_sdk::Call) {
    /// let anonymous = call.from().user.is_none();
    /// # }
    /// ```
    pub fn from(&self) -> &Party {
        self.part(&self.from, |c| c.from(), Party::nobody)
    }

    /// The callee (To).
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::termination().to("+12125550100").build();
    /// assert_eq!(call.to().user.as_deref(), Some("+12125550100"));
    /// ```
    pub fn to(&self) -> &Party {
        self.part(&self.to, |c| c.to(), Party::nobody)
    }

    /// The request-URI of the INVITE (the number routed on), after edits of
    /// earlier plugins.
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::origination().to("+14155550100").build();
    /// let dialed = call.request_uri().number();
    /// ```
    pub fn request_uri(&self) -> &Party {
        self.part(&self.request_uri, |c| c.request_uri(), Party::nobody)
    }

    /// Address the inbound INVITE came from, `ip:port`.
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::origination().build();
    /// let from_loopback = call.source_address().starts_with("127.");
    /// ```
    pub fn source_address(&self) -> &str {
        self.part(&self.source_address, |c| c.source_address(), String::new).as_str()
    }

    /// Transport the inbound INVITE came over.
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::origination().build();
    /// let encrypted = call.transport() == trunkline_sdk::Transport::Tls;
    /// ```
    pub fn transport(&self) -> Transport {
        *self.part(&self.transport, |c| c.transport(), || Transport::Udp)
    }

    /// Call variables set so far, in the order they were set.
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::origination().variable("tier", "gold").build();
    /// assert_eq!(call.variables().len(), 1);
    /// ```
    pub fn variables(&self) -> &[Variable] {
        self.part(&self.variables, |c| c.variables(), Vec::new).as_slice()
    }
}

/// `cell`'s value, fetched on first use through the hook's borrowed handle
/// `host` (`from_handle` makes the handle's type from it). Without a host
/// (a value built in memory for a native test) a part reads as `missing`.
fn lazily<T, H>(
    cell: &OnceCell<T>,
    host: Option<u32>,
    from_handle: impl FnOnce(u32) -> H,
    fetch: impl FnOnce(&H) -> T,
    missing: impl FnOnce() -> T,
) -> &T {
    cell.get_or_init(|| match host {
        // ManuallyDrop: a borrowed handle is not ours to drop.
        Some(handle) => fetch(&ManuallyDrop::new(from_handle(handle))),
        None => missing(),
    })
}

impl Request {
    /// The request a hook is about: a handle; parts are fetched when read.
    #[doc(hidden)]
    pub fn __from_host(r: &wit::Request) -> Self {
        Request {
            host: Some(r.handle()),
            method: OnceCell::new(),
            uri: OnceCell::new(),
            body: OnceCell::new(),
            headers: Headers::__from_host(Message::Current),
        }
    }

    /// A request held in memory (native tests;
    /// [`CallBuilder::request_for`](crate::testing::CallBuilder::request_for)
    /// makes a call's INVITE).
    ///
    /// ```no_run
    /// use trunkline_sdk::{Headers, Request};
    /// let r = Request::new("INVITE", "sip:+14155550100@example.com", Headers::new(), "");
    /// assert_eq!(r.method(), "INVITE");
    /// ```
    pub fn new(method: impl Into<String>, uri: impl Into<String>, headers: Headers, body: impl Into<String>) -> Self {
        Request {
            host: None,
            method: OnceCell::from(method.into()),
            uri: OnceCell::from(uri.into()),
            body: OnceCell::from(body.into()),
            headers,
        }
    }

    fn part<'a>(&self, cell: &'a OnceCell<String>, fetch: impl FnOnce(&wit::Request) -> String) -> &'a str {
        // SAFETY: `host` is the borrowed `request` of the running hook.
        lazily(cell, self.host, |h| unsafe { wit::Request::from_handle(h) }, fetch, String::new).as_str()
    }

    /// The method: `INVITE`.
    ///
    /// ```
    /// # fn f(r: &trunkline_sdk::Request) {
    /// assert_eq!(r.method(), "INVITE");
    /// # }
    /// ```
    pub fn method(&self) -> &str {
        self.part(&self.method, |r| r.method())
    }

    /// The request-URI (after edits of earlier plugins).
    ///
    /// ```no_run
    /// # fn f(r: &trunkline_sdk::Request) {
    /// let secure = r.uri().starts_with("sips:");
    /// # }
    /// ```
    pub fn uri(&self) -> &str {
        self.part(&self.uri, |r| r.uri())
    }

    /// The body (SDP), as text; empty if none.
    ///
    /// ```
    /// # fn f(r: &trunkline_sdk::Request) {
    /// let offers_g729 = r.body().contains("G729/8000");
    /// # }
    /// ```
    pub fn body(&self) -> &str {
        self.part(&self.body, |r| r.body())
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
    /// A party with no user and an empty host.
    fn nobody() -> Self {
        Party { display: None, user: None, host: String::new() }
    }

    /// The user part as an E.164 number, if it is one.
    ///
    /// ```no_run
    /// # fn f(call: &trunkline_sdk::Call) {
    /// if let Some(n) = call.from().number() { let _ = n.is_toll_free(); }
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
    ///
    /// ```
    /// use trunkline_sdk::testing::CallBuilder;
    /// let call = CallBuilder::origination().header("Diversion", "<sip:+1@a.example>").header("Diversion", "<sip:+2@b.example>").build();
    /// assert_eq!(call.headers_named("diversion").len(), 2);
    /// ```
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
        self.variables().iter().rev().find(|v| v.name == name).map(|v| v.value.as_str())
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
    ///
    /// ```no_run
    /// # fn f(r: &trunkline_sdk::Request) {
    /// let hops = r.headers_named("Diversion").len();
    /// # }
    /// ```
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
        Target { uri, priority: 10, weight: 1, enabled: true, transport, health: crate::Health::Unknown, group: None }
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
