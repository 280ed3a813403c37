//! The implant's update, end to end on an in-memory flash: format, verification,
//! refusals, chunk order, trial boot, anti-rollback, keys and power cuts.

use ed25519_dalek::SigningKey;
use thecal_update::image::{self, HEADER_LEN, ImageSource, Policy, TlvKind};
use thecal_update::keys::{self, sign_revocation, sign_rotation};
use thecal_update::mem::{MemStorage, Tear};
use thecal_update::storage::Region;
use thecal_update::updater::{CHUNK_MAX, Op, RevertCause, provision};
use thecal_update::{
    Confirmation, HardwareId, ImageError, KeyRefusal, Manifest, Refusal, Slot, TrustList,
    UpdateEvent, Updater, Version,
};

const SLOT: usize = 16 * 1024;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn hw() -> HardwareId {
    HardwareId::new("synchromed-40").unwrap()
}

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn signed(
    body: &[u8],
    version: Version,
    counter: u32,
    hardware: HardwareId,
    k: &SigningKey,
) -> Vec<u8> {
    let m = Manifest {
        version,
        security_counter: counter,
        hardware,
    };
    let mut out = vec![0u8; image::signed_len(body.len(), &m).unwrap()];
    let n = image::sign(body, &m, k, &mut out).unwrap();
    assert_eq!(n, out.len());
    out
}

fn v(major: u8, minor: u8, rev: u16) -> Version {
    Version::new(major, minor, rev, 0)
}

/// A provisioned implant running `old` (version 1.0.0, counter 3) from slot A, trusting
/// key 1.
fn implant() -> (MemStorage, Vec<u8>) {
    let old = signed(&body(2000, 1), v(1, 0, 0), 3, hw(), &key(1));
    let mut s = MemStorage::new(SLOT);
    s.slot_mut(Slot::A)[..old.len()].copy_from_slice(&old);
    let trust = TrustList::new(&[key(1).verifying_key().to_bytes()]).unwrap();
    provision(&mut s, Slot::A, trust, 3).unwrap();
    (s, old)
}

fn policy(counter: u32) -> Policy {
    Policy {
        hardware: hw(),
        min_counter: counter,
        min_version: None,
    }
}

fn trust1() -> TrustList {
    TrustList::new(&[key(1).verifying_key().to_bytes()]).unwrap()
}

fn events(u: &mut Updater) -> Vec<UpdateEvent> {
    std::iter::from_fn(|| u.poll_event()).collect()
}

/// Sends `img` in chunks of `chunk` bytes; stops at the first storage failure.
fn transfer(u: &mut Updater, s: &mut MemStorage, img: &[u8], chunk: usize) -> Result<(), Refusal> {
    u.begin(s, img.len() as u32, [7; 32])?;
    for (i, c) in img.chunks(chunk).enumerate() {
        u.receive(s, (i * chunk) as u32, c)?;
    }
    Ok(())
}

#[test]
fn a_signed_image_has_mcuboots_layout_and_verifies_fwu_001() {
    let b = body(1000, 9);
    let img = signed(&b, Version::new(2, 1, 7, 42), 5, hw(), &key(1));
    // The MCUboot header, little-endian.
    assert_eq!(&img[0..4], &0x96f3_b83du32.to_le_bytes());
    assert_eq!(u16::from_le_bytes([img[8], img[9]]), 32);
    assert_eq!(u32::from_le_bytes(img[12..16].try_into().unwrap()), 1000);
    assert_eq!(&img[20..28], &[2, 1, 7, 0, 42, 0, 0, 0]);
    assert_eq!(&img[HEADER_LEN..HEADER_LEN + 1000], &b[..]);
    // Protected TLV info, then the security counter TLV (0x50).
    let p = HEADER_LEN + 1000;
    assert_eq!(u16::from_le_bytes([img[p], img[p + 1]]), 0x6908);
    assert_eq!(u16::from_le_bytes([img[p + 4], img[p + 5]]), 0x50);
    assert_eq!(&img[p + 8..p + 12], &5u32.to_le_bytes());
    // The digest is the SHA-256 of everything before the unprotected area, computed here
    // by another implementation's interface (sha2's one-shot).
    let parsed = image::parse(&img[..]).unwrap();
    use sha2::Digest;
    let expect: [u8; 32] = sha2::Sha256::digest(&img[..parsed.hashed_len as usize]).into();
    assert_eq!(parsed.info.digest, expect);
    assert_eq!(
        parsed.info.key_hash,
        <[u8; 32]>::from(sha2::Sha256::digest(key(1).verifying_key().to_bytes()))
    );
    let info = image::verify(&img[..], &trust1(), &policy(5)).unwrap();
    assert_eq!(info.version, Version::new(2, 1, 7, 42));
    assert_eq!(info.security_counter, 5);
    assert_eq!(info.hardware, hw());
    assert_eq!(info.total_len as usize, img.len());
    // And the signature is the key's over the digest.
    use ed25519_dalek::Verifier;
    let sig = ed25519_dalek::Signature::from_bytes(&parsed.signature);
    key(1).verifying_key().verify(&expect, &sig).unwrap();
}

