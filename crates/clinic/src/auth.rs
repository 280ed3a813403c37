//! Accounts, passwords, session tokens and the authorization table.
//!
//! - Passwords: Argon2id (the `argon2` crate's defaults: m = 19 MiB, t = 2, p = 1), PHC
//!   strings. An unknown user name is verified against a fixed dummy hash so that timing
//!   does not tell which names exist.
//! - Sessions: a 256-bit random token in an HttpOnly, SameSite=Strict cookie (Secure when
//!   served over TLS); only its SHA-256 is stored. Each session has its own CSRF token,
//!   required in `X-CSRF-Token` on every request that changes anything. Signing in always
//!   issues a new token and ends any session the request carried (no fixation).
//! - Throttling: after [`MAX_FAILURES`] failed sign-ins for a user name within
//!   [`FAILURE_WINDOW_MS`], sign-in for that name is refused until the window passes,
//!   whatever the password. Counted in the database, so every instance agrees.
//! - Authorization: [`ROUTES`] lists every route with the roles allowed; the server checks
//!   it before any handler runs, and a test walks every route × every role.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Failed sign-ins allowed per user name within the window.
pub const MAX_FAILURES: i64 = 5;
/// The throttling window.
pub const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Session lifetime (12 h: one clinic day).
pub const SESSION_TTL_MS: i64 = 12 * 60 * 60 * 1000;
/// The session cookie's name.
pub const COOKIE: &str = "thecal_session";
/// The CSRF header.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A user's role (CLINIC.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Prescribes; records everything clinical.
    Physician,
    /// Refills within a current prescription; records.
    Nurse,
    /// Verifies compounded admixtures; reads.
    Pharmacist,
    /// Accounts only, no clinical data.
    Administrator,
    /// Reads everything, changes nothing.
    Auditor,
    /// An emergency clinician outside the clinic (CLINIC.md §6): no access to records
    /// except the break-glass view of one patient, with a stated reason, for a limited
    /// time, audited.
    Emergency,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Role::Physician,
        Role::Nurse,
        Role::Pharmacist,
        Role::Administrator,
        Role::Auditor,
        Role::Emergency,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Physician => "physician",
            Role::Nurse => "nurse",
            Role::Pharmacist => "pharmacist",
            Role::Administrator => "administrator",
            Role::Auditor => "auditor",
            Role::Emergency => "emergency",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not (sign-in, the API description).
    Public,
    /// Any signed-in user.
    AnyUser,
    /// Signed-in users with one of these roles.
    Roles(&'static [Role]),
}

/// One route of the API and who may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRule {
    /// HTTP method.
    pub method: &'static str,
    /// Path as routed (`{id}` for parameters).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

use Role::{
    Administrator as A, Auditor as U, Emergency as E, Nurse as N, Pharmacist as H, Physician as P,
};

const CLINICAL_READ: &[Role] = &[P, N, H, U];
const RECORD: &[Role] = &[P, N];
const PRESCRIBE: &[Role] = &[P];

