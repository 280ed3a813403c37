//! LINK-003: enrolment through the proximity channel and inside a clinician session, the
//! fingerprint comparison, a man in the middle, revocation, and the telemetry commands'
//! role checks and log download.

use super::*;
use crate::endpoint::{Registry, key_id_for, refusal};
use thecal_pump::alarm::AlarmKind;
use thecal_pump::log::{TamperKind, verify_to_head};

/// After an enrolment handshake the device knows its key id and pre-authentication key
/// without being told.
fn adopt_enrolment(d: &mut Device) {
    d.key_id = key_id_for(&d.public());
    d.preauth = d.session.as_ref().unwrap().enrolled_preauth_key();
}

fn wand(w: &mut World, psk: [u8; 32], minutes: u64) -> crate::endpoint::ProximityToken {
    let now = w.implant.fw.now;
    let token = w.implant.implant.open_proximity_window(
        now,
        psk,
        Duration::from_minutes(minutes),
        &mut w.implant.fw.pump,
    );
    w.implant.fw.drain();
    token
}

fn refused_code(r: &Reply) -> Option<u8> {
    match r {
        Reply::Refused { code, .. } => Some(*code),
        _ => None,
    }
}

#[test]
fn a_programmer_enrols_only_through_the_wands_window_link_003() {
    let mut w = World::new();
    // A new programmer, not enrolled, with an implant that has no window open.
    let mut programmer = Device::new(44, 0);
    let implant_key = w.implant_key();
    programmer.enrolment_hello(&mut w.air, &implant_key, [7; 32]);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Denied(Denied::NoWindow)]
    );
    assert_eq!(w.air.pending(Dir::ToDevice), 0);

    // The wand opens a window; a hello with the wrong key fails the cheap check.
    let token = wand(&mut w, [0x3c; 32], 5);
    assert_eq!(token.implant_key, implant_key);
    programmer.enrolment_hello(&mut w.air, &implant_key, [8; 32]);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Denied(Denied::PreAuth { key_id: 0 })]
    );

    // With the token's key the programmer is enrolled as a clinician at once (the wand
    // over the pump is the confirmation), and its session works.
    programmer.enrolment_hello(&mut w.air, &implant_key, token.psk);
    w.implant.serve(&mut w.air);
    let id = key_id_for(&programmer.public());
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Connected { key_id: id }]
    );
    programmer.finish(&mut w.air).unwrap().unwrap();
    core::mem::swap(&mut w.clinician, &mut programmer);
    assert!(matches!(
        w.ask(Who::Clinician, Command::Interrogate),
        Reply::Status(_)
    ));
    let e = *w.implant.implant.registry().by_id(id).unwrap();
    assert_eq!(e.role, Role::Clinician);
    assert!(
        w.implant.implant.take_dirty(),
        "the enrolment must be persisted"
    );
    assert!(w.fw().events.iter().any(|e| e.event
        == Event::DeviceEnrolled {
            role: Role::Clinician,
            key_id: id
        }));

    // Both sides derived the same pre-authentication key: an ordinary hello works.
    adopt_enrolment(&mut w.clinician);
    assert_eq!(w.clinician.preauth, e.preauth);
    w.connect(Who::Clinician);

    // The window was single-use: another device with the same token is refused.
    let mut second = Device::new(45, 0);
    second.enrolment_hello(&mut w.air, &implant_key, token.psk);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Denied(Denied::NoWindow)]
    );
}

#[test]
fn an_expired_window_enrols_nobody_link_003() {
    let mut w = World::new();
    let token = wand(&mut w, [0x3d; 32], 5);
    w.fw().run_for(Duration::from_minutes(5));
    let mut programmer = Device::new(46, 0);
    programmer.enrolment_hello(&mut w.air, &token.implant_key, token.psk);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Denied(Denied::NoWindow)]
    );
    assert_eq!(w.implant.implant.registry().iter().count(), 3);
}

