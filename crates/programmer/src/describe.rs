//! Log events, commands and refusal codes in words, as the programmer and the virtual
//! implant print them (the clinic describes imported entries with its own categories).

use thecal_pump::command::{CommandKind, Refusal};
use thecal_pump::event::{Event, FirmwareRecord};
use thecal_rx::Flow;
use thecal_rx::check::Prescription;
use thecal_rx::dose::Admixture;

/// Unix milliseconds as RFC 3339 (UTC).
pub fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// A command's name by its logged code.
pub fn command_name(code: u8) -> String {
    if let Some(k) = CommandKind::ALL.iter().find(|k| k.code() == code) {
        return k.name().into();
    }
    match code {
        100 => "open enrolment",
        101 => "read pending enrolment",
        102 => "confirm enrolment",
        103 => "cancel enrolment",
        104 => "revoke",
        105 => "list devices",
        106 => "read log",
        107 => "read program",
        108 => "remove device",
        109 => "read fluid path",
        111 => "firmware status",
        112 => "firmware transfer begin",
        113 => "firmware chunk",
        114 => "firmware verify",
        115 => "firmware mark for trial",
        116 => "firmware cancel",
        117 => "firmware keys",
        118 => "firmware key rotation",
        119 => "firmware key revocation",
        _ => return format!("command {code}"),
    }
    .into()
}

/// A denied hello's logged reason in words.
pub fn denial_text(code: u8) -> &'static str {
    match code {
        1 => "bad handshake",
        2 => "unknown key",
        3 => "revoked key",
        4 => "replayed hello",
        5 => "failed pre-authentication",
        6 => "wrong key",
        7 => "no enrolment window",
        8 => "cannot enrol",
        9 => "forged or corrupted frames",
        _ => "denied",
    }
}

/// An updater step's logged code in words.
fn firmware_step(code: u8) -> String {
    match code {
        1 => "transfer begin".into(),
        2 => "chunk".into(),
        3 => "verification".into(),
        4 => "mark for trial".into(),
        5 => "cancel".into(),
        6 => "confirmation".into(),
        7 => "key rotation".into(),
        8 => "key revocation".into(),
        _ => format!("step {code}"),
    }
}

/// An updater's logged refusal or revert code in words, with its number.
fn firmware_reason(code: u8) -> String {
    match thecal_update::updater::code_text(code) {
        Some(t) => format!("{t}, code {code}"),
        None => format!("code {code}"),
    }
}

/// A firmware update event of the pump's log in words.
pub fn firmware_text(r: &FirmwareRecord) -> String {
    let v = r.version;
    let version = thecal_update::Version::new(v.major, v.minor, v.revision, v.build).to_string();
    let slot = match r.slot {
        0 => "A".to_string(),
        1 => "B".to_string(),
        s => format!("#{s}"),
    };
    match r.code {
        1 => format!(
            "firmware started: version {version} from slot {slot}{}",
            if r.step == 1 { " (on trial)" } else { "" }
        ),
        2 => format!(
            "firmware transfer started into slot {slot}: {} bytes",
            r.value
        ),
        3 => format!("firmware transfer complete: {} bytes", r.value),
        4 => format!(
            "firmware image verified: version {version}, security counter {}",
            r.value
        ),
        5 => format!("firmware image in slot {slot} marked for trial"),
        6 => format!(
            "firmware confirmed: version {version} runs, security counter {}",
            r.value
        ),
        7 => format!(
            "firmware trial reverted to slot {slot} ({})",
            firmware_reason(r.reason)
        ),
        8 => "firmware transfer or trial cancelled".into(),
        9 => format!("firmware signing keys changed: {} trusted", r.value),
        10 => format!(
            "firmware {} REFUSED ({})",
            firmware_step(r.step),
            firmware_reason(r.reason)
        ),
        c => format!("firmware event {c}"),
    }
}

