//! The engine driven directly: datagrams in, datagrams out, time simulated.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trunkline_plugin_host::{Runtime, RuntimeOptions};
use trunkline_sip_core::message::{Message, StartLine};

use super::{Answer, Engine, Question, SrvRecord};
use crate::config;

mod media;
mod reliable;
mod route_set;

const CONFIG: &str = r#"
[sip]
listen = ["udp://127.0.0.1:5060"]
failover_timeout_ms = 4000
[[trunk]]
name = "t"
numbers = ["+14155550100"]
[[trunk.origination]]
uri = "sip:127.0.0.1:5081"
priority = 1
[[trunk.origination]]
uri = "sip:127.0.0.1:5082"
priority = 2
"#;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn host(name: &str) -> Question {
    Question::Host(name.into())
}

fn engine() -> Engine {
    engine_with(CONFIG)
}

fn engine_with(config: &str) -> Engine {
    let settings = config::parse(std::path::Path::new("test.toml"), config).unwrap();
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    Engine::new(Arc::new(settings), rt, super::Locals::udp(addr("127.0.0.1:5060")), 42)
}

fn invite() -> Vec<u8> {
    "INVITE sip:+14155550100@127.0.0.1:5060 SIP/2.0\r\n\
     Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-a1\r\n\
     Max-Forwards: 70\r\n\
     From: <sip:+12125550123@carrier.example>;tag=a\r\n\
     To: <sip:+14155550100@trunkline.test>\r\n\
     Call-ID: engine-test\r\n\
     CSeq: 1 INVITE\r\n\
     Contact: <sip:carrier@127.0.0.1:5070>\r\n\
     Content-Length: 0\r\n\r\n"
        .as_bytes()
        .to_vec()
}

/// Everything the engine sent: (destination, first line, message).
fn sent(e: &mut Engine) -> Vec<(SocketAddr, String, Message)> {
    std::iter::from_fn(|| e.poll_transmit())
        .map(|t| {
            let m = Message::parse(&t.bytes).unwrap();
            let first = String::from_utf8_lossy(&t.bytes).lines().next().unwrap_or("").to_owned();
            (t.to.addr, first, m)
        })
        .collect()
}

fn ok_for(invite: &Message) -> Vec<u8> {
    let mut r = trunkline_sip_core::transaction::response_to(invite, 200, "OK");
    for h in r.headers.iter_mut().filter(|h| h.name == "To") {
        h.value.push_str(";tag=b");
    }
    r.headers.push(trunkline_sip_core::Header { name: "Contact".into(), value: "<sip:pbx@127.0.0.1:5082>".into() });
    r.to_bytes()
}

#[test]
fn silence_fails_over_at_the_configured_time_and_a_repeated_200_is_acked_not_relayed() {
    let t0 = Instant::now();
    let mut e = engine();
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &invite());
    let out = sent(&mut e);
    assert_eq!(out[0].1, "SIP/2.0 100 Trying");
    assert_eq!(
        (out[1].0, out[1].1.as_str()),
        (addr("127.0.0.1:5081"), "INVITE sip:+14155550100@127.0.0.1:5081 SIP/2.0")
    );

    // Drive the clock: Timer A retransmits to 5081 until the failover timer at 4 s.
    let mut retransmissions = 0;
    while let Some(at) = e.poll_timeout() {
        if at >= t0 + Duration::from_secs(4) {
            e.handle_timeout(at);
            break;
        }
        e.handle_timeout(at);
        retransmissions += sent(&mut e).len();
    }
    assert_eq!(retransmissions, 3, "Timer A at 0.5, 1.5 and 3.5 s");
    let out = sent(&mut e);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0].0, out[0].1.as_str()),
        (addr("127.0.0.1:5082"), "INVITE sip:+14155550100@127.0.0.1:5082 SIP/2.0")
    );
    let b_invite = out[0].2.clone();

    let now = t0 + Duration::from_secs(5);
    e.handle_datagram(now, addr("127.0.0.1:5082"), &ok_for(&b_invite));
    let out = sent(&mut e);
    let firsts: Vec<&str> = out.iter().map(|o| o.1.as_str()).collect();
    assert_eq!(firsts, ["SIP/2.0 200 OK", "ACK sip:pbx@127.0.0.1:5082 SIP/2.0"]);
    assert!(matches!(out[0].2.start, StartLine::Response { status: 200, .. }) && out[0].0 == addr("127.0.0.1:5070"));

    e.handle_datagram(now + Duration::from_millis(500), addr("127.0.0.1:5082"), &ok_for(&b_invite));
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(firsts, ["ACK sip:pbx@127.0.0.1:5082 SIP/2.0"], "the 200 is ACKed again, not relayed again");
    assert_eq!(e.calls(), 1);
}

#[test]
fn max_forwards_zero_gets_483_and_unknown_numbers_404() {
    let t0 = Instant::now();
    let mut e = engine();
    let hop = String::from_utf8(invite()).unwrap().replace("Max-Forwards: 70", "Max-Forwards: 0");
    e.handle_datagram(t0, addr("127.0.0.1:5070"), hop.as_bytes());
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(firsts, ["SIP/2.0 483 Too Many Hops"]);
    let unknown = String::from_utf8(invite())
        .unwrap()
        .replace("INVITE sip:+14155550100@", "INVITE sip:+14155550999@")
        .replace("a1", "a2");
    e.handle_datagram(t0, addr("127.0.0.1:5070"), unknown.as_bytes());
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(firsts, ["SIP/2.0 404 Not Found"]);
    assert_eq!(e.calls(), 0);
}

#[test]
fn an_invite_with_an_empty_call_id_gets_400_and_starts_no_call() {
    let t0 = Instant::now();
    let mut e = engine();
    let empty = String::from_utf8(invite()).unwrap().replace("Call-ID: engine-test", "Call-ID: ");
    e.handle_datagram(t0, addr("127.0.0.1:5070"), empty.as_bytes());
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(firsts, ["SIP/2.0 100 Trying", "SIP/2.0 400 Bad Request (missing or unparsable Call-ID header)"]);
    assert_eq!(e.calls(), 0);
}

