//! Account administration (the administrator's only page; CLINIC.md §6: accounts only,
//! no clinical data): the accounts with their roles, a form to create one, and per
//! account a form to change its role or disable it, all through the API
//! (`GET /api/v1/users`, `POST /api/v1/users`, `POST /api/v1/users/{id}`), which refuses
//! an administrator's own disabling or demotion.
//! A password typed into a refused form is never sent back.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};

use super::pages::{Ctx, Field};
use super::{Page, Session, Web, check_csrf, refill_fields, render, see_other, val};
use crate::api::accounts::Account;
use crate::auth::Role;

/// An account's row.
#[derive(Debug, Clone)]
pub struct AccountRow {
    /// Id.
    pub id: i64,
    /// User name.
    pub username: String,
    /// Role.
    pub role: &'static str,
    /// May sign in.
    pub active: bool,
    /// The role chosen in a refused form, else the role.
    pub chosen_role: String,
    /// The active box in a refused form, else the account's.
    pub chosen_active: bool,
    /// The error of a refused change of this account.
    pub error: Option<String>,
}

/// The accounts page.
#[derive(Template)]
#[template(path = "accounts.html")]
pub struct AccountsPage {
    /// Layout.
    pub ctx: Ctx,
    /// Accounts by user name.
    pub accounts: Vec<AccountRow>,
    /// Roles: (value, words).
    pub roles: Vec<(String, String)>,
    /// The new account's fields.
    pub fields: Vec<Field>,
    /// An error not tied to one field.
    pub general_error: Option<String>,
    /// The field errors: (name, label, error).
    pub summary: Vec<(String, String, String)>,
}

fn role_options() -> Vec<(String, String)> {
    Role::ALL
        .into_iter()
        .map(|r| {
            let words = match r {
                Role::Physician => "physician: prescribes, records",
                Role::Nurse => "nurse: refills within a prescription, records",
                Role::Pharmacist => "pharmacist: releases compounded lots, reads",
                Role::Administrator => "administrator: accounts only",
                Role::Auditor => "auditor: reads, and the audit log",
                Role::Emergency => "emergency: break-glass view only",
            };
            (r.as_str().to_owned(), words.to_owned())
        })
        .collect()
}

fn new_fields() -> Vec<Field> {
    vec![
        Field::new(
            "username",
            "User name",
            "text",
            "1–64 characters, unique in the clinic.",
        ),
        Field::new(
            "password",
            "Initial password",
            "password",
            "12 to 200 characters; give it to the person in private.",
        ),
        Field::new("role", "Role", "select", "What the account may do.").options(role_options()),
    ]
}

/// A refused form: a new account's (fields) or an account's change (id, role, active, error).
enum Refused<'a> {
    New(&'a HashMap<String, String>, (Option<String>, String)),
    Change(i64, &'a HashMap<String, String>, String),
}

async fn accounts_view(w: &Web, s: &Session, refused: Option<Refused<'_>>) -> Page {
    w.require(s, "GET", "/api/v1/users", "administer accounts")?;
    let list: Vec<Account> = w.get_json(s, "/api/v1/users").await?;
    let mut fields = new_fields();
    let mut general_error = None;
    let mut accounts: Vec<AccountRow> = list
        .into_iter()
        .map(|a| AccountRow {
            id: a.id,
            username: a.username,
            role: a.role.as_str(),
            active: a.active,
            chosen_role: a.role.as_str().to_owned(),
            chosen_active: a.active,
            error: None,
        })
        .collect();
    match refused {
        Some(Refused::New(form, err)) => {
            general_error = refill_fields(&mut fields, form, Some(err));
            // A password is never sent back in a page.
            if let Some(p) = fields.iter_mut().find(|f| f.name == "password") {
                p.value.clear();
            }
        }
        Some(Refused::Change(id, form, msg)) => match accounts.iter_mut().find(|a| a.id == id) {
            Some(a) => {
                a.chosen_role = val(form, "role");
                a.chosen_active = val(form, "active") == "on";
                a.error = Some(msg);
            }
            None => general_error = Some(msg),
        },
        None => {}
    }
    let summary = Field::summary(&fields);
    let status = if general_error.is_some()
        || !summary.is_empty()
        || accounts.iter().any(|a| a.error.is_some())
    {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(render(
        status,
        &AccountsPage {
            ctx: s.ctx(),
            accounts,
            roles: role_options(),
            fields,
            general_error,
            summary,
        },
    ))
}

pub(super) async fn accounts_page(State(w): State<Web>, headers: HeaderMap) -> Page {
    let s = w.session(&headers).await?;
    accounts_view(&w, &s, None).await
}

pub(super) async fn account_create(
    State(w): State<Web>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    w.require(&s, "POST", "/api/v1/users", "create accounts")?;
    let role = val(&form, "role");
    if Role::parse(&role).is_none() {
        let e = (
            Some("role".to_owned()),
            "choose one of the listed roles".to_owned(),
        );
        return accounts_view(&w, &s, Some(Refused::New(&form, e))).await;
    }
    let a = w
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&s),
            Some(serde_json::json!({
                "username": val(&form, "username"),
                "password": val(&form, "password"),
                "role": role,
            })),
        )
        .await?;
    if a.status.is_success() {
        return Ok(see_other("/admin/accounts"));
    }
    accounts_view(&w, &s, Some(Refused::New(&form, a.error()))).await
}

pub(super) async fn account_change(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    w.require(&s, "POST", "/api/v1/users/{id}", "change accounts")?;
    let role = val(&form, "role");
    if Role::parse(&role).is_none() {
        return accounts_view(
            &w,
            &s,
            Some(Refused::Change(
                id,
                &form,
                "choose one of the listed roles".to_owned(),
            )),
        )
        .await;
    }
    let a = w
        .call(
            Method::POST,
            &format!("/api/v1/users/{id}"),
            Some(&s),
            Some(serde_json::json!({"role": role, "active": val(&form, "active") == "on"})),
        )
        .await?;
    if a.status.is_success() {
        return Ok(see_other("/admin/accounts"));
    }
    let (_, msg) = a.error();
    accounts_view(&w, &s, Some(Refused::Change(id, &form, msg))).await
}
