//! Termination: the customer's PBX (SIPp UAC) calls out through the trunk's
//! termination domain to the carrier's gateways (SIPp UASes): ACL, digest
//! authentication (MD5, SIPp's only algorithm), number rules, Diversion
//! checks by diversion-guard, gateway failover.

use super::*;

const DOMAIN: &str = "acme-prod.trunkline.test";
const OWNED: &str = "+14155550100";
pub(super) const VERIFIED: &str = "+14155550199";

/// Lines that hang up an answered call (inserted when a 200 is expected).
const HANGUP: &str = r#"  <pause milliseconds="100"/>
  <send retrans="500">
    <![CDATA[

      BYE sip:[service]@DOMAIN SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:CALLER@DOMAIN>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
"#;

/// The customer's scenario: `uac-term.xml` or (with `auth`) `uac-term-auth.xml`.
pub(super) fn customer(dir: &Path, auth: bool, caller: &str, expect: u16, extra: &str) -> PathBuf {
    let name = if auth { "uac-term-auth.xml" } else { "uac-term.xml" };
    let hangup = if expect == 200 { HANGUP } else { "" };
    let text = std::fs::read_to_string(fixture(name))
        .unwrap()
        .replace("  <!-- HANGUP -->\n", hangup)
        .replace("DOMAIN", DOMAIN)
        .replace("CALLER", caller)
        .replace("EXPECT", &expect.to_string())
        .replace("EXTRA", if extra.is_empty() { "X-Test: none" } else { extra });
    let p = dir.join(format!("customer-{expect}-{}.xml", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

/// A terminating trunk towards `gateways`, with `auth` lines
/// (`acl = [...]`, `credentials = [...]`).
fn term_router(gateways: &[u16], auth: &str, password: Option<&str>) -> Router {
    let uris: Vec<String> = gateways.iter().map(|p| format!("sip:127.0.0.1:{p}")).collect();
    term_router_to(&uris, auth, password)
}

/// The same, with the gateway URIs given in full.
fn term_router_to(gateways: &[String], auth: &str, password: Option<&str>) -> Router {
    let plugins =
        format!("{{ name = \"diversion-guard\", config = {{ domains = [\"trunkline.test\", \"{DOMAIN}\"] }} }}");
    term_router_with(gateways, auth, password, &plugins)
}

/// The same, with the trunk's `plugins` list given.
fn term_router_with(gateways: &[String], auth: &str, password: Option<&str>, plugins: &str) -> Router {
    let gws: Vec<String> = gateways.iter().map(|g| format!("\"{g}\"")).collect();
    let rest = format!(
        "[[carrier]]\nname = \"pstn\"\ngateways = [{}]\n\
         [[trunk]]\nname = \"acme-prod\"\nnumbers = [\"{OWNED}\"]\n\
         plugins = [{plugins}]\n\
         [trunk.termination]\ndomain = \"{DOMAIN}\"\ncarrier = \"pstn\"\ncaller_ids = [\"{VERIFIED}\"]\n\
         {auth}\n",
        gws.join(", ")
    );
    let setup = Setup { listen: &["udp://127.0.0.1:0", "tcp://127.0.0.1:0"], rest: &rest, ..Setup::default() };
    Router::launch_env(setup, password.map(|p| ("ACME_SIP_PASSWORD", p)))
}

pub(super) fn run_customer(router: &Router, scenario: &Path, dialed: &str, extra_args: &[&str]) -> bool {
    run_customer_over(Wire::Udp, router, scenario, dialed, extra_args)
}

fn run_customer_over(wire: Wire, router: &Router, scenario: &Path, dialed: &str, extra_args: &[&str]) -> bool {
    let target = format!("127.0.0.1:{}", if wire == Wire::Tcp { router.tcp_port } else { router.port });
    let port = wire.free_port().to_string();
    let mut args = vec!["-sf", scenario.to_str().unwrap(), &target, "-s", dialed, "-p", &port, "-m", "1"];
    args.extend(extra_args);
    args.extend(wire.sipp_args());
    sipp(&args).status().unwrap().success()
}

#[test]
fn digest_challenge_then_the_call_reaches_the_carrier_and_a_wrong_password_gets_403() {
    let gw = free_udp_port();
    let router = term_router(
        &[gw],
        "acl = [\"127.0.0.0/8\"]\ncredentials = [{ username = \"acme\", password_env = \"ACME_SIP_PASSWORD\" }]",
        Some("s3cret-pw"),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut carrier = sipp(&["-sn", "uas", "-p", &gw.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let ok = customer(dir.path(), true, VERIFIED, 200, "");
    let answered = run_customer(&router, &ok, "+12125550123", &["-au", "acme", "-ap", "s3cret-pw"]);
    let reports = router.outcomes(1);
    let carrier_ok = carrier.wait().unwrap();
    assert!(
        answered && carrier_ok.success(),
        "407, then the authenticated INVITE was answered by the carrier\n{reports}"
    );
    assert!(reports.contains(&format!("INVITE sip:+12125550123@127.0.0.1:{gw} -> 180 Ringing -> 200 OK")), "{reports}");
    // The call's record keeps the authenticated INVITE, its credentials redacted.
    let rows = router.records(1);
    let record = router.record(&rows[0]["id"]);
    let trace = record["trace"].to_string();
    assert!(trace.contains("Proxy-Authorization: Digest username=\\\"acme\\\""), "{trace}");
    assert!(trace.contains("<redacted>") && !trace.contains("response="), "{trace}");

    let wrong = customer(dir.path(), true, VERIFIED, 403, "");
    assert!(
        run_customer(&router, &wrong, "+12125550123", &["-au", "acme", "-ap", "not-the-password"]),
        "a wrong password gets 403 after the challenge"
    );
    let unknown = customer(dir.path(), true, VERIFIED, 403, "");
    assert!(
        run_customer(&router, &unknown, "+12125550123", &["-au", "mallory", "-ap", "s3cret-pw"]),
        "an unknown user gets 403"
    );
}

#[test]
fn a_carrier_gateway_named_by_host_is_resolved_when_a_call_needs_it() {
    let gw = free_udp_port();
    let router = term_router_to(&[format!("sip:localhost:{gw}")], "acl = [\"127.0.0.0/8\"]", None);
    let dir = tempfile::tempdir().unwrap();
    let mut carrier = sipp(&["-sn", "uas", "-p", &gw.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let ok = customer(dir.path(), false, VERIFIED, 200, "");
    let answered = run_customer(&router, &ok, "+12125550123", &[]);
    let reports = router.outcomes(1);
    let carrier_ok = carrier.wait().unwrap();
    assert!(answered && carrier_ok.success(), "{reports}");
    let route = format!("INVITE sip:+12125550123@localhost:{gw} at 127.0.0.1:{gw} -> 180 Ringing -> 200 OK");
    assert!(reports.contains(&route), "{reports}");
}

#[test]
fn over_tcp_the_challenge_and_the_call_work_the_same() {
    let gw = free_udp_port();
    let router = term_router(
        &[gw],
        "acl = [\"127.0.0.0/8\"]\ncredentials = [{ username = \"acme\", password_env = \"ACME_SIP_PASSWORD\" }]",
        Some("tcp-pw"),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut carrier = sipp(&["-sn", "uas", "-p", &gw.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let ok = customer(dir.path(), true, VERIFIED, 200, "");
    assert!(
        run_customer_over(Wire::Tcp, &router, &ok, "+12125550123", &["-au", "acme", "-ap", "tcp-pw"]),
        "407 then 200 over TCP"
    );
    let reports = router.outcomes(1);
    assert!(carrier.wait().unwrap().success(), "{reports}");
    assert!(reports.contains("hung up by the caller"), "{reports}");
    let unauthenticated = customer(dir.path(), false, VERIFIED, 407, "");
    assert!(
        run_customer_over(Wire::Tcp, &router, &unauthenticated, "+12125550123", &[]),
        "no credentials: 407 (the ACL alone is not enough when both are configured)"
    );
}

#[test]
fn the_acl_refuses_other_sources_before_any_plugin_or_carrier() {
    let gw = free_udp_port();
    let router = term_router(&[gw], "acl = [\"10.0.0.0/8\", \"2001:db8::/32\"]", None);
    let dir = tempfile::tempdir().unwrap();
    let refused = customer(dir.path(), false, VERIFIED, 403, "");
    assert!(run_customer(&router, &refused, "+12125550123", &[]), "127.0.0.1 is outside the ACL: 403");
    // Nothing reached a carrier or a plugin: no call was reported.
    assert!(router.lines.recv_timeout(Duration::from_millis(500)).is_err(), "no call report for a refused request");
}

#[test]
fn number_rules_non_e164_destination_400_and_foreign_caller_id_403() {
    let gw = free_udp_port();
    let router = term_router(&[gw], "acl = [\"127.0.0.0/8\"]", None);
    let dir = tempfile::tempdir().unwrap();
    let to_local = customer(dir.path(), false, VERIFIED, 400, "");
    assert!(run_customer(&router, &to_local, "5551234", &[]), "non-E.164 destination: 400");
    let foreign = customer(dir.path(), false, "+12125550123", 403, "");
    assert!(run_customer(&router, &foreign, "+12125550111", &[]), "a caller ID the account does not own: 403");
    // A verified caller ID in P-Asserted-Identity counts when From is anonymous.
    let mut carrier = sipp(&["-sn", "uas", "-p", &gw.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pai = customer(dir.path(), false, "anonymous", 200, &format!("P-Asserted-Identity: <sip:{OWNED}@{DOMAIN}>"));
    assert!(run_customer(&router, &pai, "+12125550111", &[]), "anonymous From with an owned PAI is accepted");
    let reports = router.outcomes(1);
    assert!(carrier.wait().unwrap().success(), "{reports}");
}

#[test]
fn a_silent_gateway_fails_over_to_the_next_and_a_486_is_final() {
    let (silent, gw2, busy) = (free_udp_port(), free_udp_port(), free_udp_port());
    let router = term_router(&[silent, gw2], "acl = [\"127.0.0.0/8\"]", None);
    let dir = tempfile::tempdir().unwrap();
    let mut carrier = sipp(&["-sn", "uas", "-p", &gw2.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let ok = customer(dir.path(), false, VERIFIED, 200, "");
    assert!(run_customer(&router, &ok, "+12125550123", &[]));
    let reports = router.outcomes(1);
    assert!(carrier.wait().unwrap().success(), "{reports}");
    assert!(reports.contains(&format!("127.0.0.1:{silent} -> no response in 300 ms")), "{reports}");
    assert!(reports.contains(&format!("127.0.0.1:{gw2} -> 180 Ringing -> 200 OK")), "{reports}");
    drop(router);

    let router = term_router(&[busy, gw2], "acl = [\"127.0.0.0/8\"]", None);
    let busy_uas =
        from_template("uas-final.xml", dir.path(), &[("CODE", "486".into()), ("REASON", "Busy Here".into())]);
    let mut b = sipp(&["-sf", busy_uas.to_str().unwrap(), "-p", &busy.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let expect_busy = customer(dir.path(), false, VERIFIED, 486, "");
    assert!(run_customer(&router, &expect_busy, "+12125550123", &[]), "the carrier's 486 reaches the customer");
    let reports = router.outcomes(1);
    let _ = b.wait();
    assert!(!reports.contains(&format!("127.0.0.1:{gw2}")), "486 is not failed over\n{reports}");
}

#[test]
fn diversion_guard_checks_diversion_on_the_termination_path() {
    diversion_checked_on_termination(true);
}

/// The host does the reference check itself, on a trunk with no plugin.
#[test]
fn the_host_checks_diversion_on_termination_without_any_plugin() {
    diversion_checked_on_termination(false);
}

fn diversion_checked_on_termination(with_plugin: bool) {
    let gw = free_udp_port();
    let acl = "acl = [\"127.0.0.0/8\"]";
    let router = if with_plugin {
        term_router(&[gw], acl, None)
    } else {
        term_router_with(&[format!("sip:127.0.0.1:{gw}")], acl, None, "")
    };
    let dir = tempfile::tempdir().unwrap();
    let msgs = dir.path().join("carrier.msg");
    let mut carrier =
        sipp(&["-sn", "uas", "-p", &gw.to_string(), "-m", "3", "-trace_msg", "-message_file", msgs.to_str().unwrap()])
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let cases = [
        ("+12125550101", format!("Diversion: <sip:+19995550000@{DOMAIN}>;reason=unconditional")),
        ("+12125550102", format!("Diversion: <sip:{OWNED}@{DOMAIN}>;reason=unconditional")),
        ("+12125550103", "Diversion: <sip:+19995550000@other.example>;reason=unconditional".to_owned()),
    ];
    for (dialed, diversion) in &cases {
        let s = customer(dir.path(), false, VERIFIED, 200, diversion);
        assert!(run_customer(&router, &s, dialed, &[]), "{dialed}");
    }
    let reports = router.outcomes(3);
    assert!(carrier.wait().unwrap().success(), "{reports}");
    let seen = std::fs::read_to_string(&msgs).unwrap();
    let invite_for = |dialed: &str| {
        let start =
            seen.find(&format!("INVITE sip:{dialed}@")).unwrap_or_else(|| panic!("no INVITE for {dialed}:\n{seen}"));
        let end = seen[start..].find("\n\n").map(|e| start + e).unwrap_or(seen.len());
        seen[start..end].to_owned()
    };
    assert!(!invite_for("+12125550101").contains("Diversion:"), "our domain with a foreign number: removed");
    assert!(
        invite_for("+12125550102").contains(&format!("Diversion: <sip:{OWNED}@{DOMAIN}>")),
        "an owned number: kept"
    );
    assert!(
        invite_for("+12125550103").contains("Diversion: <sip:+19995550000@other.example>"),
        "another domain: forwarded"
    );
}

/// A source guessing passwords is banned after 5 failures (then its
/// INVITEs get no answer) while a client with the right password, from
/// another address, gets through; the API lists and lifts the ban; the
/// metrics count it. SIPp (MD5 only, first challenge only) authenticates
/// against the default challenge order.
#[test]
fn a_password_guesser_is_banned_while_a_correct_client_elsewhere_gets_through() {
    let gw = free_udp_port();
    let rest = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[carrier]]\nname = \"pstn\"\ngateways = [\"sip:127.0.0.1:{gw}\"]\n\
         [[trunk]]\nname = \"acme-prod\"\nnumbers = [\"{OWNED}\"]\n\
         [trunk.termination]\ndomain = \"{DOMAIN}\"\ncarrier = \"pstn\"\ncaller_ids = [\"{VERIFIED}\"]\n\
         credentials = [{{ username = \"acme\", password_env = \"ACME_SIP_PASSWORD\" }}]\n"
    );
    let router =
        Router::launch_env(Setup { rest: &rest, ..Setup::default() }, Some(("ACME_SIP_PASSWORD", "s3cret-pw")));
    let admin = router.admin_port();
    let dir = tempfile::tempdir().unwrap();
    let target = format!("127.0.0.1:{}", router.port);
    // The guesser, on 127.0.0.3: five wrong passwords, each a 407 then a 403.
    let guess = |expect: u16, calls: &str, password: &str| {
        let scenario = customer(dir.path(), true, VERIFIED, expect, "");
        let port = free_udp_port().to_string();
        Command::new("sipp")
            .args(["-sf", scenario.to_str().unwrap(), &target, "-s", "+12125550123", "-p", &port])
            .args(["-m", calls, "-r", "20", "-au", "acme", "-ap", password])
            .args(["-i", "127.0.0.3", "-nostdin", "-timeout", "30s", "-recv_timeout", "3000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    assert!(guess(403, "5", "guess-1"), "five 403s");
    assert!(!guess(403, "1", "guess-2"), "banned: the sixth attempt gets no answer at all");
    // A correct client elsewhere (127.0.0.1) is not affected.
    let mut carrier = sipp(&["-sn", "uas", "-p", &gw.to_string(), "-m", "2"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let ok = customer(dir.path(), true, VERIFIED, 200, "");
    assert!(run_customer(&router, &ok, "+12125550123", &["-au", "acme", "-ap", "s3cret-pw"]), "answered");
    let bans = http(admin, "GET", "/bans");
    assert!(bans.contains("{\"ip\":\"127.0.0.3\",\"seconds_left\":"), "{bans}");
    std::thread::sleep(Duration::from_millis(1200)); // metrics copy the engine's counts once a second
    let metrics = http(admin, "GET", "/metrics");
    assert!(metrics.contains("trunkline_auth_bans_total 1"), "{metrics}");
    assert!(metrics.contains("trunkline_auth_banned_requests_total "), "{metrics}");
    // Lifted through the API: the right password from 127.0.0.3 gets in.
    let lifted = http(admin, "DELETE", "/bans/127.0.0.3");
    assert!(lifted.starts_with("HTTP/1.1 200") && lifted.contains("{\"lifted\":\"127.0.0.3\"}"), "{lifted}");
    assert!(http(admin, "DELETE", "/bans/127.0.0.3").starts_with("HTTP/1.1 404"), "not banned any more");
    assert!(http(admin, "DELETE", "/bans/not-an-ip").contains("{\"error\":\"ip: `not-an-ip` is not an IP address\"}"));
    assert!(guess(200, "1", "s3cret-pw"), "the lifted source authenticates");
    let reports = router.outcomes(2);
    let _ = carrier.wait();
    assert_eq!(reports.matches("outcome: answered").count(), 2, "{reports}");
}

/// A raw SIP client: sends `message` to `to` from `socket`, returns the
/// first response that is not provisional (the whole text).
fn final_response(socket: &std::net::UdpSocket, to: u16, message: &str) -> String {
    socket.send_to(message.as_bytes(), ("127.0.0.1", to)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 8192];
    loop {
        let (n, _) = socket.recv_from(&mut buf).expect("a final response within 10 s");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 ") && !text.starts_with("SIP/2.0 1") {
            return text;
        }
    }
}

fn header_value<'a>(message: &'a str, name: &str) -> &'a str {
    message
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
        .unwrap_or_default()
}

fn param<'a>(value: &'a str, name: &str) -> &'a str {
    value
        .split(',')
        .find_map(|p| p.trim().trim_start_matches("Digest ").strip_prefix(&format!("{name}=")))
        .map(|v| v.trim_matches('"'))
        .unwrap_or_default()
}

#[test]
fn routers_sharing_a_nonce_secret_accept_each_others_challenges() {
    // The carrier's gateway: the test's own socket, which sees whether a
    // router let the call through.
    let gateway = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let gw = gateway.local_addr().unwrap().port();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("nonce.key");
    std::fs::write(&key, "0123456789abcdefghijklmnopqrstuvwxyzABCDEF\n").unwrap();
    let creds = "credentials = [{ username = \"acme\", password_env = \"ACME_SIP_PASSWORD\" }]";
    let shared = format!("{creds}\n[auth]\nnonce_secret_file = {:?}", key.display().to_string());
    // World-readable: refused at load, naming the key.
    let check = |text: &str| {
        let path = keys.path().join("check.toml");
        std::fs::write(&path, format!("[sip]\nlisten = [\"udp://127.0.0.1:0\"]\n{text}")).unwrap();
        trunkline_router::config::load(&path).err().map(|e| e.to_string()).unwrap_or_default()
    };
    let loose = check(&format!("[auth]\nnonce_secret_file = {:?}", key.display().to_string()));
    assert!(loose.contains("auth.nonce_secret_file: ") && loose.contains("chmod 600"), "{loose}");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (a, b) = (term_router(&[gw], &shared, Some("s3cret-pw")), term_router(&[gw], &shared, Some("s3cret-pw")));
    let own = term_router(&[gw], creds, Some("s3cret-pw"));

    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = client.local_addr().unwrap().port();
    let invite = |branch: &str, cseq: u32, auth: &str| {
        format!(
            "INVITE sip:+12125550123@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{VERIFIED}@{DOMAIN}>;tag=c1\r\nTo: <sip:+12125550123@{DOMAIN}>\r\n\
             Call-ID: shared-nonce@127.0.0.1\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{VERIFIED}@127.0.0.1:{port}>\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        )
    };
    let challenge = final_response(&client, a.port, &invite("a1", 1, ""));
    assert!(challenge.starts_with("SIP/2.0 407"), "{challenge}");
    let offer = header_value(&challenge, "Proxy-Authenticate");
    let mut answer = trunkline_sip_core::digest::DigestResponse {
        username: "acme".into(),
        realm: param(offer, "realm").into(),
        nonce: param(offer, "nonce").into(),
        uri: format!("sip:+12125550123@{DOMAIN}"),
        response: String::new(),
        algorithm: trunkline_sip_core::digest::Algorithm::Md5,
        cnonce: "0a4f113b".into(),
        nc: 1,
        nc_text: "00000001".into(),
    };
    answer.response = answer.expected("s3cret-pw", "INVITE");
    let credentials = format!(
        "Proxy-Authorization: Digest username=\"acme\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n",
        answer.realm, answer.nonce, answer.uri, answer.response
    );

    // The router that did not make the nonce and does not share the secret challenges again.
    let again = final_response(&client, own.port, &invite("o2", 2, &credentials));
    assert!(again.starts_with("SIP/2.0 407"), "{again}");
    gateway.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut buf = [0u8; 8192];
    assert!(gateway.recv_from(&mut buf).is_err(), "nothing reached the carrier");

    // The other router sharing the secret takes the answer: the call goes on to the carrier.
    client.send_to(invite("b2", 2, &credentials).as_bytes(), ("127.0.0.1", b.port)).unwrap();
    gateway.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (n, from) = gateway.recv_from(&mut buf).expect("the INVITE reached the carrier through router b");
    let sent = String::from_utf8_lossy(&buf[..n]);
    assert!(sent.starts_with("INVITE sip:+12125550123@127.0.0.1:"), "{sent}");
    assert_eq!(from.port(), b.port, "router b sent it");
}

/// A router terminating calls for `DOMAIN` to the carrier at `gw` with
/// the call-frequency plugin, `plugin_config` (the body of its inline
/// config table) and `sections` (more configuration); and its config file.
pub(super) fn call_frequency_router(gw: u16, plugin_config: &str, sections: &str) -> (Router, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    trunkline_tests::install(trunkline_tests::wasm::CALL_FREQUENCY, &plugins, "call-frequency");
    let config = dir.path().join("trunkline.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = [\"udp://127.0.0.1:0\"]\ndomains = [\"trunkline.test\"]\nfailover_timeout_ms = 300\n\
             [plugins]\ndir = \"plugins\"\nwatch = false\n{sections}\n\
             [[carrier]]\nname = \"pstn\"\ngateways = [\"sip:127.0.0.1:{gw}\"]\n\
             [[trunk]]\nname = \"acme-prod\"\nnumbers = [\"{OWNED}\"]\n\
             plugins = [{{ name = \"call-frequency\", config = {{ {plugin_config} }} }}]\n\
             [trunk.termination]\ndomain = \"{DOMAIN}\"\ncarrier = \"pstn\"\ncaller_ids = [\"{VERIFIED}\"]\nacl = [\"127.0.0.0/8\"]\n"
        ),
    )
    .unwrap();
    (Router::spawn(&config, None, 1, dir), config)
}

#[test]
fn call_frequency_refuses_the_third_call_of_the_day_to_one_number_even_after_a_sigkill() {
    let gw = free_udp_port();
    let (router, config) = call_frequency_router(gw, "reason = \"Too many calls to this number today\"", "");
    let mut carrier = sipp(&["-sn", "uas", "-p", &gw.to_string(), "-m", "3"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let scenarios = tempfile::tempdir().unwrap();
    let answered = customer(scenarios.path(), false, VERIFIED, 200, "");
    let refused = customer(scenarios.path(), false, VERIFIED, 403, "");
    for i in 0..2 {
        assert!(run_customer(&router, &answered, "+12125550123", &[]), "call {i} to the number is answered");
    }
    assert!(run_customer(&router, &refused, "+12125550123", &[]), "the third call today gets 403");
    assert!(run_customer(&router, &answered, "+13105550100", &[]), "another number is not counted with it");
    let reports = router.outcomes(4);
    assert!(reports.contains("Too many calls to this number today"), "{reports}");
    assert!(carrier.wait().unwrap().success(), "the carrier got the three calls let through");

    // SIGKILL, past the kv's write-behind window: the counts come back
    // with the router (kept in its store), and the number stays refused.
    std::thread::sleep(Duration::from_millis(500));
    let mut router = router;
    router.child.kill().unwrap();
    router.child.wait().unwrap();
    let again = Router::again(&config, router.port);
    assert!(run_customer(&again, &refused, "+12125550123", &[]), "still refused after the restart");
    assert!(again.outcomes(1).contains("Too many calls"), "refused by the plugin");
}
