//! Media anchoring through the engine: every description rewritten to
//! name the router, the relay told each call's streams, ports given back
//! on every way a call ends (10,000 calls through a real relay).

use std::collections::HashSet;

use super::*;
use crate::engine::MediaCommand;
use trunkline_media_core::sdp::Sdp;
use trunkline_sip_core::transaction::response_to;
use trunkline_sip_core::Header;

/// The engine tests' configuration with media anchored on 192.0.2.10,
/// ports 30000-31999.
fn relayed_config() -> String {
    CONFIG.replacen(
        "[[trunk]]",
        "[media]\nadvertise = \"192.0.2.10\"\nport_min = 30000\nport_max = 31999\n[[trunk]]",
        1,
    )
}

fn sdp(ip: &str, port: u16, version: u32) -> String {
    format!(
        "v=0\r\no=- 7 {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=x-odd:kept as is\r\n"
    )
}

fn with_body(m: Vec<u8>, body: &str) -> Vec<u8> {
    String::from_utf8(m)
        .unwrap()
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
        )
        .into_bytes()
}

fn invite_sdp(call_id: &str, body: &str) -> Vec<u8> {
    let m = String::from_utf8(invite()).unwrap().replace("engine-test", call_id).replace("-a1", &format!("-{call_id}"));
    with_body(m.into_bytes(), body)
}

fn response_sdp(b_invite: &Message, status: u16, tag: &str, body: &str) -> Vec<u8> {
    let mut r = response_to(b_invite, status, "X");
    for h in r.headers.iter_mut().filter(|h| h.name == "To") {
        h.value.push_str(&format!(";tag={tag}"));
    }
    r.headers.push(Header { name: "Contact".into(), value: "<sip:pbx@127.0.0.1:5082>".into() });
    if !body.is_empty() {
        r.headers.push(Header { name: "Content-Type".into(), value: "application/sdp".into() });
        r.body = body.as_bytes().to_vec();
    }
    r.to_bytes()
}

/// The only stream of a description: (its c= address, m= port).
fn where_(m: &Message) -> (String, u16) {
    let s = Sdp::parse(&m.body).expect("an SDP body");
    (s.connection_ip(0).unwrap().to_string(), s.media(0).unwrap().port)
}

fn relayed(e: &mut Engine) -> Vec<MediaCommand> {
    std::iter::from_fn(|| e.poll_media()).collect()
}

#[test]
fn each_party_sees_only_the_router_and_the_relay_learns_both() {
    let t0 = Instant::now();
    let mut e = engine_with(&relayed_config());
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &invite_sdp("m1", &sdp("198.51.100.7", 40000, 1)));
    let out = sent(&mut e);
    let b1 = out.iter().find(|o| o.1.starts_with("INVITE")).unwrap().2.clone();
    let (ip, to_callee) = where_(&b1);
    assert_eq!(ip, "192.0.2.10", "media.advertise");
    assert!((30000..32000).contains(&to_callee) && to_callee % 2 == 0);
    assert!(String::from_utf8_lossy(&b1.body).contains("a=x-odd:kept as is\r\n"), "unknown lines kept");
    let cmds = relayed(&mut e);
    let MediaCommand::Relay { streams, .. } = cmds.last().unwrap() else { panic!("{cmds:?}") };
    assert_eq!(streams[0].remote[0].unwrap().rtp, Some(addr("198.51.100.7:40000")));
    assert_eq!(streams[0].remote[1], None, "the target has not answered yet");

    e.handle_datagram(t0, addr("127.0.0.1:5081"), &response_sdp(&b1, 183, "b", &sdp("203.0.113.5", 50000, 9)));
    let early = sent(&mut e).into_iter().find(|o| o.1.starts_with("SIP/2.0 183")).unwrap().2;
    let (ip, to_caller) = where_(&early);
    assert_eq!(ip, "192.0.2.10");
    assert_ne!(to_caller, to_callee);
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &response_sdp(&b1, 200, "b", &sdp("203.0.113.5", 50000, 9)));
    let ok = sent(&mut e).into_iter().find(|o| o.1.starts_with("SIP/2.0 200")).unwrap().2;
    assert_eq!(where_(&ok), ("192.0.2.10".into(), to_caller), "same port as the early media");
    let MediaCommand::Relay { call, streams, .. } = relayed(&mut e).pop().unwrap() else { panic!() };
    assert_eq!(streams[0].remote[1].unwrap().rtp, Some(addr("203.0.113.5:50000")));
    assert_eq!(streams[0].local, [Some(to_caller), Some(to_callee)]);
    assert_eq!(e.media_ports_in_use(), 2);

    e.handle_datagram(
        t0,
        addr("127.0.0.1:5070"),
        &caller_request("BYE", 2, &tag_of(&ok), "z9hG4bK-bye").replace_call("m1"),
    );
    sent(&mut e);
    assert_eq!(relayed(&mut e), [MediaCommand::Stop { call }]);
    assert_eq!(e.media_ports_in_use(), 0);
    let report = e.poll_report().unwrap();
    assert_eq!(
        report.media,
        [format!(
            "audio: caller 198.51.100.7:40000 <-> router :{to_caller} | :{to_callee} <-> callee 203.0.113.5:50000"
        )]
    );
}

