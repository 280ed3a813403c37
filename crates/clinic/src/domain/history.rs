//! An implant's history beyond refills: alarm acknowledgements (who, when, what was done),
//! surgical revisions (catheter revision, pump replacement, explant; CLINIC.md §2.2, §2.6)
//! and stored replacement plans (§2.6, §5).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::events::Alarm;
use super::records::{Explant, Implant, NewImplant, Revision};
use super::replacement::{self, Urgency};
use super::{FieldError, text};

// ---------------------------------------------------------------- alarm acknowledgement

/// An alarm's acknowledgement as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Acknowledgement {
    /// Who acknowledged it (the signed-in user).
    pub by: String,
    /// When it was acknowledged.
    pub at: DateTime<Utc>,
    /// What was done, 1–2000 characters.
    pub action: String,
}

/// An acknowledgement as entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AcknowledgeAlarm {
    /// What was done (e.g. "refilled 20 mL; alarm cleared on interrogation"), 1–2000
    /// characters.
    pub action: String,
    /// When it was acknowledged (default now); not before the alarm, not in the future.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// Acknowledges an alarm: once, by the signed-in user, with what was done.
///
/// # Errors
/// `step` when acknowledged already; `at` before the alarm or in the future; `action`
/// empty or too long.
pub fn acknowledge(
    alarm: &mut Alarm,
    a: AcknowledgeAlarm,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), FieldError> {
    if let Some(done) = &alarm.acknowledgement {
        return Err(FieldError::new(
            "step",
            format!(
                "the alarm was acknowledged already by {} at {}",
                done.by, done.at
            ),
        ));
    }
    let at = a.at.unwrap_or(now);
    if at < alarm.details.raised_at || at > now {
        return Err(FieldError::new(
            "at",
            format!(
                "must be between the alarm ({}) and now ({now})",
                alarm.details.raised_at
            ),
        ));
    }
    alarm.acknowledgement = Some(Acknowledgement {
        by: by.to_owned(),
        at,
        action: text("action", &a.action, 1, 2000)?,
    });
    Ok(())
}

// ---------------------------------------------------------------- revisions

/// What a revision changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RevisionChange {
    /// The catheter was revised: its new model, length after trimming and tip level.
    CatheterRevision {
        /// New catheter model, 1–100 characters.
        catheter_model: String,
        /// Length after trimming, whole centimetres 1–150.
        catheter_length_cm: u16,
        /// New tip level, e.g. "T10", 1–20 characters.
        tip_level: String,
    },
    /// The pump was replaced: the new pump becomes a new implant record (the catheter
    /// kept as it is), the old one is closed as replaced.
    PumpReplacement {
        /// The new pump.
        new_pump: NewPumpDetails,
    },
    /// The pump was removed.
    Explant,
}

/// The new pump of a replacement (the catheter is the current one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewPumpDetails {
    /// Maker and model, 1–100 characters.
    pub pump_model: String,
    /// Serial number (unique), 1–64 characters.
    pub serial: String,
    /// UDI, up to 200 characters.
    #[serde(default)]
    pub udi: String,
    /// Reservoir, e.g. "20 mL".
    pub reservoir: String,
    /// Worst-case delivery margin, per mille 0–300.
    pub accuracy_margin_permille: u16,
    /// Low-reservoir alarm, e.g. "2 mL".
    pub low_alarm: String,
    /// Projected ERI of the new pump.
    #[serde(default)]
    pub eri_projected: Option<NaiveDate>,
}

/// A revision as entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewRevision {
    /// Date of surgery: not before the implant, not after today.
    pub on: NaiveDate,
    /// Why, 1–2000 characters.
    pub reason: String,
    /// What changed.
    pub change: RevisionChange,
}

/// The catheter before a revision, kept in the revision record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CatheterState {
    /// Model.
    pub catheter_model: String,
    /// Length, cm.
    pub catheter_length_cm: u16,
    /// Tip level.
    pub tip_level: String,
}

