//! The virtual implant: the real pump core with simulated hardware (every stroke
//! completes; the battery gauge of `thecal-sim`), the real telemetry endpoint, a UDP
//! socket as its radio (one datagram, one frame) and a state directory as its
//! non-volatile memory. `thecal implant` runs one in its own process ([`run`]); the
//! clinic's demo and tests run them on threads ([`spawn`]), where stopping one leaves
//! its state directory exactly as a power cut between two steps would.
//!
//! The state directory (created 0700, refused if another user owns it or group or others
//! may use it; locked, so two implants cannot share it; every file is written by a new
//! file renamed into place or opened without following a symbolic link):
//!
//! | file | what |
//! |---|---|
//! | `implant.key` | the implant's static X25519 secret (32 bytes, 0600) |
//! | `registry.bin` | the enrolled devices and their handshake counters (magic, version, check value) |
//! | `profile` | the hardware profile the pump was started with |
//! | `journal.bin` | the core's journal: the image of its NOR flash ring (32 pages of 4 KiB) |
//! | `events.log`, `faults.log` | the hash-chained logs, one JSON entry a line (0600) |
//! | `lock` | held while an implant runs on the directory |
//! | `wand.request` | created by `thecal programmer wand`: the wand is over the pump |
//! | `proximity.token` | what the wand read back: the implant key and the window's key |
//!
//! The log lines of a step are on disk before the state record that counts them, so a
//! process killed between the two leaves log entries the state does not know: at the
//! next start they are set aside (`*.rolled-back.log`) as lost to a power cut, and the
//! chain goes on from the state's head. A torn last line is cut off, so it never swallows
//! the next entry.
//!
//! Pump time is wall time since the Unix epoch at start, advancing `--speed` times
//! faster than the wall clock, so the core's instants read as (virtual) dates. Windows
//! and sessions meant for people (the wand's window, a remote's invite) last their
//! length in wall time whatever the speed.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration as StdDuration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use thecal_link::frame::{Kind, MAX_FRAME};
use thecal_link::{Entropy, Host, Implant, ImplantSession, Registry, StaticKeypair};
use thecal_pump::core::{Action, Pump};
use thecal_pump::event::Event;
use thecal_pump::journal::{DEFAULT_PAGES, NorFlash};
use thecal_pump::log::{LogEntry, entry_hash};
use thecal_pump::profile::HardwareProfile;
use thecal_rx::{Duration, Instant};
use thecal_sim::models::battery::BatteryGauge;

use crate::bearer::frame_kind;
use crate::describe::describe_event;
pub use crate::describe::rfc3339;
use crate::keyfile::{check_private, hex, random32, write_private};

/// How long a proximity (wand) enrolment window stays open.
pub const WAND_WINDOW: Duration = Duration::from_minutes(5);

/// A session with no traffic for this long (wall time) is forgotten.
const SESSION_IDLE: StdDuration = StdDuration::from_secs(300);

/// How often the loop looks at the wand request and the clock, at most.
const POLL: StdDuration = StdDuration::from_millis(100);

/// How a virtual implant runs (the options of `thecal implant`).
#[derive(Debug, Clone)]
pub struct Config {
    /// The implant's state directory (keys, registry, persistence journal, logs).
    pub state: PathBuf,
    /// Pump time runs this many times faster than the wall clock (1 to 100000).
    pub speed: u32,
    /// Exit after this long (default: run until stopped).
    pub exit_after: Option<StdDuration>,
    /// The hardware: synchromed-20, synchromed-40, prometra-20, prometra-40, external.
    /// Stored in the state directory at the first start (default synchromed-20); a later
    /// start may omit it, and a different one is refused.
    pub model: Option<String>,
    /// Open a proximity enrolment window at start, as if the wand were held over the pump.
    pub wand: bool,
    /// The factory firmware and the maker's key, used the first time (afterwards the
    /// firmware is in the state directory). Without it an implant never provisioned
    /// takes no update over the link.
    pub firmware: Option<crate::firmware::FirmwareSetup>,
}

impl Config {
    /// An implant on `state` at real time, with the stored (or default) hardware.
    pub fn new(state: &Path) -> Config {
        Config {
            state: state.to_path_buf(),
            speed: 1,
            exit_after: None,
            model: None,
            wand: false,
            firmware: None,
        }
    }
}

/// Where the implant's status lines go (one setting for the whole process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    /// In words on standard error (the default).
    Words,
    /// In words on standard error and as JSON lines on standard output.
    Json,
    /// Nowhere: implants on threads of another program (the clinic's demo, tests).
    Silent,
}

static VOICE: AtomicU8 = AtomicU8::new(0);

/// Sets where status lines go, for every implant of this process.
pub fn set_voice(v: Voice) {
    VOICE.store(
        match v {
            Voice::Words => 0,
            Voice::Json => 1,
            Voice::Silent => 2,
        },
        Ordering::Relaxed,
    );
}

fn voice() -> Voice {
    match VOICE.load(Ordering::Relaxed) {
        0 => Voice::Words,
        1 => Voice::Json,
        _ => Voice::Silent,
    }
}

/// One status line: in words on standard error, and with `--json` also as a JSON line
/// on standard output: `{"event": EVENT, "text": TEXT, "utc": …, FIELDS…}`. A reader
/// that stopped reading standard output does not stop the implant.
fn say(event: &str, text: &str, fields: Value) {
    let v = voice();
    if v == Voice::Silent {
        return;
    }
    eprintln!("{text}");
    if v == Voice::Json {
        let mut v = json!({"event": event, "text": text, "utc": rfc3339(unix_ms())});
        if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), fields) {
            obj.extend(more);
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{v}");
        let _ = out.flush();
    }
}

/// A line in words on standard error, unless the implant is silent.
fn note(text: &str) {
    if voice() != Voice::Silent {
        eprintln!("{text}");
    }
}

