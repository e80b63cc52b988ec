//! The file as serde reads it: every table with `deny_unknown_fields`,
//! values `Spanned` where an error must point at them. `validate` (in
//! `mod.rs`) turns these into `Settings`.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;
use trunkline_plugin_host::{FailureMode, Limits};

use super::termination;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// More numbers, from a CSV file (number, trunk, label); a top-level key.
    pub(super) numbers_file: Option<Spanned<PathBuf>>,
    pub(super) sip: RawSip,
    #[serde(default)]
    pub(super) plugins: RawPlugins,
    #[serde(default, rename = "trunk")]
    pub(super) trunks: Vec<RawTrunk>,
    #[serde(default, rename = "carrier")]
    pub(super) carriers: Vec<termination::RawCarrier>,
    pub(super) admin: Option<RawAdmin>,
    #[serde(default)]
    pub(super) disaster_recovery: RawDisasterRecovery,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) media: super::media::RawMedia,
    #[serde(default)]
    pub(super) records: super::records::RawRecords,
    #[serde(default)]
    pub(super) auth: super::auth::RawAuth,
    #[serde(default)]
    pub(super) store: super::store::RawStore,
}

/// `[limits]`: per-source flood protection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLimits {
    /// One out-of-dialog OPTIONS per this many ms per source...
    pub(super) options_interval_ms: Spanned<u64>,
    /// ...after a burst of this many.
    pub(super) options_burst: Spanned<u32>,
    /// New INVITEs per second per source...
    pub(super) invites_per_second: Spanned<u32>,
    /// ...after a burst of this many.
    pub(super) invite_burst: Spanned<u32>,
    /// Buckets in each limiter's table (memory is fixed: sources share
    /// buckets beyond this).
    pub(super) source_slots: Spanned<u32>,
    /// Failed digest authentications from one source...
    pub(super) auth_failures: Spanned<u32>,
    /// ...within this many seconds...
    pub(super) auth_window_secs: Spanned<u64>,
    /// ...ban it for this many seconds.
    pub(super) auth_ban_secs: Spanned<u64>,
}

