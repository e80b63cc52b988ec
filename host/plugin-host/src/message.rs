//! The call and its SIP messages as the host keeps them: the WIT records
//! plus their headers.
//!
//! The WIT records (`call`, `request`, `response`) travel to a plugin
//! without headers; a plugin reads the headers it needs through the
//! `headers` interface (`host/headers.rs`). So the host keeps each record
//! next to a [`HeaderList`], which a hook call shares with the plugin's
//! store for the duration of the hook, without copying it.

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
        let name = trunkline_sip_core::message::long_name(name);
        self.0.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
    }

    /// The values of every header called `name`, in order.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let name = trunkline_sip_core::message::long_name(name);
        self.0.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
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
/// read as the message's own (`call.from.user`, `request.uri`).
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

with_headers!(
    /// The call a hook runs for, with the headers of its inbound INVITE
    /// (after edits of earlier plugins).
    Call,
    wit::Call
);
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

/// The headers a running hook may read: shared with its store for the
/// hook call, and released right after it.
#[derive(Default)]
pub(crate) struct Messages {
    pub(crate) inbound: Option<HeaderList>,
    pub(crate) current: Option<HeaderList>,
}
