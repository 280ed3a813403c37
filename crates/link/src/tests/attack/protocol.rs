//! Attacks on the protocol's shape: truncation, invalid (low-order) ephemeral keys and
//! downgrades to another pattern, suite, version or enrolment mode.

use super::*;
use crate::frame::{HEADER_LEN, VERSION};
use crate::session::{
    self, Contributory, ENROLMENT_PROTOCOL_NAME, HELLO_HEADER_LEN, PREAUTH_TAG_LEN, PROLOGUE,
    preauth_tag,
};
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};

/// Puts a fresh valid pre-authentication tag on a changed hello (the strongest attacker:
/// one who knows the device's tag key).
fn retag(hello: &mut [u8], key: &[u8; 32]) {
    let covered = hello.len() - PREAUTH_TAG_LEN;
    let tag = preauth_tag(key, &hello[..covered]).unwrap();
    hello[covered..].copy_from_slice(&tag);
}

/// A recorded genuine hello of the remote, and the world after it.
fn recorded_hello(w: &mut World) -> Vec<u8> {
    let start = w.air.transcript().len();
    w.connect(Who::Remote);
    w.air.transcript()[start].1.clone()
}

#[test]
fn truncated_frames_are_refused_and_change_nothing_link_004() {
    let mut w = World::new();
    w.set_up();
    let key = w.implant_key();
    // Every prefix of a fresh hello is refused without a reply.
    w.remote.hello(&mut w.air, &key);
    let hello = w.air.receive(Dir::ToImplant).unwrap();
    for n in 0..hello.len() {
        w.air.inject(Dir::ToImplant, &hello[..n]);
        w.implant.serve(&mut w.air);
        let o = w.implant.take_outcomes();
        assert!(
            matches!(o.as_slice(), [Outcome::Denied(_) | Outcome::Rejected(_)]),
            "prefix {n}: {o:?}"
        );
    }
    assert_eq!(w.air.pending(Dir::ToDevice), 0);
    // The whole hello still works: nothing was consumed by the prefixes.
    w.air.inject(Dir::ToImplant, &hello);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Connected { key_id: REMOTE_ID }]
    );
    w.remote.finish(&mut w.air).unwrap().unwrap();

    // Every prefix of a bolus request is refused; none reaches the pump.
    let id = w
        .remote
        .send(&mut w.air, Command::PatientBolus { request_id: 77 });
    let frame = w.air.receive(Dir::ToImplant).unwrap();
    for n in 0..frame.len() {
        w.air.inject(Dir::ToImplant, &frame[..n]);
        w.implant.serve(&mut w.air);
        assert!(matches!(
            w.implant.take_outcomes().as_slice(),
            [Outcome::Rejected(_)]
        ));
    }
    assert_eq!(w.fw().boluses_started(), 0);
    w.air.inject(Dir::ToImplant, &frame);
    w.implant.serve(&mut w.air);
    assert_eq!(w.implant.take_outcomes(), vec![Outcome::Answered]);
    assert_eq!(w.remote.answer(&mut w.air).unwrap().command_id, id);
    assert_eq!(w.fw().boluses_started(), 1);
}

/// The X25519 public keys Wycheproof lists with an all-zero shared secret: the low-order
/// points and their non-canonical encodings.
fn low_order_points() -> Vec<[u8; 32]> {
    let set = wycheproof::xdh::TestSet::load(wycheproof::xdh::TestName::X25519).unwrap();
    let mut points: Vec<[u8; 32]> = set
        .test_groups
        .iter()
        .flat_map(|g| g.tests.iter())
        .filter(|t| t.shared_secret.iter().all(|b| *b == 0))
        .filter_map(|t| <[u8; 32]>::try_from(&t.public_key[..]).ok())
        .collect();
    points.sort_unstable();
    points.dedup();
    points
}

