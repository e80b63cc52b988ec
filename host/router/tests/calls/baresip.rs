//! baresip (Debian package `baresip-core`), a softphone nobody here wrote,
//! on both sides of the router: it calls through the router and is called
//! by it over UDP, TCP and TLS, holds and resumes from each side by
//! re-INVITE, and calls out as a customer PBX with digest authentication.
//! It is driven through its `ctrl_tcp` module (netstring JSON commands and
//! events); its SIP trace (`-s`) shows what it received.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use super::tls::{pki, Pki};
use super::*;

/// A baresip process with one account; stopped (by PID) when dropped.
pub(super) struct Baresip {
    child: Child,
    /// Its SIP port (UDP and TCP; TLS on the next one).
    pub(super) port: u16,
    ctrl: TcpStream,
    unread: Vec<u8>,
    /// Every event seen, in order (its JSON).
    pub(super) events: Vec<String>,
    dir: tempfile::TempDir,
}

/// A port free for UDP and TCP whose next port is free for TCP (baresip
/// listens for TLS there).
fn free_sip_port() -> u16 {
    loop {
        let p = free_udp_port();
        if p < u16::MAX
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
}

impl Baresip {
    /// baresip with `account` (a line of its `accounts` file); with `pki`,
    /// it trusts the test CA and serves the test certificate over TLS.
    pub(super) fn start(account: &str, pki: Option<&Pki>) -> Baresip {
        let dir = tempfile::tempdir().unwrap();
        let (port, ctrl_port) = (free_sip_port(), super::tcp::free_tcp_port());
        // What it says: a tone from a file, paced in real time (ALSA's
        // null device is not paced: thousands of packets a second).
        let tone = dir.path().join("tone.wav");
        std::fs::write(&tone, super::media::tone_wav(8000, 10)).unwrap();
        let tone = tone.display();
        let mut config = format!(
            "poll_method\tepoll\nsip_listen\t127.0.0.1:{port}\nnet_interface\t127.0.0.1\ncall_local_timeout\t120\n\
             audio_player\talsa,null\naudio_source\taufile,{tone}\naudio_alert\talsa,null\n\
             module_path\t/usr/lib/baresip/modules\nmodule\tg711.so\nmodule\talsa.so\nmodule\taufile.so\n\
             module\tctrl_tcp.so\nmodule\tsrtp.so\n\
             module_tmp\taccount.so\nmodule_app\tmenu.so\nctrl_tcp_listen\t127.0.0.1:{ctrl_port}\n"
        );
        if let Some(pki) = pki {
            let d = pki.dir.path();
            let pem = std::fs::read_to_string(d.join("server.pem")).unwrap()
                + &std::fs::read_to_string(d.join("server.key")).unwrap();
            std::fs::write(dir.path().join("cert.pem"), pem).unwrap();
            config.push_str(&format!(
                "sip_certificate\t{}\nsip_cafile\t{}\n",
                dir.path().join("cert.pem").display(),
                d.join("ca.pem").display()
            ));
        }
        std::fs::write(dir.path().join("config"), config).unwrap();
        std::fs::write(dir.path().join("accounts"), format!("{account}\n")).unwrap();
        std::fs::write(dir.path().join("contacts"), "").unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .arg("-s")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("trace.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting baresip (Debian package baresip-core)");
        let mut tries = 0;
        let ctrl = loop {
            match TcpStream::connect(("127.0.0.1", ctrl_port)) {
                Ok(s) => break s,
                Err(_) if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("baresip's ctrl_tcp did not start: {e}"),
            }
        };
        ctrl.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        Baresip { child, port, ctrl, unread: Vec::new(), events: Vec::new(), dir }
    }

    /// Run a command (`dial`, `hold`, `resume`, `hangup`, `accept`...).
    pub(super) fn command(&mut self, command: &str, params: &str) {
        let json = format!("{{\"command\":\"{command}\",\"params\":\"{params}\",\"token\":\"t\"}}");
        self.ctrl.write_all(format!("{}:{json},", json.len()).as_bytes()).unwrap();
    }

    /// Forget the events seen so far (after reading what has arrived).
    pub(super) fn clear(&mut self) {
        self.read_events();
        self.events.clear();
    }

    /// Wait up to 20 s for an event of `kind` (e.g. `CALL_ESTABLISHED`)
    /// not yet returned or cleared; its JSON.
    /// Wait for an event of kind `a` or `b`; which came.
    pub(super) fn wait_for_either(&mut self, a: &str, b: &str) -> String {
        self.wait_for_either_unless_gone(a, b)
            .unwrap_or_else(|| panic!("baresip closed its control connection; events: {:?}", self.events))
    }

    /// As [`Baresip::wait_for_either`]; `None` if baresip went away first
    /// (its process ended: the caller may start another and try again).
    pub(super) fn wait_for_either_unless_gone(&mut self, a: &str, b: &str) -> Option<String> {
        let needles = [format!("\"type\":\"{a}\""), format!("\"type\":\"{b}\"")];
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            for (needle, kind) in needles.iter().zip([a, b]) {
                if let Some(i) = self.events.iter().position(|e| e.contains(needle.as_str())) {
                    self.events.remove(i);
                    return Some(kind.to_owned());
                }
            }
            assert!(std::time::Instant::now() < deadline, "no {a} or {b} event from baresip; seen: {:?}", self.events);
            if !self.try_read_events() {
                return None;
            }
        }
    }

    pub(super) fn wait_for(&mut self, kind: &str) -> String {
        let needle = format!("\"type\":\"{kind}\"");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut seen = 0;
        loop {
            if let Some(i) = self.events[seen..].iter().position(|e| e.contains(&needle)) {
                let e = self.events.remove(seen + i);
                return e;
            }
            seen = self.events.len();
            assert!(std::time::Instant::now() < deadline, "no {kind} event from baresip; seen: {:?}", self.events);
            self.read_events();
        }
    }

    fn read_events(&mut self) {
        if !self.try_read_events() {
            panic!("baresip closed its control connection; events: {:?}", self.events);
        }
    }

    /// Read what has arrived into `events`; false if baresip closed its
    /// control connection.
    fn try_read_events(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        match self.ctrl.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => self.unread.extend_from_slice(&buf[..n]),
            Err(_) => return true, // timeout: nothing yet
        }
        // Netstrings: LEN ":" JSON ","
        while let Some(colon) = self.unread.iter().position(|b| *b == b':') {
            let Ok(len) = String::from_utf8_lossy(&self.unread[..colon]).parse::<usize>() else { break };
            if self.unread.len() < colon + 1 + len + 1 {
                break;
            }
            let json = String::from_utf8_lossy(&self.unread[colon + 1..colon + 1 + len]).into_owned();
            self.unread.drain(..colon + 1 + len + 1);
            if json.contains("\"event\":true") {
                self.events.push(json);
            }
        }
        true
    }

    /// What baresip printed of its SIP traffic (`-s`).
    pub(super) fn trace(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("trace.log")).unwrap_or_default()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `;transport=` parameter and router port for `wire`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Wire3 {
    Udp,
    Tcp,
    Tls,
}