fn ringing_for(invite: &Message) -> Vec<u8> {
    let mut r = trunkline_sip_core::transaction::response_to(invite, 180, "Ringing");
    for h in r.headers.iter_mut().filter(|h| h.name == "To") {
        h.value.push_str(";tag=b");
    }
    r.to_bytes()
}

/// Start a call and return the INVITE sent to the first target (5081).
fn start_call(e: &mut Engine, t0: Instant) -> Message {
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &invite());
    let out = sent(e);
    assert_eq!(out[1].0, addr("127.0.0.1:5081"));
    out[1].2.clone()
}

#[test]
fn a_target_that_rings_too_long_is_cancelled_and_the_next_one_tried() {
    let t0 = Instant::now();
    let mut e = engine();
    let b1 = start_call(&mut e, t0);
    e.handle_datagram(t0 + Duration::from_millis(100), addr("127.0.0.1:5081"), &ringing_for(&b1));
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(firsts, ["SIP/2.0 180 Ringing"], "ringing is relayed to the caller");
    // Drive the clock (stale wake-ups of finished timers are harmless) until something is sent.
    let (at, out) = loop {
        let at = e.poll_timeout().expect("the ring timer is armed");
        e.handle_timeout(at);
        let out = sent(&mut e);
        if !out.is_empty() {
            break (at, out);
        }
    };
    assert_eq!(at, t0 + Duration::from_millis(100 + 181_000), "Timer C, 181 s after the first provisional");
    let got: Vec<(SocketAddr, &str)> = out.iter().map(|o| (o.0, o.1.as_str())).collect();
    assert_eq!(
        got,
        [
            (addr("127.0.0.1:5081"), "CANCEL sip:+14155550100@127.0.0.1:5081 SIP/2.0"),
            (addr("127.0.0.1:5082"), "INVITE sip:+14155550100@127.0.0.1:5082 SIP/2.0"),
        ]
    );
    assert_eq!(out[0].2.header("Via"), b1.header("Via"), "CANCEL carries the INVITE's branch");
}

#[test]
fn the_callers_200_is_resent_until_acked_and_the_call_ended_without_ack() {
    let t0 = Instant::now();
    let mut e = engine();
    let b1 = start_call(&mut e, t0);
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &ok_for(&b1));
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(firsts, ["SIP/2.0 200 OK", "ACK sip:pbx@127.0.0.1:5082 SIP/2.0"]);
    let mut resent = Vec::new();
    let mut byes = Vec::new();
    while let Some(at) = e.poll_timeout() {
        if at > t0 + Duration::from_secs(40) {
            break;
        }
        e.handle_timeout(at);
        for (to, first, _) in sent(&mut e) {
            if first.starts_with("SIP/2.0 200") {
                resent.push((at - t0).as_millis());
            } else if first.starts_with("BYE") && !byes.contains(&to) {
                byes.push(to); // BYEs are retransmitted over UDP until answered
            }
        }
    }
    // T1 doubling, capped at T2, for 64*T1 = 32 s.
    assert_eq!(resent, [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    assert_eq!(byes, [addr("127.0.0.1:5082"), addr("127.0.0.1:5070")], "BYE to the callee and the caller");
    assert_eq!(e.calls(), 0);
    let report = e.poll_report().unwrap();
    assert!(report.outcome.contains("hung up by the router"), "{}", report.outcome);
}

#[test]
fn the_callers_ack_stops_the_200_retransmissions() {
    let t0 = Instant::now();
    let mut e = engine();
    let b1 = start_call(&mut e, t0);
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &ok_for(&b1));
    sent(&mut e);
    let ack = String::from_utf8(invite())
        .unwrap()
        .replace("INVITE sip:", "ACK sip:")
        .replace("1 INVITE", "1 ACK")
        .replace("z9hG4bK-a1", "z9hG4bK-ack1");
    e.handle_datagram(t0 + Duration::from_millis(100), addr("127.0.0.1:5070"), ack.as_bytes());
    while let Some(at) = e.poll_timeout() {
        if at > t0 + Duration::from_secs(40) {
            break;
        }
        e.handle_timeout(at);
        assert!(sent(&mut e).iter().all(|o| !o.1.starts_with("SIP/2.0 200")), "no retransmission after the ACK");
    }
    assert_eq!(e.calls(), 1, "the call goes on");
}

#[test]
fn a_late_200_from_a_target_abandoned_after_silence_is_acked_and_hung_up() {
    let t0 = Instant::now();
    let mut e = engine();
    let b1 = start_call(&mut e, t0);
    // Silence: failover to 5082 at 4 s (the attempt on 5081 is abandoned).
    loop {
        let at = e.poll_timeout().unwrap();
        e.handle_timeout(at);
        if sent(&mut e).iter().any(|o| o.0 == addr("127.0.0.1:5082")) {
            break;
        }
    }
    let mut late = trunkline_sip_core::transaction::response_to(&b1, 200, "OK");
    for h in late.headers.iter_mut().filter(|h| h.name == "To") {
        h.value.push_str(";tag=late");
    }
    late.headers.push(trunkline_sip_core::Header { name: "Contact".into(), value: "<sip:pbx1@127.0.0.1:5081>".into() });
    e.handle_datagram(t0 + Duration::from_secs(5), addr("127.0.0.1:5081"), &late.to_bytes());
    let got: Vec<(SocketAddr, String)> = sent(&mut e).into_iter().map(|o| (o.0, o.1)).collect();
    assert_eq!(
        got,
        [
            (addr("127.0.0.1:5081"), "ACK sip:pbx1@127.0.0.1:5081 SIP/2.0".to_string()),
            (addr("127.0.0.1:5081"), "BYE sip:pbx1@127.0.0.1:5081 SIP/2.0".to_string()),
        ]
    );
    assert_eq!(e.calls(), 1, "the call goes on with the next target");
}

