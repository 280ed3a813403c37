//! Hand-worked clinical examples of the therapy core, driven through its public
//! sans-IO interface by the test rig.

#![allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod rig;

use rig::{Rig, q};
use thecal_pump::alarm::AlarmKind;
use thecal_pump::battery::BatteryState;
use thecal_pump::command::{BridgeChoice, Command, Mode, Refusal, Response, Role, StopReason};
use thecal_pump::core::BolusKind;
use thecal_pump::event::Event;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::check::PatientBolus;
use thecal_rx::dose::Admixture;
use thecal_rx::drug::DrugId;
use thecal_rx::schedule::{DayProfile, Schedule, Step};
use thecal_rx::{Duration, Instant, Volume};

const STROKE_NL: u64 = 250;

fn days(n: u64) -> Duration {
    Duration::from_days(n)
}

#[test]
fn half_ml_per_day_for_30_days_delivers_15_ml_within_one_stroke_pump_011() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(40));
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "40 mL",
        Schedule::continuous(q("0.5 mL/day")),
        None,
    );
    let t0 = rig.now;
    let delivered0 = rig.pump.delivered();
    let wakes0 = rig.wakes;
    rig.run_for(days(30));
    let delivered = rig.pump.delivered().raw() - delivered0.raw();
    assert!(
        delivered.abs_diff(15_000_000) <= STROKE_NL,
        "delivered {delivered} nL"
    );
    // Within one stroke of ideal at every check point along the way, too.
    let ideal = rig.pump.ideal_delivered().raw();
    assert!(ideal - rig.pump.delivered().raw() <= STROKE_NL);
    // The core woke only for strokes: 2000 a day, nothing else.
    let wakes = rig.wakes - wakes0;
    let strokes = delivered / STROKE_NL;
    assert_eq!(strokes, 60_000);
    assert!(
        wakes <= 2 * strokes + 2,
        "wakes {wakes} for {strokes} strokes"
    );
    assert_eq!(rig.pump.status().mode, Mode::Running);
    assert_eq!(rig.pump.status().reservoir, q("25 mL"));
    let _ = t0;
}

#[test]
fn flex_schedule_tracks_the_steps_pump_010_pump_011() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.set_clock();
    let step = |h: u16, f: &str| Step {
        start_minute: h * 60,
        flow: q(f),
    };
    // More baclofen before waking: 0.3 mL/day at night, 0.6 from 06:00 to 09:00.
    let profile = DayProfile::new(&[
        step(0, "0.3 mL/day"),
        step(6, "0.6 mL/day"),
        step(9, "0.4 mL/day"),
    ])
    .unwrap();
    rig.start(
        DrugId::Baclofen,
        "500 mcg/mL",
        "20 mL",
        Schedule::daily(profile),
        None,
    );
    // The clock reads Monday 00:00 plus the few ms of set-up; run to 06:00.
    let midnight = rig.now;
    rig.run_until(midnight.saturating_add(Duration::from_hours(6)));
    let night = rig.pump.delivered().raw();
    // 0.3 mL/day × 6 h = 75 uL, within a stroke.
    assert!(night.abs_diff(75_000) <= STROKE_NL, "{night}");
    rig.run_until(midnight.saturating_add(Duration::from_hours(9)));
    let morning = rig.pump.delivered().raw() - night;
    // 0.6 mL/day × 3 h = 75 uL.
    assert!(morning.abs_diff(75_000) <= STROKE_NL, "{morning}");
    rig.run_until(midnight.saturating_add(days(1)));
    // Day total: 0.3×6/24 + 0.6×3/24 + 0.4×15/24 = 0.4 mL.
    let day = rig.pump.delivered().raw();
    assert!(day.abs_diff(400_000) <= STROKE_NL, "{day}");
}

fn ptm() -> PatientBolus {
    PatientBolus {
        volume: q("10 uL"),
        duration: q("10 min"),
        lockout: q("3 h"),
        max_per_day: 3,
    }
}

