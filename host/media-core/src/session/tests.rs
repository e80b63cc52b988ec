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
