//! `[store]`: state shared with other routers on servers the operator
//! runs. Every key is optional and each backend is independent: without
//! `[store]` plugin kv lives in the router (and in its embedded store
//! across restarts) and call records in the embedded store.

use std::fmt;
use std::path::{Path, PathBuf};
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
    /// The CA (PEM) that signed the Redis server's certificate (`rediss://`);
    /// without it, the system's roots.
    redis_ca_file: Option<Spanned<PathBuf>>,
    /// `postgres://user[:password]@host[:port]/db`: call records and the audit log in PostgreSQL.
    postgres_url: Option<Spanned<String>>,
    /// How long one PostgreSQL connection attempt or statement may take (ms).
    postgres_timeout_ms: Option<Spanned<u64>>,
    /// The CA (PEM) that signed the PostgreSQL server's certificate
    /// (`sslmode=require`); without it, the system's roots.
    postgres_ca_file: Option<Spanned<PathBuf>>,
}

/// Default of `[store] redis_timeout_ms`: a hook's kv calls wait at most
/// this long in all (a Redis on the LAN answers in well under 1 ms).
const REDIS_TIMEOUT_MS: u64 = 20;
/// Default of `[store] postgres_timeout_ms`: the records writer is off the
/// hot path, so a slow database only makes records wait in memory.
const POSTGRES_TIMEOUT_MS: u64 = 5_000;

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

/// `scheme://user:***@host/...`: the password never reaches a log (nor a
/// query string, which may hold one).
impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.0;
        let Some((scheme, rest)) = url.split_once("://") else { return f.write_str("(url)") };
        let rest = match rest.split_once('?') {
            Some((before, _)) => before,
            None => rest,
        };
        match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => write!(f, "{scheme}://{user}:***@{host}"),
                // A user name without a password.
                None => write!(f, "{scheme}://{userinfo}@{host}"),
            },
            None => write!(f, "{scheme}://{rest}"),
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
    /// `redis_ca_file`'s certificates (PEM), read at load: the roots a
    /// `rediss://` server's certificate must chain to (`None`: the system's).
    pub ca_pem: Option<Vec<u8>>,
}

/// Call records and the audit log in PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresSettings {
    pub url: SecretUrl,
    /// How long one connection attempt or statement may take.
    pub timeout: Duration,
    /// `postgres_ca_file`'s certificates (PEM), read at load (`None`: the system's roots).
    pub ca_pem: Option<Vec<u8>>,
}

/// `[store]` as validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreSettings {
    pub redis: Option<RedisSettings>,
    pub postgres: Option<PostgresSettings>,
}

/// `records_on`: `[records] enabled` (PostgreSQL holds records, so it needs them on).
/// `base`: the configuration's folder (relative paths start there).
pub(super) fn store(cx: &Ctx<'_>, raw: &RawStore, records_on: bool, base: &Path) -> Result<StoreSettings, ConfigError> {
    let postgres = postgres(cx, raw, base)?;
    if let (Some(_), Some(url), false) = (&postgres, &raw.postgres_url, records_on) {
        return Err(cx.err(
            url.span(),
            "store.postgres_url",
            "holds call records, but [records] enabled = false: turn records on or remove the key",
        ));
    }
    Ok(StoreSettings { redis: redis(cx, raw, base)?, postgres })
}

