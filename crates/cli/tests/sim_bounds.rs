//! Every scenario input that could exhaust memory or time is refused with exit 2 and one
//! line naming the field and its limit, and no generated scenario file makes `thecal sim
//! run` crash or grow past a fixed memory limit (SIM-060).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use proptest::prelude::*;

/// The address-space limit every run here is held to. A run that tried to take memory
/// in proportion to a huge input (samples, events) is stopped by it (exit 134 or a
/// signal), which the assertions catch.
const MEMORY_LIMIT: &str = "--as=2147483648";

/// A fresh, empty folder for one test.
fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "thecal-cli-sim-bounds-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// `thecal sim run FILE --out DIR --json` under the memory limit (through util-linux's
/// `prlimit`), with a deadline.
fn run_limited(file: &Path, out: &Path) -> Output {
    let prlimit = Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut args: Vec<String> = Vec::new();
    let program = if prlimit {
        args.extend([MEMORY_LIMIT.to_string(), "--".into(), common::BIN.into()]);
        "prlimit"
    } else {
        println!("notice: prlimit is unavailable: the memory limit is not applied");
        common::BIN
    };
    args.extend(
        [
            "sim",
            "run",
            file.to_str().expect("UTF-8"),
            "--out",
            out.to_str().expect("UTF-8"),
            "--json",
        ]
        .map(String::from),
    );
    common::run_program(program, &args, None, Duration::from_secs(120))
}

/// A short baclofen scenario with `head` lines before the tables and `tail` after them.
fn scenario(head: &str, tail: &str) -> String {
    format!(
        "name = \"bounds\"\n\
         description = \"bounds\"\n\
         fill = \"20 mL\"\n\
         {head}\n\
         [device]\n\
         model = \"synchromed-20\"\n\
         \n\
         [prescription]\n\
         drug = [{{ name = \"baclofen\", concentration = \"2000 mcg/mL\" }}]\n\
         basal = {{ rate = \"0.5 mL/day\" }}\n\
         {tail}"
    )
}

fn one_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "one line expected: {}",
        common::text(out)
    );
    text.trim_end().to_string()
}