#[test]
fn low_order_ephemeral_keys_are_refused_link_001() {
    let points = low_order_points();
    std::eprintln!(
        "low-order X25519 public keys from Wycheproof: {}",
        points.len()
    );
    assert!(points.len() >= 10, "{} points", points.len());
    // The protocol's X25519 refuses every one of them (and accepts a real key).
    let mut dh = Contributory(DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap());
    snow::types::Dh::set(&mut dh, &[0x42; 32]);
    let mut out = [0u8; 32];
    for p in &points {
        assert!(snow::types::Dh::dh(&dh, p, &mut out).is_err(), "{p:02x?}");
        assert_eq!(out, [0; 32]);
    }
    assert!(snow::types::Dh::dh(&dh, &keys(5).public().0, &mut out).is_ok());

    // Over the air: a hello whose ephemeral key is a low-order point, even with a valid
    // tag, is denied, and the implant sends nothing.
    let mut w = World::new();
    w.set_up();
    let hello = recorded_hello(&mut w);
    let e_at = HEADER_LEN + HELLO_HEADER_LEN;
    for (i, p) in points.iter().enumerate() {
        let mut h = hello.clone();
        // A fresh counter so that only the key decides.
        h[HEADER_LEN + 4..HEADER_LEN + 12].copy_from_slice(&(1_000 + i as u64).to_le_bytes());
        h[e_at..e_at + 32].copy_from_slice(p);
        retag(&mut h, &w.remote.preauth);
        w.air.inject(Dir::ToImplant, &h);
        w.implant.serve(&mut w.air);
        assert_eq!(
            w.implant.take_outcomes(),
            vec![Outcome::Denied(Denied::Handshake(LinkError::Handshake))]
        );
    }
    assert_eq!(w.air.pending(Dir::ToDevice), 0);
    // No counter moved: the genuine remote connects with its next counter.
    w.connect(Who::Remote);
}

/// A hello made with another Noise protocol (raw snow), in the thecal hello format with a
/// valid tag.
fn foreign_hello(
    protocol: &str,
    device: &Device,
    implant: &PublicKey,
    header: HelloHeader,
    psk: Option<[u8; 32]>,
) -> Option<Vec<u8>> {
    let mut prologue = PROLOGUE.to_vec();
    prologue.extend_from_slice(&header.key_id.to_le_bytes());
    prologue.extend_from_slice(&header.counter.to_le_bytes());
    let psks: Vec<(u8, [u8; 32])> = psk.map(|k| (1, k)).into_iter().collect();
    let needs_remote = protocol.contains("_IK") || protocol.contains("_NK");
    let mut hs = session::build(&session::Setup {
        protocol,
        initiator: true,
        prologue: &prologue,
        local_static: Some(&[11; 32]),
        remote_static: needs_remote.then_some(&implant.0[..]),
        entropy: Some([0x44; 32]),
        psks: &psks,
    })
    .ok()?;
    let mut msg = [0u8; 256];
    let n = hs.write_message(&[], &mut msg).ok()?;
    let mut payload = Vec::new();
    payload.extend_from_slice(&header.key_id.to_le_bytes());
    payload.extend_from_slice(&header.counter.to_le_bytes());
    payload.extend_from_slice(&msg[..n]);
    payload.extend_from_slice(&[0; PREAUTH_TAG_LEN]);
    let mut wire = vec![0u8; HEADER_LEN + payload.len()];
    let k = crate::frame::encode(Kind::HandshakeInit, &payload, &mut wire).ok()?;
    wire.truncate(k);
    retag(&mut wire, &device.preauth);
    Some(wire)
}

#[test]
fn downgrades_are_refused_link_001() {
    let mut w = World::new();
    w.set_up();
    let key = w.implant_key();
    let mut counter = 100;
    let mut header = || {
        counter += 1;
        HelloHeader {
            key_id: REMOTE_ID,
            counter,
        }
    };
    // Other patterns and other primitives in place of IK_25519_ChaChaPoly_BLAKE2s.
    let mut tried = 0;
    for protocol in [
        "Noise_NN_25519_ChaChaPoly_BLAKE2s",
        "Noise_XX_25519_ChaChaPoly_BLAKE2s",
        "Noise_NK_25519_ChaChaPoly_BLAKE2s",
        "Noise_IK_25519_AESGCM_BLAKE2s",
        "Noise_IK_25519_ChaChaPoly_SHA256",
        "Noise_IK_25519_ChaChaPoly_BLAKE2b",
    ] {
        let Some(h) = foreign_hello(protocol, &w.remote, &key, header(), None) else {
            continue;
        };
        tried += 1;
        w.air.inject(Dir::ToImplant, &h);
        w.implant.serve(&mut w.air);
        let o = w.implant.take_outcomes();
        assert!(
            matches!(o.as_slice(), [Outcome::Denied(Denied::Handshake(_))]),
            "{protocol}: {o:?}"
        );
    }
    assert!(tried >= 3, "{tried}");
    // The enrolment pattern for an enrolled key id, and plain IK for an enrolment.
    let h = foreign_hello(
        ENROLMENT_PROTOCOL_NAME,
        &w.remote,
        &key,
        header(),
        Some([9; 32]),
    )
    .unwrap();
    w.air.inject(Dir::ToImplant, &h);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Denied(Denied::Handshake(LinkError::Handshake))]
    );
    // A frame of another link version.
    w.remote.hello(&mut w.air, &key);
    let mut h = w.air.receive(Dir::ToImplant).unwrap();
    for v in [0, VERSION + 1, 0xff] {
        h[0] = v;
        w.air.inject(Dir::ToImplant, &h);
        w.implant.serve(&mut w.air);
        let bad = LinkError::Frame(crate::frame::FrameError::BadVersion(v));
        let o = w.implant.take_outcomes();
        assert!(
            o == vec![Outcome::Rejected(bad)] || o == vec![Outcome::Denied(Denied::Handshake(bad))],
            "{o:?}"
        );
    }
    assert_eq!(w.air.pending(Dir::ToDevice), 0);
    w.connect(Who::Remote);
}

