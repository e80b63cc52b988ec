//! A call's plugin chain: the plugins an account runs, in order, and the
//! per-call session that calls their hooks and applies their decisions.
//!
//! Chain semantics, per hook:
//! - `on-invite`: in order; edits accumulate (each plugin sees the previous
//!   ones' edits); a reject or redirect stops the chain.
//! - `select-uri`: a pipeline; each plugin gets the previous one's targets.
//! - `on-redirect`, `on-failure`: the first non-default decision wins.
//! - `pre-dial`: edits accumulate; a skip stops the chain.
//! - `on-call-end`: every plugin is told.
//!
//! A failing plugin (trap, deadline, memory, invalid decision, quarantine)
//! gets its failure mode: `fail-open` uses the hook's default and goes on,
//! `fail-closed` ends the call with the configured 500/503. Edits are
//! applied by `edits`.

pub use crate::edits::{apply_header_edits, rewrite_uri_user};

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Resource;
use wasmtime::Store;

use crate::audit::AuditEntry;
use crate::bindings::exports::trunkline::policy::hooks::HookSet;
use crate::bindings::Policy;
use crate::edits::{apply_invite_edits, describe_header_edits, describe_invite_edits, describe_targets};
use crate::error::HookFailure;
use crate::limits::{FailureMode, Limits};
use crate::message::{CallHandle, Messages, RequestHandle};
use crate::plugin::{FailureEffect, Plugin};
use crate::runtime::Runtime;
use crate::services::PluginConfig;
use crate::state::HostState;
use crate::types::{
    Call, DialDecision, Fallback, InviteDecision, RedirectDecision, Reject, Request, Response, Selection, Summary,
    Target,
};
use crate::validate;
use crate::warm::Live;

/// One plugin of a chain, with the operator's config and limits for it.
#[derive(Clone, Debug)]
pub struct ChainEntry {
    /// Shared, so that every call's session copies a pointer, not the name.
    pub plugin: Arc<str>,
    pub config: Arc<PluginConfig>,
    pub limits: Limits,
}

/// The ordered plugins of an account (trunk).
#[derive(Clone, Debug, Default)]
pub struct Chain {
    pub entries: Vec<ChainEntry>,
}

/// One hook call, for call insight, `plugin run` and the quickstart.
/// Built on every hook call, so it shares names and borrows fixed texts
/// instead of allocating them.
#[derive(Clone, Debug)]
pub struct HookTrace {
    pub plugin: Arc<str>,
    pub version: Arc<str>,
    pub hook: &'static str,
    /// What the plugin decided, or how it failed and what the call got.
    pub outcome: Cow<'static, str>,
    pub micros: u64,
}

/// Result of the `on-invite` chain (edits were applied to the call).
#[derive(Clone, Debug, PartialEq)]
pub enum InviteOutcome {
    Continue,
    Reject(Reject),
    Redirect(Vec<String>),
}

/// Result of the `select-uri` chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Selected {
    pub targets: Vec<Target>,
    /// True: try in exactly this order. False: apply priority/weight.
    pub ordered: bool,
}

/// Result of the `pre-dial` chain (edits were applied to the request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialOutcome {
    Send,
    Skip,
}

struct Slot {
    entry: ChainEntry,
    /// The version pinned when the call started; `None` if not loaded then.
    plugin: Option<Arc<Plugin>>,
    live: Option<Live>,
}

/// A call's routing phase: one lazily created instance per plugin, dropped
/// with the session (or after a failure, so no state survives a trap).
pub struct CallSession {
    runtime: Runtime,
    slots: Vec<Slot>,
    account: Arc<str>,
    call_id: Arc<str>,
    trace: Vec<HookTrace>,
    /// A plugin asked in `pre-dial` for the call to be recorded, so.
    recording: Option<crate::bindings::trunkline::policy::types::RecordingMode>,
}

/// The handle every hook's `call` argument is: it stands for the call set
/// in the store for the hook (see `host/call.rs`).
fn call_handle() -> Resource<CallHandle> {
    Resource::new_borrow(0)
}

/// The handle `on-invite` and `pre-dial` get as their `request`: it stands
/// for the request set in the store for the hook (see `host/request.rs`).
fn request_handle() -> Resource<RequestHandle> {
    Resource::new_borrow(0)
}

