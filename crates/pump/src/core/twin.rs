//! The core's side of a digital twin (PUMP-039, PUMP-040): the reading a programmer
//! takes of the fluid path and the settings beyond the status, and a core started from
//! such a reading.
//!
//! A twin is the real core, started fresh and brought to the interrogated state by the
//! clinician's own commands (catheter record, fill, program, clock, alarm settings,
//! resume), so that every check and limit is the one the implant applied; then the
//! fluid path, the reservoir, the bridging state, the fill's beyond-use instant and a
//! bolus under way are set to what was read. It never reads more than a programmer
//! can read over the link: the limiter's history of the last 24 h is not read, so a
//! twin's limiter starts empty (it may allow what the implant would veto while that
//! history lasts). Firmware never builds a twin; it only answers the reading.

use core::fmt;

use thecal_rx::check::Prescription;
use thecal_rx::{Duration, Instant};

use super::{Allowance, Pump};
use crate::command::{Command, CommandKind, Mode, Refusal, Response, Role, SoftReason, Status};
use crate::core::Bolus;
use crate::fluid::FluidPath;
use crate::profile::HardwareProfile;
use crate::reading::{PathReading, ReadingError};

/// Why a twin could not be started from a reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwinError {
    /// The twin's core refused one of the commands that bring it to the read state.
    Refused {
        /// Which command.
        step: CommandKind,
        /// Why.
        reason: Refusal,
    },
    /// The path reading does not describe a path.
    Reading(ReadingError),
    /// The reads do not belong together; the text says which values differ.
    Inconsistent(&'static str),
}

impl fmt::Display for TwinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TwinError::Refused { step, reason } => write!(
                f,
                "the twin's core refused the {} that brings it to the read state: {reason}",
                step.name()
            ),
            TwinError::Reading(e) => write!(f, "fluid path reading: {e}"),
            TwinError::Inconsistent(what) => f.write_str(what),
        }
    }
}

impl core::error::Error for TwinError {}

impl From<ReadingError> for TwinError {
    fn from(e: ReadingError) -> Self {
        TwinError::Reading(e)
    }
}

impl Pump {
    /// The fluid path and the settings a twin needs beyond the status and the program,
    /// as of the last input (PUMP-039): what [`Pump::twin`] starts from.
    ///
    /// # Errors
    /// [`ReadingError::TooManyDrugs`] when a merged segment holds more drugs than a
    /// reading carries (the limiter's bound on drugs in the path makes this impossible
    /// while the pump is intact).
    pub fn path_reading(&self) -> Result<PathReading, ReadingError> {
        Ok(PathReading {
            now: self.to_hardware(self.s.last_seen),
            program_version: self.s.program_version,
            reservoir: self.s.reservoir,
            dead_volume: self.s.fluid.dead_volume(),
            segments: self.s.fluid.read_segments()?,
            offset_minutes: self.s.clock.map(|c| c.offset_minutes),
            beyond_use: self.s.beyond_use.map(|t| self.to_hardware(t)),
            bolus: self.s.bolus.map(|b| Bolus {
                start: self.to_hardware(b.start),
                ..b
            }),
        })
    }

