//! RFC 4475 torture messages through the parser: never a panic; the valid
//! messages of §3.1.1 are understood; framing-level invalid ones are
//! rejected with a reason. (The router-level behaviour of each message, e.g.
//! 400 vs 505 vs 420, is tested with the SIP engine.)

use std::path::PathBuf;

use trunkline_sip_core::{Message, ParseError};

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/rfc4475");
    assert!(d.is_dir(), "RFC 4475 messages expected at {} (shared/ beside the repository)", d.display());
    d
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{name}.dat"))).unwrap_or_else(|e| panic!("{name}.dat: {e}"))
}

/// RFC 4475 §3.1.1: valid messages, to be accepted and understood.
const VALID: [&str; 13] = [
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
];

#[test]
fn every_message_parses_or_fails_without_panicking() {
    let mut n = 0;
    for e in std::fs::read_dir(dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "dat") {
            let bytes = std::fs::read(&p).unwrap();
            let _ = Message::parse(&bytes);
            for cut in (0..bytes.len()).step_by(7) {
                let _ = Message::parse(&bytes[..cut]);
            }
            n += 1;
        }
    }
    assert!(n >= 49, "all 49 RFC 4475 messages present, found {n}");
}

#[test]
fn valid_messages_are_understood() {
    for name in VALID {
        let m = Message::parse(&load(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(m.header("Call-ID").is_some(), "{name}: Call-ID understood");
        assert!(m.header("Via").is_some(), "{name}: Via understood");
    }
    // 3.1.1.1: compact forms, folding and odd whitespace in a short tortuous INVITE.
    let m = Message::parse(&load("wsinv")).unwrap();
    assert_eq!(m.method(), Some("INVITE"));
    assert_eq!(m.headers_named("Via").count(), 2, "v: and Via: both found");
    // 3.1.1.12 and 3.1.1.13: unusual and missing reason phrases are fine.
    assert!(matches!(
        Message::parse(&load("noreason")).unwrap().start,
        trunkline_sip_core::StartLine::Response { status: 100, .. }
    ));
}

#[test]
fn framing_errors_are_rejected_with_a_reason() {
    assert!(matches!(Message::parse(&load("badvers")), Err(ParseError::Version(v)) if v == "7.0"));
    assert!(matches!(Message::parse(&load("ncl")), Err(ParseError::ContentLength(_))), "negative Content-Length");
    // 3.1.2.4: a CSeq beyond 2**31 parses as a message but not as a CSeq.
    let m = Message::parse(&load("scalar02")).unwrap();
    assert!(trunkline_sip_core::header::CSeq::parse(m.header("CSeq").unwrap()).is_none());
    assert!(matches!(Message::parse(&load("clerr")), Err(ParseError::Truncated { .. })));
}
