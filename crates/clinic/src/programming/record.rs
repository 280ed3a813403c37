//! A programming session's record: what the implant held when interrogated, every way
//! the clinic's record disagrees with it, the change intended, and what the implant
//! confirmed — and the rule that reconciles an unfinished session with what the implant
//! holds at the next interrogation. Plain data and pure functions: no I/O, no clock.
//!
//! ```text
//!  interrogated ──change──▶ reviewed ──send──▶ pending ──read back──▶ confirmed
//!        │                     │                  │
//!        └──── next interrogation closes it       └── next interrogation: the implant's
//!              (nothing was sent)                     program version and settings say
//!                                                     rolled_forward or not_applied
//! ```
//!
//! The pending row is written before anything is sent, so a link that drops, an implant
//! that restarts or a server that is killed at any step leaves either the intent
//! (reconciled later against the implant) or the confirmed state; never a record that
//! claims a program the implant does not run.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use thecal_programmer::describe::{contents_text, program_text};
use thecal_programmer::session::program_matches;
use thecal_pump::command::{Mode, Status};
use thecal_rx::check::Prescription as RxPrescription;
use thecal_rx::dose::Admixture;
use utoipa::ToSchema;

/// Session statuses, as stored in the row's status column.
pub mod status {
    /// Interrogated; nothing chosen yet.
    pub const INTERROGATED: &str = "interrogated";
    /// A change chosen and reviewed (old against new); nothing sent.
    pub const REVIEWED: &str = "reviewed";
    /// The intent recorded; the command is being sent (or was, and the outcome is not
    /// known yet).
    pub const PENDING: &str = "pending";
    /// Read back: the implant runs the change.
    pub const CONFIRMED: &str = "confirmed";
    /// Found applied at a later interrogation (the read-back never came).
    pub const ROLLED_FORWARD: &str = "rolled_forward";
    /// The implant does not run the change.
    pub const NOT_APPLIED: &str = "not_applied";
    /// Closed by a later interrogation with nothing sent.
    pub const CLOSED: &str = "closed";
}

/// One drug the implant's reservoir holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DrugHeld {
    /// Generic name.
    pub drug: String,
    /// Concentration, ng/mL.
    pub concentration_ng_ml: u64,
}

/// What the implant held when read: its status and program, in words and numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    /// Program version (increments with every accepted program or refill).
    pub program_version: u32,
    /// Therapy mode in words.
    pub mode: String,
    /// Delivering.
    pub running: bool,
    /// Reservoir volume, nL.
    pub reservoir_nl: u64,
    /// Reservoir volume in words.
    pub reservoir: String,
    /// The reservoir's contents in words.
    pub contents: String,
    /// The reservoir's drugs.
    pub drugs: Vec<DrugHeld>,
    /// Mean daily flow of the program, nL/day.
    pub flow_nl_day: u64,
    /// The program in words.
    pub program_text: String,
    /// Active alarms: (name, priority, acknowledged).
    pub alarms: Vec<AlarmHeld>,
    /// Battery life left at the present draw, whole days.
    pub battery_days: Option<u64>,
    /// The catheter the implant has recorded, in words.
    pub catheter: Option<String>,
    /// The catheter's length after trimming, mm.
    pub catheter_length_mm: Option<u16>,
    /// The implant's next refill (the earlier of its low-reservoir alarm and the fill's
    /// beyond-use date), by its clock.
    pub next_refill: Option<DateTime<Utc>>,
    /// The implant's wall clock is set.
    pub clock_set: bool,
    /// The program as thecal-rx types it, for exact comparison.
    #[schema(value_type = Object)]
    pub program: RxPrescription,
}

/// An alarm the implant holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlarmHeld {
    /// As the pump names it.
    pub kind: String,
    /// "high" or "low" priority, in the pump's words.
    pub priority: String,
    /// Acknowledged.
    pub acknowledged: bool,
}

/// The wall time of a pump instant: by the pump's clock when it is set, else by the
/// server's clock at the status's read (`host_ms`).
pub(crate) fn wall(s: &Status, t_ms: u64, host_ms: i64) -> Option<DateTime<Utc>> {
    let base = s
        .utc_ms
        .and_then(|u| i64::try_from(u).ok())
        .unwrap_or(host_ms);
    let now = i64::try_from(s.now.ms()).ok()?;
    let t = i64::try_from(t_ms).ok()?;
    DateTime::from_timestamp_millis(base.checked_add(t.checked_sub(now)?)?)
}

