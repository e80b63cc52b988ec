//! The relay over real loopback sockets: two parties, the router's ports
//! between them, offers and answers through the media core.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use trunkline_media_core::ports::PortSource;
use trunkline_media_core::session::{Session, Side};

use super::*;

const LOOPBACK: &str = "127.0.0.1";

fn relay(first: u16, last: u16, threads: usize) -> Relay {
    Relay::start(&RelayConfig { bind: LOOPBACK.parse().unwrap(), first_port: first, last_port: last, threads }).unwrap()
}

/// A party: an RTP socket and the RTCP one after it (an even port pair
/// chosen by the kernel).
struct Party {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl Party {
    fn new() -> Party {
        loop {
            let rtp = UdpSocket::bind((LOOPBACK, 0)).unwrap();
            let port = rtp.local_addr().unwrap().port();
            if !port.is_multiple_of(2) || port == u16::MAX {
                continue;
            }
            let Ok(rtcp) = UdpSocket::bind((LOOPBACK, port + 1)) else { continue };
            for s in [&rtp, &rtcp] {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            }
            return Party { rtp, rtcp };
        }
    }

    fn port(&self) -> u16 {
        self.rtp.local_addr().unwrap().port()
    }

    fn sdp(&self, version: u64) -> String {
        format!(
            "v=0\r\no=- 1 {version} IN IP4 {LOOPBACK}\r\ns=-\r\nc=IN IP4 {LOOPBACK}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
            self.port()
        )
    }

    fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = [0u8; 2048];
        let (n, from) = socket.recv_from(&mut buf).expect("a relayed packet");
        (buf[..n].to_vec(), from)
    }
}

fn rtp_packet(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160).map(|i| (i as u8) ^ (seq as u8)));
    p
}

/// A call between `a` and `b` anchored on `relay`: the router's ports.
fn anchored(relay: &mut Relay, ports: &mut BoundPorts, a: &Party, b: &Party) -> (Session, u16, u16) {
    let t0 = Instant::now();
    let mut s = Session::new(LOOPBACK.parse().unwrap());
    s.rewrite(t0, Side::Caller, a.sdp(1).as_bytes(), ports).unwrap();
    s.rewrite(t0, Side::Callee, b.sdp(1).as_bytes(), ports).unwrap();
    relay.apply(7, s.streams(), false);
    let st = &s.streams()[0];
    (s.clone(), st.local(Side::Caller).unwrap(), st.local(Side::Callee).unwrap())
}

#[test]
fn rtp_and_rtcp_go_both_ways_untouched_from_the_routers_ports() {
    let mut r = relay(35000, 35099, 2);
    let mut ports = r.ports(Duration::from_secs(2)).unwrap();
    let (a, b) = (Party::new(), Party::new());
    let (_s, to_a, to_b) = anchored(&mut r, &mut ports, &a, &b);
    assert_eq!(r.routed_ports(), 4);
    for seq in 0..50u16 {
        let p = rtp_packet(seq, 0xA);
        a.rtp.send_to(&p, (LOOPBACK, to_a)).unwrap();
        let (got, from) = Party::recv(&b.rtp);
        assert_eq!(got, p, "byte for byte: SSRC, sequence, timestamp, payload");
        assert_eq!(from.port(), to_b, "from the router's port facing the callee");
        let q = rtp_packet(seq, 0xB);
        b.rtp.send_to(&q, (LOOPBACK, to_b)).unwrap();
        assert_eq!(Party::recv(&a.rtp), (q, format!("{LOOPBACK}:{to_a}").parse().unwrap()));
    }
    let rtcp = [0x80, 200, 0, 6, 0, 0, 0, 0xA];
    a.rtcp.send_to(&rtcp, (LOOPBACK, to_a + 1)).unwrap();
    let (got, from) = Party::recv(&b.rtcp);
    assert_eq!((got.as_slice(), from.port()), (&rtcp[..], to_b + 1));
    let media = r.stop(7).unwrap();
    assert_eq!(media.relayed(), (51, 50));
    assert_eq!(media.dropped(), 0);
    assert_eq!((r.calls(), r.routed_ports()), (0, 0));
    // After the call: nothing relayed any more.
    a.rtp.send_to(&rtp_packet(99, 0xA), (LOOPBACK, to_a)).unwrap();
    b.rtp.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(b.rtp.recv_from(&mut [0u8; 64]).is_err(), "no packet after the call ended");
}

#[test]
fn packets_from_a_source_the_description_does_not_name_are_dropped_and_counted() {
    let mut r = relay(35100, 35199, 1);
    let mut ports = r.ports(Duration::from_secs(2)).unwrap();
    let (a, b, stranger) = (Party::new(), Party::new(), Party::new());
    let (_s, to_a, _) = anchored(&mut r, &mut ports, &a, &b);
    for seq in 0..5 {
        stranger.rtp.send_to(&rtp_packet(seq, 0xC), (LOOPBACK, to_a)).unwrap();
    }
    // A packet from the right source after them still goes through (and
    // proves the others were handled first: one socket, in order).
    a.rtp.send_to(&rtp_packet(9, 0xA), (LOOPBACK, to_a)).unwrap();
    assert_eq!(Party::recv(&b.rtp).0, rtp_packet(9, 0xA));
    let media = r.stop(7).unwrap();
    assert_eq!((media.relayed(), media.streams[0].dropped_source), ((1, 0), 5));
    assert_eq!(r.stats().dropped_source, 5);
}

