//! Call records: real calls through SIPp leave records whose fields match
//! what happened; `trunkline calls` filters and formats them and draws a
//! call's SIP ladder; the admin API serves the same records.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

impl Router {
    /// The router's configuration file (its `[records]` names the store).
    pub(super) fn config_path(&self) -> PathBuf {
        self._dir.path().join("trunkline.toml")
    }

    /// `trunkline calls --config THIS ARGS...`: its success and its output.
    pub(super) fn calls_cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_trunkline"))
            .arg("calls")
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// The stored records (newest first), once there are `n` of them
    /// (records linger 2 s after their call for its last messages).
    pub(super) fn records(&self, n: usize) -> Vec<Value> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let (ok, out) = self.calls_cli(&["--format", "json"]);
            let rows: Vec<Value> = if ok { serde_json::from_str(&out).unwrap() } else { Vec::new() };
            if rows.len() >= n {
                return rows;
            }
            assert!(Instant::now() < until, "only {} of {n} call records after 30 s: {out}", rows.len());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// One record as JSON (`trunkline calls show ID --json`).
    pub(super) fn record(&self, id: &Value) -> Value {
        let (ok, out) = self.calls_cli(&["show", &id.to_string(), "--json"]);
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap()
    }
}

/// A router (admin API behind the token `ops-token-0123456789abcdef`) after
/// one call that failed over: 503 from the first target, answered by the
/// second, the caller talking `talk_ms` then hanging up. Returns the
/// router, its admin port, the two targets' ports, the caller's port and
/// the call's report.
pub(super) fn after_a_failover_call(talk_ms: u32) -> (Router, u16, (u16, u16), u16, String) {
    let (first, second, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let admin = "[admin]\nlisten = \"127.0.0.1:0\"\ntokens = [{ name = \"ops\", token_env = \"TL_ADMIN_TOKEN\" }]";
    let router = Router::launch_env(
        Setup { plugins: admin, rest: &trunk(&[(first, 5), (second, 10)], ""), ..Setup::default() },
        Some(("TL_ADMIN_TOKEN", "ops-token-0123456789abcdef")),
    );
    let admin_port = router.admin_port();
    let dir = tempfile::tempdir().unwrap();
    let unavailable =
        from_template("uas-final.xml", dir.path(), &[("CODE", "503".into()), ("REASON", "Service Unavailable".into())]);
    let mut uas_503 =
        sipp(&["-sf", unavailable.to_str().unwrap(), "-p", &first.to_string(), "-m", "1"]).spawn().unwrap();
    let mut uas = sipp(&["-sn", "uas", "-p", &second.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let answered = call_in(&router, uac_port, &["-sn", "uac"], &["-m", "1", "-d", &talk_ms.to_string()]);
    let reports = router.outcomes(1);
    assert!(answered.success() && uas.wait().unwrap().success(), "{reports}");
    let _ = uas_503.wait();
    (router, admin_port, (first, second), uac_port, reports)
}

/// A call that fails over (503 from the first target, answered by the
/// second) and an INVITE for a number nobody owns: both recorded with what
/// happened; the ladder of the first shows both targets; the filters, the
/// formats and the API agree.
#[test]
fn a_failover_call_is_recorded_with_both_targets_and_drawn_as_a_ladder() {
    // The caller talks 600 ms, then hangs up.
    let (router, admin_port, (first, second), uac_port, _) = after_a_failover_call(600);
    let dir = tempfile::tempdir().unwrap();
    let not_found = expect_final(404, dir.path());
    let target = format!("127.0.0.1:{}", router.port);
    let port = free_udp_port().to_string();
    let nobody = sipp(&["-sf", not_found.to_str().unwrap(), &target, "-s", "+19995550000", "-p", &port, "-m", "1"])
        .status()
        .unwrap();
    assert!(nobody.success(), "404 for a number no trunk owns");

    let rows = router.records(2);
    let row = |outcome: &str| rows.iter().find(|r| r["outcome"] == outcome).unwrap_or_else(|| panic!("{rows:?}"));
    let call = router.record(&row("answered")["id"]);
    assert_eq!(call["trunk"], "acme-prod");
    assert_eq!(call["direction"], "origination");
    assert_eq!((call["caller"].as_str(), call["called"].as_str()), (Some("sipp"), Some("+14155550100")));
    assert_eq!(call["source"], format!("127.0.0.1:{uac_port}"));
    assert_eq!(call["transport"], "udp");
    assert_eq!((call["status"].as_u64(), call["hangup_by"].as_str()), (Some(200), Some("caller")));
    let targets = call["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{call:#}");
    assert_eq!(targets[0]["address"], format!("udp:127.0.0.1:{first}"));
    let statuses = |t: &Value| -> Vec<u64> {
        t["responses"].as_array().unwrap().iter().map(|r| r["status"].as_u64().unwrap()).collect()
    };
    assert!(statuses(&targets[0]).contains(&503), "{call:#}");
    assert_eq!(statuses(&targets[1]).last(), Some(&200), "{call:#}");
    assert_eq!(targets[1]["address"], format!("udp:127.0.0.1:{second}"));
    // PDD: the INVITE to the first 18x (SIPp's UAS rings) came after the 503.
    let pdd = call["pdd_ms"].as_u64().expect("a post-dial delay");
    assert!(pdd >= targets[1]["at_ms"].as_u64().unwrap(), "{call:#}");
    assert!(call["duration_ms"].as_u64().unwrap() >= 600, "SIPp talked 600 ms: {call:#}");
    assert!(call["answer_ms"].as_u64().is_some());
    let hooks: Vec<&str> = call["hooks"].as_array().unwrap().iter().map(|h| h["hook"].as_str().unwrap()).collect();
    assert!(hooks.contains(&"select-uri") && hooks.contains(&"pre-dial"), "{hooks:?}");
    // The media the router anchored, as the relay reported it at the call's end.
    let media = call["media"].as_array().unwrap();
    let media: Vec<&str> = media.iter().map(|m| m.as_str().unwrap()).collect();
    assert!(media.len() == 2 && media[0].starts_with("audio: caller 127.0.0.1:"), "{call:#}");
    assert!(media[1].contains("packets relayed caller->callee"), "{call:#}");
    // The trace: both legs, in order, to the BYE's 200 from the PBX.
    let trace: Vec<(String, String)> = call["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["direction"].as_str().unwrap().to_owned(),
                e["message"].as_str().unwrap().lines().next().unwrap().to_owned(),
            )
        })
        .collect();
    let first_lines: Vec<&str> = trace.iter().map(|(_, l)| l.as_str()).collect();
    assert!(first_lines[0].starts_with("INVITE sip:+14155550100@"), "{first_lines:#?}");
    for expected in ["SIP/2.0 503 Service Unavailable", "SIP/2.0 180 Ringing", "SIP/2.0 200 OK"] {
        assert!(first_lines.contains(&expected), "{expected} in {first_lines:#?}");
    }
    assert_eq!(first_lines.iter().filter(|l| l.starts_with("BYE ")).count(), 2, "{first_lines:#?}");
    assert_eq!(trace.last().map(|(d, l)| (d.as_str(), l.as_str())), Some(("in", "SIP/2.0 200 OK")), "{first_lines:#?}");

    // The ladder: one column per party, both targets drawn.
    let id = row("answered")["id"].to_string();
    let (ok, ladder) = router.calls_cli(&["show", &id]);
    assert!(ok, "{ladder}");
    let header = ladder.lines().find(|l| l.contains("caller") && l.contains("router")).unwrap();
    assert!(header.contains("target 1") && header.contains("target 2"), "{ladder}");
    assert!(ladder.contains(&format!("udp:127.0.0.1:{first}")) && ladder.contains(&format!("udp:127.0.0.1:{second}")));
    assert!(ladder.lines().any(|l| l.contains("<") && l.contains("503 Service Unavailable")), "{ladder}");
    assert!(ladder.contains("-> 503 Service Unavailable at"), "the route names the first target's answer\n{ladder}");

    // The 404: recorded, marked.
    let lost = router.record(&row("rejected")["id"]);
    assert_eq!((lost["status"].as_u64(), lost["called"].as_str()), (Some(404), Some("+19995550000")), "{lost:#}");
    assert_eq!(lost["trunk"], "");
    let (_, lost_ladder) = router.calls_cli(&["show", &row("rejected")["id"].to_string()]);
    assert!(lost_ladder.contains("404: no route accepted the number"), "{lost_ladder}");
    assert!(lost_ladder.contains("<== 404"), "the 404 arrow is marked\n{lost_ladder}");

    // Filters and formats.
    let count = |args: &[&str]| -> usize {
        let mut all = vec!["--format", "json"];
        all.extend(args);
        let (ok, out) = router.calls_cli(&all);
        assert!(ok, "{args:?}: {out}");
        serde_json::from_str::<Vec<Value>>(&out).unwrap().len()
    };
    assert_eq!(count(&["--outcome", "answered"]), 1);
    assert_eq!(count(&["--outcome", "rejected"]), 1);
    assert_eq!(count(&["--outcome", "failed"]), 0);
    assert_eq!(count(&["--trunk", "acme-prod"]), 1);
    assert_eq!(count(&["--number", "14155550100"]), 1, "a leading + is optional");
    assert_eq!(count(&["--number", "+19995550000"]), 1);
    assert_eq!(count(&["--since", "1h"]), 2);
    assert_eq!(count(&["--since", "2099-01-01T00:00:00Z"]), 0);
    let (ok, csv) = router.calls_cli(&["--format", "csv"]);
    assert!(ok && csv.lines().count() == 3 && csv.starts_with("id,call_id,started_at,trunk"), "{csv}");
    let (ok, table) = router.calls_cli(&[]);
    assert!(ok && table.contains("404!") && table.contains("acme-prod"), "{table}");
    let (ok, bad) = router.calls_cli(&["--outcome", "lost"]);
    assert!(!ok && bad.contains("--outcome: `lost` is not one of"), "{bad}");
    let (ok, missing) = router.calls_cli(&["show", "999999"]);
    assert!(!ok && missing.contains("no call record 999999"), "{missing}");

    // The API: the same records, behind the token.
    let auth = "Authorization: Bearer ops-token-0123456789abcdef\r\n";
    assert!(http(admin_port, "GET", "/calls").starts_with("HTTP/1.1 401"));
    let listed = http_with(admin_port, "GET", "/calls?outcome=answered&since=1h", auth);
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
    let body: Vec<Value> = serde_json::from_str(listed.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body.len(), 1);
    assert_eq!(body[0]["id"], row("answered")["id"]);
    let one = http_with(admin_port, "GET", &format!("/calls/{id}"), auth);
    assert!(one.starts_with("HTTP/1.1 200") && one.contains("\"trace\":[{"), "{one}");
    let by_call_id = http_with(admin_port, "GET", &format!("/calls/{}", call["call_id"].as_str().unwrap()), auth);
    assert!(by_call_id.contains(&format!("\"id\":{id}")), "{by_call_id}");
    let drawn = http_with(admin_port, "GET", &format!("/calls/{id}/ladder"), auth);
    assert!(drawn.starts_with("HTTP/1.1 200") && drawn.contains("target 2"), "{drawn}");
    let bad = http_with(admin_port, "GET", "/calls?outcome=lost", auth);
    assert!(bad.starts_with("HTTP/1.1 400") && bad.contains("\"error\":\"outcome: `lost` is not one of"), "{bad}");
    let unknown = http_with(admin_port, "GET", "/calls?color=red", auth);
    assert!(unknown.starts_with("HTTP/1.1 400") && unknown.contains("color: unknown filter"), "{unknown}");
    let gone = http_with(admin_port, "GET", "/calls/424242", auth);
    assert!(gone.starts_with("HTTP/1.1 404") && gone.contains("\"error\":\"id: no call record 424242\""), "{gone}");
}
