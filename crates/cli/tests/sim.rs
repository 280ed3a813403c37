//! `thecal sim` as a user runs it: list, run (report, verdicts, exit status, JSON,
//! determinism), bad scenario files, the trumpet curve and the population Monte Carlo.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn thecal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_thecal"))
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("run thecal")
}

/// A fresh, empty folder for one test.
fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("thecal-cli-sim-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The one line on standard error, checked to be one line without a panic.
fn stderr_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "one line expected: {text:?}"
    );
    assert!(
        !text.contains("panicked") && !text.contains("backtrace"),
        "{text}"
    );
    text.trim_end().to_string()
}

/// A short, quiet baclofen scenario; `extra` is appended (events, expectations).
fn scenario(device: &str, extra: &str) -> String {
    format!(
        "name = \"cli-test\"\n\
         description = \"A quiet day of baclofen.\"\n\
         duration = \"1 d\"\n\
         fill = \"20 mL\"\n\
         \n\
         [device]\n\
         model = \"{device}\"\n\
         \n\
         [prescription]\n\
         drug = [{{ name = \"baclofen\", concentration = \"2000 mcg/mL\" }}]\n\
         basal = {{ rate = \"0.5 mL/day\" }}\n\
         {extra}"
    )
}

fn write_scenario(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("scenario.toml");
    std::fs::write(&p, text).expect("write scenario");
    p
}

