//! The catheter record (PUMP-037): priming and bridging use the implanted catheter's
//! volume — model, length after trimming, pump segment — recorded at implant and at each
//! revision, never a constant of the pump model. Hand-worked examples on a
//! SynchroMed-class pump (130 uL internal path, 250 nL strokes).

#![allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod rig;

use rig::{Rig, q};
use thecal_pump::catheter::{self, CUSTOM_MODEL, CatheterRecord};
use thecal_pump::command::{BridgeChoice, Command, Refusal, Response, StopReason};
use thecal_pump::core::BolusKind;
use thecal_pump::event::Event;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::dose::Admixture;
use thecal_rx::drug::DrugId;
use thecal_rx::schedule::Schedule;
use thecal_rx::{Duration, Volume};

const STROKE_NL: u64 = 250;

/// The catalogue's two-piece catheter (2.2 uL per cm, 20 uL pump segment) trimmed to
/// `cm` centimetres.
fn two_piece(cm: u16) -> CatheterRecord {
    CatheterRecord::of_model(catheter::model(1).unwrap(), cm * 10)
}

fn stop(rig: &mut Rig) {
    rig.ok(Command::Stop {
        reason: StopReason::Procedure,
    });
}

/// The priming bolus volume the pump chose (from its log).
fn priming_volume(rig: &Rig) -> Option<Volume> {
    rig.events.iter().rev().find_map(|e| match e.event {
        Event::BolusStarted {
            kind: BolusKind::Priming,
            volume,
        } => Some(volume),
        _ => None,
    })
}

#[test]
fn priming_is_refused_until_a_catheter_is_recorded_pump_037() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.start(
        DrugId::Ziconotide,
        "25 mcg/mL",
        "20 mL",
        Schedule::continuous(q("0.1 mL/day")),
        None,
    );
    let r = rig.cmd(Command::PrimingBolus { duration: q("1 h") });
    assert_eq!(
        r,
        Response::Refused(Refusal::NoCatheter),
        "a priming bolus without a catheter record was {r:?}"
    );
    assert!(
        Refusal::NoCatheter
            .to_string()
            .contains("program the catheter record")
    );
    // Recording needs a stopped pump: the fluid path changes.
    let r = rig.cmd(Command::SetCatheter(two_piece(45)));
    assert!(
        matches!(&r, Response::Refused(Refusal::Invalid(m)) if m.contains("stop the pump")),
        "{r:?}"
    );
    stop(&mut rig);
    rig.ok(Command::SetCatheter(two_piece(45)));
    assert_eq!(rig.pump.status().catheter, Some(two_piece(45)));
    // 130 uL of pump path and 45 cm x 2.2 uL/cm + 20 uL = 119 uL of catheter.
    assert_eq!(rig.pump.dead_volume(), Volume::from_nl(249_000));
    // The status carries them, for a programmer's review of a priming bolus.
    let s = rig.pump.status();
    assert_eq!(s.pump_path, Volume::from_nl(130_000));
    assert_eq!(s.dead_volume, Volume::from_nl(249_000));
    // No stroke has moved the ziconotide into the path yet: all of it is ahead.
    assert_eq!(s.ahead_of_drug, Volume::from_nl(249_000));
    assert!(rig.events.iter().any(|e| e.event
        == Event::CatheterSet {
            revision: false,
            model: 1,
            length_mm: 450,
            volume: Volume::from_nl(119_000),
        }));
    rig.ok(Command::Resume);
    rig.ok(Command::PrimingBolus { duration: q("1 h") });
    // The record survives a power cut.
    rig.restart();
    assert_eq!(rig.pump.status().catheter, Some(two_piece(45)));
    assert_eq!(rig.pump.dead_volume(), Volume::from_nl(249_000));
}

#[test]
fn priming_volumes_for_a_45_cm_and_a_90_cm_catheter_pump_037() {
    // Ziconotide 25 mcg/mL at 0.1 mL/day; priming over 1 h. The basal runs during the
    // priming: 0.1 mL/day for 1 h is 100 000 / 24 = 4166.7 nL, so the bolus is what the
    // basal leaves of the dead volume:
    //   45 cm: 130 + 99 + 20 = 249 uL dead volume -> 249 000 - 4 166 = 244 834 nL;
    //   90 cm: 130 + 198 + 20 = 348 uL dead volume -> 348 000 - 4 166 = 343 834 nL.
    for (cm, dead_nl, bolus_nl) in [(45, 249_000, 244_834), (90, 348_000, 343_834)] {
        let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
        rig.ok(Command::SetCatheter(two_piece(cm)));
        rig.start(
            DrugId::Ziconotide,
            "25 mcg/mL",
            "20 mL",
            Schedule::continuous(q("0.1 mL/day")),
            None,
        );
        // Nothing of the drug is in the path yet: the whole dead volume is ahead of it.
        assert_eq!(rig.pump.status().ahead_of_drug, Volume::from_nl(dead_nl));
        rig.ok(Command::PrimingBolus { duration: q("1 h") });
        let got = priming_volume(&rig).unwrap().raw();
        assert!(
            got.abs_diff(bolus_nl) <= 1,
            "priming volume {got} nL for a {cm} cm catheter ({bolus_nl} expected)"
        );
        let t = rig.now;
        rig.run_for(Duration::from_minutes(60));
        // Priming and basal together fill exactly the dead volume, and no drug reached
        // the patient during the priming (at most one stroke's worth at the end).
        let delivered = rig.pump.delivered().raw();
        assert!(
            delivered.abs_diff(dead_nl) <= STROKE_NL,
            "{cm} cm: {delivered} nL delivered while priming ({dead_nl} expected)"
        );
        let during = rig.tip_mass(DrugId::Ziconotide, t, rig.now);
        assert!(
            during <= 25 * STROKE_NL / 1000,
            "{cm} cm: {during} ng early"
        );
        rig.run_for(Duration::from_minutes(10));
        assert!(
            rig.pump
                .fluid()
                .volume_until(&rig.pump.program().contents)
                .is_zero(),
            "{cm} cm: the drug has not reached the tip after priming"
        );
    }
}