/// The therapy mode in words.
pub fn mode_words(m: &Mode) -> String {
    match m {
        Mode::Running => "running".into(),
        Mode::Stopped { reason, .. } => format!("stopped ({})", reason.name()),
        Mode::MriSuspended => "suspended for MRI (valve shut)".into(),
        Mode::EndOfService => "end of service (battery exhausted)".into(),
        Mode::Fault { code } => format!("fault ({})", code.name()),
    }
}

impl Snapshot {
    /// The snapshot of a status and program read at `host_ms` (server clock).
    pub fn of(s: &Status, p: &RxPrescription, host_ms: i64) -> Snapshot {
        let daily = p.schedule.mean_daily();
        Snapshot {
            program_version: s.program_version,
            mode: mode_words(&s.mode),
            running: matches!(s.mode, Mode::Running),
            reservoir_nl: s.reservoir.raw(),
            reservoir: s.reservoir.to_string(),
            contents: contents_text(&p.contents),
            drugs: p
                .contents
                .components()
                .iter()
                .map(|c| DrugHeld {
                    drug: c.drug.name().to_string(),
                    concentration_ng_ml: c.concentration.raw(),
                })
                .collect(),
            flow_nl_day: daily.raw(),
            program_text: program_text(p),
            alarms: s
                .alarms
                .iter()
                .map(|a| AlarmHeld {
                    kind: a.kind.name().to_string(),
                    priority: a.priority.to_string(),
                    acknowledged: a.acknowledged,
                })
                .collect(),
            battery_days: s.battery_life.map(|d| d.ms() / 86_400_000),
            catheter: s.catheter.map(|c| c.to_string()),
            catheter_length_mm: s.catheter.map(|c| c.length_mm),
            next_refill: s.next_refill.and_then(|t| wall(s, t.ms(), host_ms)),
            clock_set: s.clock_set,
            program: p.clone(),
        }
    }
}

/// What the clinic's record says, for the comparison with the implant.
#[derive(Debug, Clone, Default)]
pub struct ClinicView {
    /// The prescription in force: version, and thecal-rx's program.
    pub prescription: Option<(i64, RxPrescription)>,
    /// The catheter length the clinic recorded, cm.
    pub catheter_length_cm: Option<u16>,
    /// The clinic's projected elective replacement date.
    pub eri_projected: Option<NaiveDate>,
    /// Alarms the clinic has on record and not acknowledged, by the pump's name.
    pub open_alarms: Vec<String>,
    /// The beyond-use date of the last fill.
    pub beyond_use: Option<NaiveDate>,
    /// The drug and concentration of the last fill (ng/mL).
    pub last_fill: Option<(String, u64)>,
    /// The expected residual of an open refill visit, nL, with the pump's capacity.
    pub expected_residual: Option<(u64, u64)>,
    /// The program version the clinic last saw confirmed.
    pub confirmed_version: Option<u32>,
    /// Today, for the battery comparison.
    pub today: Option<NaiveDate>,
}

/// An alarm's name compared without case, spaces or underscores ("LowReservoir" is
/// "low reservoir").
fn same_alarm(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    norm(a) == norm(b)
}

