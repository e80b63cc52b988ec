//! Requests inside a dialog follow its route set (RFC 3261 §12.2.1.1), and
//! responses go where the Via says (§18.2.2, RFC 3581).

use super::*;

const CALLER_PROXY: &str = "127.0.0.1:5999";
const PBX_PROXY: &str = "127.0.0.1:5998";

/// The caller's INVITE as a record-routing proxy on 5999 relays it.
fn proxied_invite() -> Vec<u8> {
    "INVITE sip:+14155550100@127.0.0.1:5060 SIP/2.0\r\n\
     Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-p1\r\n\
     Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-a1;rport=5070\r\n\
     Record-Route: <sip:127.0.0.1:5999;lr;ftag=a>\r\n\
     Max-Forwards: 69\r\n\
     From: <sip:+12125550123@carrier.example>;tag=a\r\n\
     To: <sip:+14155550100@trunkline.test>\r\n\
     Call-ID: rr-test\r\n\
     CSeq: 1 INVITE\r\n\
     Contact: <sip:carrier@127.0.0.1:5070>\r\n\
     Content-Length: 0\r\n\r\n"
        .as_bytes()
        .to_vec()
}

/// The PBX's 200 to `b_invite`, relayed by a proxy that record-routed `rr`.
fn ok_through(b_invite: &Message, rr: &str) -> Vec<u8> {
    let mut ok = Message::parse(&ok_for(b_invite)).unwrap();
    ok.headers.push(trunkline_sip_core::Header { name: "Record-Route".into(), value: rr.into() });
    ok.to_bytes()
}

/// A request from the PBX (Contact `contact`) in its dialog, through the proxy on 5998.
fn from_pbx(b_invite: &Message, method: &str, seq: u32, contact: &str) -> Vec<u8> {
    format!(
        "{method} sip:trunkline@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5998;branch=z9hG4bK-pp{method}{seq}\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5082;branch=z9hG4bK-pbx{method}{seq}\r\n\
         Max-Forwards: 69\r\nFrom: {};tag=b\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\n\
         Contact: <{contact}>\r\nContent-Length: 0\r\n\r\n",
        b_invite.header("To").unwrap(),
        b_invite.header("From").unwrap(),
        b_invite.header("Call-ID").unwrap()
    )
    .into_bytes()
}

fn routes(m: &Message) -> Vec<&str> {
    m.headers_named("Route").collect()
}

