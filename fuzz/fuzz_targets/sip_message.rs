//! Any bytes through the SIP parser, the stream framer and the transaction
//! layer (which answers unparsable requests and stamps the Via of those it
//! takes), and a parsed message through what reads it further: header
//! lists, route sets and dialogs, RAck/RSeq and the 100rel state, where
//! responses go. Nothing may panic.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use trunkline_sip_core::dialog::{route, Dialog};
use trunkline_sip_core::header::{list, RAck, RSeq, Via};
use trunkline_sip_core::reliable::{Provisionals, Receipts};
use trunkline_sip_core::response_route::{response_peer, stamp_via};
use trunkline_sip_core::transaction::{Layer, Reliability, Timers};
use trunkline_sip_core::transport::Framer;
use trunkline_sip_core::{Message, Peer};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        // What parses must print and parse again to the same message
        // (printing adds a Content-Length when the original had none).
        let again = Message::parse(&m.to_bytes()).expect("a printed message parses");
        let no_length = |m: &Message| m.headers.iter().filter(|h| !h.name.eq_ignore_ascii_case("Content-Length")).cloned().collect::<Vec<_>>();
        assert_eq!(no_length(&again), no_length(&m));
        assert_eq!(again.body, m.body);
        assert_eq!(again.start, m.start);
        // Where printing says the Call-ID is, it is (sent messages are filed by it).
        let (bytes, at) = m.serialize();
        let first = m.headers.iter().find(|h| h.name.eq_ignore_ascii_case("Call-ID") || h.name.eq_ignore_ascii_case("i"));
        assert_eq!(first.map(|h| h.value.as_bytes()), (!at.is_empty() || first.is_some()).then(|| &bytes[at.clone()]));
        for name in ["Via", "CSeq", "From", "To", "Contact", "Max-Forwards"] {
            let _ = m.header(name);
        }
        read_further(m);
    }
    let mut framer = Framer::new();
    for chunk in data.chunks(61) {
        framer.push(chunk);
        while framer.next_frame().is_some() {}
    }
    let mut layer = Layer::new(Timers::default());
    layer.handle_message(Instant::now(), Peer::udp("127.0.0.1:5060".parse().unwrap()), data);
    while layer.poll_transmit().is_some() || layer.poll_event().is_some() {}
});

fn read_further(mut m: Message) {
    let now = Instant::now();
    let from = Peer::udp("127.0.0.1:5070".parse().unwrap());
    for h in &m.headers {
        let _ = list(&h.value).count();
        let _ = (RAck::parse(&h.value), RSeq::parse(&h.value));
    }
    let routes = route::record_route(&m);
    if let Some(target) = routes.last() {
        let _ = route::request_target(&routes, target);
    }
    for mut d in [Dialog::as_uac(&m, &m), Dialog::as_uas(&m, "t")].into_iter().flatten() {
        let _ = d.next_hop();
        let _ = d.request("BYE", "SIP/2.0/UDP 127.0.0.1:5060", "b").to_bytes();
        d.confirm(&m);
        let _ = d.ack(1, "SIP/2.0/UDP 127.0.0.1:5060", "a").to_bytes();
    }
    let _ = Receipts::default().check(&m);
    let mut p = Provisionals::new(1, 1, Reliability::Unreliable, Timers::default());
    p.send(now, m.clone());
    let _ = p.handle_prack(now, &m);
    if let Some(via) = m.header("Via").and_then(|v| v.split(',').next()).and_then(Via::parse) {
        stamp_via(&mut m, &via, from);
    }
    let _ = response_peer(&m, from);
}
