//! One 14-day look ahead, printed: for `valgrind --tool=callgrind` (SIM-055).
//!
//! `cargo run --release -p thecal-sim --example lookahead`

#[path = "support/interrogated.rs"]
mod interrogated;

use thecal_pump::command::Command;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::drug::DrugId;
use thecal_sim::lookahead::{Forecast, Interrogation, Options, look_ahead};

/// The look ahead alone, apart from building the interrogated state, so that
/// `--toggle-collect='*one_look_ahead*'` counts only it.
#[inline(never)]
fn one_look_ahead(profile: HardwareProfile, state: &Interrogation, change: &[Command]) -> Forecast {
    look_ahead(profile, state, change, &Options::default()).expect("look ahead")
}

fn main() {
    let (profile, state, change) = interrogated::baclofen_concentration_change();
    let f = one_look_ahead(profile, &state, &change);
    for (day, m) in f.tip_per_day(DrugId::Baclofen).iter().enumerate() {
        println!("day {day:2}: {m} at the tip");
    }
    println!("excursions: {}", f.excursions.len());
}
