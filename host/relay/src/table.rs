//! The relay's shared state: one slot per port of the range (its socket,
//! once bound, and the stream it belongs to), and per stream where each
//! side wants media and what was relayed.
//!
//! A stream holds four ports: RTP and RTCP facing the caller, RTP and RTCP
//! facing the callee. A packet that arrives on a port facing one side goes
//! out of the matching port facing the other side, to where that side's
//! session description says.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::BytesMut;
use trunkline_media_core::crypto::Srtp;
use trunkline_media_core::latch::{self, Latch};
use trunkline_media_core::rtp;
use trunkline_media_core::session::Remote;

use crate::record::Tap;
use crate::srtp::SrtpParty;
use crate::RelayConfig;

/// Counters of the whole relay.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) relayed: AtomicU64,
    pub(crate) dropped_source: AtomicU64,
    pub(crate) dropped_unrouted: AtomicU64,
    pub(crate) dropped_send: AtomicU64,
    pub(crate) dropped_auth: AtomicU64,
}

/// One port of the range.
#[derive(Default)]
pub(crate) struct Slot {
    /// Bound on first use, then kept for the life of the relay.
    pub(crate) socket: OnceLock<mio::net::UdpSocket>,
    /// The stream the port belongs to now.
    /// (A read lock per packet; written twice a call. An `ArcSwapOption`
    /// cost 24,000 instructions a call on its writes: `Debt::pay_all`.)
    pub(crate) route: RwLock<Option<Arc<StreamRelay>>>,
}

/// What the workers and the control side share.
pub(crate) struct Shared {
    pub(crate) bind: IpAddr,
    pub(crate) first: u16,
    pub(crate) last: u16,
    pub(crate) slots: Box<[Slot]>,
    registries: Vec<mio::Registry>,
    pub(crate) wakers: Vec<mio::Waker>,
    pub(crate) counters: Counters,
    pub(crate) stop: AtomicBool,
    routed: AtomicUsize,
    /// Time origin of the workers' millisecond clock.
    pub(crate) epoch: std::time::Instant,
}

impl Shared {
    pub(crate) fn new(config: &RelayConfig, registries: Vec<mio::Registry>, wakers: Vec<mio::Waker>) -> Shared {
        let n = usize::from(config.last_port - config.first_port) + 1;
        Shared {
            bind: config.bind,
            first: config.first_port,
            last: config.last_port,
            slots: (0..n).map(|_| Slot::default()).collect(),
            registries,
            wakers,
            counters: Counters::default(),
            stop: AtomicBool::new(false),
            routed: AtomicUsize::new(0),
            epoch: std::time::Instant::now(),
        }
    }

    pub(crate) fn slot(&self, port: u16) -> Option<&Slot> {
        port.checked_sub(self.first).and_then(|i| self.slots.get(usize::from(i)))
    }

    /// The port of slot `index`.
    pub(crate) fn port_of(&self, index: usize) -> u16 {
        self.first + index as u16
    }