/// The caller's in-dialog request `method` with CSeq `seq`, To tag `tag`.
fn caller_request(method: &str, seq: u32, tag: &str, branch: &str) -> Vec<u8> {
    String::from_utf8(invite())
        .unwrap()
        .replace("INVITE sip:", &format!("{method} sip:"))
        .replace("1 INVITE", &format!("{seq} {method}"))
        .replace("z9hG4bK-a1", branch)
        .replace("<sip:+14155550100@trunkline.test>", &format!("<sip:+14155550100@trunkline.test>;tag={tag}"))
        .into_bytes()
}

#[test]
fn a_reinvite_is_relayed_with_its_ack_and_glare_or_old_cseq_are_refused() {
    let t0 = Instant::now();
    let mut e = engine();
    let b1 = start_call(&mut e, t0);
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &ok_for(&b1));
    let ok = sent(&mut e).into_iter().find(|o| o.1 == "SIP/2.0 200 OK").unwrap().2;
    let tag = ok.header("To").unwrap().split(";tag=").nth(1).unwrap().to_owned();
    let caller = addr("127.0.0.1:5070");

    e.handle_datagram(t0, caller, &caller_request("INVITE", 2, &tag, "z9hG4bK-re2"));
    let out = sent(&mut e);
    let relayed = out.iter().find(|o| o.1.starts_with("INVITE ")).expect("re-INVITE relayed");
    assert_eq!(
        (relayed.0, relayed.1.as_str()),
        (addr("127.0.0.1:5082"), "INVITE sip:pbx@127.0.0.1:5082 SIP/2.0"),
        "to the callee's Contact"
    );
    assert_eq!(relayed.2.header("CSeq"), Some("2 INVITE"), "the callee dialog's next CSeq");
    let re_b = relayed.2.clone();

    // Glare: a second re-INVITE while the first is pending.
    e.handle_datagram(t0, caller, &caller_request("INVITE", 3, &tag, "z9hG4bK-re3"));
    assert_eq!(sent(&mut e).into_iter().map(|o| o.1).collect::<Vec<_>>(), ["SIP/2.0 491 Request Pending"]);
    // An INFO with a CSeq already used.
    e.handle_datagram(t0, caller, &caller_request("INFO", 3, &tag, "z9hG4bK-info3"));
    assert_eq!(
        sent(&mut e).into_iter().map(|o| o.1).collect::<Vec<_>>(),
        ["SIP/2.0 500 Server Internal Error (CSeq out of order)"]
    );

    // The callee answers; the caller gets the 200 and its ACK reaches the callee.
    let mut ok2 = trunkline_sip_core::transaction::response_to(&re_b, 200, "OK");
    ok2.body = b"v=0\r\n".to_vec();
    ok2.headers.push(trunkline_sip_core::Header { name: "Content-Type".into(), value: "application/sdp".into() });
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &ok2.to_bytes());
    let out = sent(&mut e);
    assert_eq!((out[0].0, out[0].1.as_str(), out[0].2.header("CSeq")), (caller, "SIP/2.0 200 OK", Some("2 INVITE")));
    assert_eq!(out[0].2.body, b"v=0\r\n", "the SDP answer is relayed");
    e.handle_datagram(t0, caller, &caller_request("ACK", 2, &tag, "z9hG4bK-ack2"));
    let out = sent(&mut e);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0].0, out[0].1.as_str(), out[0].2.header("CSeq")),
        (addr("127.0.0.1:5082"), "ACK sip:pbx@127.0.0.1:5082 SIP/2.0", Some("2 ACK"))
    );
    assert_eq!(e.calls(), 1);
}

#[test]
fn twiml_pause_waits_on_the_clock_then_dial_calls_the_dr_target() {
    let config = CONFIG.replace(
        "numbers = [\"+14155550100\"]",
        "numbers = [\"+14155550100\"]\ndisaster_recovery_url = \"http://127.0.0.1:9/dr\"",
    );
    let t0 = Instant::now();
    let mut e = engine_with(&config);
    let b1 = start_call(&mut e, t0);
    let busy = trunkline_sip_core::transaction::response_to(&b1, 503, "Service Unavailable");
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &busy.to_bytes());
    let b2 = sent(&mut e).into_iter().find(|o| o.1.starts_with("INVITE")).unwrap().2;
    e.handle_datagram(
        t0,
        addr("127.0.0.1:5082"),
        &trunkline_sip_core::transaction::response_to(&b2, 503, "Service Unavailable").to_bytes(),
    );
    sent(&mut e);
    let fetch = e.poll_fetch().expect("all targets failed: TwiML is fetched");
    assert_eq!(fetch.url.to_string(), "http://127.0.0.1:9/dr");
    assert!(fetch.params.iter().any(|(k, v)| k == "To" && v == "+14155550100"));
    let doc = "<Response><Pause length=\"3\"/><Dial><Sip>sip:127.0.0.1:5090</Sip></Dial></Response>";
    e.handle_fetched(t0, fetch.token, Ok(doc.into()));
    assert!(sent(&mut e).iter().all(|o| !o.1.starts_with("INVITE")), "paused");
    let mut dialed_at = None;
    while let Some(at) = e.poll_timeout() {
        if at > t0 + Duration::from_secs(10) {
            break;
        }
        e.handle_timeout(at);
        if sent(&mut e).iter().any(|o| o.1 == "INVITE sip:+14155550100@127.0.0.1:5090 SIP/2.0") {
            dialed_at = Some(at);
            break;
        }
    }
    assert_eq!(dialed_at, Some(t0 + Duration::from_secs(3)), "the Dial starts when the 3 s pause is over");
}

