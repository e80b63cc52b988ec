//! The SIP messages a hook is about (the request of `on_invite` and
//! `pre_dial`, the response of `on_redirect` and `on_failure`).

use std::cell::OnceCell;
use std::mem::ManuallyDrop;

use crate::wit::trunkline::policy::headers::Message;
use crate::wit::trunkline::policy::types as wit;
use crate::Headers;

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

/// `cell`'s value, fetched on first use through the hook's borrowed handle
/// `host` (`from_handle` makes the handle's type from it). Without a host
/// (a value built in memory for a native test) a part reads as `missing`.
pub(crate) fn lazily<T, H>(
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
