//! Constructors and accessors on the WIT types the SDK re-exports
//! (`Header`, `HeaderEdit`, `Party`, `Target`, `Transport`).

use crate::{Header, HeaderEdit, Party, Target, E164};

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
    pub(crate) fn nobody() -> Self {
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
