//! Clinical corrections of the therapy core: each test is a hand-worked example of a
//! defect found in review, and fails on the core before its fix.

#![allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod rig;

use thecal_pump::command::{FaultCode, StopReason};
use thecal_pump::core::BolusKind;
use thecal_pump::event::Event;
use thecal_rx::Volume;

// ----- typed log events (PUMP-030) ------------------------------------------------------

#[test]
fn stop_reasons_fault_codes_and_bolus_kinds_round_trip_through_their_codes_pump_030() {
    // The codes are the log's stable numbering: written by hand here, not derived.
    let reasons = [
        (1, StopReason::Procedure, "procedure"),
        (2, StopReason::AdverseEffect, "adverse effect"),
        (3, StopReason::EndOfTherapy, "end of therapy"),
        (4, StopReason::Other, "other"),
    ];
    for (code, reason, name) in reasons {
        assert_eq!(reason.code(), code);
        assert_eq!(StopReason::try_from(code), Ok(reason));
        assert_eq!(reason.name(), name);
    }
    let kinds = [
        (1, BolusKind::Clinician, "clinician"),
        (2, BolusKind::Priming, "priming"),
        (3, BolusKind::Bridge, "bridge"),
        (4, BolusKind::Patient, "patient"),
    ];
    for (code, kind, name) in kinds {
        assert_eq!(kind.code(), code);
        assert_eq!(BolusKind::try_from(code), Ok(kind));
        assert_eq!(kind.name(), name);
    }
    for (code, fault) in [
        (1, FaultCode::Memory),
        (2, FaultCode::Program),
        (3, FaultCode::Limiter),
        (4, FaultCode::FluidPath),
        (5, FaultCode::Reservoir),
        (6, FaultCode::Clock),
        (7, FaultCode::Arithmetic),
    ] {
        assert_eq!(fault.code(), code);
        assert_eq!(FaultCode::try_from(code), Ok(fault));
        assert!(!fault.name().is_empty());
    }
    // A code no value owns is an error naming the code, never a guess.
    for bad in [0u8, 5, 200] {
        assert_eq!(BolusKind::try_from(bad).map_err(|e| e.code), Err(bad));
    }
    assert!(StopReason::try_from(0).is_err());
    assert!(FaultCode::try_from(8).is_err());
}

#[test]
fn logged_events_keep_their_typed_values_through_the_encoding_pump_030() {
    let events = [
        Event::Stopped {
            reason: StopReason::AdverseEffect,
        },
        Event::Fault {
            code: FaultCode::FluidPath,
        },
        Event::BolusStarted {
            kind: BolusKind::Bridge,
            volume: Volume::from_raw(10_000),
        },
        Event::BolusEnded {
            kind: BolusKind::Priming,
            delivered: Volume::from_raw(7),
        },
    ];
    for e in events {
        let mut buf = [0u8; thecal_pump::event::MAX_EVENT_LEN];
        let bytes = postcard::to_slice(&e, &mut buf).unwrap();
        let back: Event = postcard::from_bytes(bytes).unwrap();
        assert_eq!(back, e);
    }
}
