//! Constructors for hook decisions, so plugins read like policy, not plumbing.

use crate::{
    DialDecision, Fallback, HeaderEdit, InviteDecision, InviteEdits, RedirectDecision, Reject,
    Variable,
};

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
    pub fn proceed() -> InviteDecision {
        InviteDecision::Continue
    }

    /// Answer with the final response `code` (300..=699) and `reason`
    /// (empty: the standard phrase) and stop the chain.
    pub fn reject(code: u16, reason: impl Into<String>) -> InviteDecision {
        InviteDecision::Reject(Reject::new(code, reason))
    }

    /// Answer `302 Moved Temporarily` with these Contact URIs.
    pub fn redirect<I, S>(contacts: I) -> InviteDecision
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        InviteDecision::Redirect(contacts.into_iter().map(Into::into).collect())
    }

    /// Route the call with these changes.
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
    pub fn add_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(HeaderEdit::add(name, value));
        self
    }

    /// Replace every header called `name` with this one.
    pub fn set_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(HeaderEdit::set(name, value));
        self
    }

    /// Remove every header called `name`.
    pub fn remove_header(mut self, name: impl Into<String>) -> Self {
        self.headers.push(HeaderEdit::remove(name));
        self
    }

    /// Route on this number instead: the new user part of the request-URI.
    pub fn rewrite_user(mut self, user: impl Into<String>) -> Self {
        self.request_uri_user = Some(user.into());
        self
    }

    /// Set the caller's display name (From).
    pub fn caller_display(mut self, display: impl Into<String>) -> Self {
        self.caller_display = Some(display.into());
        self
    }

    /// Set a call variable, visible to every later hook.
    pub fn set_variable(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.variables.push(Variable { name: name.into(), value: value.into() });
        self
    }

    /// True when nothing would change.
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
