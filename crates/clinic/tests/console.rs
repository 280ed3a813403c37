//! The web console, end to end: the server on 127.0.0.1 with a fresh SQLite clinic (the
//! demo clinic, made through the real API), driven in headless Chromium over WebDriver
//! (chromedriver on loopback). Screenshots of each page at 1024 × 768 and 1440 × 900 go
//! to `target/console-screenshots/`. The harness is `console_support`, shared with
//! `console_pages`.
//!
//! Without Chromium and chromedriver the browser tests print `SKIPPED` (set
//! `THECAL_REQUIRE_BROWSER=1` to make that a failure); the tests that need no browser
//! always run. `THECAL_CHROMIUM` and `THECAL_CHROMEDRIVER` name other binaries.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod console_support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{TimeDelta, Utc};
use console_support::*;
use fantoccini::Locator;
use serde_json::{Value, json};
use tower::ServiceExt;

// ---------------------------------------------------------------- walks

/// Sign in; today's list; find a patient; the patient page with the band; a refill
/// visit with a flagged reconciliation: a refused field keeps what was typed, the close
/// is refused until the investigation is recorded; the printable report; sign out.
async fn refill_visit_with_flagged_reconciliation_in_chromium_clinic_100_clinic_101_clinic_102_clinic_103_walk()
 {
    let Some(b) = browser("refill").await else {
        return;
    };
    let clinic = Clinic::new().await;
    let base = clinic.serve().await;

    b.go(&format!("{base}/signin")).await;
    b.shot("signin").await;
    b.sign_in(&base, "rn.demo").await;
    b.shot("today").await;
    let today = b.main_text().await;
    for want in [
        "Refills overdue (1)",
        "Ada Demo (DEMO-001)",
        "Refills due this week (1)",
        "Flagged reconciliations awaiting investigation (1)",
        "Dan Demo (DEMO-004)",
        "Implants nearing replacement (ERI) (1)",
        "Ben Demo (DEMO-002)",
    ] {
        assert!(
            today.contains(want),
            "today's list lacks {want:?}:\n{today}"
        );
    }

    // Find a patient.
    b.click("a[href='/patients']").await;
    b.type_in("q", "dan").await;
    b.click("form[role=search] button").await;
    b.shot("search").await;
    assert!(b.main_text().await.contains("1 found"));
    b.click("main table a").await;
    b.shot("patient").await;
    let (name, dob, serial) = b.band().await;
    assert_eq!(name, "Dan Demo");
    assert!(dob.len() == 10 && dob.as_bytes()[4] == b'-', "{dob}");
    assert!(!serial.is_empty() && serial != "none implanted", "{serial}");
    let page = b.main_text().await;
    assert!(
        page.contains("Implant and catheter") && page.contains("Timeline"),
        "{page}"
    );
    assert!(
        page.contains(" cm, tip at "),
        "catheter length without unit: {page}"
    );

    // The open visit with its flagged reconciliation.
    b.click("a[href^='/visits/']").await;
    let visit_path = b.path().await;
    assert_eq!(b.band().await.0, "Dan Demo", "the band on the visit page");
    assert!(
        b.text_of("[data-testid=flagged]")
            .await
            .contains("cannot close until the investigation")
    );
    b.shot("visit-flagged").await;

    // A volume without its unit is refused next to the field; what was typed stays.
    b.type_in("f-volume_added", "18").await;
    b.type_in("f-concentration", "2000 mcg/mL").await;
    b.type_in("f-lot", "LOT-77").await;
    b.type_in("f-expiry", "2030-01-31").await;
    b.click("form:has(input[name=action][value=fill]) button")
        .await;
    let err = b.field_error("volume_added").await;
    assert!(
        err.contains("mL"),
        "the error names the unit allowed: {err}"
    );
    // The refused fields are listed at the top of the page, linked to their fields (the
    // field itself may be below the fold on a tablet).
    let summary = b.text_of("[data-testid=error-summary]").await;
    assert!(summary.contains("Volume added:"), "{summary}");
    assert_eq!(b.value_of("f-volume_added").await, "18");
    assert_eq!(b.value_of("f-lot").await, "LOT-77");
    b.shot("visit-field-error").await;

    // Dan's prescription: read its concentration from the visit page (the syringe must match).
    let rx = b.main_text().await;
    let conc = rx
        .split_once("Prescription")
        .and_then(|(_, r)| r.split_whitespace().nth(1).zip(r.split_whitespace().nth(2)))
        .map(|(n, u)| format!("{n} {u}"))
        .unwrap();
    b.type_in("f-volume_added", "18 mL").await;
    b.type_in("f-concentration", &conc).await;
    b.click("form:has(input[name=action][value=fill]) button")
        .await;
    assert_eq!(b.path().await, visit_path);
    let filled = b.main_text().await;
    assert!(
        filled.contains("Reservoir after the fill 18 mL"),
        "{filled}"
    );

    // Closing without the investigation is refused at the investigation field.
    b.click("form:has(input[name=action][value=close]) button")
        .await;
    let err = b.field_error("outcome").await;
    assert!(
        err.contains("investigation outcome before closing"),
        "{err}"
    );
    b.shot("visit-close-refused").await;

    b.type_in(
        "f-outcome",
        "pump log shows no over-delivery; catheter access port aspirated clear; pocket dry",
    )
    .await;
    b.click("form:has(input[name=action][value=investigation]) button")
        .await;
    b.click("form:has(input[name=action][value=close]) button")
        .await;
    let closed = b.main_text().await;
    assert!(closed.contains("Next refill due"), "{closed}");
    b.click("a[href$='/report']").await;
    b.shot("report").await;
    let pdf = b.print_pdf("report").await;
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    assert!(pdf.len() > 10_000, "a PDF of {} bytes", pdf.len());
    // The print stylesheet hides the navigation and the sign-out form.
    let nav_on_paper = b
        .c()
        .execute(
            "for (const s of document.styleSheets) for (const r of s.cssRules) \
               if (r.media && r.media.mediaText === 'print') \
                 return r.cssText.includes('header.top');
             return false;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        nav_on_paper,
        Value::Bool(true),
        "the print rules hide the header"
    );
    let report = b.main_text().await;
    for want in [
        "Dan Demo",
        "pump log shows no over-delivery",
        "LOT-77",
        "18 mL",
        "Next refill due",
    ] {
        assert!(report.contains(want), "report lacks {want:?}:\n{report}");
    }
    b.sign_out().await;
    b.go(&format!("{base}/today")).await;
    assert_eq!(
        b.path().await,
        "/signin",
        "signed out, the pages need a sign-in"
    );
    b.close().await;
}