fn tag_of(m: &Message) -> String {
    m.header("To").unwrap().split(";tag=").nth(1).unwrap().to_owned()
}

#[test]
fn a_passthrough_trunk_leaves_descriptions_alone() {
    let t0 = Instant::now();
    let mut e = engine_with(
        &relayed_config()
            .replace("numbers = [\"+14155550100\"]", "numbers = [\"+14155550100\"]\nmedia = \"passthrough\""),
    );
    let offer = sdp("198.51.100.7", 40000, 1);
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &invite_sdp("p1", &offer));
    let b1 = sent(&mut e).into_iter().find(|o| o.1.starts_with("INVITE")).unwrap().2;
    assert_eq!(b1.body, offer.as_bytes());
    assert!(relayed(&mut e).is_empty());
    assert_eq!(e.media_ports_in_use(), 0);
}

#[test]
fn an_unreadable_offer_gets_488_and_no_free_port_503() {
    let t0 = Instant::now();
    let mut e = engine_with(&relayed_config().replace("port_max = 31999", "port_max = 30003"));
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &invite_sdp("u1", "m=audio x RTP/AVP 0\r\n"));
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(
        firsts,
        ["SIP/2.0 100 Trying", "SIP/2.0 488 Not Acceptable Here (session description: does not start with v=)"]
    );
    // Two pairs: one call with one stream takes both.
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &invite_sdp("u2", &sdp("198.51.100.7", 40000, 1)));
    assert!(sent(&mut e).iter().any(|o| o.1.starts_with("INVITE")));
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &invite_sdp("u3", &sdp("198.51.100.8", 40000, 1)));
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(firsts, ["SIP/2.0 100 Trying", "SIP/2.0 503 Service Unavailable (no media ports free)"]);
    assert_eq!((e.calls(), e.media_ports_in_use()), (1, 2));
}

#[test]
fn a_refused_reoffer_leaves_the_media_where_it_was() {
    let t0 = Instant::now();
    let mut e = engine_with(&relayed_config());
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &invite_sdp("r1", &sdp("198.51.100.7", 40000, 1)));
    let b1 = sent(&mut e).into_iter().find(|o| o.1.starts_with("INVITE")).unwrap().2;
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &response_sdp(&b1, 200, "b", &sdp("203.0.113.5", 50000, 1)));
    let ok = sent(&mut e).into_iter().find(|o| o.1.starts_with("SIP/2.0 200")).unwrap().2;
    relayed(&mut e);
    // The caller moves; the callee refuses.
    let re = with_body(
        caller_request("INVITE", 2, &tag_of(&ok), "z9hG4bK-re2").replace_call("r1"),
        &sdp("198.51.100.99", 41000, 2),
    );
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &re);
    let re_b = sent(&mut e).into_iter().find(|o| o.1.starts_with("INVITE")).unwrap().2;
    assert_eq!(where_(&re_b).0, "192.0.2.10");
    let MediaCommand::Relay { streams, .. } = relayed(&mut e).pop().unwrap() else { panic!() };
    assert_eq!(streams[0].remote[0].unwrap().rtp, Some(addr("198.51.100.99:41000")), "followed at once");
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &response_sdp(&re_b, 488, "b", ""));
    let out = sent(&mut e);
    assert!(out.iter().any(|o| o.1.starts_with("SIP/2.0 488")), "{out:?}");
    let MediaCommand::Relay { streams, .. } = relayed(&mut e).pop().unwrap() else { panic!() };
    assert_eq!(streams[0].remote[0].unwrap().rtp, Some(addr("198.51.100.7:40000")), "back as it was");
}

