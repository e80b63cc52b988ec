//! Disaster recovery: every origination URI fails, the router POSTs to the
//! trunk's `disaster_recovery_url` (a small HTTP server in the test) and
//! executes the TwiML it gets back.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::*;

/// An HTTP server answering POSTs with canned TwiML by path, recording
/// each request as `PATH?BODY`. Its thread ends with the test process.
struct TwimlServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

/// Answer one request on `s` with the document for its path.
fn serve_one(mut s: impl Read + Write, docs: &[(String, String)], seen: &Mutex<Vec<String>>) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let (path, body) = loop {
        let Ok(n) = s.read(&mut buf) else { break (String::new(), String::new()) };
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= len || n == 0 {
                break (head.split(' ').nth(1).unwrap_or("").to_owned(), body.to_owned());
            }
        }
        if n == 0 {
            break (String::new(), String::new());
        }
    };
    if path.is_empty() {
        return; // e.g. a TLS handshake the client gave up
    }
    seen.lock().unwrap().push(format!("{path}?{body}"));
    let reply = match docs.iter().find(|(p, _)| *p == path) {
        Some((_, doc)) => {
            format!("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{doc}", doc.len())
        }
        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
    };
    let _ = s.write_all(reply.as_bytes());
    let _ = s.flush();
}

impl TwimlServer {
    fn start(docs: &[(&str, &str)]) -> TwimlServer {
        TwimlServer::start_with(docs, None)
    }

