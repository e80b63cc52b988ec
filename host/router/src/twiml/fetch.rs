//! Fetching TwiML: an HTTP POST of the call's parameters (form-encoded,
//! as the reference platform sends them) with a deadline; and the WAV
//! files `<Play>` names, with a GET.
//!
//! Through reqwest (hyper): `http://` and `https://` (rustls on the ring
//! provider, TLS 1.2+, the server's certificate verified for the URL's host
//! against the system's roots or `sip.tls.ca`), no redirects followed, no
//! proxy from the environment, bodies up to a limit per kind (64 KiB for a
//! document, [`MAX_AUDIO_BYTES`] for a WAV file) read chunk by chunk, so a
//! hostile server cannot make the router hold more.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::MAX_DOCUMENT_BYTES;

/// Largest WAV file `<Play>` fetches (~17 minutes of G.711, ~8 of 16-bit PCM).
pub const MAX_AUDIO_BYTES: usize = 8 << 20;

/// A parsed `http://` or `https://host[:port]/path` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// `https://`: over TLS.
    pub secure: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parse an absolute `http://` or `https://` URL.
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let lower = url.to_ascii_lowercase();
        let (secure, rest) = if lower.starts_with("https://") {
            (true, &url[8..])
        } else if lower.starts_with("http://") {
            (false, &url[7..])
        } else {
            return Err(format!("`{url}` is not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err("credentials in the URL are not allowed (they would end up in logs)".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| format!("`{p}` is not a port"))?)
            }
            _ => (authority, if secure { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || path.contains([' ', '\r', '\n']) {
            return Err(format!("`{url}` is not a valid URL"));
        }
        let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
        Ok(HttpUrl { secure, host: host.to_owned(), port, path })
    }

    /// `target` relative to this URL (a `<Redirect>` may give a path).
    pub fn join(&self, target: &str) -> Result<HttpUrl, String> {
        if target.contains("://") {
            return HttpUrl::parse(target);
        }
        let path = if target.starts_with('/') {
            target.to_owned()
        } else {
            let dir = self.path.split('?').next().unwrap_or("/").rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            format!("{dir}/{target}")
        };
        HttpUrl::parse(&format!("{}://{}:{}{}", self.scheme(), self.host_for_url(), self.port, path))
    }

    fn scheme(&self) -> &'static str {
        if self.secure {
            "https"
        } else {
            "http"
        }
    }

    fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}{}", self.scheme(), self.host_for_url(), self.port, self.path)
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no answer within {0} ms")]
    Timeout(u128),
    #[error("connection: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("body is not UTF-8")]
    NotUtf8,
}

impl FetchError {
    /// What reqwest's error was, in our terms (the message chain, without
    /// the URL: a TwiML URL may carry the customer's query parameters).
    fn of(e: reqwest::Error, timeout: Duration) -> FetchError {
        if e.is_timeout() {
            return FetchError::Timeout(timeout.as_millis());
        }
        let mut chain = Vec::new();
        let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(c) = cause {
            chain.push(c.to_string());
            cause = c.source();
        }
        let text = chain.join(": ");
        let lower = text.to_ascii_lowercase();
        if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            FetchError::Tls(text)
        } else if e.is_connect() {
            FetchError::Connect(text)
        } else {
            FetchError::Malformed(if text.is_empty() { e.without_url().to_string() } else { text })
        }
    }
}

/// The HTTP client of disaster recovery: made once, one connection per
/// fetch.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
}