#[test]
fn bad_signature_wrong_key_and_hash_mismatch_are_refused_fwu_002() {
    let img = signed(&body(500, 2), v(1, 1, 0), 3, hw(), &key(1));
    // Wrong key: signed by a key the implant does not trust.
    let other = signed(&body(500, 2), v(1, 1, 0), 3, hw(), &key(2));
    assert_eq!(
        image::verify(&other[..], &trust1(), &policy(3)),
        Err(ImageError::UnknownKey)
    );
    // Bad signature: the trusted key's hash, another key's signature.
    let mut forged = img.clone();
    let sig_at = forged.len() - 64;
    forged[sig_at..].copy_from_slice(&other[other.len() - 64..]);
    assert_eq!(
        image::verify(&forged[..], &trust1(), &policy(3)),
        Err(ImageError::BadSignature)
    );
    // Hash mismatch: a changed body with the original digest and signature.
    let mut changed = img.clone();
    changed[HEADER_LEN + 10] ^= 1;
    assert_eq!(
        image::verify(&changed[..], &trust1(), &policy(3)),
        Err(ImageError::HashMismatch)
    );
    // A digest recomputed for the change but the old signature: bad signature.
    let parsed = image::parse(&changed[..]).unwrap();
    let d = image::digest(&changed[..], parsed.hashed_len).unwrap();
    let digest_at = changed.len() - 64 - 4 - 32;
    changed[digest_at..digest_at + 32].copy_from_slice(&d);
    assert_eq!(
        image::verify(&changed[..], &trust1(), &policy(3)),
        Err(ImageError::BadSignature)
    );
}

#[test]
fn truncated_trailing_and_foreign_images_are_refused_fwu_002() {
    let img = signed(&body(500, 2), v(1, 1, 0), 3, hw(), &key(1));
    for cut in [0, 1, 31, 32, 100, 532, 536, img.len() - 64, img.len() - 1] {
        let r = image::verify(&img[..cut], &trust1(), &policy(3));
        assert!(
            matches!(r, Err(ImageError::Truncated { len, .. }) if len as usize == cut),
            "{cut}: {r:?}"
        );
    }
    let mut longer = img.clone();
    longer.push(0);
    assert!(matches!(
        image::verify(&longer[..], &trust1(), &policy(3)),
        Err(ImageError::Trailing { .. })
    ));
    let other_hw = signed(
        &body(500, 2),
        v(1, 1, 0),
        3,
        HardwareId::new("prometra-20").unwrap(),
        &key(1),
    );
    assert_eq!(
        image::verify(&other_hw[..], &trust1(), &policy(3)),
        Err(ImageError::WrongHardware {
            image: HardwareId::new("prometra-20").unwrap(),
            ours: hw()
        })
    );
    let mut not_mcuboot = img.clone();
    not_mcuboot[0] ^= 0xff;
    assert!(matches!(
        image::verify(&not_mcuboot[..], &trust1(), &policy(3)),
        Err(ImageError::BadMagic { .. })
    ));
}