/// Opens a remote window from the clinician's session; returns the psk.
fn open_remote_window(w: &mut World, seconds: u16) -> [u8; 32] {
    w.connect(Who::Clinician);
    match w.ask_link(
        Who::Clinician,
        LinkCommand::OpenEnrolment {
            role: Role::PatientRemote,
            seconds,
        },
    ) {
        Reply::EnrolmentOpen {
            psk, implant_key, ..
        } => {
            assert_eq!(implant_key, w.implant_key().0);
            psk
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_remote_is_enrolled_when_the_clinician_confirms_its_fingerprint_link_003() {
    let mut w = World::new();
    w.set_up();
    let psk = open_remote_window(&mut w, 120);
    let mut remote = Device::new(55, 0);
    let implant_key = w.implant_key();
    remote.enrolment_hello(&mut w.air, &implant_key, psk);
    w.implant.serve(&mut w.air);
    let id = key_id_for(&remote.public());
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Connected { key_id: id }]
    );
    remote.finish(&mut w.air).unwrap().unwrap();
    let shown = remote.session.as_ref().unwrap().fingerprint();
    assert!(shown < 1_000_000);

    // Until confirmed, the remote's session can do nothing.
    core::mem::swap(&mut w.remote, &mut remote);
    let r = w.ask(Who::Remote, Command::Interrogate);
    assert_eq!(refused_code(&r), Some(refusal::NOT_CONFIRMED), "{r:?}");
    assert!(w.implant.implant.registry().by_id(id).is_none());

    // The clinician sees the same fingerprint on the programmer, and confirms it.
    w.connect(Who::Clinician);
    assert_eq!(
        w.ask_link(Who::Clinician, LinkCommand::PendingEnrolment),
        Reply::EnrolmentPending {
            fingerprint: shown,
            key: w.remote.public().0,
            key_id: id,
            role: Role::PatientRemote,
        }
    );
    assert_eq!(
        w.ask_link(
            Who::Clinician,
            LinkCommand::ConfirmEnrolment { fingerprint: shown }
        ),
        Reply::Enrolled {
            key_id: id,
            role: Role::PatientRemote
        }
    );
    assert!(w.implant.implant.take_dirty());

    // The remote now connects as itself and may ask for a bolus.
    adopt_enrolment(&mut w.remote);
    w.connect(Who::Remote);
    let r = w.ask(Who::Remote, Command::PatientBolus { request_id: 1 });
    assert!(matches!(r, Reply::BolusAccepted { .. }), "{r:?}");
    assert_eq!(
        w.fw().accepted(CommandKind::PatientBolus),
        vec![(Role::PatientRemote, id)]
    );
}

#[test]
fn enrolment_through_a_man_in_the_middle_commits_nothing_link_003() {
    let mut w = World::new();
    w.set_up();
    let psk = open_remote_window(&mut w, 120);
    let implant_key = w.implant_key();
    // The attacker learned the invite (the strongest case) and answers the window first,
    // with its own key.
    let mut mallory = Device::new(66, 0);
    mallory.enrolment_hello(&mut w.air, &implant_key, psk);
    w.implant.serve(&mut w.air);
    assert!(matches!(
        w.implant.take_outcomes().as_slice(),
        [Outcome::Connected { .. }]
    ));
    mallory.finish(&mut w.air).unwrap().unwrap();
    let mallory_fp = mallory.session.as_ref().unwrap().fingerprint();

    // The patient's remote then finds the window used: it shows no fingerprint.
    let mut remote = Device::new(55, 0);
    remote.enrolment_hello(&mut w.air, &implant_key, psk);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Denied(Denied::NoWindow)]
    );

    // Had the remote reached the implant through Mallory, its handshake hash would
    // differ from Mallory's: the fingerprints of two handshakes differ.
    let mut relay = World::new();
    let psk2 = open_remote_window(&mut relay, 120);
    let mut genuine = Device::new(55, 0);
    let key2 = relay.implant_key();
    genuine.enrolment_hello(&mut relay.air, &key2, psk2);
    relay.implant.serve(&mut relay.air);
    genuine.finish(&mut relay.air).unwrap().unwrap();
    let genuine_fp = genuine.session.as_ref().unwrap().fingerprint();
    assert_ne!(genuine_fp, mallory_fp);

    // The clinician types the fingerprint the patient's remote shows: it does not match
    // what the implant holds, so nothing is enrolled and the window is closed.
    w.connect(Who::Clinician);
    let events = w.fw().events.len();
    let r = w.ask_link(
        Who::Clinician,
        LinkCommand::ConfirmEnrolment {
            fingerprint: genuine_fp,
        },
    );
    assert_eq!(
        refused_code(&r),
        Some(refusal::FINGERPRINT_MISMATCH),
        "{r:?}"
    );
    let Reply::Refused { text, .. } = &r else {
        unreachable!()
    };
    assert!(text.contains("Nothing was enrolled"), "{text}");
    assert!(
        w.implant
            .implant
            .registry()
            .lookup(&mallory.public())
            .is_none()
    );
    assert_eq!(w.implant.implant.registry().iter().count(), 3);
    assert!(
        !w.fw().events[events..]
            .iter()
            .any(|e| matches!(e.event, Event::DeviceEnrolled { .. }))
    );
    assert!(w.fw().events[events..].iter().any(|e| e.event
        == Event::CommandRefused {
            role: Role::Clinician,
            code: LinkCommand::ConfirmEnrolment { fingerprint: 0 }.code(),
            reason: refusal::FINGERPRINT_MISMATCH,
            key_id: CLINICIAN_ID
        }));
    // Confirming Mallory's fingerprint now is too late: the window is gone.
    let r = w.ask_link(
        Who::Clinician,
        LinkCommand::ConfirmEnrolment {
            fingerprint: mallory_fp,
        },
    );
    assert_eq!(refused_code(&r), Some(refusal::NO_PENDING), "{r:?}");
    // Mallory cannot connect as an enrolled device.
    adopt_enrolment(&mut mallory);
    mallory.hello(&mut w.air, &implant_key);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Denied(Denied::UnknownKey {
            key_id: key_id_for(&mallory.public())
        })]
    );
}

