//! Origination URIs that name their host: resolved through the system
//! resolver (`localhost` from /etc/hosts), a name that does not resolve
//! skipped for the next target.

use super::tcp::trunk_uris;
use super::*;

#[test]
fn an_origination_uri_with_a_host_name_is_resolved_and_called_and_a_name_that_does_not_resolve_is_skipped() {
    let (uas_port, uac_port) = (free_udp_port(), free_udp_port());
    // `.invalid` never resolves (RFC 2606).
    let uris = [("sip:no-such-pbx.invalid".to_owned(), 5), (format!("sip:LocalHost:{uas_port}"), 10)];
    let router = Router::start(&trunk_uris(&uris));
    let dir = tempfile::tempdir().unwrap();
    let msgs = dir.path().join("uas.msg");
    let mut uas = sipp(&[
        "-sn",
        "uas",
        "-p",
        &uas_port.to_string(),
        "-m",
        "2",
        "-trace_msg",
        "-message_file",
        msgs.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = call_in(&router, uac_port, &["-sn", "uac"], &["-m", "2", "-r", "2", "-d", "200"]);
    let reports = router.outcomes(2);
    let uas_ok = uas.wait().unwrap();
    assert!(uac.success(), "SIPp UAC: both calls answered\n{reports}");
    assert!(uas_ok.success(), "SIPp UAS saw complete calls");
    assert_eq!(
        reports.matches("sip:+14155550100@no-such-pbx.invalid: skipped (no-such-pbx.invalid does not resolve").count(),
        2,
        "{reports}"
    );
    let answered =
        format!("INVITE sip:+14155550100@LocalHost:{uas_port} at 127.0.0.1:{uas_port} -> 180 Ringing -> 200 OK");
    assert_eq!(reports.matches(&answered).count(), 2, "{reports}");
    let seen = std::fs::read_to_string(&msgs).unwrap();
    // The request-URI keeps the name as configured; it went to 127.0.0.1.
    assert_eq!(seen.matches(&format!("INVITE sip:+14155550100@LocalHost:{uas_port} SIP/2.0")).count(), 2, "{seen}");
}
