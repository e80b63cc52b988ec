//! Call transfer (REFER, `call_transfer = true`): the PBX that answered
//! transfers the caller to another address, or the caller transfers the
//! PBX; three SIPp parties each.

use super::*;

/// One call through a trunk with `call_transfer` on, to a PBX running
/// `pbx_scenario`, from a caller running `caller_scenario`, with a third
/// party (the transfer target) running `uas-transfer-target.xml`. The
/// referrer's scenario gets `-key target IP:PORT` (the target's address).
/// Whether each party succeeded, the router's report and the target's URI.
fn transfer_call(pbx_scenario: &str, caller_scenario: &str) -> ([bool; 3], String, String) {
    let (pbx_port, target_port, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let trunk = trunk(&[(pbx_port, 10)], "").replace("numbers = [", "call_transfer = true\nnumbers = [");
    let router = Router::start(&trunk);
    let target = format!("127.0.0.1:{target_port}");
    let sf = |name: &str| fixture(name).to_str().unwrap().to_owned();
    let key = ["-key", "target", target.as_str()];
    let mut new_party =
        sipp(&["-sf", &sf("uas-transfer-target.xml"), "-p", &target_port.to_string(), "-m", "1"]).spawn().unwrap();
    let mut pbx = sipp(&["-sf", &sf(pbx_scenario), "-p", &pbx_port.to_string(), "-m", "1"]).args(key).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let caller = call_in(&router, uac_port, &["-sf", &sf(caller_scenario)], &[&["-m", "1"][..], &key[..]].concat());
    let report = router.outcomes(1);
    let (pbx_ok, target_ok) = (pbx.wait().unwrap(), new_party.wait().unwrap());
    ([caller.success(), pbx_ok.success(), target_ok.success()], report, format!("sip:+14155550177@{target}"))
}

#[test]
fn a_refer_from_the_pbx_connects_the_caller_to_the_refer_to_target() {
    let ([caller, pbx, target], report, uri) = transfer_call("uas-refers.xml", "uac-transferred.xml");
    assert!(caller, "the caller got the target's offer and hung up normally\n{report}");
    assert!(pbx, "the PBX got 202, NOTIFY 100 and 200, then BYE\n{report}");
    assert!(target, "the target got an INVITE without offer and an ACK with the caller's answer\n{report}");
    let route = format!("REFER by the callee to {uri}: INVITE {uri} -> 200 OK -> re-INVITE to the caller -> 200 OK");
    assert!(report.contains(&route), "{report}");
    assert!(report.contains(&format!("transferred to {uri}")), "{report}");
    assert!(
        report.contains(&format!("outcome: answered by {uri}")) && report.contains("hung up by the caller"),
        "{report}"
    );
}

#[test]
fn a_refer_from_the_caller_connects_the_pbx_to_the_refer_to_target() {
    let ([caller, pbx, target], report, uri) = transfer_call("uas-reinvited.xml", "uac-refers.xml");
    assert!(caller, "the caller got 202, NOTIFY 100 and 200, then BYE\n{report}");
    assert!(pbx, "the PBX got the target's offer in a re-INVITE, then hung up\n{report}");
    assert!(target, "the target got an INVITE without offer, the PBX's answer, then BYE\n{report}");
    let route = format!("REFER by the caller to {uri}: INVITE {uri} -> 200 OK -> re-INVITE to the callee -> 200 OK");
    assert!(report.contains(&route), "{report}");
    assert!(report.contains(&format!("transferred to {uri}")) && report.contains("hung up by the callee"), "{report}");
}
