//! Clinical corrections of the therapy core: each test is a hand-worked example of a
//! defect found in review, and fails on the core before its fix.

#![allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod rig;

use proptest::prelude::*;
use rig::{Rig, q};
use thecal_pump::alarm::AlarmKind;
use thecal_pump::battery::{Battery, BatteryState};
use thecal_pump::command::{
    BridgeChoice, Command, CommandKind, FaultCode, Mode, Refusal, Response, StopReason,
};
use thecal_pump::core::BolusKind;
use thecal_pump::event::Event;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::dose::Admixture;
use thecal_rx::drug::DrugId;
use thecal_rx::schedule::Schedule;
use thecal_rx::{Duration, Instant, Volume};

// ----- typed log events (PUMP-030) ------------------------------------------------------

#[test]
fn stop_reasons_fault_codes_and_bolus_kinds_round_trip_through_their_codes_pump_030() {
    // The codes are the log's stable numbering: written by hand here, not derived.
    let reasons = [
        (1, StopReason::Procedure, "procedure"),
        (2, StopReason::AdverseEffect, "adverse effect"),
        (3, StopReason::EndOfTherapy, "end of therapy"),
        (4, StopReason::Other, "other"),
    ];
    for (code, reason, name) in reasons {
        assert_eq!(reason.code(), code);
        assert_eq!(StopReason::try_from(code), Ok(reason));
        assert_eq!(reason.name(), name);
    }
    let kinds = [
        (1, BolusKind::Clinician, "clinician"),
        (2, BolusKind::Priming, "priming"),
        (3, BolusKind::Bridge, "bridge"),
        (4, BolusKind::Patient, "patient"),
    ];
    for (code, kind, name) in kinds {
        assert_eq!(kind.code(), code);
        assert_eq!(BolusKind::try_from(code), Ok(kind));
        assert_eq!(kind.name(), name);
    }
    for (code, fault) in [
        (1, FaultCode::Memory),
        (2, FaultCode::Program),
        (3, FaultCode::Limiter),
        (4, FaultCode::FluidPath),
        (5, FaultCode::Reservoir),
        (6, FaultCode::Clock),
        (7, FaultCode::Arithmetic),
    ] {
        assert_eq!(fault.code(), code);
        assert_eq!(FaultCode::try_from(code), Ok(fault));
        assert!(!fault.name().is_empty());
    }
    // A code no value owns is an error naming the code, never a guess.
    for bad in [0u8, 5, 200] {
        assert_eq!(BolusKind::try_from(bad).map_err(|e| e.code), Err(bad));
    }
    assert!(StopReason::try_from(0).is_err());
    assert_eq!(FaultCode::try_from(8), Ok(FaultCode::ActionLost));
    assert!(FaultCode::try_from(9).is_err());
}

#[test]
fn logged_events_keep_their_typed_values_through_the_encoding_pump_030() {
    let events = [
        Event::Stopped {
            reason: StopReason::AdverseEffect,
        },
        Event::Fault {
            code: FaultCode::FluidPath,
        },
        Event::BolusStarted {
            kind: BolusKind::Bridge,
            volume: Volume::from_raw(10_000),
        },
        Event::BolusEnded {
            kind: BolusKind::Priming,
            delivered: Volume::from_raw(7),
        },
    ];
    for e in events {
        let mut buf = [0u8; thecal_pump::event::MAX_EVENT_LEN];
        let bytes = postcard::to_slice(&e, &mut buf).unwrap();
        let back: Event = postcard::from_bytes(bytes).unwrap();
        assert_eq!(back, e);
    }
}

// ----- elective replacement needs evidence (PUMP-031) -----------------------------------

const DAY: u64 = 86_400_000;

