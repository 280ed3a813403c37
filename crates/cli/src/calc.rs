//! `thecal calc`: the dosing arithmetic of thecal-rx on the command line.

use std::process::ExitCode;

use chrono::{NaiveDateTime, Timelike};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use thecal_pump::profile::HardwareProfile;
use thecal_rx::check::Severity;
use thecal_rx::convert::{self, Route};
use thecal_rx::dose;
use thecal_rx::drug::DrugId;
use thecal_rx::refill::{self, RefillInput};
use thecal_rx::schedule::{LocalTime, Schedule};
use thecal_rx::{Concentration, Duration, Flow, MassRate, Volume};

use thecal_rx::file as rxfile;

/// Arguments of `thecal calc`.
#[derive(Debug, Args)]
pub struct CalcArgs {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CalcCommand,
}

fn parse_route(s: &str) -> Result<Route, String> {
    Route::from_name(s)
        .ok_or_else(|| format!("unknown route '{s}'; known: oral, iv, epidural, intrathecal"))
}

fn parse_drug(s: &str) -> Result<DrugId, String> {
    rxfile::drug("", s).map_err(|e| e.message)
}

#[derive(Debug, Subcommand)]
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
enum CalcCommand {
    /// Daily dose from concentration and rate.
    Dose {
        /// Drug name (morphine, hydromorphone, fentanyl, sufentanil, bupivacaine, clonidine, ziconotide, baclofen, saline).
        #[arg(long, value_parser = parse_drug)]
        drug: DrugId,
        /// Concentration, e.g. 25mcg/mL or 10 mg/mL.
        #[arg(long, allow_hyphen_values = true)]
        conc: Concentration,
        /// Rate, e.g. 0.048mL/day.
        #[arg(long, allow_hyphen_values = true)]
        rate: Flow,
    },
    /// Rate needed for a daily dose at a concentration.
    Rate {
        /// Drug name.
        #[arg(long, value_parser = parse_drug)]
        drug: DrugId,
        /// Concentration, e.g. 2000mcg/mL.
        #[arg(long, allow_hyphen_values = true)]
        conc: Concentration,
        /// Daily dose, e.g. 500mcg/day.
        #[arg(long, allow_hyphen_values = true)]
        dose: MassRate,
    },
    /// When the low-reservoir alarm sounds, when the reservoir empties, and the refill-by date.
    Refill(RefillArgs),
    /// Opioid conversion by the equianalgesic table, with the customary reduction for
    /// incomplete cross-tolerance (decision support: the prescriber enters the dose).
    Convert {
        /// The opioid now taken.
        #[arg(long, value_parser = parse_drug)]
        from_drug: DrugId,
        /// Its route: oral, iv, epidural, intrathecal.
        #[arg(long, value_parser = parse_route)]
        from_route: Route,
        /// Its daily dose, e.g. 300mg/day.
        #[arg(long, allow_hyphen_values = true)]
        dose: MassRate,
        /// The opioid to convert to.
        #[arg(long, value_parser = parse_drug)]
        to_drug: DrugId,
        /// Its route (default intrathecal).
        #[arg(long, default_value = "intrathecal", value_parser = parse_route)]
        to_route: Route,
    },
    /// A gas-driven constant-rate pump: the concentration for a daily dose at its nominal
    /// flow, the refill interval, and the flow and dose at a body temperature and cabin
    /// altitude (the simulator's model).
    ConstantRate {
        /// Drug name.
        #[arg(long, value_parser = parse_drug)]
        drug: DrugId,
        /// Daily dose wanted, e.g. 300mcg/day.
        #[arg(long, allow_hyphen_values = true)]
        dose: MassRate,
        /// The pump's labelled flow at 37 °C and sea level, e.g. 1mL/day.
        #[arg(long, allow_hyphen_values = true)]
        nominal_flow: Flow,
        /// Reservoir volume after the fill.
        #[arg(long, default_value = "30 mL", allow_hyphen_values = true)]
        volume: Volume,
        /// Body temperature, °C (e.g. 38.5 for a fever).
        #[arg(long, default_value_t = 37.0, allow_hyphen_values = true)]
        temperature: f64,
        /// Ambient (cabin) altitude, metres (e.g. 2438 for an 8,000 ft cabin).
        #[arg(long, default_value_t = 0)]
        altitude_m: u32,
    },
    /// Compare the aspirated residual volume with the expected one.
    Reconcile {
        /// Reservoir capacity, e.g. 20mL.
        #[arg(long, allow_hyphen_values = true)]
        capacity: Volume,
        /// Expected residual volume.
        #[arg(long, allow_hyphen_values = true)]
        expected: Volume,
        /// Aspirated residual volume.
        #[arg(long, allow_hyphen_values = true)]
        aspirated: Volume,
        /// Volume delivered since the last refill: the threshold becomes the larger of
        /// 0.5 mL and 5 % of it.
        #[arg(long, allow_hyphen_values = true)]
        delivered: Option<Volume>,
        /// Flag threshold (default: from --delivered, else 5 % of capacity: 1 mL for
        /// 20 mL, 2 mL for 40 mL).
        #[arg(long, allow_hyphen_values = true)]
        threshold: Option<Volume>,
    },
    /// Check a prescription file (TOML); exit 0 clean, 4 soft findings only, 3 any hard,
    /// 2 a bad file.
    Check {
        /// The prescription file.
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Args)]
struct RefillArgs {
    /// Hardware model: synchromed-20, synchromed-40, prometra-20, prometra-40, external.
    /// Sets the capacity and the labelled worst-case accuracy the plan assumes.
    #[arg(long, default_value = "synchromed-40", value_parser = parse_model)]
    model: HardwareProfile,
    /// Reservoir capacity (default: the model's), e.g. 40mL.
    #[arg(long, allow_hyphen_values = true)]
    capacity: Option<Volume>,
    /// Volume in the reservoir after the refill.
    #[arg(long, allow_hyphen_values = true)]
    volume: Volume,
    /// Continuous rate, e.g. 0.25mL/day.
    #[arg(long, allow_hyphen_values = true)]
    rate: Flow,
    /// Low-reservoir alarm volume (the pump's setting).
    #[arg(long, default_value = "2 mL", allow_hyphen_values = true)]
    low_alarm: Volume,
    /// Low-reservoir alarm in days of therapy left (the pump's setting; 0: off).
    #[arg(long, default_value_t = refill::DEFAULT_LOW_RESERVOIR_DAYS)]
    low_alarm_days: u16,
    /// Patient bolus volume (every allowed bolus is assumed used).
    #[arg(long, requires = "ptm_per_day", allow_hyphen_values = true)]
    ptm_volume: Option<Volume>,
    /// Patient boluses allowed per 24 h.
    #[arg(long, requires = "ptm_volume")]
    ptm_per_day: Option<u8>,
    /// Drug in the reservoir (applies its stability limit); repeat for an admixture,
    /// whose beyond-use limit is the shortest of its drugs'.
    #[arg(long, value_parser = parse_drug)]
    drug: Vec<DrugId>,
    /// The compounding pharmacy's beyond-use date, as the time from the refill, e.g. 60d.
    #[arg(long, allow_hyphen_values = true)]
    pharmacy_bud: Option<Duration>,
    /// The drug is diluted (shorter stability for ziconotide).
    #[arg(long, requires = "drug")]
    diluted: bool,
    /// This is the first refill of a new pump.
    #[arg(long, requires = "drug")]
    first_refill: bool,
    /// The clinic's longest refill interval, e.g. 90d (default and most: 180 days).
    #[arg(long, allow_hyphen_values = true)]
    clinic_max: Option<Duration>,
    /// Refill time, local, e.g. 2027-01-04T09:00 (default: now).
    #[arg(long, value_parser = parse_start)]
    start: Option<NaiveDateTime>,
}

