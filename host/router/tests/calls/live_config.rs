//! Live configuration: `trunkline.toml` reloaded under SIPp load through
//! the API (a bad file refused, numbers moved between trunks, a target
//! added), on SIGHUP and on file change; no call lost, every attempt
//! audited with who asked and what changed.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

const TOKEN: &str = "ops-token-0123456789abcdef";

fn two_trunks(a_numbers: &str, b_targets: &[(u16, u16)], a_target: u16) -> String {
    let mut t = format!(
        "[[trunk]]\nname = \"alpha\"\nnumbers = [{a_numbers}]\n\
         [[trunk.origination]]\nuri = \"sip:127.0.0.1:{a_target}\"\npriority = 10\n\
         [[trunk]]\nname = \"beta\"\nnumbers = [\"+14155550101\"{}]\n",
        if a_numbers.is_empty() { ", \"+14155550100\"" } else { "" }
    );
    for (port, prio) in b_targets {
        t.push_str(&format!("[[trunk.origination]]\nuri = \"sip:127.0.0.1:{port}\"\npriority = {prio}\n"));
    }
    t
}

/// The config file with its trunks replaced by `trunks`.
fn rewrite(router: &Router, trunks: &str) {
    let path = router.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let head = &text[..text.find("[[trunk]]").unwrap()];
    std::fs::write(&path, format!("{head}{trunks}")).unwrap();
}

fn post_reload(port: u16) -> String {
    http_with(port, "POST", "/config/reload", &format!("Authorization: Bearer {TOKEN}\r\n"))
}

fn audit(port: u16, until: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = http_with(port, "GET", "/audit?limit=100", &format!("Authorization: Bearer {TOKEN}\r\n"));
        let rows: Vec<Value> = serde_json::from_str(a.split("\r\n\r\n").nth(1).unwrap_or("[]")).unwrap_or_default();
        if until(&rows) || Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn uas(port: u16, dir: &Path, name: &str) -> (std::process::Child, PathBuf) {
    let msgs = dir.join(format!("{name}.msg"));
    let child = Command::new("sipp")
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string(), "-nostdin", "-trace_msg", "-message_file"])
        .arg(&msgs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, msgs)
}

fn invites(msgs: &Path) -> usize {
    std::fs::read_to_string(msgs).unwrap_or_default().matches("INVITE sip:+14155550100@").count()
}