/// Drives a battery as the core does: a batch of `per_6h` strokes (one wake each) every
/// 6 h, the ERI alarm's hourly tone wakes once ERI is raised, and a wake at every
/// `next_check`. Returns the instants (ms) of ERI and EOS.
fn run_battery(capacity_uj: u64, per_6h: u32, until_days: u64) -> (Option<u64>, Option<u64>) {
    let mut profile = HardwareProfile::synchromed_class(20);
    profile.battery_uj = capacity_uj;
    let mut b = Battery::new(&profile, Instant::ZERO);
    let (mut eri, mut eos) = (None, None);
    let mut now = 0u64;
    let mut next_batch = 0u64;
    let note = |state: Option<BatteryState>,
                at: u64,
                eri: &mut Option<u64>,
                eos: &mut Option<u64>| match state {
        Some(BatteryState::ElectiveReplacement) => *eri = Some(at),
        Some(BatteryState::EndOfService) => {
            eri.get_or_insert(at);
            *eos = Some(at);
        }
        _ => {}
    };
    while now < until_days * DAY && eos.is_none() {
        let due = b.next_check(Instant::from_ms(now)).map(|t| t.ms());
        if let Some(due) = due.filter(|d| *d < next_batch) {
            now = due.max(now);
            let st = b.update(Instant::from_ms(now));
            note(st, now, &mut eri, &mut eos);
            continue;
        }
        now = next_batch;
        next_batch += DAY / 4;
        b.advance(Instant::from_ms(now));
        let tones = if b.state() == BatteryState::ElectiveReplacement {
            6
        } else {
            0
        };
        b.add_strokes(per_6h);
        b.add_wakes(per_6h + tones);
        let st = b.update(Instant::from_ms(now));
        note(st, now, &mut eri, &mut eos);
    }
    (eri, eos)
}

#[test]
fn a_small_battery_on_a_light_program_gets_no_eri_on_day_zero_pump_031() {
    // The battery-eri-eos scenario's pump: 1500 J, 0.1 mL/day of 250 nL strokes = 400
    // strokes a day = 100 per 6 h. By hand: quiescent 8 640 000 µJ/day + 400 × 2 540 µJ
    // = 9 656 000 µJ/day. The first-day assumption (15 520 000 µJ/day) gives
    // (1 500 000 000 − 131 120 640) / 15 520 000 = 88.2 days: under 90, an ERI on day 0
    // from no evidence. Measured: EOS after 1 368 879 360 / 9 656 000 = 141.8 days
    // (less the ERI tones), ERI about 90 days before it, near day 51.
    let (eri, eos) = run_battery(1_500_000_000, 100, 400);
    let (eri, eos) = (eri.unwrap(), eos.unwrap());
    assert!(
        eri >= DAY,
        "ERI raised on day {:.2}",
        eri as f64 / DAY as f64
    );
    let eos_days = eos as f64 / DAY as f64;
    assert!((eos_days - 141.5).abs() < 1.0, "EOS on day {eos_days:.2}");
    let gap = (eos - eri) as f64 / DAY as f64;
    assert!((90.0..92.0).contains(&gap), "ERI {gap:.3} days before EOS");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Over battery capacities and delivery rates: ERI comes at least 90 days (the
    /// labelled interval) before EOS and at most two days earlier than that, so never on
    /// a fresh battery with years left; and never before a day has been measured.
    #[test]
    fn eri_comes_at_least_90_days_before_eos_and_never_early_pump_031(
        capacity_j in 1_000u64..30_000,
        per_6h in 0u32..600,
    ) {
        let (eri, eos) = run_battery(capacity_j * 1_000_000, per_6h, 12 * 366);
        let (eri, eos) = (eri.unwrap(), eos.unwrap());
        prop_assume!(eos >= 92 * DAY);
        prop_assert!(eri >= DAY, "ERI on day {:.2}", eri as f64 / DAY as f64);
        let gap = (eos - eri) as f64 / DAY as f64;
        prop_assert!(gap >= 90.0, "ERI only {gap:.4} days before EOS");
        prop_assert!(gap <= 92.0, "ERI {gap:.2} days before EOS: early");
    }
}

// ----- no silence while no drug flows (PUMP-032, PUMP-033) -------------------------------

/// A running baclofen pump, 2000 mcg/mL at 0.5 mL/day, 20 mL.
fn baclofen(profile: HardwareProfile) -> Rig {
    let mut rig = Rig::new(profile);
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "20 mL",
        Schedule::continuous(q("0.5 mL/day")),
        None,
    );
    rig
}

