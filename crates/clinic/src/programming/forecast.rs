//! The look ahead in the clinic (CLINIC-117 to CLINIC-119): when a change is chosen, the
//! digital twin ([`thecal_sim::lookahead`]) runs forward from what the implant answered
//! at interrogation (its status, its program and its fluid path) with the very command
//! the change sends, for 14 days; the session keeps what it predicts in words and
//! numbers beside the prescription, and a predicted dose excursion or new alarm must be
//! acknowledged by name before the change can be sent.
//!
//! The twin's hardware is the implant record's pump class and reservoir
//! ([`Device::profile_name`]); a model the twin does not know gives no forecast, which is
//! itself a warning to acknowledge (the clinician sends without a look ahead knowingly).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thecal_pump::command::{Command, Status};
use thecal_pump::profile::HardwareProfile;
use thecal_pump::reading::PathReading;
use thecal_rx::check::Prescription as RxPrescription;
use thecal_sim::lookahead::{self, Direction, Forecast, Interrogation, Options};
use utoipa::ToSchema;

use super::record::wall;
use crate::domain::device::Device;

/// The implant's answers a look ahead starts from, kept with the session (the program
/// is the session's `before.program`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinState {
    /// The status read at interrogation.
    pub status: Status,
    /// The fluid path read at interrogation.
    pub path: PathReading,
}

/// One drug's predicted dose over one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ForecastDose {
    /// The drug.
    pub drug: String,
    /// What the twin predicts leaves the catheter tip, ng.
    pub tip_ng: u64,
    /// What the program prescribes, ng.
    pub prescribed_ng: u64,
    /// The tip dose in words.
    pub tip: String,
    /// The prescribed dose in words.
    pub prescribed: String,
    /// The tip dose as a whole percentage of the prescribed (none when nothing is
    /// prescribed).
    pub percent: Option<u64>,
}

/// One day of the forecast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ForecastDay {
    /// Day number from the change, from 0.
    pub day: u32,
    /// The day's start by the implant's clock (or the server's when it is not set).
    pub starts: Option<DateTime<Utc>>,
    /// Each drug prescribed or reaching the tip.
    pub doses: Vec<ForecastDose>,
    /// The reservoir at the day's end, nL.
    pub reservoir_nl: u64,
    /// The reservoir at the day's end in words.
    pub reservoir: String,
}

/// What the look ahead predicts for a session's change, as the session keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LookaheadView {
    /// The hardware the twin ran (a thecal-pump model name).
    pub twin_model: Option<String>,
    /// Days looked ahead.
    pub days: u32,
    /// Day by day (empty when no forecast could be made).
    pub daily: Vec<ForecastDay>,
    /// The implant's next refill after the change, by its own rule.
    pub next_refill: Option<DateTime<Utc>>,
    /// New alarms the twin raised, in words with their time.
    pub alarms: Vec<String>,
    /// Dose excursions longer than allowed (and a forecast that could not be made), in
    /// words: each must be acknowledged before sending.
    pub warnings: Vec<String>,
    /// A warning or a new alarm: sending needs an acknowledgement by name.
    pub needs_acknowledgement: bool,
    /// Why no forecast could be made, if none was.
    pub unavailable: Option<String>,
    /// The wall time the look ahead took, µs (for the record; never a decision).
    pub took_us: u64,
}

/// Who acknowledged the look ahead's warnings, when, and what they read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Acknowledgement {
    /// The clinician (account name).
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The warnings and alarms acknowledged, as shown.
    pub read: Vec<String>,
}

impl LookaheadView {
    /// The warnings and alarms a clinician acknowledges, in the order shown.
    pub fn to_acknowledge(&self) -> Vec<String> {
        self.warnings
            .iter()
            .chain(self.alarms.iter())
            .cloned()
            .collect()
    }
}

fn pct(part: u64, whole: u64) -> Option<u64> {
    if whole == 0 {
        return None;
    }
    let p = u128::from(part)
        .saturating_mul(100)
        .saturating_add(u128::from(whole / 2))
        / u128::from(whole);
    u64::try_from(p).ok()
}