#[test]
fn a_bit_flip_anywhere_and_in_every_tlv_is_refused_fwu_002() {
    let img = signed(&body(300, 4), v(1, 1, 0), 3, hw(), &key(1));
    let parsed = image::parse(&img[..]).unwrap();
    let tlvs_start = HEADER_LEN + 300;
    let mut by_area = [0usize; 3]; // header+body, protected TLVs, unprotected TLVs
    let mut reasons = std::collections::BTreeMap::new();
    for byte in 0..img.len() {
        for bit in 0..8 {
            let mut bad = img.clone();
            bad[byte] ^= 1 << bit;
            let r = image::verify(&bad[..], &trust1(), &policy(3));
            let Err(e) = r else {
                panic!("a flip of bit {bit} of byte {byte} verified");
            };
            *reasons
                .entry(format!("{:?}", std::mem::discriminant(&e)))
                .or_insert(0) += 1;
            let area = if byte < tlvs_start {
                0
            } else if byte < parsed.hashed_len as usize {
                1
            } else {
                2
            };
            by_area[area] += 1;
        }
    }
    assert_eq!(by_area.iter().sum::<usize>(), img.len() * 8);
    // Every TLV's bytes (header and value) were flipped: both areas are covered whole.
    assert_eq!(by_area[1], (parsed.hashed_len as usize - tlvs_start) * 8);
    assert_eq!(by_area[2], (img.len() - parsed.hashed_len as usize) * 8);
    assert!(reasons.len() >= 5, "{reasons:?}");
}

#[test]
fn missing_duplicate_and_unknown_tlvs_are_refused_fwu_002() {
    let img = signed(&body(100, 4), v(1, 1, 0), 3, hw(), &key(1));
    let u = img.len() - image::UNPROTECTED_LEN;
    // Turn the key-hash TLV (first unprotected) into a second SHA-256 TLV.
    let mut dup = img.clone();
    dup[u + 4..u + 6].copy_from_slice(&0x10u16.to_le_bytes());
    assert_eq!(
        image::parse(&dup[..]).map(|_| ()),
        Err(ImageError::DuplicateTlv(TlvKind::Sha256))
    );
    // An unknown type.
    let mut unknown = img.clone();
    unknown[u + 4..u + 6].copy_from_slice(&0x30u16.to_le_bytes());
    assert_eq!(
        image::parse(&unknown[..]).map(|_| ()),
        Err(ImageError::UnknownTlv { kind: 0x30 })
    );
}

#[test]
fn ed25519_verification_is_strict_fwu_003() {
    let k = key(1);
    let msg = [5u8; 32];
    use ed25519_dalek::Signer;
    let sig = k.sign(&msg).to_bytes();
    assert!(image::verify_signature(&k.verifying_key().to_bytes(), &msg, &sig).is_ok());
    // S + L (non-canonical S) is refused.
    let l: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut s_plus_l = sig;
    let mut carry = 0u16;
    for i in 0..32 {
        let t = u16::from(s_plus_l[32 + i]) + u16::from(l[i]) + carry;
        s_plus_l[32 + i] = t as u8;
        carry = t >> 8;
    }
    assert!(image::verify_signature(&k.verifying_key().to_bytes(), &msg, &s_plus_l).is_err());
    // A small-order key (the identity) is never valid.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert!(!keys::valid_key(&identity));
}

#[test]
fn an_older_security_counter_or_version_is_refused_fwu_004() {
    let (mut s, _old) = implant();
    let mut u = Updater::boot(&mut s, hw()).unwrap();
    // Counter 2 < stored 3: a rollback, even with a newer version.
    let rollback = signed(&body(1500, 3), v(9, 0, 0), 2, hw(), &key(1));
    transfer(&mut u, &mut s, &rollback, 512).unwrap();
    assert_eq!(
        u.verify(&s),
        Err(Refusal::Image(ImageError::Rollback {
            image: 2,
            stored: 3
        }))
    );
    assert_eq!(u.mark_for_trial(&mut s), Err(Refusal::NotVerified));
    // An older version with the same counter: a downgrade.
    let older = signed(&body(1500, 3), v(0, 9, 0), 3, hw(), &key(1));
    transfer(&mut u, &mut s, &older, 512).unwrap();
    assert_eq!(
        u.verify(&s),
        Err(Refusal::Image(ImageError::Downgrade {
            image: v(0, 9, 0),
            running: v(1, 0, 0)
        }))
    );
    let ev = events(&mut u);
    assert!(ev.contains(&UpdateEvent::Refused {
        op: Op::Verify,
        refusal: Refusal::Image(ImageError::Rollback {
            image: 2,
            stored: 3
        })
    }));
}

