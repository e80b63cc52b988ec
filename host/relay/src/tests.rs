//! The relay over real loopback sockets: two parties, the router's ports
//! between them, offers and answers through the media core.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use trunkline_media_core::ports::PortSource;
use trunkline_media_core::session::{Session, Side};

use super::*;

const LOOPBACK: &str = "127.0.0.1";

fn relay(first: u16, last: u16, threads: usize) -> Relay {
    Relay::start(&RelayConfig {
        bind: LOOPBACK.parse().unwrap(),
        first_port: first,
        last_port: last,
        threads,
        kernel_forwarding: false,
    })
    .unwrap()
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
    relay.apply(7, s.streams(), false, None);
    let st = &s.streams()[0];
    (s.clone(), st.local(Side::Caller).unwrap(), st.local(Side::Callee).unwrap())
}

/// The callee of call 7 re-describes itself at `to` (version `v`), with
/// RTCP multiplexed or not, and the relay is told.
fn callee_moves(r: &mut Relay, s: &mut Session, ports: &mut BoundPorts, to: &Party, v: u64, mux: bool) {
    let sdp = if mux { to.sdp(v).replace("a=rtpmap", "a=rtcp-mux\r\na=rtpmap") } else { to.sdp(v) };
    s.rewrite(Instant::now(), Side::Callee, sdp.as_bytes(), ports).unwrap();
    r.apply(7, s.streams(), false, None);
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
    callee_moves(&mut r, &mut s, &mut ports, &b2, 2, true);
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
        r.apply(9, s.streams(), symmetric, None);
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

mod srtp {
    use super::*;
    use crate::srtp::SrtpParty;
    use trunkline_media_core::crypto::{Crypto, MasterKey, Srtp, Suite};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 3711 Appendix B.3: this master key and salt derive the session
    /// encryption key and salt below; the packets the crate encrypts must
    /// carry the AES counter-mode keystream of those (§4.1.1), computed
    /// here with an independent AES.
    #[test]
    fn rfc_3711_appendix_b_keys_give_the_keystream_the_crate_encrypts_with() {
        use aes::cipher::{BlockEncrypt, KeyInit};
        let mut master = [0u8; 30];
        master[..16].copy_from_slice(&hex("E1F97A0D3E018BE0D64FA32C06DE4139"));
        master[16..].copy_from_slice(&hex("0EC675AD498AFEEBB6960B3AABE6"));
        let key = MasterKey(master);
        let agreed = Srtp { suite: Suite::AesCm128HmacSha1_80, theirs: key.clone(), ours: key };
        let mut party = SrtpParty::new(&agreed).unwrap();
        let (ssrc, seq) = (0x1234_5678u32, 7u16);
        let mut plain = vec![0x80, 0x00];
        plain.extend_from_slice(&seq.to_be_bytes());
        plain.extend_from_slice(&[0, 0, 0, 0]);
        plain.extend_from_slice(&ssrc.to_be_bytes());
        plain.extend_from_slice(&[0u8; 48]);
        let sealed = party.protect(&plain, false).unwrap();
        assert_eq!(sealed.len(), plain.len() + 10, "an 80-bit tag");
        assert_eq!(&sealed[..12], &plain[..12], "the header stays clear");
        // IV = (salt * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16), index = seq (ROC 0).
        let session_key = hex("C61E7A93744F39EE10734AFE3FF7A087");
        let session_salt = hex("30CBBC08863D8C85D49DB34A9AE1");
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&session_salt);
        for (i, b) in ssrc.to_be_bytes().iter().enumerate() {
            iv[4 + i] ^= b;
        }
        for (i, b) in u64::from(seq).to_be_bytes()[2..].iter().enumerate() {
            iv[8 + i] ^= b;
        }
        let aes = aes::Aes128::new_from_slice(&session_key).unwrap();
        let mut keystream = Vec::new();
        for j in 0u128..3 {
            let counter = u128::from_be_bytes(iv).wrapping_add(j).to_be_bytes();
            let mut block = aes::Block::from(counter);
            aes.encrypt_block(&mut block);
            keystream.extend_from_slice(&block);
        }
        assert_eq!(&sealed[12..60], &keystream[..48], "the payload is zeros XOR the RFC's keystream");
        // Round trip, then a replay and a forgery are refused.
        assert_eq!(&party.unprotect(&sealed, false).unwrap()[..], &plain[..]);
        assert!(party.unprotect(&sealed, false).is_err(), "a replay");
        let mut forged = party.protect(&rtp_packet(8, ssrc), false).unwrap().to_vec();
        forged[20] ^= 1;
        assert!(party.unprotect(&forged, false).is_err(), "a forgery");
        // SRTCP with its E flag clear and a made-up tag: the crate alone
        // would accept it unauthenticated; the router refuses it.
        let mut srtcp = vec![0x80, 200, 0, 6, 0x12, 0x34, 0x56, 0x78];
        srtcp.extend_from_slice(&[0u8; 20]);
        srtcp.extend_from_slice(&[0, 0, 0, 1]); // E = 0, index 1
        srtcp.extend_from_slice(&[0xee; 10]);
        assert!(party.unprotect(&srtcp, true).is_err(), "unauthenticated SRTCP");
        // A plain RTP packet whose header extension rtc-srtp re-marshals
        // longer than the packet (the fuzz target's find): refused, no panic.
        let crafted =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/srtp/regression-header-extension"));
        assert!(party.protect(&crafted.unwrap(), false).is_err());
        let genuine = party.protect(&srtcp[..28], true).unwrap();
        assert_eq!(&party.unprotect(&genuine, true).unwrap()[..], &srtcp[..28], "genuine SRTCP (E = 1) passes");
    }

    /// The party's view: it encrypts with its key and decrypts with the
    /// router's (the reverse of what the router agreed with it).
    fn party_side(agreed: &Srtp) -> SrtpParty {
        SrtpParty::new(&Srtp { suite: agreed.suite, theirs: agreed.ours.clone(), ours: agreed.theirs.clone() }).unwrap()
    }

    fn key_source() -> Option<MasterKey> {
        use std::sync::atomic::{AtomicU8, Ordering};
        static N: AtomicU8 = AtomicU8::new(100);
        Some(MasterKey([N.fetch_add(1, Ordering::Relaxed); 30]))
    }

    #[test]
    fn an_srtp_caller_is_bridged_to_a_plain_rtp_callee_and_a_wrong_key_is_dropped_and_counted() {
        let mut r = relay(35500, 35599, 2);
        let mut ports = r.ports(Duration::from_secs(2)).unwrap();
        let (a, b) = (Party::new(), Party::new());
        let t0 = Instant::now();
        let mut s = Session::new(LOOPBACK.parse().unwrap()).with_keys(key_source);
        let caller_key = MasterKey([0xaa; 30]);
        let crypto = Crypto { tag: 1, suite: Suite::AesCm128HmacSha1_80, key: caller_key }.to_value();
        let offer =
            a.sdp(1).replace("RTP/AVP", "RTP/SAVP").replace("a=rtpmap", &format!("a=crypto:{crypto}\r\na=rtpmap"));
        s.rewrite(t0, Side::Caller, offer.as_bytes(), &mut ports).unwrap();
        // The callee answers the router's SRTP offer with plain RTP.
        s.rewrite(t0, Side::Callee, b.sdp(1).as_bytes(), &mut ports).unwrap();
        let st = s.streams()[0].clone();
        assert!(st.srtp[0].is_some() && st.srtp[1].is_none());
        r.apply(3, s.streams(), false, None);
        let (to_a, to_b) = (st.local(Side::Caller).unwrap(), st.local(Side::Callee).unwrap());
        let mut caller = party_side(st.srtp[0].as_ref().unwrap());
        for seq in 0..20u16 {
            let plain = rtp_packet(seq, 0xA);
            a.rtp.send_to(&caller.protect(&plain, false).unwrap(), (LOOPBACK, to_a)).unwrap();
            assert_eq!(Party::recv(&b.rtp).0, plain, "decrypted for the plain callee");
            let back = rtp_packet(seq, 0xB);
            b.rtp.send_to(&back, (LOOPBACK, to_b)).unwrap();
            let (sealed, _) = Party::recv(&a.rtp);
            assert_ne!(sealed, back);
            assert_eq!(&caller.unprotect(&sealed, false).unwrap()[..], &back[..], "encrypted for the SRTP caller");
        }
        // SRTCP both ways too.
        let sr = [0x80, 200, 0, 6, 0, 0, 0, 0xA, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        a.rtcp.send_to(&caller.protect(&sr, true).unwrap(), (LOOPBACK, to_a + 1)).unwrap();
        assert_eq!(Party::recv(&b.rtcp).0, sr);
        // From the right address but with another key: dropped, counted.
        let mut impostor = SrtpParty::new(&Srtp {
            suite: Suite::AesCm128HmacSha1_80,
            theirs: MasterKey([1; 30]),
            ours: MasterKey([2; 30]),
        })
        .unwrap();
        for seq in 100..105u16 {
            a.rtp.send_to(&impostor.protect(&rtp_packet(seq, 0xA), false).unwrap(), (LOOPBACK, to_a)).unwrap();
        }
        // A replay of a genuine packet: dropped too.
        let genuine = caller.protect(&rtp_packet(50, 0xA), false).unwrap();
        a.rtp.send_to(&genuine, (LOOPBACK, to_a)).unwrap();
        assert_eq!(Party::recv(&b.rtp).0, rtp_packet(50, 0xA));
        a.rtp.send_to(&genuine, (LOOPBACK, to_a)).unwrap();
        a.rtp.send_to(&caller.protect(&rtp_packet(51, 0xA), false).unwrap(), (LOOPBACK, to_a)).unwrap();
        assert_eq!(Party::recv(&b.rtp).0, rtp_packet(51, 0xA), "the replay was not relayed");
        let media = r.stop(3).unwrap();
        assert_eq!(media.streams[0].dropped_auth, 6, "5 under the wrong key and 1 replay");
        assert_eq!(media.streams[0].secure, [true, false]);
        assert!(media.to_string().starts_with("caller SRTP, callee RTP;"), "{media}");
    }

    /// `<Play>` to an SRTP caller the router answered itself: every packet
    /// encrypted with the router's key for the caller.
    #[test]
    fn a_clip_played_to_an_srtp_caller_is_encrypted_for_it() {
        let mut r = relay(35600, 35699, 1);
        let mut ports = r.ports(Duration::from_secs(2)).unwrap();
        let a = Party::new();
        let mut s = Session::new(LOOPBACK.parse().unwrap()).with_keys(key_source);
        let crypto = Crypto { tag: 1, suite: Suite::AesCm128HmacSha1_32, key: MasterKey([0xbb; 30]) }.to_value();
        let offer =
            a.sdp(1).replace("RTP/AVP", "RTP/SAVP").replace("a=rtpmap", &format!("a=crypto:{crypto}\r\na=rtpmap"));
        let answer = s.answer_here(Instant::now(), offer.as_bytes(), &mut ports).unwrap();
        r.apply(4, s.streams(), false, None);
        let st = s.streams()[0].clone();
        let codes: Vec<u8> = (0..320).map(|i| i as u8).collect();
        let clip = play::Clip { payload_type: answer.payload_type, silence: 0xff, codes: codes.clone().into() };
        assert!(r.play(4, st.local(Side::Caller).unwrap(), clip, Some(1)));
        let mut caller = party_side(st.srtp[0].as_ref().unwrap());
        for n in 0..2 {
            let (sealed, _) = Party::recv(&a.rtp);
            assert_eq!(sealed.len(), 12 + 160 + 4, "a 32-bit tag");
            let plain = caller.unprotect(&sealed, false).expect("authentic under the router's key");
            assert_eq!(&plain[12..], &codes[n * 160..(n + 1) * 160]);
        }
        let media = r.stop(4).unwrap();
        assert_eq!(media.streams[0].played, 2);
    }
}

#[test]
fn a_call_whose_streams_relay_nothing_becomes_idle_and_a_packet_makes_it_active() {
    let mut r = relay(35600, 35699, 1);
    let mut ports = r.ports(Duration::from_secs(2)).unwrap();
    let (a, b) = (Party::new(), Party::new());
    let (_s, to_a, _) = anchored(&mut r, &mut ports, &a, &b);
    assert!(r.idle_calls(Duration::from_secs(60)).is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(r.idle_calls(Duration::from_millis(250)), [7], "nothing relayed since the call started");
    a.rtp.send_to(&rtp_packet(1, 0xA), (LOOPBACK, to_a)).unwrap();
    Party::recv(&b.rtp);
    assert!(r.idle_calls(Duration::from_millis(250)).is_empty(), "a packet was just relayed");
}

mod recording {
    use super::*;
    use crate::record::{RecordMode, Recording};
    use trunkline_media_core::g711::{decode_alaw as alaw, decode_ulaw as ulaw};

    fn g711(seq: u16, pt: u8, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// Wait (bounded) for the writer thread to finish the file.
    fn finished(path: &std::path::Path) -> hound::WavReader<std::io::BufReader<std::fs::File>> {
        for _ in 0..100 {
            if let Ok(r) = hound::WavReader::open(path) {
                if r.len() > 0 {
                    return r;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no finished recording at {}", path.display());
    }

    fn call_recorded(
        mode: RecordMode,
        pt: u8,
        dir: &std::path::Path,
        first: u16,
    ) -> (Relay, Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut r = relay(first, first + 99, 1);
        let mut ports = r.ports(Duration::from_secs(2)).unwrap();
        let (a, b) = (Party::new(), Party::new());
        let t0 = Instant::now();
        let mut s = Session::new(LOOPBACK.parse().unwrap());
        let sdp = |p: &Party| p.sdp(1).replace("RTP/AVP 0 101", &format!("RTP/AVP {pt} 101"));
        s.rewrite(t0, Side::Caller, sdp(&a).as_bytes(), &mut ports).unwrap();
        s.rewrite(t0, Side::Callee, sdp(&b).as_bytes(), &mut ports).unwrap();
        let rec = Recording { mode, path: dir.join("call") };
        r.apply(5, s.streams(), false, Some(&rec));
        let (to_a, to_b) = (s.streams()[0].local(Side::Caller).unwrap(), s.streams()[0].local(Side::Callee).unwrap());
        let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
        for seq in 0..50u16 {
            let pa: Vec<u8> = (0..160).map(|i| (i as u8).wrapping_mul(3).wrapping_add(seq as u8)).collect();
            let pb: Vec<u8> = (0..160).map(|i| (0xff - (i as u8)) ^ (seq as u8)).collect();
            a.rtp.send_to(&g711(seq, pt, 0xA, &pa), (LOOPBACK, to_a)).unwrap();
            Party::recv(&b.rtp);
            b.rtp.send_to(&g711(seq, pt, 0xB, &pb), (LOOPBACK, to_b)).unwrap();
            Party::recv(&a.rtp);
            from_a.push(pa);
            from_b.push(pb);
        }
        (r, from_a, from_b)
    }

    #[test]
    fn a_dual_recording_holds_each_partys_samples_on_its_own_channel() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, from_a, from_b) = call_recorded(RecordMode::Dual, 0, dir.path(), 35700);
        let media = r.stop(5).unwrap();
        let file = media.recording.clone().expect("the report names the file");
        assert_eq!(file, dir.path().join("call.wav"));
        assert!(media.to_string().contains("recorded to"), "{media}");
        let mut wav = finished(&file);
        let spec = wav.spec();
        assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (2, 8000, 16));
        let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
        let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
        let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
        let caller: Vec<i16> = from_a.concat().into_iter().map(ulaw).collect();
        let callee: Vec<i16> = from_b.concat().into_iter().map(ulaw).collect();
        assert_eq!(&left[..caller.len()], &caller[..], "the caller, sample for sample, on the left");
        // The callee started a little later: its samples from there on.
        let at = (0..800).find(|&o| right[o..].starts_with(&callee));
        assert!(at.is_some(), "the callee, sample for sample, on the right, offset by when it started");
        assert!(right[..at.unwrap()].iter().all(|s| *s == 0), "silence before it");
        assert_eq!(r.stats().recording_dropped, 0);
    }

    #[test]
    fn a_single_recording_mixes_and_other_codecs_go_to_pcap() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, from_a, _) = call_recorded(RecordMode::Single, 8, dir.path(), 35800);
        let file = r.stop(5).unwrap().recording.unwrap();
        let mut wav = finished(&file);
        assert_eq!(wav.spec().channels, 1);
        let n = wav.samples::<i16>().count();
        assert!(n >= from_a.concat().len(), "{n} samples");
        assert_eq!(alaw(0xd5), 8, "A-law's smallest positive step");
        // A codec that is not G.711: the RTP as relayed, in a pcap file.
        let pcap_dir = tempfile::tempdir().unwrap();
        let (mut r, _, _) = call_recorded(RecordMode::Dual, 96, pcap_dir.path(), 35900);
        let file = r.stop(5).unwrap().recording.unwrap();
        assert_eq!(file, pcap_dir.path().join("call.pcap"));
        let mut bytes = Vec::new();
        for _ in 0..100 {
            bytes = std::fs::read(&file).unwrap_or_default();
            if bytes.len() >= 24 + 100 * (16 + 28 + 172) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes(), "a pcap file");
        assert_eq!(bytes.len(), 24 + 100 * (16 + 28 + 172), "100 packets of 172 bytes, both ways");
    }
}

/// `<Play>`: a clip goes to the caller in 20 ms packets from the router's
/// port facing it, looped as asked, the last packet padded with silence,
/// one SSRC, sequence and timestamp moving as a real sender's.
#[test]
fn a_clip_is_played_to_the_caller_in_paced_packets_and_stops_with_the_call() {
    let mut r = relay(35700, 35799, 1);
    let mut ports = r.ports(Duration::from_secs(2)).unwrap();
    let a = Party::new();
    let mut s = Session::new(LOOPBACK.parse().unwrap());
    s.answer_here(Instant::now(), a.sdp(1).as_bytes(), &mut ports).unwrap();
    r.apply(5, s.streams(), false, None);
    let to_a = s.streams()[0].local(Side::Caller).unwrap();
    assert!(
        !r.play(5, to_a + 2, play::Clip { payload_type: 0, silence: 0xff, codes: vec![1].into() }, None),
        "no such stream"
    );
    let codes: Vec<u8> = (0..200).map(|i| (i % 100) as u8).collect();
    let clip = play::Clip { payload_type: 0, silence: 0xff, codes: codes.into() };
    assert_eq!(clip.duration(), Duration::from_millis(40));
    assert!(r.play(5, to_a, clip, Some(2)));
    let mut got = Vec::new();
    for _ in 0..4 {
        let (p, from) = Party::recv(&a.rtp);
        assert_eq!(from.port(), to_a);
        got.push(p);
    }
    let field = |p: &Vec<u8>, at: usize, n: usize| p[at..at + n].iter().fold(0u64, |v, b| v << 8 | u64::from(*b));
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.len(), 12 + 160);
        assert_eq!((p[0], p[1] & 0x7f), (0x80, 0));
        assert_eq!(p[1] & 0x80 != 0, i == 0, "the marker on the first packet only");
        assert_eq!(field(p, 2, 2), (field(&got[0], 2, 2) + i as u64) % 65536, "sequence");
        assert_eq!(field(p, 4, 4), (field(&got[0], 4, 4) + 160 * i as u64) % (1 << 32), "timestamp");
        assert_eq!(field(p, 8, 4), field(&got[0], 8, 4), "one SSRC");
        let expected: Vec<u8> = if i % 2 == 0 {
            (0..160).map(|j| (j % 100) as u8).collect()
        } else {
            (160..200).map(|j| (j % 100) as u8).chain(std::iter::repeat_n(0xff, 120)).collect()
        };
        assert_eq!(&p[12..], &expected[..], "packet {i}");
    }
    a.rtp.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(a.rtp.recv_from(&mut [0u8; 256]).is_err(), "two passes, then nothing");
    assert_eq!(r.playing(), 0);
    // Until stopped: the call's end stops it.
    let endless = play::Clip { payload_type: 0, silence: 0xff, codes: vec![7; 160].into() };
    assert!(r.play(5, to_a, endless, None));
    a.rtp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..3 {
        Party::recv(&a.rtp);
    }
    let media = r.stop(5).unwrap();
    assert!(media.streams[0].played >= 7, "{media:?}");
    assert!(media.to_string().contains("packets played to the caller"), "{media}");
    assert_eq!(r.playing(), 0);
    std::thread::sleep(Duration::from_millis(100));
    while a.rtp.set_read_timeout(Some(Duration::from_millis(100))).is_ok() && a.rtp.recv_from(&mut [0u8; 256]).is_ok() {
    }
    assert!(a.rtp.recv_from(&mut [0u8; 256]).is_err(), "nothing after the call ended");
}