#[test]
fn enrolment_commands_are_the_clinicians_alone_link_003() {
    let mut w = World::new();
    w.set_up();
    w.connect(Who::Remote);
    for command in [
        LinkCommand::OpenEnrolment {
            role: Role::PatientRemote,
            seconds: 60,
        },
        LinkCommand::ConfirmEnrolment { fingerprint: 1 },
        LinkCommand::Revoke {
            key_id: CLINICIAN_ID,
        },
        LinkCommand::Devices,
        LinkCommand::ReadLog { from_seq: 0 },
        LinkCommand::ReadProgram,
    ] {
        let r = w.ask_link(Who::Remote, command);
        assert_eq!(refused_code(&r), Some(refusal::NOT_PERMITTED), "{r:?}");
        assert!(
            w.fw().events.last().unwrap().event
                == Event::CommandRefused {
                    role: Role::PatientRemote,
                    code: command.code(),
                    reason: refusal::NOT_PERMITTED,
                    key_id: REMOTE_ID
                }
        );
    }
    // A window of a length outside 10..=600 s is refused with the range.
    w.connect(Who::Clinician);
    let r = w.ask_link(
        Who::Clinician,
        LinkCommand::OpenEnrolment {
            role: Role::PatientRemote,
            seconds: 3600,
        },
    );
    let Reply::Refused { code, text } = r else {
        panic!("{r:?}")
    };
    assert_eq!(code, refusal::BAD_WINDOW);
    assert!(text.contains("10 to 600 s"), "{text}");
}

#[test]
fn the_clinician_revokes_a_remote_over_the_link_link_003() {
    let mut w = World::new();
    w.set_up();
    w.connect(Who::Clinician);
    let r = w.ask_link(Who::Clinician, LinkCommand::Revoke { key_id: REMOTE_ID });
    assert_eq!(r, Reply::Accepted);
    assert!(w.implant.implant.take_dirty());
    assert!(
        w.fw()
            .events
            .iter()
            .any(|e| e.event == Event::DeviceRevoked { key_id: REMOTE_ID })
    );
    let r = w.ask_link(Who::Clinician, LinkCommand::Revoke { key_id: 4242 });
    assert_eq!(refused_code(&r), Some(refusal::UNKNOWN_KEY_ID));
    let r = w.ask_link(
        Who::Clinician,
        LinkCommand::Revoke {
            key_id: CLINICIAN_ID,
        },
    );
    assert_eq!(refused_code(&r), Some(refusal::OWN_KEY));
    let Reply::Devices(list) = w.ask_link(Who::Clinician, LinkCommand::Devices) else {
        panic!()
    };
    assert_eq!(list.len(), 3);
    assert!(list.iter().any(|d| d.key_id == REMOTE_ID && d.revoked));
    // The revoked remote is denied at its next hello.
    let key = w.implant_key();
    w.remote.hello(&mut w.air, &key);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Denied(Denied::Revoked { key_id: REMOTE_ID })]
    );
}

