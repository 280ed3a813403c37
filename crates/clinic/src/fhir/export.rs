//! A patient's record as a FHIR R4B `Bundle` (type `searchset`), built with fhir-sdk's
//! R4B model. Pure: the record and the time come in, the bundle goes out; no storage, no
//! clock.
//!
//! Every Quantity is UCUM (system [`codes::UCUM`]); masses are micrograms (`ug`),
//! volumes millilitres (`mL`), rates per day (`/d`). Values are thecal-rx's canonical
//! integers (ng, nL) printed as exact decimals, and every derived value (a flex step's
//! flow, a bolus volume, the most a patient may give in a day, the mass added at a refill)
//! is computed by thecal-rx's own functions.

use chrono::{DateTime, NaiveDate, Utc};
use fhir_sdk::r4b::codes::{
    AuditEventAction, AuditEventOutcome, BundleType, DaysOfWeek, DeviceNameType,
    DeviceUseStatementStatus, EventStatus, FHIRDeviceStatus, ObservationStatus, SearchEntryMode,
};
use fhir_sdk::r4b::resources::{
    AuditEvent, AuditEventAgent, AuditEventEntity, AuditEventSource, Bundle, BundleEntry,
    BundleEntrySearch, Condition, ConditionAbatement, ConditionOnset, Device, DeviceDeviceName,
    DeviceProperty, DeviceUdiCarrier, DeviceUseStatement, DeviceUseStatementTiming, Medication,
    MedicationAdministration, MedicationAdministrationDosage, MedicationAdministrationEffective,
    MedicationAdministrationMedication, MedicationBatch, MedicationIngredient,
    MedicationIngredientItem, MedicationRequest, MedicationRequestMedication, Observation,
    ObservationComponent, ObservationComponentValue, ObservationEffective, ObservationValue,
    Patient, PatientDeceased, Procedure, ProcedureFocalDevice, ProcedurePerformed, Resource,
};
use fhir_sdk::r4b::types::{
    Annotation, CodeableConcept, Coding, Dosage, DosageAsNeeded, DosageDoseAndRate,
    DosageDoseAndRateDose, DosageDoseAndRateRate, Extension, ExtensionValue, HumanName, Identifier,
    Period, Quantity, Ratio, Reference, Timing, TimingRepeat,
};
use thecal_rx::dose::{flow_for_dose, mass_in, volume_for_mass};
use thecal_rx::quantity::Rounding;
use thecal_rx::{Concentration, Duration, Mass, MassRate, Volume};

use super::FhirError;
use super::codes::{self, Code};
use crate::domain::events::{Complication, ComplicationKind};
use crate::domain::history::{RevisionChange, RevisionRecord};
use crate::domain::records::{
    Condition as Indication, Implant, JourneyState, PainType, Patient as ClinicPatient,
    Prescription, RefillVisit, SpasticityOrigin, VisitStep,
};
use crate::domain::regimen::Weekday;
use crate::domain::scales::{Answers, Assessment};
use crate::domain::trial::{Scale, Trial};
use crate::storage::AuditRow;

type R<T> = Result<T, FhirError>;

/// A patient's record, as the export reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The patient.
    pub patient: ClinicPatient,
    /// Implants with their storage status (active, explanted, replaced).
    pub implants: Vec<(Implant, String)>,
    /// Every prescription version of every implant, by id.
    pub prescriptions: Vec<Prescription>,
    /// Every refill visit of every implant, by id.
    pub visits: Vec<RefillVisit>,
    /// Trials.
    pub trials: Vec<Trial>,
    /// Complications.
    pub complications: Vec<Complication>,
    /// Scale assessments.
    pub assessments: Vec<Assessment>,
    /// Revisions of every implant.
    pub revisions: Vec<RevisionRecord>,
    /// The audit trail of these records, when asked for (auditors only).
    pub audit: Option<Vec<AuditRow>>,
}

// ------------------------------------------------------------------ small builders

/// `n / 10^places` as an exact decimal, e.g. `decimal(12_500, 6)` = 0.0125.
pub fn decimal(n: u64, places: u32) -> f64 {
    let scale = 10u64.pow(places);
    let text = format!(
        "{}.{:0width$}",
        n / scale,
        n % scale,
        width = places as usize
    );
    text.parse().unwrap_or(f64::NAN)
}

fn coding(c: Code) -> R<Coding> {
    Ok(Coding::builder()
        .system(c.system.to_owned())
        .code(c.code.to_owned())
        .display(c.display.to_owned())
        .build()?)
}

fn concept(c: Code) -> R<CodeableConcept> {
    Ok(CodeableConcept::builder()
        .coding(vec![Some(coding(c)?)])
        .text(c.display.to_owned())
        .build()?)
}

fn text_concept(text: &str) -> R<CodeableConcept> {
    Ok(CodeableConcept::builder().text(text.to_owned()).build()?)
}

/// A UCUM quantity.
fn qty(value: f64, ucum: &str) -> R<Quantity> {
    Ok(Quantity::builder()
        .value(value)
        .unit(ucum.to_owned())
        .system(codes::UCUM.to_owned())
        .code(ucum.to_owned())
        .build()?)
}

/// Micrograms from nanograms.
fn ug(ng: u64) -> R<Quantity> {
    qty(decimal(ng, 3), "ug")
}