/// Tones of `kind` sounded in `[from, to)`.
fn tones(rig: &Rig, kind: AlarmKind, from: Instant, to: Instant) -> Vec<Instant> {
    rig.sounds
        .iter()
        .filter(|(t, s)| s.kind == kind && *t >= from && *t < to)
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn an_acknowledged_stopped_reminder_sounds_again_every_hour_until_resumed_pump_032() {
    let mut rig = baclofen(HardwareProfile::synchromed_class(20));
    rig.ok(Command::Stop {
        reason: StopReason::Procedure,
    });
    rig.run_for(Duration::from_minutes(31));
    assert!(rig.pump.alarms().is_active(AlarmKind::StoppedReminder));
    rig.ok(Command::Acknowledge(AlarmKind::StoppedReminder));
    let acked = rig.now;
    rig.run_for(Duration::from_hours(6));
    // By hand: the default interval is 1 h, so the reminder sounds again at ack + 1 h
    // and, unacknowledged again, every hour after (medium priority): at +1 h … +5 h
    // within [ack, ack + 6 h), 5 tones.
    let again = tones(&rig, AlarmKind::StoppedReminder, acked, rig.now);
    assert_eq!(
        again.first().copied(),
        Some(acked.saturating_add(Duration::from_hours(1))),
        "an acknowledged stopped reminder stayed silent for 6 h: {again:?}"
    );
    assert_eq!(again.len(), 5, "{again:?}");
    // Resumed: the cause is gone, so nothing more sounds.
    rig.ok(Command::Resume);
    let resumed = rig.now.saturating_add(Duration::from_ms(1));
    rig.run_for(Duration::from_hours(3));
    assert!(tones(&rig, AlarmKind::StoppedReminder, resumed, rig.now).is_empty());
}

#[test]
fn the_reminder_interval_is_a_bounded_clinician_setting_pump_032() {
    let mut rig = baclofen(HardwareProfile::synchromed_class(20));
    for bad in [Duration::from_minutes(14), Duration::from_minutes(241)] {
        let r = rig.cmd(Command::SetReminderInterval { interval: bad });
        match r {
            Response::Refused(Refusal::Invalid(why)) => {
                assert!(why.contains("15 min to 4 h"), "{why}");
            }
            other => panic!("{bad:?} accepted: {other:?}"),
        }
    }
    let r = rig.cmd_as(
        thecal_pump::command::Role::PatientRemote,
        Command::SetReminderInterval {
            interval: Duration::from_minutes(30),
        },
    );
    assert!(matches!(r, Response::Refused(Refusal::NotPermitted { .. })));
    // A new pump reminds every hour; the status says so, and reads back the setting.
    assert_eq!(rig.pump.status().reminder_interval, Duration::from_hours(1));
    rig.ok(Command::SetReminderInterval {
        interval: Duration::from_minutes(15),
    });
    assert_eq!(
        rig.pump.status().reminder_interval,
        Duration::from_minutes(15)
    );
    rig.ok(Command::Stop {
        reason: StopReason::Other,
    });
    rig.run_for(Duration::from_minutes(31));
    rig.ok(Command::Acknowledge(AlarmKind::StoppedReminder));
    let acked = rig.now;
    rig.run_for(Duration::from_minutes(20));
    assert_eq!(
        tones(&rig, AlarmKind::StoppedReminder, acked, rig.now),
        vec![acked.saturating_add(Duration::from_minutes(15))]
    );
}

#[test]
fn an_acknowledged_empty_reservoir_sounds_again_at_the_interval_not_after_4_h_pump_032() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "1 mL",
        Schedule::continuous(q("0.5 mL/day")),
        None,
    );
    rig.run_for(Duration::from_days(3));
    assert!(rig.pump.alarms().is_active(AlarmKind::EmptyReservoir));
    rig.ok(Command::Acknowledge(AlarmKind::EmptyReservoir));
    let acked = rig.now;
    rig.run_for(Duration::from_minutes(61));
    // High priority re-armed only after 4 h before; the reminder interval is 1 h.
    let after_ack = acked.saturating_add(Duration::from_ms(1));
    assert_eq!(
        tones(&rig, AlarmKind::EmptyReservoir, after_ack, rig.now).first(),
        Some(&acked.saturating_add(Duration::from_hours(1))),
        "an acknowledged empty reservoir was silent for an hour"
    );
}

