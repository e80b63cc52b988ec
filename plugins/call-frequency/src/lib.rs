//! `call-frequency`: at most so many calls to one number a day, a month
//! and in a rolling window of days (the outbound-calling rules of
//! ../shared/reference/compliance.md: 2 a day and 5 a month; 8 in 7 days
//! for debt collection). Counted per account in the plugin's kv, so every
//! router sharing the kv store counts together. See README.md.

use trunkline_sdk::counter::{Counter, Window};
use trunkline_sdk::kv::FailMode;
use trunkline_sdk::{clock, config, log, metrics, policy, Call, Decision, InviteDecision, Policy, Request};

/// Refuses a call when the called number has had its share.
#[derive(Default)]
pub struct CallFrequency;

/// One limit: at most `max` calls in `window` (`max` 0: no limit).
struct Rule {
    window: Window,
    max: u64,
    says: String,
}

/// A configured count, or the default; negative counts as 0 (off).
fn count(key: &str, default: i64) -> u64 {
    config::integer(key).unwrap_or(default).max(0) as u64
}

fn rules() -> Vec<Rule> {
    let days = config::integer("rolling_days").unwrap_or(7).clamp(1, 31) as u8;
    [
        (Window::Day, count("per_day", 2), "a day".to_owned()),
        (Window::Month, count("per_month", 5), "a month".to_owned()),
        (Window::Days(days), count("per_rolling_days", 8), format!("in {days} days")),
    ]
    .into_iter()
    .filter(|(_, max, _)| *max > 0)
    .map(|(window, max, says)| Rule { window, max, says })
    .collect()
}