fn date_words(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "an unknown time".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// A view saying why no forecast was made: a warning to acknowledge.
fn unavailable(model: Option<String>, why: String) -> LookaheadView {
    LookaheadView {
        twin_model: model,
        days: 0,
        daily: vec![],
        next_refill: None,
        alarms: vec![],
        warnings: vec![format!(
            "NO LOOK AHEAD: {why}. Send only if you accept the change without a forecast \
             of the dose at the catheter tip."
        )],
        needs_acknowledgement: true,
        unavailable: Some(why),
        took_us: 0,
    }
}

/// Runs the look ahead of `change` on the implant of `device` from `state` and
/// `program` (read at interrogation; `host_ms` the server's clock then).
pub fn run(
    device: &Device,
    state: Option<&TwinState>,
    program: &RxPrescription,
    change: &Command,
    host_ms: i64,
) -> LookaheadView {
    let Some(model) = device.profile_name() else {
        return unavailable(
            None,
            format!(
                "the digital twin does not model the pump {} (it models SynchroMed-class and \
                 Prometra-class programmable pumps)",
                device.model
            ),
        );
    };
    let Some(profile) = HardwareProfile::by_model(model) else {
        return unavailable(
            Some(model.to_owned()),
            format!("no hardware profile {model}"),
        );
    };
    let Some(state) = state else {
        return unavailable(
            Some(model.to_owned()),
            "this session's interrogation did not read the fluid path; interrogate again"
                .to_owned(),
        );
    };
    let reads = Interrogation {
        status: state.status.clone(),
        program: program.clone(),
        path: state.path.clone(),
    };
    let started = std::time::Instant::now();
    let result = lookahead::look_ahead(
        profile,
        &reads,
        std::slice::from_ref(change),
        &Options::default(),
    );
    let took_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    match result {
        Ok(f) => LookaheadView {
            took_us,
            ..view(model, &state.status, &f, host_ms)
        },
        Err(e) => unavailable(
            Some(model.to_owned()),
            format!("the twin could not run: {e}"),
        ),
    }
}

/// The forecast in the session's words.
pub fn view(model: &str, status: &Status, f: &Forecast, host_ms: i64) -> LookaheadView {
    let at = |t: thecal_rx::Instant| wall(status, t.ms(), host_ms);
    let daily = f
        .days
        .iter()
        .map(|d| ForecastDay {
            day: d.day,
            starts: at(d.start),
            doses: d
                .doses
                .iter()
                .map(|x| ForecastDose {
                    drug: x.drug.to_string(),
                    tip_ng: x.tip.raw(),
                    prescribed_ng: x.prescribed.raw(),
                    tip: x.tip.to_string(),
                    prescribed: x.prescribed.to_string(),
                    percent: pct(x.tip.raw(), x.prescribed.raw()),
                })
                .collect(),
            reservoir_nl: d.reservoir_end.raw(),
            reservoir: d.reservoir_end.to_string(),
        })
        .collect();
    // Each kind once: when it is first and last raised, and how often.
    struct Raised {
        kind: thecal_pump::alarm::AlarmKind,
        times: usize,
        first: thecal_rx::Instant,
        last: thecal_rx::Instant,
    }
    let mut raised: Vec<Raised> = Vec::new();
    for a in f.alarms.iter().filter(|a| !a.already_active) {
        match raised.iter_mut().find(|r| r.kind == a.kind) {
            Some(r) => {
                r.times = r.times.saturating_add(1);
                r.last = a.at;
            }
            None => raised.push(Raised {
                kind: a.kind,
                times: 1,
                first: a.at,
                last: a.at,
            }),
        }
    }
    let day = |t: thecal_rx::Instant| t.saturating_since(f.start).ms() / 86_400_000;
    let alarms = raised
        .iter()
        .map(|r| {
            let first = format!(
                "ALARM predicted: {} at {} (day {})",
                r.kind,
                date_words(at(r.first)),
                day(r.first)
            );
            if r.times == 1 {
                first
            } else {
                format!(
                    "{first}, raised {} times, the last at {} (day {})",
                    r.times,
                    date_words(at(r.last)),
                    day(r.last)
                )
            }
        })
        .collect();
    let band = Options::default();
    let warnings = f
        .excursions
        .iter()
        .map(|e| {
            let hours = e.duration().ms() as f64 / 3_600_000.0;
            format!(
                "{} at the catheter tip {} for {hours:.1} h from {} to {}: {:.1} % of the \
                 prescribed dose (the allowed band is {:.0} % to {:.0} % for at most {} h)",
                e.drug,
                match e.direction {
                    Direction::Low => "TOO LOW",
                    Direction::High => "TOO HIGH",
                },
                date_words(at(e.from)),
                date_words(at(e.to)),
                e.fraction * 100.0,
                band.low * 100.0,
                band.high * 100.0,
                band.longer_than.ms() / 3_600_000,
            )
        })
        .collect();
    LookaheadView {
        twin_model: Some(model.to_owned()),
        days: u32::try_from(f.days.len()).unwrap_or(u32::MAX),
        daily,
        next_refill: f.next_refill.and_then(at),
        alarms,
        warnings,
        needs_acknowledgement: f.needs_acknowledgement(),
        unavailable: None,
        took_us: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_to_the_nearest_whole_and_never_divide_by_zero_clinic_117() {
        assert_eq!(pct(75, 300), Some(25));
        assert_eq!(pct(2, 3), Some(67));
        assert_eq!(pct(1, 0), None);
        assert_eq!(pct(u64::MAX, 1), None);
    }

    #[test]
    fn an_unknown_pump_gives_no_forecast_and_a_warning_to_acknowledge_clinic_118() {
        let d = Device::of_implant("IsoMed 8472-35", thecal_rx::Volume::from_ul(35_000), None);
        let v = unavailable(None, "why".into());
        assert!(v.needs_acknowledgement && v.daily.is_empty());
        assert_eq!(d.profile_name(), None);
    }
}