#[test]
fn chunks_with_gaps_replays_or_reordering_are_refused_and_the_implant_says_what_it_has_fwu_005() {
    let (mut s, old) = implant();
    let mut u = Updater::boot(&mut s, hw()).unwrap();
    let img = signed(&body(3000, 5), v(1, 1, 0), 4, hw(), &key(1));
    assert_eq!(u.receive(&mut s, 0, &img[..10]), Err(Refusal::NoTransfer));
    u.begin(&mut s, img.len() as u32, [9; 32]).unwrap();
    assert_eq!(u.receive(&mut s, 0, &img[..512]), Ok(512));
    // A gap (a reordered chunk arriving early).
    assert_eq!(
        u.receive(&mut s, 1024, &img[1024..1536]),
        Err(Refusal::Gap {
            expected: 512,
            got: 1024
        })
    );
    // A replay of the first chunk, and an overlapping one.
    assert_eq!(
        u.receive(&mut s, 0, &img[..512]),
        Err(Refusal::Replay {
            expected: 512,
            got: 0
        })
    );
    assert_eq!(
        u.receive(&mut s, 256, &img[256..768]),
        Err(Refusal::Replay {
            expected: 512,
            got: 256
        })
    );
    // Empty, oversize and past-the-end chunks.
    assert_eq!(
        u.receive(&mut s, 512, &[]),
        Err(Refusal::ChunkLength { len: 0 })
    );
    assert_eq!(
        u.receive(&mut s, 512, &vec![0; CHUNK_MAX + 1]),
        Err(Refusal::ChunkLength {
            len: CHUNK_MAX as u32 + 1
        })
    );
    // The implant reports what it has: the programmer resumes there (a dropped link).
    let st = u.status().transfer.unwrap();
    assert_eq!(
        (st.have, st.total, st.image_id),
        (512, img.len() as u32, [9; 32])
    );
    let mut at = st.have as usize;
    while at < img.len() {
        let end = (at + 700).min(img.len());
        assert_eq!(u.receive(&mut s, at as u32, &img[at..end]), Ok(end as u32));
        at = end;
    }
    assert!(matches!(
        u.receive(&mut s, at as u32, &[1]),
        Err(Refusal::BeyondImage { .. })
    ));
    assert_eq!(u.verify(&s).unwrap().version, v(1, 1, 0));
    // Every refusal was logged with its typed reason; the running slot was never written.
    let refused: Vec<Refusal> = events(&mut u)
        .into_iter()
        .filter_map(|e| match e {
            UpdateEvent::Refused {
                op: Op::Chunk,
                refusal,
            } => Some(refusal),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 7, "{refused:?}");
    assert!(s.written().iter().all(|r| *r != Region::Slot(Slot::A)));
    assert_eq!(&s.slot(Slot::A)[..old.len()], &old[..]);
    // Code values are distinct per reason.
    let codes: std::collections::BTreeSet<u8> = refused.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), 5);
}

#[test]
fn a_received_image_that_is_truncated_or_for_other_hardware_is_refused_fwu_005() {
    let (mut s, _) = implant();
    let mut u = Updater::boot(&mut s, hw()).unwrap();
    let img = signed(&body(3000, 5), v(1, 1, 0), 4, hw(), &key(1));
    let short = &img[..img.len() - 10];
    transfer(&mut u, &mut s, short, 512).unwrap();
    assert!(matches!(
        u.verify(&s),
        Err(Refusal::Image(ImageError::Truncated { .. }))
    ));
    let foreign = signed(
        &body(3000, 5),
        v(1, 1, 0),
        4,
        HardwareId::new("external").unwrap(),
        &key(1),
    );
    transfer(&mut u, &mut s, &foreign, 512).unwrap();
    assert!(matches!(
        u.verify(&s),
        Err(Refusal::Image(ImageError::WrongHardware { .. }))
    ));
    assert_eq!(
        u.begin(&mut s, SLOT as u32 + 1, [0; 32]),
        Err(Refusal::TooLarge {
            total: SLOT as u32 + 1,
            max: SLOT as u32
        })
    );
    u.begin(&mut s, img.len() as u32, [0; 32]).unwrap();
    u.receive(&mut s, 0, &img[..100]).unwrap();
    assert_eq!(
        u.verify(&s),
        Err(Refusal::Incomplete {
            have: 100,
            total: img.len() as u32
        })
    );
}

