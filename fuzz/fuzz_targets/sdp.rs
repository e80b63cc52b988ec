//! Any bytes through the SDP reader, every rewriter, a call's anchoring
//! session (SDES included, and the router answering an offer itself) and the `a=crypto` parser: nothing may panic; what reads is written back byte for byte,
//! what the rewriters make reads again with the same media descriptions,
//! and a session gives back every port it took.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

use trunkline_media_core::crypto::{Crypto, MasterKey};
use trunkline_media_core::ports::PortPool;
use trunkline_media_core::sdp::{Direction, Sdp};
use trunkline_media_core::session::{Session, Side};

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut ports = PortPool::new(30000..=30011, Duration::from_secs(1)).unwrap();
    let mut session = Session::new("192.0.2.1".parse().unwrap()).with_keys(|| Some(MasterKey([7; 30])));
    for side in [Side::Caller, Side::Callee, Side::Caller] {
        if let Ok(out) = session.rewrite(now, side, data, &mut ports) {
            assert!(Sdp::parse(&out).is_ok(), "what the session writes reads");
        }
    }
    session.release(now, &mut ports);
    // The router answering the bytes itself (a DR <Play>), twice (a re-offer).
    let mut here = Session::new("192.0.2.1".parse().unwrap()).with_keys(|| Some(MasterKey([9; 30])));
    for _ in 0..2 {
        if let Ok(answer) = here.answer_here(now, data, &mut ports) {
            let sdp = Sdp::parse(&answer.body).expect("the router's own answer reads");
            assert!(sdp.media(answer.stream).is_some_and(|m| m.port != 0), "the played stream is accepted");
        }
    }
    here.release(now, &mut ports);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = Crypto::parse(text) {
            assert_eq!(Crypto::parse(&c.to_value()), Ok(c), "an accepted crypto line prints back");
        }
    }
    assert_eq!(ports.in_use(), 0, "every port given back");
    let Ok(mut sdp) = Sdp::parse(data) else { return };
    assert_eq!(sdp.to_bytes(), data, "an unchanged description is written back as it was");
    let _ = sdp.origin();
    let n = sdp.media_count();
    for i in 0..n {
        let _ = (sdp.media(i), sdp.connection(i), sdp.direction(i), sdp.attribute(Some(i), "rtcp"));
        let _ = sdp.attributes(Some(i), "crypto").count();
    }
    let ip = if data.len() % 2 == 0 { "192.0.2.1".parse().unwrap() } else { "2001:db8::1".parse().unwrap() };
    sdp.set_connection(ip);
    sdp.set_origin_version(data.len() as u64);
    for i in 0..n + 1 {
        sdp.set_port(i, 40000 + i as u16);
        sdp.set_rtcp(i, 40001 + i as u16, ip);
        sdp.set_direction(i, if i % 2 == 0 { Direction::SendOnly } else { Direction::Inactive });
        sdp.set_crypto(i, &["1 AES_CM_128_HMAC_SHA1_80 inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0".to_owned()]);
        sdp.set_proto(i, "RTP/SAVP");
    }
    let again = Sdp::parse(&sdp.to_bytes()).expect("a rewritten description reads");
    assert_eq!(again.media_count(), n);
});