#[test]
fn patient_bolus_refused_by_lockout_and_by_count_pump_012() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.start(
        DrugId::Morphine,
        "10 mg/mL",
        "20 mL",
        Schedule::continuous(q("0.2 mL/day")),
        Some(ptm()),
    );
    rig.run_for(Duration::from_hours(1));
    let r = rig.cmd_as(Role::PatientRemote, Command::PatientBolus { request_id: 1 });
    let Response::BolusAccepted { volume, ends_at } = r else {
        panic!("{r:?}")
    };
    assert_eq!(volume, q("10 uL"));
    assert_eq!(ends_at, rig.now.saturating_add(q("10 min")));
    let first = rig.now;
    // A retry of the same request is answered the same and not delivered twice.
    let again = rig.cmd_as(Role::PatientRemote, Command::PatientBolus { request_id: 1 });
    assert_eq!(again, Response::BolusAccepted { volume, ends_at });
    rig.run_for(Duration::from_hours(1));
    // Within the 3 h lockout: refused with the time of the next allowed bolus.
    let r = rig.cmd_as(Role::PatientRemote, Command::PatientBolus { request_id: 2 });
    assert_eq!(
        r,
        Response::Refused(Refusal::Lockout {
            until: first.saturating_add(q("3 h"))
        })
    );
    if let Response::Refused(x) = &r {
        assert!(x.to_string().starts_with("too soon after the last bolus"));
    }
    // Two more, each after the lockout; the fourth within 24 h is refused by count.
    for id in 3..5 {
        rig.run_for(q("3 h"));
        let r = rig.cmd_as(
            Role::PatientRemote,
            Command::PatientBolus { request_id: id },
        );
        assert!(matches!(r, Response::BolusAccepted { .. }), "{r:?}");
    }
    rig.run_for(q("3 h"));
    let r = rig.cmd_as(Role::PatientRemote, Command::PatientBolus { request_id: 9 });
    assert_eq!(
        r,
        Response::Refused(Refusal::DailyCount {
            max: 3,
            until: first.saturating_add(days(1))
        })
    );
    // After the first leaves the 24 h window, a bolus is allowed again.
    rig.run_until(first.saturating_add(days(1)));
    let r = rig.cmd_as(
        Role::PatientRemote,
        Command::PatientBolus { request_id: 10 },
    );
    assert!(matches!(r, Response::BolusAccepted { .. }), "{r:?}");
    // Delivered: basal for the elapsed time plus four boluses, within a stroke.
    rig.run_for(Duration::from_hours(1));
    let elapsed = rig.now.saturating_since(first).ms() + 3_600_000;
    let basal = 200_000u64 * elapsed / 86_400_000;
    let total = rig.pump.delivered().raw();
    assert!(
        total.abs_diff(basal + 40_000) <= 2 * STROKE_NL,
        "total {total} expected {}",
        basal + 40_000
    );
}

#[test]
fn patient_bolus_refused_by_the_predictive_limiter_rule_pump_012_pump_015() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    // Baclofen 2000 mcg/mL at 0.8 mL/day = 1600 mcg/day; 3 boluses of 0.05 mL = 300 mcg
    // → 1900 mcg, within the label's hard limit of 2000, so the prescription passes. A
    // clinician bolus of 200 mcg then uses up the room: basal + that bolus + one patient
    // bolus make 1900 mcg/day, a second 2000 plus the limiter's whole oldest bin: over. (Morphine's PACC 15 mg/day is
    // a guideline, soft, so it no longer sets the limiter's hard ceiling.)
    let pb = PatientBolus {
        volume: q("0.05 mL"),
        duration: q("10 min"),
        lockout: q("1 h"),
        max_per_day: 3,
    };
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "20 mL",
        Schedule::continuous(q("0.8 mL/day")),
        Some(pb),
    );
    // Let the catheter's saline (0.2 mL, 6 h at 0.8 mL/day) clear so that the tip
    // delivers drug over the whole 24 h window.
    rig.run_for(days(2));
    rig.ok(Command::ClinicianBolus {
        volume: q("0.1 mL"),
        duration: q("1 h"),
    });
    rig.run_for(Duration::from_hours(2));
    let r = rig.cmd_as(Role::PatientRemote, Command::PatientBolus { request_id: 1 });
    assert!(matches!(r, Response::BolusAccepted { .. }), "{r:?}");
    rig.run_for(Duration::from_hours(2));
    let r = rig.cmd_as(Role::PatientRemote, Command::PatientBolus { request_id: 2 });
    let Response::Refused(Refusal::Limiter(v)) = &r else {
        panic!("expected a limiter refusal, got {r:?}")
    };
    assert_eq!(v.drug, DrugId::Baclofen);
    assert!(
        r_text(&r).contains("refused by the dose limiter: baclofen: 24 h delivery would reach"),
        "{}",
        r_text(&r)
    );
    // The refusal is logged with the patient remote's role.
    assert!(rig.events.iter().any(|e| matches!(
        e.event,
        Event::CommandRefused {
            role: Role::PatientRemote,
            reason: 9,
            ..
        }
    )));
}

