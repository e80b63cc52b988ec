//! One-way latency through a relay, for `bench/rtp.sh`: reads the peer
//! kit's stream lines ("pa ra pb") on stdin, sends PPS packets/s in total
//! (172-byte RTP, evenly spaced, round-robin over the streams) from each pa
//! to its ra for SECONDS, and times each packet's arrival at pb.
//!
//! What it measures is what the relay adds, not what this process adds:
//! - the generator thread sleeps between packets (timer slack 1 ns), so it
//!   does not take the core a relay thread needs;
//! - each packet carries the wall-clock time read just before `sendto`;
//! - the receiver thread reads the kernel's receive timestamp of each
//!   packet (`SO_TIMESTAMPNS`, taken when the packet reached pb's socket),
//!   so its own wake-up delay is not counted.
//!
//! With `direct`, packets go straight to pb: the floor of the loopback
//! path itself, to subtract.
//!
//! usage: latency PPS SECONDS [direct]
//! prints: sent=S received=R p50_us=A p99_us=B p999_us=C max_us=D

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Receive one datagram from `fd` with its kernel timestamp (ns since
/// the epoch); `None` when nothing is queued.
fn recv_stamped(fd: i32, buf: &mut [u8]) -> Option<(usize, u64)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut control = [0u64; 16];
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` describes buffers this function owns.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    // SAFETY: walking the control messages the kernel wrote into `control`.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` points into `control`, as CMSG_FIRSTHDR/NXTHDR guarantee.
        let c = unsafe { &*cmsg };
        if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_TIMESTAMPNS {
            // SAFETY: an SCM_TIMESTAMPNS message carries a timespec.
            let ts: libc::timespec = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            return Some((n as usize, ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64));
        }
        // SAFETY: as above.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Some((n as usize, wall_ns()))
}

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
    let senders: Vec<(UdpSocket, SocketAddr)> = lines
        .iter()
        .map(|[pa, ra, pb]| {
            let s = UdpSocket::bind(("127.0.0.1", *pa)).expect("bind");
            (s, SocketAddr::from(([127, 0, 0, 1], if direct { *pb } else { *ra })))
        })
        .collect();
    let receivers: Vec<mio::net::UdpSocket> = lines
        .iter()
        .map(|[_, _, pb]| {
            let s = UdpSocket::bind(("127.0.0.1", *pb)).expect("bind");
            s.set_nonblocking(true).unwrap();
            let on: libc::c_int = 1;
            // SAFETY: setting an int socket option on a socket we own.
            let r = unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_TIMESTAMPNS,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as _,
                )
            };
            assert_eq!(r, 0, "SO_TIMESTAMPNS");
            mio::net::UdpSocket::from_std(s)
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let receiver = std::thread::spawn(move || {
        let mut poll = mio::Poll::new().unwrap();
        let mut receivers = receivers;
        for (i, r) in receivers.iter_mut().enumerate() {
            poll.registry().register(r, mio::Token(i), mio::Interest::READABLE).unwrap();
        }
        let mut events = mio::Events::with_capacity(1024);
        let mut delays = Vec::new();
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            poll.poll(&mut events, Some(Duration::from_millis(100))).unwrap();
            for ev in &events {
                let fd = receivers[ev.token().0].as_raw_fd();
                while let Some((n, at)) = recv_stamped(fd, &mut buf) {
                    if n >= 20 {
                        let sent = u64::from_le_bytes(buf[12..20].try_into().unwrap());
                        delays.push(at.saturating_sub(sent));
                    }
                }
            }
        }
        delays
    });
    // SAFETY: prctl with an integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64) };
    let (start, duration) = (Instant::now(), Duration::from_secs_f64(secs));
    let interval = Duration::from_secs_f64(1.0 / pps as f64);
    let mut packet = [0u8; 172];
    packet[0] = 0x80;
    let mut sent = 0u64;
    while start.elapsed() < duration {
        let due = start + interval * sent as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let (socket, to) = &senders[(sent % senders.len() as u64) as usize];
        packet[2..4].copy_from_slice(&(sent as u16).to_be_bytes());
        packet[12..20].copy_from_slice(&wall_ns().to_le_bytes());
        let _ = socket.send_to(&packet, to);
        sent += 1;
    }
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::Relaxed);
    let mut delays = receiver.join().unwrap();
    delays.sort_unstable();
    let q = |f: f64| {
        delays.get(((delays.len() as f64 * f) as usize).min(delays.len().saturating_sub(1))).map_or(0, |d| d / 1000)
    };
    println!(
        "sent={sent} received={} p50_us={} p99_us={} p999_us={} max_us={}",
        delays.len(),
        q(0.50),
        q(0.99),
        q(0.999),
        delays.last().map_or(0, |d| d / 1000)
    );
}
