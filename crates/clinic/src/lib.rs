//! # thecal-clinic: the pump clinic's records, workflows and HTTP API
//!
//! - [`domain`]: records and rules, no I/O and no clock (time is a parameter); every dose,
//!   flow, check, refill plan and reconciliation comes from thecal-rx.
//! - [`storage`]: one trait, an SQLite and a PostgreSQL implementation, each with its own
//!   migrations; every change audited in its own transaction.
//! - [`auth`]: roles, Argon2id, session tokens, the authorization table.
//! - [`api`]: the JSON API under `/api/v1` (axum), described by OpenAPI 3.1.
//! - [`web`]: the web console (server-rendered pages over the API).
//! - [`fhir`]: the records as HL7 FHIR (R4B model): export, read-only endpoints, import.
//! - [`programming`]: the server as the clinician programmer (its key, the link to each
//!   implant, the programming session's record).
//!
//! The service keeps no state outside its database, so several instances may serve one
//! PostgreSQL database behind a proxy.

pub mod api;
pub mod auth;
pub mod bench;
pub mod demo;
pub mod domain;
pub mod fhir;
pub mod programming;
pub mod storage;
pub mod web;

use std::sync::Arc;

use storage::{Storage, StoreError};

/// Creates the first administrator when the database has no user: the password given, or
/// a random one. Returns the name and password to print once, or `None` when users exist.
///
/// # Errors
/// Storage failure, or a password that breaks the policy.
pub async fn bootstrap_admin(
    store: &Arc<dyn Storage>,
    password: Option<String>,
) -> Result<Option<(String, String)>, String> {
    if store.user_count().await.map_err(|e| e.to_string())? > 0 {
        return Ok(None);
    }
    let password = match password {
        Some(p) => p,
        None => auth::token()?.chars().take(24).collect(),
    };
    auth::password_policy(&password).map_err(|e| e.to_string())?;
    let hash = auth::hash_password(&password)?;
    match store
        .create_user(
            None,
            "admin",
            &hash,
            auth::Role::Administrator.as_str(),
            chrono::Utc::now().timestamp_millis(),
        )
        .await
    {
        Ok(_) => Ok(Some(("admin".into(), password))),
        // Another instance created it meanwhile.
        Err(StoreError::Duplicate { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The API and the web console on one router.
pub fn app(state: api::AppState) -> axum::Router {
    api::router(state.clone()).merge(web::router(state))
}

/// Serves the API and the console on a bound listener until Ctrl-C or SIGTERM.
///
/// # Errors
/// The listener fails.
pub async fn serve(listener: tokio::net::TcpListener, state: api::AppState) -> std::io::Result<()> {
    serve_router(listener, app(state)).await
}

/// The API and the console with this server's programmer station ([`programming`]).
pub fn app_with_station(state: api::AppState, station: Arc<programming::Station>) -> axum::Router {
    app(state).layer(axum::Extension(station))
}

/// Serves a router on a bound listener until Ctrl-C or SIGTERM.
///
/// # Errors
/// The listener fails.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: axum::Router,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(t) => t,
                        Err(_) => {
                            let _ = ctrl_c.await;
                            return;
                        }
                    };
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
        })
        .await
}
