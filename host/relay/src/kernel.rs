//! Kernel forwarding (`[media] kernel_forwarding`): the RTP and RTCP of
//! plain, established streams forwarded by a tc classifier
//! (`bpf/forward.c`) on the interface of the relay's address, without
//! waking a relay thread.
//!
//! Why: a packet relayed through sockets costs a wake-up, a `recvmmsg` and
//! a `sendto` through the whole UDP/IP output path (`bench/rtp.sh`: ~5 us
//! of CPU a packet here, nearly all in the kernel); rewritten at ingress it
//! costs the rewrite and one pass through the neighbour's output (~1.5 us).
//! rtpengine's kernel module does the same for the same reason.
//!
//! What is offloaded, per direction of a stream (see
//! [`StreamRelay::kernel_flows`](crate::table::StreamRelay::kernel_flows)):
//! IPv4 only; both parties' addresses known from their descriptions; no
//! symmetric RTP (its sources are learnt from packets), no SRTP on either
//! side, not recorded, RTCP multiplexing the same on both sides. Anything
//! else, and any packet from a source the description does not name,
//! stays in user space, which handles and counts it as before.
//!
//! The classifier is attached through a tcx link owned by this process:
//! if the router stops, however it stops, the kernel detaches it and no
//! stale route forwards anything.

use std::collections::HashMap as StdHashMap;
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

/// A flow the classifier forwards: packets from `from` to the router's
/// `port` leave from the router's `out_port` to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Flow {
    pub(crate) from: SocketAddrV4,
    pub(crate) port: u16,
    pub(crate) out_port: u16,
    pub(crate) to: SocketAddrV4,
}

/// What the classifier forwarded on one flow (cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Forwarded {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    /// On the relay's millisecond clock; 0 if none yet.
    pub(crate) last_ms: u64,
}

/// Why kernel forwarding is not available (the relay then forwards
/// everything in user space).
#[derive(Debug)]
pub(crate) struct Unavailable(pub(crate) String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(bpf_object)]
mod imp {
    use super::*;
    use aya::maps::{HashMap, MapData, PerCpuArray};
    use aya::programs::{SchedClassifier, TcAttachType};
    use std::net::{SocketAddr, UdpSocket};

