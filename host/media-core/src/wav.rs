//! Reading the WAV files a DR `<Play>` streams: RIFF/WAVE, 8 kHz mono,
//! G.711 µ-law or A-law (8 bits) or linear PCM (16 bits, little-endian),
//! as the reference platform accepts for telephony audio. Anything else
//! is refused with the reason, never guessed at.
//!
//! The bytes come from the customer's web server: the reader checks every
//! length against what is there and never panics (the `wav` fuzz target).

use crate::g711::Law;

/// Sample rate a played file must have (telephone audio).
pub const RATE: u32 = 8000;

/// How a file's samples are coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Linear PCM, 16 bits, little-endian.
    Pcm16,
    /// G.711, 8 bits.
    G711(Law),
}

/// A readable WAV file's audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wav {
    /// How `data` is coded.
    pub encoding: Encoding,
    /// The `data` chunk (whole samples only).
    pub data: Vec<u8>,
}

/// Why a file cannot be played.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// Not a RIFF/WAVE file.
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    /// A chunk the reader needs is missing or cut short.
    #[error("WAV file without a complete `{0}` chunk")]
    Missing(&'static str),
    /// A format the router does not play.
    #[error("WAV format not playable: {0} (8000 Hz mono PCMU, PCMA or 16-bit PCM needed)")]
    Unsupported(String),
}

impl Wav {
    /// Read a WAV file.
    pub fn read(bytes: &[u8]) -> Result<Wav, WavError> {
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err(WavError::NotWav);
        }
        let mut format = None;
        let mut rest = &bytes[12..];
        while rest.len() >= 8 {
            let (id, size) = (&rest[0..4], u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize);
            let body = &rest[8..];
            match id {
                b"fmt " => {
                    let f = body.get(..size).ok_or(WavError::Missing("fmt "))?;
                    format = Some(read_format(f)?);
                }
                b"data" => {
                    let encoding = format.ok_or(WavError::Missing("fmt "))?;
                    // A streaming writer may leave the size unset (0 or all
                    // ones): take what is there.
                    let data = if size == 0 || size > body.len() { body } else { &body[..size] };
                    let width = if encoding == Encoding::Pcm16 { 2 } else { 1 };
                    let whole = data.len() - data.len() % width;
                    return Ok(Wav { encoding, data: data[..whole].to_vec() });
                }
                _ => {}
            }
            // Chunks are padded to an even length.
            let next = size.checked_add(8 + size % 2).filter(|n| *n <= rest.len());
            match next {
                Some(n) => rest = &rest[n..],
                None => break,
            }
        }
        Err(WavError::Missing(if format.is_some() { "data" } else { "fmt " }))
    }

    /// Samples in the file.
    pub fn samples(&self) -> usize {
        match self.encoding {
            Encoding::Pcm16 => self.data.len() / 2,
            Encoding::G711(_) => self.data.len(),
        }
    }

    /// The audio as `law`'s codes (transcoded if the file is in the other
    /// law or linear).
    pub fn encode(&self, law: Law) -> Vec<u8> {
        match self.encoding {
            Encoding::G711(l) if l == law => self.data.clone(),
            Encoding::G711(l) => self.data.iter().map(|&c| law.encode(l.decode(c))).collect(),
            Encoding::Pcm16 => {
                self.data.chunks_exact(2).map(|s| law.encode(i16::from_le_bytes([s[0], s[1]]))).collect()
            }
        }
    }
}

/// The `fmt ` chunk: the encoding, if it is one the router plays.
fn read_format(f: &[u8]) -> Result<Encoding, WavError> {
    if f.len() < 16 {
        return Err(WavError::Missing("fmt "));
    }
    let u16_at = |i: usize| u16::from_le_bytes([f[i], f[i + 1]]);
    let mut tag = u16_at(0);
    let (channels, rate, bits) = (u16_at(2), u32::from_le_bytes([f[4], f[5], f[6], f[7]]), u16_at(14));
    if tag == 0xfffe {
        // WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID.
        tag = match f.get(24..26) {
            Some(g) => u16::from_le_bytes([g[0], g[1]]),
            None => return Err(WavError::Missing("fmt ")),
        };
    }
    if channels != 1 {
        return Err(WavError::Unsupported(format!("{channels} channels")));
    }
    if rate != RATE {
        return Err(WavError::Unsupported(format!("{rate} Hz")));
    }
    match (tag, bits) {
        (1, 16) => Ok(Encoding::Pcm16),
        (7, 8) => Ok(Encoding::G711(Law::Ulaw)),
        (6, 8) => Ok(Encoding::G711(Law::Alaw)),
        (1, b) => Err(WavError::Unsupported(format!("{b}-bit PCM"))),
        (t, b) => Err(WavError::Unsupported(format!("format tag {t} with {b} bits"))),
    }
}