/// A terminating INVITE from the customer, optionally with credentials.
fn terminating_invite(call_id: &str, branch: &str, auth: Option<&str>) -> Vec<u8> {
    let auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default();
    format!(
        "INVITE sip:+12125550123@acme.trunkline.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+14155550100@acme.trunkline.test>;tag=c\r\n\
         To: <sip:+12125550123@acme.trunkline.test>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         {auth}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn digest_sha256_is_accepted_and_a_replayed_nonce_count_is_rechallenged_stale() {
    use trunkline_sip_core::digest::{Algorithm, DigestResponse};
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("acme.password");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let config = format!(
        "{CONFIG}[trunk.termination]\ndomain = \"acme.trunkline.test\"\ncarrier = \"pstn\"\n\
         credentials = [{{ username = \"acme\", password_file = \"{}\" }}]\n\
         digest_algorithms = [\"SHA-256\", \"MD5\"]\n\
         [[carrier]]\nname = \"pstn\"\ngateways = [\"sip:127.0.0.1:5090\"]\n",
        pw.display()
    );
    let t0 = Instant::now();
    let mut e = engine_with(&config);
    let customer = addr("127.0.0.1:5070");
    e.handle_datagram(t0, customer, &terminating_invite("t1", "t1", None));
    let out = sent(&mut e);
    assert_eq!(out.iter().map(|o| o.1.as_str()).collect::<Vec<_>>(), ["SIP/2.0 407 Proxy Authentication Required"]);
    let challenges: Vec<&str> =
        out[0].2.headers.iter().filter(|h| h.name == "Proxy-Authenticate").map(|h| h.value.as_str()).collect();
    assert_eq!(challenges.len(), 2);
    assert!(challenges[0].contains("algorithm=SHA-256") && challenges[1].contains("algorithm=MD5"), "{challenges:?}");
    let nonce = challenges[0].split("nonce=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();

    let credential = |nc: u32| {
        let mut d = DigestResponse {
            username: "acme".into(),
            realm: "acme.trunkline.test".into(),
            nonce: nonce.clone(),
            uri: "sip:+12125550123@acme.trunkline.test".into(),
            response: String::new(),
            algorithm: Algorithm::Sha256,
            cnonce: "c0ffee".into(),
            nc,
            nc_text: format!("{nc:08x}"),
        };
        d.response = d.expected("s3cret", "INVITE");
        format!(
            "Digest username=\"acme\", realm=\"acme.trunkline.test\", nonce=\"{nonce}\", uri=\"{}\", algorithm=SHA-256, qop=auth, nc={}, cnonce=\"c0ffee\", response=\"{}\"",
            d.uri, d.nc_text, d.response
        )
    };
    e.handle_datagram(t0, customer, &terminating_invite("t2", "t2", Some(&credential(1))));
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(
        firsts,
        ["SIP/2.0 100 Trying", "INVITE sip:+12125550123@127.0.0.1:5090 SIP/2.0"],
        "SHA-256 credentials admit the call"
    );

    // The same credentials again (same nonce count): a replay, re-challenged as stale.
    e.handle_datagram(t0, customer, &terminating_invite("t3", "t3", Some(&credential(1))));
    let out = sent(&mut e);
    assert_eq!(out[0].1, "SIP/2.0 407 Proxy Authentication Required");
    assert!(
        out[0].2.header("Proxy-Authenticate").unwrap().ends_with("stale=true"),
        "{:?}",
        out[0].2.header("Proxy-Authenticate")
    );
    // The next count is fine; an expired nonce is stale.
    e.handle_datagram(t0, customer, &terminating_invite("t4", "t4", Some(&credential(2))));
    assert_eq!(sent(&mut e)[0].1, "SIP/2.0 100 Trying");
    e.handle_datagram(t0 + Duration::from_secs(400), customer, &terminating_invite("t5", "t5", Some(&credential(3))));
    let out = sent(&mut e);
    assert!(
        out[0].1 == "SIP/2.0 407 Proxy Authentication Required"
            && out[0].2.header("Proxy-Authenticate").unwrap().ends_with("stale=true")
    );
}

#[test]
fn new_invites_over_the_per_source_rate_get_503_with_retry_after() {
    let t0 = Instant::now();
    let mut e = engine_with(&format!("[limits]\ninvites_per_second = 1\ninvite_burst = 1\n{CONFIG}"));
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &invite());
    assert_eq!(sent(&mut e)[0].1, "SIP/2.0 100 Trying");
    let second = String::from_utf8(invite())
        .unwrap()
        .replace("engine-test", "engine-test-2")
        .replace("z9hG4bK-a1", "z9hG4bK-a2");
    e.handle_datagram(t0, addr("127.0.0.1:5071"), second.as_bytes());
    let out = sent(&mut e);
    assert_eq!(out[0].1, "SIP/2.0 503 Service Unavailable (rate limited)", "same IP, another port: same bucket");
    assert_eq!(out[0].2.header("Retry-After"), Some("1"));
    let third = second.replace("engine-test-2", "engine-test-3").replace("z9hG4bK-a2", "z9hG4bK-a3");
    e.handle_datagram(t0 + Duration::from_secs(1), addr("127.0.0.1:5071"), third.as_bytes());
    assert_eq!(sent(&mut e)[0].1, "SIP/2.0 100 Trying", "a token is back after a second");
}

#[test]
fn twiml_dial_number_goes_through_the_trunks_termination_carrier() {
    let config = format!(
        "{}[trunk.termination]\ndomain = \"t.trunkline.test\"\ncarrier = \"pstn\"\nacl = [\"10.0.0.0/8\"]\n\
         [[carrier]]\nname = \"pstn\"\ngateways = [\"sip:127.0.0.1:5090\", \"sip:127.0.0.1:5091\"]\n",
        CONFIG.replace(
            "numbers = [\"+14155550100\"]",
            "numbers = [\"+14155550100\"]\ndisaster_recovery_url = \"http://127.0.0.1:9/dr\""
        )
    );
    let t0 = Instant::now();
    let mut e = engine_with(&config);
    let b1 = start_call(&mut e, t0);
    e.handle_datagram(
        t0,
        addr("127.0.0.1:5081"),
        &trunkline_sip_core::transaction::response_to(&b1, 503, "Service Unavailable").to_bytes(),
    );
    let b2 = sent(&mut e).into_iter().find(|o| o.1.starts_with("INVITE")).unwrap().2;
    e.handle_datagram(
        t0,
        addr("127.0.0.1:5082"),
        &trunkline_sip_core::transaction::response_to(&b2, 503, "Service Unavailable").to_bytes(),
    );
    sent(&mut e);
    let fetch = e.poll_fetch().unwrap();
    e.handle_fetched(t0, fetch.token, Ok("<Response><Dial><Number>+14155550111</Number></Dial></Response>".into()));
    let invites: Vec<(SocketAddr, String)> =
        sent(&mut e).into_iter().filter(|o| o.1.starts_with("INVITE")).map(|o| (o.0, o.1)).collect();
    assert_eq!(
        invites,
        [(addr("127.0.0.1:5090"), "INVITE sip:+14155550111@127.0.0.1:5090 SIP/2.0".to_string())],
        "the carrier's first gateway"
    );
}

#[test]
fn named_targets_are_resolved_once_through_the_driver_and_a_name_that_fails_is_skipped() {
    let t0 = Instant::now();
    let config =
        CONFIG.replace("sip:127.0.0.1:5081", "sip:PBX.test:5081").replace("sip:127.0.0.1:5082", "sip:gone.test:5082")
            + "[[trunk.origination]]\nuri = \"sip:127.0.0.1:5083\"\npriority = 3\n";
    let mut e = engine_with(&config);
    let firsts = |e: &mut Engine| sent(e).into_iter().map(|o| (o.0, o.1)).collect::<Vec<_>>();
    let caller = addr("127.0.0.1:5070");
    e.handle_datagram(t0, caller, &invite());
    assert_eq!(firsts(&mut e), [(caller, "SIP/2.0 100 Trying".to_string())], "no INVITE before the name resolves");
    assert_eq!(e.poll_resolve(), Some(host("pbx.test")));
    assert_eq!(e.poll_resolve(), None);

    // Our listener is IPv4: the IPv6 address is passed over.
    let t1 = t0 + Duration::from_millis(20);
    let ips = ["::1", "127.0.0.1", "127.0.0.2"].map(|ip| ip.parse().unwrap());
    e.handle_resolved(t1, &host("pbx.test"), Ok(Answer::Addrs(ips.to_vec())));
    let out = sent(&mut e);
    assert_eq!(
        (out[0].0, out[0].1.as_str()),
        (addr("127.0.0.1:5081"), "INVITE sip:+14155550100@PBX.test:5081 SIP/2.0")
    );
    let b_invite = out[0].2.clone();

    // A second call uses the answer already known.
    let second = String::from_utf8(invite()).unwrap().replace("engine-test", "engine-test-2").replace("-a1", "-a2");
    e.handle_datagram(t1, caller, second.as_bytes());
    let out = firsts(&mut e);
    assert_eq!(out[1], (addr("127.0.0.1:5081"), "INVITE sip:+14155550100@PBX.test:5081 SIP/2.0".to_string()));
    assert_eq!(e.poll_resolve(), None, "cached");

    // The first call gets 503: the name's next address comes first
    // (RFC 3263 §4.3), then `gone.test`, which does not resolve, so it is
    // skipped for the next target.
    let unavailable = |invite: &Message| {
        let mut r = trunkline_sip_core::transaction::response_to(invite, 503, "Service Unavailable");
        for h in r.headers.iter_mut().filter(|h| h.name == "To") {
            h.value.push_str(";tag=b");
        }
        r.to_bytes()
    };
    e.handle_datagram(t1, addr("127.0.0.1:5081"), &unavailable(&b_invite));
    let out = sent(&mut e);
    let again = out.iter().find(|o| o.1.starts_with("INVITE")).expect("the next address is tried");
    assert_eq!((again.0, again.1.as_str()), (addr("127.0.0.2:5081"), "INVITE sip:+14155550100@PBX.test:5081 SIP/2.0"));
    let b_invite = again.2.clone();
    e.handle_datagram(t1, addr("127.0.0.2:5081"), &unavailable(&b_invite));
    let out = firsts(&mut e);
    assert!(out.iter().all(|o| !o.1.starts_with("INVITE")), "waits for gone.test: {out:?}");
    assert_eq!(e.poll_resolve(), Some(host("gone.test")));
    e.handle_resolved(t1, &host("gone.test"), Err("no such host".into()));
    let out = firsts(&mut e);
    assert_eq!(
        out.last().unwrap(),
        &(addr("127.0.0.1:5083"), "INVITE sip:+14155550100@127.0.0.1:5083 SIP/2.0".to_string())
    );
}

#[test]
fn a_call_cancelled_while_its_target_name_resolves_sends_nothing_when_the_answer_comes() {
    let t0 = Instant::now();
    let mut e = engine_with(&CONFIG.replace("sip:127.0.0.1:5081", "sip:pbx.test:5081"));
    let caller = addr("127.0.0.1:5070");
    e.handle_datagram(t0, caller, &invite());
    sent(&mut e);
    assert_eq!(e.poll_resolve(), Some(host("pbx.test")));
    let cancel =
        String::from_utf8(invite()).unwrap().replace("INVITE sip:", "CANCEL sip:").replace("1 INVITE", "1 CANCEL");
    e.handle_datagram(t0, caller, cancel.as_bytes());
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(firsts, ["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]);
    assert_eq!(e.calls(), 0);
    let report = e.poll_report().expect("the call is reported");
    assert!(report.outcome.contains("487"), "{}", report.outcome);
    e.handle_resolved(
        t0 + Duration::from_millis(50),
        &host("pbx.test"),
        Ok(Answer::Addrs(vec!["127.0.0.1".parse().unwrap()])),
    );
    assert!(sent(&mut e).is_empty(), "no INVITE for a call that is gone");
}

#[test]
fn an_answered_call_is_hung_up_at_the_trunks_max_call_duration() {
    let t0 = Instant::now();
    let mut e = engine_with(&CONFIG.replace("name = \"t\"", "name = \"t\"\nmax_call_duration_secs = 3600"));
    let b1 = start_call(&mut e, t0);
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &ok_for(&b1));
    let out = sent(&mut e);
    let ok = out.iter().find(|o| o.1.starts_with("SIP/2.0 200")).expect("the caller gets the 200").2.clone();
    let ack = format!(
        "ACK sip:+14155550100@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ack1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+12125550123@carrier.example>;tag=a\r\nTo: {}\r\nCall-ID: engine-test\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        ok.header("To").unwrap()
    );
    e.handle_datagram(t0, addr("127.0.0.1:5070"), ack.as_bytes());
    sent(&mut e);
    // Nothing until the hour is up, then BYE to both parties.
    let mut byes = Vec::new();
    while let Some(at) = e.poll_timeout() {
        e.handle_timeout(at);
        let out = sent(&mut e);
        if out.iter().any(|o| o.1.starts_with("BYE")) {
            assert_eq!(at, t0 + Duration::from_secs(3600), "{out:?}");
            byes = out.into_iter().filter(|o| o.1.starts_with("BYE")).map(|o| o.0).collect();
            break;
        }
    }
    assert_eq!(byes, [addr("127.0.0.1:5082"), addr("127.0.0.1:5070")], "the callee (its Contact) and the caller");
    let report = e.poll_report().expect("the call is reported");
    assert!(report.route.iter().any(|r| r.contains("max call duration (3600 s) reached")), "{:?}", report.route);
    assert!(report.outcome.contains("hung up by the router"), "{}", report.outcome);
}

#[test]
fn a_host_without_a_port_is_looked_up_as_a_sip_service_first() {
    let t0 = Instant::now();
    let config = CONFIG.replace("sip:127.0.0.1:5081", "sip:pbx.test").replace("sip:127.0.0.1:5082", "sip:nosrv.test");
    let mut e = engine_with(&config);
    let caller = addr("127.0.0.1:5070");
    e.handle_datagram(t0, caller, &invite());
    sent(&mut e);
    let service = Question::Srv("_sip._udp.pbx.test".into());
    assert_eq!(e.poll_resolve(), Some(service.clone()));
    // RFC 2782: priority 5 before 10, whatever the order of the answer.
    let record = |priority, port, target: &str| SrvRecord { priority, weight: 0, port, target: target.into() };
    e.handle_resolved(
        t0,
        &service,
        Ok(Answer::Srv(vec![record(10, 5091, "b.pbx.test"), record(5, 5090, "A.pbx.test")])),
    );
    assert_eq!(e.poll_resolve(), Some(host("a.pbx.test")), "the record's host, then its addresses");
    e.handle_resolved(t0, &host("a.pbx.test"), Ok(Answer::Addrs(vec!["127.0.0.1".parse().unwrap()])));
    let out = sent(&mut e);
    let first = out.iter().find(|o| o.1.starts_with("INVITE")).expect("an INVITE");
    assert_eq!(
        (first.0, first.1.as_str()),
        (addr("127.0.0.1:5090"), "INVITE sip:+14155550100@pbx.test SIP/2.0"),
        "the record's port; the Request-URI keeps the name (RFC 3263)"
    );
    // A 503: the next record.
    let mut r = trunkline_sip_core::transaction::response_to(&first.2, 503, "Service Unavailable");
    for h in r.headers.iter_mut().filter(|h| h.name == "To") {
        h.value.push_str(";tag=b");
    }
    e.handle_datagram(t0, addr("127.0.0.1:5090"), &r.to_bytes());
    sent(&mut e);
    assert_eq!(e.poll_resolve(), Some(host("b.pbx.test")));
    e.handle_resolved(t0, &host("b.pbx.test"), Ok(Answer::Addrs(vec!["127.0.0.2".parse().unwrap()])));
    let out = sent(&mut e);
    let second = out.iter().find(|o| o.1.starts_with("INVITE")).expect("the next record");
    assert_eq!(second.0, addr("127.0.0.2:5091"));
    // It fails too: `nosrv.test` has no SRV record, so its own address on 5060.
    let mut r = trunkline_sip_core::transaction::response_to(&second.2, 503, "Service Unavailable");
    for h in r.headers.iter_mut().filter(|h| h.name == "To") {
        h.value.push_str(";tag=c");
    }
    e.handle_datagram(t0, addr("127.0.0.2:5091"), &r.to_bytes());
    sent(&mut e);
    let none = Question::Srv("_sip._udp.nosrv.test".into());
    assert_eq!(e.poll_resolve(), Some(none.clone()));
    e.handle_resolved(t0, &none, Err("no records found".into()));
    assert_eq!(e.poll_resolve(), Some(host("nosrv.test")));
    e.handle_resolved(t0, &host("nosrv.test"), Ok(Answer::Addrs(vec!["127.0.0.3".parse().unwrap()])));
    let out = sent(&mut e);
    let third = out.iter().find(|o| o.1.starts_with("INVITE")).expect("the host itself");
    assert_eq!(third.0, addr("127.0.0.3:5060"));
}

/// An engine whose trunk accepts call transfer.
fn transfer_engine() -> Engine {
    engine_with(&CONFIG.replace("name = \"t\"", "name = \"t\"\ncall_transfer = true"))
}

/// A call answered by the first target: the INVITE it got, and the 200
/// the caller got.
fn answered_call(e: &mut Engine, t0: Instant) -> (Message, Message) {
    let b1 = start_call(e, t0);
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &ok_for(&b1));
    let ok = sent(e).into_iter().find(|o| o.1.starts_with("SIP/2.0 200")).expect("answered").2;
    (b1, ok)
}

/// A request from the answering target inside its dialog (`b_invite` is
/// the INVITE it answered with `ok_for`).
fn from_callee(b_invite: &Message, method: &str, seq: u32, extra: &str) -> Vec<u8> {
    format!(
        "{method} sip:trunkline@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5082;branch=z9hG4bK-{method}{seq}\r\n\
         Max-Forwards: 70\r\nFrom: {};tag=b\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\n{extra}Content-Length: 0\r\n\r\n",
        b_invite.header("To").unwrap(),
        b_invite.header("From").unwrap(),
        b_invite.header("Call-ID").unwrap()
    )
    .into_bytes()
}

#[test]
fn a_refer_is_refused_unless_the_trunk_allows_transfer_and_its_target_is_reachable() {
    let t0 = Instant::now();
    let mut e = engine();
    let (b1, _) = answered_call(&mut e, t0);
    let refer = from_callee(&b1, "REFER", 2, "Refer-To: <sip:+14155550177@127.0.0.1:5090>\r\n");
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &refer);
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(firsts, ["SIP/2.0 403 Call transfer is not enabled on this trunk"]);

    let mut e = transfer_engine();
    let (b1, _) = answered_call(&mut e, t0);
    for (seq, (refer_to, status)) in [
        (
            "<sip:b@127.0.0.1:5090;transport=tcp>",
            "SIP/2.0 501 Not Implemented (no listener for the Refer-To transport)",
        ),
        (
            "<sip:b@127.0.0.1:5090?Replaces=abc%3Bto-tag%3D1>",
            "SIP/2.0 501 Not Implemented (attended transfer, Replaces)",
        ),
        ("<tel:+14155550177>", "SIP/2.0 400 Bad Request (Refer-To must be a sip: or sips: URI)"),
    ]
    .into_iter()
    .enumerate()
    {
        let refer = from_callee(&b1, "REFER", 2 + seq as u32, &format!("Refer-To: {refer_to}\r\n"));
        e.handle_datagram(t0, addr("127.0.0.1:5082"), &refer);
        let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
        assert_eq!(firsts, [status], "{refer_to}");
    }
}

