//! Call recording, off the hot path: a worker hands each recorded packet
//! (its plain RTP: decrypted if the party speaks SRTP) to one writer
//! thread through a bounded queue; when the queue is full (a slow disk)
//! the packet is not recorded and is counted, and the relay goes on.
//!
//! - G.711 (PCMU, PCMA) becomes a WAV file, 8 kHz 16-bit: `dual`, the
//!   caller on the left channel and the callee on the right; `single`, the
//!   two mixed. Each side's samples are placed by their RTP timestamps from
//!   that side's first packet (late and repeated audio is not written twice,
//!   gaps are silence), the side that started later offset by when it did.
//! - Any other codec: a pcap file of the RTP as relayed (both directions,
//!   with made-up IPv4/UDP headers naming the parties), for tools like
//!   Wireshark to play.
//!
//! DTMF (RFC 4733 telephone-event) and comfort noise are not audio
//! samples: left out of WAV files (kept in pcap files).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};

use trunkline_media_core::g711::{decode_alaw, decode_ulaw};

/// Packets waiting for the writer, across all calls (~10 s of 100 calls).
const QUEUE: usize = 100_000;

/// How a call is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordMode {
    /// One channel: both parties mixed.
    Single,
    /// Two channels: the caller left, the callee right.
    Dual,
}

/// Record a call: how, and where (without extension: `.wav` or `.pcap` is
/// added when the first packet tells the codec).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    /// Single (mixed) or dual (a channel per party).
    pub mode: RecordMode,
    /// The file, without its extension.
    pub path: PathBuf,
}

enum Event {
    Start { call: u64, mode: RecordMode, path: PathBuf, file: Arc<OnceLock<PathBuf>> },
    Packet { call: u64, side: usize, at_ms: u64, packet: Vec<u8>, from: SocketAddr, to: SocketAddr },
    Stop { call: u64 },
}

/// The writer thread and its queue.
pub(crate) struct Recorder {
    tx: SyncSender<Event>,
    pub(crate) dropped: Arc<AtomicU64>,
}

impl Recorder {
    pub(crate) fn start() -> std::io::Result<Recorder> {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new().name("recorder".into()).spawn(move || write_all(rx))?;
        Ok(Recorder { tx, dropped: Arc::new(AtomicU64::new(0)) })
    }

    /// Start recording `call`; the tap its stream's packets go through.
    pub(crate) fn tap(&self, call: u64, r: &Recording) -> Arc<Tap> {
        let file = Arc::new(OnceLock::new());
        let _ = self.tx.send(Event::Start { call, mode: r.mode, path: r.path.clone(), file: file.clone() });
        Arc::new(Tap { call, tx: self.tx.clone(), dropped: self.dropped.clone(), base: r.path.clone(), file })
    }

    /// Call `call` is over: its file is finished off the hot path.
    pub(crate) fn stop(&self, call: u64) {
        let _ = self.tx.send(Event::Stop { call });
    }
}

/// Where one call's packets are recorded from.
pub(crate) struct Tap {
    call: u64,
    tx: SyncSender<Event>,
    dropped: Arc<AtomicU64>,
    base: PathBuf,
    /// The file written, chosen by the first audio packet (here, on the
    /// relay's side, so that the call's report can name it as soon as the
    /// call ends; the writer follows the same choice).
    pub(crate) file: Arc<OnceLock<PathBuf>>,
}

impl Tap {
    /// A plain RTP packet from `side` (0 caller, 1 callee): queued, or
    /// dropped and counted if the writer is behind.
    pub(crate) fn offer(&self, side: usize, at_ms: u64, packet: &[u8], from: SocketAddr, to: SocketAddr) {
        if self.file.get().is_none() {
            match rtp_payload(packet).and_then(|(pt, _, payload)| file_kind(pt, payload.len())) {
                Some(ext) => {
                    let _ = self.file.set(self.base.with_extension(ext));
                }
                None => return, // DTMF or comfort noise before any audio
            }
        }
        let ev = Event::Packet { call: self.call, side, at_ms, packet: packet.to_vec(), from, to };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(ev) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A recorded packet's RTP fields: (payload type, timestamp, payload).
fn rtp_payload(p: &[u8]) -> Option<(u8, u32, &[u8])> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let mut at = 12 + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let ext = p.get(at + 2..at + 4)?;
        at += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = p.len();
    if p[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*p.last()?))?;
    }
    let payload = p.get(at..end)?;
    Some((p[1] & 0x7f, u32::from_be_bytes([p[4], p[5], p[6], p[7]]), payload))
}

