//! The [`Policy`] trait: one method per hook of `wit/hooks.wit`.

use crate::{
    Call, DialDecision, Fallback, InviteDecision, RedirectDecision, Request, Response, Selection, Summary, Target,
};

/// A policy plugin. Override the hooks you need; the others keep their
/// documented default ("continue, change nothing").
///
/// Hooks run in this order for a call: [`on_invite`](Policy::on_invite) →
/// [`select_uri`](Policy::select_uri) → for each target
/// [`pre_dial`](Policy::pre_dial) (→ [`on_redirect`](Policy::on_redirect) on
/// a 3xx) → [`on_failure`](Policy::on_failure) if every target failed →
/// [`on_call_end`](Policy::on_call_end).
///
/// ```no_run
/// use trunkline_sdk::{Call, Decision, InviteDecision, Policy, Request};
/// #[derive(Default)]
/// struct OnlyUs;
/// impl Policy for OnlyUs {
///     fn on_invite(&self, call: &Call, _: &Request) -> InviteDecision {
///         match call.to().number() {
///             Some(n) if n.as_str().starts_with("+1") => Decision::proceed(),
///             _ => Decision::reject(403, "Only US numbers"),
///         }
///     }
/// }
/// ```
pub trait Policy {
    /// Every new INVITE, in both directions, before routing. Reject, redirect
    /// (302), or edit the request and set call variables.
    ///
    /// Default: [`InviteDecision::Continue`].
    fn on_invite(&self, call: &Call, request: &Request) -> InviteDecision {
        let _ = (call, request);
        InviteDecision::Continue
    }

    /// Order, filter or extend the call's candidate targets.
    ///
    /// Default: [`Selection::Default`], the reference priority/weight algorithm.
    fn select_uri(&self, call: &Call, candidates: &[Target]) -> Selection {
        let _ = (call, candidates);
        Selection::Default
    }

    /// A target answered with a 3xx redirect.
    ///
    /// Default: [`RedirectDecision::Default`], follow the first Contact.
    fn on_redirect(&self, call: &Call, response: &Response) -> RedirectDecision {
        let _ = (call, response);
        RedirectDecision::Default
    }

    /// Just before an outgoing INVITE leaves for `target`: edit its headers or skip the target.
    ///
    /// Default: [`DialDecision::Continue`].
    fn pre_dial(&self, call: &Call, request: &Request, target: &Target) -> DialDecision {
        let _ = (call, request, target);
        DialDecision::Continue
    }

    /// Every target failed. Reject with a code, or fall back to TwiML.
    ///
    /// Default: [`Fallback::Default`], the trunk's disaster-recovery URL if
    /// configured, else the last meaningful failure.
    fn on_failure(&self, call: &Call, last_response: Option<&Response>) -> Fallback {
        let _ = (call, last_response);
        Fallback::Default
    }

    /// The call is over (notification, e.g. for counters).
    ///
    /// Default: nothing.
    fn on_call_end(&self, call: &Call, summary: &Summary) {
        let _ = (call, summary);
    }
}
