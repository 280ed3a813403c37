//! The refill visit's steps, in order (CLINIC.md §2.4): opened (patient and pump
//! identified, pump interrogated) → aspirated (residual reconciled by thecal-rx) → filled
//! (syringe checked against the order) → closed (next refill date set). A flagged
//! reconciliation cannot close without a recorded investigation outcome.

use chrono::{DateTime, NaiveDate, Utc};
use thecal_rx::refill::{expected_residual, reconcile};
use thecal_rx::schedule::{LocalTime, Schedule};
use thecal_rx::{Concentration, Flow, Volume};

use super::calendar::Due;
use super::records::{Fill, Prescription, RefillVisit, Release, Signature, VisitStep};
use super::{FieldError, quantity, text};

fn ms(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

/// The residual expected now, from the last fill and the prescribed flow (thecal-rx).
pub fn expected(
    volume_after: Volume,
    flow: Flow,
    filled_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Volume {
    expected_residual(
        volume_after,
        &Schedule::continuous(flow),
        LocalTime(ms(filled_at)),
        LocalTime(ms(now)),
        Volume::ZERO,
    )
}

/// The residual at `until` after a fill of `volume_after` at `filled_at`, each prescription
/// version delivering its schedule while it was in force (`versions`: start and schedule,
/// oldest first; the one in force at the fill is the last starting at or before it).
/// A dose change is not a refill: the drug delivered before it still left the reservoir.
pub fn residual_across(
    volume_after: Volume,
    filled_at: DateTime<Utc>,
    versions: &[(DateTime<Utc>, Schedule)],
    until: DateTime<Utc>,
) -> Volume {
    let mut residual = volume_after;
    for (i, (start, schedule)) in versions.iter().enumerate() {
        let end = versions
            .get(i + 1)
            .map_or(until, |(next, _)| *next)
            .min(until);
        let from = (*start).max(filled_at);
        if end > from {
            residual = expected_residual(
                residual,
                schedule,
                LocalTime(ms(from)),
                LocalTime(ms(end)),
                Volume::ZERO,
            );
        }
    }
    residual
}

fn require(visit: &RefillVisit, step: VisitStep, action: &str) -> Result<(), FieldError> {
    if visit.step == step {
        Ok(())
    } else {
        Err(FieldError::new(
            "step",
            format!(
                "cannot {action} at step {:?}; this needs step {:?}",
                visit.step, step
            )
            .to_lowercase(),
        ))
    }
}

/// A new visit.
pub fn open(
    implant_id: i64,
    prescription_id: i64,
    expected_residual: Volume,
    by: &str,
    at: DateTime<Utc>,
) -> RefillVisit {
    RefillVisit {
        id: 0,
        implant_id,
        prescription_id,
        step: VisitStep::Opened,
        expected_residual_nl: expected_residual.raw(),
        aspirated_nl: None,
        reconciliation: None,
        flagged: false,
        investigation: None,
        fill: None,
        volume_after_nl: None,
        next_refill_due: None,
        limited_by: None,
        signatures: vec![Signature {
            step: VisitStep::Opened,
            by: by.to_owned(),
            at,
        }],
        opened_at: at,
        closed_at: None,
        pharmacist_release: None,
        set_aside: None,
    }
}

/// A pharmacist releases the lot of a compounded admixture for this visit (before the
/// fill).
///
/// # Errors
/// After the fill, or an empty lot.
pub fn release(
    v: &mut RefillVisit,
    lot: &str,
    note: &str,
    by: &str,
    at: DateTime<Utc>,
) -> Result<(), FieldError> {
    if v.step >= VisitStep::Filled {
        return Err(FieldError::new("step", "the release comes before the fill"));
    }
    v.pharmacist_release = Some(Release {
        lot: text("lot", lot, 1, 64)?,
        by: by.to_owned(),
        at,
        note: text("note", note, 0, 2000)?,
    });
    Ok(())
}

/// Step 5: the aspirated residual, reconciled against the expected one by thecal-rx.
///
/// # Errors
/// Wrong step, unreadable volume, or a volume above the capacity.
pub fn aspirate(
    v: &mut RefillVisit,
    capacity: Volume,
    aspirated: &str,
    by: &str,
    at: DateTime<Utc>,
) -> Result<(), FieldError> {
    require(v, VisitStep::Opened, "record the aspirated volume")?;
    let a: Volume = quantity("aspirated", aspirated)?;
    let r = reconcile(capacity, Volume::from_raw(v.expected_residual_nl), a, None)
        .map_err(|e| FieldError::new("aspirated", e.to_string()))?;
    v.aspirated_nl = Some(a.raw());
    v.flagged = r.flagged;
    v.reconciliation = Some(r.to_string());
    v.step = VisitStep::Aspirated;
    v.signatures.push(Signature {
        step: VisitStep::Aspirated,
        by: by.to_owned(),
        at,
    });
    Ok(())
}

/// Records the outcome of the investigation of a flagged reconciliation.
///
/// # Errors
/// Not flagged, closed already, or an empty outcome.
pub fn investigate(v: &mut RefillVisit, outcome: &str) -> Result<(), FieldError> {
    if !v.flagged {
        return Err(FieldError::new(
            "outcome",
            "only a flagged reconciliation is investigated",
        ));
    }
    if v.step == VisitStep::Closed {
        return Err(FieldError::new("step", "the visit is closed"));
    }
    v.investigation = Some(text("outcome", outcome, 1, 4000)?);
    Ok(())
}

/// Steps 3 and 6: the syringe against the order, then the fill.
///
/// # Errors
/// Wrong step, another concentration than prescribed, expired drug, a volume above the
/// capacity, or an empty lot.
pub fn fill(
    v: &mut RefillVisit,
    f: Fill,
    rx: &Prescription,
    capacity: Volume,
    by: &str,
    at: DateTime<Utc>,
) -> Result<(), FieldError> {
    require(v, VisitStep::Aspirated, "fill")?;
    let added: Volume = quantity("volume_added", &f.volume_added)?;
    if added.is_zero() || added > capacity {
        return Err(FieldError::new(
            "volume_added",
            format!("must be above 0 mL and at most the reservoir capacity {capacity}"),
        ));
    }
    let conc: Concentration = quantity("concentration", &f.concentration)?;
    if conc.raw() != rx.concentration_ng_ml {
        return Err(FieldError::new(
            "concentration",
            format!(
                "the syringe's {conc} differs from the prescribed {}; a new concentration needs a signed prescription",
                rx.concentration
            ),
        ));
    }
    let today: NaiveDate = at.date_naive();
    if f.expiry < today {
        return Err(FieldError::new(
            "expiry",
            format!("the drug expired; must be on or after {today}"),
        ));
    }
    if let Some(bud) = f.beyond_use
        && bud < today
    {
        return Err(FieldError::new(
            "beyond_use",
            format!("past the beyond-use date; must be on or after {today}"),
        ));
    }
    let lot = text("lot", &f.lot, 1, 64)?;
    // A beyond-use date marks a compounded admixture: it needs the pharmacist's release of
    // this very lot.
    if f.beyond_use.is_some() && v.pharmacist_release.as_ref().is_none_or(|r| r.lot != lot) {
        return Err(FieldError::new(
            "lot",
            format!(
                "compounded admixture lot {lot} has no pharmacist release for this visit; a pharmacist must release it before the fill"
            ),
        ));
    }
    let bridging = text("bridging", &f.bridging, 0, 200)?;
    v.fill = Some(Fill {
        volume_added: added.to_string(),
        concentration: conc.to_string(),
        lot,
        bridging,
        ..f
    });
    v.volume_after_nl = Some(added.raw());
    v.step = VisitStep::Filled;
    v.signatures.push(Signature {
        step: VisitStep::Filled,
        by: by.to_owned(),
        at,
    });
    Ok(())
}

/// Steps 9–10: close with the next refill date.
///
/// # Errors
/// Wrong step, or a flagged reconciliation without an investigation outcome.
pub fn close(
    v: &mut RefillVisit,
    due: &Due,
    by: &str,
    at: DateTime<Utc>,
) -> Result<(), FieldError> {
    require(v, VisitStep::Filled, "close")?;
    if v.flagged && v.investigation.is_none() {
        return Err(FieldError::new(
            "investigation",
            "the reconciliation was flagged: record the investigation outcome before closing",
        ));
    }
    v.next_refill_due = Some(due.due_on);
    v.limited_by = Some(due.limited_by.clone());
    v.step = VisitStep::Closed;
    v.closed_at = Some(at);
    v.signatures.push(Signature {
        step: VisitStep::Closed,
        by: by.to_owned(),
        at,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, 10, 0, 0).unwrap()
    }

    fn rx() -> Prescription {
        Prescription {
            id: 7,
            implant_id: 1,
            version: 1,
            drug: "baclofen".into(),
            concentration: "2 mg/mL".into(),
            concentration_ng_ml: 2_000_000,
            daily_dose: "400 mcg/day".into(),
            daily_dose_ng: 400_000,
            flow: "0.2 mL/day".into(),
            flow_nl_day: 200_000,
            reservoir_volume_nl: 20_000_000,
            opioid_naive: false,
            reason: "r".into(),
            prescriber: "dr".into(),
            created_at: at(1),
            findings: vec![],
            confirmation: None,
            change: vec![],
            admixture: vec![],
            flex: None,
            patient_bolus: None,
            therapy: None,
        }
    }

    fn fill_of(vol: &str) -> Fill {
        Fill {
            volume_added: vol.into(),
            concentration: "2000 mcg/mL".into(),
            lot: "L1".into(),
            expiry: "2027-06-01".parse().unwrap(),
            beyond_use: None,
            bridging: String::new(),
        }
    }

    fn due() -> Due {
        Due {
            implant_id: 1,
            patient_id: 1,
            label: "P".into(),
            due_at: at(30),
            due_on: "2026-12-30".parse().unwrap(),
            limited_by: "volume".into(),
        }
    }

    #[test]
    fn compounded_admixture_needs_the_pharmacists_release_of_its_lot_clinic_033() {
        let cap = Volume::from_ml(20);
        let mut v = open(1, 7, Volume::from_ml(10), "nurse", at(3));
        aspirate(&mut v, cap, "10 mL", "nurse", at(3)).unwrap();
        let mut f = fill_of("19 mL");
        f.beyond_use = Some("2026-12-20".parse().unwrap());
        assert_eq!(
            fill(&mut v, f.clone(), &rx(), cap, "n", at(3))
                .unwrap_err()
                .field,
            "lot"
        );
        release(&mut v, "OTHER", "", "rph", at(3)).unwrap();
        assert_eq!(
            fill(&mut v, f.clone(), &rx(), cap, "n", at(3))
                .unwrap_err()
                .field,
            "lot"
        );
        release(&mut v, "L1", "2000 mcg/mL verified", "rph", at(3)).unwrap();
        fill(&mut v, f, &rx(), cap, "n", at(3)).unwrap();
        assert_eq!(
            release(&mut v, "L1", "", "rph", at(3)).unwrap_err().field,
            "step"
        );
    }

    #[test]
    fn a_dose_change_is_not_a_refill_clinic_066() {
        // Filled with 40 mL on day 0 at 0.1 mL/day, titrated to 0.12 mL/day on day 10 and
        // to 0.14 mL/day on day 40: by day 160, 1 + 3.6 + 16.8 = 21.4 mL have left the
        // reservoir: 18.6 mL remain (not 40 − 0.14 × 120 = 23.2 mL).
        let day = |n: i64| at(1) + chrono::TimeDelta::days(n);
        let flow = |nl: u64| Schedule::continuous(Flow::from_raw(nl));
        let versions = [
            (day(0), flow(100_000)),
            (day(10), flow(120_000)),
            (day(40), flow(140_000)),
        ];
        assert_eq!(
            residual_across(Volume::from_ml(40), day(0), &versions, day(160)),
            Volume::from_raw(18_600_000)
        );
        // From a refill on day 100 (to 39 mL), only the last version counts: 39 − 8.4.
        assert_eq!(
            residual_across(Volume::from_ml(39), day(100), &versions, day(160)),
            Volume::from_raw(30_600_000)
        );
    }

    #[test]
    fn expected_residual_hand_worked_clinic_011() {
        // 20 mL at 0.2 mL/day over 50 days → 10 mL left.
        let filled = Utc.with_ymd_and_hms(2026, 10, 1, 10, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap();
        assert_eq!(
            expected(Volume::from_ml(20), Flow::from_raw(200_000), filled, now),
            Volume::from_ml(10)
        );
    }

    #[test]
    fn steps_run_in_order_and_a_clean_visit_closes_clinic_011() {
        let mut v = open(1, 7, Volume::from_ml(10), "nurse", at(3));
        let cap = Volume::from_ml(20);
        assert_eq!(
            fill(&mut v, fill_of("10 mL"), &rx(), cap, "nurse", at(3))
                .unwrap_err()
                .message,
            "cannot fill at step opened; this needs step aspirated"
        );
        aspirate(&mut v, cap, "9.5 mL", "nurse", at(3)).unwrap();
        assert!(!v.flagged, "0.5 mL is within 1 mL (5 % of 20 mL)");
        fill(&mut v, fill_of("19 mL"), &rx(), cap, "nurse", at(3)).unwrap();
        close(&mut v, &due(), "nurse", at(3)).unwrap();
        assert_eq!(v.step, VisitStep::Closed);
        assert_eq!(v.signatures.len(), 4);
        assert_eq!(v.volume_after_nl, Some(19_000_000));
    }

    #[test]
    fn flagged_reconciliation_cannot_close_without_investigation_clinic_012() {
        let mut v = open(1, 7, Volume::from_ml(10), "nurse", at(3));
        let cap = Volume::from_ml(20);
        // 7.5 mL against 10 mL: 2.5 mL less, beyond the 1 mL threshold.
        aspirate(&mut v, cap, "7.5 mL", "nurse", at(3)).unwrap();
        assert!(v.flagged);
        assert!(
            v.reconciliation
                .as_deref()
                .unwrap()
                .contains("less than the expected")
        );
        fill(&mut v, fill_of("19 mL"), &rx(), cap, "nurse", at(3)).unwrap();
        let e = close(&mut v, &due(), "nurse", at(3)).unwrap_err();
        assert_eq!(e.field, "investigation");
        investigate(&mut v, "catheter dye study normal; pocket checked").unwrap();
        close(&mut v, &due(), "nurse", at(3)).unwrap();
    }

    #[test]
    fn syringe_must_match_the_order_and_not_be_expired_clinic_013() {
        let mut v = open(1, 7, Volume::from_ml(10), "nurse", at(3));
        let cap = Volume::from_ml(20);
        aspirate(&mut v, cap, "10 mL", "nurse", at(3)).unwrap();
        let mut f = fill_of("19 mL");
        f.concentration = "500 mcg/mL".into();
        assert_eq!(
            fill(&mut v, f, &rx(), cap, "n", at(3)).unwrap_err().field,
            "concentration"
        );
        let mut f = fill_of("19 mL");
        f.expiry = "2026-12-02".parse().unwrap();
        assert_eq!(
            fill(&mut v, f, &rx(), cap, "n", at(3)).unwrap_err().field,
            "expiry"
        );
        assert_eq!(
            fill(&mut v, fill_of("21 mL"), &rx(), cap, "n", at(3))
                .unwrap_err()
                .field,
            "volume_added"
        );
        assert_eq!(investigate(&mut v, "x").unwrap_err().field, "outcome");
    }
}