#[test]
fn the_programmer_downloads_and_verifies_the_log_link_007() {
    let mut w = World::new();
    w.set_up();
    w.connect(Who::Remote);
    let _ = w.ask(
        Who::Remote,
        Command::Stop {
            reason: StopReason::Other,
        },
    );
    w.connect(Who::Clinician);
    let mut entries: Vec<LogEntry> = Vec::new();
    let mut head;
    loop {
        let from_seq = entries.last().map_or(0, |e| e.seq + 1);
        match w.ask_link(Who::Clinician, LinkCommand::ReadLog { from_seq }) {
            Reply::Log {
                entries: page,
                anchor,
                head: h,
            } => {
                assert_eq!(anchor, None);
                head = Some(h);
                entries.extend(page);
                // Each read is itself logged after its reply: stop at the head the
                // reply named.
                if entries.last().map_or(0, |e| e.seq + 1) >= h.next_seq() {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    let head = head.unwrap();
    // The pages add up to the whole log, which verifies up to the pump's head.
    assert_eq!(
        verify_to_head(entries.iter(), None, &head),
        Ok(entries.len())
    );
    assert!(entries.iter().any(|e| matches!(
        e.event,
        Event::CommandRefused {
            role: Role::PatientRemote,
            key_id: REMOTE_ID,
            ..
        }
    )));
    // A changed entry is caught.
    let mut forged = entries.clone();
    if let Some(e) = forged.iter_mut().find(|e| {
        matches!(
            e.event,
            Event::CommandRefused {
                role: Role::PatientRemote,
                ..
            }
        )
    }) {
        e.event = Event::Resumed;
    }
    assert_eq!(
        verify_to_head(forged.iter(), None, &head).map_err(|t| t.kind),
        Err(TamperKind::HashMismatch)
    );
    // And the program reads back as programmed.
    let Reply::Program(p) = w.ask_link(Who::Clinician, LinkCommand::ReadProgram) else {
        panic!()
    };
    assert_eq!(&p, w.fw().pump.program());
}

#[test]
fn the_handshake_counter_survives_a_restart_link_004() {
    let mut w = World::new();
    w.set_up();
    let start = w.air.transcript().len();
    w.connect(Who::Remote);
    let hello = w.air.transcript()[start].1.clone();
    assert!(
        w.implant.implant.take_dirty(),
        "a new counter must be persisted"
    );
    let mut buf = [0u8; crate::endpoint::REGISTRY_ENCODED_MAX];
    let stored = w
        .implant
        .implant
        .encode_registry(&mut buf)
        .unwrap()
        .to_vec();
    assert!(stored.len() <= crate::endpoint::REGISTRY_ENCODED_MAX);

    // Power cut; the implant restarts from the stored registry.
    let registry: Registry = Implant::decode_registry(&stored).unwrap();
    assert_eq!(&registry, w.implant.implant.registry());
    w.implant = Implanted::new(keys(99), registry);
    w.air.inject(Dir::ToImplant, &hello);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Denied(Denied::Replayed { key_id: REMOTE_ID })]
    );
    // Corrupt or trailing stored bytes are refused, never half-read.
    assert!(Implant::decode_registry(&stored[..stored.len() - 1]).is_err());
    let mut longer = stored.clone();
    longer.push(0);
    assert!(Implant::decode_registry(&longer).is_err());
    // The genuine remote, whose counter moves on, still connects.
    w.connect(Who::Remote);
}

#[test]
fn telemetry_paused_is_a_low_priority_alarm_with_patient_words_link_005() {
    assert_eq!(
        AlarmKind::TelemetryPaused.priority(),
        thecal_pump::alarm::Priority::Low
    );
    let text = AlarmKind::TelemetryPaused.patient_text();
    assert!(text.contains("still giving your medicine"), "{text}");
}
