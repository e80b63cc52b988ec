//! Every kind of bad configuration gets an error that names the file, line,
//! column and key: golden files in `tests/fixtures/config/invalid/`
//! (`CASE.toml` and the expected message in `CASE.err`).

use std::path::Path;

use trunkline_router::config;

#[test]
fn invalid_configs_fail_with_the_expected_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/config/invalid");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "fixtures present");
    let mut failures = Vec::new();
    for case in &cases {
        let text = std::fs::read_to_string(case).unwrap();
        let want = std::fs::read_to_string(case.with_extension("err")).unwrap();
        let name = Path::new(case.file_name().unwrap());
        match config::parse(name, &text) {
            Ok(_) => failures.push(format!("{}: accepted", name.display())),
            Err(e) if e.to_string().trim() == want.trim() => {}
            Err(e) => failures.push(format!("{}:\n  want: {}\n  got:  {}", name.display(), want.trim(), e)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_quickstart_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/trunkline.toml");
    let s = config::load(&path).unwrap();
    assert_eq!(s.trunks.len(), 1);
    let t = &s.trunks[0];
    assert_eq!(t.id.len(), 34);
    assert_eq!(s.numbers.label_of("+14155550100"), Some("Support - Primary"));
    assert_eq!(t.chain.entries.len(), 4);
    assert_eq!(t.origination[0].weight, 60);
    assert_eq!(s.failover_timeout_ms, 4000);
}

#[test]
fn numbers_from_the_file_join_the_lists_and_plugins_see_them_per_account() {
    use trunkline_plugin_host::services::NumberDirectory;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("numbers.csv"), "+14155550101,east,Sales\n+14155550102,west\n").unwrap();
    let path = dir.path().join("trunkline.toml");
    std::fs::write(
        &path,
        "numbers_file = \"numbers.csv\"\n[sip]\nlisten = [\"udp://127.0.0.1:5060\"]\n\
         [[trunk]]\nname = \"east\"\naccount = \"AC1\"\nnumbers = [{ number = \"+14155550100\", label = \"Main\" }]\n\
         [[trunk]]\nname = \"west\"\naccount = \"AC2\"\n",
    )
    .unwrap();
    let s = config::load(&path).unwrap();
    assert_eq!(s.numbers.len(), 3);
    assert_eq!(s.trunk_for_number("+14155550101").map(|t| t.name.as_str()), Some("east"));
    assert_eq!(s.trunk_for_number("+14155550102").map(|t| t.name.as_str()), Some("west"));
    assert!(s.trunk_for_number("+14155550103").is_none());
    let d = s.directory();
    assert!(d.is_owned("AC1", "+14155550101") && !d.is_owned("AC2", "+14155550101"), "per account");
    assert_eq!(d.label("AC1", "+14155550100").as_deref(), Some("Main"));
    assert_eq!(d.label("AC1", "+14155550101").as_deref(), Some("Sales"));
    assert_eq!(d.label("AC2", "+14155550101"), None, "another account's label is not told");
    // The number in the TOML list and in the file: refused, naming the file's line.
    std::fs::write(dir.path().join("numbers.csv"), "number,trunk\n+14155550100,west\n").unwrap();
    let e = config::load(&path).unwrap_err().to_string();
    assert!(e.ends_with("numbers.csv:2:1: numbers_file: +14155550100 already belongs to trunk `east`"), "{e}");
    std::fs::remove_file(dir.path().join("numbers.csv")).unwrap();
    let e = config::load(&path).unwrap_err().to_string();
    assert!(e.contains("trunkline.toml:1:16: numbers_file: cannot read"), "{e}");
}