/// The pump's hardware presets as the prescription file's model resolver.
pub fn file_models() -> rxfile::Models<'static> {
    rxfile::Models {
        resolve: &HardwareProfile::limits_by_model,
        known: HardwareProfile::MODELS,
    }
}

/// A hardware model name, as everywhere in thecal.
pub fn parse_model(s: &str) -> Result<HardwareProfile, String> {
    HardwareProfile::by_model(s.trim()).ok_or_else(|| {
        format!(
            "unknown hardware model '{s}'; known: {}",
            HardwareProfile::MODELS
        )
    })
}

fn parse_start(s: &str) -> Result<NaiveDateTime, String> {
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s.trim(), f).ok())
        .ok_or_else(|| "expected a local date-time such as 2027-01-04T09:00".to_string())
}

/// Runs `thecal calc`; `Err` is a one-line message for exit status 2.
pub fn run(args: CalcArgs) -> Result<ExitCode, String> {
    let json = args.json;
    match args.command {
        CalcCommand::Dose { drug, conc, rate } => {
            let d = dose::daily_dose(conc, rate).map_err(|e| e.to_string())?;
            let mut notes = limit_notes(drug, conc, d);
            if drug == DrugId::Saline && !conc.is_zero() {
                notes.push("saline carries no drug".into());
            }
            emit(
                json,
                json!({
                    "drug": drug.name(),
                    "concentration_ng_per_ml": conc.raw(),
                    "rate_nl_per_day": rate.raw(),
                    "daily_dose_ng": d.raw(),
                    "daily_dose": d.to_string(),
                    "notes": notes,
                }),
                &format!("{drug} {conc} at {rate} = {d}"),
                &notes,
            );
            Ok(ExitCode::SUCCESS)
        }
        CalcCommand::Rate {
            drug,
            conc,
            dose: target,
        } => {
            if conc.is_zero() {
                return Err(
                    "--conc: a concentration above zero is needed to compute a rate".into(),
                );
            }
            let f = dose::flow_for_dose(conc, target).map_err(|e| e.to_string())?;
            let mut notes = limit_notes(drug, conc, target);
            let dev = thecal_rx::check::DeviceLimits::synchromed_class(Volume::from_ml(40));
            if f < dev.min_flow {
                notes.push(format!(
                    "{f} is below a SynchroMed-class pump's lowest rate {}; dilute the drug",
                    dev.min_flow
                ));
            }
            if f > dev.max_flow {
                notes.push(format!(
                    "{f} is above a SynchroMed-class pump's highest rate {}",
                    dev.max_flow
                ));
            }
            emit(
                json,
                json!({
                    "drug": drug.name(),
                    "concentration_ng_per_ml": conc.raw(),
                    "daily_dose_ng": target.raw(),
                    "rate_nl_per_day": f.raw(),
                    "rate": f.to_string(),
                    "notes": notes,
                }),
                &format!("{drug} {target} at {conc} needs {f}"),
                &notes,
            );
            Ok(ExitCode::SUCCESS)
        }
        CalcCommand::Refill(r) => refill_cmd(json, r),
        CalcCommand::Convert {
            from_drug,
            from_route,
            dose: from_dose,
            to_drug,
            to_route,
        } => {
            let c = convert::convert((from_drug, from_route), from_dose, (to_drug, to_route))
                .map_err(|e| e.to_string())?;
            emit(
                json,
                json!({
                    "from": format!("{from_route} {from_drug}"),
                    "to": format!("{to_route} {to_drug}"),
                    "equivalent_ng_per_day": c.equivalent.raw(),
                    "start_low_ng_per_day": c.start_low.raw(),
                    "start_high_ng_per_day": c.start_high.raw(),
                    "from_source": c.from_source,
                    "to_source": c.to_source,
                }),
                &format!(
                    "{from_dose} {from_route} {from_drug} = {} {to_route} {to_drug}\n\
                     start at {} to {} (25-50 % less for incomplete cross-tolerance, check)\n\
                     sources: {}; {}",
                    c.equivalent, c.start_low, c.start_high, c.from_source, c.to_source
                ),
                &[],
            );
            Ok(ExitCode::SUCCESS)
        }
        CalcCommand::ConstantRate {
            drug,
            dose: target,
            nominal_flow,
            volume,
            temperature,
            altitude_m,
        } => constant_rate_cmd(
            json,
            drug,
            target,
            nominal_flow,
            volume,
            temperature,
            altitude_m,
        ),
        CalcCommand::Reconcile {
            capacity,
            expected,
            aspirated,
            delivered,
            threshold,
        } => {
            let r =
                refill::reconcile_delivered(capacity, expected, aspirated, delivered, threshold)
                    .map_err(|e| e.to_string())?;
            let message = r.to_string();
            emit(
                json,
                json!({
                    "capacity_nl": capacity.raw(),
                    "expected_nl": expected.raw(),
                    "aspirated_nl": aspirated.raw(),
                    "discrepancy_nl": r.discrepancy_nl,
                    "threshold_nl": r.threshold.raw(),
                    "flagged": r.flagged,
                    "message": message,
                }),
                &format!("{}{message}", if r.flagged { "FLAGGED: " } else { "ok: " }),
                &[],
            );
            Ok(ExitCode::SUCCESS)
        }
        CalcCommand::Check { file } => check_cmd(json, &file),
    }
}