/// A physician changes a prescription: old against new on the same screen, a hard finding
/// refused (no confirm button), a soft finding refused without a reason and confirmed
/// with one; a trial and its decision; a nurse is denied the change.
async fn prescription_change_trial_and_nurse_denied_in_chromium_clinic_104_clinic_105_walk() {
    let Some(b) = browser("prescription").await else {
        return;
    };
    let clinic = Clinic::new().await;
    let base = clinic.serve().await;
    b.sign_in(&base, "dr.demo").await;
    b.go(&format!("{base}/patients?q=DEMO-001")).await;
    b.click("main table a").await;
    let patient_path = b.path().await;
    b.click("a[href$='/prescription']").await;
    assert_eq!(b.band().await.0, "Ada Demo");
    b.shot("prescription-form").await;

    // Hard: morphine 100 mg/mL is above the library's hard limit.
    b.choose("f-drug", "morphine").await;
    b.type_in("f-concentration", "100 mg/mL").await;
    b.type_in("f-daily_dose", "5 mg/day").await;
    b.type_in("f-reservoir_volume", "20 mL").await;
    b.type_in("f-reason", "switch to morphine").await;
    b.type_in("f-confirm_soft_findings", "agreed").await;
    b.click("button[value=review]").await;
    let compare = b.text_of("[data-testid=compare]").await;
    assert!(
        compare.contains("2 mg/mL") && compare.contains("100 mg/mL"),
        "{compare}"
    );
    assert!(b.text_of("[data-testid=findings]").await.contains("hard"));
    assert!(b.text_of("[data-testid=refused]").await.contains("Refused"));
    // The verdict comes before the table, at the top of the screen; changed rows are
    // marked in words.
    let verdict_first = b
        .c()
        .execute(
            "return (document.querySelector('[data-testid=refused]')
                .compareDocumentPosition(document.querySelector('[data-testid=compare]'))
                & Node.DOCUMENT_POSITION_FOLLOWING) !== 0;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        verdict_first,
        Value::Bool(true),
        "the verdict is above the table"
    );
    assert!(
        compare.contains("morphine 100 mg/mL (changed)"),
        "{compare}"
    );
    assert!(!compare.contains("20 mL (changed)"), "{compare}");
    assert!(
        !b.c()
            .find(Locator::Css("button[value=confirm]"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "a hard finding offers no confirm button"
    );
    b.shot("prescription-hard").await;

    // Soft: +82 % baclofen is above the allowed step.
    b.choose("f-drug", "baclofen").await;
    b.type_in("f-concentration", "2000 mcg/mL").await;
    b.type_in("f-daily_dose", "400 mcg/day").await;
    b.type_in("f-reason", "spasms worse").await;
    b.type_in("f-confirm_soft_findings", "").await;
    b.click("button[value=review]").await;
    let findings = b.text_of("[data-testid=findings]").await;
    assert!(
        findings.contains("soft") && !findings.contains("hard"),
        "{findings}"
    );
    let compare = b.text_of("[data-testid=compare]").await;
    assert!(
        compare.contains("220 mcg/day") && compare.contains("400 mcg/day"),
        "{compare}"
    );
    b.shot("prescription-soft").await;
    b.click("button[value=confirm]").await;
    let err = b.field_error("confirm_soft_findings").await;
    assert!(!err.is_empty());
    assert_eq!(
        b.value_of("f-daily_dose").await,
        "400 mcg/day",
        "kept on error"
    );
    assert!(
        b.c()
            .find(Locator::Css("[data-testid=compare]"))
            .await
            .is_ok(),
        "the table stays on the screen that confirms"
    );
    b.type_in(
        "f-confirm_soft_findings",
        "screening effect lasted 12 h; inpatient observation",
    )
    .await;
    b.click("button[value=confirm]").await;
    assert_eq!(b.path().await, patient_path, "{}", b.main_text().await);
    let words = b.text_of("[data-testid=rx-words]").await;
    assert!(words.contains("400 mcg a day"), "{words}");
    assert!(
        b.main_text()
            .await
            .contains("soft findings confirmed by dr.demo")
    );

    // A trial and its decision.
    b.click("a[href$='/trial']").await;
    b.choose("f-drug", "baclofen").await;
    b.choose("f-route", "lumbar_puncture").await;
    b.type_in("f-doses", "50 mcg").await;
    b.choose("f-scale", "ashworth_mean_tenths").await;
    b.type_in("f-baseline", "3.5").await;
    b.type_in("f-post", "15").await;
    b.type_in("f-observed_hours", "6").await;
    b.click("main form button").await;
    assert!(b.field_error("baseline").await.contains("whole number"));
    assert_eq!(b.value_of("f-doses").await, "50 mcg");
    b.shot("trial-error").await;
    b.type_in("f-baseline", "35").await;
    b.click("main form button").await;
    assert_eq!(b.path().await, patient_path, "{}", b.main_text().await);
    b.tick("form[action$='/decision'] input[value=yes]").await;
    b.click("form[action$='/decision'] button").await;
    assert!(
        b.text_of("[data-testid=trial-decision]")
            .await
            .contains("implant recommended by dr.demo")
    );
    b.shot("patient-after").await;
    b.sign_out().await;

    // A nurse is denied the change, by the page and by the server.
    b.sign_in(&base, "rn.demo").await;
    b.go(&format!("{base}{patient_path}")).await;
    assert!(
        b.c()
            .find(Locator::Css("a[href$='/prescription']"))
            .await
            .is_err(),
        "no change link for a nurse"
    );
    let implant = "/implants/1/prescription";
    b.go(&format!("{base}{implant}")).await;
    let denied = b.main_text().await;
    assert!(
        denied.contains("A nurse may not change a prescription; allowed: physician."),
        "{denied}"
    );
    b.shot("nurse-denied").await;
    b.close().await;
}

/// An expired session leads to the sign-in page saying so; a patient's name with markup
/// is shown as text, not run.
async fn expired_session_and_inert_markup_in_chromium_clinic_106_clinic_107_walk() {
    let Some(b) = browser("session").await else {
        return;
    };
    let clinic = Clinic::new().await;
    let base = clinic.serve().await;
    b.sign_in(&base, "dr.demo").await;
    b.go(&format!("{base}/patients/{}", clinic.script_patient))
        .await;
    b.shot("markup-name").await;
    let (name, _, serial) = b.band().await;
    assert_eq!(name, SCRIPT_NAME, "the name is shown as typed");
    assert_eq!(serial, "none implanted");
    let pwned = b
        .c()
        .execute("return window.pwned === undefined;", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, Value::Bool(true), "the stored markup ran");
    assert!(
        b.c()
            .find_all(Locator::Css("script"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        b.c()
            .find_all(Locator::Css("main img, .patient-band img"))
            .await
            .unwrap()
            .is_empty()
    );
    let source = b.c().source().await.unwrap();
    assert!(source.contains("&lt;script&gt;window.pwned=1&lt;/script&gt;"));

    // Twelve hours is a clinic day; a session does not outlive it.
    clinic.advance(TimeDelta::hours(13));
    b.go(&format!("{base}/patients/{}", clinic.script_patient))
        .await;
    assert_eq!(b.path().await, "/signin");
    let notice = b.main_text().await;
    assert!(notice.contains("Your session has expired"), "{notice}");
    b.shot("expired").await;
    b.sign_in(&base, "dr.demo").await;
    b.close().await;
}

/// Waits until the prescription editor's review region shows a verdict (the findings
/// while typing); returns the region's text.
async fn wait_verdict(b: &Browser, want: &str) -> String {
    for _ in 0..200 {
        let v = b
            .c()
            .execute(
                "const e = document.querySelector('#review .review-body');
                 return e ? e.getAttribute('data-verdict') : null;",
                vec![],
            )
            .await
            .unwrap();
        if v.as_str() == Some(want) {
            return b.text_of("#review").await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the review never showed {want:?}:\n{}",
        b.text_of("#review").await
    );
}

async fn confirm_shown(b: &Browser) -> bool {
    b.c()
        .find(Locator::Id("confirm"))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap()
}

/// A physician registers a patient and records an implant, a complication, an alarm and
/// its acknowledgement through the forms (a refused field keeps what was typed), then
/// prescribes an admixture with the findings shown while typing (a hard finding refused,
/// soft findings confirmed with a reason); a pharmacist releases a lot; a nurse is
/// denied the implant form.
async fn forms_admixture_and_release_in_chromium_walk() {
    let Some(b) = browser("forms").await else {
        return;
    };
    let clinic = Clinic::new().await;
    let base = clinic.serve().await;
    b.sign_in(&base, "dr.demo").await;
    b.click("a[href='/patients']").await;
    b.click("a[href='/patients/new']").await;
    b.shot("patient-new").await;
    b.type_in("f-name", "Zoe Formtest").await;
    b.type_in("f-mrn", "FORM-001").await;
    b.type_in("f-date_of_birth", "1971-04-02").await;
    b.choose("f-condition", "pain_cancer").await;
    b.type_in("f-weight_kg", "72.5").await;
    b.type_in("f-allergies", "none known").await;
    b.click("main form button").await;
    let err = b.field_error("weight_kg").await;
    assert!(
        err.contains("whole number of kilograms from 1 to 400"),
        "{err}"
    );
    assert!(
        b.text_of("[data-testid=error-summary]")
            .await
            .contains("Weight (kg):")
    );
    assert_eq!(b.value_of("f-name").await, "Zoe Formtest", "kept on error");
    assert_eq!(b.value_of("f-weight_kg").await, "72.5", "kept on error");
    assert_eq!(
        b.value_of("f-condition").await,
        "pain_cancer",
        "kept on error"
    );
    b.shot("patient-new-error").await;
    b.type_in("f-weight_kg", "72").await;
    b.click("main form button").await;
    assert!(
        b.path().await.starts_with("/patients/"),
        "{}",
        b.main_text().await
    );
    let patient_path = b.path().await;
    assert_eq!(b.band().await.0, "Zoe Formtest");
    assert_eq!(b.band().await.2, "none implanted");
    assert!(b.main_text().await.contains("pain, cancer"));

    // The implant.
    b.click("a[href$='/implant']").await;
    b.shot("implant-new").await;
    b.type_in("f-pump_model", "SynchroMed II 8637-20").await;
    b.type_in("f-serial", "FT-20-001").await;
    b.type_in("f-reservoir", "20 mL").await;
    b.type_in("f-low_alarm", "2 mL").await;
    b.type_in("f-accuracy_margin_permille", "145").await;
    b.type_in("f-implanted_on", "2026-01-15").await;
    b.choose("f-pocket", "subfascial").await;
    b.type_in("f-catheter_model", "8709SC").await;
    b.type_in("f-catheter_length_cm", "45 cm").await;
    b.type_in("f-tip_level", "T10").await;
    b.click("main form button").await;
    assert!(
        b.field_error("catheter_length_cm")
            .await
            .contains("whole number of centimetres")
    );
    assert_eq!(b.value_of("f-serial").await, "FT-20-001");
    assert_eq!(
        b.band().await.0,
        "Zoe Formtest",
        "the band on the implant form"
    );
    b.shot("implant-error").await;
    // The domain's own rule, refused at its field by the API: the alarm below capacity.
    b.type_in("f-catheter_length_cm", "45").await;
    b.type_in("f-low_alarm", "20 mL").await;
    b.click("main form button").await;
    assert!(
        b.field_error("low_alarm")
            .await
            .contains("below the reservoir capacity 20 mL"),
        "the API's message at its field"
    );
    b.type_in("f-low_alarm", "2 mL").await;
    b.click("main form button").await;
    assert_eq!(b.path().await, patient_path, "{}", b.main_text().await);
    assert_eq!(b.band().await.2, "FT-20-001");
    let page = b.main_text().await;
    assert!(page.contains("8709SC, 45 cm, tip at T10"), "{page}");

    // A complication.
    b.click("a[href$='/complication']").await;
    b.choose("f-kind", "csf_leak").await;
    b.type_in("f-onset", "2026-01-20").await;
    b.type_in("f-description", "positional headache; blood patch")
        .await;
    b.shot("complication-new").await;
    b.click("main form button").await;
    assert!(
        b.main_text()
            .await
            .contains("csf leak: positional headache")
    );

    // An alarm and its acknowledgement.
    b.click("a[href$='/alarms']").await;
    b.click("a[href$='/alarms/new']").await;
    b.type_in("f-kind", "low reservoir").await;
    b.choose("f-priority", "low").await;
    b.type_in("f-raised_at", "2026-02-01T08:30").await;
    b.shot("alarm-new").await;
    b.click("main form button").await;
    assert!(
        b.text_of("[data-testid=alarms]")
            .await
            .contains("low reservoir")
    );
    b.click("a[href$='/acknowledge']").await;
    b.click("main form button").await;
    assert!(
        b.field_error("action").await.contains("1"),
        "an empty action is refused"
    );
    b.shot("alarm-acknowledge-error").await;
    b.type_in("f-action", "refill booked for tomorrow").await;
    b.click("main form button").await;
    let alarms = b.text_of("[data-testid=alarms]").await;
    assert!(
        alarms.contains("by dr.demo") && alarms.contains("refill booked"),
        "{alarms}"
    );
    b.shot("alarms").await;

    // An admixture prescribed on the new pump, the findings shown while typing.
    b.go(&format!("{base}{patient_path}")).await;
    b.click("a[href$='/prescription']").await;
    let rx_path = b.path().await;
    assert!(
        b.text_of("#review")
            .await
            .contains("appear here as you type")
    );
    b.choose("f-drug", "morphine").await;
    b.type_in("f-concentration", "10 mg/mL").await;
    b.type_in("f-daily_dose", "1 mg/day").await;
    b.type_in("f-reservoir_volume", "18 mL").await;
    b.choose("f-mix1_drug", "clonidine").await;
    b.type_in("f-mix1_concentration", "100 mcg/mL").await;
    b.type_in("f-reason", "cancer pain, start").await;
    let review = wait_verdict(&b, "soft").await;
    assert!(
        review.contains("morphine 10 mg/mL + clonidine 100 mcg/mL"),
        "{review}"
    );
    assert!(
        review.contains("clonidine 10 mcg/day"),
        "the second drug's dose: {review}"
    );
    assert!(
        review.contains("SynchroMed-class programmable pump"),
        "{review}"
    );
    assert!(b.text_of("[data-testid=findings]").await.contains("soft"));
    assert!(confirm_shown(&b).await, "soft findings may be confirmed");
    assert_eq!(b.path().await, rx_path, "no page was sent");
    b.shot("prescription-admixture-soft").await;
    // Hard while typing: morphine 100 mg/mL is above the library's limit.
    b.type_in("f-concentration", "100 mg/mL").await;
    let review = wait_verdict(&b, "hard").await;
    assert!(review.contains("Refused"), "{review}");
    assert!(!confirm_shown(&b).await, "no confirm for a hard finding");
    b.shot("prescription-admixture-hard").await;
    // A confirm sent anyway is refused by the server and nothing is stored.
    b.type_in("f-concentration", "10 mg/mL").await;
    wait_verdict(&b, "soft").await;
    b.click("#confirm").await;
    assert!(
        b.field_error("confirm_soft_findings")
            .await
            .starts_with("✖ required")
    );
    assert_eq!(
        b.value_of("f-mix1_concentration").await,
        "100 mcg/mL",
        "kept on error"
    );
    b.type_in(
        "f-confirm_soft_findings",
        "two-drug admixture agreed at the pain board",
    )
    .await;
    wait_verdict(&b, "soft").await;
    b.click("#confirm").await;
    assert_eq!(b.path().await, patient_path, "{}", b.main_text().await);
    let words = b.text_of("[data-testid=rx-words]").await;
    assert!(
        words.contains("morphine 10 mg/mL with clonidine 100 mcg/mL"),
        "{words}"
    );
    b.sign_out().await;

    // A nurse is denied the implant and prescription forms.
    b.sign_in(&base, "rn.demo").await;
    b.go(&format!("{base}{patient_path}/implant")).await;
    assert!(
        b.main_text()
            .await
            .contains("A nurse may not record an implant; allowed: physician.")
    );
    b.go(&format!("{base}{rx_path}")).await;
    assert!(
        b.main_text()
            .await
            .contains("A nurse may not change a prescription; allowed: physician.")
    );
    b.sign_out().await;

    // The pharmacist releases the lot of Dan's compounded admixture for his open visit.
    b.sign_in(&base, "rph.demo").await;
    b.go(&format!("{base}/patients?q=DEMO-004")).await;
    b.click("main table a").await;
    b.click("a[href^='/visits/']").await;
    b.click("a[href$='/release']").await;
    assert_eq!(b.band().await.0, "Dan Demo");
    b.shot("release").await;
    b.click("main form button").await;
    assert!(
        b.field_error("lot").await.contains("1"),
        "an empty lot is refused"
    );
    b.shot("release-error").await;
    b.type_in("f-lot", "CMP-2026-117").await;
    b.type_in(
        "f-note",
        "baclofen 2000 mcg/mL verified; sterility and BUD checked",
    )
    .await;
    b.click("main form button").await;
    assert!(b.path().await.starts_with("/visits/"));
    assert!(b.main_text().await.contains("lot CMP-2026-117 by rph.demo"));
    b.close().await;
}

// ---------------------------------------------------------------- without a browser

/// Sign-in needs the form's token (double submit): a forged form from elsewhere gets no
/// session; every asset comes from the binary and pages name no other host.
async fn signin_needs_the_form_token_and_assets_are_local_clinic_100_clinic_108_walk() {
    let clinic = Clinic::new().await;
    let app = clinic.app();
    // A cross-site form post carries no sign-in cookie.
    let req = Request::builder()
        .method("POST")
        .uri("/signin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "csrf=abc&username=dr.demo&password={PASSWORD}"
        )))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        resp.headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("thecal_session=")),
        "no session without the form's token"
    );
    // With the form's token and its cookie: signed in.
    let (s, page, headers) = get(&app, "/signin", None).await;
    assert_eq!(s, StatusCode::OK);
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let set = headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(set.starts_with(&format!("thecal_signin={token};")), "{set}");
    let req = Request::builder()
        .method("POST")
        .uri("/signin")
        .header(header::COOKIE, format!("thecal_signin={token}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "csrf={token}&username=dr.demo&password={PASSWORD}"
        )))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let session = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find(|c| c.starts_with("thecal_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(session.len() > "thecal_session=".len() + 32);

    let (s, css, h) = get(&app, "/static/console.css", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(css.contains("@media print"), "a print stylesheet");
    assert!(css.contains(":focus"), "focus styles");
    for path in [
        "/today",
        "/patients?q=demo",
        "/patients/1",
        "/visits/1",
        "/visits/1/report",
        "/implants/1/prescription",
        "/patients/1/trial",
        "/patients/new",
        "/patients/1/implant",
        "/patients/1/complication",
        "/implants/1/alarms",
        "/implants/1/alarms/new",
    ] {
        let (s, page, h) = get(&app, path, Some(&session)).await;
        assert_eq!(s, StatusCode::OK, "{path}: {page}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'")
                && csp.contains("script-src 'self';")
                && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        for bad in ["http://", "https://", "//cdn"] {
            assert!(!page.contains(bad), "{path} refers to {bad}");
        }
        // The one script is the binary's own file, never inline.
        for tag in page.split("<script").skip(1) {
            assert!(
                tag.starts_with(" src=\"/static/findings.js\" defer></script>"),
                "{path}: a script other than the console's own: <script{tag}"
            );
        }
        // Every input has a label tied to it.
        for id in page.split("<input ").skip(1).filter_map(|i| {
            (!i.contains("type=\"hidden\"")).then(|| i.split("id=\"").nth(1)?.split('"').next())?
        }) {
            assert!(
                page.contains(&format!("for=\"{id}\"")),
                "{path}: input {id} has no label"
            );
        }
    }
}

/// The page checks the authorization table before it renders a form, and the API
/// checks again when a form is posted around the page.
async fn role_checks_on_pages_and_posts_clinic_105_walk() {
    let clinic = Clinic::new().await;
    let app = clinic.app();
    let api = thecal_clinic::api::router(clinic.state.clone());
    let (token, csrf) = api_login(&api, "rn.demo").await;
    let cookie = format!("thecal_session={token}");
    let (s, page, _) = get(&app, "/implants/1/prescription", Some(&cookie)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        page.contains("A nurse may not change a prescription; allowed: physician."),
        "{page}"
    );
    let (s, page, _) = get(&app, "/audit", Some(&cookie)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{page}");
    let req = Request::builder()
        .method("POST")
        .uri("/implants/1/prescription")
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "csrf={csrf}&action=confirm&drug=baclofen&concentration=2000+mcg%2FmL&daily_dose=200+mcg%2Fday&reservoir_volume=20+mL&reason=x"
        )))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let (_, rxs, _) = api_call(
        &api,
        Some(&(token.clone(), csrf.clone())),
        "GET",
        "/api/v1/implants/1/prescriptions",
        None,
    )
    .await;
    assert_eq!(rxs.as_array().unwrap().len(), 2, "no version added: {rxs}");
    // A form without the session's token changes nothing.
    let (dr_token, _) = api_login(&api, "dr.demo").await;
    let req = Request::builder()
        .method("POST")
        .uri("/implants/1/prescription")
        .header(header::COOKIE, format!("thecal_session={dr_token}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(
            "csrf=forged&action=confirm&drug=baclofen&concentration=2000+mcg%2FmL&daily_dose=200+mcg%2Fday&reservoir_volume=20+mL&reason=x",
        ))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (_, rxs, _) = api_call(
        &api,
        Some(&(token, csrf)),
        "GET",
        "/api/v1/implants/1/prescriptions",
        None,
    )
    .await;
    assert_eq!(rxs.as_array().unwrap().len(), 2, "no version added: {rxs}");
    // An auditor reads the audit log; the reads of records are in it.
    let (at, _) = api_login(&api, "audit.demo").await;
    let (s, page, _) = get(&app, "/audit", Some(&format!("thecal_session={at}"))).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("Audit log"));
}

