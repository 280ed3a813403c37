//! Every code the FHIR export writes, in one table: its system, code, display, where it
//! comes from, and whether it was confirmed in a published source. `docs/fhir.md` lists
//! the same table (a test compares them), so a code is never used without being
//! documented.
//!
//! Where no standard code was confirmed, the export writes a code of the clinic's own code
//! system [`LOCAL`] (with the concept's text), never a guessed SNOMED CT or LOINC code.

/// SNOMED CT.
pub const SNOMED: &str = "http://snomed.info/sct";
/// LOINC.
pub const LOINC: &str = "http://loinc.org";
/// RxNorm.
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
/// UCUM, the units of every Quantity.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// DICOM's controlled terminology (audit event types).
pub const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// HL7 v2 table 0203, identifier types.
pub const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
/// HL7 observation categories.
pub const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
/// HL7 v3 observation interpretation.
pub const INTERPRETATION: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
/// HL7 condition clinical status.
pub const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
/// HL7 condition verification status.
pub const CONDITION_VERIFICATION: &str =
    "http://terminology.hl7.org/CodeSystem/condition-ver-status";
/// HL7 condition categories.
pub const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
/// HL7 dose-rate types (ordered, calculated).
pub const DOSE_RATE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/dose-rate-type";
/// The clinic's own code system, for concepts without a confirmed standard code. The
/// `.invalid` host is reserved (RFC 2606): it names this code system and resolves nowhere.
pub const LOCAL: &str = "https://thecal.invalid/fhir/CodeSystem/clinic";
/// The system of the clinic's medical record numbers (`Patient.identifier`).
pub const MRN_SYSTEM: &str = "https://thecal.invalid/fhir/NamingSystem/mrn";
/// The system of pump serial numbers (`Device.identifier`).
pub const SERIAL_SYSTEM: &str = "https://thecal.invalid/fhir/NamingSystem/pump-serial";
/// The extension that carries the indication on `Patient` (the clinic's record needs it at
/// import).
pub const INDICATION_EXTENSION: &str = "https://thecal.invalid/fhir/StructureDefinition/indication";

/// One code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// Code system.
    pub system: &'static str,
    /// Code.
    pub code: &'static str,
    /// Display.
    pub display: &'static str,
    /// Confirmed in a published source (named in `source`).
    pub certain: bool,
    /// Where the code comes from.
    pub source: &'static str,
}

const fn c(
    system: &'static str,
    code: &'static str,
    display: &'static str,
    certain: bool,
    source: &'static str,
) -> Code {
    Code {
        system,
        code,
        display,
        certain,
        source,
    }
}

const IG: &str = "seen in published FHIR implementation guides";
const HL7: &str = "HL7 terminology (FHIR R4B value set)";
const OWN: &str = "thecal's own code: no standard code confirmed";
const RX: &str = "RxNorm ingredient (IN) as recalled; not checked against RxNav here";