/// Notes when a dose or concentration is beyond the library's limits: hard (label) or
/// soft (guideline, needs a confirmed reason).
fn limit_notes(drug: DrugId, conc: Concentration, d: MassRate) -> Vec<String> {
    let info = drug.info();
    let mut notes = Vec::new();
    if let Some(max) = info.max_concentration.filter(|m| conc > m.value) {
        notes.push(format!(
            "{conc} exceeds the hard limit {} ({})",
            max.value, max.source
        ));
    } else if let Some(rec) = info
        .recommended_max_concentration
        .filter(|m| conc > m.value)
    {
        notes.push(format!(
            "{conc} is above the recommended (soft) maximum {} ({})",
            rec.value, rec.source
        ));
    }
    if let Some(max) = info.max_daily_dose.filter(|m| d > m.value) {
        notes.push(format!(
            "{d} exceeds the hard limit {} ({})",
            max.value, max.source
        ));
    } else if let Some(rec) = info.recommended_max_daily_dose.filter(|m| d > m.value) {
        notes.push(format!(
            "{d} is above the recommended (soft) maximum {} ({})",
            rec.value, rec.source
        ));
    }
    notes
}

fn emit(json: bool, value: Value, human: &str, notes: &[String]) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        println!("{human}");
        for n in notes {
            println!("note: {n}");
        }
    }
}