impl Wire3 {
    fn param(self) -> &'static str {
        match self {
            Wire3::Udp => "udp",
            Wire3::Tcp => "tcp",
            Wire3::Tls => "tls",
        }
    }
}

/// A router with UDP, TCP and TLS listeners whose trunk calls `target`.
fn router_to(pki: &Pki, target: &str) -> Router {
    router_with(pki, target, "")
}

/// The same with `rest` after the trunk (a `[media]` table).
fn router_with(pki: &Pki, target: &str, rest: &str) -> Router {
    let d = pki.dir.path().display();
    let sip = format!("tls = {{ cert = \"{d}/server.pem\", key = \"{d}/server.key\", ca = \"{d}/ca.pem\" }}");
    Router::launch(Setup {
        listen: &["udp://127.0.0.1:0", "tcp://127.0.0.1:0", "tls://127.0.0.1:0"],
        sip: &sip,
        rest: &(super::tcp::trunk_uris(&[(target.to_owned(), 10)]) + rest),
        ..Setup::default()
    })
}

/// One SIP message in a baresip trace (`-s`): printed after a line
/// `PROTO SRC -> DST`, up to the colour reset.
pub(super) struct Traced {
    pub(super) src: u16,
    pub(super) dst: u16,
    pub(super) text: String,
}

