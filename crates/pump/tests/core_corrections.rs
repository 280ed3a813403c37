//! Regression tests for defects found in review of the therapy core: program changes
//! that skipped the choke point, a limiter that never forgot a drug, a full action
//! queue that stopped saving or delivery, a bolus log that overstated, refills at end
//! of service, and emergency reductions that could stop a drug. Each test works its
//! expected figures out by hand in the comments.

#![allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod rig;

use rig::{Rig, q};
use thecal_pump::alarm::AlarmKind;
use thecal_pump::battery::BatteryReading;
use thecal_pump::command::{
    BridgeChoice, Command, FaultCode, Mode, Refusal, Response, Role, StopReason,
};
use thecal_pump::core::Action;
use thecal_pump::event::Event;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::dose::{Admixture, Component};
use thecal_rx::drug::DrugId;
use thecal_rx::schedule::Schedule;
use thecal_rx::{Duration, Flow, Volume};

const STROKE_NL: u64 = 250;

fn vetoes(rig: &Rig) -> usize {
    rig.events
        .iter()
        .filter(|e| matches!(e.event, Event::LimiterVeto { .. }))
        .count()
}

/// The volumes logged by `BolusEnded` entries, in order.
fn bolus_ends(rig: &Rig) -> Vec<u64> {
    rig.events
        .iter()
        .filter_map(|e| match e.event {
            Event::BolusEnded { delivered, .. } => Some(delivered.raw()),
            _ => None,
        })
        .collect()
}

/// A SynchroMed-class 40 mL pump running baclofen 2000 mcg/mL at `flow`.
fn baclofen(flow: &str) -> Rig {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(40));
    rig.set_clock();
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "40 mL",
        Schedule::continuous(q(flow)),
        None,
    );
    rig
}

// ----- issue 9 item 1: every program change through one choke point ---------------------

/// Three steady days at 0.5 mL/day (1000 mcg/day), then an emergency-style 50 %
/// reduction: the 24 h window still holds yesterday's 1000 mcg, which is far above the
/// reduced program's own limit (0.25 mL/day + 10 % + edges ≈ 600 mcg). The outgoing
/// limits must stay in force for 24 h, so nothing is vetoed and the delivery follows
/// the new ideal within one stroke: 3 more days at 0.25 mL/day = 750 uL.
#[test]
fn a_fifty_percent_reduction_after_three_steady_days_is_never_vetoed_pump_026() {
    let mut rig = baclofen("0.5 mL/day");
    rig.run_for(Duration::from_days(3));
    let version = rig.pump.status().program_version;
    let (d0, i0) = (rig.pump.delivered().raw(), rig.pump.ideal_delivered().raw());
    rig.ok(Command::ReduceDose { percent: 50 });
    // The reduction is a versioned, logged program change.
    assert_eq!(rig.pump.status().program_version, version + 1);
    assert!(rig.events.iter().any(|e| e.event
        == Event::ProgramChanged {
            version: version + 1
        }));
    for hour in 0..72 {
        rig.run_for(Duration::from_hours(1));
        assert_eq!(
            vetoes(&rig),
            0,
            "the limiter vetoed delivery {hour} h after a 50 % reduction"
        );
        let ideal = rig.pump.ideal_delivered().raw() - i0;
        let delivered = rig.pump.delivered().raw() - d0;
        assert!(
            ideal.abs_diff(delivered) <= STROKE_NL,
            "{hour} h after the reduction: delivered {delivered} nL, ideal {ideal} nL"
        );
    }
    let delivered = rig.pump.delivered().raw() - d0;
    assert!(delivered.abs_diff(750_000) <= STROKE_NL, "{delivered} nL");
    assert_eq!(rig.pump.status().missed, Volume::ZERO);
    assert_eq!(rig.pump.status().mode, Mode::Running);
}