/// A stored revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevisionRecord {
    /// Record id.
    pub id: i64,
    /// The implant revised.
    pub implant_id: i64,
    /// As entered (checked).
    #[serde(flatten)]
    pub revision: NewRevision,
    /// The catheter before the revision.
    pub catheter_before: CatheterState,
    /// Recorded by.
    pub recorded_by: String,
}

/// What a revision does to the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionOutcome {
    /// The implant after the revision.
    pub implant: Implant,
    /// Its status: active, explanted or replaced.
    pub status: &'static str,
    /// The new pump's implant record, for a replacement (checked as any new implant).
    pub new_implant: Option<NewImplant>,
    /// The revision record to store.
    pub record: RevisionRecord,
}

fn catheter(i: &Implant) -> CatheterState {
    CatheterState {
        catheter_model: i.details.catheter_model.clone(),
        catheter_length_cm: i.details.catheter_length_cm,
        tip_level: i.details.tip_level.clone(),
    }
}

/// Applies a revision to an implant.
///
/// # Errors
/// `state` when the implant is no longer in place; `on` outside the implant date and
/// today; the field of the change that is wrong.
pub fn revise(
    imp: &Implant,
    r: NewRevision,
    by: &str,
    today: NaiveDate,
) -> Result<RevisionOutcome, FieldError> {
    if imp.explant.is_some() {
        return Err(FieldError::new(
            "state",
            "the pump was explanted or replaced; revise the implant now in place",
        ));
    }
    if r.on < imp.details.implanted_on || r.on > today {
        return Err(FieldError::new(
            "on",
            format!(
                "must be between the implant date ({}) and today ({today})",
                imp.details.implanted_on
            ),
        ));
    }
    let reason = text("reason", &r.reason, 1, 2000)?;
    let before = catheter(imp);
    let mut after = imp.clone();
    let (change, status, new_implant, what) = match r.change {
        RevisionChange::CatheterRevision {
            catheter_model,
            catheter_length_cm,
            tip_level,
        } => {
            if !(1..=150).contains(&catheter_length_cm) {
                return Err(FieldError::new(
                    "change.catheter_length_cm",
                    "must be a whole number of centimetres from 1 to 150",
                ));
            }
            let model = text("change.catheter_model", &catheter_model, 1, 100)?;
            let tip = text("change.tip_level", &tip_level, 1, 20)?;
            let what = format!(
                "catheter revision: {} {} cm tip {} → {model} {catheter_length_cm} cm tip {tip}",
                before.catheter_model, before.catheter_length_cm, before.tip_level
            );
            after.details.catheter_model = model.clone();
            after.details.catheter_length_cm = catheter_length_cm;
            after.details.tip_level = tip.clone();
            (
                RevisionChange::CatheterRevision {
                    catheter_model: model,
                    catheter_length_cm,
                    tip_level: tip,
                },
                "active",
                None,
                what,
            )
        }
        RevisionChange::PumpReplacement { new_pump } => {
            let n = NewImplant {
                pump_model: new_pump.pump_model.clone(),
                serial: new_pump.serial.clone(),
                udi: new_pump.udi.clone(),
                reservoir: new_pump.reservoir.clone(),
                implanted_on: r.on,
                pocket: imp.details.pocket,
                catheter_model: imp.details.catheter_model.clone(),
                catheter_length_cm: imp.details.catheter_length_cm,
                tip_level: imp.details.tip_level.clone(),
                accuracy_margin_permille: new_pump.accuracy_margin_permille,
                low_alarm: new_pump.low_alarm.clone(),
                eri_projected: new_pump.eri_projected,
            };
            let (checked, _, _) = n
                .validate(today)
                .map_err(|e| FieldError::new(format!("change.new_pump.{}", e.field), e.message))?;
            if checked.serial == imp.details.serial {
                return Err(FieldError::new(
                    "change.new_pump.serial",
                    "must differ from the replaced pump's serial",
                ));
            }
            let what = format!(
                "pump replaced: {} {} → {} {}",
                imp.details.pump_model, imp.details.serial, checked.pump_model, checked.serial
            );
            after.explant = Some(Explant {
                on: r.on,
                reason: format!("replaced by {}: {reason}", checked.serial),
            });
            let new_pump = NewPumpDetails {
                pump_model: checked.pump_model.clone(),
                serial: checked.serial.clone(),
                udi: checked.udi.clone(),
                reservoir: checked.reservoir.clone(),
                accuracy_margin_permille: checked.accuracy_margin_permille,
                low_alarm: checked.low_alarm.clone(),
                eri_projected: checked.eri_projected,
            };
            (
                RevisionChange::PumpReplacement { new_pump },
                "replaced",
                Some(checked),
                what,
            )
        }
        RevisionChange::Explant => {
            after.explant = Some(Explant {
                on: r.on,
                reason: reason.clone(),
            });
            (
                RevisionChange::Explant,
                "explanted",
                None,
                "explant".to_owned(),
            )
        }
    };
    after.revisions.push(Revision {
        on: r.on,
        what: format!("{what} ({reason})"),
    });
    Ok(RevisionOutcome {
        implant: after,
        status,
        new_implant,
        record: RevisionRecord {
            id: 0,
            implant_id: imp.id,
            revision: NewRevision {
                on: r.on,
                reason,
                change,
            },
            catheter_before: before,
            recorded_by: by.to_owned(),
        },
    })
}

