//! `thecal programmer`: the clinician programmer over the UDP bearer. Every change to
//! therapy shows the pump's current state next to the new one, asks for confirmation
//! (or `--yes`), and reads the pump back afterwards.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use thecal_link::{Body, DeviceInfo, LinkCommand, Reply};
use thecal_pump::alarm::AlarmKind;
use thecal_pump::catheter::{self as cath, CUSTOM_MODEL, CatheterRecord};
use thecal_pump::command::{
    BridgeChoice, Command, Mode, REMINDER_INTERVAL_MAX, REMINDER_INTERVAL_MIN, Role,
    SOFT_REASON_MAX, SoftReason, Status, StopReason,
};
use thecal_pump::core::AlarmSettings;
use thecal_pump::event::Event;
use thecal_pump::log::{self, LogEntry};
use thecal_rx::check::{self, Prescription, Severity};
use thecal_rx::dose::{Admixture, Component};
use thecal_rx::file as rxfile;
use thecal_rx::{Concentration, Duration, Flow, Instant, Volume};

use crate::bearer::{
    ANSWER_TIMEOUT, Bearer, Client, EXIT_HARD, EXIT_READ_BACK, EXIT_SOFT_UNCONFIRMED, Fail, Hello,
    Stats, finish,
};
use crate::implant::{rfc3339, unix_ms};
use crate::keyfile::{DeviceKind, Key, check_private, hex, write_private};
use thecal_programmer::describe::{
    command_name, contents_text, describe_event, minute, program_text,
};
use thecal_programmer::session;

/// What every `thecal programmer` and `thecal remote` command needs: this device's key,
/// the pump's address, the output form.
#[derive(Debug, Args)]
pub struct LinkArgs {
    /// This device's key file (create it with `thecal programmer keygen --key FILE` or
    /// `thecal remote keygen --key FILE`).
    #[arg(long, global = true)]
    key: Option<PathBuf>,
    /// The pump's address, HOST:PORT.
    #[arg(long, global = true)]
    implant: Option<String>,
    /// Print JSON instead of text (always includes the bytes and round trips on air).
    #[arg(long, global = true)]
    json: bool,
    /// Print the bytes and round trips this invocation put on the air.
    #[arg(long, global = true)]
    stats: bool,
}

impl LinkArgs {
    /// The key file, or a usage error saying how to make one.
    pub fn key_path(&self, kind: DeviceKind) -> Result<PathBuf, Fail> {
        self.key.clone().ok_or_else(|| {
            Fail::Usage(format!(
                "--key FILE is required (create one with `thecal {} keygen --key FILE`)",
                kind.command()
            ))
        })
    }

    /// The pump's address, or a usage error.
    pub fn address(&self) -> Result<String, Fail> {
        self.implant.clone().ok_or_else(|| {
            Fail::Usage(
                "--implant HOST:PORT is required (the pump's address, e.g. 127.0.0.1:7011)".into(),
            )
        })
    }

    /// The output form.
    pub fn out(&self) -> Out {
        Out {
            json: self.json,
            stats: self.stats,
        }
    }

    /// The pump's address: `--implant`, or the one the key was enrolled with.
    pub fn address_for(&self, key: &Key) -> Result<String, Fail> {
        match (
            &self.implant,
            key.file.pairing.as_ref().and_then(|p| p.address.clone()),
        ) {
            (Some(a), _) => Ok(a.clone()),
            (None, Some(a)) => Ok(a),
            (None, None) => self.address(),
        }
    }

    /// Loads the key and opens a session with the pump.
    pub fn connect(&self, kind: DeviceKind) -> Result<(Key, Client), Fail> {
        let mut key = Key::load(&self.key_path(kind)?, kind)?;
        let bearer = Bearer::new(&self.address_for(&key)?, ANSWER_TIMEOUT)?;
        let client = Client::connect(bearer, &mut key, Hello::Enrolled)?;
        Ok((key, client))
    }
}

/// Arguments of `thecal programmer`.
#[derive(Debug, Args)]
pub struct ProgrammerArgs {
    #[command(flatten)]
    link: LinkArgs,
    #[command(subcommand)]
    command: ProgCommand,
}

/// Roles a remote may be enrolled with.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum RemoteRole {
    /// A patient's remote: own bolus, status, alarm explanations.
    Patient,
    /// An emergency responder: status and dose reduction.
    Emergency,
}

/// Why delivery is stopped.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReasonArg {
    Procedure,
    AdverseEffect,
    EndOfTherapy,
    Other,
}

