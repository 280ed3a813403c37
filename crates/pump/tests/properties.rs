//! Invariants of the therapy core over random sequences of commands, refills, stalls,
//! clock changes and restarts, and the exhaustive power-cut test.

#![allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod rig;

use proptest::prelude::*;
use rig::{Op as MemOp, Rig, q};
use thecal_pump::alarm::AlarmKind;
use thecal_pump::catheter::{self, CatheterRecord};
use thecal_pump::command::{BridgeChoice, Command, Mode, Response, Role, StopReason};
use thecal_pump::core::Pump;
use thecal_pump::journal::DELTA_LEN;
use thecal_pump::limiter::Window;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::check::{PatientBolus, Prescription};
use thecal_rx::dose::{Admixture, Component};
use thecal_rx::drug::{DrugId, Library};
use thecal_rx::schedule::{DayProfile, Schedule, Step};
use thecal_rx::{Concentration, Duration, Flow, Instant, Volume};

const STROKE_NL: u64 = 250;
const CONCS: [u32; 3] = [500, 1000, 2000];

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    PatientBolus(u32),
    ClinicianBolus {
        ul: u32,
        minutes: u64,
    },
    Refill {
        conc: usize,
        keep_dose: bool,
        bridge: u8,
    },
    Program {
        flow_ul: u32,
        flex: bool,
    },
    Stall(bool),
    SetClock {
        offset_hours: i64,
    },
    Restart,
    Stop,
    Resume,
    CancelBolus,
    ReduceDose {
        percent: u8,
        emergency: bool,
    },
    /// A refill with other drugs: `MIXES[mix]`.
    RefillDrugs {
        mix: usize,
    },
    /// A priming bolus over this many minutes.
    Prime {
        minutes: u64,
    },
    /// A catheter recorded or revised (stop, record, resume): catalogue `model`,
    /// `cm` long after trimming.
    Catheter {
        model: u16,
        cm: u16,
    },
}

/// Refills that change the drugs: admixtures and single drugs other than baclofen.
const MIXES: [&[(DrugId, &str)]; 4] = [
    &[
        (DrugId::Baclofen, "2000 mcg/mL"),
        (DrugId::Clonidine, "500 mcg/mL"),
    ],
    &[(DrugId::Morphine, "2 mg/mL")],
    &[
        (DrugId::Morphine, "2 mg/mL"),
        (DrugId::Bupivacaine, "10 mg/mL"),
    ],
    &[(DrugId::Clonidine, "1000 mcg/mL")],
];
/// Every drug of the property tests.
const DRUGS: [DrugId; 4] = [
    DrugId::Baclofen,
    DrugId::Clonidine,
    DrugId::Morphine,
    DrugId::Bupivacaine,
];

fn reduce() -> impl Strategy<Value = Op> {
    (1u8..=50, any::<bool>()).prop_map(|(percent, emergency)| Op::ReduceDose { percent, emergency })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u64..3 * 24 * 60).prop_map(Op::Advance),
        2 => (0u32..6).prop_map(Op::PatientBolus),
        1 => (1u32..400, 1u64..180).prop_map(|(ul, minutes)| Op::ClinicianBolus { ul, minutes }),
        1 => (0usize..3, any::<bool>(), 0u8..3).prop_map(|(conc, keep_dose, bridge)| Op::Refill { conc, keep_dose, bridge }),
        1 => (50u32..1000, any::<bool>()).prop_map(|(flow_ul, flex)| Op::Program { flow_ul, flex }),
        1 => any::<bool>().prop_map(Op::Stall),
        1 => (-48i64..48).prop_map(|offset_hours| Op::SetClock { offset_hours }),
        1 => Just(Op::Restart),
        1 => Just(Op::Stop),
        1 => Just(Op::Resume),
        1 => Just(Op::CancelBolus),
        1 => reduce(),
        1 => (0usize..MIXES.len()).prop_map(|mix| Op::RefillDrugs { mix }),
        1 => (1u64..120).prop_map(|minutes| Op::Prime { minutes }),
        1 => (1u16..=2, 20u16..120).prop_map(|(model, cm)| Op::Catheter { model, cm }),
    ]
}

