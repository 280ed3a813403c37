//! The prescription file format (TOML) read by `thecal calc check`, `thecal programmer
//! program` and the simulator's scenarios. Needs `std` (feature `file`); the rest of
//! the crate stays `no_std`.
//!
//! The pump model a file names is resolved by the caller (the hardware presets belong
//! to `thecal-pump`, which depends on this crate): [`parse`] takes a function from a
//! model name to its [`DeviceLimits`].
//!
//! Every quantity is written in clinical units (`"0.5 mL/day"`, `"2000 mcg/mL"`) and
//! parsed by thecal-rx, so that a file says exactly what a clinician would write. The
//! format is documented with an example in the README and `examples/`.

#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use std::collections::BTreeMap;
use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use serde::Deserialize;

use crate::check::{DeviceLimits, PatientBolus, Prescription};
use crate::dose::{Admixture, Component};
use crate::drug::{DrugId, Library, Tightening};
use crate::schedule::{DayProfile, PeriodicBolus, Schedule, Step, Weekdays};
use crate::{Duration, Volume};

/// A problem in a prescription file, with the field it is in.
#[derive(Debug)]
pub struct FileError {
    /// Dotted path of the field, e.g. `drug[0].concentration`.
    pub field: String,
    /// What was wrong and what is allowed.
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

fn err(field: impl Into<String>, message: impl std::fmt::Display) -> FileError {
    FileError {
        field: field.into(),
        message: message.to_string(),
    }
}

/// Parses a clinical quantity, naming the field on error.
pub fn quantity<T>(field: &str, text: &str) -> Result<T, FileError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| err(field, format!("'{text}': {e}")))
}

