//! # trunkline-relay
//!
//! The media hot path: RTP and RTCP of anchored calls, relayed between the
//! two parties on the router's ports. The call engine decides (through
//! `trunkline-media-core`: which ports, where each side wants media); this
//! crate moves packets.
//!
//! - [`Relay`]: the worker threads and the control side. The engine's
//!   driver gives it each call's streams ([`Relay::apply`]) after every
//!   offer or answer, and stops the call when it ends ([`Relay::stop`]).
//! - Each worker thread owns a shard of the sockets (one epoll instance)
//!   and forwards a packet with one `recv_from` and one `send_to`, with no
//!   allocation: SSRC, sequence numbers, timestamps and payload are not
//!   touched (no transcoding).
//! - [`BoundPorts`]: the port pairs the engine takes from, bound before
//!   they are handed out (a pair another program holds is retired, never
//!   handed out). Sockets stay bound while the router runs, so a pair
//!   reused by a later call costs no system call.
//! - Sources: a packet must come from where that side's session
//!   description says (its RTP address, or its RTCP address); any other
//!   source is dropped and counted. With symmetric RTP, each side's source
//!   is learnt from its first valid packet instead
//!   (`trunkline_media_core::latch` has the rules).
//! - Overload sheds: each socket is read a bounded number of packets per
//!   turn, and what the kernel cannot queue is dropped there; the rate
//!   relayed stays at the maximum and recovers when the load falls.
//! - Kernel forwarding (`RelayConfig::kernel_forwarding`, module `kernel`):
//!   plain established streams are handed to a tc classifier that forwards
//!   their packets without waking a worker; their counts come back into
//!   the stream's.

mod batch;
mod kernel;
pub mod play;
mod ports;
pub mod record;
pub mod srtp;
mod table;
mod worker;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use trunkline_media_core::session::Stream;

pub use ports::BoundPorts;
pub use table::StreamCounters;
use table::{Shared, StreamRelay};

/// How the relay runs.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// The address its sockets bind to.
    pub bind: IpAddr,
    /// The ports it may bind (the `[media]` port range).
    pub first_port: u16,
    /// Last port of the range.
    pub last_port: u16,
    /// Worker threads (at least one).
    pub threads: usize,
    /// Forward plain established streams in the kernel (`kernel` module):
    /// if that cannot be set up, the relay says why once and forwards in
    /// user space.
    pub kernel_forwarding: bool,
}

/// Counters of the whole relay since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Packets relayed (by the worker threads and by the kernel).
    pub relayed: u64,
    /// Of those, packets the kernel forwarded (`kernel_forwarding`).
    pub kernel_relayed: u64,
    /// Packets dropped: from a source the session description does not name.
    pub dropped_source: u64,
    /// Packets dropped: no call on the port, or nowhere to send them yet.
    pub dropped_unrouted: u64,
    /// Packets dropped: the outgoing socket's buffer was full (or, with
    /// kernel forwarding, rewriting a packet failed).
    pub dropped_send: u64,
    /// SRTP packets dropped: authentication failed (forged, replayed, wrong key).
    pub dropped_auth: u64,
    /// Packets not recorded: the recording queue was full (a slow disk).
    pub recording_dropped: u64,
}

/// What one finished call's media did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallMedia {
    /// Per stream, in the order of the media descriptions.
    pub streams: Vec<StreamCounters>,
    /// The recording's file, if the call was recorded (written by the
    /// recording thread; finished shortly after the call).
    pub recording: Option<std::path::PathBuf>,
}

impl CallMedia {
    /// Packets relayed from the caller to the callee, and back.
    pub fn relayed(&self) -> (u64, u64) {
        self.streams.iter().fold((0, 0), |(a, b), s| (a + s.relayed[0], b + s.relayed[1]))
    }

    /// Packets dropped, every reason together.
    pub fn dropped(&self) -> u64 {
        self.streams.iter().map(|s| s.dropped_source + s.dropped_unrouted + s.dropped_auth).sum()
    }
}

impl std::fmt::Display for CallMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = self.relayed();
        for (who, at) in [("caller", 0), ("callee", 1)] {
            if let Some(src) = self.streams.iter().find_map(|s| s.latched[at]) {
                write!(f, "{who} latched to {src} (symmetric RTP); ")?;
            }
        }
        let source: u64 = self.streams.iter().map(|s| s.dropped_source).sum();
        let unrouted: u64 = self.streams.iter().map(|s| s.dropped_unrouted).sum();
        let auth: u64 = self.streams.iter().map(|s| s.dropped_auth).sum();
        let played: u64 = self.streams.iter().map(|s| s.played).sum();
        if played > 0 {
            write!(f, "{played} packets played to the caller; ")?;
        }
        let srtp = |at: usize| if self.streams.iter().any(|s| s.secure[at]) { "SRTP" } else { "RTP" };
        write!(
            f,
            "caller {}, callee {}; {a} packets relayed caller->callee, {b} callee->caller, {} dropped ({source} \
             from a source the description does not name, {unrouted} with nowhere to go, {auth} failing SRTP \
             authentication)",
            srtp(0),
            srtp(1),
            self.dropped()
        )?;
        let kernel: u64 = self.streams.iter().map(|s| s.kernel_relayed).sum();
        if kernel > 0 {
            write!(f, "; {kernel} of the relayed packets forwarded by the kernel")?;
        }
        if let Some(file) = &self.recording {
            write!(f, "; recorded to {}", file.display())?;
        }
        Ok(())
    }
}

