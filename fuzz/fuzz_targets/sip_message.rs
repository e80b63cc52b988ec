//! Any bytes through the SIP parser, the stream framer and the transaction
//! layer (which answers unparsable requests): nothing may panic.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use trunkline_sip_core::transaction::{Layer, Timers};
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
        for name in ["Via", "CSeq", "From", "To", "Contact", "Max-Forwards"] {
            let _ = m.header(name);
        }
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
