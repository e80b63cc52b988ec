//! What a configuration reload changes: refused if it touches what only a
//! restart can apply (listeners, certificates, the admin listener, the
//! media relay, the store), else a summary for the audit log (trunks,
//! numbers, targets, credentials by user name only, never a secret).

use std::collections::BTreeSet;

use super::{MediaMode, Settings, Trunk};

/// `new` may replace `old` while calls go on: what changed, in words (empty:
/// nothing), or why it cannot be applied live.
pub fn live_change(old: &Settings, new: &Settings) -> Result<Vec<String>, String> {
    let restart = |what: &str| Err(format!("{what} cannot change while the router runs: restart it to apply"));
    if old.listen != new.listen {
        return restart("sip.listen");
    }
    if old.tls != new.tls {
        return restart("sip.tls");
    }
    if old.streams != new.streams {
        return restart("the TCP connection limits (sip.max_connections...)");
    }
    if old.admin != new.admin || old.admin_tokens != new.admin_tokens || old.admin_tls != new.admin_tls {
        return restart("[admin]");
    }
    if old.plugins != new.plugins {
        return restart("[plugins]");
    }
    if old.dns_servers != new.dns_servers {
        return restart("sip.dns_servers");
    }
    if old.media != new.media {
        return restart("[media]");
    }
    if old.store != new.store {
        return restart("[store]");
    }
    if old.records != new.records {
        return restart("[records]");
    }
    let relayed = |s: &Settings| s.trunks.iter().any(|t| t.media == MediaMode::Relay);
    if relayed(new) && !relayed(old) {
        return Err("a trunk now relays media but the media relay was not started (no trunk relayed at start): restart the router to apply".into());
    }
    let mut changes = Vec::new();
    let mut scalar = |key: &str, a: String, b: String| {
        if a != b {
            changes.push(format!("{key}: {a} -> {b}"));
        }
    };
    scalar("sip.domains", format!("{:?}", old.domains), format!("{:?}", new.domains));
    scalar("sip.failover_timeout_ms", old.failover_timeout_ms.to_string(), new.failover_timeout_ms.to_string());
    scalar("sip.ring_timeout_ms", old.ring_timeout_ms.to_string(), new.ring_timeout_ms.to_string());
    scalar("sip.drain_timeout_secs", old.drain_timeout.as_secs().to_string(), new.drain_timeout.as_secs().to_string());
    if old.limits != new.limits {
        changes.push("[limits] changed".into());
    }
    if old.nonce_secret != new.nonce_secret {
        changes
            .push("auth.nonce_secret_file: another secret (nonces made with the old one are challenged again)".into());
    }
    if old.disaster_recovery != new.disaster_recovery {
        changes.push("[disaster_recovery] changed".into());
    }
    for c in &new.carriers {
        match old.carriers.iter().find(|o| o.name == c.name) {
            None => changes.push(format!("carrier {} added ({} gateway(s))", c.name, c.gateways.len())),
            Some(o) if o.health_check_interval != c.health_check_interval => {
                changes.push(format!("carrier {}: health_check_interval_secs changed", c.name))
            }
            Some(o) if o.gateways != c.gateways => {
                changes.push(format!("carrier {}: gateways {}", c.name, delta(&o.gateways, &c.gateways)))
            }
            Some(_) => {}
        }
    }
    for o in old.carriers.iter().filter(|o| !new.carriers.iter().any(|c| c.name == o.name)) {
        changes.push(format!("carrier {} removed", o.name));
    }
    for t in &new.trunks {
        match old.trunks.iter().find(|o| o.name == t.name) {
            None => changes.push(format!(
                "trunk {} added ({} number(s), {} target(s))",
                t.name,
                new.numbers.count_of(new.trunks.iter().position(|x| x.name == t.name).unwrap_or(usize::MAX)),
                t.origination.len()
            )),
            Some(o) => trunk_changes(o, t, old, new, &mut changes),
        }
    }
    for o in old.trunks.iter().filter(|o| !new.trunks.iter().any(|t| t.name == o.name)) {
        changes.push(format!("trunk {} removed", o.name));
    }
    number_changes(old, new, &mut changes);
    Ok(changes)
}

