//! SDES (RFC 4568): the `a=crypto` lines that carry SRTP keys in session
//! descriptions. The router terminates SRTP on each leg: it reads the key
//! a party will encrypt with from that party's description, and gives each
//! party a key of its own to decrypt what the router sends it.
//!
//! Supported: `AES_CM_128_HMAC_SHA1_80` (preferred) and
//! `AES_CM_128_HMAC_SHA1_32`, one `inline:` key each, no lifetime, no MKI,
//! no session parameters. Anything else in a line makes that line
//! unacceptable (it is refused in the answer, not ignored).
//!
//! Keys never appear in a `Debug` or `Display` output.

use base64::Engine as _;

/// Length of a master key and salt together (AES-128: 16 + 14 bytes).
pub const MASTER_LEN: usize = 30;

/// A crypto suite the router speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Suite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag (preferred).
    AesCm128HmacSha1_80,
    /// The same with a 32-bit tag.
    AesCm128HmacSha1_32,
}

impl Suite {
    /// In the order of the router's preference.
    pub const ALL: [Suite; 2] = [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32];

    /// The name in SDP.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    fn parse(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// An SRTP master key and salt. Its `Debug` shows no byte of it.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey(pub [u8; MASTER_LEN]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(redacted)")
    }
}

impl MasterKey {
    /// The master key (first 16 bytes).
    pub fn key(&self) -> &[u8] {
        &self.0[..16]
    }

    /// The master salt (last 14 bytes).
    pub fn salt(&self) -> &[u8] {
        &self.0[16..]
    }
}

/// SRTP agreed with one party: the suite, the key it encrypts what it
/// sends with (`theirs`), and the key the router encrypts what it sends
/// that party with (`ours`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srtp {
    /// The suite agreed.
    pub suite: Suite,
    /// The party's key (what it sends is decrypted with it).
    pub theirs: MasterKey,
    /// The router's key for the party (what it is sent is encrypted with it).
    pub ours: MasterKey,
}

/// One acceptable `a=crypto` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crypto {
    /// Its tag (the answer names the offer's line by it).
    pub tag: u32,
    /// Its crypto suite.
    pub suite: Suite,
    /// The key its writer encrypts with.
    pub key: MasterKey,
}

/// Why an `a=crypto` line is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Not `TAG SUITE inline:KEY`.
    #[error("not `TAG SUITE inline:KEY`")]
    Syntax,
    /// A suite the router does not speak.
    #[error("crypto suite {0} is not supported (AES_CM_128_HMAC_SHA1_80 or _32)")]
    Suite(String),
    /// The key is not base64 of 30 bytes.
    #[error("the key is not base64 of 30 bytes")]
    Key,
    /// A key lifetime.
    #[error("key lifetimes are not supported")]
    Lifetime,
    /// A master key identifier.
    #[error("MKI is not supported")]
    Mki,
    /// Several keys in one line.
    #[error("more than one key is not supported")]
    Keys,
    /// A session parameter (KDR, UNENCRYPTED_SRTP...).
    #[error("session parameter {0} is not supported")]
    SessionParam(String),
}

impl Crypto {
    /// Parse the value of an `a=crypto:` attribute.
    pub fn parse(value: &str) -> Result<Crypto, CryptoError> {
        let mut words = value.split_ascii_whitespace();
        let tag: u32 = words.next().and_then(|t| t.parse().ok()).ok_or(CryptoError::Syntax)?;
        let suite_name = words.next().ok_or(CryptoError::Syntax)?;
        let suite = Suite::parse(suite_name).ok_or_else(|| CryptoError::Suite(suite_name.to_owned()))?;
        let keys = words.next().ok_or(CryptoError::Syntax)?;
        if let Some(p) = words.next() {
            return Err(CryptoError::SessionParam(p.chars().take(40).collect()));
        }
        if keys.contains(';') {
            return Err(CryptoError::Keys);
        }
        let inline = keys.strip_prefix("inline:").ok_or(CryptoError::Syntax)?;
        let mut parts = inline.split('|');
        let material = parts.next().unwrap_or_default();
        match (parts.next(), parts.next()) {
            (None, _) => {}
            (Some(p), None) if p.contains(':') => return Err(CryptoError::Mki),
            _ => return Err(CryptoError::Lifetime),
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(material).map_err(|_| CryptoError::Key)?;
        let key: [u8; MASTER_LEN] = bytes.try_into().map_err(|_| CryptoError::Key)?;
        Ok(Crypto { tag, suite, key: MasterKey(key) })
    }

    /// The attribute value: `TAG SUITE inline:KEY`.
    pub fn to_value(&self) -> String {
        let key = base64::engine::general_purpose::STANDARD.encode(self.key.0);
        format!("{} {} inline:{key}", self.tag, self.suite.name())
    }
}

/// The line the router accepts from `values` (a party's `a=crypto`
/// lines, in its order): the first with the preferred suite, else the
/// first acceptable one. `Err`: why none is (the first line's reason).
pub fn choose<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Crypto, CryptoError> {
    let mut first_error = None;
    let mut ok = Vec::new();
    for v in values {
        match Crypto::parse(v) {
            Ok(c) => ok.push(c),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    ok.sort_by_key(|c| c.suite); // stable: the party's order within a suite
    ok.into_iter().next().ok_or(first_error.unwrap_or(CryptoError::Syntax))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"; // RFC 4568 §9.1

    #[test]
    fn the_rfc_example_parses_and_prints_back() {
        let c = Crypto::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")).unwrap();
        assert_eq!((c.tag, c.suite), (1, Suite::AesCm128HmacSha1_80));
        assert_eq!(c.to_value(), format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"));
        assert!(!format!("{c:?}").contains(KEY), "{c:?}");
        assert!(format!("{:?}", c.key).contains("redacted"));
    }

    #[test]
    fn what_the_router_does_not_support_is_refused_with_the_reason() {
        let e = |v: &str| Crypto::parse(v).unwrap_err();
        assert_eq!(e(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4")), CryptoError::Lifetime);
        assert_eq!(e(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4")), CryptoError::Mki);
        assert_eq!(e(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20")), CryptoError::Lifetime);
        assert_eq!(
            e(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR=1")),
            CryptoError::SessionParam("KDR=1".into())
        );
        assert_eq!(e(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY};inline:{KEY}")), CryptoError::Keys);
        assert_eq!(
            e(&format!("1 AES_256_CM_HMAC_SHA1_80 inline:{KEY}")),
            CryptoError::Suite("AES_256_CM_HMAC_SHA1_80".into())
        );
        assert_eq!(e("1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ="), CryptoError::Key);
        assert_eq!(e("x AES_CM_128_HMAC_SHA1_80"), CryptoError::Syntax);
        assert_eq!(e(""), CryptoError::Syntax);
    }

    #[test]
    fn the_preferred_suite_wins_whatever_the_order_and_bad_lines_are_skipped() {
        let lines = [
            format!("1 AES_256_CM_HMAC_SHA1_80 inline:{KEY}"),
            format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}"),
            format!("3 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4"),
            format!("4 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
        ];
        let c = choose(lines.iter().map(String::as_str)).unwrap();
        assert_eq!((c.tag, c.suite), (4, Suite::AesCm128HmacSha1_80));
        let c = choose(lines[..3].iter().map(String::as_str)).unwrap();
        assert_eq!(c.tag, 2, "_32 when _80 is not acceptable");
        assert_eq!(choose([lines[0].as_str()]).unwrap_err(), CryptoError::Suite("AES_256_CM_HMAC_SHA1_80".into()));
    }
}
