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

/// Answer one request on `s` with the document (or file) for its path.
fn serve_one(mut s: impl Read + Write, docs: &[(String, Vec<u8>)], seen: &Mutex<Vec<String>>) {
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
            let kind = if path.ends_with(".wav") { "audio/wav" } else { "text/xml" };
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                doc.len()
            )
            .into_bytes();
            r.extend_from_slice(doc);
            r
        }
        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    };
    let _ = s.write_all(&reply);
    let _ = s.flush();
}

impl TwimlServer {
    fn start(docs: &[(&str, &str)]) -> TwimlServer {
        TwimlServer::start_with(docs, None)
    }

    /// Over TLS with `config` when given (`https://`).
    fn start_with(docs: &[(&str, &str)], tls: Option<Arc<rustls::ServerConfig>>) -> TwimlServer {
        let docs: Vec<(String, Vec<u8>)> = docs.iter().map(|(p, d)| (p.to_string(), d.as_bytes().to_vec())).collect();
        TwimlServer::serve(docs, tls)
    }

    /// Documents and files (bytes) by path, over plain HTTP.
    fn start_files(docs: Vec<(String, Vec<u8>)>) -> TwimlServer {
        TwimlServer::serve(docs, None)
    }

    fn serve(docs: Vec<(String, Vec<u8>)>, tls: Option<Arc<rustls::ServerConfig>>) -> TwimlServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
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

/// `<Play>` then `<Hangup/>`: the router answers the carrier itself, plays
/// a 16-bit PCM file as PCMA (the carrier's first choice) twice through
/// its relay to the carrier's media socket, then hangs up.
#[test]
fn twiml_play_answers_the_caller_plays_the_file_through_the_relay_then_hangs_up() {
    use trunkline_media_core::g711::Law;
    let (broken, uac_port) = (free_udp_port(), free_udp_port());
    let media = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    media.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let media_port = media.local_addr().unwrap().port();
    let wav = super::media::tone_wav(8000, 1);
    let doc = "<Response><Play loop=\"2\">closed.wav</Play><Hangup/></Response>";
    let http = TwimlServer::start_files(vec![("/dr".into(), doc.into()), ("/closed.wav".into(), wav.clone())]);
    let router = Router::start(&failing_trunk(broken, &format!("http://127.0.0.1:{}/dr", http.port)));
    let dir = tempfile::tempdir().unwrap();
    let mut bad = failing_pbx(broken, 1, dir.path());
    std::thread::sleep(Duration::from_millis(300));
    let listener = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = media.recv_from(&mut buf) {
            got.push((buf[..n].to_vec(), from));
        }
        got
    });
    let scenario = from_template("uac-hears-play.xml", dir.path(), &[("MEDIA_PORT", media_port.to_string())]);
    let uac = call_in(&router, uac_port, &["-sf", scenario.to_str().unwrap()], &["-m", "1"]);
    let reports = router.outcomes(1);
    let _ = bad.wait();
    let packets = listener.join().unwrap();
    assert!(uac.success(), "answered by the router, then its BYE\n{reports}");
    assert!(reports.contains("TwiML <Play>: answered by the router (PCMA)"), "{reports}");
    assert!(reports.contains("1000 ms of PCMA played 2 time(s)"), "{reports}");
    assert!(reports.contains("outcome: answered by the router (TwiML <Play>)"), "{reports}");
    assert!(reports.contains("hung up by the router"), "{reports}");
    assert!(reports.contains(&format!("audio: caller 127.0.0.1:{media_port} <-> router :")), "{reports}");
    assert!(reports.contains("<-> callee -"), "nobody on the other side\n{reports}");
    let to_caller: u16 = reports.split("<-> router :").nth(1).and_then(|r| r.split(' ').next()?.parse().ok()).unwrap();
    assert!(packets.iter().all(|(_, from)| from.port() == to_caller), "from the router's port facing the caller");
    // The tone, coded as A-law, 160 samples a packet, twice.
    let samples: Vec<i16> = wav[44..].chunks_exact(2).map(|s| i16::from_le_bytes([s[0], s[1]])).collect();
    let alaw: Vec<u8> = samples.iter().map(|&s| Law::Alaw.encode(s)).collect();
    assert!(packets.len() >= 95 && packets.len() <= 100, "two passes of 50 packets: {}\n{reports}", packets.len());
    for (i, (p, _)) in packets.iter().enumerate() {
        assert_eq!(p[1] & 0x7f, 8, "PCMA");
        let at = (i % 50) * 160;
        assert_eq!(&p[12..], &alaw[at..at + 160], "packet {i}");
    }
    assert!(reports.contains(&format!("{} packets played to the caller", packets.len())), "{reports}");
    assert_eq!(http.requests().iter().filter(|r| r.starts_with("/closed.wav")).count(), 1, "fetched once");
}