/// The relay's IPv4 sockets send with DF (`IP_PMTUDISC_PROBE`): the kernel
/// computes no IP identification per packet.
#[test]
fn relay_sockets_send_without_fragmenting() {
    use std::os::fd::AsRawFd;
    let r = relay(35800, 35899, 1);
    let mut ports = r.ports(Duration::from_secs(2)).unwrap();
    let port = ports.take(Instant::now()).unwrap();
    let socket = r.shared.slot(port).and_then(|s| s.socket.get()).expect("bound before handed out");
    let mut value: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: reading an int socket option into `value`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!((rc, value), (0, libc::IP_PMTUDISC_PROBE));
}

/// A relay with kernel forwarding, which these tests need set up (root, or
/// CAP_BPF and CAP_NET_ADMIN, and clang when the crate was built).
fn kernel_relay(first: u16, last: u16) -> Relay {
    let config = RelayConfig {
        bind: LOOPBACK.parse().unwrap(),
        first_port: first,
        last_port: last,
        threads: 1,
        kernel_forwarding: true,
    };
    let r = Relay::start(&config).unwrap();
    assert_eq!(r.kernel_flows(), Some(0), "kernel forwarding could not be set up: see the log for why");
    r
}

#[test]
fn kernel_forwarding_relays_plain_streams_both_ways_untouched_and_counts_them() {
    let mut r = kernel_relay(35700, 35799);
    let mut ports = r.ports(Duration::from_secs(2)).unwrap();
    let (a, b, stranger) = (Party::new(), Party::new(), Party::new());
    let (_s, to_a, to_b) = anchored(&mut r, &mut ports, &a, &b);
    assert_eq!(r.kernel_flows(), Some(4), "RTP and RTCP, each way");
    for seq in 0..50u16 {
        let p = rtp_packet(seq, 0xA);
        a.rtp.send_to(&p, (LOOPBACK, to_a)).unwrap();
        assert_eq!(Party::recv(&b.rtp), (p, format!("{LOOPBACK}:{to_b}").parse().unwrap()), "byte for byte");
        let q = rtp_packet(seq, 0xB);
        b.rtp.send_to(&q, (LOOPBACK, to_b)).unwrap();
        assert_eq!(Party::recv(&a.rtp), (q, format!("{LOOPBACK}:{to_a}").parse().unwrap()));
    }
    let rtcp = [0x80, 200, 0, 6, 0, 0, 0, 0xA];
    a.rtcp.send_to(&rtcp, (LOOPBACK, to_a + 1)).unwrap();
    assert_eq!(Party::recv(&b.rtcp), (rtcp.to_vec(), format!("{LOOPBACK}:{}", to_b + 1).parse().unwrap()));
    // A stranger is not forwarded by the kernel: user space drops and counts it.
    stranger.rtp.send_to(&rtp_packet(1, 0xC), (LOOPBACK, to_a)).unwrap();
    a.rtp.send_to(&rtp_packet(60, 0xA), (LOOPBACK, to_a)).unwrap();
    assert_eq!(Party::recv(&b.rtp).0, rtp_packet(60, 0xA));
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.stats().dropped_source == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = r.stats();
    assert_eq!((stats.kernel_relayed, stats.relayed, stats.dropped_source), (102, 102, 1));
    let media = r.stop(7).unwrap();
    assert_eq!(media.relayed(), (52, 50), "the kernel's counts are the call's");
    assert_eq!(media.streams[0].kernel_relayed, 102);
    assert!(media.to_string().contains("; 102 of the relayed packets forwarded by the kernel"), "{media}");
    assert_eq!(media.streams[0].bytes, [51 * 172 + 8, 50 * 172]);
    assert_eq!(r.kernel_flows(), Some(0));
    a.rtp.send_to(&rtp_packet(99, 0xA), (LOOPBACK, to_a)).unwrap();
    b.rtp.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(b.rtp.recv_from(&mut [0u8; 64]).is_err(), "no packet after the call ended");
}

