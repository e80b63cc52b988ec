//! Audio the router sends itself: a disaster-recovery `<Play>` streams a
//! file to a caller the router answered. One thread paces every playback
//! at 20 ms packets (160 G.711 samples) on an absolute schedule, and sends
//! each packet out of the stream's port facing the caller, to where the
//! caller wants media (its latched source with symmetric RTP), encrypted
//! if the caller speaks SRTP: the same path relayed packets take.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::table::{Shared, StreamRelay};

/// Samples per packet (20 ms at 8 kHz).
pub const FRAME: usize = 160;
/// Time one packet carries.
pub const PTIME: Duration = Duration::from_millis(20);

/// Audio to play: G.711 codes, and the payload type they go out under.
#[derive(Clone, PartialEq, Eq)]
pub struct Clip {
    /// The RTP payload type agreed with the caller.
    pub payload_type: u8,
    /// The law's silence code (pads the last packet).
    pub silence: u8,
    /// The samples, coded.
    pub codes: Arc<[u8]>,
}

impl std::fmt::Debug for Clip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clip {{ payload_type: {}, samples: {} }}", self.payload_type, self.codes.len())
    }
}

impl Clip {
    /// How long one pass of the clip lasts (whole packets).
    pub fn duration(&self) -> Duration {
        PTIME * self.codes.len().div_ceil(FRAME) as u32
    }
}

/// One playback in progress.
struct Playing {
    call: u64,
    stream: Arc<StreamRelay>,
    clip: Clip,
    /// Passes left after this one; `None`: until the call stops it.
    loops_left: Option<u32>,
    at: usize,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    first: bool,
}

impl Playing {
    /// The next packet, or `None` when the playback is over.
    fn next_packet(&mut self, out: &mut Vec<u8>) -> bool {
        if self.at >= self.clip.codes.len() {
            match &mut self.loops_left {
                Some(0) => return false,
                Some(n) => *n -= 1,
                None => {}
            }
            self.at = 0;
            if self.clip.codes.is_empty() {
                return false;
            }
        }
        let end = (self.at + FRAME).min(self.clip.codes.len());
        out.clear();
        out.push(0x80);
        out.push(self.clip.payload_type & 0x7f | if self.first { 0x80 } else { 0 });
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&self.clip.codes[self.at..end]);
        out.resize(12 + FRAME, self.clip.silence);
        self.at = end;
        self.first = false;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        true
    }
}

/// The playing thread and what it plays.
pub(crate) struct Player {
    playing: Arc<Mutex<Vec<Playing>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Player {
    pub(crate) fn start(shared: Arc<Shared>) -> std::io::Result<Player> {
        let playing = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (list, halt) = (playing.clone(), stop.clone());
        let thread = std::thread::Builder::new().name("rtp-player".into()).spawn(move || run(&shared, &list, &halt))?;
        Ok(Player { playing, stop, thread: Some(thread) })
    }

    /// Play `clip` on `stream` of `call`, `loops` times (`None`: until stopped).
    pub(crate) fn play(&self, call: u64, stream: Arc<StreamRelay>, clip: Clip, loops: Option<u32>) {
        let random = RandomState::new().hash_one(call);
        let p = Playing {
            call,
            stream,
            clip,
            loops_left: loops.map(|n| n.saturating_sub(1)),
            at: 0,
            seq: random as u16,
            timestamp: (random >> 16) as u32,
            ssrc: (random >> 32) as u32,
            first: true,
        };
        let mut list = self.playing.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|q| !(q.call == call && Arc::ptr_eq(&q.stream, &p.stream)));
        list.push(p);
        drop(list);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }

    /// Stop what `call` plays.
    pub(crate) fn stop(&self, call: u64) {
        self.playing.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| p.call != call);
    }

    /// Playbacks in progress.
    pub(crate) fn playing(&self) -> usize {
        self.playing.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Every 20 ms, one packet of each playback.
fn run(shared: &Shared, playing: &Mutex<Vec<Playing>>, stop: &AtomicBool) {
    let mut packet = Vec::with_capacity(12 + FRAME);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let idle = playing.lock().unwrap_or_else(|e| e.into_inner()).is_empty();
        if idle {
            std::thread::park_timeout(Duration::from_secs(1));
            next = Instant::now();
            continue;
        }
        let now_ms = shared.epoch.elapsed().as_millis() as u64;
        let mut list = playing.lock().unwrap_or_else(|e| e.into_inner());
        list.retain_mut(|p| {
            if !p.next_packet(&mut packet) {
                return false;
            }
            if let Some((port, to, bytes)) = p.stream.inject(&packet, now_ms) {
                let sent = shared
                    .slot(port)
                    .and_then(|s| s.socket.get())
                    .map(|s| s.send_to(bytes.as_deref().unwrap_or(&packet), to));
                if !matches!(sent, Some(Ok(_))) {
                    shared.counters.dropped_send.fetch_add(1, Ordering::Relaxed);
                }
            }
            true
        });
        drop(list);
        next += PTIME;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > 5 * PTIME {
            next = now; // fell behind (a stalled machine): do not burst to catch up
        }
    }
}