#[test]
fn every_request_inside_the_dialog_goes_through_the_proxies_of_both_legs() {
    let t0 = Instant::now();
    let mut e = engine();
    e.handle_datagram(t0, addr(CALLER_PROXY), &proxied_invite());
    let out = sent(&mut e);
    assert_eq!((out[0].0, out[0].1.as_str()), (addr(CALLER_PROXY), "SIP/2.0 100 Trying"), "responses follow the Via");
    let b1 = out[1].2.clone();
    assert!(routes(&b1).is_empty() && b1.header("Record-Route").is_none(), "the B2BUA starts a new dialog");

    e.handle_datagram(t0, addr(PBX_PROXY), &ok_through(&b1, "<sip:127.0.0.1:5998;lr>"));
    let out = sent(&mut e);
    assert_eq!(out.len(), 2, "{out:?}");
    let (ok, ack) = (&out[0], &out[1]);
    assert_eq!((ok.0, ok.1.as_str()), (addr(CALLER_PROXY), "SIP/2.0 200 OK"));
    assert_eq!(ok.2.header("Record-Route"), Some("<sip:127.0.0.1:5999;lr;ftag=a>"), "copied back to the caller");
    assert_eq!((ack.0, ack.1.as_str()), (addr(PBX_PROXY), "ACK sip:pbx@127.0.0.1:5082 SIP/2.0"));
    assert_eq!(routes(&ack.2), ["<sip:127.0.0.1:5998;lr>"]);

    // The PBX re-INVITEs with a new Contact (a target refresh): relayed to
    // the caller through its proxy; our 200 goes back to the PBX's proxy.
    e.handle_datagram(t0, addr(PBX_PROXY), &from_pbx(&b1, "INVITE", 2, "sip:pbx@127.0.0.1:5083"));
    let out = sent(&mut e);
    let re = out.iter().find(|o| o.1.starts_with("INVITE")).expect("relayed").clone();
    assert_eq!((re.0, re.1.as_str()), (addr(CALLER_PROXY), "INVITE sip:carrier@127.0.0.1:5070 SIP/2.0"));
    assert_eq!(routes(&re.2), ["<sip:127.0.0.1:5999;lr;ftag=a>"]);
    let mut caller_ok = trunkline_sip_core::transaction::response_to(&re.2, 200, "OK");
    caller_ok
        .headers
        .push(trunkline_sip_core::Header { name: "Contact".into(), value: "<sip:carrier@127.0.0.1:5070>".into() });
    e.handle_datagram(t0, addr(CALLER_PROXY), &caller_ok.to_bytes());
    let out = sent(&mut e);
    assert_eq!(out.iter().map(|o| (o.0, o.1.as_str())).collect::<Vec<_>>(), [(addr(PBX_PROXY), "SIP/2.0 200 OK")]);
    e.handle_datagram(t0, addr(PBX_PROXY), &from_pbx(&b1, "ACK", 2, "sip:pbx@127.0.0.1:5083"));
    let out = sent(&mut e);
    assert_eq!(
        out.iter().map(|o| (o.0, o.1.as_str())).collect::<Vec<_>>(),
        [(addr(CALLER_PROXY), "ACK sip:carrier@127.0.0.1:5070 SIP/2.0")]
    );
    assert_eq!(routes(&out[0].2), ["<sip:127.0.0.1:5999;lr;ftag=a>"]);

    // The caller hangs up through its proxy: the BYE to the PBX keeps the
    // route set and goes to the refreshed target.
    let tag = ok.2.header("To").unwrap().split(";tag=").nth(1).unwrap().to_owned();
    let bye = String::from_utf8(proxied_invite())
        .unwrap()
        .replace("INVITE sip:+14155550100@127.0.0.1:5060", "BYE sip:trunkline@127.0.0.1:5060")
        .replace("1 INVITE", "2 BYE")
        .replace("z9hG4bK-p1", "z9hG4bK-pbye")
        .replace("z9hG4bK-a1", "z9hG4bK-abye")
        .replace("Record-Route: <sip:127.0.0.1:5999;lr;ftag=a>\r\n", "")
        .replace("<sip:+14155550100@trunkline.test>", &format!("<sip:+14155550100@trunkline.test>;tag={tag}"));
    e.handle_datagram(t0, addr(CALLER_PROXY), bye.as_bytes());
    let out = sent(&mut e);
    let got: Vec<(SocketAddr, &str)> = out.iter().map(|o| (o.0, o.1.as_str())).collect();
    assert_eq!(got, [(addr(CALLER_PROXY), "SIP/2.0 200 OK"), (addr(PBX_PROXY), "BYE sip:pbx@127.0.0.1:5083 SIP/2.0")]);
    assert_eq!(routes(&out[1].2), ["<sip:127.0.0.1:5998;lr>"]);
    assert_eq!(out[1].2.header("CSeq"), Some("2 BYE"));
}

#[test]
fn the_pbxs_bye_reaches_the_caller_through_its_proxy() {
    let t0 = Instant::now();
    let mut e = engine();
    e.handle_datagram(t0, addr(CALLER_PROXY), &proxied_invite());
    let b1 = sent(&mut e)[1].2.clone();
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &ok_for(&b1));
    sent(&mut e);
    let mut bye = String::from_utf8(from_pbx(&b1, "BYE", 2, "sip:pbx@127.0.0.1:5082")).unwrap();
    bye = bye.replace("Via: SIP/2.0/UDP 127.0.0.1:5998;branch=z9hG4bK-ppBYE2\r\n", "");
    e.handle_datagram(t0, addr("127.0.0.1:5082"), bye.as_bytes());
    let out = sent(&mut e);
    let got: Vec<(SocketAddr, &str)> = out.iter().map(|o| (o.0, o.1.as_str())).collect();
    assert_eq!(
        got,
        [(addr("127.0.0.1:5082"), "SIP/2.0 200 OK"), (addr(CALLER_PROXY), "BYE sip:carrier@127.0.0.1:5070 SIP/2.0")]
    );
    assert_eq!(routes(&out[1].2), ["<sip:127.0.0.1:5999;lr;ftag=a>"]);
}