#[policy]
impl Policy for CallFrequency {
    fn on_invite(&self, call: &Call, _request: &Request) -> InviteDecision {
        let rules = rules();
        if !config::applies_to(call.direction(), &["termination"]) || rules.is_empty() {
            return Decision::proceed();
        }
        // The dialed number (e164-guard refuses calls without one).
        let Some(number) = call.to().number().or_else(|| call.request_uri().number()) else {
            return Decision::proceed();
        };
        let zone = config::text("zone").unwrap_or_else(|| "UTC".into());
        let now = match clock::local_time(&zone) {
            Ok(now) => now,
            Err(e) => {
                log::warn(&format!("call-frequency: zone: {e}; calls are not counted"));
                return Decision::proceed();
            }
        };
        let counter = Counter::new(format!("calls:{number}"), now);
        let windows: Vec<Window> = rules.iter().map(|r| r.window).collect();
        let counts = match counter.add(&windows) {
            Ok(counts) => counts,
            Err(e) => return FailMode::from_config("on_kv_error", FailMode::Open).decide("call frequency", e),
        };
        let Some(broken) = rules.iter().zip(&counts).find(|(r, &n)| n > r.max).map(|(r, _)| r) else {
            return Decision::proceed();
        };
        // Refused calls do not count.
        let _ = counter.remove();
        metrics::counter("refused", 1);
        let code = config::integer("status").filter(|c| (400..=699).contains(c)).unwrap_or(403) as u16;
        let reason = config::text("reason")
            .unwrap_or_else(|| format!("Call frequency limit: {} calls {} to this number", broken.max, broken.says));
        Decision::reject(code, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_sdk::testing::{CallBuilder, Harness};

    fn call_to(to: &str) -> Option<(u16, String)> {
        let call = CallBuilder::termination().from("+14155550199").to(to).build();
        match CallFrequency.on_invite(&call, &CallBuilder::request_for(&call)) {
            InviteDecision::Reject(r) => Some((r.code, r.reason)),
            _ => None,
        }
    }

    #[test]
    fn two_a_day_then_refused_and_the_next_day_again() {
        let h = Harness::new();
        h.set_time("2026-12-01T15:00:00Z");
        assert_eq!(call_to("+12125550123"), None);
        assert_eq!(call_to("+12125550123"), None);
        let third = call_to("+12125550123").expect("the third call of the day is refused");
        assert_eq!(third, (403, "Call frequency limit: 2 calls a day to this number".into()));
        assert_eq!(call_to("+13105550100"), None, "another number counts on its own");
        assert_eq!(h.counter("refused"), 1);
        h.set_time("2026-12-02T09:00:00Z");
        assert_eq!(call_to("+12125550123"), None, "a new day");
    }

    #[test]
    fn five_a_month_and_refusals_do_not_count() {
        let h = Harness::new();
        for (day, refused_third) in [("01", true), ("02", true), ("03", false)] {
            h.set_time(&format!("2026-12-{day}T10:00:00Z"));
            assert_eq!(call_to("+12125550123"), None, "day {day}");
            if day != "03" {
                assert_eq!(call_to("+12125550123"), None, "day {day}");
                assert_eq!(call_to("+12125550123").is_some(), refused_third, "day {day}");
            }
        }
        // 2 + 2 + 1 = 5 this month: the sixth is refused, by the month's rule.
        let sixth = call_to("+12125550123").expect("over the month");
        assert!(sixth.1.contains("5 calls a month"), "{sixth:?}");
        h.set_time("2027-01-01T10:00:00Z");
        assert_eq!(call_to("+12125550123"), None, "a new month");
    }

    #[test]
    fn eight_in_seven_days_across_a_month_end_with_its_own_status() {
        let h = Harness::new();
        h.set_config("per_day = 3\nper_month = 0\nstatus = 486\nreason = \"Called too often\"");
        // 3 on Dec 29, 3 on Dec 30, 2 on Jan 2: eight in seven days.
        for (day, calls) in [("2026-12-29", 3), ("2026-12-30", 3), ("2027-01-02", 2)] {
            h.set_time(&format!("{day}T12:00:00Z"));
            for i in 0..calls {
                assert_eq!(call_to("+12125550123"), None, "{day} call {i}");
            }
        }
        assert_eq!(call_to("+12125550123"), Some((486, "Called too often".into())), "the ninth in seven days");
        // Jan 5: Dec 29 has left the window (Dec 30..Jan 5 hold 5).
        h.set_time("2027-01-05T12:00:00Z");
        assert_eq!(call_to("+12125550123"), None);
    }

    #[test]
    fn days_are_those_of_the_configured_zone_and_origination_is_left_alone() {
        let h = Harness::new();
        h.set_config("zone = \"America/New_York\"");
        // 23:30 and 00:30 UTC are both Dec 1 in New York.
        h.set_time("2026-12-01T23:30:00Z");
        assert_eq!(call_to("+12125550123"), None);
        h.set_time("2026-12-02T00:30:00Z");
        assert_eq!(call_to("+12125550123"), None);
        assert!(call_to("+12125550123").is_some(), "three on one New York day");
        let call = CallBuilder::origination().from("+12125550123").to("+14155550100").build();
        for _ in 0..5 {
            assert!(matches!(
                CallFrequency.on_invite(&call, &CallBuilder::request_for(&call)),
                InviteDecision::Continue
            ));
        }
    }

    #[test]
    fn a_store_that_cannot_answer_gets_the_configured_failure_mode() {
        let h = Harness::new();
        h.set_time("2026-12-01T15:00:00Z");
        h.set_kv_unavailable(true);
        assert_eq!(call_to("+12125550123"), None, "fail open by default");
        h.set_config("on_kv_error = \"refuse\"");
        assert_eq!(call_to("+12125550123"), Some((503, "call frequency cannot be checked now".into())));
        assert_eq!(h.counter("kv_failures"), 2);
        // Back: counting resumes (the uncounted calls are not in it).
        h.set_kv_unavailable(false);
        assert_eq!(call_to("+12125550123"), None);
        assert_eq!(call_to("+12125550123"), None);
        assert!(call_to("+12125550123").is_some(), "the third counted call of the day");
    }
}
