//! The console's calendar, plots, MRI checklist, replacement plan and account
//! administration, end to end in headless Chromium (the harness of `console_support`):
//! each page checked with axe-core and saved at tablet and desktop sizes; a keyboard-only
//! walk; and, without a browser, every console page × every role against the API's
//! authorization table.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod console_support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{Days, Utc};
use console_support::*;
use fantoccini::Locator;
use fantoccini::key::Key;
use thecal_clinic::auth::{self, Role};
use tower::ServiceExt;

fn shift_date(days: u64) -> String {
    Utc::now()
        .date_naive()
        .checked_add_days(Days::new(days))
        .unwrap()
        .to_string()
}

/// The refill calendar, a patient's plots, the MRI checklist and its episode, the
/// replacement plan, and the accounts page, with refused fields kept and explained.
async fn pages_walk() {
    let Some(b) = browser("pages").await else {
        return;
    };
    let clinic = Clinic::new().await;
    let base = clinic.serve().await;
    b.sign_in(&base, "rn.demo").await;

    // The refill calendar: overdue, this week, the daily list at the clinic's capacity.
    b.click("nav a[href='/calendar']").await;
    let cal = b.main_text().await;
    for want in [
        "Refills overdue (1)",
        "Ada Demo (DEMO-001)",
        "Due this week (1)",
        "at most 8 visits a day",
        "Daily list, 14 days at 8 visits a day",
        "of 8 visits",
    ] {
        assert!(cal.contains(want), "the calendar lacks {want:?}:\n{cal}");
    }
    // Ada is overdue: booked on today's list, after her due date.
    let first_day = b.text_of("[data-testid=cal-daily] > li").await;
    assert!(
        first_day.contains("Ada Demo") && first_day.contains("booked after its due date"),
        "{first_day}"
    );
    b.shot("calendar").await;
    b.type_in("f-days", "40").await;
    b.click("form[action='/calendar'] button").await;
    let err = b.field_error("days").await;
    assert!(err.contains("1 to 31"), "{err}");
    assert_eq!(b.value_of("f-days").await, "40", "kept on error");
    b.shot("calendar-error").await;
    b.type_in("f-days", "31").await;
    b.click("form[action='/calendar'] button").await;
    assert!(b.main_text().await.contains("Daily list, 31 days"));

    // Ada's page: the plots of daily dose and reservoir, with their tables.
    b.click("[data-testid=cal-overdue] a").await;
    assert_eq!(b.band().await.0, "Ada Demo");
    let svgs = b
        .c()
        .find_all(Locator::Css("figure.plot svg[role=img]"))
        .await
        .unwrap();
    assert_eq!(svgs.len(), 2, "a dose plot and a reservoir plot");
    let source = b.c().source().await.unwrap();
    for want in [
        "daily dose (mcg/day)",
        "reservoir (mL)",
        "time since the implant on",
        "(days)",
    ] {
        assert!(source.contains(want), "the plots lack the axis {want:?}");
    }
    let label = svgs[0].attr("aria-label").await.unwrap().unwrap();
    assert!(
        label.starts_with("Prescribed daily dose: ") && label.contains("mcg/day"),
        "{label}"
    );
    // The table says what the drawing shows: one row per prescription version.
    b.tick("figure.plot details summary").await;
    let table = b.text_of("figure.plot details table").await;
    assert!(
        table.contains("version 1") && table.contains("mcg/day"),
        "{table}"
    );
    b.shot_at("patient-plots", "figure.plot").await;

    // The MRI checklist: a field strength without its unit, and a check not ticked, are
    // refused next to their fields; what was typed stays.
    b.click("a[href$='/mri']").await;
    assert_eq!(b.band().await.0, "Ada Demo");
    assert!(
        b.text_of("[data-testid=mri-kind]")
            .await
            .contains("peristaltic")
    );
    b.shot("mri").await;
    b.type_in("f-scan_on", &shift_date(10)).await;
    b.type_in("f-field_strength", "1.5").await;
    b.type_in("f-labeling", "SynchroMed II MRI guidelines 2019")
        .await;
    b.type_in(
        "f-therapy_plan",
        "oral baclofen 10 mg three times a day from the evening before",
    )
    .await;
    b.tick("#f-chk_motor").await;
    b.click("form[action$='/mri'] button").await;
    let err = b.field_error("field_strength").await;
    assert!(err.contains("unit T is missing"), "{err}");
    assert_eq!(b.value_of("f-field_strength").await, "1.5");
    assert_eq!(
        b.value_of("f-labeling").await,
        "SynchroMed II MRI guidelines 2019"
    );
    assert!(
        b.text_of("[data-testid=error-summary]")
            .await
            .contains("Field strength")
    );
    b.shot("mri-error").await;
    b.type_in("f-field_strength", "1.5 T").await;
    b.click("form[action$='/mri'] button").await;
    assert!(b.field_error("chk_conditions").await.contains("required"));
    b.tick("#f-chk_conditions").await;
    b.tick("#f-chk_after").await;
    // The first box stayed ticked through the refusal.
    assert!(
        b.c()
            .find(Locator::Id("f-chk_motor"))
            .await
            .unwrap()
            .is_selected()
            .await
            .unwrap()
    );
    b.click("form[action$='/mri'] button").await;
    assert!(
        b.path().await.starts_with("/mri/"),
        "{}",
        b.main_text().await
    );
    let ep = b.text_of("[data-testid=mri-episode]").await;
    assert!(ep.contains("1.5 T"), "{ep}");
    b.shot("mri-episode").await;
    // It does not close without the post-scan interrogation.
    b.type_in(
        "f-findings",
        "motor running; no alarms; reservoir as expected",
    )
    .await;
    b.click("form[action^='/mri/'] button").await;
    let err = b.field_error("post_scan_interrogation").await;
    assert!(err.contains("post-scan interrogation"), "{err}");
    assert_eq!(
        b.value_of("f-findings").await,
        "motor running; no alarms; reservoir as expected"
    );
    b.shot("mri-close-refused").await;
    b.tick("#f-post_scan_interrogation").await;
    b.click("form[action^='/mri/'] button").await;
    let ep = b.text_of("[data-testid=mri-episode]").await;
    assert!(ep.contains("done; closed by rn.demo"), "{ep}");

    // The replacement plan, most urgent first; a nurse sees it but may not plan.
    b.click("nav a[href='/replacements']").await;
    let list = b.text_of("[data-testid=replacements]").await;
    assert!(list.contains("Ben Demo (DEMO-002)"), "{list}");
    b.shot("replacements").await;
    b.click("[data-testid=replacements] a").await;
    assert_eq!(b.band().await.0, "Ben Demo");
    assert!(
        b.c()
            .find(Locator::Css("input[name=action][value=plan]"))
            .await
            .is_err(),
        "a nurse may not plan a replacement"
    );
    let replacement_path = b.path().await;
    b.sign_out().await;

    // A physician plans it: a date after the projected stop is refused, then a good one.
    b.sign_in(&base, "dr.demo").await;
    b.go(&format!("{base}{replacement_path}")).await;
    let projection = b.text_of("[data-testid=projection]").await;
    assert!(projection.contains("replace before"), "{projection}");
    b.type_in("f-planned_on", &shift_date(3000)).await;
    b.type_in("f-notes", "catheter kept; oral baclofen bridge")
        .await;
    b.click("form:has(input[name=action][value=plan]) button")
        .await;
    let err = b.field_error("planned_on").await;
    assert!(err.contains("before the projected stop"), "{err}");
    assert_eq!(
        b.value_of("f-notes").await,
        "catheter kept; oral baclofen bridge"
    );
    b.shot("replacement-error").await;
    b.type_in("f-planned_on", &shift_date(7)).await;
    b.click("form:has(input[name=action][value=plan]) button")
        .await;
    assert!(b.text_of("[data-testid=plans]").await.contains("planned"));
    b.choose("f-status", "scheduled").await;
    b.click("form:has(input[name=action][value=status]) button")
        .await;
    assert!(b.text_of("[data-testid=plans]").await.contains("scheduled"));
    b.shot("replacement").await;
    b.sign_out().await;

    // The administrator: accounts only, no clinical data anywhere.
    b.sign_in_to(&base, "admin.demo", "/admin/accounts").await;
    let page = b.main_text().await;
    assert!(
        page.contains("dr.demo") && page.contains("rn.demo"),
        "{page}"
    );
    assert!(!page.contains("Demo ("), "no patient on the accounts page");
    let nav = b.text_of("header.top nav").await;
    assert_eq!(
        nav.split_whitespace().collect::<Vec<_>>(),
        ["Accounts"],
        "{nav}"
    );
    b.shot("accounts").await;
    b.type_in("f-username", "rn.new").await;
    b.type_in("f-password", "short").await;
    b.choose("f-role", "nurse").await;
    b.click("form[action='/admin/accounts'] > button").await;
    assert!(b.field_error("password").await.contains("12"));
    assert_eq!(b.value_of("f-username").await, "rn.new", "kept on error");
    assert_eq!(
        b.value_of("f-password").await,
        "",
        "a password is never sent back"
    );
    b.shot("accounts-error").await;
    b.type_in("f-password", "a long enough password").await;
    b.click("form[action='/admin/accounts'] > button").await;
    let list = b.text_of("[data-testid=accounts]").await;
    assert!(list.contains("rn.new"), "{list}");
    // Disable it; then the administrator's own account cannot be disabled.
    let new_id = b
        .c()
        .execute(
            "for (const th of document.querySelectorAll('[data-testid=accounts] th[scope=row]'))
               if (th.textContent === 'rn.new')
                 return th.closest('tr').querySelector('form').action.split('/').pop();",
            vec![],
        )
        .await
        .unwrap();
    let new_id = new_id.as_str().unwrap().to_owned();
    b.tick(&format!("#active-{new_id}")).await;
    b.click(&format!("form[action='/admin/accounts/{new_id}'] button"))
        .await;
    assert!(
        b.text_of("[data-testid=accounts]")
            .await
            .contains("rn.new nurse disabled")
    );
    let me = b
        .c()
        .execute(
            "for (const th of document.querySelectorAll('[data-testid=accounts] th[scope=row]'))
               if (th.textContent === 'admin.demo')
                 return th.closest('tr').querySelector('form').action.split('/').pop();",
            vec![],
        )
        .await
        .unwrap();
    let me = me.as_str().unwrap().to_owned();
    b.tick(&format!("#active-{me}")).await;
    b.click(&format!("form[action='/admin/accounts/{me}'] button"))
        .await;
    let err = b.text_of("[data-testid=account-error]").await;
    assert!(err.contains("cannot disable your own account"), "{err}");
    b.shot("accounts-own-refused").await;
    // A clinical page is refused to the administrator, by the page.
    b.go(&format!("{base}/patients/1")).await;
    let denied = b.main_text().await;
    assert!(
        denied.contains("An administrator may not read patients' records")
            && !denied.contains("Demo"),
        "{denied}"
    );
    b.close().await;
}

