//! A call drawn as a SIP ladder diagram for the terminal (`trunkline calls
//! show ID`): one column per party (the caller, the router, each target),
//! one arrow per message in time order, then the route and the plugins'
//! decisions. The operator console draws the same columns in HTML.

use std::fmt::Write;

use crate::trace::header;
use crate::CallRecord;

/// Width of a column, in characters.
const COLUMN: usize = 26;
/// Width of the time column.
const TIME: usize = 9;

/// A party of the ladder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Party {
    /// `caller`, `router`, `target 1`...
    pub name: String,
    /// Its address or URI.
    pub detail: String,
}

/// One arrow: from party `from` to party `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrow {
    pub at_ms: u64,
    pub from: usize,
    pub to: usize,
    pub label: String,
    /// A response of 404 that ended the call: marked.
    pub not_found: bool,
}

/// The parties and arrows of `record`'s trace. A message belongs to the
/// caller's column when it carries the caller's Call-ID, to a target's when
/// it carries that attempt's; else by the address it crossed.
pub fn arrows(record: &CallRecord) -> (Vec<Party>, Vec<Arrow>) {
    let mut parties = vec![
        Party { name: "caller".into(), detail: format!("{}:{}", record.transport, record.source) },
        Party { name: "router".into(), detail: String::new() },
    ];
    for (i, t) in record.targets.iter().enumerate() {
        parties.push(Party { name: format!("target {}", i + 1), detail: t.address.clone() });
    }
    let mut extra: Vec<String> = Vec::new();
    let last_404 =
        record.status == 404 || record.targets.last().and_then(|t| t.responses.last()).is_some_and(|r| r.status == 404);
    let mut arrows = Vec::new();
    for e in &record.trace {
        let call_id = header(&e.message, "Call-ID", Some("i")).unwrap_or_default();
        let party = if call_id == record.call_id {
            0
        } else if let Some(i) = record.targets.iter().position(|t| t.call_id == call_id) {
            i + 2
        } else if let Some(i) = record.targets.iter().position(|t| t.address == e.peer) {
            i + 2
        } else if e.peer == parties[0].detail {
            0
        } else {
            // Another dialog of the call (a transfer's target).
            let i = extra.iter().position(|p| *p == e.peer).unwrap_or_else(|| {
                extra.push(e.peer.clone());
                extra.len() - 1
            });
            parties.len() + i
        };
        let (from, to) = if e.direction == "in" { (party, 1) } else { (1, party) };
        let not_found = last_404 && e.status() == Some(404) && e.cseq_method() == Some("INVITE");
        arrows.push(Arrow { at_ms: e.at_ms, from, to, label: e.label(), not_found });
    }
    for (i, p) in extra.into_iter().enumerate() {
        parties.push(Party { name: format!("other {}", i + 1), detail: p });
    }
    (parties, arrows)
}

