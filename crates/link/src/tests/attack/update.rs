//! LINK-029, LINK-030: the firmware update over the link — clinician only, inside a
//! session, resumable, logged, its energy measured, and a flood of recorded chunk frames.

use super::*;
use ed25519_dalek::SigningKey;
use thecal_update::image::{self, HardwareId};
use thecal_update::mem::MemStorage;
use thecal_update::updater::{REFERENCE_SLOT_SIZE, provision};
use thecal_update::{
    Confirmation, ImageError, KeyRefusal, Manifest, Refusal, Slot, TrustList, Updater, Version,
};

use crate::message::{KeySignature, UPDATE_CHUNK_MAX, UpdateReply, UpdateRequest};

fn maker() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn hw() -> HardwareId {
    HardwareId::new("synchromed-20").unwrap()
}

fn signed(len: usize, version: Version, counter: u32) -> Vec<u8> {
    let body: Vec<u8> = (0..len).map(|i| (i * 13 + 7) as u8).collect();
    let m = Manifest {
        version,
        security_counter: counter,
        hardware: hw(),
    };
    let mut out = vec![0u8; image::signed_len(len, &m).unwrap()];
    image::sign(&body, &m, &maker(), &mut out).unwrap();
    out
}

/// Gives the world's implant an updater running version 1.0.0 (counter 3) from slot A.
fn with_updater(w: &mut World) {
    let old = signed(4000, Version::new(1, 0, 0, 0), 3);
    let mut s = MemStorage::new(REFERENCE_SLOT_SIZE as usize);
    s.slot_mut(Slot::A)[..old.len()].copy_from_slice(&old);
    let trust = TrustList::new(&[maker().verifying_key().to_bytes()]).unwrap();
    provision(&mut s, Slot::A, trust, 3).unwrap();
    let u = Updater::boot(&mut s, hw()).unwrap();
    w.implant.update = Some((u, s));
}

fn ask_update(w: &mut World, who: Who, r: UpdateRequest) -> Reply {
    w.ask_body(who, Body::Update(r))
}

fn chunk(img: &[u8], offset: usize) -> UpdateRequest {
    let end = (offset + UPDATE_CHUNK_MAX).min(img.len());
    UpdateRequest::Chunk {
        offset: offset as u32,
        data: heapless::Vec::from_slice(&img[offset..end]).unwrap(),
    }
}

fn status(w: &mut World) -> thecal_update::UpdateStatus {
    match ask_update(w, Who::Clinician, UpdateRequest::Status) {
        Reply::Update(UpdateReply::Status(s)) => s,
        other => panic!("{other:?}"),
    }
}

/// Sends chunks from `from` to the end; returns the number of chunk frames.
fn send_rest(w: &mut World, img: &[u8], from: usize) -> usize {
    let mut at = from;
    let mut frames = 0;
    while at < img.len() {
        let r = ask_update(w, Who::Clinician, chunk(img, at));
        let end = (at + UPDATE_CHUNK_MAX).min(img.len());
        assert_eq!(r, Reply::Update(UpdateReply::Have { next: end as u32 }));
        at = end;
        frames += 1;
    }
    frames
}

fn logged(w: &World, code: u8) -> Vec<(Role, Option<u8>)> {
    w.implant
        .fw
        .events
        .iter()
        .filter_map(|e| match e.event {
            Event::CommandAccepted { role, code: c, .. } if c == code => Some((role, None)),
            Event::CommandRefused {
                role,
                code: c,
                reason,
                ..
            } if c == code => Some((role, Some(reason))),
            _ => None,
        })
        .collect()
}