#[test]
fn a_trial_that_passes_confirms_and_advances_the_counter_fwu_007() {
    let (mut s, _old) = implant();
    let mut u = Updater::boot(&mut s, hw()).unwrap();
    let new = signed(&body(3000, 6), v(1, 1, 0), 4, hw(), &key(1));
    transfer(&mut u, &mut s, &new, 512).unwrap();
    u.verify(&s).unwrap();
    u.mark_for_trial(&mut s).unwrap();
    assert!(u.status().trial_pending);
    assert_eq!(u.begin(&mut s, 1000, [0; 32]), Err(Refusal::TrialPending));
    // Restart: the trial runs; the counter has not moved yet.
    let mut u = Updater::boot(&mut s, hw()).unwrap();
    let st = u.status();
    assert_eq!(
        (st.slot, st.running, st.on_trial, st.security_counter),
        (Slot::B, v(1, 1, 0), true, 3)
    );
    assert_eq!(u.begin(&mut s, 1000, [0; 32]), Err(Refusal::TrialRunning));
    assert_eq!(u.confirm(&mut s, true), Ok(Confirmation::Confirmed));
    assert_eq!(u.status().security_counter, 4);
    assert!(events(&mut u).contains(&UpdateEvent::Confirmed {
        version: v(1, 1, 0),
        security_counter: 4
    }));
    // And it stays: the next start runs B, confirmed.
    let u = Updater::boot(&mut s, hw()).unwrap();
    let st = u.status();
    assert_eq!(
        (st.slot, st.on_trial, st.security_counter),
        (Slot::B, false, 4)
    );
}

#[test]
fn a_trial_whose_self_test_fails_or_that_never_confirms_reverts_fwu_007() {
    for fail_by_restart in [false, true] {
        let (mut s, _old) = implant();
        let mut u = Updater::boot(&mut s, hw()).unwrap();
        let new = signed(&body(3000, 6), v(1, 1, 0), 4, hw(), &key(1));
        transfer(&mut u, &mut s, &new, 512).unwrap();
        u.verify(&s).unwrap();
        u.mark_for_trial(&mut s).unwrap();
        let mut u = Updater::boot(&mut s, hw()).unwrap();
        assert!(u.status().on_trial);
        let cause = if fail_by_restart {
            RevertCause::NotConfirmed
        } else {
            assert_eq!(u.confirm(&mut s, false), Ok(Confirmation::Reverted));
            assert_eq!(
                u.begin(&mut s, 1000, [0; 32]),
                Err(Refusal::RestartRequired)
            );
            RevertCause::SelfTestFailed
        };
        let mut u2 = Updater::boot(&mut s, hw()).unwrap();
        let st = u2.status();
        assert_eq!(
            (st.slot, st.running, st.on_trial, st.security_counter),
            (Slot::A, v(1, 0, 0), false, 3)
        );
        let logged: Vec<_> = events(&mut u).into_iter().chain(events(&mut u2)).collect();
        assert!(
            logged.iter().any(
                |e| matches!(e, UpdateEvent::Reverted { to: Slot::A, cause: c } if *c == cause)
            ),
            "{logged:?}"
        );
    }
}

#[test]
fn a_damaged_trial_image_is_not_started_fwu_007() {
    let (mut s, _old) = implant();
    let mut u = Updater::boot(&mut s, hw()).unwrap();
    let new = signed(&body(3000, 6), v(1, 1, 0), 4, hw(), &key(1));
    transfer(&mut u, &mut s, &new, 512).unwrap();
    u.verify(&s).unwrap();
    u.mark_for_trial(&mut s).unwrap();
    s.slot_mut(Slot::B)[100] ^= 0x40; // bit rot between the mark and the restart
    let mut u = Updater::boot(&mut s, hw()).unwrap();
    assert_eq!(u.status().slot, Slot::A);
    assert!(events(&mut u).contains(&UpdateEvent::Reverted {
        to: Slot::A,
        cause: RevertCause::ImageInvalid(ImageError::HashMismatch)
    }));
}

