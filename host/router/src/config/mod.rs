//! `trunkline.toml`: serde structs with `deny_unknown_fields` (`raw`), then
//! `validate`, which turns them into [`Settings`] (each `[[trunk]]` in
//! `trunk`, termination settings and carriers in `termination`). Every
//! error names the file, the line and column, and the key.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use toml::Spanned;
use trunkline_plugin_host::services::NumberDirectory;
use trunkline_plugin_host::{Chain, Limits};

use crate::engine::Rate;
use crate::streams::StreamLimits;
use crate::tls::TlsFiles;

mod auth;
mod diff;
mod media;
mod numbers;
mod raw;
mod records;
mod store;
mod termination;
mod trunk;

pub use auth::NonceSecret;
pub use diff::live_change;
pub use media::{MediaMode, MediaSettings, RecordingMode};
pub use numbers::NumberIndex;
use raw::RawConfig;
pub use records::{records_at, RecordSettings, RecordsAt};
pub use store::{PostgresSettings, RedisSettings, SecretUrl, StoreSettings};
pub use termination::{Carrier, Cidr, Credential, Secret, Termination};

/// A configuration error at a place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub line: usize,
    pub column: usize,
    /// Dotted key, e.g. `trunk[0].origination[1].weight`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Transport of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenTransport {
    Udp,
    Tcp,
    Tls,
}

/// A `listen` entry: `udp://127.0.0.1:5060`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub transport: ListenTransport,
    pub addr: SocketAddr,
}

/// One origination URI of a trunk.
#[derive(Clone, Debug, PartialEq)]
pub struct Origination {
    pub uri: String,
    pub priority: u16,
    pub weight: u16,
    pub enabled: bool,
}

/// A validated trunk.
#[derive(Clone, Debug)]
pub struct Trunk {
    pub name: String,
    /// OPTIONS pings to each origination URI this often, if set.
    pub health_check_interval: Option<Duration>,
    /// `TK` + 32 hex (derived from the name unless configured).
    pub id: String,
    /// Account owning the trunk (`AC` + 32 hex unless configured).
    pub account: String,
    pub disaster_recovery_url: Option<String>,
    /// An answered call is hung up (BYE to both parties) after this long.
    pub max_call_duration: Duration,
    /// A REFER from the answering party transfers the caller (else 403).
    pub call_transfer: bool,
    /// Origination: the dialed number in `Diversion: <sip:+DIALED@our-domain>`.
    pub diversion: bool,
    /// Whether the router anchors the media of the trunk's calls.
    pub media: MediaMode,
    /// Symmetric RTP: each party's media source latched from its packets.
    pub symmetric_rtp: bool,
    /// Secure trunking: the customer's leg (the PBX) over TLS with SRTP
    /// only, in both directions.
    pub secure: bool,
    /// Whether (and how) the trunk's calls are recorded.
    pub recording: RecordingMode,
    pub chain: Chain,
    pub origination: Vec<Origination>,
    /// Calls from the customer to the PSTN, if this trunk terminates.
    pub termination: Option<Termination>,
}