/// Intrathecal route.
pub const ROUTE_INTRATHECAL: Code = c(SNOMED, "72607000", "Intrathecal route", true, IG);
/// Spasticity (finding).
pub const SPASTICITY: Code = c(SNOMED, "221360009", "Spasticity", true, IG);
/// Chronic pain (finding).
pub const CHRONIC_PAIN: Code = c(SNOMED, "82423001", "Chronic pain", true, IG);
/// Cancer-related pain: no SNOMED CT code confirmed.
pub const CANCER_PAIN: Code = c(LOCAL, "cancer-pain", "Cancer-related pain", false, OWN);
/// Pain severity NRS 0–10.
pub const NRS: Code = c(
    LOINC,
    "72514-3",
    "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
    true,
    IG,
);
/// Body weight.
pub const BODY_WEIGHT: Code = c(LOINC, "29463-7", "Body weight", true, IG);
/// Oswestry disability index.
pub const ODI: Code = c(
    LOCAL,
    "odi",
    "Oswestry disability index, percent",
    false,
    OWN,
);
/// Mean Modified Ashworth grade × 10.
pub const ASHWORTH: Code = c(
    LOCAL,
    "ashworth-mean-tenths",
    "Mean Modified Ashworth grade × 10",
    false,
    OWN,
);
/// Penn spasm frequency.
pub const PENN: Code = c(
    LOCAL,
    "penn-spasm-frequency",
    "Penn spasm frequency",
    false,
    OWN,
);
/// Brief Pain Inventory short form, mean severity.
pub const BPI: Code = c(
    LOCAL,
    "bpi-sf-severity",
    "BPI-SF mean pain severity",
    false,
    OWN,
);
/// Reservoir reconciliation at a refill.
pub const RECONCILIATION: Code = c(
    LOCAL,
    "reservoir-reconciliation",
    "Pump reservoir reconciliation at refill",
    false,
    OWN,
);
/// Expected residual volume.
pub const EXPECTED_RESIDUAL: Code = c(
    LOCAL,
    "expected-residual",
    "Expected residual volume in the pump reservoir",
    false,
    OWN,
);
/// Aspirated residual volume.
pub const ASPIRATED_RESIDUAL: Code = c(
    LOCAL,
    "aspirated-residual",
    "Aspirated residual volume from the pump reservoir",
    false,
    OWN,
);
/// Reservoir volume after the fill.
pub const VOLUME_AFTER_FILL: Code = c(
    LOCAL,
    "volume-after-fill",
    "Pump reservoir volume after the fill",
    false,
    OWN,
);
/// The implanted pump.
pub const DEVICE_PUMP: Code = c(
    LOCAL,
    "intrathecal-pump",
    "Implantable intrathecal drug infusion pump",
    false,
    OWN,
);
/// The intrathecal catheter.
pub const DEVICE_CATHETER: Code = c(
    LOCAL,
    "intrathecal-catheter",
    "Intrathecal catheter",
    false,
    OWN,
);
/// Implant of a pump and catheter.
pub const PROC_IMPLANT: Code = c(
    LOCAL,
    "pump-implant",
    "Implantation of intrathecal pump and catheter",
    false,
    OWN,
);
/// Catheter revision.
pub const PROC_CATHETER_REVISION: Code = c(
    LOCAL,
    "catheter-revision",
    "Revision of intrathecal catheter",
    false,
    OWN,
);
/// Pump replacement.
pub const PROC_REPLACEMENT: Code = c(
    LOCAL,
    "pump-replacement",
    "Replacement of intrathecal pump",
    false,
    OWN,
);
/// Pump removal.
pub const PROC_EXPLANT: Code = c(
    LOCAL,
    "pump-explant",
    "Removal of intrathecal pump",
    false,
    OWN,
);
/// Intrathecal trial.
pub const PROC_TRIAL: Code = c(
    LOCAL,
    "intrathecal-trial",
    "Intrathecal screening trial",
    false,
    OWN,
);
/// Complications.
pub const COMPLICATION_INFECTION: Code = c(LOCAL, "infection", "Infection", false, OWN);
/// CSF leak.
pub const COMPLICATION_CSF_LEAK: Code =
    c(LOCAL, "csf-leak", "Cerebrospinal fluid leak", false, OWN);
/// Granuloma.
pub const COMPLICATION_GRANULOMA: Code =
    c(LOCAL, "granuloma", "Catheter-tip granuloma", false, OWN);
/// Withdrawal.
pub const COMPLICATION_WITHDRAWAL: Code = c(LOCAL, "withdrawal", "Drug withdrawal", false, OWN);
/// Overdose.
pub const COMPLICATION_OVERDOSE: Code = c(LOCAL, "overdose", "Drug overdose", false, OWN);
/// Device malfunction.
pub const COMPLICATION_DEVICE: Code = c(
    LOCAL,
    "device-malfunction",
    "Pump or catheter malfunction",
    false,
    OWN,
);
/// Medical record number.
pub const IDENTIFIER_MR: Code = c(V2_0203, "MR", "Medical record number", true, HL7);
/// Serial number.
pub const IDENTIFIER_SNO: Code = c(V2_0203, "SNO", "Serial Number", true, HL7);
/// Survey.
pub const CAT_SURVEY: Code = c(OBS_CATEGORY, "survey", "Survey", true, HL7);
/// Vital signs.
pub const CAT_VITAL: Code = c(OBS_CATEGORY, "vital-signs", "Vital Signs", true, HL7);
/// Therapy.
pub const CAT_THERAPY: Code = c(OBS_CATEGORY, "therapy", "Therapy", true, HL7);
/// Abnormal.
pub const ABNORMAL: Code = c(INTERPRETATION, "A", "Abnormal", true, HL7);
/// Normal.
pub const NORMAL: Code = c(INTERPRETATION, "N", "Normal", true, HL7);
/// Active condition.
pub const CLINICAL_ACTIVE: Code = c(CONDITION_CLINICAL, "active", "Active", true, HL7);
/// Resolved condition.
pub const CLINICAL_RESOLVED: Code = c(CONDITION_CLINICAL, "resolved", "Resolved", true, HL7);
/// Confirmed condition.
pub const CONFIRMED: Code = c(CONDITION_VERIFICATION, "confirmed", "Confirmed", true, HL7);
/// Problem-list item.
pub const PROBLEM_LIST: Code = c(
    CONDITION_CATEGORY,
    "problem-list-item",
    "Problem List Item",
    true,
    HL7,
);
/// Encounter diagnosis (complications).
pub const ENCOUNTER_DIAGNOSIS: Code = c(
    CONDITION_CATEGORY,
    "encounter-diagnosis",
    "Encounter Diagnosis",
    true,
    HL7,
);
/// The prescriber's dose.
pub const RATE_ORDERED: Code = c(DOSE_RATE_TYPE, "ordered", "Ordered", true, HL7);
/// The flow thecal-rx derived.
pub const RATE_CALCULATED: Code = c(DOSE_RATE_TYPE, "calculated", "Calculated", true, HL7);
/// Audit event type.
pub const AUDIT_PATIENT_RECORD: Code = c(
    DICOM,
    "110110",
    "Patient Record",
    true,
    "DICOM PS3.16 audit event ID, as in the FHIR AuditEvent examples",
);