/// Runs a whole update on `s`: transfer, verify, mark, restart, confirm. Returns at the
/// first failure (a power cut).
fn whole_update(s: &mut MemStorage, new: &[u8]) -> Result<(), ()> {
    let mut u = Updater::boot(s, hw()).map_err(|_| ())?;
    transfer(&mut u, s, new, 700).map_err(|_| ())?;
    u.verify(s).map_err(|_| ())?;
    u.mark_for_trial(s).map_err(|_| ())?;
    let mut u = Updater::boot(s, hw()).map_err(|_| ())?;
    if s.is_cut() || !u.status().on_trial {
        return Err(());
    }
    u.confirm(s, true).map_err(|_| ())?;
    Ok(())
}

#[test]
fn a_power_cut_at_every_write_runs_the_old_or_the_confirmed_new_image_never_a_mix_fwu_006() {
    let new = signed(&body(5000, 8), v(1, 1, 0), 4, hw(), &key(1));
    // Count the writes of an uninterrupted update and its confirmation.
    let (mut s, old) = implant();
    let base = s.writes();
    whole_update(&mut s, &new).unwrap();
    let total = s.writes() - base;
    assert!(total >= 10, "{total}");
    // [old image, new image on trial (then reverted), confirmed new image]
    let mut outcomes = [0usize; 3];
    for n in 0..total {
        for tear in [
            Tear::Nothing,
            Tear::Half,
            Tear::AllButLast,
            Tear::HalfThenErased,
        ] {
            let (mut s, _) = implant();
            s.cut_at(n, tear);
            assert!(whole_update(&mut s, &new).is_err(), "write {n} was not cut");
            s.restore_power();
            // After the cut: a complete, verified image, the old or the new.
            let mut u = Updater::boot(&mut s, hw()).unwrap();
            let (slot, info) = u.running();
            let running = &s.slot(slot)[..info.total_len as usize];
            let is_old = running == &old[..];
            let is_new = running == &new[..];
            assert!(is_old ^ is_new, "write {n} {tear:?}: neither image");
            // The old image's slot is never written.
            assert_eq!(&s.slot(Slot::A)[..old.len()], &old[..]);
            let st = u.status();
            if is_new && st.on_trial {
                // A trial: the counter has not moved, and without confirmation the next
                // start reverts to the old image.
                assert_eq!(st.security_counter, 3);
                outcomes[1] += 1;
                drop(u);
                u = Updater::boot(&mut s, hw()).unwrap();
                assert_eq!(u.running().0, Slot::A, "write {n} {tear:?}");
            }
            let st = u.status();
            if st.slot == Slot::B {
                // Confirmed new: the counter is the new image's.
                assert_eq!(
                    (st.on_trial, st.security_counter),
                    (false, 4),
                    "write {n} {tear:?}"
                );
                outcomes[2] += 1;
            } else {
                assert_eq!(st.security_counter, 3, "write {n} {tear:?}");
                outcomes[0] += 1;
                // And the update can be done again from there.
                whole_update(&mut s, &new).unwrap();
                let u = Updater::boot(&mut s, hw()).unwrap();
                assert_eq!((u.status().slot, u.status().security_counter), (Slot::B, 4));
            }
        }
    }
    // A cut anywhere before the confirmation's record is whole leaves the old image
    // confirmed (the cut write itself is never completed); some cuts leave the new one
    // on trial, which the next start reverts.
    assert_eq!(outcomes[0] + outcomes[2], total * 4, "{outcomes:?}");
    assert!(outcomes[1] > 0, "{outcomes:?}");
}