/// Millilitres from nanolitres.
fn ml(nl: u64) -> R<Quantity> {
    qty(decimal(nl, 6), "mL")
}

fn per_day(numerator: Quantity) -> R<Ratio> {
    Ok(Ratio::builder()
        .numerator(numerator)
        .denominator(qty(1.0, "d")?)
        .build()?)
}

fn per_ml(ng_per_ml: u64) -> R<Ratio> {
    Ok(Ratio::builder()
        .numerator(ug(ng_per_ml)?)
        .denominator(qty(1.0, "mL")?)
        .build()?)
}

fn reference(r: &str) -> R<Reference> {
    Ok(Reference::builder().reference(r.to_owned()).build()?)
}

fn display(d: &str) -> R<Reference> {
    Ok(Reference::builder().display(d.to_owned()).build()?)
}

fn note(text: &str) -> R<Option<Annotation>> {
    Ok(Some(Annotation::builder().text(text.to_owned()).build()?))
}

fn date(d: NaiveDate) -> R<fhir_sdk::Date> {
    d.to_string()
        .parse()
        .map_err(|e| FhirError(format!("date {d}: {e}")))
}

fn date_time(d: NaiveDate) -> R<fhir_sdk::DateTime> {
    Ok(fhir_sdk::DateTime::Date(date(d)?))
}

fn instant(t: DateTime<Utc>) -> R<fhir_sdk::Instant> {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .parse()
        .map_err(|e| FhirError(format!("time {t}: {e}")))
}

pub(crate) fn moment(t: DateTime<Utc>) -> R<fhir_sdk::DateTime> {
    Ok(fhir_sdk::DateTime::DateTime(instant(t)?))
}

fn parse<T>(what: &str, s: &str) -> R<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    s.parse::<T>()
        .map_err(|e| FhirError(format!("{what} \"{s}\": {e}")))
}

fn drug_code(name: &str) -> R<Code> {
    thecal_rx::drug::DrugId::from_name(name)
        .map(codes::drug)
        .ok_or_else(|| FhirError(format!("unknown drug {name}")))
}

fn patient_ref(p: &ClinicPatient) -> String {
    format!("Patient/{}", p.id)
}

// ------------------------------------------------------------------ resources

/// The indication as the `Patient` extension's code (also what import reads).
pub fn indication_code(c: Indication) -> &'static str {
    match c {
        Indication::Spasticity {
            origin: SpasticityOrigin::Spinal,
        } => "spasticity-spinal",
        Indication::Spasticity {
            origin: SpasticityOrigin::Cerebral,
        } => "spasticity-cerebral",
        Indication::Pain {
            pain_type: PainType::Cancer,
        } => "pain-cancer",
        Indication::Pain {
            pain_type: PainType::NonCancer,
        } => "pain-non-cancer",
    }
}

/// Every indication code the extension may carry.
pub const INDICATIONS: [&str; 4] = [
    "spasticity-spinal",
    "spasticity-cerebral",
    "pain-cancer",
    "pain-non-cancer",
];

/// The clinic's patient as a FHIR `Patient`.
pub fn patient(p: &ClinicPatient) -> R<Patient> {
    let d = &p.details;
    let closed = matches!(p.state, JourneyState::Closed | JourneyState::Deceased);
    let mut b = Patient::builder()
        .id(p.id.to_string())
        .extension(vec![
            Extension::builder()
                .url(codes::INDICATION_EXTENSION.to_owned())
                .value(ExtensionValue::Code(
                    indication_code(d.condition).to_owned(),
                ))
                .build()?,
        ])
        .identifier(vec![Some(
            Identifier::builder()
                .r#type(concept(codes::IDENTIFIER_MR)?)
                .system(codes::MRN_SYSTEM.to_owned())
                .value(d.mrn.clone())
                .build()?,
        )])
        .active(!closed)
        .name(vec![Some(
            HumanName::builder().text(d.name.clone()).build()?,
        )])
        .birth_date(date(d.date_of_birth)?);
    if p.state == JourneyState::Deceased {
        b = b.deceased(PatientDeceased::Boolean(true));
    }
    Ok(b.build()?)
}

fn pump(p: &ClinicPatient, i: &Implant, status: &str) -> R<Device> {
    let d = &i.details;
    let mut b = Device::builder()
        .id(format!("pump-{}", i.id))
        .identifier(vec![Some(
            Identifier::builder()
                .r#type(concept(codes::IDENTIFIER_SNO)?)
                .system(codes::SERIAL_SYSTEM.to_owned())
                .value(d.serial.clone())
                .build()?,
        )])
        .status(device_status(status))
        .serial_number(d.serial.clone())
        .device_name(model_name(&d.pump_model)?)
        .model_number(d.pump_model.clone())
        .r#type(concept(codes::DEVICE_PUMP)?)
        .property(vec![
            Some(
                DeviceProperty::builder()
                    .r#type(text_concept("reservoir capacity")?)
                    .value_quantity(vec![Some(ml(i.capacity_nl)?)])
                    .build()?,
            ),
            Some(
                DeviceProperty::builder()
                    .r#type(text_concept("low-reservoir alarm threshold")?)
                    .value_quantity(vec![Some(ml(i.low_alarm_nl)?)])
                    .build()?,
            ),
        ])
        .patient(reference(&patient_ref(p))?)
        .note(vec![note(
            &format!("pocket: {:?}", d.pocket).to_lowercase(),
        )?]);
    if !d.udi.is_empty() {
        b = b.udi_carrier(vec![Some(
            DeviceUdiCarrier::builder()
                .carrier_hrf(d.udi.clone())
                .build()?,
        )]);
    }
    Ok(b.build()?)
}

