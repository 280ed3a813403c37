//! Runs scenario files and writes everything each run produces into one folder per
//! scenario: the report (`summary.json`, `timeline.csv`, the SVG plots, `index.html`)
//! and `log.txt`, the pump's whole event log (every entry with its time and hash) and
//! its chain head. Two folders written by two builds compare with `diff -r`: a change
//! meant to make the simulator faster must leave them identical (SIM-077).
//!
//! ```sh
//! cargo run --release -p thecal-sim --example scenario_outputs -- OUT scenarios/*.toml
//! valgrind --tool=callgrind target/release/examples/scenario_outputs OUT scenarios/seven-years.toml
//! ```

use std::fmt::Write as _;
use std::path::Path;

use thecal_sim::{engine, report, scenario};

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().expect("usage: scenario_outputs OUT FILE…");
    for file in args {
        let text = std::fs::read_to_string(&file).expect("read the scenario");
        let sc = scenario::parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (result, log) = engine::Engine::new(&sc).run_logged();
        let dir = Path::new(&out).join(&sc.name);
        report::write(&result, &dir).expect("write the report");
        let mut s = String::new();
        for (t, e) in &log.entries {
            let _ = writeln!(s, "{t} {e:?}");
        }
        let _ = writeln!(s, "head {:?}", log.head);
        std::fs::write(dir.join("log.txt"), s).expect("write the log");
        println!(
            "{}: {} strokes, {} engine events, {} log entries",
            sc.name,
            result.totals.strokes,
            result.totals.engine_events,
            log.entries.len()
        );
    }
}
