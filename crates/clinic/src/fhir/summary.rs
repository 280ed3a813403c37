//! The clinical values an exported bundle carries, read two independent ways: from the
//! clinic's record ([`Summary::of_record`], domain types only) and from a parsed FHIR
//! `Bundle` ([`Summary::of_bundle`], FHIR elements only). Export → JSON → parse with
//! fhir-sdk → [`Summary::of_bundle`] equal to [`Summary::of_record`] is the round trip.
//!
//! Quantities come back to thecal-rx's canonical integers (ng, nL) from the UCUM values;
//! a unit other than the expected one is an error, not a conversion.

use std::collections::BTreeMap;

use fhir_sdk::r4b::resources::{
    Bundle, DeviceUseStatementTiming, MedicationAdministrationMedication,
    MedicationRequestMedication, ObservationComponentValue, ObservationValue, Resource,
};
use fhir_sdk::r4b::types::{
    CodeableConcept, DosageAsNeeded, DosageDoseAndRateDose, DosageDoseAndRateRate, Quantity,
};
use thecal_rx::dose::flow_for_dose;
use thecal_rx::{Concentration, MassRate};

use super::codes;
use super::export::{Record, indication_code};

/// One prescription version's dosing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RxSummary {
    /// Drugs and their concentrations, ng/mL.
    pub drugs: Vec<(String, u64)>,
    /// Constant rate: the daily dose (ng/day) and flow (nL/day).
    pub constant: Option<(u64, u64)>,
    /// Flex steps: start minute, length in minutes, dose ng/day, flow nL/day.
    pub steps: Vec<(u16, u64, u64, u64)>,
    /// Periodic boluses: start minute, dose ng.
    pub boluses: Vec<(u16, u64)>,
    /// Patient bolus: dose ng, most ng a day.
    pub patient_bolus: Option<(u64, u64)>,
    /// MedicationRequest status.
    pub status: String,
}

/// What the round trip compares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// MRN, name, date of birth, indication code.
    pub patient: (String, String, String, String),
    /// Body weight, kg.
    pub weight_kg: Option<u64>,
    /// Pumps by implant id: serial, model, UDI, implant date, explant date.
    pub pumps: BTreeMap<i64, (String, String, String, String, Option<String>)>,
    /// Catheters by implant id: model, length cm, tip level.
    pub catheters: BTreeMap<i64, (String, u64, String)>,
    /// Prescription versions by id.
    pub prescriptions: BTreeMap<i64, RxSummary>,
    /// Refills by visit id: volume nL, drug concentration ng/mL, lot, expiry.
    pub refills: BTreeMap<i64, (u64, u64, String, String)>,
    /// Reservoir readings by visit id: expected, aspirated, after the fill (nL), flagged.
    pub readings: BTreeMap<i64, (u64, u64, Option<u64>, bool)>,
    /// Trial scores by trial id: baseline and post, in tenths.
    pub trials: BTreeMap<i64, (u64, u64)>,
    /// Assessment totals in tenths, by id.
    pub assessments: BTreeMap<i64, u64>,
    /// Complications by id: code, onset, resolved.
    pub complications: BTreeMap<i64, (String, String, Option<String>)>,
    /// Procedures: id → code.
    pub procedures: BTreeMap<String, String>,
    /// Audit entries: id → (actor, action code).
    pub audit: BTreeMap<i64, (String, String)>,
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| format!("\"{s}\": {e}"))
}