fn r_text(r: &Response) -> String {
    match r {
        Response::Refused(x) => x.to_string(),
        other => format!("{other:?}"),
    }
}

#[test]
fn concentration_change_keeps_the_tip_dose_continuous_pump_013() {
    // Baclofen 500 mcg/mL at 1 mL/day (500 mcg/day), dead volume 0.2 mL. Refill with
    // 2000 mcg/mL keeping the dose: the new rate is 0.25 mL/day. The 0.2 mL of old fluid
    // must still reach the patient at 500 mcg/day, not at a quarter of it.
    let profile = HardwareProfile::synchromed_class(20);
    assert_eq!(profile.dead_volume(), q("0.2 mL"));
    let run = |bridge: BridgeChoice| {
        let mut rig = Rig::new(profile);
        rig.start(
            DrugId::Baclofen,
            "500 mcg/mL",
            "20 mL",
            Schedule::continuous(q("1 mL/day")),
            None,
        );
        rig.run_for(days(2)); // old fluid fills the catheter
        let residual = rig.pump.status().reservoir;
        rig.ok(Command::Refill {
            aspirated: residual,
            added: q("20 mL"),
            contents: Admixture::single(DrugId::Baclofen, q("2000 mcg/mL")),
            keep_dose: true,
            bridge,
            confirm: None,
            beyond_use_utc_ms: None,
        });
        assert_eq!(
            rig.pump
                .program()
                .schedule
                .flow_at(thecal_rx::schedule::LocalTime(0)),
            q("0.25 mL/day")
        );
        let t = rig.now;
        rig.run_for(days(2));
        // Tip dose per 4 h, as mcg/day.
        (0..12)
            .map(|i| {
                let a = t.saturating_add(Duration::from_hours(4 * i));
                let b = a.saturating_add(Duration::from_hours(4));
                rig.tip_mass(DrugId::Baclofen, a, b) * 6 / 1000
            })
            .collect::<Vec<u64>>()
    };
    let bridged = run(BridgeChoice::Automatic);
    for (i, mcg_per_day) in bridged.iter().enumerate() {
        assert!(
            mcg_per_day.abs_diff(500) <= 25,
            "bridged window {i}: {mcg_per_day} mcg/day ({bridged:?})"
        );
    }
    let unbridged = run(BridgeChoice::None);
    // Without bridging the old fluid arrives at a quarter of the dose for 0.8 days.
    assert!(unbridged[0] <= 130, "{unbridged:?}");
}

#[test]
fn priming_bolus_fills_the_catheter_and_therapy_starts_when_drug_reaches_the_tip_pump_013() {
    let profile = HardwareProfile::synchromed_class(20);
    let mut rig = Rig::new(profile);
    // A 35 cm catheter of 2 uL per cm: 70 uL, plus the 130 uL pump path.
    rig.ok(Command::SetCatheter(profile.nominal_catheter()));
    rig.start(
        DrugId::Ziconotide,
        "25 mcg/mL",
        "20 mL",
        Schedule::continuous(q("0.1 mL/day")),
        None,
    );
    // The catheter holds saline: the pump computes the priming volume itself.
    rig.ok(Command::PrimingBolus { duration: q("1 h") });
    let t = rig.now;
    rig.run_for(Duration::from_minutes(60));
    let delivered = rig.pump.delivered().raw();
    // Priming plus basal during the hour fill exactly the 0.2 mL dead volume.
    assert!(delivered.abs_diff(200_000) <= STROKE_NL, "{delivered}");
    assert!(rig.events.iter().any(|e| matches!(e.event, Event::BolusStarted { kind: BolusKind::Priming, volume } if volume.raw().abs_diff(195_834) <= 1)));
    // No drug reached the patient during priming: it arrives as the priming ends.
    let drug_during = rig.tip_mass(DrugId::Ziconotide, t, rig.now);
    assert!(
        drug_during <= 25 * STROKE_NL / 1000,
        "{drug_during} ng during priming"
    );
    rig.run_for(Duration::from_minutes(10));
    assert!(
        rig.pump
            .fluid()
            .volume_until(&rig.pump.program().contents)
            .is_zero()
    );
    // From now on every stroke brings drug: 0.1 mL/day × 25 mcg/mL = 2.5 mcg/day.
    let a = rig.now;
    rig.run_for(days(1));
    let day = rig.tip_mass(DrugId::Ziconotide, a, rig.now);
    assert!(
        day.abs_diff(2_500) <= 25 * STROKE_NL / 1000 + 1,
        "{day} ng/day"
    );
    // A second priming bolus is refused: the catheter already holds the drug.
    assert!(matches!(
        rig.cmd(Command::PrimingBolus { duration: q("1 h") }),
        Response::Refused(Refusal::Invalid(_))
    ));
}

