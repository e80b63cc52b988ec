//! The relay alone, for `bench/rtp.sh`: STREAMS one-way streams set up
//! directly (no SIP), in the peer kit's load format.
//!
//! usage: pps STREAMS THREADS FIRST_PORT CALLER_BASE CALLEE_BASE
//!
//! Stream i relays from a caller at 127.0.0.1:CALLER_BASE+2i to a callee
//! at 127.0.0.1:CALLEE_BASE+2i. Prints one line per stream, "pa ra pb"
//! (caller port, the router's port facing the caller, callee port), then
//! relays until stdin closes, and prints the relay's counters on stderr.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use trunkline_media_core::crypto::{MasterKey, Srtp, Suite};
use trunkline_media_core::ports::PortSource;
use trunkline_media_core::rtp::PayloadTypes;
use trunkline_media_core::session::{Remote, Stream};
use trunkline_relay::{Relay, RelayConfig};

fn main() {
    let args: Vec<u16> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let [streams, threads, first, caller_base, callee_base] = args[..] else {
        eprintln!("usage: pps STREAMS THREADS FIRST_PORT CALLER_BASE CALLEE_BASE");
        std::process::exit(2);
    };
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let last = first + streams * 4 + 3;
    // RELAY_KERNEL=1: with kernel forwarding (`[media] kernel_forwarding`).
    let kernel_forwarding = std::env::var("RELAY_KERNEL").is_ok_and(|v| v == "1");
    let config =
        RelayConfig { bind: ip, first_port: first, last_port: last, threads: usize::from(threads), kernel_forwarding };
    let mut relay = Relay::start(&config).expect("relay");
    // RELAY_SRTP=1: callers speak SRTP with the bench key of `srtp_load`
    // (the callees plain RTP): the SRTP->RTP step of bench/rtp.sh.
    let srtp = std::env::var("RELAY_SRTP").is_ok_and(|v| v == "1").then(|| {
        let key = MasterKey([0x42; 30]);
        Srtp { suite: Suite::AesCm128HmacSha1_80, theirs: key.clone(), ours: key }
    });
    let mut ports = relay.ports(Duration::from_secs(2)).expect("ports");
    let now = Instant::now();
    let mut out = std::io::stdout().lock();
    for i in 0..streams {
        let (a, b) = (ports.take(now).expect("a port pair"), ports.take(now).expect("a port pair"));
        let remote = |port: u16| Remote {
            rtp: Some(SocketAddr::new(ip, port)),
            rtcp: Some(SocketAddr::new(ip, port + 1)),
            mux: false,
            payload_types: PayloadTypes::of(["0"]),
        };
        let (pa, pb) = (caller_base + 2 * i, callee_base + 2 * i);
        let stream = Stream {
            local: [Some(a), Some(b)],
            remote: [Some(remote(pa)), Some(remote(pb))],
            kind: "audio".into(),
            srtp: [srtp.clone(), None],
        };
        relay.apply(u64::from(i), &[stream], false, None);
        writeln!(out, "{pa} {a} {pb}").unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    eprintln!("{:?}", relay.stats());
}
