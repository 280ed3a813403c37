//! The README's console examples are run and their output compared, so the
//! documentation cannot drift from the program.

use std::process::Command;

#[test]
fn readme_console_examples_print_what_the_readme_says_rx_012() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut checked = 0;
    let mut in_console = false;
    let mut current: Option<(String, Vec<String>)> = None;
    let mut examples = Vec::new();
    for line in readme.lines() {
        if line.starts_with("```console") {
            in_console = true;
            continue;
        }
        if in_console && line.starts_with("```") {
            in_console = false;
            examples.extend(current.take());
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ thecal ") {
            examples.extend(current.take());
            current = Some((cmd.to_string(), Vec::new()));
        } else if let Some((_, out)) = current.as_mut() {
            out.push(line.to_string());
        }
    }
    for (cmd, expected) in examples {
        let out = Command::new(env!("CARGO_BIN_EXE_thecal"))
            .args(cmd.split_whitespace())
            .current_dir(root)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.trim_end().lines().collect::<Vec<_>>(),
            expected,
            "README example `thecal {cmd}`"
        );
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} README examples found");
}
