//! `[[carrier]]` and `[trunk.termination]`: where terminating calls go and
//! who may place them. Validated at load: at least one authentication
//! scheme per trunk, passwords read from the environment or a file (never
//! from the configuration itself), gateway host names resolved to IPs.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use trunkline_sip_core::digest::Algorithm;

use super::{ConfigError, Ctx};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCarrier {
    name: Spanned<String>,
    gateways: Vec<Spanned<String>>,
    /// OPTIONS pings to each gateway this often (off when absent).
    health_check_interval_secs: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTermination {
    domain: Spanned<String>,
    carrier: Spanned<String>,
    #[serde(default)]
    acl: Vec<Spanned<String>>,
    #[serde(default)]
    credentials: Vec<Spanned<RawCredential>>,
    #[serde(default)]
    caller_ids: Vec<Spanned<String>>,
    /// Digest algorithms offered, most preferred first.
    digest_algorithms: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    username: String,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
}

/// A carrier ("PSTN side"): its gateways, each expanded to one target URI
/// per IP address its host resolved to, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Carrier {
    pub name: String,
    /// Gateway URIs, in order. A host name is resolved when a call needs
    /// it (each of its addresses tried in turn), like an origination URI's.
    pub gateways: Vec<String>,
    /// OPTIONS pings to each gateway this often, if set.
    pub health_check_interval: Option<Duration>,
}

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse `IP[/PREFIX]`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = ip.trim().parse().map_err(|_| format!("`{s}` is not an IP address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: prefix must be 0..={max}"))?,
        };
        Ok(Cidr { net, prefix })
    }

    /// Whether `ip` is inside (IPv4-mapped IPv6 addresses match IPv4 blocks).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// A password, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret read from the environment or a file.
    pub(crate) fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The password itself (for computing digests only).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// One username/password a trunk accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: Secret,
}

/// A trunk's termination settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Termination {
    /// Matched (case-insensitively) against the Request-URI host; also the digest realm.
    pub domain: String,
    /// Index into `Settings::carriers`.
    pub carrier: usize,
    /// Source addresses allowed (empty: any, digest then required).
    pub acl: Vec<Cidr>,
    /// Digest credentials (empty: none required, the ACL then required).
    pub credentials: Vec<Credential>,
    /// Caller IDs verified for this account besides its own numbers.
    pub caller_ids: Vec<String>,
    /// Digest algorithms offered in 407 challenges, most preferred first
    /// (default MD5 alone, what common equipment answers; `["SHA-256",
    /// "MD5"]` prefers SHA-256).
    pub digest_algorithms: Vec<Algorithm>,
}

impl RawTermination {
    pub(super) fn domain_span(&self) -> std::ops::Range<usize> {
        self.domain.span()
    }
}

/// Validate `[[carrier]]` tables; `has_listener` says which transports we
/// listen on (a gateway's transport needs a listener of it).
pub(super) fn carriers(
    cx: &Ctx<'_>,
    raw: &[RawCarrier],
    has_listener: impl Fn(trunkline_sip_core::Transport) -> bool,
) -> Result<Vec<Carrier>, ConfigError> {
    let mut out: Vec<Carrier> = Vec::new();
    for (ci, c) in raw.iter().enumerate() {
        let key = format!("carrier[{ci}]");
        let name = c.name.get_ref().clone();
        if name.is_empty() || out.iter().any(|o| o.name == name) {
            return Err(cx.err(c.name.span(), format!("{key}.name"), format!("`{name}` is empty or defined twice")));
        }
        if c.gateways.is_empty() {
            return Err(cx.err(c.name.span(), format!("{key}.gateways"), "at least one gateway is required"));
        }
        let mut gateways = Vec::new();
        for (gi, g) in c.gateways.iter().enumerate() {
            gateway(g.get_ref(), &has_listener).map_err(|e| cx.err(g.span(), format!("{key}.gateways[{gi}]"), e))?;
            gateways.push(g.get_ref().clone());
        }
        let health_check_interval = super::health_interval(cx, c.health_check_interval_secs.as_ref(), &key)?;
        out.push(Carrier { name, gateways, health_check_interval });
    }
    Ok(out)
}

/// A gateway URI: `sip:` or `sips:`, no user part (the dialed number goes
/// there), a known transport we listen on, an IP address or DNS name.
fn gateway(uri: &str, has_listener: impl Fn(trunkline_sip_core::Transport) -> bool) -> Result<(), String> {
    let lower = uri.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("sip:").or_else(|| lower.strip_prefix("sips:")) else {
        return Err(format!("`{uri}` is not a sip: or sips: URI"));
    };
    if rest.split([';', '?']).next().unwrap_or("").contains('@') {
        return Err(format!("`{uri}`: a gateway URI has no user part (the dialed number goes there)"));
    }
    let transport = trunkline_sip_core::Transport::of_uri(uri).ok_or_else(|| format!("`{uri}`: unknown transport"))?;
    if !has_listener(transport) {
        return Err(format!("`{uri}`: a {transport} gateway needs a {transport} listener in sip.listen"));
    }
    if crate::engine::uri_destination(uri).is_none() {
        return Err(format!("`{uri}`: the host is neither an IP address nor a DNS name"));
    }
    Ok(())
}