/// A refill at half the concentration (2000 → 1000 mcg/mL, same flow 0.1 mL/day, no
/// bridging) halves the dose once the old fluid has left the catheter: 200 uL of dead
/// volume at 0.1 mL/day take 2 days, during which the tip still gets 200 mcg/day. The
/// new program's own limit is about 0.1 mL × 1.1 × 1000 mcg/mL + edges ≈ 125 mcg/day,
/// so the outgoing limits must last until the old fluid has cleared, and 24 h more.
#[test]
fn a_lower_concentration_keeps_the_old_limits_until_the_old_fluid_has_cleared_pump_026() {
    let mut rig = baclofen("0.1 mL/day");
    rig.run_for(Duration::from_days(3));
    let residual = rig.pump.status().reservoir;
    rig.ok(Command::Refill {
        aspirated: residual,
        added: q("40 mL"),
        contents: Admixture::single(DrugId::Baclofen, q("1000 mcg/mL")),
        keep_dose: false,
        bridge: BridgeChoice::None,
        confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
        beyond_use_utc_ms: None,
    });
    let d0 = rig.pump.delivered().raw();
    for hour in 0..(5 * 24) {
        rig.run_for(Duration::from_hours(1));
        assert_eq!(
            vetoes(&rig),
            0,
            "the limiter vetoed the old fluid {hour} h after a concentration decrease"
        );
    }
    // 5 days at 0.1 mL/day, all delivered.
    let delivered = rig.pump.delivered().raw() - d0;
    assert!(delivered.abs_diff(500_000) <= STROKE_NL, "{delivered} nL");
    // Cleared after 2 days, 24 h more: by day 5 only the new program's limits apply,
    // about 0.1 mL/day × 1.1 × 1000 mcg/mL plus the edges: far below the old 2000 mcg/mL.
    let limits = rig.pump.limiter().limits(DrugId::Baclofen).unwrap();
    assert!(limits.per_day.raw() < 150_000, "{:?}", limits);
}

// ----- issue 9 item 2: the limiter forgets idle drugs, and says when it cannot count ----

/// A Prometra-class pump (2 uL pulses, so seven years stay cheap to run) at 0.05 mL/day,
/// refilled every 180 days with the next of six drugs in turn: 14 refills over 7 years.
/// The limiter counts at most four drugs; a drug neither delivered in the last 24 h nor
/// in the pump any more is forgotten, so every drug is delivered and nothing vetoed.
#[test]
fn six_drugs_rotated_over_seven_years_are_never_vetoed_pump_027() {
    let drugs = [
        (DrugId::Morphine, "2 mg/mL"),
        (DrugId::Hydromorphone, "1 mg/mL"),
        (DrugId::Fentanyl, "1 mg/mL"),
        (DrugId::Sufentanil, "300 mcg/mL"),
        (DrugId::Bupivacaine, "20 mg/mL"),
        (DrugId::Clonidine, "1000 mcg/mL"),
    ];
    let mut rig = Rig::new(HardwareProfile::prometra_class(20));
    rig.pump.set_persistence(false);
    rig.set_clock();
    rig.start(
        drugs[0].0,
        drugs[0].1,
        "20 mL",
        Schedule::continuous(q("0.05 mL/day")),
        None,
    );
    let mut start = rig.now;
    for k in 1..=14usize {
        rig.run_for(Duration::from_days(180));
        let (drug, _) = drugs[(k - 1) % drugs.len()];
        assert!(
            rig.tip_mass(drug, start, rig.now) > 0,
            "refill {k}: {drug} was never delivered"
        );
        assert_eq!(vetoes(&rig), 0, "refill {k}: the limiter vetoed delivery");
        let (next, conc) = drugs[k % drugs.len()];
        let residual = rig.pump.status().reservoir;
        let r = rig.cmd(Command::Refill {
            aspirated: residual,
            added: q("20 mL"),
            contents: Admixture::single(next, q(conc)),
            keep_dose: false,
            bridge: BridgeChoice::None,
            confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
            beyond_use_utc_ms: None,
        });
        assert_eq!(
            r,
            Response::Accepted,
            "refill {k} with {next} on day {}",
            k * 180
        );
        start = rig.now;
    }
    rig.run_for(Duration::from_days(40));
    assert_eq!(vetoes(&rig), 0, "the limiter vetoed delivery in year 7");
    assert_eq!(rig.pump.status().mode, Mode::Running);
    assert_eq!(rig.pump.status().missed, Volume::ZERO);
    // The drug of the last six months and, at most, the one before it.
    assert!(rig.pump.limiter().drugs().count() <= 2);
}