// ---------------------------------------------------------------- replacement plans

/// A replacement plan's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    /// Planned: a date chosen, surgery not yet booked.
    Planned,
    /// Surgery booked.
    Scheduled,
    /// Replaced.
    Done,
}

impl PlanStatus {
    /// The stored status name.
    pub const fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Planned => "planned",
            PlanStatus::Scheduled => "scheduled",
            PlanStatus::Done => "done",
        }
    }
}

/// A plan as entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewReplacementPlan {
    /// The planned surgery date: from today, and before the projected stop (ERI + 90 days).
    pub planned_on: NaiveDate,
    /// Notes (bridging, catheter to revise), up to 2000 characters.
    #[serde(default)]
    pub notes: String,
}

/// A status change of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanStatusChange {
    /// The new status: planned → scheduled → done (or planned → done).
    pub status: PlanStatus,
    /// A new planned date, same limits as at creation.
    #[serde(default)]
    pub planned_on: Option<NaiveDate>,
}

/// A stored replacement plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReplacementPlanRecord {
    /// Record id.
    pub id: i64,
    /// Implant.
    pub implant_id: i64,
    /// The projected ERI the plan was made from.
    pub eri: NaiveDate,
    /// The projected stop (ERI + 90 days): the surgery must be before it.
    pub replace_before: NaiveDate,
    /// The planned surgery date.
    pub planned_on: NaiveDate,
    /// Status.
    pub status: PlanStatus,
    /// Notes.
    pub notes: String,
    /// Planned by.
    pub planned_by: String,
}

/// A stored plan as listed: with today's urgency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ListedPlan {
    /// The plan.
    #[serde(flatten)]
    pub plan: ReplacementPlanRecord,
    /// Urgency today, from the projected ERI.
    pub urgency: Urgency,
    /// Days from today to the projected stop (negative: past).
    pub days_to_stop: i64,
}

fn check_date(
    planned_on: NaiveDate,
    replace_before: NaiveDate,
    today: NaiveDate,
) -> Result<(), FieldError> {
    if planned_on < today || planned_on >= replace_before {
        return Err(FieldError::new(
            "planned_on",
            format!(
                "must be from today ({today}) and before the projected stop {replace_before} \
                 (ERI + {} days)",
                replacement::ERI_TO_STOP_DAYS
            ),
        ));
    }
    Ok(())
}

