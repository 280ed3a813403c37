//! What a simulation run produces: the timeline, the alarms, the totals and the verdict
//! on each expectation. Reports ([`crate::report`]) are written from this alone.

use serde::Serialize;

/// One row of the timeline, taken at a fixed sampling interval. Floating point is fine
/// here: this is the simulator's view of the physics, never a dose the pump acts on.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Time since the start of the run, hours.
    pub t_h: f64,
    /// True reservoir volume, mL.
    pub reservoir_ml: f64,
    /// The pump's own estimate of the reservoir, mL (NaN for a constant-rate pump).
    pub reservoir_expected_ml: f64,
    /// Prescribed dose rate of the primary drug as the pump currently runs it, mcg/day
    /// (zero while the pump is stopped, at end of service or in a fault).
    pub prescribed_mcg_per_day: f64,
    /// The clinician's intended dose rate of the primary drug, mcg/day: the program at
    /// the patient's true local time, whether or not the pump runs it (zero only while a
    /// clinician has stopped the pump; SIM-067).
    pub intended_mcg_per_day: f64,
    /// Dose of the primary drug that reached the CSF over the last interval, as mcg/day.
    pub tip_mcg_per_day: f64,
    /// True flow out of the pump over the last interval, mL/day.
    pub flow_ml_per_day: f64,
    /// CSF concentration of the primary drug, ng/mL.
    pub csf_ng_per_ml: f64,
    /// Systemic (plasma) concentration of the primary drug, ng/mL.
    pub systemic_ng_per_ml: f64,
    /// Symptom control, 0 (none) to 1 (full).
    pub effect: f64,
    /// Baclofen withdrawal risk, 0 to 1.
    pub withdrawal_risk: f64,
    /// Overdose (respiratory depression) risk, 0 to 1: for morphine and hydromorphone the
    /// ventilatory depression of the concentration model (SIM-071).
    pub overdose_risk: f64,
    /// Battery remaining, percent (NaN without a battery).
    pub battery_pct: f64,
    /// Opioid withdrawal risk, 0 to 1 (SIM-070).
    pub opioid_withdrawal_risk: f64,
    /// Clonidine withdrawal (rebound hypertension) risk, 0 to 1 (SIM-070).
    pub clonidine_withdrawal_risk: f64,
    /// Opioid tolerance factor `T` of the respiratory-depression model, 1 for a naive
    /// patient (SIM-071; NaN without morphine or hydromorphone).
    pub opioid_tolerance: f64,
}

/// An alarm event.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmMark {
    /// Time, hours.
    pub t_h: f64,
    /// Alarm kind (its name).
    pub kind: String,
    /// IEC 60601-1-8 priority.
    pub priority: String,
    /// `raised`, `cleared` or `tone`.
    pub what: String,
}

/// Something that happened, for the report's event list.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    /// Time, hours.
    pub t_h: f64,
    /// What happened.
    pub text: String,
}

/// Totals of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Primary drug.
    pub drug: String,
    /// Prescribed over the run, mcg.
    pub prescribed_mcg: f64,
    /// The clinician intended over the run, mcg (SIM-067).
    pub intended_mcg: f64,
    /// Reached the CSF, mcg.
    pub delivered_tip_mcg: f64,
    /// Went to tissue instead (leak, pocket fill), mcg.
    pub to_tissue_mcg: f64,
    /// Strokes moved.
    pub strokes: u64,
    /// Wake-ups of the pump core: timer wakes, commands and battery readings (a
    /// stroke's completion report arrives while the controller is awake for the stroke,
    /// so, as in the core's energy model, it is not a wake-up).
    pub pump_wakes: u64,
    /// Limiter vetoes logged.
    pub limiter_vetoes: u64,
    /// Refills done.
    pub refills: u64,
    /// Commands refused by the pump.
    pub commands_refused: u64,
    /// Patient bolus presses, and how many were given.
    pub bolus_presses: u64,
    /// Patient boluses given.
    pub boluses_given: u64,
    /// Battery state at the end (`ok`, `eri`, `eos`, `none`).
    pub battery_state: String,
    /// Day of the elective replacement indicator, if reached.
    pub eri_day: Option<f64>,
    /// Day of end of service, if reached.
    pub eos_day: Option<f64>,
    /// Day the elective replacement indicator is projected for, from the pump's own
    /// battery projection at the end of the run (or when it was reached).
    pub projected_eri_day: Option<f64>,
    /// Low-reservoir alarms raised.
    pub low_reservoir_alarms: u64,
    /// Volume the pump reports as missed, mL.
    pub missed_ml: f64,
    /// Events the engine processed.
    pub engine_events: u64,
    /// When each patient bolus started, hours (SIM-069).
    #[serde(skip)]
    pub patient_bolus_h: Vec<f64>,
}

/// The verdict on one expectation.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The expectation, as written in the scenario.
    pub expectation: String,
    /// Whether it held.
    pub passed: bool,
    /// What was found.
    pub detail: String,
}