#[test]
fn motor_stall_retries_with_backoff_and_recovers_by_itself_pump_022() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "20 mL",
        Schedule::continuous(q("0.5 mL/day")),
        None,
    );
    rig.run_for(Duration::from_hours(1));
    let before = rig.pump.delivered();
    rig.stall = true; // an MRI scan
    let stall_start = rig.now;
    let wakes0 = rig.wakes;
    rig.run_for(Duration::from_hours(3));
    assert!(rig.pump.alarms().is_active(AlarmKind::MotorStall));
    assert_eq!(rig.pump.delivered(), before);
    // Retries back off (1, 2, 4, … min): far fewer wakes than strokes would need.
    let retry_wakes = rig.wakes - wakes0;
    assert!(retry_wakes < 60, "{retry_wakes} wakes during a 3 h stall");
    rig.stall = false;
    rig.run_for(Duration::from_hours(2));
    assert!(!rig.pump.alarms().is_active(AlarmKind::MotorStall));
    let recovered = rig.events.iter().find_map(|e| match e.event {
        Event::MotorRecovered { missed } => Some(missed),
        _ => None,
    });
    let missed = recovered.expect("recovery logged");
    // Missed: the ~3 h of the stall up to the successful retry (0.5 mL/day ≈ 20.8 uL/h).
    assert!(
        missed.raw() >= 60_000 && missed.raw() <= 130_000,
        "missed {missed}"
    );
    assert!(
        rig.events
            .iter()
            .any(|e| matches!(e.event, Event::MotorStall { .. }))
    );
    // Delivery resumed at the normal rate, with no catch-up bolus.
    let a = rig.now;
    rig.run_for(Duration::from_hours(4));
    let rate = rig.tip.iter().filter(|(t, _)| *t >= a).count() as u64 * STROKE_NL;
    assert!(rate.abs_diff(500_000 / 6) <= STROKE_NL, "{rate} nL in 4 h");
    let _ = stall_start;
}

#[test]
fn battery_reaches_eri_then_eos_at_the_projected_times_pump_021() {
    // A small battery (2000 J) so that the timeline is months, not years.
    let mut profile = HardwareProfile::synchromed_class(40);
    profile.battery_uj = 2_000_000_000;
    let mut rig = Rig::new(profile);
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "40 mL",
        Schedule::continuous(q("0.1 mL/day")),
        None,
    );
    // Daily draw: quiescent 8.64 J + 400 strokes × 2.5 mJ + ~400 wakes × 40 µJ ≈ 9.66 J.
    let daily_uj = 8_640_000 + 400 * 2_500 + 400 * 40;
    let reserve = rig.pump.battery().reserve_uj();
    let eos_day = (2_000_000_000 - reserve) / daily_uj;
    let eri_day = eos_day - 90;
    rig.run_for(days(eri_day - 2));
    assert_eq!(rig.pump.battery().state(), BatteryState::Ok);
    rig.run_for(days(4));
    assert_eq!(
        rig.pump.battery().state(),
        BatteryState::ElectiveReplacement
    );
    assert!(rig.pump.alarms().is_active(AlarmKind::ElectiveReplacement));
    assert_eq!(rig.pump.status().mode, Mode::Running);
    rig.run_until(Instant::ZERO.saturating_add(days(eos_day - 2)));
    assert_eq!(rig.pump.status().mode, Mode::Running);
    rig.run_for(days(4));
    assert_eq!(rig.pump.status().mode, Mode::EndOfService);
    assert!(rig.pump.alarms().is_active(AlarmKind::EndOfService));
    let d = rig.pump.delivered();
    rig.run_for(days(2));
    assert_eq!(rig.pump.delivered(), d, "no delivery after end of service");
}