    /// `struct route_key` of `bpf/forward.c`: network byte order.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Key {
        saddr: u32,
        daddr: u32,
        sport: u16,
        dport: u16,
    }

    /// `struct route` of `bpf/forward.c`.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Route {
        saddr: u32,
        daddr: u32,
        sport: u16,
        dport: u16,
        ifindex: u32,
        packets: u64,
        bytes: u64,
        last_ns: u64,
    }

    // SAFETY: plain C structs of integers, no padding (checked by the
    // sizes below), any bit pattern valid.
    unsafe impl aya::Pod for Key {}
    // SAFETY: as above.
    unsafe impl aya::Pod for Route {}
    const _: () = assert!(std::mem::size_of::<Key>() == 12 && std::mem::size_of::<Route>() == 40);

    /// How long an egress interface found for a destination is trusted.
    const EGRESS_TTL: std::time::Duration = std::time::Duration::from_secs(30);

    static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/forward.o"));

    /// The loaded classifier, attached, and its maps.
    pub(crate) struct KernelPath {
        /// Holds the program and its tcx link (dropping it detaches).
        _ebpf: aya::Ebpf,
        routes: HashMap<MapData, Key, Route>,
        outcomes: PerCpuArray<MapData, u64>,
        bind: Ipv4Addr,
        /// Interfaces by IPv4 address (egress lookup).
        interfaces: StdHashMap<Ipv4Addr, u32>,
        /// Egress interface by destination, and when it was looked up (a
        /// call's four flows, and the next calls to the same carrier, ask
        /// once; routes that change are followed after [`EGRESS_TTL`]).
        egress: StdHashMap<Ipv4Addr, (u32, std::time::Instant)>,
        /// `CLOCK_MONOTONIC` (the classifier's clock) at the relay's epoch, in ns.
        epoch_ns: u64,
    }

    impl KernelPath {
        /// Load the classifier and attach it at ingress of the interface
        /// that holds `bind`.
        pub(crate) fn attach(bind: IpAddr, epoch: std::time::Instant) -> Result<KernelPath, Unavailable> {
            let IpAddr::V4(bind) = bind else {
                return Err(Unavailable(format!("the media address {bind} is not IPv4")));
            };
            if bind.is_unspecified() {
                return Err(Unavailable("the media address is 0.0.0.0: set [media] bind to one address".into()));
            }
            let interfaces = ipv4_interfaces();
            let Some(name) = interfaces.iter().find(|i| i.0 == bind).map(|i| i.1.clone()) else {
                return Err(Unavailable(format!("no interface holds the media address {bind}")));
            };
            match std::fs::read_to_string(format!("/sys/class/net/{name}/type")).map(|t| t.trim().to_owned()) {
                // Ethernet (ARPHRD_ETHER) or loopback: the classifier reads an Ethernet header.
                Ok(t) if t == "1" || t == "772" => {}
                _ => return Err(Unavailable(format!("interface {name} is not Ethernet or loopback"))),
            }
            let fail = |what: &str, e: &dyn std::fmt::Display| Unavailable(format!("{what}: {e}"));
            let mut ebpf = aya::Ebpf::load(OBJECT).map_err(|e| fail("loading the classifier (needs CAP_BPF)", &e))?;
            let prog: &mut SchedClassifier = ebpf
                .program_mut("forward")
                .ok_or_else(|| Unavailable("the classifier is missing from its object".into()))?
                .try_into()
                .map_err(|e| fail("the classifier", &e))?;
            prog.load().map_err(|e| fail("verifying the classifier", &e))?;
            if !aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0)) {
                // Older kernels need a clsact qdisc, shared with other users of tc.
                let _ = aya::programs::tc::qdisc_add_clsact(&name);
            }
            prog.attach(&name, TcAttachType::Ingress)
                .map_err(|e| fail(&format!("attaching the classifier to {name} (needs CAP_NET_ADMIN)"), &e))?;
            let routes = HashMap::try_from(ebpf.take_map("routes").ok_or_else(|| Unavailable("no routes map".into()))?)
                .map_err(|e| fail("the routes map", &e))?;
            let outcomes =
                PerCpuArray::try_from(ebpf.take_map("outcomes").ok_or_else(|| Unavailable("no outcomes map".into()))?)
                    .map_err(|e| fail("the outcomes map", &e))?;
            let interfaces = interfaces.into_iter().map(|(ip, name)| (ip, ifindex(&name))).collect();
            let mono_now = monotonic_ns();
            let epoch_ns = mono_now.saturating_sub(epoch.elapsed().as_nanos() as u64);
            tracing::info!("kernel forwarding attached to {name} ({bind})");
            Ok(KernelPath { _ebpf: ebpf, routes, outcomes, bind, interfaces, egress: StdHashMap::new(), epoch_ns })
        }

        /// Forward `flow` in the kernel from now on. False if it cannot be
        /// (no interface found towards its destination; a full map).
        pub(crate) fn insert(&mut self, flow: Flow) -> bool {
            let Some(ifindex) = self.egress(*flow.to.ip()) else { return false };
            let route = Route {
                saddr: u32::from_ne_bytes(self.bind.octets()),
                daddr: u32::from_ne_bytes(flow.to.ip().octets()),
                sport: flow.out_port.to_be(),
                dport: flow.to.port().to_be(),
                ifindex,
                packets: 0,
                bytes: 0,
                last_ns: 0,
            };
            match self.routes.insert(self.key(&flow), route, 0) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("kernel forwarding: cannot add a route ({e}); the stream stays in user space");
                    false
                }
            }
        }

        /// What `flow` forwarded so far.
        pub(crate) fn read(&self, flow: &Flow) -> Forwarded {
            self.routes.get(&self.key(flow), 0).map(|r| self.forwarded(&r)).unwrap_or_default()
        }

        /// Stop forwarding `flow`; what it forwarded in all.
        pub(crate) fn remove(&mut self, flow: &Flow) -> Forwarded {
            let last = self.read(flow);
            let _ = self.routes.remove(&self.key(flow));
            last
        }

        /// Packets forwarded, and packets dropped because a rewrite failed,
        /// since the classifier was attached.
        pub(crate) fn outcomes(&self) -> (u64, u64) {
            let sum = |i: u32| self.outcomes.get(&i, 0).map_or(0, |v| v.iter().sum());
            (sum(0), sum(1))
        }

        fn key(&self, flow: &Flow) -> Key {
            Key {
                saddr: u32::from_ne_bytes(flow.from.ip().octets()),
                daddr: u32::from_ne_bytes(self.bind.octets()),
                sport: flow.from.port().to_be(),
                dport: flow.port.to_be(),
            }
        }

        fn forwarded(&self, r: &Route) -> Forwarded {
            let last_ms = if r.last_ns == 0 { 0 } else { r.last_ns.saturating_sub(self.epoch_ns) / 1_000_000 };
            Forwarded { packets: r.packets, bytes: r.bytes, last_ms }
        }

        /// The interface packets to `to` leave by: the one holding the
        /// source address the kernel's routing picks for `to`; loopback
        /// for an address of this host (a party on the router's machine).
        fn egress(&mut self, to: Ipv4Addr) -> Option<u32> {
            let now = std::time::Instant::now();
            if let Some((i, at)) = self.egress.get(&to) {
                if now.duration_since(*at) < EGRESS_TTL {
                    return Some(*i);
                }
            }
            if self.egress.len() >= 4096 {
                self.egress.retain(|_, (_, at)| now.duration_since(*at) < EGRESS_TTL);
            }
            let i = self.route_interface(to)?;
            self.egress.insert(to, (i, now));
            Some(i)
        }

        fn route_interface(&mut self, to: Ipv4Addr) -> Option<u32> {
            let probe = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
            probe.connect(SocketAddr::from((to, 9))).ok()?;
            let SocketAddr::V4(src) = probe.local_addr().ok()? else { return None };
            if !self.interfaces.contains_key(src.ip()) {
                // An address added since: read the interfaces again.
                self.interfaces = ipv4_interfaces().into_iter().map(|(ip, name)| (ip, ifindex(&name))).collect();
            }
            if to.is_loopback() || self.interfaces.contains_key(&to) {
                return Some(ifindex("lo")).filter(|i| *i != 0);
            }
            self.interfaces.get(src.ip()).copied()
        }
    }

    fn monotonic_ns() -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid timespec for the kernel to fill in.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    fn ifindex(name: &str) -> u32 {
        let Ok(c) = std::ffi::CString::new(name) else { return 0 };
        // SAFETY: a valid NUL-terminated string.
        unsafe { libc::if_nametoindex(c.as_ptr()) }
    }
}

