//! Noise conformance against the cacophony test vectors.
//!
//! Every vector of thecal's suite is replayed through the same set-up the sessions use
//! (`session::build`: snow's pure-Rust primitives, the caller's entropy as the ephemeral
//! key), with the vector's prologue, keys and PSKs; every handshake ciphertext, the
//! handshake hash, and every transport ciphertext (through [`Session`], thecal's transport
//! with explicit nonces) must match byte for byte. The vectors carry payloads in handshake
//! messages, which thecal's own handshake refuses by policy, so the handshake part drives
//! snow's state directly.
//!
//! Beyond the one suite, every `25519_ChaChaPoly_BLAKE2s` vector (all patterns, PSK
//! modifiers, deferred patterns) is replayed the same way.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::println;

use serde_json::Value;

use crate::frame::{HEADER_LEN, MAX_FRAME};
use crate::session::{self, PROTOCOL_NAME, Session, Setup};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/test-vectors/noise/cacophony.txt"
);

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(VECTORS).expect("cacophony vectors beside the repository");
    let json: Value = serde_json::from_str(&text).expect("cacophony JSON");
    json["vectors"].as_array().expect("a vectors array").clone()
}

fn hex(v: &Value, key: &str) -> Option<Vec<u8>> {
    let s = v.get(key)?.as_str()?;
    Some(decode_hex(s))
}

fn decode_hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn key32(bytes: Option<Vec<u8>>) -> Option<[u8; 32]> {
    bytes.map(|b| <[u8; 32]>::try_from(b.as_slice()).expect("a 32-byte key"))
}

/// The PSK locations named in a protocol's pattern, in order (`IKpsk1+psk2` → [1, 2]).
fn psk_locations(protocol: &str) -> Vec<u8> {
    let pattern = protocol.split('_').nth(1).expect("a pattern");
    pattern
        .split(['+'])
        .filter_map(|m| {
            let at = m.find("psk")?;
            m[at + 3..].parse().ok()
        })
        .collect()
}

fn is_one_way(protocol: &str) -> bool {
    let pattern = protocol.split('_').nth(1).expect("a pattern");
    let base: String = pattern
        .chars()
        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        .collect();
    matches!(base.as_str(), "N" | "K" | "X")
}

/// Replays one vector; `Err` says what differed.
fn replay(v: &Value) -> Result<(), String> {
    let protocol = v["protocol_name"].as_str().ok_or("no protocol name")?;
    let locations = psk_locations(protocol);
    let psks = |key: &str| -> Vec<(u8, [u8; 32])> {
        let list = v
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        assert_eq!(list.len(), locations.len(), "{protocol}: {key} count");
        locations
            .iter()
            .zip(list)
            .map(|(l, p)| {
                (
                    *l,
                    key32(Some(decode_hex(p.as_str().expect("hex psk")))).expect("psk"),
                )
            })
            .collect()
    };
    let (init_psks, resp_psks) = (psks("init_psks"), psks("resp_psks"));
    let side = |initiator: bool, prefix: &str, psks: &[(u8, [u8; 32])]| {
        let prologue = hex(v, &alloc::format!("{prefix}_prologue")).unwrap_or_default();
        let local = hex(v, &alloc::format!("{prefix}_static"));
        let remote = hex(v, &alloc::format!("{prefix}_remote_static"));
        let entropy = key32(hex(v, &alloc::format!("{prefix}_ephemeral")));
        session::build(&Setup {
            protocol,
            initiator,
            prologue: &prologue,
            local_static: local.as_deref(),
            remote_static: remote.as_deref(),
            entropy,
            psks,
        })
        .map_err(|e| alloc::format!("{protocol}: set-up failed: {e:?}"))
    };
    let mut init = side(true, "init", &init_psks)?;
    let mut resp = side(false, "resp", &resp_psks)?;

    let messages = v["messages"].as_array().ok_or("no messages")?;
    let mut buf = [0u8; MAX_FRAME];
    let mut out = [0u8; MAX_FRAME];
    let mut i = 0;
    // Handshake.
    while !(init.is_handshake_finished() && resp.is_handshake_finished()) {
        let m = messages.get(i).ok_or("vector ends inside the handshake")?;
        let payload = hex(m, "payload").ok_or("no payload")?;
        let expected = hex(m, "ciphertext").ok_or("no ciphertext")?;
        let (writer, reader) = if init.is_my_turn() {
            (&mut init, &mut resp)
        } else {
            (&mut resp, &mut init)
        };
        let n = writer
            .write_message(&payload, &mut buf)
            .map_err(|e| alloc::format!("{protocol}: message {i}: write: {e:?}"))?;
        if buf[..n] != expected[..] {
            return Err(alloc::format!("{protocol}: handshake message {i} differs"));
        }
        let k = reader
            .read_message(&buf[..n], &mut out)
            .map_err(|e| alloc::format!("{protocol}: message {i}: read: {e:?}"))?;
        if out[..k] != payload[..] {
            return Err(alloc::format!("{protocol}: handshake payload {i} differs"));
        }
        i += 1;
    }
    let hash = hex(v, "handshake_hash").ok_or("no handshake hash")?;
    if init.get_handshake_hash() != hash.as_slice() || resp.get_handshake_hash() != hash.as_slice()
    {
        return Err(alloc::format!("{protocol}: handshake hash differs"));
    }
    // Transport, through thecal's Session.
    let mut init = Session::from_handshake(init).map_err(|e| e.to_string())?;
    let mut resp = Session::from_handshake(resp).map_err(|e| e.to_string())?;
    if init.handshake_hash()[..] != hash[..] || resp.handshake_hash()[..] != hash[..] {
        return Err(alloc::format!("{protocol}: session handshake hash differs"));
    }
    let one_way = is_one_way(protocol);
    for (j, m) in messages.iter().enumerate().skip(i) {
        let payload = hex(m, "payload").ok_or("no payload")?;
        let expected = hex(m, "ciphertext").ok_or("no ciphertext")?;
        let (writer, reader) = if one_way || j % 2 == 0 {
            (&mut init, &mut resp)
        } else {
            (&mut resp, &mut init)
        };
        let n = writer
            .write_message(&payload, &mut buf)
            .map_err(|e| alloc::format!("{protocol}: message {j}: write: {e}"))?;
        if buf[HEADER_LEN..n] != expected[..] {
            return Err(alloc::format!("{protocol}: transport message {j} differs"));
        }
        let k = reader
            .read_message(&buf[..n], &mut out)
            .map_err(|e| alloc::format!("{protocol}: message {j}: read: {e}"))?;
        if out[..k] != payload[..] {
            return Err(alloc::format!("{protocol}: transport payload {j} differs"));
        }
    }
    Ok(())
}

