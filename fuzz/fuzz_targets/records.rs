//! Any bytes as a SIP message in a call's trace, as a stored record and as a
//! `--since` value: the record decoder and its columns' reader, the Call-ID
//! scanner, the redaction of credentials and SDES keys, the filter parser
//! and the ladder never panic; a record reads back as written, its columns
//! as it holds them; redaction keeps every line and leaves no key or
//! credential behind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline_records::{ladder, query, trace, CallRecord, Stored, TargetRecord, TraceEntry, RECORD_V2};

fuzz_target!(|data: &[u8]| {
    let _ = trace::call_id(data);
    let _ = trace::unpack(data);
    // A stored record read back (a corrupt row): refused, or read and written back the same.
    // The columns a store reads by hand from a record's leading fields:
    // never a panic, and what the whole record holds when it decodes.
    let stored = Stored { record: data.to_vec(), ..Stored::default() };
    let columns = stored.columns();
    if let Ok(r) = CallRecord::decode(data) {
        let mut again = Vec::new();
        r.encode_into(&mut again);
        assert_eq!(CallRecord::decode(&again).as_ref(), Ok(&r), "a record does not read back as written");
        if data.first() == Some(&RECORD_V2) {
            let c = columns.expect("the columns of a record that decodes read");
            let want = (r.call_id.as_str(), r.started_at, r.ended_at, r.trunk.as_str(), r.caller.as_str());
            assert_eq!((c.call_id, c.started_at, c.ended_at, c.trunk, c.caller), want);
            let want = (r.direction.as_str(), r.called.as_str(), r.outcome.as_str(), r.status, r.hangup_by.as_str());
            assert_eq!((c.direction, c.called, c.outcome, c.status, c.hangup_by), want);
            let pdd = r.pdd_ms.map(|v| v.min(i64::MAX as u64) as i64);
            let want = (pdd, r.duration_ms.min(i64::MAX as u64) as i64, r.targets.len() as i64);
            assert_eq!((c.pdd_ms, c.duration_ms, c.attempts), want);
        }
    }
    let text = String::from_utf8_lossy(data);
    let redacted = trace::redact(&text);
    assert_eq!(redacted.split('\n').count(), text.split('\n').count(), "a line lost or added");
    let mut in_body = false;
    for line in redacted.split('\n') {
        let bare = line.trim_end_matches('\r');
        in_body |= bare.is_empty();
        if !in_body {
            // A header name and its colon: SP or HTAB between (RFC 3261 HCOLON).
            let name = bare.split(':').next().unwrap_or_default().trim_matches([' ', '\t']);
            if bare.contains(':')
                && (name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("proxy-authorization"))
            {
                assert!(bare.ends_with("<redacted>"), "credentials left: {bare}");
            }
        }
        if in_body && bare.starts_with("a=crypto:") {
            for part in bare.split([' ', ';']) {
                assert!(!part.starts_with("inline:") || part == "inline:<redacted>", "a key left: {bare}");
            }
        }
    }
    let _ = query::parse_since(&text, 1_700_000_000_000);
    let entry = |direction: &str| TraceEntry {
        at_ms: data.len() as u64,
        direction: direction.into(),
        peer: text.chars().take(40).collect(),
        message: text.to_string(),
    };
    let record = CallRecord {
        call_id: trace::call_id(data).unwrap_or_default().to_owned(),
        status: data.first().map_or(404, |&b| 100 + u16::from(b)),
        targets: vec![TargetRecord { call_id: text.chars().take(8).collect(), address: entry("in").peer, ..TargetRecord::default() }],
        trace: vec![entry("in"), entry("out")],
        ..CallRecord::default()
    };
    let _ = ladder::draw(&record);
});
