//! Commands, roles, the capability table, and the pump's answers.
//!
//! Commands arrive as a typed enum together with the sender's [`Role`], which the
//! telemetry layer establishes by authentication. Before a command reaches the therapy
//! logic it is checked against [`allowed`], an explicit table: a patient remote can
//! never program, stop, set the clock or enrol; an emergency responder can read and
//! *reduce* a dose, never increase it. Denials are typed ([`Refusal::NotPermitted`]).
//!
//! This module owns the vocabulary only; it never acts on the pump.

use core::fmt;

use serde::{Deserialize, Serialize};
use thecal_rx::check::{Finding, Prescription};
use thecal_rx::dose::Admixture;
use thecal_rx::drug::DrugId;
use thecal_rx::refill::Reconciliation;
use thecal_rx::{Duration, Flow, Instant, Volume};

use crate::alarm::{AlarmKind, Priority};
use crate::limiter::Veto;

/// Who sent a command. The telemetry layer authenticates the sender and names its role;
/// the core checks every command against the role's capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// An enrolled clinician programmer: every command.
    Clinician,
    /// An enrolled patient remote: own bolus, status, alarm explanations, refill date.
    PatientRemote,
    /// An emergency responder: read-only status and a dose reduction, never an increase.
    Emergency,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Clinician => "clinician",
            Role::PatientRemote => "patient remote",
            Role::Emergency => "emergency",
        })
    }
}

/// Why delivery was stopped (logged with the stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// Planned: explant, replacement, catheter revision.
    Procedure,
    /// Suspected overdose or adverse effect.
    AdverseEffect,
    /// End of therapy decided by the clinician.
    EndOfTherapy,
    /// Any other reason the clinician records.
    Other,
}

impl StopReason {
    /// Every reason.
    pub const ALL: [StopReason; 4] = [
        StopReason::Procedure,
        StopReason::AdverseEffect,
        StopReason::EndOfTherapy,
        StopReason::Other,
    ];

    /// A stable code for the log.
    pub const fn code(self) -> u8 {
        match self {
            StopReason::Procedure => 1,
            StopReason::AdverseEffect => 2,
            StopReason::EndOfTherapy => 3,
            StopReason::Other => 4,
        }
    }

    /// The reason in words.
    pub const fn name(self) -> &'static str {
        match self {
            StopReason::Procedure => "procedure",
            StopReason::AdverseEffect => "adverse effect",
            StopReason::EndOfTherapy => "end of therapy",
            StopReason::Other => "other",
        }
    }
}

impl TryFrom<u8> for StopReason {
    type Error = UnknownCode;
    fn try_from(code: u8) -> Result<Self, Self::Error> {
        StopReason::ALL
            .into_iter()
            .find(|r| r.code() == code)
            .ok_or(UnknownCode { code })
    }
}

/// A log code that names no value of the type it was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCode {
    /// The code.
    pub code: u8,
}

impl fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown code {}", self.code)
    }
}

/// How to handle the old fluid in the dead volume after a concentration change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BridgeChoice {
    /// Keep the drug mass rate at the catheter tip continuous: push the old fluid at the
    /// rate that gives the prescribed dose, switch to the new rate when the new fluid
    /// reaches the tip. The default.
    Automatic,
    /// Push the old fluid out as a bolus over this duration, then run the new rate.
    Bolus(Duration),
    /// Run the new rate at once (the clinician accepts the transient dose change).
    None,
}

