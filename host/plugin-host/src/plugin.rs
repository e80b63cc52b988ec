//! A loaded, validated plugin version: its pre-linked instance factory and
//! its health (consecutive failures, quarantine).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::bindings::exports::trunkline::policy::hooks::HookSet;
use crate::bindings::PolicyPre;
use crate::state::HostState;
use crate::warm::ReadyInstances;

/// What is known of a plugin version, for `plugin check`, listings and audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// From the file name: `diversion-guard.wasm` -> `diversion-guard`.
    pub name: String,
    /// First 12 hex digits of the SHA-256 of the file.
    pub version: String,
    pub sha256: String,
    pub path: String,
    pub size_bytes: u64,
    /// Interfaces and functions the component imports, e.g. `trunkline:policy/kv@0.2.0`.
    pub imports: Vec<String>,
    /// Interfaces the component exports.
    pub exports: Vec<String>,
}

/// A plugin version ready to serve calls. Calls hold an `Arc<Plugin>` for
/// their routing phase, so a reload never changes a call's version midway.
pub struct Plugin {
    pub info: PluginInfo,
    pub(crate) pre: PolicyPre<HostState>,
    /// The hooks the plugin implements (its `init` answer at load); the
    /// others are not called.
    pub(crate) hooks: HookSet,
    /// Instances prepared ahead of time (see `warm`).
    pub(crate) ready: ReadyInstances,
    /// `info.name` and `info.version`, shared by every instance's scope.
    pub(crate) shared_name: Arc<str>,
    pub(crate) shared_version: Arc<str>,
    consecutive_failures: AtomicU32,
    /// Unix ms until which the plugin is quarantined (0: not quarantined).
    quarantined_until_ms: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The WIT name of each hook flag (a test checks that every flag has one).
const HOOK_NAMES: [(HookSet, &str); 6] = [
    (HookSet::ON_INVITE, "on-invite"),
    (HookSet::SELECT_URI, "select-uri"),
    (HookSet::ON_REDIRECT, "on-redirect"),
    (HookSet::PRE_DIAL, "pre-dial"),
    (HookSet::ON_FAILURE, "on-failure"),
    (HookSet::ON_CALL_END, "on-call-end"),
];

/// What [`Plugin::record_failure`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FailureEffect {
    Counted(u32),
    /// This failure crossed the threshold: the plugin is now quarantined.
    Quarantined(u32),
}

impl Plugin {
    pub(crate) fn new(info: PluginInfo, pre: PolicyPre<HostState>) -> Self {
        Plugin {
            shared_name: info.name.as_str().into(),
            shared_version: info.version.as_str().into(),
            info,
            pre,
            hooks: HookSet::all(),
            ready: ReadyInstances::default(),
            consecutive_failures: AtomicU32::new(0),
            quarantined_until_ms: AtomicU64::new(0),
        }
    }

    /// Names of the hooks the plugin implements, in WIT order.
    pub fn hook_names(&self) -> Vec<&'static str> {
        HOOK_NAMES.iter().filter(|(f, _)| self.hooks.contains(*f)).map(|(_, n)| *n).collect()
    }

    /// Whether a call may use the plugin now. After the quarantine period
    /// the plugin is on probation: calls use it, and one more failure puts it
    /// straight back in quarantine.
    pub fn admits(&self) -> bool {
        let until = self.quarantined_until_ms.load(Ordering::Relaxed);
        until == 0 || now_ms() >= until
    }

    /// Whether the plugin is in quarantine now.
    pub fn is_quarantined(&self) -> bool {
        !self.admits()
    }

    pub(crate) fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if self.quarantined_until_ms.load(Ordering::Relaxed) != 0 && self.admits() {
            self.quarantined_until_ms.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn record_failure(&self, threshold: u32, quarantine_secs: u64) -> FailureEffect {
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if threshold > 0 && n >= threshold && self.admits() {
            let until = now_ms() + quarantine_secs.saturating_mul(1000).max(1);
            self.quarantined_until_ms.store(until, Ordering::Relaxed);
            return FailureEffect::Quarantined(n);
        }
        FailureEffect::Counted(n)
    }

    /// Lift a quarantine (admin request).
    pub fn release(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.quarantined_until_ms.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hook_of_the_wit_has_a_name() {
        let named = HOOK_NAMES.iter().fold(HookSet::empty(), |all, (flag, _)| all | *flag);
        assert_eq!(named, HookSet::all(), "a hook of wit/hooks.wit is missing from HOOK_NAMES");
    }
}