/// Empties a pump for an MRI scan: the residual is aspirated, nothing is added.
fn empty_for_mri(rig: &mut Rig) {
    let contents = rig.pump.program().contents.clone();
    let expected = rig.pump.status().reservoir;
    rig.ok(Command::Refill {
        aspirated: expected,
        added: Volume::ZERO,
        contents,
        keep_dose: false,
        bridge: BridgeChoice::None,
        confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
        beyond_use_utc_ms: None,
    });
}

#[test]
fn mri_mode_raises_the_stopped_reminder_and_it_sounds_again_after_acknowledgement_pump_032() {
    let mut rig = baclofen(HardwareProfile::prometra_class(20));
    rig.run_for(Duration::from_hours(1));
    empty_for_mri(&mut rig);
    rig.ok(Command::MriMode(true));
    assert_eq!(rig.pump.status().mode, Mode::MriSuspended);
    rig.ok(Command::Acknowledge(AlarmKind::MagnetMri));
    let acked = rig.now;
    rig.run_for(Duration::from_minutes(31));
    // The MRI-mode pump is left shut: the stopped reminder after its 30 min delay.
    assert!(
        rig.pump.alarms().is_active(AlarmKind::StoppedReminder),
        "a valve pump left in MRI mode never raised the stopped reminder"
    );
    rig.ok(Command::Acknowledge(AlarmKind::StoppedReminder));
    rig.run_for(Duration::from_minutes(30));
    // The acknowledged MRI alarm sounds again one interval (1 h) after its
    // acknowledgement.
    assert_eq!(
        tones(
            &rig,
            AlarmKind::MagnetMri,
            acked.saturating_add(Duration::from_ms(1)),
            rig.now
        ),
        vec![acked.saturating_add(Duration::from_hours(1))]
    );
    rig.ok(Command::MriMode(false));
    assert!(!rig.pump.alarms().is_active(AlarmKind::StoppedReminder));
    assert!(!rig.pump.alarms().is_active(AlarmKind::MagnetMri));
}

#[test]
fn stop_warnings_are_drug_specific_and_sourced_pump_033() {
    let w = |d: DrugId| d.stop_warning().unwrap();
    assert!(w(DrugId::Baclofen).value.contains("death"));
    assert!(w(DrugId::Baclofen).source.contains("Lioresal"));
    assert!(w(DrugId::Clonidine).value.contains("life-threatening"));
    for opioid in [
        DrugId::Morphine,
        DrugId::Hydromorphone,
        DrugId::Fentanyl,
        DrugId::Sufentanil,
    ] {
        assert!(w(opioid).value.contains("opioid withdrawal"), "{opioid}");
    }
    let z = w(DrugId::Ziconotide);
    assert!(z.value.contains("may be stopped abruptly"));
    assert!(z.source.contains("Prialt"));
    assert!(DrugId::Saline.stop_warning().is_none());
    assert!(DrugId::Bupivacaine.stop_warning().is_none());
}

// ----- valve-pump MRI mode needs an empty reservoir (PUMP-034) ---------------------------

