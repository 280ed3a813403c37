//! LINK-009 to LINK-014: roles in enrolment, a registry that never fills for good, its
//! integrity on storage, the wand under a flood, and a remote used before its enrolment
//! is confirmed.

use super::*;
use crate::endpoint::{REGISTRY_ENCODED_MAX, RegistryError, key_id_for, refusal};
use crate::radio::Deaf;

fn refused_code(r: &Reply) -> Option<u8> {
    match r {
        Reply::Refused { code, .. } => Some(*code),
        _ => None,
    }
}

fn refused_text(r: &Reply) -> alloc::string::String {
    match r {
        Reply::Refused { text, .. } => text.as_str().into(),
        other => alloc::format!("{other:?}"),
    }
}

fn typical_world() -> World {
    let mut w = World::new();
    let registry = w.implant.implant.registry().clone();
    w.implant = Implanted::with_radio(
        keys(99),
        registry,
        Radio::new(RadioCosts::TYPICAL, RadioPolicy::TYPICAL),
    );
    w
}

fn open_window(w: &mut World, role: Role) -> Reply {
    w.connect(Who::Clinician);
    w.ask_link(
        Who::Clinician,
        LinkCommand::OpenEnrolment { role, seconds: 120 },
    )
}

#[test]
fn a_clinician_cannot_be_enrolled_over_the_air_link_009() {
    let mut w = World::new();
    let r = open_window(&mut w, Role::Clinician);
    assert_eq!(
        refused_code(&r),
        Some(refusal::CLINICIAN_OVER_AIR),
        "a clinician window over the air must be refused: {r:?}"
    );
    assert!(refused_text(&r).contains("wand"), "{r:?}");
    // The refusal is logged with the clinician's key id.
    assert!(w.fw().events.iter().any(|e| matches!(
        e.event,
        Event::CommandRefused { code: 100, reason, key_id: CLINICIAN_ID, .. }
            if reason == refusal::CLINICIAN_OVER_AIR
    )));

    // A window for an emergency device: the pending enrolment shows the role it will get.
    let Reply::EnrolmentOpen { psk, .. } = open_window(&mut w, Role::Emergency) else {
        panic!("no window")
    };
    let mut device = Device::new(61, 0);
    let implant_key = w.implant_key();
    device.enrolment_hello(&mut w.air, &implant_key, psk);
    w.implant.serve(&mut w.air);
    w.implant.take_outcomes();
    device.finish(&mut w.air).unwrap().unwrap();
    w.connect(Who::Clinician);
    let Reply::EnrolmentPending { role, key_id, .. } =
        w.ask_link(Who::Clinician, LinkCommand::PendingEnrolment)
    else {
        panic!("nothing pending")
    };
    assert_eq!(role, Role::Emergency);
    assert_eq!(key_id, key_id_for(&device.public()));
}

/// Enrols `n` extra patient remotes directly in the registry (a fixture).
fn fill(w: &mut World, n: u8) -> Vec<u32> {
    let mut ids = Vec::new();
    for i in 0..n {
        let d = Device::new(120 + i, 5_000 + u32::from(i));
        w.implant
            .implant
            .registry_mut()
            .enroll(d.enrolment(Role::PatientRemote))
            .unwrap();
        ids.push(d.key_id);
    }
    ids
}