#[test]
fn a_named_route_is_resolved_first_and_a_strict_router_gets_the_request_uri() {
    let t0 = Instant::now();
    let mut e = engine();
    let b1 = start_call(&mut e, t0);
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &ok_through(&b1, "<sip:Edge.example:5998;lr>"));
    let out = sent(&mut e);
    assert_eq!(out.iter().map(|o| o.1.as_str()).collect::<Vec<_>>(), ["SIP/2.0 200 OK"], "the ACK waits for DNS");
    let tag = out[0].2.header("To").unwrap().split(";tag=").nth(1).unwrap().to_owned();
    assert_eq!(e.poll_resolve(), Some(host("edge.example")));
    e.handle_resolved(t0, &host("edge.example"), Ok(Answer::Addrs(vec!["127.0.0.42".parse().unwrap()])));
    let out = sent(&mut e);
    assert_eq!(
        out.iter().map(|o| (o.0, o.1.as_str())).collect::<Vec<_>>(),
        [(addr("127.0.0.42:5998"), "ACK sip:pbx@127.0.0.1:5082 SIP/2.0")]
    );
    // The caller's BYE: the name is in the cache now.
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &caller_request("BYE", 2, &tag, "z9hG4bK-bye2"));
    let out = sent(&mut e);
    assert_eq!(out[1].0, addr("127.0.0.42:5998"), "{out:?}");
    assert_eq!(routes(&out[1].2), ["<sip:Edge.example:5998;lr>"]);

    // A strict router (no `lr`): the first route is the Request-URI, the
    // remote target the last Route.
    let mut e = engine();
    let b1 = start_call(&mut e, t0);
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &ok_through(&b1, "<sip:127.0.0.1:5997>"));
    let out = sent(&mut e);
    let ack = out.iter().find(|o| o.1.starts_with("ACK")).expect("ACK sent").clone();
    assert_eq!((ack.0, ack.1.as_str()), (addr("127.0.0.1:5997"), "ACK sip:127.0.0.1:5997 SIP/2.0"));
    assert_eq!(routes(&ack.2), ["<sip:pbx@127.0.0.1:5082>"]);
}

#[test]
fn a_route_that_does_not_resolve_fails_the_relayed_request_with_503() {
    let t0 = Instant::now();
    let mut e = engine();
    let b1 = start_call(&mut e, t0);
    e.handle_datagram(t0, addr("127.0.0.1:5081"), &ok_through(&b1, "<sip:gone.example:5998;lr>"));
    let ok = sent(&mut e).into_iter().find(|o| o.1 == "SIP/2.0 200 OK").unwrap().2;
    e.handle_resolved(t0, &host("gone.example"), Err("NXDOMAIN".into()));
    assert!(sent(&mut e).is_empty(), "the ACK is not sent anywhere else");
    let tag = ok.header("To").unwrap().split(";tag=").nth(1).unwrap().to_owned();
    e.handle_datagram(t0, addr("127.0.0.1:5070"), &caller_request("INFO", 2, &tag, "z9hG4bK-info2"));
    let firsts: Vec<String> = sent(&mut e).into_iter().map(|o| o.1).collect();
    assert_eq!(firsts, ["SIP/2.0 503 Service Unavailable"]);
}

#[test]
fn responses_go_to_the_source_with_rport_else_to_the_via_port() {
    let t0 = Instant::now();
    let mut e = engine();
    // Sent from another port than its Via names, without rport.
    e.handle_datagram(t0, addr("127.0.0.1:40000"), &invite());
    let out = sent(&mut e);
    assert_eq!((out[0].0, out[0].1.as_str()), (addr("127.0.0.1:5070"), "SIP/2.0 100 Trying"));
    let mut e = engine();
    let with_rport = String::from_utf8(invite()).unwrap().replace("branch=z9hG4bK-a1", "branch=z9hG4bK-a1;rport");
    e.handle_datagram(t0, addr("127.0.0.1:40000"), with_rport.as_bytes());
    let out = sent(&mut e);
    assert_eq!((out[0].0, out[0].1.as_str()), (addr("127.0.0.1:40000"), "SIP/2.0 100 Trying"));
    assert_eq!(
        out[0].2.header("Via"),
        Some("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-a1;rport=40000;received=127.0.0.1"),
        "RFC 3581 §4"
    );
}