fn hours(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(d.whole_hours()))
}

fn refill_cmd(json: bool, r: RefillArgs) -> Result<ExitCode, String> {
    let start = r.start.unwrap_or_else(|| {
        chrono::Local::now()
            .naive_local()
            .with_nanosecond(0)
            .unwrap_or_default()
    });
    let start_ms = u64::try_from(start.and_utc().timestamp_millis())
        .map_err(|_| "--start: dates before 1970 are not supported".to_string())?;
    let schedule = Schedule::continuous(r.rate);
    let stability = refill::beyond_use(&r.drug, r.diluted, r.first_refill, r.pharmacy_bud);
    let input = RefillInput {
        capacity: r.capacity.unwrap_or(r.model.reservoir_capacity),
        volume: r.volume,
        schedule: &schedule,
        start: LocalTime(start_ms),
        patient_bolus: r.ptm_volume.zip(r.ptm_per_day),
        low_alarm: r.low_alarm,
        low_alarm_days: r.low_alarm_days,
        over_delivery_permille: r.model.over_delivery_permille,
        stability,
        clinic_max: r.clinic_max,
    };
    let plan = refill::plan(&input).map_err(|e| e.to_string())?;
    let at = |d: Duration| {
        let ms = i64::try_from(d.ms()).unwrap_or(i64::MAX);
        start
            .checked_add_signed(chrono::TimeDelta::milliseconds(ms))
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
    };
    let days = |d: Duration| format!("{:.1}", d.ms() as f64 / 86_400_000.0);
    let margin = permille_text(plan.over_delivery_permille);
    let refill_by = at(plan.refill_by).ok_or("the refill date is beyond the calendar")?;
    let mut human = format!(
        "refill by {refill_by} (limited by {})",
        plan.limited_by.as_str()
    );
    if let (Some(low), Some(empty)) = (plan.worst_to_low, plan.worst_to_empty) {
        human.push_str(&format!(
            "\nat the labelled worst case (+{margin} % delivered): low ({}) after {} days, \
             empty after {} days",
            plan.low_threshold,
            days(low),
            days(empty)
        ));
    }
    match plan.to_low_alarm {
        Some(d) => human.push_str(&format!(
            "\nlow-reservoir alarm ({}) at the programmed rate after {} days, at {}",
            plan.low_threshold,
            days(d),
            at(d).unwrap_or_default()
        )),
        None => human.push_str("\nthe low-reservoir alarm never sounds at this rate"),
    }
    if let Some(d) = plan.to_empty {
        human.push_str(&format!(
            "\nempty at the programmed rate after {} days, at {}",
            days(d),
            at(d).unwrap_or_default()
        ));
    }
    if !plan.bolus_allowance.is_zero() {
        human.push_str(&format!(
            "\nassumes every allowed patient bolus is used ({})",
            plan.bolus_allowance
        ));
    }
    emit(
        json,
        json!({
            "model": r.model.name,
            "low_threshold_nl": plan.low_threshold.raw(),
            "hours_to_low_alarm": hours(plan.to_low_alarm),
            "hours_to_empty": hours(plan.to_empty),
            "over_delivery_permille": plan.over_delivery_permille,
            "worst_case_hours_to_low": hours(plan.worst_to_low),
            "worst_case_hours_to_empty": hours(plan.worst_to_empty),
            "refill_by": refill_by,
            "limited_by": plan.limited_by.as_str(),
            "bolus_allowance_nl_per_day": plan.bolus_allowance.raw(),
            "start": start.format("%Y-%m-%dT%H:%M:%S").to_string(),
        }),
        &human,
        &[],
    );
    Ok(ExitCode::SUCCESS)
}