#[test]
fn a_reload_under_load_moves_numbers_adds_a_target_refuses_a_bad_file_and_loses_no_call() {
    let (a_port, b_port, new_port, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port(), free_udp_port());
    let admin = "[admin]\nlisten = \"127.0.0.1:0\"\ntokens = [{ name = \"ops\", token_env = \"TL_ADMIN_TOKEN\" }]";
    let router = Router::launch_env(
        Setup { plugins: admin, rest: &two_trunks("\"+14155550100\"", &[(b_port, 10)], a_port), ..Setup::default() },
        Some(("TL_ADMIN_TOKEN", TOKEN)),
    );
    let port = router.admin_port();
    let dir = tempfile::tempdir().unwrap();
    let mut pbxs: Vec<(std::process::Child, PathBuf)> =
        vec![uas(a_port, dir.path(), "a"), uas(b_port, dir.path(), "b"), uas(new_port, dir.path(), "new")];
    std::thread::sleep(Duration::from_millis(300));
    // 60 calls at 10/s, each talking 1 s: calls are in progress at every reload.
    let (target, from) = (format!("127.0.0.1:{}", router.port), uac_port.to_string());
    let mut load = Command::new("sipp")
        .args(["-sn", "uac", &target, "-s", "+14155550100", "-p", &from, "-m", "60", "-r", "10", "-d", "1000"])
        .args(["-i", "127.0.0.1", "-nostdin", "-timeout", "60s", "-recv_timeout", "10000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));

    // A bad file: refused with the error `trunkline check` prints; nothing changes.
    let path = router.config_path();
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replace("priority = 10", "priority = \"ten\"")).unwrap();
    let refused = post_reload(port);
    let check = Command::new(env!("CARGO_BIN_EXE_trunkline")).args(["check", "--config"]).arg(&path).output().unwrap();
    let check_err = String::from_utf8_lossy(&check.stderr).trim().trim_start_matches("error: ").to_owned();
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    let first_line = check_err.lines().next().unwrap().to_owned();
    assert!(
        refused.contains(&first_line.replace('"', "\\\"")),
        "same error as `trunkline check` ({first_line}):\n{refused}"
    );
    std::thread::sleep(Duration::from_millis(1500));

    // Move +14155550100 to trunk beta and give beta a new first target.
    rewrite(&router, &two_trunks("", &[(new_port, 5), (b_port, 10)], a_port));
    let reloaded = post_reload(port);
    assert!(reloaded.starts_with("HTTP/1.1 200"), "{reloaded}");
    assert!(reloaded.contains("trunk alpha: numbers -[+14155550100]"), "{reloaded}");
    assert!(reloaded.contains("trunk beta: numbers +[+14155550100]"), "{reloaded}");
    assert!(reloaded.contains(&format!("trunk beta: origination targets +[sip:127.0.0.1:{new_port}")), "{reloaded}");

    // A listener change cannot be applied live: refused, saying so.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("udp://127.0.0.1:0", "udp://127.0.0.1:1")).unwrap();
    let listener = post_reload(port);
    assert!(
        listener.starts_with("HTTP/1.1 400") && listener.contains("sip.listen cannot change while the router runs"),
        "{listener}"
    );
    std::fs::write(&path, text).unwrap();

    // SIGHUP reloads too (nothing changed now), audited as the signal.
    let hup = Command::new("kill").args(["-HUP", &router.child.id().to_string()]).status().unwrap();
    assert!(hup.success());

    let finished = load.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    for (pbx, _) in &mut pbxs {
        let _ = pbx.kill();
        let _ = pbx.wait();
    }
    assert!(finished.success(), "SIPp: every one of the 60 calls answered and ended across the reloads");
    let (before, after, untouched) = (invites(&pbxs[0].1), invites(&pbxs[2].1), invites(&pbxs[1].1));
    assert!(
        before > 0 && after > 0,
        "calls before the reload went to alpha's target, after it to beta's new one: {before} / {after}"
    );
    assert_eq!(before + after, 60, "every call reached one PBX once ({untouched} at beta's old target)");

    let rows = audit(port, |rows| rows.iter().any(|r| r["source"] == "signal"));
    let reloads: Vec<&Value> = rows.iter().filter(|r| r["action"] == "config-reload").collect();
    let of = |source: &str, outcome: &str| {
        reloads.iter().filter(|r| r["source"] == source && r["outcome"] == outcome).count()
    };
    assert_eq!(of("admin", "refused"), 2, "{reloads:#?}");
    assert_eq!(of("admin", "ok"), 1, "{reloads:#?}");
    assert_eq!(of("signal", "ok"), 1, "{reloads:#?}");
    assert!(reloads.iter().filter(|r| r["source"] == "admin").all(|r| r["by"] == "ops"), "{reloads:#?}");
    let changed = reloads.iter().find(|r| r["outcome"] == "ok" && r["source"] == "admin").unwrap();
    assert!(changed["detail"].as_str().unwrap().contains("trunk beta: numbers +[+14155550100]"), "{changed}");
    let signal = reloads.iter().find(|r| r["source"] == "signal").unwrap();
    assert_eq!(signal["detail"], "no change");
}

#[test]
fn with_watch_config_a_saved_file_is_applied_and_audited_as_the_watch() {
    let (a_port, b_port) = (free_udp_port(), free_udp_port());
    let admin = "[admin]\nlisten = \"127.0.0.1:0\"\ntokens = [{ name = \"ops\", token_env = \"TL_ADMIN_TOKEN\" }]";
    let router = Router::launch_env(
        Setup {
            sip: "failover_timeout_ms = 300\nwatch_config = true",
            plugins: admin,
            rest: &two_trunks("\"+14155550100\"", &[(b_port, 10)], a_port),
            ..Setup::default()
        },
        Some(("TL_ADMIN_TOKEN", TOKEN)),
    );
    let port = router.admin_port();
    rewrite(&router, &two_trunks("", &[(b_port, 10)], a_port));
    let rows = audit(port, |rows| rows.iter().any(|r| r["source"] == "watch"));
    let watched =
        rows.iter().find(|r| r["source"] == "watch").unwrap_or_else(|| panic!("no reload by the watch: {rows:#?}"));
    assert_eq!(watched["outcome"], "ok", "{watched}");
    assert!(watched["detail"].as_str().unwrap().contains("trunk beta: numbers +[+14155550100]"), "{watched}");
}

#[test]
fn numbers_from_a_file_route_calls_and_a_saved_file_moves_them_live() {
    let (a_port, b_port, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    let numbers = dir.path().join("numbers.csv");
    std::fs::write(&numbers, "number,trunk,label\n+14155550100,alpha,Main line\n").unwrap();
    // `numbers_file` is a top-level key: before the first table.
    let config = dir.path().join("trunkline.toml");
    std::fs::write(
        &config,
        format!(
            "numbers_file = \"numbers.csv\"\n\
             [sip]\nlisten = [\"udp://127.0.0.1:0\"]\ndomains = [\"trunkline.test\"]\nfailover_timeout_ms = 300\nwatch_config = true\n\
             [plugins]\ndir = \"plugins\"\nwatch = false\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntokens = [{{ name = \"ops\", token_env = \"TL_ADMIN_TOKEN\" }}]\n\
             [[trunk]]\nname = \"alpha\"\n[[trunk.origination]]\nuri = \"sip:127.0.0.1:{a_port}\"\n\
             [[trunk]]\nname = \"beta\"\nnumbers = [\"+14155550101\"]\n[[trunk.origination]]\nuri = \"sip:127.0.0.1:{b_port}\"\n"
        ),
    )
    .unwrap();
    let router = Router::spawn(&config, Some(("TL_ADMIN_TOKEN", TOKEN)), 1, dir);
    let port = router.admin_port();
    let msgs = tempfile::tempdir().unwrap();
    let mut pbxs = vec![uas(a_port, msgs.path(), "a"), uas(b_port, msgs.path(), "b")];
    std::thread::sleep(Duration::from_millis(300));
    let one_call = || call_in(&router, uac_port, &["-sn", "uac"], &["-m", "1", "-d", "100"]);
    assert!(one_call().success(), "a number of the file is routed to its trunk");
    assert_eq!((invites(&pbxs[0].1), invites(&pbxs[1].1)), (1, 0));

    // The file saved with the number moved to beta: the watch applies it.
    std::fs::write(&numbers, "number,trunk,label\n+14155550100,beta,Main line\n").unwrap();
    let rows = audit(port, |rows| rows.iter().any(|r| r["source"] == "watch"));
    let watched =
        rows.iter().find(|r| r["source"] == "watch").unwrap_or_else(|| panic!("no reload by the watch: {rows:#?}"));
    assert_eq!(watched["outcome"], "ok", "{watched}");
    let detail = watched["detail"].as_str().unwrap();
    assert!(detail.contains("trunk alpha: numbers -[+14155550100]"), "{detail}");
    assert!(detail.contains("trunk beta: numbers +[+14155550100]"), "{detail}");
    assert!(one_call().success());
    assert_eq!((invites(&pbxs[0].1), invites(&pbxs[1].1)), (1, 1), "the next call went to beta");

    let trunks = http_with(port, "GET", "/trunks", &format!("Authorization: Bearer {TOKEN}\r\n"));
    let trunks: Value = serde_json::from_str(trunks.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(trunks[1]["numbers"], serde_json::json!(["+14155550100", "+14155550101"]), "{trunks}");
    assert_eq!((trunks[0]["number_count"].as_u64(), trunks[1]["number_count"].as_u64()), (Some(0), Some(2)));

    // A bad row: refused, naming the file's line; the running numbers stay.
    std::fs::write(&numbers, "number,trunk\n+14155550100,beta\n+14155550102,gamma\n").unwrap();
    let refused = post_reload(port);
    assert!(
        refused.starts_with("HTTP/1.1 400") && refused.contains("numbers.csv:3:1: numbers_file: trunk `gamma`"),
        "{refused}"
    );
    assert!(one_call().success());
    assert_eq!(invites(&pbxs[1].1), 2);
    for (pbx, _) in &mut pbxs {
        let _ = pbx.kill();
        let _ = pbx.wait();
    }
}
