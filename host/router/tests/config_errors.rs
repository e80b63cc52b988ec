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
    assert_eq!(t.labels.get("+14155550100").map(String::as_str), Some("Support - Primary"));
    assert_eq!(t.chain.entries.len(), 4);
    assert_eq!(t.origination[0].weight, 60);
    assert_eq!(s.failover_timeout_ms, 4000);
}
