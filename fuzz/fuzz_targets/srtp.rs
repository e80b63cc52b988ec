//! The SRTP/SRTCP receive path with any bytes (the relay's decryption of
//! what a party sends, through rtc-srtp), and the header checks and
//! latching rules fed the same bytes: nothing may panic, and a forged
//! packet is refused (it cannot carry a valid tag for the fixed key).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline_media_core::crypto::{MasterKey, Srtp, Suite};
use trunkline_media_core::latch::Latch;
use trunkline_media_core::rtp;
use trunkline_relay::srtp::SrtpParty;

fuzz_target!(|data: &[u8]| {
    for suite in Suite::ALL {
        let agreed = Srtp { suite, theirs: MasterKey([0x11; 30]), ours: MasterKey([0x22; 30]) };
        let mut party = SrtpParty::new(&agreed).expect("valid keys");
        // The fuzzer cannot forge an HMAC-SHA1 tag under this key.
        assert!(party.unprotect(data, false).is_err(), "a forged SRTP packet is refused");
        assert!(party.unprotect(data, true).is_err(), "a forged SRTCP packet is refused");
        // What the router sends: any plain bytes, encrypted or refused.
        let _ = party.protect(data, false);
        let _ = party.protect(data, true);
    }
    let kind = rtp::kind(data);
    let mut latch = Latch::new(true, None);
    let from = "192.0.2.9:4000".parse().unwrap();
    let ssrc = match kind {
        rtp::Kind::Rtp { ssrc, .. } => ssrc,
        _ => 0,
    };
    let _ = latch.check(from, kind != rtp::Kind::Other, ssrc, u64::from(data.first().copied().unwrap_or(0)));
});
