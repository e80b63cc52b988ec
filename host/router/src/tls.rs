//! TLS for SIP (`tls://` listeners and `;transport=tls` / `sips:` targets)
//! with rustls: TLS 1.2 and 1.3 only, server certificates of targets
//! verified against the system's roots or a configured CA bundle.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// `[sip] tls = { cert, key, ca }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain presented by `tls://` listeners.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// PEM CA bundle trusted for targets' certificates (else the system's roots).
    pub ca: Option<PathBuf>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Only TLS 1.3 and 1.2: nothing older is even offered.
const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut BufReader::new(f))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut BufReader::new(f))
        .map_err(|e| format!("{}: not a PEM private key: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no private key in it", path.display()))
}

/// The configuration of `tls://` listeners.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let (Some(cert), Some(key_path)) = (&files.cert, &files.key) else {
        return Err("a tls:// listener needs sip.tls.cert and sip.tls.key".into());
    };
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs(cert)?, key(key_path)?)
        .map_err(|e| format!("{} and {} do not make a usable certificate: {e}", cert.display(), key_path.display()))?;
    Ok(Arc::new(config))
}

/// A client configuration that trusts no server (TLS 1.2+, our provider):
/// every `https://` connection made with it fails verification, with the reason.
pub fn client_config_trusting_none() -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .expect("the provider supports TLS 1.2 and 1.3")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    Arc::new(config)
}

/// The configuration for connecting to `;transport=tls` targets.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match &files.ca {
        Some(ca) => {
            for c in certs(ca)? {
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
        }
        None => system_roots(&mut roots, "TLS targets will fail verification unless sip.tls.ca is set"),
    }
    verifying(roots)
}

/// A client configuration for a server the router stores state on
/// (PostgreSQL): its certificate verified against `ca_pem` (PEM
/// certificates) or, without it, the system's roots.
pub fn client_config_for(ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(mut pem) => {
            for c in rustls_pemfile::certs(&mut pem) {
                roots.add(c.map_err(|e| format!("not PEM certificates: {e}"))?).map_err(|e| e.to_string())?;
            }
        }
        None => system_roots(&mut roots, "TLS servers will fail verification unless a CA file is set"),
    }
    verifying(roots)
}

/// The system's roots (/etc/ssl/certs and the like) into `roots`; `else_what`: what follows if there are none.
fn system_roots(roots: &mut RootCertStore, else_what: &str) {
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!("no system root certificates found: {else_what}");
    }
}

/// TLS 1.2+, our provider, servers verified against `roots`.
fn verifying(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
