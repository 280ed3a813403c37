//! Models of what the pump core cannot see: the physics and physiology of the twin.
//!
//! Floating point is used throughout: these are the simulator's view of the world,
//! never a dose the pump acts on. Every model is a plain struct whose parameters are
//! documented with their source, or marked *(check)* (recalled, not read in a primary
//! document) or *(assumption)* (chosen for the simulator), as in DOMAIN.md. Every
//! random draw comes from an `&mut impl rand::Rng` passed in (the engine owns one
//! seeded `rand_chacha::ChaCha8Rng`), so a run is deterministic for its seed.
//!
//! | module | requirement | models |
//! |---|---|---|
//! | [`mechanism`] | SIM-010 | true volume per stroke or pulse; gas-driven flow |
//! | [`environment`] | SIM-011 | body temperature, ambient pressure, MRI field |
//! | [`catheter`] | SIM-012 | occlusion, granuloma, leak, disconnection |
//! | [`patient`] | SIM-013 | CSF/systemic pharmacokinetics, effect, withdrawal, overdose, bolus presses |
//! | [`battery`] | SIM-014 | battery gauge readings, RTC drift |
//! | [`faults`] | SIM-015 | injected stalls, lost strokes, sensor glitches |
//!
//! `docs/models.md` gives the equations and parameter tables.

pub mod battery;
pub mod catheter;
pub mod environment;
pub mod faults;
pub mod mechanism;
pub mod patient;

#[cfg(test)]
pub(crate) mod testutil {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A seeded generator for tests.
    pub fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    /// Asserts `|a − b| ≤ tol`.
    #[track_caller]
    pub fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} is not within {tol} of {b}");
    }
}