#[test]
fn a_full_registry_says_so_and_revoked_devices_can_be_removed_link_010() {
    let mut w = World::new();
    // Three devices in the world, five more: full.
    let ids = fill(&mut w, 5);
    assert!(w.implant.implant.registry().is_full());
    let r = open_window(&mut w, Role::PatientRemote);
    assert_eq!(refused_code(&r), Some(refusal::REGISTRY_FULL), "{r:?}");
    assert!(refused_text(&r).contains("full"), "{r:?}");

    // An active device cannot be removed; an unknown one is named as such.
    let r = w.ask_link(Who::Clinician, LinkCommand::Remove { key_id: ids[0] });
    assert_eq!(refused_code(&r), Some(refusal::NOT_REVOKED), "{r:?}");
    let r = w.ask_link(Who::Clinician, LinkCommand::Remove { key_id: 77 });
    assert_eq!(refused_code(&r), Some(refusal::UNKNOWN_KEY_ID), "{r:?}");

    // The lost remote is revoked: the full registry now says what to do.
    assert_eq!(
        w.ask_link(Who::Clinician, LinkCommand::Revoke { key_id: REMOTE_ID }),
        Reply::Accepted
    );
    let r = open_window(&mut w, Role::PatientRemote);
    assert!(
        refused_text(&r).contains("remove a revoked device"),
        "{r:?}"
    );

    // The remote's last counter, then its removal.
    let counter_before = w.remote.counter;
    assert_eq!(
        w.ask_link(Who::Clinician, LinkCommand::Remove { key_id: REMOTE_ID }),
        Reply::Accepted
    );
    assert!(w.implant.implant.take_dirty());
    assert!(w.implant.implant.registry().by_id(REMOTE_ID).is_none());
    assert!(!w.implant.implant.registry().is_full());
    assert_eq!(
        w.implant.implant.registry().retired_counter(REMOTE_ID),
        Some(counter_before)
    );
    // A removed device's hello is refused, as an unknown key.
    let key = w.implant_key();
    w.remote.hello(&mut w.air, &key);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Denied(Denied::UnknownKey { key_id: REMOTE_ID })]
    );
    // And a new device can be enrolled in its place.
    assert!(matches!(
        open_window(&mut w, Role::PatientRemote),
        Reply::EnrolmentOpen { .. }
    ));
}

#[test]
fn a_removed_key_enrolled_again_starts_above_its_old_counter_link_010() {
    let mut r = Registry::new();
    let d = Device::new(90, 9_000);
    let mut e = d.enrolment(Role::PatientRemote);
    e.counter = 1_000;
    r.enroll(e).unwrap();
    assert!(r.revoke(9_000));
    r.remove(9_000).unwrap();
    let mut again = d.enrolment(Role::PatientRemote);
    again.counter = 10;
    r.enroll(again).unwrap();
    assert_eq!(r.by_id(9_000).unwrap().counter, 1_000);
}

#[test]
fn every_flipped_bit_of_the_stored_registry_is_refused_link_011() {
    let mut w = World::new();
    let mut buf = [0u8; REGISTRY_ENCODED_MAX];
    let stored = w
        .implant
        .implant
        .encode_registry(&mut buf)
        .unwrap()
        .to_vec();
    assert_eq!(&stored[..4], b"TCRG");
    assert_eq!(
        &Implant::decode_registry(&stored).unwrap(),
        w.implant.implant.registry()
    );
    let mut refused = 0;
    for bit in 0..stored.len() * 8 {
        let mut bad = stored.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let r = Implant::decode_registry(&bad);
        assert!(
            r.is_err(),
            "bit {bit} flipped was accepted: {:?}",
            r.map(|r| r.iter().map(|e| (e.key_id, e.role)).collect::<Vec<_>>())
        );
        refused += 1;
    }
    assert_eq!(refused, stored.len() * 8);
    // The errors name what is wrong.
    let mut bad = stored.clone();
    let n = bad.len();
    bad[n - 20] ^= 1;
    assert_eq!(Implant::decode_registry(&bad), Err(RegistryError::Check));
    assert_eq!(
        Implant::decode_registry(&stored[..n - 1]),
        Err(RegistryError::Truncated)
    );
    let mut v2 = stored.clone();
    v2[4] = 2;
    assert_eq!(
        Implant::decode_registry(&v2),
        Err(RegistryError::Version(2))
    );
    assert_eq!(
        Implant::decode_registry(b"\x00\x01\x02"),
        Err(RegistryError::Truncated)
    );
    let _ = w.fw();
}

/// Two forged hellos per millisecond (2,000 a second): enrolment hellos with a wrong
/// window key, hellos claiming the clinician's key id with a wrong tag, and noise.
struct Flood {
    rng: XorShift,
    enrol: Vec<u8>,
    claim: Vec<u8>,
    sent: u64,
}

