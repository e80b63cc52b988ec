//! Constructors for hook decisions, so plugins read like policy, not plumbing.

use crate::{DialDecision, Fallback, HeaderEdit, InviteDecision, InviteEdits, RedirectDecision, Reject, Variable};

/// Shorthands for [`InviteDecision`], the decision of `on_invite`.
///
/// ```no_run
/// use trunkline_sdk::{Decision, InviteEdits};
/// let no = Decision::reject(403, "Caller ID not verified");
/// let yes = Decision::proceed();
/// let edited = Decision::edit(InviteEdits::new().set_variable("tier", "gold"));
/// ```
pub struct Decision;

impl Decision {
    /// Route the call unchanged.
    ///
    /// ```
    /// let d = trunkline_sdk::Decision::proceed();
    /// assert_eq!(d, trunkline_sdk::InviteDecision::Continue);
    /// ```
    pub fn proceed() -> InviteDecision {
        InviteDecision::Continue
    }

    /// Answer with the final response `code` (300..=699) and `reason`
    /// (empty: the standard phrase) and stop the chain.
    ///
    /// ```
    /// let d = trunkline_sdk::Decision::reject(403, "Caller ID not verified");
    /// ```
    pub fn reject(code: u16, reason: impl Into<String>) -> InviteDecision {
        InviteDecision::Reject(Reject::new(code, reason))
    }

    /// Answer `302 Moved Temporarily` with these Contact URIs.
    ///
    /// ```
    /// let d = trunkline_sdk::Decision::redirect(["sip:+14155550100@pbx2.example.com"]);
    /// ```
    pub fn redirect<I, S>(contacts: I) -> InviteDecision
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        InviteDecision::Redirect(contacts.into_iter().map(Into::into).collect())
    }

    /// Route the call with these changes.
    ///
    /// ```
    /// use trunkline_sdk::{Decision, InviteEdits};
    /// let d = Decision::edit(InviteEdits::new().rewrite_user("+14155550199"));
    /// ```
    pub fn edit(edits: InviteEdits) -> InviteDecision {
        InviteDecision::Edit(edits)
    }
}

impl Reject {
    /// A final response: `Reject::new(486, "Busy Here")`.
    ///
    /// ```no_run
    /// let busy = trunkline_sdk::Reject::new(486, "");
    /// ```
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        Reject { code, reason: reason.into() }
    }
}

impl InviteEdits {
    /// No changes yet; add some with the builder methods.
    ///
    /// ```no_run
    /// let e = trunkline_sdk::InviteEdits::new().add_header("X-Tier", "gold");
    /// ```
    pub fn new() -> Self {
        InviteEdits { headers: Vec::new(), request_uri_user: None, caller_display: None, variables: Vec::new() }
    }

    /// Append a header.
    ///
    /// ```
    /// let e = trunkline_sdk::InviteEdits::new().add_header("X-Account-Tier", "gold");
    /// assert!(!e.is_empty());
    /// ```
    pub fn add_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(HeaderEdit::add(name, value));
        self
    }

    /// Replace every header called `name` with this one.
    ///
    /// ```
    /// let e = trunkline_sdk::InviteEdits::new().set_header("P-Asserted-Identity", "<sip:+14155550100@example.com>");
    /// ```
    pub fn set_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(HeaderEdit::set(name, value));
        self
    }

    /// Remove every header called `name`.
    ///
    /// ```
    /// let e = trunkline_sdk::InviteEdits::new().remove_header("Remote-Party-ID");
    /// ```
    pub fn remove_header(mut self, name: impl Into<String>) -> Self {
        self.headers.push(HeaderEdit::remove(name));
        self
    }

    /// Route on this number instead: the new user part of the request-URI.
    ///
    /// ```
    /// let e = trunkline_sdk::InviteEdits::new().rewrite_user("+14155550199");
    /// assert_eq!(e.request_uri_user.as_deref(), Some("+14155550199"));
    /// ```
    pub fn rewrite_user(mut self, user: impl Into<String>) -> Self {
        self.request_uri_user = Some(user.into());
        self
    }

    /// Set the caller's display name (From).
    ///
    /// ```
    /// let e = trunkline_sdk::InviteEdits::new().caller_display("Acme Support");
    /// ```
    pub fn caller_display(mut self, display: impl Into<String>) -> Self {
        self.caller_display = Some(display.into());
        self
    }

    /// Set a call variable, visible to every later hook.
    ///
    /// ```
    /// let e = trunkline_sdk::InviteEdits::new().set_variable("tier", "gold");
    /// assert_eq!(e.variables[0].value, "gold");
    /// ```
    pub fn set_variable(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.variables.push(Variable { name: name.into(), value: value.into() });
        self
    }

    /// True when nothing would change.
    ///
    /// ```
    /// assert!(trunkline_sdk::InviteEdits::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
            && self.request_uri_user.is_none()
            && self.caller_display.is_none()
            && self.variables.is_empty()
    }
}

impl Default for InviteEdits {
    fn default() -> Self {
        Self::new()
    }
}

impl From<InviteEdits> for InviteDecision {
    /// Empty edits mean [`InviteDecision::Continue`].
    fn from(edits: InviteEdits) -> Self {
        if edits.is_empty() {
            InviteDecision::Continue
        } else {
            InviteDecision::Edit(edits)
        }
    }
}

impl RedirectDecision {
    /// End the call with this response instead of following the redirect.
    ///
    /// ```no_run
    /// let d = trunkline_sdk::RedirectDecision::reject(403, "Redirects not allowed");
    /// ```
    pub fn reject(code: u16, reason: impl Into<String>) -> Self {
        RedirectDecision::Reject(Reject::new(code, reason))
    }
}

impl DialDecision {
    /// Send the INVITE with these header edits (empty: unchanged).
    ///
    /// ```no_run
    /// use trunkline_sdk::{DialDecision, HeaderEdit};
    /// let d = DialDecision::edit(vec![HeaderEdit::add("X-Account", "42")]);
    /// ```
    pub fn edit(edits: Vec<HeaderEdit>) -> Self {
        if edits.is_empty() {
            DialDecision::Continue
        } else {
            DialDecision::Edit(edits)
        }
    }
}

impl Fallback {
    /// Answer the caller with this response.
    ///
    /// ```no_run
    /// let f = trunkline_sdk::Fallback::reject(503, "Service Unavailable");
    /// ```
    pub fn reject(code: u16, reason: impl Into<String>) -> Self {
        Fallback::Reject(Reject::new(code, reason))
    }
}
