//! `GET /trunks`: the configuration as it is now (after any live reload)
//! with each probed target's health. Credentials by user name only.

use serde_json::{json, Value};

use crate::config::Settings;
use crate::engine::TargetHealth;

/// Most numbers listed per trunk (`number_count` says how many it has).
pub(super) const MAX_LISTED_NUMBERS: usize = 1000;

/// The trunks of `settings`, with `health` for the targets that are probed.
pub fn trunks_json(settings: &Settings, health: &[TargetHealth]) -> Value {
    let health_of = |uri: &str| -> Value {
        match health.iter().find(|h| h.uri == uri) {
            Some(h) => json!({
                "probed": true, "up": h.up, "pings": h.pings, "answers": h.answers, "last_status": h.last_status,
            }),
            None => json!({ "probed": false, "up": true }),
        }
    };
    let numbers = settings.numbers.by_trunk(MAX_LISTED_NUMBERS);
    let trunks: Vec<Value> = settings
        .trunks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let targets: Vec<Value> = t
                .origination
                .iter()
                .map(|o| {
                    json!({
                        "uri": o.uri, "priority": o.priority, "weight": o.weight, "enabled": o.enabled,
                        "health": health_of(&o.uri),
                    })
                })
                .collect();
            let termination = t.termination.as_ref().map(|x| {
                let carrier = &settings.carriers[x.carrier];
                json!({
                    "domain": x.domain,
                    "carrier": carrier.name,
                    "gateways": carrier.gateways.iter().map(|g| json!({ "uri": g, "health": health_of(g) })).collect::<Vec<_>>(),
                    "acl": x.acl.len(),
                    "credentials": x.credentials.iter().map(|c| c.username.clone()).collect::<Vec<_>>(),
                })
            });
            json!({
                "name": t.name,
                "id": t.id,
                "account": t.account,
                "numbers": numbers.get(i).cloned().unwrap_or_default(),
                "number_count": settings.numbers.count_of(i),
                "origination": targets,
                "termination": termination,
                "plugins": t.chain.entries.iter().map(|e| e.plugin.to_string()).collect::<Vec<_>>(),
                "media": format!("{:?}", t.media).to_lowercase(),
                "secure": t.secure,
                "recording": format!("{:?}", t.recording).to_lowercase(),
                "health_check_interval_secs": t.health_check_interval.map(|d| d.as_secs()),
            })
        })
        .collect();
    Value::Array(trunks)
}
