//! SIP over TLS (rustls), with certificates generated here (rcgen): a TLS
//! caller (a Rust client: the packaged SIPp has no TLS), a TLS PBX (a small
//! Rust UAS) whose certificate the router verifies, and old TLS refused
//! (`openssl s_client`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::*;

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files.
pub(super) struct Pki {
    pub(super) dir: tempfile::TempDir,
    ca_der: CertificateDer<'static>,
    leaf_der: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
    /// A leaf for the DNS name `localhost` (not its IP), same CA.
    pub(super) named_der: CertificateDer<'static>,
    pub(super) named_key: PrivateKeyDer<'static>,
}

pub(super) fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let named_key = rcgen::KeyPair::generate().unwrap();
    let named = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&named_key, &ca, &ca_key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("server.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), leaf_key.serialize_pem()).unwrap();
    Pki {
        ca_der: ca.der().clone(),
        leaf_der: leaf.der().clone(),
        leaf_key: PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        named_der: named.der().clone(),
        named_key: PrivateKeyDer::try_from(named_key.serialize_der()).unwrap(),
        dir,
    }
}

pub(super) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_router(pki: &Pki, uris: &[(String, u16)]) -> Router {
    let d = pki.dir.path().display();
    let sip = format!("failover_timeout_ms = 300\ntls = {{ cert = \"{d}/server.pem\", key = \"{d}/server.key\", ca = \"{d}/ca.pem\" }}");
    Router::launch(Setup {
        listen: &["udp://127.0.0.1:0", "tls://127.0.0.1:0"],
        sip: &sip,
        rest: &super::tcp::trunk_uris(uris),
        ..Setup::default()
    })
}

/// Read one SIP message from a stream (framed by Content-Length).
fn read_sip(s: &mut impl Read) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed mid-message: {}", String::from_utf8_lossy(&buf));
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len: usize =
        head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

/// A TLS connection to the router trusting the test CA, and its local address.
fn tls_client(
    pki: &Pki,
    port: u16,
) -> (rustls::StreamOwned<rustls::ClientConnection, TcpStream>, std::net::SocketAddr) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let local = tcp.local_addr().unwrap();
    (rustls::StreamOwned::new(conn, tcp), local)
}

fn header<'a>(m: &'a str, name: &str) -> &'a str {
    m.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).unwrap_or_else(|| panic!("no {name} in\n{m}"))
}

