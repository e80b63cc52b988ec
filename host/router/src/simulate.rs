//! `trunkline simulate`: route one INVITE through a configuration offline,
//! with the real plugin chain and the reference routing algorithm, against
//! targets whose answers are given on the command line. Prints the route,
//! every hook with its decision, and the outcome.
//!
//! This is the routing brain of the B2BUA without the network: the SIP
//! engine drives the same steps with real transactions.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use trunkline_plugin_host::chain::{DialOutcome, InviteOutcome};
use trunkline_plugin_host::types::{
    Direction, Fallback, HangupBy, Outcome, RedirectDecision, Response, Summary, Target,
};
use trunkline_plugin_host::{LoadSource, Runtime};

use crate::config::{self, Settings};
use crate::plugin_cmd::read_message;
use crate::routing;
use crate::sipcall::{call_from_invite, CallOrigin};
use trunkline_sip_core::message::reason_phrase as reason;

/// How a simulated target answers: `URI-SUBSTRING=STATUS[:CONTACT]`.
#[derive(Clone, Debug)]
pub struct Answer {
    pub matches: String,
    pub status: u16,
    pub contact: Option<String>,
}

impl std::str::FromStr for Answer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (m, rest) = s.rsplit_once('=').ok_or("expected URI=STATUS[:CONTACT]")?;
        let (status, contact) = match rest.split_once(':') {
            Some((st, c)) => (st, Some(c.to_owned())),
            None => (rest, None),
        };
        let status: u16 = status.parse().map_err(|_| format!("`{status}` is not a status code"))?;
        if !(100..=699).contains(&status) || status < 200 {
            return Err(format!("{status} is not a final status (200..=699)"));
        }
        Ok(Answer { matches: m.into(), status, contact })
    }
}

/// Options of `simulate`.
pub struct SimArgs {
    pub config: PathBuf,
    pub request: PathBuf,
    pub answers: Vec<Answer>,
    pub seed: Option<u64>,
}

/// Most redirects followed for one call.
const MAX_REDIRECTS: usize = 3;

fn answer_for(answers: &[Answer], uri: &str) -> (u16, Option<String>) {
    answers.iter().find(|a| uri.contains(&a.matches)).map(|a| (a.status, a.contact.clone())).unwrap_or((200, None))
}

/// Load the configuration and its plugins into a runtime.
pub fn runtime_for(settings: &Settings) -> anyhow::Result<Runtime> {
    let opts = trunkline_plugin_host::RuntimeOptions {
        cache_dir: settings.plugins.cache_dir.clone(),
        audit_path: settings.plugins.audit_log.clone(),
        numbers: std::sync::Arc::new(settings.directory()),
        engine: trunkline_plugin_host::EngineOptions {
            max_live_instances: settings.plugins.max_live_instances,
            ..Default::default()
        },
        prewarm: settings.plugins.prewarm as usize,
        ..Default::default()
    };
    let rt = Runtime::new(opts).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = &settings.plugins.dir;
    for (path, r) in rt.load_dir(dir, LoadSource::Startup).with_context(|| format!("plugins.dir {}", dir.display()))? {
        if let Err(e) = r {
            eprintln!("warning: {} not loaded: {e}", path.display());
        }
    }
    for t in &settings.trunks {
        for e in &t.chain.entries {
            if rt.plugin(&e.plugin).is_none() {
                anyhow::bail!(
                    "trunk `{}` names plugin `{}`, but {} has no loadable {}.wasm",
                    t.name,
                    e.plugin,
                    dir.display(),
                    e.plugin
                );
            }
        }
    }
    Ok(rt)
}