/// Plugin runtime settings.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginSettings {
    pub dir: PathBuf,
    pub cache_dir: Option<PathBuf>,
    pub audit_log: Option<PathBuf>,
    pub watch: bool,
    pub max_live_instances: u32,
    /// Instances prepared ahead per plugin version (0: on the call path).
    pub prewarm: u32,
    pub defaults: Limits,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: Vec<Listen>,
    pub domains: Vec<String>,
    pub failover_timeout_ms: u64,
    pub ring_timeout_ms: u64,
    /// `[sip] drain_timeout_secs`: on SIGTERM, how long calls in progress
    /// may go on (new ones refused) before the rest are ended.
    pub drain_timeout: std::time::Duration,
    /// `[sip] watch_config`: reload the configuration when its file changes.
    pub watch_config: bool,
    /// When a probed target counts as down or up again.
    pub health: HealthThresholds,
    /// TCP connection limits.
    pub streams: StreamLimits,
    /// Certificate, key and CA bundle for TLS.
    pub tls: TlsFiles,
    pub plugins: PluginSettings,
    pub trunks: Vec<Trunk>,
    /// Every trunk's numbers (the `numbers` lists and `numbers_file`),
    /// with their labels: number -> trunk in O(1).
    pub numbers: Arc<NumberIndex>,
    /// `numbers_file`, if set: reloaded with the configuration.
    pub numbers_file: Option<PathBuf>,
    /// Termination domains (lower case) -> trunk.
    pub termination_domains: HashMap<String, usize>,
    /// Admin HTTP listener (plugin list, reload, release), if configured.
    pub admin: Option<SocketAddr>,
    /// `[admin] cert` and `key`: the admin API over HTTPS.
    pub admin_tls: Option<TlsFiles>,
    /// `[admin] tokens`: with any, every admin request needs one (`Authorization: Bearer`).
    pub admin_tokens: Vec<AdminToken>,
    /// How disaster-recovery TwiML is fetched and executed.
    pub disaster_recovery: DisasterRecovery,
    /// `[[carrier]]`: where terminating calls go.
    pub carriers: Vec<Carrier>,
    /// `[limits]`: per-source flood protection.
    pub limits: FloodLimits,
    /// `sip.dns_servers`: where target names (A/AAAA, SRV) are looked up;
    /// empty: the system's resolver configuration.
    pub dns_servers: Vec<SocketAddr>,
    /// `[media]`: the relay's address and ports.
    pub media: MediaSettings,
    /// `[records]`: call records and the audit log.
    pub records: RecordSettings,
    /// `[auth] nonce_secret_file`: the digest nonce secret routers share
    /// (none: a random one per process).
    pub nonce_secret: Option<NonceSecret>,
    /// `[store]`: state shared with other routers (plugin kv in Redis).
    pub store: StoreSettings,
}

/// `[sip] health_check_down_after` and `health_check_up_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthThresholds {
    pub down_after: u32,
    pub up_after: u32,
}

fn health_threshold(cx: &Ctx<'_>, v: &Spanned<u32>, key: &str) -> Result<u32, ConfigError> {
    if (1..=100).contains(v.get_ref()) {
        Ok(*v.get_ref())
    } else {
        Err(cx.err(v.span(), key, "must be 1..=100"))
    }
}

/// `health_check_interval_secs` of a trunk or carrier (`key`): 1..=3600 s.
pub(crate) fn health_interval(
    cx: &Ctx<'_>,
    v: Option<&Spanned<u64>>,
    key: &str,
) -> Result<Option<Duration>, ConfigError> {
    match v {
        None => Ok(None),
        Some(s) if (1..=3600).contains(s.get_ref()) => Ok(Some(Duration::from_secs(*s.get_ref()))),
        Some(s) => Err(cx.err(s.span(), format!("{key}.health_check_interval_secs"), "must be 1..=3600 (s)")),
    }
}

/// Per-source rate limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloodLimits {
    pub options: Rate,
    pub invites: Rate,
    pub source_slots: usize,
    /// Digest brute force: failures within a window ban the source.
    pub auth_bans: crate::engine::BanRule,
}

/// `[disaster_recovery]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DisasterRecovery {
    /// `sip:` URI of the gateway `<Dial><Number>` goes through.
    pub pstn_gateway: Option<String>,
    pub fetch_timeout: Duration,
    pub max_fetches: u32,
}

/// Most origination URIs a trunk may have.
pub const MAX_ORIGINATION_URIS: usize = 10;
/// Default and largest `max_call_duration_secs`: 24 hours, one week.
pub const DEFAULT_MAX_CALL_SECS: u64 = 24 * 3600;
pub const LONGEST_MAX_CALL_SECS: u64 = 7 * 24 * 3600;
/// Largest memory limit a plugin may be given, in MiB.
pub const MAX_PLUGIN_MEMORY_MB: u32 = 256;

pub(crate) struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError { file: self.file.to_owned(), line, column, key: key.into(), message: message.into() }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