/// The relay: its worker threads and the calls it relays. See the crate docs.
pub struct Relay {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    calls: HashMap<u64, Vec<Arc<StreamRelay>>>,
    /// The recording writer, started with the first recorded call.
    recorder: Option<record::Recorder>,
    taps: HashMap<u64, Arc<record::Tap>>,
    /// The thread of `<Play>`, started with the first playback.
    player: Option<play::Player>,
    /// Kernel forwarding, if asked for and set up.
    kernel: Option<Mutex<(kernel::KernelPath, kernel::Offloads)>>,
}

impl Relay {
    /// Start `config.threads` workers for ports in the configured range.
    pub fn start(config: &RelayConfig) -> io::Result<Relay> {
        if config.first_port > config.last_port {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty media port range"));
        }
        let threads = config.threads.max(1);
        let mut polls = Vec::with_capacity(threads);
        for _ in 0..threads {
            polls.push(mio::Poll::new()?);
        }
        let mut registries = Vec::with_capacity(threads);
        let mut wakers = Vec::with_capacity(threads);
        for p in &polls {
            registries.push(p.registry().try_clone()?);
            wakers.push(mio::Waker::new(p.registry(), worker::WAKE)?);
        }
        let shared = Arc::new(Shared::new(config, registries, wakers));
        let mut workers = Vec::with_capacity(threads);
        for (i, poll) in polls.into_iter().enumerate() {
            let shared = shared.clone();
            let handle =
                std::thread::Builder::new().name(format!("rtp-relay-{i}")).spawn(move || worker::run(poll, &shared))?;
            workers.push(handle);
        }
        let kernel = if config.kernel_forwarding {
            match kernel::KernelPath::attach(config.bind, shared.epoch) {
                Ok(k) => Some(Mutex::new((k, kernel::Offloads::default()))),
                Err(why) => {
                    tracing::warn!("kernel forwarding is off: {why}; the relay forwards in user space");
                    None
                }
            }
        } else {
            None
        };
        Ok(Relay { shared, workers, calls: HashMap::new(), recorder: None, taps: HashMap::new(), player: None, kernel })
    }

    /// Whether kernel forwarding is on, and how many flows it forwards now.
    pub fn kernel_flows(&self) -> Option<usize> {
        self.kernel.as_ref().map(|k| k.lock().unwrap_or_else(|e| e.into_inner()).1.flows())
    }

    /// Hand the kernel the flows of `streams` it may forward now; `gone`
    /// ones it forwards no more (their counts added to theirs).
    fn offload(&self, streams: &[Arc<StreamRelay>], gone: &[Arc<StreamRelay>]) {
        let Some(k) = &self.kernel else { return };
        let mut guard = k.lock().unwrap_or_else(|e| e.into_inner());
        let (path, offloads) = &mut *guard;
        for s in gone {
            offloads.sync(path, s, &[]);
        }
        for s in streams {
            offloads.sync(path, s, &s.kernel_flows());
        }
    }

    /// The port pairs of the relay's range, bound before they are handed
    /// out, resting `rest` after release.
    pub fn ports(&self, rest: std::time::Duration) -> Result<BoundPorts, trunkline_media_core::ports::RangeError> {
        BoundPorts::new(self.shared.clone(), rest)
    }

    /// Relay call `call`'s `streams` as they now are (after an offer or an
    /// answer): new streams start, streams gone stop, and the others go on
    /// with their (maybe new) destinations and counters.
    /// `symmetric`: learn each party's source from its packets (symmetric
    /// RTP) instead of accepting only the described addresses.
    /// `recording`: record the call's first audio stream so.
    pub fn apply(&mut self, call: u64, streams: &[Stream], symmetric: bool, recording: Option<&record::Recording>) {
        let old = self.calls.remove(&call).unwrap_or_default();
        let mut now = Vec::with_capacity(streams.len());
        for s in streams {
            let ([Some(a), Some(b)], remote) = (s.local, s.remote) else { continue };
            match old.iter().find(|o| o.local == [a, b]) {
                Some(o) => {
                    o.set(remote, &s.srtp);
                    now.push(o.clone());
                }
                None => {
                    let now_ms = self.shared.epoch.elapsed().as_millis() as u64;
                    let fresh = Arc::new(StreamRelay::new([a, b], symmetric, now_ms));
                    fresh.set(remote, &s.srtp);
                    self.shared.route(&fresh);
                    now.push(fresh);
                }
            }
        }
        let gone: Vec<_> = old.iter().filter(|o| !now.iter().any(|n| Arc::ptr_eq(n, o))).cloned().collect();
        for o in &gone {
            self.shared.unroute(o);
        }
        if let Some(r) = recording {
            let audio =
                streams.iter().filter(|s| s.local[0].is_some() && s.local[1].is_some()).position(|s| s.kind == "audio");
            if let (Some(i), Some(tap)) = (audio, self.tap(call, r)) {
                now[i].set_tap(Some(tap));
            }
        }
        self.offload(&now, &gone);
        if !now.is_empty() {
            self.calls.insert(call, now);
        }
    }