/// A command to the pump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Read the pump's status.
    Interrogate,
    /// Replace the program atomically (never leaves the pump stopped in between).
    Program {
        /// The new prescription (its contents must equal the reservoir's).
        prescription: Prescription,
        /// The clinician confirmed every soft finding, for this reason (logged with
        /// the change); `None`: no soft finding is confirmed.
        confirm_soft: Option<SoftReason>,
    },
    /// Record a refill: the residual was aspirated and `added` of `contents` injected.
    Refill {
        /// Residual volume aspirated.
        aspirated: Volume,
        /// Volume injected into the reservoir.
        added: Volume,
        /// What was injected.
        contents: Admixture,
        /// Keep each drug's daily dose by scaling the flows for the new concentration.
        keep_dose: bool,
        /// Old fluid in the dead volume.
        bridge: BridgeChoice,
        /// The clinician confirmed soft findings and a flagged reconciliation, for this
        /// reason (logged with the refill); `None`: nothing is confirmed.
        confirm: Option<SoftReason>,
        /// The compounding pharmacy's beyond-use date of this fill, UTC ms since 1970
        /// (needs the wall clock set); `None`: the drug library's stability alone. The
        /// pump takes the earlier of the two.
        beyond_use_utc_ms: Option<u64>,
    },
    /// A clinician bolus on top of the basal.
    ClinicianBolus {
        /// Volume.
        volume: Volume,
        /// Duration.
        duration: Duration,
    },
    /// Fill an empty (saline or CSF) catheter with drug: the pump computes the volume
    /// from its fluid path, so no volume is typed in.
    PrimingBolus {
        /// Duration.
        duration: Duration,
    },
    /// A patient bolus request; retries carry the same `request_id` and are answered
    /// from memory, never delivered twice.
    PatientBolus {
        /// Idempotency key chosen by the remote.
        request_id: u32,
    },
    /// Cancel the bolus under way (a patient remote may cancel only a patient bolus).
    CancelBolus,
    /// Stop delivery (clinician only, with a reason). Stopping is not safe: baclofen
    /// withdrawal can kill; a stopped pump sounds a reminder.
    Stop {
        /// Why.
        reason: StopReason,
    },
    /// Resume delivery after a stop.
    Resume,
    /// Set the wall clock: UTC time now and the local offset.
    SetClock {
        /// UTC milliseconds since 1970.
        utc_ms: u64,
        /// Local offset from UTC, minutes (−720 to +840).
        offset_minutes: i16,
    },
    /// Acknowledge an alarm (silences its tone; a critical alarm re-arms while its
    /// cause persists).
    Acknowledge(AlarmKind),
    /// Valve pumps: shut the valve before an MRI scan (`true`) or reset it after (`false`).
    MriMode(bool),
    /// Reduce every basal flow by this percentage (1–50). Never an increase.
    ReduceDose {
        /// Percentage.
        percent: u8,
    },
    /// Set alarm thresholds.
    AlarmSettings {
        /// Low-reservoir alarm volume.
        low_reservoir: Volume,
        /// Low-reservoir alarm when fewer than this many days of therapy remain (0: off).
        low_reservoir_days: u16,
        /// Reminder after the pump has been stopped this long.
        stopped_reminder: Duration,
    },
    /// How often an acknowledged alarm of a pump that delivers nothing while its program
    /// expects delivery (stopped, MRI mode, fault, empty, end of service) sounds again
    /// until its cause clears: [`REMINDER_INTERVAL_MIN`] to [`REMINDER_INTERVAL_MAX`].
    SetReminderInterval {
        /// The interval.
        interval: Duration,
    },
    /// Valve pumps: shut the valve for an emergency MRI scan although the reservoir is
    /// not empty. The clinician confirms that the scan cannot wait for the pump to be
    /// emptied; the command is logged like every other.
    MriEmergency,
    /// Record the implanted catheter (at implant and after each revision): model,
    /// length after trimming and pump segment. The pump must be stopped; the fluid that
    /// was in the old catheter is gone and the new one holds no drug, so priming is
    /// needed before drug reaches the tip. Priming is refused until a catheter is
    /// recorded.
    SetCatheter(crate::catheter::CatheterRecord),
}

/// The longest reason a clinician may give for confirming soft findings, in bytes of
/// UTF-8 (the log keeps it in at most three entries, [`crate::event::ReasonPart`]).
pub const SOFT_REASON_MAX: usize = 64;

/// Why a soft-finding confirmation's reason was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonError {
    /// Empty or only white space: a confirmation needs a reason.
    Empty,
    /// Longer than [`SOFT_REASON_MAX`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
}

impl fmt::Display for ReasonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReasonError::Empty => f.write_str(
                "the reason for confirming soft findings is empty; give the clinical reason",
            ),
            ReasonError::TooLong { len } => write!(
                f,
                "the reason for confirming soft findings is {len} bytes long; at most \
                 {SOFT_REASON_MAX} bytes of UTF-8 are allowed"
            ),
        }
    }
}

/// The clinician's reason for confirming soft findings: 1 to [`SOFT_REASON_MAX`] bytes of
/// UTF-8, not only white space. It travels with the command and is logged with the
/// change ([`crate::event::Event::SoftFindingConfirmed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "heapless::String<SOFT_REASON_MAX>")]
pub struct SoftReason(heapless::String<SOFT_REASON_MAX>);

