//! `[store]`: state shared with other routers on servers the operator
//! runs. Every key is optional; without `[store]` plugin kv lives in the
//! router (and in its embedded store across restarts).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    /// `redis://[:password@]host[:port][/db]`: plugin kv in Redis.
    redis_url: Option<Spanned<String>>,
    /// How long one hook may wait on Redis in all (ms).
    redis_timeout_ms: Option<Spanned<u64>>,
}

/// Default of `[store] redis_timeout_ms`: a hook's kv calls wait at most
/// this long in all (a Redis on the LAN answers in well under 1 ms).
const REDIS_TIMEOUT_MS: u64 = 20;

/// A server URL that may hold a password: shown with the password hidden.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: String) -> Self {
        SecretUrl(url)
    }

    /// The URL itself (for the client only).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// `scheme://user:***@host/...`: the password never reaches a log.
impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.0;
        let Some((scheme, rest)) = url.split_once("://") else { return f.write_str("(url)") };
        match rest.split_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or("", |(u, _)| u);
                write!(f, "{scheme}://{user}:***@{host}")
            }
            None => f.write_str(url),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({self})")
    }
}

/// Plugin kv in Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSettings {
    pub url: SecretUrl,
    /// How long one hook may wait on Redis in all.
    pub timeout: Duration,
}

/// `[store]` as validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreSettings {
    pub redis: Option<RedisSettings>,
}

pub(super) fn store(cx: &Ctx<'_>, raw: &RawStore) -> Result<StoreSettings, ConfigError> {
    let timeout = match &raw.redis_timeout_ms {
        Some(t) if !(1..=1000).contains(t.get_ref()) => {
            return Err(cx.err(t.span(), "store.redis_timeout_ms", "must be 1..=1000"))
        }
        Some(t) => *t.get_ref(),
        None => REDIS_TIMEOUT_MS,
    };
    let Some(url) = &raw.redis_url else { return Ok(StoreSettings::default()) };
    let key = "store.redis_url";
    let text = url.get_ref();
    if text.starts_with("rediss://") {
        return Err(cx.err(
            url.span(),
            key,
            "TLS to Redis (rediss://) is not built in: use redis:// on a private network or through a TLS tunnel",
        ));
    }
    if !text.starts_with("redis://") && !text.starts_with("redis+unix://") && !text.starts_with("unix://") {
        return Err(cx.err(url.span(), key, "must be redis://[:password@]host[:port][/db] or unix:///path"));
    }
    // Parsed now (no connection) so that a bad URL is refused at load.
    redis::Client::open(text.as_str()).map_err(|e| cx.err(url.span(), key, format!("not a Redis URL: {e}")))?;
    Ok(StoreSettings {
        redis: Some(RedisSettings { url: SecretUrl(text.clone()), timeout: Duration::from_millis(timeout) }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        let shown = SecretUrl("redis://app:s3cret@10.0.0.5:6379/2".into()).to_string();
        assert_eq!(shown, "redis://app:***@10.0.0.5:6379/2");
        assert_eq!(SecretUrl("redis://:s3cret@db".into()).to_string(), "redis://:***@db");
        assert!(!format!("{:?}", SecretUrl("redis://:s3cret@db".into())).contains("s3cret"));
        assert_eq!(SecretUrl("redis://127.0.0.1:6379".into()).to_string(), "redis://127.0.0.1:6379");
    }
}
