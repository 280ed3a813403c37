//! The benchmark's synthetic clinic: `thecal serve --seed-bench N` fills an empty database
//! with N patients, each with one active pump, one prescription and a history of closed
//! refill visits (100 each by default: 10,000 patients make 1,000,000 visits).
//!
//! Every record is made by the domain's own rules (validation, thecal-rx's prescription
//! check, the visit's steps, the due date) and written through [`Storage::insert_bulk`] in
//! large transactions, so a million visits load in minutes. The histories are regular, not
//! clinical: baclofen 2000 mcg/mL at eight doses, a refill every 30 days, the last refills
//! spread over the past 90 days so that the calendar has overdue, due-this-week and later
//! refills.

use std::sync::Arc;

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use thecal_rx::{Concentration, Duration, Flow, Volume};

use crate::domain::calendar::{self, DueInput};
use crate::domain::records::{
    Condition, Fill, Implant, JourneyState, NewImplant, NewPatient, NewPrescription, PainType,
    Patient, Pocket, Prescription, SpasticityOrigin,
};
use crate::domain::{change, visit};
use crate::storage::{BulkRow, Kind, NewRow, Storage};

/// Patients per batch (each batch: four transactions, one per table).
const BATCH: usize = 250;
/// Days between two refills of a history.
const INTERVAL_DAYS: u64 = 30;
/// Who the synthetic records name.
const BY: &str = "bench-seed";

/// What a seeding made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    /// Patients (one implant and one prescription each).
    pub patients: u64,
    /// Closed refill visits.
    pub visits: u64,
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("bench seed: {what}: {e}")
}

fn ago(now: DateTime<Utc>, days: u64) -> DateTime<Utc> {
    now.checked_sub_days(Days::new(days)).unwrap_or(now)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| err("serialise", e))
}

struct Plan {
    patient: Patient,
    implant: Implant,
    rx: NewPrescription,
    /// When the last refill of the history was closed.
    last_at: DateTime<Utc>,
}

fn plan(i: u64, visits: u64, now: DateTime<Utc>) -> Result<Plan, String> {
    let today = now.date_naive();
    // Last refills spread over the past 90 days; the history reaches back before them.
    let last_at = ago(now, (i * 37) % 90) - TimeDelta::minutes(i64::try_from(i % 480).unwrap_or(0));
    let first_at = ago(last_at, visits * INTERVAL_DAYS);
    let implanted_at = ago(first_at, INTERVAL_DAYS);
    let condition = if i % 3 == 0 {
        Condition::Pain {
            pain_type: PainType::NonCancer,
        }
    } else {
        Condition::Spasticity {
            origin: SpasticityOrigin::Spinal,
        }
    };
    let details = NewPatient {
        mrn: format!("BENCH-{i:06}"),
        name: format!("Bench Patient {i}"),
        date_of_birth: NaiveDate::from_ymd_opt(1940 + i32::try_from(i % 60).unwrap_or(0), 1, 1)
            .unwrap_or(NaiveDate::MIN),
        condition,
        weight_kg: Some(50 + u16::try_from(i % 50).unwrap_or(0)),
        allergies: String::new(),
        contacts: String::new(),
    }
    .validate(today)
    .map_err(|e| err("patient", e))?;
    let (imp, capacity, low) = NewImplant {
        pump_model: "SynchroMed II 8637-20".into(),
        serial: format!("BENCH-SN-{i:06}"),
        udi: String::new(),
        reservoir: "20 mL".into(),
        implanted_on: implanted_at.date_naive(),
        pocket: Pocket::Subfascial,
        catheter_model: "8709SC".into(),
        catheter_length_cm: 60,
        tip_level: "T10".into(),
        accuracy_margin_permille: 145,
        low_alarm: "2 mL".into(),
        eri_projected: implanted_at
            .date_naive()
            .checked_add_days(Days::new(7 * 365)),
    }
    .validate(today)
    .map_err(|e| err("implant", e))?;
    Ok(Plan {
        patient: Patient {
            id: 0,
            state: JourneyState::Maintenance,
            details,
        },
        implant: Implant {
            id: 0,
            patient_id: 0,
            details: imp,
            capacity_nl: capacity.raw(),
            low_alarm_nl: low.raw(),
            revisions: Vec::new(),
            explant: None,
        },
        rx: NewPrescription {
            drug: "baclofen".into(),
            concentration: "2000 mcg/mL".into(),
            daily_dose: format!("{} mcg/day", 100 + (i % 8) * 50),
            reservoir_volume: "20 mL".into(),
            opioid_naive: false,
            reason: "maintenance dose".into(),
            confirm_soft_findings: None,
            admixture: Vec::new(),
            flex: None,
            patient_bolus: None,
        },
        last_at,
    })
}