    /// Bind the pair of RTP port `rtp` (and RTCP, the next port) if not yet
    /// bound, each registered with the worker of its pair.
    pub(crate) fn bind_pair(&self, rtp: u16) -> io::Result<()> {
        for port in [rtp, rtp + 1] {
            let Some(slot) = self.slot(port) else {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("port {port} is out of the range")));
            };
            if slot.socket.get().is_some() {
                continue;
            }
            let socket = bind(SocketAddr::new(self.bind, port))?;
            let index = usize::from(port - self.first);
            let worker = (index / 2) % self.registries.len();
            let mut socket = mio::net::UdpSocket::from_std(socket);
            self.registries[worker].register(&mut socket, mio::Token(index), mio::Interest::READABLE)?;
            // Only the control side binds: the slot was empty.
            let _ = slot.socket.set(socket);
        }
        Ok(())
    }

    /// Route the stream's four ports to it.
    pub(crate) fn route(&self, s: &Arc<StreamRelay>) {
        for port in s.ports() {
            if let Some(slot) = self.slot(port) {
                let mut route = slot.route.write().unwrap_or_else(|e| e.into_inner());
                if route.replace(s.clone()).is_none() {
                    self.routed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Stop routing the stream's ports (those still routed to it).
    pub(crate) fn unroute(&self, s: &Arc<StreamRelay>) {
        for port in s.ports() {
            let Some(slot) = self.slot(port) else { continue };
            let mut route = slot.route.write().unwrap_or_else(|e| e.into_inner());
            if route.as_ref().is_some_and(|c| Arc::ptr_eq(c, s)) {
                *route = None;
                self.routed.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn routed(&self) -> usize {
        self.routed.load(Ordering::Relaxed)
    }
}

/// Receive and send buffers asked of the kernel per socket: a few hundred
/// packets of a burst (one stream carries ~50 packets/s).
const SOCKET_BUFFER_BYTES: usize = 256 << 10;

fn bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    if addr.is_ipv4() {
        set_dont_fragment(&socket);
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Send IPv4 packets with DF set (`IP_PMTUDISC_PROBE`: the interface's MTU
/// applies, path-MTU reports are ignored), as RTP stacks commonly do. The
/// kernel then writes no per-packet IP identification (`__ip_select_ident`,
/// a hash and an atomic per packet: ~4 % of the relay's CPU at 80,000
/// packets/s, `bench/rtp.sh`). A packet longer than the interface's MTU
/// (RTP never is) is refused by the kernel and counted as a send drop
/// instead of being fragmented.
fn set_dont_fragment(socket: &socket2::Socket) {
    let probe: libc::c_int = libc::IP_PMTUDISC_PROBE;
    // SAFETY: setting an int socket option on a socket we own; the pointer
    // and length describe `probe`.
    let r = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&probe as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        tracing::debug!("IP_MTU_DISCOVER: {}", io::Error::last_os_error());
    }
}

/// What one stream did (each array: `[from the caller, from the callee]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamCounters {
    /// Packets relayed from each side to the other.
    pub relayed: [u64; 2],
    /// Bytes relayed from each side.
    pub bytes: [u64; 2],
    /// Packets from a source the session description does not name.
    pub dropped_source: u64,
    /// Packets with nowhere to go yet (the other side's address unknown, or on hold with 0.0.0.0).
    pub dropped_unrouted: u64,
    /// SRTP packets that failed authentication (forged, replayed, wrong key).
    pub dropped_auth: u64,
    /// Whether each side spoke SRTP (at the end).
    pub secure: [bool; 2],
    /// With symmetric RTP: the RTP source each side was latched to.
    pub latched: [Option<SocketAddr>; 2],
    /// Packets the router sent the caller itself (a `<Play>`).
    pub played: u64,
    /// Of `relayed`, packets the kernel forwarded (`kernel_forwarding`).
    pub kernel_relayed: u64,
}

/// One anchored stream. See the module docs.
pub(crate) struct StreamRelay {
    /// RTP port facing `[caller, callee]`; RTCP is the next port.
    pub(crate) local: [u16; 2],
    symmetric: bool,
    state: Mutex<State>,
    relayed: [AtomicU64; 2],
    bytes: [AtomicU64; 2],
    dropped_source: AtomicU64,
    dropped_unrouted: AtomicU64,
    dropped_auth: AtomicU64,
    played: AtomicU64,
    kernel_relayed: AtomicU64,
    /// When a packet was last relayed (ms on the relay's clock; the
    /// stream's creation until then).
    last_ms: AtomicU64,
}

/// Where each side wants media, where its packets come from, its SRTP.
struct State {
    remote: [Option<Remote>; 2],
    /// Per side: `[RTP, RTCP]` sources (`trunkline_media_core::latch`).
    latch: [[Latch; 2]; 2],
    srtp: [Option<SrtpParty>; 2],
    /// Where this stream's audio is recorded, if the call is.
    tap: Option<Arc<Tap>>,
}

/// Where a packet goes: out of the router's port `port`, to `to`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `bytes`: what to send instead of the packet (decrypted, or
    /// encrypted for the other side); `None`: the packet as it came.
    Forward { port: u16, to: SocketAddr, bytes: Option<BytesMut> },
    /// SRTP that fails authentication (forged, replayed, wrong key).
    Unauthenticated,
    /// From a source the session description does not name (or, with
    /// symmetric RTP, not the latched one).
    WrongSource,
    /// Nowhere to send it.
    Unrouted,
}

impl StreamRelay {
    /// `symmetric`: learn each side's source from its packets (symmetric RTP).
    pub(crate) fn new(local: [u16; 2], symmetric: bool, now_ms: u64) -> StreamRelay {
        let latch = || [Latch::new(symmetric, None), Latch::new(symmetric, None)];
        StreamRelay {
            local,
            symmetric,
            state: Mutex::new(State { remote: [None, None], latch: [latch(), latch()], srtp: [None, None], tap: None }),
            relayed: Default::default(),
            bytes: Default::default(),
            dropped_source: AtomicU64::new(0),
            dropped_unrouted: AtomicU64::new(0),
            dropped_auth: AtomicU64::new(0),
            played: AtomicU64::new(0),
            kernel_relayed: AtomicU64::new(0),
            last_ms: AtomicU64::new(now_ms),
        }
    }

    /// When a packet was last relayed (ms on the relay's clock).
    pub(crate) fn last_ms(&self) -> u64 {
        self.last_ms.load(Ordering::Relaxed)
    }

    fn ports(&self) -> [u16; 4] {
        [self.local[0], self.local[0] + 1, self.local[1], self.local[1] + 1]
    }

    /// New descriptions: a side whose address changed starts learning
    /// over; a side whose SRTP keys changed gets new contexts. (The media
    /// core only agrees keys of the right length, which the crate takes;
    /// were it to refuse them, that side is logged and left without SRTP.)
    pub(crate) fn set(&self, remote: [Option<Remote>; 2], srtp: &[Option<Srtp>; 2]) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for side in 0..2 {
            st.latch[side][0].describe(remote[side].and_then(|r| r.rtp));
            st.latch[side][1].describe(remote[side].and_then(|r| r.rtcp));
            if st.srtp[side].as_ref().map(|p| &p.agreed) != srtp[side].as_ref() {
                st.srtp[side] = srtp[side].as_ref().and_then(|a| {
                    SrtpParty::new(a).map_err(|e| tracing::warn!("SRTP keys refused by the crate: {e}")).ok()
                });
            }
        }
        st.remote = remote;
    }

    /// Record this stream's RTP through `tap` (or stop).
    pub(crate) fn set_tap(&self, tap: Option<Arc<Tap>>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).tap = tap;
    }

    /// Decide where `packet`, received on our port `port` from `from` at
    /// `now_ms`, goes.
    pub(crate) fn forward(&self, port: u16, from: SocketAddr, packet: &[u8], now_ms: u64) -> Verdict {
        let side = usize::from(port != self.local[0] && port != self.local[0] + 1);
        let rtcp_port = port == self.local[side] + 1;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mine) = st.remote[side] else {
            self.dropped_source.fetch_add(1, Ordering::Relaxed);
            return Verdict::WrongSource;
        };
        let kind = rtp::kind(packet);
        let rtcp = rtcp_port || (mine.mux && kind == rtp::Kind::Rtcp);
        // A party sends with the payload types the other described (RFC 3264
        // §5.1), or its own: either is this session's.
        let theirs = st.remote[1 - side].map(|r| r.payload_types).unwrap_or_default();
        let (valid, ssrc) = match kind {
            rtp::Kind::Rtp { payload_type, ssrc } => {
                (!rtcp && (mine.payload_types.contains(payload_type) || theirs.contains(payload_type)), ssrc)
            }
            rtp::Kind::Rtcp => (rtcp, 0),
            rtp::Kind::Other => (false, 0),
        };
        // With rtcp-mux, RTCP comes from the RTP source.
        let which = usize::from(rtcp && !mine.mux);
        // Strict: the source first (nothing to decrypt for a stranger).
        if !self.symmetric && st.latch[side][which].check(from, valid, ssrc, now_ms) == latch::Verdict::Reject {
            self.dropped_source.fetch_add(1, Ordering::Relaxed);
            return Verdict::WrongSource;
        }
        let plain = match st.srtp[side].as_mut() {
            Some(p) => match p.unprotect(packet, rtcp) {
                Ok(b) => Some(b),
                Err(_) => {
                    self.dropped_auth.fetch_add(1, Ordering::Relaxed);
                    return Verdict::Unauthenticated;
                }
            },
            None => None,
        };
        // Symmetric: only a packet that passed every check teaches a source.
        if self.symmetric && st.latch[side][which].check(from, valid, ssrc, now_ms) == latch::Verdict::Reject {
            self.dropped_source.fetch_add(1, Ordering::Relaxed);
            return Verdict::WrongSource;
        }
        let other = 1 - side;
        let muxed = st.remote[other].is_some_and(|r| r.mux);
        let to = st.latch[other][usize::from(rtcp && !muxed)].destination();
        let Some(to) = to.filter(|_| st.remote[other].is_some()) else {
            self.dropped_unrouted.fetch_add(1, Ordering::Relaxed);
            return Verdict::Unrouted;
        };
        if let (Some(tap), false) = (&st.tap, rtcp) {
            tap.offer(side, now_ms, plain.as_deref().unwrap_or(packet), from, to);
        }
        let bytes = match st.srtp[other].as_mut() {
            Some(p) => match p.protect(plain.as_deref().unwrap_or(packet), rtcp) {
                Ok(b) => Some(b),
                Err(_) => {
                    // Plain bytes the crate cannot read as RTP/RTCP: never
                    // sent unencrypted to a party that speaks SRTP.
                    self.dropped_unrouted.fetch_add(1, Ordering::Relaxed);
                    return Verdict::Unrouted;
                }
            },
            None => plain,
        };
        drop(st);
        let port = self.local[other] + u16::from(rtcp && !muxed);
        self.relayed[side].fetch_add(1, Ordering::Relaxed);
        self.bytes[side].fetch_add(packet.len() as u64, Ordering::Relaxed);
        self.last_ms.store(now_ms, Ordering::Relaxed);
        Verdict::Forward { port, to, bytes }
    }

    /// The flows the kernel may forward for this stream, as (side the
    /// packets come from, flow): each direction whose source and
    /// destination the descriptions name (IPv4), in a stream without
    /// symmetric RTP, SRTP or recording, with RTCP multiplexed on both
    /// sides or on neither (see `kernel`).
    pub(crate) fn kernel_flows(&self) -> Vec<(usize, crate::kernel::Flow)> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let [Some(a), Some(b)] = st.remote else { return Vec::new() };
        if self.symmetric || st.srtp.iter().any(Option::is_some) || st.tap.is_some() || a.mux != b.mux {
            return Vec::new();
        }
        let v4 = |s: Option<SocketAddr>| match s {
            Some(SocketAddr::V4(v)) if !v.ip().is_unspecified() && v.port() != 0 => Some(v),
            _ => None,
        };
        let mut flows = Vec::with_capacity(4);
        for (side, from, to) in [(0, a, b), (1, b, a)] {
            let rtcp = [(false, from.rtp, to.rtp), (true, from.rtcp, to.rtcp)];
            for (is_rtcp, src, dst) in rtcp.into_iter().take(if a.mux { 1 } else { 2 }) {
                if let (Some(src), Some(dst)) = (v4(src), v4(dst)) {
                    let flow = crate::kernel::Flow {
                        from: src,
                        port: self.local[side] + u16::from(is_rtcp),
                        out_port: self.local[1 - side] + u16::from(is_rtcp),
                        to: dst,
                    };
                    flows.push((side, flow));
                }
            }
        }
        flows
    }

    /// Count what the kernel forwarded from `side` between two readings of
    /// a flow's counters.
    pub(crate) fn absorb(&self, side: usize, before: crate::kernel::Forwarded, now: crate::kernel::Forwarded) {
        let packets = now.packets.saturating_sub(before.packets);
        self.relayed[side].fetch_add(packets, Ordering::Relaxed);
        self.kernel_relayed.fetch_add(packets, Ordering::Relaxed);
        self.bytes[side].fetch_add(now.bytes.saturating_sub(before.bytes), Ordering::Relaxed);
        self.last_ms.fetch_max(now.last_ms, Ordering::Relaxed);
    }

    /// Where an RTP packet the router itself sends the caller goes (a
    /// `<Play>`): out of the port facing the caller, to where it wants
    /// media, encrypted if it speaks SRTP. `None`: nowhere to send it yet.
    pub(crate) fn inject(&self, packet: &[u8], now_ms: u64) -> Option<(u16, SocketAddr, Option<BytesMut>)> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.remote[0]?;
        let to = st.latch[0][0].destination()?;
        let bytes = match st.srtp[0].as_mut() {
            Some(p) => Some(p.protect(packet, false).ok()?),
            None => None,
        };
        drop(st);
        self.played.fetch_add(1, Ordering::Relaxed);
        self.last_ms.store(now_ms, Ordering::Relaxed);
        Some((self.local[0], to, bytes))
    }

    pub(crate) fn counters(&self) -> StreamCounters {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        StreamCounters {
            relayed: [l(&self.relayed[0]), l(&self.relayed[1])],
            bytes: [l(&self.bytes[0]), l(&self.bytes[1])],
            dropped_source: l(&self.dropped_source),
            dropped_unrouted: l(&self.dropped_unrouted),
            dropped_auth: l(&self.dropped_auth),
            secure: [st.srtp[0].is_some(), st.srtp[1].is_some()],
            latched: [st.latch[0][0].latched(), st.latch[1][0].latched()],
            played: l(&self.played),
            kernel_relayed: l(&self.kernel_relayed),
        }
    }
}
