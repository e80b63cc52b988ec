//! Any bytes through the SDP reader and every rewriter: nothing may panic;
//! what reads is written back byte for byte, and what the rewriters make
//! reads again with the same media descriptions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline_media_core::sdp::{Direction, Sdp};

fuzz_target!(|data: &[u8]| {
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
