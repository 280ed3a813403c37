//! Import of a referral: a FHIR `Patient` → the clinic's [`NewPatient`].
//!
//! The JSON is read with fhir-sdk's R4B model (through `serde_path_to_error`, so a value
//! the model refuses is named by its path, e.g. `Patient.birthDate`), then the clinic's
//! own rules apply ([`NewPatient::validate`]). Every error names the FHIR element at fault
//! as a FHIRPath expression and says what is allowed.
//!
//! What the clinic needs from the `Patient`:
//! - `identifier`: the medical record number — the identifier whose `system` is
//!   [`codes::MRN_SYSTEM`], or else the one whose `type` is v2-0203 `MR`;
//! - `name`: the first name's `text`, or its `given` and `family` joined;
//! - `birthDate`: a full date (YYYY-MM-DD);
//! - the extension [`codes::INDICATION_EXTENSION`] with `valueCode` one of
//!   [`INDICATIONS`](super::export::INDICATIONS) (the export writes it).

use chrono::NaiveDate;
use fhir_sdk::r4b::resources::Patient;
use fhir_sdk::r4b::types::ExtensionValue;

use super::codes;
use super::export::INDICATIONS;
use crate::domain::records::{Condition, NewPatient, PainType, SpasticityOrigin};

/// One problem with an imported resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The element at fault, as a FHIRPath expression (`Patient.birthDate`).
    pub expression: String,
    /// What was wrong and what is allowed.
    pub message: String,
}

impl Issue {
    fn new(expression: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            expression: expression.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.expression, self.message)
    }
}

/// A serde path (`name[0].given[1]`, `birthDate`) as a FHIRPath expression.
fn fhirpath(path: &str) -> String {
    if path.is_empty() || path == "." {
        "Patient".to_owned()
    } else {
        format!("Patient.{path}")
    }
}

