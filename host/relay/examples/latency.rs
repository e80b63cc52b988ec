//! One-way latency through a relay, for `bench/rtp.sh`: reads the peer
//! kit's stream lines ("pa ra pb") on stdin, sends PPS packets/s in total
//! (172-byte RTP, the send time in the payload) from each pa to its ra for
//! SECONDS, and times each packet's arrival at pb (one process, one clock).
//! With `direct`, packets go straight to pb: the floor the generator
//! itself adds, to subtract.
//!
//! usage: latency PPS SECONDS [direct]
//! prints: sent=S received=R p50_us=A p99_us=B max_us=C

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pps: u64 = args.first().and_then(|a| a.parse().ok()).expect("PPS");
    let secs: f64 = args.get(1).and_then(|a| a.parse().ok()).expect("SECONDS");
    let direct = args.get(2).is_some_and(|a| a == "direct");
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).unwrap();
    let lines: Vec<[u16; 3]> = text
        .lines()
        .filter_map(|l| {
            let v: Vec<u16> = l.split_whitespace().filter_map(|w| w.parse().ok()).collect();
            (v.len() == 3).then(|| [v[0], v[1], v[2]])
        })
        .collect();
    let bind = |port: u16| {
        let s = UdpSocket::bind(("127.0.0.1", port)).expect("bind");
        s.set_nonblocking(true).unwrap();
        s
    };
    let senders: Vec<(UdpSocket, SocketAddr)> = lines
        .iter()
        .map(|[pa, ra, pb]| (bind(*pa), SocketAddr::from(([127, 0, 0, 1], if direct { *pb } else { *ra }))))
        .collect();
    let mut poll = mio::Poll::new().unwrap();
    let mut receivers: Vec<mio::net::UdpSocket> =
        lines.iter().map(|[_, _, pb]| mio::net::UdpSocket::from_std(bind(*pb))).collect();
    for (i, r) in receivers.iter_mut().enumerate() {
        poll.registry().register(r, mio::Token(i), mio::Interest::READABLE).unwrap();
    }
    let mut events = mio::Events::with_capacity(1024);
    let (start, duration) = (Instant::now(), Duration::from_secs_f64(secs));
    let (mut sent, mut delays) = (0u64, Vec::with_capacity((pps as f64 * secs) as usize));
    let mut packet = [0u8; 172];
    packet[0] = 0x80;
    let mut buf = [0u8; 2048];
    loop {
        let elapsed = start.elapsed();
        if elapsed > duration + Duration::from_millis(500) {
            break;
        }
        if elapsed < duration {
            let due = (elapsed.as_secs_f64() * pps as f64) as u64;
            while sent < due {
                let (socket, to) = &senders[(sent % senders.len() as u64) as usize];
                packet[2..4].copy_from_slice(&(sent as u16).to_be_bytes());
                packet[12..20].copy_from_slice(&(start.elapsed().as_nanos() as u64).to_le_bytes());
                if socket.send_to(&packet, to).is_err() {
                    break;
                }
                sent += 1;
            }
        }
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        for ev in &events {
            let r = &receivers[ev.token().0];
            while let Ok((n, _)) = r.recv_from(&mut buf) {
                if n >= 20 {
                    let at = u64::from_le_bytes(buf[12..20].try_into().unwrap());
                    delays.push(start.elapsed().as_nanos() as u64 - at);
                }
            }
        }
    }
    delays.sort_unstable();
    let q = |f: f64| {
        delays.get(((delays.len() as f64 * f) as usize).min(delays.len().saturating_sub(1))).map_or(0, |d| d / 1000)
    };
    println!(
        "sent={sent} received={} p50_us={} p99_us={} max_us={}",
        delays.len(),
        q(0.50),
        q(0.99),
        delays.last().map_or(0, |d| d / 1000)
    );
}