fn prescription(
    p: &Plan,
    implant_id: i64,
    created_at: DateTime<Utc>,
) -> Result<Prescription, String> {
    let capacity = Volume::from_raw(p.implant.capacity_nl);
    let checked = change::check_new_for(&p.rx, capacity, None, Some(&p.patient.details.condition))
        .map_err(|e| err("prescription", e))?;
    let confirmation = change::accept(&checked, Some("synthetic maintenance dose"))
        .map_err(|e| err("prescription", e))?
        .map(|reason| crate::domain::records::Confirmation {
            clinician: BY.into(),
            reason,
            at: created_at,
        });
    Ok(Prescription {
        id: 0,
        implant_id,
        version: 0,
        drug: checked.drug.name().to_owned(),
        concentration: checked.concentration.to_string(),
        concentration_ng_ml: checked.concentration.raw(),
        daily_dose: checked.daily_dose.to_string(),
        daily_dose_ng: checked.daily_dose.raw(),
        flow: checked.flow.to_string(),
        flow_nl_day: checked.flow.raw(),
        reservoir_volume_nl: checked.reservoir_volume.raw(),
        opioid_naive: false,
        reason: p.rx.reason.clone(),
        prescriber: BY.into(),
        created_at,
        findings: checked.findings,
        confirmation,
        change: checked.change,
        admixture: checked.regimen.components,
        flex: None,
        patient_bolus: checked.regimen.bolus_record,
        therapy: Some(checked.therapy),
    })
}

/// One implant's history of closed visits, each through the visit's steps.
fn history(
    p: &Plan,
    rx: &Prescription,
    visits: u64,
    clinic_max_days: u64,
) -> Result<Vec<BulkRow>, String> {
    let capacity = Volume::from_raw(p.implant.capacity_nl);
    let flow = Flow::from_raw(rx.flow_nl_day);
    let drug = thecal_rx::drug::DrugId::from_name(&rx.drug).ok_or_else(|| err("drug", &rx.drug))?;
    let mut filled_at = rx.created_at;
    let mut volume = Volume::from_raw(rx.reservoir_volume_nl);
    let mut out = Vec::with_capacity(usize::try_from(visits).unwrap_or(0));
    for k in 0..visits {
        let at = ago(p.last_at, (visits - 1 - k) * INTERVAL_DAYS);
        let expected = visit::expected(volume, flow, filled_at, at);
        let mut v = visit::open(p.implant.id, rx.id, expected, BY, at);
        visit::aspirate(&mut v, capacity, &format!("{} nL", expected.raw()), BY, at)
            .map_err(|e| err("aspirate", e))?;
        let expiry = at
            .date_naive()
            .checked_add_days(Days::new(365))
            .unwrap_or(NaiveDate::MAX);
        visit::fill(
            &mut v,
            Fill {
                volume_added: "20 mL".into(),
                concentration: rx.concentration.clone(),
                lot: format!("LOT-{:04}", k % 10_000),
                expiry,
                beyond_use: None,
                bridging: String::new(),
            },
            rx,
            capacity,
            BY,
            at,
        )
        .map_err(|e| err("fill", e))?;
        let after = Volume::from_raw(v.volume_after_nl.unwrap_or(0));
        let due = calendar::due(&DueInput {
            implant_id: p.implant.id,
            patient_id: p.patient.id,
            label: format!("{} ({})", p.patient.details.name, p.patient.details.mrn),
            capacity,
            low_alarm: Volume::from_raw(p.implant.low_alarm_nl),
            accuracy_permille: p.implant.details.accuracy_margin_permille,
            filled_at: at,
            volume_after: after,
            flow,
            drug,
            concentration: Concentration::from_raw(rx.concentration_ng_ml),
            first_refill: false,
            clinic_max: Duration::from_days(clinic_max_days),
            schedule: rx.therapy.as_ref().map(|t| t.schedule.clone()),
            patient_bolus: None,
        })
        .map_err(|e| err("due date", e))?;
        visit::close(&mut v, &due, BY, at).map_err(|e| err("close", e))?;
        out.push(BulkRow {
            row: NewRow {
                parent_id: Some(p.implant.id),
                key: None,
                status: "closed".into(),
                data: to_json(&v)?,
            },
            seq: i64::try_from(k + 1).unwrap_or(i64::MAX),
        });
        filled_at = at;
        volume = after;
    }
    Ok(out)
}

