//! LINK-005: the battery against floods and jamming — handshake flood, bolus flood,
//! jamming, the daily budget — with therapy unaffected.

use super::*;
use thecal_pump::alarm::AlarmKind;

/// A world whose implant has the typical radio costs and back-off.
fn typical_world(policy: RadioPolicy) -> World {
    let mut w = World::new();
    let registry = w.implant.implant.registry().clone();
    w.implant = Implanted::with_radio(keys(99), registry, Radio::new(RadioCosts::TYPICAL, policy));
    w
}

/// Basal delivered over `d` by a pump set up like the world's, without any radio.
fn basal_alone(d: Duration) -> u64 {
    let mut quiet = World::new();
    quiet.set_up();
    let before = quiet.fw().pump.delivered().raw();
    quiet.fw().run_for(d);
    quiet.fw().pump.delivered().raw() - before
}

#[test]
fn a_handshake_flood_for_a_day_costs_under_one_percent_of_the_budget_link_005() {
    let mut w = typical_world(RadioPolicy::TYPICAL);
    w.set_up();
    // A genuine hello of the remote, recorded for replay.
    let start = w.air.transcript().len();
    w.connect(Who::Remote);
    let recorded = w.air.transcript()[start].1.clone();
    let spent_before = w.implant.implant.radio().stats().spent_total_uj;
    let delivered_before = w.fw().pump.delivered().raw();
    let budget = w.implant.implant.radio().policy().daily_budget_uj;

    // For a simulated day the attacker sends ten hellos a second: random bytes, hellos
    // claiming the remote's key id with a forged tag, and the recorded genuine hello.
    let mut rng = XorShift(0xfeed_beef_1234_5678);
    let mut sent = 0u64;
    let step = Duration::from_ms(100);
    let day_end = w.fw().now.saturating_add(Duration::from_hours(24));
    while w.fw().now < day_end {
        let frame = match sent % 3 {
            0 => rng.bytes(128),
            1 => {
                let mut f = recorded.clone();
                let n = f.len();
                f[n - 1] ^= 1 + (rng.next() as u8 % 255);
                f[8..16].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
                f
            }
            _ => recorded.clone(),
        };
        w.air.inject(Dir::ToImplant, &frame);
        w.implant.serve(&mut w.air);
        sent += 1;
        w.fw().run_for(step);
    }
    let outcomes = w.implant.take_outcomes();
    assert_eq!(outcomes.len() as u64, sent);
    // Random bytes go to the remote's session and are rejected there; hellos are denied.
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Denied(_) | Outcome::Rejected(_))),
        "every flood frame is refused"
    );
    let heard = outcomes
        .iter()
        .filter(|o| {
            !matches!(
                o,
                Outcome::Denied(Denied::Deaf(_)) | Outcome::Rejected(LinkError::NotListening)
            )
        })
        .count();
    let stats = *w.implant.implant.radio().stats();
    let spent = stats.spent_total_uj - spent_before;
    // 864,000 frames sent; the receiver, backing off to one listen in ten minutes, heard
    // about 150 of them, each costing its reception and at most one keyed hash.
    std::eprintln!(
        "handshake flood: {sent} frames sent in 24 h, {heard} heard, {spent} uJ spent \
         ({:.3} % of the daily budget)",
        spent as f64 * 100.0 / budget as f64
    );
    assert_eq!(sent, 864_000);
    assert!(heard < 200, "{heard} frames heard");
    assert!(
        spent * 100 <= budget,
        "the flood cost {spent} uJ, more than 1 % of the {budget} uJ budget"
    );
    assert_eq!(stats.handshakes, 2, "no public-key work for the flood");
    assert!(!w.implant.implant.radio().asleep());
    // Therapy was not touched: the day's basal is what a pump without a radio delivers.
    let delivered = w.fw().pump.delivered().raw() - delivered_before;
    let stroke = HardwareProfile::synchromed_class(20).stroke_volume.raw();
    let alone = basal_alone(Duration::from_hours(24));
    assert!(
        delivered.abs_diff(alone) <= stroke,
        "{delivered} vs {alone}"
    );
    // The flood left a bounded trace in the log.
    let denials = w
        .fw()
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::HandshakeDenied { .. }))
        .count();
    assert!((10..=60).contains(&denials), "{denials} denial entries");
    // The clinician's wand ends the back-off at once.
    let now = w.fw().now;
    w.implant
        .implant
        .proximity_wake(now, &mut w.implant.fw.pump);
    w.connect(Who::Clinician);
}

#[test]
fn a_forged_hello_costs_no_public_key_work_link_005() {
    let mut w = typical_world(RadioPolicy::TYPICAL);
    let costs = RadioCosts::TYPICAL;
    let start = w.air.transcript().len();
    w.connect(Who::Remote);
    let mut hello = w.air.transcript()[start].1.clone();
    let before = w.implant.implant.radio().stats().spent_total_uj;
    // The same hello with a fresh counter but no valid tag: one hash, no X25519.
    hello[8] = hello[8].wrapping_add(1);
    w.air.inject(Dir::ToImplant, &hello);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Denied(Denied::PreAuth { key_id: REMOTE_ID })]
    );
    let spent = w.implant.implant.radio().stats().spent_total_uj - before;
    assert_eq!(spent, costs.frame(hello.len()) + costs.preauth_uj);
    assert!(spent < costs.handshake_uj / 4);
    let stats = w.implant.implant.radio().stats();
    assert_eq!(stats.frames_rejected, 1);
    assert_eq!(stats.rejected_uj, costs.frame(hello.len()));
}