/// One call of the leak test, ending the way `n` picks.
fn mixed_call(e: &mut Engine, now: Instant, n: usize) {
    let call_id = format!("leak{n}");
    e.handle_datagram(now, addr("127.0.0.1:5070"), &invite_sdp(&call_id, &sdp("198.51.100.7", 40000, 1)));
    let Some(b1) = sent(e).into_iter().find(|o| o.1.starts_with("INVITE")).map(|o| o.2) else { return };
    let answer = sdp("203.0.113.5", 50000, 1);
    let caller = addr("127.0.0.1:5070");
    match n % 7 {
        // Answered, the caller hangs up.
        0 | 1 => {
            e.handle_datagram(now, addr("127.0.0.1:5081"), &response_sdp(&b1, 200, "b", &answer));
            let ok = sent(e).into_iter().find(|o| o.1.starts_with("SIP/2.0 200")).unwrap().2;
            e.handle_datagram(
                now,
                caller,
                &caller_request("BYE", 2, &tag_of(&ok), &format!("z9hG4bK-bye{n}")).replace_call(&call_id),
            );
        }
        // Early media, then the caller cancels.
        2 => {
            e.handle_datagram(now, addr("127.0.0.1:5081"), &response_sdp(&b1, 183, "b", &answer));
            let cancel = String::from_utf8(invite_sdp(&call_id, ""))
                .unwrap()
                .replace("INVITE sip:", "CANCEL sip:")
                .replace("1 INVITE", "1 CANCEL");
            e.handle_datagram(now, caller, cancel.as_bytes());
        }
        // Busy: no failover on 486.
        3 => e.handle_datagram(now, addr("127.0.0.1:5081"), &response_sdp(&b1, 486, "b", "")),
        // 503 with early media, failover, the second target answers, then hangs up.
        4 => {
            e.handle_datagram(now, addr("127.0.0.1:5081"), &response_sdp(&b1, 183, "b", &answer));
            e.handle_datagram(now, addr("127.0.0.1:5081"), &response_sdp(&b1, 503, "b", ""));
            let b2 = sent(e).into_iter().find(|o| o.1.starts_with("INVITE")).unwrap().2;
            e.handle_datagram(now, addr("127.0.0.1:5082"), &response_sdp(&b2, 200, "c", &sdp("203.0.113.6", 52000, 1)));
            sent(e);
            e.handle_datagram(now, addr("127.0.0.1:5082"), &from_callee(&b2, "BYE", 1, "").retag("c", n));
        }
        // Redirected to a third target that answers; an unreadable
        // re-offer is refused; the caller hangs up.
        5 => {
            let mut moved = Message::parse(&response_sdp(&b1, 302, "b", "")).unwrap();
            moved.headers.retain(|h| h.name != "Contact");
            moved.headers.push(Header { name: "Contact".into(), value: "<sip:+14155550100@127.0.0.1:5083>".into() });
            e.handle_datagram(now, addr("127.0.0.1:5081"), &moved.to_bytes());
            let b3 = sent(e).into_iter().find(|o| o.1.starts_with("INVITE")).unwrap().2;
            e.handle_datagram(now, addr("127.0.0.1:5083"), &response_sdp(&b3, 200, "d", &answer));
            let ok = sent(e).into_iter().find(|o| o.1.starts_with("SIP/2.0 200")).unwrap().2;
            let re = with_body(
                caller_request("INVITE", 2, &tag_of(&ok), &format!("z9hG4bK-re{n}")).replace_call(&call_id),
                "junk",
            );
            e.handle_datagram(now, caller, &re);
            e.handle_datagram(
                now,
                caller,
                &caller_request("BYE", 3, &tag_of(&ok), &format!("z9hG4bK-bye{n}")).replace_call(&call_id),
            );
        }
        // Answered and never ACKed: the router hangs up after 32 s.
        _ => {
            e.handle_datagram(now, addr("127.0.0.1:5081"), &response_sdp(&b1, 200, "b", &answer));
        }
    }
    sent(e);
}

