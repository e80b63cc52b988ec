//! SDP (RFC 4566), kept as its lines.
//!
//! A B2BUA that anchors media changes a handful of lines of each session
//! description (the address, the ports, the RTCP port, keys, a direction,
//! the origin's version) and must leave everything else exactly as the
//! peer wrote it: attributes it does not know, lines in an order a strict
//! parser would refuse, LF instead of CRLF. So an [`Sdp`] is the list of
//! its lines, each with its own line ending; readers parse a line when
//! asked, and the rewriters in [`rewrite`] replace or add whole lines.
//! [`Sdp::to_bytes`] of an unchanged [`Sdp`] is the input, byte for byte.
//!
//! Reading never panics on any input (fuzzed); a body that is not SDP (not
//! UTF-8, no `v=` first) is an [`SdpError`].

mod read;
pub mod rewrite;

use std::fmt;
use std::net::IpAddr;

pub use read::{Connection, Media, Origin};

/// Largest session description accepted (a SIP message is at most 64 KiB).
pub const MAX_SDP: usize = 65_535;

/// Why a body is not a session description we can work with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not UTF-8 text (RFC 4566 §5: SDP is UTF-8).
    #[error("not UTF-8 text")]
    NotUtf8,
    /// The first line is not `v=` (RFC 4566 §5).
    #[error("does not start with v=")]
    NoVersion,
    /// Larger than [`MAX_SDP`].
    #[error("larger than {MAX_SDP} bytes")]
    TooLarge,
    /// Media description N (from 0) has an `m=` line that does not read
    /// (`m=<media> <port> <proto> <fmt>...`).
    #[error("media description {0} has an unreadable m= line")]
    BadMedia(usize),
}

/// One line: its text without the line ending, and the ending itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) text: String,
    pub(crate) eol: &'static str,
}

impl Line {
    /// The line's type letter (`v`, `o`, `m`, `a`...), if it has the `x=` form.
    pub(crate) fn kind(&self) -> Option<u8> {
        let b = self.text.as_bytes();
        (b.len() >= 2 && b[1] == b'=' && b[0].is_ascii_alphabetic()).then(|| b[0])
    }

    /// The text after `x=`.
    pub(crate) fn value(&self) -> &str {
        self.text.get(2..).unwrap_or("")
    }

    /// For an `a=` line: its attribute name and value (`a=rtcp:9` is
    /// `("rtcp", Some("9"))`, `a=sendonly` is `("sendonly", None)`).
    pub(crate) fn attribute(&self) -> Option<(&str, Option<&str>)> {
        if self.kind() != Some(b'a') {
            return None;
        }
        Some(match self.value().split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (self.value(), None),
        })
    }
}

/// A session description as its lines. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sdp {
    pub(crate) lines: Vec<Line>,
    /// The index in `lines` of each `m=` line, in order.
    pub(crate) media: Vec<usize>,
}