#[test]
fn valve_pump_mri_mode_is_refused_with_a_full_reservoir_pump_034() {
    let mut rig = Rig::new(HardwareProfile::prometra_class(20));
    rig.start(
        DrugId::Morphine,
        "10 mg/mL",
        "20 mL",
        Schedule::continuous(q("0.2 mL/day")),
        None,
    );
    rig.run_for(Duration::from_hours(1));
    let r = rig.cmd(Command::MriMode(true));
    let Response::Refused(refusal) = &r else {
        panic!("MRI mode accepted with a full reservoir: {r:?}");
    };
    assert_eq!(refusal.code(), 25);
    match refusal {
        Refusal::MriReservoirNotEmpty { reservoir, limit } => {
            assert_eq!(*limit, Volume::from_nl(10_000));
            assert!(*reservoir > Volume::from_ml(19), "{reservoir}");
        }
        other => panic!("{other:?}"),
    }
    assert!(refusal.to_string().contains("empty it to"));
    assert_eq!(rig.pump.status().mode, Mode::Running);
    // An emergency scan: confirmed explicitly, and logged as its own command.
    rig.ok(Command::MriEmergency);
    assert_eq!(rig.pump.status().mode, Mode::MriSuspended);
    assert!(rig.events.iter().any(|e| matches!(
        e.event,
        Event::CommandAccepted { code, .. } if code == CommandKind::MriEmergency.code()
    )));
    rig.ok(Command::MriMode(false));
    // Emptied to the limit: MRI mode without an emergency.
    empty_for_mri(&mut rig);
    rig.ok(Command::MriMode(true));
    assert_eq!(rig.pump.status().mode, Mode::MriSuspended);
    // Only valve pumps have an MRI mode, emergency or not.
    let mut p = baclofen(HardwareProfile::synchromed_class(20));
    assert!(matches!(
        p.cmd(Command::MriEmergency),
        Response::Refused(Refusal::Invalid(_))
    ));
}

// ----- the refill date respects drug stability (PUMP-035) --------------------------------

/// A refill of `ml` of diluted ziconotide (5 mcg/mL) after aspirating the expected
/// residual, with an optional pharmacy beyond-use date.
fn refill_ziconotide(rig: &mut Rig, ml: &str, pharmacy: Option<u64>) -> Response {
    let expected = rig.pump.status().reservoir;
    rig.cmd(Command::Refill {
        aspirated: expected,
        added: q(ml),
        contents: Admixture::single(DrugId::Ziconotide, q("5 mcg/mL")),
        keep_dose: false,
        bridge: BridgeChoice::None,
        confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
        beyond_use_utc_ms: pharmacy,
    })
}

#[test]
fn next_refill_is_the_earlier_of_volume_and_drug_stability_pump_035() {
    const DAY_MS: u64 = 86_400_000;
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    // 5 mcg/mL at 0.1 mL/day = 0.5 mcg/day; 20 mL lasts about 180 days by volume.
    rig.start(
        DrugId::Ziconotide,
        "5 mcg/mL",
        "20 mL",
        Schedule::continuous(q("0.1 mL/day")),
        None,
    );
    // The first fill of a new pump: ziconotide is stable 14 days (Prialt label).
    let due = rig.pump.status().next_refill.unwrap();
    assert_eq!(
        due,
        Instant::from_ms(14 * DAY_MS),
        "next refill on day {:.1}, though ziconotide is stable 14 days in a new pump",
        due.ms() as f64 / DAY_MS as f64
    );
    rig.run_until(Instant::from_ms(10 * DAY_MS));
    // A later fill, diluted (5 mcg/mL is not a commercial strength): 40 days.
    assert_eq!(
        refill_ziconotide(&mut rig, "20 mL", None),
        Response::Accepted
    );
    assert_eq!(
        rig.pump.status().next_refill,
        Some(Instant::from_ms(50 * DAY_MS))
    );
    // Not refilled: the alarm comes when the beyond-use date passes, not before.
    rig.run_until(Instant::from_ms(50 * DAY_MS - 1));
    assert!(!rig.pump.alarms().is_active(AlarmKind::BeyondUseDate));
    rig.run_until(Instant::from_ms(50 * DAY_MS));
    assert!(rig.pump.alarms().is_active(AlarmKind::BeyondUseDate));
    // The pharmacy's date, earlier than the library's: it wins. It needs the clock.
    let r = refill_ziconotide(&mut rig, "20 mL", Some(rig::MONDAY_UTC_MS));
    assert!(
        matches!(&r, Response::Refused(Refusal::Invalid(w)) if w.contains("clock")),
        "{r:?}"
    );
    rig.set_clock();
    let r = refill_ziconotide(&mut rig, "20 mL", Some(rig::MONDAY_UTC_MS - 1));
    assert!(
        matches!(&r, Response::Refused(Refusal::Invalid(w)) if w.contains("has passed")),
        "{r:?}"
    );
    assert!(rig.pump.alarms().is_active(AlarmKind::BeyondUseDate));
    let pharmacy = rig::MONDAY_UTC_MS + 20 * DAY_MS;
    assert_eq!(
        refill_ziconotide(&mut rig, "20 mL", Some(pharmacy)),
        Response::Accepted
    );
    assert!(!rig.pump.alarms().is_active(AlarmKind::BeyondUseDate));
    assert_eq!(
        rig.pump.status().next_refill,
        Some(Instant::from_ms(70 * DAY_MS))
    );
}

