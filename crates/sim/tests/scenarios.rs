//! Every shipped scenario is a test: its expectations must hold.

use std::path::PathBuf;

use thecal_sim::{engine, scenario};

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_scenario_meets_its_expectations_sim_020() {
    let files = scenario_files();
    assert!(files.len() >= 15, "{} scenarios", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let sc = scenario::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            !sc.expectations.is_empty(),
            "{} has no expectations",
            path.display()
        );
        let r = engine::run(&sc);
        for v in r.verdicts.iter().filter(|v| !v.passed) {
            failures.push(format!("{}: {} — {}", sc.name, v.expectation, v.detail));
        }
        eprintln!(
            "{}: {}/{} expectations",
            sc.name,
            r.verdicts.iter().filter(|v| v.passed).count(),
            r.verdicts.len()
        );
    }
    assert!(
        failures.is_empty(),
        "failed expectations:\n{}",
        failures.join("\n")
    );
}