fn run(filter: impl Fn(&str) -> bool, label: &str) -> (usize, usize) {
    let all = vectors();
    let applicable: Vec<&Value> = all
        .iter()
        .filter(|v| v["protocol_name"].as_str().is_some_and(&filter))
        .collect();
    let failures: Vec<String> = applicable.iter().filter_map(|v| replay(v).err()).collect();
    let passed = applicable.len() - failures.len();
    println!(
        "cacophony {label}: {passed} vectors passed of {} applicable (of {} in the file)",
        applicable.len(),
        all.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    (passed, applicable.len())
}

#[test]
fn cacophony_thecal_suite_link_001() {
    let (passed, applicable) = run(|name| name == PROTOCOL_NAME, PROTOCOL_NAME);
    assert!(applicable >= 1, "no vector for {PROTOCOL_NAME}");
    assert_eq!(passed, applicable);
}

#[test]
fn cacophony_enrolment_suite_link_003() {
    let name = crate::session::ENROLMENT_PROTOCOL_NAME;
    let (passed, applicable) = run(|n| n == name, name);
    assert!(applicable >= 1, "no vector for {name}");
    assert_eq!(passed, applicable);
}

#[test]
fn cacophony_every_25519_chachapoly_blake2s_pattern_link_001() {
    let (passed, applicable) = run(
        |name| name.ends_with("_25519_ChaChaPoly_BLAKE2s"),
        "Noise_*_25519_ChaChaPoly_BLAKE2s",
    );
    assert!(applicable >= 50);
    assert_eq!(passed, applicable);
}

#[test]
fn psk_locations_parse() {
    assert_eq!(psk_locations("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"), [2]);
    assert_eq!(
        psk_locations("Noise_NNpsk0+psk2_25519_ChaChaPoly_BLAKE2s"),
        [0, 2]
    );
    assert!(psk_locations("Noise_IK_25519_ChaChaPoly_BLAKE2s").is_empty());
    assert!(is_one_way("Noise_Npsk0_25519_ChaChaPoly_BLAKE2s"));
    assert!(!is_one_way("Noise_NN_25519_ChaChaPoly_BLAKE2s"));
    assert!(!is_one_way("Noise_X1N_25519_ChaChaPoly_BLAKE2s"));
}
