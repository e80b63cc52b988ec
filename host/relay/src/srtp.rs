//! SRTP and SRTCP for one party (RFC 3711), through `rtc-srtp`, the sans-IO
//! crate of the webrtc-rs project (chosen over `webrtc-srtp`, its async
//! sibling, which pulls in tokio's runtime for a `Context` that does no
//! I/O). Two contexts per party: one decrypts what it sends (its key), one
//! encrypts what it is sent (the router's key for it). Replay protection is
//! on for both SRTP and SRTCP (a 64-packet window, RFC 3711 §3.3.2).
//!
//! How the crate estimates the rollover counter (read before trusting it):
//! per SSRC, from the highest sequence number authenticated so far, a
//! packet more than 32768 behind or ahead is taken to belong to the
//! previous or next rollover (`wrapping_sub`/`wrapping_add`: no overflow on
//! a forged packet); the estimate is committed only after authentication,
//! so a forged packet cannot move it. The fuzz target `srtp` feeds the
//! receive path arbitrary bytes; it found that the crate accepts SRTCP
//! with a clear E flag unauthenticated (see [`SrtpParty::unprotect`]).

use bytes::BytesMut;
use rtc_srtp::context::Context;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;
use trunkline_media_core::crypto::{MasterKey, Srtp, Suite};

/// Whether an SRTCP packet says its payload is encrypted (RFC 3711 §3.4:
/// the E flag, the top bit of the word before the 80-bit tag).
///
/// Checked before the crate sees the packet: rtc-srtp 0.20 returns an
/// SRTCP packet whose E flag is clear as it is, **without verifying its
/// authentication tag** (found by the `srtp` fuzz target), so a forged
/// packet with E = 0 would pass. The router never agrees unencrypted SRTCP
/// (RFC 4568's `UNENCRYPTED_SRTCP` is refused), so such a packet is
/// refused here.
fn srtcp_encrypted(packet: &[u8]) -> bool {
    const TAIL: usize = 4 + 10; // E flag and index, then the tag
    packet.len() >= 8 + TAIL && packet[packet.len() - TAIL] & 0x80 != 0
}

/// Whether the RTP header rtc-srtp reads from `packet` is no longer than
/// the packet. The crate encrypts from the header's *re-marshalled* size,
/// which a header extension can make longer than the bytes received:
/// rtc-srtp 0.20.5 then slices past the end and panics (found by the
/// `srtp` fuzz target; a party sending plain RTP could kill a relay worker
/// if the other party speaks SRTP). Such packets are refused here.
fn header_fits(packet: &[u8]) -> bool {
    use rtc_shared::marshal::{MarshalSize, Unmarshal};
    let mut buf = packet;
    rtc_rtp::Header::unmarshal(&mut buf).is_ok_and(|h| h.marshal_size() <= packet.len())
}

/// Packets remembered against replays.
const REPLAY_WINDOW: usize = 64;

/// One party's SRTP. See the module docs.
pub struct SrtpParty {
    /// What was agreed (a change of keys makes new contexts).
    pub(crate) agreed: Srtp,
    decrypt: Context,
    encrypt: Context,
}

fn profile(suite: Suite) -> ProtectionProfile {
    match suite {
        Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
    }
}

fn context(key: &MasterKey, suite: Suite) -> Result<Context, String> {
    Context::new(
        key.key(),
        key.salt(),
        profile(suite),
        Some(srtp_replay_protection(REPLAY_WINDOW)),
        Some(srtcp_replay_protection(REPLAY_WINDOW)),
    )
    .map_err(|e| e.to_string())
}

impl SrtpParty {
    /// Contexts for what was agreed with a party.
    pub fn new(agreed: &Srtp) -> Result<SrtpParty, String> {
        Ok(SrtpParty {
            decrypt: context(&agreed.theirs, agreed.suite)?,
            encrypt: context(&agreed.ours, agreed.suite)?,
            agreed: agreed.clone(),
        })
    }

    /// What the party sent, authenticated and decrypted; `Err`: forged,
    /// replayed, or not SRTP (dropped and counted by the caller).
    pub fn unprotect(&mut self, packet: &[u8], rtcp: bool) -> Result<BytesMut, String> {
        if rtcp && !srtcp_encrypted(packet) {
            return Err("SRTCP without its E flag (unencrypted SRTCP is not agreed)".into());
        }
        let r = if rtcp { self.decrypt.decrypt_rtcp(packet) } else { self.decrypt.decrypt_rtp(packet) };
        r.map_err(|e| e.to_string())
    }

    /// A plain packet for the party, encrypted.
    pub fn protect(&mut self, packet: &[u8], rtcp: bool) -> Result<BytesMut, String> {
        if !rtcp && !header_fits(packet) {
            return Err("RTP header longer than the packet".into());
        }
        let r = if rtcp { self.encrypt.encrypt_rtcp(packet) } else { self.encrypt.encrypt_rtp(packet) };
        r.map_err(|e| e.to_string())
    }
}
