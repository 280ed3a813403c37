//! Prescription change: the new version is checked by thecal-rx against the library, the
//! pump and the version in force; hard findings refuse it, soft findings need a named
//! physician's reason; the change is described against the old version in words.

use thecal_rx::check::{self, Context, Previous, Severity};
use thecal_rx::dose::{Admixture, daily_dose};
use thecal_rx::drug::{DrugId, Library};
use thecal_rx::schedule::Schedule;
use thecal_rx::{Concentration, Duration, Flow, MassRate, Volume};

use super::device::{Device, PumpClass};
use super::records::{
    Condition, FindingRecord, NewPrescription, Prescription, SpasticityOrigin, drug,
};
use super::regimen::{Regimen, read};
use super::{FieldError, quantity, text};

/// A prescription checked by thecal-rx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Drug.
    pub drug: DrugId,
    /// Concentration.
    pub concentration: Concentration,
    /// Daily dose as entered.
    pub daily_dose: MassRate,
    /// Flow derived by thecal-rx.
    pub flow: Flow,
    /// Reservoir volume after the fill.
    pub reservoir_volume: Volume,
    /// Every finding.
    pub findings: Vec<FindingRecord>,
    /// Worst severity.
    pub worst: Option<Severity>,
    /// The change against the version in force, in words.
    pub change: Vec<String>,
    /// The admixture, schedule and patient bolus read into thecal-rx's types.
    pub regimen: Regimen,
    /// The prescription thecal-rx checked.
    pub therapy: check::Prescription,
    /// The pump it was checked against, in words.
    pub device: String,
}

/// The thecal-rx prescription of a stored version (single drug, continuous).
pub fn rx_of(p: &Prescription) -> Option<check::Prescription> {
    if let Some(t) = &p.therapy {
        return Some(t.clone());
    }
    let drug = DrugId::from_name(&p.drug)?;
    Some(check::Prescription {
        contents: Admixture::single(drug, Concentration::from_raw(p.concentration_ng_ml)),
        schedule: Schedule::continuous(Flow::from_raw(p.flow_nl_day)),
        patient_bolus: None,
        reservoir_volume: Volume::from_raw(p.reservoir_volume_nl),
    })
}

/// Checks a new version against the pump (`capacity`) and the version in force (with the
/// time since it took effect).
///
/// # Errors
/// A field that cannot be read, or a flow thecal-rx cannot derive.
pub fn check_new(
    new: &NewPrescription,
    capacity: Volume,
    previous: Option<(&Prescription, Duration)>,
) -> Result<Checked, FieldError> {
    check_new_for(new, capacity, previous, None)
}

/// What thecal-rx's check knows of the patient from the clinic's record: the origin of
/// spasticity (baclofen's titration step depends on it; an unknown origin, or a pain
/// patient, takes the stricter cerebral rule).
pub fn rx_patient(condition: Option<&Condition>) -> check::Patient {
    check::Patient {
        spasticity_origin: match condition {
            Some(Condition::Spasticity {
                origin: SpasticityOrigin::Spinal,
            }) => check::SpasticityOrigin::Spinal,
            Some(Condition::Spasticity {
                origin: SpasticityOrigin::Cerebral,
            }) => check::SpasticityOrigin::Cerebral,
            _ => check::SpasticityOrigin::Unknown,
        },
        prior_opioid: None,
    }
}

/// [`check_new`] for a patient whose condition is known, on a SynchroMed-class pump.
///
/// # Errors
/// As [`check_new`].
pub fn check_new_for(
    new: &NewPrescription,
    capacity: Volume,
    previous: Option<(&Prescription, Duration)>,
    condition: Option<&Condition>,
) -> Result<Checked, FieldError> {
    let device = Device {
        model: "SynchroMed-class".into(),
        class: PumpClass::SynchroMed,
        capacity,
    };
    check_new_on(new, &device, previous, condition)
}

