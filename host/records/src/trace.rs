//! A call's SIP trace: every message of both legs as it crossed the wire,
//! kept raw on the engine's thread (appended to one buffer per call,
//! nothing parsed) and packed on the writer's into the stored form
//! ([`RawTrace::pack`]: times from the call's start, credentials and SDES
//! keys redacted in one pass over the bytes); [`unpack`] reads it back.
//!
//! The stored form, version 1: the byte `1`, then per message its time
//! (u32 ms, little endian), `0` received or `1` sent, the peer's length
//! (u8) and text (`udp:192.0.2.1:5060`), the message's length (u32) and
//! bytes. Compact and written without escaping: a JSON string of the same
//! messages cost the writer three times as much CPU (bench/README.md).

use std::sync::LazyLock;
use std::time::Instant;

use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};
use trunkline_sip_core::Peer;

/// Caps of one call's trace (`[records] trace_messages`, `trace_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceCaps {
    pub messages: usize,
    pub bytes: usize,
}

/// Messages as they crossed the wire: their bytes end to end in one buffer.
#[derive(Debug, Default)]
pub struct RawTrace {
    bytes: Vec<u8>,
    entries: Vec<RawEntry>,
    dropped: u32,
}

#[derive(Clone, Copy, Debug)]
struct RawEntry {
    at: Instant,
    sent: bool,
    peer: Peer,
    end: usize,
}

/// The version byte of the stored form.
const PACKED_V1: u8 = 1;

impl RawTrace {
    /// Keep `bytes` (sent to or received from `peer`) if the caps allow.
    pub fn push(&mut self, caps: TraceCaps, at: Instant, sent: bool, peer: Peer, bytes: &[u8]) {
        if self.entries.len() >= caps.messages || self.bytes.len() + bytes.len() > caps.bytes {
            self.dropped += 1;
            return;
        }
        if self.bytes.capacity() == 0 {
            // A call's messages take a few KB: one allocation, not a doubling per message.
            self.bytes.reserve(caps.bytes.min(8 << 10).max(bytes.len()));
            self.entries.reserve(16.min(caps.messages));
        }
        self.bytes.extend_from_slice(bytes);
        self.entries.push(RawEntry { at, sent, peer, end: self.bytes.len() });
    }

    /// Empty it, keeping its buffers for another call: the engine lends a
    /// trace's buffers to call after call, and the writer, once it has
    /// packed one, gives them back ([`crate::Sealed::recycle`]). Buffers
    /// allocated on the engine's thread and freed seconds later on the
    /// writer's cost the engine's allocator more than the rest of the trace
    /// (bench/README.md, sessions 16 and 17).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
        self.dropped = 0;
    }

    /// Bytes the buffers hold without growing (a pool keeps small ones only).
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
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

    /// The stored form (see the module docs), times counted from `start`,
    /// redacted.
    pub fn pack(&self, start: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        self.pack_into(start, &mut out);
        out
    }

    /// [`RawTrace::pack`] into `out` (emptied first): the writer packs
    /// into buffers it reuses, batch after batch.
    pub fn pack_into(&self, start: Instant, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.bytes.len() + self.entries.len() * 32 + 1);
        out.push(PACKED_V1);
        let mut begin = 0;
        // A call has few peers: each one's text is made once.
        let mut peers: Vec<(Peer, String)> = Vec::new();
        for e in &self.entries {
            let at = e.at.saturating_duration_since(start).as_millis().min(u128::from(u32::MAX)) as u32;
            out.extend_from_slice(&at.to_le_bytes());
            out.push(u8::from(e.sent));
            let i = peers.iter().position(|(p, _)| *p == e.peer).unwrap_or_else(|| {
                peers.push((e.peer, peer_text(e.peer)));
                peers.len() - 1
            });
            let peer = peers[i].1.as_bytes();
            out.push(peer.len().min(255) as u8);
            out.extend_from_slice(&peer[..peer.len().min(255)]);
            let len_at = out.len();
            out.extend_from_slice(&[0; 4]);
            redact_into(&self.bytes[begin..e.end], out);
            let len = (out.len() - len_at - 4) as u32;
            out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            begin = e.end;
        }
    }

    /// The entries as [`unpack`] would read them back (tests, the CLI).
    pub fn finish(&self, start: Instant) -> Vec<TraceEntry> {
        unpack(&self.pack(start)).unwrap_or_default()
    }
}

/// `udp:192.0.2.1:5060`: a peer as records name it. Written by hand for
/// IPv4 (the formatting machinery of `SocketAddr` cost a record's writer
/// more than the rest of its peers' work).
pub fn peer_text(peer: Peer) -> String {
    let mut out = String::with_capacity(32);
    out.push_str(peer.transport.uri_param());
    out.push(':');
    match peer.addr {
        std::net::SocketAddr::V4(a) => {
            for (i, octet) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(&mut out, u16::from(octet));
            }
            out.push(':');
            push_decimal(&mut out, a.port());
        }
        v6 => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
    out
}