/// Makes a plan from the implant's projected ERI.
///
/// # Errors
/// `eri_projected` when the implant has no projection; `planned_on` outside today ..
/// the projected stop.
pub fn new_plan(
    imp: &Implant,
    n: NewReplacementPlan,
    by: &str,
    today: NaiveDate,
) -> Result<ReplacementPlanRecord, FieldError> {
    let Some(eri) = imp.details.eri_projected else {
        return Err(FieldError::new(
            "eri_projected",
            "the implant has no projected ERI; a plan needs the battery projection",
        ));
    };
    let p = replacement::plan(imp.id, eri, today);
    check_date(n.planned_on, p.replace_before, today)?;
    Ok(ReplacementPlanRecord {
        id: 0,
        implant_id: imp.id,
        eri,
        replace_before: p.replace_before,
        planned_on: n.planned_on,
        status: PlanStatus::Planned,
        notes: text("notes", &n.notes, 0, 2000)?,
        planned_by: by.to_owned(),
    })
}

/// Moves a plan on: planned → scheduled → done, or planned → done; never back.
///
/// # Errors
/// `status` for a step back or a repeat; `planned_on` outside today .. the stop.
pub fn change_status(
    p: &mut ReplacementPlanRecord,
    c: PlanStatusChange,
    today: NaiveDate,
) -> Result<(), FieldError> {
    use PlanStatus::*;
    let ok = matches!(
        (p.status, c.status),
        (Planned, Scheduled) | (Planned, Done) | (Scheduled, Done)
    );
    if !ok {
        return Err(FieldError::new(
            "status",
            format!(
                "cannot move a {} plan to {}; allowed: planned → scheduled → done",
                p.status.as_str(),
                c.status.as_str()
            ),
        ));
    }
    if let Some(d) = c.planned_on {
        check_date(d, p.replace_before, today)?;
        p.planned_on = d;
    }
    p.status = c.status;
    Ok(())
}

