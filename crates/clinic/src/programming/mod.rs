//! The clinic as the clinician programmer: the server's programmer station and the
//! programming session's record.
//!
//! - [`Station`]: the programmer key this server holds (one file, mode 0600, in the data
//!   directory; never shown, never sent to a browser) with its pairing for each pump it
//!   was enrolled with through the wand's window, and the calls to an implant over
//!   thecal-link — the very session code `thecal programmer` runs
//!   ([`thecal_programmer`]). Calls block (UDP with retries): the API runs them on
//!   tokio's blocking pool.
//! - [`record`]: the session's record and the reconciliation rule.
//!
//! Fault injection for the tests is a hook the station calls at each step of a send
//! ([`Step`]): it may stop the implant (a restart or a dropped link) or fail the step
//! (the server killed there, before anything more is recorded).

pub mod demo;
pub mod forecast;
pub mod record;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thecal_programmer::bearer::{ANSWER_TIMEOUT, Bearer, Client, Fail, Stats};
use thecal_programmer::keyfile::{DeviceKind, Key};
use thecal_programmer::session;

/// A step of sending a change, where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The pending row is written; nothing sent yet.
    BeforeSend,
    /// The command was answered; nothing read back yet.
    AfterSend,
    /// Read back; nothing recorded yet.
    AfterReadBack,
}

/// A fault hook: `Err` fails the step (as if the server died there).
pub type FaultHook = Arc<dyn Fn(Step) -> Result<(), String> + Send + Sync>;

/// The server's programmer station.
pub struct Station {
    key: Mutex<Key>,
    timeout: Duration,
    hook: Mutex<Option<FaultHook>>,
}

impl std::fmt::Debug for Station {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is never printed.
        f.debug_struct("Station").finish_non_exhaustive()
    }
}

/// The key file's name in the station's directory.
pub const KEY_FILE: &str = "programmer.key";

impl Station {
    /// Opens the station in `dir` (created 0700 if absent): its key file, made on first
    /// use with mode 0600, and refused when group or others may read it.
    ///
    /// # Errors
    /// The directory or key cannot be made or read, or the key is not private.
    pub fn open(dir: &Path) -> Result<Station, String> {
        use std::os::unix::fs::DirBuilderExt as _;
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
        }
        let path: PathBuf = dir.join(KEY_FILE);
        let key = if path.exists() {
            Key::load(&path, DeviceKind::Programmer)?
        } else {
            Key::generate(&path, DeviceKind::Programmer)?
        };
        Ok(Station {
            key: Mutex::new(key),
            timeout: ANSWER_TIMEOUT,
            hook: Mutex::new(None),
        })
    }

    /// Sets how long each answer is waited for (the tests shorten it).
    pub fn with_timeout(mut self, t: Duration) -> Station {
        self.timeout = t;
        self
    }

    /// Sets (or clears) the fault hook.
    pub fn set_fault(&self, hook: Option<FaultHook>) {
        if let Ok(mut h) = self.hook.lock() {
            *h = hook;
        }
    }

    /// Runs the fault hook at `step`.
    ///
    /// # Errors
    /// What the hook said.
    pub fn fault(&self, step: Step) -> Result<(), String> {
        let hook = self.hook.lock().ok().and_then(|h| h.clone());
        match hook {
            Some(h) => h(step),
            None => Ok(()),
        }
    }

    fn key(&self) -> Result<std::sync::MutexGuard<'_, Key>, Fail> {
        self.key
            .lock()
            .map_err(|_| Fail::Runtime("the programmer key is unavailable".into()))
    }

    /// This station's key id (public: it names the programmer in the pump's registry).
    pub fn key_id(&self) -> Option<u32> {
        self.key.lock().ok().map(|k| k.key_id())
    }

    /// The address of the pump named `serial`, when this station is enrolled with it.
    pub fn address(&self, serial: &str) -> Option<String> {
        let k = self.key.lock().ok()?;
        k.file.pairings.get(serial).and_then(|p| p.address.clone())
    }

    /// Enrols this station with the pump `serial` at `address` through the wand's
    /// window (`token`: the proximity token's JSON) and keeps the pairing with the key.
    ///
    /// # Errors
    /// A bad token or address, or no answer to the enrolment.
    pub fn enrol(&self, serial: &str, address: &str, token: &str) -> Result<Stats, Fail> {
        let now = chrono::Utc::now().timestamp_millis();
        let inv = session::parse_invitation(token, "token", now)?;
        let mut key = self.key()?;
        let bearer = Bearer::new(address, self.timeout).map_err(|e| match e {
            Fail::Usage(_) => Fail::Usage(format!(
                "'{address}' is not an address; expected HOST:PORT, e.g. 127.0.0.1:7011"
            )),
            e => e,
        })?;
        let (client, pairing) = session::enrol(bearer, &mut key, &inv, address)?;
        key.file.pairings.insert(serial.to_string(), pairing);
        key.save()?;
        Ok(client.bearer.stats)
    }

    /// Opens a session with the pump `serial` and runs `f` on it; returns what it
    /// returned and what went over the air.
    ///
    /// # Errors
    /// Not enrolled, no answer, or what `f` returned.
    pub fn with<T>(
        &self,
        serial: &str,
        f: impl FnOnce(&mut Client) -> Result<T, Fail>,
    ) -> Result<(T, Stats), Fail> {
        let mut key = self.key()?;
        let address = key
            .file
            .pairings
            .get(serial)
            .and_then(|p| p.address.clone())
            .ok_or_else(|| {
                Fail::Usage(format!(
                    "this server's programmer is not enrolled with the pump {serial}: \
                     enrol it through the wand's window first"
                ))
            })?;
        let hello = key.hello_for(serial)?;
        let bearer = Bearer::new(&address, self.timeout)?;
        let mut client = Client::connect(bearer, &mut key, hello)?;
        drop(key);
        let t = f(&mut client)?;
        Ok((t, client.bearer.stats))
    }
}