/// A four-drug admixture (the most a reservoir holds) has run for a day, so all four
/// drugs are in the catheter and in the limiter's windows. A refill with a fifth drug
/// would leave the limiter unable to count it (every stroke would then be vetoed): it
/// is refused up front, naming the drug, and nothing changes.
#[test]
fn a_fifth_drug_the_limiter_cannot_count_is_refused_before_anything_changes_pump_027() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.set_clock();
    let mix = Admixture::new(&[
        Component {
            drug: DrugId::Morphine,
            concentration: q("2 mg/mL"),
        },
        Component {
            drug: DrugId::Bupivacaine,
            concentration: q("10 mg/mL"),
        },
        Component {
            drug: DrugId::Clonidine,
            concentration: q("500 mcg/mL"),
        },
        Component {
            drug: DrugId::Baclofen,
            concentration: q("500 mcg/mL"),
        },
    ])
    .unwrap();
    rig.ok(Command::Refill {
        aspirated: Volume::ZERO,
        added: q("20 mL"),
        contents: mix.clone(),
        keep_dose: false,
        bridge: BridgeChoice::None,
        confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
        beyond_use_utc_ms: None,
    });
    let mut rx = rig.pump.program().clone();
    rx.schedule = Schedule::continuous(q("0.5 mL/day"));
    rig.ok(Command::Program {
        prescription: rx,
        confirm_soft: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
    });
    rig.ok(Command::Resume);
    rig.run_for(Duration::from_days(1));
    let before = rig.pump.status();
    let program = rig.pump.program().clone();
    let limiter = rig.pump.limiter().clone();
    let logged = rig.events.len();
    let r = rig.cmd(Command::Refill {
        aspirated: before.reservoir,
        added: q("20 mL"),
        contents: Admixture::single(DrugId::Fentanyl, q("500 mcg/mL")),
        keep_dose: false,
        bridge: BridgeChoice::None,
        confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
        beyond_use_utc_ms: None,
    });
    assert!(
        matches!(r, Response::Refused(_)),
        "a refill with a fifth drug the limiter cannot count was {r:?}"
    );
    assert_eq!(
        r,
        Response::Refused(Refusal::LimiterFull {
            drug: DrugId::Fentanyl
        })
    );
    if let Response::Refused(why) = &r {
        assert!(why.to_string().contains("fentanyl"), "{why}");
    }
    let after = rig.pump.status();
    assert_eq!(after.reservoir, before.reservoir);
    assert_eq!(after.program_version, before.program_version);
    assert_eq!(rig.pump.program(), &program);
    assert_eq!(rig.pump.limiter(), &limiter);
    // Only the refusal itself was logged.
    assert!(
        rig.events[logged..]
            .iter()
            .all(|e| matches!(e.event, Event::CommandRefused { .. })),
        "{:?}",
        &rig.events[logged..]
    );
    // Delivery goes on as before.
    rig.run_for(Duration::from_days(1));
    assert_eq!(vetoes(&rig), 0);
    assert_eq!(rig.pump.status().mode, Mode::Running);
}

// ----- issue 9 item 3: a full action queue never silently stops saving or delivery ------

