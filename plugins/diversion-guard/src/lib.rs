//! `diversion-guard`: the reference Diversion check on termination, and the
//! Diversion header carrying the dialed number on origination. See README.md.

use trunkline_sdk::{
    config, log, metrics, numbers, policy, Call, Decision, DialDecision, Direction, HeaderEdit, InviteDecision,
    InviteEdits, NameAddr, Policy, Request, Target,
};

/// See the crate docs and README.md.
#[derive(Default)]
pub struct DiversionGuard;

/// Our own SIP domains: `domains` from the config, else the request-URI host
/// and its parent domain (`acme-prod.trunkline.test` -> `trunkline.test`).
fn our_domains(call: &Call) -> Vec<String> {
    let configured = config::texts("domains");
    if !configured.is_empty() {
        return configured;
    }
    let host = call.request_uri().host.to_ascii_lowercase();
    let mut domains = vec![host.clone()];
    if host.matches('.').count() >= 2 {
        if let Some((_, parent)) = host.split_once('.') {
            domains.push(parent.to_owned());
        }
    }
    domains
}

fn is_ours(host: &str, domains: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    domains.iter().any(|d| host == *d || host.strip_suffix(d.as_str()).is_some_and(|p| p.ends_with('.')))
}

/// A Diversion header is kept unless it names our domain with a number the
/// account neither owns nor has verified.
fn keep(value: &str, domains: &[String]) -> bool {
    match NameAddr::parse(value) {
        Some(a) if is_ours(a.host, domains) => {
            a.user.is_some_and(|n| numbers::is_owned(n) || numbers::is_verified_caller_id(n))
        }
        _ => true,
    }
}

#[policy]
impl Policy for DiversionGuard {
    fn on_invite(&self, call: &Call, _request: &Request) -> InviteDecision {
        if !matches!(call.direction(), Direction::Termination) {
            return Decision::proceed();
        }
        let all = call.headers_named("Diversion");
        if all.is_empty() {
            return Decision::proceed();
        }
        let domains = our_domains(call);
        let kept: Vec<&str> = all.iter().map(String::as_str).filter(|v| keep(v, &domains)).collect();
        if kept.len() == all.len() {
            return Decision::proceed();
        }
        let removed = all.len() - kept.len();
        metrics::counter("diversion_removed", removed as u64);
        log::info(&format!("removed {removed} Diversion header(s) naming our domain with a foreign number"));
        let mut edits = InviteEdits::new().remove_header("Diversion");
        for v in kept {
            edits = edits.add_header("Diversion", v);
        }
        Decision::edit(edits)
    }

    fn pre_dial(&self, call: &Call, request: &Request, _target: &Target) -> DialDecision {
        if !matches!(call.direction(), Direction::Origination) {
            return DialDecision::Continue;
        }
        let Some(dialed) = call.request_uri().user.as_deref().or(call.to().user.as_deref()) else {
            return DialDecision::Continue;
        };
        let domain = config::text("origination_domain").unwrap_or_else(|| call.request_uri().host.clone());
        let already = request
            .headers_named("Diversion")
            .iter()
            .filter_map(|v| NameAddr::parse(v))
            .any(|a| a.user == Some(dialed) && a.host.eq_ignore_ascii_case(&domain));
        if already {
            return DialDecision::Continue;
        }
        DialDecision::edit(vec![HeaderEdit::add("Diversion", format!("<sip:{dialed}@{domain}>"))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_sdk::testing::{CallBuilder, Harness};
    use trunkline_sdk::Header;

    fn diversions_after(call: &Call) -> Option<Vec<String>> {
        match DiversionGuard.on_invite(call, &CallBuilder::request_for(call)) {
            InviteDecision::Continue => None,
            InviteDecision::Edit(e) => Some(
                e.headers
                    .into_iter()
                    .filter_map(|h| match h {
                        HeaderEdit::Add(Header { value, .. }) => Some(value),
                        _ => None,
                    })
                    .collect(),
            ),
            other => panic!("unexpected decision {other:?}"),
        }
    }

    #[test]
    fn foreign_number_at_our_domain_is_removed() {
        let _h = Harness::new();
        let call = CallBuilder::termination()
            .header("Diversion", "<sip:+19995550000@trunkline.test>;reason=unconditional")
            .build();
        assert_eq!(diversions_after(&call), Some(vec![]));
    }

    #[test]
    fn owned_or_verified_numbers_are_kept() {
        let h = Harness::new();
        h.own_number("+14155550100");
        h.verify_caller_id("+14155550199");
        let call = CallBuilder::termination()
            .header("Diversion", "<sip:+14155550100@trunkline.test>")
            .header("Diversion", "<sip:+14155550199@acme-prod.trunkline.test>")
            .build();
        assert_eq!(diversions_after(&call), None);
    }

    #[test]
    fn other_domains_are_forwarded_and_order_kept() {
        let h = Harness::new();
        let call = CallBuilder::termination()
            .header("Diversion", "<sip:+19995550000@carrier.example>")
            .header("Diversion", "<sip:+19995550001@trunkline.test>")
            .header("Diversion", "<sip:+19995550002@other.example>")
            .build();
        assert_eq!(
            diversions_after(&call),
            Some(vec!["<sip:+19995550000@carrier.example>".into(), "<sip:+19995550002@other.example>".into()])
        );
        assert_eq!(h.counter("diversion_removed"), 1);
    }

    #[test]
    fn configured_domains_replace_the_default() {
        let h = Harness::new();
        h.set_config(r#"domains = ["example.net"]"#);
        let call = CallBuilder::termination()
            .header("Diversion", "<sip:+19995550000@trunkline.test>")
            .header("Diversion", "<sip:+19995550001@pbx.example.net>")
            .build();
        assert_eq!(diversions_after(&call), Some(vec!["<sip:+19995550000@trunkline.test>".into()]));
    }

    #[test]
    fn origination_adds_diversion_with_dialed_number_once() {
        let _h = Harness::new();
        let call = CallBuilder::origination().to("+14155550100").build();
        let mut req = CallBuilder::request_for(&call);
        let target = Target::new("sip:127.0.0.1:5080");
        let d = DiversionGuard.pre_dial(&call, &req, &target);
        let DialDecision::Edit(edits) = d else { panic!("expected an edit, got {d:?}") };
        assert_eq!(edits, vec![HeaderEdit::add("Diversion", "<sip:+14155550100@trunkline.test>")]);
        req.headers.push(Header::new("Diversion", "<sip:+14155550100@trunkline.test>"));
        assert_eq!(DiversionGuard.pre_dial(&call, &req, &target), DialDecision::Continue);
    }
}