/// Fills an empty clinic with `patients` synthetic patients and `visits` closed refill
/// visits each; `progress` hears the patients done so far. Returns `None` (nothing
/// written) when the clinic already has patients.
///
/// # Errors
/// Storage failure, or a synthetic record the domain refuses.
pub async fn seed(
    store: &Arc<dyn Storage>,
    patients: u64,
    visits: u64,
    clinic_max_days: u64,
    now: DateTime<Utc>,
    mut progress: impl FnMut(u64),
) -> Result<Option<Seeded>, String> {
    if !store
        .list(Kind::Patient, None, 1)
        .await
        .map_err(|e| err("list", e))?
        .is_empty()
    {
        return Ok(None);
    }
    let ms = now.timestamp_millis();
    let mut done = 0u64;
    let mut seeded = Seeded {
        patients: 0,
        visits: 0,
    };
    let batch = u64::try_from(BATCH).unwrap_or(250);
    while done < patients {
        let end = patients.min(done + batch);
        let mut plans = (done..end)
            .map(|i| plan(i, visits, now))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = plans
            .iter()
            .map(|p| {
                Ok(BulkRow {
                    row: NewRow {
                        parent_id: None,
                        key: Some(p.patient.details.mrn.clone()),
                        status: "maintenance".into(),
                        data: to_json(&p.patient)?,
                    },
                    seq: 1,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let ids = store
            .insert_bulk(None, Kind::Patient, rows, ms)
            .await
            .map_err(|e| err("patients", e))?;
        for (p, id) in plans.iter_mut().zip(ids) {
            p.patient.id = id;
            p.implant.patient_id = id;
        }
        let rows = plans
            .iter()
            .map(|p| {
                Ok(BulkRow {
                    row: NewRow {
                        parent_id: Some(p.patient.id),
                        key: Some(p.implant.details.serial.clone()),
                        status: "active".into(),
                        data: to_json(&p.implant)?,
                    },
                    seq: 1,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let ids = store
            .insert_bulk(None, Kind::Implant, rows, ms)
            .await
            .map_err(|e| err("implants", e))?;
        for (p, id) in plans.iter_mut().zip(ids) {
            p.implant.id = id;
        }
        let mut rxs = plans
            .iter()
            .map(|p| {
                let created = ago(p.last_at, visits * INTERVAL_DAYS);
                prescription(p, p.implant.id, created)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rows = plans
            .iter()
            .zip(&rxs)
            .map(|(p, rx)| {
                Ok(BulkRow {
                    row: NewRow {
                        parent_id: Some(p.implant.id),
                        key: None,
                        status: "active".into(),
                        data: to_json(rx)?,
                    },
                    seq: 1,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let ids = store
            .insert_bulk(None, Kind::Prescription, rows, ms)
            .await
            .map_err(|e| err("prescriptions", e))?;
        for (rx, id) in rxs.iter_mut().zip(ids) {
            rx.id = id;
            rx.version = 1;
        }
        let mut rows = Vec::new();
        for (p, rx) in plans.iter().zip(&rxs) {
            rows.extend(history(p, rx, visits, clinic_max_days)?);
        }
        let n = u64::try_from(rows.len()).unwrap_or(0);
        store
            .insert_bulk(None, Kind::Visit, rows, ms)
            .await
            .map_err(|e| err("visits", e))?;
        seeded.patients += end - done;
        seeded.visits += n;
        done = end;
        progress(done);
    }
    Ok(Some(seeded))
}