fn ptm() -> PatientBolus {
    PatientBolus {
        volume: q("20 uL"),
        duration: q("15 min"),
        lockout: q("2 h"),
        max_per_day: 4,
    }
}

fn schedule(flow_ul: u32, flex: bool) -> Schedule {
    let f = Flow::from_ul_per_day(flow_ul);
    if flex {
        let half = Flow::from_ul_per_day(flow_ul / 2);
        Schedule::daily(
            DayProfile::new(&[
                Step {
                    start_minute: 0,
                    flow: half,
                },
                Step {
                    start_minute: 6 * 60,
                    flow: f,
                },
                Step {
                    start_minute: 20 * 60,
                    flow: half,
                },
            ])
            .unwrap(),
        )
    } else {
        Schedule::continuous(f)
    }
}

fn apply(rig: &mut Rig, op: &Op) {
    match *op {
        Op::Advance(minutes) => rig.run_for(Duration::from_minutes(minutes)),
        Op::PatientBolus(id) => {
            let _ = rig.cmd_as(
                Role::PatientRemote,
                Command::PatientBolus { request_id: id },
            );
        }
        Op::ClinicianBolus { ul, minutes } => {
            let _ = rig.cmd(Command::ClinicianBolus {
                volume: Volume::from_ul(ul),
                duration: Duration::from_minutes(minutes),
            });
        }
        Op::Refill {
            conc,
            keep_dose,
            bridge,
        } => {
            let residual = rig.pump.status().reservoir;
            let bridge = match bridge {
                0 => BridgeChoice::Automatic,
                1 => BridgeChoice::Bolus(Duration::from_hours(1)),
                _ => BridgeChoice::None,
            };
            let _ = rig.cmd(Command::Refill {
                aspirated: residual,
                added: q("20 mL"),
                contents: Admixture::single(
                    DrugId::Baclofen,
                    Concentration::from_mcg_per_ml(CONCS[conc]),
                ),
                keep_dose,
                bridge,
                confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
                beyond_use_utc_ms: None,
            });
        }
        Op::Program { flow_ul, flex } => {
            let mut rx = rig.pump.program().clone();
            rx.schedule = schedule(flow_ul, flex);
            let _ = rig.cmd(Command::Program {
                prescription: rx,
                confirm_soft: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
            });
        }
        Op::Stall(on) => rig.stall = on,
        Op::SetClock { offset_hours } => {
            let utc = (rig::MONDAY_UTC_MS as i64 + offset_hours * 3_600_000) as u64;
            let _ = rig.cmd(Command::SetClock {
                utc_ms: utc,
                offset_minutes: 60,
            });
        }
        Op::Restart => rig.restart(),
        Op::Stop => {
            let _ = rig.cmd(Command::Stop {
                reason: StopReason::Other,
            });
        }
        Op::Resume => {
            let _ = rig.cmd(Command::Resume);
        }
        Op::CancelBolus => {
            let _ = rig.cmd(Command::CancelBolus);
        }
        Op::ReduceDose { percent, emergency } => {
            let role = if emergency {
                Role::Emergency
            } else {
                Role::Clinician
            };
            let _ = rig.cmd_as(role, Command::ReduceDose { percent });
        }
        Op::RefillDrugs { mix } => {
            let parts: Vec<Component> = MIXES[mix]
                .iter()
                .map(|(drug, conc)| Component {
                    drug: *drug,
                    concentration: q(conc),
                })
                .collect();
            let residual = rig.pump.status().reservoir;
            let _ = rig.cmd(Command::Refill {
                aspirated: residual,
                added: q("20 mL"),
                contents: Admixture::new(&parts).unwrap(),
                keep_dose: false,
                bridge: BridgeChoice::None,
                confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
                beyond_use_utc_ms: None,
            });
        }
        Op::Prime { minutes } => {
            let _ = rig.cmd(Command::PrimingBolus {
                duration: Duration::from_minutes(minutes),
            });
        }
        Op::Catheter { model, cm } => {
            let record = CatheterRecord::of_model(catheter::model(model).unwrap(), cm * 10);
            let _ = rig.cmd(Command::Stop {
                reason: StopReason::Procedure,
            });
            let stopped = matches!(rig.pump.status().mode, Mode::Stopped { .. });
            let r = rig.cmd(Command::SetCatheter(record));
            // A stopped pump takes any valid record; nothing else does.
            assert_eq!(r == Response::Accepted, stopped, "{r:?}");
            if stopped {
                assert_eq!(rig.pump.status().catheter, Some(record));
            }
            let _ = rig.cmd(Command::Resume);
        }
    }
}