impl Summary {
    /// From the clinic's record.
    ///
    /// # Errors
    /// A stored value thecal-rx cannot read.
    pub fn of_record(r: &Record) -> Result<Summary, String> {
        let p = &r.patient.details;
        let mut s = Summary {
            patient: (
                p.mrn.clone(),
                p.name.clone(),
                p.date_of_birth.to_string(),
                indication_code(p.condition).to_owned(),
            ),
            weight_kg: p.weight_kg.map(u64::from),
            ..Summary::default()
        };
        for (i, _) in &r.implants {
            let d = &i.details;
            s.pumps.insert(
                i.id,
                (
                    d.serial.clone(),
                    d.pump_model.clone(),
                    d.udi.clone(),
                    d.implanted_on.to_string(),
                    i.explant.as_ref().map(|e| e.on.to_string()),
                ),
            );
            s.catheters.insert(
                i.id,
                (
                    d.catheter_model.clone(),
                    u64::from(d.catheter_length_cm),
                    d.tip_level.clone(),
                ),
            );
            s.procedures
                .insert(format!("implant-{}", i.id), codes::PROC_IMPLANT.code.into());
        }
        for rx in &r.prescriptions {
            let conc = Concentration::from_raw(rx.concentration_ng_ml);
            let mut x = RxSummary {
                drugs: std::iter::once((rx.drug.clone(), rx.concentration_ng_ml))
                    .chain(
                        rx.admixture
                            .iter()
                            .map(|c| (c.drug.clone(), c.concentration_ng_ml)),
                    )
                    .collect(),
                ..RxSummary::default()
            };
            match &rx.flex {
                None => x.constant = Some((rx.daily_dose_ng, rx.flow_nl_day)),
                Some(f) => {
                    let starts: Vec<u16> = f
                        .steps
                        .iter()
                        .map(|s| crate::domain::regimen::minute_of_day("s", &s.start))
                        .collect::<Result<_, _>>()
                        .map_err(|e| e.to_string())?;
                    for (i, st) in f.steps.iter().enumerate() {
                        let dose: MassRate = parse(&st.daily_dose)?;
                        let flow = flow_for_dose(conc, dose).map_err(|e| e.to_string())?;
                        let end = starts.get(i + 1).copied().unwrap_or(1440);
                        x.steps.push((
                            starts[i],
                            u64::from(end - starts[i]),
                            dose.ng_per_day(),
                            flow.nl_per_day(),
                        ));
                    }
                    for b in &f.boluses {
                        let dose: thecal_rx::Mass = parse(&b.dose)?;
                        let start = crate::domain::regimen::minute_of_day("s", &b.start)
                            .map_err(|e| e.to_string())?;
                        x.boluses.push((start, dose.ng()));
                    }
                }
            }
            if let Some(pb) = &rx.patient_bolus {
                let dose: thecal_rx::Mass = parse(&pb.dose)?;
                x.patient_bolus = Some((dose.ng(), dose.ng() * u64::from(pb.max_per_day)));
            }
            let latest = r
                .prescriptions
                .iter()
                .filter(|o| o.implant_id == rx.implant_id)
                .all(|o| o.version <= rx.version);
            let active = r
                .implants
                .iter()
                .any(|(i, st)| i.id == rx.implant_id && st == "active");
            x.status = if latest && active {
                "active"
            } else {
                "stopped"
            }
            .into();
            s.prescriptions.insert(rx.id, x);
        }
        for v in &r.visits {
            if let Some(f) = &v.fill {
                let vol: thecal_rx::Volume = parse(&f.volume_added)?;
                let conc: Concentration = parse(&f.concentration)?;
                s.refills.insert(
                    v.id,
                    (vol.nl(), conc.raw(), f.lot.clone(), f.expiry.to_string()),
                );
            }
            if let Some(a) = v.aspirated_nl {
                s.readings.insert(
                    v.id,
                    (v.expected_residual_nl, a, v.volume_after_nl, v.flagged),
                );
            }
        }
        for t in &r.trials {
            let tenths = |v: u16| match t.details.scale {
                crate::domain::trial::Scale::AshworthMeanTenths => u64::from(v),
                _ => u64::from(v) * 10,
            };
            s.trials
                .insert(t.id, (tenths(t.details.baseline), tenths(t.details.post)));
            s.procedures
                .insert(format!("trial-{}", t.id), codes::PROC_TRIAL.code.into());
        }
        for a in &r.assessments {
            s.assessments
                .insert(a.id, u64::try_from(a.score.total_tenths).unwrap_or(0));
        }
        for c in &r.complications {
            s.complications.insert(
                c.id,
                (
                    format!("{:?}", c.details.kind),
                    c.details.onset.to_string(),
                    c.details.resolved_on.map(|d| d.to_string()),
                ),
            );
        }
        for rev in &r.revisions {
            use crate::domain::history::RevisionChange::*;
            let code = match rev.revision.change {
                CatheterRevision { .. } => codes::PROC_CATHETER_REVISION,
                PumpReplacement { .. } => codes::PROC_REPLACEMENT,
                Explant => codes::PROC_EXPLANT,
            };
            s.procedures
                .insert(format!("revision-{}", rev.id), code.code.into());
        }
        if let Some(audit) = &r.audit {
            for a in audit {
                let code = match a.action.as_str() {
                    "create" => "C",
                    "update" => "U",
                    "read" | "fhir_read" => "R",
                    _ => "E",
                };
                s.audit.insert(a.id, (a.actor.clone(), code.into()));
            }
        }
        Ok(s)
    }

