//! `Via` (RFC 3261 §20.42, §18.2.1 received/rport per RFC 3581).

use std::fmt;

/// One Via value: `SIP/2.0/UDP host:port;branch=z9hG4bK...;rport`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// `UDP`, `TCP`, `TLS`... upper-cased.
    pub transport: String,
    /// sent-by host (an IPv6 address without brackets).
    pub host: String,
    /// sent-by port, if given.
    pub port: Option<u16>,
    /// Parameters after the sent-by, without the leading `;`, as written.
    pub params: String,
}

/// RFC 3261 branch prefix marking a transaction-unique branch.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

impl Via {
    /// Parse one Via value (not a comma-separated list).
    pub fn parse(value: &str) -> Option<Via> {
        // LWS is allowed around the slashes of the sent-protocol (RFC 3261
        // §25.1): normalised, in a copy only when there is any.
        let value = value.trim();
        let value: std::borrow::Cow<'_, str> = if value.contains('\t') || value.contains(" /") || value.contains("/ ") {
            let mut v = value.replace('\t', " ");
            while v.contains(" /") || v.contains("/ ") {
                v = v.replace(" /", "/").replace("/ ", "/");
            }
            v.into()
        } else {
            value.into()
        };
        let (proto, rest) = value.split_once(' ')?;
        let mut parts = proto.split('/').map(str::trim);
        let (name, version, transport) = (parts.next()?, parts.next()?, parts.next()?);
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" || transport.is_empty() || parts.next().is_some() {
            return None;
        }
        let rest = rest.trim();
        let (sent_by, params) = rest.split_once(';').map(|(a, b)| (a.trim(), b.trim())).unwrap_or((rest, ""));
        let (host, port) = if let Some(v6) = sent_by.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.trim().parse().ok()?),
                None if after.trim().is_empty() => None,
                None => return None,
            };
            (h.to_owned(), port)
        } else {
            match sent_by.rsplit_once(':') {
                Some((h, p)) => (h.trim().to_owned(), Some(p.trim().parse().ok()?)),
                None => (sent_by.to_owned(), None),
            }
        };
        if host.is_empty() || host.contains(|c: char| c.is_ascii_whitespace()) {
            return None;
        }
        Some(Via { transport: transport.to_ascii_uppercase(), host, port, params: params.to_owned() })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        super::param(&self.params, "branch").filter(|b| !b.is_empty())
    }

    /// Whether the branch is RFC 3261-compliant (starts with the magic cookie).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// `host:port` as sent, for transaction matching (default port 5060/5061).
    pub fn sent_by(&self) -> String {
        let port = self.port.unwrap_or(if self.transport == "TLS" { 5061 } else { 5060 });
        if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} ", self.transport)?;
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if !self.params.is_empty() {
            write!(f, ";{}", self.params)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let v = Via::parse("SIP/2.0/udp 127.0.0.1:5070;branch=z9hG4bK776;rport").unwrap();
        assert_eq!((v.transport.as_str(), v.host.as_str(), v.port), ("UDP", "127.0.0.1", Some(5070)));
        assert_eq!(v.branch(), Some("z9hG4bK776"));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.to_string(), "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776;rport");
        assert_eq!(v.sent_by(), "127.0.0.1:5070");
    }

    #[test]
    fn ipv6_lws_and_defaults() {
        let v = Via::parse("SIP / 2.0 / TLS [2001:db8::9] ; branch = z9hG4bKx").unwrap();
        assert_eq!((v.host.as_str(), v.port, v.branch()), ("2001:db8::9", None, Some("z9hG4bKx")));
        assert_eq!(v.sent_by(), "[2001:db8::9]:5061");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "SIP/2.0/UDP", "HTTP/1.1/TCP h", "SIP/3.0/UDP h", "SIP/2.0/UDP h:port", "SIP/2.0/UDP [::1"] {
            assert!(Via::parse(bad).is_none(), "{bad}");
        }
    }
}
