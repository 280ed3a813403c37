//! Importing an implant's event log (CLINIC.md §2.4 step 2): the log as downloaded by
//! `thecal programmer logs --json`, verified entry by entry with thecal-pump's own hash
//! chain ([`thecal_pump::log`]) before anything is stored.
//!
//! - A changed, removed, inserted or reordered entry is refused, naming its position in
//!   the upload (`entries[i]`) and thecal-pump's reason.
//! - The chain continues from what the clinic already holds: an upload that starts after
//!   entry 0 is anchored on the stored entry before it (or the pump's own anchor when the
//!   clinic holds nothing before it); an entry the clinic already holds must be the very
//!   same entry, so a re-import adds nothing and a rewritten history is refused.
//! - The hash is unkeyed: it proves the log is consistent, not who wrote it.

use serde::{Deserialize, Serialize};
use thecal_pump::event::Event;
use thecal_pump::log::{self, Hash, LogEntry};
use thecal_rx::Instant;
use utoipa::ToSchema;

use super::FieldError;

/// Most entries in one upload (a pump keeps 2048).
pub const MAX_ENTRIES: usize = 4096;

/// One entry as `thecal programmer logs --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportEntry {
    /// Sequence number in the pump's chain.
    #[schema(minimum = 0, maximum = 4294967295_u64)]
    pub seq: u32,
    /// The pump's monotonic time, ms.
    #[schema(minimum = 0)]
    pub at_ms: u64,
    /// Wall-clock time the programmer gave the entry (RFC 3339, or pump time in words).
    #[serde(default)]
    pub at: Option<String>,
    /// The entry in words, as the programmer printed it (not stored: the clinic
    /// describes the typed event itself).
    #[serde(default)]
    pub text: Option<String>,
    /// The typed event, as thecal-pump serialises it (e.g. `{"AlarmRaised": "LowReservoir"}`).
    #[schema(value_type = Object)]
    pub event: Event,
    /// The entry's BLAKE2s-128 hash, 32 hex digits.
    pub hash: String,
}

/// The pump's chain head or anchor: a sequence number and a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainPoint {
    /// Sequence number (for the head: the next entry's; the programmer prints the head's
    /// as `next_seq`, and both names are accepted).
    #[schema(minimum = 0, maximum = 4294967295_u64)]
    #[serde(alias = "next_seq")]
    pub seq: u32,
    /// Hash, 32 hex digits.
    pub hash: String,
}

/// A downloaded log, as `thecal programmer logs --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogExport {
    /// The entries, oldest first.
    pub entries: Vec<ExportEntry>,
    /// The chain head the pump persisted (next sequence number and last hash).
    pub head: ChainPoint,
    /// The entry just before the first one the pump still keeps, when its ring wrapped.
    #[serde(default)]
    pub anchor: Option<ChainPoint>,
}

/// A verified entry, ready to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifiedEntry {
    /// Sequence number.
    pub seq: u32,
    /// Pump time, ms.
    pub at_ms: u64,
    /// Wall-clock time as downloaded.
    pub at: Option<String>,
    /// alarm, program, refill, bolus, delivery, fault, telemetry or other.
    pub category: String,
    /// The entry in words.
    pub description: String,
    /// The typed event, JSON.
    #[schema(value_type = Object)]
    pub event: Event,
    /// Hash, hex.
    pub hash: String,
}

/// What the clinic already holds around an upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// The stored entry just before the upload's first entry: `(seq, hash)`.
    pub before: Option<(u32, Hash)>,
    /// Stored entries within the upload's range: `(seq, hash)`.
    pub overlap: Vec<(u32, Hash)>,
}