/// A WAV file of `data` coded as `encoding` (8 kHz mono): what tests and
/// examples play.
pub fn write(encoding: Encoding, data: &[u8]) -> Vec<u8> {
    let (tag, bits, width): (u16, u16, u32) = match encoding {
        Encoding::Pcm16 => (1, 16, 2),
        Encoding::G711(Law::Ulaw) => (7, 8, 1),
        Encoding::G711(Law::Alaw) => (6, 8, 1),
    };
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * width).to_le_bytes());
    out.extend_from_slice(&(width as u16).to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn reads_the_three_encodings_and_transcodes() {
        let samples = [0i16, 1000, -1000, 32000, -32000];
        let linear = Wav::read(&write(Encoding::Pcm16, &pcm(&samples))).unwrap();
        assert_eq!(linear.samples(), 5);
        let ulaw: Vec<u8> = samples.iter().map(|&s| Law::Ulaw.encode(s)).collect();
        assert_eq!(linear.encode(Law::Ulaw), ulaw);
        let from_ulaw = Wav::read(&write(Encoding::G711(Law::Ulaw), &ulaw)).unwrap();
        assert_eq!(from_ulaw.encoding, Encoding::G711(Law::Ulaw));
        assert_eq!(from_ulaw.encode(Law::Ulaw), ulaw, "same law: the bytes as they are");
        let alaw = from_ulaw.encode(Law::Alaw);
        assert_eq!(alaw[0], Law::Alaw.silence());
        assert_eq!(Wav::read(&write(Encoding::G711(Law::Alaw), &alaw)).unwrap().encode(Law::Alaw), alaw);
    }

    #[test]
    fn skips_other_chunks_and_tolerates_a_streaming_size() {
        let mut file = write(Encoding::G711(Law::Ulaw), &[1, 2, 3]);
        // A LIST chunk of odd length (padded) before fmt.
        file.splice(12..12, b"LIST\x03\x00\x00\x00abc\x00".iter().copied());
        assert_eq!(Wav::read(&file).unwrap().data, [1, 2, 3]);
        let n = file.len();
        file[n - 7..n - 3].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Wav::read(&file).unwrap().data, [1, 2, 3], "data size unset");
    }

    #[test]
    fn refuses_what_it_cannot_play_with_the_reason() {
        assert_eq!(Wav::read(b"RIFX....WAVE"), Err(WavError::NotWav));
        assert_eq!(Wav::read(b"short"), Err(WavError::NotWav));
        let mut stereo = write(Encoding::Pcm16, &pcm(&[0, 0]));
        stereo[22] = 2;
        assert_eq!(
            Wav::read(&stereo).unwrap_err().to_string(),
            "WAV format not playable: 2 channels (8000 Hz mono PCMU, PCMA or 16-bit PCM needed)"
        );
        let mut cd = write(Encoding::Pcm16, &pcm(&[0]));
        cd[24..28].copy_from_slice(&44100u32.to_le_bytes());
        assert_eq!(Wav::read(&cd), Err(WavError::Unsupported("44100 Hz".into())));
        let mut float = write(Encoding::Pcm16, &pcm(&[0]));
        float[20] = 3;
        assert!(matches!(Wav::read(&float), Err(WavError::Unsupported(_))));
        let no_data = &write(Encoding::Pcm16, &[])[..36];
        assert_eq!(Wav::read(no_data), Err(WavError::Missing("data")));
        let mut data_first = b"RIFF\x00\x00\x00\x00WAVEdata\x01\x00\x00\x00\x00\x00".to_vec();
        data_first.extend_from_slice(&write(Encoding::Pcm16, &[])[12..]);
        assert_eq!(Wav::read(&data_first), Err(WavError::Missing("fmt ")));
    }

    /// Every prefix of a valid file, and seeded corruptions of it, read
    /// without panicking.
    #[test]
    fn broken_files_do_not_panic() {
        let file = write(Encoding::Pcm16, &pcm(&[1, 2, 3, 4, 5, 6, 7]));
        for n in 0..=file.len() {
            let _ = Wav::read(&file[..n]);
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut f = file.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed % f.len() as u64) as usize;
                f[i] = (seed >> 32) as u8;
            }
            if let Ok(w) = Wav::read(&f) {
                let _ = w.encode(Law::Alaw);
            }
        }
    }
}
