//! Long lists, on SQLite and on PostgreSQL: records read by ids in chunks (CLINIC-172), the
//! replacement plan paged by urgency (CLINIC-170), today's list bounded to the most urgent
//! with each list's total (CLINIC-171), the console's replacement plan paged (CLINIC-170).
#![allow(missing_docs)]

mod common;

use std::collections::{BTreeSet, HashMap};

use axum::http::StatusCode;
use chrono::{Days, NaiveDate, TimeZone, Utc};
use common::clinic::{Clinic, User};
use common::{Backend, fresh};
use thecal_clinic::auth::Role;
use thecal_clinic::domain::records::{Implant, Patient};
use thecal_clinic::storage::{BulkRow, Kind, NewRow};

/// Patients the synthetic clinic has: more than today's 20 rows and two pages of 50.
const PATIENTS: u64 = 130;
/// Refill visits each: the synthetic pumps were implanted (VISITS + 1) × 30 days and up
/// to 89 days more before today, 2,520–2,609 days: ERI (2,555 days, seven years) reached
/// for some, the replacement case open (from 2,462 days) for the others.
const VISITS: u64 = 83;
/// The clock of [`Clinic`]: 2026-01-10.
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 10).unwrap()
}

async fn seeded(b: Backend) -> Option<(Clinic, User)> {
    let c = Clinic::with_console(b).await?;
    let now = Utc.with_ymd_and_hms(2026, 1, 10, 10, 0, 0).unwrap();
    thecal_clinic::bench::seed(
        &c.db.store,
        PATIENTS,
        VISITS,
        thecal_clinic::domain::calendar::DEFAULT_CLINIC_MAX_DAYS,
        now,
        |_| {},
    )
    .await
    .unwrap()
    .expect("an empty clinic is seeded");
    let n = c.login(Role::Nurse).await;
    Some((c, n))
}

/// Every active implant with its projected ERI and its patient's "name (record)", read
/// from storage, not through the code under test.
async fn implants(c: &Clinic) -> HashMap<i64, (NaiveDate, String)> {
    let mut out = HashMap::new();
    for r in
        c.db.store
            .with_status(Kind::Implant, "active")
            .await
            .unwrap()
    {
        let i: Implant = serde_json::from_str(&r.data).unwrap();
        let p: Patient = serde_json::from_str(
            &c.db
                .store
                .get(Kind::Patient, i.patient_id)
                .await
                .unwrap()
                .unwrap()
                .data,
        )
        .unwrap();
        let label = format!("{} ({})", p.details.name, p.details.mrn);
        out.insert(i.id, (i.details.eri_projected.unwrap(), label));
    }
    out
}

/// The independent model of CLINIC.md §2.6: the pump stops 90 days after its ERI, a case
/// opens 183 days before the stop; rank 0 past the stop, 1 ERI reached, 2 case open,
/// 3 planned.
fn rank(eri: NaiveDate, today: NaiveDate) -> (u8, NaiveDate) {
    let stop = eri.checked_add_days(Days::new(90)).unwrap();
    let open = stop.checked_sub_days(Days::new(183)).unwrap();
    let r = if today > stop {
        0
    } else if today >= eri {
        1
    } else if today >= open {
        2
    } else {
        3
    };
    (r, stop)
}

fn urgency_rank(u: &str) -> u8 {
    match u {
        "past_stop" => 0,
        "eri_reached" => 1,
        "open_case" => 2,
        "planned" => 3,
        other => panic!("unknown urgency {other}"),
    }
}