/// The RxNorm ingredient code of a drug of thecal-rx's library.
pub const fn drug(d: thecal_rx::drug::DrugId) -> Code {
    use thecal_rx::drug::DrugId::*;
    match d {
        Morphine => c(RXNORM, "7052", "morphine", false, RX),
        Hydromorphone => c(RXNORM, "3423", "hydromorphone", false, RX),
        Fentanyl => c(RXNORM, "4337", "fentanyl", false, RX),
        Sufentanil => c(RXNORM, "56795", "sufentanil", false, RX),
        Bupivacaine => c(RXNORM, "1815", "bupivacaine", false, RX),
        Clonidine => c(RXNORM, "2599", "clonidine", false, RX),
        Ziconotide => c(RXNORM, "68503", "ziconotide", false, RX),
        Baclofen => c(RXNORM, "1292", "baclofen", false, RX),
        Saline => c(RXNORM, "9863", "sodium chloride", false, RX),
    }
}

/// Every code the export may write (the table `docs/fhir.md` documents).
pub fn all() -> Vec<Code> {
    let mut v = vec![
        ROUTE_INTRATHECAL,
        SPASTICITY,
        CHRONIC_PAIN,
        CANCER_PAIN,
        NRS,
        BODY_WEIGHT,
        ODI,
        ASHWORTH,
        PENN,
        BPI,
        RECONCILIATION,
        EXPECTED_RESIDUAL,
        ASPIRATED_RESIDUAL,
        VOLUME_AFTER_FILL,
        DEVICE_PUMP,
        DEVICE_CATHETER,
        PROC_IMPLANT,
        PROC_CATHETER_REVISION,
        PROC_REPLACEMENT,
        PROC_EXPLANT,
        PROC_TRIAL,
        COMPLICATION_INFECTION,
        COMPLICATION_CSF_LEAK,
        COMPLICATION_GRANULOMA,
        COMPLICATION_WITHDRAWAL,
        COMPLICATION_OVERDOSE,
        COMPLICATION_DEVICE,
        IDENTIFIER_MR,
        IDENTIFIER_SNO,
        CAT_SURVEY,
        CAT_VITAL,
        CAT_THERAPY,
        ABNORMAL,
        NORMAL,
        CLINICAL_ACTIVE,
        CLINICAL_RESOLVED,
        CONFIRMED,
        PROBLEM_LIST,
        ENCOUNTER_DIAGNOSIS,
        RATE_ORDERED,
        RATE_CALCULATED,
        AUDIT_PATIENT_RECORD,
    ];
    v.extend(thecal_rx::drug::DrugId::ALL.map(drug));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_documented_with_its_system_and_source_clinic_187() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/fhir.md"),
        )
        .unwrap();
        let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| `")).collect();
        let all = all();
        for c in &all {
            let row = rows
                .iter()
                .find(|r| r.starts_with(&format!("| `{}` | `{}` |", c.system, c.code)))
                .unwrap_or_else(|| panic!("{} {} is not in docs/fhir.md", c.system, c.code));
            assert!(row.contains(c.display), "{row}");
            assert!(row.contains(c.source), "{row}");
            let confirmed = if c.certain {
                "| yes |"
            } else if c.system == LOCAL {
                "| own code |"
            } else {
                "| **not verified** |"
            };
            assert!(row.contains(confirmed), "{row}");
        }
        // No guessed code: every code not confirmed in a source is the clinic's own or
        // marked as not verified.
        assert!(
            all.iter()
                .filter(|c| !c.certain)
                .all(|c| c.system == LOCAL || c.system == RXNORM)
        );
        // Each code once.
        for (i, c) in all.iter().enumerate() {
            assert!(
                all[i + 1..]
                    .iter()
                    .all(|o| (o.system, o.code) != (c.system, c.code)),
                "{c:?}"
            );
        }
    }
}