#[test]
fn stop_is_clinician_only_and_a_stopped_pump_reminds_pump_016() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "20 mL",
        Schedule::continuous(q("0.5 mL/day")),
        Some(ptm()),
    );
    for role in [Role::PatientRemote, Role::Emergency] {
        let r = rig.cmd_as(
            role,
            Command::Stop {
                reason: StopReason::Other,
            },
        );
        assert!(
            matches!(r, Response::Refused(Refusal::NotPermitted { .. })),
            "{role:?}: {r:?}"
        );
        assert!(r_text(&r).contains("may not send 'stop'"));
    }
    rig.ok(Command::Stop {
        reason: StopReason::Procedure,
    });
    let d = rig.pump.delivered();
    rig.run_for(Duration::from_minutes(29));
    assert!(!rig.pump.alarms().is_active(AlarmKind::StoppedReminder));
    rig.run_for(Duration::from_minutes(2));
    assert!(rig.pump.alarms().is_active(AlarmKind::StoppedReminder));
    assert!(
        rig.sounds
            .iter()
            .any(|(_, s)| s.kind == AlarmKind::StoppedReminder)
    );
    assert_eq!(rig.pump.delivered(), d);
    rig.ok(Command::Resume);
    assert!(!rig.pump.alarms().is_active(AlarmKind::StoppedReminder));
    // A program update while running never stops the pump.
    let mut rx = rig.pump.program().clone();
    rx.schedule = Schedule::continuous(q("0.55 mL/day"));
    rig.ok(Command::Program {
        prescription: rx,
        confirm_soft: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
    });
    assert_eq!(rig.pump.status().mode, Mode::Running);
}

#[test]
fn role_capabilities_are_enforced_pump_003() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "20 mL",
        Schedule::continuous(q("0.5 mL/day")),
        None,
    );
    let program = Command::Program {
        prescription: rig.pump.program().clone(),
        confirm_soft: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
    };
    for (role, cmd) in [
        (Role::PatientRemote, program.clone()),
        (
            Role::PatientRemote,
            Command::SetClock {
                utc_ms: rig::MONDAY_UTC_MS,
                offset_minutes: 0,
            },
        ),
        (Role::PatientRemote, Command::ReduceDose { percent: 10 }),
        (Role::Emergency, program),
        (Role::Emergency, Command::PatientBolus { request_id: 1 }),
        (
            Role::Emergency,
            Command::ClinicianBolus {
                volume: q("1 uL"),
                duration: q("1 min"),
            },
        ),
    ] {
        let r = rig.cmd_as(role, cmd);
        assert!(
            matches!(r, Response::Refused(Refusal::NotPermitted { .. })),
            "{role:?}: {r:?}"
        );
    }
    // Emergency may read and reduce, never increase.
    assert!(matches!(
        rig.cmd_as(Role::Emergency, Command::Interrogate),
        Response::Status(_)
    ));
    assert_eq!(
        rig.cmd_as(Role::Emergency, Command::ReduceDose { percent: 20 }),
        Response::Accepted
    );
    assert_eq!(
        rig.pump
            .program()
            .schedule
            .flow_at(thecal_rx::schedule::LocalTime(0)),
        q("0.4 mL/day")
    );
    assert!(matches!(
        rig.cmd_as(Role::Emergency, Command::ReduceDose { percent: 80 }),
        Response::Refused(Refusal::Invalid(_))
    ));
}

#[test]
fn refill_reconciliation_and_capacity_are_checked_pump_014() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "20 mL",
        Schedule::continuous(q("0.5 mL/day")),
        None,
    );
    rig.run_for(days(10));
    assert_eq!(rig.pump.status().reservoir, q("15 mL"));
    let refill = |aspirated: &str, added: &str, confirm: bool| Command::Refill {
        aspirated: q(aspirated),
        added: q(added),
        contents: Admixture::single(DrugId::Baclofen, q("2000 mcg/mL")),
        keep_dose: false,
        bridge: BridgeChoice::Automatic,
        confirm: confirm
            .then(|| thecal_pump::command::SoftReason::new("residual checked").unwrap()),
        beyond_use_utc_ms: None,
    };
    // 40 mL into a 20 mL pump (the reservoir-size mix-up).
    let r = rig.cmd(refill("15 mL", "40 mL", false));
    assert!(
        r_text(&r).contains("40 mL exceeds the reservoir capacity 20 mL"),
        "{}",
        r_text(&r)
    );
    // 12 mL aspirated where 15 mL were expected: flagged, needs confirmation.
    let r = rig.cmd(refill("12 mL", "20 mL", false));
    assert!(
        r_text(&r).contains("3 mL less than the expected 15 mL"),
        "{}",
        r_text(&r)
    );
    assert_eq!(
        rig.pump.status().reservoir,
        q("15 mL"),
        "a refused refill changes nothing"
    );
    rig.ok(refill("12 mL", "20 mL", true));
    assert_eq!(rig.pump.status().reservoir, q("20 mL"));
    assert!(
        rig.events
            .iter()
            .any(|e| matches!(e.event, Event::Refill { flagged: true, .. }))
    );
}

