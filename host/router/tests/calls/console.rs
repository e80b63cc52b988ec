//! The admin API checked against its own OpenAPI document by schemathesis
//! (PyPI), and the operator console in a real headless Chromium (Debian's
//! chromium and chromedriver, driven over WebDriver): the page loads, shows
//! a call the test just placed, and draws its ladder.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

const TOKEN: &str = "ops-token-0123456789abcdef";

/// A router with the admin API behind a token, after one call that failed
/// over (503 from the first target, answered by the second) is recorded.
fn router_after_a_failover_call() -> (Router, u16, Value) {
    let (router, admin_port, _, _, _) = super::records::after_a_failover_call(0);
    let row = router.records(1)[0].clone();
    (router, admin_port, row)
}

#[test]
fn schemathesis_finds_no_failure_in_the_admin_api() {
    let (router, port, _) = router_after_a_failover_call();
    let out = Command::new("st")
        .args(["run", &format!("http://127.0.0.1:{port}/openapi.json")])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        // Draining would stop the router under test.
        .args(["--exclude-path", "/drain", "--max-examples", "25", "--seed", "42", "--request-timeout", "20"])
        .env("NO_COLOR", "1")
        // Its cache goes to the router's directory, not the source tree.
        .current_dir(router._dir.path())
        .output()
        .expect("schemathesis (`st`, PyPI) must be installed: .ci/run installs it");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    assert!(text.contains("passed") && !text.contains("failure"), "{text}");
    drop(router);
}

/// One WebDriver command: its JSON `value`.
fn wd(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "WebDriver {method} {path}: connection closed");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("WebDriver {method} {path}: no Content-Length in {head}"));
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    let text = String::from_utf8_lossy(&body);
    let json_start = text.find('{').unwrap_or_else(|| panic!("WebDriver {method} {path}: {text}"));
    let json_end = text.rfind('}').unwrap();
    let v: Value = serde_json::from_str(&text[json_start..=json_end]).unwrap_or_else(|e| panic!("{e}: {text}"));
    v["value"].clone()
}

struct Browser {
    driver: std::process::Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = free_udp_port(); // free on TCP too, in practice, on loopback
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian chromium-driver) must be installed: .ci/run installs it");
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        } } });
        let session = wd(port, "POST", "/session", Some(caps));
        let id = session["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {session}")).to_owned();
        Browser { driver, port, session: id, _profile: profile }
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        wd(self.port, method, &format!("/session/{}{what}", self.session), body)
    }

    fn element(&self, css: &str) -> String {
        let e = self.cmd("POST", "/element", Some(json!({ "using": "css selector", "value": css })));
        e.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {e}"))
            .to_owned()
    }

    fn text_of(&self, id: &str) -> String {
        let v = self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": format!("return document.getElementById('{id}').innerText"), "args": [] })),
        );
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Wait (bounded) until element `id`'s text contains every one of `wanted`.
    fn wait_text(&self, id: &str, wanted: &[&str]) -> String {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let t = self.text_of(id);
            if wanted.iter().all(|w| t.contains(w)) {
                return t;
            }
            assert!(Instant::now() < until, "#{id} never showed {wanted:?}; it shows:\n{t}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = wd(self.port, "DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn the_console_shows_a_call_just_placed_and_its_ladder_in_headless_chromium() {
    let (router, port, row) = router_after_a_failover_call();
    let browser = Browser::start();
    browser.cmd("POST", "/url", Some(json!({ "url": format!("http://127.0.0.1:{port}/") })));
    // Without the token the page says so.
    browser.wait_text("error", &["authorization"]);
    let field = browser.element("#token");
    browser.cmd("POST", &format!("/element/{field}/value"), Some(json!({ "text": TOKEN })));
    let save = browser.element("#save");
    browser.cmd("POST", &format!("/element/{save}/click"), Some(json!({})));
    let call_id = row["call_id"].as_str().unwrap();
    let recent = browser.wait_text("recent", &[call_id, "answered", "acme-prod"]);
    assert!(recent.contains("+14155550100"), "{recent}");
    browser.wait_text("trunks", &["acme-prod", "+14155550100", "not probed"]);
    browser.wait_text("plugins", &["diversion-guard", "serving", "pre-dial"]);
    let row_el = browser.element(&format!("tr.call[data-id=\"{}\"]", row["id"]));
    browser.cmd("POST", &format!("/element/{row_el}/click"), Some(json!({})));
    let ladder =
        browser.wait_text("ladder", &["caller", "router", "target 1", "target 2", "503 Service Unavailable", "INVITE"]);
    assert!(
        ladder.contains("hooks:") && ladder.contains("select-uri"),
        "route and hook decisions beside the ladder:\n{ladder}"
    );
    drop(browser);
    drop(router);
}