/// Puts a new pump into service as the clinic's record has it, through the link: the
/// clock set, the catheter recorded (catalogue model 1 at `catheter_cm`, with delivery
/// stopped for it), the first fill of `program`'s contents and volume, and `program`
/// itself, each confirmed with `reason` (at most 64 bytes); then, with `prime` (the
/// pump's highest flow), the priming bolus that fills the drug-free catheter, over the
/// shortest whole number of minutes that flow allows (the basal runs on meanwhile, and
/// the drug reaches the tip as the priming ends). Without priming the catheter holds no
/// drug and the first fill reaches the tip only after the basal has pushed the dead
/// volume. What the demo's virtual implants and the tests start from.
///
/// # Errors
/// No answer, or the pump refused a step.
pub fn put_in_service(
    station: &Station,
    serial: &str,
    program: &thecal_rx::check::Prescription,
    catheter_cm: u16,
    reason: &str,
    prime: Option<thecal_rx::Flow>,
) -> Result<Stats, Fail> {
    use thecal_link::Body;
    use thecal_pump::catheter::{CatheterRecord, model};
    use thecal_pump::command::{BridgeChoice, Command, SoftReason, StopReason};
    let reason = SoftReason::new(reason)
        .map_err(|e| Fail::Usage(format!("reason: {e} (at most 64 bytes)")))?;
    let utc_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    let cat = model(1).ok_or_else(|| Fail::Runtime("no catalogue catheter 1".into()))?;
    let record = CatheterRecord {
        model: cat.code,
        volume_per_cm: cat.volume_per_cm,
        length_mm: catheter_cm.saturating_mul(10),
        pump_segment: cat.pump_segment,
    };
    let (_, stats) = station.with(serial, |c| {
        let steps = [
            Command::SetClock {
                utc_ms,
                offset_minutes: 0,
            },
            Command::Stop {
                reason: StopReason::Procedure,
            },
            Command::SetCatheter(record),
            Command::Resume,
            Command::Refill {
                aspirated: thecal_rx::Volume::ZERO,
                added: program.reservoir_volume,
                contents: program.contents.clone(),
                keep_dose: false,
                bridge: BridgeChoice::Automatic,
                confirm: Some(reason.clone()),
                beyond_use_utc_ms: None,
            },
            Command::Program {
                prescription: program.clone(),
                confirm_soft: Some(reason.clone()),
            },
        ];
        for cmd in steps {
            session::ok(c, Body::Pump(cmd))?;
        }
        if let Some(max) = prime {
            let ahead = session::status(c)?.ahead_of_drug;
            let spare = max
                .raw()
                .saturating_sub(program.schedule.basal_range().1.raw())
                .max(1);
            // Minutes at the spare flow, with a tenth more so the pump's own check of
            // the bolus rate (rounded up) passes.
            let minutes = u64::try_from(
                u128::from(ahead.raw())
                    .saturating_mul(11 * 1440)
                    .div_ceil(u128::from(spare).saturating_mul(10)),
            )
            .unwrap_or(u64::MAX)
            .max(1);
            if !ahead.is_zero() {
                session::ok(
                    c,
                    Body::Pump(Command::PrimingBolus {
                        duration: thecal_rx::Duration::from_minutes(minutes),
                    }),
                )?;
            }
        }
        Ok(())
    })?;
    Ok(stats)
}

/// A reply or failure in words for the console.
pub fn fail_words(f: &Fail) -> String {
    match f {
        Fail::Refused(r) => match r.as_ref() {
            thecal_link::Reply::Refused { code, text } => {
                format!("the pump refused (code {code}): {}", text.as_str())
            }
            _ => f.to_string(),
        },
        other => other.to_string(),
    }
}
