//! Commands, roles and the capability table.

use serde::{Deserialize, Serialize};

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