/// A device's status from its implant row's: active while implanted.
fn device_status(status: &str) -> FHIRDeviceStatus {
    if status == "active" {
        FHIRDeviceStatus::Active
    } else {
        FHIRDeviceStatus::Inactive
    }
}

/// A device's model as its name of type model-name.
fn model_name(model: &str) -> R<Vec<Option<DeviceDeviceName>>> {
    Ok(vec![Some(
        DeviceDeviceName::builder()
            .name(model.to_owned())
            .r#type(DeviceNameType::ModelName)
            .build()?,
    )])
}

fn catheter(p: &ClinicPatient, i: &Implant, status: &str) -> R<Device> {
    let d = &i.details;
    Ok(Device::builder()
        .id(format!("catheter-{}", i.id))
        .status(device_status(status))
        .device_name(model_name(&d.catheter_model)?)
        .model_number(d.catheter_model.clone())
        .r#type(concept(codes::DEVICE_CATHETER)?)
        .property(vec![
            Some(
                DeviceProperty::builder()
                    .r#type(text_concept("length after trimming")?)
                    .value_quantity(vec![Some(qty(f64::from(d.catheter_length_cm), "cm")?)])
                    .build()?,
            ),
            Some(
                DeviceProperty::builder()
                    .r#type(text_concept("catheter tip level")?)
                    .value_code(vec![Some(text_concept(&d.tip_level)?)])
                    .build()?,
            ),
        ])
        .patient(reference(&patient_ref(p))?)
        .parent(reference(&format!("Device/pump-{}", i.id))?)
        .build()?)
}

fn device_use(
    p: &ClinicPatient,
    i: &Implant,
    status: &str,
    device: &str,
    site: &str,
) -> R<DeviceUseStatement> {
    let mut period = Period::builder().start(date_time(i.details.implanted_on)?);
    if let Some(e) = &i.explant {
        period = period.end(date_time(e.on)?);
    }
    Ok(DeviceUseStatement::builder()
        .id(format!("use-{device}-{}", i.id))
        .status(if status == "active" {
            DeviceUseStatementStatus::Active
        } else {
            DeviceUseStatementStatus::Completed
        })
        .subject(reference(&patient_ref(p))?)
        .device(reference(&format!("Device/{device}-{}", i.id))?)
        .timing(DeviceUseStatementTiming::Period(period.build()?))
        .body_site(text_concept(site)?)
        .build()?)
}

fn implant_procedure(p: &ClinicPatient, i: &Implant) -> R<Procedure> {
    let d = &i.details;
    Ok(Procedure::builder()
        .id(format!("implant-{}", i.id))
        .status(EventStatus::Completed)
        .code(concept(codes::PROC_IMPLANT)?)
        .subject(reference(&patient_ref(p))?)
        .performed(ProcedurePerformed::DateTime(date_time(d.implanted_on)?))
        .focal_device(vec![
            Some(
                ProcedureFocalDevice::builder()
                    .manipulated(reference(&format!("Device/pump-{}", i.id))?)
                    .build()?,
            ),
            Some(
                ProcedureFocalDevice::builder()
                    .manipulated(reference(&format!("Device/catheter-{}", i.id))?)
                    .build()?,
            ),
        ])
        .note(vec![note(&format!(
            "{} pocket; catheter {} trimmed to {} cm, tip at {}",
            format!("{:?}", d.pocket).to_lowercase(),
            d.catheter_model,
            d.catheter_length_cm,
            d.tip_level
        ))?])
        .build()?)
}

fn revision_procedure(p: &ClinicPatient, r: &RevisionRecord) -> R<Procedure> {
    let (code, what) = match &r.revision.change {
        RevisionChange::CatheterRevision {
            catheter_model,
            catheter_length_cm,
            tip_level,
        } => (
            codes::PROC_CATHETER_REVISION,
            format!(
                "catheter {} ({} cm, tip {}) replaced by {catheter_model} ({catheter_length_cm} cm, tip {tip_level})",
                r.catheter_before.catheter_model,
                r.catheter_before.catheter_length_cm,
                r.catheter_before.tip_level
            ),
        ),
        RevisionChange::PumpReplacement { new_pump } => (
            codes::PROC_REPLACEMENT,
            format!(
                "new pump {} serial {}",
                new_pump.pump_model, new_pump.serial
            ),
        ),
        RevisionChange::Explant => (codes::PROC_EXPLANT, "pump removed".to_owned()),
    };
    Ok(Procedure::builder()
        .id(format!("revision-{}", r.id))
        .status(EventStatus::Completed)
        .code(concept(code)?)
        .subject(reference(&patient_ref(p))?)
        .performed(ProcedurePerformed::DateTime(date_time(r.revision.on)?))
        .reason_code(vec![Some(text_concept(&r.revision.reason)?)])
        .focal_device(vec![Some(
            ProcedureFocalDevice::builder()
                .manipulated(reference(&format!("Device/pump-{}", r.implant_id))?)
                .build()?,
        )])
        .note(vec![note(&what)?])
        .build()?)
}