#[test]
fn the_largest_chunk_request_fits_one_frame_link_029() {
    let img = vec![0xa5u8; UPDATE_CHUNK_MAX];
    let mut plain = [0u8; MAX_PLAINTEXT];
    let r = Request {
        command_id: u32::MAX,
        body: Body::Update(UpdateRequest::Chunk {
            offset: u32::MAX,
            data: heapless::Vec::from_slice(&img).unwrap(),
        }),
    };
    let n = r.encode(&mut plain).unwrap().len();
    assert!(n <= MAX_PLAINTEXT, "{n}");
    assert_eq!(Request::decode(&plain[..n]).unwrap(), r);
    // A chunk one byte longer does not decode.
    let mut bytes = plain[..n].to_vec();
    let len_at = bytes.len() - UPDATE_CHUNK_MAX - 2;
    assert_eq!(bytes[len_at..len_at + 2], [0x80, 0x06]); // varint 768
    bytes[len_at..len_at + 2].copy_from_slice(&[0x81, 0x06]);
    bytes.push(0);
    assert!(Request::decode(&bytes).is_err());
}

#[test]
fn a_clinician_updates_the_firmware_in_a_session_resuming_after_a_dropped_link_link_029() {
    let mut w = World::new();
    w.set_up();
    with_updater(&mut w);
    let before = status(&mut w);
    assert_eq!(
        (before.running, before.security_counter),
        (Version::new(1, 0, 0, 0), 3)
    );
    assert_eq!(before.transfer, None);
    let img = signed(40_000, Version::new(1, 1, 0, 0), 4);
    let delivered_before = w.fw().pump.delivered().raw();
    let started = w.fw().now;
    let begin = UpdateRequest::Begin {
        total: img.len() as u32,
        image_id: [3; 32],
    };
    assert_eq!(
        ask_update(&mut w, Who::Clinician, begin),
        Reply::Update(UpdateReply::Accepted)
    );
    // Half the image, a chunk a second; therapy runs meanwhile.
    let half = (img.len() / 2) / UPDATE_CHUNK_MAX * UPDATE_CHUNK_MAX;
    let mut at = 0;
    while at < half {
        let r = ask_update(&mut w, Who::Clinician, chunk(&img, at));
        at += UPDATE_CHUNK_MAX;
        assert_eq!(r, Reply::Update(UpdateReply::Have { next: at as u32 }));
        w.fw().run_for(Duration::from_secs(1));
    }
    // The link drops: the next chunk never arrives, and its session is lost.
    w.clinician
        .send_body(&mut w.air, Body::Update(chunk(&img, at)));
    assert!(w.air.receive(Dir::ToImplant).is_some());
    w.fw().run_for(Duration::from_minutes(5));
    // A new session: the implant says what it has, and the programmer resumes there.
    w.connect(Who::Clinician);
    let st = status(&mut w);
    let t = st.transfer.unwrap();
    assert_eq!(
        (t.have as usize, t.total as usize, t.image_id),
        (half, img.len(), [3; 32])
    );
    // A chunk replayed from before the drop is refused with the offset wanted.
    assert_eq!(
        ask_update(&mut w, Who::Clinician, chunk(&img, 0)),
        Reply::Update(UpdateReply::Refused(Refusal::Replay {
            expected: half as u32,
            got: 0
        }))
    );
    send_rest(&mut w, &img, half);
    let verified = ask_update(&mut w, Who::Clinician, UpdateRequest::Verify);
    let Reply::Update(UpdateReply::Verified(info)) = verified else {
        panic!("{verified:?}");
    };
    assert_eq!(
        (info.version, info.security_counter),
        (Version::new(1, 1, 0, 0), 4)
    );
    assert!(!w.implant.restart);
    assert_eq!(
        ask_update(&mut w, Who::Clinician, UpdateRequest::MarkForTrial),
        Reply::Update(UpdateReply::Accepted)
    );
    assert!(w.implant.restart);
    // Therapy went on through the transfer: the basal of the elapsed time was delivered.
    let elapsed = w.fw().now.saturating_since(started);
    let delivered = w.fw().pump.delivered().raw() - delivered_before;
    let basal_nl_per_ms = 500_000.0 / 86_400_000.0; // 0.5 mL/day
    let ideal = elapsed.ms() as f64 * basal_nl_per_ms;
    let stroke = HardwareProfile::synchromed_class(20).stroke_volume.raw() as f64;
    assert!(
        (delivered as f64 - ideal).abs() <= stroke + 1.0,
        "{delivered} vs {ideal}"
    );
    // The restart runs the trial; its self-test passes and it confirms.
    let (_, storage) = w.implant.update.as_mut().unwrap();
    let mut u = Updater::boot(storage, hw()).unwrap();
    assert!(u.status().on_trial);
    assert_eq!(u.confirm(storage, true), Ok(Confirmation::Confirmed));
    w.implant.update = Some((u, w.implant.update.take().unwrap().1));
    w.connect(Who::Clinician);
    let after = status(&mut w);
    assert_eq!(
        (
            after.running,
            after.slot,
            after.on_trial,
            after.security_counter
        ),
        (Version::new(1, 1, 0, 0), Slot::B, false, 4)
    );
    // Begin, verify and mark were logged with the clinician's role; chunks were not.
    for code in [112, 114, 115] {
        assert_eq!(
            logged(&w, code),
            vec![(Role::Clinician, None)],
            "code {code}"
        );
    }
    assert_eq!(
        logged(&w, 113),
        vec![(
            Role::Clinician,
            Some(
                Refusal::Replay {
                    expected: 0,
                    got: 0
                }
                .code()
            )
        )]
    );
}

