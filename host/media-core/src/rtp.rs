//! The few header checks the relay makes on a packet it forwards (RFC 3550
//! §5.1, §6.4; RFC 5761 §4): enough to tell RTP from RTCP on a muxed port
//! and to refuse to learn a source from a packet that is neither. Nothing
//! is changed: the relay forwards the bytes as they came.

/// What a datagram looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Version 2 RTP.
    Rtp {
        /// Its payload type (marker bit cleared).
        payload_type: u8,
        /// Its synchronisation source.
        ssrc: u32,
    },
    /// Version 2 RTCP (packet types 192-223 on a muxed port, RFC 5761).
    Rtcp,
    /// Anything else (too short, another version, STUN...).
    Other,
}

/// Classify `packet`.
pub fn kind(packet: &[u8]) -> Kind {
    if packet.len() < 8 || packet[0] >> 6 != 2 {
        return Kind::Other;
    }
    if (192..=223).contains(&packet[1]) {
        return Kind::Rtcp;
    }
    if packet.len() < 12 {
        return Kind::Other;
    }
    let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
    Kind::Rtp { payload_type: packet[1] & 0x7f, ssrc }
}

/// The payload types a media description offers (`m=` formats that are
/// numbers 0-127), as a set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayloadTypes(u128);

impl PayloadTypes {
    /// The numeric formats among `formats`.
    pub fn of<'a>(formats: impl IntoIterator<Item = &'a str>) -> PayloadTypes {
        let bits = formats.into_iter().filter_map(|f| f.parse::<u8>().ok()).filter(|pt| *pt < 128);
        PayloadTypes(bits.fold(0, |acc, pt| acc | 1 << pt))
    }

    /// Whether `pt` is one of them.
    pub fn contains(self, pt: u8) -> bool {
        pt < 128 && self.0 & (1 << pt) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_rtcp_and_other_packets_are_told_apart() {
        let rtp = [0x80, 0x80, 0, 1, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef];
        assert_eq!(kind(&rtp), Kind::Rtp { payload_type: 0, ssrc: 0xdeadbeef }, "marker bit set, PT 0");
        assert_eq!(kind(&[0x81, 200, 0, 6, 0, 0, 0, 1]), Kind::Rtcp, "a sender report");
        assert_eq!(kind(&[0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42]), Kind::Other, "STUN (version 0)");
        assert_eq!(kind(&rtp[..11]), Kind::Other, "shorter than an RTP header");
        assert_eq!(kind(&[]), Kind::Other);
        let pts = PayloadTypes::of(["0", "8", "101", "t38", "300"]);
        assert!(pts.contains(0) && pts.contains(8) && pts.contains(101));
        assert!(!pts.contains(9) && !pts.contains(127) && !pts.contains(200));
    }
}