/// baresip, a softphone nobody here wrote, calls with mandatory SRTP; no
/// origination URI answers; the DR `<Play>` is answered by the router with
/// SRTP of its own and played encrypted, then `<Hangup/>` ends the call.
#[test]
fn an_srtp_baresip_caller_hears_the_play_encrypted_and_is_hung_up() {
    let silent = free_udp_port(); // nothing listens: the target fails over after 300 ms
    let wav = super::media::tone_wav(8000, 2);
    let doc = "<Response><Play>/closed.wav</Play><Hangup/></Response>";
    let http = TwimlServer::start_files(vec![("/dr".into(), doc.into()), ("/closed.wav".into(), wav)]);
    let router = Router::start(&failing_trunk(silent, &format!("http://127.0.0.1:{}/dr", http.port)));
    let mut caller = super::baresip::Baresip::start("<sip:+12125550123@127.0.0.1>;regint=0;mediaenc=srtp-mand", None);
    caller.command("dial", &format!("sip:+14155550100@127.0.0.1:{};transport=udp", router.port));
    let first = caller.wait_for_either("CALL_ESTABLISHED", "CALL_CLOSED");
    if first == "CALL_CLOSED" {
        panic!("refused before the <Play> answered:\n{}", router.outcomes(1));
    }
    caller.wait_for("CALL_CLOSED");
    let reports = router.outcomes(1);
    assert!(reports.contains("-> no response in 300 ms"), "{reports}");
    assert!(reports.contains("answered by the router (PCMU)"), "{reports}");
    assert!(reports.contains("caller SRTP"), "{reports}");
    assert!(reports.contains("100 packets played to the caller"), "{reports}");
    assert!(reports.contains("hung up by the router"), "{reports}");
    let trace = caller.trace();
    // baresip's srtp module drops (and warns about) what it cannot
    // unprotect; its stream reports the first packet that got through.
    let (_, port) = ok_port(&trace, &router, caller.port);
    assert!(
        trace.contains(&format!("incoming rtp for 'audio' established, receiving from 127.0.0.1:{port}")),
        "baresip decrypted the router's packets\n{trace}"
    );
    assert!(!trace.contains("failed to unprotect"), "{trace}");
    let got = super::baresip::received(&trace, caller.port, &router);
    let ok = got.iter().find(|m| m.starts_with("SIP/2.0 200") && m.contains("m=audio")).expect("the router's 200");
    assert!(ok.contains("RTP/SAVP") && ok.contains("a=crypto:"), "{ok}");
    assert!(got.iter().any(|m| m.starts_with("BYE ")), "the router's BYE: {got:#?}");
}

/// The router's 200 (with SDP) that baresip on `port` got, and its audio port.
fn ok_port(trace: &str, router: &Router, port: u16) -> (String, u16) {
    let got = super::baresip::received(trace, port, router);
    let ok = got.into_iter().find(|m| m.starts_with("SIP/2.0 200") && m.contains("m=audio")).expect("the router's 200");
    let audio: u16 = ok.split("m=audio ").nth(1).and_then(|r| r.split(' ').next()?.parse().ok()).unwrap();
    (ok, audio)
}
