//! Traceability: every test named in docs/requirements.md and docs/hazards.md is a
//! `#[test]` function (a plain test or a proptest) in the module or file the docs name,
//! every test named in docs/threat-model.md exists, and every requirement ID is named by
//! at least one test.
//!
//! How the docs name a test, in a table's cell, left to right:
//! - `module::tests::name` (or `module::name` for an integration test file
//!   `tests/module.rs`): the test must be in that module's file (`src/module.rs`,
//!   `src/module/mod.rs`, a file under `src/module/`, or `tests/module.rs`). Names that
//!   follow it, separated only by commas and parenthesised notes such as "(proptest)",
//!   belong to the same module.
//! - `module::tests::*_pump_013`: at least one test of that module ends so.
//! - after the word "CLI": tests of the `thecal` crate (crates/cli).
//! - a bare name with no module before it: a test anywhere in the workspace.

use std::collections::BTreeSet;
use std::path::Path;

/// One `#[test]` function: the file (relative to the workspace) and its name.
struct TestFn {
    file: String,
    name: String,
}

fn sources(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("target") {
                sources(root, &path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The functions of `text` marked `#[test]` (attributes, doc comments and blank lines
/// may stand between the mark and the `fn`).
fn tests_in(file: &str, text: &str, out: &mut Vec<TestFn>) {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(rest) = t
            .strip_prefix("fn ")
            .or_else(|| t.strip_prefix("async fn "))
        else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let mut j = i;
        let mut marked = false;
        while j > 0 {
            j -= 1;
            let above = lines[j].trim();
            if above == "#[test]" || above.starts_with("#[tokio::test") {
                marked = true;
                break;
            }
            let attribute_or_comment =
                above.starts_with("#[") || above.starts_with("//") || above.is_empty();
            if !attribute_or_comment {
                break;
            }
        }
        if marked {
            out.push(TestFn {
                file: file.to_string(),
                name,
            });
        }
    }
    // The clinic's suites are async functions that `on_both_databases!(…)` turns into
    // one `#[test]` per database: each name listed there is a test of this file.
    let mut rest = text;
    while let Some(at) = rest.find("on_both_databases!(") {
        let after = &rest[at + "on_both_databases!(".len()..];
        let end = after.find(')').unwrap_or(after.len());
        for name in after[..end].split(',') {
            let name = name.trim();
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.push(TestFn {
                    file: file.to_string(),
                    name: name.to_string(),
                });
            }
        }
        rest = &after[end..];
    }
}

/// Whether `w` names a requirement-tagged test (`…_pump_013`), or a group of them
/// (`*_pump_013`).
fn is_test_name(w: &str) -> bool {
    let w = w.trim_start_matches('*');
    let parts: Vec<&str> = w.rsplitn(3, '_').collect();
    parts.len() == 3
        && parts[0].len() == 3
        && parts[0].chars().all(|c| c.is_ascii_digit())
        && ["rx", "pump", "link", "sim", "clinic", "fwu"].contains(&parts[1])
        && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `file` holds module `module` (its path segments, without `tests`).
fn in_module(file: &str, module: &[String]) -> bool {
    let m = module.join("/");
    // A module may sit below another (`records` in `src/domain/records.rs`).
    let under_src = |f: &str| f.contains("/src/");
    file.contains(&format!("/src/{m}.rs"))
        || file.contains(&format!("/src/{m}/"))
        || (under_src(file) && file.ends_with(&format!("/{m}.rs")))
        || (under_src(file) && file.contains(&format!("/{m}/")))
        || file.ends_with(&format!("/tests/{m}.rs"))
        || file.contains(&format!("/tests/{m}/"))
}

#[derive(Clone, PartialEq, Debug)]
enum Scope {
    Anywhere,
    Module(Vec<String>),
    Cli,
}

/// Checks one document: every problem found, one line each.
fn check_doc(doc: &str, text: &str, tests: &[TestFn]) -> Vec<String> {
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if !line.starts_with('|') {
            continue;
        }
        for cell in line.split('|') {
            let mut scope = Scope::Anywhere;
            // Odd pieces are in backticks, even pieces are the text between.
            for (k, piece) in cell.split('`').enumerate() {
                if k % 2 == 0 {
                    let mut between = piece.to_string();
                    // Parenthesised notes, e.g. "(proptest)", keep the scope.
                    while let (Some(a), Some(b)) = (between.find('('), between.find(')')) {
                        if b < a {
                            break;
                        }
                        between.replace_range(a..=b, "");
                    }
                    let words = between.trim_matches(|c: char| c.is_whitespace() || c == ',');
                    if words.contains("CLI") {
                        scope = Scope::Cli;
                    } else if !words.is_empty() {
                        scope = Scope::Anywhere;
                    }
                    continue;
                }
                let segments: Vec<&str> = piece.split("::").collect();
                let Some((&name, path)) = segments.split_last() else {
                    continue;
                };
                if !is_test_name(name) {
                    continue;
                }
                if !path.is_empty() {
                    let mut module: Vec<String> = path.iter().map(|s| s.to_string()).collect();
                    if module.last().is_some_and(|s| s == "tests") {
                        module.pop();
                    }
                    scope = Scope::Module(module);
                }
                let here = |t: &&TestFn| match &scope {
                    Scope::Anywhere => true,
                    Scope::Cli => t.file.starts_with("crates/cli/"),
                    Scope::Module(m) => in_module(&t.file, m),
                };
                let found = if let Some(suffix) = name.strip_prefix('*') {
                    tests.iter().filter(here).any(|t| t.name.ends_with(suffix))
                } else {
                    tests.iter().filter(here).any(|t| t.name == name)
                };
                if !found {
                    let elsewhere: Vec<&str> = tests
                        .iter()
                        .filter(|t| t.name == name)
                        .map(|t| t.file.as_str())
                        .collect();
                    problems.push(format!(
                        "{doc}:{}: `{piece}` is not a #[test] in {scope:?}{}",
                        n + 1,
                        if elsewhere.is_empty() {
                            String::new()
                        } else {
                            format!(" (it is in {})", elsewhere.join(", "))
                        }
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn docs_name_only_tests_that_exist_where_they_say_and_every_requirement_has_a_test_rx_012() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .canonicalize()
        .unwrap();
    let mut files = Vec::new();
    sources(&root, &root.join("crates"), &mut files);
    let mut tests = Vec::new();
    for (file, text) in &files {
        tests_in(file, text, &mut tests);
    }
    let mut problems = Vec::new();
    for doc in ["docs/requirements.md", "docs/hazards.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        problems.extend(check_doc(doc, &text, &tests));
    }
    // The threat model names tests by name only: each must be a #[test] somewhere.
    let text = std::fs::read_to_string(root.join("docs/threat-model.md")).unwrap();
    let names: BTreeSet<&str> = tests.iter().map(|t| t.name.as_str()).collect();
    for w in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if is_test_name(w) && !w.starts_with('_') && !names.contains(w) {
            problems.push(format!(
                "docs/threat-model.md names `{w}`, which is not a test"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    let reqs = std::fs::read_to_string(root.join("docs/requirements.md")).unwrap();
    for line in reqs.lines().filter(|l| {
        [
            "| RX-",
            "| PUMP-",
            "| SIM-",
            "| LINK-",
            "| CLINIC-",
            "| FWU-",
        ]
        .iter()
        .any(|p| l.starts_with(p))
    }) {
        let id = line[2..].split(' ').next().unwrap();
        let suffix = id.to_ascii_lowercase().replace('-', "_");
        let named = tests.iter().any(|t| t.name.contains(&format!("_{suffix}")));
        // RX-013 and FWU-010 are proven by test.sh's lints and embedded build, SIM-002 and
        // SIM-055 by benchmarks.
        let script = id == "RX-013" || id == "FWU-010" || id == "SIM-002" || id == "SIM-055";
        assert!(named || script, "requirement {id} is named by no test");
    }
}

#[test]
fn the_check_refuses_a_test_in_the_wrong_module_or_a_plain_function_rx_012() {
    let tests = vec![
        TestFn {
            file: "crates/rx/src/dose.rs".into(),
            name: "adds_up_rx_003".into(),
        },
        TestFn {
            file: "crates/cli/tests/calc.rs".into(),
            name: "calc_works_rx_012".into(),
        },
    ];
    let ok = "| X | y | `dose::tests::adds_up_rx_003` (proptest), `dose::tests::*_rx_003`, CLI `calc_works_rx_012` |";
    assert_eq!(check_doc("d", ok, &tests), Vec::<String>::new());
    let wrong_module = "| X | y | `check::tests::adds_up_rx_003` |";
    assert_eq!(check_doc("d", wrong_module, &tests).len(), 1);
    // A bare name after a qualified one inherits its module.
    let inherited = "| X | y | `check::tests::x_rx_001`, `adds_up_rx_003` |";
    assert_eq!(check_doc("d", inherited, &tests).len(), 2);
    let not_cli = "| X | y | CLI `adds_up_rx_003` |";
    assert_eq!(check_doc("d", not_cli, &tests).len(), 1);
    // A function without #[test] is not a test.
    let mut found = Vec::new();
    tests_in(
        "f.rs",
        "fn helper_rx_001() {}\n#[test]\n#[allow(x)]\n/// doc\nfn real_rx_001() {}\nproptest! {\n    #[test]\n    fn prop_rx_001(x in 0..1) {}\n}\n",
        &mut found,
    );
    let names: Vec<&str> = found.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["real_rx_001", "prop_rx_001"]);
}