/// The hardware profile used when none is given or stored.
const DEFAULT_PROFILE: &str = "synchromed-20";

fn profile(name: &str) -> Result<HardwareProfile, String> {
    thecal_pump::profile::HardwareProfile::by_model(name).ok_or_else(|| {
        format!(
            "--model: unknown hardware model '{name}'; known: {}",
            thecal_pump::profile::HardwareProfile::MODELS
        )
    })
}

/// Unix time, milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The pump's clock: wall time since the epoch at start, sped up.
struct Clock {
    start: StdInstant,
    start_ms: u64,
    speed: u64,
}

impl Clock {
    fn now(&self) -> Instant {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Instant::from_ms(
            self.start_ms
                .saturating_add(elapsed.saturating_mul(self.speed)),
        )
    }

    /// The wall-clock Unix time at which pump time reaches `t`.
    fn wall_ms(&self, t: Instant) -> u64 {
        let now = self.now();
        let wall_now = unix_ms();
        if t >= now {
            wall_now.saturating_add(t.ms().saturating_sub(now.ms()) / self.speed)
        } else {
            wall_now.saturating_sub(now.ms().saturating_sub(t.ms()) / self.speed)
        }
    }
}

/// The effective user id of this process (the owner of `/proc/self`).
fn euid() -> u32 {
    fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

/// Creates the state directory (0700) or checks an existing one: a real directory (not
/// a symbolic link), owned by this user, not open to group or others.
fn open_state_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("--state {shown}: cannot create it: {e}"))?;
            Ok(())
        }
        Err(e) => Err(format!("--state {shown}: {e}")),
        Ok(m) if m.file_type().is_symlink() => Err(format!(
            "--state {shown} is a symbolic link; give the real directory (a link could be \
             pointed elsewhere by someone else)"
        )),
        Ok(m) if !m.is_dir() => Err(format!("--state {shown} is not a directory")),
        Ok(m) if m.uid() != euid() => Err(format!(
            "--state {shown} belongs to user id {}, not to you ({}): refusing to keep an \
             implant's keys and records where another user controls them",
            m.uid(),
            euid()
        )),
        Ok(m) if m.mode() & 0o077 != 0 => Err(format!(
            "--state {shown} has permissions {:04o}: group or others may use it, so the \
             implant's key and records could be read or replaced. Fix with: chmod 700 {shown}",
            m.mode() & 0o777
        )),
        Ok(_) => Ok(()),
    }
}

/// Reads a file without following a symbolic link; `None` if it does not exist.
fn read_nofollow(path: &Path) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read as _;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    let mut f = match f {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read {} (a symbolic link is never followed): {e}",
                path.display()
            ));
        }
    };
    let mut b = Vec::new();
    f.read_to_end(&mut b)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(Some(b))
}

/// Whether the journal's bytes are blank: missing, empty, all 0x00 or all 0xFF.
fn blank(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0) || b.iter().all(|&x| x == 0xff)
}

/// The state directory.
struct Store {
    dir: PathBuf,
    /// Held (locked) while the implant runs.
    _lock: fs::File,
}

impl Store {
    /// Opens (or creates) the state directory and takes its lock.
    fn open(dir: &Path) -> Result<Store, String> {
        open_state_dir(dir)?;
        let path = dir.join("lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(format!(
                    "another implant is running on --state {}: two implants cannot share \
                     one state directory",
                    dir.display()
                ));
            }
            Err(e) => return Err(format!("cannot lock {}: {e}", path.display())),
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        read_nofollow(&self.path(name))
    }

    /// The hardware profile: the stored one, or `--model` (stored at the first start).
    fn profile(&self, arg: Option<&str>) -> Result<(String, HardwareProfile), String> {
        let stored = self
            .read("profile")?
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .filter(|s| !s.is_empty());
        let name = match (stored, arg) {
            (Some(s), Some(a)) if s != a => {
                return Err(format!(
                    "--model {a} conflicts with the pump's stored hardware profile {s} \
                     (in {}): a pump's hardware does not change; omit --model, or use a \
                     new state directory for a different pump",
                    self.path("profile").display()
                ));
            }
            (Some(s), _) => s,
            (None, a) => a.unwrap_or(DEFAULT_PROFILE).to_string(),
        };
        let hw = profile(&name)?;
        write_private(&self.path("profile"), format!("{name}\n").as_bytes())?;
        Ok((name, hw))
    }

    fn static_key(&self) -> Result<StaticKeypair, String> {
        let path = self.path("implant.key");
        let secret = match self.read("implant.key")? {
            Some(bytes) => {
                check_private(&path)?;
                check_owner(&path)?;
                <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| format!("{} is not a 32-byte key", path.display()))?
            }
            None => {
                let s = random32()?;
                write_private(&path, &s)?;
                s
            }
        };
        StaticKeypair::from_secret(secret).map_err(|e| format!("implant key: {e}"))
    }

    /// The registry; `Err` with the reason when the stored one fails its checks.
    fn registry(&self) -> Result<Result<Registry, String>, String> {
        Ok(match self.read("registry.bin")? {
            Some(b) => Implant::decode_registry(&b)
                .map_err(|e| format!("{}: {e}", self.path("registry.bin").display())),
            None => Ok(Registry::new()),
        })
    }

    fn save_registry(&self, implant: &Implant) -> Result<(), String> {
        let mut buf = vec![0u8; thecal_link::endpoint::REGISTRY_ENCODED_MAX];
        let bytes = implant
            .encode_registry(&mut buf)
            .map_err(|e| format!("cannot encode the registry: {e}"))?;
        write_private(&self.path("registry.bin"), bytes)
    }
}