impl SoftReason {
    /// The reason, trimmed of surrounding white space.
    ///
    /// # Errors
    /// [`ReasonError::Empty`] for an empty reason, [`ReasonError::TooLong`] above
    /// [`SOFT_REASON_MAX`] bytes.
    pub fn new(text: &str) -> Result<Self, ReasonError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ReasonError::Empty);
        }
        let mut s = heapless::String::new();
        s.push_str(text)
            .map_err(|_| ReasonError::TooLong { len: text.len() })?;
        Ok(SoftReason(s))
    }

    /// The reason.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<heapless::String<SOFT_REASON_MAX>> for SoftReason {
    type Error = ReasonError;
    fn try_from(s: heapless::String<SOFT_REASON_MAX>) -> Result<Self, Self::Error> {
        SoftReason::new(s.as_str())
    }
}

impl fmt::Display for SoftReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Shortest no-delivery reminder interval a clinician may set.
pub const REMINDER_INTERVAL_MIN: Duration = Duration::from_minutes(15);
/// Longest no-delivery reminder interval a clinician may set.
pub const REMINDER_INTERVAL_MAX: Duration = Duration::from_hours(4);
/// The no-delivery reminder interval of a new pump.
pub const REMINDER_INTERVAL_DEFAULT: Duration = Duration::from_hours(1);

/// A command's kind without its payload: what the capability table and the log use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CommandKind {
    /// [`Command::Interrogate`].
    Interrogate,
    /// [`Command::Program`].
    Program,
    /// [`Command::Refill`].
    Refill,
    /// [`Command::ClinicianBolus`].
    ClinicianBolus,
    /// [`Command::PrimingBolus`].
    PrimingBolus,
    /// [`Command::PatientBolus`].
    PatientBolus,
    /// [`Command::CancelBolus`].
    CancelBolus,
    /// [`Command::Stop`].
    Stop,
    /// [`Command::Resume`].
    Resume,
    /// [`Command::SetClock`].
    SetClock,
    /// [`Command::Acknowledge`].
    Acknowledge,
    /// [`Command::MriMode`].
    MriMode,
    /// [`Command::ReduceDose`].
    ReduceDose,
    /// [`Command::AlarmSettings`].
    AlarmSettings,
    /// [`Command::SetReminderInterval`].
    SetReminderInterval,
    /// [`Command::MriEmergency`].
    MriEmergency,
    /// [`Command::SetCatheter`].
    SetCatheter,
}

impl CommandKind {
    /// Every kind.
    pub const ALL: [CommandKind; 17] = [
        CommandKind::Interrogate,
        CommandKind::Program,
        CommandKind::Refill,
        CommandKind::ClinicianBolus,
        CommandKind::PrimingBolus,
        CommandKind::PatientBolus,
        CommandKind::CancelBolus,
        CommandKind::Stop,
        CommandKind::Resume,
        CommandKind::SetClock,
        CommandKind::Acknowledge,
        CommandKind::MriMode,
        CommandKind::ReduceDose,
        CommandKind::AlarmSettings,
        CommandKind::SetReminderInterval,
        CommandKind::MriEmergency,
        CommandKind::SetCatheter,
    ];

    /// A stable code for the log.
    pub const fn code(self) -> u8 {
        match self {
            CommandKind::Interrogate => 1,
            CommandKind::Program => 2,
            CommandKind::Refill => 3,
            CommandKind::ClinicianBolus => 4,
            CommandKind::PrimingBolus => 5,
            CommandKind::PatientBolus => 6,
            CommandKind::CancelBolus => 7,
            CommandKind::Stop => 8,
            CommandKind::Resume => 9,
            CommandKind::SetClock => 10,
            CommandKind::Acknowledge => 11,
            CommandKind::MriMode => 12,
            CommandKind::ReduceDose => 13,
            CommandKind::AlarmSettings => 14,
            CommandKind::SetReminderInterval => 15,
            CommandKind::MriEmergency => 16,
            CommandKind::SetCatheter => 17,
        }
    }