/// Keyboard only: sign in, find a patient, open the MRI checklist, fill it in and send it,
/// then close the episode, with Tab, Enter, Space and typing. The focus follows the
/// reading order and every focused element shows its focus.
async fn keyboard_walk() {
    let Some(b) = browser("keyboard").await else {
        return;
    };
    let clinic = Clinic::new().await;
    let base = clinic.serve().await;
    let tab = Key::Tab.to_string();
    let enter = Key::Enter.to_string();
    let space = Key::Space.to_string();

    b.go(&format!("{base}/signin")).await;
    // The skip link comes first, then the form in order.
    let order = b.tab_to("#f-username", 5).await;
    assert_eq!(order, ["a[href=#main]", "#f-username"]);
    b.press("rn.demo").await;
    b.press(&tab).await;
    assert_eq!(b.focused().await, "#f-password");
    b.press(PASSWORD).await;
    b.press_to_load(&enter).await;
    assert_eq!(b.path().await, "/today");

    // Find a patient: the menu in its order, then the search field.
    let order = b.tab_to("a[href=/patients]", 10).await;
    assert_eq!(
        order,
        [
            "a[href=#main]",
            "a[href=/today]",
            "a[href=/calendar]",
            "a[href=/patients]"
        ]
    );
    b.press_to_load(&enter).await;
    assert_eq!(b.path().await, "/patients");
    let order = b.tab_to("#q", 12).await;
    assert_eq!(order.last().unwrap(), "#q");
    assert!(
        order.iter().position(|e| e == "button \"Sign out\"")
            < order.iter().position(|e| e == "#q"),
        "the header before the page: {order:?}"
    );
    b.press("ada").await;
    b.press_to_load(&enter).await;
    let hit = b.tab_to("a[href=/patients/1]", 20).await;
    assert_eq!(hit.last().unwrap(), "a[href=/patients/1]");
    b.press_to_load(&enter).await;
    assert_eq!(b.band().await.0, "Ada Demo");

    // The MRI checklist: reached, filled in and sent from the keyboard.
    b.tab_to("a[href=/implants/1/mri]", 30).await;
    b.press_to_load(&enter).await;
    assert_eq!(b.path().await, "/implants/1/mri");
    b.tab_to("#f-scan_on", 20).await;
    // A date field takes the digits in the order of the browser's locale (month first in
    // en-US, day first in en-GB): ask the browser for it.
    let date = Utc::now()
        .date_naive()
        .checked_add_days(Days::new(10))
        .unwrap();
    let order = b
        .c()
        .execute(
            "return new Intl.DateTimeFormat(navigator.language)
               .formatToParts(new Date(2000, 10, 22))
               .filter(p => ['day', 'month', 'year'].includes(p.type))
               .map(p => p.type[0]).join('');",
            vec![],
        )
        .await
        .unwrap();
    let typed: String = order
        .as_str()
        .unwrap()
        .chars()
        .map(|c| match c {
            'd' => date.format("%d").to_string(),
            'm' => date.format("%m").to_string(),
            _ => date.format("%Y").to_string(),
        })
        .collect();
    b.press(&typed).await;
    assert_eq!(b.value_of("f-scan_on").await, date.to_string(), "{order}");
    let order = b.tab_to("#f-field_strength", 5).await;
    assert_eq!(order, ["#f-scan_on", "#f-field_strength"]);
    b.press("1.5 T").await;
    for (id, typed) in [
        ("#f-labeling", "SynchroMed II MRI guidelines 2019"),
        (
            "#f-therapy_plan",
            "oral baclofen bridge from the evening before",
        ),
    ] {
        b.press(&tab).await;
        assert_eq!(b.focused().await, id);
        b.press(typed).await;
    }
    for id in ["#f-chk_motor", "#f-chk_conditions", "#f-chk_after"] {
        b.press(&tab).await;
        assert_eq!(b.focused().await, id, "the checks in their order");
        assert!(b.focus_visible().await, "{id} shows its focus");
        b.press(&space).await;
    }
    b.press(&tab).await;
    assert_eq!(b.focused().await, "button \"Plan the scan\"");
    assert!(b.focus_visible().await);
    b.press_to_load(&enter).await;
    assert!(
        b.path().await.starts_with("/mri/"),
        "{}",
        b.main_text().await
    );
    // The episode keeps the checks as confirmed, worded as on the checklist.
    let kept = b.main_text().await;
    assert!(
        kept.contains("Checks confirmed at planning")
            && kept.contains("✓ An interrogation after the scan is booked"),
        "{kept}"
    );

    // Close it: the box with Space, the findings typed, Enter on the button.
    b.tab_to("#f-post_scan_interrogation", 30).await;
    b.press(&space).await;
    b.press(&tab).await;
    assert_eq!(b.focused().await, "#f-findings");
    b.press("motor running, no alarms").await;
    b.press(&tab).await;
    assert_eq!(b.focused().await, "button \"Close the episode\"");
    b.press_to_load(&enter).await;
    let ep = b.text_of("[data-testid=mri-episode]").await;
    assert!(ep.contains("done; closed by rn.demo"), "{ep}");
    b.shot("keyboard-mri-closed").await;
    b.close().await;
}