fn trunk_changes(o: &Trunk, t: &Trunk, old: &Settings, new: &Settings, out: &mut Vec<String>) {
    let name = &t.name;
    let targets = |t: &Trunk| -> Vec<String> {
        t.origination
            .iter()
            .map(|x| {
                let off = if x.enabled { "" } else { " disabled" };
                format!("{} (priority {}, weight {}{off})", x.uri, x.priority, x.weight)
            })
            .collect()
    };
    if targets(o) != targets(t) {
        out.push(format!("trunk {name}: origination targets {}", delta(&targets(o), &targets(t))));
    }
    let chain = |t: &Trunk| format!("{:?}", t.chain);
    if chain(o) != chain(t) {
        let names = |t: &Trunk| t.chain.entries.iter().map(|e| e.plugin.to_string()).collect::<Vec<_>>().join(", ");
        out.push(format!("trunk {name}: plugins [{}] -> [{}] (or their config)", names(o), names(t)));
    }
    match (&o.termination, &t.termination) {
        (None, Some(_)) => out.push(format!("trunk {name}: termination added")),
        (Some(_), None) => out.push(format!("trunk {name}: termination removed")),
        (Some(a), Some(b)) => {
            let users = |x: &super::Termination| x.credentials.iter().map(|c| c.username.clone()).collect::<Vec<_>>();
            let (ua, ub) = (users(a), users(b));
            let mut creds: Vec<String> = Vec::new();
            if ua != ub {
                creds.push(delta(&ua, &ub));
            }
            for c in &b.credentials {
                if a.credentials.iter().any(|x| x.username == c.username && x.password != c.password) {
                    creds.push(format!("{}'s password", c.username));
                }
            }
            if !creds.is_empty() {
                out.push(format!("trunk {name}: credentials changed: {}", creds.join(", ")));
            }
            if a.acl != b.acl {
                out.push(format!("trunk {name}: termination ACL changed"));
            }
            let carrier = |s: &Settings, x: &super::Termination| s.carriers[x.carrier].name.clone();
            let (ca, cb) = (carrier(old, a), carrier(new, b));
            if a.domain != b.domain
                || ca != cb
                || a.caller_ids != b.caller_ids
                || a.digest_algorithms != b.digest_algorithms
            {
                out.push(format!("trunk {name}: termination settings changed"));
            }
        }
        (None, None) => {}
    }
    let other = |t: &Trunk| {
        (
            t.id.clone(),
            t.account.clone(),
            t.disaster_recovery_url.clone(),
            t.max_call_duration,
            t.call_transfer,
            t.diversion,
            t.media,
            t.symmetric_rtp,
            t.secure,
            t.recording,
            t.health_check_interval,
        )
    };
    if other(o) != other(t) {
        out.push(format!("trunk {name}: other settings changed"));
    }
}

/// `trunk T: numbers +[a, b] -[c]` for each trunk of `new` whose numbers
/// changed (`+[first ten...] (+N)` when more), and the labels changed.
fn number_changes(old: &Settings, new: &Settings, out: &mut Vec<String>) {
    fn names(s: &Settings) -> Vec<&str> {
        s.trunks.iter().map(|t| t.name.as_str()).collect()
    }
    let (old_names, new_names) = (names(old), names(new));
    for (trunk, d) in super::numbers::changes(&old.numbers, &old_names, &new.numbers, &new_names) {
        // A trunk added or removed is said so above; its numbers with it.
        if !new_names.contains(&trunk.as_str()) || !old_names.contains(&trunk.as_str()) {
            continue;
        }
        let list = |names: &[String], count: usize| {
            let more = if count > names.len() { format!(" ({count} in all)") } else { String::new() };
            format!("[{}]{more}", names.join(", "))
        };
        let mut parts = Vec::new();
        if d.added_count > 0 {
            parts.push(format!("+{}", list(&d.added, d.added_count)));
        }
        if d.removed_count > 0 {
            parts.push(format!("-{}", list(&d.removed, d.removed_count)));
        }
        if !parts.is_empty() {
            out.push(format!("trunk {trunk}: numbers {}", parts.join(" ")));
        }
        if d.relabelled > 0 {
            out.push(format!("trunk {trunk}: {} number label(s) changed", d.relabelled));
        }
    }
}

/// `+[a, b] -[c]`: what `new` has that `old` has not, and the reverse.
fn delta(old: &[String], new: &[String]) -> String {
    let (a, b): (BTreeSet<&String>, BTreeSet<&String>) = (old.iter().collect(), new.iter().collect());
    let join = |s: Vec<&&String>| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ");
    let added: Vec<_> = b.difference(&a).collect();
    let removed: Vec<_> = a.difference(&b).collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("+[{}]", join(added)));
    }
    if !removed.is_empty() {
        parts.push(format!("-[{}]", join(removed)));
    }
    if parts.is_empty() {
        "reordered".into()
    } else {
        parts.join(" ")
    }
}
