//! `thecal implant`: a virtual implant in its own process. The real pump core with
//! simulated hardware (every stroke completes; the battery gauge of `thecal-sim`), the
//! real telemetry endpoint, a UDP socket as its radio (one datagram, one frame) and a
//! state directory as its non-volatile memory.
//!
//! The state directory:
//!
//! | file | what |
//! |---|---|
//! | `implant.key` | the implant's static X25519 secret (32 bytes, 0600) |
//! | `registry.bin` | the enrolled devices and their handshake counters (postcard) |
//! | `slot-a.bin`, `slot-b.bin` | the core's two persistence slots |
//! | `events.log`, `faults.log` | the hash-chained logs, one JSON entry a line |
//! | `wand.request` | created by `thecal programmer wand`: the wand is over the pump |
//! | `proximity.token` | what the wand read back: the implant key and the window's key |
//!
//! Pump time is wall time since the Unix epoch at start, advancing `--speed` times
//! faster than the wall clock, so the core's instants read as (virtual) dates.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{BufRead as _, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration as StdDuration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::json;
use thecal_link::frame::{Kind, MAX_FRAME};
use thecal_link::{Entropy, Host, Implant, ImplantSession, Registry, StaticKeypair};
use thecal_pump::core::{Action, Pump};
use thecal_pump::event::Event;
use thecal_pump::log::LogEntry;
use thecal_pump::persist::Slot;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::{Duration, Instant};
use thecal_sim::models::battery::BatteryGauge;

use crate::bearer::frame_kind;
use crate::keyfile::{check_private, hex, random32, write_private};
use crate::programmer::describe_event;

/// How long a proximity (wand) enrolment window stays open.
pub const WAND_WINDOW: Duration = Duration::from_minutes(5);

/// A session with no traffic for this long (wall time) is forgotten.
const SESSION_IDLE: StdDuration = StdDuration::from_secs(300);

/// How often the loop looks at the wand request and the clock, at most.
const POLL: StdDuration = StdDuration::from_millis(100);

/// Arguments of `thecal implant`.
#[derive(Debug, Args)]
pub struct ImplantArgs {
    /// The implant's state directory (keys, registry, persistence slots, logs).
    #[arg(long)]
    state: PathBuf,
    /// The UDP address to listen on (port 0: any free port; the bound address is printed
    /// on the first line of standard output).
    #[arg(long, default_value = "127.0.0.1:7011")]
    listen: String,
    /// Pump time runs this many times faster than the wall clock (1 to 100000).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    speed: u32,
    /// Exit after this long, e.g. "2 min" (default: run until killed).
    #[arg(long, allow_hyphen_values = true)]
    exit_after: Option<thecal_rx::Duration>,
    /// The hardware: synchromed-20, synchromed-40, prometra-20, prometra-40, external.
    #[arg(long, default_value = "synchromed-20")]
    model: String,
    /// Open a proximity enrolment window at start, as if the wand were held over the pump.
    #[arg(long)]
    wand: bool,
}

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

/// Unix milliseconds as RFC 3339 (UTC).
pub fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{ms} ms"))
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

/// The state directory.
struct Store {
    dir: PathBuf,
}

impl Store {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        match fs::read(self.path(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", self.path(name).display())),
        }
    }

    fn static_key(&self) -> Result<StaticKeypair, String> {
        let path = self.path("implant.key");
        let secret = match self.read("implant.key")? {
            Some(bytes) => {
                check_private(&path)?;
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

    fn registry(&self) -> Result<Registry, String> {
        match self.read("registry.bin")? {
            Some(b) => Implant::decode_registry(&b)
                .map_err(|e| format!("{}: {e}", self.path("registry.bin").display())),
            None => Ok(Registry::new()),
        }
    }

    fn save_registry(&self, implant: &Implant) -> Result<(), String> {
        let mut buf = vec![0u8; thecal_link::endpoint::REGISTRY_ENCODED_MAX];
        let bytes = implant
            .encode_registry(&mut buf)
            .map_err(|e| format!("cannot encode the registry: {e}"))?;
        write_private(&self.path("registry.bin"), bytes)
    }

    fn slot_name(slot: Slot) -> &'static str {
        match slot {
            Slot::A => "slot-a.bin",
            Slot::B => "slot-b.bin",
        }
    }

    fn load_log(&self, name: &str) -> Result<Vec<LogEntry>, String> {
        let path = self.path(name);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let mut out = Vec::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<LogEntry>(&line) {
                Ok(e) => out.push(e),
                // A torn last line (power cut while appending) is dropped.
                Err(_) => eprintln!("{}: line {} is unreadable; skipped", path.display(), i + 1),
            }
        }
        Ok(out)
    }

    fn append_log(&self, name: &str, entry: &LogEntry) -> Result<(), String> {
        let path = self.path(name);
        let fail = |e: std::io::Error| format!("cannot append to {}: {e}", path.display());
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(fail)?;
        let mut line = serde_json::to_string(entry).map_err(|e| e.to_string())?;
        line.push('\n');
        f.write_all(line.as_bytes()).map_err(fail)?;
        f.sync_data().map_err(fail)
    }
}

/// Writes a persistence slot: atomic (temporary file and rename, so a killed process
/// leaves the old record or the new one) but not flushed to the disk each time, which
/// would bound `--speed` by the disk's sync rate. The registry, which carries the
/// anti-replay counters, is always synced ([`write_private`]).
fn write_slot(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(fail)?;
        f.write_all(bytes).map_err(fail)?;
    }
    fs::rename(&tmp, path).map_err(fail)
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
    clock: Clock,
    pump: Pump,
    implant: Implant,
    events: Vec<LogEntry>,
    conns: HashMap<SocketAddr, Conn>,
    next_battery: Instant,
    rng: rand::rngs::ThreadRng,
    last_tone: Option<StdInstant>,
}