impl Flood {
    fn new(w: &mut World) -> Self {
        let key = w.implant_key();
        let mut attacker = Device::new(200, 0);
        let start = w.air.transcript().len();
        attacker.enrolment_hello(&mut w.air, &key, [0xee; 32]);
        let enrol = w.air.transcript()[start].1.clone();
        let _ = w.air.receive(Dir::ToImplant);
        let mut claim = enrol.clone();
        claim[4..8].copy_from_slice(&CLINICIAN_ID.to_le_bytes());
        Flood {
            rng: XorShift(0x2000_2000_2000_2000),
            enrol,
            claim,
            sent: 0,
        }
    }

    /// Puts two forged frames on the air.
    fn two(&mut self, air: &mut Air) {
        for _ in 0..2 {
            let mut f = match self.sent % 3 {
                0 => self.enrol.clone(),
                1 => self.claim.clone(),
                _ => self.rng.bytes(128),
            };
            let n = f.len();
            let tag = self.rng.bytes(16);
            if self.sent % 3 != 2 {
                f[n - 16..].copy_from_slice(&tag);
                f[8..16].copy_from_slice(&(self.sent + 10).to_le_bytes());
            }
            air.inject(Dir::ToImplant, &f);
            self.sent += 1;
        }
    }

    /// Floods for `ms` milliseconds of pump time.
    fn run(&mut self, w: &mut World, ms: u64) {
        for _ in 0..ms {
            self.two(&mut w.air);
            w.implant.serve(&mut w.air);
            w.fw().run_for(Duration::from_ms(1));
        }
    }
}

#[test]
fn the_wand_works_under_a_flood_of_2000_hellos_a_second_link_012() {
    let mut w = typical_world();
    w.set_up();
    let mut flood = Flood::new(&mut w);
    // Two seconds of flood: the receiver backs off; nobody gets in.
    flood.run(&mut w, 2_000);
    assert!(
        w.implant
            .implant
            .radio()
            .listening(w.implant.fw.now)
            .is_err()
    );

    // The clinician holds the wand over the pump; the flood goes on.
    let now = w.fw().now;
    let token = w.implant.implant.open_proximity_window(
        now,
        [0x5d; 32],
        Duration::from_minutes(5),
        &mut w.implant.fw.pump,
    );
    w.fw().drain();
    flood.run(&mut w, 1_000);

    // A new programmer enrols through the wand's window between forged hellos.
    let mut programmer = Device::new(77, 0);
    flood.two(&mut w.air);
    programmer.enrolment_hello(&mut w.air, &token.implant_key, token.psk);
    flood.two(&mut w.air);
    w.implant.take_outcomes();
    w.implant.serve(&mut w.air);
    let id = key_id_for(&programmer.public());
    let outcomes = w.implant.take_outcomes();
    assert!(
        outcomes.contains(&Outcome::Connected { key_id: id }),
        "the wand's enrolment did not get through the flood: {:?}",
        &outcomes[..outcomes.len().min(6)]
    );
    programmer.finish(&mut w.air).unwrap().unwrap();

    // Its session works while the flood goes on.
    flood.run(&mut w, 500);
    flood.two(&mut w.air);
    let cid = programmer.send_body(&mut w.air, Body::Pump(Command::Interrogate));
    flood.two(&mut w.air);
    w.implant.serve(&mut w.air);
    let a = programmer
        .answer(&mut w.air)
        .expect("no answer under the flood");
    assert_eq!(a.command_id, cid);
    assert!(matches!(a.reply, Reply::Status(_)), "{:?}", a.reply);

    // An enrolled clinician programmer connects too while the wand is held.
    flood.run(&mut w, 500);
    let key = w.implant_key();
    flood.two(&mut w.air);
    w.clinician.hello(&mut w.air, &key);
    flood.two(&mut w.air);
    w.implant.take_outcomes();
    w.implant.serve(&mut w.air);
    assert!(w.implant.take_outcomes().contains(&Outcome::Connected {
        key_id: CLINICIAN_ID
    }));
    assert!(flood.sent >= 8_000, "{} forged hellos", flood.sent);
    // No public-key work for the flood: only the three genuine handshakes, besides the
    // set-up's.
    let s = *w.implant.implant.radio().stats();
    assert!(s.handshakes <= 4, "{s:?}");

    // After the hold the back-off protects the battery again.
    w.fw().run_for(Duration::from_minutes(5));
    flood.run(&mut w, 10);
    assert!(
        w.implant
            .implant
            .radio()
            .listening(w.implant.fw.now)
            .is_err()
    );
}

