//! One worker thread: waits on its shard of sockets (one epoll instance)
//! and relays what they receive.
//!
//! mio reports a socket once per burst (edge-triggered), so a socket stays
//! on the worker's ready list until a read finds it empty. Each turn reads
//! at most [`BATCH`] packets from each ready socket before going to the
//! next, so that one flooded port cannot starve the others; under overload
//! the kernel drops what the sockets cannot queue (shedding) while every
//! stream keeps its share.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::batch::{Batch, SendBatch, BATCH};
use crate::table::{Shared, Verdict};

/// The token of the worker's waker (the slots use 0..65536).
pub(crate) const WAKE: mio::Token = mio::Token(usize::MAX);

pub(crate) fn run(mut poll: mio::Poll, shared: &Shared) {
    let mut events = mio::Events::with_capacity(1024);
    let mut ready: VecDeque<usize> = VecDeque::new();
    let mut queued = vec![false; shared.slots.len()];
    let mut batch = Batch::new();
    let mut out = Outgoing::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let timeout = if ready.is_empty() { None } else { Some(Duration::ZERO) };
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != ErrorKind::Interrupted {
                tracing::error!("media relay worker stopped: {e}");
                return;
            }
        }
        for ev in &events {
            let i = ev.token().0;
            if ev.token() != WAKE && i < queued.len() && !queued[i] {
                queued[i] = true;
                ready.push_back(i);
            }
        }
        // One clock reading per turn: latching needs milliseconds, not more.
        let now_ms = shared.epoch.elapsed().as_millis() as u64;
        for _ in 0..ready.len() {
            let Some(i) = ready.pop_front() else { break };
            if drain(shared, i, &mut batch, &mut out, now_ms) {
                ready.push_back(i); // more to read: next turn
            } else {
                queued[i] = false;
            }
        }
    }
}

/// Relay what slot `i`'s socket has queued, up to [`BATCH`] packets; true
/// if it may hold more. Packets going out of the same socket to the same
/// destination, one after the other (a burst of one stream), leave in one
/// `sendmmsg`.
fn drain(shared: &Shared, i: usize, batch: &mut Batch, out: &mut Outgoing, now_ms: u64) -> bool {
    let Some(socket) = shared.slots[i].socket.get() else { return false };
    let port = shared.port_of(i);
    let n = match batch.recv(socket) {
        Ok(n) => n,
        // An ICMP error of an earlier send, reported on this socket: the
        // queue may still hold packets.
        Err(_) => return true,
    };
    out.forwards.clear();
    for k in 0..n {
        if let Some((packet, from)) = batch.get(k) {
            if let Some(f) = relay(shared, port, from, packet, now_ms) {
                out.forwards.push((k, f));
            }
        }
    }
    let c = &shared.counters;
    let mut start = 0;
    while start < out.forwards.len() {
        let (_, (port, to, _)) = &out.forwards[start];
        let (port, to) = (*port, *to);
        let end = start + out.forwards[start..].iter().take_while(|(_, f)| f.0 == port && f.1 == to).count();
        let group = &out.forwards[start..end];
        let sent = match shared.slot(port).and_then(|s| s.socket.get()) {
            Some(socket) => {
                let packets = group.iter().map(|(k, (_, _, bytes))| match bytes {
                    Some(b) => &b[..],
                    None => batch.get(*k).map_or(&[][..], |(p, _)| p),
                });
                out.send.send(socket, to, packets)
            }
            None => 0,
        };
        c.relayed.fetch_add(sent as u64, Ordering::Relaxed);
        c.dropped_send.fetch_add((group.len() - sent) as u64, Ordering::Relaxed);
        start = end;
    }
    n == BATCH
}

/// Where one packet goes: out of port, to, and the bytes to send instead
/// of the packet (decrypted or encrypted), if any.
type Forward = (u16, std::net::SocketAddr, Option<bytes::BytesMut>);

/// A worker's outgoing packets of one read: (index in the read batch,
/// (port, destination, bytes to send instead of the packet)).
pub(crate) struct Outgoing {
    forwards: Vec<(usize, Forward)>,
    send: SendBatch,
}

impl Outgoing {
    pub(crate) fn new() -> Outgoing {
        Outgoing { forwards: Vec::with_capacity(BATCH), send: SendBatch::new() }
    }
}

/// Where one packet goes, if anywhere (counted here if nowhere).
fn relay(shared: &Shared, port: u16, from: std::net::SocketAddr, packet: &[u8], now_ms: u64) -> Option<Forward> {
    let c = &shared.counters;
    let route = shared.slots[usize::from(port - shared.first)].route.read().unwrap_or_else(|e| e.into_inner());
    let Some(stream) = route.as_ref() else {
        c.dropped_unrouted.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    // A panic in a crate on the packet path (rtc-srtp had two, see `srtp`)
    // costs that packet, not the worker and every stream it serves.
    let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stream.forward(port, from, packet, now_ms)));
    let Ok(verdict) = verdict else {
        c.dropped_unrouted.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    match verdict {
        Verdict::Forward { port, to, bytes } => Some((port, to, bytes)),
        Verdict::Unauthenticated => {
            c.dropped_auth.fetch_add(1, Ordering::Relaxed);
            None
        }
        Verdict::WrongSource => {
            c.dropped_source.fetch_add(1, Ordering::Relaxed);
            None
        }
        Verdict::Unrouted => {
            c.dropped_unrouted.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}