fn trial_procedure(p: &ClinicPatient, t: &Trial) -> R<Procedure> {
    let mut b = Procedure::builder()
        .id(format!("trial-{}", t.id))
        .status(EventStatus::Completed)
        .code(concept(codes::PROC_TRIAL)?)
        .subject(reference(&patient_ref(p))?)
        .used_code(vec![Some(concept(drug_code(&t.details.drug)?)?)])
        .outcome(text_concept(&t.evaluation.recommendation)?)
        .note(vec![note(&format!(
            "{} by {:?}, doses {}; rule: {}; observed {} h. {}",
            t.details.drug,
            t.details.route,
            t.details.doses.join(", "),
            t.evaluation.rule,
            t.details.observed_hours,
            t.details.observations
        ))?]);
    if let Some(d) = &t.decision {
        b = b.performed(ProcedurePerformed::DateTime(moment(d.at)?));
    }
    Ok(b.build()?)
}

/// The code and UCUM unit of a trial's scale.
fn scale_code(s: Scale) -> (Code, &'static str) {
    match s {
        Scale::Nrs => (codes::NRS, "{score}"),
        Scale::Odi => (codes::ODI, "%"),
        Scale::AshworthMeanTenths => (codes::ASHWORTH, "{score}"),
    }
}

/// A trial's score as the Observation's value: NRS and ODI as typed, the Ashworth mean
/// from its tenths.
fn trial_value(s: Scale, v: u16) -> f64 {
    match s {
        Scale::AshworthMeanTenths => decimal(u64::from(v), 1),
        _ => f64::from(v),
    }
}

fn trial_observations(p: &ClinicPatient, t: &Trial) -> R<Vec<Observation>> {
    let (code, unit) = scale_code(t.details.scale);
    let mut out = vec![];
    for (which, v) in [("baseline", t.details.baseline), ("post", t.details.post)] {
        out.push(
            Observation::builder()
                .id(format!("trial-{}-{which}", t.id))
                .status(ObservationStatus::Final)
                .category(vec![Some(concept(codes::CAT_SURVEY)?)])
                .code(concept(code)?)
                .subject(reference(&patient_ref(p))?)
                .part_of(vec![Some(reference(&format!("Procedure/trial-{}", t.id))?)])
                .value(ObservationValue::Quantity(qty(
                    trial_value(t.details.scale, v),
                    unit,
                )?))
                .note(vec![note(&format!("trial {which} score"))?])
                .build()?,
        );
    }
    Ok(out)
}

fn assessment_observation(p: &ClinicPatient, a: &Assessment) -> R<Observation> {
    let (code, unit) = match a.details.answers {
        Answers::NrsPain { .. } => (codes::NRS, "{score}"),
        Answers::Odi { .. } => (codes::ODI, "%"),
        Answers::ModifiedAshworth { .. } => (codes::ASHWORTH, "{score}"),
        Answers::PennSpasm { .. } => (codes::PENN, "{score}"),
        Answers::BpiSf { .. } => (codes::BPI, "{score}"),
    };
    let tenths = u64::try_from(a.score.total_tenths).unwrap_or(0);
    Ok(Observation::builder()
        .id(format!("assessment-{}", a.id))
        .status(ObservationStatus::Final)
        .category(vec![Some(concept(codes::CAT_SURVEY)?)])
        .code(concept(code)?)
        .subject(reference(&patient_ref(p))?)
        .effective(ObservationEffective::DateTime(moment(a.details.taken_at)?))
        .value(ObservationValue::Quantity(qty(decimal(tenths, 1), unit)?))
        .note(vec![note(&format!(
            "{}; version {}; recall {}; {}",
            a.score.summary, a.details.scale_version, a.details.recall_period, a.details.context
        ))?])
        .build()?)
}

fn weight_observation(p: &ClinicPatient, kg: u16) -> R<Observation> {
    Ok(Observation::builder()
        .id(format!("weight-{}", p.id))
        .status(ObservationStatus::Final)
        .category(vec![Some(concept(codes::CAT_VITAL)?)])
        .code(concept(codes::BODY_WEIGHT)?)
        .subject(reference(&patient_ref(p))?)
        .value(ObservationValue::Quantity(qty(f64::from(kg), "kg")?))
        .build()?)
}

fn reconciliation_observation(
    p: &ClinicPatient,
    v: &RefillVisit,
    aspirated: u64,
) -> R<Observation> {
    let at = v
        .signatures
        .iter()
        .find(|s| s.step == VisitStep::Aspirated)
        .map_or(v.opened_at, |s| s.at);
    let component = |c: Code, nl: u64| -> R<Option<ObservationComponent>> {
        Ok(Some(
            ObservationComponent::builder()
                .code(concept(c)?)
                .value(ObservationComponentValue::Quantity(ml(nl)?))
                .build()?,
        ))
    };
    let mut components = vec![
        component(codes::EXPECTED_RESIDUAL, v.expected_residual_nl)?,
        component(codes::ASPIRATED_RESIDUAL, aspirated)?,
    ];
    if let Some(after) = v.volume_after_nl {
        components.push(component(codes::VOLUME_AFTER_FILL, after)?);
    }
    let mut b = Observation::builder()
        .id(format!("reconciliation-{}", v.id))
        .status(ObservationStatus::Final)
        .category(vec![Some(concept(codes::CAT_THERAPY)?)])
        .code(concept(codes::RECONCILIATION)?)
        .subject(reference(&patient_ref(p))?)
        .device(reference(&format!("Device/pump-{}", v.implant_id))?)
        .effective(ObservationEffective::DateTime(moment(at)?))
        .interpretation(vec![Some(concept(if v.flagged {
            codes::ABNORMAL
        } else {
            codes::NORMAL
        })?)])
        .component(components);
    if let Some(r) = &v.reconciliation {
        b = b.value(ObservationValue::String(r.clone()));
    }
    if let Some(i) = &v.investigation {
        b = b.note(vec![note(&format!("investigation: {i}"))?]);
    }
    Ok(b.build()?)
}

