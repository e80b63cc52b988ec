//! Reliable provisional responses (RFC 3262) terminated on each leg.

use super::*;
use trunkline_sip_core::transaction::response_to;
use trunkline_sip_core::Header;

const SDP_A: &str = "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\n";
const SDP_B: &str = "v=0\r\no=pbx2 1 1 IN IP4 127.0.0.1\r\n";

/// The caller's INVITE with `extra` headers and `body` (an SDP, or none).
fn invite_with(extra: &str, body: &str) -> Vec<u8> {
    let ct = if body.is_empty() { String::new() } else { "Content-Type: application/sdp\r\n".to_owned() };
    String::from_utf8(invite())
        .unwrap()
        .replace("Content-Length: 0\r\n\r\n", &format!("{extra}{ct}Content-Length: {}\r\n\r\n{body}", body.len()))
        .into_bytes()
}

/// A target's 1xx to `b_invite` (To tag `tag`), reliable with `rseq` if given.
fn provisional(b_invite: &Message, status: u16, tag: &str, rseq: Option<u32>, sdp: &str) -> Vec<u8> {
    let mut r = response_to(b_invite, status, if status == 180 { "Ringing" } else { "Session Progress" });
    for h in r.headers.iter_mut().filter(|h| h.name == "To") {
        h.value.push_str(&format!(";tag={tag}"));
    }
    r.headers.push(Header { name: "Contact".into(), value: "<sip:pbx@127.0.0.1:5082>".into() });
    if let Some(n) = rseq {
        r.headers.push(Header { name: "Require".into(), value: "100rel".into() });
        r.headers.push(Header { name: "RSeq".into(), value: n.to_string() });
    }
    if !sdp.is_empty() {
        r.headers.push(Header { name: "Content-Type".into(), value: "application/sdp".into() });
        r.body = sdp.as_bytes().to_vec();
    }
    r.to_bytes()
}

/// The caller's PRACK for `rseq` in the early dialog `tag`.
fn prack(tag: &str, rseq: &str, seq: u32, body: &str) -> Vec<u8> {
    let branch = format!("z9hG4bK-prack{seq}");
    let ct = if body.is_empty() { String::new() } else { "Content-Type: application/sdp\r\n".to_owned() };
    String::from_utf8(caller_request("PRACK", seq, tag, &branch))
        .unwrap()
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!("RAck: {rseq} 1 INVITE\r\n{ct}Content-Length: {}\r\n\r\n{body}", body.len()),
        )
        .into_bytes()
}

fn tag_of(m: &Message) -> String {
    m.header("To").unwrap().split(";tag=").nth(1).unwrap().to_owned()
}

fn firsts(out: &[(SocketAddr, String, Message)]) -> Vec<&str> {
    out.iter().map(|o| o.1.as_str()).collect()
}

/// Start a call with the caller's INVITE `invite`; the INVITE sent to 5081.
fn call_with(e: &mut Engine, t0: Instant, invite: &[u8]) -> Message {
    e.handle_datagram(t0, addr("127.0.0.1:5070"), invite);
    let out = sent(e);
    assert_eq!(out[0].1, "SIP/2.0 100 Trying", "{out:?}");
    out[1].2.clone()
}

#[test]
fn a_caller_that_requires_100rel_gets_reliable_ringing_from_a_pbx_without_it() {
    let t0 = Instant::now();
    let mut e = engine();
    let b1 = call_with(&mut e, t0, &invite_with("Require: 100rel\r\nSupported: timer\r\n", SDP_A));
    assert_eq!(b1.header("Require"), None, "the PBX is not required to support it");
    assert_eq!(b1.header("Supported"), Some("100rel, timer"), "offered, the caller's other tags kept");
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &provisional(&b1, 180, "b", None, ""));
    let out = sent(&mut e);
    assert_eq!(firsts(&out), ["SIP/2.0 180 Ringing"]);
    let ringing = out[0].2.clone();
    assert_eq!(ringing.header("Require"), Some("100rel"));
    let rseq = ringing.header("RSeq").expect("numbered").to_owned();
    // No PRACK yet: repeated at T1 with the same number.
    let at = e.poll_timeout().unwrap();
    assert_eq!(at, t0 + Duration::from_millis(500));
    e.handle_timeout(at);
    let out = sent(&mut e);
    assert_eq!(firsts(&out), ["SIP/2.0 180 Ringing"]);
    assert_eq!(out[0].2.header("RSeq"), Some(rseq.as_str()));
    // A PRACK naming another number gets 481; the right one 200, and the repeats stop.
    let tag = tag_of(&ringing);
    e.handle_datagram(at, addr("127.0.0.1:5070"), &prack(&tag, "1", 2, ""));
    assert_eq!(firsts(&sent(&mut e)), ["SIP/2.0 481 Call/Transaction Does Not Exist (no such reliable response)"]);
    e.handle_datagram(at, addr("127.0.0.1:5070"), &prack(&tag, &rseq, 3, ""));
    assert_eq!(firsts(&sent(&mut e)), ["SIP/2.0 200 OK"]);
    e.handle_timeout(at + Duration::from_secs(2));
    assert!(sent(&mut e).is_empty(), "no repeat after the PRACK");
    let mut ok = Message::parse(&ok_for(&b1)).unwrap();
    ok.body = SDP_B.as_bytes().to_vec();
    ok.headers.push(Header { name: "Content-Type".into(), value: "application/sdp".into() });
    e.handle_datagram(at, addr("127.0.0.1:5081"), &ok.to_bytes());
    let out = sent(&mut e);
    assert_eq!(firsts(&out), ["SIP/2.0 200 OK", "ACK sip:pbx@127.0.0.1:5082 SIP/2.0"]);
    assert_eq!(out[0].2.body, SDP_B.as_bytes(), "the answer, in the 2xx");
    assert_eq!(tag_of(&out[0].2), tag, "the early dialog is confirmed");
}