/// Lists plans with today's urgency, most urgent first (done plans last).
pub fn list(plans: Vec<ReplacementPlanRecord>, today: NaiveDate) -> Vec<ListedPlan> {
    let mut out: Vec<ListedPlan> = plans
        .into_iter()
        .map(|plan| {
            let p = replacement::plan(plan.implant_id, plan.eri, today);
            ListedPlan {
                plan,
                urgency: p.urgency,
                days_to_stop: p.days_to_stop,
            }
        })
        .collect();
    out.sort_by_key(|l| {
        (
            l.plan.status == PlanStatus::Done,
            l.urgency,
            l.plan.replace_before,
            l.plan.id,
        )
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{AlarmPriority, NewAlarm};
    use crate::domain::records::Pocket;
    use chrono::TimeZone;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn implant(eri: Option<&str>) -> Implant {
        Implant {
            id: 7,
            patient_id: 1,
            details: NewImplant {
                pump_model: "SynchroMed II 8637-20".into(),
                serial: "NGP100".into(),
                udi: String::new(),
                reservoir: "20 mL".into(),
                implanted_on: d("2020-03-01"),
                pocket: Pocket::Subfascial,
                catheter_model: "8709SC".into(),
                catheter_length_cm: 60,
                tip_level: "T10".into(),
                accuracy_margin_permille: 145,
                low_alarm: "2 mL".into(),
                eri_projected: eri.map(d),
            },
            capacity_nl: 20_000_000,
            low_alarm_nl: 2_000_000,
            revisions: vec![],
            explant: None,
        }
    }

    #[test]
    fn an_alarm_is_acknowledged_once_with_who_when_and_what_clinic_061() {
        let raised = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
        let mut a = Alarm {
            id: 1,
            implant_id: 7,
            details: NewAlarm {
                kind: "low reservoir".into(),
                priority: AlarmPriority::Low,
                raised_at: raised,
                action: String::new(),
            },
            recorded_by: "rn".into(),
            acknowledgement: None,
        };
        let early = AcknowledgeAlarm {
            action: "refilled".into(),
            at: Some(Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()),
        };
        assert_eq!(
            acknowledge(&mut a, early, "rn", now).unwrap_err().field,
            "at"
        );
        let empty = AcknowledgeAlarm {
            action: " ".into(),
            at: None,
        };
        assert_eq!(
            acknowledge(&mut a, empty, "rn", now).unwrap_err().field,
            "action"
        );
        let ok = AcknowledgeAlarm {
            action: "refilled 20 mL; alarm cleared".into(),
            at: None,
        };
        acknowledge(&mut a, ok.clone(), "nurse1", now).unwrap();
        let ack = a.acknowledgement.clone().unwrap();
        assert_eq!((ack.by.as_str(), ack.at), ("nurse1", now));
        assert_eq!(ack.action, "refilled 20 mL; alarm cleared");
        assert_eq!(
            acknowledge(&mut a, ok, "rn", now).unwrap_err().field,
            "step"
        );
    }

    #[test]
    fn a_catheter_revision_keeps_the_catheter_before_and_after_clinic_062() {
        let today = d("2026-12-03");
        let r = NewRevision {
            on: d("2026-11-20"),
            reason: "catheter fracture at the anchor".into(),
            change: RevisionChange::CatheterRevision {
                catheter_model: "8780".into(),
                catheter_length_cm: 52,
                tip_level: "T8".into(),
            },
        };
        let out = revise(&implant(None), r.clone(), "dr", today).unwrap();
        assert_eq!(out.status, "active");
        assert_eq!(out.implant.details.catheter_length_cm, 52);
        assert_eq!(out.implant.details.tip_level, "T8");
        assert_eq!(out.record.catheter_before.catheter_length_cm, 60);
        assert_eq!(out.record.catheter_before.tip_level, "T10");
        assert_eq!(
            out.implant.revisions[0].what,
            "catheter revision: 8709SC 60 cm tip T10 → 8780 52 cm tip T8 (catheter fracture at the anchor)"
        );
        let long = NewRevision {
            change: RevisionChange::CatheterRevision {
                catheter_model: "8780".into(),
                catheter_length_cm: 151,
                tip_level: "T8".into(),
            },
            ..r.clone()
        };
        assert_eq!(
            revise(&implant(None), long, "dr", today).unwrap_err().field,
            "change.catheter_length_cm"
        );
        let before_implant = NewRevision {
            on: d("2020-02-29"),
            ..r
        };
        assert_eq!(
            revise(&implant(None), before_implant, "dr", today)
                .unwrap_err()
                .field,
            "on"
        );
    }

    #[test]
    fn a_pump_replacement_closes_the_old_pump_and_opens_the_new_clinic_062() {
        let today = d("2026-12-03");
        let r = NewRevision {
            on: d("2026-12-01"),
            reason: "ERI".into(),
            change: RevisionChange::PumpReplacement {
                new_pump: NewPumpDetails {
                    pump_model: "SynchroMed II 8637-40".into(),
                    serial: "NGP200".into(),
                    udi: String::new(),
                    reservoir: "40 mL".into(),
                    accuracy_margin_permille: 145,
                    low_alarm: "2 mL".into(),
                    eri_projected: Some(d("2033-12-01")),
                },
            },
        };
        let out = revise(&implant(Some("2027-01-01")), r.clone(), "dr", today).unwrap();
        assert_eq!(out.status, "replaced");
        let n = out.new_implant.unwrap();
        assert_eq!(
            (n.serial.as_str(), n.implanted_on),
            ("NGP200", d("2026-12-01"))
        );
        // The catheter is kept.
        assert_eq!((n.catheter_length_cm, n.tip_level.as_str()), (60, "T10"));
        assert!(out.implant.explant.is_some());
        // Once replaced, no further revision of the old pump.
        assert_eq!(
            revise(&out.implant, r.clone(), "dr", today)
                .unwrap_err()
                .field,
            "state"
        );
        let same_serial = NewRevision {
            change: RevisionChange::PumpReplacement {
                new_pump: NewPumpDetails {
                    serial: "NGP100".into(),
                    ..match r.change {
                        RevisionChange::PumpReplacement { new_pump } => new_pump,
                        _ => unreachable!(),
                    }
                },
            },
            ..r
        };
        assert_eq!(
            revise(&implant(None), same_serial, "dr", today)
                .unwrap_err()
                .field,
            "change.new_pump.serial"
        );
    }

    #[test]
    fn a_plan_is_dated_before_eri_plus_90_days_and_moves_forward_clinic_063() {
        let today = d("2026-12-03");
        let imp = implant(Some("2027-01-01"));
        // ERI 2027-01-01 + 90 d = 2027-04-01: the last allowed date is 2027-03-31.
        let late = NewReplacementPlan {
            planned_on: d("2027-04-01"),
            notes: String::new(),
        };
        let e = new_plan(&imp, late, "dr", today).unwrap_err();
        assert_eq!(e.field, "planned_on");
        assert!(e.message.contains("2027-04-01"), "{}", e.message);
        let past = NewReplacementPlan {
            planned_on: d("2026-12-02"),
            notes: String::new(),
        };
        assert_eq!(
            new_plan(&imp, past, "dr", today).unwrap_err().field,
            "planned_on"
        );
        let ok = NewReplacementPlan {
            planned_on: d("2027-03-31"),
            notes: "oral baclofen bridge".into(),
        };
        let mut p = new_plan(&imp, ok.clone(), "dr", today).unwrap();
        assert_eq!(p.replace_before, d("2027-04-01"));
        assert_eq!(p.status, PlanStatus::Planned);
        assert_eq!(
            new_plan(&implant(None), ok, "dr", today).unwrap_err().field,
            "eri_projected"
        );
        let to = |s| PlanStatusChange {
            status: s,
            planned_on: None,
        };
        change_status(&mut p, to(PlanStatus::Scheduled), today).unwrap();
        assert_eq!(
            change_status(&mut p, to(PlanStatus::Planned), today)
                .unwrap_err()
                .field,
            "status"
        );
        change_status(&mut p, to(PlanStatus::Done), today).unwrap();
        assert_eq!(
            change_status(&mut p, to(PlanStatus::Done), today)
                .unwrap_err()
                .field,
            "status"
        );
    }

    #[test]
    fn stored_plans_are_listed_by_urgency_done_last_clinic_063() {
        let today = d("2026-12-03");
        let plan = |id: i64, eri: &str, status| ReplacementPlanRecord {
            id,
            implant_id: id,
            eri: d(eri),
            replace_before: replacement::plan(id, d(eri), today).replace_before,
            planned_on: today,
            status,
            notes: String::new(),
            planned_by: "dr".into(),
        };
        let l = list(
            vec![
                plan(1, "2028-01-01", PlanStatus::Planned),   // planned
                plan(2, "2026-11-01", PlanStatus::Done),      // done: last
                plan(3, "2026-12-01", PlanStatus::Scheduled), // ERI reached, stop 2027-03-01
                plan(4, "2027-02-01", PlanStatus::Planned),   // open case, stop 2027-05-02
                plan(5, "2026-11-20", PlanStatus::Planned),   // ERI reached, stop 2027-02-18
            ],
            today,
        );
        let ids: Vec<i64> = l.iter().map(|p| p.plan.id).collect();
        assert_eq!(ids, vec![5, 3, 4, 1, 2]);
        assert_eq!(l[0].urgency, Urgency::EriReached);
        // 2026-11-20 + 90 d = 2027-02-18, 77 days after 2026-12-03.
        assert_eq!(l[0].days_to_stop, 77);
    }
}
