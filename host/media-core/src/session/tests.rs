use std::time::Duration;

use super::*;
use crate::ports::PortPool;
use crate::sdp::Direction;

const ROUTER: &str = "192.0.2.1";

fn pool() -> PortPool {
    PortPool::new(30000..=30099, Duration::from_secs(30)).unwrap()
}

fn offer(addr: &str, version: u64, audio: u16, video: u16) -> String {
    format!(
        "v=0\r\no=carrier 1 {version} IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n\
         m=audio {audio} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
         m=video {video} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    )
}

fn read(body: &[u8]) -> Sdp {
    Sdp::parse(body).unwrap()
}

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn an_offer_and_its_answer_name_only_the_router_and_teach_it_both_sides() {
    let (t0, mut ports) = (Instant::now(), pool());
    let mut s = Session::new(ROUTER.parse().unwrap());
    let to_callee = s.rewrite(t0, Side::Caller, offer("198.51.100.7", 5, 40000, 40010).as_bytes(), &mut ports).unwrap();
    let sent = read(&to_callee);
    assert_eq!(s.ports_held(), 4, "a pair facing each side, per stream");
    let audio = &s.streams()[0];
    assert_eq!(sent.media(0).unwrap().port, audio.local(Side::Callee).unwrap());
    assert_eq!(sent.connection_ip(0), Some(ROUTER.parse().unwrap()));
    assert_eq!(sent.origin().unwrap().version, 5, "the writer's version, the first time");
    assert!(String::from_utf8_lossy(&to_callee).contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"));
    let caller = audio.remote(Side::Caller).unwrap();
    assert_eq!((caller.rtp, caller.rtcp, caller.mux), (addr("198.51.100.7:40000"), addr("198.51.100.7:40001"), false));

    let answer = offer("203.0.113.9", 77, 50000, 50010).replace("a=rtpmap:96", "a=rtcp-mux\r\na=rtpmap:96");
    let to_caller = read(&s.rewrite(t0, Side::Callee, answer.as_bytes(), &mut ports).unwrap());
    assert_eq!(s.ports_held(), 4, "the answer takes no new pair");
    assert_eq!(to_caller.media(0).unwrap().port, s.streams()[0].local(Side::Caller).unwrap());
    assert_eq!(to_caller.media(1).unwrap().port, s.streams()[1].local(Side::Caller).unwrap());
    let video = s.streams()[1].remote(Side::Callee).unwrap();
    assert_eq!((video.rtp, video.rtcp, video.mux), (addr("203.0.113.9:50010"), addr("203.0.113.9:50010"), true));
    s.release(t0, &mut ports);
    assert_eq!((s.ports_held(), ports.in_use()), (0, 0));
}

#[test]
fn a_new_address_is_followed_and_the_version_moves_only_when_the_description_does() {
    let (t0, mut ports) = (Instant::now(), pool());
    let mut s = Session::new(ROUTER.parse().unwrap());
    s.rewrite(t0, Side::Caller, offer("198.51.100.7", 5, 40000, 40010).as_bytes(), &mut ports).unwrap();
    let first =
        read(&s.rewrite(t0, Side::Callee, offer("203.0.113.9", 1, 50000, 50010).as_bytes(), &mut ports).unwrap());
    // The callee moves (a re-INVITE with a new address): same router ports,
    // a new destination, and the caller's version goes up by one.
    let moved =
        read(&s.rewrite(t0, Side::Callee, offer("203.0.113.50", 2, 52000, 50010).as_bytes(), &mut ports).unwrap());
    assert_eq!(s.streams()[0].remote(Side::Callee).unwrap().rtp, addr("203.0.113.50:52000"));
    assert_eq!(moved.media(0).unwrap().port, first.media(0).unwrap().port);
    assert_eq!((first.origin().unwrap().version, moved.origin().unwrap().version), (1, 2));
    // The same description again (a 2xx after a preview in 183, or a
    // refresh): what the caller is told is unchanged, so is the version.
    let again =
        read(&s.rewrite(t0, Side::Callee, offer("203.0.113.50", 2, 52000, 50010).as_bytes(), &mut ports).unwrap());
    assert_eq!(again.origin().unwrap().version, 2);
    // Its own version did not move, but what the caller is told did.
    let bumped =
        read(&s.rewrite(t0, Side::Callee, offer("203.0.113.51", 2, 52000, 50010).as_bytes(), &mut ports).unwrap());
    assert_eq!(bumped.origin().unwrap().version, 3);
    assert_eq!(ports.in_use(), 4);
}

#[test]
fn hold_passes_through_and_zero_address_hold_stays_zero() {
    let (t0, mut ports) = (Instant::now(), pool());
    let mut s = Session::new(ROUTER.parse().unwrap());
    s.rewrite(t0, Side::Caller, offer("198.51.100.7", 5, 40000, 40010).as_bytes(), &mut ports).unwrap();
    let hold = offer("198.51.100.7", 6, 40000, 40010)
        .replace("m=video 40010 RTP/AVP 96\r\n", "m=video 40010 RTP/AVP 96\r\na=sendonly\r\n");
    let to_callee = read(&s.rewrite(t0, Side::Caller, hold.as_bytes(), &mut ports).unwrap());
    assert_eq!((to_callee.direction(0), to_callee.direction(1)), (Direction::SendRecv, Direction::SendOnly));
    let old_style = offer("0.0.0.0", 7, 40000, 40010);
    let to_callee = read(&s.rewrite(t0, Side::Caller, old_style.as_bytes(), &mut ports).unwrap());
    assert!(to_callee.connection(0).unwrap().is_hold(), "0.0.0.0 stays 0.0.0.0");
    assert_eq!(s.streams()[0].remote(Side::Caller).unwrap().rtp, None, "nowhere to send meanwhile");
    assert_eq!(ports.in_use(), 4, "held streams keep their ports");
    assert!(s.on_hold());
    s.rewrite(t0, Side::Caller, offer("198.51.100.7", 8, 40000, 40010).as_bytes(), &mut ports).unwrap();
    assert!(!s.on_hold(), "resumed");
}

#[test]
fn a_rejected_or_unrelayable_stream_gives_its_ports_back_and_goes_on_with_port_0() {
    let (t0, mut ports) = (Instant::now(), pool());
    let mut s = Session::new(ROUTER.parse().unwrap());
    let with_t38 = format!("{}m=image 40020 TCP/TLS/BFCP *\r\n", offer("198.51.100.7", 5, 40000, 40010));
    let to_callee = read(&s.rewrite(t0, Side::Caller, with_t38.as_bytes(), &mut ports).unwrap());
    assert_eq!(to_callee.media(2).unwrap().port, 0, "not RTP nor UDPTL: declined");
    assert_eq!(ports.in_use(), 4);
    // The callee rejects video.
    let to_caller =
        read(&s.rewrite(t0, Side::Callee, offer("203.0.113.9", 1, 50000, 0).as_bytes(), &mut ports).unwrap());
    assert_eq!(to_caller.media(1).unwrap().port, 0);
    assert_eq!((ports.in_use(), s.ports_held()), (2, 2));
    assert_eq!(s.streams()[1].local, [None, None]);
    let t38 = offer("198.51.100.7", 6, 40000, 40010).replace("m=video 40010 RTP/AVP 96", "m=image 40010 udptl t38");
    let to_callee = read(&s.rewrite(t0, Side::Caller, t38.as_bytes(), &mut ports).unwrap());
    assert_ne!(to_callee.media(1).unwrap().port, 0, "UDPTL (T.38) is relayed: the stream is enabled again");
    assert_eq!(ports.in_use(), 4);
}

#[test]
fn without_free_ports_nothing_is_held_and_the_error_says_why() {
    let t0 = Instant::now();
    let mut ports = PortPool::new(30000..=30005, Duration::from_secs(30)).unwrap(); // 3 pairs
    let mut s = Session::new(ROUTER.parse().unwrap());
    let e = s.rewrite(t0, Side::Caller, offer("198.51.100.7", 5, 40000, 40010).as_bytes(), &mut ports).unwrap_err();
    assert!(matches!(e, MediaError::Exhausted(_)), "{e}");
    assert_eq!((ports.in_use(), s.ports_held(), s.streams().len()), (0, 0, 0));
    assert!(matches!(s.rewrite(t0, Side::Caller, b"nonsense", &mut ports), Err(MediaError::Sdp(_))));
    let bad = format!("{}m=audio x RTP/AVP 0\r\n", offer("198.51.100.7", 5, 40000, 40010));
    let mut ports = pool();
    assert_eq!(s.rewrite(t0, Side::Caller, bad.as_bytes(), &mut ports), Err(MediaError::Sdp(SdpError::BadMedia(2))));
    assert_eq!((ports.in_use(), s.streams().len()), (0, 0), "what the first streams took is given back");
}

#[test]
fn an_explicit_rtcp_port_and_address_are_learnt_and_rewritten() {
    let (t0, mut ports) = (Instant::now(), pool());
    let mut s = Session::new(ROUTER.parse().unwrap());
    let o = offer("198.51.100.7", 5, 40000, 40010)
        .replace("a=fmtp:101 0-15\r\n", "a=fmtp:101 0-15\r\na=rtcp:40005 IN IP4 198.51.100.8\r\n");
    let to_callee = s.rewrite(t0, Side::Caller, o.as_bytes(), &mut ports).unwrap();
    let local = s.streams()[0].local(Side::Callee).unwrap();
    assert!(String::from_utf8_lossy(&to_callee).contains(&format!("a=rtcp:{} IN IP4 {ROUTER}\r\n", local + 1)));
    assert_eq!(s.streams()[0].remote(Side::Caller).unwrap().rtcp, addr("198.51.100.8:40005"));
}

#[test]
fn a_new_target_starts_afresh_and_a_refused_offer_leaves_the_session_as_it_was() {
    let (t0, mut ports) = (Instant::now(), pool());
    let mut s = Session::new(ROUTER.parse().unwrap());
    s.rewrite(t0, Side::Caller, offer("198.51.100.7", 5, 40000, 40010).as_bytes(), &mut ports).unwrap();
    s.rewrite(t0, Side::Callee, offer("203.0.113.9", 1, 50000, 50010).as_bytes(), &mut ports).unwrap();
    // Failover: the next target has said nothing yet; the ports stay.
    s.forget(Side::Callee);
    assert_eq!(s.streams()[0].remote(Side::Callee), None);
    assert!(s.streams()[0].remote(Side::Caller).is_some());
    assert_eq!(ports.in_use(), 4);
    let answer =
        read(&s.rewrite(t0, Side::Callee, offer("203.0.113.20", 40, 51000, 51010).as_bytes(), &mut ports).unwrap());
    assert_eq!(answer.origin().unwrap().version, 40, "a new party: its own version again");
    // A re-INVITE moving the caller, refused by the callee: back as it was.
    let before = s.clone();
    s.rewrite(t0, Side::Caller, offer("198.51.100.99", 6, 41000, 40010).as_bytes(), &mut ports).unwrap();
    assert_eq!(s.streams()[0].remote(Side::Caller).unwrap().rtp, addr("198.51.100.99:41000"));
    s.restore(&before);
    assert_eq!(s.streams()[0].remote(Side::Caller).unwrap().rtp, addr("198.51.100.7:40000"));
    assert_eq!(s.streams()[1].remote(Side::Callee).unwrap().rtp, addr("203.0.113.20:51010"));
}

mod sdes {
    use super::*;
    use crate::crypto::{Crypto, MasterKey, Suite};

    const A_KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    fn counter_keys() -> Option<MasterKey> {
        use std::sync::atomic::{AtomicU8, Ordering};
        static N: AtomicU8 = AtomicU8::new(1);
        Some(MasterKey([N.fetch_add(1, Ordering::Relaxed); 30]))
    }

    fn savp(addr: &str, version: u64, crypto: &[String]) -> String {
        let lines: String = crypto.iter().map(|c| format!("a=crypto:{c}\r\n")).collect();
        format!(
            "v=0\r\no=x 1 {version} IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n\
             m=audio 40000 RTP/SAVP 0 101\r\n{lines}a=rtpmap:101 telephone-event/8000\r\n"
        )
    }

    fn cryptos(sdp: &Sdp) -> Vec<Crypto> {
        sdp.attributes(Some(0), "crypto").map(|v| Crypto::parse(v).unwrap()).collect()
    }

    #[test]
    fn srtp_is_terminated_on_each_leg_with_keys_of_the_routers_own() {
        let (t0, mut ports) = (Instant::now(), pool());
        let mut s = Session::new(ROUTER.parse().unwrap()).with_keys(counter_keys);
        let offer = savp(
            "198.51.100.7",
            1,
            &[format!("5 AES_CM_128_HMAC_SHA1_32 inline:{A_KEY}"), format!("6 AES_CM_128_HMAC_SHA1_80 inline:{A_KEY}")],
        );
        let to_callee = read(&s.rewrite(t0, Side::Caller, offer.as_bytes(), &mut ports).unwrap());
        assert_eq!(to_callee.media(0).unwrap().proto, "RTP/SAVP");
        let ours = cryptos(&to_callee);
        assert_eq!(
            ours.iter().map(|c| (c.tag, c.suite)).collect::<Vec<_>>(),
            [(1, Suite::AesCm128HmacSha1_80), (2, Suite::AesCm128HmacSha1_32)]
        );
        assert!(
            ours.iter()
                .all(|c| c.key.0 != Crypto::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{A_KEY}")).unwrap().key.0),
            "the caller's key never goes on"
        );
        // The callee accepts the router's _80 line with a key of its own.
        let b_key = MasterKey([0xbb; 30]);
        let answer = savp(
            "203.0.113.9",
            1,
            &[Crypto { tag: 1, suite: Suite::AesCm128HmacSha1_80, key: b_key.clone() }.to_value()],
        );
        let to_caller = read(&s.rewrite(t0, Side::Callee, answer.as_bytes(), &mut ports).unwrap());
        let back = cryptos(&to_caller);
        assert_eq!(back.len(), 1);
        assert_eq!(
            (back[0].tag, back[0].suite),
            (6, Suite::AesCm128HmacSha1_80),
            "the caller's preferred line, by its tag"
        );
        let st = &s.streams()[0];
        let (a, b) = (st.srtp[0].clone().unwrap(), st.srtp[1].clone().unwrap());
        assert_eq!(
            (a.suite, a.theirs.0, a.ours.0),
            (
                Suite::AesCm128HmacSha1_80,
                Crypto::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{A_KEY}")).unwrap().key.0,
                back[0].key.0
            )
        );
        assert_eq!((b.theirs, b.ours), (b_key, ours[0].key.clone()));
        assert!(!format!("{s:?}").contains(A_KEY) && !format!("{st:?}").contains("187, 187"), "no key in Debug");
        // The same answer again (a 200 after a 183): same keys, same text.
        let again = read(&s.rewrite(t0, Side::Callee, answer.as_bytes(), &mut ports).unwrap());
        assert_eq!(cryptos(&again), back);
    }

    #[test]
    fn a_leg_that_requires_srtp_gets_it_while_the_other_stays_plain() {
        let (t0, mut ports) = (Instant::now(), pool());
        let mut s = Session::new(ROUTER.parse().unwrap()).with_keys(counter_keys).require_srtp(Side::Callee);
        let to_callee =
            read(&s.rewrite(t0, Side::Caller, offer("198.51.100.7", 1, 40000, 0).as_bytes(), &mut ports).unwrap());
        assert_eq!((to_callee.media(0).unwrap().proto, cryptos(&to_callee).len()), ("RTP/SAVP", 2));
        let answer = savp(
            "203.0.113.9",
            1,
            &[Crypto { tag: 2, suite: Suite::AesCm128HmacSha1_32, key: MasterKey([7; 30]) }.to_value()],
        );
        let to_caller = read(&s.rewrite(t0, Side::Callee, answer.as_bytes(), &mut ports).unwrap());
        assert_eq!((to_caller.media(0).unwrap().proto, cryptos(&to_caller).len()), ("RTP/AVP", 0));
        let st = &s.streams()[0];
        assert_eq!(
            (st.srtp[0].is_none(), st.srtp[1].as_ref().map(|x| x.suite)),
            (true, Some(Suite::AesCm128HmacSha1_32))
        );
        // A plain answer from a side that requires SRTP is refused.
        let mut s = Session::new(ROUTER.parse().unwrap()).with_keys(counter_keys).require_srtp(Side::Callee);
        s.rewrite(t0, Side::Caller, offer("198.51.100.7", 1, 40000, 0).as_bytes(), &mut ports).unwrap();
        let e = s.rewrite(t0, Side::Callee, offer("203.0.113.9", 1, 50000, 0).as_bytes(), &mut ports).unwrap_err();
        assert_eq!(e, MediaError::Crypto(0, "SRTP is required".into()));
    }

    #[test]
    fn unsupported_parameters_are_refused_with_the_reason_not_ignored() {
        let (t0, mut ports) = (Instant::now(), pool());
        let mut s = Session::new(ROUTER.parse().unwrap()).with_keys(counter_keys);
        let mki = savp("198.51.100.7", 1, &[format!("1 AES_CM_128_HMAC_SHA1_80 inline:{A_KEY}|1:4")]);
        let e = s.rewrite(t0, Side::Caller, mki.as_bytes(), &mut ports).unwrap_err();
        assert_eq!(e.to_string(), "media description 0: MKI is not supported");
        assert_eq!(ports.in_use(), 0, "nothing held");
        let mut keyless = Session::new(ROUTER.parse().unwrap());
        let ok = savp("198.51.100.7", 1, &[format!("1 AES_CM_128_HMAC_SHA1_80 inline:{A_KEY}")]);
        assert!(matches!(keyless.rewrite(t0, Side::Caller, ok.as_bytes(), &mut ports), Err(MediaError::Crypto(0, _))));
    }
    /// A DR `<Play>`: the router answers an SRTP offer itself, with the
    /// caller's chosen suite and a key of its own, and rejects the rest.
    #[test]
    fn the_router_answers_an_srtp_offer_itself() {
        let (t0, mut ports) = (Instant::now(), pool());
        let mut s = Session::new(ROUTER.parse().unwrap()).with_keys(counter_keys);
        let mut offer = savp(
            "198.51.100.7",
            1,
            &[format!("5 AES_CM_128_HMAC_SHA1_32 inline:{A_KEY}"), format!("6 AES_CM_128_HMAC_SHA1_80 inline:{A_KEY}")],
        );
        offer.push_str("m=video 40010 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
        let answer = s.answer_here(t0, offer.as_bytes(), &mut ports).unwrap();
        assert_eq!((answer.stream, answer.payload_type, answer.law), (0, 0, crate::g711::Law::Ulaw));
        let sdp = read(&answer.body);
        let audio = sdp.media(0).unwrap();
        assert_eq!(
            (audio.port, audio.proto, audio.formats.clone()),
            (s.streams()[0].local(Side::Caller).unwrap(), "RTP/SAVP", vec!["0"])
        );
        assert_eq!(sdp.connection_ip(0), Some(ROUTER.parse().unwrap()));
        let ours = cryptos(&sdp);
        assert_eq!(ours.len(), 1);
        assert_eq!(
            (ours[0].tag, ours[0].suite),
            (6, Suite::AesCm128HmacSha1_80),
            "_80 preferred, under the caller's tag"
        );
        let agreed = s.streams()[0].srtp[0].clone().unwrap();
        assert_eq!(agreed.ours, ours[0].key);
        assert_ne!(agreed.ours, agreed.theirs);
        assert_eq!(sdp.media(1).unwrap().port, 0, "video rejected");
        assert_eq!(s.ports_held(), 2, "the rejected stream gave its pairs back");
        assert_eq!(s.streams()[0].remote(Side::Caller).unwrap().rtp, addr("198.51.100.7:40000"));
        assert!(s.streams()[0].remote(Side::Callee).is_none(), "nobody on the other side");
        // Asked again (a re-INVITE with the same offer): the same description, same version.
        let again = s.answer_here(t0, offer.as_bytes(), &mut ports).unwrap();
        assert_eq!(again.body, answer.body);
        s.release(t0, &mut ports);
        assert_eq!(ports.in_use(), 0);
    }
}

#[test]
fn the_router_answers_with_the_callers_first_g711_codec_or_refuses() {
    let (t0, mut ports) = (Instant::now(), pool());
    let mut s = Session::new(ROUTER.parse().unwrap());
    let offer = "v=0\r\no=c 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
                 m=audio 40000 RTP/AVP 18 98 0\r\na=rtpmap:98 PCMA/8000\r\na=sendonly\r\n";
    let answer = s.answer_here(t0, offer.as_bytes(), &mut ports).unwrap();
    assert_eq!(
        (answer.payload_type, answer.law),
        (98, crate::g711::Law::Alaw),
        "a dynamic number for PCMA, first in order"
    );
    let sdp = read(&answer.body);
    assert_eq!(sdp.direction(0), Direction::RecvOnly, "the caller's sendonly mirrored");
    assert!(String::from_utf8_lossy(&answer.body).contains("a=rtpmap:98 PCMA/8000\r\n"));
    assert!(s.streams()[0].srtp[0].is_none());
    s.release(t0, &mut ports);

    let mut s = Session::new(ROUTER.parse().unwrap());
    let g729 = offer.replace(" 18 98 0", " 18").replace("a=rtpmap:98 PCMA/8000\r\n", "");
    assert_eq!(
        s.answer_here(t0, g729.as_bytes(), &mut ports),
        Err(MediaError::Codec("no PCMU or PCMA audio offered".into()))
    );
    s.release(t0, &mut ports);
    assert_eq!(ports.in_use(), 0);
}