    /// From a parsed FHIR bundle.
    ///
    /// # Errors
    /// An element the export always writes is missing, or a quantity is not in the
    /// expected UCUM unit.
    pub fn of_bundle(b: &Bundle) -> Result<Summary, String> {
        let mut s = Summary::default();
        for e in b.entry.iter().flatten() {
            let Some(res) = &e.resource else { continue };
            read_resource(&mut s, res)?;
        }
        Ok(s)
    }
}

/// A Quantity's value in thousandths (ng from ug, … ) or millionths (nL from mL),
/// refusing any other unit.
fn scaled(q: &Quantity, unit: &str, places: i32) -> Result<u64, String> {
    if q.system.as_deref() != Some(codes::UCUM) || q.code.as_deref() != Some(unit) {
        return Err(format!(
            "expected UCUM {unit}, got {:?} {:?}",
            q.system, q.code
        ));
    }
    let v = q.value.ok_or("quantity without a value")?;
    Ok((v * 10f64.powi(places)).round() as u64)
}

fn code_of(c: &CodeableConcept) -> String {
    c.coding
        .iter()
        .flatten()
        .find_map(|x| x.code.clone())
        .unwrap_or_else(|| c.text.clone().unwrap_or_default())
}

fn tail_id(id: &Option<String>, prefix: &str) -> Result<i64, String> {
    id.as_deref()
        .and_then(|i| i.strip_prefix(prefix))
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| format!("id {id:?} does not start with {prefix}"))
}

fn date_text(d: &fhir_sdk::DateTime) -> String {
    match d {
        fhir_sdk::DateTime::Date(d) => date_string(d),
        fhir_sdk::DateTime::DateTime(i) => i.0.date().to_string(),
    }
}

/// Drugs and their concentrations, ng/mL.
type Drugs = Vec<(String, u64)>;
/// Lot and expiry.
type Batch = (String, String);

