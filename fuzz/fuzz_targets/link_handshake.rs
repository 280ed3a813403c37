//! Fuzz target: the implant side of the link reading arbitrary bytes, in a handshake
//! and in an established session.
//!
//! Asserts: no panic; the implant endpoint (`Implant::accept`, with an enrolled device and
//! an open enrolment window) never accepts arbitrary bytes as a hello; arbitrary bytes
//! never pass the pre-authentication tag nor complete
//! a handshake as an enrolled device (nobody without its keys can); arbitrary bytes in a
//! session never decrypt (they are not authentic) and never advance the receive nonce, so
//! the genuine next frame still decrypts afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thecal_link::endpoint::{Enrolment, Implant, Registry};
use thecal_link::frame::MAX_FRAME;
use thecal_pump::command::Role;
use thecal_pump::core::Pump;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::{Duration, Instant};
use thecal_link::session::{
    Entropy, HelloAuth, HelloHeader, Initiator, Responder, StaticKeypair, verify_preauth,
};

const PREAUTH: [u8; 32] = [0x5a; 32];

fn keys(seed: u8) -> StaticKeypair {
    StaticKeypair::from_secret([seed; 32]).expect("valid key")
}

fuzz_target!(|data: &[u8]| {
    let (programmer, pump) = (keys(11), keys(22));
    // 0. The whole endpoint: cheap checks, counters, windows, then the handshake.
    let mut registry = Registry::new();
    registry
        .enroll(Enrolment::new(*programmer.public(), Role::Clinician, 7, PREAUTH))
        .expect("enrol");
    let mut implant = Implant::new(pump.clone(), registry);
    let mut core = Pump::new(HardwareProfile::synchromed_class(20), Instant::ZERO);
    implant.open_proximity_window(Instant::ZERO, [0x33; 32], Duration::from_minutes(5), &mut core);
    let mut reply = [0u8; MAX_FRAME];
    assert!(
        implant
            .accept(Instant::from_ms(1), data, Entropy::new([4; 32]), &mut core, &mut reply)
            .is_err(),
        "arbitrary bytes were accepted as a hello"
    );
    // 1. The pump reads arbitrary bytes as a hello: the cheap checks, then (as if they
    // had passed) the Noise message.
    if let Ok(header) = HelloHeader::peek(data) {
        assert!(
            !verify_preauth(data, &PREAUTH),
            "arbitrary bytes carried a valid pre-authentication tag"
        );
        let responder =
            Responder::new(&pump, &header, None, Entropy::new([3; 32])).expect("responder");
        if let Ok(hello) = responder.read_hello(data) {
            assert_ne!(
                hello.initiator_static(),
                programmer.public(),
                "arbitrary bytes authenticated as the enrolled programmer"
            );
        }
    }
    let auth = HelloAuth {
        header: HelloHeader {
            key_id: 7,
            counter: 1,
        },
        preauth: PREAUTH,
        psk: None,
    };
    // 2. An established session reads arbitrary bytes, then the genuine frame.
    let mut m1 = [0u8; MAX_FRAME];
    let mut m2 = [0u8; MAX_FRAME];
    let (waiting, n1) = Initiator::new(&programmer, pump.public(), &auth, Entropy::new([1; 32]))
        .expect("initiator")
        .write_hello(&mut m1)
        .expect("hello");
    let hello = Responder::new(&pump, &auth.header, None, Entropy::new([2; 32]))
        .expect("responder")
        .read_hello(&m1[..n1])
        .expect("genuine hello");
    let (mut pump_session, n2) = hello.write_reply(&mut m2).expect("reply");
    let mut programmer_session = waiting.read_reply(&m2[..n2]).expect("genuine reply");
    let mut frame = [0u8; MAX_FRAME];
    let n = programmer_session
        .write_message(b"interrogate", &mut frame)
        .expect("write");
    let mut out = [0u8; MAX_FRAME];
    let before = pump_session.receiving_nonce();
    let forged = pump_session.read_message(data, &mut out);
    if data != &frame[..n] {
        assert!(forged.is_err(), "arbitrary bytes decrypted in a session");
        assert_eq!(
            pump_session.receiving_nonce(),
            before,
            "a failed read advanced the nonce"
        );
    }
    if forged.is_err() {
        let got = pump_session
            .read_message(&frame[..n], &mut out)
            .expect("genuine frame");
        assert_eq!(&out[..got], b"interrogate");
    }
});