/// Route one INVITE and print what happened.
pub fn simulate(args: SimArgs) -> anyhow::Result<()> {
    let settings = config::load(&args.config)?;
    let rt = runtime_for(&settings)?;
    let m = read_message(&args.request)?;
    let mut seed = args
        .seed
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1))
        | 1;
    let mut rand01 = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let ruri_user = match &m.start {
        trunkline_sip_core::StartLine::Request { uri, .. } => crate::sipcall::party(uri).and_then(|p| p.user),
        _ => None,
    };
    let Some(trunk) = ruri_user.as_deref().and_then(|u| settings.trunk_for_number(u)) else {
        println!("outcome: 404 Not Found (no trunk owns {})", ruri_user.as_deref().unwrap_or("that number"));
        return Ok(());
    };
    let origin = CallOrigin {
        direction: Direction::Origination,
        account_id: &trunk.account,
        trunk_id: &trunk.id,
        trunk_name: &trunk.name,
        source_address: "127.0.0.1:5070".into(),
        transport: trunkline_plugin_host::types::Transport::Udp,
        media: crate::sipcall::media_facts(trunk, &m.body),
    };
    let (mut call, mut request) = call_from_invite(&m, &origin)?;
    println!(
        "call {}: {} -> {} on trunk {} ({})",
        call.call_id,
        call.from.user.as_deref().unwrap_or("anonymous"),
        call.to.user.as_deref().unwrap_or("?"),
        trunk.name,
        trunk.id
    );
    // As the router does before calls come: instances prepared on this
    // thread, so the hook times printed are those of a router below saturation.
    rt.prepare_for(&trunk.chain);
    while rt.work_while_idle() {}
    let mut session = rt.start_call(&trunk.chain, &trunk.account, &call.call_id.clone());
    let mut route: Vec<String> = Vec::new();
    let mut attempts = 0u32;
    let mut why: Option<String> = None;
    let (outcome, status, answered_by) = 'call: {
        match session.on_invite(&mut call, &mut request) {
            InviteOutcome::Reject(r) => {
                why = Some(r.reason.clone());
                break 'call (Outcome::Rejected, r.code, None);
            }
            InviteOutcome::Redirect(c) => {
                route.push(format!("302 Moved Temporarily to {}", c.join(", ")));
                break 'call (Outcome::Rejected, 302, None);
            }
            InviteOutcome::Continue => {}
        }
        let dialed = call.request_uri.user.clone().unwrap_or_default();
        let selected = match session.select_uri(&call, routing::candidates(&trunk.origination)) {
            Ok(s) => s,
            Err(r) => {
                why = Some(r.reason.clone());
                break 'call (Outcome::Rejected, r.code, None);
            }
        };
        let mut queue: Vec<Target> =
            if selected.ordered { selected.targets } else { routing::order(&selected.targets, &mut rand01) };
        let mut last: Option<Response> = None;
        let mut redirects = 0;
        while !queue.is_empty() {
            let target = queue.remove(0);
            let (uri, x_headers) = routing::request_uri(&target.uri, &dialed);
            let mut outgoing = request.clone();
            outgoing.uri = uri.clone();
            for (n, v) in x_headers {
                outgoing.headers.push(trunkline_plugin_host::types::Header { name: n, value: v });
            }
            // As the engine: the host's Diversion before `pre-dial`.
            crate::engine::diversion::add_dialed(&settings, trunk, &dialed, &mut outgoing);
            match session.pre_dial(&call, &mut outgoing, &target) {
                Ok(DialOutcome::Skip) => {
                    route.push(format!("{uri}: skipped by a plugin"));
                    continue;
                }
                Err(r) => {
                    why = Some(r.reason.clone());
                    break 'call (Outcome::Rejected, r.code, None);
                }
                Ok(DialOutcome::Send) => {}
            }
            attempts += 1;
            let (st, contact) = answer_for(&args.answers, &uri);
            let added: Vec<String> = outgoing
                .headers
                .iter()
                .filter(|h| !request.headers.contains(h))
                .map(|h| format!("{}: {}", h.name, h.value))
                .collect();
            let extra = if added.is_empty() { String::new() } else { format!(" [{}]", added.join("; ")) };
            route.push(format!("INVITE {uri}{extra} -> {st} {}", reason(st)));
            let resp = Response::from(trunkline_plugin_host::types::ResponseRecord {
                status: st,
                reason: reason(st).into(),
                contacts: contact.clone().into_iter().collect(),
            });
            if (200..300).contains(&st) {
                break 'call (Outcome::Answered, st, Some(uri));
            }
            if (300..400).contains(&st) {
                let follow = match session.on_redirect(&call, &resp) {
                    RedirectDecision::Default => resp.contacts.first().cloned(),
                    RedirectDecision::Follow(u) => Some(u),
                    RedirectDecision::NextTarget => None,
                    RedirectDecision::Reject(r) => {
                        why = Some(r.reason.clone());
                        break 'call (Outcome::Rejected, r.code, None);
                    }
                };
                let ours = |u: &str| {
                    crate::sipcall::party(u)
                        .is_some_and(|p| settings.domains.iter().any(|d| d.eq_ignore_ascii_case(&p.host)))
                };
                match follow {
                    Some(u) if redirects < MAX_REDIRECTS && !ours(&u) => {
                        redirects += 1;
                        queue.insert(0, Target { uri: u, ..target.clone() });
                    }
                    Some(u) => route.push(format!("redirect to {u} refused (our own domain or too deep)")),
                    None => {}
                }
                last = Some(resp);
                continue;
            }
            last = Some(resp);
            if !routing::fails_over(st) {
                break 'call (Outcome::Failed, st, None);
            }
        }
        match session.on_failure(&call, last.as_ref()) {
            Fallback::Reject(r) => {
                why = Some(r.reason.clone());
                (Outcome::Rejected, r.code, None)
            }
            Fallback::TwimlUrl(u) => {
                route.push(format!("disaster recovery: TwiML from {u} (simulate does not fetch it; `trunkline run` fetches and executes it)"));
                (Outcome::Failed, last.map(|l| l.status).unwrap_or(503), None)
            }
            Fallback::TwimlDocument(d) => {
                let verbs = match crate::twiml::parse(&d) {
                    Ok(v) => format!("{v:?}"),
                    Err(e) => format!("not executable: {e}"),
                };
                route.push(format!(
                    "disaster recovery: inline TwiML {verbs} (executed by `trunkline run`, not by simulate)"
                ));
                (Outcome::Failed, last.map(|l| l.status).unwrap_or(503), None)
            }
            Fallback::Default => {
                if let Some(u) = &trunk.disaster_recovery_url {
                    route.push(format!("disaster recovery: TwiML from {u} (simulate does not fetch it; `trunkline run` fetches and executes it)"));
                }
                (Outcome::Failed, last.map(|l| l.status).unwrap_or(480), None)
            }
        }
    };
    let summary = Summary {
        outcome,
        status,
        target_uri: answered_by.clone(),
        pdd_ms: None,
        duration_ms: 0,
        hangup_by: if answered_by.is_some() { HangupBy::Caller } else { HangupBy::None },
        attempts,
    };
    let trace = session.on_call_end(&call, &summary);
    println!("  hooks:");
    for t in &trace {
        println!("    {:<18} {:<12} {:<12} {} ({} us)", t.plugin, t.version, t.hook, t.outcome, t.micros);
    }
    println!("  route:");
    for r in &route {
        println!("    {r}");
    }
    if route.is_empty() {
        println!("    (no target tried)");
    }
    let what = match outcome {
        Outcome::Answered => format!("answered ({status}) by {}", answered_by.unwrap_or_default()),
        Outcome::Rejected => {
            format!("rejected {status} {}", why.filter(|w| !w.is_empty()).as_deref().unwrap_or(reason(status)))
        }
        Outcome::Failed => format!("failed {status} {}", reason(status)),
        Outcome::Cancelled => "cancelled".into(),
    };
    println!("  outcome: {what}");
    Ok(())
}
