//! Fetching TwiML: an HTTP/1.1 POST of the call's parameters
//! (form-encoded, as the reference platform sends them) with a deadline;
//! and the WAV files `<Play>` names, with a GET.
//!
//! A deliberately small client: `http://` and `https://` (rustls, TLS 1.2+,
//! the server's certificate verified for the URL's host against the
//! system's roots or `sip.tls.ca`), one request per connection, no
//! redirects followed, bodies up to a limit per kind (64 KiB for a
//! document, [`MAX_AUDIO_BYTES`] for a WAV file).

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

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
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
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

/// POST `params` to `url`; the body of a 2xx answer (a TwiML document,
/// UTF-8) within `timeout`. `https` makes the TLS connections of
/// `https://` URLs.
pub async fn post_form(
    url: &HttpUrl,
    params: &[(String, String)],
    timeout: Duration,
    https: Option<&TlsConnector>,
) -> Result<String, FetchError> {
    let body: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
    let body = body.join("&");
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: trunkline\r\nAccept: application/xml, text/xml\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        url.path,
        url.host_for_url(),
        url.port,
        body.len()
    );
    let body = fetch(url, request, timeout, https, MAX_DOCUMENT_BYTES).await?;
    String::from_utf8(body).map_err(|_| FetchError::Malformed("body is not UTF-8"))
}