/// The authorization table: every route of the API.
pub const ROUTES: &[RouteRule] = &[
    RouteRule {
        method: "GET",
        path: "/api/v1/openapi.json",
        access: Access::Public,
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/session",
        access: Access::Public,
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/session",
        access: Access::AnyUser,
    },
    RouteRule {
        method: "DELETE",
        path: "/api/v1/session",
        access: Access::AnyUser,
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/session/reauth",
        access: Access::AnyUser,
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/patients/{id}/break-glass",
        access: Access::Roles(&[E]),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/patients/{id}/break-glass",
        access: Access::Roles(&[E]),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/users",
        access: Access::Roles(&[A]),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/users",
        access: Access::Roles(&[A]),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/users/{id}",
        access: Access::Roles(&[A]),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/patients",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/patients",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/patients/{id}",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/patients/{id}/state",
        access: Access::Roles(PRESCRIBE),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/patients/{id}/implants",
        access: Access::Roles(PRESCRIBE),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/patients/{id}/trials",
        access: Access::Roles(PRESCRIBE),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/trials/{id}/decision",
        access: Access::Roles(PRESCRIBE),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/implants/{id}/explant",
        access: Access::Roles(PRESCRIBE),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/implants/{id}/prescriptions",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/implants/{id}/prescriptions",
        access: Access::Roles(PRESCRIBE),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/implants/{id}/visits",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/visits/{id}",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/visits/{id}/report",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/visits/{id}/aspirate",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/visits/{id}/investigation",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/visits/{id}/release",
        access: Access::Roles(&[H]),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/visits/{id}/fill",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/visits/{id}/close",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/patients/{id}/complications",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/implants/{id}/alarms",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/implants/{id}/alarms",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/implants/{id}/mri",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/mri/{id}",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/mri/{id}/close",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/calendar",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/replacements",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/audit",
        access: Access::Roles(&[U]),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/implants/{id}/log",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/implants/{id}/timeline",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/alarms/{id}/acknowledge",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/implants/{id}/revisions",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/implants/{id}/revisions",
        access: Access::Roles(PRESCRIBE),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/implants/{id}/replacement-plans",
        access: Access::Roles(PRESCRIBE),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/replacement-plans/{id}/status",
        access: Access::Roles(PRESCRIBE),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/replacement-plans",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/patients/{id}/assessments",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/patients/{id}/assessments",
        access: Access::Roles(RECORD),
    },
    // Programming the implant: physicians and nurses (a program change is the
    // physician's alone, checked by the handler).
    RouteRule {
        method: "POST",
        path: "/api/v1/implants/{id}/link",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/implants/{id}/interrogate",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/implants/{id}/programming",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/programming/{id}",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/programming/{id}/change",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/programming/{id}/acknowledge",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/programming/{id}/send",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/implants/{id}/remotes",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/implants/{id}/remotes/confirm",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "POST",
        path: "/api/v1/implants/{id}/remotes/revoke",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "GET",
        path: "/api/v1/implants/{id}/devices",
        access: Access::Roles(CLINICAL_READ),
    },
    // FHIR (docs/fhir.md): reads as the record's, import as registering a patient, the
    // audit trail as the audit log's.
    RouteRule {
        method: "POST",
        path: "/fhir/r4/Patient",
        access: Access::Roles(RECORD),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/Patient/{id}",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/Patient/{id}/$everything",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/Condition",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/Device",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/DeviceUseStatement",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/Procedure",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/MedicationRequest",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/MedicationAdministration",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/Observation",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/AuditEvent",
        access: Access::Roles(&[U]),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/metadata",
        access: Access::AnyUser,
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/Condition/{id}",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/Device/{id}",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/DeviceUseStatement/{id}",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/Procedure/{id}",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/MedicationRequest/{id}",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/MedicationAdministration/{id}",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/Observation/{id}",
        access: Access::Roles(CLINICAL_READ),
    },
    RouteRule {
        method: "GET",
        path: "/fhir/r4/AuditEvent/{id}",
        access: Access::Roles(&[U]),
    },
];

/// The rule for a method and routed path.
pub fn rule(method: &str, path: &str) -> Option<&'static RouteRule> {
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}

/// Whether a role may call a rule's route.
pub fn allowed(rule: &RouteRule, role: Option<Role>) -> bool {
    match (rule.access, role) {
        (Access::Public, _) => true,
        (Access::AnyUser, r) => r.is_some(),
        (Access::Roles(rs), Some(r)) => rs.contains(&r),
        (Access::Roles(_), None) => false,
    }
}

/// Hashes a password with Argon2id.
///
/// # Errors
/// The hasher failed (never for ordinary input).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// An Argon2id hash of a random password, made once, verified for unknown user names.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = token().unwrap_or_default();
        hash_password(&random).unwrap_or_default()
    })
}

/// Verifies a password against a stored hash (or the dummy when `hash` is `None`).
pub fn verify_password(password: &str, hash: Option<&str>) -> bool {
    let real = hash.is_some();
    let stored: &str = match hash {
        Some(h) => h,
        None => dummy_hash(),
    };
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

/// A new random token, 32 bytes as hex.
///
/// # Errors
/// The system's random source failed.
pub fn token() -> Result<String, String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| e.to_string())?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// SHA-256 of a token, hex: what the database keeps.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a new password: 12–200 characters.
///
/// # Errors
/// What is allowed.
pub fn password_policy(p: &str) -> Result<(), crate::domain::FieldError> {
    let n = p.chars().count();
    if (12..=200).contains(&n) {
        Ok(())
    } else {
        Err(crate::domain::FieldError::new(
            "password",
            "must be 12 to 200 characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_and_the_dummy_never_admits_clinic_022() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify_password("correct horse battery", Some(&h)));
        assert!(!verify_password("wrong horse battery", Some(&h)));
        assert!(!verify_password("anything", None));
        assert!(!verify_password("x", Some("not a hash")));
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept_clinic_022() {
        let (a, b) = (token().unwrap(), token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        // SHA-256("abc"), the FIPS 180-2 example.
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }

    #[test]
    fn table_has_one_rule_per_route_and_administrators_see_no_clinical_data_clinic_023() {
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(
                ROUTES[i + 1..]
                    .iter()
                    .all(|o| (o.method, o.path) != (r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            if r.path.contains("patients")
                || r.path.contains("visits")
                || r.path.contains("implants")
            {
                assert!(
                    !allowed(r, Some(Role::Administrator)),
                    "{} {}",
                    r.method,
                    r.path
                );
                assert!(!allowed(r, None), "{} {}", r.method, r.path);
            }
            if r.method != "GET" && !matches!(r.access, Access::Public | Access::AnyUser) {
                assert!(
                    !allowed(r, Some(Role::Auditor)),
                    "auditor changes {}",
                    r.path
                );
            }
        }
    }
}