#[test]
fn keys_rotate_by_the_old_keys_signature_and_a_revoked_key_is_refused_fwu_009() {
    let (mut s, _) = implant();
    let mut u = Updater::boot(&mut s, hw()).unwrap();
    let k2 = key(2).verifying_key().to_bytes();
    let k3 = key(3).verifying_key().to_bytes();
    // A rotation signed by a key the implant does not trust is refused.
    assert_eq!(
        u.rotate_key(&mut s, &k3, &sign_rotation(&key(2), &k3)),
        Err(Refusal::Key(KeyRefusal::NotSigned))
    );
    // Key 1 signs key 2 in: key 1 is revoked.
    u.rotate_key(&mut s, &k2, &sign_rotation(&key(1), &k2))
        .unwrap();
    let by1 = signed(&body(1000, 1), v(1, 1, 0), 4, hw(), &key(1));
    transfer(&mut u, &mut s, &by1, 512).unwrap();
    assert_eq!(u.verify(&s), Err(Refusal::Image(ImageError::RevokedKey)));
    let by2 = signed(&body(1000, 1), v(1, 1, 0), 4, hw(), &key(2));
    transfer(&mut u, &mut s, &by2, 512).unwrap();
    assert!(u.verify(&s).is_ok());
    // The rotation replayed cannot bring key 2 back twice, nor key 1 back ever.
    assert_eq!(
        u.rotate_key(&mut s, &k2, &sign_rotation(&key(1), &k2)),
        Err(Refusal::Key(KeyRefusal::NotSigned))
    );
    let k1 = key(1).verifying_key().to_bytes();
    assert_eq!(
        u.rotate_key(&mut s, &k1, &sign_rotation(&key(2), &k1)),
        Err(Refusal::Key(KeyRefusal::WasRevoked))
    );
    // Revocation: the last trusted key cannot be revoked.
    assert_eq!(
        u.revoke_key(&mut s, &k2, &sign_revocation(&key(2), &k2)),
        Err(Refusal::Key(KeyRefusal::LastKey))
    );
    u.rotate_key(&mut s, &k3, &sign_rotation(&key(2), &k3))
        .unwrap();
    assert_eq!(
        u.revoke_key(&mut s, &k3, &sign_revocation(&key(4), &k3)),
        Err(Refusal::Key(KeyRefusal::NotSigned))
    );
    // Keys survive a restart (they are in the boot record).
    let u = Updater::boot(&mut s, hw()).unwrap();
    let listed: Vec<(bool, [u8; 32])> = u.keys().iter().map(|k| (k.revoked, k.key)).collect();
    assert_eq!(listed, vec![(true, k1), (true, k2), (false, k3)]);
}

#[test]
fn a_torn_boot_record_leaves_the_previous_one_in_force_fwu_006() {
    let (mut s, _) = implant();
    let mut u = Updater::boot(&mut s, hw()).unwrap();
    let k2 = key(2).verifying_key().to_bytes();
    s.cut_at(0, Tear::AllButLast);
    assert_eq!(
        u.rotate_key(&mut s, &k2, &sign_rotation(&key(1), &k2)),
        Err(Refusal::Storage)
    );
    s.restore_power();
    let u = Updater::boot(&mut s, hw()).unwrap();
    assert_eq!(u.keys(), &trust1());
    // A record with any byte changed does not decode.
    let (rec, _) = thecal_update::storage::load(&s).unwrap();
    let bytes = rec.encode();
    for i in 0..bytes.len() {
        let mut b = bytes;
        b[i] ^= 0x01;
        assert!(
            thecal_update::storage::BootRecord::decode(&b).is_none(),
            "byte {i}"
        );
    }
}

#[test]
fn every_refusal_is_an_event_with_a_stable_code_fwu_008() {
    let (mut s, _) = implant();
    let mut u = Updater::boot(&mut s, hw()).unwrap();
    assert!(matches!(
        events(&mut u)[..],
        [UpdateEvent::Booted {
            slot: Slot::A,
            trial: false,
            ..
        }]
    ));
    let _ = u.verify(&s);
    let _ = u.confirm(&mut s, true);
    let _ = u.mark_for_trial(&mut s);
    let _ = u.begin(&mut s, 3, [0; 32]);
    let ev = events(&mut u);
    assert_eq!(
        ev,
        vec![
            UpdateEvent::Refused {
                op: Op::Verify,
                refusal: Refusal::NoTransfer
            },
            UpdateEvent::Refused {
                op: Op::Confirm,
                refusal: Refusal::NotOnTrial
            },
            UpdateEvent::Refused {
                op: Op::MarkTrial,
                refusal: Refusal::NotVerified
            },
            UpdateEvent::Refused {
                op: Op::Begin,
                refusal: Refusal::TooSmall { total: 3 }
            },
        ]
    );
    // The queue is bounded: a flood is counted, not stored.
    for _ in 0..100 {
        let _ = u.receive(&mut s, 0, &[1]);
    }
    assert_eq!(
        u.dropped_events(),
        100 - thecal_update::updater::EVENTS_MAX as u32
    );
}