/// Refuses a file another user owns.
fn check_owner(path: &Path) -> Result<(), String> {
    let m = fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if m.uid() != euid() {
        return Err(format!(
            "{} belongs to user id {}, not to you ({}): refusing to use it",
            path.display(),
            m.uid(),
            euid()
        ));
    }
    Ok(())
}

/// Writes the journal's image: atomic (a new temporary file, never one found in place,
/// renamed over the image, so a killed process leaves the old image or the new one and
/// no symbolic link is followed) but not flushed to the disk each time, which would bound
/// `--speed` by the disk's sync rate. The registry, which carries the anti-replay
/// counters, is always synced ([`write_private`]).
fn write_slot(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let _ = fs::remove_file(&tmp);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(fail)?;
        f.write_all(bytes).map_err(fail)?;
    }
    fs::rename(&tmp, path).map_err(fail)
}

/// One hash-chained log file (`events.log`, `faults.log`): its entries, and an append
/// handle opened 0600 without following a symbolic link.
struct LogFile {
    path: PathBuf,
    entries: Vec<LogEntry>,
    file: fs::File,
    /// Lines appended since the last sync.
    unsynced: bool,
}

impl LogFile {
    /// Opens a log: reads every entry, cuts a torn last line off (so the next entry
    /// starts on a line of its own), and opens it for appending.
    fn open(path: PathBuf) -> Result<LogFile, String> {
        let bytes = read_nofollow(&path)?.unwrap_or_default();
        let mut entries = Vec::new();
        let mut good_end = 0usize;
        let mut at = 0usize;
        let mut skipped = 0usize;
        for raw in bytes.split_inclusive(|&b| b == b'\n') {
            at += raw.len();
            let complete = raw.ends_with(b"\n");
            let line = String::from_utf8_lossy(raw);
            let t = line.trim();
            if t.is_empty() {
                if complete {
                    good_end = at;
                }
                continue;
            }
            // A line glued to a torn one (written by an older build) still yields the
            // entry at its end.
            let parsed = serde_json::from_str::<LogEntry>(t).ok().or_else(|| {
                t.rfind("{\"seq\"")
                    .and_then(|i| serde_json::from_str::<LogEntry>(&t[i..]).ok())
            });
            match (parsed, complete) {
                (Some(e), true) => {
                    entries.push(e);
                    good_end = at;
                }
                // A last line without its newline was torn by a power cut: dropped.
                (_, false) => {}
                (None, true) => {
                    skipped += 1;
                    good_end = at;
                }
            }
        }
        if skipped > 0 {
            note(&format!(
                "{}: {skipped} unreadable line(s) skipped",
                path.display()
            ));
        }
        if good_end < bytes.len() {
            note(&format!(
                "{}: a torn last line ({} bytes, cut by a power loss) was removed",
                path.display(),
                bytes.len() - good_end
            ));
            write_private(&path, &bytes[..good_end])?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Ok(LogFile {
            path,
            entries,
            file,
            unsynced: false,
        })
    }

    /// Appends an entry. An entry whose sequence number the file already holds means
    /// the file went further than the saved state (a kill between the two): the file's
    /// entries from there on are set aside as lost to a power cut, and the chain goes
    /// on from the state's head.
    fn append(&mut self, entry: &LogEntry) -> Result<(), String> {
        if self.entries.last().is_some_and(|l| l.seq >= entry.seq) {
            let pos = self.entries.partition_point(|e| e.seq < entry.seq);
            self.roll_back(pos)?;
        }
        if let Some(last) = self.entries.last() {
            let linked = last.seq.checked_add(1) == Some(entry.seq)
                && entry_hash(&last.hash, entry.seq, entry.at, &entry.event).ok()
                    == Some(entry.hash);
            if !linked {
                note(&format!(
                    "{}: entry {} does not follow entry {} (state and log were saved at \
                     different times: a power loss, not an edit)",
                    self.path.display(),
                    entry.seq,
                    last.seq
                ));
            }
        }
        let fail = |e: std::io::Error| format!("cannot append to {}: {e}", self.path.display());
        let mut line = serde_json::to_string(entry).map_err(|e| e.to_string())?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(fail)?;
        self.unsynced = true;
        self.entries.push(*entry);
        Ok(())
    }

    /// Moves the entries from `pos` on to `<name>.rolled-back.log` and rewrites the log
    /// without them.
    fn roll_back(&mut self, pos: usize) -> Result<(), String> {
        let gone = self.entries.split_off(pos);
        let aside = self.path.with_extension("rolled-back.log");
        let mut text = String::new();
        for e in &gone {
            text += &serde_json::to_string(e).map_err(|e| e.to_string())?;
            text.push('\n');
        }
        let mut old = read_nofollow(&aside)?.unwrap_or_default();
        old.extend_from_slice(text.as_bytes());
        write_private(&aside, &old)?;
        let mut kept = String::new();
        for e in &self.entries {
            kept += &serde_json::to_string(e).map_err(|e| e.to_string())?;
            kept.push('\n');
        }
        write_private(&self.path, kept.as_bytes())?;
        self.file = OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        note(&format!(
            "{}: {} entr{} written after the last saved state (lost to a power cut) set \
             aside in {}",
            self.path.display(),
            gone.len(),
            if gone.len() == 1 { "y" } else { "ies" },
            aside.display()
        ));
        Ok(())
    }

    /// Flushes appended lines to the disk (before the state that counts them is written).
    fn sync(&mut self) -> Result<(), String> {
        if std::mem::take(&mut self.unsynced) {
            self.file
                .sync_data()
                .map_err(|e| format!("cannot sync {}: {e}", self.path.display()))?;
        }
        Ok(())
    }
}

/// How often denied traffic is summarised on standard error, and how many denials a
/// period prints in full before that.
const DIAG_PERIOD: StdDuration = StdDuration::from_secs(10);
const DIAG_FULL: u32 = 5;

/// Diagnostics for refused traffic: the first few of each period in full, the rest
/// counted by cause and summarised once per period, so a flood cannot fill the disk
/// through standard error.
struct Diag {
    since: StdInstant,
    printed: u32,
    suppressed: BTreeMap<&'static str, u64>,
}

impl Diag {
    fn new() -> Self {
        Diag {
            since: StdInstant::now(),
            printed: 0,
            suppressed: BTreeMap::new(),
        }
    }