#[test]
fn a_remote_used_before_its_enrolment_is_confirmed_does_not_pause_the_radio_link_013() {
    let mut w = typical_world();
    w.set_up();
    let Reply::EnrolmentOpen { psk, .. } = open_window(&mut w, Role::PatientRemote) else {
        panic!("no window")
    };
    let key = w.implant_key();
    let mut remote = Device::new(66, 0);
    remote.enrolment_hello(&mut w.air, &key, psk);
    w.implant.serve(&mut w.air);
    remote.finish(&mut w.air).unwrap().unwrap();
    remote.key_id = key_id_for(&remote.public());
    remote.preauth = remote.session.as_ref().unwrap().enrolled_preauth_key();
    w.implant.take_outcomes();

    // The patient presses bolus before the clinician confirmed: a new hello with its
    // own key id. It is answered (not confirmed yet), not denied.
    remote.hello(&mut w.air, &key);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Connected {
            key_id: remote.key_id
        }],
        "a pending device's hello must not be denied"
    );
    remote.finish(&mut w.air).unwrap().unwrap();
    core::mem::swap(&mut w.remote, &mut remote);
    let r = w.ask(Who::Remote, Command::PatientBolus { request_id: 9 });
    assert_eq!(refused_code(&r), Some(refusal::NOT_CONFIRMED), "{r:?}");
    // Nobody was shut out: the receiver did not back off.
    let now = w.fw().now;
    assert_eq!(w.implant.implant.radio().listening(now), Ok(()));
    w.connect(Who::Clinician);
    // A forged hello with the pending key id is still denied (wrong tag).
    let mut forger = Device::new(67, w.remote.key_id);
    forger.counter = 1 << 60;
    forger.hello(&mut w.air, &key);
    w.implant.serve(&mut w.air);
    assert!(matches!(
        w.implant.take_outcomes().as_slice(),
        [Outcome::Denied(Denied::PreAuth { .. })]
    ));
}

#[test]
fn a_cached_answer_is_not_resent_while_the_radio_sleeps_link_014() {
    let policy = RadioPolicy {
        daily_budget_uj: 10_000,
        ..RadioPolicy::TYPICAL
    };
    let mut w = World::new();
    let registry = w.implant.implant.registry().clone();
    w.implant = Implanted::with_radio(keys(99), registry, Radio::new(RadioCosts::TYPICAL, policy));
    let now = w.fw().now;
    assert_eq!(
        w.implant
            .implant
            .resend(now, 100, 100, &mut w.implant.fw.pump),
        Ok(())
    );
    // Spend the day's budget: the radio sleeps, and a resend is refused.
    for _ in 0..100 {
        let _ = w
            .implant
            .implant
            .resend(now, 100, 100, &mut w.implant.fw.pump);
    }
    assert!(w.implant.implant.radio().asleep());
    assert_eq!(
        w.implant
            .implant
            .resend(now, 100, 100, &mut w.implant.fw.pump),
        Err(Deaf::Asleep)
    );
}

#[test]
fn a_simulators_fast_clock_does_not_shrink_a_window_or_a_session_link_025() {
    let mut w = World::new();
    // The firmware's clock runs 1,000 times faster than the wall clock.
    w.implant.implant.set_time_scale(1_000);
    let Reply::EnrolmentOpen { expires_at, .. } = open_window(&mut w, Role::PatientRemote) else {
        panic!("no window")
    };
    let now = w.fw().now;
    // 120 s of wall time is 120,000 s of pump time.
    assert_eq!(
        expires_at.saturating_since(now),
        Duration::from_secs(120_000)
    );
    // A session idle for 10 pump minutes (0.6 s of wall time) is still open.
    w.fw().run_for(Duration::from_minutes(10));
    let id = w
        .clinician
        .send_body(&mut w.air, Body::Pump(Command::Interrogate));
    w.implant.serve(&mut w.air);
    assert_eq!(w.implant.take_outcomes(), vec![Outcome::Answered]);
    assert_eq!(w.clinician.answer(&mut w.air).unwrap().command_id, id);
}
