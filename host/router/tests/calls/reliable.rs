//! Reliable provisional responses (RFC 3262) with real parties: callers
//! that require 100rel (SIPp, and the Twinkle softphone, Debian package
//! `twinkle-console`) answered by baresip (which has no 100rel: the router
//! provides it on the caller's leg) and by a SIPp PBX that sends its early
//! media reliably and waits for the PRACK.

use std::io::Write;

use super::baresip::Baresip;
use super::*;

/// Twinkle's console, driven on its standard input, with a profile that
/// requires 100rel; its SIP log in `twinkle.log`. Stopped when dropped.
struct Twinkle {
    child: Child,
    home: tempfile::TempDir,
}

impl Twinkle {
    fn start() -> Twinkle {
        let home = tempfile::tempdir().unwrap();
        let conf = home.path().join(".twinkle");
        std::fs::create_dir(&conf).unwrap();
        // It finds no local address on a machine without a default route:
        // it is told to advertise loopback.
        std::fs::write(
            conf.join("caller.cfg"),
            "user_name=+12125550123\nuser_domain=127.0.0.1\nuser_display=caller\n\
             ext_100rel=required\nregister_at_startup=no\nuse_nat_public_ip=yes\nnat_public_ip=127.0.0.1\n",
        )
        .unwrap();
        let (sip, rtp) = (free_udp_port(), free_udp_port());
        std::fs::write(
            conf.join("twinkle.sys"),
            format!(
                "dev_ringtone=alsa:null\ndev_speaker=alsa:null\ndev_mic=alsa:null\nsip_udp_port={sip}\n\
                 rtp_port={rtp}\nstart_user_profile=caller.cfg\nlog_show_sip=yes\n"
            ),
        )
        .unwrap();
        let child = Command::new("twinkle-console")
            .arg("caller.cfg")
            .env("HOME", home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting twinkle-console (Debian package twinkle-console)");
        Twinkle { child, home }
    }

    fn command(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join(".twinkle/twinkle.log")).unwrap_or_default()
    }
}

impl Drop for Twinkle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `uac-100rel.xml` expecting `provisional` (180 or 183) reliably.
fn caller_scenario(dir: &Path, provisional: u16) -> PathBuf {
    let text =
        std::fs::read_to_string(fixture("uac-100rel.xml")).unwrap().replace("PROVISIONAL", &provisional.to_string());
    let p = dir.join(format!("uac-100rel-{provisional}.xml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn call_requiring_100rel(router: &Router, scenario: &Path) -> std::process::Child {
    sipp(&[
        "-sf",
        scenario.to_str().unwrap(),
        &format!("127.0.0.1:{}", router.port),
        "-s",
        "+14155550100",
        "-p",
        &free_udp_port().to_string(),
        "-m",
        "1",
    ])
    .spawn()
    .unwrap()
}

#[test]
fn a_caller_that_requires_100rel_reaches_a_pbx_without_it() {
    let mut pbx = Baresip::start("<sip:pbx@127.0.0.1>;regint=0;answermode=manual", None);
    let router = Router::launch(Setup {
        rest: &super::tcp::trunk_uris(&[(format!("sip:pbx@127.0.0.1:{}", pbx.port), 10)]),
        ..Setup::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut caller = call_requiring_100rel(&router, &caller_scenario(dir.path(), 180));
    pbx.wait_for("CALL_INCOMING");
    // baresip rings (180 without 100rel); the caller gets it reliably and
    // PRACKs it before the PBX answers.
    std::thread::sleep(Duration::from_millis(1000));
    pbx.command("accept", "");
    pbx.wait_for("CALL_ESTABLISHED");
    let ok = caller.wait().unwrap();
    let reports = router.outcomes(1);
    assert!(ok.success(), "the caller got a reliable 180, its PRACK a 200, then the call\n{reports}");
    assert!(reports.contains("hung up by the caller"), "{reports}");
    let to_pbx = super::baresip::received(&pbx.trace(), pbx.port, &router);
    let invite = to_pbx.iter().find(|m| m.starts_with("INVITE")).expect("the PBX was called");
    assert!(!invite.contains("Require:"), "the PBX was not required to support 100rel:\n{invite}");
}

#[test]
fn reliable_early_media_from_the_pbx_is_pracked_and_reaches_the_caller_reliably() {
    let pbx_port = free_udp_port();
    let router = Router::launch(Setup {
        rest: &super::tcp::trunk_uris(&[(format!("sip:127.0.0.1:{pbx_port}"), 10)]),
        ..Setup::default()
    });
    let mut pbx = sipp(&["-sf", fixture("uas-100rel.xml").to_str().unwrap(), "-p", &pbx_port.to_string(), "-m", "1"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let caller = call_requiring_100rel(&router, &caller_scenario(dir.path(), 183)).wait().unwrap();
    let reports = router.outcomes(1);
    assert!(pbx.wait().unwrap().success(), "the PBX saw 100rel offered and got its PRACK\n{reports}");
    assert!(caller.success(), "the caller got the 183 reliably and its PRACK answered\n{reports}");
    assert!(reports.contains("-> 183 Session Progress -> 200 OK"), "{reports}");
}

#[test]
fn twinkle_requiring_100rel_calls_a_pbx_without_it_through_the_router() {
    let mut pbx = Baresip::start("<sip:pbx@127.0.0.1>;regint=0;answermode=manual", None);
    let router = Router::launch(Setup {
        rest: &super::tcp::trunk_uris(&[(format!("sip:pbx@127.0.0.1:{}", pbx.port), 10)]),
        ..Setup::default()
    });
    let mut caller = Twinkle::start();
    std::thread::sleep(Duration::from_millis(1500)); // its console is up
    caller.command(&format!("call sip:+14155550100@127.0.0.1:{}", router.port));
    pbx.wait_for("CALL_INCOMING");
    std::thread::sleep(Duration::from_millis(1000)); // the reliable 180 and its PRACK
    pbx.command("accept", "");
    pbx.wait_for("CALL_ESTABLISHED");
    std::thread::sleep(Duration::from_millis(500));
    caller.command("bye");
    pbx.wait_for("CALL_CLOSED");
    let reports = router.outcomes(1);
    assert!(reports.contains("hung up by the caller"), "{reports}");
    let log = caller.log();
    let requires = log.lines().any(|l| l.starts_with("Require:") && l.contains("100rel"));
    assert!(requires, "Twinkle required 100rel:\n{log}");
    assert!(log.contains("RSeq:"), "it got a reliable 180:\n{log}");
    assert!(log.contains("PRACK sip:"), "it acknowledged it:\n{log}");
    assert!(!log.contains("SIP/2.0 420"), "no Bad Extension:\n{log}");
}
