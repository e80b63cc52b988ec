//! Test support: paths of the compiled plugins (built by `build.rs`) and
//! helpers to install them and to build calls the way the router does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use trunkline_plugin_host::types::{
    Call, CallRecord, Direction, Header, HeaderList, Party, Request, RequestRecord, Transport,
};
use trunkline_plugin_host::{Chain, ChainEntry, Limits, PluginConfig, Runtime, RuntimeOptions};

/// Compiled plugin paths, one constant per crate (`E164_GUARD`, `TP_LOOP`...).
pub mod wasm {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

/// Copy the compiled plugin at `wasm` into `dir` as `name.wasm`, atomically
/// (write then rename, as an operator's deploy should).
pub fn install(wasm: &str, dir: &Path, name: &str) -> PathBuf {
    let dest = dir.join(format!("{name}.wasm"));
    let tmp = dir.join(format!(".{name}.wasm.tmp"));
    std::fs::copy(wasm, &tmp).expect("copying plugin");
    std::fs::rename(&tmp, &dest).expect("renaming plugin");
    dest
}

/// Install the four first-party plugins into `dir` under their names.
pub fn install_first_party(dir: &Path) {
    for (w, n) in [
        (wasm::E164_GUARD, "e164-guard"),
        (wasm::DIVERSION_GUARD, "diversion-guard"),
        (wasm::CUSTOMER_ROUTING, "customer-routing"),
        (wasm::DR_TWIML_FALLBACK, "dr-twiml-fallback"),
    ] {
        install(w, dir, n);
    }
}

/// A runtime with default options and the given number directory.
pub fn runtime_with(opts: RuntimeOptions) -> Runtime {
    Runtime::new(opts).expect("building the plugin runtime")
}

/// The default limits with a 2 s CPU deadline, for tests that are not about
/// deadlines: these 2 shared cores, busy compiling plugins for parallel
/// tests, can stall a hook past the production 10 ms (epochs are wall-clock).
pub fn steady() -> Limits {
    Limits { hook_timeout_ms: 2_000, ..Limits::default() }
}

/// A chain entry for `plugin` with `config` (TOML text) and `limits`.
pub fn entry(plugin: &str, config: &str, limits: Limits) -> ChainEntry {
    ChainEntry {
        plugin: plugin.into(),
        config: Arc::new(PluginConfig(config.parse().expect("test config is TOML"))),
        limits,
    }
}

/// A chain of entries.
pub fn chain(entries: Vec<ChainEntry>) -> Chain {
    Chain { entries }
}

fn party(user: &str, host: &str) -> Party {
    Party { display: None, user: Some(user.into()), host: host.into() }
}

/// The offer of [`call`]'s INVITE: one audio stream, four codecs.
const SDP: &str = "v=0\r\no=carrier 1894201 1894201 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 0 8 18 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

/// A call with 15 realistic headers and an SDP offer, as the router builds
/// it from an INVITE.
pub fn call(direction: Direction, from: &str, to: &str) -> (Call, Request) {
    let domain = match direction {
        Direction::Origination => "trunkline.test",
        Direction::Termination => "acme-prod.trunkline.test",
    };
    let h = |n: &str, v: String| Header { name: n.into(), value: v };
    let headers = vec![
        h("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-524287-1---8ac2e5f1a9e2d1c0;rport".into()),
        h("Max-Forwards", "70".into()),
        h("From", format!("<sip:{from}@carrier.example>;tag=9fxced76sl")),
        h("To", format!("<sip:{to}@{domain}>")),
        h("Call-ID", "3848276298220188511@127.0.0.1".into()),
        h("CSeq", "1 INVITE".into()),
        h("Contact", "<sip:carrier@127.0.0.1:5070;transport=udp>".into()),
        h("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER".into()),
        h("Supported", "timer, replaces, 100rel".into()),
        h("User-Agent", "carrier-sbc/4.2".into()),
        h("P-Asserted-Identity", format!("<sip:{from}@carrier.example>")),
        h("Diversion", format!("<sip:{to}@carrier.example>;reason=unconditional")),
        h("Session-Expires", "1800;refresher=uac".into()),
        h("Content-Type", "application/sdp".into()),
        h("Content-Length", SDP.len().to_string()),
    ];
    let headers: HeaderList = headers.into();
    let record = CallRecord {
        call_id: "3848276298220188511@127.0.0.1".into(),
        direction,
        account_id: "AC0001".into(),
        trunk_id: "TK00000000000000000000000000000001".into(),
        trunk_name: "acme-prod".into(),
        from: party(from, "carrier.example"),
        to: party(to, domain),
        request_uri: party(to, domain),
        source_address: "127.0.0.1:5070".into(),
        transport: Transport::Udp,
        variables: vec![],
        media: trunkline_plugin_host::types::MediaFacts {
            anchored: true,
            secure: false,
            codecs: vec!["PCMU/8000".into(), "telephone-event/8000".into()],
            recording: false,
        },
    };
    let request = RequestRecord { method: "INVITE".into(), uri: format!("sip:{to}@{domain}"), body: SDP.into() };
    (Call::new(record, headers.clone()), Request::new(request, headers))
}
