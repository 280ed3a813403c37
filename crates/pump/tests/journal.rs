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

/// PUMP-049: a pump restored in place (`Pump::restore_into`, as the firmware restores
/// its static `Pump` at every power-on) keeps nothing of what it held: restored over a
/// running pump with another program, a stroke in flight and a full queue, it is the
/// pump restored into an unpowered one (or one placed with `Pump::place`), field for
/// field (its whole `Debug` form), from
/// a journal with a checkpoint and stroke records, a blank memory (which is exactly
/// `Pump::new`), a garbage memory, one too short, and a checkpoint whose CRC checks but
/// whose body is not the state.
#[test]
fn restoring_in_place_keeps_nothing_of_the_pump_it_overwrites_pump_049() {
    let mut rig = flex_baclofen();
    rig.run_for(Duration::from_hours(7));
    let r = rig.cmd_as(Role::PatientRemote, Command::PatientBolus { request_id: 1 });
    assert!(matches!(r, Response::BolusAccepted { .. }), "{r:?}");
    rig.run_for(Duration::from_hours(1));
    let journal = rig.mem.bytes().to_vec();
    let now = rig.now;

    // A pump that held something else: another rig's, mid-therapy, its queue unread.
    let dirty = || {
        let mut other = flex_baclofen();
        other.run_for(Duration::from_hours(3));
        other.pump.handle_timeout(other.now);
        other.pump
    };
    let blank = vec![0xFF; DEFAULT_PAGES * PAGE_SIZE];
    let mut garbage = blank.clone();
    for (i, b) in garbage.iter_mut().enumerate().take(3 * PAGE_SIZE) {
        *b = (i % 251) as u8;
    }
    // A record whose header and CRC check, written by the record codec, holding a
    // value that is not the state: its body does not decode.
    let mut undecodable = blank.clone();
    let mut fake = vec![0u8; 64];
    let len = thecal_pump::persist::encode_record(1, &7u8, &mut fake).unwrap();
    undecodable[..len].copy_from_slice(&fake[..len]);
    let short = vec![0xFF; PAGE_SIZE];
    let memories: [(&str, &[u8]); 5] = [
        ("journal", &journal),
        ("blank", &blank),
        ("garbage", &garbage),
        ("undecodable", &undecodable),
        ("short", &short),
    ];
    for (name, memory) in memories {
        let mut clean = Pump::unpowered(rig.profile);
        clean.restore_into(rig.profile, memory, now);
        let mut over = dirty();
        over.restore_into(rig.profile, memory, now);
        assert_eq!(format!("{over:?}"), format!("{clean:?}"), "{name}");
        let by_value = Pump::restore(rig.profile, memory, now);
        assert_eq!(format!("{by_value:?}"), format!("{clean:?}"), "{name}");
        let mut slot = std::mem::MaybeUninit::uninit();
        let placed = Pump::place(&mut slot, rig.profile);
        assert_eq!(
            format!("{placed:?}"),
            format!("{:?}", Pump::unpowered(rig.profile)),
            "{name}"
        );
        placed.restore_into(rig.profile, memory, now);
        assert_eq!(format!("{placed:?}"), format!("{clean:?}"), "{name}");
    }
    // The blank memory gives the factory-fresh pump, built another way.
    let mut over = dirty();
    over.restore_into(rig.profile, &blank, now);
    let new = Pump::new(rig.profile, now);
    assert_eq!(format!("{over:?}"), format!("{new:?}"));
    // The journal's pump is the running one.
    let mut over = dirty();
    over.restore_into(rig.profile, &journal, now);
    assert_same(&over, &rig.pump, "restored in place");
}
