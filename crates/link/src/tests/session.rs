use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;
use thecal_pump::command::Command;

use crate::frame::{self, Frame, HEADER_LEN, Kind, MAX_FRAME};
use crate::message::{Answer, Reply, Request};
use crate::session::{
    self, Entropy, HANDSHAKE_INIT_LEN, HANDSHAKE_REPLY_LEN, HELLO_LEN, HelloAuth, HelloHeader,
    LinkError, MAX_PLAINTEXT, NONCE_LIMIT, PROLOGUE, PROTOCOL_NAME, Responder, Session,
    StaticKeypair, TAG_LEN,
};
use crate::{Initiator, PublicKey};

fn keys(seed: u8) -> StaticKeypair {
    StaticKeypair::from_secret([seed; 32]).unwrap()
}

fn entropy(seed: u8) -> Entropy {
    Entropy::new([seed.wrapping_mul(7).wrapping_add(1); 32])
}

/// The hello header and keys the tests' programmer uses.
const HEADER: HelloHeader = HelloHeader {
    key_id: 7,
    counter: 1,
};
const PREAUTH: [u8; 32] = [0x77; 32];

fn auth() -> HelloAuth {
    HelloAuth {
        header: HEADER,
        preauth: PREAUTH,
        psk: None,
    }
}

/// The pump's side of message 1: the header read first, then the Noise message.
fn read_hello(
    pump: &StaticKeypair,
    e: Entropy,
    frame: &[u8],
) -> Result<session::HelloReceived, LinkError> {
    let header = HelloHeader::peek(frame)?;
    Responder::new(pump, &header, None, e)?.read_hello(frame)
}

/// [`PROLOGUE`] followed by a hello header, as the handshake binds it.
fn prologue_with(prologue: &[u8], h: &HelloHeader) -> Vec<u8> {
    let mut p = prologue.to_vec();
    p.extend_from_slice(&h.key_id.to_le_bytes());
    p.extend_from_slice(&h.counter.to_le_bytes());
    p
}

/// A hello frame around a raw Noise message 1 (any length), with a valid tag.
fn wrap_hello(msg: &[u8]) -> Vec<u8> {
    let mut payload = prologue_with(&[], &HEADER);
    payload.extend_from_slice(msg);
    payload.extend_from_slice(&[0; session::PREAUTH_TAG_LEN]);
    let mut wire = vec![0u8; HEADER_LEN + payload.len()];
    let k = frame::encode(Kind::HandshakeInit, &payload, &mut wire).unwrap();
    let covered = k - session::PREAUTH_TAG_LEN;
    let tag = session::preauth_tag(&PREAUTH, &wire[..covered]).unwrap();
    wire[covered..k].copy_from_slice(&tag);
    wire.truncate(k);
    wire
}

struct Pair {
    programmer: Session,
    pump: Session,
}

/// A complete handshake; returns both sessions.
fn handshake(programmer: &StaticKeypair, pump: &StaticKeypair) -> Pair {
    let mut m1 = [0u8; MAX_FRAME];
    let mut m2 = [0u8; MAX_FRAME];
    let init = Initiator::new(programmer, pump.public(), &auth(), entropy(1)).unwrap();
    let (waiting, n1) = init.write_hello(&mut m1).unwrap();
    assert_eq!(n1, HEADER_LEN + HELLO_LEN);
    let hello = read_hello(pump, entropy(2), &m1[..n1]).unwrap();
    assert_eq!(hello.initiator_static(), programmer.public());
    let (pump_session, n2) = hello.write_reply(&mut m2).unwrap();
    assert_eq!(n2, HEADER_LEN + HANDSHAKE_REPLY_LEN);
    let programmer_session = waiting.read_reply(&m2[..n2]).unwrap();
    Pair {
        programmer: programmer_session,
        pump: pump_session,
    }
}