#[test]
fn a_new_address_is_followed_at_once_and_rtcp_mux_is_honoured() {
    let mut r = relay(35200, 35299, 2);
    let mut ports = r.ports(Duration::from_secs(2)).unwrap();
    let (a, b, b2) = (Party::new(), Party::new(), Party::new());
    let (mut s, to_a, to_b) = anchored(&mut r, &mut ports, &a, &b);
    // The callee moves (re-INVITE) and multiplexes RTCP on its RTP port.
    let moved = b2.sdp(2).replace("a=rtpmap", "a=rtcp-mux\r\na=rtpmap");
    s.rewrite(Instant::now(), Side::Callee, moved.as_bytes(), &mut ports).unwrap();
    r.apply(7, s.streams(), false);
    assert_eq!(r.routed_ports(), 4, "same ports, new destination");
    a.rtp.send_to(&rtp_packet(1, 0xA), (LOOPBACK, to_a)).unwrap();
    assert_eq!(Party::recv(&b2.rtp), (rtp_packet(1, 0xA), format!("{LOOPBACK}:{to_b}").parse().unwrap()));
    // The caller's RTCP reaches the callee's RTP port, from our RTP port.
    let rtcp = [0x80, 201, 0, 1, 0, 0, 0, 0xA];
    a.rtcp.send_to(&rtcp, (LOOPBACK, to_a + 1)).unwrap();
    assert_eq!(Party::recv(&b2.rtp), (rtcp.to_vec(), format!("{LOOPBACK}:{to_b}").parse().unwrap()));
    // The callee's muxed RTCP goes to the caller's RTCP port.
    b2.rtp.send_to(&rtcp, (LOOPBACK, to_b)).unwrap();
    assert_eq!(Party::recv(&a.rtcp), (rtcp.to_vec(), format!("{LOOPBACK}:{}", to_a + 1).parse().unwrap()));
    // The old address is no longer the callee.
    b.rtp.send_to(&rtp_packet(2, 0xB), (LOOPBACK, to_b)).unwrap();
    b2.rtp.send_to(&rtp_packet(3, 0xB), (LOOPBACK, to_b)).unwrap();
    assert_eq!(Party::recv(&a.rtp).0, rtp_packet(3, 0xB));
    s.release(Instant::now(), &mut ports);
    r.stop(7);
    assert_eq!(ports.pool().in_use(), 0);
}

#[test]
fn a_port_another_program_holds_is_retired_and_never_handed_out() {
    let held = UdpSocket::bind((LOOPBACK, 35302)).unwrap();
    let r = relay(35300, 35305, 1);
    let mut ports = r.ports(Duration::from_secs(2)).unwrap();
    let t0 = Instant::now();
    assert_eq!(ports.take(t0), Ok(35300));
    assert_eq!(ports.take(t0), Ok(35304), "35302 is held by someone else");
    assert_eq!(ports.pool().retired(), 1);
    assert!(ports.take(t0).is_err());
    drop(held);
}

#[test]
fn behind_nat_strict_drops_and_symmetric_rtp_latches_to_the_valid_source() {
    for symmetric in [false, true] {
        let mut r = relay(35400, 35499, 1);
        let mut ports = r.ports(Duration::from_secs(2)).unwrap();
        let (a, b) = (Party::new(), Party::new());
        // The caller's packets come through a NAT: from another port than
        // its description names (and it is told nothing of that port).
        let nat = Party::new();
        let t0 = Instant::now();
        let mut s = Session::new(LOOPBACK.parse().unwrap());
        s.rewrite(t0, Side::Caller, a.sdp(1).as_bytes(), &mut ports).unwrap();
        s.rewrite(t0, Side::Callee, b.sdp(1).as_bytes(), &mut ports).unwrap();
        r.apply(9, s.streams(), symmetric);
        let (to_a, to_b) = (s.streams()[0].local(Side::Caller).unwrap(), s.streams()[0].local(Side::Callee).unwrap());
        // A stranger's packet with a payload type the caller never offered
        // arrives first: never latched.
        let mut wrong_pt = rtp_packet(1, 0xC);
        wrong_pt[1] = 96;
        let stranger = Party::new();
        stranger.rtp.send_to(&wrong_pt, (LOOPBACK, to_a)).unwrap();
        nat.rtp.send_to(&rtp_packet(2, 0xA), (LOOPBACK, to_a)).unwrap();
        b.rtp.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut buf = [0u8; 2048];
        let got = b.rtp.recv_from(&mut buf).map(|(n, _)| buf[..n].to_vec());
        if !symmetric {
            assert!(got.is_err(), "strict: the NATed caller's packet is dropped");
            let media = r.stop(9).unwrap();
            assert_eq!((media.relayed(), media.streams[0].dropped_source), ((0, 0), 2));
            continue;
        }
        assert_eq!(got.unwrap(), rtp_packet(2, 0xA), "symmetric: latched and relayed");
        // The callee's answer goes back to the NAT's port, not to the description.
        b.rtp.send_to(&rtp_packet(3, 0xB), (LOOPBACK, to_b)).unwrap();
        assert_eq!(Party::recv(&nat.rtp).0, rtp_packet(3, 0xB));
        // Once latched, the stranger cannot take over, even with a valid packet.
        stranger.rtp.send_to(&rtp_packet(4, 0xC), (LOOPBACK, to_a)).unwrap();
        nat.rtp.send_to(&rtp_packet(5, 0xA), (LOOPBACK, to_a)).unwrap();
        assert_eq!(Party::recv(&b.rtp).0, rtp_packet(5, 0xA));
        let media = r.stop(9).unwrap();
        assert_eq!(media.streams[0].latched[0], Some(nat.rtp.local_addr().unwrap()));
        assert_eq!((media.relayed(), media.streams[0].dropped_source), ((2, 1), 2));
        assert!(media.to_string().contains("caller latched to"), "{media}");
    }
}
