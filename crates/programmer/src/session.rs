//! What a clinician programmer reads from and writes to an implant over an established
//! [`Client`]: the same calls for `thecal programmer` and for the clinic's programmer
//! station. Each function is one or a few request/answer exchanges; a refusal or an
//! answer of the wrong kind is [`Fail::Refused`] carrying the pump's reply, for the
//! caller to put in words. Nothing here prints, asks or decides: the review and the
//! confirmation belong to the caller.

use serde_json::Value;
use thecal_link::{Body, DeviceInfo, LinkCommand, PublicKey, Reply, key_id_for};
use thecal_pump::command::{Command, Role, Status};
use thecal_pump::log::{self, Hash, LogChain, LogEntry};
use thecal_pump::reading::PathReading;
use thecal_rx::Instant;
use thecal_rx::check::Prescription;

use crate::bearer::{Bearer, Client, Fail, Hello};
use crate::keyfile::{Key, Pairing, hex, unhex32};

/// Sends a command; any answer but a refusal or a malformed-command answer is returned.
pub fn ok(client: &mut Client, body: Body) -> Result<Reply, Fail> {
    match client.request(body)? {
        r @ (Reply::Refused { .. } | Reply::Malformed) => Err(Fail::Refused(Box::new(r))),
        r => Ok(r),
    }
}

/// The pump's status (interrogation).
pub fn status(client: &mut Client) -> Result<Status, Fail> {
    match client.request(Body::Pump(Command::Interrogate))? {
        Reply::Status(s) => Ok(s),
        other => Err(Fail::Refused(Box::new(other))),
    }
}

/// The prescription the pump runs.
pub fn program(client: &mut Client) -> Result<Prescription, Fail> {
    match client.request(Body::Link(LinkCommand::ReadProgram))? {
        Reply::Program(p) => Ok(p),
        other => Err(Fail::Refused(Box::new(other))),
    }
}

/// The fluid path and the settings a twin needs (link version 2): what the look ahead
/// starts from, with [`status`] and [`program`].
pub fn fluid_path(client: &mut Client) -> Result<PathReading, Fail> {
    match client.request(Body::Link(LinkCommand::ReadFluidPath))? {
        Reply::FluidPath(r) => Ok(r),
        other => Err(Fail::Refused(Box::new(other))),
    }
}

/// The enrolled devices.
pub fn devices(client: &mut Client) -> Result<Vec<DeviceInfo>, Fail> {
    match ok(client, Body::Link(LinkCommand::Devices))? {
        Reply::Devices(list) => Ok(list.iter().copied().collect()),
        other => Err(Fail::Refused(Box::new(other))),
    }
}

/// The event log as downloaded: the entries from the first one asked for, the pump's
/// anchor (the entry before its oldest kept one, when its ring wrapped) and the chain
/// head the pump holds now.
#[derive(Debug, Clone)]
pub struct LogDownload {
    /// The first sequence number asked for.
    pub from: u32,
    /// Entries, oldest first.
    pub entries: Vec<LogEntry>,
    /// The pump's anchor.
    pub anchor: Option<(u32, Hash)>,
    /// The pump's chain head.
    pub head: LogChain,
}

impl LogDownload {
    /// Verifies the downloaded entries against the head with thecal-pump's own chain
    /// check: `Ok(n)` entries verified, `Err` the first break in words. From a later
    /// start than 0 without the pump's anchor, the first entry anchors the rest.
    pub fn verify(&self) -> Result<usize, String> {
        let (checked, anchor) = if self.from > 0 && self.anchor.is_none() {
            match self.entries.split_first() {
                Some((e, rest)) => (rest, Some((e.seq, e.hash))),
                None => (&self.entries[..], None),
            }
        } else {
            (&self.entries[..], self.anchor)
        };
        log::verify_to_head(checked, anchor, &self.head).map_err(|e| e.to_string())
    }
}