impl Default for RawLimits {
    fn default() -> Self {
        let z = |v| Spanned::new(0..0, v);
        RawLimits {
            options_interval_ms: Spanned::new(0..0, 10_000),
            options_burst: z(3),
            invites_per_second: z(2000),
            invite_burst: z(4000),
            source_slots: z(16_384),
            auth_failures: z(5),
            auth_window_secs: Spanned::new(0..0, 60),
            auth_ban_secs: Spanned::new(0..0, 600),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDisasterRecovery {
    /// Where TwiML `<Dial><Number>` goes (until the termination path exists).
    pub(super) pstn_gateway: Option<Spanned<String>>,
    /// Deadline of one TwiML fetch.
    pub(super) fetch_timeout_ms: Spanned<u64>,
    /// Most documents one call may fetch (the first plus `<Redirect>`s).
    pub(super) max_fetches: Spanned<u32>,
}

impl Default for RawDisasterRecovery {
    fn default() -> Self {
        RawDisasterRecovery {
            pstn_gateway: None,
            fetch_timeout_ms: Spanned::new(0..0, 5000),
            max_fetches: Spanned::new(0..0, 5),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    /// `IP:PORT` of the admin HTTP listener; beyond loopback only with TLS and tokens.
    pub(super) listen: Spanned<String>,
    /// PEM certificate chain and key: the admin API over HTTPS.
    pub(super) cert: Option<Spanned<PathBuf>>,
    pub(super) key: Option<Spanned<PathBuf>>,
    /// Bearer tokens; with any, every request must carry one.
    #[serde(default)]
    pub(super) tokens: Vec<Spanned<RawToken>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    pub(super) name: String,
    pub(super) token_env: Option<String>,
    pub(super) token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSip {
    pub(super) listen: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) domains: Vec<Spanned<String>>,
    /// Failover after this long without any response from a target.
    #[serde(default = "default_failover_ms")]
    pub(super) failover_timeout_ms: Spanned<u64>,
    /// Give up on a target that rings (provisional response) without answering.
    #[serde(default = "default_ring_ms")]
    pub(super) ring_timeout_ms: Spanned<u64>,
    /// Close a TCP connection without traffic for this long.
    #[serde(default = "default_idle_ms")]
    pub(super) tcp_idle_timeout_ms: Spanned<u64>,
    /// Most TCP connections open at once (both directions).
    #[serde(default = "default_max_connections")]
    pub(super) max_connections: Spanned<u32>,
    /// Certificate, key and CA bundle for TLS.
    pub(super) tls: Option<Spanned<RawTls>>,
    /// DNS servers (`IP` or `IP:port`) for target names; else the system's.
    #[serde(default)]
    pub(super) dns_servers: Vec<Spanned<String>>,
    /// On SIGTERM (or the API's drain): how long calls in progress may go
    /// on before the rest are ended.
    #[serde(default = "default_drain_secs")]
    pub(super) drain_timeout_secs: Spanned<u64>,
    /// Reload this file when it changes (as on SIGHUP).
    #[serde(default)]
    pub(super) watch_config: bool,
    /// Target health: a target is down after this many pings in a row unanswered...
    #[serde(default = "default_down_after")]
    pub(super) health_check_down_after: Spanned<u32>,
    /// ...and up again after this many answered in a row.
    #[serde(default = "default_up_after")]
    pub(super) health_check_up_after: Spanned<u32>,
}

fn yes() -> bool {
    true
}

pub(super) fn default_down_after() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}

pub(super) fn default_up_after() -> Spanned<u32> {
    Spanned::new(0..0, 2)
}

pub(super) fn default_drain_secs() -> Spanned<u64> {
    Spanned::new(0..0, 60)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
    pub(super) ca: Option<PathBuf>,
}

pub(super) fn default_idle_ms() -> Spanned<u64> {
    Spanned::new(0..0, 300_000)
}

pub(super) fn default_max_connections() -> Spanned<u32> {
    Spanned::new(0..0, 4096)
}

pub(super) fn default_failover_ms() -> Spanned<u64> {
    Spanned::new(0..0, 4000)
}

/// RFC 3261 Timer C: more than 3 minutes.
pub(super) fn default_ring_ms() -> Spanned<u64> {
    Spanned::new(0..0, 181_000)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPlugins {
    pub(super) dir: PathBuf,
    pub(super) cache_dir: Option<PathBuf>,
    pub(super) audit_log: Option<PathBuf>,
    pub(super) watch: bool,
    pub(super) hook_timeout_ms: Spanned<u64>,
    pub(super) memory_mb: Spanned<u32>,
    pub(super) failure_mode: FailureMode,
    pub(super) fail_closed_code: Spanned<u16>,
    pub(super) quarantine_after: u32,
    pub(super) quarantine_secs: u64,
    pub(super) max_live_instances: Spanned<u32>,
    pub(super) prewarm: Spanned<u32>,
}

impl Default for RawPlugins {
    fn default() -> Self {
        let l = Limits::default();
        RawPlugins {
            dir: "plugins".into(),
            cache_dir: None,
            audit_log: None,
            watch: true,
            hook_timeout_ms: Spanned::new(0..0, l.hook_timeout_ms),
            memory_mb: Spanned::new(0..0, (l.memory_bytes >> 20) as u32),
            failure_mode: l.failure_mode,
            fail_closed_code: Spanned::new(0..0, l.fail_closed_code),
            quarantine_after: l.quarantine_after,
            quarantine_secs: l.quarantine_secs,
            max_live_instances: Spanned::new(0..0, 1000),
            prewarm: Spanned::new(0..0, 8),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrunk {
    pub(super) name: Spanned<String>,
    pub(super) id: Option<Spanned<String>>,
    pub(super) account: Option<String>,
    #[serde(default)]
    pub(super) numbers: Vec<Spanned<RawNumber>>,
    pub(super) disaster_recovery_url: Option<Spanned<String>>,
    /// Answered calls are hung up after this long.
    pub(super) max_call_duration_secs: Option<Spanned<u64>>,
    /// Accept REFER (blind call transfer) from the answering party.
    #[serde(default)]
    pub(super) call_transfer: bool,
    /// OPTIONS pings to each origination URI this often (off when absent).
    pub(super) health_check_interval_secs: Option<Spanned<u64>>,
    /// Origination: convey the dialed number in a Diversion header (default true).
    #[serde(default = "yes")]
    pub(super) diversion: bool,
    /// `relay` (default): the router anchors the call's media; `passthrough`: it does not.
    #[serde(default)]
    pub(super) media: super::media::MediaMode,
    /// Learn where a party's media comes from instead of trusting its description (NAT).
    #[serde(default)]
    pub(super) symmetric_rtp: bool,
    /// Secure trunking: the PBX's leg over TLS with SRTP only.
    pub(super) secure: Option<Spanned<bool>>,
    /// `off`, `single` (mixed) or `dual` (a channel per party).
    pub(super) recording: Option<Spanned<super::media::RecordingMode>>,
    /// TLS below 1.2 for this trunk: refused (rustls cannot offer it).
    pub(super) allow_deprecated_tls: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) plugins: Vec<RawPluginRef>,
    #[serde(default)]
    pub(super) origination: Vec<RawOrigination>,
    pub(super) termination: Option<termination::RawTermination>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawNumber {
    Plain(String),
    Labelled { number: String, label: Option<String> },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPluginRef {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) config: toml::Table,
    pub(super) failure_mode: Option<FailureMode>,
    pub(super) hook_timeout_ms: Option<Spanned<u64>>,
    pub(super) memory_mb: Option<Spanned<u32>>,
    pub(super) fail_closed_code: Option<Spanned<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOrigination {
    pub(super) uri: Spanned<String>,
    #[serde(default = "default_priority")]
    pub(super) priority: u16,
    #[serde(default = "default_weight")]
    pub(super) weight: Spanned<u16>,
    #[serde(default = "default_true")]
    pub(super) enabled: bool,
}

pub(super) fn default_priority() -> u16 {
    10
}
pub(super) fn default_weight() -> Spanned<u16> {
    Spanned::new(0..0, 1)
}
pub(super) fn default_true() -> bool {
    true
}