/// The whole text of `trunkline calls show ID`.
pub fn draw(record: &CallRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "call {}  {} -> {}  trunk {} ({}), from {}:{}",
        record.id,
        show(&record.caller),
        show(&record.called),
        show(&record.trunk),
        show(&record.direction),
        record.transport,
        record.source
    );
    let _ = writeln!(out, "  Call-ID {}", record.call_id);
    let _ = writeln!(out, "  started {}, {}", time(record.started_at), outcome_line(record));
    if record.status == 404 {
        let _ = writeln!(out, "  404: no route accepted the number");
    }
    out.push('\n');
    let (parties, arrows) = arrows(record);
    let mut names = " ".repeat(TIME);
    let mut details = " ".repeat(TIME);
    for p in &parties {
        let _ = write!(names, "{:^COLUMN$}", fit(&p.name, COLUMN - 2));
        let _ = write!(details, "{:^COLUMN$}", fit(&p.detail, COLUMN - 2));
    }
    let _ = writeln!(out, "{}", names.trim_end());
    let _ = writeln!(out, "{}", details.trim_end());
    for a in &arrows {
        let _ = writeln!(out, "{}", arrow_line(parties.len(), a));
    }
    if record.trace.is_empty() {
        let _ = writeln!(out, "{}(no SIP trace kept)", " ".repeat(TIME));
    }
    if record.trace_dropped > 0 {
        let _ = writeln!(
            out,
            "{}... {} more message(s) not kept ([records] trace caps)",
            " ".repeat(TIME),
            record.trace_dropped
        );
    }
    out.push_str("\nroute:\n");
    for t in &record.targets {
        let responses: Vec<String> =
            t.responses.iter().map(|r| format!("{} {} at {} ms", r.status, r.reason, r.at_ms)).collect();
        let _ = write!(out, "  INVITE {} at {} ms ({})", t.uri, t.at_ms, t.address);
        if !responses.is_empty() {
            let _ = write!(out, " -> {}", responses.join(", "));
        }
        if let Some(end) = &t.ended {
            let _ = write!(out, " -> {end}");
        }
        out.push('\n');
    }
    for r in record.route.iter().filter(|r| !r.starts_with("INVITE ")) {
        let _ = writeln!(out, "  {r}");
    }
    if record.targets.is_empty() && record.route.is_empty() {
        out.push_str("  (no target tried)\n");
    }
    out.push_str("hooks:\n");
    for h in &record.hooks {
        let _ = writeln!(out, "  {} {} {}: {} ({} us)", h.plugin, h.version, h.hook, h.decision, h.micros);
    }
    if record.hooks.is_empty() {
        out.push_str("  (no plugin ran)\n");
    }
    if !record.media.is_empty() {
        out.push_str("media:\n");
        for m in &record.media {
            let _ = writeln!(out, "  {m}");
        }
    }
    out
}

/// `answered 200, post-dial delay 12 ms: answered by sip:..., 3200 ms, hung up by the caller`.
pub fn outcome_line(r: &CallRecord) -> String {
    let mut s = format!("{} {}", r.outcome, r.status);
    if let Some(pdd) = r.pdd_ms {
        let _ = write!(s, ", post-dial delay {pdd} ms");
    }
    let _ = write!(s, ": {}", r.reason);
    s
}

/// One arrow's line: the time, every party's lifeline, the arrow with its label.
fn arrow_line(columns: usize, a: &Arrow) -> String {
    let width = columns * COLUMN;
    let mut line: Vec<char> = vec![' '; width];
    let center = |i: usize| i * COLUMN + COLUMN / 2;
    for i in 0..columns {
        line[center(i)] = '|';
    }
    let (l, r) = (center(a.from.min(a.to)), center(a.from.max(a.to)));
    if r > l + 2 {
        for c in &mut line[l + 1..r] {
            *c = '-';
        }
        if a.to > a.from {
            line[r - 1] = '>';
        } else {
            line[l + 1] = '<';
        }
        let label = fit(&a.label, r - l - 3);
        let start = l + 1 + (r - l - 1 - label.chars().count()) / 2;
        for (i, ch) in label.chars().enumerate() {
            line[start + i] = ch;
        }
    }
    let mut s = format!("{:>w$} ", format!("{} ms", a.at_ms), w = TIME - 1);
    s.extend(line);
    let mut s = s.trim_end().to_owned();
    if a.not_found {
        s.push_str("   <== 404: no route accepted the number");
    }
    s
}

/// Unix ms as `2026-12-01 21:15:56` (UTC).
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// `s` cut to `n` characters (`...` at the end when cut).
fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(n.saturating_sub(3)).collect();
    t.push_str("...");
    t
}