/// The message a hook is about, besides the call: what its plugin reads
/// through the `request` handle and `headers.current`.
#[derive(Clone, Copy)]
enum About<'a> {
    Request(&'a Request),
    Response(&'a Response),
    Nothing,
}

impl About<'_> {
    /// Shares `call` and this message with a store for one hook call.
    fn messages(self, call: &Call) -> Messages {
        let (request, current) = match self {
            About::Request(r) => (Some(r.record.clone()), Some(r.headers.clone())),
            About::Response(r) => (None, Some(r.headers.clone())),
            About::Nothing => (None, None),
        };
        Messages {
            call: Some(call.record.clone()),
            request,
            inbound: Some(call.headers.clone()),
            current,
            may_record: false,
            recording: None,
        }
    }
}

/// What a failure means for the call.
enum Verdict {
    Proceed,
    End(Reject),
}

fn standard_reason(code: u16) -> &'static str {
    match code {
        500 => "Server Internal Error",
        _ => "Service Unavailable",
    }
}

impl CallSession {
    pub(crate) fn new(runtime: Runtime, chain: &Chain, account: &str, call_id: &str) -> Self {
        let plugins = runtime.inner.plugins.load();
        let slots = chain
            .entries
            .iter()
            .map(|e| Slot { entry: e.clone(), plugin: plugins.get(&*e.plugin).cloned(), live: None })
            .collect();
        CallSession {
            runtime,
            slots,
            account: account.into(),
            call_id: call_id.into(),
            trace: Vec::new(),
            recording: None,
        }
    }

    /// How a plugin asked (`call.start-recording` in `pre-dial`) for the
    /// call to be recorded, if one did.
    pub fn recording_requested(&self) -> Option<crate::bindings::trunkline::policy::types::RecordingMode> {
        self.recording
    }

    /// Hook calls so far, in order.
    pub fn trace(&self) -> &[HookTrace] {
        &self.trace
    }

    /// The version of each chain entry this call uses (`None`: not loaded).
    pub fn versions(&self) -> Vec<(String, Option<String>)> {
        self.slots
            .iter()
            .map(|s| (s.entry.plugin.to_string(), s.plugin.as_ref().map(|p| p.info.version.clone())))
            .collect()
    }

    fn note(&mut self, i: usize, hook: &'static str, started: Instant, outcome: impl Into<Cow<'static, str>>) {
        let slot = &self.slots[i];
        self.trace.push(HookTrace {
            plugin: slot.entry.plugin.clone(),
            version: slot.plugin.as_ref().map_or_else(|| Arc::from("-"), |p| p.shared_version.clone()),
            hook,
            outcome: outcome.into(),
            micros: started.elapsed().as_micros() as u64,
        });
    }