trait ReplaceCall {
    fn replace_call(self, call_id: &str) -> Vec<u8>;
}

impl ReplaceCall for Vec<u8> {
    fn replace_call(self, call_id: &str) -> Vec<u8> {
        String::from_utf8(self).unwrap().replace("engine-test", call_id).into_bytes()
    }
}

#[test]
fn ten_thousand_calls_ending_every_way_give_back_every_port_and_relay_session() {
    let t0 = Instant::now();
    let mut e = engine_with(
        &relayed_config()
            .replace("port_min = 30000", "port_min = 36000")
            .replace("port_max = 31999", "port_max = 39999"),
    );
    let config = trunkline_relay::RelayConfig {
        bind: "127.0.0.1".parse().unwrap(),
        first_port: 36000,
        last_port: 39999,
        threads: 1,
        kernel_forwarding: false,
    };
    let mut relay = trunkline_relay::Relay::start(&config).unwrap();
    e.set_ports(Box::new(relay.ports(Duration::from_secs(2)).unwrap()));
    let (mut live, mut peak) = (HashSet::new(), 0);
    let mut now = t0;
    for n in 0..10_000 {
        now += Duration::from_millis(20);
        mixed_call(&mut e, now, n);
        while let Some(at) = e.poll_timeout().filter(|at| *at <= now) {
            e.handle_timeout(at);
            sent(&mut e);
        }
        for cmd in relayed(&mut e) {
            match cmd {
                MediaCommand::Relay { call, streams, symmetric, recording } => {
                    live.insert(call);
                    relay.apply(call, &streams, symmetric, recording.as_ref());
                }
                MediaCommand::Stop { call } => {
                    live.remove(&call);
                    relay.stop(call);
                }
                MediaCommand::Play { .. } => unreachable!("no TwiML here"),
            }
        }
        peak = peak.max(relay.calls());
    }
    // The calls never ACKed end 32 s later.
    let end = now + Duration::from_secs(40);
    while let Some(at) = e.poll_timeout().filter(|at| *at <= end) {
        e.handle_timeout(at);
        sent(&mut e);
    }
    for cmd in relayed(&mut e) {
        if let MediaCommand::Stop { call } = cmd {
            live.remove(&call);
            relay.stop(call);
        }
    }
    let mut outcomes = std::collections::BTreeMap::new();
    for r in std::iter::from_fn(|| e.poll_report()) {
        *outcomes.entry(r.outcome.split(' ').next().unwrap().to_owned()).or_insert(0) += 1;
    }
    let per = |k: &[usize]| (0..10_000).filter(|n| k.contains(&(n % 7))).count();
    let expected = [("answered", per(&[0, 1, 4, 5, 6])), ("cancelled", per(&[2])), ("failed", per(&[3]))];
    assert_eq!(outcomes, expected.iter().map(|(k, v)| (k.to_string(), *v)).collect());
    assert!(peak > 100, "calls overlapped ({peak} at most)");
    assert_eq!(e.calls(), 0);
    assert_eq!(e.media_ports_in_use(), 0, "every port pair given back");
    assert!(live.is_empty(), "every relayed call stopped: {} left", live.len());
    assert_eq!((relay.calls(), relay.routed_ports()), (0, 0), "no relay session left");
}

trait Retag {
    fn retag(self, tag: &str, n: usize) -> Vec<u8>;
}

impl Retag for Vec<u8> {
    /// A request from the callee whose dialog has To tag `tag` (not `b`),
    /// its branch unique to call `n`.
    fn retag(self, tag: &str, n: usize) -> Vec<u8> {
        let m = String::from_utf8(self).unwrap().replacen(";tag=b", &format!(";tag={tag}"), 1);
        m.replacen("branch=z9hG4bK-", &format!("branch=z9hG4bK-{n}-"), 1).into_bytes()
    }
}