impl Traced {
    fn is_request(&self) -> bool {
        !self.text.starts_with("SIP/2.0")
    }
}

/// Every SIP message of a baresip trace.
pub(super) fn traced(trace: &str) -> Vec<Traced> {
    let port_of = |a: &str| a.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).unwrap_or(0);
    trace
        .split("\x1b[36;1m#\n")
        .skip(1)
        .filter_map(|block| {
            let (first, rest) = block.split_once('\n')?;
            let (src, dst) = first.split_once(" -> ")?;
            let src = src.split_whitespace().nth(1)?;
            let text = rest.split("\x1b[;m").next().unwrap_or(rest).replace('\r', "");
            Some(Traced { src: port_of(src), dst: port_of(dst), text })
        })
        .collect()
}

/// The messages a baresip on `port` received from the router (whose
/// listeners are `router`): over a stream, one came from the router if it
/// came from one of its listeners or reached one of baresip's (its TLS
/// one is the next port).
pub(super) fn received(trace: &str, port: u16, router: &Router) -> Vec<String> {
    let (ours, theirs) = ([port, port + 1], [router.port, router.tcp_port, router.tls_port]);
    traced(trace).into_iter().filter(|m| theirs.contains(&m.src) || ours.contains(&m.dst)).map(|m| m.text).collect()
}

/// The SDP direction of each re-INVITE (a To-tagged INVITE) among `messages`.
fn reinvite_directions(messages: &[String]) -> Vec<&'static str> {
    let reinvites = messages.iter().filter(|m| {
        m.starts_with("INVITE ") && m.lines().any(|l| l.to_ascii_lowercase().starts_with("to:") && l.contains("tag="))
    });
    reinvites
        .filter_map(|m| ["a=sendonly", "a=recvonly", "a=inactive", "a=sendrecv"].into_iter().find(|d| m.contains(d)))
        .collect()
}