/// Checks a new version against the implant's own pump ([`Device::of_implant`]), the
/// version in force and the patient: the check the API stores with and the console shows
/// while the prescriber types.
///
/// # Errors
/// As [`check_new`].
pub fn check_new_on(
    new: &NewPrescription,
    device: &Device,
    previous: Option<(&Prescription, Duration)>,
    condition: Option<&Condition>,
) -> Result<Checked, FieldError> {
    let drug = drug("drug", &new.drug)?;
    let concentration: Concentration = quantity("concentration", &new.concentration)?;
    let volume: Volume = quantity("reservoir_volume", &new.reservoir_volume)?;
    text("reason", &new.reason, 1, 2000)?;
    if concentration.is_zero() {
        return Err(FieldError::new("concentration", "must be above zero"));
    }
    let regimen = read(
        drug,
        concentration,
        &new.daily_dose,
        &new.admixture,
        new.flex.as_ref(),
        new.patient_bolus.as_ref(),
    )?;
    // The dose shown is the constant rate as entered, or the heaviest day of a flex
    // schedule; the flow is the week's mean daily volume.
    let dose: MassRate = match new.flex {
        None => quantity("daily_dose", &new.daily_dose)?,
        Some(_) => regimen.heaviest_daily_dose,
    };
    let flow = regimen.mean_flow;
    let rx = check::Prescription {
        contents: regimen.contents.clone(),
        schedule: regimen.schedule.clone(),
        patient_bolus: regimen.patient_bolus,
        reservoir_volume: volume,
    };
    let library = Library::default();
    let old = previous.and_then(|(p, elapsed)| rx_of(p).map(|rx| (rx, elapsed)));
    let ctx = Context {
        library: &library,
        device: device.limits(&rx),
        previous: old.as_ref().map(|(rx, elapsed)| Previous {
            prescription: rx,
            elapsed: *elapsed,
        }),
        opioid_naive: new.opioid_naive,
    };
    let found = check::check_with(&rx, &ctx, &rx_patient(condition));
    let mut findings: Vec<FindingRecord> = found
        .iter()
        .map(|f| FindingRecord {
            severity: f.severity.to_string(),
            message: f.to_string(),
        })
        .collect();
    if found.truncated {
        findings.push(FindingRecord {
            severity: "hard".into(),
            message: "more findings than can be listed; the prescription is refused".into(),
        });
    }
    let mut worst = found.worst();
    if let Some(m) = device.unrecognised_finding() {
        findings.push(FindingRecord {
            severity: "soft".into(),
            message: m,
        });
        worst = worst.max(Some(Severity::Soft));
    }
    let change = match previous {
        Some((p, _)) => describe(p, drug, concentration, dose, flow, volume),
        None => vec![format!(
            "first prescription: {drug} {concentration}, {dose} ({flow}), reservoir {volume}"
        )],
    };
    Ok(Checked {
        drug,
        concentration,
        daily_dose: dose,
        flow,
        reservoir_volume: volume,
        findings,
        worst,
        change,
        regimen,
        device: device.describe(&rx, dose),
        therapy: rx,
    })
}