/// Baclofen 500 mcg/mL at 1 mL/day, primed, two days; then a refill with 2000 mcg/mL
/// keeping the dose with automatic bridging. Returns how long the bridging lasted.
fn bridging_after(rig: &mut Rig) -> Duration {
    rig.ok(Command::PrimingBolus { duration: q("1 h") });
    rig.run_for(Duration::from_days(2));
    let residual = rig.pump.status().reservoir;
    rig.ok(Command::Refill {
        aspirated: residual,
        added: q("20 mL"),
        contents: Admixture::single(DrugId::Baclofen, q("2000 mcg/mL")),
        keep_dose: true,
        bridge: BridgeChoice::Automatic,
        confirm: thecal_pump::command::SoftReason::new("reconciled in the test").ok(),
        beyond_use_utc_ms: None,
    });
    assert!(rig.pump.status().bridging);
    let start = rig.now;
    while rig.pump.status().bridging {
        rig.run_for(Duration::from_secs(10));
        assert!(rig.now.saturating_since(start) < Duration::from_days(2));
    }
    rig.now.saturating_since(start)
}

fn baclofen(rig: &mut Rig) {
    rig.start(
        DrugId::Baclofen,
        "500 mcg/mL",
        "20 mL",
        Schedule::continuous(q("1 mL/day")),
        None,
    );
}

#[test]
fn a_catheter_revision_changes_bridging_pump_037() {
    // Automatic bridging pushes the old fluid out at its own rate (1 mL/day) until the
    // new fluid reaches the tip: the bridge lasts dead volume / 1 mL/day.
    //   45 cm: 249 uL -> 0.249 day = 5 h 58.6 min;
    //   revised to 90 cm: 348 uL -> 0.348 day = 8 h 21.1 min.
    let mut short = Rig::new(HardwareProfile::synchromed_class(20));
    short.ok(Command::SetCatheter(two_piece(45)));
    baclofen(&mut short);
    let a = bridging_after(&mut short);

    let mut revised = Rig::new(HardwareProfile::synchromed_class(20));
    revised.ok(Command::SetCatheter(two_piece(45)));
    baclofen(&mut revised);
    revised.ok(Command::PrimingBolus { duration: q("1 h") });
    revised.run_for(Duration::from_days(1));
    stop(&mut revised);
    revised.ok(Command::SetCatheter(two_piece(90)));
    assert!(revised.events.iter().any(|e| e.event
        == Event::CatheterSet {
            revision: true,
            model: 1,
            length_mm: 900,
            volume: Volume::from_nl(218_000),
        }));
    // The new catheter holds no drug: 218 uL of saline ahead of the drug.
    assert_eq!(
        revised
            .pump
            .fluid()
            .volume_until(&revised.pump.program().contents),
        Volume::from_nl(218_000)
    );
    revised.ok(Command::Resume);
    let b = bridging_after(&mut revised);

    // Each within 0.5 % of its hand-worked length (the bridge ends at the stroke that
    // pushes the last old fluid; the loop looks every 10 s).
    let within = |got: Duration, want_s: u64| got.ms().abs_diff(want_s * 1000) <= want_s * 5;
    // 0.249 day = 21 513.6 s; 0.348 day = 30 067.2 s.
    assert!(within(a, 21_514), "45 cm: bridging lasted {a}");
    assert!(
        within(b, 30_067),
        "revised to 90 cm: bridging lasted {b} (the catheter's volume was not used)"
    );
    // The revision added 99 uL: 0.099 day = 8 553.6 s more, within two strokes (21.6 s
    // each at 1 mL/day) and the 10 s look.
    let extra = b.ms() as i64 - a.ms() as i64;
    assert!(
        (extra - 8_553_600).abs() <= 2 * 21_600 + 10_000,
        "the 99 uL longer catheter bridged {extra} ms longer (8 553 600 expected)"
    );
}

