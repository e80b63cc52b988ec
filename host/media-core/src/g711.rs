//! G.711 (ITU-T G.711) µ-law and A-law: the only codecs the router itself
//! reads (a recording's WAV) or writes (a `<Play>`ed file). Everything else
//! passes through the relay untouched.

/// One of the two G.711 companding laws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Law {
    /// µ-law: PCMU, RTP payload type 0.
    Ulaw,
    /// A-law: PCMA, RTP payload type 8.
    Alaw,
}

impl Law {
    /// The static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }

    /// The law of static payload type `pt`, if it is G.711.
    pub fn of_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Ulaw),
            8 => Some(Law::Alaw),
            _ => None,
        }
    }

    /// The encoding name in `a=rtpmap` (`PCMU`, `PCMA`).
    pub fn name(self) -> &'static str {
        match self {
            Law::Ulaw => "PCMU",
            Law::Alaw => "PCMA",
        }
    }

    /// The code of silence (linear 0).
    pub fn silence(self) -> u8 {
        self.encode(0)
    }

    /// A linear sample as this law's code.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Ulaw => encode_ulaw(sample),
            Law::Alaw => encode_alaw(sample),
        }
    }

    /// This law's code as a linear sample.
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Ulaw => decode_ulaw(code),
            Law::Alaw => decode_alaw(code),
        }
    }
}

/// µ-law to linear.
pub fn decode_ulaw(b: u8) -> i16 {
    let b = !b;
    let t = ((i32::from(b & 0x0f) << 3) + 0x84) << ((b & 0x70) >> 4);
    (if b & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// A-law to linear.
pub fn decode_alaw(b: u8) -> i16 {
    let b = b ^ 0x55;
    let seg = (b & 0x70) >> 4;
    let mut t = i32::from(b & 0x0f) << 4;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    (if b & 0x80 != 0 { t } else { -t }) as i16
}

/// Linear to µ-law (bias 0x84, clipped at 32635).
pub fn encode_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    let magnitude = s.unsigned_abs().min(CLIP as u32) as i32 + BIAS;
    // The segment: position of the highest set bit above bit 7.
    let exponent = (31 - (magnitude as u32).leading_zeros()).saturating_sub(7).min(7) as i32;
    let mantissa = (magnitude >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// Linear to A-law.
pub fn encode_alaw(sample: i16) -> u8 {
    let s = i32::from(sample) >> 3; // A-law works on 13 bits
    let (sign, magnitude) = if s >= 0 { (0x80u8, s) } else { (0, -s - 1) };
    let magnitude = magnitude.min(0x0fff);
    let code = if magnitude < 32 {
        (magnitude >> 1) as u8
    } else {
        let exponent = (31 - (magnitude as u32).leading_zeros()) as i32 - 4; // 1..=7
        let mantissa = (magnitude >> exponent) & 0x0f;
        ((exponent << 4) as u8) | mantissa as u8
    };
    (sign | code) ^ 0x55
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code decodes to a sample that encodes back to the same code
    /// (the laws' codes are their own fixed points), except µ-law's
    /// negative zero (0x7f), which is positive zero's (0xff) twin.
    #[test]
    fn every_code_survives_a_round_trip() {
        for law in [Law::Ulaw, Law::Alaw] {
            for code in 0..=255u8 {
                let back = law.encode(law.decode(code));
                if law == Law::Ulaw && code == 0x7f {
                    assert_eq!(back, 0xff);
                } else {
                    assert_eq!(back, code, "{law:?} {code:#04x} -> {} -> {back:#04x}", law.decode(code));
                }
            }
        }
    }

    /// Published values: silence, full scale, and the sign convention.
    #[test]
    fn known_codes() {
        assert_eq!(encode_ulaw(0), 0xff);
        assert_eq!(encode_alaw(0), 0xd5);
        assert_eq!(Law::Ulaw.silence(), 0xff);
        assert_eq!(Law::Alaw.silence(), 0xd5);
        assert_eq!(encode_ulaw(i16::MAX), 0x80);
        assert_eq!(encode_ulaw(i16::MIN), 0x00);
        assert_eq!(encode_alaw(i16::MAX), 0xaa);
        assert_eq!(encode_alaw(i16::MIN), 0x2a);
        assert_eq!(decode_ulaw(0x80), 32124);
        assert_eq!(decode_alaw(0xaa), 32256);
    }

    /// Quantisation error stays within half a step of each segment.
    #[test]
    fn encoding_is_close() {
        for law in [Law::Ulaw, Law::Alaw] {
            for s in (-32000i32..32000).step_by(7) {
                let back = i32::from(law.decode(law.encode(s as i16)));
                let err = (back - s).abs();
                assert!(err <= s.abs() / 16 + 16, "{law:?} {s} -> {back}");
            }
        }
    }
}