    /// Reports one refused datagram of `cause`; `detail` is printed only while the
    /// period's allowance lasts.
    fn refused(&mut self, cause: &'static str, detail: impl FnOnce() -> String) {
        self.roll();
        if self.printed < DIAG_FULL {
            self.printed += 1;
            say("refused", &detail(), json!({"cause": cause}));
        } else {
            *self.suppressed.entry(cause).or_default() += 1;
        }
    }

    /// Prints the summary of a finished period.
    fn roll(&mut self) {
        if self.since.elapsed() < DIAG_PERIOD {
            return;
        }
        self.flush();
        self.since = StdInstant::now();
        self.printed = 0;
    }

    fn flush(&mut self) {
        if self.suppressed.is_empty() {
            return;
        }
        let total: u64 = self.suppressed.values().sum();
        let parts: Vec<String> = self
            .suppressed
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        say(
            "refused-summary",
            &format!(
                "{total} more refused datagram(s) in the last {} s, not shown one by one ({})",
                self.since.elapsed().as_secs(),
                parts.join(", ")
            ),
            json!({"count": total, "by_cause": self.suppressed}),
        );
        self.suppressed.clear();
    }
}

/// The cause of a denied hello, for the summary.
fn denial_cause(d: &thecal_link::Denied) -> &'static str {
    use thecal_link::Denied;
    match d {
        Denied::Deaf(_) => "receiver not listening",
        Denied::Handshake(_) => "bad handshake",
        Denied::UnknownKey { .. } => "unknown key",
        Denied::Revoked { .. } => "revoked key",
        Denied::Replayed { .. } => "replayed hello",
        Denied::PreAuth { .. } => "failed pre-authentication",
        Denied::KeyMismatch { .. } => "wrong key",
        Denied::NoWindow => "no enrolment window",
        Denied::Enrolment(_) => "cannot enrol",
    }
}

/// One peer's session, and its last answer (a resent request is answered from it
/// without reaching the pump again).
struct Conn {
    session: ImplantSession,
    last_seen: StdInstant,
    last: Option<(Vec<u8>, Vec<u8>)>,
}

struct Virtual {
    store: Store,
    /// The journal's NOR flash, written to `journal.bin` after each step.
    mem: Box<NorFlash<DEFAULT_PAGES>>,
    clock: Clock,
    pump: Pump,
    implant: Implant,
    events: LogFile,
    faults: LogFile,
    conns: HashMap<SocketAddr, Conn>,
    next_battery: Instant,
    rng: rand::rngs::ThreadRng,
    last_tone: Option<StdInstant>,
    diag: Diag,
    /// The stored registry failed its checks: the alarm stands until a clinician
    /// enrols again with the wand and a new registry is written.
    registry_fault: bool,
    /// A `wand.request` that is not a regular file was reported (once).
    wand_warned: bool,
    /// The hardware profile (to restore the core after a firmware restart).
    hw: HardwareProfile,
    /// The firmware's updater and flash, when it takes updates.
    update: Option<(thecal_update::Updater, crate::firmware::FileStorage)>,
    /// An image was marked for trial: restart into it after the answer has gone out.
    restart_pending: bool,
}

impl Virtual {
    /// Carries out every action the core queued; returns the events it logged. Log lines
    /// go to the disk before the state record that counts them ([`LogFile::append`]).
    fn drain(&mut self) -> Result<Vec<Event>, String> {
        // One instant for the whole drain: strokes complete "now", so a fast clock cannot
        // keep the core issuing strokes faster than they are carried out.
        let now = self.clock.now();
        let mut logged = Vec::new();
        let mut stored = false;
        loop {
            let mut strokes = 0u32;
            while let Some(action) = self.pump.poll_action() {
                match action {
                    Action::Stroke => strokes += 1,
                    Action::Store(op) => {
                        self.mem
                            .apply(op)
                            .map_err(|e| format!("the journal's memory refused a write: {e}"))?;
                        stored = true;
                    }
                    Action::Log(entry) => {
                        self.events.append(&entry)?;
                        logged.push(entry.event);
                    }
                    Action::FaultLog(entry) => self.faults.append(&entry)?,
                    Action::Alarm(sound) => {
                        let quiet = self
                            .last_tone
                            .is_some_and(|t| t.elapsed() < StdDuration::from_secs(60));
                        if !quiet {
                            say(
                                "alarm-tone",
                                &format!(
                                    "alarm tone: {} ({:?} priority)",
                                    sound.kind.name(),
                                    sound.priority
                                ),
                                json!({"alarm": sound.kind.name(), "priority": sound.priority.to_string()}),
                            );
                            self.last_tone = Some(StdInstant::now());
                        }
                    }
                }
            }
            if strokes == 0 {
                break;
            }
            for _ in 0..strokes {
                self.pump.handle_stroke_done(now, true);
            }
        }
        self.events.sync()?;
        self.faults.sync()?;
        if stored {
            write_slot(&self.store.path("journal.bin"), self.mem.bytes())?;
        }
        Ok(logged)
    }

    fn persist_registry_if_dirty(&mut self) -> Result<(), String> {
        if self.implant.take_dirty() {
            self.store.save_registry(&self.implant)?;
            if self.registry_fault && self.implant.registry().iter().next().is_some() {
                self.registry_fault = false;
                let now = self.clock.now();
                self.pump.set_registry_fault(now, false);
                self.drain()?;
                say(
                    "registry-restored",
                    "registry: written anew after the wand enrolment; alarm cleared",
                    json!({}),
                );
            }
        }
        Ok(())
    }