#[test]
fn a_reliable_183_is_pracked_at_once_and_the_callers_2xx_waits_for_its_prack() {
    let t0 = Instant::now();
    let mut e = engine();
    let b1 = call_with(&mut e, t0, &invite_with("Supported: 100rel\r\n", SDP_A));
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &provisional(&b1, 183, "b", Some(7), SDP_A));
    let out = sent(&mut e);
    assert_eq!(firsts(&out), ["PRACK sip:pbx@127.0.0.1:5082 SIP/2.0", "SIP/2.0 183 Session Progress"]);
    let (b_prack, early) = (&out[0].2, out[1].2.clone());
    assert_eq!(out[0].0, addr("127.0.0.1:5082"), "to the early dialog's remote target");
    assert_eq!((b_prack.header("RAck"), b_prack.header("CSeq")), (Some("7 1 INVITE"), Some("2 PRACK")));
    assert_eq!(early.body, SDP_A.as_bytes(), "early media for the caller");
    assert_eq!(early.header("Require"), Some("100rel"), "sent reliably: it carries a session description");
    // The target repeats its 183 (our PRACK is on its way): not relayed again.
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &provisional(&b1, 183, "b", Some(7), SDP_A));
    assert!(sent(&mut e).is_empty());
    // The target answers before the caller acknowledged the 183: the 2xx waits.
    let mut ok = Message::parse(&ok_for(&b1)).unwrap();
    ok.body = SDP_A.as_bytes().to_vec();
    ok.headers.push(Header { name: "Content-Type".into(), value: "application/sdp".into() });
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &ok.to_bytes());
    assert_eq!(firsts(&sent(&mut e)), ["ACK sip:pbx@127.0.0.1:5082 SIP/2.0"]);
    let tag = tag_of(&early);
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &prack(&tag, early.header("RSeq").unwrap(), 2, ""));
    let out = sent(&mut e);
    assert_eq!(firsts(&out), ["SIP/2.0 200 OK", "SIP/2.0 200 OK"]);
    assert_eq!(out[1].2.header("CSeq"), Some("1 INVITE"));
    assert!(out[1].2.body.is_empty(), "the caller has this description already");
    // The callee dialog's CSeq goes on after the PRACK.
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &caller_request("BYE", 3, &tag, "z9hG4bK-bye3"));
    let out = sent(&mut e);
    assert_eq!(firsts(&out), ["SIP/2.0 200 OK", "BYE sip:pbx@127.0.0.1:5082 SIP/2.0"]);
    assert_eq!(out[1].2.header("CSeq"), Some("3 BYE"));
}

#[test]
fn without_a_prack_in_64_t1_the_call_ends_with_500() {
    let t0 = Instant::now();
    let mut e = engine();
    let b1 = call_with(&mut e, t0, &invite_with("Require: 100rel\r\n", SDP_A));
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &provisional(&b1, 180, "b", None, ""));
    sent(&mut e);
    let mut repeats = 0;
    let end = loop {
        let at = e.poll_timeout().unwrap();
        e.handle_timeout(at);
        let out = sent(&mut e);
        if out.iter().any(|o| o.1.starts_with("SIP/2.0 5")) {
            break (at, out);
        }
        repeats += out.len();
    };
    assert_eq!(end.0, t0 + Duration::from_secs(32));
    assert_eq!(repeats, 6, "at 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s");
    assert_eq!(
        firsts(&end.1),
        [
            "CANCEL sip:+14155550100@127.0.0.1:5081 SIP/2.0",
            "SIP/2.0 500 Server Internal Error (no PRACK for a reliable provisional response)"
        ]
    );
    assert_eq!(e.calls(), 0);
    assert!(e.poll_report().unwrap().route.iter().any(|r| r.contains("no PRACK")));
}