#[test]
fn low_and_empty_reservoir_alarms_and_empty_stops_strokes_pump_014() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "5 mL",
        Schedule::continuous(q("0.5 mL/day")),
        None,
    );
    // Low alarm at max(2 mL, 7 days × 0.5 mL = 3.5 mL): after 3 days.
    rig.run_for(Duration::from_hours(71));
    assert!(!rig.pump.alarms().is_active(AlarmKind::LowReservoir));
    rig.run_for(Duration::from_hours(2));
    assert!(rig.pump.alarms().is_active(AlarmKind::LowReservoir));
    let next = rig.pump.status().next_refill.unwrap();
    assert!(next <= rig.now.saturating_add(Duration::from_hours(1)));
    rig.run_for(days(8));
    assert!(rig.pump.alarms().is_active(AlarmKind::EmptyReservoir));
    assert_eq!(rig.pump.delivered(), q("5 mL"));
    assert!(rig.pump.delivered() <= rig.pump.held_total());
    // About a day without drug: 0.5 mL missed, counted, not owed.
    assert!(
        rig.pump.status().missed > q("0.4 mL"),
        "{}",
        rig.pump.status().missed
    );
}

#[test]
fn clock_changes_neither_reset_the_limiter_nor_repeat_delivery_pump_015() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.set_clock();
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "20 mL",
        Schedule::continuous(q("0.5 mL/day")),
        None,
    );
    rig.run_for(days(2));
    let counted =
        rig.pump
            .limiter()
            .delivered(rig.now, DrugId::Baclofen, thecal_pump::limiter::Window::Day);
    // The clinician sets the clock a day back: the limiter's windows do not move.
    rig.ok(Command::SetClock {
        utc_ms: rig::MONDAY_UTC_MS,
        offset_minutes: 0,
    });
    let after =
        rig.pump
            .limiter()
            .delivered(rig.now, DrugId::Baclofen, thecal_pump::limiter::Window::Day);
    assert_eq!(counted, after);
    assert!(counted.raw() >= 990_000, "{counted}");
}

#[test]
fn restart_restores_the_last_committed_state_and_never_repeats_a_stroke_pump_023() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "20 mL",
        Schedule::continuous(q("0.5 mL/day")),
        Some(ptm()),
    );
    rig.run_for(Duration::from_hours(5));
    let r = rig.cmd_as(Role::PatientRemote, Command::PatientBolus { request_id: 5 });
    assert!(matches!(r, Response::BolusAccepted { .. }));
    rig.run_for(Duration::from_minutes(3));
    let before = rig.pump.status();
    rig.restart();
    let after = rig.pump.status();
    assert_eq!(before.delivered, after.delivered);
    assert_eq!(before.reservoir, after.reservoir);
    assert_eq!(before.program_version, after.program_version);
    // The lockout survived the restart.
    let r = rig.cmd_as(Role::PatientRemote, Command::PatientBolus { request_id: 6 });
    assert!(
        matches!(r, Response::Refused(Refusal::Lockout { .. })),
        "{r:?}"
    );
    // And so did the request memory: the earlier request is not delivered again.
    let r = rig.cmd_as(Role::PatientRemote, Command::PatientBolus { request_id: 5 });
    assert!(matches!(r, Response::BolusAccepted { .. }));
    assert_eq!(rig.pump.status().delivered, after.delivered);
    // Physical strokes never exceed what the restored counter says.
    assert!(rig.strokes_moved * STROKE_NL <= rig.pump.delivered().raw());
    // The event log verifies across the restart.
    assert!(thecal_pump::log::verify(rig.events.iter(), None).is_ok());
}

#[test]
fn a_corrupt_memory_gives_the_safe_state_with_an_alarm_pump_023_pump_025() {
    let profile = HardwareProfile::synchromed_class(20);
    let mut rig = Rig::new(profile);
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "20 mL",
        Schedule::continuous(q("0.5 mL/day")),
        None,
    );
    rig.run_for(Duration::from_hours(1));
    // The start of every page of the journal is damaged.
    for page in rig
        .mem
        .bytes_mut()
        .chunks_mut(thecal_pump::journal::PAGE_SIZE)
    {
        for b in page.iter_mut().take(64) {
            *b ^= 0x5a;
        }
    }
    rig.restart();
    assert!(matches!(rig.pump.status().mode, Mode::Fault { .. }));
    assert!(rig.pump.alarms().is_active(AlarmKind::MemoryFault));
    let d = rig.pump.delivered();
    rig.run_for(Duration::from_hours(1));
    assert_eq!(rig.pump.delivered(), d, "no delivery in the safe state");
    assert!(
        rig.sounds
            .iter()
            .any(|(_, s)| s.kind == AlarmKind::MemoryFault)
    );
    // Status is still readable by anyone.
    assert!(matches!(
        rig.cmd_as(Role::Emergency, Command::Interrogate),
        Response::Status(_)
    ));
}