/// 40 commands arrive without the firmware draining the queue in between (each logs
/// an entry: more than the queue holds), then the stroke falls due, still undrained.
/// Before, the stroke was lost in the full queue and left "in flight" for good:
/// delivery stopped silently while the pump reported Running. Now the record and the
/// stroke are state, not queue entries, and the lost log entries put the pump in its
/// safe state with a fault logged; saving goes on.
#[test]
fn a_log_heavy_command_storm_never_silently_stops_saving_or_delivery_pump_028() {
    let mut rig = baclofen("0.5 mL/day");
    rig.run_for(Duration::from_hours(1));
    let now = rig.now;
    for _ in 0..40 {
        let _ = rig
            .pump
            .handle_command(now, Role::Clinician, 7, &Command::Interrogate);
    }
    let due = rig.pump.poll_timeout().unwrap();
    rig.now = due;
    rig.pump.handle_timeout(due);
    let mut persisted = false;
    let mut strokes = 0;
    while let Some(a) = rig.pump.poll_action() {
        match a {
            Action::Store(op) => {
                // Carried out, as the firmware carries out every write.
                rig.mem.apply(op).unwrap();
                persisted = true;
            }
            Action::Stroke => strokes += 1,
            Action::Log(e) => rig.events.push(e),
            Action::FaultLog(e) => rig.faults.push(e),
            Action::Alarm(_) => {}
        }
    }
    assert!(persisted, "no record was handed out after the storm");
    let d0 = rig.pump.delivered();
    if strokes == 1 {
        rig.pump.handle_stroke_done(rig.now, true);
        rig.drain();
    }
    rig.run_for(Duration::from_days(1));
    let delivered_in_a_day = rig.pump.delivered().raw() - d0.raw();
    let mode = rig.pump.status().mode;
    assert!(
        mode == Mode::Fault {
            code: FaultCode::ActionLost
        },
        "after a storm that overflowed the action queue the pump is {mode:?} and delivered \
         {delivered_in_a_day} nL in a day (0.5 mL expected): neither delivering nor in its \
         safe state"
    );
    assert!(rig.pump.dropped_actions() > 0);
    let code = FaultCode::ActionLost;
    assert!(
        rig.events.iter().any(|e| e.event == Event::Fault { code }),
        "no fault entry for the lost actions"
    );
    assert!(rig.faults.iter().any(|e| e.event == Event::Fault { code }));
    assert!(
        rig.pump
            .status()
            .alarms
            .iter()
            .any(|a| a.kind == AlarmKind::MemoryFault)
    );
    // Saving goes on: a later change is written, and survives a power cut.
    rig.record_writes = true;
    rig.ok(Command::AlarmSettings {
        low_reservoir: q("3 mL"),
        low_reservoir_days: 7,
        stopped_reminder: Duration::from_minutes(30),
    });
    assert!(!rig.writes.is_empty(), "nothing was saved after the storm");
    rig.restart();
    assert_eq!(
        rig.pump.status().mode,
        Mode::Fault {
            code: FaultCode::ActionLost
        }
    );
    // A clinician's program brings the pump out of its safe state.
    let rx = rig.pump.program().clone();
    rig.ok(Command::Program {
        prescription: rx,
        confirm_soft: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
    });
    rig.ok(Command::Resume);
    let d1 = rig.pump.delivered().raw();
    rig.run_for(Duration::from_days(1));
    let delivered = rig.pump.delivered().raw() - d1;
    assert!(delivered.abs_diff(500_000) <= STROKE_NL, "{delivered} nL");
}

/// The same storm while the firmware drains the queue after every input: nothing is
/// lost and therapy is untouched (1000 commands in an hour, then a day's delivery).
#[test]
fn a_drained_command_storm_loses_nothing_and_delivery_goes_on_pump_028() {
    let mut rig = baclofen("0.5 mL/day");
    let d0 = rig.pump.delivered().raw();
    for i in 0..1000u64 {
        rig.run_for(Duration::from_ms(3_600));
        let role = if i % 2 == 0 {
            Role::Clinician
        } else {
            Role::PatientRemote
        };
        let _ = rig.cmd_as(role, Command::Interrogate);
    }
    rig.run_for(Duration::from_hours(23));
    assert_eq!(rig.pump.dropped_actions(), 0);
    assert_eq!(rig.pump.status().mode, Mode::Running);
    let delivered = rig.pump.delivered().raw() - d0;
    assert!(delivered.abs_diff(500_000) <= STROKE_NL, "{delivered} nL");
}

// ----- issue 9 item 4: a bolus logs what it delivered ---------------------------------

