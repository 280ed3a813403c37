//! The firmware update in the twin (SIM-063, SIM-064): the implant's real updater
//! (`thecal-update`) on a flash in memory, driven by the real link
//! ([`thecal_link::Implant::handle_with_update`]), a clinician's programmer that installs
//! signed updates over the air, and what an attacker does with what it recorded.
//!
//! **Owns:** the scenario's `[firmware]` table, the maker's key and the images it
//! signs, the implant's update flash and updater, what the attacker recorded of each
//! update.
//!
//! **Must never:** reach into the updater around the link (every step of an update, an
//! attacker's included, is a frame the implant's link handles), or judge an attack by
//! what the attacker sent: the verdicts read the pump's own event log and the
//! updater's own status.

use ed25519_dalek::SigningKey;
use serde::Deserialize;
use thecal_link::log_update_events;
use thecal_pump::core::Pump;
use thecal_rx::Instant;
use thecal_update::image::{self, HardwareId};
use thecal_update::mem::MemStorage;
use thecal_update::updater::{REFERENCE_SLOT_SIZE, provision};
use thecal_update::{Confirmation, Manifest, Slot, TrustList, UpdateStatus, Updater, Version};

use crate::prescription_file::FileError;

use super::err;

/// The smallest and largest firmware body a scenario may ask for, bytes.
pub const IMAGE_BYTES: core::ops::RangeInclusive<u32> = 1024..=(REFERENCE_SLOT_SIZE - 1024);

/// The implant's firmware in a scenario (`[firmware]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareConfig {
    /// The version the implant runs at the start.
    pub version: Version,
    /// Its security counter.
    pub security_counter: u32,
    /// The length of every image's body, bytes.
    pub body_len: u32,
    /// The hardware id: the device model.
    pub hardware: String,
}

/// The `[firmware]` table of a scenario.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct FirmwareSpec {
    version: Option<String>,
    security_counter: Option<u32>,
    image_size: Option<String>,
}

impl FirmwareSpec {
    pub(crate) fn build(&self, model: &str) -> Result<FirmwareConfig, FileError> {
        let version = match &self.version {
            Some(v) => version("firmware.version", v)?,
            None => Version::new(1, 0, 0, 0),
        };
        let body_len = match &self.image_size {
            Some(t) => bytes("firmware.image_size", t)?,
            None => 32 * 1024,
        };
        if HardwareId::new(model).is_none() {
            return Err(err(
                "device.model",
                format!("'{model}' cannot name a firmware's hardware"),
            ));
        }
        Ok(FirmwareConfig {
            version,
            security_counter: self.security_counter.unwrap_or(1),
            body_len,
            hardware: model.to_string(),
        })
    }
}

/// A version, `MAJOR.MINOR.REVISION[+BUILD]`.
pub(crate) fn version(field: &str, text: &str) -> Result<Version, FileError> {
    Version::parse(text.trim()).ok_or_else(|| {
        err(
            field,
            format!(
                "'{text}' is not a version; write MAJOR.MINOR.REVISION or \
                 MAJOR.MINOR.REVISION+BUILD, e.g. \"1.2.0\""
            ),
        )
    })
}

/// A size such as `"32 KiB"` or `"4000 B"`, within [`IMAGE_BYTES`].
fn bytes(field: &str, text: &str) -> Result<u32, FileError> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("KiB") {
        (n, 1024u64)
    } else if let Some(n) = t.strip_suffix('B') {
        (n, 1)
    } else {
        (t, 0)
    };
    let allowed = format!(
        "allowed: {} B to {} B, written with its unit, e.g. \"32 KiB\" or \"4000 B\"",
        IMAGE_BYTES.start(),
        IMAGE_BYTES.end()
    );
    match number.trim().parse::<u64>() {
        Ok(n) if scale > 0 => {
            let b = n.saturating_mul(scale);
            match u32::try_from(b) {
                Ok(b) if IMAGE_BYTES.contains(&b) => Ok(b),
                _ => Err(err(field, format!("'{text}' is out of range; {allowed}"))),
            }
        }
        _ => Err(err(field, format!("'{text}' is not a size; {allowed}"))),
    }
}