/// Every console page × every role, and anonymous: the page answers as the API's
/// authorization table says the role may read what it shows (200, else 403 saying who
/// may), or sends the anonymous to sign in; the new forms refuse a role the table does
/// not allow, and a form without the session's token, changing nothing.
async fn every_page_and_role_walk() {
    let clinic = Clinic::new().await;
    let app = clinic.app();
    let api = thecal_clinic::api::router(clinic.state.clone());
    // An MRI episode to show.
    let rn = api_login(&api, "rn.demo").await;
    let (s, v, _) = api_call(
        &api,
        Some(&rn),
        "POST",
        "/api/v1/implants/1/mri",
        Some(
            serde_json::json!({"scan_on": shift_date(3), "field_tenths_tesla": 15,
            "labeling": "2019", "therapy_plan": "oral bridge"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let mri = v["id"].as_i64().unwrap();
    // (page, the API route whose rule governs it)
    let pages: Vec<(String, &str, &str)> = vec![
        ("/today".into(), "GET", "/api/v1/calendar"),
        ("/calendar".into(), "GET", "/api/v1/calendar"),
        ("/patients?q=demo".into(), "GET", "/api/v1/patients"),
        ("/patients/1".into(), "GET", "/api/v1/patients/{id}"),
        ("/visits/1".into(), "GET", "/api/v1/visits/{id}"),
        (
            "/visits/1/report".into(),
            "GET",
            "/api/v1/visits/{id}/report",
        ),
        (
            "/implants/1/prescription".into(),
            "POST",
            "/api/v1/implants/{id}/prescriptions",
        ),
        (
            "/patients/1/trial".into(),
            "POST",
            "/api/v1/patients/{id}/trials",
        ),
        ("/implants/1/mri".into(), "GET", "/api/v1/mri/{id}"),
        (format!("/mri/{mri}"), "GET", "/api/v1/mri/{id}"),
        ("/replacements".into(), "GET", "/api/v1/replacements"),
        (
            "/implants/2/replacement".into(),
            "GET",
            "/api/v1/replacements",
        ),
        ("/admin/accounts".into(), "GET", "/api/v1/users"),
        ("/audit".into(), "GET", "/api/v1/audit"),
    ];
    let users = [
        (Role::Physician, "dr.demo"),
        (Role::Nurse, "rn.demo"),
        (Role::Pharmacist, "rph.demo"),
        (Role::Administrator, "admin.demo"),
        (Role::Auditor, "audit.demo"),
    ];
    let mut checked = 0;
    for (path, method, api_path) in &pages {
        let rule = auth::rule(method, api_path).unwrap();
        let (s, _, h) = get(&app, path, None).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "anonymous {path}");
        assert_eq!(h[header::LOCATION], "/signin", "anonymous {path}");
        for (role, user) in users {
            let (token, _) = api_login(&api, user).await;
            let (s, page, _) = get(&app, path, Some(&format!("thecal_session={token}"))).await;
            if auth::allowed(rule, Some(role)) {
                assert_eq!(s, StatusCode::OK, "{role:?} {path}: {page}");
            } else {
                assert_eq!(s, StatusCode::FORBIDDEN, "{role:?} {path}: {page}");
                assert!(page.contains("may not"), "{role:?} {path}: {page}");
                // Nothing clinical on a refusal.
                assert!(!page.contains("Demo"), "{role:?} {path}: {page}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, pages.len() * users.len());

    // The new forms: (path, body, the API route whose rule governs it).
    let forms: Vec<(String, String, &str)> = vec![
        (
            "/implants/1/mri".into(),
            format!(
                "scan_on={}&field_strength=1.5+T&labeling=x&therapy_plan=y&chk_motor=on&chk_conditions=on&chk_after=on",
                shift_date(3)
            ),
            "/api/v1/implants/{id}/mri",
        ),
        (
            format!("/mri/{mri}"),
            "post_scan_interrogation=on&findings=fine".into(),
            "/api/v1/mri/{id}/close",
        ),
        (
            "/implants/2/replacement".into(),
            format!("action=plan&planned_on={}&notes=", shift_date(5)),
            "/api/v1/implants/{id}/replacement-plans",
        ),
        (
            "/admin/accounts".into(),
            "username=new.user&password=a+long+enough+password&role=nurse".into(),
            "/api/v1/users",
        ),
        (
            "/admin/accounts/1".into(),
            "role=administrator&active=on".into(),
            "/api/v1/users/{id}",
        ),
    ];
    for (path, body, api_path) in &forms {
        let rule = auth::rule("POST", api_path).unwrap();
        for (role, user) in users {
            let (token, csrf) = api_login(&api, user).await;
            let post = |b: String| {
                Request::builder()
                    .method("POST")
                    .uri(path.as_str())
                    .header(header::COOKIE, format!("thecal_session={token}"))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(b))
                    .unwrap()
            };
            let before = clinic.state.store.audit(1).await.unwrap()[0].id;
            // Without the token: refused, nothing written.
            let r = app
                .clone()
                .oneshot(post(format!("csrf=forged&{body}")))
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::FORBIDDEN,
                "{role:?} {path} without token"
            );
            assert_eq!(clinic.state.store.audit(1).await.unwrap()[0].id, before);
            let r = app
                .clone()
                .oneshot(post(format!("csrf={csrf}&{body}")))
                .await
                .unwrap();
            if auth::allowed(rule, Some(role)) {
                assert_ne!(r.status(), StatusCode::FORBIDDEN, "{role:?} {path}");
            } else {
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{role:?} {path}");
                assert_eq!(
                    clinic.state.store.audit(1).await.unwrap()[0].id,
                    before,
                    "{role:?} {path}: a refused form wrote nothing"
                );
            }
        }
    }
}

#[test]
fn calendar_plots_mri_replacement_and_accounts_in_chromium_clinic_110_clinic_111_clinic_112_clinic_113_clinic_114_clinic_109()
 {
    run(pages_walk());
}

#[test]
fn keyboard_only_sign_in_search_and_mri_checklist_in_chromium_clinic_115() {
    run(keyboard_walk());
}

#[test]
fn every_console_page_and_form_against_every_role_clinic_105_clinic_116() {
    run(every_page_and_role_walk());
}

/// Account administration through the API: the list carries no password hash; a disabled
/// account's session ends and it cannot sign in; a role change ends its sessions too; an
/// administrator cannot disable or demote themselves (so one always remains), another
/// administrator can; each change is audited with before and after.
async fn accounts_walk() {
    let clinic = Clinic::new().await;
    let api = thecal_clinic::api::router(clinic.state.clone());
    let admin = api_login(&api, "admin.demo").await;
    let (s, list, _) = api_call(&api, Some(&admin), "GET", "/api/v1/users", None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let text = list.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );
    let id_of = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|a| a["username"] == name)
            .map(|a| a["id"].as_i64().unwrap())
            .unwrap()
    };
    let me = id_of("admin.demo");
    let rn = id_of("rn.demo");
    // The nurse is signed in; disabling ends the session and refuses the next sign-in.
    let nurse = api_login(&api, "rn.demo").await;
    let (s, v, _) = api_call(
        &api,
        Some(&admin),
        "POST",
        &format!("/api/v1/users/{rn}"),
        Some(serde_json::json!({"role": "nurse", "active": false})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["active"], false);
    let (s, _, _) = api_call(&api, Some(&nurse), "GET", "/api/v1/calendar", None).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the disabled account's session ended"
    );
    let (s, v, _) = api_call(
        &api,
        None,
        "POST",
        "/api/v1/session",
        Some(serde_json::json!({"username": "rn.demo", "password": PASSWORD})),
    )
    .await;
    assert_ne!(s, StatusCode::OK, "a disabled account cannot sign in: {v}");
    let audit = clinic.state.store.audit(5).await.unwrap();
    let row = audit
        .iter()
        .find(|r| r.action == "update" && r.entity == "user")
        .unwrap();
    assert!(row.before.as_deref().unwrap().contains("\"active\":true"));
    assert!(row.after.as_deref().unwrap().contains("\"active\":false"));
    // A role change ends the physician's sessions (the next request signs in again).
    let dr = api_login(&api, "dr.demo").await;
    let dr_id = id_of("dr.demo");
    let (s, _, _) = api_call(
        &api,
        Some(&admin),
        "POST",
        &format!("/api/v1/users/{dr_id}"),
        Some(serde_json::json!({"role": "auditor", "active": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = api_call(&api, Some(&dr), "GET", "/api/v1/calendar", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Not one's own account, and not the last administrator.
    for body in [
        serde_json::json!({"role": "administrator", "active": false}),
        serde_json::json!({"role": "nurse", "active": true}),
    ] {
        let (s, v, _) = api_call(
            &api,
            Some(&admin),
            "POST",
            &format!("/api/v1/users/{me}"),
            Some(body),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("your own account")
        );
    }
    let (s, v, _) = api_call(
        &api,
        Some(&admin),
        "POST",
        "/api/v1/users",
        Some(serde_json::json!({"username": "admin.two", "password": PASSWORD, "role": "administrator"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let two = api_login(&api, "admin.two").await;
    // The second administrator may demote the first; then the second is the last.
    let (s, v, _) = api_call(
        &api,
        Some(&two),
        "POST",
        &format!("/api/v1/users/{me}"),
        Some(serde_json::json!({"role": "auditor", "active": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = api_call(
        &api,
        Some(&two),
        "POST",
        &format!("/api/v1/users/{}", v["id"]),
        Some(serde_json::json!({"role": "administrator", "active": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let admin = api_login(&api, "admin.demo").await;
    let (_, list, _) = api_call(&api, Some(&admin), "GET", "/api/v1/users", None).await;
    let two_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["username"] == "admin.two")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    // admin.demo is an administrator again; disabling admin.two leaves one: allowed.
    let (s, v, _) = api_call(
        &api,
        Some(&admin),
        "POST",
        &format!("/api/v1/users/{two_id}"),
        Some(serde_json::json!({"role": "administrator", "active": false})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[test]
fn accounts_are_listed_changed_and_disabled_never_by_their_own_administrator_clinic_114() {
    run(accounts_walk());
}