async fn post_form(
    app: &axum::Router,
    path: &str,
    cookie: &str,
    body: String,
) -> (StatusCode, String) {
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Every route of the forms and the prescription editor × every role: the page and the
/// post are refused (403, nothing stored) exactly where the API's table refuses the API
/// route they call; the anonymous are sent to sign in.
async fn form_routes_by_role_clinic_135_walk() {
    use thecal_clinic::auth::{self, Role};
    use thecal_clinic::web::{forms, prescribe};
    let clinic = Clinic::new().await;
    let app = clinic.app();
    let api = thecal_clinic::api::router(clinic.state.clone());
    let admin = api_login(&api, "admin.demo").await;
    let (s, v, _) = api_call(
        &api,
        Some(&admin),
        "POST",
        "/api/v1/users",
        Some(json!({"username": "er.demo", "password": PASSWORD, "role": "emergency"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let mut routes: Vec<(&str, &str, (&str, &str))> = forms::ROUTES
        .iter()
        .map(|r| (r.method, r.path, r.api))
        .collect();
    routes.extend(
        prescribe::ROUTES
            .iter()
            .map(|(m, p)| (*m, *p, prescribe::PRESCRIBE)),
    );
    let users = [
        ("dr.demo", Role::Physician),
        ("rn.demo", Role::Nurse),
        ("rph.demo", Role::Pharmacist),
        ("admin.demo", Role::Administrator),
        ("audit.demo", Role::Auditor),
        ("er.demo", Role::Emergency),
    ];
    let dr = api_login(&api, "dr.demo").await;
    let count = |path: &'static str| {
        let api = api.clone();
        let dr = dr.clone();
        async move {
            let (_, v, _) = api_call(&api, Some(&dr), "GET", path, None).await;
            v.to_string().len()
        }
    };
    let before = (
        count("/api/v1/patients?limit=1000").await,
        count("/api/v1/patients/1").await,
        count("/api/v1/implants/1/alarms").await,
        count("/api/v1/implants/1/prescriptions").await,
        count("/api/v1/visits/1").await,
    );
    let mut walked = 0;
    for (user, role) in users {
        let (token, csrf) = api_login(&api, user).await;
        let cookie = format!("thecal_session={token}");
        for (method, path, rule) in &routes {
            // Ids of the demo clinic: patient 1, implant 1, alarm 1, visit 1.
            let concrete = path.replace("{id}", "1");
            let allowed = auth::allowed(auth::rule(rule.0, rule.1).unwrap(), Some(role));
            let (status, page) = if *method == "GET" {
                let (s, p, _) = get(&app, &concrete, Some(&cookie)).await;
                (s, p)
            } else {
                post_form(&app, &concrete, &cookie, format!("csrf={csrf}")).await
            };
            walked += 1;
            if allowed {
                assert_ne!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{user} {method} {concrete}: {page}"
                );
                assert!(
                    status != StatusCode::SEE_OTHER || *method == "POST",
                    "{user} {method} {concrete}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{user} {method} {concrete}: {page}"
                );
                let article = match role {
                    Role::Administrator | Role::Auditor | Role::Emergency => "An",
                    _ => "A",
                };
                assert!(
                    page.contains(&format!("{article} {} may not", role.as_str())),
                    "{page}"
                );
            }
            // The anonymous are sent to sign in.
            if *method == "GET" {
                let (s, _, h) = get(&app, &concrete, None).await;
                assert_eq!(s, StatusCode::SEE_OTHER, "{method} {concrete}");
                assert_eq!(h[header::LOCATION], "/signin");
            } else {
                let (s, _) = post_form(&app, &concrete, "x=1", "csrf=x".into()).await;
                assert_eq!(s, StatusCode::SEE_OTHER, "{method} {concrete}");
            }
        }
    }
    assert_eq!(walked, 6 * routes.len());
    // The empty posts of the allowed stored nothing either (every field is required).
    let after = (
        count("/api/v1/patients?limit=1000").await,
        count("/api/v1/patients/1").await,
        count("/api/v1/implants/1/alarms").await,
        count("/api/v1/implants/1/prescriptions").await,
        count("/api/v1/visits/1").await,
    );
    assert_eq!(before, after, "a refused or empty form changed a record");
}

/// A confirm whose values differ from the review on the screen is reviewed again, not
/// stored (the review's digest); the check while typing answers the review region only.
async fn confirm_needs_the_review_of_its_own_values_clinic_131_walk() {
    let clinic = Clinic::new().await;
    let app = clinic.app();
    let api = thecal_clinic::api::router(clinic.state.clone());
    let (token, csrf) = api_login(&api, "dr.demo").await;
    let cookie = format!("thecal_session={token}");
    let values = "drug=baclofen&concentration=2000+mcg%2FmL&daily_dose=230+mcg%2Fday&reservoir_volume=20+mL&reason=titration";
    let (s, fragment) = post_form(
        &app,
        "/implants/1/prescription/check",
        &cookie,
        format!("csrf={csrf}&{values}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        fragment
            .trim_start()
            .starts_with("<div class=\"review-body\""),
        "{fragment}"
    );
    assert!(!fragment.contains("<html"), "a fragment, not a page");
    let digest = fragment
        .split("name=\"reviewed\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(digest.len(), 64, "{fragment}");
    let versions = |api: axum::Router, t: (String, String)| async move {
        let (_, v, _) = api_call(
            &api,
            Some(&t),
            "GET",
            "/api/v1/implants/1/prescriptions",
            None,
        )
        .await;
        v.as_array().unwrap().len()
    };
    let n0 = versions(api.clone(), (token.clone(), csrf.clone())).await;
    // The dose changed after the review: not stored, the review of the values sent shown.
    let changed = values.replace("230+mcg", "260+mcg");
    let (s, page) = post_form(
        &app,
        "/implants/1/prescription",
        &cookie,
        format!("csrf={csrf}&action=confirm&reviewed={digest}&{changed}&confirm_soft_findings=ok"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains("data-testid=\"review-notice\""), "{page}");
    assert!(page.contains("260 mcg/day"), "{page}");
    assert_eq!(
        versions(api.clone(), (token.clone(), csrf.clone())).await,
        n0
    );
    // The values reviewed are stored.
    let (s, page) = post_form(
        &app,
        "/implants/1/prescription",
        &cookie,
        format!("csrf={csrf}&action=confirm&reviewed={digest}&{values}&confirm_soft_findings=ok"),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(versions(api, (token, csrf)).await, n0 + 1);
}

/// Search finds every patient: 1,100 more patients than the API's list returns at once,
/// paged by 50 with a count and next and previous links.
async fn search_pages_reach_every_patient_clinic_133_walk() {
    use thecal_clinic::storage::{BulkRow, Kind, NewRow};
    let clinic = Clinic::new().await;
    let rows: Vec<BulkRow> = (0..1100)
        .map(|i| BulkRow {
            row: NewRow {
                parent_id: None,
                key: Some(format!("BULK-{i:04}")),
                status: "referred".into(),
                data: json!({"id": 0, "state": "referred", "mrn": format!("BULK-{i:04}"),
                    "name": format!("Bulk Patient {i:04}"), "date_of_birth": "1960-01-01",
                    "condition": {"kind": "pain", "type": "cancer"}, "allergies": "", "contacts": ""})
                .to_string(),
            },
            seq: 1,
        })
        .collect();
    clinic
        .state
        .store
        .insert_bulk(None, Kind::Patient, rows, Utc::now().timestamp_millis())
        .await
        .unwrap();
    let app = clinic.app();
    let api = thecal_clinic::api::router(clinic.state.clone());
    let (token, _) = api_login(&api, "rn.demo").await;
    let cookie = format!("thecal_session={token}");
    let (s, page, _) = get(&app, "/patients?q=bulk+patient", Some(&cookie)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("1100 found, showing 1–50 (page 1 of 22)"),
        "{page}"
    );
    // The last patient, beyond the first 1,000, is on the last page.
    let (_, last, _) = get(&app, "/patients?q=bulk+patient&page=22", Some(&cookie)).await;
    assert!(last.contains("Bulk Patient 1099"), "{last}");
    assert!(last.contains("showing 1051–1100"), "{last}");
    assert!(
        last.contains("href=\"/patients?q=bulk+patient&#38;page=21\""),
        "{last}"
    );
    assert!(!last.contains("data-testid=\"next\""));
    // Every page once, by the next links: each patient exactly once.
    let mut seen = std::collections::BTreeSet::new();
    let mut path = "/patients?q=bulk+patient".to_owned();
    loop {
        let (_, p, _) = get(&app, &path, Some(&cookie)).await;
        for name in p.split(">Bulk Patient ").skip(1) {
            assert!(seen.insert(name[..4].to_owned()), "twice: {}", &name[..4]);
        }
        match p
            .split("rel=\"next\" data-testid=\"next\"")
            .next()
            .and_then(|h| h.rsplit("href=\"").next())
        {
            Some(h) if p.contains("data-testid=\"next\"") => {
                path = h.split('"').next().unwrap().replace("&#38;", "&");
            }
            _ => break,
        }
    }
    assert_eq!(seen.len(), 1100);
    let (s, bad, _) = get(&app, "/patients?q=bulk&page=99", Some(&cookie)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(bad.contains("a whole number from 1 to 22"), "{bad}");
}

/// The demo clinic with Ada's pump running as a virtual implant at 600 times real time,
/// its priming over; the API signed in as the demo physician; Ada's patient and implant
/// ids.
struct DemoPump {
    clinic: Clinic,
    station: std::sync::Arc<thecal_clinic::programming::Station>,
    implants: Vec<thecal_clinic::programming::demo::DemoImplant>,
    api: axum::Router,
    dr: (String, String),
    pid: i64,
    iid: i64,
}

/// A new version of Ada's prescription: 240 mcg/day of the 2 mg/mL in her pump.
async fn prescribe_240(api: &axum::Router, dr: &(String, String), iid: i64) {
    let (s, v, _) = api_call(
        api,
        Some(dr),
        "POST",
        &format!("/api/v1/implants/{iid}/prescriptions"),
        Some(
            json!({"drug": "baclofen", "concentration": "2000 mcg/mL", "daily_dose": "240 mcg/day",
                    "reservoir_volume": "20 mL", "reason": "spasms at night",
                    "confirm_soft_findings": "titration agreed"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn demo_pump() -> DemoPump {
    let clinic = Clinic::new().await;
    let station = std::sync::Arc::new(
        thecal_clinic::programming::Station::open(&clinic.dir.join("programmer")).unwrap(),
    );
    let (implants, skipped) = thecal_clinic::programming::demo::start(
        &clinic.state.store,
        &station,
        &clinic.dir.join("implants"),
        1,
        600,
    )
    .await
    .unwrap();
    assert_eq!(implants.len(), 1, "{skipped:?}");
    assert_eq!(implants[0].serial, "DEMO-NGP-001");
    primed(&station, "DEMO-NGP-001").await;
    let api = thecal_clinic::api::router(clinic.state.clone());
    let dr = api_login(&api, "dr.demo").await;
    let (_, list, _) = api_call(&api, Some(&dr), "GET", "/api/v1/patients?limit=1000", None).await;
    let pid = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["mrn"] == "DEMO-001")
        .and_then(|p| p["id"].as_i64())
        .unwrap_or_else(|| panic!("{list}"));
    let (_, rec, _) = api_call(
        &api,
        Some(&dr),
        "GET",
        &format!("/api/v1/patients/{pid}"),
        None,
    )
    .await;
    let iid = rec["implants"][0]["id"].as_i64().unwrap();
    DemoPump {
        clinic,
        station,
        implants,
        api,
        dr,
        pid,
        iid,
    }
}

/// A program change on a running virtual implant (the demo's Ada), from the console:
/// interrogation with the disagreement named, old against new, send, read back.
async fn program_change_read_back_on_a_virtual_implant_in_chromium_clinic_157_walk() {
    let Some(b) = browser("programming").await else {
        return;
    };
    let DemoPump {
        clinic,
        station,
        implants,
        api,
        dr,
        pid,
        iid,
    } = demo_pump().await;
    prescribe_240(&api, &dr, iid).await;
    let base = clinic.serve_with(station).await;
    b.sign_in(&base, "dr.demo").await;
    b.go(&format!("{base}/patients/{pid}")).await;
    b.click("a[href$='/programming']").await;
    assert_eq!(b.band().await.0, "Ada Demo");
    assert!(
        b.text_of("[data-testid=link-state]")
            .await
            .contains("enrolled")
    );
    b.shot("programming-pump").await;
    b.click("[data-testid=interrogate]").await;
    let d = b.text_of("[data-testid=disagreements]").await;
    assert!(d.contains("program: prescription version"), "{d}");
    b.shot("programming-interrogated").await;
    // The pump itself finds a second increase within a day of the last (its first fill
    // was just programmed): the clinician confirms it with a reason.
    b.type_in("confirm-program", "titration agreed").await;
    b.click("[data-testid=choose-program]").await;
    // Old against new on the same screen as the send button.
    let old = b.text_of("[data-testid=review-1]").await;
    let new = b.text_of("[data-testid=review-2]").await;
    assert!(old.starts_with("OLD (running now"), "{old}");
    assert!(new.contains("240 mcg/day baclofen"), "{new}");
    b.shot("programming-review").await;
    b.click("[data-testid=send]").await;
    let status = b.text_of("[data-testid=session-status]").await;
    assert!(
        status.contains("confirmed") && status.contains("read back"),
        "{status}"
    );
    let confirmed = b.text_of("[data-testid=confirmed]").await;
    assert!(confirmed.contains("240 mcg/day baclofen"), "{confirmed}");
    b.shot("programming-confirmed").await;
    b.close().await;
    drop(implants);
}

/// Waits until the demo pump's priming has ended (its time runs 600 times faster): the
/// catheter holds drug to the tip.
async fn primed(station: &std::sync::Arc<thecal_clinic::programming::Station>, serial: &str) {
    for _ in 0..600 {
        let (st, serial2) = (station.clone(), serial.to_owned());
        let (s, _) = tokio::task::spawn_blocking(move || {
            st.with(&serial2, thecal_programmer::session::status)
        })
        .await
        .unwrap()
        .unwrap();
        if s.ahead_of_drug.is_zero() && !s.bolus_active {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{serial}: the priming did not end");
}

/// A refill with a concentration change on the demo's running pump: the look ahead
/// beside the review shows the old, stronger fluid in the catheter reaching the tip too
/// fast when bridging is off (held at the limiter's cap, with its alarm); the send
/// button needs the acknowledgement ticked; the change is read back with who
/// acknowledged.
async fn refill_look_ahead_warns_when_bridging_is_off_clinic_117_clinic_119_walk() {
    let Some(b) = browser("lookahead").await else {
        return;
    };
    let DemoPump {
        clinic,
        station,
        implants,
        api,
        dr,
        pid: _,
        iid,
    } = demo_pump().await;
    let rn = api_login(&api, "rn.demo").await;
    let (_, rxs, _) = api_call(
        &api,
        Some(&dr),
        "GET",
        &format!("/api/v1/implants/{iid}/prescriptions"),
        None,
    )
    .await;
    let dose = rxs.as_array().unwrap().last().unwrap()["daily_dose"]
        .as_str()
        .unwrap()
        .to_owned();
    // Half the concentration, the same daily dose: the pump will run twice as fast.
    let (s, v, _) = api_call(
        &api,
        Some(&dr),
        "POST",
        &format!("/api/v1/implants/{iid}/prescriptions"),
        Some(
            json!({"drug": "baclofen", "concentration": "1000 mcg/mL", "daily_dose": dose,
                    "reservoir_volume": "20 mL", "reason": "concentration change",
                    "confirm_soft_findings": "concentration change agreed"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v, _) = api_call(
        &api,
        Some(&rn),
        "POST",
        &format!("/api/v1/implants/{iid}/visits"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let vid = v["id"].as_i64().unwrap();
    let (s, v, _) = api_call(
        &api,
        Some(&rn),
        "POST",
        &format!("/api/v1/visits/{vid}/aspirate"),
        Some(json!({"aspirated": "19 mL", "investigation": "pump time accelerated in the demo"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = api_call(
        &api,
        Some(&rn),
        "POST",
        &format!("/api/v1/visits/{vid}/fill"),
        Some(
            json!({"volume_added": "18 mL", "concentration": "1000 mcg/mL", "lot": "L7",
                    "expiry": "2027-06-01", "bridging": "none"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let base = clinic.serve_with(station).await;
    b.sign_in(&base, "rn.demo").await;
    b.go(&format!("{base}/implants/{iid}/programming")).await;
    b.click("[data-testid=interrogate]").await;
    b.choose("visit_id", &vid.to_string()).await;
    b.choose("bridge", "none").await;
    b.click("[data-testid=choose-refill]").await;
    let warn = b.text_of("[data-testid=lookahead-warnings]").await;
    assert!(
        warn.contains("TOO HIGH") && warn.contains("dose limit"),
        "{warn}"
    );
    let table = b.text_of("[data-testid=lookahead]").await;
    assert!(table.contains("of") && table.contains("%"), "{table}");
    assert!(
        b.text_of("[data-testid=lookahead-refill]")
            .await
            .contains("Next refill")
    );
    b.shot("programming-lookahead").await;
    b.axe("programming-lookahead").await;
    // The send button does not submit until the acknowledgement is ticked.
    b.tick("[data-testid=send]").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = b.text_of("[data-testid=session-status]").await;
    assert!(status.contains("reviewed"), "{status}");
    let label = b.text_of("label[for=acknowledge]").await;
    assert!(label.contains("rn.demo"), "{label}");
    b.tick("[data-testid=acknowledge]").await;
    b.click("[data-testid=send]").await;
    let status = b.text_of("[data-testid=session-status]").await;
    assert!(status.contains("confirmed"), "{status}");
    let ack = b.text_of("[data-testid=acknowledged]").await;
    assert!(ack.contains("Acknowledged by rn.demo"), "{ack}");
    b.shot("programming-lookahead-sent").await;
    b.close().await;
    drop(implants);
}

/// A program change on the demo's running pump, the pump killed after it took the
/// command and before the read-back: the console says the session stays pending; an
/// entry of the pump's event log is forged while it is off; at the next interrogation
/// the console shows the change found applied (the record rolled forward to what the
/// pump holds) and the broken chain as an alarm, importing nothing.
async fn killed_mid_session_and_forged_log_clinic_152_clinic_154_walk() {
    let Some(b) = browser("reconcile").await else {
        return;
    };
    let DemoPump {
        clinic,
        station,
        mut implants,
        api,
        dr,
        pid: _,
        iid,
    } = demo_pump().await;
    let demo = implants.pop().unwrap();
    let addr = demo.addr.to_string();
    let running = std::sync::Arc::new(std::sync::Mutex::new(Some(demo.running)));
    let state = clinic.dir.join("implants").join("DEMO-NGP-001");
    prescribe_240(&api, &dr, iid).await;
    let base = clinic.serve_with(station.clone()).await;
    b.sign_in(&base, "dr.demo").await;
    b.go(&format!("{base}/implants/{iid}/programming")).await;
    b.click("[data-testid=interrogate]").await;
    b.type_in("confirm-program", "titration agreed").await;
    b.click("[data-testid=choose-program]").await;
    if b.c()
        .find(Locator::Css("[data-testid=acknowledge]"))
        .await
        .is_ok()
    {
        b.tick("[data-testid=acknowledge]").await;
    }
    // The pump takes the command, then stops before it is read back.
    let r2 = running.clone();
    station.set_fault(Some(std::sync::Arc::new(move |step| {
        if step == thecal_clinic::programming::Step::AfterSend {
            if let Some(r) = r2.lock().unwrap().take() {
                r.stop().unwrap();
            }
        }
        Ok(())
    })));
    b.click("[data-testid=send]").await;
    station.set_fault(None);
    let err = b.text_of("[data-testid=session-error]").await;
    assert!(err.contains("stays pending"), "{err}");
    assert!(
        b.text_of("[data-testid=session-status]")
            .await
            .contains("pending")
    );
    b.shot("programming-pending").await;
    // While it is off, the new program's log entry is rewritten.
    let log = state.join("events.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let forged = lines
        .iter()
        .rposition(|e| e["event"].get("ProgramChanged").is_some())
        .unwrap();
    lines[forged]["event"] = json!({"ProgramChanged": {"version": 99}});
    let out: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, out).unwrap();
    let mut config = thecal_programmer::implant::Config::new(&state);
    config.model = Some("synchromed-20".into());
    config.speed = 600;
    *running.lock().unwrap() = Some(thecal_programmer::implant::spawn(config, &addr).unwrap());
    b.go(&format!("{base}/implants/{iid}/programming")).await;
    b.click("[data-testid=interrogate]").await;
    let reconciled = b.text_of("[data-testid=reconciled]").await;
    assert!(reconciled.contains("found applied"), "{reconciled}");
    let alarm = b.text_of("[data-testid=log-alarm]").await;
    assert!(alarm.contains("EVENT LOG CHAIN BROKEN"), "{alarm}");
    b.shot("programming-reconciled-forged-log").await;
    b.axe("programming-reconciled-forged-log").await;
    // The alarm is in the record.
    let (_, alarms, _) = api_call(
        &api,
        Some(&dr),
        "GET",
        &format!("/api/v1/implants/{iid}/alarms"),
        None,
    )
    .await;
    assert!(
        alarms.to_string().contains("event log chain broken"),
        "{alarms}"
    );
    b.close().await;
    if let Some(r) = running.lock().unwrap().take() {
        r.stop().unwrap();
    }
}

// ---------------------------------------------------------------- the tests

#[test]
fn refill_visit_with_flagged_reconciliation_in_chromium_clinic_100_clinic_101_clinic_102_clinic_103_clinic_109()
 {
    run(refill_visit_with_flagged_reconciliation_in_chromium_clinic_100_clinic_101_clinic_102_clinic_103_walk());
}

#[test]
fn prescription_change_trial_and_nurse_denied_in_chromium_clinic_104_clinic_105_clinic_109() {
    run(prescription_change_trial_and_nurse_denied_in_chromium_clinic_104_clinic_105_walk());
}

#[test]
fn forms_admixture_findings_while_typing_and_release_in_chromium_clinic_130_clinic_131_clinic_132_clinic_134_clinic_109()
 {
    run(forms_admixture_and_release_in_chromium_walk());
}

#[test]
fn expired_session_and_inert_markup_in_chromium_clinic_106_clinic_107_clinic_109() {
    run(expired_session_and_inert_markup_in_chromium_clinic_106_clinic_107_walk());
}

#[test]
fn signin_needs_the_form_token_and_assets_are_local_clinic_100_clinic_108() {
    run(signin_needs_the_form_token_and_assets_are_local_clinic_100_clinic_108_walk());
}

#[test]
fn role_checks_on_pages_and_posts_clinic_105() {
    run(role_checks_on_pages_and_posts_clinic_105_walk());
}

#[test]
fn form_routes_by_role_clinic_135() {
    run(form_routes_by_role_clinic_135_walk());
}

#[test]
fn confirm_needs_the_review_of_its_own_values_clinic_131() {
    run(confirm_needs_the_review_of_its_own_values_clinic_131_walk());
}

#[test]
fn search_pages_reach_every_patient_clinic_133() {
    run(search_pages_reach_every_patient_clinic_133_walk());
}

#[test]
fn program_change_read_back_on_a_virtual_implant_in_chromium_clinic_157() {
    run(program_change_read_back_on_a_virtual_implant_in_chromium_clinic_157_walk());
}

#[test]
fn refill_look_ahead_warns_when_bridging_is_off_in_chromium_clinic_117_clinic_119() {
    run(refill_look_ahead_warns_when_bridging_is_off_clinic_117_clinic_119_walk());
}

#[test]
fn killed_mid_session_and_forged_log_in_chromium_clinic_152_clinic_154() {
    run(killed_mid_session_and_forged_log_clinic_152_clinic_154_walk());
}
