//! An interrogated pump for the look ahead's benchmark and example: a primed
//! SynchroMed-class 20 mL pump running baclofen 500 mcg/mL at 0.6 mL/day for a day,
//! read as a programmer reads it (status, program, fluid path; each answer encoded and
//! decoded).

use thecal_link::message::{Answer, Reply};
use thecal_pump::command::{BridgeChoice, Command, Response, SoftReason};
use thecal_pump::core::Pump;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::dose::Admixture;
use thecal_rx::drug::DrugId;
use thecal_rx::schedule::Schedule;
use thecal_rx::{Duration, Volume};
use thecal_sim::engine::{Engine, simple_scenario};
use thecal_sim::lookahead::Interrogation;
use thecal_sim::scenario::Device;

fn pump(flow: &str) -> Pump {
    let sc = simple_scenario(
        "interrogated",
        Device::Programmable(HardwareProfile::synchromed_class(20)),
        DrugId::Baclofen,
        "500 mcg/mL".parse().expect("concentration"),
        Schedule::continuous(flow.parse().expect("flow")),
        Volume::from_ml(20),
        Duration::from_days(1),
        Duration::from_hours(1),
        7,
    );
    Engine::new(&sc)
        .run_keeping_pump()
        .1
        .expect("a programmable pump")
}

fn read(pump: &Pump) -> Interrogation {
    let mut buf = [0u8; thecal_link::session::MAX_PLAINTEXT];
    let answers: Vec<Answer> = [
        Reply::from(&Response::Status(pump.status())),
        Reply::Program(pump.program().clone()),
        Reply::FluidPath(pump.path_reading().expect("path")),
    ]
    .into_iter()
    .map(|reply| {
        let a = Answer {
            command_id: 1,
            reply,
        };
        Answer::decode(a.encode(&mut buf).expect("encode")).expect("decode")
    })
    .collect();
    Interrogation::from_answers(&answers).expect("interrogation")
}

/// Baclofen 500 → 2000 mcg/mL keeping 300 mcg/day, automatic bridging.
pub fn baclofen_concentration_change() -> (HardwareProfile, Interrogation, Vec<Command>) {
    let pump = pump("0.6 mL/day");
    let change = vec![Command::Refill {
        aspirated: pump.status().reservoir,
        added: Volume::from_ml(20),
        contents: Admixture::single(DrugId::Baclofen, "2000 mcg/mL".parse().expect("conc")),
        keep_dose: true,
        bridge: BridgeChoice::Automatic,
        confirm: SoftReason::new("concentration change").ok(),
        beyond_use_utc_ms: None,
    }];
    (HardwareProfile::synchromed_class(20), read(&pump), change)
}

/// No change, a pump running 1.2 mL/day (600 mcg/day of baclofen 500 mcg/mL): 4,800
/// strokes a day, twice the strokes of the concentration change's first day.
#[allow(dead_code)] // the benchmark's second case; the example uses the first only
pub fn steady_1_2_ml_per_day() -> (HardwareProfile, Interrogation, Vec<Command>) {
    let pump = pump("1.2 mL/day");
    (
        HardwareProfile::synchromed_class(20),
        read(&pump),
        Vec::new(),
    )
}
