//! Graceful drain: on SIGTERM (or `POST /drain`) the router refuses new
//! calls with 503 (INVITE and OPTIONS, so that upstreams fail over), lets
//! the calls in progress finish, ends what is left at
//! `sip.drain_timeout_secs` with BYE, and exits 0.

use super::*;

/// Wait up to `secs` for the router to exit; its exit status.
fn exited(router: &mut Router, secs: u64) -> Option<std::process::ExitStatus> {
    for _ in 0..secs * 10 {
        if let Ok(Some(status)) = router.child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The first line of the router's answer to an out-of-dialog OPTIONS.
fn options_answer(router: &Router) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:trunkline.test SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-drain\r\nMax-Forwards: 70\r\n\
         From: <sip:pbx@example.com>;tag=d\r\nTo: <sip:trunkline.test>\r\nCall-ID: drain-ping\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sock.send_to(options.as_bytes(), ("127.0.0.1", router.port)).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("an answer to OPTIONS");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(!text.starts_with("SIP/2.0 503") || text.contains("Retry-After: "), "{text}");
    text.lines().next().unwrap_or("").to_owned()
}

#[test]
fn sigterm_refuses_new_calls_lets_answered_ones_finish_and_exits_0() {
    let uas_port = free_udp_port();
    let mut router = Router::start(&trunk(&[(uas_port, 10)], ""));
    assert_eq!(options_answer(&router), "SIP/2.0 200 OK");
    let mut uas = sipp(&["-sn", "uas", "-p", &uas_port.to_string(), "-m", "2"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Two calls that last 4 s each (the carrier hangs up).
    let target = format!("127.0.0.1:{}", router.port);
    let caller_port = free_udp_port().to_string();
    let mut calls =
        sipp(&["-sn", "uac", &target, "-s", "+14155550100", "-p", &caller_port, "-m", "2", "-r", "10", "-d", "4000"])
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // both answered
    let kill = Command::new("kill").args(["-TERM", &router.child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    std::thread::sleep(Duration::from_millis(300));
    // Draining: a new call and an OPTIONS ping get 503 (with Retry-After).
    let dir = tempfile::tempdir().unwrap();
    let scenario = expect_final(503, dir.path());
    let refused = call_in(&router, free_udp_port(), &["-sf", scenario.to_str().unwrap()], &["-m", "1"]);
    assert!(refused.success(), "a new call during the drain gets 503");
    assert_eq!(options_answer(&router), "SIP/2.0 503 Service Unavailable (draining)");
    // The two calls in progress finish as their parties decide.
    let (calls_ok, uas_ok) = (calls.wait().unwrap(), uas.wait().unwrap());
    let reports = router.outcomes(2);
    assert!(calls_ok.success() && uas_ok.success(), "both calls completed\n{reports}");
    assert_eq!(reports.matches("hung up by the caller").count(), 2, "{reports}");
    let status = exited(&mut router, 10).expect("the router exits once no call is left");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn the_admin_drain_ends_calls_still_up_at_the_drain_timeout_with_bye() {
    let uas_port = free_udp_port();
    let mut router = Router::launch(Setup {
        sip: "failover_timeout_ms = 300\ndrain_timeout_secs = 1",
        plugins: "[admin]\nlisten = \"127.0.0.1:0\"",
        rest: &trunk(&[(uas_port, 10)], ""),
        ..Setup::default()
    });
    let admin = router.admin_port();
    // The PBX (SIPp's uas) waits for a BYE; so does the carrier.
    let mut uas = sipp(&["-sn", "uas", "-p", &uas_port.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let waits_for_bye = fixture("uac-callee-hangs-up.xml");
    let target = format!("127.0.0.1:{}", router.port);
    let caller_port = free_udp_port().to_string();
    let mut call =
        sipp(&["-sf", waits_for_bye.to_str().unwrap(), &target, "-s", "+14155550100", "-p", &caller_port, "-m", "1"])
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(1000)); // answered
    let ready = http(admin, "GET", "/health/ready");
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.contains("\"ready\":true") && ready.contains("\"calls\":1"),
        "{ready}"
    );
    let active = http(admin, "GET", "/calls/active");
    assert!(
        active.contains("\"trunk\":\"acme-prod\"")
            && active.contains("\"answered\":true")
            && active.contains("\"direction\":\"origination\"")
            && active.contains(&format!("\"target\":\"sip:+14155550100@127.0.0.1:{uas_port}\"")),
        "{active}"
    );
    let answer = http(admin, "POST", "/drain");
    assert!(answer.starts_with("HTTP/1.1 202") && answer.contains("{\"draining\":true}"), "{answer}");
    let draining = http(admin, "GET", "/health/ready");
    assert!(draining.starts_with("HTTP/1.1 503") && draining.contains("\"draining\":true"), "{draining}");
    assert!(http(admin, "GET", "/health/live").starts_with("HTTP/1.1 200"), "still live while draining");
    let (call_ok, uas_ok) = (call.wait().unwrap(), uas.wait().unwrap());
    let reports = router.outcomes(1);
    assert!(call_ok.success() && uas_ok.success(), "BYE to both parties after 1 s\n{reports}");
    assert!(reports.contains("router shutting down (sip.drain_timeout_secs): call ended"), "{reports}");
    assert!(reports.contains("hung up by the router"), "{reports}");
    let status = exited(&mut router, 10).expect("the router exits");
    assert!(status.success(), "exit status {status}");
}

/// A rolling restart under SIPp load: 10 calls/s of 2 s calls; the router
/// gets SIGTERM mid-load, refuses the calls that arrive while it drains
/// (503, which an upstream would retry elsewhere), lets every answered call
/// finish, exits 0, and a new router on the same configuration takes the
/// next calls. No answered call is lost: every call SIPp placed ended as
/// answered-and-hung-up or refused with 503, and the PBX saw each answered
/// call end.
#[test]
fn a_rolling_restart_under_load_loses_no_answered_call() {
    let uas_port = free_udp_port();
    let mut router = Router::start(&trunk(&[(uas_port, 10)], ""));
    let config = router.config_path();
    let port = router.port;
    let dir = tempfile::tempdir().unwrap();
    let pbx_msgs = dir.path().join("pbx.msg");
    let mut uas =
        sipp(&["-sn", "uas", "-p", &uas_port.to_string(), "-trace_msg", "-message_file", pbx_msgs.to_str().unwrap()])
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let scenario = super::fixture("uac-answered-or-draining.xml");
    let load = |calls: &str| {
        let (target, from) = (format!("127.0.0.1:{port}"), free_udp_port().to_string());
        sipp(&["-sf", scenario.to_str().unwrap(), &target, "-s", "+14155550100", "-p", &from, "-m", calls, "-r", "10"])
            .spawn()
            .unwrap()
    };
    let mut first = load("40");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(Command::new("kill").args(["-TERM", &router.child.id().to_string()]).status().unwrap().success());
    let first_ok = first.wait().unwrap();
    let status = exited(&mut router, 20).expect("the drained router exits");
    assert!(status.success(), "exit status {status}");
    let answered_before = router_reports(&router);
    assert!(
        first_ok.success(),
        "every call of the first load answered and hung up, or refused 503:\n{answered_before}"
    );
    // The restart: a new router on the same configuration and port.
    let mut second = Router::again(&config, port);
    let mut more = load("10");
    let more_ok = more.wait().unwrap();
    let reports = second.outcomes(10);
    assert!(more_ok.success(), "the restarted router takes calls\n{reports}");
    let answered = answered_before.matches("hung up by the caller").count();
    // SIPp writes its message trace as it goes: wait (bounded) until the
    // PBX's trace holds every BYE expected, so that killing it loses none.
    let bye_count = || std::fs::read_to_string(&pbx_msgs).unwrap_or_default().matches("BYE sip:").count();
    for _ in 0..100 {
        if bye_count() >= answered + 10 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = uas.kill();
    let _ = uas.wait();
    let seen = std::fs::read_to_string(&pbx_msgs).unwrap_or_default();
    assert!(answered >= 10, "calls were answered before and during the drain: {answered}\n{answered_before}");
    assert!(answered < 40, "calls arriving during the drain were refused");
    assert_eq!(
        seen.matches("BYE sip:").count(),
        answered + 10,
        "the PBX saw every answered call end (before, during and after the restart)"
    );
    let _ = second.child.kill();
}

/// Every report line the router printed so far.
fn router_reports(router: &Router) -> String {
    let mut out = String::new();
    while let Ok(l) = router.lines.recv_timeout(Duration::from_millis(500)) {
        out.push_str(&l);
        out.push('\n');
    }
    out
}
