//! The clinic's records and rules: plain data and pure functions, no I/O, no clock.
//!
//! Every quantity is read and checked with thecal-rx (clinical-unit parsing, dose ↔ flow,
//! prescription checks, refill planning and reconciliation); this module only composes
//! those functions with the clinic's records. Time is always a parameter.

pub mod calendar;
pub mod change;
pub mod device;
pub mod events;
pub mod history;
pub mod pumplog;
pub mod records;
pub mod regimen;
pub mod replacement;
pub mod scales;
pub mod trial;
pub mod visit;

use serde::Serialize;
use utoipa::ToSchema;

/// A field that failed validation: which one, and what is allowed there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name in the request (dotted for nested fields).
    pub field: String,
    /// What was wrong and what is allowed.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Parses a clinical quantity ("20 mL", "2000 mcg/mL") with thecal-rx, naming the field.
///
/// # Errors
/// The field and thecal-rx's message saying what was expected.
pub fn quantity<T>(field: &str, text: &str) -> Result<T, FieldError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    text.parse::<T>()
        .map_err(|e| FieldError::new(field, e.to_string()))
}

/// Checks a free-text field: trimmed length within `min..=max` characters, no control
/// characters other than line breaks.
///
/// # Errors
/// What is allowed.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> Result<String, FieldError> {
    let v = value.trim();
    let n = v.chars().count();
    if n < min || n > max {
        return Err(FieldError::new(
            field,
            format!("must be {min} to {max} characters (got {n})"),
        ));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\r') {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use thecal_rx::Volume;

    #[test]
    fn quantity_names_the_field_and_the_expected_form_clinic_001() {
        let e = quantity::<Volume>("volume_added", "20 mg").unwrap_err();
        assert_eq!(e.field, "volume_added");
        assert!(e.message.contains("expected a volume"), "{}", e.message);
        assert_eq!(
            quantity::<Volume>("v", "20 mL").unwrap(),
            Volume::from_ml(20)
        );
    }

    #[test]
    fn text_limits_length_and_control_characters() {
        assert_eq!(text("name", "  Ann  ", 1, 10).unwrap(), "Ann");
        assert!(text("name", "", 1, 10).is_err());
        assert!(text("name", "a\u{0}b", 1, 10).is_err());
        assert_eq!(
            text("name", "abcdefghijk", 1, 10).unwrap_err().message,
            "must be 1 to 10 characters (got 11)"
        );
    }
}
