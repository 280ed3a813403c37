//! The clinic's HTTP service in process, for the API suites: a fresh database with every
//! role signed up, a clock the test moves, and requests as a signed-in user.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};
use thecal_clinic::api::{AppState, Config, router};
use thecal_clinic::auth::{self, Role};
use tower::ServiceExt;

use super::{Backend, TestDb, fresh};

/// Every test account's password.
pub const PASSWORD: &str = "a long test password";

/// The service over a fresh database.
pub struct Clinic {
    pub db: TestDb,
    pub app: Router,
    pub clock: Arc<Mutex<DateTime<Utc>>>,
}

/// A signed-in user: session cookie and CSRF token.
pub struct User {
    pub token: String,
    pub csrf: String,
}

impl Clinic {
    /// A fresh clinic on `b` with every role signed up, the clock at 2026-01-10 10:00 UTC.
    pub async fn new(b: Backend) -> Option<Clinic> {
        Self::with(b, Config::default()).await
    }

    /// As [`Clinic::new`], serving the console's pages too.
    pub async fn with_console(b: Backend) -> Option<Clinic> {
        Self::build(b, Config::default(), thecal_clinic::app).await
    }

    /// As [`Clinic::new`] with `config`.
    pub async fn with(b: Backend, config: Config) -> Option<Clinic> {
        Self::build(b, config, router).await
    }

    async fn build(b: Backend, config: Config, app: fn(AppState) -> Router) -> Option<Clinic> {
        let db = fresh(b).await?;
        let hash = auth::hash_password(PASSWORD).unwrap();
        for role in Role::ALL {
            db.store
                .create_user(None, role.as_str(), &hash, role.as_str(), 0)
                .await
                .unwrap();
        }
        let clock = Arc::new(Mutex::new(
            Utc.with_ymd_and_hms(2026, 1, 10, 10, 0, 0).unwrap(),
        ));
        let c = clock.clone();
        let state = AppState {
            store: db.store.clone(),
            config,
            now: Arc::new(move || *c.lock().unwrap()),
        };
        Some(Clinic {
            app: app(state),
            db,
            clock,
        })
    }

    pub fn advance(&self, d: TimeDelta) {
        let mut c = self.clock.lock().unwrap();
        *c += d;
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 10 << 20)
            .await
            .unwrap();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    pub async fn login_raw(
        &self,
        user: &str,
        password: &str,
        cookie: Option<&str>,
    ) -> (StatusCode, Option<String>, Value) {
        let cookie_header = cookie.map(|c| format!("{}={c}", auth::COOKIE));
        let mut h = vec![];
        if let Some(c) = &cookie_header {
            h.push(("cookie", c.as_str()));
        }
        let (s, headers, body) = self
            .raw(
                "POST",
                "/api/v1/session",
                &h,
                Some(json!({"username": user, "password": password}).to_string()),
            )
            .await;
        let token = headers
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned())
            .map(|c| {
                assert!(
                    c.contains("HttpOnly") && c.contains("SameSite=Strict"),
                    "{c}"
                );
                c.split(';')
                    .next()
                    .unwrap()
                    .split_once('=')
                    .unwrap()
                    .1
                    .to_owned()
            });
        (s, token, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub async fn login(&self, role: Role) -> User {
        let (s, token, body) = self.login_raw(role.as_str(), PASSWORD, None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        User {
            token: token.unwrap(),
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    /// A request as `u` (with its cookie and CSRF token): status, headers and the body
    /// as JSON (or as a string when it is not JSON).
    pub async fn call_full(
        &self,
        u: Option<&User>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let cookie = u.map(|u| format!("{}={}", auth::COOKIE, u.token));
        let mut h = vec![];
        if let (Some(u), Some(c)) = (u, &cookie) {
            h.push(("cookie", c.as_str()));
            h.push((auth::CSRF_HEADER, u.csrf.as_str()));
        }
        let (s, headers, text) = self
            .raw(method, path, &h, body.map(|b| b.to_string()))
            .await;
        (
            s,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// [`Clinic::call_full`] without the headers.
    pub async fn call(
        &self,
        u: Option<&User>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, _, v) = self.call_full(u, method, path, body).await;
        (s, v)
    }
}