#[test]
fn new_pump_without_a_set_clock_warns_for_a_flex_schedule_pump_020() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    let step = |h: u16, f: &str| Step {
        start_minute: h * 60,
        flow: q(f),
    };
    let profile = DayProfile::new(&[step(0, "0.3 mL/day"), step(6, "0.6 mL/day")]).unwrap();
    rig.start(
        DrugId::Baclofen,
        "500 mcg/mL",
        "20 mL",
        Schedule::daily(profile),
        None,
    );
    assert!(rig.pump.alarms().is_active(AlarmKind::ClockNotSet));
    // Without a clock the pump delivers the day's mean, never stops.
    rig.run_for(days(1));
    let d = rig.pump.delivered().raw();
    assert!(d.abs_diff(525_000) <= STROKE_NL, "{d}");
    rig.set_clock();
    assert!(!rig.pump.alarms().is_active(AlarmKind::ClockNotSet));
    let _ = Volume::ZERO;
}

#[test]
fn a_hardware_counter_that_restarts_at_zero_changes_nothing_for_the_patient_pump_023_pump_001() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "20 mL",
        Schedule::continuous(q("0.5 mL/day")),
        None,
    );
    rig.run_for(days(1));
    let before = rig.pump.delivered();
    // Power cut; the new power cycle's counter starts again at zero.
    rig.now = Instant::ZERO;
    rig.restart();
    let first = rig.pump.poll_timeout().unwrap();
    assert!(
        first.ms() < 60_000,
        "the first stroke is due within a minute, not at {first:?}"
    );
    rig.run_for(days(1));
    let day = rig.pump.delivered().raw() - before.raw();
    assert!(
        day.abs_diff(500_000) <= STROKE_NL,
        "{day} nL in the day after the restart"
    );
    assert!(!rig.pump.alarms().is_active(AlarmKind::LimiterVeto));
}

#[test]
fn every_hardware_preset_delivers_a_day_within_one_stroke_pump_002() {
    for profile in [
        HardwareProfile::synchromed_class(20),
        HardwareProfile::synchromed_class(40),
        HardwareProfile::prometra_class(20),
        HardwareProfile::prometra_class(40),
        HardwareProfile::external_trial(),
    ] {
        let mut rig = Rig::new(profile);
        rig.start(
            DrugId::Baclofen,
            "2000 mcg/mL",
            "20 mL",
            Schedule::continuous(q("0.5 mL/day")),
            None,
        );
        let d0 = rig.pump.delivered().raw();
        rig.run_for(days(1));
        let day = rig.pump.delivered().raw() - d0;
        let stroke = profile.stroke_volume.raw();
        assert!(
            day.abs_diff(500_000) <= stroke,
            "{}: {day} nL",
            profile.name
        );
        assert_eq!(
            rig.strokes_moved,
            day.div_ceil(stroke).max(day / stroke),
            "{}",
            profile.name
        );
        // The prescription check uses the preset's own rate range.
        assert_eq!(profile.device_limits().capacity, profile.reservoir_capacity);
    }
}

#[test]
fn valve_pump_mri_mode_shuts_delivery_until_a_clinician_resets_it_pump_022() {
    let mut rig = Rig::new(HardwareProfile::prometra_class(20));
    rig.start(
        DrugId::Morphine,
        "10 mg/mL",
        "20 mL",
        Schedule::continuous(q("0.2 mL/day")),
        None,
    );
    rig.run_for(Duration::from_hours(2));
    // A full pump: an emergency scan the clinician confirms (PUMP-034).
    rig.ok(Command::MriEmergency);
    assert_eq!(rig.pump.status().mode, Mode::MriSuspended);
    assert!(rig.pump.alarms().is_active(AlarmKind::MagnetMri));
    let d = rig.pump.delivered();
    rig.run_for(Duration::from_hours(3));
    assert_eq!(rig.pump.delivered(), d, "the valve stays shut");
    rig.ok(Command::MriMode(false));
    rig.run_for(Duration::from_hours(3));
    assert!(rig.pump.delivered().raw() - d.raw() >= 20_000);
    // A peristaltic pump has no MRI mode: it stalls and resumes by itself.
    let mut peristaltic = Rig::new(HardwareProfile::synchromed_class(20));
    peristaltic.start(
        DrugId::Morphine,
        "10 mg/mL",
        "20 mL",
        Schedule::continuous(q("0.2 mL/day")),
        None,
    );
    let r = peristaltic.cmd(Command::MriMode(true));
    assert!(
        r_text(&r).contains("peristaltic pump stalls in the field and resumes by itself"),
        "{}",
        r_text(&r)
    );
}