    /// The wand's window lasts [`WAND_WINDOW`] of wall time whatever `--speed` is.
    fn wand_window(&self) -> Duration {
        Duration::from_ms(WAND_WINDOW.ms().saturating_mul(self.clock.speed))
    }

    fn open_wand_window(&mut self, request: &str) -> Result<(), String> {
        let now = self.clock.now();
        let validity = self.wand_window();
        let token = self
            .implant
            .open_proximity_window(now, random32()?, validity, &mut self.pump);
        self.drain()?;
        let full = self.implant.registry().is_full();
        let doc = json!({
            "implant_key": hex(&token.implant_key.0),
            "psk": hex(&token.psk),
            "expires": rfc3339(self.clock.wall_ms(token.expires_at)),
            "registry_full": full,
            "request": request,
        });
        write_private(
            &self.store.path("proximity.token"),
            serde_json::to_string_pretty(&doc)
                .map_err(|e| e.to_string())?
                .as_bytes(),
        )?;
        say(
            "wand-window",
            &format!(
                "wand: enrolment window open for 5 min; token in {}{}",
                self.store.path("proximity.token").display(),
                if full {
                    " (the registry is full: a revoked device must be removed first)"
                } else {
                    ""
                }
            ),
            json!({
                "token": self.store.path("proximity.token").display().to_string(),
                "registry_full": full,
            }),
        );
        Ok(())
    }

    /// The wand woke the radio (no enrolment window): the receiver listens whatever the
    /// back-off or the budget said, for the wand's hold.
    fn wake_radio(&mut self, request: &str) -> Result<(), String> {
        let now = self.clock.now();
        self.implant.proximity_wake(now, &mut self.pump);
        self.drain()?;
        let doc = json!({
            "implant_key": hex(&self.implant.public().0),
            "woken": true,
            "registry_full": self.implant.registry().is_full(),
            "request": request,
        });
        write_private(
            &self.store.path("proximity.token"),
            serde_json::to_string_pretty(&doc)
                .map_err(|e| e.to_string())?
                .as_bytes(),
        )?;
        say(
            "wand-wake",
            "wand: the radio is awake (no enrolment window)",
            json!({}),
        );
        Ok(())
    }

    /// The wand is over the pump when `wand.request` is a regular file (removed before
    /// the window opens, so it opens once). Anything else by that name (a directory, a
    /// link) is reported once and opens nothing.
    fn check_wand(&mut self) -> Result<(), String> {
        let wand = self.store.path("wand.request");
        match fs::symlink_metadata(&wand) {
            Ok(m) if m.file_type().is_file() => {
                let text = read_nofollow(&wand)?.unwrap_or_default();
                if fs::remove_file(&wand).is_ok() {
                    let text = String::from_utf8_lossy(&text);
                    let mut words = text.split_whitespace();
                    let what = words.next().unwrap_or("");
                    let nonce = words.next().unwrap_or("").to_string();
                    if what == "enrol" {
                        self.open_wand_window(&nonce)?;
                    } else {
                        self.wake_radio(&nonce)?;
                    }
                }
            }
            Ok(_) => {
                if !self.wand_warned {
                    say(
                        "wand-ignored",
                        &format!(
                            "{} is not a regular file: ignored (no enrolment window opened)",
                            wand.display()
                        ),
                        json!({"path": wand.display().to_string()}),
                    );
                    self.wand_warned = true;
                }
            }
            Err(_) => self.wand_warned = false,
        }
        Ok(())
    }

    /// Logs what the updater reported in the pump's event log (FWU-012), and says it.
    fn log_firmware_events(&mut self) -> Result<(), String> {
        let Some((u, _)) = self.update.as_mut() else {
            return Ok(());
        };
        let now = self.clock.now();
        thecal_link::log_update_events(u, &mut self.pump, now);
        for e in self.drain()? {
            let text = describe_event(&e);
            say("firmware", &text, json!({"event": text}));
        }
        Ok(())
    }

    /// The restart into an image marked for trial, as the hardware would do it: every
    /// session ends, the bootloader starts the trial image, the therapy core is
    /// restored from its own journal (its state survives), and the new image runs its
    /// self-test — the restored core without a fault — and confirms itself, or
    /// reverts and restarts into the old image.
    fn restart(&mut self) -> Result<(), String> {
        self.restart_pending = false;
        self.conns.clear();
        let Some((_, mut storage)) = self.update.take() else {
            return Ok(());
        };
        let hardware = self.store.profile(None)?.0;
        let restore = |v: &mut Virtual| -> Result<(), String> {
            // The journal's flash as the restart finds it (what was programmed before).
            let now = v.clock.now();
            v.pump = Pump::restore(v.hw, v.mem.bytes(), now);
            v.drain()?;
            Ok(())
        };
        restore(self)?;
        let mut updater = thecal_update::Updater::boot(&mut storage, hw_id(&hardware)?)
            .map_err(|e| format!("the firmware does not boot: {e:?}"))?;
        if updater.status().on_trial {
            let passed = !matches!(
                self.pump.status().mode,
                thecal_pump::command::Mode::Fault { .. }
            );
            let outcome = updater
                .confirm(&mut storage, passed)
                .map_err(|e| format!("the trial image could not confirm itself: {e}"))?;
            if outcome == thecal_update::Confirmation::Reverted {
                // The trial's own events (its start, its failed self-test) go to the log
                // before the restart into the old image.
                let now = self.clock.now();
                thecal_link::log_update_events(&mut updater, &mut self.pump, now);
                self.drain()?;
                updater = thecal_update::Updater::boot(&mut storage, hw_id(&hardware)?)
                    .map_err(|e| format!("the firmware does not boot: {e:?}"))?;
                restore(self)?;
            }
        }
        self.update = Some((updater, storage));
        self.log_firmware_events()
    }

