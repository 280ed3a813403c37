//! The implant's side of a handshake, for instruction counts.
//!
//! ```text
//! cargo build --release -p thecal-link --example handshake_cost
//! valgrind --tool=callgrind target/release/examples/handshake_cost accept N
//! valgrind --tool=callgrind target/release/examples/handshake_cost forged N
//! ```
//!
//! `accept N` runs N complete hellos through `Implant::accept` (header, counter,
//! pre-authentication tag, Noise message 1, reply); `forged N` runs N hellos whose tag
//! is wrong (rejected before any public-key work). The device's hellos are made before
//! the measured part starts; the cost per hello is the difference of the totals for two
//! values of N divided by their difference.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use thecal_link::endpoint::{Enrolment, Implant, Registry};
use thecal_link::frame::MAX_FRAME;
use thecal_link::radio::{Radio, RadioCosts, RadioPolicy};
use thecal_link::session::{Entropy, HelloAuth, HelloHeader, Initiator, StaticKeypair};
use thecal_pump::command::Role;
use thecal_pump::core::Pump;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "accept".into());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let device = StaticKeypair::from_secret([11; 32]).unwrap();
    let implant_keys = StaticKeypair::from_secret([99; 32]).unwrap();
    let preauth = [0x42; 32];
    let mut registry = Registry::new();
    registry
        .enroll(Enrolment::new(
            *device.public(),
            Role::Clinician,
            7,
            preauth,
        ))
        .unwrap();
    // No back-off, an unbounded budget: only the cryptography is measured.
    let policy = RadioPolicy {
        daily_budget_uj: u64::MAX,
        backoff_first: Duration::ZERO,
        backoff_max: Duration::ZERO,
    };
    let mut implant = Implant::with_radio(
        implant_keys.clone(),
        registry,
        Radio::new(RadioCosts::TYPICAL, policy),
    );
    let mut pump = Pump::new(HardwareProfile::synchromed_class(20), Instant::ZERO);
    while pump.poll_action().is_some() {}
    let hellos: Vec<Vec<u8>> = (1..=n)
        .map(|counter| {
            let auth = HelloAuth {
                header: HelloHeader { key_id: 7, counter },
                preauth,
                psk: None,
            };
            let mut out = [0u8; MAX_FRAME];
            let mut e = [0u8; 32];
            e[..8].copy_from_slice(&counter.to_le_bytes());
            let (_, len) = Initiator::new(&device, implant_keys.public(), &auth, Entropy::new(e))
                .unwrap()
                .write_hello(&mut out)
                .unwrap();
            let mut hello = out[..len].to_vec();
            if mode == "forged" {
                *hello.last_mut().unwrap() ^= 1;
            }
            hello
        })
        .collect();
    let mut reply = [0u8; MAX_FRAME];
    let mut accepted = 0u64;
    for (i, hello) in hellos.iter().enumerate() {
        let mut e = [0x5a; 32];
        e[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let now = Instant::from_ms(1_000 * (i as u64 + 1));
        if implant
            .accept(now, hello, Entropy::new(e), &mut pump, &mut reply)
            .is_ok()
        {
            accepted += 1;
        }
        while pump.poll_action().is_some() {}
    }
    println!(
        "{mode}: {n} hellos, {accepted} accepted, hello {} B, reply {} B",
        hellos[0].len(),
        if accepted > 0 { 4 + 48 } else { 0 }
    );
}