fn push_decimal(out: &mut String, n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.extend(digits[i..].iter().map(|&d| d as char));
}

/// Read a stored trace back; `None` if it is not one (a corrupt row).
pub fn unpack(packed: &[u8]) -> Option<Vec<TraceEntry>> {
    let (&version, mut rest) = packed.split_first()?;
    if version != PACKED_V1 {
        return None;
    }
    let mut out = Vec::new();
    let take = |rest: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        if rest.len() < n {
            return None;
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Some(head.to_vec())
    };
    while !rest.is_empty() {
        let at = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?);
        let sent = take(&mut rest, 1)?[0] == 1;
        let peer_len = take(&mut rest, 1)?[0] as usize;
        let peer = String::from_utf8_lossy(&take(&mut rest, peer_len)?).into_owned();
        let len = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?) as usize;
        let message = String::from_utf8_lossy(&take(&mut rest, len)?).into_owned();
        out.push(TraceEntry { at_ms: u64::from(at), direction: if sent { "out" } else { "in" }.into(), peer, message });
    }
    Some(out)
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
/// engine files each message under its call with it): a SIMD search for
/// the usual spelling first, then a scan of the header lines (any case,
/// the compact form `i`).
pub fn call_id(bytes: &[u8]) -> Option<&str> {
    static CALL_ID: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\nCall-ID:"));
    if let Some(at) = CALL_ID.find(bytes).filter(|&at| !head_ends_before(bytes, at)) {
        let value = &bytes[at + 9..];
        let end = memchr::memchr(b'\n', value).unwrap_or(value.len());
        return std::str::from_utf8(value[..end].trim_ascii()).ok();
    }
    call_id_slow(bytes)
}

/// Whether the headers of `bytes` end before offset `at` (a blank line).
fn head_ends_before(bytes: &[u8], at: usize) -> bool {
    // A line break before `at` followed by an empty line (CRLF or a bare
    // LF), which may end with the line break at `at` itself: two SIMD
    // searches over the few header lines before it.
    static CRLF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\r\n"));
    static LF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\n"));
    let head = &bytes[..(at + 1).min(bytes.len())];
    LF.find(head).is_some() || CRLF.find(head).is_some()
}

fn call_id_slow(bytes: &[u8]) -> Option<&str> {
    let mut rest = bytes;
    // Skip the start line.
    let first = memchr::memchr(b'\n', rest)?;
    rest = &rest[first + 1..];
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        if line.is_empty() {
            return None; // end of the headers
        }
        if let Some(colon) = memchr::memchr(b':', line) {
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
    let mut out = Vec::with_capacity(message.len());
    redact_into(message.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`redact`] on bytes, appended to `out`: one pass, lines copied as they
/// are unless they hold a credential or a key.
pub fn redact_into(message: &[u8], out: &mut Vec<u8>) {
    // Most messages hold neither: copied whole after two SIMD searches.
    // A credentials header's name has a `z` in some case (names are
    // case-insensitive) and few lines do (a Via's `z9hG4bK`): the line of
    // each `z` or `Z` is checked. An SDES line starts `a=crypto:` (SDP
    // attribute names are not case-insensitive). Both look at the whole
    // message: where the headers end is the line loop's to say (a bare LF
    // ends them too; the fuzzer found a key left behind when this only
    // searched after CRLF CRLF).
    static CRYPTO: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"a=crypto:"));
    let credentials = memchr::memchr2_iter(b'z', b'Z', message).any(|z| {
        // The name's `z` is followed by `ation` (most `z`s are a Via
        // branch's `z9hG4bK`): only then is its line looked at.
        let named = message.get(z + 1..z + 6).is_some_and(|a| a.eq_ignore_ascii_case(b"ation"));
        named && {
            let start = memchr::memrchr(b'\n', &message[..z]).map_or(0, |i| i + 1);
            is_credentials(&message[start..])
        }
    });
    if !credentials && CRYPTO.find(message).is_none() {
        out.extend_from_slice(message);
        return;
    }
    let mut in_body = false;
    let mut rest = message;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        let bare_len = line.len() - line.iter().rev().take_while(|&&b| b == b'\n' || b == b'\r').count();
        let (bare, ending) = line.split_at(bare_len);
        if !in_body && bare.is_empty() {
            in_body = true;
        }
        if !in_body && is_credentials(bare) {
            let colon = bare.iter().position(|&b| b == b':').unwrap_or(bare.len());
            out.extend_from_slice(&bare[..colon]);
            out.extend_from_slice(b": ");
            let value = String::from_utf8_lossy(bare.get(colon + 1..).unwrap_or_default());
            out.extend_from_slice(redact_credentials(value.trim()).as_bytes());
        } else if in_body && bare.starts_with(b"a=crypto:") {
            out.extend_from_slice(redact_keys(&String::from_utf8_lossy(bare)).as_bytes());
        } else {
            out.extend_from_slice(bare);
        }
        out.extend_from_slice(ending);
    }
}

