//! The call and its SIP messages as the host keeps them: a record plus
//! headers.
//!
//! A plugin reads the headers it needs through the `headers` interface
//! (`host/headers.rs`); the call and the request travel as borrowed
//! handles whose parts a plugin asks for (`host/call.rs`,
//! `host/request.rs`); a response travels as a WIT record without headers.
//! So the host keeps each record next to a [`HeaderList`], and a hook call
//! shares them with the plugin's store for the duration of the hook, by
//! reference count, without copying them.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::bindings::trunkline::policy::types::{self as wit, Header};

/// Headers of one message, in order. Cheap to share with a running hook
/// (a reference count); edited in place otherwise (copied first only if a
/// hook still held it, which [`CallSession`](crate::CallSession) prevents).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeaderList(Arc<Vec<Header>>);

impl HeaderList {
    /// The value of the first header called `name` (case-insensitive,
    /// compact forms match their full name).
    pub fn first(&self, name: &str) -> Option<&str> {
        trunkline_sip_core::message::named(&self.0, name, |h| &h.name).next().map(|h| h.value.as_str())
    }

    /// The values of every header called `name`, in order.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        trunkline_sip_core::message::named(&self.0, name, |h| &h.name).map(|h| h.value.as_str())
    }
}

impl Deref for HeaderList {
    type Target = Vec<Header>;
    fn deref(&self) -> &Vec<Header> {
        &self.0
    }
}

impl DerefMut for HeaderList {
    fn deref_mut(&mut self) -> &mut Vec<Header> {
        Arc::make_mut(&mut self.0)
    }
}

impl<'a> IntoIterator for &'a HeaderList {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<Vec<Header>> for HeaderList {
    fn from(headers: Vec<Header>) -> Self {
        HeaderList(Arc::new(headers))
    }
}

impl FromIterator<Header> for HeaderList {
    fn from_iter<I: IntoIterator<Item = Header>>(iter: I) -> Self {
        HeaderList(Arc::new(iter.into_iter().collect()))
    }
}

/// A record a hook reads, next to the headers of its message. The record
/// is shared with a running hook by reference count, without a copy, and
/// edited in place otherwise (copied first only if a hook still held it,
/// which [`CallSession`](crate::CallSession) prevents). `Deref`/`DerefMut`
/// to the record, so its fields read as the message's own (`call.from`,
/// `request.uri`, `response.status`).
#[derive(Clone, Debug, PartialEq)]
pub struct WithHeaders<R> {
    /// What a plugin reads through its handle (the call, the request) or
    /// receives as the hook's argument (a response).
    pub record: Arc<R>,
    /// What a plugin reads through the `headers` interface.
    pub headers: HeaderList,
}

impl<R> WithHeaders<R> {
    pub fn new(record: R, headers: HeaderList) -> Self {
        WithHeaders { record: Arc::new(record), headers }
    }
}

impl<R> Deref for WithHeaders<R> {
    type Target = R;
    fn deref(&self) -> &R {
        &self.record
    }
}

impl<R: Clone> DerefMut for WithHeaders<R> {
    fn deref_mut(&mut self) -> &mut R {
        Arc::make_mut(&mut self.record)
    }
}

/// The record with no headers.
impl<R> From<R> for WithHeaders<R> {
    fn from(record: R) -> Self {
        WithHeaders::new(record, HeaderList::default())
    }
}

/// What the host knows of a call: what the WIT `call` resource answers.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRecord {
    /// SIP Call-ID of the inbound leg.
    pub call_id: String,
    pub direction: wit::Direction,
    /// Account that owns the trunk.
    pub account_id: String,
    /// Trunk id (`TK` + 32 hex).
    pub trunk_id: String,
    /// The trunk's friendly name.
    pub trunk_name: String,
    pub from: wit::Party,
    pub to: wit::Party,
    pub request_uri: wit::Party,
    /// Address the inbound INVITE came from, `ip:port`.
    pub source_address: String,
    pub transport: wit::Transport,
    /// Call variables set so far, in order.
    pub variables: Vec<wit::Variable>,
    /// What the call's media is (no address, port or key).
    pub media: wit::MediaFacts,
}

/// What the host knows of a request: what the WIT `request` resource answers.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    /// `INVITE`.
    pub method: String,
    /// The request-URI.
    pub uri: String,
    /// The body (SDP), as text; empty if none.
    pub body: String,
}

/// The call a hook runs for, with the headers of its inbound INVITE
/// (after edits of earlier plugins).
pub type Call = WithHeaders<CallRecord>;

/// A SIP request (the inbound INVITE, or an outgoing one in `pre-dial`).
pub type Request = WithHeaders<RequestRecord>;

/// A SIP response received from a target.
pub type Response = WithHeaders<wit::Response>;

/// The call, request and headers a running hook may read: shared with its
/// store for the hook call, and released right after it.
#[derive(Default)]
pub(crate) struct Messages {
    pub(crate) call: Option<Arc<CallRecord>>,
    /// The request of `on-invite` and `pre-dial`.
    pub(crate) request: Option<Arc<RequestRecord>>,
    pub(crate) inbound: Option<HeaderList>,
    pub(crate) current: Option<HeaderList>,
    /// The running hook may ask for the call to be recorded (`pre-dial`).
    pub(crate) may_record: bool,
    /// What it asked (`call.start-recording`).
    pub(crate) recording: Option<wit::RecordingMode>,
}

/// What a plugin's `call` handle refers to: the call of the hook running in
/// its store. Every hook passes the same borrowed handle (rep 0); the host
/// answers from the call it shares with the store for the hook.
pub struct CallHandle;

/// What a plugin's `request` handle refers to: the request of the hook
/// running in its store (rep 0, like [`CallHandle`]); the host answers from
/// the request it shares with the store for the hook.
pub struct RequestHandle;