#[test]
fn a_bolus_flood_for_a_day_gets_only_what_lockout_and_daily_count_allow_link_005() {
    let mut w = typical_world(RadioPolicy::TYPICAL);
    w.set_up();
    w.connect(Who::Remote);
    let delivered_before = w.fw().pump.delivered().raw();
    let start = w.fw().now;
    let mut accepted = Vec::new();
    // The remote asks for a bolus every minute, each with a new request id.
    for i in 0..24 * 60u32 {
        let r = w.ask(
            Who::Remote,
            Command::PatientBolus {
                request_id: 1000 + i,
            },
        );
        if matches!(r, Reply::BolusAccepted { .. }) {
            accepted.push(w.fw().now);
        }
        w.fw().run_for(Duration::from_minutes(1));
    }
    // 4 a day at most, at least 3 h apart (patient_bolus()).
    assert_eq!(accepted.len(), 4, "{accepted:?}");
    for pair in accepted.windows(2) {
        assert!(pair[1].saturating_since(pair[0]) >= Duration::from_hours(3));
    }
    assert_eq!(w.fw().boluses_started(), 4);
    // Delivered: the day's basal plus four 25 uL boluses, within a stroke.
    let delivered = w.fw().pump.delivered().raw() - delivered_before;
    let stroke = HardwareProfile::synchromed_class(20).stroke_volume.raw();
    let expected = basal_alone(w.fw().now.saturating_since(start)) + 4 * 25_000;
    assert!(
        delivered.abs_diff(expected) <= stroke,
        "{delivered} vs {expected}"
    );
    // The refusals were answered and logged; the radio stayed within its budget.
    let refused = w
        .fw()
        .events
        .iter()
        .filter(|e| {
            matches!(e.event, Event::CommandRefused { key_id: REMOTE_ID, code, .. }
                if code == CommandKind::PatientBolus.code())
        })
        .count();
    assert_eq!(refused, 24 * 60 - 4);
    assert!(!w.implant.implant.radio().asleep());
}

#[test]
fn jamming_for_a_week_leaves_the_basal_unchanged_link_005() {
    let mut w = typical_world(RadioPolicy::TYPICAL);
    w.set_up();
    let key = w.implant_key();
    let before = w.fw().pump.delivered().raw();
    let start = w.fw().now;
    // Every hour the remote tries to reach the pump; the jammer destroys every frame.
    for _ in 0..7 * 24 {
        w.remote.hello(&mut w.air, &key);
        assert!(w.air.drop_next(Dir::ToImplant).is_some());
        w.implant.serve(&mut w.air);
        assert!(w.remote.finish(&mut w.air).is_none());
        w.fw().run_for(Duration::from_hours(1));
    }
    let week = w.fw().now.saturating_since(start);
    let delivered = w.fw().pump.delivered().raw() - before;
    let stroke = HardwareProfile::synchromed_class(20).stroke_volume.raw();
    let alone = basal_alone(week);
    assert!(
        delivered.abs_diff(alone) <= stroke,
        "{delivered} vs {alone}"
    );
    // 0.5 mL/day for 7 days.
    assert!(delivered.abs_diff(3_500_000) <= stroke, "{delivered}");
    assert!(w.fw().pump.status().alarms.is_empty());
    // Once the jamming stops, the remote connects (its counter moved on regardless).
    w.connect(Who::Remote);
}

#[test]
fn the_daily_budget_puts_the_radio_to_sleep_and_alerts_the_patient_link_005() {
    let policy = RadioPolicy {
        daily_budget_uj: 20_000,
        ..RadioPolicy::TYPICAL
    };
    let mut w = typical_world(policy);
    w.set_up();
    w.connect(Who::Remote);
    // The remote asks for its status until the day's budget is spent.
    let used_before = w.fw().pump.battery().used_uj();
    let spent_before = w.implant.implant.radio().stats().spent_total_uj;
    let mut answered = 0;
    loop {
        let (air, implant, dev) = w.split(Who::Remote);
        dev.send(air, Command::Interrogate);
        implant.serve(air);
        match implant.take_outcomes().as_slice() {
            [Outcome::Answered] => {
                dev.answer(air).unwrap();
                answered += 1;
            }
            [Outcome::Rejected(LinkError::NotListening)] => break,
            other => panic!("{other:?}"),
        }
        assert!(answered < 1000);
    }
    assert!(answered > 10, "{answered}");
    assert!(w.implant.implant.radio().asleep());
    // Every microjoule the radio spent was billed to the pump's battery (in whole radio
    // milliseconds; the remainder waits for the next frame).
    let spent = w.implant.implant.radio().stats().spent_total_uj - spent_before;
    let billed = w.fw().pump.battery().used_uj() - used_before;
    let per_ms = u64::from(HardwareProfile::synchromed_class(20).radio_uj_per_ms);
    assert!(billed + per_ms > spent, "{billed} billed for {spent} spent");
    let status = w.fw().pump.status();
    assert!(
        status
            .alarms
            .iter()
            .any(|a| a.kind == AlarmKind::TelemetryPaused),
        "{status:?}"
    );
    // A new day does not wake it; therapy goes on.
    w.fw().run_for(Duration::from_hours(25));
    let key = w.implant_key();
    w.remote.hello(&mut w.air, &key);
    w.implant.serve(&mut w.air);
    assert!(matches!(
        w.implant.take_outcomes().as_slice(),
        [Outcome::Denied(Denied::Deaf(crate::radio::Deaf::Asleep))]
    ));
    assert_eq!(w.fw().pump.mode(), Mode::Running);
    // The clinician's wand wakes it and the alarm clears.
    let now = w.fw().now;
    w.implant
        .implant
        .proximity_wake(now, &mut w.implant.fw.pump);
    w.fw().drain();
    assert!(
        !w.fw()
            .pump
            .status()
            .alarms
            .iter()
            .any(|a| a.kind == AlarmKind::TelemetryPaused)
    );
    w.connect(Who::Remote);
}
