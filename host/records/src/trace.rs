//! A call's SIP trace: every message of both legs as it crossed the wire,
//! kept raw on the engine's thread (a copy per message, nothing parsed)
//! and finished on the writer's: times from the call's start, credentials
//! and SRTP keys redacted, bytes read as UTF-8 (lossy).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use trunkline_sip_core::Peer;

/// Caps of one call's trace (`[records] trace_messages`, `trace_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceCaps {
    pub messages: usize,
    pub bytes: usize,
}

/// Messages as they crossed the wire.
#[derive(Debug, Default)]
pub struct RawTrace {
    entries: Vec<RawEntry>,
    bytes: usize,
    dropped: u32,
}

#[derive(Debug)]
struct RawEntry {
    at: Instant,
    sent: bool,
    peer: Peer,
    bytes: Vec<u8>,
}

impl RawTrace {
    /// Keep `bytes` (sent to or received from `peer`) if the caps allow.
    pub fn push(&mut self, caps: TraceCaps, at: Instant, sent: bool, peer: Peer, bytes: &[u8]) {
        if self.entries.len() >= caps.messages || self.bytes + bytes.len() > caps.bytes {
            self.dropped += 1;
            return;
        }
        self.bytes += bytes.len();
        self.entries.push(RawEntry { at, sent, peer, bytes: bytes.to_vec() });
    }

    /// Messages left out by the caps.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Messages kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, times counted from `start`, redacted.
    pub fn finish(self, start: Instant) -> Vec<TraceEntry> {
        self.entries
            .into_iter()
            .map(|e| TraceEntry {
                at_ms: e.at.saturating_duration_since(start).as_millis() as u64,
                direction: if e.sent { "out" } else { "in" }.into(),
                peer: format!("{}:{}", e.peer.transport, e.peer.addr),
                message: redact(&String::from_utf8_lossy(&e.bytes)),
            })
            .collect()
    }
}

/// One SIP message of a call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEntry {
    /// From the call's start.
    pub at_ms: u64,
    /// `in` (received by the router) or `out` (sent).
    pub direction: String,
    /// The other end: `udp:192.0.2.1:5060`.
    pub peer: String,
    /// The whole message, redacted.
    pub message: String,
}

impl TraceEntry {
    /// The start line: `INVITE sip:...` or `SIP/2.0 200 OK`.
    pub fn first_line(&self) -> &str {
        self.message.lines().next().unwrap_or_default()
    }

    /// The start line in short: `INVITE`, `200 OK`.
    pub fn label(&self) -> String {
        let first = self.first_line();
        match first.strip_prefix("SIP/2.0 ") {
            Some(status) => status.to_owned(),
            None => first.split(' ').next().unwrap_or_default().to_owned(),
        }
    }

    /// The status of a response.
    pub fn status(&self) -> Option<u16> {
        self.first_line().strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }

    /// The CSeq method (`INVITE` for the responses to one).
    pub fn cseq_method(&self) -> Option<&str> {
        header(&self.message, "CSeq", None)?.split_whitespace().nth(1)
    }
}

/// A header's value in `message` (first of that name; compact form too).
pub fn header<'a>(message: &'a str, name: &str, compact: Option<&str>) -> Option<&'a str> {
    for line in message.lines().skip(1) {
        if line.is_empty() {
            break;
        }
        let Some((n, v)) = line.split_once(':') else { continue };
        let n = n.trim();
        if n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c)) {
            return Some(v.trim());
        }
    }
    None
}

/// The Call-ID of the SIP message in `bytes`, found without parsing it (the
/// engine files each message under its call with it).
pub fn call_id(bytes: &[u8]) -> Option<&str> {
    let mut rest = bytes;
    // Skip the start line.
    let first = rest.iter().position(|&b| b == b'\n')?;
    rest = &rest[first + 1..];
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        if line.is_empty() {
            return None; // end of the headers
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = line[..colon].trim_ascii();
            if name.eq_ignore_ascii_case(b"Call-ID") || name.eq_ignore_ascii_case(b"i") {
                return std::str::from_utf8(line[colon + 1..].trim_ascii()).ok();
            }
        }
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    None
}

