//! `trunkline plugin check` and `trunkline plugin run`: the plugin author's
//! loop, with no SIP network.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use trunkline_plugin_host::types::{Direction, Fallback, HangupBy, Outcome, RedirectDecision, Summary};
use trunkline_plugin_host::{Chain, ChainEntry, Limits, PluginConfig, Runtime, RuntimeOptions};
use trunkline_sip_core::Message;

use crate::routing;
use crate::sipcall::{call_from_invite, response_from, CallOrigin};

/// Validate a component against the world and print what it is.
pub fn check(file: &Path) -> anyhow::Result<()> {
    let rt = Runtime::new(RuntimeOptions::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let p = rt.check_file(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let l = Limits::default();
    println!("plugin:   {}", p.info.name);
    println!("version:  {} (sha256 {})", p.info.version, p.info.sha256);
    println!("size:     {} bytes", p.info.size_bytes);
    println!("world:    trunkline:policy@{} (ok)", trunkline_plugin_host::WORLD_VERSION);
    println!("exports:  {}", p.info.exports.join(", "));
    println!("hooks:    {} (the others are not called)", p.hook_names().join(", "));
    println!("imports:");
    for i in &p.info.imports {
        println!("  {i}");
    }
    println!(
        "limits:   hook {} ms, memory {} MiB, {} instances, {} tables, failure mode {:?}, quarantine after {} failures for {} s (defaults; set per trunk)",
        l.hook_timeout_ms,
        l.memory_bytes >> 20,
        l.max_instances,
        l.max_tables,
        l.failure_mode,
        l.quarantine_after,
        l.quarantine_secs
    );
    Ok(())
}

/// Options of `plugin run`.
pub struct RunArgs {
    pub file: PathBuf,
    pub hook: String,
    pub request: PathBuf,
    pub response: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub direction: Direction,
    pub targets: Vec<String>,
    pub owned: Vec<String>,
}

pub fn read_message(path: &Path) -> anyhow::Result<Message> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // Files written by hand use LF; SIP wants CRLF.
    let normalised = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let mut bytes = normalised.into_bytes();
    if !bytes.ends_with(b"\r\n\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    Message::parse(&bytes).with_context(|| format!("{} is not a SIP message", path.display()))
}

/// Run one hook offline and print the decision.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut dir = trunkline_plugin_host::services::StaticDirectory::default();
    let acct = dir.accounts.entry("AC-local".into()).or_default();
    for n in &args.owned {
        acct.owned.insert(n.clone(), None);
    }
    let rt = Runtime::new(RuntimeOptions { numbers: Arc::new(dir), ..RuntimeOptions::default() })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let loaded =
        rt.load_file(&args.file, trunkline_plugin_host::LoadSource::Cli).map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            PluginConfig(text.parse().with_context(|| format!("{} is not TOML", p.display()))?)
        }
        None => PluginConfig::default(),
    };
    let chain = Chain {
        entries: vec![ChainEntry {
            plugin: loaded.info.name.as_str().into(),
            config: Arc::new(config),
            limits: Limits::default(),
        }],
    };
    let m = read_message(&args.request)?;
    let origin = CallOrigin {
        direction: args.direction,
        account_id: "AC-local",
        trunk_id: "TK00000000000000000000000000000000",
        trunk_name: "local",
        source_address: "127.0.0.1:5070".into(),
        transport: trunkline_plugin_host::types::Transport::Udp,
        media: trunkline_plugin_host::types::MediaFacts {
            anchored: true,
            secure: false,
            codecs: trunkline_media_core::sdp::Sdp::parse(&m.body).map(|s| s.audio_codecs().0).unwrap_or_default(),
            recording: false,
        },
    };
    let (mut call, mut request) = call_from_invite(&m, &origin)?;
    let mut s = rt.start_call(&chain, "AC-local", &call.call_id.clone());
    let targets = || -> Vec<_> {
        args.targets
            .iter()
            .map(|u| trunkline_plugin_host::types::Target {
                uri: u.clone(),
                priority: 10,
                weight: 1,
                enabled: true,
                transport: routing::transport_of(u),
                health: trunkline_plugin_host::types::Health::Unknown,
                group: None,
            })
            .collect()
    };
    println!("plugin {} version {}", loaded.info.name, loaded.info.version);
    if !loaded.hook_names().contains(&args.hook.as_str()) {
        println!(
            "note: the plugin does not implement {}; the host does not call it, so its default applies",
            args.hook
        );
    }
    match args.hook.as_str() {
        "on-invite" => {
            let out = s.on_invite(&mut call, &mut request);
            println!("decision: {out:?}");
            if !call.variables.is_empty() {
                println!(
                    "variables: {:?}",
                    call.variables.iter().map(|v| format!("{}={}", v.name, v.value)).collect::<Vec<_>>()
                );
            }
            print_request(&request);
        }
        "select-uri" => {
            let out = s.select_uri(&call, targets());
            println!("decision: {out:?}");
        }
        "pre-dial" => {
            let all = targets();
            let Some(t) = all.first() else { bail!("pre-dial needs --target URI") };
            let out = s.pre_dial(&call, &mut request, t);
            println!("decision: {out:?}");
            print_request(&request);
        }
        "on-redirect" => {
            let Some(p) = &args.response else { bail!("on-redirect needs --response FILE (a 3xx)") };
            let resp = response_from(&read_message(p)?).context("--response must be a SIP response")?;
            let out: RedirectDecision = s.on_redirect(&call, &resp);
            println!("decision: {out:?}");
        }
        "on-failure" => {
            let resp = match &args.response {
                Some(p) => Some(response_from(&read_message(p)?).context("--response must be a SIP response")?),
                None => None,
            };
            let out: Fallback = s.on_failure(&call, resp.as_ref());
            println!("decision: {out:?}");
        }
        "on-call-end" => {
            let summary = Summary {
                outcome: Outcome::Answered,
                status: 200,
                target_uri: args.targets.first().cloned(),
                pdd_ms: Some(0),
                duration_ms: 0,
                hangup_by: HangupBy::Caller,
                attempts: 1,
            };
            s.on_call_end(&call, &summary);
            println!("decision: (notification)");
        }
        other => {
            bail!("unknown hook `{other}` (on-invite, select-uri, pre-dial, on-redirect, on-failure, on-call-end)")
        }
    }
    for (plugin, name, value) in rt.services().metrics.counters() {
        println!("metric {plugin}.{name} = {value}");
    }
    Ok(())
}

fn print_request(r: &trunkline_plugin_host::types::Request) {
    println!("request after the hook:");
    println!("  {} {} SIP/2.0", r.method, r.uri);
    for h in &r.headers {
        println!("  {}: {}", h.name, h.value);
    }
}