/// Every way the clinic's record and the implant disagree, each named in words.
pub fn disagreements(c: &ClinicView, s: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    match &c.prescription {
        None => out.push(format!(
            "program: the clinic has no prescription on record; the implant runs {} at {} a day",
            s.contents,
            thecal_rx::Volume::from_raw(s.flow_nl_day)
        )),
        Some((version, rx)) => {
            if rx.contents != s.program.contents {
                out.push(format!(
                    "drug: prescription version {version} is {}; the implant's reservoir holds {}",
                    contents_text(&rx.contents),
                    s.contents
                ));
            }
            if rx.schedule != s.program.schedule || rx.patient_bolus != s.program.patient_bolus {
                out.push(format!(
                    "program: prescription version {version} gives {} a day; the implant runs {} a day",
                    thecal_rx::Volume::from_raw(rx.schedule.mean_daily().raw()),
                    thecal_rx::Volume::from_raw(s.flow_nl_day)
                ));
            }
        }
    }
    if let Some(v) = c.confirmed_version {
        if v != s.program_version {
            out.push(format!(
                "program version: the clinic last confirmed version {v}; the implant holds \
                 version {} (changed since, outside this clinic's record)",
                s.program_version
            ));
        }
    }
    if let Some((drug, conc)) = &c.last_fill {
        if !s
            .drugs
            .iter()
            .any(|d| d.drug == *drug && d.concentration_ng_ml == *conc)
        {
            out.push(format!(
                "drug: the last fill recorded {drug} {}; the implant holds {}",
                thecal_rx::Concentration::from_raw(*conc),
                s.contents
            ));
        }
    }
    if let Some((expected, capacity)) = c.expected_residual {
        // The clinic's own reconciliation threshold without a delivered volume: 5 % of
        // the capacity (thecal-rx's rule).
        let allowed = capacity / 20;
        if expected.abs_diff(s.reservoir_nl) > allowed {
            out.push(format!(
                "reservoir: the clinic expects {} now; the implant counts {}",
                thecal_rx::Volume::from_raw(expected),
                s.reservoir
            ));
        }
    }
    for a in &s.alarms {
        if !c.open_alarms.iter().any(|k| same_alarm(k, &a.kind)) {
            out.push(format!(
                "alarm: the implant holds {} ({} priority{}), not in the clinic's record",
                a.kind,
                a.priority,
                if a.acknowledged {
                    ", acknowledged"
                } else {
                    ", sounding"
                }
            ));
        }
    }
    for k in &c.open_alarms {
        if !s.alarms.iter().any(|a| same_alarm(&a.kind, k)) {
            out.push(format!(
                "alarm: the clinic's record has {k} open; the implant no longer holds it"
            ));
        }
    }
    match (c.catheter_length_cm, s.catheter_length_mm) {
        (Some(_), None) => out.push(
            "catheter: the implant has no catheter recorded (its dead volume is the model's \
             nominal one, and priming is refused)"
                .into(),
        ),
        (Some(cm), Some(mm)) if u32::from(cm) * 10 != u32::from(mm) => out.push(format!(
            "catheter: the clinic records {cm} cm; the implant records {} mm ({})",
            mm,
            s.catheter.as_deref().unwrap_or("")
        )),
        _ => {}
    }
    if let (Some(eri), Some(days), Some(today)) = (c.eri_projected, s.battery_days, c.today) {
        let end = today + chrono::Days::new(days);
        // The implant's projection is of the end of service; the clinic's of the
        // replacement indicator, which comes before it. Named when the implant says the
        // battery ends before the clinic's ERI date.
        if end < eri {
            out.push(format!(
                "battery: the implant projects {days} days left (to {end}); the clinic \
                 plans the replacement indicator for {eri}"
            ));
        }
    }
    if let (Some(bud), Some(next)) = (c.beyond_use, s.next_refill) {
        if next.date_naive() > bud {
            out.push(format!(
                "beyond-use date: the last fill's is {bud}; the implant's next refill is \
                 {} (it does not know the date: the refill must be before it)",
                next.date_naive()
            ));
        }
    }
    out
}

/// The change a session carries to the implant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
// Stored and sent once per session: the size of a program is not worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Intent {
    /// A new program: a prescription version of the clinic's record.
    Program {
        /// The prescription version's record id.
        prescription_id: i64,
        /// Its version.
        version: i64,
        /// The program sent (thecal-rx's).
        #[schema(value_type = Object)]
        program: RxPrescription,
        /// The physician's confirmation of the soft findings, sent with it.
        confirm_soft: Option<String>,
    },
    /// A refill: the refill visit's aspiration and fill.
    Refill {
        /// The refill visit's record id.
        visit_id: i64,
        /// Aspirated, nL.
        aspirated_nl: u64,
        /// Added, nL.
        added_nl: u64,
        /// What was injected.
        #[schema(value_type = Object)]
        contents: Admixture,
        /// Keep each drug's daily dose when the concentration changes.
        keep_dose: bool,
        /// Bridging of the old fluid in the catheter: "auto" or "none".
        bridge: String,
        /// The fill's beyond-use date.
        beyond_use: Option<NaiveDate>,
        /// The clinician's confirmation of the pump's soft findings or a flagged
        /// reconciliation.
        confirm: Option<String>,
    },
}

impl Intent {
    /// Whether the implant's state shows this intent applied: a program version past
    /// the one the session started from, and the program (or the refill's contents) the
    /// intent carried.
    pub fn applied(&self, before_version: u32, now: &Snapshot) -> bool {
        if now.program_version <= before_version {
            return false;
        }
        match self {
            Intent::Program { program, .. } => program_matches(program, &now.program),
            Intent::Refill { contents, .. } => now.program.contents == *contents,
        }
    }