/// A clinician bolus of 100 uL over 60 min on a 0.5 mL/day basal, cancelled after
/// 15 min: a quarter of it, 25 uL, was delivered (within a stroke), not 100 uL.
#[test]
fn a_cancelled_bolus_logs_the_volume_it_delivered_pump_029() {
    let mut rig = baclofen("0.5 mL/day");
    rig.run_for(Duration::from_hours(1));
    rig.ok(Command::ClinicianBolus {
        volume: q("100 uL"),
        duration: q("60 min"),
    });
    rig.run_for(Duration::from_minutes(15));
    rig.ok(Command::CancelBolus);
    let ends = bolus_ends(&rig);
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert!(
        ends[0].abs_diff(25_000) <= STROKE_NL,
        "a bolus cancelled after 15 of 60 min logged {} nL delivered (25000 expected)",
        ends[0]
    );
}

/// The same bolus, stopped by a clinician after 20 min: a third of it, 33.3 uL, logged.
#[test]
fn a_stopped_bolus_logs_the_volume_it_delivered_pump_029() {
    let mut rig = baclofen("0.5 mL/day");
    rig.run_for(Duration::from_hours(1));
    rig.ok(Command::ClinicianBolus {
        volume: q("100 uL"),
        duration: q("60 min"),
    });
    rig.run_for(Duration::from_minutes(20));
    rig.ok(Command::Stop {
        reason: StopReason::AdverseEffect,
    });
    let ends = bolus_ends(&rig);
    assert_eq!(
        ends.len(),
        1,
        "a bolus ended by a stop was not logged: {ends:?}"
    );
    assert!(ends[0].abs_diff(33_333) <= STROKE_NL, "{} nL", ends[0]);
}

/// The bolus at t = 0 (100 uL over 60 min, on 0.5 mL/day ≈ 20.8 uL/h): at 20 min a
/// refill puts only 10 uL into the reservoir, which runs dry 10 uL later. Delivered of
/// the bolus: 33.3 uL in the first 20 min, then its share of the last 10 uL (100 of
/// every 120.8 uL: 8.3 uL), about 41.6 uL; the rest was missed.
#[test]
fn a_bolus_cut_short_by_an_empty_reservoir_logs_the_volume_it_delivered_pump_029() {
    let mut rig = baclofen("0.5 mL/day");
    rig.run_for(Duration::from_hours(1));
    rig.ok(Command::ClinicianBolus {
        volume: q("100 uL"),
        duration: q("60 min"),
    });
    rig.run_for(Duration::from_minutes(20));
    let residual = rig.pump.status().reservoir;
    rig.ok(Command::Refill {
        aspirated: residual,
        added: q("10 uL"),
        contents: Admixture::single(DrugId::Baclofen, q("2000 mcg/mL")),
        keep_dose: false,
        bridge: BridgeChoice::None,
        confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
        beyond_use_utc_ms: None,
    });
    rig.run_for(Duration::from_minutes(50));
    let ends = bolus_ends(&rig);
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert!(
        ends[0].abs_diff(41_600) <= 2 * STROKE_NL,
        "a bolus cut short by an empty reservoir logged {} nL delivered (about 41600 expected)",
        ends[0]
    );
    assert!(rig.pump.status().missed > Volume::ZERO);
}

/// The bolus runs 15 min, then the power fails for 2 h (past its planned end). Time
/// powered off is not owed, so a quarter of it was delivered; the entry logged at the
/// restart says 25 uL (less at most the stroke in hand at the cut), not 100 uL.
#[test]
fn a_bolus_cut_by_a_power_failure_logs_the_volume_it_delivered_pump_029() {
    let mut rig = baclofen("0.5 mL/day");
    rig.run_for(Duration::from_hours(1));
    rig.ok(Command::ClinicianBolus {
        volume: q("100 uL"),
        duration: q("60 min"),
    });
    rig.run_for(Duration::from_minutes(15));
    rig.now = rig.now.saturating_add(Duration::from_hours(2));
    rig.restart();
    rig.run_for(Duration::from_minutes(1));
    let ends = bolus_ends(&rig);
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert!(
        ends[0] <= 25_000 + STROKE_NL && ends[0] + 2 * STROKE_NL >= 25_000,
        "a bolus interrupted by a power failure after 15 of 60 min logged {} nL delivered \
         (about 25000 expected)",
        ends[0]
    );
}

// ----- issue 9 item 10: no refill at end of service -----------------------------------