    /// A never-used instance of plugin `i` for this call: prepared ahead of
    /// time if one is ready, else created now.
    fn instantiate(&self, i: usize, plugin: &Arc<Plugin>) -> Result<Live, HookFailure> {
        let inner = &self.runtime.inner;
        let entry = &self.slots[i].entry;
        let mut live = match inner.warmer.take(plugin, &entry.limits) {
            Some(live) => live,
            None => crate::warm::prepare(&inner.engine, &inner.services, plugin, &entry.limits)
                .inspect(|_| inner.warmer.count_call_path())
                .map_err(|e| {
                    if e.error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
                        HookFailure::HostBusy(e.error.to_string())
                    } else {
                        classify(e.error, e.refused_memory, &entry.limits)
                    }
                })?,
        };
        let scope = self.runtime.scope(plugin, &self.account, &self.call_id, entry.config.clone());
        live.store.data_mut().assign(scope);
        Ok(live)
    }

    /// Drop an instance off the call path.
    fn retire(&mut self, i: usize) {
        if let Some(live) = self.slots[i].live.take() {
            self.runtime.inner.warmer.retire(live);
        }
    }

    /// Call one hook of plugin `i` and validate its result. `Ok(None)`: the
    /// plugin does not implement the hook, so its default applies.
    /// `call` (with its inbound INVITE's headers) and `about` (the hook's
    /// own message) are what the plugin may read through its handles and
    /// the `headers` interface during this call.
    fn run<R>(
        &mut self,
        i: usize,
        hook: HookSet,
        (call, about): (&Call, About<'_>),
        f: impl FnOnce(&Policy, &mut Store<HostState>) -> wasmtime::Result<R>,
        check: impl FnOnce(&R) -> Result<(), String>,
    ) -> Result<Option<R>, HookFailure> {
        let plugin = self.slots[i].plugin.clone().ok_or(HookFailure::NotLoaded)?;
        if !plugin.hooks.contains(hook) {
            return Ok(None);
        }
        if !plugin.admits() {
            return Err(HookFailure::Quarantined);
        }
        if self.slots[i].live.is_none() {
            let live = self.instantiate(i, &plugin)?;
            self.slots[i].live = Some(live);
        }
        let slot = &mut self.slots[i];
        let limits = &slot.entry.limits;
        let live = slot.live.as_mut().expect("instantiated above");
        live.store.set_epoch_deadline(limits.hook_timeout_ms.max(1));
        live.store.data_mut().start_hook();
        live.store.data_mut().messages = Messages { may_record: hook == HookSet::PRE_DIAL, ..about.messages(call) };
        let result = f(&live.policy, &mut live.store);
        let state = live.store.data_mut();
        let recording = state.messages.recording.take();
        // Released now, so that the caller edits the call and headers in place.
        state.messages = Messages::default();
        if let (Ok(_), Some(mode)) = (&result, recording) {
            self.recording = Some(mode);
        }
        let failure = match result {
            Ok(r) => match check(&r) {
                Ok(()) => {
                    plugin.record_success();
                    return Ok(Some(r));
                }
                Err(why) => HookFailure::InvalidDecision(why),
            },
            Err(e) => classify(e, live.store.data().limiter.refused_memory, limits),
        };
        // A failed instance may be in any state: never call it again.
        self.retire(i);
        Err(failure)
    }

    /// Log the failure once, count it towards quarantine, and decide what the call gets.
    fn failed(&mut self, i: usize, hook: &'static str, started: Instant, failure: HookFailure) -> Verdict {
        let slot = &self.slots[i];
        let limits = &slot.entry.limits;
        let version = slot.plugin.as_ref().map(|p| p.info.version.clone()).unwrap_or_else(|| "-".into());
        let verdict = match (&failure, limits.failure_mode) {
            (HookFailure::HostBusy(_), _) => Verdict::End(Reject { code: 503, reason: "Service Unavailable".into() }),
            (_, FailureMode::FailOpen) => Verdict::Proceed,
            (_, FailureMode::FailClosed) => Verdict::End(Reject {
                code: limits.fail_closed_code,
                reason: standard_reason(limits.fail_closed_code).into(),
            }),
        };
        let what = match &verdict {
            Verdict::Proceed => "fail-open: hook default used".to_string(),
            Verdict::End(r) => format!("call rejected {}", r.code),
        };
        if !matches!(failure, HookFailure::Quarantined) {
            tracing::error!(
                plugin = %slot.entry.plugin, version = %version, call_id = %self.call_id, hook,
                kind = failure.kind(), "plugin {failure}; {what}"
            );
        }
        if let (true, Some(plugin)) = (failure.is_plugin_fault(), slot.plugin.clone()) {
            if let FailureEffect::Quarantined(n) =
                plugin.record_failure(limits.quarantine_after, limits.quarantine_secs)
            {
                tracing::error!(
                    plugin = %plugin.info.name, version = %plugin.info.version,
                    "plugin quarantined for {} s after {n} consecutive failures", limits.quarantine_secs
                );
                let mut e = AuditEntry::new("quarantine", &plugin.info.name, "runtime");
                e.version = Some(plugin.info.version.clone());
                e.detail = Some(format!("{n} consecutive failures, last: {failure}"));
                self.runtime.inner.audit.record(e);
            }
        }
        self.runtime.inner.services.metrics.counter(&slot.entry.plugin, &format!("failures.{}", failure.kind()), 1);
        self.note(i, hook, started, format!("failed ({failure}); {what}"));
        verdict
    }

    /// Run the `on-invite` chain, applying edits to `call` and `request`.
    pub fn on_invite(&mut self, call: &mut Call, request: &mut Request) -> InviteOutcome {
        for i in 0..self.slots.len() {
            let t = Instant::now();
            let r = self.run(
                i,
                HookSet::ON_INVITE,
                (call, About::Request(request)),
                |p, s| p.trunkline_policy_hooks().call_on_invite(s, call_handle(), request_handle()),
                |d| match d {
                    InviteDecision::Continue => Ok(()),
                    InviteDecision::Reject(r) => validate::reject(r),
                    InviteDecision::Redirect(c) => validate::contacts(c),
                    InviteDecision::Edit(e) => validate::invite_edits(e),
                },
            );
            match r {
                Ok(None) => continue,
                Ok(Some(InviteDecision::Continue)) => self.note(i, "on-invite", t, "continue"),
                Ok(Some(InviteDecision::Reject(r))) => {
                    self.note(i, "on-invite", t, format!("reject {} {}", r.code, r.reason));
                    return InviteOutcome::Reject(r);
                }
                Ok(Some(InviteDecision::Redirect(c))) => {
                    self.note(i, "on-invite", t, format!("redirect {}", c.join(", ")));
                    return InviteOutcome::Redirect(c);
                }
                Ok(Some(InviteDecision::Edit(e))) => {
                    let what = describe_invite_edits(&e);
                    apply_invite_edits(call, request, e);
                    self.note(i, "on-invite", t, format!("edit {what}"));
                }
                Err(f) => {
                    if let Verdict::End(r) = self.failed(i, "on-invite", t, f) {
                        return InviteOutcome::Reject(r);
                    }
                }
            }
        }
        InviteOutcome::Continue
    }

    /// Run the `select-uri` chain over `candidates`. `Err` ends the call (fail-closed).
    pub fn select_uri(&mut self, call: &Call, candidates: Vec<Target>) -> Result<Selected, Reject> {
        let mut current = Selected { targets: candidates, ordered: false };
        for i in 0..self.slots.len() {
            let t = Instant::now();
            let targets = &current.targets;
            let r = self.run(
                i,
                HookSet::SELECT_URI,
                (call, About::Nothing),
                |p, s| p.trunkline_policy_hooks().call_select_uri(s, call_handle(), targets),
                |d| match d {
                    Selection::Default => Ok(()),
                    Selection::Candidates(t) | Selection::Ordered(t) => validate::targets(t),
                },
            );
            match r {
                Ok(None) => continue,
                Ok(Some(Selection::Default)) => self.note(i, "select-uri", t, "default"),
                Ok(Some(Selection::Candidates(list))) => {
                    self.note(i, "select-uri", t, format!("candidates {}", describe_targets(&list)));
                    current = Selected { targets: list, ordered: false };
                }
                Ok(Some(Selection::Ordered(list))) => {
                    self.note(i, "select-uri", t, format!("ordered {}", describe_targets(&list)));
                    current = Selected { targets: list, ordered: true };
                }
                Err(f) => {
                    if let Verdict::End(r) = self.failed(i, "select-uri", t, f) {
                        return Err(r);
                    }
                }
            }
        }
        Ok(current)
    }

    /// Run the `pre-dial` chain for one target, applying edits to `request`.
    /// `Err` ends the call (fail-closed).
    pub fn pre_dial(&mut self, call: &Call, request: &mut Request, target: &Target) -> Result<DialOutcome, Reject> {
        for i in 0..self.slots.len() {
            let t = Instant::now();
            let r = self.run(
                i,
                HookSet::PRE_DIAL,
                (call, About::Request(request)),
                |p, s| p.trunkline_policy_hooks().call_pre_dial(s, call_handle(), request_handle(), target),
                |d| match d {
                    DialDecision::Edit(e) => validate::header_edits(e),
                    _ => Ok(()),
                },
            );
            match r {
                Ok(None) => continue,
                Ok(Some(DialDecision::Continue)) => self.note(i, "pre-dial", t, "continue"),
                Ok(Some(DialDecision::Skip)) => {
                    self.note(i, "pre-dial", t, format!("skip {}", target.uri));
                    return Ok(DialOutcome::Skip);
                }
                Ok(Some(DialDecision::Edit(e))) => {
                    let what = describe_header_edits(&e);
                    apply_header_edits(&mut request.headers, &e);
                    self.note(i, "pre-dial", t, format!("edit {what}"));
                }
                Err(f) => {
                    if let Verdict::End(r) = self.failed(i, "pre-dial", t, f) {
                        return Err(r);
                    }
                }
            }
        }
        Ok(DialOutcome::Send)
    }

    /// Run the `on-redirect` chain: the first non-default decision wins.
    pub fn on_redirect(&mut self, call: &Call, response: &Response) -> RedirectDecision {
        for i in 0..self.slots.len() {
            let t = Instant::now();
            let r = self.run(
                i,
                HookSet::ON_REDIRECT,
                (call, About::Response(response)),
                |p, s| p.trunkline_policy_hooks().call_on_redirect(s, call_handle(), &response.record),
                |d| match d {
                    RedirectDecision::Follow(u) => validate::uri("redirect target", u),
                    RedirectDecision::Reject(r) => validate::reject(r),
                    _ => Ok(()),
                },
            );
            match r {
                Ok(None) => continue,
                Ok(Some(RedirectDecision::Default)) => self.note(i, "on-redirect", t, "default"),
                Ok(Some(d)) => {
                    self.note(i, "on-redirect", t, format!("{d:?}"));
                    return d;
                }
                Err(f) => {
                    if let Verdict::End(r) = self.failed(i, "on-redirect", t, f) {
                        return RedirectDecision::Reject(r);
                    }
                }
            }
        }
        RedirectDecision::Default
    }

    /// Run the `on-failure` chain: the first non-default decision wins.
    pub fn on_failure(&mut self, call: &Call, last: Option<&Response>) -> Fallback {
        for i in 0..self.slots.len() {
            let t = Instant::now();
            let r = self.run(
                i,
                HookSet::ON_FAILURE,
                (call, last.map_or(About::Nothing, About::Response)),
                |p, s| p.trunkline_policy_hooks().call_on_failure(s, call_handle(), last.map(|r| &*r.record)),
                |d| match d {
                    Fallback::Reject(r) => validate::reject(r),
                    Fallback::TwimlUrl(u) => validate::twiml_url(u),
                    Fallback::TwimlDocument(d) => validate::twiml_document(d),
                    Fallback::Default => Ok(()),
                },
            );
            match r {
                Ok(None) => continue,
                Ok(Some(Fallback::Default)) => self.note(i, "on-failure", t, "default"),
                Ok(Some(d)) => {
                    let what = match &d {
                        Fallback::Reject(r) => format!("reject {} {}", r.code, r.reason),
                        Fallback::TwimlUrl(u) => format!("twiml-url {u}"),
                        Fallback::TwimlDocument(doc) => format!("twiml-document ({} bytes)", doc.len()),
                        Fallback::Default => unreachable!(),
                    };
                    self.note(i, "on-failure", t, what);
                    return d;
                }
                Err(f) => {
                    if let Verdict::End(r) = self.failed(i, "on-failure", t, f) {
                        return Fallback::Reject(r);
                    }
                }
            }
        }
        Fallback::Default
    }

    /// Tell every plugin the call is over. Ends the session: instances are dropped.
    pub fn on_call_end(mut self, call: &Call, summary: &Summary) -> Vec<HookTrace> {
        for i in 0..self.slots.len() {
            let t = Instant::now();
            let hook = |p: &Policy, s: &mut Store<HostState>| {
                p.trunkline_policy_hooks().call_on_call_end(s, call_handle(), summary)
            };
            match self.run(i, HookSet::ON_CALL_END, (call, About::Nothing), hook, |_| Ok(())) {
                Ok(None) => {}
                Ok(Some(())) => self.note(i, "on-call-end", t, "notified"),
                Err(f) => {
                    let _ = self.failed(i, "on-call-end", t, f);
                }
            }
        }
        std::mem::take(&mut self.trace)
    }

    /// End the routing phase now (the call was answered or failed): drop the
    /// instances. Later hooks get fresh ones.
    pub fn end_routing_phase(&mut self) {
        for i in 0..self.slots.len() {
            self.retire(i);
        }
    }
}

impl Drop for CallSession {
    /// Instances still held are dropped off the call path.
    fn drop(&mut self) {
        self.end_routing_phase();
    }
}

fn classify(e: wasmtime::Error, refused_memory: bool, limits: &Limits) -> HookFailure {
    if refused_memory {
        return HookFailure::OutOfMemory(limits.memory_bytes);
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => HookFailure::Timeout(limits.hook_timeout_ms),
        Some(trap) => HookFailure::Trap(trap.to_string()),
        None => {
            let mut msg = format!("{e}");
            msg.truncate(300);
            HookFailure::Trap(msg)
        }
    }
}