impl Virtual {
    /// Carries out every action the core queued; returns the events it logged.
    fn drain(&mut self) -> Result<Vec<Event>, String> {
        // One instant for the whole drain: strokes complete "now", so a fast clock cannot
        // keep the core issuing strokes faster than they are carried out.
        let now = self.clock.now();
        let mut logged = Vec::new();
        loop {
            let mut strokes = 0u32;
            while let Some(action) = self.pump.poll_action() {
                match action {
                    Action::Stroke => strokes += 1,
                    Action::Persist { slot, bytes } => {
                        write_slot(&self.store.path(Store::slot_name(slot)), bytes)?;
                    }
                    Action::Log(entry) => {
                        self.store.append_log("events.log", &entry)?;
                        logged.push(entry.event);
                        self.events.push(entry);
                    }
                    Action::FaultLog(entry) => self.store.append_log("faults.log", &entry)?,
                    Action::Alarm(sound) => {
                        let quiet = self
                            .last_tone
                            .is_some_and(|t| t.elapsed() < StdDuration::from_secs(60));
                        if !quiet {
                            eprintln!(
                                "alarm tone: {} ({:?} priority)",
                                sound.kind.name(),
                                sound.priority
                            );
                            self.last_tone = Some(StdInstant::now());
                        }
                    }
                }
            }
            if strokes == 0 {
                return Ok(logged);
            }
            for _ in 0..strokes {
                self.pump.handle_stroke_done(now, true);
            }
        }
    }

    fn persist_registry_if_dirty(&mut self) -> Result<(), String> {
        if self.implant.take_dirty() {
            self.store.save_registry(&self.implant)?;
        }
        Ok(())
    }

    fn open_wand_window(&mut self) -> Result<(), String> {
        let now = self.clock.now();
        let token =
            self.implant
                .open_proximity_window(now, random32()?, WAND_WINDOW, &mut self.pump);
        self.drain()?;
        let doc = json!({
            "implant_key": hex(&token.implant_key.0),
            "psk": hex(&token.psk),
            "expires": rfc3339(self.clock.wall_ms(token.expires_at)),
        });
        write_private(
            &self.store.path("proximity.token"),
            serde_json::to_string_pretty(&doc)
                .map_err(|e| e.to_string())?
                .as_bytes(),
        )?;
        eprintln!(
            "wand: enrolment window open for 5 min (pump time); token in {}",
            self.store.path("proximity.token").display()
        );
        Ok(())
    }