/// Which way media flows on a stream (RFC 3264 §5.1), from the point of
/// view of the side that wrote the description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`: that side sends, does not want to receive (hold).
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction of an attribute name, if it is one.
    pub fn of(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Sdp {
    /// Read a session description. See the module docs for what is kept.
    pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
        if body.len() > MAX_SDP {
            return Err(SdpError::TooLarge);
        }
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let mut lines = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (line, eol, next) = match rest.find('\n') {
                Some(i) if rest[..i].ends_with('\r') => (&rest[..i - 1], "\r\n", &rest[i + 1..]),
                Some(i) => (&rest[..i], "\n", &rest[i + 1..]),
                None => (rest, "", ""),
            };
            lines.push(Line { text: line.to_owned(), eol });
            rest = next;
        }
        if lines.first().is_none_or(|l| l.kind() != Some(b'v')) {
            return Err(SdpError::NoVersion);
        }
        let media = lines.iter().enumerate().filter(|(_, l)| l.kind() == Some(b'm')).map(|(i, _)| i).collect();
        Ok(Sdp { lines, media })
    }

    /// The description as bytes: each line and its own line ending.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.iter().map(|l| l.text.len() + 2).sum());
        for l in &self.lines {
            out.extend_from_slice(l.text.as_bytes());
            out.extend_from_slice(l.eol.as_bytes());
        }
        out
    }

    /// How many media descriptions (`m=` lines) it has.
    pub fn media_count(&self) -> usize {
        self.media.len()
    }

    /// The lines of media description `i` (its `m=` line first), as
    /// indices into `lines`; of the session level for `None`.
    pub(crate) fn section(&self, i: Option<usize>) -> std::ops::Range<usize> {
        match i {
            None => 0..self.media.first().copied().unwrap_or(self.lines.len()),
            Some(i) => {
                let start = self.media.get(i).copied().unwrap_or(self.lines.len());
                let end = self.media.get(i + 1).copied().unwrap_or(self.lines.len());
                start..end
            }
        }
    }

    /// The value of attribute `name` in media description `i`, or at the
    /// session level for `None` (`Some("")` for a flag like `a=rtcp-mux`).
    pub fn attribute(&self, i: Option<usize>, name: &str) -> Option<&str> {
        self.lines[self.section(i)]
            .iter()
            .filter_map(Line::attribute)
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.unwrap_or(""))
    }

    /// The codecs of the first audio description, `NAME/RATE` in its
    /// order (from `a=rtpmap`, else the static payload types of RFC 3551),
    /// and whether it is SRTP (`RTP/SAVP`): what plugins may know of the
    /// media offered.
    pub fn audio_codecs(&self) -> (Vec<String>, bool) {
        let Some((i, m)) =
            (0..self.media_count()).filter_map(|i| Some((i, self.media(i)?))).find(|(_, m)| m.kind == "audio")
        else {
            return (Vec::new(), false);
        };
        let codecs = m
            .formats
            .iter()
            .filter_map(|pt| {
                let mapped = self.attributes(Some(i), "rtpmap").find_map(|v| {
                    let (n, codec) = v.split_once(' ')?;
                    (n == *pt).then(|| codec.split('/').take(2).collect::<Vec<_>>().join("/"))
                });
                mapped.or_else(|| {
                    let name = match *pt {
                        "0" => "PCMU/8000",
                        "3" => "GSM/8000",
                        "4" => "G723/8000",
                        "8" => "PCMA/8000",
                        "9" => "G722/8000",
                        "13" => "CN/8000",
                        "18" => "G729/8000",
                        _ => return None,
                    };
                    Some(name.to_owned())
                })
            })
            .collect();
        (codecs, m.is_srtp())
    }

    /// Every value of attribute `name` in media description `i` (or the
    /// session level), in order.
    pub fn attributes<'a>(&'a self, i: Option<usize>, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lines[self.section(i)]
            .iter()
            .filter_map(Line::attribute)
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.unwrap_or(""))
    }

    /// The direction of media description `i`: its own attribute, else the
    /// session's, else `sendrecv` (RFC 3264 §5.1).
    pub fn direction(&self, i: usize) -> Direction {
        let of = |section: Option<usize>| {
            self.lines[self.section(section)].iter().filter_map(Line::attribute).find_map(|(n, _)| Direction::of(n))
        };
        of(Some(i)).or_else(|| of(None)).unwrap_or(Direction::SendRecv)
    }

    /// The address media description `i` is sent to: its own `c=`, else
    /// the session's (RFC 4566 §5.7).
    pub fn connection(&self, i: usize) -> Option<Connection> {
        let c = |section: Option<usize>| {
            self.lines[self.section(section)]
                .iter()
                .find(|l| l.kind() == Some(b'c'))
                .and_then(|l| Connection::parse(l.value()))
        };
        c(Some(i)).or_else(|| c(None))
    }

    /// Media description `i`'s `m=` line, read.
    pub fn media(&self, i: usize) -> Option<Media<'_>> {
        Media::parse(self.lines.get(*self.media.get(i)?)?.value())
    }

    /// The `o=` line, read.
    pub fn origin(&self) -> Option<Origin<'_>> {
        self.lines[self.section(None)].iter().find(|l| l.kind() == Some(b'o')).and_then(|l| Origin::parse(l.value()))
    }

    /// The address a connection line names, if it is an IP literal.
    pub fn connection_ip(&self, i: usize) -> Option<IpAddr> {
        self.connection(i).and_then(|c| c.ip)
    }
}

#[cfg(test)]
mod tests;