#[test]
fn kernel_forwarding_follows_a_new_address_and_leaves_symmetric_rtp_to_user_space() {
    let mut r = kernel_relay(35800, 35899);
    let mut ports = r.ports(Duration::from_secs(2)).unwrap();
    let (a, b, b2) = (Party::new(), Party::new(), Party::new());
    let (mut s, to_a, to_b) = anchored(&mut r, &mut ports, &a, &b);
    // The callee moves and multiplexes RTCP, the caller does not: RTCP
    // would change ports on the way, which the classifier does not do, so
    // the whole stream stays in user space.
    callee_moves(&mut r, &mut s, &mut ports, &b2, 2, true);
    assert_eq!(r.kernel_flows(), Some(0));
    a.rtp.send_to(&rtp_packet(1, 0xA), (LOOPBACK, to_a)).unwrap();
    assert_eq!(Party::recv(&b2.rtp), (rtp_packet(1, 0xA), format!("{LOOPBACK}:{to_b}").parse().unwrap()));
    // Without multiplexing again: back in the kernel, to the new address.
    callee_moves(&mut r, &mut s, &mut ports, &b2, 3, false);
    assert_eq!(r.kernel_flows(), Some(4));
    a.rtp.send_to(&rtp_packet(2, 0xA), (LOOPBACK, to_a)).unwrap();
    assert_eq!(Party::recv(&b2.rtp), (rtp_packet(2, 0xA), format!("{LOOPBACK}:{to_b}").parse().unwrap()));
    assert_eq!(r.stats().kernel_relayed, 1);
    // Symmetric RTP learns sources from packets: user space only.
    r.apply(7, s.streams(), true, None);
    r.stop(7);
    let mut s2 = Session::new(LOOPBACK.parse().unwrap());
    let t0 = Instant::now();
    s2.rewrite(t0, Side::Caller, a.sdp(1).as_bytes(), &mut ports).unwrap();
    s2.rewrite(t0, Side::Callee, b.sdp(1).as_bytes(), &mut ports).unwrap();
    r.apply(8, s2.streams(), true, None);
    assert_eq!(r.kernel_flows(), Some(0));
    let to_a2 = s2.streams()[0].local(Side::Caller).unwrap();
    a.rtp.send_to(&rtp_packet(3, 0xA), (LOOPBACK, to_a2)).unwrap();
    assert_eq!(Party::recv(&b.rtp).0, rtp_packet(3, 0xA));
    assert_eq!(r.stats().kernel_relayed, 1, "relayed in user space");
    assert_eq!(r.stop(8).unwrap().relayed(), (1, 0));
}

#[test]
fn packets_the_kernel_forwards_keep_a_call_from_looking_idle() {
    let mut r = kernel_relay(35900, 35999);
    let mut ports = r.ports(Duration::from_secs(2)).unwrap();
    let (a, b) = (Party::new(), Party::new());
    let (_s, to_a, _) = anchored(&mut r, &mut ports, &a, &b);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(r.idle_calls(Duration::from_millis(2500)), vec![7], "nothing relayed for 3 s");
    a.rtp.send_to(&rtp_packet(1, 0xA), (LOOPBACK, to_a)).unwrap();
    Party::recv(&b.rtp);
    assert_eq!(r.idle_calls(Duration::from_millis(2500)), Vec::<u64>::new(), "a packet just now");
    assert_eq!(r.stats().kernel_relayed, 1);
}