// ----- a bolus's limiter allowance lasts while its delivery is counted (PUMP-036) -------

#[test]
fn a_long_clinician_bolus_is_not_vetoed_when_its_allowance_would_expire_pump_036() {
    let mut rig = baclofen(HardwareProfile::synchromed_class(20));
    rig.run_for(Duration::from_days(2));
    // 0.15 mL over 12 h on top of 0.5 mL/day: the limiter counts each part of the bolus
    // for 24 h after it is delivered, i.e. until 36 h after the start. An allowance that
    // ends 24 h after the start leaves the bolus counted against the basal limit:
    // 0.5 + 0.15 = 0.65 mL in the window, against (0.5 mL + 15 min of basal) × 1.1 +
    // 2 strokes ≈ 0.556 mL.
    rig.ok(Command::ClinicianBolus {
        volume: q("0.15 mL"),
        duration: Duration::from_hours(12),
    });
    rig.run_for(Duration::from_days(3));
    let vetoes = rig
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::LimiterVeto { .. }))
        .count();
    assert_eq!(vetoes, 0, "the basal after an allowed bolus was vetoed");
    assert!(!rig.pump.alarms().is_active(AlarmKind::LimiterVeto));
}

// ----- soft findings confirmed with a reason (PUMP-037) ----------------------------------

/// The reason logged for `command`, joined from its parts in log order.
fn logged_reasons(rig: &Rig, command: CommandKind) -> Vec<(u8, String)> {
    let mut out: Vec<(u8, String)> = Vec::new();
    for e in &rig.events {
        if let Event::SoftFindingConfirmed {
            command: c,
            findings,
            part,
            parts,
            text,
        } = e.event
        {
            if c != command.code() {
                continue;
            }
            assert!(part < parts && parts <= 3, "{:?}", e.event);
            if part == 0 {
                out.push((findings, String::new()));
            }
            out.last_mut().unwrap().1 += text.as_str().unwrap();
        }
    }
    out
}