/// `message` with what must never be stored replaced by `<redacted>`: the
/// values of `Authorization` and `Proxy-Authorization` (all but the
/// scheme, user name and realm) and SDES keys (`inline:` of `a=crypto`).
pub fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_body = false;
    for line in message.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        let ending = &line[bare.len()..];
        if !in_body && bare.is_empty() {
            in_body = true;
        }
        match (in_body, bare.split_once(':')) {
            (false, Some((name, value)))
                if name.trim().eq_ignore_ascii_case("Authorization")
                    || name.trim().eq_ignore_ascii_case("Proxy-Authorization") =>
            {
                out.push_str(name);
                out.push_str(": ");
                out.push_str(&redact_credentials(value.trim()));
            }
            (true, _) if bare.starts_with("a=crypto:") => out.push_str(&redact_keys(bare)),
            _ => out.push_str(bare),
        }
        out.push_str(ending);
    }
    out
}

/// `Digest username="alice", realm="x", nonce=..., response=...` ->
/// `Digest username="alice", realm="x", <redacted>`.
fn redact_credentials(value: &str) -> String {
    let (scheme, params) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let mut kept: Vec<&str> = params
        .split(',')
        .map(str::trim)
        .filter(|p| {
            let name = p.split('=').next().unwrap_or_default().trim();
            name.eq_ignore_ascii_case("username") || name.eq_ignore_ascii_case("realm")
        })
        .collect();
    kept.push("<redacted>");
    format!("{scheme} {}", kept.join(", "))
}

/// `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:KEY|2^20|1:4` ->
/// `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<redacted>`.
fn redact_keys(line: &str) -> String {
    line.split(' ')
        .map(|part| {
            // Several keys are separated by `;` within the key parameters.
            let keys: Vec<String> = part
                .split(';')
                .map(|k| if k.starts_with("inline:") { "inline:<redacted>".to_owned() } else { k.to_owned() })
                .collect();
            keys.join(";")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_id_is_found_in_either_form_and_nowhere_else() {
        let m = b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\nCall-ID:  abc@h \r\n\r\nCall-ID: body";
        assert_eq!(call_id(m), Some("abc@h"));
        assert_eq!(call_id(b"SIP/2.0 200 OK\nvia: x\ni: short\n\n"), Some("short"));
        assert_eq!(call_id(b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\nCall-ID: in-body"), None);
        assert_eq!(call_id(b""), None);
        assert_eq!(call_id(b"no line break"), None);
        assert_eq!(call_id(b"X\r\nCall-ID"), None);
    }

    #[test]
    fn credentials_and_keys_are_redacted_and_the_rest_kept() {
        let m = "INVITE sip:+1@x SIP/2.0\r\n\
            Proxy-Authorization: Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"0123456789abcdef\"\r\n\
            authorization : Digest username=\"bob\",response=\"feed\"\r\n\
            Content-Type: application/sdp\r\n\r\n\
            v=0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n\
            a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:AAAA;inline:BBBB\r\n";
        let r = redact(m);
        assert!(!r.contains("0123456789abcdef") && !r.contains("feed") && !r.contains("nonce"), "{r}");
        assert!(!r.contains("WVNfX19") && !r.contains("AAAA") && !r.contains("BBBB"), "{r}");
        assert!(r.contains("Proxy-Authorization: Digest username=\"alice\", realm=\"r\", <redacted>\r\n"), "{r}");
        assert!(r.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<redacted>\r\n"), "{r}");
        assert!(r.contains("inline:<redacted>;inline:<redacted>"), "{r}");
        assert!(r.starts_with("INVITE sip:+1@x SIP/2.0\r\n") && r.contains("Content-Type: application/sdp\r\n\r\nv=0\r\n"));
    }

    #[test]
    fn caps_keep_the_first_messages_and_count_the_rest() {
        let t0 = Instant::now();
        let caps = TraceCaps { messages: 2, bytes: 100 };
        let peer = Peer::udp("127.0.0.1:5060".parse().unwrap());
        let mut t = RawTrace::default();
        t.push(caps, t0, false, peer, b"INVITE sip:a SIP/2.0\r\n\r\n");
        t.push(caps, t0 + std::time::Duration::from_millis(7), true, peer, &[b'x'; 90]); // over the bytes
        t.push(caps, t0 + std::time::Duration::from_millis(8), true, peer, b"SIP/2.0 100 Trying\r\n\r\n");
        t.push(caps, t0, true, peer, b"SIP/2.0 180 Ringing\r\n\r\n"); // over the count
        assert_eq!((t.len(), t.dropped()), (2, 2));
        let e = t.finish(t0);
        assert_eq!((e[0].direction.as_str(), e[0].label().as_str(), e[0].at_ms), ("in", "INVITE", 0));
        assert_eq!((e[1].direction.as_str(), e[1].label().as_str(), e[1].at_ms), ("out", "100 Trying", 8));
        assert_eq!((e[1].status(), e[1].peer.as_str()), (Some(100), "udp:127.0.0.1:5060"));
    }
}