fn send(from: &mut Session, to: &mut Session, plaintext: &[u8]) -> Vec<u8> {
    let mut wire = [0u8; MAX_FRAME];
    let n = from.write_message(plaintext, &mut wire).unwrap();
    let mut out = [0u8; MAX_FRAME];
    let m = to.read_message(&wire[..n], &mut out).unwrap();
    out[..m].to_vec()
}

#[test]
fn prologue_binds_version_and_protocol() {
    let p = core::str::from_utf8(PROLOGUE).unwrap();
    assert!(p.starts_with(session::LINK_VERSION));
    assert!(p.ends_with(PROTOCOL_NAME));
    assert_eq!(frame::VERSION, 1);
    assert!(session::LINK_VERSION.ends_with('4'));
}

#[test]
fn command_and_answer_round_trip_over_a_session_link_006() {
    let (a, b) = (keys(10), keys(20));
    let mut s = handshake(&a, &b);
    assert_eq!(s.programmer.handshake_hash(), s.pump.handshake_hash());
    assert_eq!(s.pump.remote_static(), Some(a.public()));
    assert_eq!(s.programmer.remote_static(), Some(b.public()));

    let req = Request::pump(42, Command::PatientBolus { request_id: 9 });
    let mut buf = [0u8; MAX_PLAINTEXT];
    let plain = req.encode(&mut buf).unwrap().to_vec();
    let got = send(&mut s.programmer, &mut s.pump, &plain);
    assert_eq!(Request::decode(&got).unwrap(), req);

    let ans = Answer {
        command_id: 42,
        reply: Reply::Accepted,
    };
    let plain = ans.encode(&mut buf).unwrap().to_vec();
    let got = send(&mut s.pump, &mut s.programmer, &plain);
    assert_eq!(Answer::decode(&got).unwrap(), ans);

    // Many in both directions, counters move in step.
    for i in 0..50u8 {
        assert_eq!(send(&mut s.programmer, &mut s.pump, &[i; 3]), vec![i; 3]);
        assert_eq!(send(&mut s.pump, &mut s.programmer, &[i; 5]), vec![i; 5]);
    }
    assert_eq!(s.programmer.sending_nonce(), 51);
    assert_eq!(s.pump.receiving_nonce(), 51);
    assert_eq!(s.pump.sending_nonce(), 51);
    assert_eq!(s.programmer.receiving_nonce(), 51);
}

#[test]
fn empty_and_largest_plaintexts() {
    let mut s = handshake(&keys(1), &keys(2));
    assert_eq!(send(&mut s.programmer, &mut s.pump, &[]), Vec::<u8>::new());
    let big = vec![0x5au8; MAX_PLAINTEXT];
    assert_eq!(send(&mut s.programmer, &mut s.pump, &big), big);
    let mut wire = [0u8; MAX_FRAME];
    assert_eq!(
        s.programmer
            .write_message(&[0u8; MAX_PLAINTEXT + 1], &mut wire),
        Err(LinkError::TooLong { max: MAX_PLAINTEXT })
    );
    assert_eq!(
        s.programmer.write_message(&[1, 2, 3], &mut wire[..10]),
        Err(LinkError::BufferTooSmall {
            needed: HEADER_LEN + 3 + TAG_LEN
        })
    );
    // Neither error used a nonce.
    assert_eq!(send(&mut s.programmer, &mut s.pump, b"ok"), b"ok".to_vec());
}

