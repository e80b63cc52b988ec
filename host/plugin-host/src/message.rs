//! The call and its SIP messages as the host keeps them: a record plus
//! headers.
//!
//! The WIT records `request` and `response` travel to a plugin without
//! headers; a plugin reads the headers it needs through the `headers`
//! interface (`host/headers.rs`). The call travels as a borrowed handle
//! whose parts a plugin asks for (`host/call.rs`). So the host keeps each
//! record next to a [`HeaderList`], and a hook call shares the call's
//! record and the headers with the plugin's store for the duration of the
//! hook, by reference count, without copying them.

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

/// Implements `Deref`/`DerefMut` to the WIT record, so the record's fields
/// read as the message's own (`request.uri`, `response.status`).
macro_rules! with_headers {
    ($(#[$doc:meta])* $name:ident, $record:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name {
            /// What a plugin receives as the hook's argument.
            pub record: $record,
            /// What a plugin reads through the `headers` interface.
            pub headers: HeaderList,
        }

        impl Deref for $name {
            type Target = $record;
            fn deref(&self) -> &$record {
                &self.record
            }
        }

        impl DerefMut for $name {
            fn deref_mut(&mut self) -> &mut $record {
                &mut self.record
            }
        }

        /// The record with no headers.
        impl From<$record> for $name {
            fn from(record: $record) -> Self {
                $name { record, headers: HeaderList::default() }
            }
        }
    };
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
}

/// The call a hook runs for, with the headers of its inbound INVITE
/// (after edits of earlier plugins). `Deref`/`DerefMut` to the record, so
/// its fields read as the call's own (`call.from.user`).
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// What a plugin reads through its `call` handle. Shared with a running
    /// hook (a reference count); edited in place otherwise.
    pub record: Arc<CallRecord>,
    /// What a plugin reads through the `headers` interface.
    pub headers: HeaderList,
}

impl Call {
    pub fn new(record: CallRecord, headers: HeaderList) -> Self {
        Call { record: Arc::new(record), headers }
    }
}

impl Deref for Call {
    type Target = CallRecord;
    fn deref(&self) -> &CallRecord {
        &self.record
    }
}

impl DerefMut for Call {
    fn deref_mut(&mut self) -> &mut CallRecord {
        Arc::make_mut(&mut self.record)
    }
}

/// The record with no headers.
impl From<CallRecord> for Call {
    fn from(record: CallRecord) -> Self {
        Call::new(record, HeaderList::default())
    }
}
with_headers!(
    /// A SIP request (the inbound INVITE, or an outgoing one in `pre-dial`).
    Request,
    wit::Request
);
with_headers!(
    /// A SIP response received from a target.
    Response,
    wit::Response
);

/// The call and headers a running hook may read: shared with its store for
/// the hook call, and released right after it.
#[derive(Default)]
pub(crate) struct Messages {
    pub(crate) call: Option<Arc<CallRecord>>,
    pub(crate) inbound: Option<HeaderList>,
    pub(crate) current: Option<HeaderList>,
}

/// What a plugin's `call` handle refers to: the call of the hook running in
/// its store. Every hook passes the same borrowed handle (rep 0); the host
/// answers from [`Messages::call`].
pub struct CallHandle;
