//! `[auth]`: what digest authentication shares between routers.
//!
//! A 407's nonce is an HMAC of its time and realm under the nonce secret
//! (`trunkline_sip_core::digest::NonceKey`): nothing is kept per nonce, so
//! routers that share the secret (`nonce_secret_file`) accept each
//! other's nonces, and a client challenged by one router may send its
//! credentials to another (DNS SRV, a load balancer). Without the key each
//! router makes a random secret at start.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    /// A file holding the nonce secret (at least 32 bytes; not readable by every user).
    pub(super) nonce_secret_file: Option<Spanned<PathBuf>>,
}

/// Shortest nonce secret accepted.
const MIN_SECRET: usize = 32;

/// The nonce secret: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct NonceSecret(Arc<[u8]>);

impl NonceSecret {
    /// The secret itself (for the nonce key only).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceSecret(..)")
    }
}

/// Read `[auth] nonce_secret_file` (relative to `base`), if set.
pub(super) fn nonce_secret(
    cx: &Ctx<'_>,
    raw: &RawAuth,
    base: &std::path::Path,
) -> Result<Option<NonceSecret>, ConfigError> {
    let Some(file) = &raw.nonce_secret_file else { return Ok(None) };
    let key = "auth.nonce_secret_file";
    let path = base.join(file.get_ref());
    let refuse = |message: String| cx.err(file.span(), key, message);
    let meta = std::fs::metadata(&path).map_err(|e| refuse(format!("cannot read {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o004 != 0 {
            return Err(refuse(format!(
                "{} is readable by every user (mode {mode:o}): `chmod 600` it (the secret lets anyone mint nonces)",
                path.display()
            )));
        }
    }
    let bytes = std::fs::read(&path).map_err(|e| refuse(format!("cannot read {}: {e}", path.display())))?;
    let end = bytes.len() - bytes.iter().rev().take_while(|&&b| b == b'\n' || b == b'\r').count();
    if end < MIN_SECRET {
        return Err(refuse(format!(
            "{} holds {end} bytes; the secret needs at least {MIN_SECRET} (e.g. `head -c 48 /dev/urandom | base64 > FILE`)",
            path.display()
        )));
    }
    Ok(Some(NonceSecret(bytes[..end].into())))
}