#[test]
fn failed_decrypt_does_not_advance_the_receive_nonce_link_004() {
    let mut s = handshake(&keys(3), &keys(4));
    let mut wire = [0u8; MAX_FRAME];
    let n = s.programmer.write_message(b"bolus 1", &mut wire).unwrap();
    let genuine = wire[..n].to_vec();
    let mut out = [0u8; MAX_FRAME];
    // Flip every bit of the ciphertext and tag in turn: each is rejected, the session is
    // untouched.
    for byte in HEADER_LEN..n {
        for bit in 0..8 {
            let mut forged = genuine.clone();
            forged[byte] ^= 1 << bit;
            assert_eq!(
                s.pump.read_message(&forged, &mut out),
                Err(LinkError::Decrypt)
            );
            assert_eq!(s.pump.receiving_nonce(), 0);
            assert!(out.iter().all(|&b| b == 0));
        }
    }
    // A truncated frame (tag cut off) and an empty transport frame are rejected too.
    let mut short = [0u8; 64];
    let k = frame::encode(Kind::Transport, &genuine[HEADER_LEN..n - 1], &mut short).unwrap();
    assert_eq!(
        s.pump.read_message(&short[..k], &mut out),
        Err(LinkError::Decrypt)
    );
    let k = frame::encode(Kind::Transport, &[], &mut short).unwrap();
    assert_eq!(
        s.pump.read_message(&short[..k], &mut out),
        Err(LinkError::Decrypt)
    );
    assert_eq!(s.pump.receiving_nonce(), 0);
    // The genuine frame still decrypts, once.
    let m = s.pump.read_message(&genuine, &mut out).unwrap();
    assert_eq!(&out[..m], b"bolus 1");
    assert_eq!(s.pump.receiving_nonce(), 1);
    // A replay of it is now rejected (its nonce has passed).
    assert_eq!(
        s.pump.read_message(&genuine, &mut out),
        Err(LinkError::Decrypt)
    );
    assert_eq!(s.pump.receiving_nonce(), 1);
}

#[test]
fn reordered_frames_are_rejected_and_do_not_desynchronise_link_004() {
    let mut s = handshake(&keys(5), &keys(6));
    let mut w1 = [0u8; 64];
    let mut w2 = [0u8; 64];
    let n1 = s.programmer.write_message(b"first", &mut w1).unwrap();
    let n2 = s.programmer.write_message(b"second", &mut w2).unwrap();
    let mut out = [0u8; 64];
    assert_eq!(
        s.pump.read_message(&w2[..n2], &mut out),
        Err(LinkError::Decrypt)
    );
    assert_eq!(s.pump.read_message(&w1[..n1], &mut out), Ok(5));
    assert_eq!(s.pump.read_message(&w2[..n2], &mut out), Ok(6));
}

#[test]
fn reflected_frames_are_rejected_link_004() {
    // A frame sent by the programmer and reflected back to it does not decrypt: each
    // direction has its own key.
    let mut s = handshake(&keys(7), &keys(8));
    let mut w = [0u8; 64];
    let n = s.programmer.write_message(b"stop", &mut w).unwrap();
    let mut out = [0u8; 64];
    assert_eq!(
        s.programmer.read_message(&w[..n], &mut out),
        Err(LinkError::Decrypt)
    );
}

#[test]
fn wrong_kind_and_bad_frames_are_refused() {
    let mut s = handshake(&keys(9), &keys(10));
    let mut w = [0u8; 64];
    let n = s.programmer.write_message(b"x", &mut w).unwrap();
    w[1] = Kind::HandshakeInit.code();
    let mut out = [0u8; 64];
    assert_eq!(
        s.pump.read_message(&w[..n], &mut out),
        Err(LinkError::UnexpectedKind {
            expected: Kind::Transport,
            got: Kind::HandshakeInit
        })
    );
    w[0] = 9;
    assert_eq!(
        s.pump.read_message(&w[..n], &mut out),
        Err(LinkError::Frame(frame::FrameError::BadVersion(9)))
    );
    assert_eq!(s.pump.receiving_nonce(), 0);
}