/// [`check_windows`] for any drug: `limit_of(i)` is the limit at completed stroke `i`.
fn check_drug_windows(
    rig: &Rig,
    drug: DrugId,
    w: Duration,
    limit_of: impl Fn(usize) -> Option<u64>,
) -> Result<(), String> {
    let mass: Vec<u64> = rig
        .tip
        .iter()
        .map(|(_, m)| {
            m.iter()
                .filter(|(d, _)| *d == drug)
                .map(|(_, x)| x.raw())
                .sum()
        })
        .collect();
    let mut lo = 0usize;
    let mut sum = 0u64;
    for i in 0..rig.tip.len() {
        sum += mass[i];
        while rig.tip[i].0.ms() - rig.tip[lo].0.ms() >= w.ms() {
            sum -= mass[lo];
            lo += 1;
        }
        if let Some(limit) = limit_of(i) {
            if sum > limit {
                return Err(format!(
                    "{drug}: window ending at stroke {i} ({:?}) holds {sum} ng > limit {limit}",
                    rig.tip[i].0
                ));
            }
        }
    }
    Ok(())
}

/// Every drug's windows against the library's hard daily limit and the limits the
/// limiter had at each stroke.
fn check_every_drug(rig: &Rig) -> Result<(), String> {
    let library = Library::new();
    let day = Duration::from_days(1);
    for drug in DRUGS {
        let hard = library.get(drug).max_daily_dose.map(|m| m.value.raw());
        check_drug_windows(rig, drug, day, |_| hard)?;
        let at = |i: usize| {
            rig.all_limits[i]
                .iter()
                .find(|(d, _)| *d == drug)
                .map(|(_, l)| *l)
        };
        check_drug_windows(rig, drug, day, |i| at(i).map(|l| l.per_day.raw()))?;
        check_drug_windows(rig, drug, Duration::from_hours(1), |i| {
            at(i).and_then(|l| l.per_hour).map(|m| m.raw())
        })?;
    }
    Ok(())
}

