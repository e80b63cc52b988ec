//! Real calls: SIPp (carrier side, UAC) -> `trunkline run` -> SIPp (PBX
//! side, UAS), over UDP on loopback, with the first-party plugins built as
//! components. Bounded: every SIPp run has `-m` and `-timeout`, the router
//! is killed by PID at the end of each test.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sipp").join(rel)
}

/// A running router; killed when dropped. Its stdout lines arrive on `lines`.
struct Router {
    child: Child,
    /// UDP listener port.
    port: u16,
    /// TCP listener port, if one was configured.
    tcp_port: u16,
    /// TLS listener port, if one was configured.
    tls_port: u16,
    lines: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What to put in a test router's configuration.
#[derive(Default)]
struct Setup<'a> {
    /// `sip.listen` entries; UDP only when empty.
    listen: &'a [&'a str],
    /// Extra `[sip]` keys (replacing `failover_timeout_ms = 300` if given).
    sip: &'a str,
    /// Extra `[plugins]` keys.
    plugins: &'a str,
    /// `[[trunk]]` tables and other sections.
    rest: &'a str,
}

impl Router {
    fn start(trunk: &str) -> Router {
        Router::start_with(trunk, "")
    }

    /// Start with extra `[plugins]` keys (e.g. `audit_log = "audit.jsonl"`).
    fn start_with(trunk: &str, plugins_extra: &str) -> Router {
        Router::launch(Setup { plugins: plugins_extra, rest: trunk, ..Setup::default() })
    }

    fn launch(setup: Setup<'_>) -> Router {
        Router::launch_env(setup, None)
    }

    /// Launch with one extra environment variable (a password the
    /// configuration names with `password_env`).
    fn launch_env(setup: Setup<'_>, env: Option<(&str, &str)>) -> Router {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        trunkline_tests::install_first_party(&plugins);
        let listen: Vec<String> = if setup.listen.is_empty() {
            vec!["udp://127.0.0.1:0".into()]
        } else {
            setup.listen.iter().map(|l| l.to_string()).collect()
        };
        let sip = if setup.sip.is_empty() { "failover_timeout_ms = 300" } else { setup.sip };
        let cfg = format!(
            "[sip]\nlisten = {listen:?}\ndomains = [\"trunkline.test\"]\n{sip}\n\
             [plugins]\ndir = \"plugins\"\nwatch = false\nhook_timeout_ms = 1000\n{}\n{}",
            setup.plugins, setup.rest
        );
        std::fs::write(dir.path().join("trunkline.toml"), cfg).unwrap();
        let config = dir.path().join("trunkline.toml");
        Router::spawn(&config, env, listen.len(), dir)
    }

    /// A second router on `config` (another router's), its UDP listener on
    /// `port` (the first one's, once it has exited): a restart.
    fn again(config: &Path, port: u16) -> Router {
        let text =
            std::fs::read_to_string(config).unwrap().replace("udp://127.0.0.1:0", &format!("udp://127.0.0.1:{port}"));
        let restart = config.with_file_name("restart.toml");
        std::fs::write(&restart, text).unwrap();
        Router::spawn(&restart, None, 1, tempfile::tempdir().unwrap())
    }