#[test]
fn a_transfer_survives_the_referrers_bye_and_a_failed_target_then_ends_the_call() {
    let t0 = Instant::now();
    let mut e = transfer_engine();
    let (b1, _) = answered_call(&mut e, t0);
    let refer = from_callee(&b1, "REFER", 2, "Refer-To: <sip:+14155550177@127.0.0.1:5090>\r\n");
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &refer);
    let out = sent(&mut e);
    let firsts: Vec<(SocketAddr, String)> = out.iter().map(|o| (o.0, o.1.clone())).collect();
    assert_eq!(
        firsts,
        [
            (addr("127.0.0.1:5082"), "SIP/2.0 202 Accepted".to_string()),
            (addr("127.0.0.1:5082"), "NOTIFY sip:pbx@127.0.0.1:5082 SIP/2.0".to_string()),
            (addr("127.0.0.1:5090"), "INVITE sip:+14155550177@127.0.0.1:5090 SIP/2.0".to_string()),
        ]
    );
    assert_eq!(out[1].2.body, b"SIP/2.0 100 Trying\r\n");
    assert_eq!(out[1].2.header("Event"), Some("refer"));
    let target_invite = out[2].2.clone();
    assert!(target_invite.body.is_empty(), "no offer: the target makes one (RFC 3725 flow I)");
    assert_eq!(target_invite.header("Referred-By"), None);
    assert!(target_invite.header("From").unwrap().starts_with("<sip:+12125550123@carrier.example>"), "the caller");

    // The referrer hangs up at once (a blind transfer): the call goes on.
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &from_callee(&b1, "BYE", 3, ""));
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(firsts, ["SIP/2.0 200 OK"], "no BYE to the caller");
    assert_eq!(e.calls(), 1);

    // The target is busy: with the referrer gone, the call ends.
    let mut busy = trunkline_sip_core::transaction::response_to(&target_invite, 486, "Busy Here");
    for h in busy.headers.iter_mut().filter(|h| h.name == "To") {
        h.value.push_str(";tag=c");
    }
    e.handle_datagram(t0, addr("127.0.0.1:5090"), &busy.to_bytes());
    let out: Vec<(SocketAddr, String)> = sent(&mut e).into_iter().map(|o| (o.0, o.1)).collect();
    assert!(out.contains(&(addr("127.0.0.1:5070"), "BYE sip:carrier@127.0.0.1:5070 SIP/2.0".to_string())), "{out:?}");
    assert_eq!(e.calls(), 0);
    let report = e.poll_report().expect("reported");
    let route = report.route.join("\n");
    assert!(route.contains("REFER by the callee to sip:+14155550177@127.0.0.1:5090: INVITE sip:+14155550177@127.0.0.1:5090 -> 486 Busy Here"), "{route}");
    assert!(route.contains("the referrer hung up; the transfer goes on"), "{route}");
    assert!(route.contains("transfer failed after the referrer hung up"), "{route}");
}