/// What the attacker recorded of one update installed over the air.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recorded {
    /// The signed image (the attacker has it whole: every chunk went over the air).
    pub image: Vec<u8>,
    /// Every frame the programmer sent to the implant in that session, hello first.
    pub frames: Vec<Vec<u8>>,
    /// Of which the chunk frames.
    pub chunks: Vec<Vec<u8>>,
}

/// The implant's update side and what was recorded of it.
pub(crate) struct Firmware {
    maker: SigningKey,
    hardware: HardwareId,
    body_len: usize,
    pub(crate) storage: MemStorage,
    pub(crate) updater: Updater,
    pub(crate) recorded: Vec<Recorded>,
    /// An image was marked for trial: the implant restarts after this turn.
    pub(crate) restart_pending: bool,
}

impl std::fmt::Debug for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firmware")
            .field("status", &self.updater.status())
            .field("recorded", &self.recorded.len())
            .finish_non_exhaustive()
    }
}

impl Firmware {
    /// The factory state: the image of `config.version` in slot A, the maker's key
    /// trusted, the counter at `config.security_counter`; booted. `None` if the
    /// factory image cannot be made (the configuration was checked when parsed).
    pub(crate) fn new(config: &FirmwareConfig, maker: SigningKey) -> Option<Firmware> {
        let hardware = HardwareId::new(&config.hardware)?;
        let body_len = config.body_len as usize;
        let factory = signed_image(
            &maker,
            hardware,
            body_len,
            config.version,
            config.security_counter,
        )?;
        let mut storage = MemStorage::new(REFERENCE_SLOT_SIZE as usize);
        storage
            .slot_mut(Slot::A)
            .get_mut(..factory.len())?
            .copy_from_slice(&factory);
        let trust = TrustList::new(&[maker.verifying_key().to_bytes()])?;
        provision(&mut storage, Slot::A, trust, config.security_counter).ok()?;
        let updater = Updater::boot(&mut storage, hardware).ok()?;
        Some(Firmware {
            maker,
            hardware,
            body_len,
            storage,
            updater,
            recorded: Vec::new(),
            restart_pending: false,
        })
    }

    /// An image of `version` with `security_counter`, signed by the maker.
    pub(crate) fn image(&self, version: Version, security_counter: u32) -> Option<Vec<u8>> {
        signed_image(
            &self.maker,
            self.hardware,
            self.body_len,
            version,
            security_counter,
        )
    }

    /// What the updater reports.
    pub(crate) fn status(&self) -> UpdateStatus {
        self.updater.status()
    }

    /// The implant restarted (its therapy core is already restored): the bootloader's
    /// choice, then, for an image on trial, its self-test (`self_test_passed`) and its
    /// confirmation, or the revert and the restart into the old image. Every event of
    /// the updater goes to the pump's log. Returns what happened, in words.
    pub(crate) fn restart(
        &mut self,
        hw: Instant,
        pump: &mut Pump,
        self_test_passed: bool,
    ) -> String {
        self.restart_pending = false;
        let boot = |f: &mut Firmware, pump: &mut Pump| -> Result<(), String> {
            // What the updater before the restart still held was logged as it happened.
            log_update_events(&mut f.updater, pump, hw);
            f.updater = Updater::boot(&mut f.storage, f.hardware)
                .map_err(|e| format!("firmware: the implant does not boot: {e:?}"))?;
            Ok(())
        };
        if let Err(e) = boot(self, pump) {
            return e;
        }
        let words = if !self.updater.status().on_trial {
            let s = self.updater.status();
            format!(
                "firmware: restarted into version {} (slot {}, counter {})",
                s.running, s.slot, s.security_counter
            )
        } else {
            match self.updater.confirm(&mut self.storage, self_test_passed) {
                Ok(Confirmation::Confirmed) => {
                    let s = self.updater.status();
                    format!(
                        "firmware: version {} started on trial, passed its self-test and \
                         confirmed itself (slot {}, counter {})",
                        s.running, s.slot, s.security_counter
                    )
                }
                Ok(Confirmation::Reverted) => {
                    if let Err(e) = boot(self, pump) {
                        return e;
                    }
                    format!(
                        "firmware: the trial image failed its self-test; restarted into \
                         version {}",
                        self.updater.status().running
                    )
                }
                Err(e) => format!("firmware: the trial image could not confirm itself: {e}"),
            }
        };
        log_update_events(&mut self.updater, pump, hw);
        words
    }
}