/// Parses 32 hex digits.
///
/// # Errors
/// The field and what a hash looks like.
pub fn parse_hash(field: &str, s: &str) -> Result<Hash, FieldError> {
    let bad = || FieldError::new(field, "must be 32 hexadecimal digits (a BLAKE2s-128 hash)");
    if s.len() != 32 || !s.is_ascii() {
        return Err(bad());
    }
    let mut h = [0u8; 16];
    for (i, b) in h.iter_mut().enumerate() {
        let pair = s.get(i * 2..i * 2 + 2).ok_or_else(bad)?;
        *b = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(h)
}

/// Hex of a hash.
pub fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// The category and words of an event.
pub fn describe(e: &Event) -> (&'static str, String) {
    match e {
        Event::AlarmRaised(k) => ("alarm", format!("alarm raised: {}", k.name())),
        Event::AlarmCleared(k) => ("alarm", format!("alarm cleared: {}", k.name())),
        Event::AlarmAcknowledged(k) => ("alarm", format!("alarm acknowledged: {}", k.name())),
        Event::ProgramChanged { version } => {
            ("program", format!("program changed to version {version}"))
        }
        Event::DoseReduced {
            percent,
            left_percent,
            ..
        } => (
            "program",
            format!("dose reduced by {percent} % ({left_percent} % of the program left)"),
        ),
        Event::Refill {
            added,
            aspirated,
            expected,
            flagged,
        } => (
            "refill",
            format!(
                "refill: {added} added, {aspirated} aspirated, {expected} expected{}",
                if *flagged { " (flagged)" } else { "" }
            ),
        ),
        Event::BolusStarted { kind, volume } => (
            "bolus",
            format!("{kind:?} bolus started: {volume}").to_lowercase(),
        ),
        Event::BolusEnded { kind, delivered } => (
            "bolus",
            format!("{kind:?} bolus ended: {delivered} delivered").to_lowercase(),
        ),
        Event::Stopped { reason } => ("delivery", format!("delivery stopped ({reason:?})")),
        Event::Resumed => ("delivery", "delivery resumed".to_owned()),
        Event::MotorStall { missed } => ("delivery", format!("motor stall, {missed} missed")),
        Event::MotorRecovered { missed } => {
            ("delivery", format!("motor recovered, {missed} missed"))
        }
        Event::LimiterVeto {
            drug,
            window_hours,
            would_be,
            limit,
        } => (
            "delivery",
            format!(
                "limiter veto: {} {would_be} in {window_hours} h would pass the limit {limit}",
                drug.name()
            ),
        ),
        Event::Fault { code } => ("fault", format!("fault: {code:?}")),
        Event::CatheterSet {
            revision,
            model,
            length_mm,
            volume,
        } => (
            "program",
            thecal_pump::catheter::SetWords {
                revision: *revision,
                model: *model,
                length_mm: *length_mm,
                volume: *volume,
            }
            .to_string(),
        ),
        Event::SoftFindingConfirmed {
            findings,
            part,
            parts,
            text,
            ..
        } => (
            "program",
            format!(
                "{findings} soft finding(s) confirmed, reason (part {} of {parts}): \"{}\"",
                part.saturating_add(1),
                text.as_str().unwrap_or("(not UTF-8)")
            ),
        ),
        Event::CommandAccepted { .. }
        | Event::CommandRefused { .. }
        | Event::DeviceEnrolled { .. }
        | Event::DeviceRevoked { .. }
        | Event::HandshakeDenied { .. } => ("telemetry", format!("{e:?}")),
        Event::PowerOn { .. } | Event::ClockSet { .. } => ("other", format!("{e:?}")),
        Event::FirmwareUpdate(r) => ("firmware", format!("{r:?}")),
    }
}

/// Verifies an upload against thecal-pump's hash chain and what the clinic holds.
///
/// # Errors
/// - `entries[i]` with thecal-pump's reason: the first entry that is out of place or
///   altered (index `i` in the upload, from 0);
/// - `entries`: an empty or too long upload, or one that starts after entry 0 with
///   nothing to anchor it;
/// - `head`: the entries do not end at the pump's chain head;
/// - `entries[i]` too when an entry differs from the one the clinic already holds.
pub fn verify(export: &LogExport, stored: &Stored) -> Result<Vec<VerifiedEntry>, FieldError> {
    if export.entries.is_empty() || export.entries.len() > MAX_ENTRIES {
        return Err(FieldError::new(
            "entries",
            format!("must hold 1 to {MAX_ENTRIES} log entries"),
        ));
    }
    let mut entries = Vec::with_capacity(export.entries.len());
    for (i, e) in export.entries.iter().enumerate() {
        entries.push(LogEntry {
            seq: e.seq,
            at: Instant::from_ms(e.at_ms),
            event: e.event,
            hash: parse_hash(&format!("entries[{i}].hash"), &e.hash)?,
        });
    }
    let first = entries.first().map_or(0, |e| e.seq);
    let pump_anchor = match &export.anchor {
        Some(a) => Some((a.seq, parse_hash("anchor.hash", &a.hash)?)),
        None => None,
    };
    let anchor = if first == 0 {
        None
    } else {
        match (stored.before, pump_anchor) {
            (Some(s), Some(p)) if s != p => {
                return Err(FieldError::new(
                    "anchor",
                    format!(
                        "the pump's anchor (entry {}) differs from the entry {} the clinic \
                         holds: the log was rewritten",
                        p.0, s.0
                    ),
                ));
            }
            (Some(s), _) => Some(s),
            (None, Some(p)) => Some(p),
            (None, None) => {
                return Err(FieldError::new(
                    "entries",
                    format!(
                        "the upload starts at entry {first}, but the clinic holds no entry \
                         before it and the upload carries no anchor: download from entry 0 or \
                         from the last entry imported"
                    ),
                ));
            }
        }
    };
    let head_hash = parse_hash("head.hash", &export.head.hash)?;
    if let Err(t) = log::verify(&entries, anchor) {
        return Err(FieldError::new(
            format!("entries[{}]", t.index),
            format!("refused, nothing stored: {t}"),
        ));
    }
    // Every entry follows its predecessor; the last must be the pump's chain head, or
    // entries were cut from the end (or the log rewritten with recomputed hashes).
    let last = entries.last().map(|e| (e.seq.checked_add(1), e.hash));
    if last != Some((Some(export.head.seq), head_hash)) {
        return Err(FieldError::new(
            "head",
            format!(
                "refused, nothing stored: the log ends before entry {} but the pump's chain \
                 head expects entry {} next with a different hash",
                entries.last().map_or(0, |e| e.seq.saturating_add(1)),
                export.head.seq
            ),
        ));
    }
    for (i, e) in entries.iter().enumerate() {
        if let Some((_, h)) = stored.overlap.iter().find(|(s, _)| *s == e.seq)
            && *h != e.hash
        {
            return Err(FieldError::new(
                format!("entries[{i}]"),
                format!(
                    "refused, nothing stored: entry {} differs from the entry {} the clinic \
                     imported before: the log was rewritten",
                    e.seq, e.seq
                ),
            ));
        }
    }
    Ok(entries
        .iter()
        .zip(&export.entries)
        .map(|(e, x)| {
            let (category, description) = describe(&e.event);
            VerifiedEntry {
                seq: e.seq,
                at_ms: x.at_ms,
                at: x.at.clone(),
                category: category.to_owned(),
                description,
                event: e.event,
                hash: hex(&e.hash),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use thecal_pump::alarm::AlarmKind;
    use thecal_pump::log::LogChain;
    use thecal_rx::Volume;

    /// A log of five entries made by thecal-pump's own chain.
    fn export() -> LogExport {
        let mut chain = LogChain::new();
        let events = [
            Event::PowerOn { restored_seq: 0 },
            Event::ProgramChanged { version: 1 },
            Event::AlarmRaised(AlarmKind::LowReservoir),
            Event::Refill {
                added: Volume::from_ml(20),
                aspirated: Volume::from_ml(2),
                expected: Volume::from_ml(2),
                flagged: false,
            },
            Event::AlarmCleared(AlarmKind::LowReservoir),
        ];
        let mut entries = vec![];
        for (i, ev) in events.into_iter().enumerate() {
            let at = Instant::from_ms(1000 * (i as u64 + 1));
            let e = chain.append(at, ev).unwrap();
            entries.push(ExportEntry {
                seq: e.seq,
                at_ms: e.at.ms(),
                at: None,
                text: None,
                event: e.event,
                hash: hex(&e.hash),
            });
        }
        LogExport {
            entries,
            head: ChainPoint {
                seq: chain.next_seq(),
                hash: hex(&chain.last_hash()),
            },
            anchor: None,
        }
    }

    #[test]
    fn an_intact_log_verifies_and_is_described_clinic_060() {
        let v = verify(&export(), &Stored::default()).unwrap();
        assert_eq!(v.len(), 5);
        assert_eq!(v[1].category, "program");
        assert_eq!(v[1].description, "program changed to version 1");
        assert_eq!(v[2].category, "alarm");
        assert_eq!(v[2].description, "alarm raised: low reservoir");
        assert_eq!(v[3].category, "refill");
    }

    #[test]
    fn a_forged_entry_is_refused_at_its_index_clinic_060() {
        let mut x = export();
        // Entry 3's refill claimed 25 mL instead of 20 mL; its hash no longer matches.
        x.entries[3].event = Event::Refill {
            added: Volume::from_ml(25),
            aspirated: Volume::from_ml(2),
            expected: Volume::from_ml(2),
            flagged: false,
        };
        let e = verify(&x, &Stored::default()).unwrap_err();
        assert_eq!(e.field, "entries[3]");
        assert!(
            e.message.contains("log entry 3 (position 3) was altered"),
            "{}",
            e.message
        );
    }

    #[test]
    fn reordered_or_removed_entries_are_refused_at_their_index_clinic_060() {
        let mut x = export();
        x.entries.swap(1, 2);
        let e = verify(&x, &Stored::default()).unwrap_err();
        assert_eq!(e.field, "entries[1]");
        assert!(
            e.message.contains("found entry 2 at position 1"),
            "{}",
            e.message
        );
        let mut y = export();
        y.entries.remove(2);
        assert_eq!(
            verify(&y, &Stored::default()).unwrap_err().field,
            "entries[2]"
        );
        // Cut from the end: every entry verifies, the head does not match.
        let mut z = export();
        z.entries.pop();
        assert_eq!(verify(&z, &Stored::default()).unwrap_err().field, "head");
    }

    #[test]
    fn a_later_upload_is_anchored_on_the_stored_entry_clinic_060() {
        let full = export();
        let h = |i: usize| parse_hash("h", &full.entries[i].hash).unwrap();
        let tail = LogExport {
            entries: full.entries[3..].to_vec(),
            ..full.clone()
        };
        // Nothing before entry 3 in the clinic, no anchor: refused with what to do.
        let e = verify(&tail, &Stored::default()).unwrap_err();
        assert_eq!(e.field, "entries");
        assert!(e.message.contains("starts at entry 3"), "{}", e.message);
        // Anchored on the stored entry 2.
        let s = Stored {
            before: Some((2, h(2))),
            overlap: vec![],
        };
        assert_eq!(verify(&tail, &s).unwrap().len(), 2);
        // Anchored on a wrong stored entry: entry 3 does not follow it.
        let wrong = Stored {
            before: Some((2, h(1))),
            overlap: vec![],
        };
        assert_eq!(verify(&tail, &wrong).unwrap_err().field, "entries[0]");
    }

    #[test]
    fn an_entry_differing_from_the_stored_one_is_refused_clinic_060() {
        let full = export();
        // The clinic holds entry 1 with another hash (a rewritten log, recomputed hashes).
        let s = Stored {
            before: None,
            overlap: vec![(1, [7; 16])],
        };
        let e = verify(&full, &s).unwrap_err();
        assert_eq!(e.field, "entries[1]");
        // The same entries as stored: accepted (the store skips them).
        let same = Stored {
            before: None,
            overlap: vec![(1, parse_hash("h", &full.entries[1].hash).unwrap())],
        };
        assert_eq!(verify(&full, &same).unwrap().len(), 5);
    }

    #[test]
    fn hashes_are_32_hex_digits_clinic_060() {
        assert!(parse_hash("h", "00").is_err());
        assert!(parse_hash("h", &"g".repeat(32)).is_err());
        assert_eq!(parse_hash("h", &"0f".repeat(16)).unwrap(), [15; 16]);
        let mut x = export();
        x.entries[0].hash = "xyz".into();
        let e = verify(&x, &Stored::default()).unwrap_err();
        assert_eq!(e.field, "entries[0].hash");
    }
}