    /// Over TLS with `config` when given (`https://`).
    fn start_with(docs: &[(&str, &str)], tls: Option<Arc<rustls::ServerConfig>>) -> TwimlServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let docs: Vec<(String, String)> = docs.iter().map(|(p, d)| (p.to_string(), d.to_string())).collect();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(s) = stream else { continue };
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                match &tls {
                    None => serve_one(s, &docs, &seen),
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config.clone()) else { continue };
                        serve_one(rustls::StreamOwned::new(conn, s), &docs, &seen)
                    }
                }
            }
        });
        TwimlServer { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A trunk whose only origination URI answers 503, with a DR URL.
fn failing_trunk(failing_port: u16, dr_url: &str) -> String {
    format!(
        "[[trunk]]\nname = \"acme-prod\"\nnumbers = [\"+14155550100\"]\ndisaster_recovery_url = \"{dr_url}\"\n\
         plugins = [{{ name = \"customer-routing\" }}]\n\
         [[trunk.origination]]\nuri = \"sip:127.0.0.1:{failing_port}\"\n"
    )
}

fn failing_pbx(port: u16, calls: usize, dir: &Path) -> Child {
    let failing =
        from_template("uas-final.xml", dir, &[("CODE", "503".into()), ("REASON", "Service Unavailable".into())]);
    sipp(&["-sf", failing.to_str().unwrap(), "-p", &port.to_string(), "-m", &calls.to_string()]).spawn().unwrap()
}

#[test]
fn twiml_dial_sip_reaches_a_second_pbx_after_say_pause_and_redirect() {
    let (broken, pbx2, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let dial = format!("<Response><Dial timeout=\"10\"><Sip>sip:127.0.0.1:{pbx2}</Sip></Dial></Response>");
    let http = TwimlServer::start(&[
        ("/dr", "<?xml version=\"1.0\"?><Response><Say>Please hold</Say><Pause length=\"1\"/><Redirect>/dr2</Redirect></Response>"),
        ("/dr2", &dial),
    ]);
    let router = Router::start(&failing_trunk(broken, &format!("http://127.0.0.1:{}/dr", http.port)));
    let dir = tempfile::tempdir().unwrap();
    let mut bad = failing_pbx(broken, 1, dir.path());
    let mut uas = sipp(&["-sn", "uas", "-p", &pbx2.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = call_in(&router, uac_port, &["-sn", "uac"], &["-m", "1", "-d", "100"]);
    let reports = router.outcomes(1);
    let (bad_ok, uas_ok) = (bad.wait().unwrap(), uas.wait().unwrap());
    assert!(uac.success() && bad_ok.success() && uas_ok.success(), "answered by the DR PBX\n{reports}");
    assert!(reports.contains("-> 503 Service Unavailable"), "{reports}");
    assert!(
        reports.contains("TwiML <Say>: not supported, skipped") && reports.contains("TwiML <Pause length=\"1\">"),
        "{reports}"
    );
    assert!(
        reports.contains(&format!("disaster recovery: POST http://127.0.0.1:{}/dr2", http.port)),
        "relative Redirect resolved\n{reports}"
    );
    assert!(
        reports.contains(&format!("INVITE sip:+14155550100@127.0.0.1:{pbx2} -> 180 Ringing -> 200 OK")),
        "{reports}"
    );
    assert!(reports.contains(&format!("outcome: answered by sip:+14155550100@127.0.0.1:{pbx2}")), "{reports}");
    let requests = http.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let first = &requests[0];
    assert!(first.starts_with("/dr?"), "{first}");
    for param in
        ["CallSid=CA", "AccountSid=AC", "From=sipp", "To=%2B14155550100", "Direction=inbound", "CallStatus=ringing"]
    {
        assert!(first.contains(param), "{param} missing in {first}");
    }
    let sid = |r: &str| r.split('&').find(|p| p.starts_with("CallSid=")).map(str::to_owned);
    assert_eq!(sid(first), sid(&requests[1]), "one CallSid per call across fetches");
}

#[test]
fn twiml_dial_number_through_the_gateway_then_reject_busy_gives_486() {
    let (broken, gateway, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let http = TwimlServer::start(&[(
        "/dr",
        "<Response><Dial><Number>+14155550111</Number></Dial><Reject reason=\"busy\"/></Response>",
    )]);
    let trunk = failing_trunk(broken, &format!("http://127.0.0.1:{}/dr", http.port));
    let rest = format!("[disaster_recovery]\npstn_gateway = \"sip:127.0.0.1:{gateway}\"\n{trunk}");
    let router = Router::launch(Setup { rest: &rest, ..Setup::default() });
    let dir = tempfile::tempdir().unwrap();
    let mut bad = failing_pbx(broken, 1, dir.path());
    let gw_dir = tempfile::tempdir().unwrap();
    let unavailable = from_template(
        "uas-final.xml",
        gw_dir.path(),
        &[("CODE", "480".into()), ("REASON", "Temporarily Unavailable".into())],
    );
    let msgs = dir.path().join("gw.msg");
    let mut gw = sipp(&[
        "-sf",
        unavailable.to_str().unwrap(),
        "-p",
        &gateway.to_string(),
        "-m",
        "1",
        "-trace_msg",
        "-message_file",
        msgs.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let scenario = expect_final(486, dir.path());
    let uac = call_in(&router, uac_port, &["-sf", scenario.to_str().unwrap()], &["-m", "1"]);
    let reports = router.outcomes(1);
    let (bad_ok, gw_ok) = (bad.wait().unwrap(), gw.wait().unwrap());
    assert!(uac.success(), "the carrier got 486 from <Reject reason=\"busy\">\n{reports}");
    assert!(bad_ok.success() && gw_ok.success(), "{reports}");
    assert!(
        reports.contains(&format!("INVITE sip:+14155550111@127.0.0.1:{gateway} -> 480 Temporarily Unavailable")),
        "{reports}"
    );
    assert!(reports.contains("outcome: rejected 486 Busy Here"), "{reports}");
    let seen = std::fs::read_to_string(&msgs).unwrap();
    assert!(seen.contains(&format!("INVITE sip:+14155550111@127.0.0.1:{gateway} SIP/2.0")), "{seen}");
}

#[test]
fn a_failed_twiml_fetch_ends_the_call_with_503() {
    let (broken, uac_port) = (free_udp_port(), free_udp_port());
    let closed = super::tcp::free_tcp_port();
    let router = Router::start(&failing_trunk(broken, &format!("http://127.0.0.1:{closed}/dr")));
    let dir = tempfile::tempdir().unwrap();
    let mut bad = failing_pbx(broken, 1, dir.path());
    std::thread::sleep(Duration::from_millis(300));
    let scenario = expect_final(503, dir.path());
    let uac = call_in(&router, uac_port, &["-sf", scenario.to_str().unwrap()], &["-m", "1"]);
    let reports = router.outcomes(1);
    let _ = bad.wait();
    assert!(uac.success(), "the carrier got 503\n{reports}");
    assert!(reports.contains("fetch failed: connection:"), "{reports}");
    assert!(reports.contains("outcome: failed 503 Service Unavailable"), "{reports}");
}

/// One call whose every origination URI fails, so that the router fetches
/// `<Reject reason="busy"/>` from an HTTPS server whose certificate (from
/// the test CA the router trusts) names `localhost`, at
/// `https://URL_HOST:PORT/dr`. The caller expects `expect`. Returns whether
/// it got it, the call's report and the server.
fn call_with_https_twiml(url_host: &str, expect: u16) -> (bool, String, TwimlServer) {
    let pki = super::tls::pki();
    let config = rustls::ServerConfig::builder_with_provider(super::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.named_der.clone()], pki.named_key.clone_key())
        .unwrap();
    let https =
        TwimlServer::start_with(&[("/dr", "<Response><Reject reason=\"busy\"/></Response>")], Some(Arc::new(config)));
    let (broken, uac_port) = (free_udp_port(), free_udp_port());
    let sip = format!("failover_timeout_ms = 300\ntls = {{ ca = \"{}/ca.pem\" }}", pki.dir.path().display());
    let rest = failing_trunk(broken, &format!("https://{url_host}:{}/dr", https.port));
    let router = Router::launch(Setup { sip: &sip, rest: &rest, ..Setup::default() });
    let dir = tempfile::tempdir().unwrap();
    let mut bad = failing_pbx(broken, 1, dir.path());
    std::thread::sleep(Duration::from_millis(300));
    let scenario = super::expect_final(expect, dir.path());
    let uac = call_in(&router, uac_port, &["-sf", scenario.to_str().unwrap()], &["-m", "1"]);
    let reports = router.outcomes(1);
    let _ = bad.wait();
    (uac.success(), reports, https)
}

#[test]
fn twiml_is_fetched_over_https_from_a_server_whose_certificate_names_the_url_host() {
    let (got_486, reports, https) = call_with_https_twiml("localhost", 486);
    assert!(got_486, "the caller got 486 from the TwiML\n{reports}");
    assert!(reports.contains(&format!("disaster recovery: POST https://localhost:{}/dr", https.port)), "{reports}");
    assert_eq!(https.requests().len(), 1, "one POST over TLS");
}

#[test]
fn an_https_twiml_server_whose_certificate_names_another_host_is_not_trusted() {
    // The certificate names `localhost`, the URL its IP.
    let (got_503, reports, https) = call_with_https_twiml("127.0.0.1", 503);
    assert!(got_503, "no TwiML: the caller got the last failure, 503\n{reports}");
    assert!(reports.contains("fetch failed: TLS:"), "{reports}");
    assert!(https.requests().is_empty(), "nothing was posted to the untrusted server");
}