/// Parses a drug name, listing the known drugs on error.
pub fn drug(field: &str, name: &str) -> Result<DrugId, FileError> {
    DrugId::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = DrugId::ALL.iter().map(|d| d.name()).collect();
        err(
            field,
            format!("unknown drug '{name}'; known drugs: {}", known.join(", ")),
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PumpSpec {
    model: Option<String>,
    capacity: Option<String>,
    min_rate: Option<String>,
    max_rate: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PatientSpec {
    #[serde(default)]
    opioid_naive: bool,
    /// `spinal`, `cerebral` or `unknown` (the default, which takes the stricter rule).
    spasticity_origin: Option<String>,
    /// The opioid taken before intrathecal therapy.
    prior_opioid: Option<PriorOpioidSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriorOpioidSpec {
    drug: String,
    route: String,
    dose: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrugSpec {
    name: String,
    concentration: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    start: String,
    rate: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BasalSpec {
    rate: Option<String>,
    steps: Option<Vec<StepSpec>>,
    weekly: Option<BTreeMap<String, Vec<StepSpec>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BolusSpec {
    start: String,
    volume: String,
    duration: String,
    days: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatientBolusSpec {
    volume: String,
    duration: String,
    lockout: String,
    max_per_day: u8,
}

/// The part shared by a prescription file, the previous prescription and a scenario's
/// inline `[prescription]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RxSpec {
    drug: Vec<DrugSpec>,
    basal: BasalSpec,
    #[serde(default)]
    periodic_bolus: Vec<BolusSpec>,
    patient_bolus: Option<PatientBolusSpec>,
    reservoir_volume: Option<String>,
}

/// A program change without new drugs (a scenario's `program` event): the basal, the
/// periodic boluses and the patient bolus.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramSpec {
    basal: BasalSpec,
    #[serde(default)]
    periodic_bolus: Vec<BolusSpec>,
    patient_bolus: Option<PatientBolusSpec>,
}

impl RxSpec {
    /// Builds the prescription, naming fields under `field` (e.g. `prescription.`).
    ///
    /// # Errors
    /// A [`FileError`] naming the field and what is allowed.
    pub fn build(&self, field: &str, default_volume: Volume) -> Result<Prescription, FileError> {
        build_prescription(field, self, default_volume)
    }
}

impl ProgramSpec {
    /// The new program for a reservoir holding `contents`.
    ///
    /// # Errors
    /// A [`FileError`] naming the field and what is allowed.
    pub fn build(
        &self,
        field: &str,
        contents: &Admixture,
        volume: Volume,
    ) -> Result<Prescription, FileError> {
        let spec = RxSpec {
            drug: Vec::new(),
            basal: self.basal.clone(),
            periodic_bolus: self.periodic_bolus.clone(),
            patient_bolus: self.patient_bolus.clone(),
            reservoir_volume: None,
        };
        build_program(field, &spec, contents.clone(), volume)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviousSpec {
    elapsed: String,
    drug: Vec<DrugSpec>,
    basal: BasalSpec,
    #[serde(default)]
    periodic_bolus: Vec<BolusSpec>,
    patient_bolus: Option<PatientBolusSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClinicLimitSpec {
    drug: String,
    max_concentration: Option<String>,
    max_daily_dose: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    pump: PumpSpec,
    #[serde(default)]
    patient: PatientSpec,
    drug: Vec<DrugSpec>,
    basal: BasalSpec,
    #[serde(default)]
    periodic_bolus: Vec<BolusSpec>,
    patient_bolus: Option<PatientBolusSpec>,
    reservoir_volume: Option<String>,
    previous: Option<PreviousSpec>,
    #[serde(default)]
    clinic_limit: Vec<ClinicLimitSpec>,
}

/// A prescription file, read and checked for form (not yet for clinical limits).
#[derive(Debug)]
pub struct PrescriptionFile {
    /// The pump's limits.
    pub device: DeviceLimits,
    /// The prescription.
    pub prescription: Prescription,
    /// The previous prescription and how long ago it took effect.
    pub previous: Option<(Prescription, Duration)>,
    /// The patient has not been taking opioids.
    pub opioid_naive: bool,
    /// What else the check knows of the patient.
    pub patient: crate::check::Patient,
    /// The library with the clinic's tightenings.
    pub library: Library,
}

impl PrescriptionFile {
    /// The context the prescription checks need: the file's library, device, previous
    /// prescription and opioid history.
    /// Checks the prescription with everything the file says.
    pub fn check(&self) -> crate::check::Findings {
        crate::check::check_with(&self.prescription, &self.context(), &self.patient)
    }

    /// The context the prescription checks need (see [`PrescriptionFile::check`]).
    pub fn context(&self) -> crate::check::Context<'_> {
        crate::check::Context {
            library: &self.library,
            device: self.device,
            previous: self
                .previous
                .as_ref()
                .map(|(p, elapsed)| crate::check::Previous {
                    prescription: p,
                    elapsed: *elapsed,
                }),
            opioid_naive: self.opioid_naive,
        }
    }
}

/// Resolves a pump model name to its limits, with the list of known names for messages.
#[derive(Clone, Copy)]
pub struct Models<'a> {
    /// The limits of a model, `None` when unknown.
    pub resolve: &'a dyn Fn(&str) -> Option<DeviceLimits>,
    /// The known names, for messages.
    pub known: &'a str,
}

impl core::fmt::Debug for Models<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Models({})", self.known)
    }
}

fn device(spec: &PumpSpec, models: Models<'_>) -> Result<DeviceLimits, FileError> {
    let known = models.known;
    let mut dev = match spec.model.as_deref() {
        None => DeviceLimits::synchromed_class(Volume::from_ml(40)),
        Some(m) => (models.resolve)(m)
            .ok_or_else(|| err("pump.model", format!("unknown model '{m}'; known: {known}")))?,
    };
    if spec.model.is_none() && spec.capacity.is_none() {
        return Err(err("pump", format!("give a model ({known}) or a capacity")));
    }
    if let Some(c) = &spec.capacity {
        dev.capacity = quantity("pump.capacity", c)?;
    }
    if let Some(r) = &spec.min_rate {
        dev.min_flow = quantity("pump.min_rate", r)?;
    }
    if let Some(r) = &spec.max_rate {
        dev.max_flow = quantity("pump.max_rate", r)?;
    }
    Ok(dev)
}

/// Parses `HH:MM` into minutes after midnight.
pub fn clock_minute(field: &str, text: &str) -> Result<u16, FileError> {
    let bad = || {
        err(
            field,
            format!("'{text}' is not a time of day; write HH:MM from 00:00 to 23:59"),
        )
    };
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn weekday(field: &str, name: &str) -> Result<u8, FileError> {
    let lower = name.trim().to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|d| lower.starts_with(d))
        .map(|i| i as u8)
        .ok_or_else(|| {
            err(
                field,
                format!("'{name}' is not a weekday; write mon, tue, … sun"),
            )
        })
}

fn profile(field: &str, steps: &[StepSpec]) -> Result<DayProfile, FileError> {
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let f = format!("{field}[{i}]");
        out.push(Step {
            start_minute: clock_minute(&format!("{f}.start"), &s.start)?,
            flow: quantity(&format!("{f}.rate"), &s.rate)?,
        });
    }
    DayProfile::new(&out).map_err(|e| err(field, e))
}

fn schedule(field: &str, spec: &RxSpec) -> Result<Schedule, FileError> {
    let b = &spec.basal;
    let basal = format!("{field}basal");
    let mut sched = match (&b.rate, &b.steps, &b.weekly) {
        (Some(r), None, None) => Schedule::continuous(quantity(&format!("{basal}.rate"), r)?),
        (None, Some(steps), None) => Schedule::daily(profile(&format!("{basal}.steps"), steps)?),
        (None, None, Some(week)) => {
            let mut days: Vec<Option<DayProfile>> = vec![None; 7];
            for (name, steps) in week {
                let f = format!("{basal}.weekly.{name}");
                let d = weekday(&f, name)?;
                days[usize::from(d)] = Some(profile(&f, steps)?);
            }
            let mut all = Vec::new();
            for (i, d) in days.into_iter().enumerate() {
                all.push(d.ok_or_else(|| {
                    err(
                        format!("{basal}.weekly"),
                        format!("missing {}; give all seven days", DAY_NAMES[i]),
                    )
                })?);
            }
            let arr: [DayProfile; 7] =
                all.try_into().map_err(|_| err(&basal, "need seven days"))?;
            Schedule::weekly(arr)
        }
        _ => {
            return Err(err(
                basal,
                "give exactly one of `rate` (continuous), `steps` (flex, every day) or `weekly` (flex per weekday)",
            ));
        }
    };
    for (i, pb) in spec.periodic_bolus.iter().enumerate() {
        let f = format!("{field}periodic_bolus[{i}]");
        let days = match &pb.days {
            None => Weekdays::ALL,
            Some(list) => {
                let mut mask = 0u8;
                for d in list {
                    mask |= 1 << weekday(&format!("{f}.days"), d)?;
                }
                Weekdays(mask)
            }
        };
        sched
            .add_bolus(PeriodicBolus {
                start_minute: clock_minute(&format!("{f}.start"), &pb.start)?,
                volume: quantity(&format!("{f}.volume"), &pb.volume)?,
                duration: quantity(&format!("{f}.duration"), &pb.duration)?,
                days,
            })
            .map_err(|e| err(&f, e))?;
    }
    Ok(sched)
}

fn build_prescription(
    field: &str,
    spec: &RxSpec,
    default_volume: Volume,
) -> Result<Prescription, FileError> {
    let mut parts = Vec::new();
    for (i, d) in spec.drug.iter().enumerate() {
        let f = format!("{field}drug[{i}]");
        parts.push(Component {
            drug: drug(&format!("{f}.name"), &d.name)?,
            concentration: quantity(&format!("{f}.concentration"), &d.concentration)?,
        });
    }
    let contents = Admixture::new(&parts).map_err(|e| err(format!("{field}drug"), e))?;
    let reservoir_volume = match &spec.reservoir_volume {
        Some(v) => quantity(&format!("{field}reservoir_volume"), v)?,
        None => default_volume,
    };
    build_program(field, spec, contents, reservoir_volume)
}

/// The schedule and patient bolus of `spec` for a reservoir of `contents`.
fn build_program(
    field: &str,
    spec: &RxSpec,
    contents: Admixture,
    reservoir_volume: Volume,
) -> Result<Prescription, FileError> {
    let patient_bolus = match &spec.patient_bolus {
        None => None,
        Some(p) => {
            let f = format!("{field}patient_bolus");
            Some(PatientBolus {
                volume: quantity(&format!("{f}.volume"), &p.volume)?,
                duration: quantity(&format!("{f}.duration"), &p.duration)?,
                lockout: quantity(&format!("{f}.lockout"), &p.lockout)?,
                max_per_day: p.max_per_day,
            })
        }
    };
    Ok(Prescription {
        contents,
        schedule: schedule(field, spec)?,
        patient_bolus,
        reservoir_volume,
    })
}

/// Reads a prescription file's text.
///
/// # Errors
/// A [`FileError`] naming the field and what is allowed.
pub fn parse(text: &str, models: Models<'_>) -> Result<PrescriptionFile, FileError> {
    let spec: FileSpec = toml::from_str(text).map_err(|e| {
        let one_line = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        err("", one_line)
    })?;
    let device = device(&spec.pump, models)?;
    let rx = RxSpec {
        drug: spec.drug,
        basal: spec.basal,
        periodic_bolus: spec.periodic_bolus,
        patient_bolus: spec.patient_bolus,
        reservoir_volume: spec.reservoir_volume,
    };
    let prescription = build_prescription("", &rx, device.capacity)?;
    let previous = match spec.previous {
        None => None,
        Some(p) => {
            let old = RxSpec {
                drug: p.drug,
                basal: p.basal,
                periodic_bolus: p.periodic_bolus,
                patient_bolus: p.patient_bolus,
                reservoir_volume: None,
            };
            Some((
                build_prescription("previous.", &old, device.capacity)?,
                quantity("previous.elapsed", &p.elapsed)?,
            ))
        }
    };
    let mut library = Library::new();
    for (i, c) in spec.clinic_limit.iter().enumerate() {
        let f = format!("clinic_limit[{i}]");
        let d = drug(&format!("{f}.drug"), &c.drug)?;
        if let Some(v) = &c.max_concentration {
            let v = quantity(&format!("{f}.max_concentration"), v)?;
            library
                .tighten(d, Tightening::MaxConcentration(v))
                .map_err(|e| err(&f, e))?;
        }
        if let Some(v) = &c.max_daily_dose {
            let v = quantity(&format!("{f}.max_daily_dose"), v)?;
            library
                .tighten(d, Tightening::MaxDailyDose(v))
                .map_err(|e| err(&f, e))?;
        }
    }
    Ok(PrescriptionFile {
        device,
        prescription,
        previous,
        opioid_naive: spec.patient.opioid_naive,
        patient: crate::check::Patient {
            spasticity_origin: match spec.patient.spasticity_origin.as_deref() {
                None => crate::check::SpasticityOrigin::Unknown,
                Some(o) => crate::check::SpasticityOrigin::from_name(o).ok_or_else(|| {
                    err(
                        "patient.spasticity_origin",
                        format!("'{o}' is not an origin; write spinal, cerebral or unknown"),
                    )
                })?,
            },
            prior_opioid: match &spec.patient.prior_opioid {
                None => None,
                Some(p) => Some((
                    drug("patient.prior_opioid.drug", &p.drug)?,
                    crate::convert::Route::from_name(&p.route).ok_or_else(|| {
                        err(
                            "patient.prior_opioid.route",
                            format!(
                                "'{}' is not a route; write oral, iv, epidural or intrathecal",
                                p.route
                            ),
                        )
                    })?,
                    quantity("patient.prior_opioid.dose", &p.dose)?,
                )),
            },
        },
        library,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A stand-in for the pump's presets: the one model these tests name.
    fn parse(text: &str) -> Result<PrescriptionFile, FileError> {
        super::parse(
            text,
            Models {
                resolve: &|m| {
                    (m == "synchromed-40")
                        .then(|| DeviceLimits::synchromed_class(Volume::from_ml(40)))
                },
                known: "synchromed-40",
            },
        )
    }

    #[test]
    fn the_shipped_example_parses_rx_012() {
        let text = include_str!("../../../examples/prescription.toml");
        let f = parse(text).unwrap();
        assert_eq!(f.prescription.contents.components().len(), 1);
        assert!(f.previous.is_some());
    }

    #[test]
    fn errors_name_the_field_and_what_is_allowed_rx_012() {
        let base = "[pump]\nmodel = \"synchromed-40\"\n[basal]\nrate = \"0.5 mL/day\"\n";
        let e = parse(&format!(
            "{base}[[drug]]\nname = \"aspirin\"\nconcentration = \"1 mg/mL\"\n"
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("drug[0].name: unknown drug 'aspirin'; known drugs: morphine"),
            "{e}"
        );
        let e = parse(&format!(
            "{base}[[drug]]\nname = \"morphine\"\nconcentration = \"1 mg/day\"\n"
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("drug[0].concentration: '1 mg/day': that is a dose rate"),
            "{e}"
        );
        let e = parse("[pump]\nmodel = \"x\"\n[basal]\nrate=\"1 mL/day\"\n[[drug]]\nname=\"morphine\"\nconcentration=\"1 mg/mL\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown model 'x'"), "{e}");
        let e = parse(&format!("{base}bogus = 1\n")).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        assert!(clock_minute("s", "24:00").is_err());
        assert_eq!(clock_minute("s", "06:30").unwrap(), 390);
    }
}