fn constant_rate_cmd(
    json: bool,
    drug: DrugId,
    target: MassRate,
    nominal_flow: Flow,
    volume: Volume,
    temperature: f64,
    altitude_m: u32,
) -> Result<ExitCode, String> {
    use thecal_rx::constant_rate::{self as cr, GasPumpModel};
    if nominal_flow.is_zero() {
        return Err("--nominal-flow: a flow above zero is needed".into());
    }
    if !(30.0..=45.0).contains(&temperature) {
        return Err(format!(
            "--temperature: {temperature} °C is not a body temperature; give 30 to 45"
        ));
    }
    let temp_mc = (temperature * 1000.0).round() as i32;
    let model = GasPumpModel::TYPICAL.with_nominal(nominal_flow);
    let conc = cr::concentration_for(target, nominal_flow).map_err(|e| e.to_string())?;
    let ambient = cr::ambient_at_altitude(altitude_m);
    let flow = model.flow_at(temp_mc, ambient).map_err(|e| e.to_string())?;
    let dose_there = cr::dose_at(&model, conc, temp_mc, ambient).map_err(|e| e.to_string())?;
    let empty = |f: Flow| {
        refill::refill_due(volume, Volume::ZERO, Volume::from_raw(f.raw()), 0)
            .ok()
            .flatten()
    };
    let days = |d: Option<Duration>| {
        d.map_or("never".to_string(), |d| {
            format!("{:.1} days", d.ms() as f64 / 86_400_000.0)
        })
    };
    let change = (flow.raw() as f64 / nominal_flow.raw() as f64 - 1.0) * 100.0;
    let mut notes = limit_notes(drug, conc, target);
    for n in limit_notes(drug, conc, dose_there) {
        if !notes.contains(&n) {
            notes.push(n);
        }
    }
    emit(
        json,
        json!({
            "drug": drug.name(),
            "concentration_ng_per_ml": conc.raw(),
            "concentration": conc.to_string(),
            "hours_to_empty_nominal": hours(empty(nominal_flow)),
            "temperature_mc": temp_mc,
            "ambient_pa": ambient,
            "flow_nl_per_day": flow.raw(),
            "flow_change_percent": (change * 10.0).round() / 10.0,
            "daily_dose_ng": dose_there.raw(),
            "hours_to_empty_there": hours(empty(flow)),
            "model_source": model.source,
            "notes": notes,
        }),
        &format!(
            "{drug} {target} at {nominal_flow} needs {conc}\n\
             {volume} lasts {} at the nominal flow\n\
             at {temperature:.1} °C and {altitude_m} m ({:.1} kPa): flow {flow} ({change:+.1} %), \
             dose {dose_there}; {volume} lasts {}",
            days(empty(nominal_flow)),
            f64::from(ambient) / 1000.0,
            days(empty(flow)),
        ),
        &notes,
    );
    Ok(ExitCode::SUCCESS)
}

/// 145 ‰ as "14.5".
fn permille_text(p: u16) -> String {
    let (whole, tenth) = (p / 10, p % 10);
    if tenth == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{tenth}")
    }
}

fn check_cmd(json: bool, path: &std::path::Path) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file =
        rxfile::parse(&text, file_models()).map_err(|e| format!("{}: {e}", path.display()))?;
    let findings = file.check();
    let list: Vec<Value> = findings
        .iter()
        .map(|f| json!({"severity": f.severity.to_string(), "message": f.to_string()}))
        .collect();
    let worst = findings.worst();
    let code = match worst {
        None => 0,
        Some(Severity::Soft) => 4,
        Some(Severity::Hard) => 3,
    };
    if json {
        emit(
            true,
            json!({
                "findings": list,
                "truncated": findings.truncated,
                "worst": worst.map(|w| w.to_string()),
            }),
            "",
            &[],
        );
    } else {
        for f in findings.iter() {
            let tag = match f.severity {
                Severity::Hard => "HARD",
                Severity::Soft => "soft",
            };
            println!("{tag}  {f}");
        }
        println!(
            "{}",
            match worst {
                None => "no findings: the prescription is within every limit".to_string(),
                Some(Severity::Soft) => format!(
                    "{} finding(s), soft only: the clinician must confirm each before programming",
                    findings.len()
                ),
                Some(Severity::Hard) => format!(
                    "{} finding(s), at least one hard: the prescription is rejected",
                    findings.len()
                ),
            }
        );
    }
    Ok(ExitCode::from(code))
}