/// The elements of `given` missing from `kept` (the same resource written by the model),
/// each as an issue.
fn unknown(given: &serde_json::Value, kept: &serde_json::Value, path: &str, out: &mut Vec<Issue>) {
    use serde_json::Value;
    match (given, kept) {
        (Value::Object(g), Value::Object(k)) => {
            for (name, v) in g {
                // Empty is absent (the model writes no empty list).
                let empty = match v {
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                    Value::Null => true,
                    _ => false,
                };
                if empty {
                    continue;
                }
                let here = format!("{path}.{name}");
                match k.get(name) {
                    Some(kv) => unknown(v, kv, &here, out),
                    None => out.push(Issue::new(
                        here,
                        "is not an element of a FHIR R4B Patient here; remove it",
                    )),
                }
            }
        }
        (Value::Array(g), Value::Array(k)) => {
            for (i, v) in g.iter().enumerate() {
                if let Some(kv) = k.get(i) {
                    unknown(v, kv, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Reads a `Patient` resource's JSON into the clinic's new patient, checked against the
/// clinic's rules as of `today`.
///
/// # Errors
/// Every problem found, each naming its element (at least one).
pub fn patient(json: &str, today: NaiveDate) -> Result<NewPatient, Vec<Issue>> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| vec![Issue::new("Patient", format!("not JSON: {e}"))])?;
    match value.get("resourceType").and_then(|v| v.as_str()) {
        Some("Patient") => {}
        Some(other) => {
            return Err(vec![Issue::new(
                "Patient.resourceType",
                format!("is {other}; only a Patient resource can be imported"),
            )]);
        }
        None => {
            return Err(vec![Issue::new(
                "Patient.resourceType",
                "is missing; give \"resourceType\": \"Patient\"",
            )]);
        }
    }
    let p: Patient = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        vec![Issue::new(fhirpath(&path), e.into_inner().to_string())]
    })?;
    // The model skips what it does not know: an element that does not come back when the
    // resource is written again is not an element of Patient.
    let mut issues = vec![];
    let again = serde_json::to_value(&p).unwrap_or_default();
    unknown(&value, &again, "Patient", &mut issues);
    if !issues.is_empty() {
        return Err(issues);
    }
    let ids: Vec<_> = p.identifier.iter().flatten().collect();
    let mrn = ids
        .iter()
        .find(|i| i.system.as_deref() == Some(codes::MRN_SYSTEM))
        .or_else(|| {
            ids.iter().find(|i| {
                i.r#type.as_ref().is_some_and(|t| {
                    t.coding.iter().flatten().any(|c| {
                        c.system.as_deref() == Some(codes::V2_0203)
                            && c.code.as_deref() == Some("MR")
                    })
                })
            })
        })
        .and_then(|i| i.value.clone());
    if mrn.is_none() {
        issues.push(Issue::new(
            "Patient.identifier",
            format!(
                "no medical record number: give an identifier with system {} or with type {}#MR, and a value",
                codes::MRN_SYSTEM,
                codes::V2_0203
            ),
        ));
    }
    let name = p.name.iter().flatten().next().and_then(|n| {
        n.text.clone().or_else(|| {
            let parts: Vec<String> = n
                .given
                .iter()
                .flatten()
                .cloned()
                .chain(n.family.clone())
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
    });
    if name.is_none() {
        issues.push(Issue::new(
            "Patient.name",
            "no name: give name[0].text, or name[0].given and name[0].family",
        ));
    }
    let dob = match &p.birth_date {
        Some(fhir_sdk::Date::Date(d)) => {
            NaiveDate::from_ymd_opt(d.year(), u32::from(u8::from(d.month())), u32::from(d.day()))
        }
        Some(_) => {
            issues.push(Issue::new(
                "Patient.birthDate",
                "is a year or a month only; give the full date of birth (YYYY-MM-DD)",
            ));
            None
        }
        None => {
            issues.push(Issue::new(
                "Patient.birthDate",
                "is missing; give the date of birth (YYYY-MM-DD)",
            ));
            None
        }
    };
    let indication = p
        .extension
        .iter()
        .find(|e| e.url == codes::INDICATION_EXTENSION);
    let condition = match indication.map(|e| &e.value) {
        Some(Some(ExtensionValue::Code(c))) => match c.as_str() {
            "spasticity-spinal" => Some(Condition::Spasticity {
                origin: SpasticityOrigin::Spinal,
            }),
            "spasticity-cerebral" => Some(Condition::Spasticity {
                origin: SpasticityOrigin::Cerebral,
            }),
            "pain-cancer" => Some(Condition::Pain {
                pain_type: PainType::Cancer,
            }),
            "pain-non-cancer" => Some(Condition::Pain {
                pain_type: PainType::NonCancer,
            }),
            other => {
                issues.push(Issue::new(
                    format!("Patient.extension('{}').value", codes::INDICATION_EXTENSION),
                    format!(
                        "\"{other}\" is not an indication; allowed: {}",
                        INDICATIONS.join(", ")
                    ),
                ));
                None
            }
        },
        _ => {
            issues.push(Issue::new(
                format!("Patient.extension('{}')", codes::INDICATION_EXTENSION),
                format!(
                    "the indication is missing: give this extension with valueCode one of {}",
                    INDICATIONS.join(", ")
                ),
            ));
            None
        }
    };
    let (Some(mrn), Some(name), Some(date_of_birth), Some(condition)) = (mrn, name, dob, condition)
    else {
        return Err(issues);
    };
    NewPatient {
        mrn,
        name,
        date_of_birth,
        condition,
        weight_kg: None,
        allergies: String::new(),
        contacts: String::new(),
    }
    .validate(today)
    .map_err(|e| {
        let element = match e.field.as_str() {
            "mrn" => "Patient.identifier.value",
            "name" => "Patient.name",
            "date_of_birth" => "Patient.birthDate",
            _ => "Patient",
        };
        vec![Issue::new(element, e.message)]
    })
}
