//! Alarms: kinds, IEC 60601-1-8 priorities, plain-language texts and the repeat
//! schedule.
//!
//! Priority follows IEC 60601-1-8 (DOMAIN.md §6): potential harm × onset. A critical
//! (high-priority) alarm whose cause persists re-arms after acknowledgement; the pump
//! never silences it for good while the cause is there.

use serde::{Deserialize, Serialize};

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
}

impl AlarmKind {
    /// Every kind, in declaration order.
    pub const ALL: [AlarmKind; 10] = [
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
    ];
}
