//! The clinic's set-up of a reference therapy, shared by the `stroke_cost` example and
//! the core benchmark: baclofen 2000 mcg/mL, 40 mL, 0.5 mL/day with a patient bolus.

use thecal_pump::command::{BridgeChoice, Command, StopReason};
use thecal_rx::Volume;
use thecal_rx::check::{PatientBolus, Prescription};
use thecal_rx::dose::Admixture;
use thecal_rx::drug::DrugId;
use thecal_rx::schedule::Schedule;

/// The clinician's commands, in order: clock, fill, program, start (and stop if `stop`).
pub fn setup(stop: bool) -> Vec<Command> {
    let contents = Admixture::single(DrugId::Baclofen, "2000 mcg/mL".parse().unwrap());
    let volume: Volume = "40 mL".parse().unwrap();
    let mut commands = vec![
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
            confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
            beyond_use_utc_ms: None,
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
            confirm_soft: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
        },
        Command::Resume,
    ];
    if stop {
        commands.push(Command::Stop {
            reason: StopReason::Procedure,
        });
    }
    commands
}