#[test]
fn only_a_clinician_may_update_and_every_refusal_is_logged_link_029() {
    let mut w = World::new();
    w.set_up();
    // Without an updater the implant says so.
    assert_eq!(
        ask_update(&mut w, Who::Clinician, UpdateRequest::Status),
        Reply::Update(UpdateReply::Unsupported)
    );
    with_updater(&mut w);
    let begin = UpdateRequest::Begin {
        total: 5000,
        image_id: [0; 32],
    };
    for who in [Who::Remote, Who::Emergency] {
        w.connect(who);
        let r = ask_update(&mut w, who, begin.clone());
        assert!(
            matches!(
                r,
                Reply::Refused {
                    code: NOT_PERMITTED,
                    ..
                }
            ),
            "{r:?}"
        );
    }
    assert_eq!(w.implant.update.as_ref().unwrap().0.status().transfer, None);
    assert_eq!(
        logged(&w, 112),
        vec![
            (Role::PatientRemote, Some(NOT_PERMITTED)),
            (Role::Emergency, Some(NOT_PERMITTED))
        ]
    );
    // A rollback image sent by the clinician: received, refused at verification, logged.
    w.connect(Who::Clinician);
    let old = signed(3000, Version::new(2, 0, 0, 0), 2);
    let begin = UpdateRequest::Begin {
        total: old.len() as u32,
        image_id: [1; 32],
    };
    assert_eq!(
        ask_update(&mut w, Who::Clinician, begin),
        Reply::Update(UpdateReply::Accepted)
    );
    // A gap first.
    let gap = ask_update(&mut w, Who::Clinician, chunk(&old, UPDATE_CHUNK_MAX));
    assert_eq!(
        gap,
        Reply::Update(UpdateReply::Refused(Refusal::Gap {
            expected: 0,
            got: UPDATE_CHUNK_MAX as u32
        }))
    );
    send_rest(&mut w, &old, 0);
    let r = ask_update(&mut w, Who::Clinician, UpdateRequest::Verify);
    let rollback = Refusal::Image(ImageError::Rollback {
        image: 2,
        stored: 3,
    });
    assert_eq!(r, Reply::Update(UpdateReply::Refused(rollback)));
    assert_eq!(
        ask_update(&mut w, Who::Clinician, UpdateRequest::MarkForTrial),
        Reply::Update(UpdateReply::Refused(Refusal::NotVerified))
    );
    assert_eq!(
        logged(&w, 114),
        vec![(Role::Clinician, Some(rollback.code()))]
    );
    assert_eq!(
        logged(&w, 115),
        vec![(Role::Clinician, Some(Refusal::NotVerified.code()))]
    );
    assert_eq!(logged(&w, 113), vec![(Role::Clinician, Some(21))]);
    assert!(!w.implant.restart);
}