    /// Run `trunkline run` on `config`; `listeners`: how many lines to read.
    fn spawn(config: &Path, env: Option<(&str, &str)>, listeners: usize, dir: tempfile::TempDir) -> Router {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trunkline"));
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .args(["run", "--print-calls", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting trunkline");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let (mut port, mut tcp_port, mut tls_port) = (0, 0, 0);
        for _ in 0..listeners {
            let line = lines.recv_timeout(Duration::from_secs(60)).expect("trunkline did not start");
            let p: u16 = line
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {line}"));
            if line.starts_with("listening on tcp://") {
                tcp_port = p;
            } else if line.starts_with("listening on tls://") {
                tls_port = p;
            } else {
                port = p;
            }
        }
        Router { child, port, tcp_port, tls_port, lines, _dir: dir }
    }

    /// The admin listener's port, from the line the router prints first
    /// when `[admin] listen` is set.
    fn admin_port(&self) -> u16 {
        let line = self.lines.recv_timeout(Duration::from_secs(30)).expect("the admin line");
        line.strip_prefix("admin on http://127.0.0.1:")
            .or_else(|| line.strip_prefix("admin on https://127.0.0.1:"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("not the admin line: {line}"))
    }

    /// Collect call reports until `n` outcomes were printed.
    fn outcomes(&self, n: usize) -> String {
        let mut out = String::new();
        let mut seen = 0;
        while seen < n {
            let l = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("only {seen} of {n} calls reported:\n{out}"));
            seen += usize::from(l.trim_start().starts_with("outcome:"));
            out.push_str(&l);
            out.push('\n');
        }
        out
    }
}

fn sipp(args: &[&str]) -> Command {
    let mut c = Command::new("sipp");
    c.args(args).args(["-i", "127.0.0.1", "-nostdin", "-timeout", "30s"]).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// SIPp as the carrier calling +14155550100 through `router`'s UDP listener
/// from `port`: `how` is `["-sn", "uac"]` or `["-sf", SCENARIO]`, `more` the
/// count, timing and transport options (`-m`, `-r`, `-d`...).
fn call_in(router: &Router, port: u16, how: &[&str], more: &[&str]) -> std::process::ExitStatus {
    let (target, port) = (format!("127.0.0.1:{}", router.port), port.to_string());
    let mut args = how.to_vec();
    args.extend([target.as_str(), "-s", "+14155550100", "-p", port.as_str()]);
    args.extend(more);
    sipp(&args).status().unwrap()
}

fn trunk(targets: &[(u16, u16)], extra_plugin_config: &str) -> String {
    let weighted: Vec<(u16, u16, u16)> = targets.iter().map(|&(p, prio)| (p, prio, 1)).collect();
    trunk_weighted(&weighted, extra_plugin_config)
}

fn trunk_weighted(targets: &[(u16, u16, u16)], extra_plugin_config: &str) -> String {
    let mut t = format!(
        "[[trunk]]\nname = \"acme-prod\"\nnumbers = [\"+14155550100\"]\nplugins = [{extra_plugin_config}{{ name = \"diversion-guard\", config = {{ origination_domain = \"trunkline.test\" }} }}, {{ name = \"customer-routing\" }}, {{ name = \"dr-twiml-fallback\" }}]\n"
    );
    for (port, prio, weight) in targets {
        t.push_str(&format!(
            "[[trunk.origination]]\nuri = \"sip:127.0.0.1:{port}\"\npriority = {prio}\nweight = {weight}\n"
        ));
    }
    t
}

#[test]
fn calls_are_answered_after_failover_from_a_silent_target_with_diversion() {
    let (silent, uas_port, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let router = Router::start(&trunk(&[(silent, 5), (uas_port, 10)], "{ name = \"e164-guard\" }, "));
    let dir = tempfile::tempdir().unwrap();
    let msgs = dir.path().join("uas.msg");
    let mut uas = sipp(&[
        "-sn",
        "uas",
        "-p",
        &uas_port.to_string(),
        "-m",
        "3",
        "-trace_msg",
        "-message_file",
        msgs.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = call_in(&router, uac_port, &["-sn", "uac"], &["-m", "3", "-r", "3", "-d", "200"]);
    let reports = router.outcomes(3);
    let uas_ok = uas.wait().unwrap();
    assert!(uac.success(), "SIPp UAC: every call must succeed\n{reports}");
    assert!(uas_ok.success(), "SIPp UAS saw complete calls");
    assert_eq!(reports.matches("-> no response in 300 ms").count(), 3, "{reports}");
    assert_eq!(reports.matches("-> 200 OK").count(), 3, "{reports}");
    assert_eq!(reports.matches("hung up by the caller").count(), 3, "{reports}");
    // The host adds the Diversion (trunk `diversion = true`, the default):
    // the plugin's pre-dial finds it there and adds none.
    assert!(reports.contains("diversion-guard") && reports.contains("pre-dial: continue"), "{reports}");
    let seen = std::fs::read_to_string(&msgs).unwrap();
    assert_eq!(seen.matches("Diversion: <sip:+14155550100@trunkline.test>").count(), 3, "one Diversion per INVITE");
    assert_eq!(seen.matches("INVITE sip:+14155550100@127.0.0.1:").count(), 3, "one INVITE per call reached the PBX");
}

fn expect_final(code: u16, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(fixture("uac-expect-final.xml")).unwrap().replace("EXPECT", &code.to_string());
    let p = dir.join(format!("uac-expect-{code}.xml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// The reference default without any plugin: the dialed number in a
/// Diversion header at our domain; `diversion = false` sends none.
#[test]
fn a_trunk_with_no_plugin_sends_diversion_unless_told_not_to() {
    for (diversion, expected) in [("", 1), ("diversion = false\n", 0)] {
        let (uas_port, uac_port) = (free_udp_port(), free_udp_port());
        let trunk = format!(
            "[[trunk]]\nname = \"bare\"\nnumbers = [\"+14155550100\"]\n{diversion}\
             [[trunk.origination]]\nuri = \"sip:127.0.0.1:{uas_port}\"\n"
        );
        let router = Router::start(&trunk);
        let dir = tempfile::tempdir().unwrap();
        let msgs = dir.path().join("uas.msg");
        let port = uas_port.to_string();
        let mut uas =
            sipp(&["-sn", "uas", "-p", &port, "-m", "1", "-trace_msg", "-message_file", msgs.to_str().unwrap()])
                .spawn()
                .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(call_in(&router, uac_port, &["-sn", "uac"], &["-m", "1"]).success());
        let reports = router.outcomes(1);
        assert!(uas.wait().unwrap().success(), "{reports}");
        let seen = std::fs::read_to_string(&msgs).unwrap();
        assert_eq!(
            seen.matches("Diversion: <sip:+14155550100@trunkline.test>").count(),
            expected,
            "{diversion}:\n{seen}"
        );
    }
}

#[test]
fn busy_here_is_passed_through_without_failover() {
    let (busy, backup, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let router = Router::start(&trunk(&[(busy, 5), (backup, 10)], ""));
    let dir = tempfile::tempdir().unwrap();
    let busy_uas =
        from_template("uas-final.xml", dir.path(), &[("CODE", "486".into()), ("REASON", "Busy Here".into())]);
    let mut uas = sipp(&["-sf", busy_uas.to_str().unwrap(), "-p", &busy.to_string(), "-m", "2"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let scenario = expect_final(486, dir.path());
    let uac = call_in(&router, uac_port, &["-sf", scenario.to_str().unwrap()], &["-m", "2", "-r", "2"]);
    let reports = router.outcomes(2);
    let _ = uas.wait();
    assert!(uac.success(), "the carrier got 486\n{reports}");
    assert_eq!(reports.matches("outcome: failed 486 Busy Here").count(), 2, "{reports}");
    assert!(!reports.contains(&format!("127.0.0.1:{backup}")), "486 is final: the backup was never tried\n{reports}");
}

#[test]
fn a_plugin_rejects_before_any_target_is_tried() {
    let (uas_port, uac_port) = (free_udp_port(), free_udp_port());
    // SIPp calls from `sipp`, not an E.164 number: e164-guard (checking origination) answers 400.
    let guard = "{ name = \"e164-guard\", config = { directions = [\"origination\"] } }, ";
    let router = Router::start(&trunk(&[(uas_port, 10)], guard));
    let dir = tempfile::tempdir().unwrap();
    let scenario = expect_final(400, dir.path());
    let uac = call_in(&router, uac_port, &["-sf", scenario.to_str().unwrap()], &["-m", "1"]);
    let reports = router.outcomes(1);
    assert!(uac.success(), "the carrier got 400\n{reports}");
    assert!(reports.contains("outcome: rejected 400 Caller ID is not an E.164 number"), "{reports}");
    assert!(reports.contains("(no target tried)"), "{reports}");
}

fn from_template(name: &str, dir: &Path, replace: &[(&str, String)]) -> PathBuf {
    let mut text = std::fs::read_to_string(fixture(name)).unwrap();
    for (k, v) in replace {
        text = text.replace(k, v);
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The transport both SIPp parties and the router's target use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Udp,
    Tcp,
}

impl Wire {
    fn free_port(self) -> u16 {
        match self {
            Wire::Udp => free_udp_port(),
            Wire::Tcp => tcp::free_tcp_port(),
        }
    }

    fn sipp_args(self) -> &'static [&'static str] {
        match self {
            Wire::Udp => &[],
            Wire::Tcp => &["-t", "t1"],
        }
    }
}

/// A SIPp PBX running `uas` on a target of the router, and a SIPp carrier
/// running `uac` for `calls` calls; the carrier's and the PBX's success and
/// the router's reports.
fn two_parties(wire: Wire, uas: &str, uac: &str, calls: usize) -> (bool, bool, String) {
    let pbx = wire.free_port();
    let router = match wire {
        Wire::Udp => Router::start(&trunk(&[(pbx, 10)], "")),
        Wire::Tcp => Router::launch(Setup {
            listen: &["udp://127.0.0.1:0", "tcp://127.0.0.1:0"],
            rest: &tcp::trunk_uris(&[(format!("sip:127.0.0.1:{pbx};transport=tcp"), 10)]),
            ..Setup::default()
        }),
    };
    let n = calls.to_string();
    let (pbx_port, uac_port) = (pbx.to_string(), wire.free_port().to_string());
    let (uas_file, uac_file) = (fixture(uas), fixture(uac));
    let mut uas_args = vec!["-sf", uas_file.to_str().unwrap(), "-p", &pbx_port, "-m", &n];
    uas_args.extend(wire.sipp_args());
    let mut pbx_sipp = sipp(&uas_args).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("127.0.0.1:{}", if wire == Wire::Tcp { router.tcp_port } else { router.port });
    let mut uac_args =
        vec!["-sf", uac_file.to_str().unwrap(), &target, "-s", "+14155550100", "-p", &uac_port, "-m", &n, "-r", &n];
    uac_args.extend(wire.sipp_args());
    let uac_ok = sipp(&uac_args).status().unwrap().success();
    let reports = router.outcomes(calls);
    let uas_ok = pbx_sipp.wait().unwrap().success();
    (uac_ok, uas_ok, reports)
}

fn callee_hangs_up(wire: Wire) {
    let (uac, uas, reports) = two_parties(wire, "uas-hangs-up.xml", "uac-callee-hangs-up.xml", 2);
    assert!(uac, "the carrier received the BYE and answered it\n{reports}");
    assert!(uas, "the PBX got 200 for its BYE");
    assert_eq!(reports.matches("hung up by the callee").count(), 2, "{reports}");
}

fn cancel_before_answer(wire: Wire) {
    let (uac, uas, reports) = two_parties(wire, "uas-ring-until-cancel.xml", "uac-cancel.xml", 1);
    assert!(uac, "the carrier got 200 (CANCEL) and 487 (INVITE)\n{reports}");
    assert!(uas, "the PBX got the CANCEL and the ACK of its 487");
    assert!(reports.contains("-> 180 Ringing -> cancelled") && reports.contains("outcome: cancelled"), "{reports}");
}

#[test]
fn the_callee_hangs_up_and_the_caller_gets_the_bye() {
    callee_hangs_up(Wire::Udp);
}

#[test]
fn cancel_before_answer_reaches_the_pbx_and_the_caller_gets_487() {
    cancel_before_answer(Wire::Udp);
}

#[test]
fn a_302_is_followed_to_the_first_contact_only() {
    let (redirector, first, second, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port(), free_udp_port());
    let router = Router::start(&trunk(&[(redirector, 10)], ""));
    let dir = tempfile::tempdir().unwrap();
    let scenario =
        from_template("uas-redirect.xml", dir.path(), &[("FIRST", first.to_string()), ("SECOND", second.to_string())]);
    let mut r = sipp(&["-sf", scenario.to_str().unwrap(), "-p", &redirector.to_string(), "-m", "1"]).spawn().unwrap();
    let mut uas = sipp(&["-sn", "uas", "-p", &first.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = call_in(&router, uac_port, &["-sn", "uac"], &["-m", "1", "-d", "100"]);
    let reports = router.outcomes(1);
    let (r_ok, uas_ok) = (r.wait().unwrap(), uas.wait().unwrap());
    assert!(uac.success() && r_ok.success() && uas_ok.success(), "{reports}");
    assert!(
        reports.contains(&format!("INVITE sip:+14155550100@127.0.0.1:{redirector} -> 302 Moved Temporarily")),
        "{reports}"
    );
    assert!(
        reports.contains(&format!("INVITE sip:+14155550100@127.0.0.1:{first} -> 180 Ringing -> 200 OK")),
        "{reports}"
    );
    assert!(!reports.contains(&format!("127.0.0.1:{second}")), "the second Contact is ignored\n{reports}");
}

#[test]
fn a_503_fails_over_to_the_next_priority() {
    let (broken, good, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let router = Router::start(&trunk(&[(broken, 5), (good, 10)], ""));
    let dir = tempfile::tempdir().unwrap();
    let failing =
        from_template("uas-final.xml", dir.path(), &[("CODE", "503".into()), ("REASON", "Service Unavailable".into())]);
    let mut bad = sipp(&["-sf", failing.to_str().unwrap(), "-p", &broken.to_string(), "-m", "2"]).spawn().unwrap();
    let mut uas = sipp(&["-sn", "uas", "-p", &good.to_string(), "-m", "2"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = call_in(&router, uac_port, &["-sn", "uac"], &["-m", "2", "-r", "2", "-d", "100"]);
    let reports = router.outcomes(2);
    let (bad_ok, uas_ok) = (bad.wait().unwrap(), uas.wait().unwrap());
    assert!(uac.success() && bad_ok.success() && uas_ok.success(), "{reports}");
    assert_eq!(reports.matches(&format!("127.0.0.1:{broken} -> 503 Service Unavailable")).count(), 2, "{reports}");
    assert_eq!(reports.matches(&format!("127.0.0.1:{good} -> 180 Ringing -> 200 OK")).count(), 2, "{reports}");
}

#[test]
fn weights_60_20_20_are_honoured_over_1000_calls() {
    let ports = [free_udp_port(), free_udp_port(), free_udp_port()];
    let uac_port = free_udp_port();
    let router = Router::start(&trunk_weighted(&[(ports[0], 10, 60), (ports[1], 10, 20), (ports[2], 10, 20)], ""));
    let mut pbxs: Vec<Child> =
        ports.iter().map(|p| sipp(&["-sn", "uas", "-p", &p.to_string()]).spawn().unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let uac = call_in(&router, uac_port, &["-sn", "uac"], &["-m", "1000", "-r", "250", "-d", "0"]);
    let reports = router.outcomes(1000);
    for p in &mut pbxs {
        let _ = p.kill();
        let _ = p.wait();
    }
    assert!(uac.success(), "all 1000 calls answered");
    let count =
        |port: u16| reports.matches(&format!("outcome: answered by sip:+14155550100@127.0.0.1:{port},")).count();
    let got = [count(ports[0]), count(ports[1]), count(ports[2])];
    eprintln!("weights 60/20/20 over 1000 calls: {got:?}");
    assert_eq!(got.iter().sum::<usize>(), 1000, "{got:?}");
    // Binomial bounds at about 6 standard deviations: 600 +- 93, 200 +- 76.
    assert!((507..=693).contains(&got[0]), "weight 60 got {got:?}");
    assert!((124..=276).contains(&got[1]) && (124..=276).contains(&got[2]), "weights 20 got {got:?}");
}

#[test]
fn rfc4475_torture_messages_do_not_stop_the_router() {
    let (uas_port, uac_port) = (free_udp_port(), free_udp_port());
    let mut router = Router::start(&trunk(&[(uas_port, 10)], ""));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/rfc4475");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Replies are read until the 505 to the last message, or 5 s of silence
    // (a busy machine may take more than a moment to answer the first).
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = format!("127.0.0.1:{}", router.port);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("shared/testdata/rfc4475").map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "dat"));
    files.sort();
    assert!(files.len() >= 49);
    for f in &files {
        sock.send_to(&std::fs::read(f).unwrap(), &to).unwrap();
    }
    // 3.1.2.15: a request with SIP version 7.0 is answered 505.
    sock.send_to(&std::fs::read(dir.join("badvers.dat")).unwrap(), &to).unwrap();
    let mut replies = Vec::new();
    let mut buf = [0u8; 65_535];
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        replies.push(String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_owned());
        if replies.last().is_some_and(|r| r.starts_with("SIP/2.0 505")) {
            break;
        }
    }
    assert!(replies.iter().any(|r| r.starts_with("SIP/2.0 505 Version Not Supported")), "{replies:?}");
    assert!(router.child.try_wait().unwrap().is_none(), "the router is still running");
    // And it still routes calls.
    let mut uas = sipp(&["-sn", "uas", "-p", &uas_port.to_string(), "-m", "2"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = sipp(&[
        "-sn",
        "uac",
        &to,
        "-s",
        "+14155550100",
        "-p",
        &uac_port.to_string(),
        "-m",
        "2",
        "-r",
        "2",
        "-d",
        "100",
    ])
    .status()
    .unwrap();
    let reports = router.outcomes(2);
    let _ = uas.wait();
    assert!(uac.success(), "{reports}");
}

#[test]
fn sighup_reloads_changed_plugins_and_calls_go_on() {
    let (uas_port, uac_port) = (free_udp_port(), free_udp_port());
    let router = Router::start_with(&trunk(&[(uas_port, 10)], ""), "audit_log = \"audit.jsonl\"");
    let dir = router._dir.path().to_owned();
    // A new (valid) version of dr-twiml-fallback, copied in while the router runs (watch = false).
    trunkline_tests::install(trunkline_tests::wasm::TP_DEFAULTS, &dir.join("plugins"), "dr-twiml-fallback");
    let hup = Command::new("kill").args(["-HUP", &router.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    let audit = dir.join("audit.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let reloaded = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("\"action\":\"reload\"")) {
            break line.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no reload audited after SIGHUP:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        reloaded.contains("\"plugin\":\"dr-twiml-fallback\"") && reloaded.contains("\"source\":\"signal\""),
        "{reloaded}"
    );
    let mut uas = sipp(&["-sn", "uas", "-p", &uas_port.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = call_in(&router, uac_port, &["-sn", "uac"], &["-m", "1", "-d", "100"]);
    let reports = router.outcomes(1);
    let _ = uas.wait();
    assert!(uac.success(), "{reports}");
}

fn http(port: u16, method: &str, path: &str) -> String {
    http_with(port, method, path, "")
}

/// An HTTP/1.1 request with `headers` (each ending in CRLF); the whole answer.
fn http_with(port: u16, method: &str, path: &str, headers: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// With `[admin] tokens`, a request without a token or with a wrong one
/// gets 401 (JSON, `WWW-Authenticate: Bearer`), the right one passes, and
/// what it changes is audited under the token's name.
#[test]
fn admin_tokens_are_required_and_named_in_the_audit_log() {
    let uas_port = free_udp_port();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("ci.token");
    std::fs::write(&token_file, "file-token-0123456789abcdef\n").unwrap();
    let admin = format!(
        "audit_log = \"audit.jsonl\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntokens = [\
         {{ name = \"ops\", token_env = \"TL_ADMIN_TOKEN\" }}, {{ name = \"ci\", token_file = \"{}\" }}]",
        token_file.display()
    );
    let router = Router::launch_env(
        Setup { plugins: &admin, rest: &trunk(&[(uas_port, 10)], ""), ..Setup::default() },
        Some(("TL_ADMIN_TOKEN", "env-token-0123456789abcdef")),
    );
    let port = router.admin_port();
    let none = http(port, "GET", "/plugins");
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    assert!(none.contains("www-authenticate: Bearer") || none.contains("WWW-Authenticate: Bearer"), "{none}");
    assert!(none.contains("{\"error\":\"authorization: a bearer token is required\"}"), "{none}");
    let wrong = http_with(port, "GET", "/metrics", "Authorization: Bearer env-token-0123456789abcdeX\r\n");
    assert!(wrong.starts_with("HTTP/1.1 401") && wrong.contains("unknown token"), "{wrong}");
    let ok = http_with(port, "GET", "/plugins", "Authorization: Bearer env-token-0123456789abcdef\r\n");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let plugins = router._dir.path().join("plugins");
    trunkline_tests::install(trunkline_tests::wasm::TP_DEFAULTS, &plugins, "dr-twiml-fallback");
    let reload = http_with(port, "POST", "/plugins/reload", "Authorization: Bearer file-token-0123456789abcdef\r\n");
    assert!(reload.starts_with("HTTP/1.1 200"), "{reload}");
    let audit = std::fs::read_to_string(router._dir.path().join("audit.jsonl")).unwrap();
    assert!(
        audit.lines().any(|l| l.contains("\"source\":\"admin\"") && l.contains("\"by\":\"ci\"")),
        "the reload is audited under the token's name:\n{audit}"
    );
    assert!(!audit.contains("token-0123456789"), "no token in the audit log");
    // The store's audit log says the same (it is written off the thread that asked).
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let stored = loop {
        let a = http_with(port, "GET", "/audit?limit=50", "Authorization: Bearer env-token-0123456789abcdef\r\n");
        if a.contains("\"by\":\"ci\"") || std::time::Instant::now() > until {
            break a;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(stored.contains("\"source\":\"admin\"") && stored.contains("\"by\":\"ci\""), "{stored}");
    assert!(!stored.contains("token-0123456789"), "no token in the stored audit log");
}

#[test]
fn the_admin_api_lists_reloads_and_releases_plugins() {
    let uas_port = free_udp_port();
    let router = Router::start_with(
        &trunk(&[(uas_port, 10)], ""),
        "audit_log = \"audit.jsonl\"\n[admin]\nlisten = \"127.0.0.1:0\"",
    );
    let port = router.admin_port();
    let list = http(port, "GET", "/plugins");
    assert!(
        list.starts_with("HTTP/1.1 200 OK")
            && list.contains("\"name\":\"dr-twiml-fallback\"")
            && list.contains("\"quarantined\":false"),
        "{list}"
    );
    let dir = router._dir.path().to_owned();
    trunkline_tests::install(trunkline_tests::wasm::TP_DEFAULTS, &dir.join("plugins"), "dr-twiml-fallback");
    let reload = http(port, "POST", "/plugins/reload");
    assert!(reload.starts_with("HTTP/1.1 200 OK") && reload.contains("dr-twiml-fallback.wasm"), "{reload}");
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(
        audit.lines().any(|l| l.contains("\"action\":\"reload\"") && l.contains("\"source\":\"admin\"")),
        "{audit}"
    );
    assert!(http(port, "POST", "/plugins/e164-guard/release").starts_with("HTTP/1.1 200 OK"));
    assert!(http(port, "POST", "/plugins/nope/release").starts_with("HTTP/1.1 404"));
    let elsewhere = http(port, "GET", "/elsewhere");
    assert!(elsewhere.starts_with("HTTP/1.1 404") && elsewhere.contains("{\"error\":\"GET /plugins"), "{elsewhere}");
    let missing = http(port, "POST", "/plugins/nope/release");
    assert!(missing.contains("{\"error\":\"no plugin named nope\"}"), "JSON errors: {missing}");
}

/// `GET /metrics`: the calls just placed are counted by trunk, direction
/// and outcome, with their status, post-dial delay and hook times, and the
/// text passes `promtool check metrics` (Debian package prometheus).
#[test]
fn metrics_count_the_calls_and_pass_promtool() {
    let uas_port = free_udp_port();
    let router = Router::start_with(&trunk(&[(uas_port, 10)], ""), "[admin]\nlisten = \"127.0.0.1:0\"");
    let port = router.admin_port();
    let mut uas = sipp(&["-sn", "uas", "-p", &uas_port.to_string(), "-m", "3"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = call_in(&router, free_udp_port(), &["-sn", "uac"], &["-m", "3", "-r", "10", "-d", "100"]);
    let reports = router.outcomes(3);
    let _ = uas.wait();
    assert!(uac.success(), "{reports}");
    // The relay's and the engine's counters are copied once a second; the
    // records are stored 2 s after their call.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let mut response = http(port, "GET", "/metrics");
    while !response.contains("trunkline_records_written_total 3") && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        response = http(port, "GET", "/metrics");
    }
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK") && head.contains("text/plain; version=0.0.4"), "{head}");
    for expected in [
        "trunkline_calls_total{trunk=\"acme-prod\",direction=\"origination\",outcome=\"answered\"} 3",
        "trunkline_final_responses_total{code=\"200\"} 3",
        "trunkline_active_calls 0",
        "trunkline_post_dial_delay_seconds_count 3",
        "trunkline_hook_latency_seconds_count{plugin=\"customer-routing\",hook=\"select-uri\"} 3",
        "trunkline_plugin_quarantined{plugin=\"diversion-guard\"} 0",
        "trunkline_media_port_pairs_in_use 0",
        "trunkline_records_written_total 3",
        "trunkline_records_dropped_total 0",
        "trunkline_flood_refusals_total{method=\"invite\"} 0",
        "trunkline_dns_failures_total 0",
        "trunkline_tls_handshake_failures_total{listener=\"sip\"} 0",
        "trunkline_sip_retransmissions_total ",
        "trunkline_sip_transaction_timeouts_total ",
    ] {
        assert!(body.contains(expected), "{expected} missing:\n{body}");
    }
    assert!(body.contains("trunkline_media_packets_total{result=\"relayed\"} "), "relay counters copied:\n{body}");
    assert!(!body.contains("sipp") && !body.contains("+14155550100"), "no caller or number in labels:\n{body}");
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    use std::io::Write;
    promtool.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A scraper that asks for OpenMetrics (Prometheus does) gets it.
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut om = String::new();
    s.read_to_string(&mut om).unwrap();
    assert!(om.contains("application/openmetrics-text") && om.contains("# TYPE trunkline_calls counter"), "{om}");
    assert!(om.trim_end().ends_with("# EOF"), "{om}");
}

/// The engine thread prepares the plugin instances calls take while it
/// waits for traffic (they are then in its core's caches), from startup
/// on, and the admin listener says where instances were made.
#[test]
fn the_engine_thread_prepares_plugin_instances_while_idle() {
    let uas_port = free_udp_port();
    let router = Router::start_with(&trunk(&[(uas_port, 10)], ""), "[admin]\nlisten = \"127.0.0.1:0\"");
    let port = router.admin_port();
    let counts = |text: &str, key: &str| -> u64 {
        let at = text.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {text}")) + key.len() + 3;
        text[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    // Ten calls, 100 ms apart: instances of the trunk's chain are prepared
    // at startup, and refilled whenever half of a set is used.
    let mut uas = sipp(&["-sn", "uas", "-p", &uas_port.to_string(), "-m", "10"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = call_in(&router, free_udp_port(), &["-sn", "uac"], &["-m", "10", "-r", "10", "-d", "10"]);
    let reports = router.outcomes(10);
    let _ = uas.wait();
    assert!(uac.success(), "{reports}");
    let after = http(port, "GET", "/instances");
    assert!(after.starts_with("HTTP/1.1 200 OK"), "{after}");
    assert!(counts(&after, "prepared_while_idle") > 0, "{after}");
    assert_eq!(counts(&after, "made_on_call_path"), 0, "not even the first call made its own: {after}");
}

mod baresip;
mod console;
mod disaster_recovery;
mod drain;
mod health;
mod in_dialog;
mod kernel;
mod live_config;
mod media;
mod names;
mod nat;
mod postgres;
mod proxy;
mod records;
mod reliable;
mod secure;
mod shared_state;
mod tcp;
mod termination;
mod tls;
mod transfer;

#[test]
fn options_are_answered_and_an_options_flood_is_limited() {
    let router = Router::start(&trunk(&[(free_udp_port(), 10)], ""));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let to = format!("127.0.0.1:{}", router.port);
    let local = sock.local_addr().unwrap();
    for i in 0..10 {
        let options = format!(
            "OPTIONS sip:trunkline.test SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-ka{i}\r\nMax-Forwards: 70\r\n\
             From: <sip:pbx@example.com>;tag=ka\r\nTo: <sip:trunkline.test>\r\nCall-ID: keepalive-{i}\r\nCSeq: {i} OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        sock.send_to(options.as_bytes(), &to).unwrap();
    }
    let mut replies = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        replies.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let firsts: Vec<&str> = replies.iter().map(|r| r.lines().next().unwrap_or("")).collect();
    assert_eq!(
        firsts,
        ["SIP/2.0 200 OK", "SIP/2.0 200 OK", "SIP/2.0 200 OK", "SIP/2.0 503 Service Unavailable (rate limited)"],
        "a burst of 3, one 503, then silence"
    );
    for h in ["Allow: INVITE, ACK, CANCEL, BYE, OPTIONS", "Accept: application/sdp", "Supported:"] {
        assert!(replies[0].contains(h), "{h} missing:\n{}", replies[0]);
    }
    assert!(replies[3].contains("Retry-After: 10"), "{}", replies[3]);
    // Another source is not affected.
    let other = UdpSocket::bind("127.0.0.2:0").unwrap();
    other.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let o = format!(
        "OPTIONS sip:trunkline.test SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-other\r\nMax-Forwards: 70\r\n\
         From: <sip:pbx2@example.com>;tag=o\r\nTo: <sip:trunkline.test>\r\nCall-ID: other\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        other.local_addr().unwrap()
    );
    other.send_to(o.as_bytes(), &to).unwrap();
    let (n, _) = other.recv_from(&mut buf).expect("the other source is answered");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 OK"));
}