fn hex_id(prefix: &str, seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

fn is_plugin_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn listen_of(t: trunkline_sip_core::Transport) -> ListenTransport {
    match t {
        trunkline_sip_core::Transport::Udp => ListenTransport::Udp,
        trunkline_sip_core::Transport::Tcp => ListenTransport::Tcp,
        trunkline_sip_core::Transport::Tls => ListenTransport::Tls,
    }
}

/// Whether `listen` has a listener of transport `t` (a target or gateway
/// of that transport needs one: peers send their requests to it).
fn listens_on(listen: &[Listen], t: trunkline_sip_core::Transport) -> bool {
    listen.iter().any(|l| l.transport == listen_of(t))
}

/// Read and validate `path`. Relative paths inside are relative to its folder.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        line: 0,
        column: 0,
        key: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Validate configuration `text` read from `file`.
pub fn parse(file: &Path, text: &str) -> Result<Settings, ConfigError> {
    let cx = Ctx { file, text };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_owned();
        cx.err(e.span().unwrap_or(0..0), "", msg)
    })?;
    let base = file.parent().unwrap_or(Path::new("."));
    validate(&cx, raw, base)
}

/// A hook deadline: 1..=10000 ms.
fn check_timeout(cx: &Ctx<'_>, v: &Spanned<u64>, key: &str) -> Result<(), ConfigError> {
    if (1..=10_000).contains(v.get_ref()) {
        Ok(())
    } else {
        Err(cx.err(v.span(), key, "must be 1..=10000 (ms)"))
    }
}

/// A plugin's memory: 1..=MAX_PLUGIN_MEMORY_MB MiB.
fn check_memory(cx: &Ctx<'_>, v: &Spanned<u32>, key: &str) -> Result<(), ConfigError> {
    if (1..=MAX_PLUGIN_MEMORY_MB).contains(v.get_ref()) {
        Ok(())
    } else {
        Err(cx.err(v.span(), key, format!("must be 1..={MAX_PLUGIN_MEMORY_MB} (MiB)")))
    }
}

/// The response of `fail-closed`: 500 or 503.
fn check_code(cx: &Ctx<'_>, v: &Spanned<u16>, key: &str) -> Result<(), ConfigError> {
    if [500, 503].contains(v.get_ref()) {
        Ok(())
    } else {
        Err(cx.err(v.span(), key, "must be 500 or 503"))
    }
}