#[test]
fn a_delayed_bolus_request_expires_with_its_session_link_004() {
    let mut w = World::new();
    w.set_up();
    w.connect(Who::Remote);
    // A few seconds of latency are normal: the request is answered.
    w.remote
        .send(&mut w.air, Command::PatientBolus { request_id: 1 });
    let due = w.fw().now.saturating_add(Duration::from_secs(5));
    assert!(w.air.delay_next(Dir::ToImplant, due));
    w.implant.serve(&mut w.air);
    assert!(w.implant.take_outcomes().is_empty());
    w.fw().run_for(Duration::from_secs(5));
    assert_eq!(w.air.release_due(w.implant.fw.now), 1);
    w.implant.serve(&mut w.air);
    assert_eq!(w.implant.take_outcomes(), vec![Outcome::Answered]);
    w.remote.answer(&mut w.air).unwrap();
    assert_eq!(w.fw().boluses_started(), 1);

    // Past the lockout, the attacker holds the next request back for ten minutes: the
    // patient gave up on it; it must not arrive as a surprise dose.
    w.fw().run_for(Duration::from_hours(4));
    w.connect(Who::Remote);
    w.remote
        .send(&mut w.air, Command::PatientBolus { request_id: 2 });
    let later = w.fw().now.saturating_add(Duration::from_minutes(10));
    assert!(w.air.delay_next(Dir::ToImplant, later));
    w.fw().run_for(Duration::from_minutes(10));
    assert_eq!(w.air.release_due(w.implant.fw.now), 1);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Rejected(LinkError::SessionExpired)]
    );
    assert_eq!(w.fw().boluses_started(), 1);
    assert!(crate::endpoint::SESSION_IDLE_LIMIT < Duration::from_minutes(10));
}

#[test]
fn a_truncated_prescription_is_never_applied_link_004() {
    let mut w = World::new();
    w.set_up();
    w.connect(Who::Clinician);
    let version = w.fw().pump.status().program_version;
    let before = w.fw().pump.program().clone();
    w.clinician
        .send(&mut w.air, program(baclofen(), "0.6 mL/day"));
    let frame = w.air.receive(Dir::ToImplant).unwrap();
    assert!(frame.len() > 40, "{}", frame.len());
    // Every cut of the frame is refused whole: the program is one authenticated message.
    for n in 0..frame.len() {
        w.air.inject(Dir::ToImplant, &frame[..n]);
        w.implant.serve(&mut w.air);
        assert!(matches!(
            w.implant.take_outcomes().as_slice(),
            [Outcome::Rejected(_)]
        ));
        assert_eq!(w.fw().pump.program(), &before);
        assert_eq!(w.fw().pump.status().program_version, version);
    }
    w.air.inject(Dir::ToImplant, &frame);
    w.implant.serve(&mut w.air);
    assert_eq!(w.implant.take_outcomes(), vec![Outcome::Answered]);
    assert_eq!(
        w.clinician.answer(&mut w.air).unwrap().reply,
        Reply::Accepted
    );
    assert_eq!(w.fw().pump.status().program_version, version + 1);
}