    /// A short name.
    pub const fn name(self) -> &'static str {
        match self {
            CommandKind::Interrogate => "interrogate",
            CommandKind::Program => "program",
            CommandKind::Refill => "refill",
            CommandKind::ClinicianBolus => "clinician bolus",
            CommandKind::PrimingBolus => "priming bolus",
            CommandKind::PatientBolus => "patient bolus",
            CommandKind::CancelBolus => "cancel bolus",
            CommandKind::Stop => "stop",
            CommandKind::Resume => "resume",
            CommandKind::SetClock => "set clock",
            CommandKind::Acknowledge => "acknowledge alarm",
            CommandKind::MriMode => "MRI mode",
            CommandKind::ReduceDose => "reduce dose",
            CommandKind::AlarmSettings => "alarm settings",
            CommandKind::SetReminderInterval => "set reminder interval",
            CommandKind::MriEmergency => "emergency MRI mode",
            CommandKind::SetCatheter => "catheter record",
        }
    }
}

impl Command {
    /// The command's kind.
    pub const fn kind(&self) -> CommandKind {
        match self {
            Command::Interrogate => CommandKind::Interrogate,
            Command::Program { .. } => CommandKind::Program,
            Command::Refill { .. } => CommandKind::Refill,
            Command::ClinicianBolus { .. } => CommandKind::ClinicianBolus,
            Command::PrimingBolus { .. } => CommandKind::PrimingBolus,
            Command::PatientBolus { .. } => CommandKind::PatientBolus,
            Command::CancelBolus => CommandKind::CancelBolus,
            Command::Stop { .. } => CommandKind::Stop,
            Command::Resume => CommandKind::Resume,
            Command::SetClock { .. } => CommandKind::SetClock,
            Command::Acknowledge(_) => CommandKind::Acknowledge,
            Command::MriMode(_) => CommandKind::MriMode,
            Command::ReduceDose { .. } => CommandKind::ReduceDose,
            Command::AlarmSettings { .. } => CommandKind::AlarmSettings,
            Command::SetReminderInterval { .. } => CommandKind::SetReminderInterval,
            Command::MriEmergency => CommandKind::MriEmergency,
            Command::SetCatheter(_) => CommandKind::SetCatheter,
        }
    }
}

/// The capability table: whether `role` may send a command of `kind`.
///
/// | command | clinician | patient remote | emergency |
/// |---|---|---|---|
/// | interrogate | yes | yes | yes |
/// | program, refill, clinician/priming bolus, stop, resume, set clock, MRI mode (and emergency MRI mode), alarm settings, reminder interval, catheter record | yes | no | no |
/// | patient bolus | yes | yes | no |
/// | cancel bolus | yes | own patient bolus | no |
/// | acknowledge alarm | yes | yes | yes |
/// | reduce dose | yes | no | yes |
pub const fn allowed(role: Role, kind: CommandKind) -> bool {
    match role {
        Role::Clinician => true,
        Role::PatientRemote => matches!(
            kind,
            CommandKind::Interrogate
                | CommandKind::PatientBolus
                | CommandKind::CancelBolus
                | CommandKind::Acknowledge
        ),
        Role::Emergency => matches!(
            kind,
            CommandKind::Interrogate | CommandKind::Acknowledge | CommandKind::ReduceDose
        ),
    }
}

/// The therapy state, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Delivering the program.
    Running,
    /// Stopped by a clinician.
    Stopped {
        /// Why.
        reason: StopReason,
        /// Since when.
        since: Instant,
    },
    /// Valve shut for MRI (valve pumps), until a clinician resets it.
    MriSuspended,
    /// End of service: the battery is exhausted; delivery has stopped.
    EndOfService,
    /// A self-test or invariant check failed: no delivery, a high-priority alarm.
    Fault {
        /// Which check failed.
        code: FaultCode,
    },
}

/// A failed self-test or invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultCode {
    /// No valid persisted record at start, or a record failed its CRC.
    Memory,
    /// The program failed the prescription check's hard rules.
    Program,
    /// The limiter has no limit for a drug in the program.
    Limiter,
    /// The fluid path no longer holds exactly the dead volume.
    FluidPath,
    /// The reservoir estimate is above capacity.
    Reservoir,
    /// The wall clock is outside 2020–2100.
    Clock,
    /// An arithmetic overflow in delivery accounting.
    Arithmetic,
    /// An action (a log entry or an alarm tone) could not be handed out because the
    /// action queue was full: the record the firmware keeps is no longer complete.
    ActionLost,
}

impl FaultCode {
    /// Every fault code.
    pub const ALL: [FaultCode; 8] = [
        FaultCode::Memory,
        FaultCode::Program,
        FaultCode::Limiter,
        FaultCode::FluidPath,
        FaultCode::Reservoir,
        FaultCode::Clock,
        FaultCode::Arithmetic,
        FaultCode::ActionLost,
    ];

