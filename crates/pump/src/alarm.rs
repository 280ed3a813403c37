//! Alarms: kinds, IEC 60601-1-8 priorities, tones, plain-language texts and the
//! repeat schedule (requirement PUMP-020).
//!
//! **Owns:** what each [`AlarmKind`] means (priority, tone, the words shown to a patient
//! and to a clinician, a stable code) and the [`Alarms`] manager: which alarms are
//! active, which are acknowledged, and when each must sound next ([`REPEAT_SCHEDULE`]).
//!
//! **Must never:** silence a critical (high-priority) alarm for good while its cause
//! persists — acknowledging one only buys [`HIGH_RULE`]'s re-arm delay; sound an alarm
//! that is inactive or (non-re-armed) acknowledged; restart a schedule when an active
//! alarm is raised again (a tone storm teaches patients to ignore tones); read a clock
//! or a buzzer — time comes in as `now`, tones leave through [`Alarms::poll_sound`].
//!
//! Priority follows IEC 60601-1-8 (DOMAIN.md §6): potential harm × onset. Death or
//! irreversible injury with immediate or prompt onset → [`Priority::High`]; with
//! delayed onset → [`Priority::Medium`]; minor harm → [`Priority::Low`]. For an
//! intrathecal pump the dominant delayed harm is **withdrawal** (baclofen: over
//! 24–72 h, can be fatal, DOMAIN.md §4), which is why nothing that interrupts delivery
//! is ranked below Medium.
//!
//! Tones copy SynchroMed (DOMAIN.md §6): two-tone for critical, single tone for the
//! rest. Patients cannot reliably tell tones apart (one drove 3 h home over a
//! low-reservoir beep), so every kind also carries a patient text that says what it
//! means *and what to do now*, for the remote and the programmer to show.
//!
//! # Call order
//! The core calls [`Alarms::raise`] / [`Alarms::clear`] when a cause appears or goes,
//! [`Alarms::acknowledge`] on a user's acknowledgement, then [`Alarms::poll_sound`]
//! with the same `now` until it returns `None`, and sleeps until
//! [`Alarms::next_due`] (folded into its own `poll_timeout`).

use core::fmt;

use serde::{Deserialize, Serialize};
use thecal_rx::{Duration, Instant};

/// IEC 60601-1-8 alarm priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    /// Minor harm or a reminder.
    Low,
    /// Delayed onset of serious harm.
    Medium,
    /// Immediate or prompt onset of death or irreversible injury.
    High,
}

/// The sound pattern of an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tone {
    /// One tone: non-critical (medium and low priority).
    Single,
    /// Two alternating tones: critical (high priority).
    TwoTone,
}

/// What an acknowledgement does to an alarm's tones while its cause persists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AfterAck {
    /// Silent until the cause is cleared and the alarm is raised again.
    Silent,
    /// Silent for this long, then the alarm re-arms: it sounds again and repeats as if
    /// never acknowledged, until acknowledged again.
    Rearm(Duration),
}

/// The repeat rule of one priority: one row of [`REPEAT_SCHEDULE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RepeatRule {
    /// The priority this row applies to.
    pub priority: Priority,
    /// Time between tones while the alarm is active and not acknowledged. The first
    /// tone sounds when the alarm is raised.
    pub every: Duration,
    /// What an acknowledgement does.
    pub after_ack: AfterAck,
}

/// High: every 10 min until acknowledged; an acknowledged high alarm whose cause
/// persists re-arms after 4 h. So a critical cause is never silent for more than
/// 4 h 10 min (an acknowledgement comes at most 10 min after the last tone).
pub const HIGH_RULE: RepeatRule = RepeatRule {
    priority: Priority::High,
    every: Duration::from_minutes(10),
    after_ack: AfterAck::Rearm(Duration::from_hours(4)),
};

/// Medium: every 60 min until acknowledged; then silent until cleared and raised
/// again. Medium causes (low reservoir, ERI, pump stopped…) leave hours to days to
/// act, and the remote and the programmer keep showing them while active.
pub const MEDIUM_RULE: RepeatRule = RepeatRule {
    priority: Priority::Medium,
    every: Duration::from_minutes(60),
    after_ack: AfterAck::Silent,
};

/// Low: every 12 h until acknowledged; then silent until cleared and raised again.
/// Twice a day is enough for a reminder and does not wake the patient every hour.
pub const LOW_RULE: RepeatRule = RepeatRule {
    priority: Priority::Low,
    every: Duration::from_hours(12),
    after_ack: AfterAck::Silent,
};

/// The repeat schedule as data, one row per priority, highest first.
///
/// | priority | tone | repeats while unacknowledged | after acknowledgement, cause persisting |
/// |---|---|---|---|
/// | High | two-tone | every 10 min | silent 4 h, then re-arms (repeats every 10 min again) |
/// | Medium | single | every 60 min | silent until cleared and raised again |
/// | Low | single | every 12 h | silent until cleared and raised again |
pub const REPEAT_SCHEDULE: [RepeatRule; 3] = [HIGH_RULE, MEDIUM_RULE, LOW_RULE];

impl Priority {
    /// This priority's row of [`REPEAT_SCHEDULE`].
    pub const fn rule(self) -> RepeatRule {
        match self {
            Priority::High => HIGH_RULE,
            Priority::Medium => MEDIUM_RULE,
            Priority::Low => LOW_RULE,
        }
    }

    /// The tone: two-tone for critical (high), single for the rest, as on SynchroMed.
    pub const fn tone(self) -> Tone {
        match self {
            Priority::High => Tone::TwoTone,
            Priority::Medium | Priority::Low => Tone::Single,
        }
    }

