//! Wycheproof vectors against the primitives the Noise sessions use: ChaCha20-Poly1305
//! (RustCrypto `chacha20poly1305` 0.10, through snow's `ChaChaPoly` cipher where the nonce
//! fits Noise's layout) and X25519 (`curve25519-dalek` 4, through snow's `25519` DH).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use curve25519_dalek::montgomery::MontgomeryPoint;
use snow::params::{CipherChoice, DHChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use wycheproof::TestResult;

/// Whether the AEAD accepts (key, nonce, aad, ct, tag) and returns `pt`, and produces
/// exactly (ct, tag) when encrypting `pt`. `None`: the inputs are rejected.
fn chacha(key: &[u8], nonce: &[u8], aad: &[u8], pt: &[u8], ct: &[u8], tag: &[u8]) -> Option<bool> {
    if nonce.len() != 12 || tag.len() != 16 {
        return None;
    }
    let aead = ChaCha20Poly1305::new_from_slice(key).ok()?;
    let nonce = Nonce::from_slice(nonce);
    let mut buf = ct.to_vec();
    aead.decrypt_in_place_detached(nonce, aad, &mut buf, Tag::from_slice(tag))
        .ok()?;
    let mut enc = pt.to_vec();
    let t = aead.encrypt_in_place_detached(nonce, aad, &mut enc).ok()?;
    Some(buf == pt && enc == ct && t.as_slice() == tag)
}

#[test]
fn wycheproof_chacha20_poly1305_link_001() {
    let set =
        wycheproof::aead::TestSet::load(wycheproof::aead::TestName::ChaCha20Poly1305).unwrap();
    let (mut applicable, mut passed) = (0, 0);
    let (mut snow_applicable, mut snow_passed) = (0, 0);
    let mut failures = Vec::new();
    for group in &set.test_groups {
        for t in &group.tests {
            applicable += 1;
            let r = chacha(&t.key, &t.nonce, &t.aad, &t.pt, &t.ct, &t.tag);
            let ok = match t.result {
                TestResult::Valid => r == Some(true),
                TestResult::Invalid => r.is_none(),
                TestResult::Acceptable => r != Some(false),
            };
            if ok {
                passed += 1;
            } else {
                failures.push((t.tc_id, t.result, r));
            }
            // Through snow's cipher: Noise nonces are 4 zero bytes then a little-endian
            // counter, and keys and tags have fixed sizes.
            if t.key.len() == 32
                && t.tag.len() == 16
                && t.nonce.len() == 12
                && t.nonce[..4] == [0, 0, 0, 0]
            {
                snow_applicable += 1;
                let n = u64::from_le_bytes(t.nonce[4..].try_into().unwrap());
                let mut cipher = DefaultResolver
                    .resolve_cipher(&CipherChoice::ChaChaPoly)
                    .unwrap();
                cipher.set(t.key[..].try_into().unwrap());
                let mut sealed = t.ct.to_vec();
                sealed.extend_from_slice(&t.tag);
                let mut out = vec![0u8; sealed.len()];
                let dec = cipher.decrypt(n, &t.aad, &sealed, &mut out);
                let mut enc = vec![0u8; t.pt.len() + 16];
                let len = cipher.encrypt(n, &t.aad, &t.pt, &mut enc);
                let ok = match t.result {
                    TestResult::Valid => {
                        dec == Ok(t.pt.len())
                            && out[..t.pt.len()] == t.pt[..]
                            && enc[..len] == sealed[..]
                    }
                    TestResult::Invalid => dec.is_err(),
                    TestResult::Acceptable => true,
                };
                if ok {
                    snow_passed += 1;
                } else {
                    failures.push((t.tc_id, t.result, None));
                }
            }
        }
    }
    println!(
        "wycheproof chacha20_poly1305 (chacha20poly1305 0.10): {passed} passed of {applicable} applicable"
    );
    println!(
        "wycheproof chacha20_poly1305 (snow ChaChaPoly, Noise nonce layout): {snow_passed} passed of {snow_applicable} applicable"
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(applicable, set.number_of_tests);
    assert!(snow_applicable > 0);
}

#[test]
fn wycheproof_x25519_link_001() {
    let set = wycheproof::xdh::TestSet::load(wycheproof::xdh::TestName::X25519).unwrap();
    let (mut applicable, mut passed) = (0, 0);
    let mut failures = Vec::new();
    for group in &set.test_groups {
        for t in &group.tests {
            applicable += 1;
            let ok = match (
                <[u8; 32]>::try_from(&t.public_key[..]),
                <[u8; 32]>::try_from(&t.private_key[..]),
            ) {
                (Ok(public), Ok(private)) => {
                    let dalek = MontgomeryPoint(public).mul_clamped(private).to_bytes();
                    let mut dh = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
                    dh.set(&private);
                    let mut via_snow = [0u8; 32];
                    let snow_ok = dh.dh(&public, &mut via_snow).is_ok();
                    let same = snow_ok && via_snow == dalek && dalek[..] == t.shared_secret[..];
                    match t.result {
                        // Valid and acceptable (low-order, non-canonical, twist points):
                        // X25519 as specified (RFC 7748) computes them; the shared secret
                        // must match.
                        TestResult::Valid | TestResult::Acceptable => same,
                        TestResult::Invalid => !same,
                    }
                }
                // A key of the wrong length cannot reach the function.
                _ => t.result.must_fail(),
            };
            if ok {
                passed += 1;
            } else {
                failures.push((t.tc_id, t.result, t.flags.clone()));
            }
        }
    }
    println!(
        "wycheproof x25519 (curve25519-dalek 4 and snow 25519): {passed} passed of {applicable} applicable"
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(applicable, set.number_of_tests);
}