/// A baresip call through the router over `wire`, held and resumed from
/// each side, then hung up; `rest` after the router's trunk. The report.
fn call_hold_resume_hang_up(wire: Wire3, rest: &str) -> String {
    let pki = pki();
    let tls = (wire == Wire3::Tls).then_some(&pki);
    let mut pbx = Baresip::start("<sip:pbx@127.0.0.1>;regint=0;answermode=auto", tls);
    let pbx_port = if wire == Wire3::Tls { pbx.port + 1 } else { pbx.port };
    let router = router_with(&pki, &format!("sip:pbx@127.0.0.1:{pbx_port};transport={}", wire.param()), rest);
    let mut caller = Baresip::start("<sip:+12125550123@127.0.0.1>;regint=0", tls);
    let port = match wire {
        Wire3::Udp => router.port,
        Wire3::Tcp => router.tcp_port,
        Wire3::Tls => router.tls_port,
    };
    caller.command("dial", &format!("sip:+14155550100@127.0.0.1:{port};transport={}", wire.param()));
    caller.wait_for("CALL_ESTABLISHED");
    pbx.wait_for("CALL_ESTABLISHED");
    // Hold and resume from the caller, then from the PBX: each is a
    // re-INVITE relayed to the other party, whose answer comes back. One
    // at a time (crossing re-INVITEs would be glare, answered 491).
    for (who, cmd) in [("caller", "hold"), ("caller", "resume"), ("pbx", "hold"), ("pbx", "resume")] {
        std::thread::sleep(Duration::from_millis(300)); // the previous ACK lands
        caller.clear();
        pbx.clear();
        let (from, to) = if who == "caller" { (&mut caller, &mut pbx) } else { (&mut pbx, &mut caller) };
        from.command(cmd, "");
        assert!(to.wait_for("CALL_REMOTE_SDP").contains("\"param\":\"offer\""), "{who} {cmd}: the offer arrived");
        assert!(from.wait_for("CALL_REMOTE_SDP").contains("\"param\":\"answer\""), "{who} {cmd}: answered");
    }
    caller.command("hangup", "");
    pbx.wait_for("CALL_CLOSED");
    caller.wait_for("CALL_CLOSED");
    let reports = router.outcomes(1);
    assert!(reports.contains("hung up by the caller"), "{reports}");
    assert_eq!(reports.matches("-> re-INVITE from the caller").count(), 2, "{reports}");
    assert_eq!(reports.matches("-> re-INVITE from the callee").count(), 2, "{reports}");
    // What each party received: hold (sendonly) then resume (sendrecv).
    for party in [&pbx, &caller] {
        let got = received(&party.trace(), party.port, &router);
        assert_eq!(reinvite_directions(&got), ["a=sendonly", "a=sendrecv"], "{got:#?}");
    }
    // The media was anchored: each party was told only the router's ports
    // (those of its side in the report), and audio crossed the relay both ways.
    let (to_caller, to_callee) = super::media::router_ports(&reports);
    for (party, port) in [(&pbx, to_callee), (&caller, to_caller)] {
        let got = received(&party.trace(), party.port, &router);
        let sdp: Vec<&String> = got.iter().filter(|m| m.contains("\nm=audio ")).collect();
        assert!(!sdp.is_empty(), "{got:#?}");
        for m in sdp {
            assert!(m.contains(&format!("m=audio {port} ")), "told only the router's port {port}:\n{m}");
        }
    }
    let (a, b, _) = super::media::relayed(&reports);
    assert!(a > 25 && b > 25, "audio both ways through the relay:\n{reports}");
    reports
}

#[test]
fn baresip_calls_baresip_through_the_router_over_udp_with_hold_and_resume() {
    call_hold_resume_hang_up(Wire3::Udp, "");
}

#[test]
fn baresip_audio_with_hold_and_resume_is_forwarded_by_the_kernel() {
    let reports = call_hold_resume_hang_up(Wire3::Udp, "\n[media]\nkernel_forwarding = true\n");
    let (a, b, _) = super::media::relayed(&reports);
    let kernel = super::media::kernel_forwarded(&reports);
    // The PBX sends as soon as it answers: its first packets may reach the
    // router before the 200 that hands the stream to the kernel (seen: 1).
    assert!(kernel > 50 && kernel + 5 >= a + b, "all but a first few packets by the kernel\n{reports}");
}

#[test]
fn baresip_calls_baresip_through_the_router_over_tcp_with_hold_and_resume() {
    call_hold_resume_hang_up(Wire3::Tcp, "");
}

#[test]
fn baresip_calls_baresip_through_the_router_over_tls_with_hold_and_resume() {
    call_hold_resume_hang_up(Wire3::Tls, "");
}