    /// In words.
    pub fn words(&self) -> String {
        match self {
            Intent::Program { version, .. } => format!("program: prescription version {version}"),
            Intent::Refill {
                added_nl, contents, ..
            } => format!(
                "refill: {} of {}",
                thecal_rx::Volume::from_raw(*added_nl),
                contents_text(contents)
            ),
        }
    }
}

/// What went over the air for one step of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Air {
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Round trips (the handshake counts as one).
    pub round_trips: u32,
}

/// The outcome of the event log's import at a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogCheck {
    /// The chain verified against the implant's head.
    pub verified: bool,
    /// Entries added to the record.
    pub added: usize,
    /// In words (the break, when it failed).
    pub message: String,
}

/// A programming session as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// Record id.
    pub id: i64,
    /// The implant.
    pub implant_id: i64,
    /// Who interrogated.
    pub opened_by: String,
    /// When.
    pub opened_at: DateTime<Utc>,
    /// What the implant held at interrogation.
    pub before: Snapshot,
    /// Every disagreement between the clinic's record and the implant.
    pub disagreements: Vec<String>,
    /// Earlier sessions this interrogation reconciled, in words.
    pub reconciled: Vec<String>,
    /// The event log's import.
    pub log: LogCheck,
    /// The change chosen.
    pub intent: Option<Intent>,
    /// Old against new, in words.
    pub review: Vec<String>,
    /// Who sent it, and when (the pending row).
    pub sent_by: Option<String>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// What the implant confirmed (read back, or found at a later interrogation).
    pub confirmed: Option<Snapshot>,
    /// The outcome in words.
    pub outcome: Option<String>,
    /// Bytes and round trips on air, by step.
    pub air: Vec<(String, Air)>,
    /// The implant's status and fluid path at interrogation: what a look ahead starts
    /// from (absent in sessions interrogated before the fluid path was read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub twin: Option<super::forecast::TwinState>,
    /// The look ahead of the chosen change.
    #[serde(default)]
    pub lookahead: Option<super::forecast::LookaheadView>,
    /// The acknowledgement of the look ahead's warnings by name, when they needed one.
    #[serde(default)]
    pub acknowledged: Option<super::forecast::Acknowledgement>,
}