/// A battery reading of 0 uJ left puts the pump at end of service; a refill then would
/// leave drug in a pump that cannot deliver it: refused, with a message to replace the
/// pump, and the reservoir is untouched.
#[test]
fn a_pump_at_end_of_service_refuses_a_refill_and_says_replace_it_pump_021() {
    let mut rig = baclofen("0.5 mL/day");
    rig.run_for(Duration::from_days(1));
    rig.pump.handle_battery(
        rig.now,
        BatteryReading {
            remaining_uj: Some(0),
            voltage_mv: 2000,
        },
    );
    rig.drain();
    assert_eq!(rig.pump.status().mode, Mode::EndOfService);
    let reservoir = rig.pump.status().reservoir;
    let r = rig.cmd(Command::Refill {
        aspirated: reservoir,
        added: q("40 mL"),
        contents: Admixture::single(DrugId::Baclofen, q("2000 mcg/mL")),
        keep_dose: false,
        bridge: BridgeChoice::None,
        confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
        beyond_use_utc_ms: None,
    });
    assert!(
        matches!(r, Response::Refused(_)),
        "a pump at end of service accepted a refill: {r:?}"
    );
    assert_eq!(r, Response::Refused(Refusal::EndOfService));
    if let Response::Refused(why) = &r {
        assert!(why.to_string().contains("replace the pump"), "{why}");
        assert_eq!(why.code(), 17);
    }
    assert_eq!(rig.pump.status().reservoir, reservoir);
}

// ----- issue 18 item 1: emergency reductions are bounded ------------------------------

/// Baclofen at 0.5 mL/day (1000 mcg/day). An emergency device halves it (0.25 mL/day);
/// a second halving would leave a quarter of the clinician's program: refused, and so
/// are twelve more in a row. After a clinician's program (the reference again), 30 %
/// then at most 28 % more: 0.7 × 0.72 = 0.504 ≥ 0.5, while 0.7 × 0.71 = 0.497 < 0.5.
#[test]
fn repeated_emergency_reductions_stop_at_half_the_clinicians_program_pump_026() {
    let mut rig = baclofen("0.5 mL/day");
    rig.run_for(Duration::from_hours(1));
    let reduce =
        |rig: &mut Rig, percent| rig.cmd_as(Role::Emergency, Command::ReduceDose { percent });
    assert_eq!(reduce(&mut rig, 50), Response::Accepted);
    for _ in 0..12 {
        let r = reduce(&mut rig, 50);
        assert!(
            matches!(r, Response::Refused(_)),
            "a second emergency halving was {r:?}; the flow is now {}",
            rig.pump.program().schedule.mean_daily()
        );
        assert_eq!(
            r,
            Response::Refused(Refusal::ReductionBound { max_percent: 0 })
        );
    }
    assert_eq!(rig.pump.program().schedule.mean_daily(), q("0.25 mL"));
    assert_eq!(rig.pump.status().mode, Mode::Running);
    // The alarm names the reduction, the log says who and how much.
    let alarms = rig.pump.status().alarms;
    assert!(alarms.iter().any(|a| a.kind == AlarmKind::DoseReduced));
    assert!(rig.events.iter().any(|e| e.event
        == Event::DoseReduced {
            role: Role::Emergency,
            percent: 50,
            left_percent: 50,
        }));
    // Stopping stays the clinician's.
    let r = rig.cmd_as(
        Role::Emergency,
        Command::Stop {
            reason: StopReason::AdverseEffect,
        },
    );
    assert!(matches!(r, Response::Refused(Refusal::NotPermitted { .. })));
    // A clinician's program is the new reference and clears the alarm.
    let mut rx = rig.pump.program().clone();
    rx.schedule = Schedule::continuous(q("0.5 mL/day"));
    rig.ok(Command::Program {
        prescription: rx,
        confirm_soft: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
    });
    assert!(
        !rig.pump
            .status()
            .alarms
            .iter()
            .any(|a| a.kind == AlarmKind::DoseReduced)
    );
    assert_eq!(reduce(&mut rig, 30), Response::Accepted);
    assert_eq!(
        reduce(&mut rig, 29),
        Response::Refused(Refusal::ReductionBound { max_percent: 28 })
    );
    assert_eq!(reduce(&mut rig, 28), Response::Accepted);
    // 0.5 × 0.7 × 0.72 = 0.252 mL/day.
    assert_eq!(rig.pump.program().schedule.mean_daily(), q("0.252 mL"));
    // Nothing was vetoed through all of it.
    rig.run_for(Duration::from_days(2));
    assert_eq!(vetoes(&rig), 0);
}