/// The twin pump's event log as its core emitted it, from the implant on: the set-up
/// (catheter record, first fill, program, start, priming, clock) and every later entry,
/// hash-chained by thecal-pump, for a clinic to import and verify.
#[derive(Debug, Clone, Default)]
pub struct PumpLog {
    /// The entries, oldest first, each with the true time it was emitted (ms since the
    /// start of the run).
    pub entries: Vec<(u64, thecal_pump::log::LogEntry)>,
    /// The core's event-chain head at the end of the run (next sequence number and last
    /// hash).
    pub head: thecal_pump::log::LogChain,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// Simulated duration, hours.
    pub duration_h: f64,
    /// Timeline.
    pub samples: Vec<Sample>,
    /// Alarms.
    pub alarms: Vec<AlarmMark>,
    /// Notable events (refills, commands, faults).
    pub notes: Vec<Note>,
    /// Totals.
    pub totals: Totals,
    /// Verdicts.
    pub verdicts: Vec<Verdict>,
    /// The telemetry, in a scenario with a radio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub radio: Option<RadioTotals>,
}

impl RunResult {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.passed)
    }
}

/// The telemetry of a run with a radio (`crate::radio`): the implant radio's energy and
/// frames, the remote's boluses over the link, and what the attackers sent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RadioTotals {
    /// Energy the implant radio spent (received, sent, computed), µJ.
    pub energy_uj: u64,
    /// Of which on frames it rejected, µJ.
    pub rejected_uj: u64,
    /// The daily energy budget, µJ.
    pub daily_budget_uj: u64,
    /// Energy spent in the costliest day of the run (days from the start), µJ.
    pub peak_day_uj: u64,
    /// The same, as a percentage of the daily budget.
    pub peak_day_pct_of_budget: f64,
    /// The run's energy per day on average, as a percentage of the daily budget.
    pub mean_day_pct_of_budget: f64,
    /// Energy spent in each day of the run, µJ.
    pub daily_uj: Vec<u64>,
    /// Frames that arrived at the implant's antenna (heard or not; jammed ones never do).
    pub frames_sent: u64,
    /// Frames the receiver heard.
    pub frames_received: u64,
    /// Frames it rejected.
    pub frames_rejected: u64,
    /// Frames destroyed by jamming (either way).
    pub frames_jammed: u64,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Denials written to the pump's event log.
    pub denials_logged: u64,
    /// How many times the daily budget put the radio to sleep.
    pub slept: u64,
    /// When it first did, hours.
    pub first_sleep_h: Option<f64>,
    /// Whether it was asleep at the end.
    pub asleep_at_end: bool,
    /// Programmer-wand wakes.
    pub wand_wakes: u64,
    /// Attacks started (floods and replays).
    pub attacks: u64,
    /// Frames (or bolus requests) the attackers sent, heard or not.
    pub attack_frames_sent: u64,
    /// Of which sent while the receiver listened.
    pub attack_frames_heard: u64,
    /// Patient presses sent over the link.
    pub link_presses: u64,
    /// Presses that got no answer.
    pub link_failures: u64,
    /// Boluses the pump accepted over the link (the patient's and a stolen remote's).
    pub link_boluses: u64,
    /// Energy the implant radio spent on the attackers' frames (floods, replays, a
    /// stolen device's requests), µJ.
    pub attack_uj: u64,
    /// Denials written to the pump's event log, by their logged reason code.
    pub denial_reasons: std::collections::BTreeMap<u8, u64>,
    /// The firmware update, in a scenario with a `[firmware]` table (SIM-063).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<FirmwareTotals>,
    /// Cumulative energy (hours, J) at each change, for the timeline and the plot.
    #[serde(skip)]
    pub energy_series: Vec<(f64, f64)>,
}

/// The implant's firmware in a scenario with a `[firmware]` table (SIM-063): what runs
/// at the end (the updater's own status) and what the pump's event log says happened.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FirmwareTotals {
    /// The version the implant runs at the end.
    pub running: String,
    /// Its slot.
    pub slot: String,
    /// The implant's security counter at the end.
    pub security_counter: u32,
    /// Updates the clinician's programmer sent.
    pub updates_sent: u64,
    /// Chunk frames they took.
    pub chunk_frames: u64,
    /// The radio energy of those updates, µJ.
    pub update_uj: u64,
    /// Images that confirmed themselves after their trial start (from the pump's log).
    pub confirmed: u64,
    /// Update steps the updater refused (from the pump's log).
    pub refused: Vec<FirmwareRefusal>,
}

/// An update step refused, as the pump's event log has it.
#[derive(Debug, Clone, Serialize)]
pub struct FirmwareRefusal {
    /// When, hours.
    pub t_h: f64,
    /// The step's code (1 begin, 2 chunk, 3 verify, 4 mark for trial, …).
    pub step: u8,
    /// The updater's refusal code.
    pub code: u8,
    /// The code in words.
    pub words: String,
}