#[test]
fn nonces_never_wrap_link_004() {
    let mut s = handshake(&keys(11), &keys(12));
    s.programmer.set_nonces_for_test(NONCE_LIMIT - 1, 0);
    s.pump.set_nonces_for_test(0, NONCE_LIMIT - 1);
    // The last usable nonce works in both directions' bookkeeping...
    assert_eq!(
        send(&mut s.programmer, &mut s.pump, b"last"),
        b"last".to_vec()
    );
    assert_eq!(s.programmer.sending_nonce(), NONCE_LIMIT);
    assert_eq!(s.pump.receiving_nonce(), NONCE_LIMIT);
    // ...then both sides refuse rather than wrap to 0.
    let mut w = [0u8; 64];
    assert_eq!(
        s.programmer.write_message(b"one more", &mut w),
        Err(LinkError::NonceExhausted)
    );
    assert_eq!(s.programmer.sending_nonce(), NONCE_LIMIT);
    let mut other = handshake(&keys(11), &keys(12));
    let n = other.programmer.write_message(b"x", &mut w).unwrap();
    let mut out = [0u8; 64];
    assert_eq!(
        s.pump.read_message(&w[..n], &mut out),
        Err(LinkError::NonceExhausted)
    );
}

/// A raw snow handshake state for the same suite (static key `[seed; 32]`, ephemeral
/// `[0x33; 32]`), to build messages our API will not produce.
fn raw(
    initiator: bool,
    seed: u8,
    remote: Option<&PublicKey>,
    prologue: &[u8],
) -> snow::HandshakeState {
    session::build(&session::Setup {
        protocol: PROTOCOL_NAME,
        initiator,
        prologue,
        local_static: Some(&[seed; 32]),
        remote_static: remote.map(|k| &k.0[..]),
        entropy: Some([0x33; 32]),
        psks: &[],
    })
    .unwrap()
}

fn raw_initiator(seed: u8, pump: &PublicKey) -> snow::HandshakeState {
    raw(true, seed, Some(pump), &prologue_with(PROLOGUE, &HEADER))
}

#[test]
fn a_command_in_handshake_message_1_is_refused_link_001() {
    let (programmer, pump) = (keys(13), keys(14));
    let mut hs = raw_initiator(13, pump.public());
    let req = Request::pump(
        1,
        Command::Stop {
            reason: thecal_pump::command::StopReason::Other,
        },
    );
    let mut plain = [0u8; 64];
    let plain = req.encode(&mut plain).unwrap();
    let mut msg = [0u8; 256];
    let n = hs.write_message(plain, &mut msg).unwrap();
    assert!(n > HANDSHAKE_INIT_LEN);
    let wire = wrap_hello(&msg[..n]);
    let r = read_hello(&pump, entropy(3), &wire);
    assert_eq!(r.map(|_| ()), Err(LinkError::PayloadInHandshake));

    // Even a one-byte payload.
    let mut hs = raw_initiator(13, pump.public());
    let n = hs.write_message(&[0], &mut msg).unwrap();
    let wire = wrap_hello(&msg[..n]);
    let r = read_hello(&pump, entropy(3), &wire);
    assert_eq!(r.map(|_| ()), Err(LinkError::PayloadInHandshake));

    // The raw initiator without a payload is accepted: the refusal is about the payload.
    let mut hs = raw_initiator(13, pump.public());
    let n = hs.write_message(&[], &mut msg).unwrap();
    let wire = wrap_hello(&msg[..n]);
    let hello = read_hello(&pump, entropy(3), &wire).unwrap();
    assert_eq!(hello.initiator_static(), programmer.public());
}

#[test]
fn a_payload_in_handshake_message_2_is_refused_link_001() {
    let (programmer, pump) = (keys(15), keys(16));
    let mut m1 = [0u8; 128];
    let (waiting, n1) = Initiator::new(&programmer, pump.public(), &auth(), entropy(4))
        .unwrap()
        .write_hello(&mut m1)
        .unwrap();
    // A raw responder answering with a payload.
    let mut hs = raw(false, 16, None, &prologue_with(PROLOGUE, &HEADER));
    let mut scratch = [0u8; 128];
    let noise = HEADER_LEN + session::HELLO_HEADER_LEN;
    hs.read_message(&m1[noise..n1 - session::PREAUTH_TAG_LEN], &mut scratch)
        .unwrap();
    let mut msg = [0u8; 128];
    let n = hs.write_message(b"status", &mut msg).unwrap();
    let mut wire = [0u8; 160];
    let k = frame::encode(Kind::HandshakeReply, &msg[..n], &mut wire).unwrap();
    assert_eq!(
        waiting.read_reply(&wire[..k]).map(|_| ()),
        Err(LinkError::PayloadInHandshake)
    );
}

