//! SRTP load for `bench/rtp.sh` (the SRTP->RTP step): like the peer kit's
//! `load.c`, but each packet is encrypted (AES_CM_128_HMAC_SHA1_80) with the
//! bench key `pps` gives its callers when run with `RELAY_SRTP=1`.
//!
//! usage: srtp_load PPS SECONDS [plain] < "pa ra pb" lines
//!
//! `plain`: the same packets unencrypted (RTP->RTP with this very load, to
//! set the SRTP figure against).
//!
//! Sends PPS packets/s in total (160-byte payloads, 182 bytes with the SRTP
//! tag) from each caller port pa to the router's port ra, round robin over
//! the streams, and counts the plain RTP packets arriving at each callee
//! port pb. Prints the kit's line: `streams= pps_target= sent= received= loss_pct=`.

use std::io::BufRead;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trunkline_media_core::crypto::{MasterKey, Srtp, Suite};
use trunkline_relay::srtp::SrtpParty;

/// The key `pps` gives callers with `RELAY_SRTP=1` (a benchmark's, not a secret).
const BENCH_KEY: [u8; 30] = [0x42; 30];

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let plain_only = args.last().is_some_and(|a| a == "plain");
    if plain_only {
        args.pop();
    }
    let args: Vec<f64> = args.iter().map(|a| a.parse().expect("numbers")).collect();
    let [pps, secs] = args[..] else {
        eprintln!("usage: srtp_load PPS SECONDS [plain] < calls");
        std::process::exit(2);
    };
    let lines: Vec<[u16; 3]> = std::io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let v: Vec<u16> = l.split_whitespace().filter_map(|w| w.parse().ok()).collect();
            v.try_into().ok()
        })
        .collect();
    let key = MasterKey(BENCH_KEY);
    let agreed = Srtp { suite: Suite::AesCm128HmacSha1_80, theirs: key.clone(), ours: key };
    let mut senders = Vec::new();
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut receivers = Vec::new();
    for [pa, ra, pb] in &lines {
        let s = UdpSocket::bind(("127.0.0.1", *pa)).expect("caller port");
        s.connect(("127.0.0.1", *ra)).expect("connect");
        senders.push((s, SrtpParty::new(&agreed).expect("key"), 0u16));
        let r = UdpSocket::bind(("127.0.0.1", *pb)).expect("callee port");
        r.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        receivers.push(r);
    }
    // One receiving thread, reading every callee socket in turn.
    let rx = {
        let (received, done) = (received.clone(), done.clone());
        std::thread::spawn(move || {
            for r in &receivers {
                r.set_nonblocking(true).unwrap();
            }
            let mut buf = [0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                let mut any = false;
                for r in &receivers {
                    while r.recv(&mut buf).is_ok() {
                        received.fetch_add(1, Ordering::Relaxed);
                        any = true;
                    }
                }
                if !any {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    let n = senders.len();
    let t0 = Instant::now();
    let (mut sent, mut i) = (0u64, 0usize);
    let mut plain = [0u8; 172];
    plain[0] = 0x80;
    while t0.elapsed().as_secs_f64() < secs {
        let due = (t0.elapsed().as_secs_f64() * pps) as u64;
        while sent < due {
            let k = i % n;
            i += 1;
            let (socket, party, seq) = &mut senders[k];
            plain[2..4].copy_from_slice(&seq.to_be_bytes());
            plain[4..8].copy_from_slice(&(u32::from(*seq) * 160).to_be_bytes());
            plain[8..12].copy_from_slice(&(k as u32 + 1).to_be_bytes());
            *seq = seq.wrapping_add(1);
            let packet = if plain_only { plain[..].into() } else { party.protect(&plain, false).expect("encrypt") };
            if socket.send(&packet).is_ok() {
                sent += 1;
            }
        }
        // Spin, as load.c does: packets leave when due, not in bursts
        // (bursts would let the relay batch more than the kit's load does).
        std::hint::spin_loop();
    }
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::Relaxed);
    rx.join().unwrap();
    let got = received.load(Ordering::Relaxed);
    println!(
        "streams={n} pps_target={pps} sent={sent} received={got} loss_pct={:.3}",
        100.0 * (sent.saturating_sub(got)) as f64 / sent.max(1) as f64
    );
}