/// Downloads the event log from `from` to the head, page by page.
pub fn read_log(client: &mut Client, from: u32) -> Result<LogDownload, Fail> {
    let mut entries: Vec<LogEntry> = Vec::new();
    let mut anchor = None;
    let mut next = from;
    let mut first = true;
    let head = loop {
        let r = ok(client, Body::Link(LinkCommand::ReadLog { from_seq: next }))?;
        let Reply::Log {
            entries: page,
            anchor: a,
            head: h,
        } = r
        else {
            return Err(Fail::Refused(Box::new(r)));
        };
        if first {
            anchor = a;
            first = false;
        }
        let got = page.len();
        entries.extend(page.iter().copied());
        next = entries.last().map_or(next, |e| e.seq.saturating_add(1));
        if got == 0 || next >= h.next_seq() {
            break h;
        }
    };
    Ok(LogDownload {
        from,
        entries,
        anchor,
        head,
    })
}

/// The token the wand reads back from the pump, or the invite a programmer writes for a
/// remote: the implant's key and the window's one-time key.
#[derive(Clone)]
pub struct Invitation {
    /// The implant's static key.
    pub implant: PublicKey,
    /// The window's pre-shared key.
    pub psk: [u8; 32],
    /// The pump's address, when the invite names it.
    pub address: Option<String>,
    /// The implant said its registry was full when the window opened.
    pub registry_full: bool,
    /// When the window closes (Unix ms), when the token says.
    pub expires_ms: Option<i64>,
}

impl std::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The window's key is a secret: never printed.
        f.debug_struct("Invitation")
            .field("implant", &hex(&self.implant.0))
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Reads a proximity token or remote invite (JSON); `what` names it in errors. An
/// expired one (by `now_ms`) is refused, and so is a wand token that only woke the radio.
pub fn parse_invitation(text: &str, what: &str, now_ms: i64) -> Result<Invitation, Fail> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| Fail::Usage(format!("{what}: not JSON: {e}")))?;
    let field = |name: &str| -> Result<[u8; 32], Fail> {
        let s = v
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| Fail::Usage(format!("{what}: no '{name}' field")))?;
        unhex32(name, s).map_err(Fail::Usage)
    };
    let expires_ms = v
        .get("expires")
        .and_then(Value::as_str)
        .and_then(|exp| chrono::DateTime::parse_from_rfc3339(exp).ok())
        .map(|t| t.timestamp_millis());
    if let Some(exp) = expires_ms {
        if exp < now_ms {
            return Err(Fail::Runtime(format!(
                "the {what} expired at {}: open a new window and try again",
                v.get("expires").and_then(Value::as_str).unwrap_or("?")
            )));
        }
    }
    if v.get("psk").is_none() && v.get("woken").is_some() {
        return Err(Fail::Usage(format!(
            "{what}: the wand only woke the radio; to enrol a programmer hold it again \
             with --enrol (thecal programmer wand --state DIR --enrol)"
        )));
    }
    Ok(Invitation {
        implant: PublicKey(field("implant_key")?),
        psk: field("psk")?,
        address: v.get("implant").and_then(Value::as_str).map(str::to_string),
        registry_full: v.get("registry_full").and_then(Value::as_bool) == Some(true),
        expires_ms,
    })
}

/// Enrols `key` with the pump behind `bearer` through the wand's window (`token`): the
/// handshake with the window's key, after which the pump knows this programmer as a
/// clinician. Returns the session and the pairing to keep (its pre-authentication key
/// is a secret: keep it with the key, 0600).
pub fn enrol(
    bearer: Bearer,
    key: &mut Key,
    token: &Invitation,
    address: &str,
) -> Result<(Client, Pairing), Fail> {
    let client = Client::connect(
        bearer,
        key,
        Hello::Enrol {
            psk: token.psk,
            implant: token.implant,
            registry_full: token.registry_full,
        },
    )?;
    let pairing = Pairing {
        implant_key: hex(&token.implant.0),
        preauth: hex(&client.session.enrolled_preauth_key()),
        key_id: key_id_for(key.keys.public()),
        address: Some(address.to_string()),
    };
    Ok((client, pairing))
}