#[test]
fn wrong_keys_fail_the_handshake_link_001() {
    let (programmer, pump, impostor) = (keys(17), keys(18), keys(19));
    let mut m1 = [0u8; 128];
    let mut m2 = [0u8; 128];
    // The programmer thinks it talks to `pump`, but the impostor answers: message 1 does
    // not even decrypt for the impostor.
    let (_, n1) = Initiator::new(&programmer, pump.public(), &auth(), entropy(5))
        .unwrap()
        .write_hello(&mut m1)
        .unwrap();
    let r = read_hello(&impostor, entropy(6), &m1[..n1]);
    assert_eq!(r.map(|_| ()), Err(LinkError::Handshake));

    // A reply from a responder that answered a different hello does not authenticate.
    let (waiting, _) = Initiator::new(&programmer, pump.public(), &auth(), entropy(7))
        .unwrap()
        .write_hello(&mut m1)
        .unwrap();
    let (_, other_n1) = Initiator::new(&programmer, pump.public(), &auth(), entropy(8))
        .unwrap()
        .write_hello(&mut m2)
        .unwrap();
    let hello = read_hello(&pump, entropy(9), &m2[..other_n1]).unwrap();
    let mut m3 = [0u8; 128];
    let (_, n3) = hello.write_reply(&mut m3).unwrap();
    assert_eq!(
        waiting.read_reply(&m3[..n3]).map(|_| ()),
        Err(LinkError::Handshake)
    );
}

#[test]
fn a_different_prologue_fails_the_handshake_link_001() {
    let (programmer, pump) = (keys(20), keys(21));
    let mut hs = raw(
        true,
        20,
        Some(pump.public()),
        &prologue_with(b"thecal-link/0;Noise_IK_25519_ChaChaPoly_BLAKE2s", &HEADER),
    );
    let mut msg = [0u8; 128];
    let n = hs.write_message(&[], &mut msg).unwrap();
    let _ = programmer;
    let r = read_hello(&pump, entropy(10), &wrap_hello(&msg[..n]));
    assert_eq!(r.map(|_| ()), Err(LinkError::Handshake));
}

#[test]
fn a_version_1_programmer_fails_the_handshake_with_a_version_2_implant_link_028() {
    // Link version 2 added the fluid path read: a programmer of version 1 would not know
    // its answer, so the handshake, which binds the version, refuses it.
    let (programmer, pump) = (keys(23), keys(24));
    let mut hs = raw(
        true,
        23,
        Some(pump.public()),
        &prologue_with(b"thecal-link/1;Noise_IK_25519_ChaChaPoly_BLAKE2s", &HEADER),
    );
    let mut msg = [0u8; 128];
    let n = hs.write_message(&[], &mut msg).unwrap();
    let _ = programmer;
    let r = read_hello(&pump, entropy(12), &wrap_hello(&msg[..n]));
    assert_eq!(r.map(|_| ()), Err(LinkError::Handshake));
    // The same hello with this build's prologue is read.
    let mut hs = raw_initiator(23, pump.public());
    let n = hs.write_message(&[], &mut msg).unwrap();
    assert!(read_hello(&pump, entropy(12), &wrap_hello(&msg[..n])).is_ok());
}

#[test]
fn a_version_2_programmer_fails_the_handshake_with_a_version_3_implant_link_031() {
    // Link version 3 added the firmware update: a programmer of version 2 would not know
    // its messages, so the handshake, which binds the version, refuses it.
    let pump = keys(24);
    let mut hs = raw(
        true,
        23,
        Some(pump.public()),
        &prologue_with(b"thecal-link/2;Noise_IK_25519_ChaChaPoly_BLAKE2s", &HEADER),
    );
    let mut msg = [0u8; 128];
    let n = hs.write_message(&[], &mut msg).unwrap();
    let r = read_hello(&pump, entropy(12), &wrap_hello(&msg[..n]));
    assert_eq!(r.map(|_| ()), Err(LinkError::Handshake));
    let mut hs = raw_initiator(23, pump.public());
    let n = hs.write_message(&[], &mut msg).unwrap();
    assert!(read_hello(&pump, entropy(12), &wrap_hello(&msg[..n])).is_ok());
}