#[test]
fn an_update_costs_bounded_radio_energy_and_a_chunk_flood_is_refused_cheaply_link_030() {
    let mut w = World::new();
    let registry = w.implant.implant.registry().clone();
    w.implant = Implanted::with_radio(
        keys(99),
        registry,
        Radio::new(RadioCosts::TYPICAL, RadioPolicy::TYPICAL),
    );
    w.set_up();
    with_updater(&mut w);
    // The largest image a slot holds, in chunks of the largest size.
    let body = REFERENCE_SLOT_SIZE as usize - 256;
    let img = signed(body, Version::new(1, 1, 0, 0), 4);
    assert!(img.len() <= REFERENCE_SLOT_SIZE as usize);
    let budget = w.implant.implant.radio().policy().daily_budget_uj;
    let spent = |w: &World| w.implant.implant.radio().stats().spent_total_uj;
    let before = spent(&w);
    let transcript_start = w.air.transcript().len();
    let begin = UpdateRequest::Begin {
        total: img.len() as u32,
        image_id: [5; 32],
    };
    assert_eq!(
        ask_update(&mut w, Who::Clinician, begin),
        Reply::Update(UpdateReply::Accepted)
    );
    let frames = send_rest(&mut w, &img, 0);
    assert!(matches!(
        ask_update(&mut w, Who::Clinician, UpdateRequest::Verify),
        Reply::Update(UpdateReply::Verified(_))
    ));
    let cost = spent(&w) - before;
    std::println!(
        "update of {} bytes: {frames} chunk frames, {cost} uJ = {:.2} % of the {budget} uJ daily radio budget ({:.2} uJ per KiB)",
        img.len(),
        cost as f64 * 100.0 / budget as f64,
        cost as f64 / (img.len() as f64 / 1024.0)
    );
    // The whole transfer fits the day's radio budget with most of it to spare.
    assert!(cost * 20 < budget, "{cost} uJ");
    // Its cost is the frames' own: no hidden work (each request and answer charged once).
    assert!(cost >= frames as u64 * RadioCosts::TYPICAL.frame(UPDATE_CHUNK_MAX));

    // An attacker replays every recorded chunk frame, ten a second for an hour.
    let recorded: Vec<Vec<u8>> = w.air.transcript()[transcript_start..]
        .iter()
        .filter(|(d, f)| *d == Dir::ToImplant && f.len() > UPDATE_CHUNK_MAX)
        .map(|(_, f)| f.clone())
        .collect();
    // Every chunk frame but the last, shorter one.
    assert!(
        recorded.len() + 1 >= frames,
        "{} of {frames}",
        recorded.len()
    );
    let have_before = w.implant.update.as_ref().unwrap().0.status();
    let before = spent(&w);
    let hour_end = w.fw().now.saturating_add(Duration::from_hours(1));
    let mut sent = 0usize;
    while w.fw().now < hour_end {
        let f = recorded[sent % recorded.len()].clone();
        w.air.inject(Dir::ToImplant, &f);
        w.implant.serve(&mut w.air);
        sent += 1;
        w.fw().run_for(Duration::from_ms(100));
    }
    let outcomes = w.implant.take_outcomes();
    assert!(
        outcomes.iter().all(|o| !matches!(o, Outcome::Answered)),
        "a replayed chunk was answered"
    );
    assert_eq!(w.implant.update.as_ref().unwrap().0.status(), have_before);
    let flood = spent(&w) - before;
    std::println!(
        "chunk-frame flood: {sent} frames in an hour cost {flood} uJ = {:.3} % of the daily budget",
        flood as f64 * 100.0 / budget as f64
    );
    // The receiver backs off: the hour's flood costs less than the update itself.
    assert!(flood < cost, "{flood} uJ");
}