#[test]
fn a_tls_caller_is_routed_and_tls_below_1_2_is_refused() {
    let pki = pki();
    let pbx = free_udp_port();
    let router = tls_router(&pki, &[(format!("sip:127.0.0.1:{pbx}"), 10)]);
    let mut uas = sipp(&["-sn", "uas", "-p", &pbx.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let (mut tls, local) = tls_client(&pki, router.tls_port);
    let headers = |method: &str, cseq: u32, to_tag: &str, branch: &str| {
        format!(
            "{method} sip:+14155550100@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bK-{branch}\r\nMax-Forwards: 70\r\n\
             From: <sip:+12125550123@carrier.example>;tag=tlsc\r\nTo: <sip:+14155550100@trunkline.test>{to_tag}\r\nCall-ID: tls-call-1\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:carrier@{local};transport=tls>\r\nContent-Length: 0\r\n\r\n",
            router.tls_port
        )
    };
    tls.write_all(headers("INVITE", 1, "", "inv").as_bytes()).unwrap();
    let ok = loop {
        let m = read_sip(&mut tls);
        if m.starts_with("SIP/2.0 200") {
            break m;
        }
        assert!(m.starts_with("SIP/2.0 1"), "{m}");
    };
    assert!(header(&ok, "Contact").contains(";transport=tls"), "our Contact names TLS:\n{ok}");
    let tag = header(&ok, "To").split(";tag=").nth(1).unwrap().to_owned();
    tls.write_all(headers("ACK", 1, &format!(";tag={tag}"), "ack").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    tls.write_all(headers("BYE", 2, &format!(";tag={tag}"), "bye").as_bytes()).unwrap();
    let bye_ok = read_sip(&mut tls);
    assert!(bye_ok.starts_with("SIP/2.0 200"), "{bye_ok}");
    let reports = router.outcomes(1);
    assert!(uas.wait().unwrap().success(), "{reports}");
    assert!(reports.contains("hung up by the caller"), "{reports}");

    // TLS 1.1 is refused; TLS 1.2 and 1.3 are served.
    let s_client = |version: &str| {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{}", router.tls_port),
                version,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("openssl s_client");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // (s_client may exit 0 even when the handshake failed: read what it says.)
    let (_, out11) = s_client("-tls1_1");
    assert!(
        out11.contains("Cipher is (NONE)") && out11.contains("no peer certificate available"),
        "TLS 1.1 must fail:\n{out11}"
    );
    let (_, out12) = s_client("-tls1_2");
    assert!(out12.contains("New, TLSv1.2") && !out12.contains("Cipher is (NONE)"), "TLS 1.2 is served:\n{out12}");
}

/// A PBX over TLS: answers one INVITE with 200, takes the ACK, answers the BYE.
fn tls_pbx(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut tls = rustls::StreamOwned::new(rustls::ServerConnection::new(Arc::new(config)).unwrap(), tcp);
        let invite = read_sip(&mut tls);
        let copy = |m: &str, names: &[&str]| -> String {
            m.lines()
                .filter(|l| names.iter().any(|n| l.starts_with(&format!("{n}: "))))
                .map(|l| format!("{l}\r\n"))
                .collect()
        };
        let ok = format!(
            "SIP/2.0 200 OK\r\n{}To: {};tag=pbx\r\nContact: <sip:pbx@127.0.0.1:{port};transport=tls>\r\nContent-Length: 0\r\n\r\n",
            copy(&invite, &["Via", "From", "Call-ID", "CSeq"]),
            header(&invite, "To")
        );
        tls.write_all(ok.as_bytes()).unwrap();
        let ack = read_sip(&mut tls);
        let bye = read_sip(&mut tls);
        let bye_ok = format!(
            "SIP/2.0 200 OK\r\n{}Content-Length: 0\r\n\r\n",
            copy(&bye, &["Via", "From", "To", "Call-ID", "CSeq"])
        );
        tls.write_all(bye_ok.as_bytes()).unwrap();
        vec![invite, ack, bye]
    });
    (port, handle)
}

#[test]
fn origination_over_tls_verifies_the_pbx_certificate() {
    let pki = pki();
    // An impostor with a self-signed certificate the router does not trust.
    let rogue_key = rcgen::KeyPair::generate().unwrap();
    let rogue = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().self_signed(&rogue_key).unwrap();
    let (impostor, _rogue_thread) =
        tls_pbx(rogue.der().clone(), PrivateKeyDer::try_from(rogue_key.serialize_der()).unwrap());
    let (pbx, pbx_thread) = tls_pbx(pki.leaf_der.clone(), pki.leaf_key.clone_key());
    let router = tls_router(
        &pki,
        &[(format!("sip:127.0.0.1:{impostor};transport=tls"), 5), (format!("sip:127.0.0.1:{pbx};transport=tls"), 10)],
    );
    let uac = call_in(&router, free_udp_port(), &["-sn", "uac"], &["-m", "1", "-d", "200"]);
    let reports = router.outcomes(1);
    assert!(uac.success(), "{reports}");
    assert!(
        reports.contains(&format!("127.0.0.1:{impostor};transport=tls -> 503 Service Unavailable")),
        "untrusted certificate: failed over\n{reports}"
    );
    assert!(reports.contains(&format!("127.0.0.1:{pbx};transport=tls -> 200 OK")), "{reports}");
    let seen = pbx_thread.join().unwrap();
    assert!(
        seen[0].starts_with("INVITE sip:+14155550100@127.0.0.1:") && seen[0].contains("Via: SIP/2.0/TLS "),
        "{}",
        seen[0]
    );
    assert!(seen[1].starts_with("ACK ") && seen[2].starts_with("BYE "), "{seen:?}");
}

#[test]
fn a_tls_target_named_by_host_name_must_present_a_certificate_for_that_name() {
    let pki = pki();
    // Trusted (same CA) but for 127.0.0.1, not for the name dialled.
    let (wrong_name, _wrong_thread) = tls_pbx(pki.leaf_der.clone(), pki.leaf_key.clone_key());
    let (pbx, pbx_thread) = tls_pbx(pki.named_der.clone(), pki.named_key.clone_key());
    let router =
        tls_router(&pki, &[(format!("sips:localhost:{wrong_name}"), 5), (format!("sips:localhost:{pbx}"), 10)]);
    let uac = call_in(&router, free_udp_port(), &["-sn", "uac"], &["-m", "1", "-d", "200"]);
    let reports = router.outcomes(1);
    assert!(uac.success(), "{reports}");
    assert!(
        reports.contains(&format!(
            "localhost:{wrong_name};transport=tls at 127.0.0.1:{wrong_name} -> 503 Service Unavailable"
        )),
        "certificate for another name: failed over\n{reports}"
    );
    assert!(reports.contains(&format!("localhost:{pbx};transport=tls at 127.0.0.1:{pbx} -> 200 OK")), "{reports}");
    let seen = pbx_thread.join().unwrap();
    assert!(seen[0].starts_with(&format!("INVITE sip:+14155550100@localhost:{pbx};transport=tls ")), "{}", seen[0]);
}

#[test]
fn termination_over_tls_with_a_sha256_digest() {
    use trunkline_sip_core::digest::{Algorithm, DigestResponse};
    let pki = pki();
    let gw = free_udp_port();
    let d = pki.dir.path().display();
    let sip = format!("tls = {{ cert = \"{d}/server.pem\", key = \"{d}/server.key\" }}");
    let rest = format!(
        "[[carrier]]\nname = \"pstn\"\ngateways = [\"sip:127.0.0.1:{gw}\"]\n\
         [[trunk]]\nname = \"acme-prod\"\nnumbers = [\"+14155550100\"]\n\
         [trunk.termination]\ndomain = \"acme-prod.trunkline.test\"\ncarrier = \"pstn\"\n\
         credentials = [{{ username = \"acme\", password_env = \"ACME_SIP_PASSWORD\" }}]\n\
         digest_algorithms = [\"SHA-256\", \"MD5\"]\n"
    );
    let setup =
        Setup { listen: &["udp://127.0.0.1:0", "tls://127.0.0.1:0"], sip: &sip, rest: &rest, ..Setup::default() };
    let router = Router::launch_env(setup, Some(("ACME_SIP_PASSWORD", "tls-s3cret")));
    let mut carrier = sipp(&["-sn", "uas", "-p", &gw.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let (mut tls, local) = tls_client(&pki, router.tls_port);
    let uri = "sip:+12125550123@acme-prod.trunkline.test";
    let request = |method: &str, cseq: u32, to_tag: &str, branch: &str, auth: &str| {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bK-{branch}\r\nMax-Forwards: 70\r\n\
             From: <sip:+14155550100@acme-prod.trunkline.test>;tag=pbx\r\nTo: <{uri}>{to_tag}\r\nCall-ID: tls-term-1\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:pbx@{local};transport=tls>\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    tls.write_all(request("INVITE", 1, "", "t1", "").as_bytes()).unwrap();
    let challenge = read_sip(&mut tls);
    assert!(challenge.starts_with("SIP/2.0 407 Proxy Authentication Required"), "{challenge}");
    let first = header(&challenge, "Proxy-Authenticate");
    assert!(first.contains("algorithm=SHA-256"), "SHA-256 offered first: {first}");
    let nonce = first.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let tag407 = header(&challenge, "To").split(";tag=").nth(1).unwrap().to_owned();
    tls.write_all(request("ACK", 1, &format!(";tag={tag407}"), "t1", "").as_bytes()).unwrap();

    let mut d = DigestResponse {
        username: "acme".into(),
        realm: "acme-prod.trunkline.test".into(),
        nonce: nonce.clone(),
        uri: uri.into(),
        response: String::new(),
        algorithm: Algorithm::Sha256,
        cnonce: "0a4f113b".into(),
        nc: 1,
        nc_text: "00000001".into(),
    };
    d.response = d.expected("tls-s3cret", "INVITE");
    let auth = format!(
        "Proxy-Authorization: Digest username=\"acme\", realm=\"acme-prod.trunkline.test\", nonce=\"{nonce}\", uri=\"{uri}\", \
         algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"{}\"\r\n",
        d.response
    );
    tls.write_all(request("INVITE", 2, "", "t2", &auth).as_bytes()).unwrap();
    let ok = loop {
        let m = read_sip(&mut tls);
        if m.starts_with("SIP/2.0 200") {
            break m;
        }
        assert!(m.starts_with("SIP/2.0 1"), "{m}");
    };
    let tag = header(&ok, "To").split(";tag=").nth(1).unwrap().to_owned();
    tls.write_all(request("ACK", 2, &format!(";tag={tag}"), "t3", "").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    tls.write_all(request("BYE", 3, &format!(";tag={tag}"), "t4", "").as_bytes()).unwrap();
    assert!(read_sip(&mut tls).starts_with("SIP/2.0 200"));
    let reports = router.outcomes(1);
    assert!(carrier.wait().unwrap().success(), "{reports}");
    assert!(reports.contains(&format!("INVITE sip:+12125550123@127.0.0.1:{gw} -> 180 Ringing -> 200 OK")), "{reports}");

    // The same credentials replayed on a new call: challenged again, stale=true.
    let replay = request("INVITE", 1, "", "t5", &auth).replace("tls-term-1", "tls-term-2");
    tls.write_all(replay.as_bytes()).unwrap();
    let again = read_sip(&mut tls);
    assert!(
        again.starts_with("SIP/2.0 407") && header(&again, "Proxy-Authenticate").ends_with("stale=true"),
        "{again}"
    );
}

#[test]
fn a_carrier_gateway_over_tls_is_dialled_by_name_and_verified_for_it() {
    use super::termination::{customer, run_customer, VERIFIED};
    let pki = pki();
    let (gw, gw_thread) = tls_pbx(pki.named_der.clone(), pki.named_key.clone_key());
    let d = pki.dir.path().display();
    let sip = format!("tls = {{ cert = \"{d}/server.pem\", key = \"{d}/server.key\", ca = \"{d}/ca.pem\" }}");
    let rest = format!(
        "[[carrier]]\nname = \"pstn\"\ngateways = [\"sips:localhost:{gw}\"]\n\
         [[trunk]]\nname = \"acme-prod\"\nnumbers = [\"+14155550100\"]\n\
         [trunk.termination]\ndomain = \"acme-prod.trunkline.test\"\ncarrier = \"pstn\"\n\
         caller_ids = [\"{VERIFIED}\"]\nacl = [\"127.0.0.0/8\"]\n"
    );
    let setup =
        Setup { listen: &["udp://127.0.0.1:0", "tls://127.0.0.1:0"], sip: &sip, rest: &rest, ..Setup::default() };
    let router = Router::launch(setup);
    let dir = tempfile::tempdir().unwrap();
    let scenario = customer(dir.path(), false, VERIFIED, 200, "");
    let answered = run_customer(&router, &scenario, "+12125550123", &[]);
    let reports = router.outcomes(1);
    assert!(answered, "the carrier answered over TLS\n{reports}");
    let route = format!("INVITE sip:+12125550123@localhost:{gw};transport=tls at 127.0.0.1:{gw} -> 200 OK");
    assert!(reports.contains(&route), "{reports}");
    let seen = gw_thread.join().unwrap();
    assert!(seen[0].contains("Via: SIP/2.0/TLS ") && seen[2].starts_with("BYE "), "{seen:?}");
}

/// `[admin] cert` and `key`: the admin API over HTTPS (TLS 1.2+), the
/// token still required; a handshake that fails is counted.
#[test]
fn the_admin_api_over_https_needs_its_certificate_and_a_token() {
    // A CA and a leaf with names of their own (curl calls a leaf whose
    // issuer name equals its subject self-signed).
    let named = |cn: &str, sans: Vec<String>| {
        let mut p = rcgen::CertificateParams::new(sans).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p
    };
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = named("trunkline test CA", Vec::new());
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = named("trunkline admin", vec!["127.0.0.1".to_owned()]).signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("server.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), leaf_key.serialize_pem()).unwrap();
    let d = dir.path().display();
    let admin = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ncert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\n\
         tokens = [{{ name = \"ops\", token_env = \"TL_ADMIN_TOKEN\" }}]"
    );
    let router = Router::launch_env(
        Setup { plugins: &admin, rest: &super::trunk(&[(super::free_udp_port(), 10)], ""), ..Setup::default() },
        Some(("TL_ADMIN_TOKEN", "ops-token-0123456789abcdef")),
    );
    let port = router.admin_port();
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert", &format!("{d}/ca.pem")])
            .args(args)
            .output()
            .expect("curl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let url = format!("https://127.0.0.1:{port}/health/live");
    let (ok, body) = curl(&["-H", "Authorization: Bearer ops-token-0123456789abcdef", &url]);
    assert!(ok && body.contains("{\"live\":true}"), "{body}");
    let (ok, body) = curl(&["-w", "%{http_code}", &url]);
    assert!(ok && body.ends_with("401"), "the token is still required: {body}");
    let (ok, body) = curl(&["--tls-max", "1.1", &url]);
    assert!(!ok, "TLS 1.1 refused: {body}");
    // Plain HTTP to the HTTPS port gets no answer but a failed handshake.
    // The router may close the socket before the request is even written
    // (a broken pipe or a reset is as good as no answer): errors are fine.
    let plain = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = s.write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    assert!(!plain.contains("\"live\""), "{plain}");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = curl(&[
            "-H",
            "Authorization: Bearer ops-token-0123456789abcdef",
            &format!("https://127.0.0.1:{port}/metrics"),
        ]);
        if metrics.contains("trunkline_tls_handshake_failures_total{listener=\"admin\"} 2") {
            break;
        }
        assert!(std::time::Instant::now() < until, "the two failed handshakes are counted:\n{metrics}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