/// GET `url` (a `<Play>`ed file): the body of a 2xx answer within
/// `timeout`, at most [`MAX_AUDIO_BYTES`].
pub async fn get(url: &HttpUrl, timeout: Duration, https: Option<&TlsConnector>) -> Result<Vec<u8>, FetchError> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: trunkline\r\nAccept: audio/wav, audio/x-wav, */*\r\n\
         Connection: close\r\n\r\n",
        url.path,
        url.host_for_url(),
        url.port
    );
    fetch(url, request, timeout, https, MAX_AUDIO_BYTES).await
}

/// Send `request` to `url`'s server; the body of its 2xx answer, at most
/// `limit` bytes, within `timeout`.
async fn fetch(
    url: &HttpUrl,
    request: String,
    timeout: Duration,
    https: Option<&TlsConnector>,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    let exchange = async {
        let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
        if !url.secure {
            return exchange(tcp, request.as_bytes(), limit).await;
        }
        let connector = https.ok_or_else(|| FetchError::Tls("no TLS client configured".into()))?;
        let name = ServerName::try_from(url.host.clone())
            .map_err(|_| FetchError::Tls(format!("`{}` is not a server name", url.host)))?;
        let tls = connector.connect(name, tcp).await.map_err(|e| FetchError::Tls(e.to_string()))?;
        exchange(tls, request.as_bytes(), limit).await
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| FetchError::Timeout(timeout.as_millis()))?
}

/// Send `request` on `stream` and read the response (a body up to `limit`).
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    request: &[u8],
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    stream.write_all(request).await?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        if raw.len() > limit + 16 * 1024 {
            return Err(FetchError::TooLarge(limit));
        }
        if let Some(done) = complete_body(&raw, limit)? {
            return done;
        }
    }
    match complete_body(&raw, limit)? {
        Some(done) => done,
        None => body_until_close(&raw),
    }
}

/// The response if all of it has arrived (by Content-Length or chunked).
fn complete_body(raw: &[u8], limit: usize) -> Result<Option<Result<Vec<u8>, FetchError>>, FetchError> {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else { return Ok(None) };
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| FetchError::Malformed("header is not UTF-8"))?;
    let status = status_of(head)?;
    let header = |name: &str| {
        head.split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let body = &raw[head_end..];
    let complete = if header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(body, limit)?
    } else if let Some(len) = header("Content-Length") {
        let len: usize = len.parse().map_err(|_| FetchError::Malformed("bad Content-Length"))?;
        if len > limit {
            return Err(FetchError::TooLarge(limit));
        }
        (body.len() >= len).then(|| body[..len].to_vec())
    } else {
        None // read until the server closes
    };
    Ok(complete.map(|b| finish(status, &b)))
}

fn body_until_close(raw: &[u8]) -> Result<Vec<u8>, FetchError> {
    let head_end =
        raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).ok_or(FetchError::Malformed("no header end"))?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| FetchError::Malformed("header is not UTF-8"))?;
    finish(status_of(head)?, &raw[head_end..])
}

fn status_of(head: &str) -> Result<u16, FetchError> {
    let line = head.split("\r\n").next().unwrap_or("");
    let mut parts = line.split(' ');
    match (parts.next(), parts.next().and_then(|s| s.parse::<u16>().ok())) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok(code),
        _ => Err(FetchError::Malformed("bad status line")),
    }
}

fn finish(status: u16, body: &[u8]) -> Result<Vec<u8>, FetchError> {
    if !(200..300).contains(&status) {
        return Err(FetchError::Status(status));
    }
    Ok(body.to_vec())
}

/// A chunked body, once its last chunk has arrived.
fn dechunk(mut body: &[u8], limit: usize) -> Result<Option<Vec<u8>>, FetchError> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| FetchError::Malformed("bad chunk size"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| FetchError::Malformed("bad chunk size"))?;
        let start = line_end + 2;
        if size == 0 {
            return Ok(Some(out));
        }
        if size > limit.saturating_sub(out.len()) {
            return Err(FetchError::TooLarge(limit));
        }
        if body.len() < start + size + 2 {
            return Ok(None);
        }
        if &body[start + size..start + size + 2] != b"\r\n" {
            return Err(FetchError::Malformed("chunk not followed by CRLF"));
        }
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hostile or broken server's answer is an error or "wait for
    /// more", never a panic.
    #[test]
    fn hostile_responses_do_not_panic() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        for body in ["ffffffffffffffff\r\nx", "fffffffffffffffe\r\n", "10000\r\n", "-1\r\n", "3\r\nabcXY0\r\n\r\n"] {
            let raw = format!("{head}{body}");
            assert!(!matches!(complete_body(raw.as_bytes(), MAX_DOCUMENT_BYTES), Ok(Some(Ok(_)))), "{body:?}");
        }
        let ok = format!("{head}3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(complete_body(ok.as_bytes(), MAX_DOCUMENT_BYTES).unwrap().unwrap().unwrap(), b"abc");
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\nabc",
            "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\nabc",
            "HTTP/1.1 99999 OK\r\n\r\n",
            "\r\n\r\n",
        ] {
            let _ = complete_body(raw.as_bytes(), MAX_DOCUMENT_BYTES);
            let _ = body_until_close(raw.as_bytes());
        }
        // Every prefix and byte-flipped variant of a valid answer, seeded.
        let mut next = crate::twiml::xorshift(0x2545_f491_4f6c_dd1d);
        let valid = format!("{head}5\r\n<Resp\r\nA;x=y\r\nonse><Reject/></Response>\r\n0\r\n\r\n").into_bytes();
        for n in 0..=valid.len() {
            let _ = complete_body(&valid[..n], MAX_DOCUMENT_BYTES);
        }
        for _ in 0..20_000 {
            let mut m = valid.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() % m.len() as u64) as usize;
                let alphabet = b"0123456789abcdefF\r\n;: -";
                m[i] = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            if let Ok(Some(Ok(doc))) = complete_body(&m, MAX_DOCUMENT_BYTES) {
                let _ = crate::twiml::parse(&String::from_utf8_lossy(&doc));
            }
        }
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
    fn responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(complete_body(ok, 5).unwrap().unwrap().unwrap(), b"hello");
        assert!(
            matches!(complete_body(ok, 4), Err(FetchError::TooLarge(4))),
            "over the limit: refused before the body"
        );
        assert!(complete_body(&ok[..ok.len() - 1], 5).unwrap().is_none(), "waits for the whole body");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(complete_body(chunked, 5).unwrap().unwrap().unwrap(), b"abcde");
        assert!(matches!(complete_body(chunked, 4), Err(FetchError::TooLarge(4))), "chunks add up to the limit");
        let err = b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(complete_body(err, 5).unwrap().unwrap(), Err(FetchError::Status(500))));
        assert!(complete_body(b"garbage\r\n\r\n", 5).is_err());
        assert_eq!(form_encode("+1 415&x=ü"), "%2B1+415%26x%3D%C3%BC");
    }
}