    /// A stable code for the log.
    pub const fn code(self) -> u8 {
        match self {
            FaultCode::Memory => 1,
            FaultCode::Program => 2,
            FaultCode::Limiter => 3,
            FaultCode::FluidPath => 4,
            FaultCode::Reservoir => 5,
            FaultCode::Clock => 6,
            FaultCode::Arithmetic => 7,
            FaultCode::ActionLost => 8,
        }
    }

    /// The failed check in words.
    pub const fn name(self) -> &'static str {
        match self {
            FaultCode::Memory => "memory (no valid record, or a failed CRC)",
            FaultCode::Program => "program beyond the hard limits",
            FaultCode::Limiter => "dose limiter has no limit for a drug",
            FaultCode::FluidPath => "fluid path accounting",
            FaultCode::Reservoir => "reservoir estimate out of range",
            FaultCode::Clock => "wall clock outside 2020-2100",
            FaultCode::Arithmetic => "arithmetic overflow in delivery accounting",
            FaultCode::ActionLost => "an action was lost from a full queue",
        }
    }
}

impl TryFrom<u8> for FaultCode {
    type Error = UnknownCode;
    fn try_from(code: u8) -> Result<Self, Self::Error> {
        FaultCode::ALL
            .into_iter()
            .find(|c| c.code() == code)
            .ok_or(UnknownCode { code })
    }
}

/// Why a command was refused; every variant says what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The role may not send this command.
    NotPermitted {
        /// Sender's role.
        role: Role,
        /// The command.
        kind: CommandKind,
    },
    /// The prescription has hard findings, or soft ones not confirmed.
    Prescription {
        /// Hard findings were present (else: soft ones need confirmation).
        hard: bool,
        /// The findings (as many as fit).
        findings: heapless::Vec<Finding, 8>,
    },
    /// The refill reconciliation is flagged and was not confirmed.
    Reconciliation(Reconciliation),
    /// A volume above the reservoir capacity.
    AboveCapacity {
        /// Volume.
        volume: Volume,
        /// Capacity.
        capacity: Volume,
    },
    /// The prescription's contents differ from what the reservoir holds (use a refill).
    ContentsMismatch,
    /// The program has no patient bolus.
    NoPatientBolus,
    /// Within the lockout after the last patient bolus.
    Lockout {
        /// When a bolus is next allowed.
        until: Instant,
    },
    /// The most patient boluses per 24 h have been given.
    DailyCount {
        /// Boluses allowed per 24 h.
        max: u8,
        /// When the oldest leaves the window.
        until: Instant,
    },
    /// The limiter predicts the bolus would exceed a limit.
    Limiter(Veto),
    /// A bolus is already under way.
    BolusInProgress,
    /// No bolus to cancel (or not one this role may cancel).
    NoBolus,
    /// Delivery is not running (stopped, MRI, end of service, fault).
    NotRunning(Mode),
    /// Not stopped, so nothing to resume.
    NotStopped,
    /// The reservoir cannot supply the bolus.
    ReservoirLow,
    /// A value out of range; the text says what is allowed.
    Invalid(&'static str),
    /// The alarm is not active.
    AlarmNotActive(AlarmKind),
    /// The battery is at end of service: a refill would leave drug in a pump that
    /// cannot deliver it.
    EndOfService,
    /// The limiter cannot count one more drug: it already counts the most it can, each
    /// delivered in the last 24 h or still in the pump's fluid path.
    LimiterFull {
        /// The drug that would not fit.
        drug: DrugId,
    },
    /// Emergency reductions may not take the dose below half of the clinician's
    /// program; a further reduction needs a clinician.
    ReductionBound {
        /// The largest further reduction allowed now, percent (0: none).
        max_percent: u8,
    },
    /// A flow below the lowest the pump can deliver (use a lower concentration, or a
    /// clinician's program; only a clinician may stop the pump).
    BelowMinimumRate {
        /// The lowest flow the change would leave.
        flow: Flow,
        /// The pump's lowest flow.
        min: Flow,
    },
    /// Valve pumps: MRI mode needs an emptied reservoir (the valves may open in the
    /// field), or an explicit emergency confirmation ([`Command::MriEmergency`]).
    MriReservoirNotEmpty {
        /// The reservoir's expected volume.
        reservoir: Volume,
        /// The most the profile allows in the reservoir during a scan.
        limit: Volume,
    },
    /// No catheter is recorded, so the pump cannot compute a priming volume.
    NoCatheter,
}

