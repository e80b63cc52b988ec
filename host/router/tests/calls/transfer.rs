//! Call transfer (REFER, `call_transfer = true`): the PBX that answered
//! transfers the caller to another address, or the caller transfers the
//! PBX; three SIPp parties each.

use super::*;

#[test]
fn a_refer_from_the_pbx_connects_the_caller_to_the_refer_to_target() {
    let (pbx_port, target_port, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let trunk = trunk(&[(pbx_port, 10)], "").replace("numbers = [", "call_transfer = true\nnumbers = [");
    let router = Router::start(&trunk);
    let target = format!("127.0.0.1:{target_port}");
    let sf = |name: &str| fixture(name).to_str().unwrap().to_owned();
    let mut new_party =
        sipp(&["-sf", &sf("uas-transfer-target.xml"), "-p", &target_port.to_string(), "-m", "1"]).spawn().unwrap();
    let mut pbx =
        sipp(&["-sf", &sf("uas-refers.xml"), "-p", &pbx_port.to_string(), "-m", "1", "-key", "target", &target])
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let caller = call_in(&router, uac_port, &["-sf", &sf("uac-transferred.xml")], &["-m", "1"]);
    let report = router.outcomes(1);
    let (pbx_ok, target_ok) = (pbx.wait().unwrap(), new_party.wait().unwrap());
    assert!(caller.success(), "the caller got the target's offer and hung up normally\n{report}");
    assert!(pbx_ok.success(), "the PBX got 202, NOTIFY 100 and 200, then BYE\n{report}");
    assert!(
        target_ok.success(),
        "the target got an INVITE without offer and an ACK with the caller's answer\n{report}"
    );
    let uri = format!("sip:+14155550177@{target}");
    assert!(
        report.contains(&format!(
            "REFER by the callee to {uri}: INVITE {uri} -> 200 OK -> re-INVITE to the caller -> 200 OK"
        )),
        "{report}"
    );
    assert!(report.contains(&format!("transferred to {uri}")), "{report}");
    assert!(
        report.contains(&format!("outcome: answered by {uri}")) && report.contains("hung up by the caller"),
        "{report}"
    );
}

#[test]
fn a_refer_from_the_caller_connects_the_pbx_to_the_refer_to_target() {
    let (pbx_port, target_port, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let trunk = trunk(&[(pbx_port, 10)], "").replace("numbers = [", "call_transfer = true\nnumbers = [");
    let router = Router::start(&trunk);
    let target = format!("127.0.0.1:{target_port}");
    let sf = |name: &str| fixture(name).to_str().unwrap().to_owned();
    let mut new_party =
        sipp(&["-sf", &sf("uas-transfer-target.xml"), "-p", &target_port.to_string(), "-m", "1"]).spawn().unwrap();
    let mut pbx = sipp(&["-sf", &sf("uas-reinvited.xml"), "-p", &pbx_port.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let caller = call_in(&router, uac_port, &["-sf", &sf("uac-refers.xml")], &["-m", "1", "-key", "target", &target]);
    let report = router.outcomes(1);
    let (pbx_ok, target_ok) = (pbx.wait().unwrap(), new_party.wait().unwrap());
    assert!(caller.success(), "the caller got 202, NOTIFY 100 and 200, then BYE\n{report}");
    assert!(pbx_ok.success(), "the PBX got the target's offer in a re-INVITE, then hung up\n{report}");
    assert!(target_ok.success(), "the target got an INVITE without offer, the PBX's answer, then BYE\n{report}");
    let uri = format!("sip:+14155550177@{target}");
    assert!(
        report.contains(&format!(
            "REFER by the caller to {uri}: INVITE {uri} -> 200 OK -> re-INVITE to the callee -> 200 OK"
        )),
        "{report}"
    );
    assert!(report.contains(&format!("transferred to {uri}")) && report.contains("hung up by the callee"), "{report}");
}
