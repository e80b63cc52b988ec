//! `e164-guard`: calls must use E.164 numbers and a caller ID that is not
//! toll-free (termination calls by default; `directions` in the config). See README.md for the config.

use trunkline_sdk::{config, metrics, policy, Call, Decision, InviteDecision, NameAddr, Policy, Request, E164};

/// Rejects termination calls whose To/request-URI/caller are not E.164 (400)
/// and toll-free caller IDs (403), in the configured directions.
#[derive(Default)]
pub struct E164Guard;

/// The caller's number: From, else Remote-Party-ID, else P-Asserted-Identity.
fn caller_number(call: &Call) -> Option<String> {
    if let Some(user) = &call.from().user {
        if user.starts_with('+') || user.bytes().any(|b| b.is_ascii_digit()) {
            return Some(user.clone());
        }
    }
    ["Remote-Party-ID", "P-Asserted-Identity"].iter().find_map(|h| {
        let value = call.header(h)?;
        NameAddr::parse(&value)?.user.map(str::to_owned)
    })
}

#[policy]
impl Policy for E164Guard {
    fn on_invite(&self, call: &Call, _request: &Request) -> InviteDecision {
        if !config::applies_to(call.direction(), &["termination"]) {
            return Decision::proceed();
        }
        let reject = |code, why: &str, metric: &str| {
            metrics::counter(metric, 1);
            Decision::reject(code, why)
        };
        if call.to().number().is_none() {
            return reject(400, "To is not an E.164 number", "rejected_not_e164");
        }
        if call.request_uri().number().is_none() {
            return reject(400, "Request-URI is not an E.164 number", "rejected_not_e164");
        }
        let Some(caller) = caller_number(call).as_deref().and_then(E164::parse) else {
            return reject(400, "Caller ID is not an E.164 number", "rejected_not_e164");
        };
        if caller.is_toll_free() && !config::boolean("allow_toll_free_caller_id").unwrap_or(false) {
            return reject(403, "Toll-free caller ID not allowed", "rejected_toll_free");
        }
        Decision::proceed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_sdk::testing::{CallBuilder, Harness};

    fn decide(call: &Call) -> InviteDecision {
        E164Guard.on_invite(call, &CallBuilder::request_for(call))
    }

    fn code(d: InviteDecision) -> Option<u16> {
        match d {
            InviteDecision::Reject(r) => Some(r.code),
            _ => None,
        }
    }

    #[test]
    fn e164_termination_passes() {
        let _h = Harness::new();
        let call = CallBuilder::termination().from("+14155550199").to("+12125550123").build();
        assert_eq!(code(decide(&call)), None);
    }

    #[test]
    fn national_format_to_is_400() {
        let h = Harness::new();
        let call = CallBuilder::termination().to("2125550123").build();
        assert_eq!(code(decide(&call)), Some(400));
        assert_eq!(h.counter("rejected_not_e164"), 1);
    }

    #[test]
    fn toll_free_caller_is_403_unless_allowed() {
        let h = Harness::new();
        let call = CallBuilder::termination().from("+18005550100").to("+12125550123").build();
        assert_eq!(code(decide(&call)), Some(403));
        h.set_config("allow_toll_free_caller_id = true");
        assert_eq!(code(decide(&call)), None);
    }

    #[test]
    fn anonymous_from_uses_p_asserted_identity() {
        let _h = Harness::new();
        let call = CallBuilder::termination()
            .from("anonymous")
            .to("+12125550123")
            .header("P-Asserted-Identity", "<sip:+18885550100@pbx.example>")
            .build();
        assert_eq!(code(decide(&call)), Some(403));
    }

    #[test]
    fn origination_is_checked_only_when_configured() {
        let h = Harness::new();
        h.set_config(r#"directions = ["origination", "termination"]"#);
        let call = CallBuilder::origination().from("anonymous").to("+14155550100").build();
        assert_eq!(code(decide(&call)), Some(400));
    }

    #[test]
    fn origination_is_not_checked() {
        let _h = Harness::new();
        let call = CallBuilder::origination().from("anonymous").to("4155550100").build();
        assert_eq!(code(decide(&call)), None);
    }
}