impl Refusal {
    /// A stable code for the log.
    pub const fn code(&self) -> u8 {
        match self {
            Refusal::NotPermitted { .. } => 1,
            Refusal::Prescription { .. } => 2,
            Refusal::Reconciliation(_) => 3,
            Refusal::AboveCapacity { .. } => 4,
            Refusal::ContentsMismatch => 5,
            Refusal::NoPatientBolus => 6,
            Refusal::Lockout { .. } => 7,
            Refusal::DailyCount { .. } => 8,
            Refusal::Limiter(_) => 9,
            Refusal::BolusInProgress => 10,
            Refusal::NoBolus => 11,
            Refusal::NotRunning(_) => 12,
            Refusal::NotStopped => 13,
            Refusal::ReservoirLow => 14,
            Refusal::Invalid(_) => 15,
            Refusal::AlarmNotActive(_) => 16,
            Refusal::EndOfService => 17,
            Refusal::LimiterFull { .. } => 18,
            Refusal::ReductionBound { .. } => 19,
            Refusal::BelowMinimumRate { .. } => 20,
            Refusal::MriReservoirNotEmpty { .. } => 25,
            Refusal::NoCatheter => 26,
        }
    }
}

impl Refusal {
    /// A logged refusal code in words (the log keeps the code, not the details).
    pub const fn code_name(code: u8) -> Option<&'static str> {
        Some(match code {
            1 => "not permitted for this role",
            2 => "prescription check",
            3 => "refill reconciliation not confirmed",
            4 => "above the reservoir capacity",
            5 => "contents differ from the reservoir's",
            6 => "no patient bolus programmed",
            7 => "within the bolus lockout",
            8 => "daily bolus count reached",
            9 => "dose limiter",
            10 => "a bolus is under way",
            11 => "no bolus to cancel",
            12 => "delivery not running",
            13 => "not stopped",
            14 => "reservoir too low",
            15 => "invalid value",
            16 => "alarm not active",
            17 => "pump at end of service",
            18 => "dose limiter cannot count another drug",
            19 => "emergency reduction bound reached",
            20 => "below the pump's lowest flow",
            25 => "MRI mode needs an emptied reservoir",
            26 => "no catheter recorded",
            _ => return None,
        })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotPermitted { role, kind } => {
                write!(f, "a {role} may not send '{}'", kind.name())
            }
            Refusal::Prescription {
                hard: true,
                findings,
            } => {
                f.write_str("rejected by the prescription check")?;
                for x in findings {
                    write!(f, "; {x}")?;
                }
                Ok(())
            }
            Refusal::Prescription {
                hard: false,
                findings,
            } => {
                f.write_str("needs clinician confirmation")?;
                for x in findings {
                    write!(f, "; {x}")?;
                }
                Ok(())
            }
            Refusal::Reconciliation(r) => write!(f, "{r}; confirm to proceed"),
            Refusal::AboveCapacity { volume, capacity } => {
                write!(f, "{volume} exceeds the reservoir capacity {capacity}")
            }
            Refusal::ContentsMismatch => f.write_str(
                "the prescription's drugs and concentrations differ from the reservoir's; \
                 change them with a refill",
            ),
            Refusal::NoPatientBolus => f.write_str("the program has no patient bolus"),
            Refusal::Lockout { until } => {
                write!(
                    f,
                    "too soon after the last bolus; the next is allowed at {until}"
                )
            }
            Refusal::DailyCount { max, until } => write!(
                f,
                "the {max} boluses allowed in 24 h have been given; the next is allowed at {until}"
            ),
            Refusal::Limiter(v) => write!(f, "refused by the dose limiter: {v}"),
            Refusal::BolusInProgress => f.write_str("a bolus is already under way"),
            Refusal::NoBolus => f.write_str("no bolus under way that this sender may cancel"),
            Refusal::NotRunning(m) => write!(f, "delivery is not running ({m:?})"),
            Refusal::NotStopped => f.write_str("the pump is not stopped"),
            Refusal::ReservoirLow => f.write_str("the reservoir cannot supply this bolus"),
            Refusal::Invalid(what) => f.write_str(what),
            Refusal::AlarmNotActive(k) => write!(f, "alarm {} is not active", k.name()),
            Refusal::EndOfService => f.write_str(
                "the pump's battery is at end of service and the pump cannot deliver; \
                 do not refill it: replace the pump",
            ),
            Refusal::LimiterFull { drug } => write!(
                f,
                "the dose limiter cannot count {drug}: it already counts {} drugs, each \
                 delivered in the last 24 h or still in the pump's fluid path; refill with \
                 fewer drugs first, and add {drug} a day after the drug it replaces has \
                 left the catheter",
                crate::limiter::MAX_DRUGS
            ),
            Refusal::ReductionBound { max_percent: 0 } => f.write_str(
                "emergency reductions have already halved the clinician's program, the \
                 most allowed without a clinician; only a clinician may reduce further",
            ),
            Refusal::ReductionBound { max_percent } => write!(
                f,
                "emergency reductions may not take the dose below half of the clinician's \
                 program: at most {max_percent} percent more now; a clinician may reduce further"
            ),
            Refusal::BelowMinimumRate { flow, min } => write!(
                f,
                "the reduced flow {flow} is below the pump's lowest flow {min}; reduce less \
                 (only a clinician may stop the pump)"
            ),
            Refusal::MriReservoirNotEmpty { reservoir, limit } => write!(
                f,
                "the reservoir holds {reservoir}; empty it to {limit} or less before MRI mode \
                 (the valves may open in the field), or confirm an emergency scan"
            ),
            Refusal::NoCatheter => f.write_str(
                "no catheter is recorded, so the priming volume is unknown; program the \
                 catheter record (model, length after trimming) first",
            ),
        }
    }
}