    /// The IEC 60601-1-8 name of the priority.
    pub const fn name(self) -> &'static str {
        match self {
            Priority::High => "high priority",
            Priority::Medium => "medium priority",
            Priority::Low => "low priority",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every alarm the pump can raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlarmKind {
    /// The reservoir is empty: delivery has stopped.
    EmptyReservoir,
    /// The reservoir is low: refill soon.
    LowReservoir,
    /// The motor stalled: delivery is interrupted.
    MotorStall,
    /// The independent limiter refused a stroke or bolus.
    LimiterVeto,
    /// Elective replacement indicator: the battery has about 90 days left.
    ElectiveReplacement,
    /// End of service: the battery is exhausted, delivery has stopped.
    EndOfService,
    /// Memory or CRC fault: the pump is in its safe state.
    MemoryFault,
    /// The pump has been left stopped.
    StoppedReminder,
    /// The clock is not set: flex schedules and periodic boluses cannot run.
    ClockNotSet,
    /// A magnet or MRI field was detected.
    MagnetMri,
    /// The radio used its daily energy budget (or was flooded) and sleeps until a
    /// programmer wand wakes it: remotes cannot reach the pump.
    TelemetryPaused,
    /// The dose was reduced without a clinician (an emergency reduction), until a
    /// clinician reviews the program.
    DoseReduced,
    /// The telemetry's record of enrolled devices failed its integrity check: therapy
    /// runs on, the radio refuses every device until a clinician re-enrols with the wand.
    RegistryFault,
    /// The fill passed its beyond-use date (drug stability or the pharmacy's date): the
    /// drug may have lost potency.
    BeyondUseDate,
}

impl AlarmKind {
    /// How many kinds there are.
    pub const COUNT: usize = 14;

    /// Every kind, in declaration order.
    pub const ALL: [AlarmKind; Self::COUNT] = [
        AlarmKind::EmptyReservoir,
        AlarmKind::LowReservoir,
        AlarmKind::MotorStall,
        AlarmKind::LimiterVeto,
        AlarmKind::ElectiveReplacement,
        AlarmKind::EndOfService,
        AlarmKind::MemoryFault,
        AlarmKind::StoppedReminder,
        AlarmKind::ClockNotSet,
        AlarmKind::MagnetMri,
        AlarmKind::TelemetryPaused,
        AlarmKind::DoseReduced,
        AlarmKind::RegistryFault,
        AlarmKind::BeyondUseDate,
    ];

    /// IEC 60601-1-8 priority (DOMAIN.md §6: potential harm × onset).
    pub const fn priority(self) -> Priority {
        match self {
            // Delivery has stopped. Baclofen withdrawal starts within hours and can
            // progress to death in 24–72 h; opioid withdrawal is also prompt. Death or
            // irreversible injury, prompt onset → High.
            AlarmKind::EmptyReservoir | AlarmKind::MotorStall | AlarmKind::EndOfService => {
                Priority::High
            }
            // The pump is in its safe state and may not be delivering; worse, the
            // stored prescription or counters may be wrong. Unknown delivery with
            // prompt possible onset of harm → High.
            AlarmKind::MemoryFault => Priority::High,
            // The pump was about to exceed a hard dose limit: the programme or the
            // device is wrong (DOMAIN.md §5: misprogramming caused two opioid
            // overdoses in one day), and the vetoed strokes are withheld, so the patient
            // is now off-prescription either way. Needs a clinician promptly → High.
            AlarmKind::LimiterVeto => Priority::High,
            // Delivery continues for days (low-reservoir threshold, 2–3 mL) but
            // withdrawal follows if ignored: serious harm, delayed onset → Medium.
            AlarmKind::LowReservoir => Priority::Medium,
            // About 90 days of delivery left: serious harm only if the replacement is
            // never planned, very delayed onset → Medium (not Low: it must be acted on).
            AlarmKind::ElectiveReplacement => Priority::Medium,
            // Stopped on purpose by a clinician, but left stopped means withdrawal
            // over 24–72 h (8 reports in 2 years of unfinished sessions, DOMAIN.md §2):
            // delayed onset of possibly fatal harm → Medium. High would also fire on
            // every deliberate, supervised stop.
            AlarmKind::StoppedReminder => Priority::Medium,
            // Basal delivery continues; flex steps and periodic boluses cannot run,
            // so the daily profile is wrong until the clock is set: delayed harm →
            // Medium.
            AlarmKind::ClockNotSet => Priority::Medium,
            // The field itself does not harm, but a peristaltic motor stalls (delivery
            // may take 2–24 h to resume) and a valve pump stays shut until a clinician
            // resets it (DOMAIN.md §2): interrupted delivery, delayed onset of
            // withdrawal → Medium rather than Low. Not High: a stall that persists
            // raises MotorStall, which is High.
            AlarmKind::MagnetMri => Priority::Medium,
            // Therapy is unaffected; only the remote (patient bolus, status) is out of
            // reach until a clinician wakes the radio: inconvenience, no harm from the
            // alarm's cause itself → Low.
            AlarmKind::TelemetryPaused => Priority::Low,
            // Delivery continues at a lower dose set without a clinician: under-dosing
            // and, for baclofen, the start of withdrawal over days: delayed onset of
            // serious harm → Medium.
            AlarmKind::DoseReduced => Priority::Medium,
            // Therapy runs on from the pump's own slots, but no remote works and the
            // record of who may program the pump is lost until a clinician re-enrols
            // at the bedside: delayed harm (no patient bolus, no emergency reduction)
            // → Medium.
            AlarmKind::RegistryFault => Priority::Medium,
            // The drug may be losing potency (ziconotide adsorbs and degrades): under-
            // dosing that grows over days, delayed onset → Medium.
            AlarmKind::BeyondUseDate => Priority::Medium,
        }
    }

    /// The tone of this kind (from its priority).
    pub const fn tone(self) -> Tone {
        self.priority().tone()
    }

    /// A stable small number for logs, telemetry and the programmer. Never reuse or
    /// renumber a code: stored logs refer to it.
    pub const fn code(self) -> u8 {
        match self {
            AlarmKind::EmptyReservoir => 1,
            AlarmKind::LowReservoir => 2,
            AlarmKind::MotorStall => 3,
            AlarmKind::LimiterVeto => 4,
            AlarmKind::ElectiveReplacement => 5,
            AlarmKind::EndOfService => 6,
            AlarmKind::MemoryFault => 7,
            AlarmKind::StoppedReminder => 8,
            AlarmKind::ClockNotSet => 9,
            AlarmKind::MagnetMri => 10,
            AlarmKind::TelemetryPaused => 11,
            AlarmKind::DoseReduced => 12,
            AlarmKind::RegistryFault => 13,
            AlarmKind::BeyondUseDate => 14,
        }
    }

    /// The kind with this [`code`](Self::code), if any.
    pub fn from_code(code: u8) -> Option<AlarmKind> {
        AlarmKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// A short name for headings and logs (stable, plain English).
    pub const fn name(self) -> &'static str {
        match self {
            AlarmKind::EmptyReservoir => "empty reservoir",
            AlarmKind::LowReservoir => "low reservoir",
            AlarmKind::MotorStall => "motor stall",
            AlarmKind::LimiterVeto => "dose limit reached",
            AlarmKind::ElectiveReplacement => "battery replacement due",
            AlarmKind::EndOfService => "battery exhausted",
            AlarmKind::MemoryFault => "memory fault",
            AlarmKind::StoppedReminder => "pump stopped",
            AlarmKind::ClockNotSet => "clock not set",
            AlarmKind::MagnetMri => "magnet or MRI detected",
            AlarmKind::TelemetryPaused => "telemetry paused",
            AlarmKind::DoseReduced => "dose reduced in an emergency",
            AlarmKind::RegistryFault => "device registry fault",
            AlarmKind::BeyondUseDate => "drug past its beyond-use date",
        }
    }

    /// What the alarm means and what to do now, in plain words for the patient (and
    /// whoever is with them). Written for someone who cannot tell the tones apart.
    pub const fn patient_text(self) -> &'static str {
        match self {
            AlarmKind::EmptyReservoir => {
                "Your pump is empty and has stopped giving your medicine. Stopping this \
                 medicine suddenly can be dangerous. Call your clinic now. If you cannot \
                 reach them, go to the emergency department now and show your pump card."
            }
            AlarmKind::LowReservoir => {
                "Your pump's medicine is running low. Call your clinic today to book a \
                 refill; do not wait for the next appointment."
            }
            AlarmKind::MotorStall => {
                "Your pump's motor has stopped, so your medicine may not be getting \
                 through. Stopping this medicine suddenly can be dangerous. Call your \
                 clinic now. If you cannot reach them, go to the emergency department \
                 now and show your pump card."
            }
            AlarmKind::LimiterVeto => {
                "Your pump held back a dose because it would have gone over your safe \
                 limit. You have not been given too much, but your pump settings may be \
                 wrong and you may now get less medicine than planned. Call your clinic \
                 now."
            }
            AlarmKind::ElectiveReplacement => {
                "Your pump's battery is getting low: about 3 months are left before the \
                 pump stops. Call your clinic this week to plan the pump replacement."
            }
            AlarmKind::EndOfService => {
                "Your pump's battery is used up and the pump has stopped giving your \
                 medicine. Stopping this medicine suddenly can be dangerous. Call your \
                 clinic now. If you cannot reach them, go to the emergency department \
                 now and show your pump card."
            }
            AlarmKind::MemoryFault => {
                "Your pump found a fault in its memory and has switched to a safe mode. \
                 Your medicine may have stopped. Call your clinic now. If you cannot \
                 reach them, go to the emergency department now and show your pump card."
            }
            AlarmKind::StoppedReminder => {
                "Your pump is stopped and is not giving your medicine. Call your clinic \
                 today to have it restarted. If you feel unwell, have a fever, feel \
                 confused, or your stiffness or pain comes back strongly, go to the \
                 emergency department now."
            }
            AlarmKind::ClockNotSet => {
                "Your pump's clock is not set, so doses timed for certain hours of the \
                 day cannot be given on time. Your pump is still giving its steady dose. \
                 Call your clinic today so they can set the clock."
            }
            AlarmKind::MagnetMri => {
                "Your pump detected a strong magnet or an MRI scanner, and your medicine \
                 may have paused. Call your clinic today to have the pump checked. After \
                 an MRI scan the pump must always be checked."
            }
            AlarmKind::TelemetryPaused => {
                "Your pump switched its radio off to save its battery, so your remote \
                 cannot reach it today. Your pump is still giving your medicine as \
                 usual. Call your clinic to have the radio woken up; if you need extra \
                 medicine that your remote would give, call them now."
            }
            AlarmKind::DoseReduced => {
                "Your pump's dose was lowered in an emergency, without your clinic. Your \
                 pump is still giving your medicine, but less of it. Call your clinic \
                 today so they can check the dose. If your stiffness or pain comes back \
                 strongly, or you feel unwell, go to the emergency department now."
            }
            AlarmKind::RegistryFault => {
                "Your pump found a fault in its list of paired devices, so your remote \
                 cannot reach it until your clinic pairs it again. Your pump is still \
                 giving your medicine as usual. Call your clinic today; if you need extra \
                 medicine that your remote would give, call them now."
            }
            AlarmKind::BeyondUseDate => {
                "Your pump's medicine has reached its use-by date and may be getting \
                 weaker. Call your clinic today to book a refill."
            }
        }
    }

    /// What the alarm means and what to check, for the clinician.
    pub const fn clinician_text(self) -> &'static str {
        match self {
            AlarmKind::EmptyReservoir => {
                "Empty reservoir: delivery has stopped. Refill urgently and assess for \
                 withdrawal (baclofen withdrawal can progress to death within 24-72 h). \
                 Reconcile the aspirated residual against the expected residual."
            }
            AlarmKind::LowReservoir => {
                "Low reservoir: the reservoir reached its low threshold. Schedule a \
                 refill before the projected empty date."
            }
            AlarmKind::MotorStall => {
                "Motor stall: strokes are not completing and delivery is interrupted. \
                 Interrogate now. After an MRI the motor may take 2-24 h to recover; if \
                 it does not, or there was no MRI, plan revision and bridge therapy to \
                 prevent withdrawal."
            }
            AlarmKind::LimiterVeto => {
                "Limiter veto: a stroke or bolus would have exceeded a hard dose limit in \
                 the 1 h or 24 h window and was withheld. Review the prescription, \
                 concentration and bolus settings; check the event log for the limit \
                 and the amount."
            }
            AlarmKind::ElectiveReplacement => {
                "Elective replacement indicator: projected battery life is under 90 days \
                 at the current draw. Schedule pump replacement; delivery stops at end \
                 of service."
            }
            AlarmKind::EndOfService => {
                "End of service: battery exhausted, delivery stopped. Replace the pump \
                 urgently or bridge with alternative dosing; assess for withdrawal."
            }
            AlarmKind::MemoryFault => {
                "Memory fault: a stored record failed its integrity check and the pump \
                 entered its safe state. Interrogate now, verify prescription, drug, \
                 concentration and reservoir volume, and reprogram."
            }
            AlarmKind::StoppedReminder => {
                "Pump stopped: no delivery since the stop. Restart, or confirm the stop is \
                 intended and plan alternative dosing; an unfinished programming session \
                 leaves the pump stopped."
            }
            AlarmKind::ClockNotSet => {
                "Clock not set: flex (step) schedules and periodic boluses cannot run. \
                 Set the clock with the programmer and review the delivery since."
            }
            AlarmKind::MagnetMri => {
                "Magnet or MRI field detected: a peristaltic motor may stall (delivery can \
                 take 2-24 h to resume) and a valve pump stays shut until reset. \
                 Interrogate after the scan and confirm delivery has resumed."
            }
            AlarmKind::TelemetryPaused => {
                "Telemetry paused: the radio spent its daily energy budget or was flooded \
                 with frames that failed authentication, and sleeps until a programmer \
                 wand wakes it. Basal delivery is unaffected. Wake it with the wand, read \
                 the event log for the denied handshakes, and look for a source of \
                 interference or an attack."
            }
            AlarmKind::DoseReduced => {
                "Dose reduced in an emergency: an emergency device lowered the basal \
                 without a clinician (at most to half of the clinician's program; the \
                 event log names each reduction). Review the patient and reprogram; the \
                 alarm clears with a clinician's program change."
            }
            AlarmKind::RegistryFault => {
                "Device registry fault: the stored list of enrolled programmers and remotes \
                 failed its integrity check, so the radio refuses every device but a \
                 programmer enrolled with the wand. Delivery continues from the pump's own \
                 memory. Hold the wand over the pump, enrol the programmer again, then \
                 re-enrol the patient's remotes."
            }
            AlarmKind::BeyondUseDate => {
                "Beyond-use date passed: the fill is older than the drug's stability in \
                 the reservoir (or the pharmacy's beyond-use date). Refill now; expect \
                 reduced effect until then."
            }
        }
    }

