//! Reproducer: after a restart whose monotonic counter restarted lower, `poll_timeout()`
//! answers in the core's offset time while `handle_*` take the hardware counter.
//!
//! A pump delivering 0.5 mL/day runs for one day, loses power, and restarts with its
//! hardware counter at 0. The firmware then follows the documented call order with the
//! hardware counter: sleep until `poll_timeout()`, `handle_timeout(now)`, drain.
//!
//! ```text
//! cargo run --release -p thecal-pump --example restart_counter
//! ```

use thecal_pump::command::{BridgeChoice, Command, Role};
use thecal_pump::core::{Action, Pump};
use thecal_pump::persist::Slot;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::check::{PatientBolus, Prescription};
use thecal_rx::dose::Admixture;
use thecal_rx::drug::DrugId;
use thecal_rx::schedule::Schedule;
use thecal_rx::{Duration, Instant, Volume};

const HOUR_MS: u64 = 3_600_000;

/// Carries out the actions in order; a stroke completes at once. Returns the strokes.
fn drain(pump: &mut Pump, slots: &mut [Vec<u8>; 2], now: Instant) -> u64 {
    let mut strokes = 0;
    loop {
        let mut stroke = false;
        match pump.poll_action() {
            None => break,
            Some(Action::Stroke) => stroke = true,
            Some(Action::Persist { slot, bytes }) => {
                slots[usize::from(slot == Slot::B)] = bytes.to_vec();
            }
            Some(_) => {}
        }
        if stroke {
            strokes += 1;
            pump.handle_stroke_done(now, true);
        }
    }
    strokes
}

/// Hardware time `hw` → strokes: sleeps until each `poll_timeout()` up to `until`.
fn run(pump: &mut Pump, slots: &mut [Vec<u8>; 2], hw: &mut u64, until: u64) -> u64 {
    let mut strokes = 0;
    while let Some(t) = pump.poll_timeout().filter(|t| t.ms() <= until) {
        *hw = t.ms().max(*hw);
        pump.handle_timeout(Instant::from_ms(*hw));
        strokes += drain(pump, slots, Instant::from_ms(*hw));
    }
    *hw = until;
    strokes
}

fn main() {
    let profile = HardwareProfile::synchromed_class(40);
    let mut slots = [Vec::new(), Vec::new()];
    let mut pump = Pump::new(profile, Instant::ZERO);
    drain(&mut pump, &mut slots, Instant::ZERO);
    let contents = Admixture::single(DrugId::Baclofen, "2000 mcg/mL".parse().unwrap());
    let volume: Volume = "40 mL".parse().unwrap();
    let cmds = [
        Command::SetClock {
            utc_ms: 1_799_020_800_000,
            offset_minutes: 60,
        },
        Command::Refill {
            aspirated: Volume::ZERO,
            added: volume,
            contents: contents.clone(),
            keep_dose: false,
            bridge: BridgeChoice::None,
            confirm: true,
        },
        Command::Program {
            prescription: Prescription {
                contents,
                schedule: Schedule::continuous("0.5 mL/day".parse().unwrap()),
                patient_bolus: Some(PatientBolus {
                    volume: "20 uL".parse().unwrap(),
                    duration: "10 min".parse().unwrap(),
                    lockout: "3 h".parse().unwrap(),
                    max_per_day: 4,
                }),
                reservoir_volume: volume,
            },
            confirm_soft: true,
        },
        Command::Resume,
    ];
    for c in &cmds {
        let r = pump.handle_command(Instant::ZERO, Role::Clinician, 0, c);
        println!("{:?}: {r:?}", c.kind());
        drain(&mut pump, &mut slots, Instant::ZERO);
    }
    let mut hw = 0;
    let day1 = run(&mut pump, &mut slots, &mut hw, 24 * HOUR_MS);
    println!("day 1 before the power cut: {day1} strokes");

    // Power cut; the hardware counter restarts at 0.
    hw = 0;
    let mut pump = Pump::restore(profile, &slots[0], &slots[1], Instant::from_ms(hw));
    drain(&mut pump, &mut slots, Instant::from_ms(hw));
    let next = pump.poll_timeout().map(|t| t.ms());
    println!(
        "after restart at hardware time 0: poll_timeout() = {next:?} ms (expected about {} ms, one stroke interval)",
        Duration::from_ms(43_200).ms()
    );
    for hour in 1..=30 {
        let n = run(&mut pump, &mut slots, &mut hw, hour * HOUR_MS);
        if n != 83 && n != 84 {
            println!("hour {hour} after the restart: {n} strokes (expected 83 or 84)");
        }
    }
    let s = pump.status();
    println!(
        "30 h after the restart: delivered {} in total (ideal {}), missed {}, alarms {:?}",
        s.delivered,
        pump.ideal_delivered(),
        s.missed,
        s.alarms.iter().map(|a| a.kind).collect::<Vec<_>>()
    );
}