/// What the first audio packet makes of a recording: `wav` for G.711,
/// `pcap` for another codec; `None` for DTMF and comfort noise (not audio:
/// wait for the next packet).
fn file_kind(pt: u8, payload_len: usize) -> Option<&'static str> {
    match pt {
        0 | 8 => Some("wav"),
        13 | 101 => None,
        96..=127 if payload_len <= 4 => None, // a telephone-event under another number
        _ => Some("pcap"),
    }
}

/// A gap longer than this (a timestamp jump) starts the side over.
const MAX_GAP_SAMPLES: u64 = 8000 * 60;

/// One side of a WAV recording: its samples so far, in a temporary file.
struct Channel {
    out: BufWriter<File>,
    tmp: PathBuf,
    /// Its first packet: RTP timestamp, and where it sits in the recording.
    first: Option<(u32, u64)>,
    written: u64,
}

impl Channel {
    fn new(tmp: PathBuf) -> std::io::Result<Channel> {
        Ok(Channel { out: BufWriter::new(File::create(&tmp)?), tmp, first: None, written: 0 })
    }

    fn write(&mut self, ts: u32, offset: u64, samples: impl ExactSizeIterator<Item = i16>) -> std::io::Result<()> {
        let (first_ts, base) = *self.first.get_or_insert((ts, offset));
        let mut pos = base + u64::from(ts.wrapping_sub(first_ts));
        if pos > self.written + MAX_GAP_SAMPLES {
            self.first = Some((ts, self.written));
            pos = self.written;
        }
        let n = samples.len() as u64;
        if pos + n <= self.written {
            return Ok(()); // late or repeated
        }
        for _ in self.written..pos {
            self.out.write_all(&0i16.to_le_bytes())?;
        }
        let skip = self.written.saturating_sub(pos) as usize;
        for s in samples.skip(skip) {
            self.out.write_all(&s.to_le_bytes())?;
        }
        self.written = pos.max(self.written) + n - skip as u64;
        Ok(())
    }
}

enum Writer {
    /// Not yet known (no audio packet yet).
    Pending,
    Wav {
        channels: [Channel; 2],
        start_ms: u64,
    },
    Pcap(BufWriter<File>),
    Failed,
}

struct CallRec {
    mode: RecordMode,
    path: PathBuf,
    file: Arc<OnceLock<PathBuf>>,
    writer: Writer,
}

fn write_all(rx: Receiver<Event>) {
    let mut calls: HashMap<u64, CallRec> = HashMap::new();
    while let Ok(ev) = rx.recv() {
        match ev {
            Event::Start { call, mode, path, file } => {
                calls.insert(call, CallRec { mode, path, file, writer: Writer::Pending });
            }
            Event::Packet { call, side, at_ms, packet, from, to } => {
                if let Some(c) = calls.get_mut(&call) {
                    if let Err(e) = c.packet(side, at_ms, &packet, from, to) {
                        tracing::warn!("recording {}: {e}: the rest of this call is not recorded", c.path.display());
                        c.writer = Writer::Failed;
                    }
                }
            }
            Event::Stop { call } => {
                if let Some(c) = calls.remove(&call) {
                    let path = c.path.clone();
                    if let Err(e) = c.finish() {
                        tracing::warn!("recording {}: {e}", path.display());
                    }
                }
            }
        }
    }
}

