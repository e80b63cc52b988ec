//! One `[[trunk]]`: its name, id, numbers, plugin chain, origination URIs
//! and termination settings, checked against the rest of the file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;
use trunkline_plugin_host::{Chain, ChainEntry, Limits, PluginConfig};

use super::numbers::{IndexBuilder, Refused};
use super::raw::{RawNumber, RawTrunk};
use super::termination::{self, Carrier};
use super::{
    check_code, check_memory, check_timeout, hex_id, is_plugin_name, listens_on, ConfigError, Ctx, Listen, Origination,
    Trunk, DEFAULT_MAX_CALL_SECS, LONGEST_MAX_CALL_SECS, MAX_ORIGINATION_URIS,
};

/// What a trunk is checked against: the rest of the file.
pub(super) struct Around<'a> {
    pub(super) listen: &'a [Listen],
    /// The `[plugins]` limits, which a chain entry may override.
    pub(super) defaults: &'a Limits,
    pub(super) carriers: &'a [Carrier],
    /// The configuration file's folder (relative paths start there).
    pub(super) base: &'a Path,
}

impl Around<'_> {
    fn has_listener(&self, t: trunkline_sip_core::Transport) -> bool {
        listens_on(self.listen, t)
    }
}

/// Check trunk `ti` against `around` and the trunks before it (`earlier`);
/// Its numbers go into `numbers` (a number belongs to one trunk only;
/// `earlier` names the trunk that has it).
pub(super) fn trunk(
    cx: &Ctx<'_>,
    ti: usize,
    t: RawTrunk,
    around: &Around<'_>,
    earlier: &[Trunk],
    numbers: &mut IndexBuilder,
) -> Result<Trunk, ConfigError> {
    let tk = format!("trunk[{ti}]");
    let name = t.name.get_ref().clone();
    if name.is_empty() {
        return Err(cx.err(t.name.span(), format!("{tk}.name"), "must not be empty"));
    }
    if earlier.iter().any(|x: &Trunk| x.name == name) {
        return Err(cx.err(t.name.span(), format!("{tk}.name"), format!("trunk `{name}` is defined twice")));
    }
    let id = match &t.id {
        Some(id) => {
            let ok = id.get_ref().len() == 34
                && id.get_ref().starts_with("TK")
                && id.get_ref()[2..].bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(cx.err(id.span(), format!("{tk}.id"), "must be TK followed by 32 hex digits"));
            }
            id.get_ref().clone()
        }
        None => hex_id("TK", &format!("trunk:{name}")),
    };
    let account = t.account.clone().unwrap_or_else(|| hex_id("AC", &format!("account:{name}")));
    for (ni, n) in t.numbers.iter().enumerate() {
        let (number, label) = match n.get_ref() {
            RawNumber::Plain(s) => (s, None),
            RawNumber::Labelled { number, label } => (number, label.as_deref()),
        };
        let refused = |message| cx.err(n.span(), format!("{tk}.numbers[{ni}]"), message);
        match numbers.insert(number, ti, label) {
            Ok(()) => {}
            Err(Refused::NotE164) => return Err(refused(format!("`{number}` is not E.164 (+ and 7..15 digits)"))),
            Err(Refused::Taken(other)) => {
                let owner = earlier.get(other).map_or(name.as_str(), |t| t.name.as_str());
                return Err(refused(format!("{number} already belongs to trunk `{owner}`")));
            }
        }
    }
    if let Some(u) = &t.disaster_recovery_url {
        if let Err(e) = crate::twiml::fetch::HttpUrl::parse(u.get_ref()) {
            return Err(cx.err(u.span(), format!("{tk}.disaster_recovery_url"), e));
        }
    }
    if let Some(d) = t.allow_deprecated_tls.as_ref().filter(|d| *d.get_ref()) {
        return Err(cx.err(
            d.span(),
            format!("{tk}.allow_deprecated_tls"),
            "this router's TLS (rustls) offers TLS 1.2 and 1.3 only and cannot accept older versions; remove the key (refusing to start rather than pretend)",
        ));
    }
    let mut entries = Vec::new();
    for (pi, r) in t.plugins.into_iter().enumerate() {
        let key = format!("{tk}.plugins[{pi}]");
        if !is_plugin_name(r.name.get_ref()) {
            return Err(cx.err(
                r.name.span(),
                format!("{key}.name"),
                "plugin names are [a-z0-9_-], the file name without .wasm",
            ));
        }
        let mut limits = around.defaults.clone();
        if let Some(v) = &r.hook_timeout_ms {
            check_timeout(cx, v, &format!("{key}.hook_timeout_ms"))?;
            limits.hook_timeout_ms = *v.get_ref();
        }
        if let Some(v) = &r.memory_mb {
            check_memory(cx, v, &format!("{key}.memory_mb"))?;
            limits.memory_bytes = (*v.get_ref() as usize) << 20;
        }
        if let Some(v) = &r.fail_closed_code {
            check_code(cx, v, &format!("{key}.fail_closed_code"))?;
            limits.fail_closed_code = *v.get_ref();
        }
        if let Some(m) = r.failure_mode {
            limits.failure_mode = m;
        }
        entries.push(ChainEntry {
            plugin: r.name.into_inner().into(),
            config: Arc::new(PluginConfig(r.config)),
            limits,
        });
    }
    if t.origination.len() > MAX_ORIGINATION_URIS {
        let span = t.origination[MAX_ORIGINATION_URIS].uri.span();
        return Err(cx.err(
            span,
            format!("{tk}.origination"),
            format!("at most {MAX_ORIGINATION_URIS} origination URIs"),
        ));
    }
    let mut origination = Vec::new();
    for (oi, o) in t.origination.iter().enumerate() {
        let key = format!("{tk}.origination[{oi}]");
        let uri = o.uri.get_ref();
        let lower = uri.to_ascii_lowercase();
        if !(lower.starts_with("sip:") || lower.starts_with("sips:")) || uri.contains([' ', '<', '>']) || uri.len() < 5
        {
            return Err(cx.err(o.uri.span(), format!("{key}.uri"), format!("`{uri}` is not a sip: or sips: URI")));
        }
        match trunkline_sip_core::Transport::of_uri(uri) {
            None => return Err(cx.err(o.uri.span(), format!("{key}.uri"), "unknown transport (udp, tcp or tls)")),
            Some(trunkline_sip_core::Transport::Tls) if !around.has_listener(trunkline_sip_core::Transport::Tls) => {
                return Err(cx.err(
                    o.uri.span(),
                    format!("{key}.uri"),
                    "a TLS target (sips: or ;transport=tls) needs a tls:// listener in sip.listen",
                ));
            }
            Some(trunkline_sip_core::Transport::Tcp) if !around.has_listener(trunkline_sip_core::Transport::Tcp) => {
                return Err(cx.err(
                    o.uri.span(),
                    format!("{key}.uri"),
                    "a ;transport=tcp target needs a tcp:// listener in sip.listen",
                ));
            }
            Some(trunkline_sip_core::Transport::Udp) if !around.has_listener(trunkline_sip_core::Transport::Udp) => {
                return Err(cx.err(
                    o.uri.span(),
                    format!("{key}.uri"),
                    "a UDP target needs a udp:// listener in sip.listen",
                ));
            }
            Some(_) => {}
        }
        if crate::engine::uri_destination(uri).is_none() {
            return Err(cx.err(
                o.uri.span(),
                format!("{key}.uri"),
                format!("`{uri}`: the host is neither an IP address nor a DNS name"),
            ));
        }
        let tls = trunkline_sip_core::Transport::of_uri(uri) == Some(trunkline_sip_core::Transport::Tls);
        if t.secure.as_ref().is_some_and(|s| *s.get_ref()) && !tls {
            return Err(cx.err(
                o.uri.span(),
                format!("{key}.uri"),
                "a secure trunk's PBX is reached over TLS: use sips: or ;transport=tls",
            ));
        }
        if *o.weight.get_ref() == 0 {
            return Err(cx.err(o.weight.span(), format!("{key}.weight"), "must be 1..=65535"));
        }
        origination.push(Origination {
            uri: uri.clone(),
            priority: o.priority,
            weight: *o.weight.get_ref(),
            enabled: o.enabled,
        });
    }
    let termination = match &t.termination {
        Some(raw) => {
            let term = termination::termination(cx, &tk, raw, around.carriers, around.base)?;
            if let Some(other) =
                earlier.iter().find(|x: &&Trunk| x.termination.as_ref().is_some_and(|o| o.domain == term.domain))
            {
                return Err(cx.err(
                    raw.domain_span(),
                    format!("{tk}.termination.domain"),
                    format!("already the termination domain of trunk `{}`", other.name),
                ));
            }
            Some(term)
        }
        None => None,
    };
    let secure = match &t.secure {
        Some(s) if *s.get_ref() && t.media == super::MediaMode::Passthrough => {
            return Err(cx.err(
                s.span(),
                format!("{tk}.secure"),
                "a secure trunk needs media = \"relay\" (the router enforces SRTP on the PBX's leg)",
            ));
        }
        Some(s) => *s.get_ref(),
        None => false,
    };
    let recording = match &t.recording {
        Some(r) if *r.get_ref() != super::RecordingMode::Off && t.media == super::MediaMode::Passthrough => {
            return Err(cx.err(
                r.span(),
                format!("{tk}.recording"),
                "recording needs media = \"relay\" (the router records what it relays)",
            ));
        }
        Some(r) => *r.get_ref(),
        None => super::RecordingMode::Off,
    };
    let max_call_duration = match &t.max_call_duration_secs {
        None => Duration::from_secs(DEFAULT_MAX_CALL_SECS),
        Some(v) if (60..=LONGEST_MAX_CALL_SECS).contains(v.get_ref()) => Duration::from_secs(*v.get_ref()),
        Some(v) => {
            return Err(cx.err(
                v.span(),
                format!("{tk}.max_call_duration_secs"),
                format!("must be 60..={LONGEST_MAX_CALL_SECS} (s)"),
            ))
        }
    };
    let health_check_interval = super::health_interval(cx, t.health_check_interval_secs.as_ref(), &tk)?;
    Ok(Trunk {
        health_check_interval,
        name,
        id,
        account,
        disaster_recovery_url: t.disaster_recovery_url.map(Spanned::into_inner),
        max_call_duration,
        call_transfer: t.call_transfer,
        diversion: t.diversion,
        media: t.media,
        symmetric_rtp: t.symmetric_rtp,
        secure,
        recording,
        chain: Chain { entries },
        origination,
        termination,
    })
}