#[test]
fn a_version_3_programmer_fails_the_handshake_with_a_version_4_implant_link_034() {
    // Link version 4 added the firmware-signing keys' rotation and revocation: a
    // programmer of version 3 would not know those messages, so the handshake refuses it.
    let pump = keys(25);
    let mut hs = raw(
        true,
        23,
        Some(pump.public()),
        &prologue_with(b"thecal-link/3;Noise_IK_25519_ChaChaPoly_BLAKE2s", &HEADER),
    );
    let mut msg = [0u8; 128];
    let n = hs.write_message(&[], &mut msg).unwrap();
    let r = read_hello(&pump, entropy(12), &wrap_hello(&msg[..n]));
    assert_eq!(r.map(|_| ()), Err(LinkError::Handshake));
    assert_eq!(PROLOGUE, b"thecal-link/4;Noise_IK_25519_ChaChaPoly_BLAKE2s");
    let mut hs = raw_initiator(23, pump.public());
    let n = hs.write_message(&[], &mut msg).unwrap();
    assert!(read_hello(&pump, entropy(12), &wrap_hello(&msg[..n])).is_ok());
}

#[test]
fn short_or_wrong_kind_handshake_frames() {
    let pump = keys(22);
    let mut wire = [0u8; 160];
    let k = frame::encode(Kind::HandshakeInit, &[0u8; HELLO_LEN - 1], &mut wire).unwrap();
    let r = read_hello(&pump, entropy(11), &wire[..k]);
    assert_eq!(r.map(|_| ()), Err(LinkError::Handshake));
    let k = frame::encode(Kind::Transport, &[0u8; HELLO_LEN], &mut wire).unwrap();
    let r = read_hello(&pump, entropy(11), &wire[..k]);
    assert_eq!(
        r.map(|_| ()),
        Err(LinkError::UnexpectedKind {
            expected: Kind::HandshakeInit,
            got: Kind::Transport
        })
    );
    let mut small = [0u8; HEADER_LEN + HELLO_LEN - 1];
    let r = Initiator::new(&keys(1), pump.public(), &auth(), entropy(1))
        .unwrap()
        .write_hello(&mut small);
    assert_eq!(
        r.map(|(_, n)| n),
        Err(LinkError::BufferTooSmall {
            needed: HEADER_LEN + HELLO_LEN
        })
    );
}

#[test]
fn entropy_decides_the_ephemeral() {
    let (programmer, pump) = (keys(23), keys(24));
    let hello = |e: u8| {
        let mut m = [0u8; 128];
        let (_, n) = Initiator::new(&programmer, pump.public(), &auth(), entropy(e))
            .unwrap()
            .write_hello(&mut m)
            .unwrap();
        m[..n].to_vec()
    };
    assert_eq!(hello(1), hello(1));
    assert_ne!(hello(1), hello(2));
    // The ephemeral public key is the first 32 bytes of the Noise message.
    let e = StaticKeypair::from_secret([1u8.wrapping_mul(7).wrapping_add(1); 32]).unwrap();
    let at = HEADER_LEN + session::HELLO_HEADER_LEN;
    assert_eq!(&hello(1)[at..at + 32], &e.public().0);
}