#[test]
fn a_silent_answered_call_is_hung_up_unless_it_is_on_hold_or_still_ringing() {
    let t0 = Instant::now();
    let mut e = engine_with(&relayed_config().replace("port_max = 31999", "port_max = 31999\nrtp_timeout_secs = 30"));
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &invite_sdp("i1", &sdp("198.51.100.7", 40000, 1)));
    let b1 = sent(&mut e).into_iter().find(|o| o.1.starts_with("INVITE")).unwrap().2;
    let MediaCommand::Relay { call, .. } = relayed(&mut e).pop().unwrap() else { panic!() };
    e.handle_media_idle(t0, call);
    assert!(sent(&mut e).is_empty(), "ringing: left alone");
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &response_sdp(&b1, 200, "b", &sdp("203.0.113.5", 50000, 1)));
    let ok = sent(&mut e).into_iter().find(|o| o.1.starts_with("SIP/2.0 200")).unwrap().2;
    // The caller puts the call on hold (inactive): silence is expected.
    let hold = sdp("198.51.100.7", 40000, 2).replace("a=x-odd", "a=inactive\r\na=x-odd");
    let re = with_body(caller_request("INVITE", 2, &tag_of(&ok), "z9hG4bK-hold").replace_call("i1"), &hold);
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &re);
    let re_b = sent(&mut e).into_iter().find(|o| o.1.starts_with("INVITE")).unwrap().2;
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &response_sdp(&re_b, 200, "b", &sdp("203.0.113.5", 50000, 2)));
    sent(&mut e);
    e.handle_media_idle(t0, call);
    assert!(sent(&mut e).iter().all(|o| !o.1.starts_with("BYE")), "on hold: left alone");
    // Resumed, then silent: BYE to both parties, and the report says why.
    let resume = with_body(
        caller_request("INVITE", 3, &tag_of(&ok), "z9hG4bK-resume").replace_call("i1"),
        &sdp("198.51.100.7", 40000, 3),
    );
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &resume);
    let re_b = sent(&mut e).into_iter().find(|o| o.1.starts_with("INVITE")).unwrap().2;
    e.handle_datagram(t0, addr("127.0.0.1:5082"), &response_sdp(&re_b, 200, "b", &sdp("203.0.113.5", 50000, 3)));
    sent(&mut e);
    e.handle_media_idle(t0, call);
    let byes: Vec<SocketAddr> = sent(&mut e).into_iter().filter(|o| o.1.starts_with("BYE")).map(|o| o.0).collect();
    assert_eq!(byes, [addr("127.0.0.1:5082"), addr("127.0.0.1:5070")]);
    let report = e.poll_report().unwrap();
    assert!(report.route.iter().any(|r| r.contains("no media for 30 s (media.rtp_timeout_secs)")), "{report}");
    assert!(report.outcome.contains("hung up by the router"), "{report}");
    assert_eq!(e.media_ports_in_use(), 0);
}

/// The test configuration with a disaster-recovery URL on the trunk.
fn dr_config() -> String {
    relayed_config().replace(
        "numbers = [\"+14155550100\"]",
        "numbers = [\"+14155550100\"]\ndisaster_recovery_url = \"http://127.0.0.1:9/dr\"",
    )
}

/// A call from 198.51.100.7:40000 whose two targets both answer 503,
/// then TwiML `doc`: returns the engine's next fetch.
fn failed_to_twiml(e: &mut Engine, t0: Instant, call_id: &str, doc: &str) -> crate::engine::FetchRequest {
    let invite = invite_sdp(call_id, &sdp("198.51.100.7", 40000, 1));
    invite_failed_to_twiml(e, t0, &invite, doc).expect("the next fetch")
}