#[test]
fn the_three_inputs_that_aborted_exit_2_naming_field_and_limit_sim_060() {
    let dir = tmp("three");
    let cases = [
        (
            scenario(
                "duration = \"2 d\"",
                "[[event]]\nat = \"1 h\"\nkind = \"clinician-bolus\"\nvolume = \"10 uL\"\n\
                 duration = \"1 min\"\nrepeat = 4000000000\nrepeat_every = \"1 min\"\n",
            ),
            "event[0].repeat: the events expand to more than 100000",
            "at most 100000 events after expansion",
        ),
        (
            scenario("duration = \"2 d\"\nsample_every = \"1 ms\"", ""),
            "sample_every: 1 ms over 2 d takes 172800000 samples",
            "at most 100000",
        ),
        (
            scenario("duration = \"18446744073709551615 ms\"", ""),
            "duration: ",
            "at most 10958 d",
        ),
    ];
    for (i, (text, says, limit)) in cases.iter().enumerate() {
        let file = dir.join(format!("case-{i}.toml"));
        std::fs::write(&file, text).expect("write");
        let out = run_limited(&file, &dir.join(format!("report-{i}")));
        assert_eq!(
            out.status.code(),
            Some(2),
            "case {i}: {}",
            common::text(&out)
        );
        let line = one_line(&out);
        assert!(line.contains(says), "case {i}: {line}");
        assert!(line.contains(limit), "case {i}: {line}");
        assert!(!dir.join(format!("report-{i}")).exists(), "case {i}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn other_unbounded_inputs_are_refused_sim_060() {
    let dir = tmp("other");
    let cases = [
        (
            scenario(
                "duration = \"2 d\"\ntelemetry = true",
                "[[event]]\nat = \"1 h\"\nkind = \"handshake-flood\"\nevery = \"1 ms\"\n\
                 duration = \"100 d\"\n",
            ),
            "event[0].every: 1 ms for 100 d sends 8640000000 frames; allowed: at most 2000000",
        ),
        (
            scenario(
                "duration = \"2 d\"",
                "[patient]\npressing = \"when-poor\"\npresses_per_hour = 1e12\n",
            ),
            "patient.presses_per_hour: 1000000000000 is out of range; allowed: above 0 and at most 60",
        ),
        (
            scenario(
                "duration = \"2 d\"",
                "[patient]\npressing = \"when-poor\"\npress_threshold = 7.0\n",
            ),
            "patient.press_threshold: 7 is out of range; allowed: 0 to 1",
        ),
    ];
    for (i, (text, says)) in cases.iter().enumerate() {
        let file = dir.join(format!("case-{i}.toml"));
        std::fs::write(&file, text).expect("write");
        let out = run_limited(&file, &dir.join(format!("report-{i}")));
        assert_eq!(
            out.status.code(),
            Some(2),
            "case {i}: {}",
            common::text(&out)
        );
        let line = one_line(&out);
        assert!(line.contains(says), "case {i}: {line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Generated scenario files mixing sensible and absurd values of every field that sizes
/// a run. Accepted files are kept short (the generator never pairs a long duration with
/// frequent samples the limits would allow), so the suite stays quick.
fn generated() -> impl Strategy<Value = String> {
    // Weighted so that about a third of the files are within every bound.
    let duration = prop_oneof![
        6 => Just("2 h"),
        6 => Just("1 d"),
        1 => Just("0 ms"),
        1 => Just("10959 d"),
        1 => Just("18446744073709551615 ms"),
        1 => Just("-1 d"),
        1 => Just("1 parsec"),
    ];
    let sample_every = prop_oneof![
        4 => Just(None),
        1 => Just(Some("1 ms")),
        2 => Just(Some("1 s")),
        4 => Just(Some("1 min")),
        1 => Just(Some("0 s")),
    ];
    let repeat = prop_oneof![
        4 => Just(None),
        4 => Just(Some(3u64)),
        1 => Just(Some(99_999)),
        1 => Just(Some(4_000_000_000)),
        1 => Just(Some(u64::MAX)),
    ];
    let every = prop_oneof![
        1 => Just("1 ms"),
        4 => Just("1 min"),
        4 => Just("1 h"),
        1 => Just("0 ms"),
    ];
    let presses = prop_oneof![
        5 => Just("1"),
        3 => Just("60"),
        1 => Just("1e300"),
        1 => Just("-3"),
        1 => Just("nan"),
    ];
    let attack = any::<bool>();
    (duration, sample_every, repeat, every, presses, attack).prop_map(
        |(duration, sample_every, repeat, every, presses, attack)| {
            let mut head = format!("duration = \"{duration}\"\n");
            if let Some(s) = sample_every {
                head.push_str(&format!("sample_every = \"{s}\"\n"));
            }
            if attack {
                head.push_str("telemetry = true\n");
            }
            let mut tail = format!(
                "[patient]\npressing = \"when-poor\"\npresses_per_hour = {presses}\n\
                 \n[[event]]\nat = \"1 h\"\nkind = \"clinician-bolus\"\nvolume = \"10 uL\"\n\
                 duration = \"1 min\"\n"
            );
            if let Some(r) = repeat {
                tail.push_str(&format!("repeat = {r}\nrepeat_every = \"{every}\"\n"));
            }
            if attack {
                tail.push_str(&format!(
                    "\n[[event]]\nat = \"30 min\"\nkind = \"bolus-flood\"\nevery = \"{every}\"\n\
                     duration = \"{duration}\"\n"
                ));
            }
            scenario(&head, &tail)
        },
    )
}

#[test]
fn no_generated_scenario_crashes_or_outgrows_its_memory_sim_060() {
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let codes = std::cell::RefCell::new(Vec::new());
    let result = runner.run(&generated(), |text| {
        let dir = tmp("prop");
        let file = dir.join("scenario.toml");
        std::fs::write(&file, &text).expect("write");
        let out = run_limited(&file, &dir.join("report"));
        let code = out.status.code();
        codes.borrow_mut().push(code);
        prop_assert!(
            matches!(code, Some(0..=2)),
            "exit {:?} for\n{}\n{}",
            code,
            text,
            common::text(&out)
        );
        if code == Some(2) {
            let stderr = String::from_utf8_lossy(&out.stderr);
            prop_assert_eq!(stderr.trim_end().lines().count(), 1, "{}", stderr);
            prop_assert!(!stderr.contains("panicked"), "{}", stderr);
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator must reach both sides of the limits, or the test proves nothing.
    let codes = codes.into_inner();
    assert!(codes.contains(&Some(2)), "no refused file: {codes:?}");
    assert!(
        codes.iter().any(|c| matches!(c, Some(0 | 1))),
        "no accepted file: {codes:?}"
    );
}

#[test]
fn list_reports_every_unparsable_file_and_lists_the_rest_sim_061() {
    let dir = tmp("list");
    std::fs::write(dir.join("a-good.toml"), scenario("duration = \"1 d\"", "")).expect("write");
    std::fs::write(dir.join("b-bad.toml"), "name = ").expect("write");
    std::fs::write(
        dir.join("c-bad.toml"),
        scenario("duration = \"18446744073709551615 ms\"", ""),
    )
    .expect("write");
    std::fs::write(
        dir.join("d-good.toml"),
        scenario("duration = \"2 d\"", "").replace("name = \"bounds\"", "name = \"second\""),
    )
    .expect("write");
    let out = common::run(
        &["sim", "list", "--dir", dir.to_str().expect("UTF-8")],
        None,
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bounds ") && stdout.contains("second "),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("b-bad.toml: "), "{stderr}");
    assert!(stderr.contains("c-bad.toml: duration: "), "{stderr}");
    assert!(stderr.contains("2 scenario file(s)"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn output_read_only_in_part_ends_the_run_quietly_sim_040() {
    use std::io::Read as _;
    let dir = tmp("pipe");
    let mut child = Command::new(common::BIN)
        .args([
            "sim",
            "run",
            "scenarios/seven-years.toml",
            "--out",
            dir.join("report").to_str().expect("UTF-8"),
            "--json",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run thecal");
    // Read one byte, as `| head -c 1` would, and go away.
    let mut first = [0u8; 1];
    let mut out = child.stdout.take().expect("stdout");
    out.read_exact(&mut first).expect("first byte");
    drop(out);
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert_eq!(first[0], b'{');
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{status:?}: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
