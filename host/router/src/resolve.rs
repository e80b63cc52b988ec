//! The driver's side of target name resolution: answers the engine's
//! [`Question`]s off its loop (the engine's side, with the cache and the
//! RFC 3263 order, is `engine/dns.rs`).
//!
//! - Without `sip.dns_servers`: host names through the system resolver
//!   (`getaddrinfo`: `/etc/hosts`, then DNS), SRV records through the DNS
//!   servers of `/etc/resolv.conf`.
//! - With `sip.dns_servers`: both through those servers only.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use tokio::sync::mpsc;

use crate::engine::{Answer, Question, SrvRecord};

/// How long a question may take before the call goes past that target
/// (the reference's failover on silence, 4 s).
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(4);

/// Answers questions; cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    /// DNS client (SRV always; A/AAAA too when servers are configured).
    dns: Option<Arc<TokioResolver>>,
    /// Host names go to the DNS client, not the system resolver.
    servers_configured: bool,
}

impl Resolver {
    /// A resolver using `servers`, or the system's configuration if empty.
    /// Without a usable system configuration, SRV lookups fail (and
    /// targets fall back to their host's addresses); logged once here.
    pub fn new(servers: &[SocketAddr]) -> Resolver {
        let built = if servers.is_empty() {
            TokioResolver::builder_tokio().and_then(|b| b.build())
        } else {
            let name_servers = servers
                .iter()
                .map(|s| {
                    let (mut udp, mut tcp) = (ConnectionConfig::udp(), ConnectionConfig::tcp());
                    udp.port = s.port();
                    tcp.port = s.port();
                    NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                })
                .collect();
            let config = ResolverConfig::from_name_servers(name_servers);
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default()).build()
        };
        let dns = match built {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("no DNS client ({e}): SRV records are not looked up");
                None
            }
        };
        Resolver { dns: dns.map(Arc::new), servers_configured: !servers.is_empty() }
    }

    /// Look `question` up in a task and send the answer to `done`.
    pub fn spawn(&self, question: Question, done: mpsc::Sender<(Question, Result<Answer, String>)>) {
        let me = self.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(RESOLVE_TIMEOUT, me.answer(&question)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs())),
            };
            let _ = done.send((question, result)).await;
        });
    }

    async fn answer(&self, question: &Question) -> Result<Answer, String> {
        match question {
            Question::Host(name) => match (&self.dns, self.servers_configured) {
                (Some(dns), true) => {
                    let ips = dns.lookup_ip(fqdn(name)).await.map_err(|e| e.to_string())?;
                    Ok(Answer::Addrs(unique(ips.iter())))
                }
                _ => {
                    let addrs = tokio::net::lookup_host((name.as_str(), 0)).await.map_err(|e| e.to_string())?;
                    Ok(Answer::Addrs(unique(addrs.map(|a| a.ip()))))
                }
            },
            Question::Srv(name) => {
                let dns = self.dns.as_ref().ok_or("no DNS configuration")?;
                let found = dns.srv_lookup(fqdn(name)).await.map_err(|e| e.to_string())?;
                let records = found
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        hickory_resolver::proto::rr::RData::SRV(srv) => Some(SrvRecord {
                            priority: srv.priority,
                            weight: srv.weight,
                            port: srv.port,
                            target: trim_dot(&srv.target.to_ascii()),
                        }),
                        _ => None,
                    })
                    .collect();
                Ok(Answer::Srv(records))
            }
        }
    }
}

/// `name` as a fully qualified name: no search domains are appended.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// A DNS name without its root dot (`.` stays `.`).
fn trim_dot(name: &str) -> String {
    match name.strip_suffix('.') {
        Some("") | None => name.to_owned(),
        Some(n) => n.to_owned(),
    }
}

/// Addresses in the resolver's order, without duplicates.
fn unique(ips: impl Iterator<Item = IpAddr>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in ips {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}