/// An enrolment window the pump opened for a remote.
#[derive(Clone)]
pub struct Window {
    /// The window's one-time key (a secret: for the invite only).
    pub psk: [u8; 32],
    /// The implant's static key.
    pub implant_key: [u8; 32],
    /// When the window closes, pump time.
    pub expires_at: Instant,
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("implant_key", &hex(&self.implant_key))
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Opens an enrolment window for a remote of `role` lasting `seconds`.
pub fn open_enrolment(client: &mut Client, role: Role, seconds: u16) -> Result<Window, Fail> {
    match ok(
        client,
        Body::Link(LinkCommand::OpenEnrolment { role, seconds }),
    )? {
        Reply::EnrolmentOpen {
            psk,
            implant_key,
            expires_at,
        } => Ok(Window {
            psk,
            implant_key,
            expires_at,
        }),
        other => Err(Fail::Refused(Box::new(other))),
    }
}

/// The invite a remote enrols with (JSON), for a window of this pump at `address`.
pub fn invite_json(w: &Window, role: Role, expires: &str, address: &str) -> Value {
    serde_json::json!({
        "implant_key": hex(&w.implant_key),
        "psk": hex(&w.psk),
        "role": role.to_string(),
        "expires": expires,
        "implant": address,
    })
}

/// The device that answered an open window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// The fingerprint the pump computed: the device must show the same six digits.
    pub fingerprint: u32,
    /// Its key id.
    pub key_id: u32,
    /// The role it will have.
    pub role: Role,
}

/// The device waiting in the window, if one answered.
pub fn pending_enrolment(client: &mut Client) -> Result<Pending, Fail> {
    match ok(client, Body::Link(LinkCommand::PendingEnrolment))? {
        Reply::EnrolmentPending {
            fingerprint,
            key_id,
            role,
            ..
        } => Ok(Pending {
            fingerprint,
            key_id,
            role,
        }),
        other => Err(Fail::Refused(Box::new(other))),
    }
}

/// Commits the waiting device if `fingerprint` (what the device shows, typed by the
/// clinician) equals the pump's; returns its key id and role.
pub fn confirm_enrolment(client: &mut Client, fingerprint: u32) -> Result<(u32, Role), Fail> {
    match ok(
        client,
        Body::Link(LinkCommand::ConfirmEnrolment { fingerprint }),
    )? {
        Reply::Enrolled { key_id, role } => Ok((key_id, role)),
        other => Err(Fail::Refused(Box::new(other))),
    }
}

/// Revokes a device, then reads the registry back: `Ok` only when the pump lists it as
/// revoked.
pub fn revoke(client: &mut Client, key_id: u32) -> Result<Vec<DeviceInfo>, Fail> {
    ok(client, Body::Link(LinkCommand::Revoke { key_id }))?;
    let after = devices(client)?;
    match after.iter().find(|d| d.key_id == key_id) {
        Some(d) if d.revoked => Ok(after),
        _ => Err(Fail::Runtime(format!(
            "read-back mismatch: the pump does not list key {key_id} as revoked"
        ))),
    }
}

/// Six digits of a fingerprint typed by a person ("123456" or "123 456").
pub fn parse_fingerprint(s: &str) -> Option<u32> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != 6 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether the program read back is the one sent: equal in everything but the reservoir
/// volume, which the pump keeps itself (what is left now, not the prescription's fill).
pub fn program_matches(sent: &Prescription, back: &Prescription) -> bool {
    *back
        == Prescription {
            reservoir_volume: back.reservoir_volume,
            ..sent.clone()
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_six_digits() {
        assert_eq!(parse_fingerprint("123 456"), Some(123_456));
        assert_eq!(parse_fingerprint("012345"), Some(12_345));
        assert_eq!(parse_fingerprint("12345"), None);
        assert_eq!(parse_fingerprint("12345a"), None);
    }

    #[test]
    fn an_expired_or_woken_token_is_refused() {
        let k = "11".repeat(32);
        let text =
            format!(r#"{{"implant_key":"{k}","psk":"{k}","expires":"2020-01-01T00:00:00Z"}}"#);
        let e = parse_invitation(&text, "token", 1_700_000_000_000).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        let woken = format!(r#"{{"implant_key":"{k}","woken":true}}"#);
        let e = parse_invitation(&woken, "token", 0).unwrap_err();
        assert!(e.to_string().contains("only woke"), "{e}");
        let psk = "22".repeat(32);
        let good = format!(r#"{{"implant_key":"{k}","psk":"{psk}","implant":"127.0.0.1:1"}}"#);
        let i = parse_invitation(&good, "token", 0).unwrap();
        assert_eq!(i.address.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(i.psk, [0x22; 32]);
        // The window's key is never printed.
        assert!(!format!("{i:?}").contains(&psk[..16]), "{i:?}");
    }
}
