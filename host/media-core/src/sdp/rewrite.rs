//! The lines an anchoring B2BUA changes, and nothing else: an `m=` port or
//! protocol, the `c=` addresses, `a=rtcp`, the `a=crypto` lines, a
//! direction attribute, the `o=` version. Each rewriter replaces the token
//! or line it owns and keeps the rest of the line as written; a line it
//! adds goes at the end of its section, with the section's line ending.

use std::net::IpAddr;
use std::ops::Range;

use super::{Direction, Line, Sdp};

/// The byte range of the `n`-th whitespace-separated token of `s`.
fn token_span(s: &str, n: usize) -> Option<Range<usize>> {
    let mut count = 0;
    let mut start = None;
    for (i, c) in s.char_indices().chain(std::iter::once((s.len(), ' '))) {
        match (c.is_ascii_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(b)) => {
                if count == n {
                    return Some(b..i);
                }
                count += 1;
                start = None;
            }
            _ => {}
        }
    }
    None
}

/// `IN IP4 a` or `IN IP6 a`.
fn address_line(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("IN IP4 {v4}"),
        IpAddr::V6(v6) => format!("IN IP6 {v6}"),
    }
}

impl Sdp {
    /// Replace token `n` of line `at`'s value with `with`; false if it has none.
    fn replace_token(&mut self, at: usize, n: usize, with: &str) -> bool {
        let Some(line) = self.lines.get_mut(at) else { return false };
        let Some(span) = token_span(line.value(), n) else { return false };
        line.text.replace_range(span.start + 2..span.end + 2, with);
        true
    }

    /// Set the port of media description `i`, keeping a `/count` and the
    /// rest of its `m=` line. False if there is no such description.
    pub fn set_port(&mut self, i: usize, port: u16) -> bool {
        let Some(&at) = self.media.get(i) else { return false };
        let Some(span) = token_span(self.lines[at].value(), 1) else { return false };
        let token = &self.lines[at].value()[span.clone()];
        let count = token.find('/').map(|slash| token[slash..].to_owned()).unwrap_or_default();
        self.lines[at].text.replace_range(span.start + 2..span.end + 2, &format!("{port}{count}"));
        true
    }

    /// Set the transport protocol of media description `i` (`RTP/AVP`,
    /// `RTP/SAVP`): one leg may be SRTP and the other not.
    pub fn set_proto(&mut self, i: usize, proto: &str) -> bool {
        match self.media.get(i) {
            Some(&at) => self.replace_token(at, 2, proto),
            None => false,
        }
    }

    /// Point every `c=` line, of the session and of each media description,
    /// at `ip` (a multicast TTL is dropped).
    pub fn set_connection(&mut self, ip: IpAddr) {
        let value = address_line(ip);
        for l in self.lines.iter_mut().filter(|l| l.kind() == Some(b'c')) {
            l.text = format!("c={value}");
        }
    }

    /// Set media description `i`'s `a=rtcp` (RFC 3605) to `port`, naming
    /// `ip` if it named an address. Nothing if it has none.
    pub fn set_rtcp(&mut self, i: usize, port: u16, ip: IpAddr) {
        let range = self.section(Some(i));
        let Some(line) =
            self.lines[range].iter_mut().find(|l| l.attribute().is_some_and(|(n, _)| n.eq_ignore_ascii_case("rtcp")))
        else {
            return;
        };
        let named = line.attribute().and_then(|(_, v)| v).is_some_and(|v| v.split_ascii_whitespace().count() > 1);
        line.text = if named { format!("a=rtcp:{port} {}", address_line(ip)) } else { format!("a=rtcp:{port}") };
    }

    /// Set the direction of media description `i`: its own direction
    /// attribute is replaced, else one is added to its section.
    pub fn set_direction(&mut self, i: usize, dir: Direction) {
        let range = self.section(Some(i));
        if range.is_empty() {
            return;
        }
        let own = self.lines[range.clone()]
            .iter_mut()
            .find(|l| l.attribute().is_some_and(|(n, _)| Direction::of(n).is_some()));
        match own {
            Some(line) => line.text = format!("a={dir}"),
            None => self.insert(range.end, vec![format!("a={dir}")]),
        }
    }

    /// Replace media description `i`'s `a=crypto` lines (RFC 4568) with
    /// one per value (the text after `a=crypto:`), where the first was, or
    /// at the end of its section. No values removes them.
    pub fn set_crypto(&mut self, i: usize, values: &[String]) {
        let range = self.section(Some(i));
        if range.is_empty() {
            return;
        }
        let is_crypto = |l: &Line| l.attribute().is_some_and(|(n, _)| n.eq_ignore_ascii_case("crypto"));
        // Lines before the first crypto line stay where they are: it is
        // where the new ones go (else the end of the section).
        let at = self.lines[range.clone()].iter().position(is_crypto).map_or(range.end, |p| p + range.start);
        let mut n = 0;
        self.lines.retain(|l| {
            let keep = !(range.contains(&n) && is_crypto(l));
            n += 1;
            keep
        });
        self.reindex();
        self.insert(at, values.iter().map(|v| format!("a=crypto:{v}")).collect());
    }

    /// Set the `o=` line's session version (RFC 4566 §5.2: it increases
    /// whenever the description changes).
    pub fn set_origin_version(&mut self, version: u64) -> bool {
        let range = self.section(None);
        match self.lines[range.clone()].iter().position(|l| l.kind() == Some(b'o')) {
            Some(p) => self.replace_token(range.start + p, 2, &version.to_string()),
            None => false,
        }
    }

    /// Insert `texts` as lines before index `at`, with the body's line
    /// ending (that of the line before, else any, else CRLF), then
    /// re-index the media. A body whose last line had no ending still ends
    /// without one.
    fn insert(&mut self, at: usize, texts: Vec<String>) {
        if texts.is_empty() {
            return;
        }
        let at = at.min(self.lines.len());
        let eol = at
            .checked_sub(1)
            .map(|p| self.lines[p].eol)
            .filter(|e| !e.is_empty())
            .or_else(|| self.lines.iter().map(|l| l.eol).find(|e| !e.is_empty()))
            .unwrap_or("\r\n");
        let unterminated_end = at == self.lines.len() && self.lines.last().is_some_and(|l| l.eol.is_empty());
        if unterminated_end {
            if let Some(last) = self.lines.last_mut() {
                last.eol = eol;
            }
        }
        let n = texts.len();
        for (k, text) in texts.into_iter().enumerate() {
            let eol = if unterminated_end && k + 1 == n { "" } else { eol };
            self.lines.insert(at + k, Line { text, eol });
        }
        self.reindex();
    }

    fn reindex(&mut self) {
        self.media = self.lines.iter().enumerate().filter(|(_, l)| l.kind() == Some(b'm')).map(|(i, _)| i).collect();
    }
}
