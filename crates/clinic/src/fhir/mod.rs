//! The clinic's records as HL7 FHIR: export of a patient's record as a `Bundle`, read-only
//! REST endpoints under `/fhir/r4`, and import of a referral's `Patient`.
//!
//! The resources are built and parsed with fhir-sdk's **R4B** model (fhir-sdk has no R4
//! model); every resource and element used here is the same in R4 (4.0.1) and R4B
//! (4.3.0), so the output is R4B-conformant and reads as R4. See `docs/fhir.md`.
//!
//! - [`codes`]: every code written, its system and source, and which are not certain.
//! - [`export`]: a [`export::Record`] → resources → `Bundle`; pure, no I/O.
//! - [`summary`]: the clinical values a bundle carries, read back from parsed FHIR, to
//!   prove the round trip.
//! - [`import`]: a `Patient` → the clinic's new patient, each error naming the element.
//! - [`capability`]: the server's `CapabilityStatement` (`/fhir/r4/metadata`).
//! - [`api`]: the HTTP endpoints (authorization by the console's table, every access
//!   audited) and the loading of a record from storage.
//!
//! This module never changes a record except through [`import`] (which goes through the
//! same storage call and audit as the console's registration).

pub mod api;
pub mod capability;
/// The FHIR model crate, for users of this crate that parse what it writes.
pub use fhir_sdk;
pub mod codes;
pub mod export;
pub mod import;
pub mod summary;

/// Why a record could not be exported (a stored value the model refuses; logged, never
/// sent to a client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirError(pub String);

impl std::fmt::Display for FhirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FhirError {}

impl From<fhir_sdk::BuilderError> for FhirError {
    fn from(e: fhir_sdk::BuilderError) -> Self {
        FhirError(format!("FHIR model: {e}"))
    }
}

/// The media type of FHIR JSON.
pub const FHIR_JSON: &str = "application/fhir+json";