    fn tick(&mut self) -> Result<(), String> {
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
        let wand = self.store.path("wand.request");
        if wand.exists() {
            self.open_wand_window()?;
            let _ = fs::remove_file(&wand);
        }
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
                        let what = if s.key_id() != 0 && !s.confirmed() {
                            format!(
                                "enrolment hello from {peer}: key {} ({}) waits for the \
                                 clinician's fingerprint confirmation",
                                s.key_id(),
                                s.role()
                            )
                        } else {
                            format!("connection from {peer}: key {} ({})", s.key_id(), s.role())
                        };
                        eprintln!("{what}{}", event_suffix(&logged));
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
                        eprintln!("denied hello from {peer}: {denied}");
                        Ok(None)
                    }
                }
            }
            Some(Kind::Transport) => {
                let Some(conn) = self.conns.get_mut(&peer) else {
                    eprintln!("frame from {peer} ignored: no session (say hello first)");
                    return Ok(None);
                };
                conn.last_seen = StdInstant::now();
                if let Some((req, ans)) = &conn.last {
                    if req.as_slice() == bytes {
                        return Ok(Some(ans.clone()));
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
                    log: &self.events,
                    random: &mut random,
                };
                let result =
                    self.implant
                        .handle(&mut conn.session, now, bytes, &mut host, &mut out);
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
                        eprintln!("command from {peer} (key {key_id}, {role}): {text}");
                        // Sessions of revoked devices end now.
                        let registry = self.implant.registry();
                        self.conns.retain(|_, c| {
                            registry
                                .by_id(c.session.key_id())
                                .is_none_or(|e| !e.revoked)
                        });
                        Ok(Some(out))
                    }
                    Err(e) => {
                        eprintln!("frame from {peer} (key {key_id}) rejected: {e}");
                        Ok(None)
                    }
                }
            }
            _ => {
                eprintln!("datagram from {peer} ignored: not a hello or session frame");
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

/// Runs `thecal implant`; `Err` is a one-line message for exit status 2.
pub fn run(args: ImplantArgs) -> Result<ExitCode, String> {
    let hw = profile(&args.model)?;
    let exit_after = match args.exit_after {
        Some(d) if d.ms() > 0 => Some(StdDuration::from_millis(d.ms())),
        Some(d) => {
            return Err(format!("--exit-after {d}: expected a duration above zero"));
        }
        None => None,
    };
    fs::create_dir_all(&args.state)
        .map_err(|e| format!("--state {}: {e}", args.state.display()))?;
    let socket = UdpSocket::bind(&args.listen)
        .map_err(|e| format!("--listen {}: cannot bind: {e}", args.listen))?;
    match serve(args, hw, exit_after, socket) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn serve(
    args: ImplantArgs,
    hw: HardwareProfile,
    exit_after: Option<StdDuration>,
    socket: UdpSocket,
) -> Result<(), String> {
    let store = Store {
        dir: args.state.clone(),
    };
    let clock = Clock {
        start: StdInstant::now(),
        start_ms: unix_ms(),
        speed: u64::from(args.speed),
    };
    let keys = store.static_key()?;
    let registry = store.registry()?;
    let events = store.load_log("events.log")?;
    let a = store.read("slot-a.bin")?.unwrap_or_default();
    let b = store.read("slot-b.bin")?.unwrap_or_default();
    let now = clock.now();
    let pump = Pump::restore(hw, &a, &b, now);
    let implant = Implant::new(keys, registry);
    let public = hex(&implant.public().0);
    let mut v = Virtual {
        store,
        clock,
        pump,
        implant,
        events,
        conns: HashMap::new(),
        next_battery: now,
        rng: rand::rng(),
        last_tone: None,
    };
    v.drain()?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    }
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {local}");
    let _ = std::io::stdout().flush();
    eprintln!(
        "implant {public} listening on {local}; state in {}; pump time x{}; {} device(s) \
         enrolled; {} log entries",
        args.state.display(),
        args.speed,
        v.implant.registry().iter().count(),
        v.events.len()
    );
    if args.wand {
        v.open_wand_window()?;
    }
    let started = StdInstant::now();
    let mut buf = vec![0u8; MAX_FRAME + 1];
    loop {
        if stop.load(Ordering::SeqCst) {
            eprintln!("stopping (signal)");
            break;
        }
        if exit_after.is_some_and(|d| started.elapsed() >= d) {
            eprintln!("stopping (--exit-after)");
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
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                if n > MAX_FRAME {
                    eprintln!("datagram from {peer} ignored: longer than a frame");
                    continue;
                }
                let frame = buf[..n].to_vec();
                if let Some(reply) = v.datagram(peer, &frame)? {
                    if let Err(e) = socket.send_to(&reply, peer) {
                        eprintln!("cannot answer {peer}: {e}");
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => return Err(format!("receive failed: {e}")),
        }
    }
    v.drain()?;
    v.persist_registry_if_dirty()?;
    Ok(())
}

/// `thecal programmer wand`: asks the implant in `state` to open a proximity window and
/// waits (up to `timeout`) for the token it writes.
pub fn wand(state: &Path, timeout: StdDuration) -> Result<PathBuf, String> {
    if !state.is_dir() {
        return Err(format!(
            "--state {}: no such directory (the implant's state directory)",
            state.display()
        ));
    }
    let token = state.join("proximity.token");
    let before = fs::metadata(&token).and_then(|m| m.modified()).ok();
    let request = state.join("wand.request");
    fs::write(&request, b"wand\n")
        .map_err(|e| format!("cannot write {}: {e}", request.display()))?;
    let start = StdInstant::now();
    while start.elapsed() < timeout {
        let now = fs::metadata(&token).and_then(|m| m.modified()).ok();
        if !request.exists() && now.is_some() && now != before {
            return Ok(token);
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