fn date_string(d: &fhir_sdk::Date) -> String {
    serde_json::to_value(d)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn contained_drugs(contained: &[Resource]) -> Result<(Drugs, Option<Batch>), String> {
    let Some(Resource::Medication(m)) = contained.first() else {
        return Err("no contained Medication".into());
    };
    let mut drugs = vec![];
    for ing in m.ingredient.iter().flatten() {
        let fhir_sdk::r4b::resources::MedicationIngredientItem::CodeableConcept(cc) = &ing.item
        else {
            return Err("ingredient without a code".into());
        };
        let name = cc
            .coding
            .iter()
            .flatten()
            .find_map(|c| c.display.clone())
            .ok_or("ingredient without a display")?;
        let strength = ing.strength.as_ref().ok_or("ingredient without strength")?;
        let num = strength.numerator.as_ref().ok_or("no numerator")?;
        let den = strength.denominator.as_ref().ok_or("no denominator")?;
        if scaled(den, "mL", 0)? != 1 {
            return Err("strength not per 1 mL".into());
        }
        let name = if name == "sodium chloride" {
            "saline".to_owned()
        } else {
            name
        };
        drugs.push((name, scaled(num, "ug", 3)?));
    }
    let batch = m.batch.as_ref().map(|b| {
        (
            b.lot_number.clone().unwrap_or_default(),
            b.expiration_date
                .as_ref()
                .map(date_text)
                .unwrap_or_default(),
        )
    });
    Ok((drugs, batch))
}

fn read_resource(s: &mut Summary, res: &Resource) -> Result<(), String> {
    match res {
        Resource::Patient(p) => {
            let mrn = p
                .identifier
                .iter()
                .flatten()
                .find(|i| i.system.as_deref() == Some(codes::MRN_SYSTEM))
                .and_then(|i| i.value.clone())
                .ok_or("Patient without the MRN")?;
            let name = p
                .name
                .iter()
                .flatten()
                .find_map(|n| n.text.clone())
                .ok_or("Patient without a name")?;
            let dob = date_string(p.birth_date.as_ref().ok_or("no birthDate")?);
            let ind = p
                .extension
                .iter()
                .find(|e| e.url == codes::INDICATION_EXTENSION)
                .and_then(|e| match &e.value {
                    Some(fhir_sdk::r4b::types::ExtensionValue::Code(c)) => Some(c.clone()),
                    _ => None,
                })
                .ok_or("Patient without the indication")?;
            s.patient = (mrn, name, dob, ind);
        }
        Resource::Device(d) => {
            let id = d.id.clone().unwrap_or_default();
            let model = d
                .device_name
                .iter()
                .flatten()
                .map(|n| n.name.clone())
                .next()
                .ok_or("Device without a name")?;
            if let Ok(iid) = tail_id(&d.id, "pump-") {
                let entry = s.pumps.entry(iid).or_default();
                entry.0 = d.serial_number.clone().ok_or("pump without serial")?;
                entry.1 = model;
                entry.2 = d
                    .udi_carrier
                    .iter()
                    .flatten()
                    .find_map(|u| u.carrier_hrf.clone())
                    .unwrap_or_default();
            } else if let Ok(iid) = tail_id(&d.id, "catheter-") {
                let length = d
                    .property
                    .iter()
                    .flatten()
                    .flat_map(|p| p.value_quantity.iter().flatten())
                    .next()
                    .ok_or("catheter without a length")?;
                let tip = d
                    .property
                    .iter()
                    .flatten()
                    .flat_map(|p| p.value_code.iter().flatten())
                    .find_map(|c| c.text.clone())
                    .ok_or("catheter without a tip level")?;
                s.catheters
                    .insert(iid, (model, scaled(length, "cm", 0)?, tip));
            } else {
                return Err(format!("unexpected Device {id}"));
            }
        }
        Resource::DeviceUseStatement(u) => {
            if let Ok(iid) = tail_id(&u.id, "use-pump-") {
                let Some(DeviceUseStatementTiming::Period(p)) = &u.timing else {
                    return Err("device use without a period".into());
                };
                let entry = s.pumps.entry(iid).or_default();
                entry.3 = p.start.as_ref().map(date_text).unwrap_or_default();
                entry.4 = p.end.as_ref().map(date_text);
            }
        }
        Resource::MedicationRequest(m) => {
            let id: i64 = parse(m.id.as_deref().unwrap_or_default())?;
            match &m.medication {
                MedicationRequestMedication::Reference(r)
                    if r.reference.as_deref() == Some("#contents") => {}
                _ => return Err("MedicationRequest without its contained Medication".into()),
            }
            let (drugs, _) = contained_drugs(&m.contained)?;
            let mut x = RxSummary {
                drugs,
                status: m.status.clone(),
                ..RxSummary::default()
            };
            for d in m.dosage_instruction.iter().flatten() {
                let repeat = d.timing.as_ref().and_then(|t| t.repeat.as_ref());
                if matches!(d.as_needed, Some(DosageAsNeeded::Boolean(true))) {
                    let dose = d
                        .dose_and_rate
                        .iter()
                        .flatten()
                        .find_map(|r| match &r.dose {
                            Some(DosageDoseAndRateDose::Quantity(q)) => Some(q),
                            _ => None,
                        })
                        .ok_or("patient bolus without a dose")?;
                    let most = d
                        .max_dose_per_period
                        .as_ref()
                        .and_then(|r| r.numerator.as_ref())
                        .ok_or("patient bolus without its most per period")?;
                    x.patient_bolus = Some((scaled(dose, "ug", 3)?, scaled(most, "ug", 3)?));
                    continue;
                }
                let mut ordered = None;
                let mut calculated = None;
                let mut dose = None;
                for r in d.dose_and_rate.iter().flatten() {
                    let kind = r.r#type.as_ref().map(code_of).unwrap_or_default();
                    match (&r.rate, &r.dose, kind.as_str()) {
                        (Some(DosageDoseAndRateRate::Ratio(ratio)), _, "ordered") => {
                            let n = ratio.numerator.as_ref().ok_or("rate without numerator")?;
                            let den = ratio
                                .denominator
                                .as_ref()
                                .ok_or("rate without denominator")?;
                            if scaled(den, "d", 0)? != 1 {
                                return Err("rate not per day".into());
                            }
                            ordered = Some(scaled(n, "ug", 3)?);
                        }
                        (Some(DosageDoseAndRateRate::Quantity(q)), _, "calculated") => {
                            calculated = Some(scaled(q, "mL/d", 6)?);
                        }
                        (_, Some(DosageDoseAndRateDose::Quantity(q)), "ordered") => {
                            dose = Some(scaled(q, "ug", 3)?);
                        }
                        _ => return Err(format!("unexpected doseAndRate in {id}")),
                    }
                }
                match (repeat, ordered, calculated, dose) {
                    (None, Some(o), Some(c), None) => x.constant = Some((o, c)),
                    (Some(rep), Some(o), Some(c), None) => {
                        let t = rep
                            .time_of_day
                            .iter()
                            .flatten()
                            .next()
                            .ok_or("step without time")?;
                        let start = u16::from(t.0.hour()) * 60 + u16::from(t.0.minute());
                        let len = rep.duration.ok_or("step without duration")?.round() as u64;
                        x.steps.push((start, len, o, c));
                    }
                    (Some(rep), None, None, Some(dd)) => {
                        let t = rep
                            .time_of_day
                            .iter()
                            .flatten()
                            .next()
                            .ok_or("bolus without time")?;
                        x.boluses
                            .push((u16::from(t.0.hour()) * 60 + u16::from(t.0.minute()), dd));
                    }
                    _ => return Err(format!("unreadable dosage in MedicationRequest {id}")),
                }
            }
            s.prescriptions.insert(id, x);
        }
        Resource::MedicationAdministration(m) => {
            let id: i64 = parse(m.id.as_deref().unwrap_or_default())?;
            match &m.medication {
                MedicationAdministrationMedication::Reference(r)
                    if r.reference.as_deref() == Some("#syringe") => {}
                _ => return Err("refill without its contained Medication".into()),
            }
            let (drugs, batch) = contained_drugs(&m.contained)?;
            let (lot, expiry) = batch.ok_or("refill without lot and expiry")?;
            let vol = m
                .dosage
                .as_ref()
                .and_then(|d| d.dose.as_ref())
                .ok_or("refill without its volume")?;
            let conc = drugs.first().map(|d| d.1).ok_or("refill without a drug")?;
            s.refills
                .insert(id, (scaled(vol, "mL", 6)?, conc, lot, expiry));
        }
        Resource::Observation(o) => {
            let id = o.id.clone().unwrap_or_default();
            let value = || -> Result<&Quantity, String> {
                match &o.value {
                    Some(ObservationValue::Quantity(q)) => Ok(q),
                    _ => Err(format!("Observation {id} without a quantity")),
                }
            };
            let unit = |q: &Quantity| q.code.clone().unwrap_or_default();
            if let Ok(vid) = tail_id(&o.id, "reconciliation-") {
                let get = |c: codes::Code| -> Result<Option<u64>, String> {
                    for comp in o.component.iter().flatten() {
                        if code_of(&comp.code) == c.code {
                            let Some(ObservationComponentValue::Quantity(q)) = &comp.value else {
                                return Err("component without a quantity".into());
                            };
                            return Ok(Some(scaled(q, "mL", 6)?));
                        }
                    }
                    Ok(None)
                };
                let expected = get(codes::EXPECTED_RESIDUAL)?.ok_or("no expected residual")?;
                let aspirated = get(codes::ASPIRATED_RESIDUAL)?.ok_or("no aspirated residual")?;
                let after = get(codes::VOLUME_AFTER_FILL)?;
                let flagged = o
                    .interpretation
                    .iter()
                    .flatten()
                    .any(|c| code_of(c) == codes::ABNORMAL.code);
                s.readings
                    .insert(vid, (expected, aspirated, after, flagged));
            } else if let Some(rest) = id.strip_prefix("trial-") {
                let (tid, which) = rest.split_once('-').ok_or("bad trial observation id")?;
                let tid: i64 = parse(tid)?;
                let q = value()?;
                let tenths = scaled(q, &unit(q), 1)?;
                let e = s.trials.entry(tid).or_default();
                if which == "baseline" {
                    e.0 = tenths;
                } else {
                    e.1 = tenths;
                }
            } else if let Ok(aid) = tail_id(&o.id, "assessment-") {
                let q = value()?;
                s.assessments.insert(aid, scaled(q, &unit(q), 1)?);
            } else if id.starts_with("weight-") {
                s.weight_kg = Some(scaled(value()?, "kg", 0)?);
            } else {
                return Err(format!("unexpected Observation {id}"));
            }
        }
        Resource::Condition(c) => {
            if let Ok(cid) = tail_id(&c.id, "complication-") {
                let code = c.code.as_ref().map(code_of).unwrap_or_default();
                let kind = match code.as_str() {
                    "infection" => "Infection",
                    "csf-leak" => "CsfLeak",
                    "granuloma" => "Granuloma",
                    "withdrawal" => "Withdrawal",
                    "overdose" => "Overdose",
                    "device-malfunction" => "DeviceMalfunction",
                    other => return Err(format!("unknown complication code {other}")),
                };
                let onset = match &c.onset {
                    Some(fhir_sdk::r4b::resources::ConditionOnset::DateTime(d)) => date_text(d),
                    _ => return Err("complication without onset".into()),
                };
                let resolved = match &c.abatement {
                    Some(fhir_sdk::r4b::resources::ConditionAbatement::DateTime(d)) => {
                        Some(date_text(d))
                    }
                    _ => None,
                };
                s.complications.insert(cid, (kind.into(), onset, resolved));
            }
        }
        Resource::Procedure(p) => {
            let id = p.id.clone().unwrap_or_default();
            let code = p.code.as_ref().map(code_of).unwrap_or_default();
            s.procedures.insert(id, code);
        }
        Resource::AuditEvent(a) => {
            let id = tail_id(&a.id, "audit-")?;
            let actor = a
                .agent
                .iter()
                .flatten()
                .find_map(|g| g.name.clone())
                .unwrap_or_default();
            let action = a
                .action
                .map(|x| {
                    serde_json::to_value(x)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            s.audit.insert(id, (actor, action));
        }
        _ => {}
    }
    Ok(())
}
