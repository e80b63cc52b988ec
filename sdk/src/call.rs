//! The call a hook runs for: its parts read on demand inside a plugin,
//! held in memory in native tests.

use std::cell::OnceCell;

use crate::messages::lazily;
use crate::wit::trunkline::policy::headers::Message;
use crate::wit::trunkline::policy::types as wit;
use crate::{Direction, Headers, MediaFacts, Party, RecordingMode, Transport, Variable};

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
    media: OnceCell<MediaFacts>,
    /// In native tests: how `start_recording` was asked (what the host
    /// would have recorded).
    recording: std::cell::Cell<Option<RecordingMode>>,
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
    /// What the call's media is (no address, port or key).
    pub media: MediaFacts,
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
        let _ = call.media.set(data.media);
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
            media: OnceCell::new(),
            recording: std::cell::Cell::new(None),
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

    /// What the call's media is: anchored by the router, encrypted, the
    /// codecs the caller offered, recorded. Never an address or a key.
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::origination().build();
    /// let g711 = call.media().codecs.iter().any(|c| c.starts_with("PCMU/") || c.starts_with("PCMA/"));
    /// assert!(g711);
    /// ```
    pub fn media(&self) -> &MediaFacts {
        let none = || MediaFacts { anchored: false, secure: false, codecs: Vec::new(), recording: false };
        self.part(&self.media, |c| c.media(), none)
    }

    /// Record this call (`RecordingMode::Single`: mixed; `Dual`: the
    /// caller left, the callee right). Only in `pre_dial`, on a trunk that
    /// relays media: true if the call will be recorded. In native tests it
    /// is granted when the call's media is anchored, and
    /// [`Call::recording_requested`] tells what was asked.
    ///
    /// ```
    /// use trunkline_sdk::{testing::CallBuilder, RecordingMode};
    /// let call = CallBuilder::origination().build();
    /// assert!(call.start_recording(RecordingMode::Dual));
    /// assert_eq!(call.recording_requested(), Some(RecordingMode::Dual));
    /// ```
    pub fn start_recording(&self, mode: RecordingMode) -> bool {
        match self.host {
            // SAFETY: `host` is the borrowed `call` of the running hook; the
            // handle is lent, never dropped here.
            Some(h) => std::mem::ManuallyDrop::new(unsafe { wit::Call::from_handle(h) }).start_recording(mode),
            None => {
                let granted = self.media().anchored;
                if granted {
                    self.recording.set(Some(mode));
                }
                granted
            }
        }
    }

    /// In native tests: the recording a hook asked for with
    /// [`Call::start_recording`] (inside a plugin: `None`, the host keeps it).
    pub fn recording_requested(&self) -> Option<RecordingMode> {
        self.recording.get()
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