#[test]
fn errors_display() {
    for e in [
        LinkError::Frame(frame::FrameError::Truncated),
        LinkError::UnexpectedKind {
            expected: Kind::Transport,
            got: Kind::HandshakeReply,
        },
        LinkError::PayloadInHandshake,
        LinkError::Handshake,
        LinkError::Decrypt,
        LinkError::NonceExhausted,
        LinkError::TooLong { max: 1 },
        LinkError::BufferTooSmall { needed: 1 },
        LinkError::Setup,
        LinkError::NotListening,
        LinkError::SessionExpired,
    ] {
        assert!(!alloc::format!("{e}").is_empty());
    }
    assert!(!alloc::format!("{:?}", keys(1)).contains("secret"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_bytes_to_a_responder_never_panic_link_006(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let r = read_hello(&keys(30), entropy(1), &bytes);
        prop_assert!(r.is_err());
    }

    #[test]
    fn any_handshake_init_payload_never_panics(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut wire = [0u8; 300];
        let k = frame::encode(Kind::HandshakeInit, &body, &mut wire).unwrap();
        let r = read_hello(&keys(30), entropy(1), &wire[..k]);
        prop_assert!(r.is_err());
    }

    #[test]
    fn any_bytes_to_a_session_never_panic_nor_advance_link_006(
        body in prop::collection::vec(any::<u8>(), 0..200),
        raw in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut s = handshake(&keys(31), &keys(32));
        let mut wire = [0u8; 300];
        let k = frame::encode(Kind::Transport, &body, &mut wire).unwrap();
        let mut out = [0u8; 300];
        prop_assert!(s.pump.read_message(&wire[..k], &mut out).is_err());
        prop_assert!(s.pump.read_message(&raw, &mut out).is_err());
        prop_assert_eq!(s.pump.receiving_nonce(), 0);
        prop_assert_eq!(send(&mut s.programmer, &mut s.pump, b"ok"), b"ok".to_vec());
    }

    #[test]
    fn plaintexts_round_trip(msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..8)) {
        let mut s = handshake(&keys(33), &keys(34));
        for m in &msgs {
            prop_assert_eq!(&send(&mut s.programmer, &mut s.pump, m), m);
            prop_assert_eq!(&send(&mut s.pump, &mut s.programmer, m), m);
        }
    }
}

#[test]
fn frames_on_the_wire_are_checked_frames_link_006() {
    let mut s = handshake(&keys(35), &keys(36));
    let mut w = [0u8; 64];
    let n = s.programmer.write_message(b"abc", &mut w).unwrap();
    let f = Frame::new_checked(&w[..n]).unwrap();
    assert_eq!(f.kind(), Kind::Transport);
    assert_eq!(f.payload().len(), 3 + TAG_LEN);
}

// ----- the hello: header, pre-authentication tag, enrolment keys ------------------------

fn genuine_hello(programmer: &StaticKeypair, pump: &StaticKeypair) -> Vec<u8> {
    let mut m = [0u8; MAX_FRAME];
    let (_, n) = Initiator::new(programmer, pump.public(), &auth(), entropy(1))
        .unwrap()
        .write_hello(&mut m)
        .unwrap();
    m[..n].to_vec()
}

#[test]
fn the_pre_authentication_tag_covers_every_byte_of_the_hello_link_005() {
    let (programmer, pump) = (keys(40), keys(41));
    let hello = genuine_hello(&programmer, &pump);
    assert_eq!(hello.len(), HEADER_LEN + HELLO_LEN);
    assert_eq!(HelloHeader::peek(&hello), Ok(HEADER));
    assert!(session::verify_preauth(&hello, &PREAUTH));
    assert!(!session::verify_preauth(&hello, &[0x78; 32]));
    for byte in 0..hello.len() {
        let mut h = hello.clone();
        h[byte] ^= 0x10;
        assert!(!session::verify_preauth(&h, &PREAUTH), "byte {byte}");
    }
    assert!(!session::verify_preauth(
        &hello[..hello.len() - 1],
        &PREAUTH
    ));
    assert!(!session::verify_preauth(&[], &PREAUTH));
}

#[test]
fn the_header_is_bound_into_the_handshake_link_004() {
    // An attacker who rewrites the counter (and, knowing the tag key, even re-tags the
    // hello) breaks the Noise message: the header is part of the prologue.
    let (programmer, pump) = (keys(42), keys(43));
    let mut hello = genuine_hello(&programmer, &pump);
    hello[HEADER_LEN + 4] = hello[HEADER_LEN + 4].wrapping_add(5);
    let covered = hello.len() - session::PREAUTH_TAG_LEN;
    let tag = session::preauth_tag(&PREAUTH, &hello[..covered]).unwrap();
    hello[covered..].copy_from_slice(&tag);
    assert!(session::verify_preauth(&hello, &PREAUTH));
    assert_eq!(
        read_hello(&pump, entropy(2), &hello).map(|_| ()),
        Err(LinkError::Handshake)
    );
    // A responder set up for another header refuses the genuine hello too.
    let hello = genuine_hello(&programmer, &pump);
    let other = HelloHeader {
        key_id: 7,
        counter: 2,
    };
    let r = Responder::new(&pump, &other, None, entropy(2))
        .unwrap()
        .read_hello(&hello);
    assert_eq!(r.map(|_| ()), Err(LinkError::Handshake));
}

#[test]
fn an_enrolment_handshake_needs_the_windows_key_and_yields_shared_secrets_link_003() {
    let (device, pump) = (keys(44), keys(45));
    let psk = [0x21; 32];
    let enrol = |psk_used: [u8; 32]| {
        let auth = HelloAuth {
            header: HelloHeader {
                key_id: 0,
                counter: 9,
            },
            preauth: psk_used,
            psk: Some(psk_used),
        };
        let mut m1 = [0u8; MAX_FRAME];
        let (waiting, n1) = Initiator::new(&device, pump.public(), &auth, entropy(3))
            .unwrap()
            .write_hello(&mut m1)
            .unwrap();
        let header = HelloHeader::peek(&m1[..n1]).unwrap();
        let hello = Responder::new(&pump, &header, Some(&psk), entropy(4))
            .unwrap()
            .read_hello(&m1[..n1])?;
        let mut m2 = [0u8; MAX_FRAME];
        let (pump_session, n2) = hello.write_reply(&mut m2).unwrap();
        let device_session = waiting.read_reply(&m2[..n2]).unwrap();
        Ok::<_, LinkError>((device_session, pump_session))
    };
    let (d, p) = enrol(psk).unwrap();
    assert_eq!(d.fingerprint(), p.fingerprint());
    assert!(d.fingerprint() < 1_000_000);
    assert_eq!(d.enrolled_preauth_key(), p.enrolled_preauth_key());
    assert_ne!(d.enrolled_preauth_key(), psk);
    assert_eq!(p.remote_static(), Some(device.public()));
    // The wrong pre-shared key fails at message 1, before the implant replies.
    assert_eq!(enrol([0x22; 32]).map(|_| ()), Err(LinkError::Handshake));
    // Two enrolments (fresh ephemerals) give different fingerprints and keys.
    let mut m1 = [0u8; MAX_FRAME];
    let auth = HelloAuth {
        header: HelloHeader {
            key_id: 0,
            counter: 10,
        },
        preauth: psk,
        psk: Some(psk),
    };
    let (waiting, n1) = Initiator::new(&device, pump.public(), &auth, entropy(5))
        .unwrap()
        .write_hello(&mut m1)
        .unwrap();
    let header = HelloHeader::peek(&m1[..n1]).unwrap();
    let hello = Responder::new(&pump, &header, Some(&psk), entropy(6))
        .unwrap()
        .read_hello(&m1[..n1])
        .unwrap();
    let mut m2 = [0u8; MAX_FRAME];
    let (p2, n2) = hello.write_reply(&mut m2).unwrap();
    let d2 = waiting.read_reply(&m2[..n2]).unwrap();
    assert_eq!(d2.fingerprint(), p2.fingerprint());
    assert_ne!(d2.enrolled_preauth_key(), d.enrolled_preauth_key());
}