#[test]
fn baresip_calls_out_through_a_termination_trunk_with_digest_authentication() {
    // The carrier's gateway answers the number dialled (baresip matches the user part).
    let mut carrier = Baresip::start("<sip:+14155550123@127.0.0.1>;regint=0;answermode=auto", None);
    let rest = format!(
        "[[carrier]]\nname = \"pstn\"\ngateways = [\"sip:127.0.0.1:{}\"]\n\
         [[trunk]]\nname = \"acme-prod\"\nnumbers = [\"+14155550100\"]\n\
         [trunk.termination]\ndomain = \"acme-prod.trunkline.test\"\ncarrier = \"pstn\"\n\
         caller_ids = [\"+14155550199\"]\n\
         credentials = [{{ username = \"acme\", password_env = \"ACME_SIP_PASSWORD\" }}]\n",
        carrier.port
    );
    let router =
        Router::launch_env(Setup { rest: &rest, ..Setup::default() }, Some(("ACME_SIP_PASSWORD", "s3cret-pw")));
    // The customer's PBX: its calls go to the router (outbound proxy) and
    // are answered with credentials when challenged. (Debian's baresip 1.0,
    // libre 1.1, computes MD5 only and abandons the call on any challenge
    // it cannot answer, even after an MD5 one: the default, MD5 alone,
    // lets it in.)
    let mut pbx = Baresip::start(
        &format!(
            "<sip:+14155550199@acme-prod.trunkline.test>;auth_user=acme;auth_pass=s3cret-pw;\
             outbound=\"sip:127.0.0.1:{};transport=udp\";regint=0",
            router.port
        ),
        None,
    );
    pbx.command("dial", "sip:+14155550123@acme-prod.trunkline.test");
    pbx.wait_for("CALL_ESTABLISHED");
    carrier.wait_for("CALL_ESTABLISHED");
    pbx.command("hangup", "");
    carrier.wait_for("CALL_CLOSED");
    let reports = router.outcomes(1);
    assert!(reports.contains("hung up by the caller"), "{reports}");
    let got = received(&pbx.trace(), pbx.port, &router);
    assert!(
        got.iter().any(|m| m.starts_with("SIP/2.0 407")),
        "challenged first (no credentials are sent unasked): {got:#?}"
    );
    let invites: Vec<String> = traced(&pbx.trace())
        .into_iter()
        .filter(|m| m.dst == router.port && m.text.starts_with("INVITE"))
        .map(|m| m.text)
        .collect();
    assert_eq!(invites.len(), 2, "{invites:#?}");
    assert!(invites[1].contains("Proxy-Authorization: Digest"), "{}", invites[1]);
    assert!(!reports.contains("s3cret-pw"), "no password in the reports");
}

#[test]
fn baresip_behind_kamailio_keeps_the_proxy_in_its_dialog_both_ways() {
    let mut pbx = Baresip::start("<sip:pbx@127.0.0.1>;regint=0;answermode=auto", None);
    let router = router_to(&pki(), &format!("sip:pbx@127.0.0.1:{}", pbx.port));
    let kamailio = super::proxy::Kamailio::start(&format!("sip:127.0.0.1:{}", router.port));
    let mut caller = Baresip::start("<sip:+12125550123@127.0.0.1>;regint=0", None);
    // Dialled at the proxy, which record-routes and relays to the router.
    caller.command("dial", &format!("sip:+14155550100@127.0.0.1:{}", kamailio.port));
    caller.wait_for("CALL_ESTABLISHED");
    pbx.wait_for("CALL_ESTABLISHED");
    for (who, cmd) in [("caller", "hold"), ("pbx", "hold")] {
        std::thread::sleep(Duration::from_millis(300));
        caller.clear();
        pbx.clear();
        let (from, to) = if who == "caller" { (&mut caller, &mut pbx) } else { (&mut pbx, &mut caller) };
        from.command(cmd, "");
        to.wait_for("CALL_REMOTE_SDP");
        from.wait_for("CALL_REMOTE_SDP");
    }
    std::thread::sleep(Duration::from_millis(300));
    caller.command("hangup", "");
    pbx.wait_for("CALL_CLOSED");
    let reports = router.outcomes(1);
    assert!(reports.contains("hung up by the caller"), "{reports}");
    // Every request between the caller and the router crossed Kamailio:
    // the caller's (it honoured the Record-Route the router copied into its
    // 200) and the router's re-INVITE to it.
    let msgs = traced(&caller.trace());
    let requests_out: Vec<&Traced> = msgs.iter().filter(|m| m.src == caller.port && m.is_request()).collect();
    let methods: Vec<&str> = requests_out.iter().filter_map(|m| m.text.split(' ').next()).collect();
    assert_eq!(methods, ["INVITE", "ACK", "INVITE", "ACK", "BYE"], "the caller's requests");
    assert!(requests_out.iter().all(|m| m.dst == kamailio.port), "all to the proxy");
    let requests_in: Vec<&Traced> = msgs.iter().filter(|m| m.dst == caller.port && m.is_request()).collect();
    let methods: Vec<&str> = requests_in.iter().filter_map(|m| m.text.split(' ').next()).collect();
    assert_eq!(methods, ["INVITE", "ACK"], "the PBX's hold, relayed by the router, and its ACK");
    assert!(requests_in.iter().all(|m| m.src == kamailio.port), "through the proxy");
}