/// Validate one trunk's `[trunk.termination]`.
pub(super) fn termination(
    cx: &Ctx<'_>,
    tk: &str,
    raw: &RawTermination,
    carriers: &[Carrier],
    base: &Path,
) -> Result<Termination, ConfigError> {
    let key = format!("{tk}.termination");
    let domain = raw.domain.get_ref().to_ascii_lowercase();
    if domain.is_empty() || domain.contains([' ', ':', '@', ';']) {
        return Err(cx.err(raw.domain.span(), format!("{key}.domain"), format!("`{domain}` is not a domain name")));
    }
    let carrier = carriers.iter().position(|c| &c.name == raw.carrier.get_ref()).ok_or_else(|| {
        cx.err(
            raw.carrier.span(),
            format!("{key}.carrier"),
            format!("no [[carrier]] named `{}`", raw.carrier.get_ref()),
        )
    })?;
    let mut acl = Vec::new();
    for (i, a) in raw.acl.iter().enumerate() {
        acl.push(Cidr::parse(a.get_ref()).map_err(|e| cx.err(a.span(), format!("{key}.acl[{i}]"), e))?);
    }
    let mut credentials = Vec::new();
    for (i, c) in raw.credentials.iter().enumerate() {
        let ck = format!("{key}.credentials[{i}]");
        let r = c.get_ref();
        if r.username.is_empty() || r.username.contains(['"', '\\', '\r', '\n']) {
            return Err(cx.err(c.span(), format!("{ck}.username"), "must be non-empty, without quotes or line breaks"));
        }
        let password = super::read_secret(
            cx,
            c.span(),
            (&ck, "password", "passwords"),
            (r.password_env.as_deref(), r.password_file.as_deref()),
            base,
        )?;
        if password.is_empty() {
            return Err(cx.err(c.span(), &ck, "the password is empty"));
        }
        credentials.push(Credential { username: r.username.clone(), password: Secret(password) });
    }
    if acl.is_empty() && credentials.is_empty() {
        return Err(cx.err(
            raw.domain.span(),
            &key,
            "at least one authentication scheme is required: acl and/or credentials",
        ));
    }
    let mut caller_ids = Vec::new();
    for (i, n) in raw.caller_ids.iter().enumerate() {
        match trunkline_sip_core::E164::parse(n.get_ref()) {
            Some(e) => caller_ids.push(e.to_string()),
            None => {
                return Err(cx.err(
                    n.span(),
                    format!("{key}.caller_ids[{i}]"),
                    format!("`{}` is not E.164", n.get_ref()),
                ))
            }
        }
    }
    let digest_algorithms = match &raw.digest_algorithms {
        // MD5 alone, as Kamailio, OpenSIPS and FreeSWITCH challenge: SIPp
        // and many PBXs read only the first challenge and compute only MD5,
        // and libre-based clients (baresip 1.0) abandon the call on any
        // challenge they cannot answer, even after an MD5 one.
        // `["SHA-256", "MD5"]` is one key away.
        None => vec![Algorithm::Md5],
        Some(list) => {
            let mut algs = Vec::new();
            for a in list.get_ref() {
                let alg = match a.to_ascii_uppercase().as_str() {
                    "MD5" => Algorithm::Md5,
                    "SHA-256" => Algorithm::Sha256,
                    _ => {
                        return Err(cx.err(
                            list.span(),
                            format!("{key}.digest_algorithms"),
                            format!("`{a}`: MD5 or SHA-256"),
                        ))
                    }
                };
                if !algs.contains(&alg) {
                    algs.push(alg);
                }
            }
            if algs.is_empty() {
                return Err(cx.err(list.span(), format!("{key}.digest_algorithms"), "name at least one algorithm"));
            }
            algs
        }
    };
    Ok(Termination { domain, carrier, acl, credentials, caller_ids, digest_algorithms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped");
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()) && !v6.contains("2001:db9::1".parse().unwrap()));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains("127.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err() && Cidr::parse("nope").is_err());
    }

    #[test]
    fn gateways_are_checked_not_resolved() {
        let udp_only = |t: trunkline_sip_core::Transport| t == trunkline_sip_core::Transport::Udp;
        assert!(gateway("sip:127.0.0.1:5090", udp_only).is_ok());
        assert!(gateway("sip:gw.carrier.example", udp_only).is_ok(), "resolved when a call needs it");
        assert!(gateway("sip:127.0.0.1;transport=tcp", udp_only).unwrap_err().contains("needs a tcp listener"));
        assert!(gateway("sips:gw.example", |_| true).is_ok());
        assert!(gateway("sip:+1@gw.example", udp_only).unwrap_err().contains("no user part"));
        assert!(gateway("sip:gw_1.example", udp_only).unwrap_err().contains("neither an IP"));
        assert!(gateway("http://gw.example", udp_only).is_err());
        assert!(format!("{:?}", Secret("hunter2".into())) == "Secret(..)");
    }
}