fn indication_condition(p: &ClinicPatient) -> R<Condition> {
    let (code, words) = match p.details.condition {
        Indication::Spasticity { origin } => (
            codes::SPASTICITY,
            format!("severe spasticity of {:?} origin", origin).to_lowercase(),
        ),
        Indication::Pain {
            pain_type: PainType::NonCancer,
        } => (codes::CHRONIC_PAIN, "chronic non-cancer pain".to_owned()),
        Indication::Pain {
            pain_type: PainType::Cancer,
        } => (codes::CANCER_PAIN, "cancer-related pain".to_owned()),
    };
    let mut cc = concept(code)?;
    cc.text = Some(words);
    Ok(Condition::builder()
        .id(format!("indication-{}", p.id))
        .clinical_status(concept(codes::CLINICAL_ACTIVE)?)
        .verification_status(concept(codes::CONFIRMED)?)
        .category(vec![Some(concept(codes::PROBLEM_LIST)?)])
        .code(cc)
        .subject(reference(&patient_ref(p))?)
        .note(vec![note("indication for intrathecal therapy")?])
        .build()?)
}

fn complication_code(k: ComplicationKind) -> Code {
    match k {
        ComplicationKind::Infection => codes::COMPLICATION_INFECTION,
        ComplicationKind::CsfLeak => codes::COMPLICATION_CSF_LEAK,
        ComplicationKind::Granuloma => codes::COMPLICATION_GRANULOMA,
        ComplicationKind::Withdrawal => codes::COMPLICATION_WITHDRAWAL,
        ComplicationKind::Overdose => codes::COMPLICATION_OVERDOSE,
        ComplicationKind::DeviceMalfunction => codes::COMPLICATION_DEVICE,
    }
}

fn complication_condition(p: &ClinicPatient, c: &Complication) -> R<Condition> {
    let d = &c.details;
    let mut b = Condition::builder()
        .id(format!("complication-{}", c.id))
        .clinical_status(concept(if d.resolved_on.is_some() {
            codes::CLINICAL_RESOLVED
        } else {
            codes::CLINICAL_ACTIVE
        })?)
        .verification_status(concept(codes::CONFIRMED)?)
        .category(vec![Some(concept(codes::ENCOUNTER_DIAGNOSIS)?)])
        .code(concept(complication_code(d.kind))?)
        .subject(reference(&patient_ref(p))?)
        .onset(ConditionOnset::DateTime(date_time(d.onset)?))
        .note(vec![note(&d.description)?]);
    if let Some(r) = d.resolved_on {
        b = b.abatement(ConditionAbatement::DateTime(date_time(r)?));
    }
    Ok(b.build()?)
}

// ------------------------------------------------------------------ medication

/// The reservoir's contents as a contained `Medication`: each drug with its RxNorm code
/// and its concentration (the first drug's may be the syringe's at a refill).
fn medication(
    id: &str,
    rx: &Prescription,
    first_ng_ml: u64,
    batch: Option<(&str, NaiveDate)>,
) -> R<Medication> {
    let mut drugs = vec![(rx.drug.as_str(), first_ng_ml)];
    drugs.extend(
        rx.admixture
            .iter()
            .map(|c| (c.drug.as_str(), c.concentration_ng_ml)),
    );
    let mut ingredients = vec![];
    for (name, ng_ml) in &drugs {
        ingredients.push(Some(
            MedicationIngredient::builder()
                .item(MedicationIngredientItem::CodeableConcept(concept(
                    drug_code(name)?,
                )?))
                .is_active(true)
                .strength(per_ml(*ng_ml)?)
                .build()?,
        ));
    }
    let code = if drugs.len() == 1 {
        concept(drug_code(&rx.drug)?)?
    } else {
        text_concept(
            &drugs
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(" + "),
        )?
    };
    let mut b = Medication::builder()
        .id(id.to_owned())
        .code(code)
        .ingredient(ingredients);
    if let Some((lot, expiry)) = batch {
        b = b.batch(
            MedicationBatch::builder()
                .lot_number(lot.to_owned())
                .expiration_date(date_time(expiry)?)
                .build()?,
        );
    }
    Ok(b.build()?)
}

fn rate(kind: Code, rate: DosageDoseAndRateRate) -> R<Option<DosageDoseAndRate>> {
    Ok(Some(
        DosageDoseAndRate::builder()
            .r#type(concept(kind)?)
            .rate(rate)
            .build()?,
    ))
}

fn route() -> R<CodeableConcept> {
    concept(codes::ROUTE_INTRATHECAL)
}