#[derive(Debug, Subcommand)]
enum ProgCommand {
    /// Create a new programmer key file (0600).
    Keygen,
    /// Hold the programmer wand over the pump in DIR: its radio wakes and listens for 5
    /// minutes whatever a flood or its energy budget said. With --enrol it also opens a
    /// 5-minute window to enrol this programmer and writes DIR/proximity.token.
    Wand {
        /// The implant's state directory.
        #[arg(long)]
        state: PathBuf,
        /// Also open a programmer enrolment window (then: enroll --token DIR/proximity.token).
        #[arg(long)]
        enrol: bool,
    },
    /// Enrol this programmer with the pump, using the wand's proximity token.
    Enroll {
        /// The token file written by the wand (DIR/proximity.token).
        #[arg(long)]
        token: PathBuf,
    },
    /// Read the pump's status and program.
    Interrogate,
    /// Send a new prescription (TOML, the format of `thecal calc check`).
    Program {
        /// The prescription file.
        #[arg(long)]
        prescription: PathBuf,
        /// Confirm the soft findings, with the clinical reason (recorded).
        #[arg(long, value_name = "REASON")]
        confirm_soft: Option<String>,
        /// Send without asking (never confirms a soft finding).
        #[arg(long)]
        yes: bool,
    },
    /// Record a refill.
    Refill {
        /// Residual volume aspirated, e.g. "2.5 mL".
        #[arg(long, allow_hyphen_values = true)]
        aspirated: Volume,
        /// Volume injected, e.g. "20 mL".
        #[arg(long, allow_hyphen_values = true)]
        added: Volume,
        /// What was injected: "DRUG CONCENTRATION", several joined with '+', e.g.
        /// "baclofen 2000 mcg/mL" or "morphine 10 mg/mL + bupivacaine 5 mg/mL".
        #[arg(long)]
        contents: String,
        /// Keep each drug's daily dose when the concentration changes.
        #[arg(long)]
        keep_dose: bool,
        /// Old fluid in the catheter: auto (keep the dose at the tip), none, or a bolus
        /// duration such as "30 min".
        #[arg(long, default_value = "auto")]
        bridge: String,
        /// Confirm the pump's soft findings and a flagged reconciliation, with the
        /// clinical reason.
        #[arg(long, value_name = "REASON")]
        confirm_soft: Option<String>,
        /// Send without asking (never confirms a soft finding).
        #[arg(long)]
        yes: bool,
    },
    /// A clinician bolus.
    Bolus {
        /// Volume, e.g. "50 uL".
        #[arg(long, allow_hyphen_values = true)]
        volume: Volume,
        /// Duration, e.g. "10 min".
        #[arg(long, allow_hyphen_values = true)]
        duration: Duration,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Stop delivery.
    Stop {
        /// Why.
        #[arg(long, value_enum)]
        reason: ReasonArg,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Resume delivery after a stop.
    Resume {
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Set the pump's clock to this computer's (UTC and local offset).
    Clock {
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Open an enrolment window for a patient or emergency remote; writes the invite.
    EnrollRemote {
        /// The remote's role.
        #[arg(long, value_enum)]
        role: RemoteRole,
        /// How long the window stays open, e.g. "2 min" (10 s to 10 min).
        #[arg(long, default_value = "2 min", allow_hyphen_values = true)]
        window: Duration,
        /// Where to write the invite for the remote (0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Compare the remote's fingerprint with the pump's and commit its enrolment.
    ConfirmRemote {
        /// The six digits the remote shows.
        #[arg(long)]
        fingerprint: String,
        /// Confirm without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Revoke an enrolled device.
    Revoke {
        /// Its key id (see `devices`).
        key_id: u32,
        /// Revoke without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Remove a revoked device from the pump's registry, freeing its place.
    Remove {
        /// Its key id (see `devices`).
        key_id: u32,
    },
    /// List the enrolled devices.
    Devices,
    /// Download and verify the event log.
    Logs {
        /// First sequence number to download.
        #[arg(long, default_value_t = 0)]
        from: u32,
    },
    /// Cancel the running clinician or patient bolus.
    CancelBolus {
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Acknowledge an alarm (silences its tone; a critical alarm re-arms while its cause
    /// persists), e.g. --alarm "low reservoir".
    Acknowledge {
        /// The alarm's name as `interrogate` shows it.
        #[arg(long)]
        alarm: String,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// MRI mode of a valve pump: `on` shuts the valve before a scan, `off` resets it after.
    Mri {
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// With `on`: an emergency scan that cannot wait for the pump to be emptied (the
        /// valve is shut with drug in the reservoir).
        #[arg(long)]
        emergency: bool,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// How often an acknowledged no-delivery alarm (stopped, MRI mode, fault, empty
    /// reservoir, end of service) sounds again until its cause clears: 15 min to 4 h.
    ReminderInterval {
        /// The interval, e.g. "30 min" (15 min to 4 h).
        #[arg(long, allow_hyphen_values = true)]
        interval: Duration,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Record the implanted catheter (at implant and after each revision); the pump must
    /// be stopped. A catalogue model by code or name, or `custom` with the labelled
    /// volume per cm and pump segment.
    Catheter {
        /// Catalogue code (1, 2, 3) or name, or `custom`.
        #[arg(long)]
        model: String,
        /// Length left after trimming, with its unit: "45 cm" or "450 mm" (5 cm to 150 cm).
        #[arg(long, allow_hyphen_values = true)]
        length: String,
        /// With `--model custom`: the labelled internal volume per cm, e.g. "2.2 uL".
        #[arg(long, allow_hyphen_values = true)]
        volume_per_cm: Option<String>,
        /// With `--model custom`: the labelled pump-segment volume, e.g. "20 uL" (0 for a
        /// one-piece catheter).
        #[arg(long, allow_hyphen_values = true)]
        pump_segment: Option<Volume>,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// A priming bolus that fills a drug-free catheter: the pump computes the volume
    /// from the recorded catheter and the basal, so that the drug reaches the tip as the
    /// priming ends.
    Prime {
        /// How long the priming lasts, e.g. "1 h".
        #[arg(long, allow_hyphen_values = true)]
        duration: Duration,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Alarm settings: the low-reservoir alarm (volume or days, whichever first) and the
    /// stopped-pump reminder.
    AlarmSettings {
        /// Low-reservoir alarm volume.
        #[arg(long, default_value = "2 mL", allow_hyphen_values = true)]
        low_alarm: Volume,
        /// Low-reservoir alarm in days of therapy left (0: off).
        #[arg(long, default_value_t = 7)]
        low_alarm_days: u16,
        /// Reminder after the pump has been stopped this long, e.g. "30 min".
        #[arg(long, default_value = "30 min", allow_hyphen_values = true)]
        stopped_reminder: Duration,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Update the pump's firmware with a signed image: review (running and new version,
    /// signer, size), confirm, transfer with progress (resumed where the pump stands),
    /// verify, trial restart, and read back that the new firmware confirmed itself.
    Update {
        /// The signed image (`thecal firmware sign`).
        file: PathBuf,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Install a rotated firmware-signing key (a statement from `thecal firmware rotate`):
    /// review the pump's trusted keys against the change, confirm, send, read the keys
    /// back. The old key is revoked: images it signs are refused from then on.
    RotateKey {
        /// The rotation statement.
        file: PathBuf,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Revoke a firmware-signing key (a statement from `thecal firmware revoke`): review,
    /// confirm, send, read the keys back. The pump refuses to revoke its last trusted key.
    RevokeKey {
        /// The revocation statement.
        file: PathBuf,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Reduce every basal flow by a percentage (1-50); never an increase.
    Reduce {
        /// Percentage, 1 to 50.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=50))]
        percent: u8,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
}

/// A change that is not a prescription: what to show, ask, send and verify.
pub struct Change<'a> {
    /// The review, old against new in words, from the pump's status.
    pub review: &'a dyn Fn(&Status) -> String,
    /// The y/N question.
    pub question: &'a str,
    /// The command.
    pub cmd: Command,
    /// Compares the status read back (after) with the one before; `Err` says what the
    /// pump holds.
    pub verify: &'a dyn Fn(&Status, &Status) -> Result<(), String>,
    /// What was done, for the answer.
    pub done: &'a str,
}

/// Review in words, confirm, send, read back and verify a [`Change`].
pub fn simple_change(
    out: &Out,
    link: &LinkArgs,
    kind: DeviceKind,
    yes: bool,
    c: Change<'_>,
) -> Result<ExitCode, Fail> {
    checked_change(out, link, kind, yes, &|_| Ok(()), c)
}

/// [`simple_change`] with a check of the pump's status before anything is sent: `Err`
/// says why the change is not sent (exit status 1), after the review.
pub fn checked_change(
    out: &Out,
    link: &LinkArgs,
    kind: DeviceKind,
    yes: bool,
    ready: &dyn Fn(&Status) -> Result<(), String>,
    c: Change<'_>,
) -> Result<ExitCode, Fail> {
    let (mut key, mut client) = link.connect(kind)?;
    let old = status(&mut client)?;
    let review = (c.review)(&old);
    if !out.json {
        println!("{review}");
    }
    ready(&old).map_err(Fail::Runtime)?;
    if confirm(c.question, yes)? {
        client.reconnect(&mut key)?;
    }
    ok(&mut client, Body::Pump(c.cmd))?;
    let s = status(&mut client)?;
    if let Err(holds) = (c.verify)(&old, &s) {
        return Err(Fail::Exit(
            EXIT_READ_BACK,
            format!("read-back mismatch: {holds}"),
        ));
    }
    out.emit(
        json!({"accepted": true, "review": review, "old": status_json(&old), "status": status_json(&s)}),
        &format!("{}. read back:\n{}", c.done, status_text(&s)),
        Some(client.bearer.stats),
    );
    Ok(ExitCode::SUCCESS)
}

/// `programmer cancel-bolus` and `remote cancel-bolus`: review (is a bolus running),
/// confirm, send, read back that none runs.
pub fn cancel_bolus(
    out: &Out,
    link: &LinkArgs,
    kind: DeviceKind,
    yes: bool,
) -> Result<ExitCode, Fail> {
    simple_change(
        out,
        link,
        kind,
        yes,
        Change {
            review: &|s| {
                format!(
                    "OLD: {}, {}\nNEW: no bolus running",
                    mode_text(&s.mode),
                    if s.bolus_active {
                        "a bolus running"
                    } else {
                        "no bolus running"
                    }
                )
            },
            question: "Cancel the bolus?",
            cmd: Command::CancelBolus,
            verify: &|_, s| {
                if s.bolus_active {
                    Err("the pump still runs a bolus".into())
                } else {
                    Ok(())
                }
            },
            done: "bolus cancelled",
        },
    )
}

/// An alarm by the name `interrogate` shows, or bad input listing the names.
pub fn alarm_named(alarm: &str) -> Result<AlarmKind, Fail> {
    AlarmKind::ALL
        .into_iter()
        .find(|k| k.name().eq_ignore_ascii_case(alarm.trim()))
        .ok_or_else(|| {
            let known: Vec<&str> = AlarmKind::ALL.iter().map(|k| k.name()).collect();
            Fail::Usage(format!(
                "--alarm: unknown alarm '{alarm}'; known: {}",
                known.join(", ")
            ))
        })
}

/// `programmer acknowledge` and `remote acknowledge`: review (the alarm's state),
/// confirm, send, read back that it is acknowledged (or gone).
pub fn acknowledge(
    out: &Out,
    link: &LinkArgs,
    kind: DeviceKind,
    alarm: &str,
    yes: bool,
) -> Result<ExitCode, Fail> {
    let alarm = alarm_named(alarm)?;
    simple_change(
        out,
        link,
        kind,
        yes,
        Change {
            review: &|s| {
                let state = s
                    .alarms
                    .iter()
                    .find(|a| a.kind == alarm)
                    .map_or("not active", |a| {
                        if a.acknowledged {
                            "acknowledged"
                        } else {
                            "sounding"
                        }
                    });
                format!("OLD: alarm {} {state}\nNEW: acknowledged", alarm.name())
            },
            question: "Acknowledge the alarm?",
            cmd: Command::Acknowledge(alarm),
            verify: &|_, s| match s.alarms.iter().find(|a| a.kind == alarm) {
                Some(a) if !a.acknowledged => Err(format!(
                    "the pump holds alarm {} unacknowledged",
                    alarm.name()
                )),
                _ => Ok(()),
            },
            done: "alarm acknowledged",
        },
    )
}

/// `programmer reduce` and `remote reduce`: every basal flow `percent` lower. Review
/// (old program in words), confirm, send, read the program back and compare with the
/// old flows scaled by hand.
pub fn reduce(
    out: &Out,
    link: &LinkArgs,
    kind: DeviceKind,
    percent: u8,
    yes: bool,
) -> Result<ExitCode, Fail> {
    let (mut key, mut client) = link.connect(kind)?;
    let old = status(&mut client)?;
    let before = program_of(&mut client)?;
    if !out.json {
        println!(
            "OLD ({}):\n{}NEW: every basal flow {percent} % lower (never an increase)",
            mode_text(&old.mode),
            program_text(&before)
        );
    }
    if confirm(&format!("Reduce every basal flow by {percent} %?"), yes)? {
        client.reconnect(&mut key)?;
    }
    ok(&mut client, Body::Pump(Command::ReduceDose { percent }))?;
    let back = program_of(&mut client)?;
    let s = status(&mut client)?;
    let keep = 100u64.saturating_sub(u64::from(percent));
    let expected = before
        .schedule
        .scaled(keep, 100)
        .map_err(|e| Fail::Runtime(e.to_string()))?;
    if back.schedule.basal_range() != expected.basal_range() {
        return Err(Fail::Exit(
            EXIT_READ_BACK,
            format!(
                "read-back mismatch: the pump holds:\n{}",
                program_text(&back).trim_end()
            ),
        ));
    }
    out.emit(
        json!({"accepted": true, "old": program_json(&before), "program": program_json(&back), "status": status_json(&s)}),
        &format!(
            "basal reduced by {percent} %. read back:\n{}",
            program_text(&back)
        ),
        Some(client.bearer.stats),
    );
    Ok(ExitCode::SUCCESS)
}

/// Output for one invocation: JSON or text, and the on-air counters.
pub struct Out {
    /// JSON output.
    pub json: bool,
    /// Show the counters in text mode.
    pub stats: bool,
}

impl Out {
    /// Prints the result.
    pub fn emit(&self, mut value: Value, text: &str, stats: Option<Stats>) {
        if self.json {
            if let (Some(s), Some(obj)) = (stats, value.as_object_mut()) {
                obj.insert("stats".into(), s.json());
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        } else {
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
            if let (true, Some(s)) = (self.stats, stats) {
                println!("{}", s.line());
            }
        }
    }
}

/// The programmer's own gate on a checked prescription: a hard finding is refused with
/// exit status 3, a soft finding without `--confirm-soft REASON` with exit status 4
/// (`--yes` never confirms a soft finding). With `--json` the findings are printed as
/// JSON on standard output as well.
pub fn gate(out: &Out, findings: &check::Findings, confirm_soft: Option<&str>) -> Result<(), Fail> {
    let list: Vec<Value> = findings
        .iter()
        .map(|f| json!({"severity": f.severity.to_string(), "message": f.to_string()}))
        .collect();
    let words = |sev: Severity| {
        findings
            .iter()
            .filter(|f| f.severity == sev)
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let refusal = match findings.worst() {
        Some(Severity::Hard) => Some((
            EXIT_HARD,
            "hard",
            format!(
                "refused before sending, hard finding(s): {}",
                if findings.truncated {
                    "too many findings".to_string()
                } else {
                    words(Severity::Hard)
                }
            ),
        )),
        Some(Severity::Soft) if confirm_soft.is_none_or(|r| r.trim().is_empty()) => Some((
            EXIT_SOFT_UNCONFIRMED,
            "soft-unconfirmed",
            format!(
                "not sent: soft finding(s) need --confirm-soft REASON (--yes does not \
                 confirm them): {}",
                words(Severity::Soft)
            ),
        )),
        _ => None,
    };
    match refusal {
        None => Ok(()),
        Some((code, why, message)) => {
            if out.json {
                out.emit(
                    json!({"accepted": false, "refused": why, "findings": list, "message": message}),
                    "",
                    None,
                );
            } else {
                for f in findings.iter() {
                    let tag = match f.severity {
                        Severity::Hard => "HARD",
                        Severity::Soft => "soft",
                    };
                    println!("check: {tag}  {f}");
                }
            }
            Err(Fail::Exit(code, message))
        }
    }
}

/// The reason given with `--confirm-soft`, as the pump command carries it: at most
/// [`SOFT_REASON_MAX`] bytes of UTF-8 (a longer one is bad input, exit status 2). An
/// empty reason confirms nothing (the gate then refuses a soft finding).
pub fn soft_reason(confirm_soft: Option<&str>) -> Result<Option<SoftReason>, Fail> {
    match confirm_soft.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => SoftReason::new(text).map(Some).map_err(|e| {
            Fail::Usage(format!(
                "--confirm-soft: {e} (this one is {} bytes; the pump logs at most \
                 {SOFT_REASON_MAX})",
                text.len()
            ))
        }),
    }
}

/// Compares the program read back with the one sent (the pump keeps its own reservoir
/// volume); a difference is an error that says what the pump holds (exit status 5).
pub fn verify_program(sent: &Prescription, back: &Prescription) -> Result<(), Fail> {
    if session::program_matches(sent, back) {
        Ok(())
    } else {
        Err(Fail::Exit(
            EXIT_READ_BACK,
            format!(
                "read-back mismatch: the pump did not store the program sent; it holds:\n{}",
                program_text(back).trim_end()
            ),
        ))
    }
}

/// Compares the pump's state after a refill with what was recorded: the contents sent,
/// a new program version, and no more in the reservoir than was added (the pump may
/// have delivered a little since). A difference says what the pump holds (exit status 5).
pub fn verify_refill(
    old: &Status,
    contents: &Admixture,
    added: Volume,
    s: &Status,
    p: &Prescription,
) -> Result<(), Fail> {
    let mut wrong = Vec::new();
    if p.contents != *contents {
        wrong.push(format!(
            "contents {} but {} was sent",
            contents_text(&p.contents),
            contents_text(contents)
        ));
    }
    if s.program_version <= old.program_version {
        wrong.push(format!(
            "program version {} (unchanged from before the refill)",
            s.program_version
        ));
    }
    if s.reservoir > added {
        wrong.push(format!(
            "a reservoir of {} but {added} was added",
            s.reservoir
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(Fail::Exit(
            EXIT_READ_BACK,
            format!("read-back mismatch: the pump holds {}", wrong.join("; ")),
        ))
    }
}

/// Alarm thresholds in words.
pub fn alarm_settings_text(a: &AlarmSettings) -> String {
    format!(
        "low-reservoir alarm at {} or {}, whichever comes first; reminder after {} stopped",
        a.low_reservoir,
        if a.low_reservoir_days == 0 {
            "never by days (off)".to_string()
        } else {
            format!("{} days of therapy left", a.low_reservoir_days)
        },
        a.stopped_reminder
    )
}

/// Asks "y/N" on the terminal unless `yes`; returns whether it asked (the pause may have
/// outlasted the pump's session idle limit: reconnect before sending).
pub fn confirm(question: &str, yes: bool) -> Result<bool, Fail> {
    if yes {
        return Ok(false);
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(true)
    } else {
        Err(Fail::Runtime("not confirmed: nothing was sent".into()))
    }
}

/// [`Refusal::code`] of the pump's prescription check (hard or unconfirmed soft).
const PRESCRIPTION_REFUSAL: u8 = 2;
/// [`Refusal::code`] of a flagged refill reconciliation that was not confirmed.
const RECONCILIATION_REFUSAL: u8 = 3;
/// [`Refusal::code`] of MRI mode refused because the reservoir is not empty.
const MRI_NOT_EMPTY_REFUSAL: u8 = 25;
/// [`Refusal::code`] of a priming bolus refused because no catheter is recorded.
const NO_CATHETER_REFUSAL: u8 = 26;

/// A refusal as an error carrying the pump's text: exit status 3 for a hard finding of
/// the pump's prescription check, 4 for a soft finding or flagged reconciliation not
/// confirmed, 1 otherwise.
pub fn refused(reply: &Reply) -> Fail {
    match reply {
        Reply::Refused { code, text } => {
            use thecal_link::endpoint::refusal;
            let why = if *code == refusal::NOT_PERMITTED {
                "not permitted: "
            } else {
                ""
            };
            let what_to_do = if *code == refusal::REGISTRY_FULL {
                "\nto free a place: thecal programmer ... devices (find a device no longer \
                 used), revoke KEY_ID, remove KEY_ID"
            } else if *code == NO_CATHETER_REFUSAL {
                "\nrecord it with the pump stopped: thecal programmer ... catheter --model \
                 CODE --length \"45 cm\""
            } else if *code == MRI_NOT_EMPTY_REFUSAL {
                "\nfor a scan that cannot wait: thecal programmer ... mri on --emergency"
            } else {
                ""
            };
            let message = format!(
                "the pump refused (code {code}): {why}{}{what_to_do}",
                in_words(text)
            );
            // The pump's own prescription check and reconciliation: the same exit
            // statuses as the programmer's gate (the pump also knows the program in force,
            // so it may find what the file alone did not).
            let hard = *code == PRESCRIPTION_REFUSAL
                && text.starts_with("rejected by the prescription check");
            if hard {
                Fail::Exit(EXIT_HARD, message)
            } else if *code == PRESCRIPTION_REFUSAL || *code == RECONCILIATION_REFUSAL {
                Fail::Exit(
                    EXIT_SOFT_UNCONFIRMED,
                    format!(
                        "{message}\n(confirm with --confirm-soft REASON; --yes does not \
                         confirm)"
                    ),
                )
            } else {
                Fail::Runtime(message)
            }
        }
        Reply::Malformed => Fail::Runtime("the pump could not decode the command".into()),
        other => Fail::Runtime(format!("unexpected answer from the pump: {other:?}")),
    }
}

/// A reply that is not what was asked, in the programmer's words.
fn lift(e: Fail) -> Fail {
    match e {
        Fail::Refused(r) => refused(&r),
        e => e,
    }
}

/// Sends a command and expects `Accepted`-like success (any non-refusal).
fn ok(client: &mut Client, body: Body) -> Result<Reply, Fail> {
    session::ok(client, body).map_err(lift)
}

/// Reads the status.
pub fn status(client: &mut Client) -> Result<Status, Fail> {
    let s = session::status(client).map_err(lift)?;
    note_clock(&s);
    Ok(s)
}

/// The pump's monotonic time and the wall time it corresponds to, from the last status
/// read: the pump's own clock when set, the host's otherwise.
static PUMP_CLOCK: std::sync::Mutex<Option<(u64, u64)>> = std::sync::Mutex::new(None);

fn note_clock(s: &Status) {
    let host = chrono::Utc::now().timestamp_millis().max(0) as u64;
    if let Ok(mut c) = PUMP_CLOCK.lock() {
        *c = Some((s.now.ms(), s.utc_ms.unwrap_or(host)));
    }
}

fn devices(client: &mut Client) -> Result<Vec<DeviceInfo>, Fail> {
    session::devices(client).map_err(lift)
}

/// One enrolled device in words (`own`: this programmer's key id).
fn device_text(d: &DeviceInfo, own: u32) -> String {
    format!(
        "key {:>10}  {:<15} {}{}  {}",
        d.key_id,
        d.role.to_string(),
        if d.revoked { "REVOKED" } else { "active " },
        if d.key_id == own {
            " (this programmer)"
        } else {
            ""
        },
        hex(&d.key)
    )
}

fn device_json(d: &DeviceInfo) -> Value {
    json!({"key_id": d.key_id, "role": d.role.to_string(), "revoked": d.revoked, "key": hex(&d.key)})
}

fn program_of(client: &mut Client) -> Result<Prescription, Fail> {
    session::program(client).map_err(lift)
}

// ----- plain words ---------------------------------------------------------------------

/// Unix milliseconds of a pump instant (by the pump's clock at the last status read,
/// or the host's clock when none was read).
pub fn pump_to_wall(t_ms: u64) -> u64 {
    let host = unix_ms();
    let (now, utc) = PUMP_CLOCK
        .lock()
        .ok()
        .and_then(|c| *c)
        .unwrap_or((t_ms, host));
    if t_ms >= now {
        utc.saturating_add(t_ms - now)
    } else {
        utc.saturating_sub(now - t_ms)
    }
}

/// A refusal's text with the pump's times in words ("14:35 (in 42 min)").
pub fn in_words(text: &str) -> String {
    crate::words::pump_times(text, pump_to_wall, unix_ms())
}

/// What stopping does to this patient, drug by drug, with the source of each warning.
pub fn stop_warnings(program: &Prescription) -> Vec<String> {
    program
        .contents
        .active()
        .filter_map(|c| {
            c.drug
                .stop_warning()
                .map(|w| format!("WARNING ({}): {} [{}]", c.drug, w.value, w.source))
        })
        .collect()
}

/// A pump instant as a date, by the pump's clock at the last status read (or as pump
/// time when no status was read).
pub fn when(t: Instant) -> String {
    match PUMP_CLOCK.lock().ok().and_then(|c| *c) {
        Some((now, utc)) => {
            let ms = if t.ms() >= now {
                utc.saturating_add(t.ms() - now)
            } else {
                utc.saturating_sub(now - t.ms())
            };
            rfc3339(ms)
        }
        None => format!("pump time {} s", t.ms() / 1000),
    }
}

/// The therapy mode in words.
pub fn mode_text(m: &Mode) -> String {
    match m {
        Mode::Running => "running".into(),
        Mode::Stopped { reason, since } => {
            format!("stopped ({}) since {}", reason_text(*reason), when(*since))
        }
        Mode::MriSuspended => "suspended for MRI (valve shut)".into(),
        Mode::EndOfService => "end of service (battery exhausted)".into(),
        Mode::Fault { code } => format!("fault ({code:?})"),
    }
}

fn reason_text(r: StopReason) -> &'static str {
    match r {
        StopReason::Procedure => "procedure",
        StopReason::AdverseEffect => "adverse effect",
        StopReason::EndOfTherapy => "end of therapy",
        StopReason::Other => "other",
    }
}

/// A duration in days (one decimal) or hours.
pub fn span(d: Duration) -> String {
    let h = d.ms() as f64 / 3_600_000.0;
    if h >= 48.0 {
        format!("{:.1} days", h / 24.0)
    } else {
        format!("{h:.1} h")
    }
}

/// The status as JSON.
pub fn status_json(s: &Status) -> Value {
    json!({
        "mode": mode_text(&s.mode),
        "running": matches!(s.mode, Mode::Running),
        "program_version": s.program_version,
        "reservoir": s.reservoir.to_string(),
        "reservoir_nl": s.reservoir.raw(),
        "delivered": s.delivered.to_string(),
        "missed": s.missed.to_string(),
        "alarms": s.alarms.iter().map(|a| json!({
            "kind": a.kind.name(),
            "priority": a.priority.to_string(),
            "acknowledged": a.acknowledged,
            "patient_text": a.kind.patient_text(),
        })).collect::<Vec<_>>(),
        "battery_life_days": s.battery_life.map(|d| d.ms() as f64 / 86_400_000.0),
        "next_refill": s.next_refill.map(when),
        "clock_set": s.clock_set,
        "bolus_active": s.bolus_active,
        "bridging": s.bridging,
        "catheter": s.catheter.map(|c| json!({
            "model": c.model,
            "model_name": c.model_name(),
            "length_mm": c.length_mm,
            "volume_per_cm": c.volume_per_cm.to_string(),
            "pump_segment": c.pump_segment.to_string(),
            "volume": c.volume().to_string(),
            "volume_nl": c.volume().raw(),
            "text": c.to_string(),
        })),
        "pump_path": s.pump_path.to_string(),
        "dead_volume": s.dead_volume.to_string(),
        "dead_volume_nl": s.dead_volume.raw(),
        "ahead_of_drug": s.ahead_of_drug.to_string(),
        "ahead_of_drug_nl": s.ahead_of_drug.raw(),
        "reminder_interval": s.reminder_interval.to_string(),
        "alarm_settings": {
            "low_reservoir": s.alarm_settings.low_reservoir.to_string(),
            "low_reservoir_days": s.alarm_settings.low_reservoir_days,
            "stopped_reminder": s.alarm_settings.stopped_reminder.to_string(),
            "text": alarm_settings_text(&s.alarm_settings),
        },
    })
}

/// The status in words.
pub fn status_text(s: &Status) -> String {
    let mut t = format!(
        "mode:        {}\nreservoir:   {}\ndelivered:   {} (missed {})\nprogram:     version {}\n",
        mode_text(&s.mode),
        s.reservoir,
        s.delivered,
        s.missed,
        s.program_version
    );
    t += &format!(
        "next refill: {}\nbattery:     {}\nclock:       {}\n",
        s.next_refill.map_or_else(|| "— (not running)".into(), when),
        s.battery_life
            .map_or_else(|| "unknown".into(), |d| format!("about {} left", span(d))),
        if s.clock_set { "set" } else { "NOT SET" }
    );
    if s.bolus_active {
        t += "bolus:       under way\n";
    }
    t += &format!(
        "catheter:    {}\ndead volume: {}\nreminder:    {}\n",
        catheter_text(s.catheter.as_ref()),
        dead_volume_text(s),
        reminder_text(s.reminder_interval)
    );
    if s.alarms.is_empty() {
        t += "alarms:      none\n";
    } else {
        for a in &s.alarms {
            t += &format!(
                "alarm:       {} ({}{})\n",
                a.kind.name(),
                a.priority,
                if a.acknowledged { ", acknowledged" } else { "" }
            );
        }
    }
    t
}

/// The catheter record in words.
pub fn catheter_text(c: Option<&CatheterRecord>) -> String {
    c.map_or_else(
        || "none recorded (priming is refused until one is)".to_string(),
        CatheterRecord::to_string,
    )
}

/// The dead volume in words: pump path and catheter, and how much is still ahead of the
/// reservoir's drug.
pub fn dead_volume_text(s: &Status) -> String {
    format!(
        "{} (pump path {} + catheter {}{}); {}",
        s.dead_volume,
        s.pump_path,
        s.dead_volume.saturating_sub(s.pump_path),
        if s.catheter.is_none() {
            ", the pump model's nominal catheter"
        } else {
            ""
        },
        if s.reservoir.is_zero() {
            "the reservoir holds no drug".to_string()
        } else {
            format!("{} of it ahead of the drug", s.ahead_of_drug)
        }
    )
}

/// The no-delivery reminder interval in words.
pub fn reminder_text(d: Duration) -> String {
    format!(
        "an acknowledged no-delivery alarm (stopped, MRI mode, fault, empty reservoir, end \
         of service) sounds again every {d}"
    )
}

/// A prescription as JSON.
pub fn program_json(p: &Prescription) -> Value {
    let daily = p.schedule.mean_daily();
    let doses: Vec<Value> = p
        .contents
        .daily_doses(Flow::from_raw(daily.raw()))
        .map(|v| {
            v.iter()
                .map(|(d, m)| json!({"drug": d.to_string(), "daily_dose": m.to_string()}))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "contents": contents_text(&p.contents),
        "basal": p.schedule.profiles().iter().map(|day| day.steps().iter().map(|s| json!({
            "start": minute(s.start_minute), "rate": s.flow.to_string()
        })).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "mean_daily_volume": daily.to_string(),
        "daily_doses": doses,
        "periodic_boluses": p.schedule.boluses().len(),
        "patient_bolus": p.patient_bolus.map(|b| json!({
            "volume": b.volume.to_string(), "duration": b.duration.to_string(),
            "lockout": b.lockout.to_string(), "max_per_day": b.max_per_day,
        })),
        "reservoir_volume": p.reservoir_volume.to_string(),
    })
}

/// The soft-finding confirmations in `entries` whose parts are all present, in order:
/// the first part's sequence number maps to the whole reason, every further part's to
/// `None`.
pub fn confirmation_reasons(
    entries: &[LogEntry],
) -> std::collections::HashMap<u32, Option<String>> {
    let mut whole = std::collections::HashMap::new();
    // The first part's sequence number, the further parts seen, the text so far.
    let mut current: Option<(u32, Vec<u32>, String)> = None;
    for e in entries {
        let Event::SoftFindingConfirmed {
            part, parts, text, ..
        } = e.event
        else {
            current = None;
            continue;
        };
        let text = text.as_str().unwrap_or("");
        current = match current.take() {
            _ if part == 0 => Some((e.seq, Vec::new(), text.to_string())),
            Some((first, mut more, mut joined)) if usize::from(part) == more.len() + 1 => {
                more.push(e.seq);
                joined.push_str(text);
                Some((first, more, joined))
            }
            _ => None,
        };
        if let Some((first, more, joined)) = &current {
            if more.len() + 1 == usize::from(parts) {
                whole.insert(*first, Some(joined.clone()));
                for seq in more {
                    whole.insert(*seq, None);
                }
                current = None;
            }
        }
    }
    whole
}

/// A log entry in words, a confirmation's whole reason on its first part.
fn describe_entry(
    e: &LogEntry,
    reasons: &std::collections::HashMap<u32, Option<String>>,
) -> String {
    match (e.event, reasons.get(&e.seq)) {
        (
            Event::SoftFindingConfirmed {
                command, findings, ..
            },
            Some(Some(reason)),
        ) => format!(
            "{}: {findings} soft finding(s) confirmed by the clinician, reason \"{reason}\"",
            command_name(command)
        ),
        (Event::SoftFindingConfirmed { part, parts, .. }, Some(None)) => format!(
            "(the reason above, part {} of {parts})",
            part.saturating_add(1)
        ),
        _ => describe_event(&e.event),
    }
}

// ----- input -----------------------------------------------------------------------------

/// Parses "DRUG CONC [+ DRUG CONC ...]".
fn parse_contents(s: &str) -> Result<Admixture, Fail> {
    let bad = |m: String| Fail::Usage(format!("--contents '{s}': {m}"));
    let mut parts = Vec::new();
    for part in s.split('+') {
        let part = part.trim();
        let (name, conc) = part.split_once(char::is_whitespace).ok_or_else(|| {
            bad("expected DRUG CONCENTRATION, e.g. \"baclofen 2000 mcg/mL\"".into())
        })?;
        let drug = rxfile::drug("", name).map_err(|e| bad(e.message))?;
        let concentration: Concentration = conc
            .trim()
            .parse()
            .map_err(|e| bad(format!("'{}': {e}", conc.trim())))?;
        parts.push(Component {
            drug,
            concentration,
        });
    }
    Admixture::new(&parts).map_err(|e| bad(e.to_string()))
}

fn parse_bridge(s: &str) -> Result<BridgeChoice, Fail> {
    match s {
        "auto" | "automatic" => Ok(BridgeChoice::Automatic),
        "none" => Ok(BridgeChoice::None),
        other => other.parse::<Duration>().map(BridgeChoice::Bolus).map_err(|e| {
            Fail::Usage(format!(
                "--bridge '{other}': {e}; allowed: auto, none, or a bolus duration such as \"30 min\""
            ))
        }),
    }
}

/// The catalogue in words, for an error that says what is allowed.
fn catalogue_text() -> String {
    let models: Vec<String> = cath::CATALOGUE
        .iter()
        .map(|m| format!("{} ({})", m.code, m.name))
        .collect();
    format!(
        "{}, or custom (code {CUSTOM_MODEL}) with --volume-per-cm and --pump-segment from \
         the catheter's labelling",
        models.join(", ")
    )
}

/// A length with its unit, "45 cm", "45.5 cm" or "450 mm", in whole millimetres.
fn parse_length_mm(s: &str) -> Result<u16, Fail> {
    cath::parse_length_mm(s).map_err(|why| {
        Fail::Usage(format!(
            "--length '{s}': {}; give the length after trimming with its unit, e.g. \
             \"45 cm\" or \"450 mm\" ({})",
            why.message(),
            cath::CatheterError::Length.message()
        ))
    })
}

/// The catheter record from the command line, checked as the pump checks it; bad input
/// (exit status 2) says what is allowed.
fn catheter_record(
    model: &str,
    length: &str,
    volume_per_cm: Option<&str>,
    pump_segment: Option<Volume>,
) -> Result<CatheterRecord, Fail> {
    let length_mm = parse_length_mm(length)?;
    let custom =
        model.trim().eq_ignore_ascii_case("custom") || model.trim() == CUSTOM_MODEL.to_string();
    let per_cm = volume_per_cm
        .map(|v| {
            let v = v.trim();
            let v = v
                .strip_suffix("/cm")
                .or_else(|| v.strip_suffix(" per cm"))
                .unwrap_or(v);
            v.trim().parse::<Volume>().map_err(|e| {
                Fail::Usage(format!(
                    "--volume-per-cm '{v}': {e}; give the labelled internal volume per cm, \
                     e.g. \"2.2 uL\""
                ))
            })
        })
        .transpose()?;
    let record = if custom {
        let (Some(volume_per_cm), Some(pump_segment)) = (per_cm, pump_segment) else {
            return Err(Fail::Usage(
                "--model custom needs the labelled --volume-per-cm (e.g. \"2.2 uL\") and \
                 --pump-segment (e.g. \"20 uL\", or \"0 uL\" for a one-piece catheter)"
                    .into(),
            ));
        };
        CatheterRecord {
            model: CUSTOM_MODEL,
            volume_per_cm,
            length_mm,
            pump_segment,
        }
    } else {
        let m = cath::model_named(model).ok_or_else(|| {
            Fail::Usage(format!(
                "--model '{model}': unknown catheter model; known: {}",
                catalogue_text()
            ))
        })?;
        CatheterRecord {
            volume_per_cm: per_cm.unwrap_or(m.volume_per_cm),
            pump_segment: pump_segment.unwrap_or(m.pump_segment),
            ..CatheterRecord::of_model(m, length_mm)
        }
    };
    record.validate().map_err(|e| {
        Fail::Usage(format!(
            "catheter {}: {}",
            if custom { "custom" } else { model },
            e.message()
        ))
    })?;
    Ok(record)
}

fn parse_fingerprint(s: &str) -> Result<u32, Fail> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != 6 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(Fail::Usage(format!(
            "--fingerprint '{s}': expected the six digits the remote shows, e.g. 123456 or \"123 456\""
        )));
    }
    digits
        .parse()
        .map_err(|_| Fail::Usage(format!("--fingerprint '{s}': not a number")))
}

/// Formats a fingerprint as "123 456".
pub fn fingerprint_text(f: u32) -> String {
    format!("{:03} {:03}", f / 1000, f % 1000)
}

pub use thecal_programmer::session::Invitation;

/// Reads a proximity token or remote invite (JSON, must be private).
pub fn read_invitation(path: &Path, what: &str) -> Result<Invitation, Fail> {
    if !path.exists() {
        return Err(Fail::Usage(format!(
            "{what} {}: no such file",
            path.display()
        )));
    }
    check_private(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Fail::Runtime(format!("cannot read {}: {e}", path.display())))?;
    session::parse_invitation(
        &text,
        &format!("{what} {}", path.display()),
        i64::try_from(unix_ms()).unwrap_or(i64::MAX),
    )
}

// ----- subcommands -----------------------------------------------------------------------

/// Runs `thecal programmer`; `Err` is a one-line message for exit status 2.
pub fn run(args: ProgrammerArgs) -> Result<ExitCode, String> {
    finish(run_inner(args))
}

fn connect(args: &ProgrammerArgs) -> Result<(Key, Client), Fail> {
    args.link.connect(DeviceKind::Programmer)
}

fn run_inner(args: ProgrammerArgs) -> Result<ExitCode, Fail> {
    let out = args.link.out();
    match &args.command {
        ProgCommand::Keygen => {
            let path = args.link.key_path(DeviceKind::Programmer)?;
            let key = Key::generate(&path, DeviceKind::Programmer)?;
            out.emit(
                json!({"key": path.display().to_string(), "public": key.file.public, "key_id": key.key_id()}),
                &format!(
                    "new programmer key in {} (0600): public {}, key id {}\nnext: hold the wand \
                     over the pump (thecal programmer wand --state DIR) and enrol \
                     (thecal programmer enroll --token DIR/proximity.token)",
                    path.display(),
                    key.file.public,
                    key.key_id()
                ),
                None,
            );
            Ok(ExitCode::SUCCESS)
        }
        ProgCommand::Wand { state, enrol } => {
            let (token, doc) =
                crate::implant::wand(state, std::time::Duration::from_secs(5), *enrol)?;
            let full = doc.get("registry_full").and_then(Value::as_bool) == Some(true);
            let full_text = if full {
                "\nthe pump's registry is full: enrolment will fail until a revoked device is \
                 removed (thecal programmer ... devices, revoke KEY_ID, remove KEY_ID)"
            } else {
                ""
            };
            let text = if *enrol {
                format!(
                    "radio awake; enrolment window open for 5 minutes; proximity token in {}\n\
                     next: thecal programmer --key FILE --implant ADDR enroll --token {}{full_text}",
                    token.display(),
                    token.display()
                )
            } else {
                format!(
                    "radio awake: the pump listens for 5 minutes whatever the back-off or \
                     its energy budget said (no enrolment window; use --enrol to enrol a \
                     programmer){full_text}"
                )
            };
            out.emit(
                json!({"woken": true, "enrolment_window": *enrol, "token": enrol.then(|| token.display().to_string()), "registry_full": full}),
                &text,
                None,
            );
            Ok(ExitCode::SUCCESS)
        }
        ProgCommand::Enroll { token } => {
            let path = args.link.key_path(DeviceKind::Programmer)?;
            let address = args.link.address()?;
            let mut key = Key::load(&path, DeviceKind::Programmer)?;
            let inv = read_invitation(token, "proximity token")?;
            let bearer = Bearer::new(&address, ANSWER_TIMEOUT)?;
            let (client, pairing) = session::enrol(bearer, &mut key, &inv, &address)?;
            let key_id = pairing.key_id;
            key.file.pairing = Some(pairing);
            key.save()?;
            // The token is single-use: remove it so it is not mistaken for a fresh one.
            let _ = std::fs::remove_file(token);
            out.emit(
                json!({"enrolled": true, "key_id": key_id, "role": "clinician", "implant_key": hex(&inv.implant.0)}),
                &format!(
                    "enrolled with the pump at {address} as clinician programmer, key id {key_id}"
                ),
                Some(client.bearer.stats),
            );
            Ok(ExitCode::SUCCESS)
        }
        ProgCommand::Interrogate => {
            let (_key, mut client) = connect(&args)?;
            let s = status(&mut client)?;
            let p = program_of(&mut client)?;
            out.emit(
                json!({"status": status_json(&s), "program": program_json(&p)}),
                &format!("{}program:\n{}", status_text(&s), program_text(&p)),
                Some(client.bearer.stats),
            );
            Ok(ExitCode::SUCCESS)
        }
        ProgCommand::Program {
            prescription,
            confirm_soft,
            yes,
        } => {
            let text = std::fs::read_to_string(prescription).map_err(|e| {
                Fail::Usage(format!("--prescription {}: {e}", prescription.display()))
            })?;
            let file = rxfile::parse(&text, crate::calc::file_models())
                .map_err(|e| Fail::Usage(format!("{}: {e}", prescription.display())))?;
            let new = file.prescription.clone();
            let findings = file.check();
            let reason = soft_reason(confirm_soft.as_deref())?;
            // Hard findings and unconfirmed soft ones are refused here, before the pump
            // is even contacted.
            gate(&out, &findings, confirm_soft.as_deref())?;
            let (mut key, mut client) = connect(&args)?;
            let old = program_of(&mut client)?;
            let old_status = status(&mut client)?;
            if !out.json {
                println!(
                    "pump: {}\nOLD (running now, version {}):\n{}NEW ({}):\n{}",
                    mode_text(&old_status.mode),
                    old_status.program_version,
                    program_text(&old),
                    prescription.display(),
                    program_text(&new)
                );
                for f in findings.iter() {
                    let tag = match f.severity {
                        Severity::Hard => "HARD",
                        Severity::Soft => "soft",
                    };
                    println!("check: {tag}  {f}");
                }
            }
            let question = match confirm_soft {
                None => "Send the new program?".to_string(),
                Some(reason) => format!(
                    "Send the new program, confirming {} soft finding(s) above because \"{reason}\"?",
                    findings.len()
                ),
            };
            if confirm(&question, *yes)? {
                client.reconnect(&mut key)?;
            }
            ok(
                &mut client,
                Body::Pump(Command::Program {
                    prescription: new.clone(),
                    confirm_soft: reason.clone(),
                }),
            )?;
            let back = program_of(&mut client)?;
            let s = status(&mut client)?;
            // The pump keeps its own reservoir volume (what is left now), not the file's.
            let same = session::program_matches(&new, &back);
            out.emit(
                json!({
                    "accepted": true,
                    "old": program_json(&old),
                    "new": program_json(&new),
                    "read_back": program_json(&back),
                    "read_back_matches": same,
                    "confirm_soft_reason": reason.as_ref().map(SoftReason::as_str),
                    "findings": findings.iter().map(|f| json!({"severity": f.severity.to_string(), "message": f.to_string()})).collect::<Vec<_>>(),
                    "status": status_json(&s),
                }),
                &format!(
                    "accepted. read back from the pump (version {}, {}):\n{}{}",
                    s.program_version,
                    mode_text(&s.mode),
                    program_text(&back),
                    if same {
                        "the pump runs exactly the program sent"
                    } else {
                        "WARNING: the program read back differs from the one sent"
                    }
                ),
                Some(client.bearer.stats),
            );
            verify_program(&new, &back)?;
            Ok(ExitCode::SUCCESS)
        }
        ProgCommand::Refill {
            aspirated,
            added,
            contents,
            keep_dose,
            bridge,
            confirm_soft,
            yes,
        } => {
            let contents = parse_contents(contents)?;
            let bridge = parse_bridge(bridge)?;
            let reason = soft_reason(confirm_soft.as_deref())?;
            let (mut key, mut client) = connect(&args)?;
            let old = status(&mut client)?;
            let old_p = program_of(&mut client)?;
            if !out.json {
                println!(
                    "OLD: reservoir {} of {}; {}\nNEW: aspirate {aspirated}, add {added} of {}{}; bridge {bridge:?}",
                    old.reservoir,
                    contents_text(&old_p.contents),
                    mode_text(&old.mode),
                    contents_text(&contents),
                    if *keep_dose {
                        ", keeping each daily dose"
                    } else {
                        ""
                    }
                );
            }
            let question = match &reason {
                None => "Record this refill?".to_string(),
                Some(r) => format!(
                    "Record this refill, confirming the pump's soft findings and a flagged \
                     reconciliation because \"{r}\"?"
                ),
            };
            if confirm(&question, *yes)? {
                client.reconnect(&mut key)?;
            }
            ok(
                &mut client,
                Body::Pump(Command::Refill {
                    aspirated: *aspirated,
                    added: *added,
                    contents: contents.clone(),
                    keep_dose: *keep_dose,
                    bridge,
                    confirm: reason.clone(),
                    beyond_use_utc_ms: None,
                }),
            )?;
            let s = status(&mut client)?;
            let p = program_of(&mut client)?;
            verify_refill(&old, &contents, *added, &s, &p)?;
            out.emit(
                json!({
                    "accepted": true,
                    "old": {"reservoir": old.reservoir.to_string(), "contents": contents_text(&old_p.contents)},
                    "status": status_json(&s),
                    "program": program_json(&p),
                }),
                &format!(
                    "refill recorded. read back:\n{}program:\n{}",
                    status_text(&s),
                    program_text(&p)
                ),
                Some(client.bearer.stats),
            );
            Ok(ExitCode::SUCCESS)
        }
        ProgCommand::Bolus {
            volume,
            duration,
            yes,
        } => simple_change(
            &out,
            &args.link,
            DeviceKind::Programmer,
            *yes,
            Change {
                review: &|s| {
                    format!(
                        "OLD: {}\nNEW: a clinician bolus of {volume} over {duration} on top",
                        mode_text(&s.mode)
                    )
                },
                question: "Give the bolus?",
                cmd: Command::ClinicianBolus {
                    volume: *volume,
                    duration: *duration,
                },
                verify: &|_, s| {
                    if s.bolus_active {
                        Ok(())
                    } else {
                        Err(format!("the pump runs no bolus ({})", mode_text(&s.mode)))
                    }
                },
                done: "clinician bolus started",
            },
        ),
        ProgCommand::Stop { reason, yes } => {
            let reason = match reason {
                ReasonArg::Procedure => StopReason::Procedure,
                ReasonArg::AdverseEffect => StopReason::AdverseEffect,
                ReasonArg::EndOfTherapy => StopReason::EndOfTherapy,
                ReasonArg::Other => StopReason::Other,
            };
            let (mut key, mut client) = connect(&args)?;
            let old = status(&mut client)?;
            // Only a clinician may read the program; for any other sender the pump
            // refuses the stop itself, so the generic warning is enough.
            let program = program_of(&mut client).ok();
            if !out.json {
                println!(
                    "OLD: {}\nNEW: stopped ({})",
                    mode_text(&old.mode),
                    reason_text(reason)
                );
                let warnings = program.as_ref().map(stop_warnings).unwrap_or_default();
                if warnings.is_empty() {
                    println!(
                        "Stopping is not safe for every patient: baclofen withdrawal can kill."
                    );
                }
                for line in warnings {
                    println!("{line}");
                }
                println!(
                    "The pump sounds a reminder until delivery resumes, again after each \
                     acknowledgement."
                );
            }
            if confirm("Stop delivery?", *yes)? {
                client.reconnect(&mut key)?;
            }
            ok(&mut client, Body::Pump(Command::Stop { reason }))?;
            let s = status(&mut client)?;
            match s.mode {
                Mode::Stopped { reason: held, .. } if held == reason => {}
                other => {
                    return Err(Fail::Exit(
                        EXIT_READ_BACK,
                        format!(
                            "read-back mismatch: the pump is {} (a stop for {} was sent)",
                            mode_text(&other),
                            reason_text(reason)
                        ),
                    ));
                }
            }
            out.emit(
                json!({"accepted": true, "old_mode": mode_text(&old.mode), "status": status_json(&s)}),
                &format!("stopped. read back:\n{}", status_text(&s)),
                Some(client.bearer.stats),
            );
            Ok(ExitCode::SUCCESS)
        }
        ProgCommand::Resume { yes } => simple_change(
            &out,
            &args.link,
            DeviceKind::Programmer,
            *yes,
            Change {
                review: &|s| format!("OLD: {}\nNEW: running", mode_text(&s.mode)),
                question: "Resume delivery?",
                cmd: Command::Resume,
                verify: &|_, s| {
                    if matches!(s.mode, Mode::Running) {
                        Ok(())
                    } else {
                        Err(format!("the pump is {}", mode_text(&s.mode)))
                    }
                },
                done: "resumed",
            },
        ),
        ProgCommand::Clock { yes } => {
            let utc_ms = unix_ms();
            let offset_minutes =
                i16::try_from(chrono::Local::now().offset().local_minus_utc() / 60).unwrap_or(0);
            simple_change(
                &out,
                &args.link,
                DeviceKind::Programmer,
                *yes,
                Change {
                    review: &|s| {
                        format!(
                            "OLD: pump clock {}\nNEW: {} (local offset {offset_minutes:+} min)",
                            s.utc_ms.map_or("not set".to_string(), rfc3339),
                            rfc3339(utc_ms)
                        )
                    },
                    question: "Set the pump's clock?",
                    cmd: Command::SetClock {
                        utc_ms,
                        offset_minutes,
                    },
                    verify: &|_, s| match s.utc_ms {
                        // The read-back comes a round trip later: within a minute.
                        Some(t) if s.clock_set && t.abs_diff(utc_ms) < 60_000 => Ok(()),
                        other => Err(format!(
                            "the pump's clock reads {}",
                            other.map_or("not set".to_string(), rfc3339)
                        )),
                    },
                    done: "pump clock set",
                },
            )
        }
        ProgCommand::EnrollRemote {
            role,
            window,
            out: invite,
        } => {
            let role = match role {
                RemoteRole::Patient => Role::PatientRemote,
                RemoteRole::Emergency => Role::Emergency,
            };
            let window_s = u16::try_from(window.ms() / 1000).unwrap_or(u16::MAX);
            if window.ms() % 1000 != 0
                || !thecal_link::endpoint::ENROLMENT_WINDOW_SECONDS.contains(&window_s)
            {
                return Err(Fail::Usage(format!(
                    "--window {window}: allowed 10 s to 10 min, in whole seconds"
                )));
            }
            let window = &window_s;
            let (_key, mut client) = connect(&args)?;
            let r = ok(
                &mut client,
                Body::Link(LinkCommand::OpenEnrolment {
                    role,
                    seconds: *window,
                }),
            )?;
            let Reply::EnrolmentOpen {
                psk, implant_key, ..
            } = r
            else {
                return Err(refused(&r));
            };
            let expires = rfc3339(unix_ms() + u64::from(*window) * 1000);
            let doc = json!({
                "implant_key": hex(&implant_key),
                "psk": hex(&psk),
                "role": role.to_string(),
                "expires": expires,
                "implant": client.bearer.peer().to_string(),
            });
            write_private(
                invite,
                serde_json::to_string_pretty(&doc)
                    .unwrap_or_default()
                    .as_bytes(),
            )?;
            out.emit(
                json!({"invite": invite.display().to_string(), "role": role.to_string(), "expires": expires}),
                &format!(
                    "enrolment window open for a {role} until {expires}; invite in {} (0600).\n\
                     On the remote: thecal remote --key REMOTE.key --implant {} enroll --invite {}\n\
                     then compare fingerprints: thecal programmer ... confirm-remote --fingerprint NNNNNN",
                    invite.display(),
                    client.bearer.peer(),
                    invite.display()
                ),
                Some(client.bearer.stats),
            );
            Ok(ExitCode::SUCCESS)
        }
        ProgCommand::ConfirmRemote { fingerprint, yes } => {
            let typed = parse_fingerprint(fingerprint)?;
            let (mut key, mut client) = connect(&args)?;
            let r = ok(&mut client, Body::Link(LinkCommand::PendingEnrolment))?;
            let Reply::EnrolmentPending {
                fingerprint: pump_fp,
                key_id,
                role: pending_role,
                ..
            } = r
            else {
                return Err(refused(&r));
            };
            let same = pump_fp == typed;
            if !out.json {
                println!(
                    "device waiting: key {key_id}, to be enrolled as {pending_role}\n\
                     pump's fingerprint:   {}\nremote's (you typed): {}\n{}",
                    fingerprint_text(pump_fp),
                    fingerprint_text(typed),
                    if same {
                        "they match"
                    } else {
                        "THEY DIFFER: the device that answered may not be the one in your hand"
                    }
                );
            }
            if confirm(
                &format!("Enrol device key {key_id} as {pending_role}?"),
                *yes,
            )? {
                client.reconnect(&mut key)?;
            }
            let r = ok(
                &mut client,
                Body::Link(LinkCommand::ConfirmEnrolment { fingerprint: typed }),
            )?;
            let Reply::Enrolled { key_id, role } = r else {
                return Err(refused(&r));
            };
            out.emit(
                json!({"enrolled": true, "key_id": key_id, "role": role.to_string()}),
                &format!("enrolled: {role} key {key_id}"),
                Some(client.bearer.stats),
            );
            Ok(ExitCode::SUCCESS)
        }
        ProgCommand::Revoke { key_id, yes } => {
            let (mut key, mut client) = connect(&args)?;
            let before = devices(&mut client)?;
            let device = before.iter().find(|d| d.key_id == *key_id);
            if !out.json {
                println!(
                    "OLD: {}\nNEW: key {key_id} revoked: the pump will not answer it again",
                    device.map_or_else(
                        || format!("no device with key id {key_id} is enrolled"),
                        |d| device_text(d, key.key_id())
                    )
                );
            }
            if confirm(&format!("Revoke key {key_id}?"), *yes)? {
                client.reconnect(&mut key)?;
            }
            ok(
                &mut client,
                Body::Link(LinkCommand::Revoke { key_id: *key_id }),
            )?;
            let after = devices(&mut client)?;
            match after.iter().find(|d| d.key_id == *key_id) {
                Some(d) if d.revoked => {}
                other => {
                    return Err(Fail::Exit(
                        EXIT_READ_BACK,
                        format!(
                            "read-back mismatch: the pump holds {}",
                            other.map_or_else(
                                || format!("no device with key id {key_id}"),
                                |d| device_text(d, key.key_id())
                            )
                        ),
                    ));
                }
            }
            out.emit(
                json!({
                    "revoked": key_id,
                    "old": device.map(device_json),
                    "devices": after.iter().map(device_json).collect::<Vec<_>>(),
                }),
                &format!(
                    "key {key_id} revoked: the pump will not answer it again. read back:\n{}",
                    after
                        .iter()
                        .map(|d| device_text(d, key.key_id()))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
                Some(client.bearer.stats),
            );
            Ok(ExitCode::SUCCESS)
        }
        ProgCommand::Remove { key_id } => {
            let (_key, mut client) = connect(&args)?;
            ok(
                &mut client,
                Body::Link(LinkCommand::Remove { key_id: *key_id }),
            )?;
            out.emit(
                json!({"removed": key_id}),
                &format!("key {key_id} removed from the pump's registry: its place is free"),
                Some(client.bearer.stats),
            );
            Ok(ExitCode::SUCCESS)
        }
        ProgCommand::Devices => {
            let (key, mut client) = connect(&args)?;
            let list = devices(&mut client)?;
            let own = key.key_id();
            let text: String = list.iter().map(|d| device_text(d, own) + "\n").collect();
            out.emit(
                json!({"devices": list.iter().map(device_json).collect::<Vec<_>>()}),
                &text,
                Some(client.bearer.stats),
            );
            Ok(ExitCode::SUCCESS)
        }
        ProgCommand::CancelBolus { yes } => {
            cancel_bolus(&out, &args.link, DeviceKind::Programmer, *yes)
        }
        ProgCommand::Acknowledge { alarm, yes } => {
            acknowledge(&out, &args.link, DeviceKind::Programmer, alarm, *yes)
        }
        ProgCommand::Mri {
            state,
            emergency: true,
            yes,
        } => {
            if state != "on" {
                return Err(Fail::Usage(
                    "--emergency goes with `mri on` (an emergency scan); `mri off` resets the \
                     valve after any scan"
                        .into(),
                ));
            }
            simple_change(
                &out,
                &args.link,
                DeviceKind::Programmer,
                *yes,
                Change {
                    review: &|s| {
                        format!(
                            "OLD: {}; the reservoir holds {}\nNEW: EMERGENCY MRI mode: the \
                             valve shut with {} still in the reservoir, for a scan that \
                             cannot wait for the pump to be emptied. The valves may open in \
                             the magnet's field: watch the patient for an overdose during \
                             and after the scan. The pump logs the command with this \
                             programmer's key; reset the valve after the scan (mri off).",
                            mode_text(&s.mode),
                            s.reservoir,
                            s.reservoir
                        )
                    },
                    question: "Shut the valve for an emergency scan with drug in the reservoir?",
                    cmd: Command::MriEmergency,
                    verify: &|_, s| {
                        if matches!(s.mode, Mode::MriSuspended) {
                            Ok(())
                        } else {
                            Err(format!("the pump is {}", mode_text(&s.mode)))
                        }
                    },
                    done: "emergency MRI mode on",
                },
            )
        }
        ProgCommand::ReminderInterval { interval, yes } => {
            if !(REMINDER_INTERVAL_MIN..=REMINDER_INTERVAL_MAX).contains(interval) {
                return Err(Fail::Usage(format!(
                    "--interval {interval}: the no-delivery reminder interval is \
                     {REMINDER_INTERVAL_MIN} to {REMINDER_INTERVAL_MAX}"
                )));
            }
            let interval = *interval;
            simple_change(
                &out,
                &args.link,
                DeviceKind::Programmer,
                *yes,
                Change {
                    review: &|s| {
                        format!(
                            "OLD: {}\nNEW: {}",
                            reminder_text(s.reminder_interval),
                            reminder_text(interval)
                        )
                    },
                    question: "Set the no-delivery reminder interval?",
                    cmd: Command::SetReminderInterval { interval },
                    verify: &|_, s| {
                        if s.reminder_interval == interval {
                            Ok(())
                        } else {
                            Err(format!(
                                "the pump holds a reminder interval of {}",
                                s.reminder_interval
                            ))
                        }
                    },
                    done: "reminder interval set",
                },
            )
        }
        ProgCommand::Catheter {
            model,
            length,
            volume_per_cm,
            pump_segment,
            yes,
        } => {
            let record = catheter_record(model, length, volume_per_cm.as_deref(), *pump_segment)?;
            checked_change(
                &out,
                &args.link,
                DeviceKind::Programmer,
                *yes,
                &|s| match s.mode {
                    Mode::Stopped { .. } => Ok(()),
                    other => Err(format!(
                        "not sent: the pump is {}; a catheter record needs a stopped pump \
                         (the fluid path changes): stop it first (thecal programmer ... stop \
                         --reason procedure)",
                        mode_text(&other)
                    )),
                },
                Change {
                    review: &|s| {
                        let new_dead = s.pump_path.saturating_add(record.volume());
                        format!(
                            "OLD: catheter {}; dead volume {}\nNEW: catheter {}; dead volume \
                             {new_dead} (pump path {} + catheter {})\nThe pump must be \
                             stopped: the fluid path changes. The new catheter holds no drug: \
                             prime it (thecal programmer ... prime --duration \"1 h\") once \
                             the pump is filled and running.",
                            catheter_text(s.catheter.as_ref()),
                            dead_volume_text(s),
                            record,
                            s.pump_path,
                            record.volume()
                        )
                    },
                    question: "Record this catheter?",
                    cmd: Command::SetCatheter(record),
                    verify: &|_, s| {
                        if s.catheter == Some(record) {
                            Ok(())
                        } else {
                            Err(format!(
                                "the pump holds catheter {}",
                                catheter_text(s.catheter.as_ref())
                            ))
                        }
                    },
                    done: "catheter recorded",
                },
            )
        }
        ProgCommand::Prime { duration, yes } => prime(&out, &args.link, *duration, *yes),
        ProgCommand::Mri { state, yes, .. } => {
            let on = state == "on";
            simple_change(
                &out,
                &args.link,
                DeviceKind::Programmer,
                *yes,
                Change {
                    review: &|s| {
                        format!(
                            "OLD: {}\nNEW: {}",
                            mode_text(&s.mode),
                            if on {
                                "MRI mode: the valve shut, no delivery until it is reset after \
                                 the scan"
                            } else {
                                "valve reset after the scan, delivery resumes"
                            }
                        )
                    },
                    question: if on {
                        "Shut the valve for the MRI scan?"
                    } else {
                        "Reset the valve after the scan?"
                    },
                    cmd: Command::MriMode(on),
                    verify: &|_, s| {
                        if matches!(s.mode, Mode::MriSuspended) == on {
                            Ok(())
                        } else {
                            Err(format!("the pump is {}", mode_text(&s.mode)))
                        }
                    },
                    done: if on { "MRI mode on" } else { "MRI mode off" },
                },
            )
        }
        ProgCommand::AlarmSettings {
            low_alarm,
            low_alarm_days,
            stopped_reminder,
            yes,
        } => {
            let new = AlarmSettings {
                low_reservoir: *low_alarm,
                low_reservoir_days: *low_alarm_days,
                stopped_reminder: *stopped_reminder,
            };
            simple_change(
                &out,
                &args.link,
                DeviceKind::Programmer,
                *yes,
                Change {
                    review: &|s| {
                        format!(
                            "OLD: {}\nNEW: {}",
                            alarm_settings_text(&s.alarm_settings),
                            alarm_settings_text(&new)
                        )
                    },
                    question: "Set these alarm thresholds?",
                    cmd: Command::AlarmSettings {
                        low_reservoir: new.low_reservoir,
                        low_reservoir_days: new.low_reservoir_days,
                        stopped_reminder: new.stopped_reminder,
                    },
                    verify: &|_, s| {
                        if s.alarm_settings == new {
                            Ok(())
                        } else {
                            Err(format!(
                                "the pump holds: {}",
                                alarm_settings_text(&s.alarm_settings)
                            ))
                        }
                    },
                    done: "alarm settings set",
                },
            )
        }
        ProgCommand::Reduce { percent, yes } => {
            reduce(&out, &args.link, DeviceKind::Programmer, *percent, *yes)
        }
        ProgCommand::Update { file, yes } => firmware_update(&out, &args.link, file, *yes),
        ProgCommand::RotateKey { file, yes } => firmware_key(&out, &args.link, file, *yes, true),
        ProgCommand::RevokeKey { file, yes } => firmware_key(&out, &args.link, file, *yes, false),
        ProgCommand::Logs { from } => {
            let (_key, mut client) = connect(&args)?;
            // The pump's clock, to date the entries.
            status(&mut client)?;
            logs(&out, &mut client, *from)
        }
    }
}

/// The volume a flow delivers over a duration, to the nearest nanolitre.
fn flow_over(f: Flow, d: Duration) -> Volume {
    let nl = u128::from(f.raw()) * u128::from(d.ms()) + 43_200_000;
    Volume::from_nl(u64::try_from(nl / 86_400_000).unwrap_or(u64::MAX))
}

/// The read-back of a priming bolus: it is under way, and the volume the pump chose is
/// no more than the fluid that was ahead of the drug (more would push drug into the CSF
/// at bolus speed). A difference says what the pump holds (exit status 5).
pub fn verify_priming(old: &Status, volume: Volume, s: &Status) -> Result<(), Fail> {
    let mut wrong = Vec::new();
    if !s.bolus_active {
        wrong.push(format!(
            "the pump runs no bolus ({}); a priming bolus of {volume} was accepted",
            mode_text(&s.mode)
        ));
    }
    if volume > old.ahead_of_drug {
        wrong.push(format!(
            "the pump chose a priming bolus of {volume}, more than the {} that was ahead of \
             the drug: drug would reach the CSF at bolus speed; cancel it now \
             (thecal programmer ... cancel-bolus)",
            old.ahead_of_drug
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(Fail::Exit(
            EXIT_READ_BACK,
            format!("read-back mismatch: {}", wrong.join("; ")),
        ))
    }
}

/// `programmer prime`: review (the catheter, the dead volume, what is ahead of the drug,
/// what the basal covers), confirm, send, read back the bolus under way and print the
/// volume the pump chose.
fn prime(out: &Out, link: &LinkArgs, duration: Duration, yes: bool) -> Result<ExitCode, Fail> {
    let (mut key, mut client) = link.connect(DeviceKind::Programmer)?;
    let old = status(&mut client)?;
    let program = program_of(&mut client)?;
    let (lo, hi) = program.schedule.basal_range();
    let (covers_lo, covers_hi) = (flow_over(lo, duration), flow_over(hi, duration));
    let basal = if lo == hi {
        format!("the basal {lo} covers {covers_lo} over {duration}")
    } else {
        format!("the basal {lo} to {hi} covers {covers_lo} to {covers_hi} over {duration}")
    };
    let about = |c: Volume| old.ahead_of_drug.saturating_sub(c);
    let expected = if lo == hi {
        format!("{}", about(covers_lo))
    } else {
        format!("{} to {}", about(covers_hi), about(covers_lo))
    };
    let review = format!(
        "catheter:    {}\ndead volume: {}\nbasal:       {basal}\nNEW: a priming bolus over \
         {duration} of what the basal leaves of the {} ahead of the drug: about {expected}. \
         The pump computes the volume itself, so that the drug reaches the catheter tip as \
         the priming ends.",
        catheter_text(old.catheter.as_ref()),
        dead_volume_text(&old),
        old.ahead_of_drug
    );
    if !out.json {
        println!("{review}");
        if old.catheter.is_none() {
            println!(
                "No catheter is recorded: the pump will refuse (record it first: thecal \
                 programmer ... catheter --model CODE --length \"45 cm\")."
            );
        }
    }
    if confirm(&format!("Prime the catheter over {duration}?"), yes)? {
        client.reconnect(&mut key)?;
    }
    let r = ok(&mut client, Body::Pump(Command::PrimingBolus { duration }))?;
    let Reply::BolusAccepted { volume, ends_at } = r else {
        return Err(Fail::Runtime(format!(
            "unexpected answer from the pump to a priming bolus: {r:?}"
        )));
    };
    let s = status(&mut client)?;
    verify_priming(&old, volume, &s)?;
    out.emit(
        json!({
            "accepted": true,
            "review": review,
            "volume": volume.to_string(),
            "volume_nl": volume.raw(),
            "ends_at": when(ends_at),
            "dead_volume": old.dead_volume.to_string(),
            "ahead_of_drug": old.ahead_of_drug.to_string(),
            "basal_covers": covers_lo.to_string(),
            "old": status_json(&old),
            "status": status_json(&s),
        }),
        &format!(
            "priming bolus of {volume} started (the volume the pump chose), ending about {}. \
             read back:\n{}",
            when(ends_at),
            status_text(&s)
        ),
        Some(client.bearer.stats),
    );
    Ok(ExitCode::SUCCESS)
}

fn logs(out: &Out, client: &mut Client, from: u32) -> Result<ExitCode, Fail> {
    let download = session::read_log(client, from).map_err(lift)?;
    let verdict = download.verify();
    let session::LogDownload {
        entries,
        anchor: pump_anchor,
        head,
        ..
    } = download;
    let reasons = confirmation_reasons(&entries);
    let mut text = String::new();
    for e in &entries {
        text += &format!(
            "{:>6}  {}  {}\n",
            e.seq,
            when(e.at),
            describe_entry(e, &reasons)
        );
    }
    let head_hex = hex(&head.last_hash());
    let (ok_chain, line) = match verdict {
        Ok(n) => (
            true,
            format!(
                "chain verified: {} entries, head {} (next entry {})",
                entries.len().max(n),
                head_hex,
                head.next_seq()
            ),
        ),
        Err(t) => (false, format!("CHAIN BROKEN: {t}")),
    };
    text += &line;
    out.emit(
        json!({
            "entries": entries.iter().map(|e| json!({
                "seq": e.seq, "at": when(e.at), "at_ms": e.at.ms(),
                "text": describe_entry(e, &reasons), "hash": hex(&e.hash),
                // The typed event, so that a reader (the clinic's import) can recompute
                // the entry's hash.
                "event": e.event,
            })).collect::<Vec<_>>(),
            "anchor": pump_anchor.map(|(seq, h): (u32, log::Hash)| json!({"seq": seq, "hash": hex(&h)})),
            "verified": ok_chain,
            "verdict": line,
            "head": {"next_seq": head.next_seq(), "hash": head_hex},
        }),
        &text,
        Some(client.bearer.stats),
    );
    Ok(if ok_chain {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `programmer update FILE`: review, confirm, transfer with a progress bar, verify, the
/// trial restart, and the read-back of the confirmed firmware (LINK-029).
fn firmware_update(out: &Out, link: &LinkArgs, file: &Path, yes: bool) -> Result<ExitCode, Fail> {
    use thecal_programmer::firmware as fw;
    let image = std::fs::read(file)
        .map_err(|e| Fail::Usage(format!("{}: cannot read: {e}", file.display())))?;
    let parsed = thecal_update::image::parse(&image[..])
        .map_err(|e| Fail::Usage(format!("{}: not a firmware image: {e}", file.display())))?;
    let new = parsed.info;
    let image_id: [u8; 32] = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&image).into()
    };
    let (mut key, mut client) = link.connect(DeviceKind::Programmer)?;
    let old = fw::status(&mut client)?;
    let resume = old
        .transfer
        .filter(|t| t.image_id == image_id && t.total as usize == image.len())
        .map(|t| t.have);
    let review = format!(
        "firmware update\n  now:  version {} (slot {}, security counter {}, hardware {})\n  \
         new:  version {}, security counter {}, hardware {}, {} bytes, signed by key {}\n  \
         {}the pump keeps delivering during the transfer, restarts once into the new \
         firmware, which must pass its self-test and confirm itself (else it reverts)",
        old.running,
        old.slot,
        old.security_counter,
        old.hardware,
        new.version,
        new.security_counter,
        new.hardware,
        image.len(),
        hex(&new.key_hash[..8]),
        resume.map_or(String::new(), |have| format!(
            "the pump already holds {have} of its bytes: the transfer resumes there; "
        ))
    );
    if !out.json {
        println!("{review}");
    }
    if confirm("Update the firmware?", yes)? {
        client.reconnect(&mut key)?;
    }
    let bar = if out.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(image.len() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let verified = fw::send(&mut client, &image, image_id, |have, _| {
        bar.set_position(u64::from(have));
    });
    bar.finish_and_clear();
    let verified = verified?;
    if !out.json {
        println!(
            "verified by the pump: version {}, security counter {}",
            verified.version, verified.security_counter
        );
    }
    fw::mark_for_trial(&mut client)?;
    // The pump restarts into the trial image, which confirms itself or reverts: wait for
    // it, then read back what runs.
    let mut after = None;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if client.reconnect(&mut key).is_err() {
            continue;
        }
        let st = fw::status(&mut client)?;
        if !st.trial_pending && !st.on_trial {
            after = Some(st);
            break;
        }
    }
    let after = after.ok_or_else(|| {
        Fail::Runtime("the pump did not come back from its restart into the new firmware".into())
    })?;
    let confirmed = after.running == verified.version && after.slot != old.slot;
    let text = format!(
        "{}: the pump runs version {} (slot {}, security counter {})",
        if confirmed {
            "firmware updated and confirmed"
        } else {
            "the new firmware did not confirm itself; the pump reverted"
        },
        after.running,
        after.slot,
        after.security_counter
    );
    out.emit(
        json!({
            "updated": confirmed,
            "old": {"version": old.running.to_string(), "slot": old.slot.to_string(), "security_counter": old.security_counter},
            "running": {"version": after.running.to_string(), "slot": after.slot.to_string(), "security_counter": after.security_counter},
            "resumed_from": resume,
        }),
        &text,
        Some(client.bearer.stats),
    );
    if confirmed {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Fail::Exit(EXIT_READ_BACK, text))
    }
}

/// The trusted firmware-signing keys in words, one a line.
fn keys_text(keys: &thecal_update::TrustList) -> String {
    keys.iter()
        .map(|k| {
            format!(
                "  key {} (hash {}): {}",
                hex(&k.key[..8]),
                hex(&thecal_update::keys::key_hash(&k.key)[..8]),
                if k.revoked { "revoked" } else { "trusted" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `programmer rotate-key` (`rotation`) and `programmer revoke-key`: the statement is read
/// and its signature checked first (bad input: exit 2); review the pump's keys against the
/// change; confirm; send; read the keys back (a mismatch: exit 5; a refusal: exit 1).
fn firmware_key(
    out: &Out,
    link: &LinkArgs,
    file: &Path,
    yes: bool,
    rotation: bool,
) -> Result<ExitCode, Fail> {
    use thecal_programmer::firmware::{self as fw, KeyStatement};
    let text = std::fs::read_to_string(file)
        .map_err(|e| Fail::Usage(format!("{}: cannot read: {e}", file.display())))?;
    let statement =
        KeyStatement::parse(&text).map_err(|e| Fail::Usage(format!("{}: {e}", file.display())))?;
    match (rotation, &statement) {
        (true, KeyStatement::Revocation { .. }) => {
            return Err(Fail::Usage(format!(
                "{}: a revocation statement; send it with `revoke-key`",
                file.display()
            )));
        }
        (false, KeyStatement::Rotation { .. }) => {
            return Err(Fail::Usage(format!(
                "{}: a rotation statement; send it with `rotate-key`",
                file.display()
            )));
        }
        _ => {}
    }
    if !statement.signature_checks() {
        return Err(Fail::Usage(format!(
            "{}: the signature does not check against the key the statement names: it was \
             changed after signing, or is not genuine",
            file.display()
        )));
    }
    let short = |k: &[u8; 32]| hex(&thecal_update::keys::key_hash(k)[..8]);
    let (change, question) = match &statement {
        KeyStatement::Rotation { old, new, .. } => (
            format!(
                "NEW: key hash {} trusted, key hash {} revoked (images it signs are refused \
                 from then on)",
                short(new),
                short(old)
            ),
            "Rotate the firmware-signing key?",
        ),
        KeyStatement::Revocation { key, signer, .. } => (
            format!(
                "NEW: key hash {} revoked (images it signs are refused from then on); signed \
                 by key hash {}",
                short(key),
                short(signer)
            ),
            "Revoke the firmware-signing key?",
        ),
    };
    let (mut key, mut client) = link.connect(DeviceKind::Programmer)?;
    let before = fw::keys(&mut client)?;
    let review = format!(
        "firmware-signing keys\n  now:\n{}\n  {change}",
        keys_text(&before)
    );
    if !out.json {
        println!("{review}");
    }
    if confirm(question, yes)? {
        client.reconnect(&mut key)?;
    }
    fw::send_statement(&mut client, &statement)?;
    let after = fw::keys(&mut client)?;
    let state = |k: &[u8; 32]| after.iter().find(|e| e.key == *k).map(|e| e.revoked);
    let ok = match &statement {
        KeyStatement::Rotation { old, new, .. } => {
            state(new) == Some(false) && state(old) == Some(true)
        }
        KeyStatement::Revocation { key, .. } => state(key) == Some(true),
    };
    let text = format!(
        "{}; the pump's keys now:\n{}",
        match (ok, rotation) {
            (true, true) => "key rotated",
            (true, false) => "key revoked",
            (false, _) => "read-back mismatch: the pump's keys are not as the statement says",
        },
        keys_text(&after)
    );
    let keys_json = |k: &thecal_update::TrustList| {
        k.iter()
            .map(|e| {
                json!({
                    "key": hex(&e.key),
                    "key_hash": hex(&thecal_update::keys::key_hash(&e.key)),
                    "revoked": e.revoked,
                })
            })
            .collect::<Vec<_>>()
    };
    out.emit(
        json!({
            "changed": ok,
            "review": review,
            "before": keys_json(&before),
            "keys": keys_json(&after),
        }),
        &text,
        Some(client.bearer.stats),
    );
    if ok {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Fail::Exit(EXIT_READ_BACK, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thecal_pump::command::CommandKind;
    use thecal_pump::log::LogChain;

    #[test]
    fn contents_parse_single_and_mixed() {
        let a = parse_contents("baclofen 2000 mcg/mL").unwrap();
        assert_eq!(contents_text(&a), "baclofen 2 mg/mL");
        let b = parse_contents("morphine 10 mg/mL + bupivacaine 5 mg/mL").unwrap();
        assert_eq!(b.components().len(), 2);
        assert!(matches!(parse_contents("baclofen"), Err(Fail::Usage(_))));
        assert!(matches!(
            parse_contents("unobtainium 1 mg/mL"),
            Err(Fail::Usage(_))
        ));
    }

    #[test]
    fn catheter_lengths_need_their_unit_and_records_say_what_is_allowed_rx_032() {
        assert_eq!(parse_length_mm("45 cm").unwrap(), 450);
        assert_eq!(parse_length_mm("45.5cm").unwrap(), 455);
        assert_eq!(parse_length_mm(" 450 mm ").unwrap(), 450);
        for bad in [
            "45",
            "45 m",
            "45.25 cm",
            "450.5 mm",
            "cm",
            ".5 cm",
            "99999999 cm",
        ] {
            match parse_length_mm(bad) {
                Err(Fail::Usage(m)) => assert!(m.contains("5 cm to 150 cm"), "{bad}: {m}"),
                other => panic!("{bad}: {:?}", other.ok()),
            }
        }
        // A catalogue model by code or name takes the catalogue's figures.
        let r = catheter_record("1", "45 cm", None, None).unwrap();
        assert_eq!(r.volume(), Volume::from_nl(119_000));
        let named = catheter_record(
            "one-piece intrathecal catheter, 0.60 mm lumen",
            "62.5 cm",
            None,
            None,
        )
        .unwrap();
        assert_eq!((named.model, named.volume()), (2, Volume::from_nl(176_875)));
        // A custom model with labelled figures: 30 cm x 2.5 uL/cm + 10 uL = 85 uL.
        let c = catheter_record(
            "custom",
            "30 cm",
            Some("2.5 uL/cm"),
            Some(Volume::from_nl(10_000)),
        )
        .unwrap();
        assert_eq!(
            (c.model, c.volume()),
            (CUSTOM_MODEL, Volume::from_nl(85_000))
        );
        let usage = |r: Result<CatheterRecord, Fail>| match r {
            Err(Fail::Usage(m)) => m,
            other => panic!("{:?}", other.ok()),
        };
        assert!(
            usage(catheter_record(
                "custom",
                "30 cm",
                Some("11 uL"),
                Some(Volume::ZERO)
            ))
            .contains("0.5 uL to 10 uL per cm")
        );
        assert!(usage(catheter_record("4", "30 cm", None, None)).contains("3 (trial catheter"));
        assert!(usage(catheter_record("1", "4.9 cm", None, None)).contains("5 cm to 150 cm"));
    }

    #[test]
    fn a_priming_bolus_beyond_the_fluid_ahead_of_the_drug_is_a_read_back_mismatch_rx_032() {
        use thecal_pump::core::Pump;
        use thecal_pump::profile::HardwareProfile;
        let pump = Pump::new(HardwareProfile::prometra_class(20), Instant::from_ms(0));
        let mut old = pump.status();
        old.ahead_of_drug = Volume::from_nl(149_000);
        let mut running = old.clone();
        running.bolus_active = true;
        // 139 uL of the 149 uL ahead of the drug: as it should be.
        assert!(verify_priming(&old, Volume::from_nl(139_000), &running).is_ok());
        assert!(verify_priming(&old, Volume::from_nl(149_000), &running).is_ok());
        // One nanolitre more would push drug into the CSF at bolus speed.
        match verify_priming(&old, Volume::from_nl(149_001), &running) {
            Err(Fail::Exit(5, m)) => assert!(
                m.contains("more than the 0.149 mL that was ahead of the drug")
                    && m.contains("cancel-bolus"),
                "{m}"
            ),
            other => panic!("{:?}", other.is_ok()),
        }
        // No bolus under way after an accepted priming.
        match verify_priming(&old, Volume::from_nl(139_000), &old) {
            Err(Fail::Exit(5, m)) => assert!(m.contains("the pump runs no bolus"), "{m}"),
            other => panic!("{:?}", other.is_ok()),
        }
    }

    #[test]
    fn fingerprints_and_bridges_parse() {
        assert_eq!(parse_fingerprint("123 456").unwrap(), 123_456);
        assert_eq!(parse_fingerprint("004567").unwrap(), 4_567);
        assert_eq!(fingerprint_text(4_567), "004 567");
        assert!(parse_fingerprint("12345").is_err());
        assert!(matches!(parse_bridge("auto"), Ok(BridgeChoice::Automatic)));
        assert!(matches!(parse_bridge("30 min"), Ok(BridgeChoice::Bolus(_))));
        assert!(parse_bridge("sometimes").is_err());
    }

    #[test]
    fn a_read_back_with_another_program_is_an_error_naming_what_the_pump_holds_rx_029() {
        use thecal_rx::schedule::Schedule;
        let rx = |rate: &str| Prescription {
            contents: parse_contents("baclofen 2000 mcg/mL").unwrap(),
            schedule: Schedule::continuous(rate.parse().unwrap()),
            patient_bolus: None,
            reservoir_volume: "20 mL".parse().unwrap(),
        };
        let sent = rx("0.25 mL/day");
        // The pump keeps its own reservoir volume: not a mismatch.
        let mut same = sent.clone();
        same.reservoir_volume = "19.5 mL".parse().unwrap();
        assert!(verify_program(&sent, &same).is_ok());
        // An implant answering with 0.5 mL/day (1 mg/day) instead of 0.25 mL/day.
        match verify_program(&sent, &rx("0.5 mL/day")) {
            Err(Fail::Exit(code, m)) => {
                assert_eq!(code, 5);
                assert!(m.starts_with("read-back mismatch"), "{m}");
                assert!(m.contains("0.5 mL/day"), "{m}");
            }
            other => panic!(
                "expected a read-back mismatch, got {:?}",
                other.err().map(|_| ())
            ),
        }
    }

    #[test]
    fn a_confirmation_reads_as_one_line_with_its_whole_reason_rx_030() {
        let reason = "sedation after dose rise; cut agreed with Dr Müller, 2 steps";
        let mut chain = LogChain::new();
        let mut entries = vec![
            chain
                .append(Instant::from_ms(1), Event::ProgramChanged { version: 3 })
                .unwrap(),
        ];
        for e in Event::soft_confirmation(
            CommandKind::Program.code(),
            2,
            &SoftReason::new(reason).unwrap(),
        ) {
            entries.push(chain.append(Instant::from_ms(2), e).unwrap());
        }
        let reasons = confirmation_reasons(&entries);
        let lines: Vec<String> = entries
            .iter()
            .map(|e| describe_entry(e, &reasons))
            .collect();
        assert_eq!(
            lines,
            [
                "program changed (version 3)".to_string(),
                format!(
                    "program: 2 soft finding(s) confirmed by the clinician, reason \"{reason}\""
                ),
                "(the reason above, part 2 of 3)".to_string(),
                "(the reason above, part 3 of 3)".to_string(),
            ]
        );
        // A part on its own (the rest not downloaded) still reads in words.
        let alone = describe_entry(&entries[2], &confirmation_reasons(&entries[2..]));
        assert_eq!(
            alone,
            // Bytes 26 to 51 of the reason: 26 bytes, "ü" taking two.
            "program: 2 soft finding(s) confirmed by the clinician, reason (part 2 of 3) \
             \"cut agreed with Dr Müller\""
        );
    }

    #[test]
    fn the_pumps_own_findings_exit_as_the_programmers_gate_does_rx_031() {
        use thecal_pump::command::Refusal;
        assert_eq!(
            Refusal::code_name(PRESCRIPTION_REFUSAL),
            Some("prescription check")
        );
        assert_eq!(
            Refusal::code_name(RECONCILIATION_REFUSAL),
            Some("refill reconciliation not confirmed")
        );
        let reply = |r: Refusal| Reply::from(&thecal_pump::command::Response::Refused(r));
        let exit = |f: Fail| match f {
            Fail::Exit(code, m) => (code, m),
            other => panic!("{:?}", matches!(other, Fail::Runtime(_))),
        };
        let (code, m) = exit(refused(&reply(Refusal::Prescription {
            hard: true,
            findings: Default::default(),
        })));
        assert_eq!(code, 3, "{m}");
        let (code, m) = exit(refused(&reply(Refusal::Prescription {
            hard: false,
            findings: Default::default(),
        })));
        assert_eq!(code, 4, "{m}");
        assert!(m.contains("--confirm-soft REASON"), "{m}");
        let rec = thecal_rx::refill::reconcile(
            "20 mL".parse().unwrap(),
            "5 mL".parse().unwrap(),
            Volume::ZERO,
            None,
        )
        .unwrap();
        assert!(rec.flagged);
        let (code, _) = exit(refused(&reply(Refusal::Reconciliation(rec))));
        assert_eq!(code, 4);
        // Any other refusal stays exit status 1.
        assert!(matches!(
            refused(&reply(Refusal::NoBolus)),
            Fail::Runtime(_)
        ));
    }

    #[test]
    fn a_reason_longer_than_the_pump_logs_is_bad_input_naming_the_limit_rx_030() {
        assert!(soft_reason(None).unwrap().is_none());
        assert!(soft_reason(Some("  ")).unwrap().is_none());
        assert_eq!(
            soft_reason(Some("first fill")).unwrap().unwrap().as_str(),
            "first fill"
        );
        match soft_reason(Some(&"x".repeat(65))) {
            Err(Fail::Usage(m)) => {
                assert!(m.contains("--confirm-soft"), "{m}");
                assert!(m.contains("65 bytes"), "{m}");
                assert!(m.contains("at most 64"), "{m}");
            }
            other => panic!("{:?}", other.map(|_| ()).err().is_some()),
        }
    }

    #[test]
    fn log_lines_name_stop_reasons_faults_bolus_kinds_and_refusals_in_words_pump_030() {
        use thecal_pump::command::FaultCode;
        use thecal_pump::core::BolusKind;
        let lines = [
            (
                Event::Stopped {
                    reason: StopReason::AdverseEffect,
                },
                "delivery stopped (adverse effect)",
            ),
            (
                Event::Fault {
                    code: FaultCode::FluidPath,
                },
                "fault: fluid path accounting",
            ),
            (
                Event::BolusEnded {
                    kind: BolusKind::Bridge,
                    delivered: Volume::from_raw(250_000),
                },
                "bridge bolus ended: 0.25 mL delivered",
            ),
            (
                Event::CommandRefused {
                    role: Role::PatientRemote,
                    code: CommandKind::PatientBolus.code(),
                    reason: 7,
                    key_id: 3,
                },
                "patient bolus REFUSED from patient remote key 3 (within the bolus lockout)",
            ),
        ];
        for (event, want) in lines {
            let got = describe_event(&event);
            assert_eq!(got, want);
            assert!(
                !got.contains("reason ") && !got.contains("fault 4"),
                "{got}"
            );
        }
    }
}