/// At 0.06 mL/day a 50 % reduction (0.03 mL/day) would go below the SynchroMed-class
/// minimum of 0.048 mL/day: refused for any role, naming both flows; 20 % (0.048) is
/// the most allowed.
#[test]
fn a_reduction_below_the_pumps_minimum_rate_is_refused_pump_026() {
    let mut rig = baclofen("0.06 mL/day");
    for role in [Role::Clinician, Role::Emergency] {
        let r = rig.cmd_as(role, Command::ReduceDose { percent: 50 });
        assert!(
            matches!(r, Response::Refused(_)),
            "a reduction to 0.03 mL/day by {role} was {r:?}"
        );
        assert_eq!(
            r,
            Response::Refused(Refusal::BelowMinimumRate {
                flow: Flow::from_raw(30_000),
                min: Flow::from_raw(48_000),
            })
        );
    }
    assert_eq!(
        rig.cmd_as(Role::Emergency, Command::ReduceDose { percent: 21 }),
        Response::Refused(Refusal::BelowMinimumRate {
            flow: Flow::from_raw(47_400),
            min: Flow::from_raw(48_000),
        })
    );
    assert_eq!(
        rig.cmd_as(Role::Emergency, Command::ReduceDose { percent: 20 }),
        Response::Accepted
    );
    assert_eq!(rig.pump.program().schedule.mean_daily(), q("0.048 mL"));
}

// ----- the wake-up loop: a stall retry never asks for the past again ------------------

/// Carries out the queued actions at `now` without answering a stroke; returns whether
/// one was handed out.
fn drain_holding_the_stroke(rig: &mut Rig) -> bool {
    let mut stroke = false;
    while let Some(a) = rig.pump.poll_action() {
        match a {
            Action::Stroke => stroke = true,
            Action::Log(e) => rig.events.push(e),
            Action::FaultLog(e) => rig.faults.push(e),
            Action::Store(_) | Action::Alarm(_) => {}
        }
    }
    stroke
}

/// A stroke stalls; its retry a minute later is issued and is still in flight (the motor
/// has not answered). The retry time is now in the past, and nothing can be done before
/// the motor answers: the core must not ask to be woken at it again and again (a
/// firmware would spin and drain the battery).
#[test]
fn a_stall_retry_in_flight_never_asks_for_the_same_instant_again_pump_001() {
    let mut rig = baclofen("0.5 mL/day");
    rig.run_for(Duration::from_hours(1));
    let t = rig.pump.poll_timeout().unwrap();
    rig.now = t;
    rig.pump.handle_timeout(t);
    assert!(drain_holding_the_stroke(&mut rig));
    rig.pump.handle_stroke_done(t, false);
    assert!(!drain_holding_the_stroke(&mut rig));
    let retry = rig.pump.poll_timeout().unwrap();
    assert_eq!(retry, t.saturating_add(Duration::from_minutes(1)));
    rig.now = retry;
    rig.pump.handle_timeout(retry);
    assert!(
        drain_holding_the_stroke(&mut rig),
        "the retry was not issued"
    );
    for _ in 0..3 {
        let next = rig.pump.poll_timeout();
        assert!(
            next.is_none_or(|n| n > retry),
            "with the retry in flight the core asks to be woken at {next:?} again (now {retry:?})"
        );
        rig.pump.handle_timeout(retry);
        assert!(!drain_holding_the_stroke(&mut rig));
    }
    // The motor answers: delivery resumes and the stall clears.
    rig.pump.handle_stroke_done(retry, true);
    rig.drain();
    rig.run_for(Duration::from_hours(1));
    assert!(
        !rig.pump
            .status()
            .alarms
            .iter()
            .any(|a| a.kind == AlarmKind::MotorStall)
    );
}