/// An `Authorization` or `Proxy-Authorization` header line.
fn is_credentials(line: &[u8]) -> bool {
    let line = &line[..memchr::memchr(b'\n', line).unwrap_or(line.len())];
    let Some(colon) = memchr::memchr(b':', line) else { return false };
    let name = line[..colon].trim_ascii();
    name.eq_ignore_ascii_case(b"Authorization") || name.eq_ignore_ascii_case(b"Proxy-Authorization")
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
    fn a_peer_is_named_as_socket_addr_displays_it() {
        for (transport, addr) in [
            (trunkline_sip_core::Transport::Udp, "192.0.2.1:5060"),
            (trunkline_sip_core::Transport::Tls, "0.0.0.0:0"),
            (trunkline_sip_core::Transport::Tcp, "255.255.255.255:65535"),
            (trunkline_sip_core::Transport::Udp, "10.0.10.100:10"),
            (trunkline_sip_core::Transport::Udp, "[2001:db8::1]:5061"),
        ] {
            let peer = Peer { transport, addr: addr.parse().unwrap() };
            assert_eq!(peer_text(peer), format!("{}:{}", peer.transport, peer.addr));
        }
    }

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
        assert!(
            r.starts_with("INVITE sip:+1@x SIP/2.0\r\n") && r.contains("Content-Type: application/sdp\r\n\r\nv=0\r\n")
        );
    }

    #[test]
    fn credentials_in_any_case_and_the_compact_crlf_less_forms_are_redacted_too() {
        for name in ["pRoXy-AuThOrIzAtIoN", "AUTHORIZATION", "authorization "] {
            let m = format!("INVITE sip:x SIP/2.0\r\n{name}: Digest username=\"u\", response=\"zzz\"\r\n\r\n");
            let r = redact(&m);
            assert!(!r.contains("zzz") && r.contains("<redacted>"), "{name}: {r}");
        }
        // Headers ended by a bare LF (found by the fuzzer): the key still goes.
        let bare = redact("INVITE sip:a@b SIP/2.0\r\n\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^20\r\n");
        assert!(bare.contains("inline:<redacted>") && !bare.contains("AAAA"), "{bare}");
        let plain = "SIP/2.0 200 OK\r\nVia: x\r\nAllow: INVITE\r\n\r\nv=0\r\na=sendrecv\r\n";
        assert_eq!(redact(plain), plain, "nothing to redact: copied as it is");
    }

    #[test]
    fn caps_keep_the_first_messages_and_count_the_rest_and_a_cleared_trace_keeps_its_buffers() {
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
        // Cleared (given back by the writer): empty, its buffer kept for another call.
        let kept = t.capacity();
        t.clear();
        assert_eq!((t.len(), t.dropped(), t.capacity()), (0, 0, kept));
        t.push(caps, t0, false, peer, b"BYE sip:b SIP/2.0\r\n\r\n");
        let again = t.finish(t0);
        assert_eq!((again.len(), again[0].label().as_str()), (1, "BYE"), "nothing of the first call shows");
    }

    #[test]
    fn the_stored_form_reads_back_and_refuses_what_is_not_one() {
        let t0 = Instant::now();
        let caps = TraceCaps { messages: 10, bytes: 10_000 };
        let peer = Peer::udp("[2001:db8::1]:5062".parse().unwrap());
        let mut t = RawTrace::default();
        let invite = b"INVITE sip:a SIP/2.0\r\nAuthorization: Digest username=\"u\", response=\"secret\"\r\n\r\n\xff";
        t.push(caps, t0 + std::time::Duration::from_millis(70_000), false, peer, invite);
        let packed = t.pack(t0);
        let back = unpack(&packed).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(
            (back[0].at_ms, back[0].direction.as_str(), back[0].peer.as_str()),
            (70_000, "in", "udp:[2001:db8::1]:5062")
        );
        assert!(back[0].message.contains("username=\"u\", <redacted>") && !back[0].message.contains("secret"));
        assert!(back[0].message.ends_with('\u{fffd}'), "bytes that are not UTF-8 read lossily");
        assert_eq!(unpack(&[]), None);
        assert_eq!(unpack(&[2]), None);
        assert_eq!(unpack(&packed[..packed.len() - 1]), None, "truncated");
        assert_eq!(unpack(&[1]), Some(Vec::new()));
    }
}