    fn tick(&mut self) -> Result<(), String> {
        if self.restart_pending {
            self.restart()?;
        }
        let now = self.clock.now();
        if now >= self.next_battery {
            let b = self.pump.battery();
            let reading =
                BatteryGauge::new(b.capacity_uj()).reading(&mut self.rng, b.remaining_uj());
            self.pump.handle_battery(now, reading);
            self.next_battery = now.saturating_add(Duration::from_hours(24));
        }
        if self.pump.poll_timeout().is_some_and(|t| t <= now) {
            self.pump.handle_timeout(now);
        }
        self.drain()?;
        self.check_wand()?;
        self.diag.roll();
        self.conns
            .retain(|_, c| c.last_seen.elapsed() < SESSION_IDLE);
        Ok(())
    }

    /// Handles one datagram; returns the frame to send back, if any.
    fn datagram(&mut self, peer: SocketAddr, bytes: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let now = self.clock.now();
        let mut out = vec![0u8; MAX_FRAME];
        match frame_kind(bytes) {
            Some(Kind::HandshakeInit) => {
                let entropy = Entropy::new(random32()?);
                let result = self
                    .implant
                    .accept(now, bytes, entropy, &mut self.pump, &mut out);
                let logged = self.drain()?;
                match result {
                    Ok(accepted) => {
                        // Write-ahead: the new counter is on disk before the reply leaves.
                        self.persist_registry_if_dirty()?;
                        let s = &accepted.session;
                        let what = if !s.confirmed() {
                            format!(
                                "hello from {peer}: key {} ({}) waits for the clinician's \
                                 fingerprint confirmation",
                                s.key_id(),
                                s.role()
                            )
                        } else {
                            format!("connection from {peer}: key {} ({})", s.key_id(), s.role())
                        };
                        say(
                            if s.confirmed() {
                                "connection"
                            } else {
                                "hello-pending"
                            },
                            &format!("{what}{}", event_suffix(&logged)),
                            json!({
                                "peer": peer.to_string(), "key_id": s.key_id(),
                                "role": s.role().to_string(),
                                "logged": logged.iter().map(describe_event).collect::<Vec<_>>(),
                            }),
                        );
                        out.truncate(accepted.reply_len);
                        self.conns.insert(
                            peer,
                            Conn {
                                session: accepted.session,
                                last_seen: StdInstant::now(),
                                last: None,
                            },
                        );
                        Ok(Some(out))
                    }
                    Err(denied) => {
                        self.persist_registry_if_dirty()?;
                        self.diag.refused(denial_cause(&denied), || {
                            format!("denied hello from {peer}: {denied}")
                        });
                        Ok(None)
                    }
                }
            }
            Some(Kind::Transport) => {
                let Some(conn) = self.conns.get_mut(&peer) else {
                    self.diag.refused("no session", || {
                        format!("frame from {peer} ignored: no session (say hello first)")
                    });
                    return Ok(None);
                };
                conn.last_seen = StdInstant::now();
                if let Some((req, ans)) = &conn.last {
                    if req.as_slice() == bytes {
                        // A resent request: the cached answer goes out only if the
                        // receiver listens, and both frames are charged.
                        let ans = ans.clone();
                        let r = self
                            .implant
                            .resend(now, bytes.len(), ans.len(), &mut self.pump);
                        self.drain()?;
                        return Ok(match r {
                            Ok(()) => Some(ans),
                            Err(deaf) => {
                                self.diag.refused("receiver not listening", || {
                                    format!(
                                        "repeated frame from {peer} not answered: {}",
                                        thecal_link::Denied::Deaf(deaf)
                                    )
                                });
                                None
                            }
                        });
                    }
                }
                let key_id = conn.session.key_id();
                let role = conn.session.role();
                // Drawn before the command runs, so a failing random source fails here
                // instead of ever handing out a predictable key (one command draws once).
                let fresh = random32()?;
                let mut random = move || fresh;
                let mut host = Host {
                    pump: &mut self.pump,
                    log: &self.events.entries,
                    random: &mut random,
                };
                let result = match self.update.as_mut() {
                    Some((updater, storage)) => {
                        let mut port = thecal_link::UpdatePort {
                            updater,
                            storage,
                            restart: false,
                        };
                        let r = self.implant.handle_with_update(
                            &mut conn.session,
                            now,
                            bytes,
                            &mut host,
                            Some(&mut port),
                            &mut out,
                        );
                        self.restart_pending |= port.restart;
                        r
                    }
                    None => self
                        .implant
                        .handle(&mut conn.session, now, bytes, &mut host, &mut out),
                };
                let logged = self.drain()?;
                self.persist_registry_if_dirty()?;
                match result {
                    Ok(n) => {
                        out.truncate(n);
                        if let Some(conn) = self.conns.get_mut(&peer) {
                            conn.last = Some((bytes.to_vec(), out.clone()));
                        }
                        let text = if logged.is_empty() {
                            "answered".to_string()
                        } else {
                            logged
                                .iter()
                                .map(describe_event)
                                .collect::<Vec<_>>()
                                .join("; ")
                        };
                        say(
                            "command",
                            &format!("command from {peer} (key {key_id}, {role}): {text}"),
                            json!({
                                "peer": peer.to_string(), "key_id": key_id,
                                "role": role.to_string(),
                                "logged": logged.iter().map(describe_event).collect::<Vec<_>>(),
                            }),
                        );
                        // Sessions of revoked or removed devices end now.
                        let registry = self.implant.registry();
                        self.conns.retain(|_, c| {
                            !c.session.confirmed()
                                || registry
                                    .by_id(c.session.key_id())
                                    .is_some_and(|e| !e.revoked)
                        });
                        Ok(Some(out))
                    }
                    Err(e) => {
                        self.diag.refused("rejected session frame", || {
                            format!("frame from {peer} (key {key_id}) rejected: {e}")
                        });
                        Ok(None)
                    }
                }
            }
            _ => {
                self.diag.refused("not a frame", || {
                    format!("datagram from {peer} ignored: not a hello or session frame")
                });
                Ok(None)
            }
        }
    }
}

