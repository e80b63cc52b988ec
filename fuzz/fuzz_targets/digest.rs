//! Any text as a Proxy-Authorization value, and any nonce: the digest
//! parser and the nonce check must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline_sip_core::digest::{DigestResponse, NonceKey, ReplayGuard};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(d) = DigestResponse::parse(&text) {
        let _ = d.verify("password", "INVITE");
        let mut guard = ReplayGuard::new(4);
        let _ = guard.accept(&d.nonce, d.nc);
    }
    let key = NonceKey::new(b"fuzzing secret, 32 bytes long!!!");
    let _ = key.check(&text, "acme.trunkline.test", 1_000, 300);
});
