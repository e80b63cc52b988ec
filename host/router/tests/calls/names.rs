//! Origination URIs that name their host: resolved through the system
//! resolver (`localhost` from /etc/hosts), a name that does not resolve
//! skipped for the next target; a host without a port through its SRV
//! records, from a DNS server on loopback (`sip.dns_servers`).

use super::tcp::trunk_uris;
use super::*;

#[test]
fn an_origination_uri_with_a_host_name_is_resolved_and_called_and_a_name_that_does_not_resolve_is_skipped() {
    let (uas_port, uac_port) = (free_udp_port(), free_udp_port());
    // `.invalid` never resolves (RFC 2606).
    let uris = [("sip:no-such-pbx.invalid".to_owned(), 5), (format!("sip:LocalHost:{uas_port}"), 10)];
    let router = Router::start(&trunk_uris(&uris));
    let dir = tempfile::tempdir().unwrap();
    let msgs = dir.path().join("uas.msg");
    let mut uas = sipp(&[
        "-sn",
        "uas",
        "-p",
        &uas_port.to_string(),
        "-m",
        "2",
        "-trace_msg",
        "-message_file",
        msgs.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = call_in(&router, uac_port, &["-sn", "uac"], &["-m", "2", "-r", "2", "-d", "200"]);
    let reports = router.outcomes(2);
    let uas_ok = uas.wait().unwrap();
    assert!(uac.success(), "SIPp UAC: both calls answered\n{reports}");
    assert!(uas_ok.success(), "SIPp UAS saw complete calls");
    assert_eq!(
        reports.matches("sip:+14155550100@no-such-pbx.invalid: skipped (no-such-pbx.invalid does not resolve").count(),
        2,
        "{reports}"
    );
    let answered =
        format!("INVITE sip:+14155550100@LocalHost:{uas_port} at 127.0.0.1:{uas_port} -> 180 Ringing -> 200 OK");
    assert_eq!(reports.matches(&answered).count(), 2, "{reports}");
    let seen = std::fs::read_to_string(&msgs).unwrap();
    // The request-URI keeps the name as configured; it went to 127.0.0.1.
    assert_eq!(seen.matches(&format!("INVITE sip:+14155550100@LocalHost:{uas_port} SIP/2.0")).count(), 2, "{seen}");
}

/// SRV records by service name: (priority, weight, port, target).
type SrvZone = Vec<(&'static str, Vec<(u16, u16, u16, &'static str)>)>;
/// A records by host name.
type AZone = Vec<(&'static str, [u8; 4])>;

/// A DNS server on loopback for one test: SRV records per service name,
/// A records per host name; NXDOMAIN for anything else. Stops when dropped.
struct FakeDns {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl FakeDns {
    fn start(srv: SrvZone, a: AZone) -> FakeDns {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let port = sock.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut asked = Vec::new();
            let mut buf = [0u8; 1500];
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                if let Some((question, reply)) = dns_reply(&buf[..n], &srv, &a) {
                    asked.push(question);
                    let _ = sock.send_to(&reply, from);
                }
            }
            asked
        });
        FakeDns { port, stop, thread: Some(thread) }
    }

    /// The questions answered so far, as "TYPE name".
    fn stop(mut self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The answer to one DNS query (RFC 1035 §4), and the question as "TYPE name".
fn dns_reply(q: &[u8], srv: &SrvZone, a: &AZone) -> Option<(String, Vec<u8>)> {
    let mut at = 12;
    let mut labels = Vec::new();
    while *q.get(at)? != 0 {
        let len = q[at] as usize;
        labels.push(String::from_utf8_lossy(q.get(at + 1..at + 1 + len)?).to_ascii_lowercase());
        at += 1 + len;
    }
    let name = labels.join(".");
    let qtype = u16::from_be_bytes([*q.get(at + 1)?, *q.get(at + 2)?]);
    let question_end = at + 5;
    let encode = |name: &str| {
        let mut out = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    };
    let mut answers: Vec<Vec<u8>> = Vec::new();
    let srv_records = srv.iter().find(|(n, _)| *n == name).map(|(_, r)| r);
    let address = a.iter().find(|(n, _)| *n == name).map(|(_, ip)| ip);
    let rr = |rtype: u16, rdata: Vec<u8>| {
        let mut r = vec![0xC0, 0x0C];
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&60u32.to_be_bytes());
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
        r
    };
    match (qtype, srv_records, address) {
        (33, Some(records), _) => {
            for (priority, weight, port, target) in records {
                let mut rdata = Vec::new();
                for v in [priority, weight, port] {
                    rdata.extend_from_slice(&v.to_be_bytes());
                }
                rdata.extend_from_slice(&encode(target));
                answers.push(rr(33, rdata));
            }
        }
        (1, _, Some(ip)) => answers.push(rr(1, ip.to_vec())),
        _ => {}
    }
    let known = srv_records.is_some() || address.is_some();
    let mut reply = q[..2].to_vec();
    reply.extend_from_slice(&(0x8180u16 | if known { 0 } else { 3 }).to_be_bytes());
    for count in [1, answers.len() as u16, 0, 0] {
        reply.extend_from_slice(&count.to_be_bytes());
    }
    reply.extend_from_slice(q.get(12..question_end)?);
    for r in answers {
        reply.extend_from_slice(&r);
    }
    let kind = match qtype {
        1 => "A",
        28 => "AAAA",
        33 => "SRV",
        _ => "other",
    };
    Some((format!("{kind} {name}"), reply))
}

/// RFC 3263 §4.2 through a real DNS exchange (`sip.dns_servers`): a URI
/// naming a host without a port is tried at its SRV records' hosts and
/// ports, by priority, failing over from a silent one.
#[test]
fn a_uri_without_a_port_goes_to_its_srv_records_in_priority_order() {
    let (silent, uas_port, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let dns = FakeDns::start(
        vec![("_sip._udp.pbx.test", vec![(20, 0, uas_port, "b.pbx.test"), (10, 0, silent, "a.pbx.test")])],
        vec![("a.pbx.test", [127, 0, 0, 1]), ("b.pbx.test", [127, 0, 0, 1])],
    );
    let sip = format!("failover_timeout_ms = 500\ndns_servers = [\"127.0.0.1:{}\"]", dns.port);
    let router =
        Router::launch(Setup { sip: &sip, rest: &trunk_uris(&[("sip:pbx.test".to_owned(), 10)]), ..Setup::default() });
    let mut uas = sipp(&["-sn", "uas", "-p", &uas_port.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = call_in(&router, uac_port, &["-sn", "uac"], &["-m", "1", "-d", "200"]);
    let reports = router.outcomes(1);
    let uas_ok = uas.wait().unwrap();
    let asked = dns.stop();
    assert!(uac.success() && uas_ok.success(), "the call is answered by the second record's PBX\n{reports}");
    let route = [
        format!("INVITE sip:+14155550100@pbx.test at 127.0.0.1:{silent} -> no response in 500 ms"),
        format!("INVITE sip:+14155550100@pbx.test at 127.0.0.1:{uas_port} -> 180 Ringing -> 200 OK"),
    ];
    assert!(reports.contains(&format!("{}\n    {}", route[0], route[1])), "{reports}");
    assert_eq!(asked.iter().filter(|q| *q == "SRV _sip._udp.pbx.test").count(), 1, "{asked:?}");
    assert!(asked.contains(&"A a.pbx.test".to_owned()) && asked.contains(&"A b.pbx.test".to_owned()), "{asked:?}");
}
