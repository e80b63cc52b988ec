//! `customer-routing`: route by called-number prefix, caller prefix and
//! time of day/week (in a configured zone) to named target groups, through
//! `select-uri`. See README.md for the config.

use trunkline_sdk::schedule::Window;
use trunkline_sdk::{clock, config, log, metrics, policy, Call, Policy, Selection, Target};

/// See the crate docs and README.md.
#[derive(Default)]
pub struct CustomerRouting;

/// One `[[rules]]` entry, read from the config.
struct Rule {
    prefix: Option<String>,
    caller_prefix: Option<String>,
    window: Window,
    group: String,
}

fn rule(i: u32) -> Result<Rule, String> {
    let at = |k: &str| format!("rules.{i}.{k}");
    let days = config::texts(&at("days"));
    let hours = config::text(&at("hours"));
    let window = Window::parse(&days, hours.as_deref()).map_err(|e| format!("rules[{i}]: {e}"))?;
    let group = config::text(&at("group")).ok_or_else(|| format!("rules[{i}]: `group` is required"))?;
    Ok(Rule { prefix: config::text(&at("prefix")), caller_prefix: config::text(&at("caller_prefix")), window, group })
}

fn starts(value: Option<&str>, prefix: &Option<String>) -> bool {
    match prefix {
        None => true,
        Some(p) => value.is_some_and(|v| v.starts_with(p.as_str())),
    }
}

/// The targets of group `name`, tried in the order written.
fn group(name: &str) -> Vec<Target> {
    config::texts(&format!("groups.{name}"))
        .into_iter()
        .enumerate()
        .map(|(i, uri)| Target {
            priority: (i as u16).saturating_mul(10),
            group: Some(name.to_owned()),
            ..Target::new(uri)
        })
        .collect()
}

#[policy]
impl Policy for CustomerRouting {
    fn select_uri(&self, call: &Call, _candidates: &[Target]) -> Selection {
        let zone = config::text("zone").unwrap_or_else(|| "UTC".into());
        let now = match clock::local_time(&zone) {
            Ok(t) => t,
            Err(e) => {
                log::warn(&format!("{e}; keeping the trunk's own routing"));
                return Selection::Default;
            }
        };
        let called = call.request_uri().user.as_deref();
        let caller = call.from().user.as_deref();
        for i in 0..config::len("rules") {
            let r = match rule(i) {
                Ok(r) => r,
                Err(e) => {
                    log::warn(&e);
                    continue;
                }
            };
            if starts(called, &r.prefix) && starts(caller, &r.caller_prefix) && r.window.contains(&now) {
                let targets = group(&r.group);
                if targets.is_empty() {
                    log::warn(&format!("rules[{i}] names group `{}` which has no URIs", r.group));
                    continue;
                }
                metrics::counter(&format!("group.{}", r.group), 1);
                log::info(&format!("rules[{i}] -> group {}", r.group));
                return Selection::Ordered(targets);
            }
        }
        Selection::Default
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_sdk::testing::{CallBuilder, Harness};

    const CONFIG: &str = r#"
        zone = "America/Los_Angeles"
        [groups]
        sales = ["sip:sales1.example", "sip:sales2.example"]
        night = ["sip:night.example"]
        vip = ["sip:vip.example"]
        [[rules]]
        caller_prefix = "+1212"
        group = "vip"
        [[rules]]
        prefix = "+1415"
        days = ["mon", "tue", "wed", "thu", "fri"]
        hours = "09:00-17:00"
        group = "sales"
        [[rules]]
        prefix = "+1415"
        group = "night"
    "#;

    fn uris(s: Selection) -> Vec<String> {
        match s {
            Selection::Ordered(t) => t.into_iter().map(|t| t.uri).collect(),
            other => panic!("expected ordered targets, got {other:?}"),
        }
    }

    fn route(from: &str, to: &str) -> Selection {
        let call = CallBuilder::origination().from(from).to(to).build();
        CustomerRouting.select_uri(&call, &[])
    }

    #[test]
    fn business_hours_in_the_configured_zone() {
        let h = Harness::new();
        h.set_config(CONFIG);
        h.set_time("2026-11-23T18:00:00Z"); // Monday 10:00 in Los Angeles
        assert_eq!(uris(route("+13105550000", "+14155550100")), ["sip:sales1.example", "sip:sales2.example"]);
        h.set_time("2026-11-24T02:00:00Z"); // Monday 18:00 in Los Angeles
        assert_eq!(uris(route("+13105550000", "+14155550100")), ["sip:night.example"]);
        assert_eq!(h.counter("group.sales"), 1);
    }

    #[test]
    fn caller_rules_come_first_and_order_priorities() {
        let h = Harness::new();
        h.set_config(CONFIG);
        let call = CallBuilder::origination().from("+12125550000").to("+14155550100").build();
        let Selection::Ordered(t) = CustomerRouting.select_uri(&call, &[]) else { panic!() };
        assert_eq!(t[0].uri, "sip:vip.example");
        assert_eq!(t[0].group.as_deref(), Some("vip"));
    }

    #[test]
    fn no_match_keeps_the_default() {
        let h = Harness::new();
        h.set_config(CONFIG);
        assert_eq!(route("+13105550000", "+16505550100"), Selection::Default);
    }

    #[test]
    fn bad_zone_keeps_the_default_and_warns() {
        let h = Harness::new();
        h.set_config("zone = \"Mars/Olympus\"\n[[rules]]\ngroup = \"x\"");
        assert_eq!(route("+13105550000", "+14155550100"), Selection::Default);
        assert!(h.logs().iter().any(|(_, m)| m.contains("Mars/Olympus")));
    }
}