/// Old against new, in words, for a change on the implant's state.
pub fn review(before: &Snapshot, intent: &Intent) -> Vec<String> {
    match intent {
        Intent::Program {
            version, program, ..
        } => vec![
            format!(
                "OLD (running now, version {}):\n{}",
                before.program_version, before.program_text
            ),
            format!(
                "NEW (prescription version {version}):\n{}",
                program_text(program)
            ),
        ],
        Intent::Refill {
            aspirated_nl,
            added_nl,
            contents,
            keep_dose,
            bridge,
            beyond_use,
            ..
        } => vec![
            format!(
                "OLD: reservoir {} of {}; {}",
                before.reservoir, before.contents, before.mode
            ),
            format!(
                "NEW: aspirate {}, add {} of {}{}; bridging {bridge}{}",
                thecal_rx::Volume::from_raw(*aspirated_nl),
                thecal_rx::Volume::from_raw(*added_nl),
                contents_text(contents),
                if *keep_dose {
                    ", keeping each daily dose"
                } else {
                    ""
                },
                beyond_use.map_or(String::new(), |d| format!("; beyond-use date {d}"))
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thecal_rx::dose::Admixture;
    use thecal_rx::drug::DrugId;
    use thecal_rx::schedule::Schedule;
    use thecal_rx::{Concentration, Flow, Volume};

    fn program(flow_ul_day: u64, conc_mcg_ml: u64) -> RxPrescription {
        RxPrescription {
            contents: Admixture::single(
                DrugId::Baclofen,
                Concentration::from_raw(conc_mcg_ml * 1000),
            ),
            schedule: Schedule::continuous(Flow::from_raw(flow_ul_day * 1000)),
            patient_bolus: None,
            reservoir_volume: Volume::from_raw(20_000_000),
        }
    }

    fn snap(version: u32, p: RxPrescription) -> Snapshot {
        Snapshot {
            program_version: version,
            mode: "running".into(),
            running: true,
            reservoir_nl: 10_000_000,
            reservoir: "10 mL".into(),
            contents: contents_text(&p.contents),
            drugs: vec![DrugHeld {
                drug: "baclofen".into(),
                concentration_ng_ml: p.contents.components()[0].concentration.raw(),
            }],
            flow_nl_day: p.schedule.mean_daily().raw(),
            program_text: String::new(),
            alarms: vec![],
            battery_days: Some(1000),
            catheter: None,
            catheter_length_mm: Some(450),
            next_refill: None,
            clock_set: true,
            program: p,
        }
    }

    #[test]
    fn a_program_is_applied_only_with_a_later_version_and_the_same_settings_clinic_152() {
        let sent = program(250, 2000);
        let intent = Intent::Program {
            prescription_id: 1,
            version: 2,
            program: sent.clone(),
            confirm_soft: None,
        };
        // Version 3 → 4 with the program sent (the implant keeps its own reservoir).
        let mut held = sent.clone();
        held.reservoir_volume = Volume::from_raw(7);
        assert!(intent.applied(3, &snap(4, held)));
        // The version did not move: not applied, even with equal settings.
        assert!(!intent.applied(3, &snap(3, sent.clone())));
        // The version moved, but to another program: not applied.
        assert!(!intent.applied(3, &snap(4, program(300, 2000))));
    }

    #[test]
    fn a_refill_is_applied_with_a_later_version_and_the_contents_injected_clinic_152() {
        let intent = Intent::Refill {
            visit_id: 1,
            aspirated_nl: 0,
            added_nl: 18_000_000,
            contents: program(250, 1000).contents,
            keep_dose: true,
            bridge: "auto".into(),
            beyond_use: None,
            confirm: None,
        };
        assert!(intent.applied(5, &snap(6, program(500, 1000))));
        assert!(!intent.applied(5, &snap(6, program(250, 2000))));
        assert!(!intent.applied(6, &snap(6, program(500, 1000))));
    }

    #[test]
    fn every_disagreement_is_named_clinic_151() {
        let held = snap(4, program(250, 2000));
        let agree = ClinicView {
            prescription: Some((2, program(250, 2000))),
            catheter_length_cm: Some(45),
            confirmed_version: Some(4),
            ..ClinicView::default()
        };
        assert_eq!(disagreements(&agree, &held), Vec::<String>::new());
        // The same alarm, named as the pump or as a stored enum name.
        let mut low = held.clone();
        low.alarms.push(AlarmHeld {
            kind: "low reservoir".into(),
            priority: "low".into(),
            acknowledged: true,
        });
        let recorded = ClinicView {
            open_alarms: vec!["LowReservoir".into()],
            ..agree.clone()
        };
        assert_eq!(disagreements(&recorded, &low), Vec::<String>::new());
        let mut held2 = held.clone();
        held2.alarms.push(AlarmHeld {
            kind: "low reservoir".into(),
            priority: "low".into(),
            acknowledged: false,
        });
        held2.catheter_length_mm = Some(400);
        held2.next_refill = Some(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
        let view = ClinicView {
            prescription: Some((2, program(300, 1000))),
            catheter_length_cm: Some(45),
            confirmed_version: Some(3),
            open_alarms: vec!["empty reservoir".into()],
            beyond_use: Some(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()),
            last_fill: Some(("baclofen".into(), 1_000_000)),
            expected_residual: Some((4_000_000, 20_000_000)),
            eri_projected: Some(NaiveDate::from_ymd_opt(2030, 1, 1).unwrap()),
            today: Some(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()),
        };
        let d = disagreements(&view, &held2);
        let starts: Vec<&str> = d.iter().map(|s| s.split(':').next().unwrap()).collect();
        assert_eq!(
            starts,
            [
                "drug",
                "program",
                "program version",
                "drug",
                "reservoir",
                "alarm",
                "alarm",
                "catheter",
                "battery",
                "beyond-use date"
            ],
            "{d:#?}"
        );
        // The figures are the hand-worked ones: 10 mL held against 4 mL expected (beyond
        // 1 mL, 5 % of 20 mL); 1000 days from 2026-01-01 is 2028-09-27.
        assert!(
            d[4].contains("expects 4 mL") && d[4].contains("10 mL"),
            "{}",
            d[4]
        );
        assert!(d[8].contains("2028-09-27"), "{}", d[8]);
        assert!(
            d[7].contains("45 cm") && d[7].contains("400 mm"),
            "{}",
            d[7]
        );
    }
}