/// `invite` from the caller, both targets answering 503, then TwiML
/// `doc`: the engine's next fetch, if any.
fn invite_failed_to_twiml(
    e: &mut Engine,
    t0: Instant,
    invite: &[u8],
    doc: &str,
) -> Option<crate::engine::FetchRequest> {
    e.handle_datagram(t0, addr("127.0.0.1:5070"), invite);
    for target in ["127.0.0.1:5081", "127.0.0.1:5082"] {
        let b = sent(e).into_iter().find(|o| o.1.starts_with("INVITE")).expect("an attempt").2;
        e.handle_datagram(t0, addr(target), &response_to(&b, 503, "Service Unavailable").to_bytes());
    }
    sent(e);
    let twiml = e.poll_fetch().expect("TwiML fetched");
    e.handle_fetched(t0, twiml.token, Ok(doc.into()));
    e.poll_fetch()
}

/// 800 samples of µ-law (five 20 ms packets) as a WAV file.
fn clip_wav() -> Vec<u8> {
    let codes: Vec<u8> = (0..800).map(|i| (i % 251) as u8).collect();
    trunkline_media_core::wav::write(
        trunkline_media_core::wav::Encoding::G711(trunkline_media_core::g711::Law::Ulaw),
        &codes,
    )
}

#[test]
fn twiml_play_answers_the_caller_from_the_router_plays_the_file_then_hangs_up() {
    let t0 = Instant::now();
    let mut e = engine_with(&dr_config());
    let doc =
        "<Response><Play loop=\"2\">/closed.wav</Play><Dial><Sip>sip:127.0.0.1:5090</Sip></Dial><Hangup/></Response>";
    let audio = failed_to_twiml(&mut e, t0, "dr-play", doc);
    assert_eq!(audio.kind, crate::engine::FetchKind::Audio);
    assert_eq!(audio.url.to_string(), "http://127.0.0.1:9/closed.wav", "relative to the document's URL");
    assert!(sent(&mut e).is_empty(), "still ringing while the file is fetched");
    e.handle_audio_fetched(t0, audio.token, Ok(clip_wav()));
    let out = sent(&mut e);
    let ok = out.iter().find(|o| o.1.starts_with("SIP/2.0 200")).expect("the router answers").2.clone();
    assert_eq!(out[0].0, addr("127.0.0.1:5070"));
    let (ip, port) = where_(&ok);
    assert_eq!(ip, "192.0.2.10");
    let answer = Sdp::parse(&ok.body).unwrap();
    assert_eq!(answer.media(0).unwrap().formats, ["0"], "PCMU, the caller's first G.711");
    let cmds = relayed(&mut e);
    let n = cmds.len();
    let MediaCommand::Relay { streams, .. } = &cmds[n - 2] else { panic!("{cmds:?}") };
    assert_eq!(streams[0].local[0], Some(port));
    assert_eq!(streams[0].remote[0].unwrap().rtp, Some(addr("198.51.100.7:40000")));
    assert_eq!(streams[0].remote[1], None, "no callee");
    let MediaCommand::Play { port: played_on, clip, loops, .. } = &cmds[n - 1] else { panic!("{cmds:?}") };
    assert_eq!((*played_on, clip.payload_type, clip.codes.len(), *loops), (port, 0, 800, Some(2)));
    assert_eq!(&clip.codes[..5], &[0, 1, 2, 3, 4], "the file's own µ-law bytes");

    // A re-INVITE from the caller (hold) is answered by the router itself.
    let tag = ok.header("To").unwrap().split(";tag=").nth(1).unwrap().to_owned();
    let reinvite =
        String::from_utf8(caller_request("INVITE", 2, &tag, "z9hG4bK-re1")).unwrap().replace("engine-test", "dr-play");
    let held = sdp("198.51.100.7", 40000, 2).replace("a=x-odd", "a=sendonly\r\na=x-odd");
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &with_body(reinvite.into_bytes(), &held));
    let out = sent(&mut e);
    let re_ok = &out.iter().find(|o| o.1.starts_with("SIP/2.0 200")).expect("answered here").2;
    assert_eq!(Sdp::parse(&re_ok.body).unwrap().direction(0), trunkline_media_core::sdp::Direction::RecvOnly);
    assert_eq!(where_(re_ok), where_(&ok), "the same router port");
    assert!(out.iter().all(|o| !o.1.starts_with("INVITE")), "nobody to relay it to");

    // Two passes of 100 ms (+200 ms): then <Dial> is skipped, <Hangup/> hangs up.
    let mut bye_at = None;
    while let Some(at) = e.poll_timeout().filter(|at| *at < t0 + Duration::from_secs(5)) {
        e.handle_timeout(at);
        if sent(&mut e).iter().any(|o| o.1.starts_with("BYE sip:carrier@127.0.0.1:5070")) {
            bye_at = Some(at);
            break;
        }
    }
    assert_eq!(bye_at, Some(t0 + Duration::from_millis(400)));
    assert_eq!(relayed(&mut e).last(), Some(&MediaCommand::Stop { call: audio.token }));
    let report = e.poll_report().unwrap();
    let route = report.route.join("\n");
    assert!(route.contains("TwiML <Play>: answered by the router (PCMU)"), "{route}");
    assert!(route.contains("TwiML <Play> http://127.0.0.1:9/closed.wav: 100 ms of PCMU played 2 time(s)"), "{route}");
    assert!(route.contains("TwiML <Dial> after the router answered the call: not supported, skipped"), "{route}");
    assert!(report.outcome.starts_with("answered by the router (TwiML <Play>)"), "{}", report.outcome);
    assert!(report.outcome.ends_with("hung up by the router"), "{}", report.outcome);
    assert_eq!(e.media_ports_in_use(), 0);
}