#[test]
fn a_record_out_of_range_is_refused_with_what_is_allowed_pump_037() {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    let too_long = CatheterRecord {
        model: CUSTOM_MODEL,
        volume_per_cm: Volume::from_nl(2_000),
        length_mm: 1_501,
        pump_segment: Volume::ZERO,
    };
    match rig.cmd(Command::SetCatheter(too_long)) {
        Response::Refused(Refusal::Invalid(m)) => assert!(m.contains("5 cm to 150 cm"), "{m}"),
        other => panic!("a 150.1 cm catheter was {other:?}"),
    }
    assert_eq!(rig.pump.status().catheter, None);
    // Nothing changed: the nominal catheter of the profile is still assumed.
    assert_eq!(
        rig.pump.dead_volume(),
        HardwareProfile::synchromed_class(20).dead_volume()
    );
}

#[test]
fn priming_is_refused_while_the_catheter_holds_an_earlier_fill_pump_037() {
    // Baclofen 500 mcg/mL fills the 249 uL path; a refill with 2000 mcg/mL and no
    // bridging leaves 249 uL of the old fill ahead of the new. A priming bolus would push
    // 124.5 mcg of baclofen into the CSF within the hour: it is refused.
    let mut rig = Rig::new(HardwareProfile::synchromed_class(20));
    rig.ok(Command::SetCatheter(two_piece(45)));
    baclofen(&mut rig);
    rig.ok(Command::PrimingBolus { duration: q("1 h") });
    rig.run_for(Duration::from_days(1));
    let residual = rig.pump.status().reservoir;
    rig.ok(Command::Refill {
        aspirated: residual,
        added: q("20 mL"),
        contents: Admixture::single(DrugId::Baclofen, q("2000 mcg/mL")),
        keep_dose: true,
        bridge: BridgeChoice::None,
        confirm: thecal_pump::command::SoftReason::new("reconciled in the test").ok(),
        beyond_use_utc_ms: None,
    });
    let r = rig.cmd(Command::PrimingBolus { duration: q("1 h") });
    assert!(
        matches!(&r, Response::Refused(Refusal::Invalid(m)) if m.contains("bolus speed")),
        "a priming bolus over an earlier fill was {r:?}"
    );
}

#[test]
fn a_path_read_as_segments_rebuilds_the_same_path_and_bad_readings_are_named_pump_039() {
    use thecal_pump::fluid::FluidPath;
    use thecal_pump::reading::{PathSegment, ReadingError, SegmentFluid};
    use thecal_rx::dose::Admixture;
    use thecal_rx::drug::DrugId;
    use thecal_rx::{Concentration, Volume};

    // 250 uL: 200 uL of baclofen 500 mcg/mL at the tip, 50 uL of 2000 mcg/mL behind.
    let old = Admixture::single(DrugId::Baclofen, Concentration::from_raw(500_000));
    let new = Admixture::single(DrugId::Baclofen, Concentration::from_raw(2_000_000));
    let mut path = FluidPath::new(Volume::from_ul(250), &old).unwrap();
    path.push(Volume::from_ul(50), &new).unwrap();
    let segments = path.read_segments().unwrap();
    assert_eq!(segments.len(), 2);
    assert_eq!(segments[0].volume, Volume::from_ul(200));
    assert_eq!(segments[0].fluid, SegmentFluid::Fluid(old.clone()));
    assert_eq!(segments[1].volume, Volume::from_ul(50));
    let rebuilt = FluidPath::from_segments(Volume::from_ul(250), &segments).unwrap();
    // By hand: 200 uL × 500 mcg/mL = 100 mcg, 50 uL × 2000 mcg/mL = 100 mcg.
    assert_eq!(rebuilt.mass_in_path(DrugId::Baclofen).raw(), 200_000);
    assert_eq!(rebuilt.volume_until(&new), Volume::from_ul(200));
    // The next 200 uL pushed deliver the old fluid's 100 mcg, in both.
    let a = path.clone().push(Volume::from_ul(200), &new).unwrap();
    let b = rebuilt.clone().push(Volume::from_ul(200), &new).unwrap();
    assert_eq!(a.mass_of(DrugId::Baclofen).raw(), 100_000);
    assert_eq!(a, b);

    // Segments that do not add up to the dead volume, an empty one: named.
    let e = FluidPath::from_segments(Volume::from_ul(300), &segments).unwrap_err();
    assert_eq!(
        e,
        ReadingError::VolumeMismatch {
            segments: Volume::from_ul(250),
            dead_volume: Volume::from_ul(300)
        }
    );
    assert!(e.to_string().contains("must add up to it"), "{e}");
    let mut empty = segments.to_vec();
    empty.insert(
        1,
        PathSegment {
            volume: Volume::ZERO,
            fluid: SegmentFluid::Fluid(new.clone()),
        },
    );
    assert_eq!(
        FluidPath::from_segments(Volume::from_ul(250), &empty).unwrap_err(),
        ReadingError::EmptySegment { segment: 1 }
    );
    let many: Vec<PathSegment> = (0..17)
        .map(|_| PathSegment {
            volume: Volume::from_ul(1),
            fluid: SegmentFluid::Fluid(new.clone()),
        })
        .collect();
    assert_eq!(
        FluidPath::from_segments(Volume::from_ul(17), &many).unwrap_err(),
        ReadingError::TooManySegments { count: 17 }
    );
}