#[test]
fn a_captured_update_replayed_to_a_pump_past_its_version_is_refused_link_033() {
    let mut w = World::new();
    w.set_up();
    with_updater(&mut w);
    // A genuine update to 1.1.0 (counter 4), recorded off the air by the attacker.
    let v11 = signed(6000, Version::new(1, 1, 0, 0), 4);
    let start = w.air.transcript().len();
    let begin = |img: &[u8], id: u8| UpdateRequest::Begin {
        total: img.len() as u32,
        image_id: [id; 32],
    };
    assert_eq!(
        ask_update(&mut w, Who::Clinician, begin(&v11, 1)),
        Reply::Update(UpdateReply::Accepted)
    );
    send_rest(&mut w, &v11, 0);
    assert!(matches!(
        ask_update(&mut w, Who::Clinician, UpdateRequest::Verify),
        Reply::Update(UpdateReply::Verified(_))
    ));
    let captured: Vec<Vec<u8>> = w.air.transcript()[start..]
        .iter()
        .filter(|(d, _)| *d == Dir::ToImplant)
        .map(|(_, f)| f.clone())
        .collect();
    // The clinician installs 1.1.0, then 1.2.0 (counter 5).
    let restart_and_confirm = |w: &mut World| {
        assert_eq!(
            ask_update(w, Who::Clinician, UpdateRequest::MarkForTrial),
            Reply::Update(UpdateReply::Accepted)
        );
        let (_, mut storage) = w.implant.update.take().unwrap();
        let mut u = Updater::boot(&mut storage, hw()).unwrap();
        assert_eq!(u.confirm(&mut storage, true), Ok(Confirmation::Confirmed));
        w.implant.update = Some((u, storage));
        w.connect(Who::Clinician);
    };
    restart_and_confirm(&mut w);
    let v12 = signed(6000, Version::new(1, 2, 0, 0), 5);
    assert_eq!(
        ask_update(&mut w, Who::Clinician, begin(&v12, 2)),
        Reply::Update(UpdateReply::Accepted)
    );
    send_rest(&mut w, &v12, 0);
    assert!(matches!(
        ask_update(&mut w, Who::Clinician, UpdateRequest::Verify),
        Reply::Update(UpdateReply::Verified(_))
    ));
    restart_and_confirm(&mut w);
    let now_running = w.implant.update.as_ref().unwrap().0.status();
    assert_eq!(
        (now_running.running, now_running.security_counter),
        (Version::new(1, 2, 0, 0), 5)
    );

    // Replayed as recorded (the hello and every frame): the hello's counter is spent and
    // every transport frame fails to decrypt; nothing reaches the updater.
    for f in &captured {
        w.air.inject(Dir::ToImplant, f);
        w.implant.serve(&mut w.air);
    }
    let outcomes = w.implant.take_outcomes();
    assert!(
        outcomes
            .iter()
            .all(|o| !matches!(o, Outcome::Answered | Outcome::Connected { .. })),
        "{outcomes:?}"
    );
    assert_eq!(w.implant.update.as_ref().unwrap().0.status(), now_running);
    // Sent again inside a clinician's own session (a stolen programmer): the image is
    // genuine and its signature good, but it is a rollback.
    assert_eq!(
        ask_update(&mut w, Who::Clinician, begin(&v11, 1)),
        Reply::Update(UpdateReply::Accepted)
    );
    send_rest(&mut w, &v11, 0);
    assert_eq!(
        ask_update(&mut w, Who::Clinician, UpdateRequest::Verify),
        Reply::Update(UpdateReply::Refused(Refusal::Image(ImageError::Rollback {
            image: 4,
            stored: 5
        })))
    );
    assert_eq!(
        ask_update(&mut w, Who::Clinician, UpdateRequest::MarkForTrial),
        Reply::Update(UpdateReply::Refused(Refusal::NotVerified))
    );
    assert_eq!(
        w.implant.update.as_ref().unwrap().0.status().running,
        Version::new(1, 2, 0, 0)
    );
}

// ----- the updater's events in the pump's log (FWU-012) ----------------------------