#[test]
fn the_caller_hanging_up_during_a_transfer_cancels_the_target_and_spares_a_gone_referrer() {
    let t0 = Instant::now();
    let mut e = transfer_engine();
    let (b1, ok) = answered_call(&mut e, t0);
    let refer = from_callee(&b1, "REFER", 2, "Refer-To: <sip:+14155550177@127.0.0.1:5090>\r\n");
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &refer);
    let target_invite = sent(&mut e).into_iter().find(|o| o.1.starts_with("INVITE")).expect("to the target").2;
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &from_callee(&b1, "BYE", 3, ""));
    sent(&mut e);
    e.handle_datagram(t0, addr("127.0.0.1:5090"), &ringing_for(&target_invite));
    sent(&mut e);
    let bye = format!(
        "BYE sip:+14155550100@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-bye1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+12125550123@carrier.example>;tag=a\r\nTo: {}\r\nCall-ID: engine-test\r\n\
         CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        ok.header("To").unwrap()
    );
    e.handle_datagram(t0, addr("127.0.0.1:5070"), bye.as_bytes());
    let out: Vec<(SocketAddr, String)> = sent(&mut e).into_iter().map(|o| (o.0, o.1)).collect();
    assert_eq!(
        out,
        [
            (addr("127.0.0.1:5070"), "SIP/2.0 200 OK".to_string()),
            (addr("127.0.0.1:5090"), "CANCEL sip:+14155550177@127.0.0.1:5090 SIP/2.0".to_string()),
        ],
        "no BYE to the referrer, who already left"
    );
    assert_eq!(e.calls(), 0);
}