#[test]
fn list_names_every_shipped_scenario_sim_020_sim_040() {
    let out = thecal(&["sim", "list"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let mut files = 0;
    for entry in std::fs::read_dir(Path::new(ROOT).join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        files += 1;
        let toml = read(&path);
        let name = toml
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{}: no name", path.display()));
        assert_eq!(
            Some(name),
            path.file_stem().and_then(|f| f.to_str()),
            "a scenario is named after its file"
        );
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "`sim list` does not list {name}:\n{text}"
        );
    }
    assert!(files >= 18, "only {files} scenarios");
    assert_eq!(
        text.lines().count(),
        files,
        "one line per scenario:\n{text}"
    );
}

#[test]
fn run_passes_and_writes_the_full_report_sim_020_sim_030_sim_040() {
    let dir = tmp("run");
    let out = thecal(&[
        "sim",
        "run",
        "scenarios/bridging-automatic.toml",
        "--out",
        s(&dir),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("result: PASS (3/3 expectations held)"),
        "{text}"
    );
    assert_eq!(text.matches("✔ PASS").count(), 3, "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    assert!(
        text.contains("✔ PASS  no-limiter-veto — 0 limiter vetoes"),
        "{text}"
    );
    assert!(text.contains("index.html"), "{text}");

    for f in [
        "summary.json",
        "timeline.csv",
        "reservoir.svg",
        "dose.svg",
        "patient.svg",
        "alarms.svg",
        "index.html",
    ] {
        assert!(dir.join(f).is_file(), "{f} not written");
    }

    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(summary["scenario"], "bridging-automatic");
    assert_eq!(summary["passed"], true);
    assert_eq!(summary["expectations_passed"], 3);
    assert_eq!(summary["expectations_total"], 3);
    assert_eq!(summary["duration_days"], 6.0);
    assert_eq!(summary["totals"]["drugs"][0]["drug"], "baclofen");
    assert_eq!(summary["totals"]["limiter_vetoes"], 0);
    let verdicts = summary["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 3);
    assert!(verdicts.iter().all(|v| v["passed"] == true));

    // Hourly samples over 6 days, one row each, every row as wide as the header.
    let csv = read(&dir.join("timeline.csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("time_h,reservoir_true_mL,reservoir_expected_mL,"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("tip_mcg_per_day"), "{}", lines[0]);
    assert_eq!(lines.len(), 1 + 6 * 24);
    let cols = lines[0].split(',').count();
    for row in &lines[1..] {
        assert_eq!(row.split(',').count(), cols, "{row}");
        let t: f64 = row.split(',').next().unwrap().parse().unwrap();
        assert!(t > 0.0 && t <= 144.0, "{row}");
    }

    for (svg, label) in [
        ("reservoir.svg", "reservoir (mL)"),
        ("dose.svg", "dose (mcg/day)"),
        ("patient.svg", "CSF concentration (ng/mL)"),
        ("alarms.svg", "time (days)"),
    ] {
        let text = read(&dir.join(svg));
        assert!(text.contains("<svg"), "{svg}");
        assert!(text.contains(label), "{svg} has no axis label {label:?}");
        assert!(text.contains("time ("), "{svg} has no time axis");
        assert!(!text.contains("NaN"), "{svg}");
    }

    let html = read(&dir.join("index.html"));
    for f in ["reservoir.svg", "dose.svg", "patient.svg", "alarms.svg"] {
        assert!(html.contains(f), "index.html does not reference {f}");
    }
    assert!(html.contains("summary.json") && html.contains("timeline.csv"));
    assert!(html.contains("bridging-automatic"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_expectation_exits_1_with_a_fail_line_sim_020_sim_040() {
    let dir = tmp("fail");
    let file = write_scenario(
        &dir,
        &scenario(
            "synchromed-20",
            "[[expect]]\nkind = \"limiter-veto\"\n\
             [[expect]]\nkind = \"no-limiter-veto\"\n",
        ),
    );
    let report = dir.join("report");
    let out = thecal(&["sim", "run", s(&file), "--out", s(&report)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("result: FAIL (1/2 expectations held)"),
        "{text}"
    );
    assert!(
        text.contains("✘ FAIL  limiter-veto — 0 limiter vetoes"),
        "{text}"
    );
    assert!(text.contains("✔ PASS  no-limiter-veto"), "{text}");
    // The report is written all the same, and says what failed.
    let summary = read_json(&report.join("summary.json"));
    assert_eq!(summary["passed"], false);
    assert_eq!(summary["expectations_passed"], 1);
    assert_eq!(summary["verdicts"][0]["expectation"], "limiter-veto");
    assert_eq!(summary["verdicts"][0]["passed"], false);
    assert!(report.join("index.html").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_prints_the_summary_sim_030_sim_040() {
    let dir = tmp("json");
    let out = thecal(&[
        "sim",
        "run",
        "scenarios/bridging-none.toml",
        "--out",
        s(&dir),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert!(printed.is_object());
    assert_eq!(printed["scenario"], "bridging-none");
    assert_eq!(printed["passed"], true);
    assert!(printed["totals"]["battery"]["state"].is_string());
    // The same object as the report's summary.json.
    assert_eq!(printed, read_json(&dir.join("summary.json")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_same_scenario_twice_gives_identical_reports_sim_001() {
    let dir = tmp("determinism");
    // Random bolus presses and sampled device bias: everything comes from the seed.
    for (file, expect) in [
        ("scenarios/morphine-bupivacaine-ptm.toml", 0),
        ("scenarios/mri-stall.toml", 0),
    ] {
        let name = Path::new(file).file_stem().unwrap().to_str().unwrap();
        let (a, b) = (dir.join(format!("{name}-a")), dir.join(format!("{name}-b")));
        for d in [&a, &b] {
            let out = thecal(&["sim", "run", file, "--out", s(d)]);
            assert_eq!(out.status.code(), Some(expect), "{out:?}");
        }
        for f in ["summary.json", "timeline.csv"] {
            let (x, y) = (
                std::fs::read(a.join(f)).unwrap(),
                std::fs::read(b.join(f)).unwrap(),
            );
            assert!(!x.is_empty());
            assert!(x == y, "{name}: {f} differs between two runs");
        }
    }
    // A different seed is a different run.
    let text = scenario(
        "synchromed-20",
        "[patient]\npressing = \"when-poor\"\npress_threshold = 0.9\npresses_per_hour = 3.0\n",
    )
    .replace("basal = { rate = \"0.5 mL/day\" }", "basal = { rate = \"0.5 mL/day\" }\npatient_bolus = { volume = \"10 uL\", duration = \"10 min\", lockout = \"1 h\", max_per_day = 6 }");
    let mut csvs = Vec::new();
    for seed in [1, 1, 2] {
        let file = write_scenario(&dir, &format!("seed = {seed}\n{text}"));
        let out_dir = dir.join(format!("seed-{seed}-{}", csvs.len()));
        let out = thecal(&["sim", "run", s(&file), "--out", s(&out_dir)]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        csvs.push(std::fs::read(out_dir.join("timeline.csv")).unwrap());
    }
    assert!(csvs[0] == csvs[1], "seed 1 twice differs");
    assert!(csvs[0] != csvs[2], "seeds 1 and 2 give the same timeline");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_scenario_exits_2_with_one_line_naming_the_problem_sim_020_sim_040() {
    let dir = tmp("bad");
    let out = thecal(&["sim", "run", "scenarios/no-such-scenario.toml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let line = stderr_line(&out);
    assert!(
        line.starts_with("error: scenarios/no-such-scenario.toml:"),
        "{line}"
    );
    assert!(!dir.join("report").exists());

    let cases: [(String, &str); 13] = [
        (
            scenario("medtronic-99", ""),
            "device.model: unknown device 'medtronic-99'; known: synchromed-20",
        ),
        (
            scenario(
                "synchromed-20",
                "[[event]]\nat = \"1 h\"\nkind = \"earthquake\"\n",
            ),
            "event[0].kind: unknown event 'earthquake'; known: refill",
        ),
        (
            scenario(
                "synchromed-20",
                "[[event]]\nat = \"3 parsecs\"\nkind = \"stop\"\n",
            ),
            "event[0].at: '3 parsecs': unknown unit",
        ),
        (
            scenario(
                "synchromed-20",
                "[[event]]\nat = \"2 h\"\nkind = \"occlusion\"\nfraction = 1.5\n",
            ),
            "event[0].fraction: 1.5 is not a fraction; give a number from 0 to 1",
        ),
        (
            scenario(
                "synchromed-20",
                "[[expect]]\nkind = \"tip-dose-not-below\"\nfraction = -0.2\nlonger_than = \"2 h\"\n",
            ),
            "expect[0].fraction: -0.2 is not a fraction",
        ),
        (
            scenario("synchromed-20", "[[expect]]\nkind = \"always-fine\"\n"),
            "expect[0].kind: unknown expectation 'always-fine'; known:",
        ),
        (
            scenario(
                "synchromed-20",
                "[[event]]\nat = \"1 d\"\nkind = \"refill\"\n",
            ),
            "event[0].volume: is required for this kind",
        ),
        (
            scenario(
                "synchromed-20",
                "[[event]]\nat = \"1 h\"\nkind = \"stop\"\nrepeat = 3\n",
            ),
            "event[0].repeat_every: is required with repeat",
        ),
        (
            scenario("synchromed-20", "").replace("\"0.5 mL/day\"", "\"0.5 mg/day\""),
            "prescription.basal.rate: '0.5 mg/day'",
        ),
        (scenario("synchromed-20", "colour = \"blue\"\n"), "colour"),
        (
            scenario(
                "synchromed-20",
                "[[event]]\nat = \"1 d\"\nkind = \"catheter-revision\"\nlength = \"200 cm\"\n",
            ),
            "event[0].length: catheter length after trimming must be 5 cm to 150 cm",
        ),
        (
            scenario(
                "synchromed-20",
                "[[event]]\nat = \"1 d\"\nkind = \"catheter-revision\"\nlength = \"45\"\n",
            ),
            "event[0].length: '45': no unit; give the length with its unit",
        ),
        (
            scenario(
                "synchromed-20",
                "[[event]]\nat = \"1 d\"\nkind = \"catheter-revision\"\nmodel = \"9\"\nlength = \"45 cm\"\n",
            ),
            "event[0].model: unknown model '9'; known: 1 (two-piece",
        ),
    ];
    for (i, (text, wanted)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad-{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = thecal(&["sim", "run", s(&file), "--out", s(&dir.join("report"))]);
        assert_eq!(out.status.code(), Some(2), "case {i}: {out:?}");
        assert!(out.stdout.is_empty(), "case {i}: {out:?}");
        let line = stderr_line(&out);
        assert!(
            line.starts_with(&format!("error: {}: ", file.display())),
            "case {i}: {line}"
        );
        assert!(line.contains(wanted), "case {i}: {line:?} lacks {wanted:?}");
    }
    assert!(!dir.join("report").exists(), "no report for a bad file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn accuracy_writes_the_trumpet_curve_sim_031_sim_040() {
    let dir = tmp("accuracy");
    let out = thecal(&[
        "sim",
        "accuracy",
        "--model",
        "synchromed-20",
        "--rate",
        "24mL/day",
        "--out",
        s(&dir),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("SynchroMed-class 20 mL at 24 mL/day: mean error A = "),
        "{text}"
    );
    assert!(first.ends_with(" %"), "{first}");
    for w in [2, 5, 11, 19, 31] {
        assert!(
            text.contains(&format!("{w:>2} min window: max")),
            "{w} min window missing:\n{text}"
        );
    }
    let svg = read(&dir.join("trumpet.svg"));
    assert!(svg.contains("<svg"));
    let json = read_json(&dir.join("trumpet.json"));
    assert_eq!(json["device"], "SynchroMed-class 20 mL");
    assert_eq!(json["rate_nl_per_day"], 24_000_000);
    let mean = json["mean_error_pct"].as_f64().expect("mean error");
    assert!(mean.abs() < 20.0, "{mean}");
    let windows = json["windows"].as_array().unwrap();
    let minutes: Vec<f64> = windows
        .iter()
        .map(|w| w["window_min"].as_f64().unwrap())
        .collect();
    assert_eq!(minutes, [2.0, 5.0, 11.0, 19.0, 31.0]);
    for w in windows {
        let (max, min) = (
            w["max_pct"].as_f64().unwrap(),
            w["min_pct"].as_f64().unwrap(),
        );
        assert!(max >= min, "{w}");
        assert!(
            max >= mean - 1e-9 && min <= mean + 1e-9,
            "{w} vs mean {mean}"
        );
    }
    // The same seed, the same curve.
    let again = dir.join("again");
    let out = thecal(&[
        "sim",
        "accuracy",
        "--model",
        "synchromed-20",
        "--rate",
        "24mL/day",
        "--out",
        s(&again),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(read_json(&again.join("trumpet.json")), json);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn accuracy_refuses_a_rate_or_device_it_cannot_run_sim_031_sim_040() {
    let dir = tmp("accuracy-bad");
    for (args, wanted) in [
        (
            vec!["--model", "synchromed-20", "--rate", "30mL/day"],
            "--rate: 30 mL/day is outside the SynchroMed-class 20 mL range 0.048 mL/day to 24 mL/day",
        ),
        (
            vec!["--model", "synchromed-20", "--rate", "0.01mL/day"],
            "--rate: 0.01 mL/day is outside",
        ),
        (vec!["--rate", "0mL/day"], "--rate: 0 mL/day is outside"),
        (vec!["--rate", "3 parsecs"], "'3 parsecs'"),
        (
            vec!["--model", "medtronic-99"],
            "--model: unknown hardware model 'medtronic-99'",
        ),
    ] {
        let mut all = vec!["sim", "accuracy"];
        all.extend(&args);
        all.extend(["--out", s(&dir)]);
        let out = thecal(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let line = stderr_line(&out);
        assert!(line.contains(wanted), "{args:?}: {line}");
        assert!(!dir.join("trumpet.json").exists(), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn population_writes_its_report_and_is_deterministic_for_a_seed_sim_032_sim_040() {
    let dir = tmp("population");
    let run = |name: &str, seed: &str| {
        let out_dir = dir.join(name);
        let out = thecal(&[
            "sim",
            "population",
            "--patients",
            "4",
            "--duration",
            "18.2625 d",
            "--seed",
            seed,
            "--quiet",
            "--out",
            s(&out_dir),
        ]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let text = stdout(&out);
        assert!(text.starts_with("4 patients × 0.05 years in "), "{text}");
        assert!(text.contains("dose error at the tip: mean "), "{text}");
        assert!(text.contains("report: "), "{text}");
        out_dir
    };
    let a = run("a", "7");
    let b = run("b", "7");
    let c = run("c", "8");

    let json = read_json(&a.join("population.json"));
    assert_eq!(json["summary"]["n"], 4);
    let outcomes = json["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 4);
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o["index"], i);
        assert!(o["dose_error_pct"].as_f64().unwrap().abs() < 20.0, "{o}");
    }
    let csv = read(&a.join("population.csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "index,dose_error_pct,alarms_before_refill,eri_day,eos_day,vetoes,passed"
    );
    assert_eq!(lines.len(), 5);
    for svg in ["dose_error.svg", "eri_day.svg"] {
        let text = read(&a.join(svg));
        assert!(text.contains("<svg"), "{svg}");
    }
    assert!(read(&a.join("dose_error.svg")).contains("dose error, delivered vs prescribed (%)"));
    let html = read(&a.join("index.html"));
    assert!(html.contains("dose_error.svg") && html.contains("eri_day.svg"));

    for f in ["population.json", "population.csv"] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f} differs for the same seed"
        );
    }
    assert!(
        std::fs::read(a.join("population.csv")).unwrap()
            != std::fs::read(c.join("population.csv")).unwrap(),
        "seeds 7 and 8 give the same population"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn population_refuses_an_empty_or_endless_run_sim_032_sim_040() {
    let dir = tmp("population-bad");
    for (args, wanted) in [
        (
            ["--patients", "0", "--duration", "365 d"],
            "--patients: at least 1 patient",
        ),
        (
            ["--patients", "2", "--duration", "0 d"],
            "--duration: above zero and at most 10 years (3653 d)",
        ),
        (
            ["--patients", "2", "--duration", "4000 d"],
            "--duration: above zero and at most 10 years (3653 d)",
        ),
    ] {
        let mut all = vec!["sim", "population", "--quiet", "--out", s(&dir)];
        all.extend(args);
        let out = thecal(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let line = stderr_line(&out);
        assert!(line.contains(wanted), "{args:?}: {line}");
    }
    assert!(!dir.join("population.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn misspelt_alarm_and_command_names_and_impossible_setups_are_errors_sim_020_sim_040() {
    let base = "name = \"x\"\ndescription = \"x\"\nduration = \"1 d\"\nfill = \"20 mL\"\n[device]\nmodel = \"synchromed-20\"\n[prescription]\ndrug = [{ name = \"baclofen\", concentration = \"2000 mcg/mL\" }]\nbasal = { rate = \"0.5 mL/day\" }\n";
    let dir = std::env::temp_dir().join(format!("thecal-sim-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (extra, needle) in [
        (
            "[[expect]]\nkind = \"no-alarm\"\nalarm = \"EmptyReservior\"\n",
            "unknown alarm 'EmptyReservior'",
        ),
        (
            "[[expect]]\nkind = \"command-refused\"\ncommand = \"refil\"\n",
            "unknown command 'refil'",
        ),
    ] {
        let file = dir.join("bad.toml");
        std::fs::write(&file, format!("{base}{extra}")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_thecal"))
            .args([
                "sim",
                "run",
                file.to_str().unwrap(),
                "--out",
                dir.join("r").to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{out:?}"
        );
    }
    for (from, to, needle) in [
        (
            "fill = \"20 mL\"",
            "fill = \"100 mL\"",
            "exceeds the device's capacity",
        ),
        (
            "model = \"synchromed-20\"",
            "model = \"synchromed-20\"\nbattery = \"-5 J\"",
            "positive energy",
        ),
        (
            "duration = \"1 d\"",
            "duration = \"0 h\"",
            "must be above zero",
        ),
    ] {
        let file = dir.join("bad.toml");
        std::fs::write(&file, base.replace(from, to)).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_thecal"))
            .args([
                "sim",
                "run",
                file.to_str().unwrap(),
                "--out",
                dir.join("r").to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{needle}: {out:?}"
        );
    }
    // A prescription the pump refuses (morphine above its hard limit) fails the run.
    let file = dir.join("refused.toml");
    std::fs::write(
        &file,
        base.replace(
            "baclofen\", concentration = \"2000 mcg/mL",
            "morphine\", concentration = \"30 mg/mL",
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_thecal"))
        .args([
            "sim",
            "run",
            file.to_str().unwrap(),
            "--out",
            dir.join("r").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("the pump accepts the scenario's prescription"),
        "{out:?}"
    );
}