/// Whether a checked prescription may be stored: hard findings refuse it; soft findings
/// need a reason.
///
/// # Errors
/// What refused it, or that a reason is required.
pub fn accept(checked: &Checked, soft_reason: Option<&str>) -> Result<Option<String>, FieldError> {
    let list = |sev: &str| -> String {
        checked
            .findings
            .iter()
            .filter(|f| f.severity == sev)
            .map(|f| f.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    match checked.worst {
        None => Ok(None),
        Some(Severity::Hard) => Err(FieldError::new(
            "prescription",
            format!("refused by the prescription check: {}", list("hard")),
        )),
        Some(Severity::Soft) => match soft_reason {
            Some(r) => Ok(Some(text("confirm_soft_findings", r, 1, 2000)?)),
            None => Err(FieldError::new(
                "confirm_soft_findings",
                format!(
                    "required: give the reason for accepting these findings: {}",
                    list("soft")
                ),
            )),
        },
    }
}

/// Percentage change in tenths, e.g. `+20.0 %`; `None` when the old value is zero.
fn percent(old: u64, new: u64) -> Option<String> {
    if old == 0 {
        return None;
    }
    let diff = i128::from(new) - i128::from(old);
    let tenths = diff * 1000 / i128::from(old);
    let sign = if tenths < 0 { "-" } else { "+" };
    let t = tenths.unsigned_abs();
    Some(format!("{sign}{}.{} %", t / 10, t % 10))
}

/// The change from `old` to the new values, one sentence per quantity that changed.
fn describe(
    old: &Prescription,
    drug: DrugId,
    conc: Concentration,
    dose: MassRate,
    flow: Flow,
    volume: Volume,
) -> Vec<String> {
    let mut out = Vec::new();
    if old.drug != drug.name() {
        out.push(format!("drug changes from {} to {drug}", old.drug));
    }
    let old_conc = Concentration::from_raw(old.concentration_ng_ml);
    if old_conc != conc {
        out.push(format!(
            "concentration changes from {old_conc} to {conc}: bridge the drug left in the pump and catheter"
        ));
    }
    let old_dose = MassRate::from_raw(old.daily_dose_ng);
    if old_dose == dose {
        out.push(format!("daily dose unchanged at {dose}"));
    } else {
        let word = if dose > old_dose {
            "increases"
        } else {
            "decreases"
        };
        let pct = percent(old_dose.raw(), dose.raw()).unwrap_or_else(|| "from zero".into());
        out.push(format!(
            "daily dose {word} from {old_dose} to {dose} ({pct})"
        ));
    }
    let old_flow = Flow::from_raw(old.flow_nl_day);
    if old_flow != flow {
        out.push(format!("flow changes from {old_flow} to {flow}"));
    }
    let old_volume = Volume::from_raw(old.reservoir_volume_nl);
    if old_volume != volume {
        out.push(format!(
            "reservoir volume changes from {old_volume} to {volume}"
        ));
    }
    out
}

/// The daily dose a stored version delivers, recomputed by thecal-rx from its flow (for
/// display beside the dose as entered).
pub fn delivered_dose(p: &Prescription) -> Option<MassRate> {
    daily_dose(
        Concentration::from_raw(p.concentration_ng_ml),
        Flow::from_raw(p.flow_nl_day),
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn new(drug: &str, conc: &str, dose: &str) -> NewPrescription {
        NewPrescription {
            drug: drug.into(),
            concentration: conc.into(),
            daily_dose: dose.into(),
            reservoir_volume: "20 mL".into(),
            opioid_naive: false,
            reason: "titration".into(),
            confirm_soft_findings: None,
            admixture: vec![],
            flex: None,
            patient_bolus: None,
        }
    }

    fn stored(c: &Checked) -> Prescription {
        Prescription {
            id: 1,
            implant_id: 1,
            version: 1,
            drug: c.drug.name().into(),
            concentration: c.concentration.to_string(),
            concentration_ng_ml: c.concentration.raw(),
            daily_dose: c.daily_dose.to_string(),
            daily_dose_ng: c.daily_dose.raw(),
            flow: c.flow.to_string(),
            flow_nl_day: c.flow.raw(),
            reservoir_volume_nl: c.reservoir_volume.raw(),
            opioid_naive: false,
            reason: "start".into(),
            prescriber: "dr".into(),
            created_at: Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).unwrap(),
            findings: vec![],
            confirmation: None,
            change: vec![],
            admixture: vec![],
            flex: None,
            patient_bolus: None,
            therapy: Some(c.therapy.clone()),
        }
    }

    #[test]
    fn baclofen_200_mcg_at_2000_mcg_per_ml_is_0_1_ml_per_day_clinic_004() {
        // Hand-worked: 200 mcg/day ÷ 2000 mcg/mL = 0.1 mL/day = 100 000 nL/day; 200 mcg/day
        // is the top of the usual start, so no finding.
        let c = check_new(
            &new("baclofen", "2000 mcg/mL", "200 mcg/day"),
            Volume::from_ml(20),
            None,
        )
        .unwrap();
        assert_eq!(c.flow.raw(), 100_000);
        assert_eq!(c.worst, None, "{:?}", c.findings);
        assert_eq!(accept(&c, None), Ok(None));
        assert_eq!(
            c.change,
            vec!["first prescription: baclofen 2 mg/mL, 200 mcg/day (0.1 mL/day), reservoir 20 mL"]
        );
    }

    #[test]
    fn change_in_words_names_old_and_new_dose_with_percent_clinic_005() {
        let first = check_new(
            &new("baclofen", "2000 mcg/mL", "400 mcg/day"),
            Volume::from_ml(20),
            None,
        )
        .unwrap();
        let old = stored(&first);
        // +10 %: 400 → 440 mcg/day; flow 0.22 mL/day. Two days after the last change.
        let next = check_new(
            &new("baclofen", "2000 mcg/mL", "440 mcg/day"),
            Volume::from_ml(20),
            Some((&old, Duration::from_days(2))),
        )
        .unwrap();
        assert_eq!(
            next.change,
            vec![
                "daily dose increases from 400 mcg/day to 440 mcg/day (+10.0 %)",
                "flow changes from 0.2 mL/day to 0.22 mL/day",
            ]
        );
    }

    #[test]
    fn hard_finding_refuses_and_soft_needs_a_reason_clinic_006() {
        // Morphine 100 mg/mL is above every library maximum concentration → hard.
        let hard = check_new(
            &new("morphine", "100 mg/mL", "5 mg/day"),
            Volume::from_ml(20),
            None,
        )
        .unwrap();
        assert_eq!(hard.worst, Some(Severity::Hard), "{:?}", hard.findings);
        let e = accept(&hard, Some("I insist")).unwrap_err();
        assert_eq!(e.field, "prescription");
        assert!(
            e.message.starts_with("refused by the prescription check: "),
            "{}",
            e.message
        );

        // A two-drug mixture is not possible here; a large baclofen increase is soft.
        let first = check_new(
            &new("baclofen", "2000 mcg/mL", "400 mcg/day"),
            Volume::from_ml(20),
            None,
        )
        .unwrap();
        let old = stored(&first);
        let jump = check_new(
            &new("baclofen", "2000 mcg/mL", "600 mcg/day"),
            Volume::from_ml(20),
            Some((&old, Duration::from_days(10))),
        )
        .unwrap();
        assert_eq!(jump.worst, Some(Severity::Soft), "{:?}", jump.findings);
        let e = accept(&jump, None).unwrap_err();
        assert_eq!(e.field, "confirm_soft_findings");
        assert_eq!(
            accept(&jump, Some(" severe spasms after fall ")),
            Ok(Some("severe spasms after fall".into()))
        );
    }

    #[test]
    fn baclofen_step_follows_the_patients_origin_of_spasticity_clinic_069() {
        // 400 → 480 mcg/day a day later is +20 %: within the spinal step (10–30 % per
        // 24 h, label) but beyond the cerebral one (5–15 %), which also applies when the
        // origin is not recorded.
        let first = check_new(
            &new("baclofen", "2000 mcg/mL", "400 mcg/day"),
            Volume::from_ml(20),
            None,
        )
        .unwrap();
        let old = stored(&first);
        let step = |c: Option<&Condition>| {
            check_new_for(
                &new("baclofen", "2000 mcg/mL", "480 mcg/day"),
                Volume::from_ml(20),
                Some((&old, Duration::from_days(1))),
                c,
            )
            .unwrap()
            .findings
            .iter()
            .any(|f| f.message.contains("allowed step"))
        };
        let spinal = Condition::Spasticity {
            origin: SpasticityOrigin::Spinal,
        };
        let cerebral = Condition::Spasticity {
            origin: SpasticityOrigin::Cerebral,
        };
        assert!(
            !step(Some(&spinal)),
            "a spinal patient's +20 % was judged a large step"
        );
        assert!(step(Some(&cerebral)));
        assert!(step(None));
    }

    #[test]
    fn percent_rounds_towards_zero_in_tenths() {
        assert_eq!(percent(400, 440).as_deref(), Some("+10.0 %"));
        assert_eq!(percent(300, 200).as_deref(), Some("-33.3 %"));
        assert_eq!(percent(0, 1), None);
    }
}