#[cfg(bpf_object)]
pub(crate) use imp::KernelPath;

/// Without the compiled classifier (no clang at build time).
#[cfg(not(bpf_object))]
pub(crate) struct KernelPath;

#[cfg(not(bpf_object))]
impl KernelPath {
    pub(crate) fn attach(_: IpAddr, _: std::time::Instant) -> Result<KernelPath, Unavailable> {
        Err(Unavailable("this build has no classifier (clang was missing when it was built)".into()))
    }
    pub(crate) fn insert(&mut self, _: Flow) -> bool {
        false
    }
    pub(crate) fn read(&self, _: &Flow) -> Forwarded {
        Forwarded::default()
    }
    pub(crate) fn remove(&mut self, _: &Flow) -> Forwarded {
        Forwarded::default()
    }
    pub(crate) fn outcomes(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// The host's IPv4 addresses and the interfaces holding them.
#[cfg_attr(not(bpf_object), allow(dead_code))]
fn ipv4_interfaces() -> Vec<(Ipv4Addr, String)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut at = head;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*at };
        if !ifa.ifa_addr.is_null() && !ifa.ifa_name.is_null() {
            // SAFETY: a non-null address; its family says what it holds.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: AF_INET: a sockaddr_in.
                let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
                // SAFETY: a NUL-terminated name from the kernel.
                let name = unsafe { CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned();
                out.push((Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), name));
            }
        }
        at = ifa.ifa_next;
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// The flows of the streams now offloaded, and what was already counted of
/// each (so that reading the classifier's counters adds only what is new).
#[derive(Default)]
pub(crate) struct Offloads {
    /// By the stream's RTP port facing the caller: (side the packets come
    /// from, flow, forwarded as last counted).
    streams: StdHashMap<u16, Vec<(usize, Flow, Forwarded)>>,
}

impl Offloads {
    /// Make the kernel forward exactly `wanted` (side, flow) of `stream`;
    /// what removed flows forwarded is added to the stream's counters.
    pub(crate) fn sync(&mut self, k: &mut KernelPath, stream: &crate::table::StreamRelay, wanted: &[(usize, Flow)]) {
        let now = self.streams.remove(&stream.local[0]).unwrap_or_default();
        let mut kept = Vec::with_capacity(wanted.len());
        for (side, flow, counted) in now {
            if wanted.iter().any(|w| w.1 == flow && w.0 == side) {
                kept.push((side, flow, counted));
            } else {
                stream.absorb(side, counted, k.remove(&flow));
            }
        }
        for &(side, flow) in wanted {
            if !kept.iter().any(|k| k.1 == flow) && k.insert(flow) {
                kept.push((side, flow, Forwarded::default()));
            }
        }
        if !kept.is_empty() {
            self.streams.insert(stream.local[0], kept);
        }
    }

    /// Add to `stream`'s counters what its flows forwarded since last read.
    pub(crate) fn refresh(&mut self, k: &KernelPath, stream: &crate::table::StreamRelay) {
        for (side, flow, counted) in self.streams.get_mut(&stream.local[0]).into_iter().flatten() {
            let now = k.read(flow);
            stream.absorb(*side, *counted, now);
            *counted = now;
        }
    }

    /// Flows installed now.
    pub(crate) fn flows(&self) -> usize {
        self.streams.values().map(Vec::len).sum()
    }
}