    /// The recording tap of `call` (made, and the writer started, once).
    fn tap(&mut self, call: u64, r: &record::Recording) -> Option<Arc<record::Tap>> {
        if let Some(t) = self.taps.get(&call) {
            return Some(t.clone());
        }
        if self.recorder.is_none() {
            match record::Recorder::start() {
                Ok(rec) => self.recorder = Some(rec),
                Err(e) => {
                    tracing::error!("cannot start the recording writer: {e}");
                    return None;
                }
            }
        }
        let tap = self.recorder.as_ref()?.tap(call, r);
        self.taps.insert(call, tap.clone());
        Some(tap)
    }

    /// Play `clip` to the caller of `call` on the stream whose port facing
    /// the caller is `port`, `loops` times (`None`: until the call stops).
    /// False if the call has no such stream (or the playing thread could
    /// not start: logged).
    pub fn play(&mut self, call: u64, port: u16, clip: play::Clip, loops: Option<u32>) -> bool {
        let Some(stream) = self.calls.get(&call).and_then(|s| s.iter().find(|s| s.local[0] == port)).cloned() else {
            return false;
        };
        if self.player.is_none() {
            match play::Player::start(self.shared.clone()) {
                Ok(p) => self.player = Some(p),
                Err(e) => {
                    tracing::error!("cannot start the playing thread: {e}");
                    return false;
                }
            }
        }
        if let Some(p) = &self.player {
            p.play(call, stream, clip, loops);
        }
        true
    }

    /// Playbacks in progress.
    pub fn playing(&self) -> usize {
        self.player.as_ref().map_or(0, play::Player::playing)
    }

    /// Call `call` is over: stop relaying it; what its media did.
    pub fn stop(&mut self, call: u64) -> Option<CallMedia> {
        if let Some(p) = &self.player {
            p.stop(call);
        }
        let streams = self.calls.remove(&call)?;
        self.offload(&[], &streams);
        for s in &streams {
            self.shared.unroute(s);
            s.set_tap(None);
        }
        let recording = self.taps.remove(&call).and_then(|t| t.file.get().cloned());
        if let Some(rec) = &self.recorder {
            rec.stop(call);
        }
        Some(CallMedia { streams: streams.iter().map(|s| s.counters()).collect(), recording })
    }

    /// Calls none of whose streams relayed a packet for `idle` (or since
    /// they started): for the RTP inactivity timeout.
    pub fn idle_calls(&self, idle: std::time::Duration) -> Vec<u64> {
        if let Some(k) = &self.kernel {
            let mut guard = k.lock().unwrap_or_else(|e| e.into_inner());
            let (path, offloads) = &mut *guard;
            for s in self.calls.values().flatten() {
                offloads.refresh(path, s);
            }
        }
        let now_ms = self.shared.epoch.elapsed().as_millis() as u64;
        let idle_ms = idle.as_millis() as u64;
        self.calls
            .iter()
            .filter(|(_, streams)| {
                streams.iter().map(|s| s.last_ms()).max().is_some_and(|last| now_ms.saturating_sub(last) >= idle_ms)
            })
            .map(|(call, _)| *call)
            .collect()
    }

    /// Calls being relayed.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Ports that currently route to a call (each stream holds four).
    pub fn routed_ports(&self) -> usize {
        self.shared.routed()
    }

    /// Counters since the relay started.
    pub fn stats(&self) -> RelayStats {
        let c = &self.shared.counters;
        let (kernel_relayed, kernel_failed) =
            self.kernel.as_ref().map_or((0, 0), |k| k.lock().unwrap_or_else(|e| e.into_inner()).0.outcomes());
        RelayStats {
            relayed: c.relayed.load(Ordering::Relaxed) + kernel_relayed,
            kernel_relayed,
            dropped_source: c.dropped_source.load(Ordering::Relaxed),
            dropped_unrouted: c.dropped_unrouted.load(Ordering::Relaxed),
            dropped_send: c.dropped_send.load(Ordering::Relaxed) + kernel_failed,
            dropped_auth: c.dropped_auth.load(Ordering::Relaxed),
            recording_dropped: self.recorder.as_ref().map_or(0, |r| r.dropped.load(Ordering::Relaxed)),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for w in &self.shared.wakers {
            let _ = w.wake();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests;

/// Raise this process's open-file limit to its hard limit (each port the
/// relay binds is a file descriptor; the usual soft limit of 1024 holds
/// ~250 anchored streams). Returns the limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit for the kernel to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: as above; raising the soft limit up to the hard one is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(raised.rlim_cur);
        }
    }
    Ok(lim.rlim_cur)
}
