//! Target health: a silent origination URI is marked down by its
//! unanswered OPTIONS pings, and the next caller goes straight to the
//! backup (no failover wait); it comes back up once it answers; the API
//! and the metrics show both.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

/// A minimal UAS: answers SIP requests on `socket` with 200 OK (an INVITE
/// with a session description; ACK gets nothing), OPTIONS only while
/// `answering`.
fn responder(socket: UdpSocket, answering: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u32> {
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    std::thread::spawn(move || {
        let mut answered = 0;
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
            let text = String::from_utf8_lossy(&buf[..n]);
            if text.starts_with("OPTIONS ") && !answering.load(Ordering::Relaxed) {
                continue;
            }
            if text.starts_with("ACK ") {
                continue;
            }
            let keep: Vec<&str> = text
                .lines()
                .filter(|l| {
                    ["via:", "from:", "call-id:", "cseq:", "to:"].iter().any(|h| l.to_ascii_lowercase().starts_with(h))
                })
                .collect();
            let mut reply = String::from("SIP/2.0 200 OK\r\n");
            for l in keep {
                reply.push_str(l.trim_end());
                if l.to_ascii_lowercase().starts_with("to:") {
                    reply.push_str(";tag=probe");
                }
                reply.push_str("\r\n");
            }
            if text.starts_with("INVITE ") {
                let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
                let contact = format!("Contact: <sip:pbx@{}>\r\n", socket.local_addr().unwrap());
                reply.push_str(&contact);
                reply.push_str(&format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len()));
            } else {
                reply.push_str("Content-Length: 0\r\n\r\n");
            }
            let _ = socket.send_to(reply.as_bytes(), from);
            answered += 1;
        }
        answered
    })
}

fn trunks(port: u16) -> Vec<Value> {
    let r = http(port, "GET", "/trunks");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

fn target_up(port: u16, uri: &str) -> bool {
    let t = trunks(port);
    let targets = t[0]["origination"].as_array().unwrap();
    targets.iter().find(|x| x["uri"] == uri).unwrap()["health"]["up"].as_bool().unwrap()
}

/// Wait (bounded) until `uri`'s health is `up`.
fn wait_health(port: u16, uri: &str, up: bool) {
    let until = Instant::now() + Duration::from_secs(30);
    while target_up(port, uri) != up {
        assert!(Instant::now() < until, "{uri} never became {}: {:#?}", if up { "up" } else { "down" }, trunks(port));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_silent_target_is_marked_down_skipped_at_once_and_back_up_when_it_answers() {
    let probe_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent = probe_socket.local_addr().unwrap().port();
    let backup_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let backup = backup_socket.local_addr().unwrap().port();
    let uac_port = free_udp_port();
    let (answering, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let probe = responder(probe_socket, answering.clone(), stop.clone());
    let pbx_answering = Arc::new(AtomicBool::new(true));
    let pbx = responder(backup_socket, pbx_answering.clone(), stop.clone());
    // The default failover timeout: a silent target would cost each caller 4 s.
    let rest = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[trunk]]\nname = \"acme-prod\"\nnumbers = [\"+14155550100\"]\nhealth_check_interval_secs = 1\nmedia = \"passthrough\"\n\
         [[trunk.origination]]\nuri = \"sip:127.0.0.1:{silent}\"\npriority = 5\n\
         [[trunk.origination]]\nuri = \"sip:127.0.0.1:{backup}\"\npriority = 10\n"
    );
    let router = Router::launch(Setup {
        sip: "failover_timeout_ms = 4000\nhealth_check_down_after = 2\nhealth_check_up_after = 2",
        rest: &rest,
        ..Setup::default()
    });
    let port = router.admin_port();
    let silent_uri = format!("sip:127.0.0.1:{silent}");
    wait_health(port, &silent_uri, false);
    // The metrics copy the health once a second.
    let line = format!("trunkline_target_up{{target=\"{silent_uri}\"}} 0");
    let until = Instant::now() + Duration::from_secs(10);
    let mut metrics = http(port, "GET", "/metrics");
    while !metrics.contains(&line) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        metrics = http(port, "GET", "/metrics");
    }
    assert!(metrics.contains(&line), "{metrics}");

    assert!(target_up(port, &format!("sip:127.0.0.1:{backup}")), "the backup answers its pings");
    let call = call_in(&router, uac_port, &["-sn", "uac"], &["-m", "1"]);
    let report = router.outcomes(1);
    assert!(call.success(), "{report}");
    assert!(report.contains(&format!("{silent_uri}: skipped (down: OPTIONS pings unanswered)")), "{report}");
    assert!(report.contains(&format!("INVITE sip:+14155550100@127.0.0.1:{backup} -> 200 OK")), "{report}");
    assert!(!report.contains("no response in 4000 ms"), "the caller did not wait for the silent target\n{report}");

    // Every target down: they are tried anyway (here the first answers the INVITE).
    pbx_answering.store(false, Ordering::Relaxed);
    wait_health(port, &format!("sip:127.0.0.1:{backup}"), false);
    assert!(!target_up(port, &silent_uri));
    let call = call_in(&router, free_udp_port(), &["-sn", "uac"], &["-m", "1"]);
    let report = router.outcomes(1);
    assert!(call.success() && !report.contains("skipped"), "{report}");
    assert!(report.contains(&format!("INVITE sip:+14155550100@127.0.0.1:{silent} -> 200 OK")), "{report}");

    // The silent target answers again: up after two answered pings.
    answering.store(true, Ordering::Relaxed);
    wait_health(port, &silent_uri, true);
    let t = trunks(port);
    let h = &t[0]["origination"][0]["health"];
    assert!(h["answers"].as_u64().unwrap() >= 2 && h["last_status"] == 200, "{t:#?}");
    stop.store(true, Ordering::Relaxed);
    assert!(probe.join().unwrap() >= 4, "pings, an INVITE and a BYE");
    assert!(pbx.join().unwrap() >= 3, "pings, an INVITE and a BYE");
}

/// The pings through a peer nobody here wrote: the target is a Kamailio
/// proxy (the shared kit's proxy.cfg) that relays the OPTIONS to the router
/// itself, which answers 200; Kamailio relays the answer back. The target
/// is up while Kamailio runs, and down once it is stopped.
#[test]
fn a_kamailio_target_is_up_while_it_relays_the_pings_and_down_once_stopped() {
    let kamailio_port = free_udp_port();
    let rest = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[trunk]]\nname = \"acme-prod\"\nnumbers = [\"+14155550100\"]\nhealth_check_interval_secs = 1\n\
         [[trunk.origination]]\nuri = \"sip:127.0.0.1:{kamailio_port}\"\n"
    );
    let router = Router::launch(Setup {
        sip: "health_check_down_after = 2\nhealth_check_up_after = 2",
        rest: &rest,
        ..Setup::default()
    });
    let port = router.admin_port();
    let uri = format!("sip:127.0.0.1:{kamailio_port}");
    let kamailio = super::proxy::Kamailio::start_on(kamailio_port, &format!("sip:127.0.0.1:{}", router.port));
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let t = trunks(port);
        let h = &t[0]["origination"][0]["health"];
        if h["up"] == true && h["last_status"] == 200 && h["answers"].as_u64().unwrap_or(0) >= 2 {
            break;
        }
        assert!(Instant::now() < until, "Kamailio never relayed two answered pings: {t:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(kamailio);
    wait_health(port, &uri, false);
}