#[test]
fn a_refer_to_a_number_at_our_termination_domain_goes_out_through_the_trunks_carrier() {
    let config = format!(
        "{}[trunk.termination]\ndomain = \"t.trunkline.test\"\ncarrier = \"pstn\"\nacl = [\"10.0.0.0/8\"]\n\
         [[carrier]]\nname = \"pstn\"\ngateways = [\"sip:127.0.0.1:5090\"]\n",
        CONFIG.replace("name = \"t\"", "name = \"t\"\ncall_transfer = true")
    );
    let t0 = Instant::now();
    let mut e = engine_with(&config);
    let (b1, _) = answered_call(&mut e, t0);
    let refer = from_callee(&b1, "REFER", 2, "Refer-To: <sip:+14155550177@T.trunkline.test>\r\n");
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &refer);
    let out: Vec<(SocketAddr, String)> = sent(&mut e).into_iter().map(|o| (o.0, o.1)).collect();
    assert_eq!(out[0].1, "SIP/2.0 202 Accepted");
    assert_eq!(out[2], (addr("127.0.0.1:5090"), "INVITE sip:+14155550177@127.0.0.1:5090 SIP/2.0".to_string()));
}

#[test]
fn a_refer_to_a_host_name_waits_for_its_address_and_one_that_does_not_resolve_fails_the_transfer() {
    let t0 = Instant::now();
    let mut e = transfer_engine();
    let (b1, _) = answered_call(&mut e, t0);
    let refer = from_callee(&b1, "REFER", 2, "Refer-To: <sip:alice@PBX2.test?X-Reason=after-hours>\r\n");
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &refer);
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(firsts, ["SIP/2.0 202 Accepted", "NOTIFY sip:pbx@127.0.0.1:5082 SIP/2.0"], "no INVITE yet");
    assert_eq!(e.poll_resolve(), Some(host("pbx2.test")));
    e.handle_resolved(t0, &host("pbx2.test"), Ok(Answer::Addrs(vec!["127.0.0.9".parse().unwrap()])));
    let out: Vec<(SocketAddr, String)> = sent(&mut e).into_iter().map(|o| (o.0, o.1)).collect();
    assert_eq!(out, [(addr("127.0.0.9:5060"), "INVITE sip:alice@PBX2.test SIP/2.0".to_string())]);

    // Another call, whose Refer-To does not resolve: the referrer is told.
    let mut e = transfer_engine();
    let (b1, _) = answered_call(&mut e, t0);
    let refer = from_callee(&b1, "REFER", 2, "Refer-To: <sip:bob@gone.test>\r\n");
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &refer);
    sent(&mut e);
    assert_eq!(e.poll_resolve(), Some(host("gone.test")));
    e.handle_resolved(t0, &host("gone.test"), Err("no such host".into()));
    let out = sent(&mut e);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].1, "NOTIFY sip:pbx@127.0.0.1:5082 SIP/2.0");
    assert_eq!(
        String::from_utf8_lossy(&out[0].2.body),
        "SIP/2.0 503 Service Unavailable (gone.test does not resolve: no such host)\r\n"
    );
    assert_eq!(out[0].2.header("Subscription-State"), Some("terminated;reason=noresource"));
    assert_eq!(e.calls(), 1, "the call stays with the referrer");
}