    /// A core of `profile` in the state a programmer read (PUMP-040): `status` from
    /// [`Command::Interrogate`], `program` the prescription in force, `path` from
    /// [`Pump::path_reading`]. Its time starts at `path.now`. It keeps no records
    /// (persistence off) and its log starts empty.
    ///
    /// # Errors
    /// [`TwinError::Inconsistent`] when the reads do not belong together (another
    /// program version, another dead volume, a profile with another pump path);
    /// [`TwinError::Reading`] for a path that does not add up; [`TwinError::Refused`]
    /// when the core refuses a step (a program the library refuses).
    pub fn twin(
        profile: HardwareProfile,
        status: &Status,
        program: &Prescription,
        path: &PathReading,
    ) -> Result<Pump, TwinError> {
        if status.program_version != path.program_version {
            return Err(TwinError::Inconsistent(
                "the program changed between the status and the fluid path reads; read both again",
            ));
        }
        if status.dead_volume != path.dead_volume {
            return Err(TwinError::Inconsistent(
                "the status and the fluid path reading give different dead volumes; read both again",
            ));
        }
        if status.pump_path != profile.pump_path_volume {
            return Err(TwinError::Inconsistent(
                "the pump model given is not the implant's: its internal path volume differs \
                 from the one the implant reports",
            ));
        }
        let now = path.now;
        let mut pump = Pump::new(profile, now);
        pump.set_persistence(false);
        let reason = SoftReason::new("digital twin of the interrogated state").ok();
        let step = |pump: &mut Pump, cmd: Command| -> Result<(), TwinError> {
            let kind = cmd.kind();
            let r = pump.handle_command(now, Role::Clinician, 0, &cmd);
            while pump.poll_action().is_some() {}
            match r {
                Response::Refused(reason) => Err(TwinError::Refused { step: kind, reason }),
                _ => Ok(()),
            }
        };
        if let Some(c) = status.catheter {
            step(&mut pump, Command::SetCatheter(c))?;
        }
        if program.contents.active().next().is_some() {
            step(
                &mut pump,
                Command::Refill {
                    aspirated: thecal_rx::Volume::ZERO,
                    // A fill cannot be empty: an empty reservoir is set below.
                    added: path.reservoir.max(profile.stroke_volume),
                    contents: program.contents.clone(),
                    keep_dose: false,
                    bridge: crate::command::BridgeChoice::None,
                    confirm: reason.clone(),
                    beyond_use_utc_ms: None,
                },
            )?;
            step(
                &mut pump,
                Command::Program {
                    prescription: program.clone(),
                    confirm_soft: reason.clone(),
                },
            )?;
        }
        if let (true, Some(utc)) = (status.clock_set, status.utc_ms) {
            // The UTC time at the path reading's instant.
            let utc = if path.now >= status.now {
                utc.saturating_add(path.now.saturating_since(status.now).ms())
            } else {
                utc.saturating_sub(status.now.saturating_since(path.now).ms())
            };
            step(
                &mut pump,
                Command::SetClock {
                    utc_ms: utc,
                    offset_minutes: path.offset_minutes.unwrap_or(0),
                },
            )?;
        }
        let a = status.alarm_settings;
        step(
            &mut pump,
            Command::AlarmSettings {
                low_reservoir: a.low_reservoir,
                low_reservoir_days: a.low_reservoir_days,
                stopped_reminder: a.stopped_reminder,
            },
        )?;
        step(
            &mut pump,
            Command::SetReminderInterval {
                interval: status.reminder_interval,
            },
        )?;
        if matches!(status.mode, Mode::Running) {
            step(&mut pump, Command::Resume)?;
        }
        // The read state that no command sets.
        let fluid = FluidPath::from_segments(path.dead_volume, &path.segments)?;
        if fluid.dead_volume() != pump.dead_volume() {
            return Err(TwinError::Inconsistent(
                "the fluid path's dead volume is not the pump path plus the recorded catheter",
            ));
        }
        pump.s.fluid = fluid;
        pump.s.reservoir = path.reservoir;
        pump.s.program_version = path.program_version;
        pump.s.bridging = status.bridging;
        pump.s.beyond_use = path.beyond_use;
        if let Some(b) = path.bolus {
            if now < b.end() && matches!(status.mode, Mode::Running) {
                pump.begin_bolus(b);
                pump.s.bolus_accrued = b.exact_between(b.start, now);
                // A bolus under way was allowed by the implant's limiter: so is the rest.
                pump.s.allowance = Some(Allowance {
                    volume: b.volume,
                    until: b.end().saturating_add(Duration::from_days(1)),
                });
            }
        }
        pump.refresh_limits(now);
        pump.low_threshold = None;
        pump.mark_dirty();
        pump.self_test(now);
        pump.schedule_next(now);
        while pump.poll_action().is_some() {}
        Ok(pump)
    }

    /// The instant of the core's last input, in hardware time (where a twin's time
    /// stands).
    pub fn last_input(&self) -> Instant {
        self.to_hardware(self.s.last_seen)
    }
}