impl Fetcher {
    /// A client whose `https://` connections verify servers with `tls`
    /// (`None`: it trusts no server, so `https://` URLs fail with the reason).
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Result<Fetcher, String> {
        let tls = tls.unwrap_or_else(crate::tls::client_config_trusting_none);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent("trunkline")
            .http1_only()
            // One connection per fetch: DR fetches are rare, and a pooled
            // connection the server closed without saying so (no
            // `Connection: close`) would fail the next fetch.
            .pool_max_idle_per_host(0)
            .use_preconfigured_tls((*tls).clone())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Fetcher { client })
    }

    /// POST `params` to `url`; the body of a 2xx answer (a TwiML document,
    /// UTF-8, at most 64 KiB) within `timeout`.
    pub async fn post_form(
        &self,
        url: &HttpUrl,
        params: &[(String, String)],
        timeout: Duration,
    ) -> Result<String, FetchError> {
        let body: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
        let request = self
            .client
            .post(url.to_string())
            .header("Accept", "application/xml, text/xml")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.join("&"));
        let body = fetch(request, timeout, MAX_DOCUMENT_BYTES).await?;
        String::from_utf8(body).map_err(|_| FetchError::NotUtf8)
    }

    /// GET `url` (a `<Play>`ed file): the body of a 2xx answer within
    /// `timeout`, at most [`MAX_AUDIO_BYTES`].
    pub async fn get(&self, url: &HttpUrl, timeout: Duration) -> Result<Vec<u8>, FetchError> {
        let request = self.client.get(url.to_string()).header("Accept", "audio/wav, audio/x-wav, */*");
        fetch(request, timeout, MAX_AUDIO_BYTES).await
    }
}