#[test]
fn with_a_delayed_offer_the_targets_ack_carries_the_callers_answer() {
    let t0 = Instant::now();
    let mut e = engine();
    let b1 = start_call(&mut e, t0); // the caller's INVITE has no SDP
    assert!(b1.body.is_empty());
    let mut ok = Message::parse(&ok_for(&b1)).unwrap();
    ok.body = b"v=0\r\no=pbx-offer 1 1 IN IP4 127.0.0.1\r\n".to_vec();
    ok.headers.push(trunkline_sip_core::Header { name: "Content-Type".into(), value: "application/sdp".into() });
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &ok.to_bytes());
    let out = sent(&mut e);
    assert_eq!(out.iter().map(|o| o.1.as_str()).collect::<Vec<_>>(), ["SIP/2.0 200 OK"], "no ACK without the answer");
    assert_eq!(out[0].2.body, ok.body, "the offer goes to the caller");
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &ok.to_bytes());
    assert!(sent(&mut e).iter().all(|o| !o.1.starts_with("ACK")), "a repeated 2xx waits for the answer too");
    let answer = "v=0\r\no=caller-answer 1 1 IN IP4 127.0.0.1\r\n";
    let ack = String::from_utf8(invite())
        .unwrap()
        .replace("INVITE sip:", "ACK sip:")
        .replace("1 INVITE", "1 ACK")
        .replace("z9hG4bK-a1", "z9hG4bK-ack1")
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer}", answer.len()),
        );
    e.handle_datagram(t0, addr("127.0.0.1:5070"), ack.as_bytes());
    let out = sent(&mut e);
    assert_eq!(out.iter().map(|o| o.1.as_str()).collect::<Vec<_>>(), ["ACK sip:pbx@127.0.0.1:5082 SIP/2.0"]);
    assert_eq!(out[0].2.body, answer.as_bytes());
    assert_eq!(out[0].2.header("Content-Type"), Some("application/sdp"));
    // A 2xx repeated after that gets the same ACK again.
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &ok.to_bytes());
    let again = sent(&mut e);
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].2.body.as_slice(), again[0].2.header("Via")), (answer.as_bytes(), out[0].2.header("Via")));
}