fn days_of_week(days: &[Weekday]) -> Vec<Option<DaysOfWeek>> {
    days.iter()
        .map(|d| {
            Some(match d {
                Weekday::Mon => DaysOfWeek::Mon,
                Weekday::Tue => DaysOfWeek::Tue,
                Weekday::Wed => DaysOfWeek::Wed,
                Weekday::Thu => DaysOfWeek::Thu,
                Weekday::Fri => DaysOfWeek::Fri,
                Weekday::Sat => DaysOfWeek::Sat,
                Weekday::Sun => DaysOfWeek::Sun,
            })
        })
        .collect()
}

fn time_of_day(minute: u16) -> R<fhir_sdk::Time> {
    fhir_sdk::time::Time::from_hms((minute / 60) as u8, (minute % 60) as u8, 0)
        .map(fhir_sdk::Time)
        .map_err(|e| FhirError(format!("time of day {minute}: {e}")))
}

/// The dosage instructions of a prescription version, in order: the basal (one constant
/// rate, or one instruction per flex step with its start and length), periodic boluses,
/// then the patient bolus (as needed).
pub fn dosage(rx: &Prescription) -> R<Vec<Option<Dosage>>> {
    let conc = Concentration::from_raw(rx.concentration_ng_ml);
    let mut out = vec![];
    let mut seq = 0i32;
    match &rx.flex {
        None => {
            seq += 1;
            out.push(Some(
                Dosage::builder()
                    .sequence(seq)
                    .text(format!(
                        "{} {} by continuous intrathecal infusion ({})",
                        rx.drug, rx.daily_dose, rx.flow
                    ))
                    .route(route()?)
                    .dose_and_rate(vec![
                        rate(
                            codes::RATE_ORDERED,
                            DosageDoseAndRateRate::Ratio(per_day(ug(rx.daily_dose_ng)?)?),
                        )?,
                        rate(
                            codes::RATE_CALCULATED,
                            DosageDoseAndRateRate::Quantity(qty(
                                decimal(rx.flow_nl_day, 6),
                                "mL/d",
                            )?),
                        )?,
                    ])
                    .build()?,
            ));
        }
        Some(f) => {
            let mut starts = vec![];
            for s in &f.steps {
                starts.push(
                    crate::domain::regimen::minute_of_day("start", &s.start)
                        .map_err(|e| FhirError(e.to_string()))?,
                );
            }
            for (i, s) in f.steps.iter().enumerate() {
                let start = starts[i];
                let end = starts.get(i + 1).copied().unwrap_or(24 * 60);
                let dose: MassRate = parse("flex step daily dose", &s.daily_dose)?;
                let flow =
                    flow_for_dose(conc, dose).map_err(|e| FhirError(format!("flex step: {e}")))?;
                seq += 1;
                out.push(Some(
                    Dosage::builder()
                        .sequence(seq)
                        .text(format!(
                            "step {}: from {} for {} min at the rate of {} ({})",
                            i + 1,
                            s.start,
                            end - start,
                            dose,
                            flow
                        ))
                        .timing(
                            Timing::builder()
                                .repeat(
                                    TimingRepeat::builder()
                                        .frequency(std::num::NonZeroU32::MIN)
                                        .period(1.0)
                                        .period_unit("d".to_owned())
                                        .duration(f64::from(end - start))
                                        .duration_unit("min".to_owned())
                                        .time_of_day(vec![Some(time_of_day(start)?)])
                                        .build()?,
                                )
                                .build()?,
                        )
                        .route(route()?)
                        .dose_and_rate(vec![
                            rate(
                                codes::RATE_ORDERED,
                                DosageDoseAndRateRate::Ratio(per_day(ug(dose.ng_per_day())?)?),
                            )?,
                            rate(
                                codes::RATE_CALCULATED,
                                DosageDoseAndRateRate::Quantity(qty(
                                    decimal(flow.nl_per_day(), 6),
                                    "mL/d",
                                )?),
                            )?,
                        ])
                        .build()?,
                ));
            }
            for b in &f.boluses {
                let dose: Mass = parse("periodic bolus dose", &b.dose)?;
                let duration: Duration = parse("periodic bolus duration", &b.duration)?;
                let start = crate::domain::regimen::minute_of_day("start", &b.start)
                    .map_err(|e| FhirError(e.to_string()))?;
                let volume = volume_for_mass(conc, dose, Rounding::Nearest)
                    .map_err(|e| FhirError(format!("periodic bolus: {e}")))?;
                seq += 1;
                out.push(Some(
                    Dosage::builder()
                        .sequence(seq)
                        .text(format!(
                            "periodic bolus of {} ({}) at {} over {}",
                            dose, volume, b.start, duration
                        ))
                        .timing(
                            Timing::builder()
                                .repeat(
                                    TimingRepeat::builder()
                                        .frequency(std::num::NonZeroU32::MIN)
                                        .period(1.0)
                                        .period_unit("d".to_owned())
                                        .duration(decimal(duration.ms(), 3) / 60.0)
                                        .duration_unit("min".to_owned())
                                        .time_of_day(vec![Some(time_of_day(start)?)])
                                        .day_of_week(days_of_week(&b.days))
                                        .build()?,
                                )
                                .build()?,
                        )
                        .route(route()?)
                        .dose_and_rate(vec![Some(
                            DosageDoseAndRate::builder()
                                .r#type(concept(codes::RATE_ORDERED)?)
                                .dose(DosageDoseAndRateDose::Quantity(ug(dose.ng())?))
                                .build()?,
                        )])
                        .build()?,
                ));
            }
        }
    }
    if let Some(pb) = &rx.patient_bolus {
        let dose: Mass = parse("patient bolus dose", &pb.dose)?;
        let duration: Duration = parse("patient bolus duration", &pb.duration)?;
        let lockout: Duration = parse("patient bolus lockout", &pb.lockout)?;
        let volume = volume_for_mass(conc, dose, Rounding::Nearest)
            .map_err(|e| FhirError(format!("patient bolus: {e}")))?;
        let most = dose
            .ng()
            .checked_mul(u64::from(pb.max_per_day))
            .ok_or_else(|| FhirError("patient bolus: the day's most overflows".into()))?;
        seq += 1;
        out.push(Some(
            Dosage::builder()
                .sequence(seq)
                .text(format!(
                    "patient bolus of {} ({}) over {}, at least {} apart, at most {} a day",
                    dose, volume, duration, lockout, pb.max_per_day
                ))
                .as_needed(DosageAsNeeded::Boolean(true))
                .timing(
                    Timing::builder()
                        .repeat(
                            TimingRepeat::builder()
                                .frequency(std::num::NonZeroU32::MIN)
                                .period(decimal(lockout.ms(), 3) / 60.0)
                                .period_unit("min".to_owned())
                                .duration(decimal(duration.ms(), 3) / 60.0)
                                .duration_unit("min".to_owned())
                                .build()?,
                        )
                        .build()?,
                )
                .route(route()?)
                .dose_and_rate(vec![Some(
                    DosageDoseAndRate::builder()
                        .r#type(concept(codes::RATE_ORDERED)?)
                        .dose(DosageDoseAndRateDose::Quantity(ug(dose.ng())?))
                        .build()?,
                )])
                .max_dose_per_period(per_day(ug(most)?)?)
                .build()?,
        ));
    }
    Ok(out)
}

