//! [`Headers`]: a message's headers, read from the host only when asked.

use trunkline_sip_core::message::named;

use crate::wit::trunkline::policy::headers::Message;
use crate::Header;

/// The headers of a SIP message a hook sees.
///
/// Inside a plugin they stay in the host until asked for: a hook that
/// reads no header pays nothing for them, one that reads `Diversion` pays
/// for the `Diversion` headers alone. In native tests (and once changed
/// with [`push`](Headers::push)) they are held in memory. Names compare
/// case-insensitively, and compact forms match their full name (`f` is
/// `From`).
///
/// ```no_run
/// # fn f(call: &trunkline_sdk::Call) {
/// if let Some(pai) = call.headers.first("P-Asserted-Identity") {
///     let _ = pai;
/// }
/// let diversions: Vec<String> = call.headers.named("Diversion");
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Headers {
    source: Source,
}

#[derive(Clone, Debug, PartialEq)]
enum Source {
    /// Kept by the host; read through the `headers` import.
    Host(Message),
    /// Held here, in order.
    Held(Vec<Header>),
}

impl Default for Source {
    fn default() -> Self {
        Source::Held(Vec::new())
    }
}

impl Headers {
    /// No headers.
    ///
    /// ```no_run
    /// assert!(trunkline_sdk::Headers::new().all().is_empty());
    /// ```
    pub fn new() -> Self {
        Headers::default()
    }

    /// The headers of `message`, read from the host when asked for.
    #[doc(hidden)]
    pub fn __from_host(message: Message) -> Self {
        Headers { source: Source::Host(message) }
    }

    /// The value of the first header called `name`.
    ///
    /// ```no_run
    /// # fn f(r: &trunkline_sdk::Request) {
    /// let pai = r.headers.first("P-Asserted-Identity");
    /// # }
    /// ```
    pub fn first(&self, name: &str) -> Option<String> {
        match &self.source {
            Source::Host(m) => host::first(*m, name),
            Source::Held(all) => named(all, name, |h| &h.name).next().map(|h| h.value.clone()),
        }
    }

    /// The values of every header called `name`, in order.
    ///
    /// ```no_run
    /// # fn f(r: &trunkline_sdk::Request) {
    /// for d in r.headers.named("Diversion") { let _ = d; }
    /// # }
    /// ```
    pub fn named(&self, name: &str) -> Vec<String> {
        match &self.source {
            Source::Host(m) => host::get(*m, name),
            Source::Held(all) => named(all, name, |h| &h.name).map(|h| h.value.clone()).collect(),
        }
    }

    /// Every header, in order.
    ///
    /// ```no_run
    /// # fn f(r: &trunkline_sdk::Request) {
    /// let names: Vec<String> = r.headers.all().into_iter().map(|h| h.name).collect();
    /// # }
    /// ```
    pub fn all(&self) -> Vec<Header> {
        match &self.source {
            Source::Host(m) => host::all(*m),
            Source::Held(all) => all.clone(),
        }
    }

    /// Append a header (this copy only; the host's message changes through
    /// a hook's decision, e.g. [`HeaderEdit::add`](crate::HeaderEdit::add)).
    ///
    /// ```no_run
    /// let mut h = trunkline_sdk::Headers::new();
    /// h.push(trunkline_sdk::Header::new("X-Tier", "gold"));
    /// ```
    pub fn push(&mut self, header: Header) {
        if let Source::Host(_) = self.source {
            self.source = Source::Held(self.all());
        }
        if let Source::Held(all) = &mut self.source {
            all.push(header);
        }
    }
}

impl From<Vec<Header>> for Headers {
    fn from(headers: Vec<Header>) -> Self {
        Headers { source: Source::Held(headers) }
    }
}

#[cfg(target_arch = "wasm32")]
mod host {
    pub(super) use crate::wit::trunkline::policy::headers::{all, first, get};
}

/// Off wasm there is no host: headers are always held (the harness and
/// tests build them), so this is never reached.
#[cfg(not(target_arch = "wasm32"))]
mod host {
    use super::{Header, Message};

    const NO_HOST: &str = "host headers exist only inside a plugin; tests hold theirs in memory";

    pub(super) fn first(_: Message, _: &str) -> Option<String> {
        unreachable!("{NO_HOST}")
    }

    pub(super) fn get(_: Message, _: &str) -> Vec<String> {
        unreachable!("{NO_HOST}")
    }

    pub(super) fn all(_: Message) -> Vec<Header> {
        unreachable!("{NO_HOST}")
    }
}