#[test]
fn extensions_other_than_100rel_cannot_be_required() {
    let t0 = Instant::now();
    let mut e = engine();
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &invite_with("Require: 100rel, timer\r\nRequire: x-foo\r\n", ""));
    let out = sent(&mut e);
    assert_eq!(firsts(&out), ["SIP/2.0 420 Bad Extension"]);
    assert_eq!(out[0].2.header("Unsupported"), Some("timer, x-foo"));
    // A caller without 100rel: none offered to the PBX, none sent reliably.
    let mut e = engine();
    let b1 = call_with(&mut e, t0, &invite_with("Supported: timer\r\n", SDP_A));
    assert_eq!(b1.header("Supported"), Some("timer"));
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &provisional(&b1, 183, "b", None, SDP_A));
    let out = sent(&mut e);
    assert_eq!(firsts(&out), ["SIP/2.0 183 Session Progress"]);
    assert_eq!((out[0].2.header("Require"), out[0].2.header("RSeq")), (None, None));
}

#[test]
fn an_offer_in_a_reliable_183_is_answered_in_the_targets_prack_with_the_callers_answer() {
    let t0 = Instant::now();
    let mut e = engine();
    // Delayed offer: no SDP in the caller's INVITE.
    let b1 = call_with(&mut e, t0, &invite_with("Supported: 100rel\r\n", ""));
    assert!(b1.body.is_empty());
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &provisional(&b1, 183, "b", Some(1), SDP_A));
    let out = sent(&mut e);
    assert_eq!(firsts(&out), ["SIP/2.0 183 Session Progress"], "no PRACK without the caller's answer");
    let early = out[0].2.clone();
    assert_eq!(early.body, SDP_A.as_bytes());
    let answer = "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\n";
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &prack(&tag_of(&early), early.header("RSeq").unwrap(), 2, answer));
    let out = sent(&mut e);
    assert_eq!(firsts(&out), ["SIP/2.0 200 OK", "PRACK sip:pbx@127.0.0.1:5082 SIP/2.0"]);
    assert_eq!(out[1].2.header("RAck"), Some("1 1 INVITE"));
    assert_eq!(out[1].2.body, answer.as_bytes(), "the caller's answer");
    assert_eq!(out[1].2.header("Content-Type"), Some("application/sdp"));
}

#[test]
fn another_targets_different_early_media_comes_in_a_new_early_dialog() {
    let t0 = Instant::now();
    let mut e = engine();
    let b1 = call_with(&mut e, t0, &invite_with("Supported: 100rel\r\n", SDP_A));
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &provisional(&b1, 183, "b", Some(1), SDP_A));
    let early1 = sent(&mut e).into_iter().find(|o| o.1.starts_with("SIP/2.0 183")).unwrap().2;
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &prack(&tag_of(&early1), early1.header("RSeq").unwrap(), 2, ""));
    sent(&mut e);
    // The first target fails; the second sends other early media.
    let mut busy = response_to(&b1, 503, "Service Unavailable");
    for h in busy.headers.iter_mut().filter(|h| h.name == "To") {
        h.value.push_str(";tag=b");
    }
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &busy.to_bytes());
    let b2 = sent(&mut e).into_iter().find(|o| o.1.starts_with("INVITE")).expect("failover").2;
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &provisional(&b2, 183, "c", Some(1), SDP_B));
    let early2 = sent(&mut e).into_iter().find(|o| o.1.starts_with("SIP/2.0 183")).unwrap().2;
    assert_ne!(tag_of(&early2), tag_of(&early1), "a new early dialog for the new description");
    let (r1, r2): (u32, u32) =
        (early1.header("RSeq").unwrap().parse().unwrap(), early2.header("RSeq").unwrap().parse().unwrap());
    assert_eq!(r2, r1 + 1, "one RSeq space per INVITE");
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &prack(&tag_of(&early2), &r2.to_string(), 3, ""));
    sent(&mut e);
    let mut ok = Message::parse(&ok_for(&b2)).unwrap();
    for h in ok.headers.iter_mut().filter(|h| h.name == "To") {
        h.value = h.value.replace(";tag=b", ";tag=c");
    }
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &ok.to_bytes());
    let out = sent(&mut e);
    assert_eq!(tag_of(&out[0].2), tag_of(&early2), "the 2xx confirms the second early dialog");
}