/// Send `request`; the body of its 2xx answer, at most `limit` bytes,
/// all within `timeout`.
async fn fetch(request: reqwest::RequestBuilder, timeout: Duration, limit: usize) -> Result<Vec<u8>, FetchError> {
    let exchange = async {
        let mut response = request.send().await.map_err(|e| FetchError::of(e, timeout))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(FetchError::Status(status));
        }
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(FetchError::TooLarge(limit));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| FetchError::of(e, timeout))? {
            if chunk.len() > limit - body.len() {
                return Err(FetchError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| FetchError::Timeout(timeout.as_millis()))?
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server on loopback answering each connection with the next of
    /// `answers`, raw bytes as written (`None`: read the request, then say
    /// nothing and hold the connection open).
    async fn server(answers: Vec<Option<Vec<u8>>>) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for answer in answers {
                let Ok((mut s, _)) = listener.accept().await else { return };
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    match answer {
                        Some(bytes) => {
                            let _ = s.write_all(&bytes).await;
                            let _ = s.shutdown().await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        port
    }

    fn url(port: u16) -> HttpUrl {
        HttpUrl::parse(&format!("http://127.0.0.1:{port}/dr")).unwrap()
    }

    const DEADLINE: Duration = Duration::from_secs(5);

    /// A hostile or broken server's answer is an error through reqwest,
    /// never a panic, a hang past the deadline or more than the limit held.
    #[tokio::test]
    async fn hostile_responses_are_errors_and_the_limits_hold() {
        let fetcher = Fetcher::new(None).unwrap();
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let over = |n: usize| format!("{head}{n:x}\r\n{}\r\n0\r\n\r\n", "x".repeat(n)).into_bytes();
        let many_chunks = {
            let mut b = head.as_bytes().to_vec();
            for _ in 0..70 {
                b.extend_from_slice(format!("400\r\n{}\r\n", "y".repeat(1024)).as_bytes());
            }
            b.extend_from_slice(b"0\r\n\r\n");
            b
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("chunk size of 2^64-1", format!("{head}ffffffffffffffff\r\nx").into_bytes()),
            ("chunk size of 2^64-2", format!("{head}fffffffffffffffe\r\n").into_bytes()),
            ("negative chunk size", format!("{head}-1\r\n").into_bytes()),
            ("chunk without its CRLF", format!("{head}3\r\nabcXY0\r\n\r\n").into_bytes()),
            ("one chunk over 64 KiB", over(MAX_DOCUMENT_BYTES + 1)),
            ("70 chunks of 1 KiB", many_chunks),
            (
                "Content-Length of 2^64-1",
                b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\nabc".to_vec(),
            ),
            ("Content-Length over the limit", b"HTTP/1.1 200 OK\r\nContent-Length: 65537\r\n\r\nabc".to_vec()),
            ("negative Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\nabc".to_vec()),
            ("status 99999", b"HTTP/1.1 99999 OK\r\n\r\n".to_vec()),
            ("no status line", b"\r\n\r\n".to_vec()),
            ("garbage", b"garbage\r\n\r\n".to_vec()),
            (
                "a redirect (not followed)",
                b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/x\r\nContent-Length: 0\r\n\r\n".to_vec(),
            ),
            ("a server error", b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".to_vec()),
            ("a body that is not UTF-8", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n\xff\xfe".to_vec()),
        ];
        let port = server(cases.iter().map(|(_, b)| Some(b.clone())).collect()).await;
        for (what, _) in &cases {
            let r = fetcher.post_form(&url(port), &[], DEADLINE).await;
            assert!(r.is_err(), "{what}: {r:?}");
        }
        // Named errors where the reason matters to the operator.
        let port = server(vec![
            Some(over(MAX_DOCUMENT_BYTES + 1)),
            Some(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/x\r\nContent-Length: 0\r\n\r\n".to_vec()),
            Some(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n\xff\xfe".to_vec()),
            None,
        ])
        .await;
        let r = fetcher.post_form(&url(port), &[], DEADLINE).await;
        assert!(matches!(r, Err(FetchError::TooLarge(MAX_DOCUMENT_BYTES))), "{r:?}");
        assert!(matches!(fetcher.post_form(&url(port), &[], DEADLINE).await, Err(FetchError::Status(302))));
        assert!(matches!(fetcher.post_form(&url(port), &[], DEADLINE).await, Err(FetchError::NotUtf8)));
        let quick = Duration::from_millis(300);
        let r = fetcher.post_form(&url(port), &[], quick).await;
        assert!(matches!(r, Err(FetchError::Timeout(300))), "a silent server: {r:?}");
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let r = fetcher.post_form(&url(closed), &[], DEADLINE).await;
        assert!(matches!(r, Err(FetchError::Connect(_))), "{r:?}");
    }

    #[tokio::test]
    async fn documents_and_files_arrive_whole() {
        let fetcher = Fetcher::new(None).unwrap();
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".to_vec();
        let wav = vec![7u8; 3 << 20];
        let mut file = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", wav.len()).into_bytes();
        file.extend_from_slice(&wav);
        let mut too_big = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_AUDIO_BYTES + 1).into_bytes();
        too_big.extend_from_slice(&[0; 1024]);
        let closed_at_end = b"HTTP/1.1 200 OK\r\n\r\n<Response/>".to_vec();
        let port = server(vec![
            Some(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec()),
            Some(chunked),
            Some(closed_at_end),
            Some(file),
            Some(too_big),
        ])
        .await;
        let params = [("To".to_owned(), "+1 415".to_owned())];
        assert_eq!(fetcher.post_form(&url(port), &params, DEADLINE).await.unwrap(), "hello");
        assert_eq!(fetcher.post_form(&url(port), &params, DEADLINE).await.unwrap(), "abcde");
        assert_eq!(fetcher.post_form(&url(port), &params, DEADLINE).await.unwrap(), "<Response/>", "body until close");
        assert_eq!(fetcher.get(&url(port), DEADLINE).await.unwrap(), wav, "3 MiB file");
        let r = fetcher.get(&url(port), DEADLINE).await;
        assert!(matches!(r, Err(FetchError::TooLarge(MAX_AUDIO_BYTES))), "{r:?}");
    }

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://127.0.0.1:8080/dr/twiml?x=1").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("127.0.0.1", 8080, "/dr/twiml?x=1"));
        assert_eq!(HttpUrl::parse("http://example.com").unwrap().to_string(), "http://example.com:80/");
        assert_eq!(u.join("/other").unwrap().to_string(), "http://127.0.0.1:8080/other");
        assert_eq!(u.join("next.xml").unwrap().to_string(), "http://127.0.0.1:8080/dr/next.xml");
        assert_eq!(u.join("http://10.0.0.1/x").unwrap().to_string(), "http://10.0.0.1:80/x");
        let secure = HttpUrl::parse("https://example.com/dr").unwrap();
        assert_eq!(secure.to_string(), "https://example.com:443/dr");
        assert_eq!(secure.join("next.xml").unwrap().to_string(), "https://example.com:443/next.xml");
        assert!(HttpUrl::parse("ftp://example.com/").is_err());
        assert!(HttpUrl::parse("http://user:pw@example.com/").unwrap_err().contains("credentials"));
        assert_eq!(HttpUrl::parse("http://[::1]:81/a").unwrap().to_string(), "http://[::1]:81/a");
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("+1 415&x=ü"), "%2B1+415%26x%3D%C3%BC");
    }
}
