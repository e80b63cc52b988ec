//! Calls over TCP (SIPp `-t t1`): both legs TCP, and UDP in / TCP out.

use super::*;

pub(super) fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A trunk whose origination URIs are given in full, with priorities.
pub(super) fn trunk_uris(uris: &[(String, u16)]) -> String {
    let mut t = "[[trunk]]\nname = \"acme-prod\"\nnumbers = [\"+14155550100\"]\n\
                 plugins = [{ name = \"diversion-guard\", config = { origination_domain = \"trunkline.test\" } }, { name = \"customer-routing\" }]\n"
        .to_owned();
    for (uri, prio) in uris {
        t.push_str(&format!("[[trunk.origination]]\nuri = \"{uri}\"\npriority = {prio}\n"));
    }
    t
}

fn tcp_router(uris: &[(String, u16)], sip: &str) -> Router {
    Router::launch(Setup {
        listen: &["udp://127.0.0.1:0", "tcp://127.0.0.1:0"],
        sip,
        rest: &trunk_uris(uris),
        ..Setup::default()
    })
}

#[test]
fn calls_over_tcp_are_relayed_and_the_caller_hangs_up() {
    let pbx = free_tcp_port();
    let router = tcp_router(&[(format!("sip:127.0.0.1:{pbx};transport=tcp"), 10)], "");
    let dir = tempfile::tempdir().unwrap();
    let msgs = dir.path().join("uas.msg");
    // The caller hangs up.
    let mut uas = sipp(&[
        "-sn",
        "uas",
        "-t",
        "t1",
        "-p",
        &pbx.to_string(),
        "-m",
        "2",
        "-trace_msg",
        "-message_file",
        msgs.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("127.0.0.1:{}", router.tcp_port);
    let uac = sipp(&[
        "-sn",
        "uac",
        "-t",
        "t1",
        &target,
        "-s",
        "+14155550100",
        "-p",
        &free_tcp_port().to_string(),
        "-m",
        "2",
        "-r",
        "2",
        "-d",
        "200",
    ])
    .status()
    .unwrap();
    let reports = router.outcomes(2);
    let uas_ok = uas.wait().unwrap();
    assert!(uac.success() && uas_ok.success(), "both calls completed over TCP\n{reports}");
    assert_eq!(reports.matches("hung up by the caller").count(), 2, "{reports}");
    let seen = std::fs::read_to_string(&msgs).unwrap();
    assert!(seen.contains("Via: SIP/2.0/TCP 127.0.0.1:"), "our Via names TCP:\n{seen}");
    assert!(seen.contains(";transport=tcp>"), "our Contact names TCP:\n{seen}");
}

#[test]
fn the_callee_hangs_up_over_tcp() {
    super::callee_hangs_up(super::Wire::Tcp);
}

#[test]
fn cancel_over_tcp_reaches_the_pbx_and_the_caller_gets_487() {
    super::cancel_before_answer(super::Wire::Tcp);
}

#[test]
fn udp_in_tcp_out_and_a_refused_connection_fails_over_at_once() {
    // Priority 5 is a TCP port nobody listens on: the connection is refused
    // and the call fails over at once (the 10 s silence timer never fires).
    let (refused, pbx, uac_port) = (free_tcp_port(), free_tcp_port(), free_udp_port());
    let router = tcp_router(
        &[(format!("sip:127.0.0.1:{refused};transport=tcp"), 5), (format!("sip:127.0.0.1:{pbx};transport=tcp"), 10)],
        "failover_timeout_ms = 10000",
    );
    let mut uas = sipp(&["-sn", "uas", "-t", "t1", "-p", &pbx.to_string(), "-m", "2"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = call_in(&router, uac_port, &["-sn", "uac"], &["-m", "2", "-r", "2", "-d", "100"]);
    let reports = router.outcomes(2);
    let uas_ok = uas.wait().unwrap();
    assert!(uac.success() && uas_ok.success(), "UDP caller, TCP PBX: both calls answered\n{reports}");
    assert_eq!(
        reports.matches(&format!("127.0.0.1:{refused};transport=tcp -> 503 Service Unavailable")).count(),
        2,
        "{reports}"
    );
    assert!(
        !reports.contains("no response in"),
        "the refused connection did not wait for the silence timer\n{reports}"
    );
    assert_eq!(
        reports.matches(&format!("127.0.0.1:{pbx};transport=tcp -> 180 Ringing -> 200 OK")).count(),
        2,
        "{reports}"
    );
}

#[test]
fn an_idle_tcp_connection_is_closed_and_keepalives_are_answered() {
    use std::io::{Read, Write};
    let router = tcp_router(
        &[(format!("sip:127.0.0.1:{};transport=tcp", free_tcp_port()), 10)],
        "failover_timeout_ms = 300\ntcp_idle_timeout_ms = 1000",
    );
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", router.tcp_port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // RFC 5626 keep-alive: a CRLFCRLF ping gets a CRLF pong.
    conn.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    conn.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
    // Then silence: the router closes the connection (read returns 0) well
    // within the 30 s read timeout.
    let mut rest = [0u8; 16];
    let n = conn.read(&mut rest).expect("the router closes the idle connection");
    assert_eq!(n, 0, "closed, not written to");
}
