use super::*;

/// A description as a carrier SBC might write it: an attribute nobody
/// knows, `c=` after `t=`, a media-level `c=` in one section only.
const OFFER: &str = "v=0\r
o=- 2890844526 2890842807 IN IP4 198.51.100.7\r
s=SBC\r
t=0 0\r
c=IN IP4 198.51.100.7\r
a=x-vendor-thing:42 ; odd\r
m=audio 49170 RTP/AVP 0 8 101\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-15\r
a=rtcp:49171 IN IP4 198.51.100.7\r
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r
a=ptime:20\r
m=video 0 RTP/AVP 96\r
c=IN IP4 203.0.113.9\r
a=sendonly\r
";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn an_unchanged_description_is_written_back_byte_for_byte() {
    for body in [
        OFFER.to_owned(),
        OFFER.replace("\r\n", "\n"),
        OFFER.trim_end().to_owned(),
        "v=0\r\nnot a line at all\r\n\r\nm=audio 1 RTP/AVP 0\n".to_owned(),
    ] {
        assert_eq!(Sdp::parse(body.as_bytes()).unwrap().to_bytes(), body.as_bytes());
    }
}

#[test]
fn what_is_not_sdp_is_refused() {
    assert_eq!(Sdp::parse(b""), Err(SdpError::NoVersion));
    assert_eq!(Sdp::parse(b"o=- 1 1 IN IP4 a\r\nv=0\r\n"), Err(SdpError::NoVersion));
    assert_eq!(Sdp::parse(b"v=0\r\ns=\xff\r\n"), Err(SdpError::NotUtf8));
    assert_eq!(Sdp::parse(&vec![b'v'; MAX_SDP + 1]), Err(SdpError::TooLarge));
}

#[test]
fn media_connections_directions_and_attributes_are_read() {
    let sdp = Sdp::parse(OFFER.as_bytes()).unwrap();
    assert_eq!(sdp.media_count(), 2);
    let audio = sdp.media(0).unwrap();
    assert_eq!((audio.kind, audio.port, audio.formats.len()), ("audio", 49170, 3));
    assert_eq!(sdp.media(1).unwrap().port, 0, "a rejected stream");
    assert_eq!(sdp.connection_ip(0), Some(ip("198.51.100.7")), "the session's c=");
    assert_eq!(sdp.connection_ip(1), Some(ip("203.0.113.9")), "its own c=");
    assert_eq!((sdp.direction(0), sdp.direction(1)), (Direction::SendRecv, Direction::SendOnly));
    assert_eq!(sdp.attribute(Some(0), "rtcp"), Some("49171 IN IP4 198.51.100.7"));
    assert_eq!(sdp.attributes(Some(0), "crypto").count(), 2);
    assert_eq!(sdp.attribute(None, "x-vendor-thing"), Some("42 ; odd"));
    assert_eq!(sdp.attribute(Some(1), "rtcp"), None);
    assert_eq!(sdp.origin().unwrap().version, 2890842807);
    let held = Sdp::parse(b"v=0\r\nc=IN IP4 0.0.0.0\r\na=inactive\r\nm=audio 5 RTP/AVP 0\r\n").unwrap();
    assert!(held.connection(0).unwrap().is_hold());
    assert_eq!(held.direction(0), Direction::Inactive, "the session's direction applies");
}

#[test]
fn only_the_lines_rewritten_change() {
    let mut sdp = Sdp::parse(OFFER.as_bytes()).unwrap();
    assert!(sdp.set_port(0, 30000));
    sdp.set_connection(ip("192.0.2.1"));
    sdp.set_rtcp(0, 30001, ip("192.0.2.1"));
    assert!(sdp.set_origin_version(2890842808));
    sdp.set_crypto(0, &["1 AES_CM_128_HMAC_SHA1_80 inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0".to_owned()]);
    sdp.set_direction(0, Direction::SendOnly);
    assert!(!sdp.set_port(5, 1));
    let expected = OFFER
        .replace("o=- 2890844526 2890842807", "o=- 2890844526 2890842808")
        .replace("c=IN IP4 198.51.100.7", "c=IN IP4 192.0.2.1")
        .replace("c=IN IP4 203.0.113.9", "c=IN IP4 192.0.2.1")
        .replace("m=audio 49170", "m=audio 30000")
        .replace("a=rtcp:49171 IN IP4 198.51.100.7", "a=rtcp:30001 IN IP4 192.0.2.1")
        .replace(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0",
        )
        .replace("a=ptime:20\r\n", "a=ptime:20\r\na=sendonly\r\n");
    assert_eq!(String::from_utf8(sdp.to_bytes()).unwrap(), expected);
    assert_eq!(sdp.media(1).unwrap().kind, "video", "media re-indexed after the inserted line");
    sdp.set_direction(1, Direction::Inactive);
    assert!(String::from_utf8(sdp.to_bytes()).unwrap().ends_with("c=IN IP4 192.0.2.1\r\na=inactive\r\n"));
}

#[test]
fn added_lines_follow_the_body_and_keep_an_unterminated_end_unterminated() {
    let mut sdp = Sdp::parse(b"v=0\nc=IN IP6 ::1\nm=audio 7 RTP/SAVP 0\na=rtcp:8").unwrap();
    sdp.set_direction(0, Direction::RecvOnly);
    sdp.set_crypto(0, &["1 X inline:a".to_owned(), "2 Y inline:b".to_owned()]);
    sdp.set_rtcp(0, 9, ip("::1"));
    assert!(sdp.set_proto(0, "RTP/AVP"));
    assert_eq!(
        String::from_utf8(sdp.to_bytes()).unwrap(),
        "v=0\nc=IN IP6 ::1\nm=audio 7 RTP/AVP 0\na=rtcp:9\na=recvonly\na=crypto:1 X inline:a\na=crypto:2 Y inline:b"
    );
    sdp.set_crypto(0, &[]);
    sdp.set_connection(ip("2001:db8::5"));
    assert_eq!(
        String::from_utf8(sdp.to_bytes()).unwrap(),
        "v=0\nc=IN IP6 2001:db8::5\nm=audio 7 RTP/AVP 0\na=rtcp:9\na=recvonly\n"
    );
}

#[test]
fn a_port_count_is_kept_and_odd_spacing_survives() {
    let mut sdp = Sdp::parse(b"v=0\r\no=-  1   7 IN IP4 a\r\nm=audio  5004/2  RTP/AVP 0\r\n").unwrap();
    sdp.set_port(0, 6000);
    sdp.set_origin_version(8);
    assert_eq!(sdp.to_bytes(), b"v=0\r\no=-  1   8 IN IP4 a\r\nm=audio  6000/2  RTP/AVP 0\r\n");
}

#[test]
fn the_audio_codecs_offered_are_named_from_rtpmap_or_the_static_table() {
    let sdp = Sdp::parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
          m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
          m=audio 4000 RTP/SAVP 8 0 96 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n",
    )
    .unwrap();
    let (codecs, srtp) = sdp.audio_codecs();
    assert_eq!(codecs, ["PCMA/8000", "PCMU/8000", "opus/48000", "telephone-event/8000"]);
    assert!(srtp);
    assert_eq!(Sdp::parse(b"v=0\r\n").unwrap().audio_codecs(), (Vec::new(), false));
}
