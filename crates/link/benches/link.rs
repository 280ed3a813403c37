//! Criterion benchmarks of the implant side of the link:
//!
//! - `accept_hello`: a genuine hello through `Implant::accept` (header, counter,
//!   pre-authentication tag, Noise message 1, reply: four X25519);
//! - `reject_forged_hello`: a hello with a wrong tag (refused before any public-key work);
//! - `interrogate`: one request and its answer in an established session (decrypt, decode,
//!   the pump's status, encode, encrypt).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use thecal_link::endpoint::{Enrolment, Host, Implant, Registry};
use thecal_link::frame::MAX_FRAME;
use thecal_link::message::Request;
use thecal_link::radio::{Radio, RadioCosts, RadioPolicy};
use thecal_link::session::{
    Entropy, HelloAuth, HelloHeader, Initiator, MAX_PLAINTEXT, StaticKeypair,
};
use thecal_pump::command::{Command, Role};
use thecal_pump::core::Pump;
use thecal_pump::log::LogEntry;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::{Duration, Instant};

const PREAUTH: [u8; 32] = [0x42; 32];

fn keys(seed: u8) -> StaticKeypair {
    StaticKeypair::from_secret([seed; 32]).unwrap()
}

fn implant() -> (Implant, Pump) {
    let mut registry = Registry::new();
    registry
        .enroll(Enrolment::new(
            *keys(11).public(),
            Role::Clinician,
            7,
            PREAUTH,
        ))
        .unwrap();
    // No back-off and an unbounded budget: only the work is measured.
    let policy = RadioPolicy {
        daily_budget_uj: u64::MAX,
        backoff_first: Duration::ZERO,
        backoff_max: Duration::ZERO,
    };
    let implant = Implant::with_radio(keys(99), registry, Radio::new(RadioCosts::TYPICAL, policy));
    let mut pump = Pump::new(HardwareProfile::synchromed_class(20), Instant::ZERO);
    while pump.poll_action().is_some() {}
    (implant, pump)
}

fn hello(counter: u64, forged: bool) -> Vec<u8> {
    let auth = HelloAuth {
        header: HelloHeader { key_id: 7, counter },
        preauth: PREAUTH,
        psk: None,
    };
    let mut e = [0u8; 32];
    e[..8].copy_from_slice(&counter.to_le_bytes());
    let mut out = [0u8; MAX_FRAME];
    let (_, n) = Initiator::new(&keys(11), keys(99).public(), &auth, Entropy::new(e))
        .unwrap()
        .write_hello(&mut out)
        .unwrap();
    let mut h = out[..n].to_vec();
    if forged {
        *h.last_mut().unwrap() ^= 1;
    }
    h
}

fn bench(c: &mut Criterion) {
    c.bench_function("accept_hello", |b| {
        let (mut implant, mut pump) = implant();
        let mut counter = 0u64;
        let mut reply = [0u8; MAX_FRAME];
        b.iter_batched(
            || {
                counter += 1;
                (counter, hello(counter, false))
            },
            |(counter, h)| {
                let now = Instant::from_ms(counter);
                let r = implant.accept(
                    now,
                    &h,
                    Entropy::new([counter as u8; 32]),
                    &mut pump,
                    &mut reply,
                );
                while pump.poll_action().is_some() {}
                black_box(r.is_ok())
            },
            BatchSize::SmallInput,
        );
    });

    c.bench_function("reject_forged_hello", |b| {
        let (mut implant, mut pump) = implant();
        let forged = hello(1, true);
        let mut reply = [0u8; MAX_FRAME];
        let mut t = 0u64;
        b.iter(|| {
            t += 1;
            let r = implant.accept(
                Instant::from_ms(t),
                black_box(&forged),
                Entropy::new([1; 32]),
                &mut pump,
                &mut reply,
            );
            while pump.poll_action().is_some() {}
            black_box(r.is_err())
        });
    });

    c.bench_function("interrogate", |b| {
        let (mut implant, mut pump) = implant();
        let h = hello(1, false);
        let auth = HelloAuth {
            header: HelloHeader {
                key_id: 7,
                counter: 1,
            },
            preauth: PREAUTH,
            psk: None,
        };
        let mut e = [0u8; 32];
        e[..8].copy_from_slice(&1u64.to_le_bytes());
        let mut out = [0u8; MAX_FRAME];
        let (waiting, _) = Initiator::new(&keys(11), keys(99).public(), &auth, Entropy::new(e))
            .unwrap()
            .write_hello(&mut out)
            .unwrap();
        let mut reply = [0u8; MAX_FRAME];
        let accepted = implant
            .accept(
                Instant::from_ms(1),
                &h,
                Entropy::new([2; 32]),
                &mut pump,
                &mut reply,
            )
            .unwrap();
        let mut device = waiting.read_reply(&reply[..accepted.reply_len]).unwrap();
        let mut session = accepted.session;
        let log: Vec<LogEntry> = Vec::new();
        let mut random = || [0u8; 32];
        let mut plain = [0u8; MAX_PLAINTEXT];
        let mut answer = [0u8; MAX_FRAME];
        let mut t = 1u64;
        b.iter(|| {
            t += 1;
            let bytes = Request::pump(t as u32, Command::Interrogate)
                .encode(&mut plain)
                .unwrap();
            let n = device.write_message(bytes, &mut out).unwrap();
            let mut host = Host {
                pump: &mut pump,
                log: &log,
                random: &mut random,
            };
            let m = implant
                .handle(
                    &mut session,
                    Instant::from_ms(t),
                    &out[..n],
                    &mut host,
                    &mut answer,
                )
                .unwrap();
            while pump.poll_action().is_some() {}
            let k = device.read_message(&answer[..m], &mut plain).unwrap();
            black_box(k)
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