#[test]
fn inspect_reads_any_bytes_without_panic_fwu_001() {
    let img = signed(&body(64, 4), v(1, 1, 0), 3, hw(), &key(1));
    let mut rng = 0x1234_5678u32;
    for _ in 0..20_000 {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let mut b = img.clone();
        let n = (rng % 6) as usize;
        for j in 0..=n {
            let at = (rng.rotate_left(j as u32 * 7) as usize) % b.len();
            b[at] = (rng >> (j % 24)) as u8;
        }
        let len = if rng % 3 == 0 {
            (rng as usize >> 3) % b.len()
        } else {
            b.len()
        };
        let _ = image::parse(&b[..len]);
        let _ = image::verify(&b[..len], &trust1(), &policy(0));
        assert!(b[..len].len() as u32 == ImageSource::len(&b[..len]));
    }
}

#[test]
fn a_transfer_resumes_after_a_power_cut_at_every_write_from_what_the_implant_reports_fwu_014() {
    const CHUNK: usize = 700;
    let new = signed(&body(5000, 8), v(1, 1, 0), 4, hw(), &key(1));
    let chunks = new.len().div_ceil(CHUNK);
    // An uninterrupted transfer writes the begin's record, then each chunk and a record
    // counting it.
    let (mut s, _) = implant();
    let mut u = Updater::boot(&mut s, hw()).unwrap();
    let base = s.writes();
    transfer(&mut u, &mut s, &new, CHUNK).unwrap();
    let writes = s.writes() - base;
    assert_eq!(writes, 1 + 2 * chunks);
    let mut resumed = 0;
    for n in 0..writes {
        for tear in [
            Tear::Nothing,
            Tear::Half,
            Tear::AllButLast,
            Tear::HalfThenErased,
        ] {
            let (mut s, _) = implant();
            let mut u = Updater::boot(&mut s, hw()).unwrap();
            s.cut_at(n, tear);
            assert!(transfer(&mut u, &mut s, &new, CHUNK).is_err());
            s.restore_power();
            drop(u);
            // The restart: the implant reports what it has.
            let mut u = Updater::boot(&mut s, hw()).unwrap();
            let from = match u.status().transfer {
                None => {
                    // Only a cut in the begin's own record leaves no transfer.
                    assert_eq!(n, 0, "{tear:?}");
                    u.begin(&mut s, new.len() as u32, [7; 32]).unwrap();
                    0
                }
                Some(t) => {
                    assert_eq!((t.total as usize, t.image_id), (new.len(), [7; 32]));
                    let have = t.have as usize;
                    // Write 2i+1 is chunk i, write 2i+2 its record: the chunks counted
                    // are those whose record was whole before the cut; a torn chunk or
                    // a torn record is never counted.
                    assert_eq!(have, (n - 1) / 2 * CHUNK, "write {n} {tear:?}");
                    assert_eq!(&s.slot(Slot::B)[..have], &new[..have], "write {n}");
                    resumed += 1;
                    have
                }
            };
            // The programmer resumes where the implant says; a chunk from before it is
            // refused as a replay.
            if from > 0 {
                assert!(matches!(
                    u.receive(&mut s, 0, &new[..CHUNK]),
                    Err(Refusal::Replay { .. })
                ));
            }
            for (i, c) in new[from..].chunks(CHUNK).enumerate() {
                u.receive(&mut s, (from + i * CHUNK) as u32, c).unwrap();
            }
            let info = u.verify(&s).unwrap();
            assert_eq!(info.version, v(1, 1, 0), "write {n} {tear:?}");
        }
    }
    assert_eq!(resumed, 4 * (writes - 1));
    // A transfer that was marked for trial, or cancelled, is never resumed.
    let (mut s, _) = implant();
    whole_update(&mut s, &new).unwrap();
    let u = Updater::boot(&mut s, hw()).unwrap();
    assert_eq!(u.status().transfer, None);
    let (mut s, _) = implant();
    let mut u = Updater::boot(&mut s, hw()).unwrap();
    u.begin(&mut s, new.len() as u32, [7; 32]).unwrap();
    u.receive(&mut s, 0, &new[..CHUNK]).unwrap();
    drop(u);
    let mut u = Updater::boot(&mut s, hw()).unwrap();
    assert_eq!(u.status().transfer.map(|t| t.have), Some(CHUNK as u32));
    u.cancel(&mut s).unwrap();
    let u = Updater::boot(&mut s, hw()).unwrap();
    assert_eq!(u.status().transfer, None);
}