#[test]
fn an_unplayable_file_is_skipped_with_the_reason_and_the_call_is_still_ringing() {
    let t0 = Instant::now();
    let mut e = engine_with(&dr_config());
    let doc = "<Response><Play>http://127.0.0.1:9/a.wav</Play><Play>/b.wav</Play><Reject reason=\"busy\"/></Response>";
    let first = failed_to_twiml(&mut e, t0, "dr-bad", doc);
    let mut stereo = clip_wav();
    stereo[22] = 2;
    e.handle_audio_fetched(t0, first.token, Ok(stereo));
    let second = e.poll_fetch().expect("the next <Play>");
    e.handle_audio_fetched(t0, second.token, Err("HTTP status 404".into()));
    let out = sent(&mut e);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].1.starts_with("SIP/2.0 486"), "never answered: <Reject> still works: {}", out[0].1);
    let route = e.poll_report().unwrap().route.join("\n");
    assert!(route.contains("a.wav: skipped (WAV format not playable: 2 channels"), "{route}");
    assert!(route.contains("b.wav: skipped (HTTP status 404)"), "{route}");
    assert_eq!(e.media_ports_in_use(), 0);
}

#[test]
fn a_caller_without_g711_or_on_a_passthrough_trunk_hears_no_play() {
    let t0 = Instant::now();
    let mut e = engine_with(&dr_config());
    let g729 = invite_sdp("dr-g729", &sdp("198.51.100.7", 40000, 1).replace("RTP/AVP 0 101", "RTP/AVP 18 101"));
    let audio = invite_failed_to_twiml(&mut e, t0, &g729, "<Response><Play>/a.wav</Play></Response>").unwrap();
    e.handle_audio_fetched(t0, audio.token, Ok(clip_wav()));
    let out = sent(&mut e);
    assert!(out[0].1.starts_with("SIP/2.0 503"), "the last failure: {}", out[0].1);
    let route = e.poll_report().unwrap().route.join("\n");
    assert!(route.contains("skipped (no PCMU or PCMA audio offered)"), "{route}");

    let passthrough =
        dr_config().replacen("[[trunk.origination]]", "media = \"passthrough\"\n[[trunk.origination]]", 1);
    let mut p = engine_with(&passthrough);
    let invite = invite_sdp("dr-pass", &sdp("198.51.100.7", 40000, 1));
    let next = invite_failed_to_twiml(&mut p, t0, &invite, "<Response><Play>/a.wav</Play></Response>");
    assert!(next.is_none(), "nothing to fetch");
    let route = p.poll_report().unwrap().route.join("\n");
    assert!(route.contains("skipped (the trunk does not relay media"), "{route}");
}
