//! Patient search, paged: every patient whose name or record number contains the query
//! (letters without regard to case), 50 to a page, with the count and links to the
//! previous and next pages, so that no patient is out of reach however large the clinic.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;

use super::pages::{Ctx, PatientRow};
use super::{Page, Web, render, words};
use crate::domain::records::Patient;
use crate::storage::Kind;

/// Patients to a page.
pub const PAGE_SIZE: usize = 50;

pub(super) fn routes() -> Router<Web> {
    Router::new().route("/patients", get(patients))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    page: Option<String>,
}

/// Patient search.
#[derive(Template)]
#[template(path = "patients.html")]
pub struct PatientsPage {
    /// Layout.
    pub ctx: Ctx,
    /// The query.
    pub q: String,
    /// A search was made.
    pub searched: bool,
    /// This page's hits.
    pub results: Vec<PatientRow>,
    /// Hits in all.
    pub total: usize,
    /// The first and last hit on this page, counted from 1.
    pub shown: (usize, usize),
    /// This page, from 1, and the number of pages.
    pub page: (usize, usize),
    /// Link to the previous page.
    pub previous: Option<String>,
    /// Link to the next page.
    pub next: Option<String>,
    /// The user may register a patient.
    pub may_register: bool,
    /// The page asked for did not exist.
    pub page_error: Option<String>,
}

/// The query string of a page of a search.
fn link(q: &str, page: usize) -> String {
    let enc: String = url_encode(q);
    format!("/patients?q={enc}&page={page}")
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The pages of `total` hits: (number of pages, the page shown, an error when the page
/// asked for is not one of them).
fn paging(total: usize, asked: Option<&str>) -> (usize, usize, Option<String>) {
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    match asked.map(str::trim).filter(|a| !a.is_empty()) {
        None => (pages, 1, None),
        Some(a) => match a.parse::<usize>() {
            Ok(p) if (1..=pages).contains(&p) => (pages, p, None),
            _ => (
                pages,
                1,
                Some(format!(
                    "page “{a}” does not exist: a whole number from 1 to {pages}; the first page is shown"
                )),
            ),
        },
    }
}

async fn patients(State(w): State<Web>, headers: HeaderMap, Query(q): Query<SearchQuery>) -> Page {
    let s = w.session(&headers).await?;
    w.require(&s, "GET", "/api/v1/patients", "read patients' records")?;
    let query = q.q.unwrap_or_default();
    let needle = query.trim().to_lowercase();
    let mut hits = Vec::new();
    if !needle.is_empty() {
        // Every patient, in id order (the API's list stops at 1,000).
        let rows =
            w.st.store
                .list(Kind::Patient, None, i64::MAX)
                .await
                .map_err(|e| {
                    eprintln!("thecal-clinic: storage error: {e}");
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
                })?;
        hits = rows
            .iter()
            .filter_map(|r| serde_json::from_str::<Patient>(&r.data).ok())
            .filter(|p| {
                p.details.name.to_lowercase().contains(&needle)
                    || p.details.mrn.to_lowercase().contains(&needle)
            })
            .collect();
    }
    let total = hits.len();
    let (pages, page, page_error) = paging(total, q.page.as_deref());
    let from = (page - 1) * PAGE_SIZE;
    let results: Vec<PatientRow> = hits
        .into_iter()
        .skip(from)
        .take(PAGE_SIZE)
        .map(|p| PatientRow {
            id: p.id,
            name: p.details.name,
            dob: p.details.date_of_birth.to_string(),
            mrn: p.details.mrn,
            state: words(&p.state),
        })
        .collect();
    let shown = (from + 1, from + results.len());
    Ok(render(
        if page_error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        &PatientsPage {
            ctx: s.ctx(),
            searched: !needle.is_empty(),
            previous: (page > 1).then(|| link(&query, page - 1)),
            next: (page < pages).then(|| link(&query, page + 1)),
            q: query,
            results,
            total,
            shown,
            page: (page, pages),
            may_register: super::may(s.role, "POST", "/api/v1/patients"),
            page_error,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_fifty_count_from_one_and_refuse_other_pages_clinic_133() {
        // 1,001 hits are 21 pages: 20 of 50 and one of 1.
        assert_eq!(paging(1001, None), (21, 1, None));
        assert_eq!(paging(1001, Some("21")), (21, 21, None));
        assert_eq!(paging(0, None), (1, 1, None));
        assert_eq!(paging(50, Some("1")), (1, 1, None));
        let (_, p, e) = paging(1001, Some("22"));
        assert_eq!(p, 1);
        assert!(e.unwrap().contains("from 1 to 21"));
        assert!(paging(10, Some("x")).2.is_some());
        assert_eq!(link("Ada Demo&x", 2), "/patients?q=Ada+Demo%26x&page=2");
    }
}