impl CallRec {
    fn packet(
        &mut self,
        side: usize,
        at_ms: u64,
        packet: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> std::io::Result<()> {
        let Some((pt, ts, payload)) = rtp_payload(packet) else { return Ok(()) };
        if let Writer::Pending = self.writer {
            // The tap chose the kind before it queued the packet.
            let Some(file) = self.file.get().cloned() else { return Ok(()) };
            self.writer = if file.extension().is_some_and(|e| e == "wav") {
                let tmp = |n| self.path.with_extension(format!("side{n}.raw"));
                let channels = [Channel::new(tmp(0))?, Channel::new(tmp(1))?];
                Writer::Wav { channels, start_ms: at_ms }
            } else {
                let mut out = BufWriter::new(File::create(&file)?);
                // pcap global header: magic, v2.4, UTC, accuracy, snaplen, raw IP.
                out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
                out.write_all(&[2, 0, 4, 0])?;
                out.write_all(&[0; 8])?;
                out.write_all(&65_535u32.to_le_bytes())?;
                out.write_all(&101u32.to_le_bytes())?; // LINKTYPE_RAW
                Writer::Pcap(out)
            };
        }
        match &mut self.writer {
            Writer::Wav { channels, start_ms } => {
                let decode: fn(u8) -> i16 = match pt {
                    0 => decode_ulaw,
                    8 => decode_alaw,
                    _ => return Ok(()), // DTMF, comfort noise
                };
                let offset = at_ms.saturating_sub(*start_ms) * 8;
                channels[side].write(ts, offset, payload.iter().map(|b| decode(*b)))
            }
            Writer::Pcap(out) => write_pcap_record(out, at_ms, packet, from, to),
            Writer::Pending | Writer::Failed => Ok(()),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        let Writer::Wav { channels, .. } = self.writer else {
            if let Writer::Pcap(mut out) = self.writer {
                out.flush()?;
            }
            return Ok(());
        };
        let mut readers = Vec::new();
        let mut lengths = Vec::new();
        for mut c in channels {
            c.out.flush()?;
            lengths.push(c.written);
            readers.push((BufReader::new(File::open(&c.tmp)?), c.tmp));
        }
        let n = lengths.iter().copied().max().unwrap_or(0);
        let spec = hound::WavSpec {
            channels: if self.mode == RecordMode::Dual { 2 } else { 1 },
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let file = self.path.with_extension("wav");
        let mut wav = hound::WavWriter::create(&file, spec).map_err(std::io::Error::other)?;
        let next = |r: &mut BufReader<File>, has: bool| -> i16 {
            let mut b = [0u8; 2];
            if has && r.read_exact(&mut b).is_ok() {
                i16::from_le_bytes(b)
            } else {
                0
            }
        };
        for i in 0..n {
            let a = next(&mut readers[0].0, i < lengths[0]);
            let b = next(&mut readers[1].0, i < lengths[1]);
            match self.mode {
                RecordMode::Dual => {
                    wav.write_sample(a).map_err(std::io::Error::other)?;
                    wav.write_sample(b).map_err(std::io::Error::other)?;
                }
                RecordMode::Single => wav.write_sample(a.saturating_add(b)).map_err(std::io::Error::other)?,
            }
        }
        wav.finalize().map_err(std::io::Error::other)?;
        for (_, tmp) in readers {
            let _ = std::fs::remove_file(tmp);
        }
        Ok(())
    }
}

/// One pcap record: the RTP packet in made-up IPv4/UDP headers.
fn write_pcap_record(
    out: &mut impl Write,
    at_ms: u64,
    packet: &[u8],
    from: SocketAddr,
    to: SocketAddr,
) -> std::io::Result<()> {
    let ip = |a: SocketAddr| match a.ip() {
        std::net::IpAddr::V4(v4) => v4.octets(),
        std::net::IpAddr::V6(_) => [0, 0, 0, 0], // IPv6 parties: addresses left out
    };
    let total = 20 + 8 + packet.len();
    let Ok(total16) = u16::try_from(total) else { return Ok(()) };
    out.write_all(&((at_ms / 1000) as u32).to_le_bytes())?;
    out.write_all(&(((at_ms % 1000) * 1000) as u32).to_le_bytes())?;
    out.write_all(&(total as u32).to_le_bytes())?;
    out.write_all(&(total as u32).to_le_bytes())?;
    let mut h = [0u8; 28];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&total16.to_be_bytes());
    h[8] = 64;
    h[9] = 17;
    h[12..16].copy_from_slice(&ip(from));
    h[16..20].copy_from_slice(&ip(to));
    h[20..22].copy_from_slice(&from.port().to_be_bytes());
    h[22..24].copy_from_slice(&to.port().to_be_bytes());
    h[24..26].copy_from_slice(&((8 + packet.len()) as u16).to_be_bytes());
    out.write_all(&h)?;
    out.write_all(packet)
}

/// Whether a directory can take recordings (made if missing).
pub fn prepare_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}
