//! Account administration (administrators only): list the accounts, change a role,
//! disable or enable an account. Creating one is `POST /api/v1/users` in the API's root.
//! Nothing here reads or returns clinical data, and password hashes never leave the
//! store.
//!
//! An administrator cannot disable or demote their own account, so the one who acts stays
//! an administrator and the clinic is never left without one (two administrators demoting
//! each other at the same moment could both succeed: the check is not in the database).

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ApiResult, AppState, CurrentUser, ErrorBody, Id};
use crate::auth::Role;

/// An account as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    /// Id.
    pub id: i64,
    /// User name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// May sign in.
    pub active: bool,
}

/// A change of an account: its role and whether it may sign in.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct AccountChange {
    /// The role.
    pub role: Role,
    /// May sign in (false: disabled; its sessions end).
    pub active: bool,
}

fn accounts(rows: Vec<crate::storage::UserRow>) -> Vec<Account> {
    rows.into_iter()
        .filter_map(|u| {
            Some(Account {
                id: u.id,
                role: Role::parse(&u.role)?,
                username: u.username,
                active: u.active,
            })
        })
        .collect()
}

/// Every account, by user name (administrators).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = [Account])))]
pub(super) async fn list_users(State(st): State<AppState>) -> ApiResult<Json<Vec<Account>>> {
    Ok(Json(accounts(st.store.users().await?)))
}

/// Changes an account's role or disables it (administrators). Refused for the
/// administrator's own account.
#[utoipa::path(post, path = "/api/v1/users/{id}", params(("id" = i64, Path, minimum = 1, description = "account id")),
    request_body = AccountChange, tag = "users",
    responses((status = 200, body = Account), (status = 409, body = ErrorBody)))]
pub(super) async fn change_user(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(c): ApiJson<AccountChange>,
) -> ApiResult<Json<Account>> {
    let all = accounts(st.store.users().await?);
    let Some(old) = all.iter().find(|a| a.id == id) else {
        return Err(ApiError::not_found("account"));
    };
    let stays_admin = c.active && c.role == Role::Administrator;
    if old.id == u.actor.user_id && !stays_admin {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "conflict",
            Some(if c.active { "role" } else { "active" }),
            "you cannot disable your own account or take its administrator role; another \
             administrator must",
        ));
    }
    st.store
        .update_user(&u.actor, id, c.role.as_str(), c.active, st.ms())
        .await?;
    Ok(Json(Account {
        id,
        username: old.username.clone(),
        role: c.role,
        active: c.active,
    }))
}