fn validate(cx: &Ctx<'_>, raw: RawConfig, base: &Path) -> Result<Settings, ConfigError> {
    let mut listen = Vec::new();
    for (i, l) in raw.sip.listen.iter().enumerate() {
        let key = format!("sip.listen[{i}]");
        let (scheme, addr) = l.get_ref().split_once("://").ok_or_else(|| {
            cx.err(l.span(), &key, format!("`{}` is not TRANSPORT://IP:PORT (udp, tcp or tls)", l.get_ref()))
        })?;
        let transport = match scheme {
            "udp" => ListenTransport::Udp,
            "tcp" => ListenTransport::Tcp,
            "tls" => ListenTransport::Tls,
            other => return Err(cx.err(l.span(), &key, format!("unknown transport `{other}` (udp, tcp or tls)"))),
        };
        let addr: SocketAddr = addr.parse().map_err(|_| cx.err(l.span(), &key, format!("`{addr}` is not IP:PORT")))?;
        if listen.iter().any(|x: &Listen| x.transport == transport) {
            return Err(cx.err(
                l.span(),
                &key,
                format!("a second {scheme}:// listener: one per transport is supported"),
            ));
        }
        listen.push(Listen { transport, addr });
    }
    if listen.is_empty() {
        return Err(cx.err(0..0, "sip.listen", "at least one listener is required"));
    }
    let domains: Vec<String> = raw.sip.domains.iter().map(|d| d.get_ref().to_ascii_lowercase()).collect();
    if let Some(d) = raw.sip.domains.iter().find(|d| d.get_ref().is_empty() || d.get_ref().contains([' ', ':', '@'])) {
        return Err(cx.err(d.span(), "sip.domains", format!("`{}` is not a domain name", d.get_ref())));
    }
    let failover = raw.sip.failover_timeout_ms;
    if *failover.get_ref() == 0 || *failover.get_ref() > 120_000 {
        return Err(cx.err(failover.span(), "sip.failover_timeout_ms", "must be 1..=120000"));
    }
    let ring = raw.sip.ring_timeout_ms;
    if !(1_000..=3_600_000).contains(ring.get_ref()) {
        return Err(cx.err(ring.span(), "sip.ring_timeout_ms", "must be 1000..=3600000"));
    }

    let idle = raw.sip.tcp_idle_timeout_ms;
    if !(1_000..=86_400_000).contains(idle.get_ref()) {
        return Err(cx.err(idle.span(), "sip.tcp_idle_timeout_ms", "must be 1000..=86400000"));
    }
    let health = HealthThresholds {
        down_after: health_threshold(cx, &raw.sip.health_check_down_after, "sip.health_check_down_after")?,
        up_after: health_threshold(cx, &raw.sip.health_check_up_after, "sip.health_check_up_after")?,
    };
    let drain = raw.sip.drain_timeout_secs;
    if *drain.get_ref() > 86_400 {
        return Err(cx.err(drain.span(), "sip.drain_timeout_secs", "must be 0..=86400"));
    }
    let max_conns = raw.sip.max_connections;
    if *max_conns.get_ref() == 0 {
        return Err(cx.err(max_conns.span(), "sip.max_connections", "must be at least 1"));
    }
    let mut dns_servers = Vec::new();
    for d in &raw.sip.dns_servers {
        let text = d.get_ref();
        let addr = text
            .parse::<SocketAddr>()
            .ok()
            .or_else(|| text.parse::<std::net::IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)));
        match addr {
            Some(a) if a.port() != 0 => dns_servers.push(a),
            _ => {
                let why =
                    format!("`{text}` is not an IP address or IP:port (e.g. \"192.0.2.53\" or \"[2001:db8::53]:53\")");
                return Err(cx.err(d.span(), "sip.dns_servers", why));
            }
        }
    }
    let streams = StreamLimits {
        idle: Duration::from_millis(*idle.get_ref()),
        max_connections: *max_conns.get_ref() as usize,
        connect_timeout: Duration::from_millis(*failover.get_ref()),
    };
    let has_listener = |t| listens_on(&listen, t);
    let tls = match &raw.sip.tls {
        Some(t) => {
            let r = t.get_ref();
            TlsFiles {
                cert: r.cert.as_ref().map(|p| base.join(p)),
                key: r.key.as_ref().map(|p| base.join(p)),
                ca: r.ca.as_ref().map(|p| base.join(p)),
            }
        }
        None => TlsFiles { cert: None, key: None, ca: None },
    };
    let tls_listen_span = raw.sip.listen.iter().find(|l| l.get_ref().starts_with("tls://")).map(|l| l.span());
    let tls_span = raw.sip.tls.as_ref().map(|t| t.span()).or(tls_listen_span).unwrap_or(0..0);
    if has_listener(trunkline_sip_core::Transport::Tls) {
        crate::tls::server_config(&tls).map_err(|e| cx.err(tls_span.clone(), "sip.tls", e))?;
    }
    if tls.ca.is_some() {
        crate::tls::client_config(&tls).map_err(|e| cx.err(tls_span.clone(), "sip.tls.ca", e))?;
    }

    let p = raw.plugins;
    check_timeout(cx, &p.hook_timeout_ms, "plugins.hook_timeout_ms")?;
    check_memory(cx, &p.memory_mb, "plugins.memory_mb")?;
    check_code(cx, &p.fail_closed_code, "plugins.fail_closed_code")?;
    if *p.max_live_instances.get_ref() == 0 {
        return Err(cx.err(p.max_live_instances.span(), "plugins.max_live_instances", "must be at least 1"));
    }
    if *p.prewarm.get_ref() > 256 {
        return Err(cx.err(p.prewarm.span(), "plugins.prewarm", "must be 0..=256"));
    }
    let defaults = Limits {
        hook_timeout_ms: *p.hook_timeout_ms.get_ref(),
        memory_bytes: (*p.memory_mb.get_ref() as usize) << 20,
        failure_mode: p.failure_mode,
        fail_closed_code: *p.fail_closed_code.get_ref(),
        quarantine_after: p.quarantine_after,
        quarantine_secs: p.quarantine_secs,
        ..Limits::default()
    };
    let plugins = PluginSettings {
        dir: base.join(&p.dir),
        cache_dir: p.cache_dir.map(|d| base.join(d)),
        audit_log: p.audit_log.map(|d| base.join(d)),
        watch: p.watch,
        max_live_instances: *p.max_live_instances.get_ref(),
        prewarm: *p.prewarm.get_ref(),
        defaults: defaults.clone(),
    };

    let carriers = termination::carriers(cx, &raw.carriers, has_listener)?;
    let mut trunks = Vec::new();
    let mut numbers = numbers::IndexBuilder::default();
    let around = trunk::Around { listen: &listen, defaults: &defaults, carriers: &carriers, base };
    for (ti, t) in raw.trunks.into_iter().enumerate() {
        let checked = trunk::trunk(cx, ti, t, &around, &trunks, &mut numbers)?;
        trunks.push(checked);
    }
    let numbers_file = match &raw.numbers_file {
        None => None,
        Some(f) => {
            let path = base.join(f.get_ref());
            let text = std::fs::read(&path)
                .map_err(|e| cx.err(f.span(), "numbers_file", format!("cannot read {}: {e}", path.display())))?;
            let names: Vec<&str> = trunks.iter().map(|t: &Trunk| t.name.as_str()).collect();
            numbers::read_file(&path, &text, &names, &mut numbers)?;
            Some(path)
        }
    };
    let numbers = Arc::new(numbers.finish());
    let mut termination_domains = HashMap::new();
    for (i, t) in trunks.iter().enumerate() {
        if let Some(term) = &t.termination {
            termination_domains.entry(term.domain.to_ascii_lowercase()).or_insert(i);
        }
    }
    let mut admin_tokens = Vec::new();
    let mut admin_tls = None;
    let admin = match raw.admin {
        None => None,
        Some(a) => {
            for (i, t) in a.tokens.iter().enumerate() {
                admin_tokens.push(admin_token(cx, i, t, base, &admin_tokens)?);
            }
            let addr: SocketAddr = a.listen.get_ref().parse().map_err(|_| {
                cx.err(a.listen.span(), "admin.listen", format!("`{}` is not IP:PORT", a.listen.get_ref()))
            })?;
            admin_tls = match (&a.cert, &a.key) {
                (None, None) => None,
                (Some(c), Some(k)) => {
                    let files =
                        TlsFiles { cert: Some(base.join(c.get_ref())), key: Some(base.join(k.get_ref())), ca: None };
                    crate::tls::server_config(&files).map_err(|e| cx.err(c.span(), "admin.cert", e))?;
                    Some(files)
                }
                (Some(c), None) => return Err(cx.err(c.span(), "admin.key", "admin.cert needs admin.key")),
                (None, Some(k)) => return Err(cx.err(k.span(), "admin.cert", "admin.key needs admin.cert")),
            };
            if !addr.ip().is_loopback() && (admin_tls.is_none() || admin_tokens.is_empty()) {
                return Err(cx.err(
                    a.listen.span(),
                    "admin.listen",
                    "beyond loopback the admin API needs TLS (admin.cert and admin.key) and admin.tokens",
                ));
            }
            Some(addr)
        }
    };
    let d = raw.disaster_recovery;
    if let Some(g) = &d.pstn_gateway {
        let ok = g.get_ref().to_ascii_lowercase().starts_with("sip:")
            && matches!(trunkline_sip_core::Transport::of_uri(g.get_ref()), Some(t) if t != trunkline_sip_core::Transport::Tls && has_listener(t));
        if !ok {
            return Err(cx.err(
                g.span(),
                "disaster_recovery.pstn_gateway",
                "must be a sip: URI over a transport with a listener (udp or tcp)",
            ));
        }
    }
    if !(100..=60_000).contains(d.fetch_timeout_ms.get_ref()) {
        return Err(cx.err(d.fetch_timeout_ms.span(), "disaster_recovery.fetch_timeout_ms", "must be 100..=60000"));
    }
    if !(1..=20).contains(d.max_fetches.get_ref()) {
        return Err(cx.err(d.max_fetches.span(), "disaster_recovery.max_fetches", "must be 1..=20"));
    }
    let l = raw.limits;
    for (v, key) in [
        (&l.options_burst, "limits.options_burst"),
        (&l.invites_per_second, "limits.invites_per_second"),
        (&l.invite_burst, "limits.invite_burst"),
    ] {
        if *v.get_ref() == 0 {
            return Err(cx.err(v.span(), key, "must be at least 1"));
        }
    }
    if !(100..=3_600_000).contains(l.options_interval_ms.get_ref()) {
        return Err(cx.err(l.options_interval_ms.span(), "limits.options_interval_ms", "must be 100..=3600000"));
    }
    if !(1..=1 << 22).contains(l.source_slots.get_ref()) {
        return Err(cx.err(l.source_slots.span(), "limits.source_slots", "must be 1..=4194304"));
    }
    if !(1..=1000).contains(l.auth_failures.get_ref()) {
        return Err(cx.err(l.auth_failures.span(), "limits.auth_failures", "must be 1..=1000"));
    }
    for (v, key) in [(&l.auth_window_secs, "limits.auth_window_secs"), (&l.auth_ban_secs, "limits.auth_ban_secs")] {
        if !(1..=604_800).contains(v.get_ref()) {
            return Err(cx.err(v.span(), key, "must be 1..=604800 (a week)"));
        }
    }
    let limits = FloodLimits {
        options: Rate {
            per_second: 1000.0 / *l.options_interval_ms.get_ref() as f64,
            burst: f64::from(*l.options_burst.get_ref()),
        },
        invites: Rate {
            per_second: f64::from(*l.invites_per_second.get_ref()),
            burst: f64::from(*l.invite_burst.get_ref()),
        },
        source_slots: *l.source_slots.get_ref() as usize,
        auth_bans: crate::engine::BanRule {
            failures: *l.auth_failures.get_ref(),
            window: Duration::from_secs(*l.auth_window_secs.get_ref()),
            ban: Duration::from_secs(*l.auth_ban_secs.get_ref()),
        },
    };
    let relaying = trunks.iter().any(|t| t.media == MediaMode::Relay);
    let listen_span = raw.sip.listen.first().map(|l| l.span()).unwrap_or(0..0);
    let media = media::media(cx, raw.media, &listen, listen_span, relaying, base)?;
    let records = records::records(cx, raw.records, base)?;
    let nonce_secret = auth::nonce_secret(cx, &raw.auth, base)?;
    let store = store::store(cx, &raw.store, records.path.is_some(), base)?;
    let disaster_recovery = DisasterRecovery {
        pstn_gateway: d.pstn_gateway.map(Spanned::into_inner),
        fetch_timeout: Duration::from_millis(*d.fetch_timeout_ms.get_ref()),
        max_fetches: *d.max_fetches.get_ref(),
    };
    Ok(Settings {
        listen,
        domains,
        failover_timeout_ms: *failover.get_ref(),
        drain_timeout: std::time::Duration::from_secs(*drain.get_ref()),
        watch_config: raw.sip.watch_config,
        health,
        ring_timeout_ms: *ring.get_ref(),
        streams,
        tls,
        plugins,
        trunks,
        numbers,
        numbers_file,
        termination_domains,
        admin,
        admin_tls,
        admin_tokens,
        disaster_recovery,
        carriers,
        limits,
        dns_servers,
        media,
        records,
        nonce_secret,
        store,
    })
}

