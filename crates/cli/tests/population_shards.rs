//! A population run split into shards, each a separate process of the real binary, and
//! merged: the report is the single run's, byte for byte (SIM-073, SIM-074); a bad
//! `--shard` and a bad set of shard files are refused with one line and exit 2
//! (SIM-075); the Slurm array script runs its stages as a batch engine would (SIM-076).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const DEADLINE: Duration = Duration::from_secs(600);

/// The report files of a population run.
const REPORT: [&str; 5] = [
    "population.json",
    "population.csv",
    "dose_error.svg",
    "eri_day.svg",
    "index.html",
];

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("thecal-cli-shards-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn thecal(args: &[&str]) -> Output {
    common::run(args, None, DEADLINE)
}

/// The population's arguments: small enough for a test, long enough that patients
/// differ (refills, alarms) and the floating-point sums are not trivial.
const PATIENTS: &str = "7";
const DURATION: &str = "40 d";
const SEED: &str = "11";

fn population(extra: &[&str]) -> Output {
    let mut args = vec![
        "sim",
        "population",
        "--patients",
        PATIENTS,
        "--duration",
        DURATION,
        "--seed",
        SEED,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    thecal(&args)
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", common::text(out));
}

/// The one line on standard error of a refusal.
fn one_line(out: &Output) -> String {
    assert_exit(out, 2);
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "one line expected: {text:?}"
    );
    assert!(!text.contains("panicked"), "{text}");
    text.trim_end().to_string()
}

