//! Secure trunking (`secure = true`): the PBX's leg is TLS with SRTP only,
//! in both directions, against baresip (its `srtp` module, SDES) as the
//! PBX; the other leg may stay plain RTP, the router bridging the two.

use super::baresip::Baresip;
use super::media::relayed;
use super::tls::pki;
use super::*;

fn tls_sip(pki: &super::tls::Pki) -> String {
    let d = pki.dir.path().display();
    format!("tls = {{ cert = \"{d}/server.pem\", key = \"{d}/server.key\", ca = \"{d}/ca.pem\" }}")
}

const LISTEN: [&str; 2] = ["udp://127.0.0.1:0", "tls://127.0.0.1:0"];

/// An origination call from a plain caller (UDP, RTP) to a PBX over TLS
/// with `pbx_media` (`;mediaenc=...` or nothing). The router's report.
fn origination_to(pbx_media: &str) -> (String, bool) {
    let pki = pki();
    let mut pbx = Baresip::start(&format!("<sip:pbx@127.0.0.1>;regint=0;answermode=auto{pbx_media}"), Some(&pki));
    let trunk = format!(
        "[[trunk]]\nname = \"secure\"\nnumbers = [\"+14155550100\"]\nsecure = true\n\
         [[trunk.origination]]\nuri = \"sip:pbx@127.0.0.1:{};transport=tls\"\n",
        pbx.port + 1
    );
    let sip = tls_sip(&pki);
    let router = Router::launch(Setup { listen: &LISTEN, sip: &sip, rest: &trunk, ..Setup::default() });
    // A caller baresip that went away before its call ended (it happens
    // under load, before any event of the call) is replaced once; the
    // call's outcome is still asserted on the call that was made.
    let mut caller = Baresip::start("<sip:+12125550123@127.0.0.1>;regint=0", None);
    caller.command("dial", &format!("sip:+14155550100@127.0.0.1:{};transport=udp", router.port));
    let first = caller.wait_for_either_unless_gone("CALL_ESTABLISHED", "CALL_CLOSED");
    let outcome = match first {
        Some(outcome) => outcome,
        None => {
            caller = Baresip::start("<sip:+12125550123@127.0.0.1>;regint=0", None);
            caller.command("dial", &format!("sip:+14155550100@127.0.0.1:{};transport=udp", router.port));
            caller.wait_for_either("CALL_ESTABLISHED", "CALL_CLOSED")
        }
    };
    let established = outcome == "CALL_ESTABLISHED";
    if established {
        pbx.wait_for("CALL_ESTABLISHED");
        std::thread::sleep(Duration::from_millis(1200));
        caller.command("hangup", "");
        pbx.wait_for("CALL_CLOSED");
    }
    (router.outcomes(1), established)
}

#[test]
fn origination_reaches_the_pbx_over_tls_with_srtp_and_a_plain_pbx_is_refused() {
    let (report, established) = origination_to(";mediaenc=srtp-mand");
    assert!(established, "{report}");
    assert!(report.contains("caller RTP, callee SRTP;"), "one leg plain, the PBX's encrypted:\n{report}");
    let (a, b, _) = relayed(&report);
    assert!(a > 25 && b > 25, "{report}");
    // A PBX without SRTP: it refuses the router's SRTP offer (baresip
    // answers 488 itself) and the call fails; it is never offered plain RTP.
    let (report, established) = origination_to("");
    assert!(!established, "{report}");
    assert!(report.contains("outcome: failed 488"), "{report}");
}

/// A termination call from a PBX (baresip with `media`) over `transport`
/// to a carrier gateway (baresip, SRTP optional). The PBX's SIP trace,
/// whether the call was established, and then the router's report.
fn termination_from(transport: &str, media: &str) -> (String, bool, Option<String>) {
    let pki = pki();
    let mut carrier = Baresip::start("<sip:+14155550123@127.0.0.1>;regint=0;answermode=auto;mediaenc=srtp", None);
    let rest = format!(
        "[[carrier]]\nname = \"pstn\"\ngateways = [\"sip:127.0.0.1:{}\"]\n\
         [[trunk]]\nname = \"secure\"\nnumbers = [\"+14155550100\"]\nsecure = true\n\
         [trunk.termination]\ndomain = \"acme.trunkline.test\"\ncarrier = \"pstn\"\n\
         caller_ids = [\"+14155550199\"]\nacl = [\"127.0.0.0/8\"]\n",
        carrier.port
    );
    let sip = tls_sip(&pki);
    let router = Router::launch(Setup { listen: &LISTEN, sip: &sip, rest: &rest, ..Setup::default() });
    let port = if transport == "tls" { router.tls_port } else { router.port };
    let mut pbx = Baresip::start(
        &format!(
            "<sip:+14155550199@acme.trunkline.test>;outbound=\"sip:127.0.0.1:{port};transport={transport}\";regint=0{media}"
        ),
        Some(&pki),
    );
    pbx.command("dial", "sip:+14155550123@acme.trunkline.test");
    let established = pbx.wait_for_either("CALL_ESTABLISHED", "CALL_CLOSED") == "CALL_ESTABLISHED";
    let mut report = None;
    if established {
        carrier.wait_for("CALL_ESTABLISHED");
        std::thread::sleep(Duration::from_millis(1200));
        pbx.command("hangup", "");
        carrier.wait_for("CALL_CLOSED");
        report = Some(router.outcomes(1));
    }
    (pbx.trace(), established, report)
}

#[test]
fn termination_needs_tls_and_srtp_from_the_pbx() {
    let (got, established, _) = termination_from("udp", ";mediaenc=srtp-mand");
    assert!(!established);
    assert!(got.contains("SIP/2.0 403 Forbidden (secure trunk: SIP must arrive over TLS)"), "{got}");
    let (got, established, _) = termination_from("tls", "");
    assert!(!established);
    assert!(got.contains("SIP/2.0 488 Not Acceptable Here (media description 0: SRTP is required"), "{got}");
    let (_, established, report) = termination_from("tls", ";mediaenc=srtp-mand");
    let report = report.unwrap_or_default();
    assert!(established, "{report}");
    assert!(report.contains("caller SRTP,"), "{report}");
    let (a, b, _) = relayed(&report);
    assert!(a > 25 && b > 25, "{report}");
}