impl Settings {
    /// The number directory plugins see: each trunk's account owns its
    /// numbers (the same index, not a copy).
    pub fn directory(&self) -> Directory {
        let mut verified: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
        for t in &self.trunks {
            if let Some(term) = &t.termination {
                verified.entry(t.account.clone()).or_default().extend(term.caller_ids.iter().cloned());
            }
        }
        Directory {
            numbers: self.numbers.clone(),
            accounts: self.trunks.iter().map(|t| t.account.clone()).collect(),
            verified,
        }
    }

    /// The trunk whose termination domain is `host` (case-insensitive).
    pub fn trunk_for_domain(&self, host: &str) -> Option<usize> {
        match self.termination_domains.get(host) {
            Some(&t) => Some(t),
            None if host.bytes().any(|b| b.is_ascii_uppercase()) => {
                self.termination_domains.get(&host.to_ascii_lowercase()).copied()
            }
            None => None,
        }
    }

    /// The trunk that owns `number`.
    pub fn trunk_for_number(&self, number: &str) -> Option<&Trunk> {
        self.numbers.trunk_of(number).map(|i| &self.trunks[i])
    }

    /// Whether `number` is one of the numbers of a trunk of `account`.
    pub fn account_owns(&self, account: &str, number: &str) -> bool {
        self.numbers.trunk_of(number).is_some_and(|i| self.trunks[i].account == account)
    }
}