#[test]
fn strokes_never_come_closer_than_the_motor_allows_pump_011_pump_002() {
    // A slow motor: at most one stroke every 5 s (17,280 a day, 4.32 mL/day).
    let mut profile = HardwareProfile::synchromed_class(20);
    profile.min_stroke_interval = Duration::from_secs(5);
    let mut rig = Rig::new(profile);
    rig.start(
        DrugId::Baclofen,
        "500 mcg/mL",
        "20 mL",
        Schedule::continuous(q("1 mL/day")),
        None,
    );
    rig.run_for(Duration::from_hours(1));
    // 0.1 mL in 10 min wants a stroke every 1.4 s: the motor spaces them 5 s apart.
    let start = rig.now;
    rig.ok(Command::ClinicianBolus {
        volume: q("0.1 mL"),
        duration: q("10 min"),
    });
    rig.run_for(Duration::from_hours(1));
    let gap = profile.min_stroke_interval.ms();
    let during: Vec<u64> = rig
        .tip
        .iter()
        .map(|(t, _)| t.ms())
        .filter(|t| *t >= start.ms())
        .collect();
    for pair in during.windows(2) {
        assert!(
            pair[1] - pair[0] >= gap,
            "strokes at {} and {} ms",
            pair[0],
            pair[1]
        );
    }
    // The first ten minutes ran at the motor's pace exactly.
    let first: Vec<u64> = during.iter().take(100).copied().collect();
    assert!(first.windows(2).all(|p| p[1] - p[0] == gap), "{first:?}");
    // The whole volume still arrives (later, not faster), within a stroke.
    let delivered = during.len() as u64 * STROKE_NL;
    let basal = 1_000_000 / 24;
    assert!(
        delivered.abs_diff(100_000 + basal) <= 2 * STROKE_NL,
        "{delivered}"
    );
}

/// H-34: a small patient bolus (2 uL of morphine 10 mg/mL = 20 mcg, against 125 mcg of
/// basal an hour) is allowed again after the lockout: the limiter's hourly limit budgets
/// the basal delivered during the bolus, which its predictive rule counts.
#[test]
fn a_small_patient_bolus_is_not_vetoed_the_next_day_pump_015() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.start(
        DrugId::Morphine,
        "10 mg/mL",
        "20 mL",
        Schedule::continuous(q("0.3 mL/day")),
        Some(PatientBolus {
            volume: q("2 uL"),
            duration: q("10 min"),
            lockout: q("3 h"),
            max_per_day: 4,
        }),
    );
    rig.run_for(Duration::from_minutes(30));
    let first = rig.cmd_as(Role::PatientRemote, Command::PatientBolus { request_id: 1 });
    assert!(matches!(first, Response::BolusAccepted { .. }), "{first:?}");
    rig.run_for(Duration::from_minutes(29 * 60 + 30));
    let second = rig.cmd_as(Role::PatientRemote, Command::PatientBolus { request_id: 2 });
    assert!(
        matches!(second, Response::BolusAccepted { .. }),
        "{second:?}"
    );
    assert_eq!(rig.pump.status().missed, Volume::ZERO);
}

/// LINK-007: the telemetry logs its own commands through the core, but cannot write an
/// entry that reads as one of the core's commands (a forged "program accepted").
#[test]
fn the_telemetry_cannot_log_a_core_command_link_007() {
    use thecal_pump::event::LinkEvent;
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.drain();
    let before = rig.events.len();
    let forged = LinkEvent::CommandAccepted {
        role: Role::Clinician,
        code: thecal_pump::command::CommandKind::Program.code(),
        key_id: 9,
    };
    assert!(!rig.pump.log_link(rig.now, forged));
    rig.drain();
    assert_eq!(rig.events.len(), before);
    let revoke = LinkEvent::CommandAccepted {
        role: Role::Clinician,
        code: 104,
        key_id: 9,
    };
    assert!(rig.pump.log_link(rig.now, revoke));
    rig.drain();
    assert_eq!(
        rig.events.last().map(|e| e.event),
        Some(Event::CommandAccepted {
            role: Role::Clinician,
            code: 104,
            key_id: 9
        })
    );
}