#[test]
fn baresip_srtp_calls_baresip_srtp_through_the_router_with_srtp_terminated_on_each_leg() {
    let pki = pki();
    let mut pbx = Baresip::start("<sip:pbx@127.0.0.1>;regint=0;answermode=auto;mediaenc=srtp-mand", None);
    let router = router_to(&pki, &format!("sip:pbx@127.0.0.1:{};transport=udp", pbx.port));
    let mut caller = Baresip::start("<sip:+12125550123@127.0.0.1>;regint=0;mediaenc=srtp-mand", None);
    caller.command("dial", &format!("sip:+14155550100@127.0.0.1:{};transport=udp", router.port));
    caller.wait_for("CALL_ESTABLISHED");
    pbx.wait_for("CALL_ESTABLISHED");
    std::thread::sleep(Duration::from_millis(1500)); // audio flows
    caller.command("hangup", "");
    pbx.wait_for("CALL_CLOSED");
    caller.wait_for("CALL_CLOSED");
    let reports = router.outcomes(1);
    assert!(reports.contains("caller SRTP, callee SRTP;"), "{reports}");
    let (a, b, _) = super::media::relayed(&reports);
    assert!(a > 25 && b > 25, "SRTP audio both ways, decrypted and encrypted again by the router:\n{reports}");
    // baresip sends one short plain RTCP APP packet as its stream starts
    // (not SRTCP): at most that fails authentication; a key mismatch
    // would fail every packet.
    let failing: u64 = reports
        .split(" failing SRTP authentication")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(failing <= 2, "{reports}");
    // Each party got RTP/SAVP with a key of the router's, not the other party's.
    let key_of = |m: &str| m.lines().find_map(|l| l.split("inline:").nth(1).map(|k| k.trim().to_owned()));
    let (to_pbx, to_caller) =
        (received(&pbx.trace(), pbx.port, &router), received(&caller.trace(), caller.port, &router));
    let offer = to_pbx.iter().find(|m| m.starts_with("INVITE ")).expect("the PBX's INVITE");
    let answer =
        to_caller.iter().find(|m| m.starts_with("SIP/2.0 200") && m.contains("m=audio")).expect("the caller's 200");
    assert!(offer.contains("RTP/SAVP") && answer.contains("RTP/SAVP"), "{offer}\n{answer}");
    let sent_by = |party: &Baresip, first: &str| {
        traced(&party.trace()).into_iter().find(|m| m.src == party.port && m.text.starts_with(first)).map(|m| m.text)
    };
    let caller_offer = sent_by(&caller, "INVITE ").expect("the caller's INVITE");
    let pbx_answer = sent_by(&pbx, "SIP/2.0 200").expect("the PBX's 200");
    assert_ne!(key_of(offer), key_of(&caller_offer), "the caller's key stays on its leg");
    assert_ne!(key_of(answer), key_of(&pbx_answer), "the PBX's key stays on its leg");
}