/// What plugins see of the numbers (the `numbers` interface): the
/// settings' index, each trunk's account, and the verified caller IDs.
pub struct Directory {
    numbers: Arc<NumberIndex>,
    /// Each trunk's account, by trunk index.
    accounts: Vec<String>,
    /// Verified caller IDs (termination `caller_ids`) per account.
    verified: HashMap<String, std::collections::HashSet<String>>,
}

impl NumberDirectory for Directory {
    fn is_owned(&self, account: &str, number: &str) -> bool {
        self.numbers.trunk_of(number).is_some_and(|i| self.accounts[i] == account)
    }

    fn is_verified_caller_id(&self, account: &str, number: &str) -> bool {
        self.is_owned(account, number) || self.verified.get(account).is_some_and(|v| v.contains(number))
    }

    fn label(&self, account: &str, number: &str) -> Option<String> {
        self.is_owned(account, number).then(|| self.numbers.label_of(number).map(str::to_owned))?
    }
}

/// One admin API token: its name (in the audit log) and its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminToken {
    pub name: String,
    pub secret: termination::Secret,
}

/// Shortest token accepted (a guessable token is no protection).
const MIN_TOKEN_LEN: usize = 16;

fn admin_token(
    cx: &Ctx<'_>,
    i: usize,
    t: &Spanned<raw::RawToken>,
    base: &Path,
    earlier: &[AdminToken],
) -> Result<AdminToken, ConfigError> {
    let key = format!("admin.tokens[{i}]");
    let r = t.get_ref();
    if r.name.is_empty() || r.name.contains(|c: char| c.is_control() || c == '"') {
        return Err(cx.err(t.span(), format!("{key}.name"), "must be non-empty, without quotes or control characters"));
    }
    if earlier.iter().any(|e| e.name == r.name) {
        return Err(cx.err(t.span(), format!("{key}.name"), format!("`{}` names another token too", r.name)));
    }
    let secret =
        read_secret(cx, t.span(), (&key, "token", "tokens"), (r.token_env.as_deref(), r.token_file.as_deref()), base)?;
    if secret.len() < MIN_TOKEN_LEN {
        return Err(cx.err(t.span(), &key, format!("the token is shorter than {MIN_TOKEN_LEN} characters")));
    }
    Ok(AdminToken { name: r.name.clone(), secret: termination::Secret::new(secret) })
}

/// A secret named by `KIND_env` (an environment variable) or `KIND_file`
/// (a file, relative to the configuration's folder; its last line break
/// dropped), exactly one of them: secrets never sit in the configuration.
/// `(key, kind, kinds)`: where it is, `password`/`token`, for the messages.
pub(crate) fn read_secret(
    cx: &Ctx<'_>,
    span: Range<usize>,
    (key, kind, kinds): (&str, &str, &str),
    (env, file): (Option<&str>, Option<&Path>),
    base: &Path,
) -> Result<String, ConfigError> {
    match (env, file) {
        (Some(var), None) => std::env::var(var)
            .map_err(|_| cx.err(span, format!("{key}.{kind}_env"), format!("environment variable {var} is not set"))),
        (None, Some(file)) => {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                cx.err(span, format!("{key}.{kind}_file"), format!("cannot read {}: {e}", path.display()))
            })?;
            Ok(text.trim_end_matches(['\r', '\n']).to_owned())
        }
        _ => Err(cx.err(
            span,
            key,
            format!("give exactly one of {kind}_env or {kind}_file ({kinds} are never written in the configuration)"),
        )),
    }
}