/// A log event in plain words.
pub fn describe_event(e: &Event) -> String {
    match *e {
        Event::PowerOn { restored_seq } => {
            if restored_seq == 0 {
                "power on (factory fresh)".into()
            } else {
                format!("power on (restored record {restored_seq})")
            }
        }
        Event::AlarmRaised(k) => format!("alarm raised: {}", k.name()),
        Event::AlarmCleared(k) => format!("alarm cleared: {}", k.name()),
        Event::AlarmAcknowledged(k) => format!("alarm acknowledged: {}", k.name()),
        Event::CommandAccepted { role, code, key_id } => {
            format!("{} accepted from {role} key {key_id}", command_name(code))
        }
        Event::CommandRefused {
            role,
            code,
            reason,
            key_id,
        } => format!(
            "{} REFUSED from {role} key {key_id} ({})",
            command_name(code),
            refusal_text(reason)
        ),
        Event::LimiterVeto {
            drug,
            window_hours,
            would_be,
            limit,
        } => format!(
            "dose limiter veto: {drug} would reach {would_be} in {window_hours} h (limit {limit})"
        ),
        Event::MotorStall { missed } => format!("motor stall ({missed} missed)"),
        Event::MotorRecovered { missed } => format!("motor recovered ({missed} missed)"),
        Event::Refill {
            added,
            aspirated,
            expected,
            flagged,
        } => format!(
            "refill: {added} added, {aspirated} aspirated (expected {expected}){}",
            if flagged { ", discrepancy flagged" } else { "" }
        ),
        Event::BolusStarted { kind, volume } => {
            format!("{} bolus started: {volume}", kind.name())
        }
        Event::BolusEnded { kind, delivered } => {
            format!("{} bolus ended: {delivered} delivered", kind.name())
        }
        Event::ProgramChanged { version } => format!("program changed (version {version})"),
        Event::Stopped { reason } => format!("delivery stopped ({})", reason.name()),
        Event::Resumed => "delivery resumed".into(),
        Event::ClockSet {
            old_utc_ms,
            new_utc_ms,
        } => {
            if old_utc_ms == 0 {
                format!("clock set to {}", rfc3339(new_utc_ms))
            } else {
                format!(
                    "clock set from {} to {}",
                    rfc3339(old_utc_ms),
                    rfc3339(new_utc_ms)
                )
            }
        }
        Event::Fault { code } => format!("fault: {}", code.name()),
        Event::DeviceEnrolled { role, key_id } => format!("device enrolled: {role} key {key_id}"),
        Event::DeviceRevoked { key_id } => format!("device revoked: key {key_id}"),
        Event::HandshakeDenied {
            key_id,
            reason,
            count,
        } => format!(
            "connection denied: key {key_id}, {} ({count} denial(s) so far)",
            denial_text(reason)
        ),
        Event::DoseReduced {
            role,
            percent,
            left_percent,
        } => format!(
            "dose reduced by {percent}% by {role} ({left_percent}% of the clinician's program left)"
        ),
        Event::CatheterSet {
            revision,
            model,
            length_mm,
            volume,
        } => thecal_pump::catheter::SetWords {
            revision,
            model,
            length_mm,
            volume,
        }
        .to_string(),
        Event::SoftFindingConfirmed {
            command,
            findings,
            part,
            parts,
            text,
        } => {
            let head = format!(
                "{}: {findings} soft finding(s) confirmed by the clinician, reason",
                command_name(command)
            );
            let text = text.as_str().unwrap_or("(not UTF-8)");
            if parts == 1 {
                format!("{head} \"{text}\"")
            } else {
                format!(
                    "{head} (part {} of {parts}) \"{text}\"",
                    part.saturating_add(1)
                )
            }
        }
        Event::FirmwareUpdate(r) => firmware_text(&r),
    }
}

/// A logged refusal code in words; a code this programmer does not know (a newer
/// pump's, or the telemetry's own) still reads as a refusal, with its number.
pub fn refusal_text(code: u8) -> String {
    use thecal_link::endpoint::refusal as link;
    let text = match code {
        link::BAD_WINDOW => Some("enrolment window out of range"),
        link::NO_PENDING => Some("no pending enrolment"),
        link::FINGERPRINT_MISMATCH => Some("fingerprint mismatch"),
        link::UNKNOWN_KEY_ID => Some("unknown key id"),
        link::CANNOT_ENROL => Some("cannot enrol"),
        link::NOT_CONFIRMED => Some("enrolment not confirmed"),
        link::OWN_KEY => Some("own key cannot be revoked"),
        _ => Refusal::code_name(code),
    };
    text.map_or_else(|| format!("refusal code {code}"), String::from)
}

/// What a reservoir holds in words: "baclofen 2 mg/mL", several joined with " + ".
pub fn contents_text(a: &Admixture) -> String {
    let parts: Vec<String> = a
        .components()
        .iter()
        .map(|c| format!("{} {}", c.drug, c.concentration))
        .collect();
    parts.join(" + ")
}

/// Minutes after midnight as "HH:MM".
pub fn minute(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// A prescription in words.
pub fn program_text(p: &Prescription) -> String {
    let mut t = format!("  contents:      {}\n", contents_text(&p.contents));
    let profiles = p.schedule.profiles();
    for (i, day) in profiles.iter().enumerate() {
        let steps: Vec<String> = day
            .steps()
            .iter()
            .map(|s| format!("{} {}", minute(s.start_minute), s.flow))
            .collect();
        let label = if profiles.len() == 1 {
            "basal:        ".to_string()
        } else {
            format!("basal day {}:  ", i + 1)
        };
        t += &format!("  {label} {}\n", steps.join(", "));
    }
    let daily = p.schedule.mean_daily();
    t += &format!("  per day:       {daily}");
    if let Ok(doses) = p.contents.daily_doses(Flow::from_raw(daily.raw())) {
        for (d, m) in doses.iter() {
            t += &format!(" = {m} {d}");
        }
    }
    t += "\n";
    if !p.schedule.boluses().is_empty() {
        for b in p.schedule.boluses() {
            t += &format!(
                "  periodic bolus: {} at {} over {}\n",
                b.volume,
                minute(b.start_minute),
                b.duration
            );
        }
    }
    t += &match p.patient_bolus {
        Some(b) => format!(
            "  patient bolus: {} over {}, lockout {}, at most {} a day\n",
            b.volume, b.duration, b.lockout, b.max_per_day
        ),
        None => "  patient bolus: none\n".into(),
    };
    t += &format!("  reservoir:     {}\n", p.reservoir_volume);
    t
}