/// An active alarm as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveAlarm {
    /// Which.
    pub kind: AlarmKind,
    /// Its priority.
    pub priority: Priority,
    /// Acknowledged.
    pub acknowledged: bool,
}

/// The pump's status, as read by interrogation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Therapy state.
    pub mode: Mode,
    /// Program version (increments with every accepted program or refill).
    pub program_version: u32,
    /// Expected reservoir volume.
    pub reservoir: Volume,
    /// Total volume delivered by completed strokes.
    pub delivered: Volume,
    /// Volume not delivered because of stalls, vetoes or an empty reservoir.
    pub missed: Volume,
    /// Active alarms.
    pub alarms: heapless::Vec<ActiveAlarm, { AlarmKind::COUNT }>,
    /// Remaining battery life at the present draw.
    pub battery_life: Option<Duration>,
    /// When the next refill is due: the earlier of the low-reservoir alarm (assuming
    /// every allowed patient bolus is used) and the fill's beyond-use date (the patient
    /// remote shows this as the next refill date).
    pub next_refill: Option<Instant>,
    /// The pump's time when the status was taken (monotonic, hardware time).
    pub now: Instant,
    /// The pump's wall clock then (UTC ms since 1970), when it is set.
    pub utc_ms: Option<u64>,
    /// The wall clock is set.
    pub clock_set: bool,
    /// A bolus is under way.
    pub bolus_active: bool,
    /// Automatic bridging after a concentration change is under way.
    pub bridging: bool,
    /// The catheter record (`None`: not recorded; priming is refused).
    pub catheter: Option<crate::catheter::CatheterRecord>,
    /// The alarm thresholds in force (what `Command::AlarmSettings` set), so that a
    /// programmer can read back what it sent.
    pub alarm_settings: crate::core::AlarmSettings,
    /// How often an acknowledged no-delivery alarm sounds again (what
    /// `Command::SetReminderInterval` set).
    pub reminder_interval: Duration,
    /// The pump's internal fluid path (a constant of the pump model).
    pub pump_path: Volume,
    /// The dead volume: the internal path plus the recorded catheter (the pump model's
    /// nominal catheter until one is recorded).
    pub dead_volume: Volume,
    /// The fluid in the path ahead of the reservoir's drug (saline, CSF or an earlier
    /// fill): what must be pushed before the drug reaches the catheter tip, and what a
    /// priming bolus fills.
    pub ahead_of_drug: Volume,
}

/// The pump's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Done.
    Accepted,
    /// A bolus was accepted and will end at about `ends_at`.
    BolusAccepted {
        /// Volume of the bolus.
        volume: Volume,
        /// Expected end.
        ends_at: Instant,
    },
    /// The status.
    Status(Status),
    /// Refused, with the reason.
    Refused(Refusal),
}