    /// Position in [`AlarmKind::ALL`] (declaration order), the slot in [`Alarms`].
    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AlarmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tone to sound now, handed out by [`Alarms::poll_sound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sound {
    /// Which alarm.
    pub kind: AlarmKind,
    /// Its priority.
    pub priority: Priority,
    /// The tone pattern to play.
    pub tone: Tone,
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// The alarm is not active: there is nothing to acknowledge.
    NotActive(AlarmKind),
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::NotActive(kind) => write!(
                f,
                "cannot acknowledge the {kind} alarm (code {}): it is not active; only an \
                 active alarm can be acknowledged",
                kind.code()
            ),
        }
    }
}

/// The state of one alarm kind. An enum rather than flags so that an impossible mix
/// (inactive but due, acknowledged and repeating) cannot be represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
enum Slot {
    /// The cause is absent.
    #[default]
    Inactive,
    /// Active, not acknowledged: sounds at `next`, then every [`RepeatRule::every`].
    Sounding {
        /// When the next tone is due.
        next: Instant,
    },
    /// Active and acknowledged: silent, or re-arms at `rearm_at` (high priority).
    Acknowledged {
        /// When the alarm re-arms; `None`: silent until cleared.
        rearm_at: Option<Instant>,
    },
}

impl Slot {
    /// When this slot next wants a tone. [`Instant::MAX`] means never (a schedule that
    /// saturated at the end of time must not hand out a tone on every call).
    fn due(self) -> Option<Instant> {
        let due = match self {
            Slot::Inactive => None,
            Slot::Sounding { next } => Some(next),
            Slot::Acknowledged { rearm_at } => rearm_at,
        };
        due.filter(|&t| t != Instant::MAX)
    }

    /// The slot after an acknowledgement at `now` under `rule`. Acknowledging an
    /// acknowledged slot changes nothing, so repeated acknowledgements cannot postpone
    /// a re-arm.
    fn acknowledged(self, rule: RepeatRule, now: Instant) -> Slot {
        match self {
            Slot::Inactive | Slot::Acknowledged { .. } => self,
            Slot::Sounding { .. } => Slot::Acknowledged {
                rearm_at: match rule.after_ack {
                    AfterAck::Silent => None,
                    AfterAck::Rearm(after) => Some(now.saturating_add(after)),
                },
            },
        }
    }

    /// The slot after its tone was handed out at `now` under `rule`: sounding again one
    /// interval from now (a re-armed slot is unacknowledged from here on).
    fn served(rule: RepeatRule, now: Instant) -> Slot {
        Slot::Sounding {
            next: now.saturating_add(rule.every),
        }
    }
}

/// The alarm manager: one fixed slot per [`AlarmKind`], persisted with the pump state.
///
/// Invariants: a tone is handed out only for an active alarm that is unacknowledged
/// or re-armed; [`next_due`](Self::next_due) is exactly the earliest time
/// [`poll_sound`](Self::poll_sound) would hand out a tone; raising an active alarm
/// changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Alarms {
    slots: [Slot; AlarmKind::COUNT],
}

impl Alarms {
    /// No alarm active.
    pub const fn new() -> Self {
        Alarms {
            slots: [Slot::Inactive; AlarmKind::COUNT],
        }
    }

    fn slot(&self, kind: AlarmKind) -> Slot {
        self.slots
            .get(kind.index())
            .copied()
            .unwrap_or(Slot::Inactive)
    }

    fn set(&mut self, kind: AlarmKind, slot: Slot) {
        if let Some(s) = self.slots.get_mut(kind.index()) {
            *s = slot;
        }
    }

    /// The cause of `kind` is present at `now`. Returns `true` if the alarm became
    /// active (its first tone is then due at `now`); `false` if it already was, in
    /// which case nothing changes: its repeat schedule and acknowledgement stand.
    pub fn raise(&mut self, kind: AlarmKind, now: Instant) -> bool {
        if self.is_active(kind) {
            return false;
        }
        self.set(kind, Slot::Sounding { next: now });
        true
    }

    /// The cause of `kind` is gone. Returns `true` if the alarm was active; it stops
    /// sounding and a later [`raise`](Self::raise) starts afresh. `now` is taken for
    /// symmetry with `raise` (the caller logs it); clearing does not depend on it.
    pub fn clear(&mut self, kind: AlarmKind, _now: Instant) -> bool {
        if !self.is_active(kind) {
            return false;
        }
        self.set(kind, Slot::Inactive);
        true
    }

    /// A user acknowledged `kind` at `now`. A medium or low alarm falls silent until
    /// cleared and raised again; a high alarm falls silent for the re-arm delay of
    /// [`HIGH_RULE`] and then sounds again if its cause persists.
    ///
    /// Acknowledging an alarm that is already acknowledged (and not yet re-armed)
    /// succeeds but changes nothing: repeated acknowledgements must not postpone a
    /// re-arm indefinitely.
    ///
    /// # Errors
    /// [`AckError::NotActive`] if the alarm is not active.
    pub fn acknowledge(&mut self, kind: AlarmKind, now: Instant) -> Result<(), AckError> {
        match self.slot(kind) {
            Slot::Inactive => Err(AckError::NotActive(kind)),
            Slot::Acknowledged { .. } => Ok(()),
            slot @ Slot::Sounding { .. } => {
                self.set(kind, slot.acknowledged(kind.priority().rule(), now));
                Ok(())
            }
        }
    }

    /// An acknowledged `kind` whose cause persists sounds again from `now`, as if
    /// unacknowledged (a reminder). Returns whether it was acknowledged; an inactive
    /// or sounding alarm is left as it is.
    pub fn resound(&mut self, kind: AlarmKind, now: Instant) -> bool {
        if !self.is_acknowledged(kind) {
            return false;
        }
        self.set(kind, Slot::Sounding { next: now });
        true
    }

    /// Whether `kind` is active (its cause present), acknowledged or not.
    pub fn is_active(&self, kind: AlarmKind) -> bool {
        !matches!(self.slot(kind), Slot::Inactive)
    }

    /// Whether `kind` is active and acknowledged. A re-armed high alarm counts as
    /// acknowledged until its re-arm tone is handed out, then as unacknowledged.
    pub fn is_acknowledged(&self, kind: AlarmKind) -> bool {
        matches!(self.slot(kind), Slot::Acknowledged { .. })
    }

    /// The active alarms as `(kind, priority, acknowledged)`, in declaration order.
    pub fn active(&self) -> impl Iterator<Item = (AlarmKind, Priority, bool)> + '_ {
        AlarmKind::ALL
            .into_iter()
            .zip(self.slots.iter())
            .filter_map(|(kind, slot)| match slot {
                Slot::Inactive => None,
                Slot::Sounding { .. } => Some((kind, kind.priority(), false)),
                Slot::Acknowledged { .. } => Some((kind, kind.priority(), true)),
            })
    }

    /// The active alarm to show first: highest priority, then unacknowledged before
    /// acknowledged, then declaration order.
    pub fn highest(&self) -> Option<AlarmKind> {
        let mut best: Option<(AlarmKind, (Priority, bool))> = None;
        for (kind, priority, acknowledged) in self.active() {
            let key = (priority, !acknowledged);
            if best.is_none_or(|(_, best_key)| key > best_key) {
                best = Some((kind, key));
            }
        }
        best.map(|(kind, _)| kind)
    }

    /// The next tone due at or before `now`, or `None`. The highest priority goes
    /// first; among equals, the one due earliest, then declaration order. Call again
    /// with the same `now` until `None`: one tone per call.
    ///
    /// Handing out a tone reschedules that alarm from `now` (not from when it was
    /// due), so a core that woke late plays one tone per alarm, not a burst of
    /// catch-up tones. A re-armed high alarm becomes unacknowledged and repeats every
    /// [`HIGH_RULE`] interval until acknowledged again.
    pub fn poll_sound(&mut self, now: Instant) -> Option<Sound> {
        let mut best: Option<(AlarmKind, Instant)> = None;
        for (kind, slot) in AlarmKind::ALL.into_iter().zip(self.slots.iter()) {
            let Some(due) = slot.due() else { continue };
            if due > now {
                continue;
            }
            let better = best.is_none_or(|(best_kind, best_due)| {
                kind.priority() > best_kind.priority()
                    || (kind.priority() == best_kind.priority() && due < best_due)
            });
            if better {
                best = Some((kind, due));
            }
        }
        let (kind, _) = best?;
        let priority = kind.priority();
        self.set(kind, Slot::served(priority.rule(), now));
        Some(Sound {
            kind,
            priority,
            tone: priority.tone(),
        })
    }

    /// The earliest time a tone is due, or `None` when no tone will ever be due without
    /// a new raise. The core sleeps until then. After [`poll_sound`](Self::poll_sound)
    /// at `now` has returned `None`, this is `None` or later than `now`.
    pub fn next_due(&self) -> Option<Instant> {
        self.slots.iter().filter_map(|slot| slot.due()).min()
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing
    )]
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;
    use std::vec::Vec;

    const MIN: u64 = 60_000;
    const HOUR: u64 = 60 * MIN;

    fn t(ms: u64) -> Instant {
        Instant::from_ms(ms)
    }

    /// Every tone due at `now`, in the order handed out.
    fn drain(alarms: &mut Alarms, now: Instant) -> Vec<AlarmKind> {
        let mut out = Vec::new();
        while let Some(sound) = alarms.poll_sound(now) {
            out.push(sound.kind);
            assert!(out.len() <= AlarmKind::COUNT, "tone storm at {now}");
        }
        out
    }

    #[test]
    fn priorities_follow_iec_60601_1_8_pump_020() {
        use AlarmKind::*;
        for kind in [
            EmptyReservoir,
            MotorStall,
            EndOfService,
            MemoryFault,
            LimiterVeto,
        ] {
            assert_eq!(kind.priority(), Priority::High, "{kind}");
        }
        for kind in [
            LowReservoir,
            ElectiveReplacement,
            StoppedReminder,
            ClockNotSet,
            MagnetMri,
        ] {
            assert_eq!(kind.priority(), Priority::Medium, "{kind}");
        }
    }

    #[test]
    fn critical_alarms_two_tone_others_single_tone_pump_020() {
        for kind in AlarmKind::ALL {
            let expected = if kind.priority() == Priority::High {
                Tone::TwoTone
            } else {
                Tone::Single
            };
            assert_eq!(kind.tone(), expected, "{kind}");
        }
        assert_eq!(Priority::Low.tone(), Tone::Single);
    }

    #[test]
    fn codes_are_stable_unique_and_round_trip_pump_020() {
        let codes: Vec<u8> = AlarmKind::ALL.iter().map(|k| k.code()).collect();
        let count = u8::try_from(AlarmKind::COUNT).unwrap();
        assert_eq!(codes, (1..=count).collect::<Vec<u8>>());
        for kind in AlarmKind::ALL {
            assert_eq!(AlarmKind::from_code(kind.code()), Some(kind));
            assert_eq!(AlarmKind::ALL[kind.index()], kind);
        }
        assert_eq!(AlarmKind::from_code(0), None);
        assert_eq!(AlarmKind::from_code(count + 1), None);
    }

    #[test]
    fn patient_texts_say_what_to_do_and_how_urgently_pump_020() {
        for kind in AlarmKind::ALL {
            let text = kind.patient_text();
            assert!(text.starts_with("Your pump"), "{kind}: {text}");
            assert!(text.contains("Call your clinic"), "{kind}: {text}");
            assert!(!kind.clinician_text().is_empty());
            assert!(!kind.name().is_empty());
            // No device jargon for the patient.
            for jargon in ["ERI", "EOS", "CRC", "stroke", "reservoir", "limiter"] {
                assert!(!text.contains(jargon), "{kind}: {jargon} in {text}");
            }
            if kind.priority() == Priority::High {
                assert!(text.contains("now"), "{kind}: {text}");
            } else {
                assert!(!text.contains("clinic now"), "{kind}: {text}");
            }
        }
        // Delivery stopped: the patient must not wait for office hours.
        for kind in [
            AlarmKind::EmptyReservoir,
            AlarmKind::MotorStall,
            AlarmKind::EndOfService,
        ] {
            assert!(
                kind.patient_text().contains("emergency department now"),
                "{kind}"
            );
        }
        // The 3-hour drive: a low reservoir is "today", not "next appointment".
        assert!(AlarmKind::LowReservoir.patient_text().contains("today"));
    }

    #[test]
    fn high_alarm_repeats_every_10_min_until_acknowledged_pump_020() {
        let mut a = Alarms::new();
        assert!(a.raise(AlarmKind::EmptyReservoir, t(1_000)));
        let sound = a.poll_sound(t(1_000)).unwrap();
        assert_eq!(
            sound,
            Sound {
                kind: AlarmKind::EmptyReservoir,
                priority: Priority::High,
                tone: Tone::TwoTone
            }
        );
        assert_eq!(a.poll_sound(t(1_000)), None);
        assert_eq!(a.next_due(), Some(t(1_000 + 10 * MIN)));
        assert_eq!(a.poll_sound(t(1_000 + 10 * MIN - 1)), None);
        assert_eq!(
            drain(&mut a, t(1_000 + 10 * MIN)),
            [AlarmKind::EmptyReservoir]
        );
        assert_eq!(
            drain(&mut a, t(1_000 + 20 * MIN)),
            [AlarmKind::EmptyReservoir]
        );
        assert_eq!(a.next_due(), Some(t(1_000 + 30 * MIN)));
    }

    #[test]
    fn critical_alarm_rearms_after_ack_while_cause_persists_pump_020() {
        // Timeline (minutes): raise 0 → tone 0, 10; ack 15 → silent until 15 + 240 =
        // 255 → tone 255 (re-armed, unacknowledged) → tone 265 → ack 266 → tone 506.
        let mut a = Alarms::new();
        a.raise(AlarmKind::MotorStall, t(0));
        assert_eq!(drain(&mut a, t(0)).len(), 1);
        assert_eq!(drain(&mut a, t(10 * MIN)).len(), 1);
        a.acknowledge(AlarmKind::MotorStall, t(15 * MIN)).unwrap();
        assert!(a.is_acknowledged(AlarmKind::MotorStall));
        assert_eq!(a.next_due(), Some(t(255 * MIN)));
        assert!(drain(&mut a, t(255 * MIN - 1)).is_empty());
        assert_eq!(drain(&mut a, t(255 * MIN)), [AlarmKind::MotorStall]);
        assert!(!a.is_acknowledged(AlarmKind::MotorStall));
        assert_eq!(a.next_due(), Some(t(265 * MIN)));
        assert_eq!(drain(&mut a, t(265 * MIN)), [AlarmKind::MotorStall]);
        a.acknowledge(AlarmKind::MotorStall, t(266 * MIN)).unwrap();
        assert_eq!(a.next_due(), Some(t(506 * MIN)));
    }

    #[test]
    fn repeated_acknowledgement_does_not_postpone_the_rearm_pump_020() {
        let mut a = Alarms::new();
        a.raise(AlarmKind::EndOfService, t(0));
        drain(&mut a, t(0));
        a.acknowledge(AlarmKind::EndOfService, t(MIN)).unwrap();
        a.acknowledge(AlarmKind::EndOfService, t(3 * HOUR)).unwrap();
        assert_eq!(a.next_due(), Some(t(MIN + 4 * HOUR)));
    }

    #[test]
    fn medium_alarm_repeats_hourly_then_silent_after_ack_until_raised_again_pump_020() {
        let mut a = Alarms::new();
        a.raise(AlarmKind::LowReservoir, t(0));
        assert_eq!(drain(&mut a, t(0)), [AlarmKind::LowReservoir]);
        assert_eq!(a.next_due(), Some(t(HOUR)));
        assert!(drain(&mut a, t(HOUR - 1)).is_empty());
        assert_eq!(drain(&mut a, t(HOUR)), [AlarmKind::LowReservoir]);
        assert_eq!(drain(&mut a, t(2 * HOUR)), [AlarmKind::LowReservoir]);
        a.acknowledge(AlarmKind::LowReservoir, t(2 * HOUR + 5 * MIN))
            .unwrap();
        assert_eq!(a.next_due(), None);
        // Cause persists for days: silent, and raising again changes nothing.
        assert!(!a.raise(AlarmKind::LowReservoir, t(30 * HOUR)));
        assert!(drain(&mut a, t(100 * HOUR)).is_empty());
        assert!(a.is_active(AlarmKind::LowReservoir));
        // Refilled, then low again: a new alarm, sounding at once.
        assert!(a.clear(AlarmKind::LowReservoir, t(101 * HOUR)));
        assert!(a.raise(AlarmKind::LowReservoir, t(900 * HOUR)));
        assert_eq!(drain(&mut a, t(900 * HOUR)), [AlarmKind::LowReservoir]);
    }

    #[test]
    fn low_alarm_sounds_every_12_h_until_acknowledged_pump_020() {
        // No kind is low priority today, so drive one slot under the low rule directly:
        // raise 0 → tone 0 → tone 12 h → tone 24 h → ack 25 h → silent for good.
        let rule = Priority::Low.rule();
        let mut slot = Slot::Sounding { next: t(0) };
        for h in [0, 12, 24] {
            assert_eq!(slot.due(), Some(t(h * HOUR)));
            slot = Slot::served(rule, t(h * HOUR));
        }
        assert_eq!(slot.due(), Some(t(36 * HOUR)));
        slot = slot.acknowledged(rule, t(25 * HOUR));
        assert_eq!(slot, Slot::Acknowledged { rearm_at: None });
        assert_eq!(slot.due(), None);
        assert_eq!(slot.acknowledged(rule, t(26 * HOUR)), slot);
        assert_eq!(Slot::Inactive.acknowledged(rule, t(0)), Slot::Inactive);
        assert_eq!(LOW_RULE.every, Duration::from_hours(12));
        assert_eq!(LOW_RULE.after_ack, AfterAck::Silent);
        assert_eq!(Priority::Low.rule(), LOW_RULE);
        assert_eq!(
            REPEAT_SCHEDULE.map(|r| r.priority),
            [Priority::High, Priority::Medium, Priority::Low]
        );
        for rule in REPEAT_SCHEDULE {
            assert_eq!(rule.priority.rule(), rule);
        }
    }

    #[test]
    fn raising_an_active_alarm_does_not_restart_its_schedule_pump_020() {
        let mut a = Alarms::new();
        assert!(a.raise(AlarmKind::EmptyReservoir, t(0)));
        drain(&mut a, t(0));
        for m in 1..10 {
            assert!(!a.raise(AlarmKind::EmptyReservoir, t(m * MIN)));
            assert!(drain(&mut a, t(m * MIN)).is_empty());
        }
        assert_eq!(a.next_due(), Some(t(10 * MIN)));
    }

    #[test]
    fn clear_stops_tones_pump_020() {
        let mut a = Alarms::new();
        a.raise(AlarmKind::MotorStall, t(0));
        a.raise(AlarmKind::StoppedReminder, t(0));
        drain(&mut a, t(0));
        assert!(a.clear(AlarmKind::MotorStall, t(5 * MIN)));
        assert!(!a.clear(AlarmKind::MotorStall, t(6 * MIN)));
        assert_eq!(a.next_due(), Some(t(HOUR)));
        assert_eq!(drain(&mut a, t(HOUR)), [AlarmKind::StoppedReminder]);
        assert!(a.clear(AlarmKind::StoppedReminder, t(HOUR)));
        assert_eq!(a.next_due(), None);
        assert!(drain(&mut a, t(1_000 * HOUR)).is_empty());
        assert_eq!(a.active().count(), 0);
        assert_eq!(a.highest(), None);
    }

    #[test]
    fn acknowledging_an_inactive_alarm_is_an_error_that_explains_pump_020() {
        let mut a = Alarms::new();
        let err = a.acknowledge(AlarmKind::LowReservoir, t(0)).unwrap_err();
        assert_eq!(err, AckError::NotActive(AlarmKind::LowReservoir));
        let msg = err.to_string();
        assert!(
            msg.contains("low reservoir") && msg.contains("not active"),
            "{msg}"
        );
        assert!(
            msg.contains("only an active alarm can be acknowledged"),
            "{msg}"
        );
    }

    #[test]
    fn highest_priority_sounds_first_and_is_shown_first_pump_020() {
        let mut a = Alarms::new();
        a.raise(AlarmKind::MagnetMri, t(0));
        a.raise(AlarmKind::LowReservoir, t(0));
        a.raise(AlarmKind::MotorStall, t(0));
        assert_eq!(a.highest(), Some(AlarmKind::MotorStall));
        assert_eq!(
            drain(&mut a, t(0)),
            [
                AlarmKind::MotorStall,
                AlarmKind::LowReservoir,
                AlarmKind::MagnetMri
            ]
        );
        a.acknowledge(AlarmKind::MotorStall, t(MIN)).unwrap();
        // Unacknowledged before acknowledged only within a priority.
        assert_eq!(a.highest(), Some(AlarmKind::MotorStall));
        a.raise(AlarmKind::EmptyReservoir, t(2 * MIN));
        assert_eq!(a.highest(), Some(AlarmKind::EmptyReservoir));
        let active: Vec<_> = a.active().collect();
        assert_eq!(
            active,
            [
                (AlarmKind::EmptyReservoir, Priority::High, false),
                (AlarmKind::LowReservoir, Priority::Medium, false),
                (AlarmKind::MotorStall, Priority::High, true),
                (AlarmKind::MagnetMri, Priority::Medium, false),
            ]
        );
    }

    #[test]
    fn a_late_wake_plays_one_tone_not_a_burst_pump_020() {
        let mut a = Alarms::new();
        a.raise(AlarmKind::EmptyReservoir, t(0));
        drain(&mut a, t(0));
        // The core slept 95 minutes past the due time.
        assert_eq!(drain(&mut a, t(105 * MIN)), [AlarmKind::EmptyReservoir]);
        assert_eq!(a.next_due(), Some(t(115 * MIN)));
    }

    #[test]
    fn a_schedule_saturated_at_the_end_of_time_never_loops_pump_020() {
        let mut a = Alarms::new();
        a.raise(AlarmKind::EmptyReservoir, t(u64::MAX - 1));
        assert_eq!(drain(&mut a, Instant::MAX).len(), 1);
        assert_eq!(a.next_due(), None);
    }

    #[test]
    fn alarm_state_survives_a_persist_round_trip_pump_020() {
        let mut a = Alarms::new();
        a.raise(AlarmKind::MotorStall, t(0));
        a.raise(AlarmKind::LowReservoir, t(0));
        drain(&mut a, t(0));
        a.acknowledge(AlarmKind::MotorStall, t(MIN)).unwrap();
        let mut buf = [0u8; 128];
        let bytes = postcard::to_slice(&a, &mut buf).unwrap();
        let back: Alarms = postcard::from_bytes(bytes).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.next_due(), Some(t(HOUR)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Raise(usize),
        Clear(usize),
        Ack(usize),
        /// Let time pass, serving every tone exactly when `next_due` says.
        Wait(u64),
        /// Poll at an arbitrary time no later than the next tone.
        Poke(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..AlarmKind::COUNT).prop_map(Op::Raise),
            (0..AlarmKind::COUNT).prop_map(Op::Clear),
            (0..AlarmKind::COUNT).prop_map(Op::Ack),
            (0..6 * HOUR).prop_map(Op::Wait),
            (0..30 * MIN).prop_map(Op::Poke),
        ]
    }

    /// What the test believes about one kind.
    #[derive(Debug, Clone, Copy, Default)]
    struct Model {
        active: bool,
        /// Acknowledged at this time and not re-armed since.
        acked_at: Option<u64>,
        /// Last tone, or the raise (which is also a tone).
        last_tone: u64,
    }

    const HIGH_MAX_GAP: u64 = 4 * HOUR + 10 * MIN;

    /// Drains every tone due at `now`, checking each against the model; returns how
    /// many were served.
    fn serve(a: &mut Alarms, models: &mut [Model; AlarmKind::COUNT], now: u64) -> usize {
        let mut served = 0;
        while let Some(sound) = a.poll_sound(t(now)) {
            served += 1;
            assert!(served <= AlarmKind::COUNT, "tone storm");
            let m = &mut models[sound.kind.index()];
            assert!(m.active, "tone for inactive {}", sound.kind);
            assert_eq!(sound.priority, sound.kind.priority());
            assert_eq!(sound.tone, sound.priority.tone());
            if let Some(acked) = m.acked_at {
                assert_eq!(
                    sound.priority,
                    Priority::High,
                    "tone for acknowledged {}",
                    sound.kind
                );
                assert!(now >= acked + 4 * HOUR, "re-armed early: {}", sound.kind);
                m.acked_at = None;
            }
            if sound.priority == Priority::High {
                assert!(
                    now - m.last_tone <= HIGH_MAX_GAP,
                    "{} silent too long",
                    sound.kind
                );
            }
            m.last_tone = now;
        }
        // next_due is never a time already served.
        if let Some(due) = a.next_due() {
            assert!(due > t(now));
        }
        served
    }

    proptest! {
        #[test]
        fn tones_only_for_active_unacknowledged_or_rearmed_alarms_pump_020(
            ops in proptest::collection::vec(op(), 1..120)
        ) {
            let mut a = Alarms::new();
            let mut models = [Model::default(); AlarmKind::COUNT];
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Raise(i) => {
                        let kind = AlarmKind::ALL[i];
                        let newly = a.raise(kind, t(now));
                        prop_assert_eq!(newly, !models[i].active);
                        if newly {
                            models[i] = Model { active: true, acked_at: None, last_tone: now };
                            // The first tone is due now.
                            prop_assert_eq!(a.next_due(), Some(t(now)));
                        }
                    }
                    Op::Clear(i) => {
                        let was = a.clear(AlarmKind::ALL[i], t(now));
                        prop_assert_eq!(was, models[i].active);
                        models[i].active = false;
                    }
                    Op::Ack(i) => {
                        let kind = AlarmKind::ALL[i];
                        let r = a.acknowledge(kind, t(now));
                        prop_assert_eq!(r.is_ok(), models[i].active);
                        if r.is_ok() && models[i].acked_at.is_none() {
                            models[i].acked_at = Some(now);
                        }
                    }
                    Op::Wait(dt) => {
                        let end = now + dt;
                        // Sleep exactly until next_due, as the core does.
                        while let Some(due) = a.next_due() {
                            if due > t(end) {
                                break;
                            }
                            now = due.ms();
                            let served = serve(&mut a, &mut models, now);
                            prop_assert!(served > 0, "next_due promised a tone at {}", due);
                        }
                        now = end;
                    }
                    // A wake for another reason, before the next tone is due (a
                    // late wake is the core's fault; see a_late_wake_plays_one_tone).
                    Op::Poke(dt) => {
                        let due = a.next_due().map_or(u64::MAX, Instant::ms);
                        now = (now + dt).min(due);
                    }
                }
                serve(&mut a, &mut models, now);
                for (i, m) in models.iter().enumerate() {
                    let kind = AlarmKind::ALL[i];
                    prop_assert_eq!(a.is_active(kind), m.active);
                    // A critical alarm is never left without a future tone while active.
                    if m.active && kind.priority() == Priority::High {
                        let due = a.slot(kind).due().unwrap().ms();
                        prop_assert!(due - m.last_tone <= HIGH_MAX_GAP);
                    }
                }
            }
        }
    }
}