fn same_report(a: &Path, b: &Path) {
    for f in REPORT {
        let x = std::fs::read(a.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        let y = std::fs::read(b.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(x == y, "{f} of the merge differs from the single run's");
    }
}

#[test]
fn shards_run_as_separate_processes_merge_into_the_single_run_byte_for_byte_sim_073_sim_074() {
    let dir = tmp("merge");
    let single = dir.join("single");
    assert_exit(&population(&["--out", s(&single)]), 0);

    for n in [3u32, 8] {
        // More shards (8) than patients (7): one shard is empty, and still merges.
        let shards = dir.join(format!("shards-{n}"));
        // Every shard at once, each its own process, as an array job runs them.
        let children: Vec<_> = (1..=n)
            .map(|k| {
                Command::new(common::BIN)
                    .args([
                        "sim",
                        "population",
                        "--patients",
                        PATIENTS,
                        "--duration",
                        DURATION,
                        "--seed",
                        SEED,
                        "--quiet",
                        "--shard",
                        &format!("{k}/{n}"),
                        "--out",
                        s(&shards),
                    ])
                    .env("RAYON_NUM_THREADS", "1")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start a shard")
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().expect("shard ends");
            assert_exit(&out, 0);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.starts_with("shard "), "{text}");
        }
        let files: Vec<String> = std::fs::read_dir(&shards)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), n as usize, "{files:?}");
        // A shard writes no report of its own.
        assert!(!shards.join("population.json").exists());

        let merged = dir.join(format!("merged-{n}"));
        let out = thecal(&["sim", "merge", s(&shards), "--out", s(&merged)]);
        assert_exit(&out, 0);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with("7 patients × ") && text.contains("merged from shard files"),
            "{text}"
        );
        same_report(&single, &merged);
    }

    // Files named one by one, in any order, merge the same.
    let shards = dir.join("shards-3");
    let merged = dir.join("merged-by-name");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&shards)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.reverse();
    let mut args = vec!["sim", "merge", "--out", s(&merged)];
    args.extend(names.iter().map(|p| s(p)));
    assert_exit(&thecal(&args), 0);
    same_report(&single, &merged);

    // The JSON summary of the merge is the single run's but for the report's path.
    let a = thecal(&["sim", "merge", s(&shards), "--json", "--out", s(&merged)]);
    let b = population(&["--json", "--out", s(&single)]);
    assert_exit(&a, 0);
    assert_exit(&b, 0);
    let mut a: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let mut b: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    a["report"] = serde_json::Value::Null;
    b["report"] = serde_json::Value::Null;
    assert_eq!(a, b);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_duplicated_or_foreign_shard_is_refused_sim_074_sim_075() {
    let dir = tmp("refuse");
    let shards = dir.join("shards");
    for k in 1..=3 {
        let shard = format!("{k}/3");
        assert_exit(&population(&["--shard", &shard, "--out", s(&shards)]), 0);
    }
    let file = |k: u32| shards.join(format!("shard-0000{k}-of-00003.json"));
    let out = dir.join("report");

    // A shard missing.
    let e = one_line(&thecal(&[
        "sim",
        "merge",
        s(&file(1)),
        s(&file(3)),
        "--out",
        s(&out),
    ]));
    assert_eq!(
        e,
        "error: merge: shard 2/3 missing: 2 of 3 shard files given, all 3 are needed"
    );
    assert!(
        !out.join("population.json").exists(),
        "no report from a partial set"
    );

    // A shard given twice (the folder and the file again).
    let e = one_line(&thecal(&[
        "sim",
        "merge",
        s(&shards),
        s(&file(2)),
        "--out",
        s(&out),
    ]));
    assert!(
        e.starts_with("error: merge: shard 2/3 is given twice: "),
        "{e}"
    );

    // A shard of another run (another seed).
    let other = dir.join("other");
    let mut args = vec![
        "sim",
        "population",
        "--patients",
        PATIENTS,
        "--duration",
        DURATION,
        "--seed",
        "12",
        "--quiet",
        "--shard",
        "2/3",
        "--out",
    ];
    args.push(s(&other));
    assert_exit(&thecal(&args), 0);
    let e = one_line(&thecal(&[
        "sim",
        "merge",
        s(&file(1)),
        s(&other.join("shard-00002-of-00003.json")),
        s(&file(3)),
        "--out",
        s(&out),
    ]));
    assert!(
        e.contains("is from another run (7 patients, 40 d, seed 12)"),
        "{e}"
    );

    // Not a shard file; an empty folder.
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "{\"hello\": 1}").unwrap();
    let e = one_line(&thecal(&["sim", "merge", s(&junk), "--out", s(&out)]));
    assert!(e.contains("not a population shard file"), "{e}");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = one_line(&thecal(&["sim", "merge", s(&empty), "--out", s(&out)]));
    assert!(e.contains("no shard-*.json files"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_shard_is_refused_with_what_is_allowed_sim_075() {
    let dir = tmp("bad-shard");
    for bad in ["0/0", "3/2", "x", "0/4", "1/0", "-1/2", "1/2/3", "2", ""] {
        let e = one_line(&population(&["--shard", bad, "--out", s(&dir)]));
        assert_eq!(
            e,
            format!(
                "error: --shard: '{bad}': expected K/N with whole numbers 1 ≤ K ≤ N ≤ 100000 \
                 (shard K of N, e.g. 3/8)"
            )
        );
    }
    // Nothing was written.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stand-in for Slurm's `sbatch`: records its arguments, answers a job id, and runs
/// nothing (the test then runs the stages itself, as Slurm would).
const FAKE_SBATCH: &str = r#"#!/bin/sh
echo "$@" >> "$FAKE_SBATCH_LOG"
n=$(wc -l < "$FAKE_SBATCH_LOG")
echo "$((4000 + n))"
"#;

#[test]
fn the_slurm_array_script_submits_shards_and_a_dependent_merge_that_matches_sim_076() {
    let dir = tmp("slurm");
    let script = Path::new(ROOT).join("deploy/slurm/population.sbatch");
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let sbatch = bin_dir.join("sbatch");
    std::fs::write(&sbatch, FAKE_SBATCH).unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&sbatch)
        .status()
        .unwrap();
    let thecal_dir = Path::new(common::BIN).parent().unwrap();
    let path = format!(
        "{}:{}:{}",
        bin_dir.display(),
        thecal_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = dir.join("sbatch.log");
    let run_dir = dir.join("run");
    let base = |c: &mut Command| {
        c.env("PATH", &path)
            .env("FAKE_SBATCH_LOG", &log)
            .env("PATIENTS", PATIENTS)
            .env("DURATION", DURATION)
            .env("SEED", SEED)
            .env("SHARDS", "3")
            .env("RUN_DIR", &run_dir)
            .current_dir(&dir);
    };

    // Submission: the script, run outside a job, submits the array and the merge.
    let mut c = Command::new("bash");
    c.arg(&script);
    base(&mut c);
    let out = c.output().unwrap();
    assert_exit(&out, 0);
    let submitted = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = submitted.lines().collect();
    assert_eq!(lines.len(), 2, "{submitted}");
    assert!(lines[0].contains("--array=1-3"), "{submitted}");
    assert!(
        lines[1].contains("--dependency=afterok:4001"),
        "{submitted}"
    );

    // The array tasks, as Slurm runs them (ids 1 to 3), then the merge.
    for k in 1..=3 {
        let mut c = Command::new("bash");
        c.arg(&script)
            .env("SLURM_JOB_ID", format!("{}", 4100 + k))
            .env("SLURM_ARRAY_JOB_ID", "4001")
            .env("SLURM_ARRAY_TASK_ID", k.to_string())
            .env("SLURM_ARRAY_TASK_MIN", "1")
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .env("SLURM_CPUS_PER_TASK", "1");
        base(&mut c);
        assert_exit(&c.output().unwrap(), 0);
    }
    let mut c = Command::new("bash");
    c.arg(&script)
        .env("SLURM_JOB_ID", "4002")
        .env("THECAL_STAGE", "merge");
    base(&mut c);
    assert_exit(&c.output().unwrap(), 0);

    let single = dir.join("single");
    assert_exit(&population(&["--out", s(&single)]), 0);
    same_report(&single, &run_dir.join("report"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Kubernetes manifest: the shard count agrees in its two places, the shard number
/// is `JOB_COMPLETION_INDEX + 1`, and (where `kubectl` is installed) it parses as the
/// five objects it should be, offline (`kubectl kustomize`).
#[test]
fn the_kubernetes_manifest_is_an_indexed_job_and_a_merge_job_sim_076() {
    let path = Path::new(ROOT).join("deploy/k8s/population-job.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let value = |key: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("{key} not found"))
    };
    assert_eq!(value("SHARDS:"), value("completions:"));
    assert_eq!(value("completionMode:"), "Indexed");
    assert!(text.contains("--shard \"$((JOB_COMPLETION_INDEX + 1))/$SHARDS\""));
    assert!(text.contains(
        "[\"thecal\", \"sim\", \"merge\", \"/data/shards\", \"--out\", \"/data/report\"]"
    ));
    assert!(text.contains("ReadWriteMany"));

    let Ok(out) = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
    else {
        eprintln!("kubectl is not installed: the manifest's YAML is not parsed");
        return;
    };
    assert!(out.status.success());
    let dir = tmp("kustomize");
    std::fs::copy(&path, dir.join("population-job.yaml")).unwrap();
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources:\n- population-job.yaml\n",
    )
    .unwrap();
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let parsed = String::from_utf8_lossy(&out.stdout);
    for kind in [
        "kind: ConfigMap",
        "kind: PersistentVolumeClaim",
        "name: thecal-population-shards",
        "name: thecal-population-merge",
        "completionMode: Indexed",
        "initContainers:",
    ] {
        assert!(parsed.contains(kind), "{kind} missing:\n{parsed}");
    }
    assert_eq!(parsed.matches("kind: Job").count(), 2, "{parsed}");
    let _ = std::fs::remove_dir_all(&dir);
}
