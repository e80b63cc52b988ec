//! A real record-routing proxy in the path: Kamailio, started from the
//! shared kit's `proxy.cfg` (listen and destination substituted), between
//! the caller and the router, and between the router and the PBX. SIPp
//! parties that honour Record-Route (`proxy-*.xml`) re-INVITE and hang up
//! from each side. The far end's message trace proves that every request
//! the router sent on the proxied leg (ACK of the 2xx, re-INVITE and its
//! ACK, BYE) came through Kamailio (its Via on top, its Route consumed)
//! and that no BYE was retransmitted.

use std::os::unix::process::CommandExt;

use super::*;

/// A Kamailio proxy on loopback; stopped (by PID) when dropped.
pub(super) struct Kamailio {
    child: Child,
    pub(super) port: u16,
    _dir: tempfile::TempDir,
}

impl Kamailio {
    /// Kamailio listening on udp 127.0.0.1:`port`, relaying new requests
    /// to `dest` (`sip:127.0.0.1:PORT`) and in-dialog ones by their Route.
    pub(super) fn start(dest: &str) -> Kamailio {
        Kamailio::start_on(free_udp_port(), dest)
    }

    /// The same on a port chosen beforehand.
    pub(super) fn start_on(port: u16, dest: &str) -> Kamailio {
        let kit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/kamailio/proxy.cfg");
        let cfg = std::fs::read_to_string(&kit).unwrap_or_else(|e| {
            panic!("the shared Kamailio kit is needed beside the repository ({}): {e}", kit.display())
        });
        let cfg =
            cfg.replace("udp:127.0.0.1:45060", &format!("udp:127.0.0.1:{port}")).replace("sip:127.0.0.1:45080", dest);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kamailio.cfg");
        std::fs::write(&path, cfg).unwrap();
        // Its own process group: Kamailio forks workers, and all of them
        // are stopped with it.
        let child = Command::new("kamailio")
            .process_group(0)
            .arg("-f")
            .arg(&path)
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-P"])
            .arg(dir.path().join("kamailio.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("kamailio.log")).unwrap())
            .spawn()
            .expect("starting kamailio (Debian package kamailio)");
        let k = Kamailio { child, port, _dir: dir };
        // Listening once the port cannot be bound any more.
        for _ in 0..100 {
            if UdpSocket::bind(("127.0.0.1", port)).is_err() {
                return k;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("kamailio did not start listening on {port}");
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // The group of the process we started (its PID), workers included.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

/// The requests a SIPp party received, from its `-trace_msg` file.
pub(super) fn received_requests(trace: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    text.split("-----------------------------------------------")
        .filter(|chunk| chunk.contains("message received"))
        .filter_map(|chunk| chunk.split_once("bytes :").map(|(_, m)| m.trim_start().to_owned()))
        .filter(|m| !m.starts_with("SIP/2.0"))
        .collect()
}

/// A request's header values called `name` (case-insensitive, long form).
fn headers<'a>(m: &'a str, name: &str) -> Vec<&'a str> {
    m.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// Which leg the proxy is on.
#[derive(Clone, Copy, PartialEq)]
enum Proxied {
    /// caller -> Kamailio -> router -> PBX
    CallerLeg,
    /// caller -> router -> Kamailio -> PBX
    PbxLeg,
}

/// Who re-INVITEs (the other party then hangs up).
#[derive(Clone, Copy, PartialEq)]
enum Reinvites {
    Caller,
    Pbx,
}

const CALLS: usize = 3;

/// Place `CALLS` calls with the proxy on `leg`; return the requests the
/// party behind the proxy received, and the router's reports.
fn proxied_calls(leg: Proxied, who: Reinvites) -> (Vec<String>, String) {
    let pbx_port = free_udp_port();
    let (caller_scenario, pbx_scenario) = match who {
        Reinvites::Caller => ("proxy-uac-reinvites.xml", "proxy-uas-hangs-up.xml"),
        Reinvites::Pbx => ("proxy-uac-hangs-up.xml", "proxy-uas-reinvites.xml"),
    };
    // Topology B needs the proxy before the router starts (its target).
    let pbx_side_proxy = (leg == Proxied::PbxLeg).then(|| Kamailio::start(&format!("sip:127.0.0.1:{pbx_port}")));
    let origination = match &pbx_side_proxy {
        Some(k) => format!("sip:127.0.0.1:{}", k.port),
        None => format!("sip:127.0.0.1:{pbx_port}"),
    };
    let router = Router::launch(Setup { rest: &super::tcp::trunk_uris(&[(origination, 10)]), ..Setup::default() });
    let caller_side_proxy =
        (leg == Proxied::CallerLeg).then(|| Kamailio::start(&format!("sip:127.0.0.1:{}", router.port)));
    let dir = tempfile::tempdir().unwrap();
    let (pbx_msgs, caller_msgs) = (dir.path().join("pbx.msg"), dir.path().join("caller.msg"));
    let calls = CALLS.to_string();
    let mut uas = sipp(&[
        "-sf",
        fixture(pbx_scenario).to_str().unwrap(),
        "-p",
        &pbx_port.to_string(),
        "-m",
        &calls,
        "-trace_msg",
        "-message_file",
        pbx_msgs.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let entry = match &caller_side_proxy {
        Some(k) => k.port,
        None => router.port,
    };
    let uac = sipp(&[
        "-sf",
        fixture(caller_scenario).to_str().unwrap(),
        &format!("127.0.0.1:{entry}"),
        "-s",
        "+14155550100",
        "-p",
        &free_udp_port().to_string(),
        "-m",
        &calls,
        "-r",
        &calls,
        "-trace_msg",
        "-message_file",
        caller_msgs.to_str().unwrap(),
    ])
    .status()
    .unwrap();
    let reports = router.outcomes(CALLS);
    let uas_ok = uas.wait().unwrap();
    assert!(uac.success(), "the caller's scenario (its requests through its route set) succeeded\n{reports}");
    assert!(uas_ok.success(), "the PBX's scenario succeeded\n{reports}");
    let behind_proxy = if leg == Proxied::CallerLeg { &caller_msgs } else { &pbx_msgs };
    let proxy_port = caller_side_proxy.as_ref().or(pbx_side_proxy.as_ref()).map(|k| k.port).unwrap();
    let requests = received_requests(behind_proxy);
    for r in &requests {
        let first_via = headers(r, "Via").first().copied().unwrap_or_default();
        assert!(
            first_via.starts_with(&format!("SIP/2.0/UDP 127.0.0.1:{proxy_port};")),
            "a request the router sent on the proxied leg came through Kamailio (its Via on top):\n{r}"
        );
        assert!(headers(r, "Route").is_empty(), "Kamailio consumed the Route to itself:\n{r}");
    }
    (requests, reports)
}

/// How many of `requests` have method `method`.
fn count(requests: &[String], method: &str) -> usize {
    requests.iter().filter(|r| r.starts_with(&format!("{method} "))).count()
}

#[test]
fn behind_a_proxy_on_the_callers_leg_the_routers_bye_goes_through_it() {
    let (requests, reports) = proxied_calls(Proxied::CallerLeg, Reinvites::Caller);
    assert_eq!(count(&requests, "BYE"), CALLS, "one BYE per call, none retransmitted\n{requests:?}");
    assert_eq!(requests.len(), CALLS, "{requests:?}");
    assert_eq!(reports.matches("-> re-INVITE from the caller").count(), CALLS, "{reports}");
    assert_eq!(reports.matches("hung up by the callee").count(), CALLS, "{reports}");
}

#[test]
fn behind_a_proxy_on_the_callers_leg_the_routers_reinvite_and_its_ack_go_through_it() {
    let (requests, reports) = proxied_calls(Proxied::CallerLeg, Reinvites::Pbx);
    assert_eq!((count(&requests, "INVITE"), count(&requests, "ACK")), (CALLS, CALLS), "{requests:?}");
    assert_eq!(requests.len(), 2 * CALLS, "{requests:?}");
    assert_eq!(reports.matches("-> re-INVITE from the callee").count(), CALLS, "{reports}");
    assert_eq!(reports.matches("hung up by the caller").count(), CALLS, "{reports}");
}

#[test]
fn behind_a_proxy_on_the_pbxs_leg_the_ack_of_the_2xx_the_reinvite_and_its_ack_go_through_it() {
    let (requests, reports) = proxied_calls(Proxied::PbxLeg, Reinvites::Caller);
    assert_eq!(count(&requests, "ACK"), 2 * CALLS, "the 2xx's ACK and the re-INVITE's\n{requests:?}");
    assert_eq!(count(&requests, "INVITE"), 2 * CALLS, "the call and its re-INVITE\n{requests:?}");
    assert_eq!(reports.matches("hung up by the callee").count(), CALLS, "{reports}");
}

#[test]
fn behind_a_proxy_on_the_pbxs_leg_the_routers_bye_goes_through_it() {
    let (requests, reports) = proxied_calls(Proxied::PbxLeg, Reinvites::Pbx);
    assert_eq!(count(&requests, "BYE"), CALLS, "one BYE per call, none retransmitted\n{requests:?}");
    assert_eq!(count(&requests, "ACK"), CALLS, "the 2xx's ACK\n{requests:?}");
    assert_eq!(reports.matches("-> re-INVITE from the callee").count(), CALLS, "{reports}");
    assert_eq!(reports.matches("hung up by the caller").count(), CALLS, "{reports}");
}