fn firmware_log(w: &World) -> Vec<thecal_pump::event::FirmwareRecord> {
    w.implant
        .fw
        .events
        .iter()
        .filter_map(|e| match e.event {
            Event::FirmwareUpdate(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn the_updaters_events_are_in_the_pumps_log_with_their_codes_fwu_012() {
    let mut w = World::new();
    w.set_up();
    with_updater(&mut w);
    // The start's event is the firmware's to log; here the updater booted before the
    // pump had a log, so it is logged with the first step.
    let img = signed(5000, Version::new(1, 1, 0, 7), 4);
    let begin = UpdateRequest::Begin {
        total: img.len() as u32,
        image_id: [8; 32],
    };
    assert_eq!(
        ask_update(&mut w, Who::Clinician, begin),
        Reply::Update(UpdateReply::Accepted)
    );
    // A gap, refused.
    let _ = ask_update(&mut w, Who::Clinician, chunk(&img, UPDATE_CHUNK_MAX));
    send_rest(&mut w, &img, 0);
    let _ = ask_update(&mut w, Who::Clinician, UpdateRequest::Verify);
    let _ = ask_update(&mut w, Who::Clinician, UpdateRequest::MarkForTrial);
    let log = firmware_log(&w);
    let codes: Vec<u8> = log.iter().map(|r| r.code).collect();
    // Booted, transfer started, a chunk refused, transfer complete, verified, marked:
    // the updater's codes as the update crate documents them.
    assert_eq!(codes, vec![1, 2, 10, 3, 4, 5], "{log:?}");
    assert_eq!((log[0].slot, log[0].version.major, log[0].step), (0, 1, 0));
    assert_eq!((log[1].slot, log[1].value), (1, img.len() as u32));
    // The refused chunk: step 2 (chunk), reason 21 (a gap).
    assert_eq!((log[2].step, log[2].reason), (2, 21));
    assert_eq!(log[3].value, img.len() as u32);
    let v = log[4].version;
    assert_eq!(
        (v.major, v.minor, v.revision, v.build, log[4].value),
        (1, 1, 0, 7, 4)
    );
    assert_eq!(log[5].slot, 1);
    // A log download over the link returns them.
    let first = w
        .implant
        .fw
        .events
        .iter()
        .find(|e| matches!(e.event, Event::FirmwareUpdate(_)))
        .unwrap()
        .seq;
    let r = w.ask_body(
        Who::Clinician,
        Body::Link(LinkCommand::ReadLog { from_seq: first }),
    );
    let Reply::Log { entries, .. } = r else {
        panic!("{r:?}");
    };
    assert!(
        entries
            .iter()
            .any(|e| matches!(e.event, Event::FirmwareUpdate(r) if r.code == 1)),
        "{entries:?}"
    );
    // After the restart into the trial image, its start and confirmation are logged by
    // the firmware (as the virtual implant and the twin do).
    let (mut u, mut storage) = w.implant.update.take().unwrap();
    drop(u);
    u = Updater::boot(&mut storage, hw()).unwrap();
    assert_eq!(u.confirm(&mut storage, true), Ok(Confirmation::Confirmed));
    let now = w.fw().now;
    let n = crate::endpoint::log_update_events(&mut u, &mut w.fw().pump, now);
    w.fw().drain();
    assert_eq!(n, 2);
    let log = firmware_log(&w);
    let tail: Vec<(u8, u8, u8, u32)> = log[6..]
        .iter()
        .map(|r| (r.code, r.step, r.slot, r.value))
        .collect();
    // Booted on trial from slot B; confirmed with counter 4.
    assert_eq!(tail, vec![(1, 1, 1, 0), (6, 0, 0xff, 4)]);
}

// ----- key rotation and revocation over the link (LINK-034 to LINK-036) ------------

fn signed_by(len: usize, version: Version, counter: u32, key: &SigningKey) -> Vec<u8> {
    let body: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    let m = Manifest {
        version,
        security_counter: counter,
        hardware: hw(),
    };
    let mut out = vec![0u8; image::signed_len(len, &m).unwrap()];
    image::sign(&body, &m, key, &mut out).unwrap();
    out
}

/// Sends `img` and asks the pump to verify it.
fn send_and_verify(w: &mut World, img: &[u8]) -> Reply {
    let begin = UpdateRequest::Begin {
        total: img.len() as u32,
        image_id: [4; 32],
    };
    assert_eq!(
        ask_update(w, Who::Clinician, begin),
        Reply::Update(UpdateReply::Accepted)
    );
    send_rest(w, img, 0);
    ask_update(w, Who::Clinician, UpdateRequest::Verify)
}

fn trusted_keys(w: &mut World) -> Vec<([u8; 32], bool)> {
    match ask_update(w, Who::Clinician, UpdateRequest::Keys) {
        Reply::Update(UpdateReply::Keys(k)) => k.iter().map(|k| (k.key, k.revoked)).collect(),
        other => panic!("{other:?}"),
    }
}

fn rotation(old: &SigningKey, new: &SigningKey) -> UpdateRequest {
    let new = new.verifying_key().to_bytes();
    UpdateRequest::RotateKey {
        new,
        signature: KeySignature::from_bytes(&thecal_update::keys::sign_rotation(old, &new)),
    }
}

fn revocation(signer: &SigningKey, subject: &[u8; 32]) -> UpdateRequest {
    UpdateRequest::RevokeKey {
        key: *subject,
        signature: KeySignature::from_bytes(&thecal_update::keys::sign_revocation(signer, subject)),
    }
}

#[test]
fn a_rotated_key_installed_over_the_link_signs_the_next_image_link_034() {
    let mut w = World::new();
    w.set_up();
    with_updater(&mut w);
    let new = SigningKey::from_bytes(&[77; 32]);
    let maker_pub = maker().verifying_key().to_bytes();
    let new_pub = new.verifying_key().to_bytes();
    assert_eq!(trusted_keys(&mut w), vec![(maker_pub, false)]);
    // The maker's statement that the new key replaces it.
    assert_eq!(
        ask_update(&mut w, Who::Clinician, rotation(&maker(), &new)),
        Reply::Update(UpdateReply::Accepted)
    );
    assert_eq!(
        trusted_keys(&mut w),
        vec![(maker_pub, true), (new_pub, false)]
    );
    // An image signed by the new key verifies; one by the old key is refused.
    let by_new = signed_by(3000, Version::new(1, 1, 0, 0), 4, &new);
    assert!(matches!(
        send_and_verify(&mut w, &by_new),
        Reply::Update(UpdateReply::Verified(_))
    ));
    let by_old = signed(3000, Version::new(1, 1, 0, 0), 4);
    assert_eq!(
        send_and_verify(&mut w, &by_old),
        Reply::Update(UpdateReply::Refused(Refusal::Image(ImageError::RevokedKey)))
    );
    // Logged with the clinician's role, and the updater's own event (keys changed: 1).
    assert_eq!(logged(&w, 118), vec![(Role::Clinician, None)]);
    assert!(firmware_log(&w).iter().any(|r| r.code == 9 && r.value == 1));
    // The key list survives the implant's restart (it is in the boot record).
    let (_, mut storage) = w.implant.update.take().unwrap();
    let u = Updater::boot(&mut storage, hw()).unwrap();
    assert_eq!(
        u.keys()
            .iter()
            .map(|k| (k.key, k.revoked))
            .collect::<Vec<_>>(),
        vec![(maker_pub, true), (new_pub, false)]
    );
}

#[test]
fn a_rotation_not_signed_by_a_trusted_key_is_refused_link_034() {
    let mut w = World::new();
    w.set_up();
    with_updater(&mut w);
    let stranger = SigningKey::from_bytes(&[13; 32]);
    let new = SigningKey::from_bytes(&[77; 32]);
    let before = trusted_keys(&mut w);
    // Signed by a key the implant does not trust.
    let refused = Refusal::Key(KeyRefusal::NotSigned);
    assert_eq!(
        ask_update(&mut w, Who::Clinician, rotation(&stranger, &new)),
        Reply::Update(UpdateReply::Refused(refused))
    );
    // A genuine statement with its new key swapped for another.
    let UpdateRequest::RotateKey { signature, .. } = rotation(&maker(), &new) else {
        unreachable!()
    };
    let swapped = UpdateRequest::RotateKey {
        new: stranger.verifying_key().to_bytes(),
        signature,
    };
    assert_eq!(
        ask_update(&mut w, Who::Clinician, swapped),
        Reply::Update(UpdateReply::Refused(refused))
    );
    assert_eq!(trusted_keys(&mut w), before);
    assert_eq!(
        logged(&w, 118),
        vec![
            (Role::Clinician, Some(refused.code())),
            (Role::Clinician, Some(refused.code()))
        ]
    );
    assert_eq!(refused.code(), 60);
}

#[test]
fn a_revoked_keys_image_is_refused_and_the_last_key_cannot_be_revoked_link_035() {
    let mut w = World::new();
    w.set_up();
    // The implant trusts two keys.
    let second = SigningKey::from_bytes(&[91; 32]);
    let second_pub = second.verifying_key().to_bytes();
    let maker_pub = maker().verifying_key().to_bytes();
    let old = signed(4000, Version::new(1, 0, 0, 0), 3);
    let mut s = MemStorage::new(REFERENCE_SLOT_SIZE as usize);
    s.slot_mut(Slot::A)[..old.len()].copy_from_slice(&old);
    provision(
        &mut s,
        Slot::A,
        TrustList::new(&[maker_pub, second_pub]).unwrap(),
        3,
    )
    .unwrap();
    let u = Updater::boot(&mut s, hw()).unwrap();
    w.implant.update = Some((u, s));
    let by_second = signed_by(3000, Version::new(1, 1, 0, 0), 4, &second);
    assert!(matches!(
        send_and_verify(&mut w, &by_second),
        Reply::Update(UpdateReply::Verified(_))
    ));
    // The maker revokes the second key: its image is refused from then on.
    assert_eq!(
        ask_update(&mut w, Who::Clinician, revocation(&maker(), &second_pub)),
        Reply::Update(UpdateReply::Accepted)
    );
    assert_eq!(
        trusted_keys(&mut w),
        vec![(maker_pub, false), (second_pub, true)]
    );
    assert_eq!(
        send_and_verify(&mut w, &by_second),
        Reply::Update(UpdateReply::Refused(Refusal::Image(ImageError::RevokedKey)))
    );
    // The maker's key is the last trusted one: revoking it is refused.
    let last = Refusal::Key(KeyRefusal::LastKey);
    assert_eq!(
        ask_update(&mut w, Who::Clinician, revocation(&maker(), &maker_pub)),
        Reply::Update(UpdateReply::Refused(last))
    );
    assert_eq!(
        trusted_keys(&mut w),
        vec![(maker_pub, false), (second_pub, true)]
    );
    assert_eq!(
        logged(&w, 119),
        vec![
            (Role::Clinician, None),
            (Role::Clinician, Some(last.code()))
        ]
    );
    assert_eq!(last.code(), 67);
}

#[test]
fn only_a_clinician_may_rotate_or_revoke_keys_link_036() {
    let mut w = World::new();
    w.set_up();
    with_updater(&mut w);
    let new = SigningKey::from_bytes(&[77; 32]);
    let before = w.implant.update.as_ref().unwrap().0.keys().clone();
    for who in [Who::Remote, Who::Emergency] {
        w.connect(who);
        for r in [
            rotation(&maker(), &new),
            revocation(&maker(), &maker().verifying_key().to_bytes()),
            UpdateRequest::Keys,
        ] {
            let reply = ask_update(&mut w, who, r.clone());
            assert!(
                matches!(
                    reply,
                    Reply::Refused {
                        code: NOT_PERMITTED,
                        ..
                    }
                ),
                "{who:?} {r:?}: {reply:?}"
            );
        }
    }
    assert_eq!(w.implant.update.as_ref().unwrap().0.keys(), &before);
    for code in [118, 119, 117] {
        assert_eq!(
            logged(&w, code),
            vec![
                (Role::PatientRemote, Some(NOT_PERMITTED)),
                (Role::Emergency, Some(NOT_PERMITTED))
            ],
            "code {code}"
        );
    }
}