async fn get_many_reads_every_id_given_once_in_chunks_clinic_172(b: Backend) {
    let Some(db) = fresh(b).await else { return };
    // More than two chunks of 500.
    let rows = (0..1100)
        .map(|i| BulkRow {
            row: NewRow {
                parent_id: None,
                key: Some(format!("M{i}")),
                status: "active".into(),
                data: format!(r#"{{"id":0,"n":{i}}}"#),
            },
            seq: 1,
        })
        .collect();
    let ids = db
        .store
        .insert_bulk(None, Kind::Patient, rows, 1)
        .await
        .unwrap();
    let mut ask: Vec<i64> = ids.iter().rev().copied().collect();
    ask.extend_from_slice(&ids[..10]); // repeated
    ask.push(ids[ids.len() - 1] + 1000); // absent
    let got = db.store.get_many(Kind::Patient, &ask).await.unwrap();
    assert_eq!(got.len(), 1100, "each present id once, the absent left out");
    let got_ids: Vec<i64> = got.iter().map(|r| r.id).collect();
    let mut want = ids.clone();
    want.sort_unstable();
    assert_eq!(got_ids, want, "by id");
    for (k, r) in got.iter().enumerate() {
        // insert_bulk gives ids in the order of the rows: the k-th smallest is row k.
        assert_eq!(r.data, format!(r#"{{"id":{},"n":{k}}}"#, r.id));
        assert_eq!(r.key.as_deref(), Some(format!("M{k}").as_str()));
    }
    assert!(
        db.store
            .get_many(Kind::Patient, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

async fn replacement_plan_pages_reach_every_implant_by_urgency_clinic_170(b: Backend) {
    let Some((c, n)) = seeded(b).await else {
        return;
    };
    let known = implants(&c).await;
    assert_eq!(known.len(), PATIENTS as usize);
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let (s, h, page) = c
            .call_full(
                Some(&n),
                "GET",
                &format!("/api/v1/replacements?offset={offset}&limit=50"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(h["x-total-count"], PATIENTS.to_string());
        let page = page.as_array().unwrap().clone();
        assert!(
            page.len() <= 50,
            "a page holds at most its limit: {}",
            page.len()
        );
        if page.is_empty() {
            break;
        }
        seen.extend(page);
        offset += 50;
    }
    assert_eq!(offset, 150, "pages of 50, 50 and 30, then an empty one");
    let ids: Vec<i64> = seen
        .iter()
        .map(|p| p["implant_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids.iter().copied().collect::<BTreeSet<_>>(),
        known.keys().copied().collect::<BTreeSet<_>>(),
        "every implant once"
    );
    assert_eq!(ids.len(), known.len());
    let mut keys = Vec::new();
    for p in &seen {
        let id = p["implant_id"].as_i64().unwrap();
        let (eri, _) = known[&id];
        let (r, stop) = rank(eri, today());
        assert_eq!(p["eri"], eri.to_string());
        assert_eq!(p["replace_before"], stop.to_string(), "ERI + 90 days");
        assert_eq!(urgency_rank(p["urgency"].as_str().unwrap()), r, "{p}");
        keys.push((r, stop, id));
    }
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        keys, sorted,
        "most urgent first, then the nearest stop, then the implant"
    );
    // Only the urgent; the default page is 100.
    let urgent = known
        .values()
        .filter(|(eri, _)| rank(*eri, today()).0 < 3)
        .count();
    let (s, h, page) = c
        .call_full(Some(&n), "GET", "/api/v1/replacements?urgent=true", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-total-count"], urgent.to_string());
    assert_eq!(page.as_array().unwrap().len(), urgent.min(100));
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("offset=-1", "offset"),
    ] {
        let (s, e) = c
            .call(Some(&n), "GET", &format!("/api/v1/replacements?{q}"), None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {e}");
        assert_eq!(e["error"]["field"], field, "{q}: {e}");
    }
}

async fn page(c: &Clinic, n: &User, path: &str) -> (StatusCode, String) {
    let (s, v) = c.call(Some(n), "GET", path, None).await;
    (
        s,
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string()),
    )
}

/// The text of the section of `html` that starts at `start` and ends at the next `<h2`.
fn section<'a>(html: &'a str, start: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {html}"));
    let rest = &html[from..];
    let end = rest[1..].find("<h2").map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

async fn todays_list_shows_the_most_urgent_with_the_totals_clinic_171(b: Backend) {
    let Some((c, n)) = seeded(b).await else {
        return;
    };
    let known = implants(&c).await;
    let mut urgent: Vec<(u8, NaiveDate, i64)> = known
        .iter()
        .map(|(id, (eri, _))| {
            let (r, stop) = rank(*eri, today());
            (r, stop, *id)
        })
        .filter(|k| k.0 < 3)
        .collect();
    urgent.sort();
    assert!(urgent.len() > 20, "the synthetic pumps are past their ERI");
    let (s, html) = page(&c, &n, "/today").await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let eri = section(&html, "<h2 id=\"eri\">");
    assert!(
        eri.contains(&format!(
            "Implants nearing replacement (ERI) ({})",
            urgent.len()
        )),
        "{eri}"
    );
    let shown: Vec<&str> = eri
        .split("<tr><td><a href=\"/patients/")
        .skip(1)
        .map(|r| {
            let label = &r[r.find('>').unwrap() + 1..];
            &label[..label.find("</a>").unwrap()]
        })
        .collect();
    let want: Vec<String> = urgent
        .iter()
        .take(20)
        .map(|(_, _, id)| askama_escape(&known[id].1))
        .collect();
    assert_eq!(shown, want, "the 20 most urgent, in order");
    assert!(
        eri.contains(&format!("The 20 most urgent of {}", urgent.len()))
            && eri.contains("href=\"/replacements\""),
        "{eri}"
    );
}

/// HTML escaping of a label as the templates do it (names here are plain).
fn askama_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

async fn console_replacement_plan_is_paged_clinic_170(b: Backend) {
    let Some((c, n)) = seeded(b).await else {
        return;
    };
    let known = implants(&c).await;
    let mut seen = Vec::new();
    for (p, rows) in [(1, 50), (2, 50), (3, 30)] {
        let (s, html) = page(&c, &n, &format!("/replacements?page={p}")).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        let ids: Vec<i64> = html
            .split("<a href=\"/implants/")
            .skip(1)
            .map(|r| r[..r.find('/').unwrap()].parse().unwrap())
            .collect();
        assert_eq!(ids.len(), rows, "page {p}");
        assert!(
            html.contains(&format!("Page {p} of 3 ({PATIENTS} implants")),
            "{html}"
        );
        assert_eq!(html.contains("rel=\"next\""), p < 3);
        assert_eq!(html.contains("rel=\"prev\""), p > 1);
        seen.extend(ids);
    }
    assert_eq!(seen.len(), known.len());
    assert_eq!(
        seen.iter().copied().collect::<BTreeSet<_>>(),
        known.keys().copied().collect::<BTreeSet<_>>(),
        "the pages reach every implant once"
    );
    let (s, _) = page(&c, &n, "/replacements?page=4").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for bad in ["0", "x", "-1"] {
        let (s, html) = page(&c, &n, &format!("/replacements?page={bad}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert!(html.contains("page: a whole number from 1"), "{html}");
    }
}

on_both_databases!(
    get_many_reads_every_id_given_once_in_chunks_clinic_172,
    replacement_plan_pages_reach_every_implant_by_urgency_clinic_170,
    todays_list_shows_the_most_urgent_with_the_totals_clinic_171,
    console_replacement_plan_is_paged_clinic_170,
);