/// An image of `version` with `security_counter` for `hardware`, signed by `maker`; its
/// body of `body_len` bytes is derived from the version, so two versions differ.
fn signed_image(
    maker: &SigningKey,
    hardware: HardwareId,
    body_len: usize,
    version: Version,
    security_counter: u32,
) -> Option<Vec<u8>> {
    let seed = (u32::from(version.major) << 24)
        ^ (u32::from(version.minor) << 16)
        ^ u32::from(version.revision)
        ^ version.build.rotate_left(7);
    let body: Vec<u8> = (0..body_len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed).to_le_bytes()[1])
        .collect();
    let m = Manifest {
        version,
        security_counter,
        hardware,
    };
    let mut out = vec![0u8; image::signed_len(body.len(), &m)?];
    image::sign(&body, &m, maker, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use thecal_pump::event::{Event, FirmwareRecord};

    use crate::engine::Engine;
    use crate::result::{PumpLog, RunResult};
    use crate::scenario;

    const REPLAY: &str = include_str!("../../../../scenarios/firmware-update-replay.toml");
    const FLOOD: &str = include_str!("../../../../scenarios/firmware-chunk-flood.toml");

    fn run(text: &str) -> (RunResult, PumpLog) {
        let sc = scenario::parse(text).unwrap();
        Engine::new(&sc).run_logged()
    }

    fn firmware_entries(log: &PumpLog) -> Vec<FirmwareRecord> {
        log.entries
            .iter()
            .filter_map(|(_, e)| match e.event {
                Event::FirmwareUpdate(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn failed(r: &RunResult) -> Vec<String> {
        r.verdicts
            .iter()
            .filter(|v| !v.passed)
            .map(|v| format!("{}: {}", v.expectation, v.detail))
            .collect()
    }

    #[test]
    fn a_captured_update_replayed_to_a_pump_past_it_is_refused_and_changes_nothing_sim_063() {
        let (r, log) = run(REPLAY);
        assert!(r.passed(), "{:?}", failed(&r));
        let fw = r.radio.as_ref().unwrap().firmware.as_ref().unwrap();
        assert_eq!(
            (fw.running.as_str(), fw.slot.as_str(), fw.security_counter),
            ("1.2.0", "A", 5)
        );
        assert_eq!((fw.updates_sent, fw.confirmed), (2, 2));
        // The pump's own log, read here apart from the run's bookkeeping: two trials
        // confirmed (counters 4 and 5), the stolen programmer's image refused at
        // verification as a rollback (step 3, code 52) and at the mark (step 4, code 28).
        let entries = firmware_entries(&log);
        let confirmed: Vec<u32> = entries
            .iter()
            .filter(|e| e.code == 6)
            .map(|e| e.value)
            .collect();
        assert_eq!(confirmed, vec![4, 5]);
        let refused: Vec<(u8, u8)> = entries
            .iter()
            .filter(|e| e.code == 10)
            .map(|e| (e.step, e.reason))
            .collect();
        assert_eq!(refused, vec![(3, 52), (4, 28)]);
        // The frames replayed as recorded reached no updater step: the only refusals are
        // the stolen programmer's, and the replayed hello was denied as a replay (4).
        assert!(
            log.entries
                .iter()
                .any(|(_, e)| matches!(e.event, Event::HandshakeDenied { reason: 4, .. }))
        );
        // No verification after the second confirmation succeeded.
        let last_confirm = entries.iter().rposition(|e| e.code == 6).unwrap();
        assert!(!entries[last_confirm..].iter().any(|e| e.code == 4));
    }

    #[test]
    fn without_the_newer_update_the_replayed_image_is_accepted_and_the_verdicts_say_so_sim_063() {
        // The same attack on a pump that never went past 1.1.0: the genuine image is not
        // a rollback there, so the expectations that it is refused fail.
        let text = REPLAY.replacen(
            "[[event]]\nat = \"2 d\"\nkind = \"firmware-update\"\nversion = \"1.2.0\"\nsecurity_counter = 5\n",
            "",
            1,
        );
        assert_ne!(text, REPLAY);
        let (r, log) = run(&text);
        let failed = failed(&r);
        assert!(
            failed
                .iter()
                .any(|f| f.starts_with("update-refused code=52")),
            "{failed:?}"
        );
        assert!(
            failed.iter().any(|f| f.starts_with("firmware-running")),
            "{failed:?}"
        );
        assert!(
            r.notes
                .iter()
                .any(|n| n.text.contains("stolen programmer") && n.text.contains("ACCEPTED"))
        );
        assert!(
            !firmware_entries(&log)
                .iter()
                .any(|e| e.code == 10 && e.reason == 52)
        );
    }

    #[test]
    fn a_chunk_flood_costs_bounded_energy_and_changes_nothing_sim_064() {
        let (r, log) = run(FLOOD);
        assert!(r.passed(), "{:?}", failed(&r));
        let radio = r.radio.as_ref().unwrap();
        let fw = radio.firmware.as_ref().unwrap();
        println!(
            "update: {} chunk frames, {} uJ; flood: {} frames sent, {} heard, {} uJ ({:.3} % \
             of the daily budget); costliest day {:.3} %",
            fw.chunk_frames,
            fw.update_uj,
            radio.attack_frames_sent,
            radio.attack_frames_heard,
            radio.attack_uj,
            radio.attack_uj as f64 * 100.0 / radio.daily_budget_uj as f64,
            radio.peak_day_pct_of_budget
        );
        assert_eq!(radio.attack_frames_sent, 864_000);
        // The back-off: at most one frame heard per listen, at most 144 listens a day
        // beyond the first minutes.
        assert!(
            radio.attack_frames_heard < 400,
            "{}",
            radio.attack_frames_heard
        );
        assert!(radio.attack_uj * 100 < radio.daily_budget_uj);
        // Not one replayed chunk reached the updater: no refused step in the pump's log.
        let entries = firmware_entries(&log);
        assert!(!entries.iter().any(|e| e.code == 10), "{entries:?}");
        assert_eq!(
            (fw.running.as_str(), fw.security_counter, fw.confirmed),
            ("1.1.0", 4, 1)
        );
    }

    #[test]
    fn firmware_fields_are_checked_with_one_line_naming_the_field_sim_065() {
        let cases: &[(&str, &str, &str)] = &[
            ("telemetry = true\n", "", "firmware"),
            (
                "version = \"1.0.0\"",
                "version = \"one\"",
                "firmware.version",
            ),
            (
                "image_size = \"32 KiB\"",
                "image_size = \"300 KiB\"",
                "firmware.image_size",
            ),
            (
                "image_size = \"32 KiB\"",
                "image_size = \"32\"",
                "firmware.image_size",
            ),
            ("persistence = true\n", "", "event[0].kind"),
            (
                "version = \"1.1.0\"",
                "version = \"1.x\"",
                "event[0].version",
            ),
            ("update = 1\nevery", "update = 0\nevery", "event[1].update"),
        ];
        for (from, to, field) in cases {
            let text = FLOOD.replacen(from, to, 1);
            assert_ne!(&text, FLOOD, "{from}");
            let e = scenario::parse(&text).unwrap_err();
            assert_eq!(&e.field, field, "{from} -> {to}: {e}");
            assert!(!e.message.contains('\n'), "{e}");
        }
        let via = REPLAY.replacen("via = \"programmer\"", "via = \"radio\"", 1);
        let e = scenario::parse(&via).unwrap_err();
        assert_eq!(e.field, "event[3].via");
        assert!(e.message.contains("air, programmer"), "{e}");
        // A firmware event without a [firmware] table.
        let a = FLOOD.find("[firmware]").unwrap();
        let b = FLOOD.find("[prescription]").unwrap();
        let bare = format!("{}{}", &FLOOD[..a], &FLOOD[b..]);
        let e = scenario::parse(&bare).unwrap_err();
        assert_eq!(e.field, "event[0].kind");
        assert!(e.message.contains("[firmware]"), "{e}");
        // The expectations' fields.
        let e = scenario::parse(&FLOOD.replacen("energy = \"180 mJ\"", "energy = \"lots\"", 1))
            .unwrap_err();
        assert_eq!(e.field, "expect[1].energy");
    }
}