fn event_suffix(events: &[Event]) -> String {
    if events.is_empty() {
        String::new()
    } else {
        format!(
            "; {}",
            events
                .iter()
                .map(describe_event)
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

/// An implant's state directory opened (and locked) with its hardware profile, ready to
/// serve.
pub struct Opened {
    store: Store,
    name: String,
    hw: HardwareProfile,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("state", &self.store.dir)
            .field("profile", &self.name)
            .finish_non_exhaustive()
    }
}

/// Opens the state directory (creating it 0700, taking its lock) and the hardware
/// profile. `Err` is bad input: a directory another user controls, another implant
/// running on it, an unknown or conflicting model.
pub fn open(config: &Config) -> Result<Opened, String> {
    if let Some(p) = &config.model {
        profile(p)?;
    }
    let store = Store::open(&config.state)?;
    let (name, hw) = store.profile(config.model.as_deref())?;
    Ok(Opened { store, name, hw })
}

fn hw_id(name: &str) -> Result<thecal_update::HardwareId, String> {
    thecal_update::HardwareId::new(name)
        .ok_or_else(|| format!("hardware {name}: not a firmware hardware id"))
}

/// A virtual implant serving on a thread of this process.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its static public key, hex.
    pub implant_key: String,
    /// Its state directory.
    pub state: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Running {
    /// Stops it between two steps (as a power cut would: everything it acknowledged is
    /// in its state directory) and waits until its lock is released.
    ///
    /// # Errors
    /// The implant had failed while serving.
    pub fn stop(mut self) -> Result<(), String> {
        self.halt()
    }

    fn halt(&mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| "the implant's thread panicked".to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

/// Starts a virtual implant on a thread, listening on `listen` (`127.0.0.1:0` for any
/// free port; an address a stopped implant used, to restart it where its programmer
/// expects it). Returns once it listens.
///
/// # Errors
/// As [`open`], or the address cannot be bound.
pub fn spawn(config: Config, listen: &str) -> Result<Running, String> {
    let opened = open(&config)?;
    let socket = UdpSocket::bind(listen).map_err(|e| format!("{listen}: cannot bind: {e}"))?;
    let addr = socket.local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<Result<String, String>>();
    let state = config.state.clone();
    let thread = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name(format!("implant {addr}"))
            .spawn(move || {
                let ready = tx.clone();
                let r = serve(&config, opened, socket, stop, move |key| {
                    let _ = ready.send(Ok(key.to_string()));
                });
                if let Err(e) = &r {
                    let _ = tx.send(Err(e.clone()));
                }
                r
            })
            .map_err(|e| format!("cannot start the implant's thread: {e}"))?
    };
    let mut running = Running {
        addr,
        implant_key: String::new(),
        state,
        stop,
        thread: Some(thread),
    };
    match rx.recv_timeout(StdDuration::from_secs(30)) {
        Ok(Ok(key)) => {
            running.implant_key = key;
            Ok(running)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => {
            let _ = running.halt();
            Err("the implant did not start within 30 s".into())
        }
    }
}

/// Serves on `socket` until `stop` is set or `config.exit_after` has passed; `started`
/// is called with the implant's public key (hex) once it listens.
///
/// # Errors
/// The state directory could not be read or written, or the socket failed.
pub fn serve(
    config: &Config,
    opened: Opened,
    socket: UdpSocket,
    stop: Arc<AtomicBool>,
    started: impl FnOnce(&str),
) -> Result<(), String> {
    let Opened {
        store,
        name: profile_name,
        hw,
    } = opened;
    let profile_name = profile_name.as_str();
    let exit_after = config.exit_after;
    // JSON lines begin after the first line (the bound address): what happens while
    // the state is restored is said in words only.
    let v_now = voice();
    if v_now == Voice::Json {
        set_voice(Voice::Words);
    }
    let clock = Clock {
        start: StdInstant::now(),
        start_ms: unix_ms(),
        speed: u64::from(config.speed),
    };
    let keys = store.static_key()?;
    let (registry, registry_fault) = match store.registry()? {
        Ok(r) => (r, None),
        Err(why) => {
            // Kept for an investigation; therapy goes on, the radio admits only a
            // programmer enrolled with the wand.
            let aside = store.path(&format!("registry.bin.corrupt-{}", unix_ms()));
            let _ = fs::rename(store.path("registry.bin"), &aside);
            (Registry::new(), Some((why, aside)))
        }
    };
    let mut events = LogFile::open(store.path("events.log"))?;
    let faults = LogFile::open(store.path("faults.log"))?;
    let image = store.read("journal.bin")?.unwrap_or_default();
    // The memory as the pump finds it: the image, and erased flash past its end.
    let mut mem = Box::new(NorFlash::<DEFAULT_PAGES>::new());
    for (dst, src) in mem.bytes_mut().iter_mut().zip(&image) {
        *dst = *src;
    }
    let now = clock.now();
    // In service: a device was enrolled, or the log records therapy being set up (a
    // start killed before its first record was saved is not a pump in service).
    let in_service = registry.iter().next().is_some()
        || events.entries.iter().any(|e| {
            matches!(
                e.event,
                Event::CommandAccepted { .. }
                    | Event::Refill { .. }
                    | Event::ProgramChanged { .. }
                    | Event::BolusStarted { .. }
                    | Event::DeviceEnrolled { .. }
            )
        });
    let lost = blank(&image) && in_service;
    if lost {
        // The old history stays readable beside the new chain that starts now.
        let aside = store.path(&format!("events-before-state-loss-{}.log", unix_ms()));
        let _ = fs::rename(store.path("events.log"), &aside);
        note(&format!(
            "STATE LOST: the persistence journal is missing or blank, but the log and \
             registry show a pump in service; the pump enters its memory fault (no \
             delivery, alarm). The old log is kept in {}",
            aside.display()
        ));
        events = LogFile::open(store.path("events.log"))?;
    }
    let mut pump = Pump::restore(hw, mem.bytes(), now);
    if lost {
        pump.handle_state_lost(now);
    }
    let mut implant = Implant::new(keys, registry);
    implant.set_time_scale(config.speed);
    let public = hex(&implant.public().0);
    let mut v = Virtual {
        store,
        mem,
        clock,
        pump,
        implant,
        events,
        faults,
        conns: HashMap::new(),
        next_battery: now,
        rng: rand::rng(),
        last_tone: None,
        diag: Diag::new(),
        registry_fault: registry_fault.is_some(),
        wand_warned: false,
        hw,
        update: None,
        restart_pending: false,
    };
    v.update =
        crate::firmware::open_updater(&config.state, profile_name, config.firmware.as_ref())?;
    v.log_firmware_events()?;
    v.drain()?;
    if let Some((why, aside)) = &registry_fault {
        note(&format!(
            "REGISTRY FAULT: {why}; kept as {}. Delivery continues; the radio refuses \
             every device until a programmer is enrolled again with the wand \
             (thecal programmer wand --enrol)",
            aside.display()
        ));
        let now = v.clock.now();
        v.pump.set_registry_fault(now, true);
        v.drain()?;
    }
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    if v_now == Voice::Json {
        println!(
            "{}",
            json!({
                "listening": local.to_string(),
                "implant_key": public,
                "state": config.state.display().to_string(),
                "profile": profile_name,
                "speed": config.speed,
                "devices": v.implant.registry().iter().count(),
                "log_entries": v.events.entries.len(),
                "registry_fault": v.registry_fault,
                "state_lost": lost,
            })
        );
    } else if v_now == Voice::Words {
        println!("listening on {local}");
    }
    let _ = std::io::stdout().flush();
    set_voice(v_now);
    note(&format!(
        "implant {public} ({profile_name}) listening on {local}; state in {}; pump time \
         x{}; {} device(s) enrolled; {} log entries",
        config.state.display(),
        config.speed,
        v.implant.registry().iter().count(),
        v.events.entries.len()
    ));
    started(&public);
    if config.wand {
        v.open_wand_window("start")?;
    }
    let started = StdInstant::now();
    let mut buf = vec![0u8; MAX_FRAME + 1];
    loop {
        if stop.load(Ordering::SeqCst) {
            say("stopping", "stopping (signal)", json!({"why": "signal"}));
            break;
        }
        if exit_after.is_some_and(|d| started.elapsed() >= d) {
            say(
                "stopping",
                "stopping (--exit-after)",
                json!({"why": "exit-after"}),
            );
            break;
        }
        v.tick()?;
        // Wake for the next pump timer, or the poll interval, whichever is sooner.
        let now = v.clock.now();
        let wait = v
            .pump
            .poll_timeout()
            .map(|t| StdDuration::from_millis(t.ms().saturating_sub(now.ms()) / v.clock.speed))
            .unwrap_or(POLL)
            .clamp(StdDuration::from_millis(1), POLL);
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        // Up to a batch of datagrams per turn of the loop, so a flood cannot starve the
        // pump's timers and the wand.
        for _ in 0..256 {
            match socket.recv_from(&mut buf) {
                Ok((n, peer)) => {
                    if n > MAX_FRAME {
                        v.diag.refused("oversized", || {
                            format!("datagram from {peer} ignored: longer than a frame")
                        });
                        continue;
                    }
                    let frame = buf[..n].to_vec();
                    if let Some(reply) = v.datagram(peer, &frame)? {
                        if let Err(e) = socket.send_to(&reply, peer) {
                            say(
                                "send-failed",
                                &format!("cannot answer {peer}: {e}"),
                                json!({"peer": peer.to_string(), "error": e.to_string()}),
                            );
                        }
                    }
                    socket
                        .set_read_timeout(Some(StdDuration::from_micros(1)))
                        .map_err(|e| e.to_string())?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                            | std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(format!("receive failed: {e}")),
            }
        }
    }
    v.drain()?;
    v.persist_registry_if_dirty()?;
    v.diag.flush();
    Ok(())
}

/// `thecal programmer wand`: holds the wand over the pump in `state`: the radio wakes
/// (and, with `enrol`, a programmer enrolment window opens); waits up to `timeout` for
/// the implant's answer in `proximity.token` and returns it.
pub fn wand(state: &Path, timeout: StdDuration, enrol: bool) -> Result<(PathBuf, Value), String> {
    match fs::symlink_metadata(state) {
        Ok(m) if m.is_dir() => {}
        _ => {
            return Err(format!(
                "--state {}: no such directory (the implant's state directory)",
                state.display()
            ));
        }
    }
    let token = state.join("proximity.token");
    let nonce = hex(&random32()?[..8]);
    let request = state.join("wand.request");
    let what = if enrol { "enrol" } else { "wake" };
    write_private(&request, format!("{what} {nonce}\n").as_bytes())?;
    let start = StdInstant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(bytes)) = read_nofollow(&token) {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                if v.get("request").and_then(Value::as_str) == Some(nonce.as_str()) {
                    return Ok((token, v));
                }
            }
        }
        std::thread::sleep(StdDuration::from_millis(50));
    }
    let _ = fs::remove_file(&request);
    Err(format!(
        "the implant in {} did not answer the wand within {} s: is `thecal implant --state {}` running?",
        state.display(),
        timeout.as_secs(),
        state.display()
    ))
}