fn medication_request(
    p: &ClinicPatient,
    rx: &Prescription,
    latest: bool,
    implant_active: bool,
    previous: Option<i64>,
) -> R<MedicationRequest> {
    let status = if latest && implant_active {
        "active"
    } else {
        "stopped"
    };
    let mut b = MedicationRequest::builder()
        .id(rx.id.to_string())
        .contained(vec![Resource::from(medication(
            "contents",
            rx,
            rx.concentration_ng_ml,
            None,
        )?)])
        .status(status.to_owned())
        .intent("order".to_owned())
        .medication(MedicationRequestMedication::Reference(reference(
            "#contents",
        )?))
        .subject(reference(&patient_ref(p))?)
        .authored_on(moment(rx.created_at)?)
        .requester(display(&rx.prescriber)?)
        .reason_code(vec![Some(text_concept(&rx.reason)?)])
        .dosage_instruction(dosage(rx)?)
        .note(vec![note(&format!(
            "version {} for the pump Device/pump-{}; reservoir volume after the fill {} mL",
            rx.version,
            rx.implant_id,
            decimal(rx.reservoir_volume_nl, 6)
        ))?]);
    if let Some(prev) = previous {
        b = b.prior_prescription(reference(&format!("MedicationRequest/{prev}"))?);
    }
    Ok(b.build()?)
}

fn refill_administration(
    p: &ClinicPatient,
    v: &RefillVisit,
    rx: &Prescription,
) -> R<Option<MedicationAdministration>> {
    let Some(fill) = &v.fill else {
        return Ok(None);
    };
    let volume: Volume = parse("volume added", &fill.volume_added)?;
    let conc: Concentration = parse("fill concentration", &fill.concentration)?;
    let mass = mass_in(conc, volume, Rounding::Nearest)
        .map_err(|e| FhirError(format!("refill {}: {e}", v.id)))?;
    let at = v
        .signatures
        .iter()
        .find(|s| s.step == VisitStep::Filled)
        .map_or(v.opened_at, |s| s.at);
    let by = v
        .signatures
        .iter()
        .find(|s| s.step == VisitStep::Filled)
        .map(|s| s.by.clone());
    let mut b = MedicationAdministration::builder()
        .id(v.id.to_string())
        .contained(vec![Resource::from(medication(
            "syringe",
            rx,
            conc.raw(),
            Some((&fill.lot, fill.expiry)),
        )?)])
        .status(
            if v.step == VisitStep::Closed {
                "completed"
            } else {
                "in-progress"
            }
            .to_owned(),
        )
        .medication(MedicationAdministrationMedication::Reference(reference(
            "#syringe",
        )?))
        .subject(reference(&patient_ref(p))?)
        .effective(MedicationAdministrationEffective::DateTime(moment(at)?))
        .request(reference(&format!("MedicationRequest/{}", rx.id))?)
        .device(vec![Some(reference(&format!(
            "Device/pump-{}",
            v.implant_id
        ))?)])
        .dosage(
            MedicationAdministrationDosage::builder()
                .text(format!(
                    "refill of the pump reservoir: {} of {} {} ({} of {}), lot {}, expiry {}",
                    volume, rx.drug, conc, mass, rx.drug, fill.lot, fill.expiry
                ))
                .dose(ml(volume.nl())?)
                .build()?,
        )
        .note(vec![note(&format!(
            "drug mass added: {} ug",
            decimal(mass.ng(), 3)
        ))?]);
    if let Some(by) = by {
        b = b.performer(vec![Some(
            fhir_sdk::r4b::resources::MedicationAdministrationPerformer::builder()
                .actor(display(&by)?)
                .build()?,
        )]);
    }
    Ok(Some(b.build()?))
}

