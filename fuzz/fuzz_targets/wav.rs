//! Any bytes as a WAV file a DR `<Play>` fetched from the customer's web
//! server: the reader answers or refuses, never panics, and what it reads
//! codes to one G.711 byte per sample in either law.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline_media_core::g711::Law;
use trunkline_media_core::wav::Wav;

fuzz_target!(|data: &[u8]| {
    if let Ok(wav) = Wav::read(data) {
        for law in [Law::Ulaw, Law::Alaw] {
            assert_eq!(wav.encode(law).len(), wav.samples());
        }
    }
});
