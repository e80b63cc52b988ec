//! The reference trunk's Diversion behaviour, in the host (plugins may
//! still change what it does):
//! - origination: the dialed number is conveyed in `Diversion:
//!   <sip:+DIALED@our-domain>` on every attempt (per trunk `diversion =
//!   true`, the default), added before `pre-dial` so plugins see it;
//! - termination: a Diversion naming our domain (`sip.domains`, the trunk's
//!   termination domain, and their subdomains) with a number the account
//!   neither owns nor has verified is removed before any plugin runs.

use trunkline_plugin_host::types::{Header, Request};
use trunkline_sip_core::message::Message;
use trunkline_sip_core::NameAddr;

use crate::config::Settings;

/// The Diversion value of an origination attempt for `dialed`, unless the
/// request already carries it.
pub fn add_dialed(settings: &Settings, trunk: &crate::config::Trunk, dialed: &str, request: &mut Request) {
    if !trunk.diversion || dialed.is_empty() {
        return;
    }
    let domain = settings.domains.first().cloned().unwrap_or_else(|| {
        NameAddr::parse(&request.uri).map(|a| a.host.to_owned()).unwrap_or_else(|| "localhost".into())
    });
    let already = request
        .headers
        .named("Diversion")
        .filter_map(|v| NameAddr::parse(v).map(|a| (a.user.map(str::to_owned), a.host.to_owned())))
        .any(|(user, host)| user.as_deref() == Some(dialed) && host.eq_ignore_ascii_case(&domain));
    if !already {
        request.headers.push(Header { name: "Diversion".into(), value: format!("<sip:{dialed}@{domain}>") });
    }
}

/// Remove from a terminating INVITE to trunk `trunk` every Diversion that
/// names our domain with a number its account neither owns nor verified.
/// Returns how many went.
pub(crate) fn check_termination(settings: &Settings, trunk: usize, m: &mut Message) -> usize {
    let t = &settings.trunks[trunk];
    let mut domains: Vec<&str> = settings.domains.iter().map(String::as_str).collect();
    if let Some(term) = &t.termination {
        domains.push(&term.domain);
    }
    let ours = |host: &str| {
        let host = host.to_ascii_lowercase();
        domains.iter().any(|d| {
            let d = d.to_ascii_lowercase();
            host == d || host.strip_suffix(d.as_str()).is_some_and(|p| p.ends_with('.'))
        })
    };
    let account = &t.account;
    let allowed = |n: &str| {
        settings.account_owns(account, n)
            || settings
                .trunks
                .iter()
                .filter(|x| &x.account == account)
                .any(|x| x.termination.as_ref().is_some_and(|y| y.caller_ids.iter().any(|v| v == n)))
    };
    let before = m.headers.len();
    m.headers.retain(|h| {
        if !h.name.eq_ignore_ascii_case("Diversion") {
            return true;
        }
        // A header may list several values.
        match NameAddr::parse(&h.value) {
            Some(a) if ours(a.host) => a.user.is_some_and(allowed),
            _ => true,
        }
    });
    before - m.headers.len()
}
