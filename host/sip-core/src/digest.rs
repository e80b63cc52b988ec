//! HTTP digest authentication for SIP (RFC 3261 §22.4, RFC 7616): parsing
//! `Proxy-Authorization`, building `Proxy-Authenticate` challenges,
//! stateless time-limited nonces bound to a server secret, response
//! checks for MD5 and SHA-256 with `qop=auth`, and nonce-count replay
//! detection in bounded memory. Sans-IO: time is an argument.

use std::collections::{HashMap, VecDeque};

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest hash algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5` (RFC 2617; what most SIP equipment speaks).
    Md5,
    /// `SHA-256` (RFC 7616).
    Sha256,
}

impl Algorithm {
    /// The `algorithm=` token.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why an `Authorization`/`Proxy-Authorization` value was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not the `Digest` scheme.
    #[error("not a Digest credential")]
    Scheme,
    /// Broken syntax.
    #[error("malformed Digest credential: {0}")]
    Syntax(&'static str),
    /// A parameter the check needs is absent.
    #[error("Digest credential without `{0}`")]
    Missing(&'static str),
    /// An algorithm or qop we do not offer.
    #[error("unsupported {0}")]
    Unsupported(&'static str),
}

/// A parsed digest response (the client's credentials for one request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestResponse {
    /// The credential's user name.
    pub username: String,
    /// The realm it answers (ours: the trunk's termination domain).
    pub realm: String,
    /// The nonce it answers.
    pub nonce: String,
    /// The digest URI (the request's Request-URI).
    pub uri: String,
    /// The hash to check, lower-case hex.
    pub response: String,
    /// The hash algorithm.
    pub algorithm: Algorithm,
    /// The client's nonce.
    pub cnonce: String,
    /// Nonce count, parsed from 8 hex digits.
    pub nc: u32,
    /// The `nc` parameter as sent (it enters the hash verbatim).
    pub nc_text: String,
}

/// Longest credential value accepted.
const MAX_CREDENTIAL: usize = 4096;

/// `Digest k=v, k="v", ...` into (lower-case key, value) pairs.
fn params(value: &str) -> Result<Vec<(String, String)>, DigestError> {
    if value.len() > MAX_CREDENTIAL {
        return Err(DigestError::Syntax("too long"));
    }
    let v = value.trim_start();
    let rest = match v.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("digest") => rest,
        _ => return Err(DigestError::Scheme),
    };
    let mut out = Vec::new();
    let mut chars = rest.char_indices().peekable();
    let bytes = rest;
    loop {
        // Skip separators.
        while chars.peek().is_some_and(|(_, c)| *c == ',' || c.is_ascii_whitespace()) {
            chars.next();
        }
        let Some(&(start, _)) = chars.peek() else { break };
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c == ',' || c.is_ascii_whitespace() {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        let key = bytes[start..end].to_ascii_lowercase();
        while chars.peek().is_some_and(|(_, c)| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.next().map(|(_, c)| c) != Some('=') || key.is_empty() {
            return Err(DigestError::Syntax("expected key=value"));
        }
        while chars.peek().is_some_and(|(_, c)| c.is_ascii_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek().is_some_and(|(_, c)| *c == '"') {
            chars.next();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => val.push(e),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => val.push(c),
                }
            }
            if !closed {
                return Err(DigestError::Syntax("unterminated quoted string"));
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c == ',' || c.is_ascii_whitespace() {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.push((key, val));
    }
    Ok(out)
}

impl DigestResponse {
    /// Parse a `Proxy-Authorization` (or `Authorization`) value. Never panics.
    pub fn parse(value: &str) -> Result<DigestResponse, DigestError> {
        let ps = params(value)?;
        let get = |k: &str| ps.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let need = |k: &'static str| get(k).ok_or(DigestError::Missing(k));
        let algorithm = match get("algorithm").as_deref() {
            None => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Algorithm::Sha256,
            Some(_) => return Err(DigestError::Unsupported("algorithm")),
        };
        match get("qop").as_deref() {
            Some(q) if q.eq_ignore_ascii_case("auth") => {}
            Some(_) => return Err(DigestError::Unsupported("qop")),
            None => return Err(DigestError::Missing("qop")),
        }
        let nc_text = need("nc")?;
        let nc = u32::from_str_radix(&nc_text, 16).map_err(|_| DigestError::Syntax("nc is not hex"))?;
        if nc_text.len() != 8 {
            return Err(DigestError::Syntax("nc is not 8 hex digits"));
        }
        Ok(DigestResponse {
            username: need("username")?,
            realm: need("realm")?,
            nonce: need("nonce")?,
            uri: need("uri")?,
            response: need("response")?.to_ascii_lowercase(),
            algorithm,
            cnonce: need("cnonce")?,
            nc,
            nc_text,
        })
    }

    /// The response a client knowing `password` computes for `method`.
    pub fn expected(&self, password: &str, method: &str) -> String {
        let a = self.algorithm;
        let ha1 = a.hash(&format!("{}:{}:{}", self.username, self.realm, password));
        let ha2 = a.hash(&format!("{method}:{}", self.uri));
        a.hash(&format!("{ha1}:{}:{}:{}:auth:{ha2}", self.nonce, self.nc_text, self.cnonce))
    }

    /// Whether the response proves knowledge of `password` (constant time).
    pub fn verify(&self, password: &str, method: &str) -> bool {
        let want = self.expected(password, method);
        want.len() == self.response.len()
            && want.bytes().zip(self.response.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// A `Proxy-Authenticate` value offering `algorithm` with `qop="auth"`.
pub fn challenge(realm: &str, nonce: &str, algorithm: Algorithm, stale: bool) -> String {
    let stale = if stale { ", stale=true" } else { "" };
    format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}", algorithm.token())
}

/// What a nonce check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceState {
    /// Ours, for this realm, and fresh.
    Fresh,
    /// Ours but expired: challenge again with `stale=true`.
    Stale,
    /// Not minted by us (or for another realm).
    Forged,
}

/// Mints and checks stateless nonces: `TIMESTAMP.MAC`, where MAC is an
/// HMAC-SHA-256 of the timestamp and realm under the server secret.
#[derive(Clone)]
pub struct NonceKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(..)") // never print the secret
    }
}

impl NonceKey {
    /// A key from the server secret (at least 16 random bytes).
    pub fn new(secret: &[u8]) -> Self {
        NonceKey { secret: secret.to_vec() }
    }

    fn mac(&self, stamp: &str, realm: &str) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        m.update(stamp.as_bytes());
        m.update(b"\0");
        m.update(realm.as_bytes());
        hex(&m.finalize().into_bytes()[..16])
    }

    /// A nonce for `realm` minted at `now_secs` (Unix time).
    pub fn mint(&self, realm: &str, now_secs: u64) -> String {
        let stamp = format!("{now_secs:x}");
        format!("{stamp}.{}", self.mac(&stamp, realm))
    }

    /// Check a nonce presented for `realm` at `now_secs`; nonces live `ttl_secs`.
    pub fn check(&self, nonce: &str, realm: &str, now_secs: u64, ttl_secs: u64) -> NonceState {
        let Some((stamp, mac)) = nonce.split_once('.') else { return NonceState::Forged };
        let want = self.mac(stamp, realm);
        let same = want.len() == mac.len() && want.bytes().zip(mac.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0;
        let Ok(minted) = u64::from_str_radix(stamp, 16) else { return NonceState::Forged };
        match (same, now_secs.saturating_sub(minted) > ttl_secs || minted > now_secs + 60) {
            (false, _) => NonceState::Forged,
            (true, true) => NonceState::Stale,
            (true, false) => NonceState::Fresh,
        }
    }
}

/// Highest nonce count seen per nonce, in bounded memory: a count that
/// does not increase is a replay. When full, the oldest nonces are
/// forgotten (their next use is then challenged again as stale).
#[derive(Debug)]
pub struct ReplayGuard {
    seen: HashMap<String, u32>,
    order: VecDeque<String>,
    capacity: usize,
}

impl ReplayGuard {
    /// Remember at most `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        ReplayGuard { seen: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// Record `nc` for `nonce`; false if it is not higher than the last
    /// one seen, or if the nonce was forgotten (`known` = it was used before
    /// and evicted is indistinguishable from first use, so first uses must
    /// start at 1).
    pub fn accept(&mut self, nonce: &str, nc: u32) -> bool {
        match self.seen.get_mut(nonce) {
            Some(last) if nc <= *last => false,
            Some(last) => {
                *last = nc;
                true
            }
            None if nc != 1 => false,
            None => {
                if self.seen.len() >= self.capacity {
                    if let Some(old) = self.order.pop_front() {
                        self.seen.remove(&old);
                    }
                }
                self.seen.insert(nonce.to_owned(), nc);
                self.order.push_back(nonce.to_owned());
                true
            }
        }
    }

    /// Nonces remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1's example, adapted to SIP's method and URI.
    fn response(alg: &str, nc: &str) -> String {
        format!(
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             uri=\"/dir/index.html\", algorithm={alg}, nc={nc}, cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", \
             qop=auth, response=\"RESPONSE\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        )
    }

    #[test]
    fn rfc7616_examples_verify() {
        // The RFC's published responses for method GET and password "Circle of Life".
        let md5 = response("MD5", "00000001").replace("RESPONSE", "8ca523f5e9506fed4657c9700eebdbec");
        let sha = response("SHA-256", "00000001")
            .replace("RESPONSE", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
        for v in [md5, sha] {
            let r = DigestResponse::parse(&v).unwrap();
            assert!(r.verify("Circle of Life", "GET"), "{v}");
            assert!(!r.verify("circle of life", "GET"));
            assert!(!r.verify("Circle of Life", "INVITE"), "the method is part of the hash");
        }
    }

    #[test]
    fn bad_credentials_are_errors_not_panics() {
        assert_eq!(DigestResponse::parse("Basic abc"), Err(DigestError::Scheme));
        assert_eq!(
            DigestResponse::parse("Digest username=\"a"),
            Err(DigestError::Syntax("unterminated quoted string"))
        );
        assert_eq!(DigestResponse::parse("Digest username=\"a\", qop=auth-int"), Err(DigestError::Unsupported("qop")));
        assert!(DigestResponse::parse(&response("SHA-512-256", "00000001")).is_err());
        assert!(DigestResponse::parse(&response("MD5", "zz")).is_err());
        for junk in ["", "Digest", "Digest ,,,", "Digest =", "Digest a==b", "Digest \"", "Digest a=\"\\", "Digest é=ü"]
        {
            let _ = DigestResponse::parse(junk);
        }
        assert!(DigestResponse::parse(&format!("Digest username=\"{}\"", "a".repeat(5000))).is_err());
    }

    #[test]
    fn nonces_expire_and_cannot_be_forged() {
        let k = NonceKey::new(b"0123456789abcdef0123456789abcdef");
        let n = k.mint("acme.trunkline.test", 1_000);
        assert_eq!(k.check(&n, "acme.trunkline.test", 1_010, 300), NonceState::Fresh);
        assert_eq!(k.check(&n, "acme.trunkline.test", 1_400, 300), NonceState::Stale);
        assert_eq!(k.check(&n, "other.trunkline.test", 1_010, 300), NonceState::Forged, "bound to the realm");
        assert_eq!(
            NonceKey::new(b"another secret, another server!").check(&n, "acme.trunkline.test", 1_010, 300),
            NonceState::Forged
        );
        let forged = n.replace(&n[..3], "3e9");
        assert_eq!(k.check(&forged, "acme.trunkline.test", 1_010, 300), NonceState::Forged, "the timestamp is signed");
        assert_eq!(k.check("garbage", "acme.trunkline.test", 1_010, 300), NonceState::Forged);
        assert!(challenge("r", "n", Algorithm::Sha256, true).ends_with("algorithm=SHA-256, qop=\"auth\", stale=true"));
    }

    #[test]
    fn nonce_counts_must_increase_and_memory_is_bounded() {
        let mut g = ReplayGuard::new(2);
        assert!(g.accept("a", 1));
        assert!(!g.accept("a", 1), "replay");
        assert!(g.accept("a", 2));
        assert!(!g.accept("b", 5), "a first use starts at 1");
        assert!(g.accept("b", 1) && g.accept("c", 1));
        assert_eq!(g.len(), 2, "the oldest nonce was forgotten");
        assert!(!g.accept("a", 3), "a forgotten nonce is not trusted again");
    }
}