fn redis(cx: &Ctx<'_>, raw: &RawStore, base: &Path) -> Result<Option<RedisSettings>, ConfigError> {
    let timeout = match &raw.redis_timeout_ms {
        Some(t) if !(1..=1000).contains(t.get_ref()) => {
            return Err(cx.err(t.span(), "store.redis_timeout_ms", "must be 1..=1000"))
        }
        Some(t) => *t.get_ref(),
        None => REDIS_TIMEOUT_MS,
    };
    let Some(url) = &raw.redis_url else { return Ok(None) };
    let key = "store.redis_url";
    let text = url.get_ref();
    let tls = text.starts_with("rediss://");
    if !tls && !text.starts_with("redis://") && !text.starts_with("redis+unix://") && !text.starts_with("unix://") {
        return Err(cx.err(
            url.span(),
            key,
            "must be redis://[:password@]host[:port][/db], rediss://... (TLS) or unix:///path",
        ));
    }
    if tls && text.contains('#') {
        return Err(cx.err(url.span(), key, "the server's certificate is always checked (no #insecure)"));
    }
    let ca_pem = match &raw.redis_ca_file {
        Some(f) if !tls => {
            return Err(cx.err(f.span(), "store.redis_ca_file", "only for TLS: redis_url must be rediss://"))
        }
        Some(f) => Some(read_ca(cx, f, base, "store.redis_ca_file")?),
        None => None,
    };
    // Parsed now (no connection) so that a bad URL is refused at load.
    redis::Client::open(text.as_str()).map_err(|e| cx.err(url.span(), key, format!("not a Redis URL: {e}")))?;
    Ok(Some(RedisSettings { url: SecretUrl(text.clone()), timeout: Duration::from_millis(timeout), ca_pem }))
}

/// A CA file's PEM, with at least one certificate in it.
fn read_ca(cx: &Ctx<'_>, file: &Spanned<PathBuf>, base: &Path, key: &str) -> Result<Vec<u8>, ConfigError> {
    let path = base.join(file.get_ref());
    let pem =
        std::fs::read(&path).map_err(|e| cx.err(file.span(), key, format!("cannot read {}: {e}", path.display())))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice()).filter(Result::is_ok).count();
    if certs == 0 {
        return Err(cx.err(file.span(), key, format!("{}: no PEM certificate in it", path.display())));
    }
    Ok(pem)
}

fn postgres(cx: &Ctx<'_>, raw: &RawStore, base: &Path) -> Result<Option<PostgresSettings>, ConfigError> {
    let timeout = match &raw.postgres_timeout_ms {
        Some(t) if !(100..=60_000).contains(t.get_ref()) => {
            return Err(cx.err(t.span(), "store.postgres_timeout_ms", "must be 100..=60000"))
        }
        Some(t) => *t.get_ref(),
        None => POSTGRES_TIMEOUT_MS,
    };
    let Some(url) = &raw.postgres_url else { return Ok(None) };
    let key = "store.postgres_url";
    let text = url.get_ref();
    if !text.starts_with("postgres://") && !text.starts_with("postgresql://") {
        return Err(cx.err(url.span(), key, "must be postgres://user[:password]@host[:port]/database"));
    }
    // Parsed now (no connection) so that a bad URL is refused at load.
    let parsed: postgres::Config =
        text.parse().map_err(|e| cx.err(url.span(), key, format!("not a PostgreSQL URL: {e}")))?;
    let tls = parsed.get_ssl_mode() == postgres::config::SslMode::Require;
    let ca_pem = match &raw.postgres_ca_file {
        Some(f) if !tls => {
            return Err(cx.err(
                f.span(),
                "store.postgres_ca_file",
                "only for TLS: add ?sslmode=require to postgres_url",
            ))
        }
        Some(f) => Some(read_ca(cx, f, base, "store.postgres_ca_file")?),
        None => None,
    };
    if parsed.get_hosts().is_empty() {
        return Err(cx.err(url.span(), key, "names no host"));
    }
    Ok(Some(PostgresSettings { url: SecretUrl(text.clone()), timeout: Duration::from_millis(timeout), ca_pem }))
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
        let pg = SecretUrl("postgres://rec:p@ss@db:5432/calls?password=x&sslmode=disable".into()).to_string();
        assert_eq!(pg, "postgres://rec:***@db:5432/calls");
        assert_eq!(SecretUrl("postgres://rec@db/calls".into()).to_string(), "postgres://rec@db/calls");
    }
}