#[test]
fn a_confirmed_soft_finding_and_its_reason_are_logged_with_the_change_pump_038() {
    let mut rig = baclofen(HardwareProfile::synchromed_class(20));
    rig.run_for(Duration::from_days(2));
    // A baclofen cut from 0.5 to 0.3 mL/day (1000 to 600 mcg/day, 40 %) is beyond the
    // 20 % step: a soft finding (withdrawal risk) that needs a confirmed reason.
    let cut = |confirm_soft| Command::Program {
        prescription: thecal_rx::check::Prescription {
            contents: Admixture::single(DrugId::Baclofen, q("2000 mcg/mL")),
            schedule: Schedule::continuous(q("0.3 mL/day")),
            patient_bolus: None,
            reservoir_volume: q("20 mL"),
        },
        confirm_soft,
    };
    // The rig's own start confirmed its first program ("confirmed in the test").
    let before = logged_reasons(&rig, CommandKind::Program);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].1, "confirmed in the test");
    let parts_before = rig
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::SoftFindingConfirmed { .. }))
        .count();
    match rig.cmd(cut(None)) {
        Response::Refused(Refusal::Prescription { hard: false, .. }) => {}
        other => panic!("an unconfirmed cut must be refused as soft: {other:?}"),
    }
    assert_eq!(logged_reasons(&rig, CommandKind::Program), before);
    // 61 bytes with a two-byte character: three parts (26 + 26 + 9 bytes at most).
    let reason = "sedation after dose rise; cut agreed with Dr Müller, 2 steps";
    assert_eq!(reason.len(), 61);
    let r = thecal_pump::command::SoftReason::new(reason).unwrap();
    let version = rig.pump.status().program_version;
    rig.ok(cut(Some(r)));
    assert_eq!(rig.pump.status().program_version, version + 1);
    let logged = logged_reasons(&rig, CommandKind::Program);
    assert_eq!(logged.len(), 2, "{:?}", rig.events);
    assert_eq!(logged[1].1, reason);
    assert!(logged[1].0 >= 1, "the pump counted the soft finding(s)");
    let parts = rig
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::SoftFindingConfirmed { .. }))
        .count();
    assert_eq!(parts - parts_before, 3);

    // A flagged reconciliation confirmed with a reason: 0 mL aspirated where the pump
    // expects drug always flags; the reason is logged with the refill.
    let refill = |confirm| Command::Refill {
        aspirated: Volume::ZERO,
        added: q("20 mL"),
        contents: Admixture::single(DrugId::Baclofen, q("2000 mcg/mL")),
        keep_dose: false,
        bridge: BridgeChoice::None,
        confirm,
        beyond_use_utc_ms: None,
    };
    assert!(matches!(
        rig.cmd(refill(None)),
        Response::Refused(Refusal::Reconciliation(_))
    ));
    let why =
        thecal_pump::command::SoftReason::new("needle in a side port; residual lost").unwrap();
    rig.ok(refill(Some(why)));
    let logged = logged_reasons(&rig, CommandKind::Refill);
    assert_eq!(
        logged.len(),
        2,
        "the rig's first fill and this one: {logged:?}"
    );
    assert_eq!(logged[1].1, "needle in a side port; residual lost");
    assert!(logged[1].0 >= 1, "the flagged reconciliation counts");

    // The log still verifies end to end, and the entries survived the rig's restarts.
    assert!(thecal_pump::log::verify(&rig.events, None).is_ok());
}

#[test]
fn a_reason_is_1_to_64_bytes_of_utf8_and_splits_at_character_boundaries_pump_038() {
    use thecal_pump::command::{ReasonError, SOFT_REASON_MAX, SoftReason};
    assert_eq!(SOFT_REASON_MAX, 64);
    assert_eq!(SoftReason::new("  \t "), Err(ReasonError::Empty));
    assert_eq!(
        SoftReason::new(&"x".repeat(65)),
        Err(ReasonError::TooLong { len: 65 })
    );
    assert!(
        ReasonError::TooLong { len: 65 }
            .to_string()
            .contains("at most 64 bytes"),
    );
    // Surrounding white space is not part of the reason.
    assert_eq!(SoftReason::new(" ok ").unwrap().as_str(), "ok");
    // 16 four-byte characters (64 bytes): parts of 24, 24 and 16 bytes, never a
    // character cut in two.
    let emoji = "😀".repeat(16);
    let r = SoftReason::new(&emoji).unwrap();
    let parts = Event::soft_confirmation(2, 1, &r);
    let lens: Vec<usize> = parts
        .iter()
        .map(|e| match e {
            Event::SoftFindingConfirmed { text, .. } => text.as_str().unwrap().len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(lens, [24, 24, 16]);
    // A short reason takes one entry.
    assert_eq!(
        Event::soft_confirmation(3, 0, &SoftReason::new("first fill").unwrap()).len(),
        1
    );
}
