//! `thecal sim`: run scenarios, the accuracy method and the population Monte Carlo (on one
//! machine, or in shards merged afterwards).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use thecal_pump::profile::HardwareProfile;
use thecal_rx::Flow;
use thecal_sim::population::shard::{self, RunSpec, Shard, ShardFile};
use thecal_sim::scenario::Device;
use thecal_sim::{accuracy, engine, population, report, scenario};

/// Arguments of `thecal sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// List the shipped scenarios, one line each.
    List {
        /// Folder of scenarios.
        #[arg(long, default_value = "scenarios")]
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a scenario and write its report (summary.json, timeline.csv, SVG plots, index.html).
    Run {
        /// The scenario file.
        file: PathBuf,
        /// Report folder (default: report/<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print summary.json to standard output instead of the text summary.
        #[arg(long)]
        json: bool,
    },
    /// The IEC 60601-2-24 trumpet curve of a pump model.
    Accuracy {
        /// Hardware model: synchromed-20, synchromed-40, prometra-20, prometra-40, external.
        #[arg(long, default_value = "synchromed-20")]
        model: String,
        /// Set rate.
        #[arg(long, default_value = "1 mL/day", allow_hyphen_values = true)]
        rate: Flow,
        /// Calibration bias of the simulated device (fraction, e.g. 0.01); default drawn from the seed.
        #[arg(long, allow_hyphen_values = true)]
        bias: Option<f64>,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Report folder.
        #[arg(long, default_value = "report/accuracy")]
        out: PathBuf,
        /// Print the trumpet curve as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Monte Carlo over patients and devices: distributions of dose error, alarms, ERI.
    Population {
        /// Number of patients.
        #[arg(long, default_value_t = 1000)]
        patients: usize,
        /// Simulated time per patient, e.g. "365 d" (at most 10 years, 3653 d).
        #[arg(long, default_value = "365 d", allow_hyphen_values = true)]
        duration: thecal_rx::Duration,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Report folder.
        #[arg(long, default_value = "report/population")]
        out: PathBuf,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Print the summary as JSON instead of text (implies no progress bar).
        #[arg(long)]
        json: bool,
        /// Run only shard K of N (1 ≤ K ≤ N), e.g. `3/8`: a contiguous block of the
        /// patients, each with the seed it has in the whole run; writes
        /// `shard-0000K-of-0000N.json` into `--out` instead of the report, for
        /// `thecal sim merge`.
        #[arg(long, value_name = "K/N", allow_hyphen_values = true)]
        shard: Option<String>,
    },
    /// Merge the shard files of a population run (`population --shard K/N`) into its
    /// report: the same files, byte for byte, as the run on one machine.
    Merge {
        /// Shard files, or folders whose `shard-*.json` files are all taken.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Report folder.
        #[arg(long, default_value = "report/population")]
        out: PathBuf,
        /// Print the summary as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn profile(name: &str) -> Result<HardwareProfile, String> {
    thecal_pump::profile::HardwareProfile::by_model(name).ok_or_else(|| {
        format!(
            "--model: unknown hardware model '{name}'; known: {}",
            thecal_pump::profile::HardwareProfile::MODELS
        )
    })
}

fn load(path: &Path) -> Result<scenario::Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs `thecal sim`; `Err` is a one-line message for exit status 2.
pub fn run(args: SimArgs) -> Result<ExitCode, String> {
    match args.command {
        SimCommand::List { dir, json } => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            files.sort();
            let mut list = Vec::new();
            let mut unreadable = 0usize;
            for f in files {
                // A file that does not parse is reported and the rest are still listed.
                let sc = match load(&f) {
                    Ok(sc) => sc,
                    Err(e) => {
                        eprintln!("error: {e}");
                        unreadable += 1;
                        continue;
                    }
                };
                if json {
                    list.push(serde_json::json!({
                        "name": sc.name,
                        "description": sc.description,
                        "file": f.display().to_string(),
                    }));
                } else {
                    println!("{:<28} {}", sc.name, sc.description);
                }
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            }
            if unreadable > 0 {
                eprintln!(
                    "error: {unreadable} scenario file(s) in {} could not be read (above); \
                     the others are listed",
                    dir.display()
                );
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
        SimCommand::Run { file, out, json } => {
            let sc = load(&file)?;
            let started = std::time::Instant::now();
            let result = engine::run(&sc);
            let wall = started.elapsed();
            let out = out.unwrap_or_else(|| PathBuf::from("report").join(&sc.name));
            let written =
                report::write(&result, &out).map_err(|e| format!("{}: {e}", out.display()))?;
            if json {
                let s = report::summary(&result);
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            } else {
                print!("{}", report::terminal_summary(&result));
                let ratio = result.duration_h * 3600.0 / wall.as_secs_f64().max(1e-9);
                println!(
                    "simulated {:.1} days in {:.3} s ({:.3e} × real time, {} engine events)",
                    result.duration_h / 24.0,
                    wall.as_secs_f64(),
                    ratio,
                    result.totals.engine_events
                );
                if let Some(index) = written.iter().find(|p| p.ends_with("index.html")) {
                    println!("report: {}", index.display());
                }
            }
            Ok(if result.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        SimCommand::Accuracy {
            model,
            rate,
            bias,
            seed,
            out,
            json: as_json,
        } => {
            let p = profile(&model)?;
            if rate.is_zero() || rate < p.min_flow || rate > p.max_flow {
                return Err(format!(
                    "--rate: {rate} is outside the {} range {} to {}",
                    p.name, p.min_flow, p.max_flow
                ));
            }
            let series = engine::accuracy_series(Device::Programmable(p), rate, seed, bias);
            let set_ml_per_h = rate.raw() as f64 / 1e6 / 24.0;
            let t = accuracy::trumpet(&series, accuracy::SAMPLE_INTERVAL_MIN, set_ml_per_h);
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            let svg = out.join("trumpet.svg");
            accuracy::plot(&t, &format!("Trumpet curve: {} at {rate}", p.name), &svg)
                .map_err(|e| format!("{}: {e}", svg.display()))?;
            let json = serde_json::json!({
                "device": p.name,
                "rate_nl_per_day": rate.raw(),
                "mean_error_pct": t.mean_error_pct,
                "windows": t.windows.iter().map(|w| serde_json::json!({"window_min": w.window_min, "max_pct": w.max_pct, "min_pct": w.min_pct})).collect::<Vec<_>>(),
            });
            std::fs::write(
                out.join("trumpet.json"),
                serde_json::to_string_pretty(&json).unwrap_or_default(),
            )
            .map_err(|e| format!("{}: {e}", out.display()))?;
            if as_json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json).unwrap_or_default()
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{} at {rate}: mean error A = {:+.2} %",
                p.name, t.mean_error_pct
            );
            for w in &t.windows {
                println!(
                    "  {:>2} min window: max {:+7.2} %  min {:+7.2} %",
                    w.window_min, w.max_pct, w.min_pct
                );
            }
            println!("plot: {}", svg.display());
            Ok(ExitCode::SUCCESS)
        }
        SimCommand::Population {
            patients,
            duration,
            seed,
            out,
            quiet,
            json: as_json,
            shard,
        } => {
            let quiet = quiet || as_json;
            // Checked first: a bad split is refused before anything runs.
            let shard = shard
                .map(|s| s.parse::<Shard>().map_err(|e| format!("--shard: {e}")))
                .transpose()?;
            if patients == 0 {
                return Err("--patients: at least 1 patient".into());
            }
            if duration.ms() == 0 || duration > thecal_rx::Duration::from_days(3653) {
                return Err("--duration: above zero and at most 10 years (3653 d)".into());
            }
            let years = years_of(duration.ms());
            let started = std::time::Instant::now();
            let run_one = |i, s| engine::population_patient(i, s, years);
            if let Some(shard) = shard {
                let range = shard.range(patients);
                let outcomes = population::run_patients(range.clone(), seed, !quiet, run_one);
                let file = ShardFile::new(
                    RunSpec {
                        patients,
                        duration_ms: duration.ms(),
                        seed,
                    },
                    shard,
                    &outcomes,
                );
                let path = out.join(shard.file_name());
                write_atomically(&path, &file.to_json())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if as_json {
                    let v = serde_json::json!({
                        "shard": shard.to_string(),
                        "patients": range.len(),
                        "first_index": range.start,
                        "file": path.display().to_string(),
                    });
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                } else {
                    println!(
                        "shard {shard}: patients {} to {} ({} of {patients}) in {:.1} s",
                        range.start,
                        range.end.saturating_sub(1),
                        range.len(),
                        started.elapsed().as_secs_f64()
                    );
                    println!("shard file: {}", path.display());
                }
                return Ok(ExitCode::SUCCESS);
            }
            let outcomes = population::run_population(patients, seed, !quiet, run_one);
            let wall = started.elapsed();
            population_report(&outcomes, patients, years, &out, as_json, Some(wall))
        }
        SimCommand::Merge { inputs, out, json } => {
            let mut files = Vec::new();
            for input in &inputs {
                for path in shard_paths(input)? {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    let file =
                        ShardFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                    files.push((path.display().to_string(), file));
                }
            }
            let (run, outcomes) = shard::merge(&files).map_err(|e| format!("merge: {e}"))?;
            let years = years_of(run.duration_ms);
            population_report(&outcomes, run.patients, years, &out, json, None)
        }
    }
}

/// Simulated years in `ms`.
fn years_of(ms: u64) -> f64 {
    ms as f64 / (365.25 * 86_400_000.0)
}

/// The shard files named by one `merge` input: the file itself, or every
/// `shard-*.json` in a folder (in name order).
fn shard_paths(input: &Path) -> Result<Vec<PathBuf>, String> {
    if !input.is_dir() {
        return Ok(vec![input.to_path_buf()]);
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(input)
        .map_err(|e| format!("{}: {e}", input.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".json"))
        })
        .collect();
    if paths.is_empty() {
        return Err(format!(
            "{}: no shard-*.json files in this folder",
            input.display()
        ));
    }
    paths.sort();
    Ok(paths)
}

/// Writes `text` to `path` (its folder created) through a temporary file renamed into
/// place, so that a reader on shared storage sees the whole file or none.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Writes the population report of `outcomes` into `out` and prints its summary (with
/// the wall time of a run on this machine; a merge has none).
fn population_report(
    outcomes: &[population::PatientOutcome],
    patients: usize,
    years: f64,
    out: &Path,
    as_json: bool,
    wall: Option<std::time::Duration>,
) -> Result<ExitCode, String> {
    let summary = population::summarize(outcomes);
    population::write(outcomes, &summary, out).map_err(|e| format!("{}: {e}", out.display()))?;
    if as_json {
        let v = serde_json::json!({
            "patients": patients,
            "years": years,
            "summary": summary,
            "report": out.join("index.html").display().to_string(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let d = &summary.dose_error;
    match wall {
        Some(wall) => println!(
            "{patients} patients × {years} years in {:.1} s ({:.3e} × real time on {} threads)",
            wall.as_secs_f64(),
            patients as f64 * years * 365.25 * 86_400.0 / wall.as_secs_f64().max(1e-9),
            rayon::current_num_threads()
        ),
        None => println!("{patients} patients × {years} years, merged from shard files"),
    }
    println!(
        "dose error at the tip: mean {:+.2} %, sd {:.2} %, 5–95 % [{:+.2}, {:+.2}] %",
        d.mean, d.sd, d.p5, d.p95
    );
    println!(
        "patients with a limiter veto: {}; projected ERI day median {:.0}",
        summary.patients_with_vetoes, summary.eri_day.p50
    );
    println!("report: {}", out.join("index.html").display());
    Ok(ExitCode::SUCCESS)
}