fn show(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ResponseMark, TargetRecord, TraceEntry};

    fn entry(at_ms: u64, direction: &str, peer: &str, first: &str, call_id: &str, cseq: &str) -> TraceEntry {
        TraceEntry {
            at_ms,
            direction: direction.into(),
            peer: peer.into(),
            message: format!("{first}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n\r\n"),
        }
    }

    fn failover() -> CallRecord {
        let target = |n: u16, cid: &str, status: u16, reason: &str| TargetRecord {
            uri: format!("sip:+15557654321@127.0.0.1:{n}"),
            address: format!("udp:127.0.0.1:{n}"),
            call_id: cid.into(),
            at_ms: 1,
            responses: vec![ResponseMark { at_ms: 3, status, reason: reason.into() }],
            ended: None,
        };
        CallRecord {
            id: 7,
            call_id: "a@x".into(),
            trunk: "pbx".into(),
            direction: "origination".into(),
            caller: "+15551230001".into(),
            called: "+15557654321".into(),
            source: "127.0.0.1:5070".into(),
            transport: "udp".into(),
            outcome: "failed".into(),
            status: 404,
            reason: "failed 404 Not Found".into(),
            targets: vec![target(5091, "b1", 503, "Service Unavailable"), target(5092, "b2", 404, "Not Found")],
            trace: vec![
                entry(0, "in", "udp:127.0.0.1:5070", "INVITE sip:+15557654321@r SIP/2.0", "a@x", "1 INVITE"),
                entry(
                    1,
                    "out",
                    "udp:127.0.0.1:5091",
                    "INVITE sip:+15557654321@127.0.0.1:5091 SIP/2.0",
                    "b1",
                    "1 INVITE",
                ),
                entry(3, "in", "udp:127.0.0.1:5091", "SIP/2.0 503 Service Unavailable", "b1", "1 INVITE"),
                entry(
                    4,
                    "out",
                    "udp:127.0.0.1:5092",
                    "INVITE sip:+15557654321@127.0.0.1:5092 SIP/2.0",
                    "b2",
                    "1 INVITE",
                ),
                entry(6, "in", "udp:127.0.0.1:5092", "SIP/2.0 404 Not Found", "b2", "1 INVITE"),
                entry(6, "out", "udp:127.0.0.1:5070", "SIP/2.0 404 Not Found", "a@x", "1 INVITE"),
            ],
            ..CallRecord::default()
        }
    }

    #[test]
    fn a_failover_call_has_a_column_per_target_and_the_404_marked() {
        let (parties, arrows) = arrows(&failover());
        let names: Vec<&str> = parties.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["caller", "router", "target 1", "target 2"]);
        let ends: Vec<(usize, usize)> = arrows.iter().map(|a| (a.from, a.to)).collect();
        assert_eq!(ends, [(0, 1), (1, 2), (2, 1), (1, 3), (3, 1), (1, 0)]);
        assert_eq!(arrows.iter().filter(|a| a.not_found).count(), 2);
        let text = draw(&failover());
        assert!(text.contains("404: no route accepted the number"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let invite_2 = lines.iter().find(|l| l.starts_with("    4 ms ")).unwrap();
        // router -> target 2 crosses target 1's lifeline, arrow head at target 2.
        assert!(invite_2.contains("INVITE") && invite_2.ends_with(">|"), "{invite_2}");
        let back = lines.iter().find(|l| l.starts_with("    6 ms ") && l.contains("<--")).unwrap();
        assert!(back.contains("|<---") && back.contains("404 Not Found---") && back.contains("-|   <== 404"), "{back}");
        assert!(text.contains("INVITE sip:+15557654321@127.0.0.1:5091 at 1 ms (udp:127.0.0.1:5091) -> 503"), "{text}");
    }

    #[test]
    fn labels_are_cut_to_their_column() {
        let mut r = failover();
        r.trace[2].message = "SIP/2.0 503 A Reason Phrase Much Longer Than A Column\r\nCall-ID: b1\r\n\r\n".into();
        for line in draw(&r).lines() {
            assert!(line.chars().count() <= TIME + 4 * COLUMN + 45, "{line}");
        }
    }
}
