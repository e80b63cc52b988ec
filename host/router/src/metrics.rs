//! Prometheus metrics, served as `GET /metrics` by the admin listener
//! (OpenMetrics text, through `prometheus-client`: the Prometheus
//! project's own Rust client, typed label sets, no global registry).
//!
//! The driver records each finished call from its report (off the
//! engine's per-message path: a few label lookups per call) and copies the
//! relay's counters once a second; plugin state is read when scraped.
//! Labels stay bounded: trunk and plugin names come from the
//! configuration, hooks and outcomes are fixed sets, status codes are
//! 100..=699; never a caller, a number or a call id.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use trunkline_plugin_host::types::{Direction, Outcome};
use trunkline_plugin_host::Runtime;

use crate::engine::CallReport;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    trunk: String,
    direction: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginKindLabels {
    plugin: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginOutcomeLabels {
    plugin: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    plugin: String,
    hook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    backend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreOutcomeLabels {
    backend: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PacketLabels {
    result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn delay_histogram() -> Histogram {
    // 10 ms .. ~41 s
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
}

fn hook_histogram() -> Histogram {
    // 10 us .. ~2.6 s
    Histogram::new(exponential_buckets(0.000_01, 4.0, 10))
}

/// One hook's latency, summed.
#[derive(Clone, Copy, Debug, Default)]
struct HookStat {
    calls: u64,
    total_us: u64,
    max_us: u64,
}

/// The router's metrics. See the module docs.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    statuses: Family<StatusLabels, Counter>,
    active_calls: Gauge,
    post_dial_delay: Histogram,
    hook_latency: HistogramFamily<HookLabels>,
    plugin_quarantined: Family<PluginLabels, Gauge>,
    media_packets: Family<PacketLabels, Counter>,
    media_ports: Gauge,
    media_kernel_packets: Counter,
    recording_dropped: Counter,
    auth_bans: Counter,
    auth_banned_requests: Counter,
    /// The engine's ban counts as last copied.
    bans_seen: Mutex<(u64, u64)>,
    records_written: Counter,
    records_dropped: Counter,
    records_held: Gauge,
    target_up: Family<TargetLabels, Gauge>,
    tls_failures: Family<ListenerLabels, Counter>,
    retransmissions: Counter,
    timeouts: Counter,
    flood_refusals: Family<MethodLabels, Counter>,
    dns_failures: Counter,
    plugin_failures: Family<PluginKindLabels, Counter>,
    plugin_reloads: Family<PluginOutcomeLabels, Counter>,
    plugin_quarantines: Family<PluginLabels, Counter>,
    /// What was last copied: the engine's counts, the SIP listener's TLS
    /// failures, the plugins' failure counters.
    engine_seen: Mutex<(crate::engine::EngineCounts, u64)>,
    plugin_failures_seen: Mutex<std::collections::HashMap<(String, String), u64>>,
    /// Hook latency per plugin and hook, summed for the API and the console
    /// (the histograms above are for Prometheus).
    hook_stats: Mutex<std::collections::HashMap<(String, &'static str), HookStat>>,
    /// The record writer's counts as last copied.
    records_seen: Mutex<(u64, u64)>,
    /// The relay's counters as last copied (`media_tick`).
    relay_seen: Mutex<trunkline_relay::RelayStats>,
    store_up: Family<StoreLabels, Gauge>,
    store_requests: Family<StoreOutcomeLabels, Counter>,
    /// The shared store's counts as last copied: ok, failed, timed out, shed.
    store_seen: Mutex<[u64; 4]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every family, registered under `trunkline_`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("trunkline");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register("calls", "Calls ended, by trunk, direction and outcome", calls.clone());
        let statuses = Family::<StatusLabels, Counter>::default();
        registry.register("final_responses", "Final status of ended calls (200 for answered ones)", statuses.clone());
        let active_calls = Gauge::default();
        registry.register("active_calls", "Calls in progress (ringing or answered)", active_calls.clone());
        let post_dial_delay = delay_histogram();
        registry.register(
            "post_dial_delay_seconds",
            "From the INVITE to the first 18x or 2xx sent to the caller",
            post_dial_delay.clone(),
        );
        let hook_latency: HistogramFamily<HookLabels> = Family::new_with_constructor(hook_histogram);
        registry.register("hook_latency_seconds", "Time of one plugin hook call", hook_latency.clone());
        let plugin_quarantined = Family::<PluginLabels, Gauge>::default();
        registry.register(
            "plugin_quarantined",
            "1 if the plugin is quarantined (its hooks are skipped), else 0",
            plugin_quarantined.clone(),
        );
        let media_packets = Family::<PacketLabels, Counter>::default();
        registry.register(
            "media_packets",
            "RTP/RTCP packets the relay handled: relayed, or dropped and why",
            media_packets.clone(),
        );
        let media_ports = Gauge::default();
        registry.register("media_port_pairs_in_use", "RTP/RTCP port pairs held by calls", media_ports.clone());
        let media_kernel_packets = Counter::default();
        registry.register(
            "media_kernel_forwarded_packets",
            "Of the relayed packets, those the kernel forwarded ([media] kernel_forwarding)",
            media_kernel_packets.clone(),
        );
        let recording_dropped = Counter::default();
        registry.register(
            "recording_dropped_packets",
            "Packets not recorded because the recording queue was full (a slow disk)",
            recording_dropped.clone(),
        );
        let auth_bans = Counter::default();
        registry.register(
            "auth_bans",
            "Sources banned after failed digest authentications (limits.auth_*)",
            auth_bans.clone(),
        );
        let auth_banned_requests = Counter::default();
        registry.register(
            "auth_banned_requests",
            "Terminating INVITEs dropped because their source was banned",
            auth_banned_requests.clone(),
        );
        let records_written = Counter::default();
        registry.register("records_written", "Call records stored ([records])", records_written.clone());
        let records_dropped = Counter::default();
        registry.register(
            "records_dropped",
            "Call records and audit entries dropped: the record queue was full, or the store failed",
            records_dropped.clone(),
        );
        let records_held = Gauge::default();
        registry.register(
            "records_held",
            "Call records held in memory while the records server ([store] postgres_url) fails, to be written when it is back",
            records_held.clone(),
        );
        let target_up = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "target_up",
            "1 if the probed target (origination URI or carrier gateway) answers its OPTIONS pings, 0 if down",
            target_up.clone(),
        );
        let tls_failures = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out, by listener (sip, admin)",
            tls_failures.clone(),
        );
        let retransmissions = Counter::default();
        registry.register(
            "sip_retransmissions",
            "SIP messages sent again: retransmission timers, and answers to retransmitted requests",
            retransmissions.clone(),
        );
        let timeouts = Counter::default();
        registry.register(
            "sip_transaction_timeouts",
            "Client transactions without a final response, and INVITE server transactions whose ACK never came",
            timeouts.clone(),
        );
        let flood_refusals = Family::<MethodLabels, Counter>::default();
        registry.register(
            "flood_refusals",
            "Out-of-dialog OPTIONS and new INVITEs refused by the per-source limits ([limits])",
            flood_refusals.clone(),
        );
        let dns_failures = Counter::default();
        registry.register("dns_failures", "Target host names that did not resolve", dns_failures.clone());
        let plugin_failures = Family::<PluginKindLabels, Counter>::default();
        registry.register(
            "plugin_failures",
            "Plugin hook failures by plugin and kind (trap, timeout, memory...)",
            plugin_failures.clone(),
        );
        let plugin_reloads = Family::<PluginOutcomeLabels, Counter>::default();
        registry.register(
            "plugin_reloads",
            "Plugin loads and reloads (start, file watch, SIGHUP, API) by plugin and outcome (ok, refused)",
            plugin_reloads.clone(),
        );
        let plugin_quarantines = Family::<PluginLabels, Counter>::default();
        registry.register("plugin_quarantines", "Times a plugin was quarantined", plugin_quarantines.clone());
        let store_up = Family::<StoreLabels, Gauge>::default();
        registry.register(
            "store_up",
            "1 if the shared store ([store], e.g. backend redis) answers, 0 while it is down or connecting",
            store_up.clone(),
        );
        let store_requests = Family::<StoreOutcomeLabels, Counter>::default();
        registry.register(
            "store_requests",
            "Plugin kv calls to the shared store by outcome: ok, failed, timeout, shed (failed at once: down, connecting, too many waiting)",
            store_requests.clone(),
        );
        Metrics {
            store_up,
            store_requests,
            store_seen: Mutex::new([0; 4]),
            registry,
            retransmissions,
            timeouts,
            flood_refusals,
            dns_failures,
            plugin_failures,
            plugin_reloads,
            plugin_quarantines,
            engine_seen: Mutex::new(Default::default()),
            plugin_failures_seen: Mutex::new(std::collections::HashMap::new()),
            tls_failures,
            target_up,
            hook_stats: Mutex::new(std::collections::HashMap::new()),
            records_written,
            records_dropped,
            records_held,
            records_seen: Mutex::new((0, 0)),
            auth_bans,
            auth_banned_requests,
            bans_seen: Mutex::new((0, 0)),
            calls,
            statuses,
            active_calls,
            post_dial_delay,
            hook_latency,
            plugin_quarantined,
            media_packets,
            media_ports,
            media_kernel_packets,
            recording_dropped,
            relay_seen: Mutex::new(trunkline_relay::RelayStats::default()),
        }
    }

    /// A call ended: count it, its status, its post-dial delay and its hooks' times.
    pub fn call_ended(&self, r: &CallReport) {
        let outcome = match r.summary.outcome {
            Outcome::Answered => "answered",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        };
        let direction = match r.direction {
            Direction::Origination => "origination",
            Direction::Termination => "termination",
        };
        self.calls.get_or_create(&CallLabels { trunk: r.trunk.clone(), direction, outcome }).inc();
        if (100..700).contains(&r.summary.status) {
            self.statuses.get_or_create(&StatusLabels { code: r.summary.status }).inc();
        }
        if let Some(ms) = r.summary.pdd_ms {
            self.post_dial_delay.observe(f64::from(ms) / 1000.0);
        }
        let mut stats = self.hook_stats.lock().unwrap_or_else(|e| e.into_inner());
        for (plugin, hook, micros) in &r.hook_times {
            let labels = HookLabels { plugin: plugin.to_string(), hook };
            self.hook_latency.get_or_create(&labels).observe(*micros as f64 / 1e6);
            let s = stats.entry((labels.plugin, hook)).or_default();
            s.calls += 1;
            s.total_us += micros;
            s.max_us = s.max_us.max(*micros);
        }
    }

    /// The engine's ban counts since it started: (bans, dropped requests).
    pub fn auth_bans(&self, (bans, dropped): (u64, u64)) {
        let mut seen = self.bans_seen.lock().unwrap_or_else(|e| e.into_inner());
        follow(&self.auth_bans, bans, seen.0);
        follow(&self.auth_banned_requests, dropped, seen.1);
        *seen = (bans, dropped);
    }

    /// The record writer's counts since it started: (written, dropped).
    pub fn records(&self, (written, dropped): (u64, u64)) {
        let mut seen = self.records_seen.lock().unwrap_or_else(|e| e.into_inner());
        follow(&self.records_written, written, seen.0);
        follow(&self.records_dropped, dropped, seen.1);
        *seen = (written, dropped);
    }

    /// The records server's state (`[store] postgres_url`) and the records it holds.
    pub fn records_server(&self, backend: &'static str, up: bool, held: u64) {
        self.store_up.get_or_create(&StoreLabels { backend }).set(i64::from(up));
        self.records_held.set(held.min(i64::MAX as u64) as i64);
    }

    /// The shared store `backend`'s state and its counts since start.
    pub fn store(&self, backend: &'static str, up: bool, stats: &crate::store::redis_kv::StoreStats) {
        use std::sync::atomic::Ordering::Relaxed;
        self.store_up.get_or_create(&StoreLabels { backend }).set(i64::from(up));
        let now = [&stats.ok, &stats.failed, &stats.timed_out, &stats.shed].map(|c| c.load(Relaxed));
        let mut seen = self.store_seen.lock().unwrap_or_else(|e| e.into_inner());
        for (i, outcome) in ["ok", "failed", "timeout", "shed"].into_iter().enumerate() {
            follow(&self.store_requests.get_or_create(&StoreOutcomeLabels { backend, outcome }), now[i], seen[i]);
        }
        *seen = now;
    }

    /// The engine's counts and the SIP listener's TLS handshake failures since start.
    pub fn engine(&self, now: crate::engine::EngineCounts, sip_tls_failures: u64) {
        let mut seen = self.engine_seen.lock().unwrap_or_else(|e| e.into_inner());
        let (old, old_tls) = *seen;
        follow(&self.retransmissions, now.retransmissions, old.retransmissions);
        follow(&self.timeouts, now.timeouts, old.timeouts);
        follow(
            &self.flood_refusals.get_or_create(&MethodLabels { method: "options" }),
            now.options_refused,
            old.options_refused,
        );
        follow(
            &self.flood_refusals.get_or_create(&MethodLabels { method: "invite" }),
            now.invites_refused,
            old.invites_refused,
        );
        follow(&self.dns_failures, now.dns_failures, old.dns_failures);
        follow(&self.tls_failures.get_or_create(&ListenerLabels { listener: "sip" }), sip_tls_failures, old_tls);
        *seen = (now, sip_tls_failures);
    }

    /// An audit entry: plugin loads, reloads and quarantines are counted.
    pub fn audited(&self, e: &trunkline_plugin_host::audit::AuditEntry) {
        match e.action.as_str() {
            "load" | "reload" | "refuse" => {
                let labels = PluginOutcomeLabels { plugin: e.plugin.clone(), outcome: e.outcome.clone() };
                self.plugin_reloads.get_or_create(&labels).inc();
            }
            "quarantine" => {
                self.plugin_quarantines.get_or_create(&PluginLabels { plugin: e.plugin.clone() }).inc();
            }
            _ => {}
        }
    }

    /// A TLS handshake on `listener` (`sip`, `admin`) failed.
    pub fn tls_handshake_failed(&self, listener: &'static str) {
        self.tls_failures.get_or_create(&ListenerLabels { listener }).inc();
    }

    /// Each hook of `plugin` run so far: (hook, calls, mean and longest µs).
    pub fn hook_stats(&self, plugin: &str) -> Vec<(&'static str, u64, u64, u64)> {
        let stats = self.hook_stats.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = stats
            .iter()
            .filter(|((p, _), _)| p == plugin)
            .map(|((_, hook), s)| (*hook, s.calls, s.total_us / s.calls.max(1), s.max_us))
            .collect();
        out.sort();
        out
    }

    /// The probed targets' health now (a target no longer probed is dropped).
    pub fn targets(&self, health: &[crate::engine::TargetHealth]) {
        self.target_up.clear();
        for h in health {
            self.target_up.get_or_create(&TargetLabels { target: h.uri.clone() }).set(i64::from(h.up));
        }
    }

    /// Calls in progress now.
    pub fn set_active_calls(&self, n: usize) {
        self.active_calls.set(n as i64);
    }

    /// The relay's counters since it started, and the port pairs in use.
    pub fn media(&self, now: trunkline_relay::RelayStats, ports_in_use: usize) {
        let mut seen = self.relay_seen.lock().unwrap_or_else(|e| e.into_inner());
        for (result, new, old) in [
            ("relayed", now.relayed, seen.relayed),
            ("dropped_source", now.dropped_source, seen.dropped_source),
            ("dropped_unrouted", now.dropped_unrouted, seen.dropped_unrouted),
            ("dropped_send", now.dropped_send, seen.dropped_send),
            ("dropped_auth", now.dropped_auth, seen.dropped_auth),
        ] {
            follow(&self.media_packets.get_or_create(&PacketLabels { result }), new, old);
        }
        follow(&self.recording_dropped, now.recording_dropped, seen.recording_dropped);
        follow(&self.media_kernel_packets, now.kernel_relayed, seen.kernel_relayed);
        *seen = now;
        self.media_ports.set(ports_in_use as i64);
    }

    /// The metrics as OpenMetrics text, with the plugins' state as it is now.
    pub fn encode_openmetrics(&self, runtime: &Runtime) -> String {
        let mut seen = self.plugin_failures_seen.lock().unwrap_or_else(|e| e.into_inner());
        for (plugin, name, value) in runtime.services().metrics.counters() {
            let Some(kind) = name.strip_prefix("failures.") else { continue };
            let key = (plugin, kind.to_owned());
            let old = seen.get(&key).copied().unwrap_or(0);
            let labels = PluginKindLabels { plugin: key.0.clone(), kind: key.1.clone() };
            follow(&self.plugin_failures.get_or_create(&labels), value, old);
            seen.insert(key, value);
        }
        drop(seen);
        for p in runtime.plugins() {
            let g = self.plugin_quarantined.get_or_create(&PluginLabels { plugin: p.info.name.clone() });
            g.set(i64::from(p.is_quarantined()));
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// OpenMetrics text as the Prometheus text format 0.0.4, for scrapers and
/// tools that do not ask for OpenMetrics (`promtool check metrics`, curl):
/// a counter family's `HELP` and `TYPE` name its `_total` series, and there
/// is no `# EOF`. (prometheus-client writes OpenMetrics only; the two
/// differ in nothing else for the families here: no units, no `_created`.)
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "].into_iter().find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// `counter` follows a total counted elsewhere since start (the engine's,
/// the relay's, the writer's: they count without a lock, and are read here
/// once a second): add what the total grew since `seen`, its last reading.
fn follow(counter: &Counter, total: u64, seen: u64) {
    counter.inc_by(total.saturating_sub(seen));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_their_total_series_in_the_prometheus_text() {
        let om = "# HELP x_calls Calls.\n# TYPE x_calls counter\nx_calls_total{a=\"b\"} 3\n\
                  # HELP x_active Active.\n# TYPE x_active gauge\nx_active 1\n# EOF\n";
        assert_eq!(
            prometheus_text(om),
            "# HELP x_calls_total Calls.\n# TYPE x_calls_total counter\nx_calls_total{a=\"b\"} 3\n\
             # HELP x_active Active.\n# TYPE x_active gauge\nx_active 1\n"
        );
    }
}