/// Largest tip mass in any window `(t − w, t]` ending at a stroke, against the limit in
/// force at that stroke.
fn check_windows(
    rig: &Rig,
    w: Duration,
    limit_of: impl Fn(usize) -> Option<u64>,
) -> Result<(), String> {
    let mass: Vec<u64> = rig
        .tip
        .iter()
        .map(|(_, m)| {
            m.iter()
                .filter(|(d, _)| *d == DrugId::Baclofen)
                .map(|(_, x)| x.raw())
                .sum()
        })
        .collect();
    let mut lo = 0usize;
    let mut sum = 0u64;
    for i in 0..rig.tip.len() {
        sum += mass[i];
        while rig.tip[i].0.ms() - rig.tip[lo].0.ms() >= w.ms() {
            sum -= mass[lo];
            lo += 1;
        }
        if let Some(limit) = limit_of(i) {
            if sum > limit {
                return Err(format!(
                    "window ending at stroke {i} ({:?}) holds {sum} ng > limit {limit}",
                    rig.tip[i].0
                ));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn limiter_never_exceeded_and_delivery_never_exceeds_the_reservoir_pump_015_pump_014(
        ops in proptest::collection::vec(op(), 1..30),
    ) {
        let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
        rig.set_clock();
        rig.start(DrugId::Baclofen, "2000 mcg/mL", "20 mL", Schedule::continuous(q("0.6 mL/day")), Some(ptm()));
        for op in &ops {
            apply(&mut rig, op);
            prop_assert!(rig.pump.delivered() <= rig.pump.held_total());
            prop_assert!(rig.strokes_moved * STROKE_NL <= rig.pump.held_total().raw());
            if !matches!(rig.pump.status().mode, Mode::Fault { .. }) {
                prop_assert_eq!(rig.pump.fluid().held_volume(), rig.pump.dead_volume());
            }
        }
        rig.run_for(Duration::from_hours(2));
        // The library's hard limit (2000 mcg/day) and the limits in force at each stroke.
        check_windows(&rig, Duration::from_days(1), |_| Some(2_000_000)).map_err(TestCaseError::fail)?;
        // Every drug's windows (refills change the drugs) against the limits the limiter
        // had for that drug at each stroke.
        check_every_drug(&rig).map_err(TestCaseError::fail)?;
        prop_assert_eq!(rig.pump.dropped_actions(), 0);
        prop_assert!(thecal_pump::log::verify(rig.events.iter(), None).is_ok());
    }

    #[test]
    fn without_faults_or_limits_delivery_stays_within_one_stroke_of_ideal_pump_011(
        ops in proptest::collection::vec(
            prop_oneof![
                6 => (1u64..2 * 24 * 60).prop_map(Op::Advance),
                2 => (0u32..6).prop_map(Op::PatientBolus),
                1 => (1u32..60, 5u64..120).prop_map(|(ul, minutes)| Op::ClinicianBolus { ul, minutes }),
                1 => (50u32..400, any::<bool>()).prop_map(|(flow_ul, flex)| Op::Program { flow_ul, flex }),
                1 => (-48i64..48).prop_map(|offset_hours| Op::SetClock { offset_hours }),
                1 => Just(Op::CancelBolus),
                1 => reduce(),
            ],
            1..25,
        ),
    ) {
        let mut rig = Rig::new(HardwareProfile::synchromed_class(40));
        rig.set_clock();
        rig.start(DrugId::Baclofen, "2000 mcg/mL", "40 mL", Schedule::continuous(q("0.3 mL/day")), Some(ptm()));
        for op in &ops {
            apply(&mut rig, op);
            let ideal = rig.pump.ideal_delivered().raw();
            let delivered = rig.pump.delivered().raw();
            prop_assert!(delivered <= ideal + 1, "delivered {} > ideal {}", delivered, ideal);
            prop_assert!(ideal - delivered <= STROKE_NL, "ideal {} − delivered {} > one stroke after {:?}", ideal, delivered, op);
        }
        prop_assert_eq!(rig.pump.status().missed, Volume::ZERO);
    }
}

/// What two rigs have seen and hold, for [`the_quiet_paths_do_what_the_general_path_does_pump_051`].
fn same_rigs(quiet: &Rig, general: &Rig, after: &Op) -> Result<(), TestCaseError> {
    let (a, b) = (&quiet.pump, &general.pump);
    prop_assert_eq!(&quiet.events, &general.events, "log after {:?}", after);
    prop_assert_eq!(
        &quiet.faults,
        &general.faults,
        "fault log after {:?}",
        after
    );
    prop_assert_eq!(&quiet.sounds, &general.sounds, "tones after {:?}", after);
    prop_assert_eq!(&quiet.tip, &general.tip, "tip doses after {:?}", after);
    prop_assert_eq!(quiet.wakes, general.wakes, "wake-ups after {:?}", after);
    prop_assert!(
        quiet.writes == general.writes,
        "flash writes differ after {:?}",
        after
    );
    prop_assert_eq!(a.status(), b.status(), "status after {:?}", after);
    prop_assert_eq!(
        a.poll_timeout(),
        b.poll_timeout(),
        "next wake after {:?}",
        after
    );
    prop_assert_eq!(a.fluid(), b.fluid(), "fluid path after {:?}", after);
    prop_assert_eq!(a.limiter(), b.limiter(), "limiter after {:?}", after);
    prop_assert_eq!(a.battery(), b.battery(), "battery after {:?}", after);
    prop_assert_eq!(a.alarms(), b.alarms(), "alarms after {:?}", after);
    prop_assert_eq!(
        a.ideal_delivered(),
        b.ideal_delivered(),
        "ideal after {:?}",
        after
    );
    prop_assert_eq!(a.delivered(), b.delivered(), "delivered after {:?}", after);
    prop_assert_eq!(a.strokes(), b.strokes(), "strokes after {:?}", after);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// H-170: one pump takes the quiet paths of the steady state, the other only the
    /// general path; over random commands, refills, stalls, clock changes, catheter
    /// revisions and restarts, both log, sound, write, deliver and hold the same.
    #[test]
    fn the_quiet_paths_do_what_the_general_path_does_pump_051(
        ops in proptest::collection::vec(
            prop_oneof![6 => (1u64..6 * 60).prop_map(Op::Advance), 4 => op()],
            1..40,
        ),
        clock in any::<bool>(),
        battery_days in proptest::option::of(0u64..8),
    ) {
        let mut profile = HardwareProfile::synchromed_class(20);
        if let Some(days) = battery_days {
            // A battery that reaches its elective replacement (90 days left) and its
            // end of service within the run: the battery's own timers come due.
            let day = u64::from(profile.quiescent_uj_per_hour) * 24
                + 2_400 * u64::from(profile.stroke_uj + profile.wake_uj);
            profile.battery_uj = day * (thecal_pump::battery::EOS_RESERVE_DAYS + 90 + days);
        }
        let new = || {
            let mut rig = Rig::new(profile);
            rig.record_writes = true;
            if clock {
                rig.set_clock();
            }
            rig.start(DrugId::Baclofen, "2000 mcg/mL", "20 mL", Schedule::continuous(q("0.6 mL/day")), Some(ptm()));
            rig
        };
        let (mut quiet, mut general) = (new(), new());
        general.pump.set_quiet_paths(false);
        for op in &ops {
            apply(&mut quiet, op);
            apply(&mut general, op);
            // A restart builds a new core, with the quiet paths on.
            general.pump.set_quiet_paths(false);
            same_rigs(&quiet, &general, op)?;
        }
    }
}

/// Operations of a valve pump's clinical life: MRI mode (emptied or an emergency),
/// reminder intervals, acknowledgements, on top of the common [`Op`]s.
#[derive(Debug, Clone)]
enum ValveOp {
    Common(Op),
    Mri(bool),
    MriEmergency,
    EmptyForMri,
    Acknowledge(usize),
    ReminderInterval(u64),
}

fn valve_op() -> impl Strategy<Value = ValveOp> {
    prop_oneof![
        8 => op().prop_map(ValveOp::Common),
        2 => any::<bool>().prop_map(ValveOp::Mri),
        1 => Just(ValveOp::MriEmergency),
        1 => Just(ValveOp::EmptyForMri),
        2 => (0usize..AlarmKind::COUNT).prop_map(ValveOp::Acknowledge),
        1 => (10u64..300).prop_map(ValveOp::ReminderInterval),
    ]
}

fn apply_valve(rig: &mut Rig, op: &ValveOp) {
    match op {
        ValveOp::Common(op) => apply(rig, op),
        ValveOp::Mri(on) => {
            let _ = rig.cmd(Command::MriMode(*on));
        }
        ValveOp::MriEmergency => {
            let _ = rig.cmd(Command::MriEmergency);
        }
        ValveOp::EmptyForMri => {
            let residual = rig.pump.status().reservoir;
            let contents = rig.pump.program().contents.clone();
            let _ = rig.cmd(Command::Refill {
                aspirated: residual,
                added: Volume::ZERO,
                contents,
                keep_dose: false,
                bridge: BridgeChoice::None,
                confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
                beyond_use_utc_ms: None,
            });
        }
        ValveOp::Acknowledge(i) => {
            let _ = rig.cmd(Command::Acknowledge(AlarmKind::ALL[*i]));
        }
        ValveOp::ReminderInterval(minutes) => {
            let _ = rig.cmd(Command::SetReminderInterval {
                interval: Duration::from_minutes(*minutes),
            });
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A valve pump through MRI mode (refused when full, emptied or by emergency),
    /// reminders and acknowledgements, with the common commands: the limiter is never
    /// exceeded, delivery never exceeds what was held, the fluid path holds its volume,
    /// the valve stays shut in MRI mode, the full reservoir never enters MRI mode without
    /// the emergency command, and a pump left without delivery is never silent longer
    /// than the longest reminder interval.
    #[test]
    fn mri_mode_and_reminders_keep_the_invariants_pump_034_pump_032_pump_015(
        ops in proptest::collection::vec(valve_op(), 1..30),
    ) {
        let mut rig = Rig::new(HardwareProfile::prometra_class(20));
        rig.set_clock();
        rig.start(DrugId::Baclofen, "2000 mcg/mL", "20 mL", Schedule::continuous(q("0.6 mL/day")), Some(ptm()));
        let limit = rig.profile.mri_reservoir_limit;
        for op in &ops {
            let before = rig.pump.status();
            let r = match op {
                ValveOp::Mri(true) => rig.cmd(Command::MriMode(true)),
                other => {
                    apply_valve(&mut rig, other);
                    Response::Accepted
                }
            };
            let after = rig.pump.status();
            if matches!(op, ValveOp::Mri(true)) && before.mode == Mode::Running {
                prop_assert_eq!(after.mode == Mode::MriSuspended, before.reservoir <= limit, "{:?}", r);
            }
            if before.mode == Mode::MriSuspended && after.mode == Mode::MriSuspended {
                prop_assert_eq!(after.delivered, before.delivered, "the valve opened in MRI mode");
            }
            prop_assert!(rig.pump.delivered() <= rig.pump.held_total());
            if !matches!(after.mode, Mode::Fault { .. }) {
                prop_assert_eq!(rig.pump.fluid().held_volume(), rig.pump.dead_volume());
            }
        }
        // Left as it is for a day: while no drug flows, a tone at least every 4 h 10 min.
        let start = rig.now;
        rig.run_for(Duration::from_days(1));
        let silent_ok = Duration::from_minutes(250).ms();
        let withheld = matches!(rig.pump.status().mode, Mode::Stopped { .. } | Mode::MriSuspended);
        if withheld {
            let mut last = start.ms() + Duration::from_hours(1).ms();
            for (t, _) in rig.sounds.iter().filter(|(t, _)| *t >= start) {
                prop_assert!(t.ms() - last.min(t.ms()) <= silent_ok, "silent from {} to {}", last, t.ms());
                last = last.max(t.ms());
            }
            prop_assert!(rig.now.ms() - last <= silent_ok, "silent from {} to the end", last);
        }
        check_windows(&rig, Duration::from_days(1), |_| Some(2_000_000)).map_err(TestCaseError::fail)?;
        // Every drug's windows against the limits the limiter had for that same drug (a
        // refill may change the drugs: baclofen still leaving the catheter is judged by
        // baclofen's limits, never by the new first drug's).
        check_every_drug(&rig).map_err(TestCaseError::fail)?;
        prop_assert_eq!(rig.pump.dropped_actions(), 0);
        prop_assert!(thecal_pump::log::verify(rig.events.iter(), None).is_ok());
    }
}

#[test]
fn power_cut_at_every_write_of_a_refill_and_reprogram_restores_old_or_new_pump_023() {
    let profile = HardwareProfile::synchromed_class(20);
    let mut rig = Rig::new(profile);
    rig.set_clock();
    rig.start(
        DrugId::Baclofen,
        "500 mcg/mL",
        "20 mL",
        Schedule::continuous(q("1 mL/day")),
        Some(ptm()),
    );
    rig.run_for(Duration::from_days(2));
    let base = rig.mem.clone();
    let old = rig.pump.status();
    rig.record_writes = true;
    // The sequence: refill with 2000 mcg/mL keeping the dose (automatic bridging), run an
    // hour, reprogram, run another hour.
    let residual = rig.pump.status().reservoir;
    rig.ok(Command::Refill {
        aspirated: residual,
        added: q("20 mL"),
        contents: Admixture::single(DrugId::Baclofen, q("2000 mcg/mL")),
        keep_dose: true,
        bridge: BridgeChoice::Automatic,
        confirm: None,
        beyond_use_utc_ms: None,
    });
    let after_refill = rig.pump.status();
    rig.run_for(Duration::from_hours(1));
    let mut rx: Prescription = rig.pump.program().clone();
    rx.schedule = Schedule::continuous(q("0.3 mL/day"));
    rig.ok(Command::Program {
        prescription: rx,
        confirm_soft: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
    });
    let after_program = rig.pump.status();
    rig.run_for(Duration::from_hours(1));
    let writes = rig.writes.clone();
    assert!(writes.len() > 20, "{} writes", writes.len());
    let rig_base_after = |_: &Rig, ws: &[rig::Write]| {
        let mut m = base.clone();
        for w in ws {
            m.apply(w.op.store_op()).unwrap();
        }
        m
    };
    let versions = [
        old.program_version,
        after_refill.program_version,
        after_program.program_version,
    ];
    // The journal's ring was used as it is designed to be: stroke records, checkpoints
    // and the page erases between them (PUMP-045, PUMP-046).
    let erases = writes
        .iter()
        .filter(|w| matches!(w.op, MemOp::Erase(_)))
        .count();
    let small = writes.iter().filter(|w| w.op.len() == DELTA_LEN).count();
    assert!(erases >= 1, "no page was erased");
    assert!(
        small > writes.len() / 2,
        "{small} stroke records of {}",
        writes.len()
    );
    let mut restores = 0;
    // The memory before write k; the reference is the pump restored from it.
    let mut mem = base.clone();
    let mut previous = Pump::restore(profile, mem.bytes(), rig.now);
    for (k, write) in writes.iter().enumerate() {
        let op = write.op.store_op();
        let len = write.op.len();
        let mut complete = mem.clone();
        complete.apply(op).unwrap();
        let reference = Pump::restore(profile, complete.bytes(), rig.now);
        for cut in [0, 1, len / 3, len / 2, 2 * len / 3, len - 1, len] {
            let mut torn = mem.clone();
            torn.apply_torn(op, cut).unwrap();
            let pump = Pump::restore(profile, torn.bytes(), rig.now);
            restores += 1;
            let s = pump.status();
            // A cut after every byte that differs from erased flash leaves the new record
            // whole: that write is committed. (An erase commits nothing.)
            let whole = match &write.op {
                MemOp::Program(offset, bytes) => {
                    let at = *offset as usize;
                    torn.bytes()[at..at + bytes.len()] == bytes[..]
                }
                MemOp::Erase(_) => cut == len,
            };
            assert!(whole || cut < len, "write {k}");
            let expect = if whole { &reference } else { &previous };
            // Exactly the last committed state: never a mix.
            assert_eq!(
                s.program_version,
                expect.status().program_version,
                "write {k} cut {cut}"
            );
            assert_eq!(
                s.reservoir,
                expect.status().reservoir,
                "write {k} cut {cut}"
            );
            assert_eq!(
                s.delivered,
                expect.status().delivered,
                "write {k} cut {cut}"
            );
            assert_eq!(pump.strokes(), expect.strokes(), "write {k} cut {cut}");
            assert_eq!(pump.program(), expect.program(), "write {k} cut {cut}");
            // The limiter's windows are those of the last committed state (PUMP-047).
            for w in [Window::Hour, Window::Day] {
                assert_eq!(
                    pump.limiter().delivered(rig.now, DrugId::Baclofen, w),
                    expect.limiter().delivered(rig.now, DrugId::Baclofen, w),
                    "write {k} cut {cut}"
                );
            }
            assert!(
                versions.contains(&s.program_version),
                "write {k}: version {}",
                s.program_version
            );
            // A refill is all or nothing: new contents come with the new volume.
            let refilled =
                pump.program().contents.concentration_of(DrugId::Baclofen) == q("2000 mcg/mL");
            assert_eq!(
                refilled,
                s.program_version >= after_refill.program_version,
                "write {k} cut {cut}"
            );
            // The delivered counter never falls below the strokes really moved before
            // the cut (no stroke can be repeated) and never runs more than one ahead.
            let moved = write.moved * STROKE_NL;
            assert!(
                s.delivered.raw() >= moved,
                "write {k} cut {cut}: {} < moved {moved}",
                s.delivered.raw()
            );
            assert!(
                s.delivered.raw() <= moved + STROKE_NL,
                "write {k} cut {cut}: jumped"
            );
            assert!(
                !matches!(s.mode, Mode::Fault { .. }),
                "write {k} cut {cut}: {:?}",
                s.mode
            );
        }
        mem = complete;
        previous = reference;
    }
    assert!(restores > 7 * 20);
    // A pump restored mid-sequence carries on delivering by itself.
    let mid = writes.len() / 2;
    let mut m = rig_base_after(&rig, &writes[..mid]);
    m.apply_torn(writes[mid].op.store_op(), writes[mid].op.len() / 2)
        .unwrap();
    let mut pump = Pump::restore(profile, m.bytes(), rig.now);
    let d0 = pump.delivered();
    for _ in 0..200 {
        let Some(now) = pump.poll_timeout() else {
            break;
        };
        let t = now;
        pump.handle_timeout(t);
        loop {
            let stroke = match pump.poll_action() {
                None => break,
                Some(action) => action == thecal_pump::core::Action::Stroke,
            };
            if stroke {
                pump.handle_stroke_done(now, true);
            }
        }
    }
    assert!(pump.delivered() > d0);
    let _ = (Instant::ZERO, Response::Accepted);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// PUMP-015 / PUMP-012: the limiter never refuses a patient bolus the program allows.
    /// Its limits budget the heaviest hour and day, every allowed bolus, and the basal
    /// delivered during a bolus (the predictive rule counts it), so a press that respects
    /// the lockout and the daily count is accepted whatever the bolus size, even one
    /// smaller than the margin (a false veto leaves the patient in pain or spasm).
    #[test]
    fn an_allowed_patient_bolus_is_never_vetoed_pump_015(
        basal_ul_day in 50u32..2_000,
        bolus_nl in 500u64..60_000,
        duration_min in 1u64..60,
        lockout_min in 60u64..360,
        max_per_day in 1u8..8,
        first_min in 1u64..600,
        gaps in prop::collection::vec(0u64..300, 1..10),
    ) {
        let mut rig = Rig::new(HardwareProfile::synchromed_class(40));
        // Within the pump's highest flow (24 mL/day, about 16 uL/min).
        let duration_min = duration_min.max(bolus_nl.div_ceil(10_000));
        let pb = PatientBolus {
            volume: Volume::from_nl(bolus_nl),
            duration: Duration::from_minutes(duration_min),
            lockout: Duration::from_minutes(lockout_min.max(duration_min)),
            max_per_day,
        };
        rig.start(
            DrugId::Morphine,
            "1 mg/mL",
            "40 mL",
            Schedule::continuous(Flow::from_ul_per_day(basal_ul_day)),
            Some(pb),
        );
        rig.run_for(Duration::from_minutes(first_min));
        let mut accepted: Vec<Instant> = Vec::new();
        for (i, gap) in gaps.iter().enumerate() {
            let now = rig.now;
            let in_day = accepted
                .iter()
                .filter(|t| now.saturating_since(**t) < Duration::from_hours(24))
                .count();
            let locked = accepted
                .last()
                .is_some_and(|t| now.saturating_since(*t) < pb.lockout);
            let r = rig.cmd_as(
                Role::PatientRemote,
                Command::PatientBolus { request_id: i as u32 + 1 },
            );
            match r {
                Response::BolusAccepted { .. } => accepted.push(now),
                Response::Refused(ref why) => {
                    prop_assert!(
                        locked || in_day >= usize::from(max_per_day),
                        "an allowed bolus was refused: {why:?} (press {i}, {in_day} today)"
                    );
                }
                other => prop_assert!(false, "{other:?}"),
            }
            // The next press: after the lockout plus a random gap.
            rig.run_for(pb.lockout.saturating_add(Duration::from_minutes(*gap)));
        }
    }
}
