//! The journal in NOR flash, through the whole core (PUMP-045..PUMP-049): what a stroke
//! writes, what a restart replays, and the wear of the pages.
#![allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod rig;

use rig::{Op, Rig, q};
use thecal_pump::command::{Command, Response, Role};
use thecal_pump::core::Pump;
use thecal_pump::journal::{DEFAULT_PAGES, DELTA_LEN, PAGE_SIZE};
use thecal_pump::limiter::Window;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::check::PatientBolus;
use thecal_rx::drug::DrugId;
use thecal_rx::schedule::{DayProfile, Schedule, Step};
use thecal_rx::{Duration, Volume};

fn flex_baclofen() -> Rig {
    let mut rig = Rig::new(HardwareProfile::synchromed_class(40));
    rig.set_clock();
    let step = |h: u16, ul_per_day: u32| Step {
        start_minute: h * 60,
        flow: q(&format!("{ul_per_day} uL/day")),
    };
    let day = DayProfile::new(&[step(0, 300), step(6, 600), step(9, 400)]).unwrap();
    rig.start(
        DrugId::Baclofen,
        "2000 mcg/mL",
        "40 mL",
        Schedule::daily(day),
        Some(PatientBolus {
            volume: q("10 uL"),
            duration: q("10 min"),
            lockout: q("3 h"),
            max_per_day: 3,
        }),
    );
    rig
}

/// Every figure a restart must keep, of a pump restored from the memory and of the
/// running pump, side by side.
fn assert_same(restored: &Pump, live: &Pump, at: &str) {
    let now = live.status().now;
    assert_eq!(restored.strokes(), live.strokes(), "{at}: strokes");
    assert_eq!(restored.delivered(), live.delivered(), "{at}: delivered");
    assert_eq!(
        restored.status().reservoir,
        live.status().reservoir,
        "{at}: reservoir"
    );
    assert_eq!(restored.fluid(), live.fluid(), "{at}: fluid path");
    assert_eq!(
        restored.ideal_delivered(),
        live.ideal_delivered(),
        "{at}: ideal"
    );
    for w in [Window::Hour, Window::Day] {
        assert_eq!(
            restored.limiter().delivered(now, DrugId::Baclofen, w),
            live.limiter().delivered(now, DrugId::Baclofen, w),
            "{at}: limiter window {w:?}"
        );
    }
    assert_eq!(restored.program(), live.program(), "{at}: program");
}

/// PUMP-046 / PUMP-047: the stroke records replayed on their checkpoint give back the
/// running pump's counters, fluid path, accrual and limiter windows, exactly, after
/// every one of hundreds of strokes of a flex program with a patient bolus.
#[test]
fn a_restart_after_any_stroke_record_restores_the_running_state_pump_046_pump_047() {
    let mut rig = flex_baclofen();
    rig.run_for(Duration::from_hours(5));
    let r = rig.cmd_as(Role::PatientRemote, Command::PatientBolus { request_id: 1 });
    assert!(matches!(r, Response::BolusAccepted { .. }), "{r:?}");
    let mut checked = 0;
    // Stroke by stroke through the bolus and the basal around it.
    for _ in 0..300 {
        let Some(t) = rig.pump.poll_timeout() else {
            break;
        };
        rig.now = t;
        rig.pump.handle_timeout(t);
        rig.drain();
        let restored = Pump::restore(rig.profile, rig.mem.bytes(), rig.now);
        assert_same(&restored, &rig.pump, &format!("wake at {t:?}"));
        checked += 1;
    }
    assert_eq!(checked, 300);
}

/// PUMP-046: in steady therapy a stroke writes one stroke record of at most 32 bytes; the
/// checkpoints that open pages add a few bytes per stroke on average, and pages are
/// erased in turn.
#[test]
fn a_stroke_writes_at_most_32_bytes_on_average_pump_046() {
    // 24 mL/day: the fastest rate of the class, about 96,000 strokes a day.
    let mut rig = Rig::new(HardwareProfile::synchromed_class(40));
    rig.set_clock();
    rig.start(
        DrugId::Baclofen,
        "50 mcg/mL",
        "40 mL",
        Schedule::continuous(q("24 mL/day")),
        None,
    );
    rig.run_for(Duration::from_hours(1));
    rig.record_writes = true;
    let moved = rig.strokes_moved;
    rig.run_for(Duration::from_hours(6));
    let strokes = (rig.strokes_moved - moved) as usize;
    assert!(strokes > 20_000, "{strokes} strokes");
    let programmed: usize = rig
        .writes
        .iter()
        .filter(|w| matches!(w.op, Op::Program(..)))
        .map(|w| w.op.len())
        .sum();
    let small = rig
        .writes
        .iter()
        .filter(|w| matches!(&w.op, Op::Program(_, b) if b.len() == DELTA_LEN))
        .count();
    let erases = rig
        .writes
        .iter()
        .filter(|w| matches!(w.op, Op::Erase(_)))
        .count();
    const { assert!(DELTA_LEN <= 32) };
    assert!(
        programmed <= 32 * strokes,
        "{programmed} bytes for {strokes} strokes"
    );
    // Nearly every stroke wrote only its stroke record.
    assert!(small * 100 >= strokes * 95, "{small} of {strokes}");
    // A page is erased for every page's worth of records, never more.
    assert!(
        erases <= programmed / (PAGE_SIZE / 2) + 1,
        "{erases} erases"
    );
    // Every page of the ring is worn within one erase of the others (wear levelling).
    let e = rig.mem.erases();
    let (lo, hi) = (e.iter().min().unwrap(), e.iter().max().unwrap());
    assert!(hi - lo <= 1, "{e:?}");
    assert_eq!(e.len(), DEFAULT_PAGES);
    // 6 h at 24 mL/day.
    assert!(rig.pump.delivered() > Volume::from_nl(6_000_000));
}