fn audit_event(a: &AuditRow) -> R<AuditEvent> {
    let action = match a.action.as_str() {
        "create" => AuditEventAction::C,
        "update" => AuditEventAction::U,
        "read" | "fhir_read" => AuditEventAction::R,
        _ => AuditEventAction::E,
    };
    let at = DateTime::<Utc>::from_timestamp_millis(a.at)
        .ok_or_else(|| FhirError(format!("audit {}: time out of range", a.id)))?;
    let mut entity = AuditEventEntity::builder()
        .name(a.entity.clone())
        .description(format!(
            "{} {} {}",
            a.action,
            a.entity,
            a.entity_id.map(|i| i.to_string()).unwrap_or_default()
        ));
    if let Some(id) = a.entity_id {
        entity = entity.what(display(&format!("{} {id}", a.entity))?);
    }
    Ok(AuditEvent::builder()
        .id(format!("audit-{}", a.id))
        .r#type(coding(codes::AUDIT_PATIENT_RECORD)?)
        .action(action)
        .recorded(instant(at)?)
        .outcome(AuditEventOutcome::N0)
        .agent(vec![Some(
            AuditEventAgent::builder()
                .name(a.actor.clone())
                .requestor(true)
                .build()?,
        )])
        .source(
            AuditEventSource::builder()
                .observer(display("thecal clinic")?)
                .build()?,
        )
        .entity(vec![Some(entity.build()?)])
        .build()?)
}

// ------------------------------------------------------------------ the bundle

/// Every resource of the record, in a fixed order: Patient, Conditions, Devices and their
/// use, Procedures, MedicationRequests, MedicationAdministrations, Observations, and the
/// AuditEvents when the record carries its audit trail.
pub fn resources(r: &Record) -> R<Vec<Resource>> {
    let p = &r.patient;
    let mut out: Vec<Resource> = vec![patient(p)?.into(), indication_condition(p)?.into()];
    for c in &r.complications {
        out.push(complication_condition(p, c)?.into());
    }
    for (i, status) in &r.implants {
        out.push(pump(p, i, status)?.into());
        out.push(catheter(p, i, status)?.into());
        out.push(
            device_use(
                p,
                i,
                status,
                "pump",
                &format!("{:?} pocket", i.details.pocket).to_lowercase(),
            )?
            .into(),
        );
        out.push(
            device_use(
                p,
                i,
                status,
                "catheter",
                &format!("intrathecal, tip at {}", i.details.tip_level),
            )?
            .into(),
        );
        out.push(implant_procedure(p, i)?.into());
    }
    for rev in &r.revisions {
        out.push(revision_procedure(p, rev)?.into());
    }
    for t in &r.trials {
        out.push(trial_procedure(p, t)?.into());
    }
    for rx in &r.prescriptions {
        let latest = r
            .prescriptions
            .iter()
            .filter(|o| o.implant_id == rx.implant_id)
            .all(|o| o.version <= rx.version);
        let previous = r
            .prescriptions
            .iter()
            .filter(|o| o.implant_id == rx.implant_id && o.version < rx.version)
            .max_by_key(|o| o.version)
            .map(|o| o.id);
        let active = r
            .implants
            .iter()
            .any(|(i, s)| i.id == rx.implant_id && s == "active");
        out.push(medication_request(p, rx, latest, active, previous)?.into());
    }
    for v in &r.visits {
        if let Some(rx) = r.prescriptions.iter().find(|x| x.id == v.prescription_id)
            && let Some(ma) = refill_administration(p, v, rx)?
        {
            out.push(ma.into());
        }
    }
    if let Some(kg) = p.details.weight_kg {
        out.push(weight_observation(p, kg)?.into());
    }
    for t in &r.trials {
        out.extend(trial_observations(p, t)?.into_iter().map(Resource::from));
    }
    for a in &r.assessments {
        out.push(assessment_observation(p, a)?.into());
    }
    for v in &r.visits {
        if let Some(asp) = v.aspirated_nl {
            out.push(reconciliation_observation(p, v, asp)?.into());
        }
    }
    if let Some(audit) = &r.audit {
        for a in audit {
            out.push(audit_event(a)?.into());
        }
    }
    Ok(out)
}

/// A `searchset` Bundle of resources, stamped with `now`.
pub fn bundle(resources: Vec<Resource>, now: DateTime<Utc>) -> R<Bundle> {
    let total = u32::try_from(resources.len()).unwrap_or(u32::MAX);
    let mut entries = vec![];
    for res in resources {
        entries.push(Some(
            BundleEntry::builder()
                .resource(res)
                .search(
                    BundleEntrySearch::builder()
                        .mode(SearchEntryMode::Match)
                        .build()?,
                )
                .build()?,
        ));
    }
    Ok(Bundle::builder()
        .r#type(BundleType::Searchset)
        .timestamp(instant(now)?)
        .total(total)
        .entry(entries)
        .build()?)
}

/// The record's `$everything` Bundle.
pub fn everything(r: &Record, now: DateTime<Utc>) -> R<Bundle> {
    bundle(resources(r)?, now)
}
