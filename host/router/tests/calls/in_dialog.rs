//! Requests inside an answered call: a re-INVITE with a new SDP offer (its
//! answer and ACK relayed end to end) and an INFO, over UDP and over TCP.

use super::tcp::{free_tcp_port, trunk_uris};
use super::*;

fn reinvite_and_info(tcp: bool) {
    let pbx = if tcp { free_tcp_port() } else { free_udp_port() };
    let suffix = if tcp { ";transport=tcp" } else { "" };
    let router = Router::launch(Setup {
        listen: &["udp://127.0.0.1:0", "tcp://127.0.0.1:0"],
        rest: &trunk_uris(&[(format!("sip:127.0.0.1:{pbx}{suffix}"), 10)]),
        ..Setup::default()
    });
    let t: &[&str] = if tcp { &["-t", "t1"] } else { &[] };
    let mut uas_args = vec!["-sf", fixture("uas-reinvite.xml").to_str().unwrap().to_owned().leak(), "-p"];
    let pbx_port = pbx.to_string();
    uas_args.extend([pbx_port.as_str(), "-m", "2"]);
    uas_args.extend(t);
    let mut uas = sipp(&uas_args).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("127.0.0.1:{}", if tcp { router.tcp_port } else { router.port });
    let uac_port = if tcp { free_tcp_port() } else { free_udp_port() }.to_string();
    let scenario = fixture("uac-reinvite.xml");
    let mut uac_args =
        vec!["-sf", scenario.to_str().unwrap(), &target, "-s", "+14155550100", "-p", &uac_port, "-m", "2", "-r", "2"];
    uac_args.extend(t);
    let uac = sipp(&uac_args).status().unwrap();
    let reports = router.outcomes(2);
    let uas_ok = uas.wait().unwrap();
    assert!(uac.success(), "the carrier's re-INVITE got the PBX's SDP answer, its INFO a 200\n{reports}");
    assert!(uas_ok.success(), "the PBX got the re-INVITE offer, its ACK, and the INFO body\n{reports}");
    assert_eq!(reports.matches("-> re-INVITE from the caller").count(), 2, "{reports}");
    assert_eq!(reports.matches("hung up by the caller").count(), 2, "{reports}");
}

#[test]
fn reinvite_and_info_are_relayed_over_udp() {
    reinvite_and_info(false);
}

#[test]
fn reinvite_and_info_are_relayed_over_tcp() {
    reinvite_and_info(true);
}
