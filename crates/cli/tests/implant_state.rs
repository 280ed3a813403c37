//! The virtual implant's state on disk and its radio under attack, as separate processes
//! (LINK-012, LINK-015 to LINK-025): a corrupt registry, lost slots, the stored
//! hardware profile, the state directory's permissions, links and lock, kill -9 at
//! random against the log chain, a torn log line, bounded diagnostics under a flood, the
//! wand under 2,000 forged hellos a second, and the clients' words.

mod common;

use common::{BIN, text};
use std::io::{BufRead as _, BufReader};
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;
use thecal_link::frame::{Kind, MAX_FRAME};
use thecal_pump::log::{LogEntry, verify};

struct Implant {
    child: Child,
    stderr: PathBuf,
    addr: String,
    first: String,
}

impl Drop for Implant {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Implant {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Stops it the way a user does (SIGTERM), so it saves and exits.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the implant did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.log()
    }
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("thecal-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn spawn(state: &Path, work: &Path, extra: &[&str]) -> Child {
    let stderr = work.join("implant.stderr");
    Command::new(BIN)
        .args(["implant", "--state"])
        .arg(state)
        .args(["--listen", "127.0.0.1:0", "--exit-after", "120 s"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start the implant")
}

fn start(state: &Path, work: &Path, extra: &[&str]) -> Implant {
    let mut child = spawn(state, work, extra);
    let stdout = child.stdout.take().unwrap();
    let stderr = work.join("implant.stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let mut implant = Implant {
        child,
        stderr,
        addr: String::new(),
        first: String::new(),
    };
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("the implant did not start: {}", implant.log()));
    let addr = if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
        v["listening"].as_str().unwrap_or_default().to_string()
    } else {
        line.trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        addr.starts_with("127.0.0.1:"),
        "first line: {line:?}\n{}",
        implant.log()
    );
    implant.addr = addr;
    implant.first = line;
    implant
}

fn thecal(args: &[&str]) -> Output {
    common::run(args, None, Duration::from_secs(30))
}

fn ok(args: &[&str], implant: &Implant) -> Output {
    let o = thecal(args);
    assert!(
        o.status.success(),
        "thecal {args:?} failed:\n{}\nimplant:\n{}",
        text(&o),
        implant.log()
    );
    o
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A programmer enrolled with the wand: keygen, `wand --enrol`, enroll.
fn enrol_programmer(state: &Path, key: &str, implant: &Implant) {
    if !Path::new(key).exists() {
        ok(&["programmer", "keygen", "--key", key], implant);
    }
    ok(
        &["programmer", "wand", "--state", &s(state), "--enrol"],
        implant,
    );
    let token = s(&state.join("proximity.token"));
    ok(
        &[
            "programmer",
            "--key",
            key,
            "--implant",
            &implant.addr,
            "enroll",
            "--token",
            &token,
        ],
        implant,
    );
}

fn interrogate(key: &str, implant: &Implant) -> Value {
    let o = ok(
        &[
            "programmer",
            "--key",
            key,
            "--implant",
            &implant.addr,
            "--json",
            "interrogate",
        ],
        implant,
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn read_log(path: &Path) -> Vec<LogEntry> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// A forged hello: a well-formed frame of the hello's kind and size, random inside.
fn forged_hello(rng: &mut u64, key_id: u32) -> Vec<u8> {
    let mut payload = vec![0u8; 124];
    for b in payload.iter_mut() {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *b = *rng as u8;
    }
    payload[..4].copy_from_slice(&key_id.to_le_bytes());
    let mut out = vec![0u8; MAX_FRAME];
    let n = thecal_link::frame::encode(Kind::HandshakeInit, &payload, &mut out).unwrap();
    out.truncate(n);
    out
}

// ----- the registry, the slots, the profile ----------------------------------------------

#[test]
fn a_corrupt_registry_keeps_therapy_and_admits_only_the_wand_link_015() {
    let work = tmpdir("registry");
    let state = work.join("pump");
    let key = s(&work.join("p.key"));
    let implant = start(&state, &work, &[]);
    enrol_programmer(&state, &key, &implant);
    ok(
        &[
            "programmer",
            "--key",
            &key,
            "--implant",
            &implant.addr,
            "refill",
            "--aspirated",
            "0 mL",
            "--added",
            "20 mL",
            "--contents",
            "baclofen 2000 mcg/mL",
            "--confirm-soft",
            "first fill",
            "--yes",
        ],
        &implant,
    );
    let rx = work.join("rx.toml");
    std::fs::write(
        &rx,
        "reservoir_volume = \"20 mL\"\n[pump]\nmodel = \"synchromed-20\"\n[[drug]]\nname = \"baclofen\"\nconcentration = \"2000 mcg/mL\"\n[basal]\nrate = \"0.2 mL/day\"\n",
    )
    .unwrap();
    ok(
        &[
            "programmer",
            "--key",
            &key,
            "--implant",
            &implant.addr,
            "program",
            "--prescription",
            &s(&rx),
            "--confirm-soft",
            "continues the dose of the screening trial",
            "--yes",
        ],
        &implant,
    );
    ok(
        &[
            "programmer",
            "--key",
            &key,
            "--implant",
            &implant.addr,
            "resume",
            "--yes",
        ],
        &implant,
    );
    implant.stop();

    // One flipped bit in the stored registry.
    let reg = state.join("registry.bin");
    let mut bytes = std::fs::read(&reg).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x04;
    std::fs::write(&reg, &bytes).unwrap();

    let implant = start(&state, &work, &[]);
    let log = implant.log();
    assert!(
        log.contains("REGISTRY FAULT"),
        "a corrupt registry must be reported, not loaded or fatal:\n{log}"
    );
    // The programmer that was enrolled is no longer admitted ...
    let o = thecal(&[
        "programmer",
        "--key",
        &key,
        "--implant",
        &implant.addr,
        "--json",
        "interrogate",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // ... until it is enrolled again with the wand; therapy ran on, with the alarm.
    enrol_programmer(&state, &key, &implant);
    let i = interrogate(&key, &implant);
    assert_eq!(i["status"]["running"], true, "{i}");
    // The alarm was raised at the start, and cleared by the new enrolment.
    let o = ok(
        &[
            "programmer",
            "--key",
            &key,
            "--implant",
            &implant.addr,
            "logs",
        ],
        &implant,
    );
    let log = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(log.contains("alarm raised: device registry fault"), "{log}");
    assert!(
        log.contains("alarm cleared: device registry fault"),
        "{log}"
    );
    assert!(log.contains("chain verified"), "{log}");
    assert!(
        std::fs::read_dir(&state).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("registry.bin.corrupt-")),
        "the corrupt registry is kept for an investigation"
    );
    drop(implant);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn a_lost_journal_of_a_pump_in_service_faults_with_an_alarm_link_016() {
    let work = tmpdir("slots");
    let state = work.join("pump");
    let key = s(&work.join("p.key"));
    let implant = start(&state, &work, &[]);
    enrol_programmer(&state, &key, &implant);
    implant.stop();
    let blanks: [(&str, Option<Vec<u8>>); 4] = [
        ("missing", None),
        ("empty", Some(Vec::new())),
        ("all zero", Some(vec![0u8; 512])),
        ("all 0xFF", Some(vec![0xffu8; 512])),
    ];
    for (what, bytes) in blanks {
        let p = state.join("journal.bin");
        let _ = std::fs::remove_file(&p);
        if let Some(b) = &bytes {
            std::fs::write(&p, b).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let implant = start(&state, &work, &["--json"]);
        let first: Value = serde_json::from_str(implant.first.trim()).unwrap();
        assert_eq!(
            first["state_lost"],
            true,
            "journal {what}: a pump in service must not come up factory-fresh: {first}\n{}",
            implant.log()
        );
        let i = interrogate(&key, &implant);
        assert!(
            i["status"]["mode"].as_str().unwrap().starts_with("fault"),
            "journal {what}: {i}"
        );
        assert!(
            i["status"]["alarms"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["kind"] == "memory fault"),
            "journal {what}: {i}"
        );
        implant.stop();
    }
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn the_profile_is_stored_and_a_conflicting_one_is_refused_link_017() {
    let work = tmpdir("profile");
    let state = work.join("pump");
    let implant = start(&state, &work, &["--model", "synchromed-40", "--json"]);
    implant.stop();
    let again = start(&state, &work, &["--json"]);
    let first: Value = serde_json::from_str(again.first.trim()).unwrap();
    assert_eq!(first["profile"], "synchromed-40", "{first}");
    let log = again.stop();
    assert!(!log.contains("memory fault"), "{log}");
    let o = thecal(&[
        "implant",
        "--state",
        &s(&state),
        "--listen",
        "127.0.0.1:0",
        "--exit-after",
        "5 s",
        "--model",
        "prometra-20",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("prometra-20") && e.contains("synchromed-40"),
        "the refusal names both profiles: {e}"
    );
    let _ = std::fs::remove_dir_all(&work);
}

// ----- the state directory ----------------------------------------------------------------

#[test]
fn the_state_directory_is_private_locked_and_follows_no_link_link_018() {
    let work = tmpdir("dir");
    let state = work.join("pump");
    let implant = start(&state, &work, &[]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700, "the state directory");
    assert_eq!(mode(&state.join("events.log")), 0o600, "events.log");
    // A second implant on the same directory is refused.
    let o = thecal(&[
        "implant",
        "--state",
        &s(&state),
        "--listen",
        "127.0.0.1:0",
        "--exit-after",
        "5 s",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("another implant is running"),
        "{}",
        text(&o)
    );
    implant.stop();

    // A directory others may use, and a link to a directory, are refused.
    let open = work.join("open");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = thecal(&[
        "implant",
        "--state",
        &s(&open),
        "--listen",
        "127.0.0.1:0",
        "--exit-after",
        "5 s",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("chmod 700"),
        "{}",
        text(&o)
    );
    let link = work.join("link");
    std::os::unix::fs::symlink(&state, &link).unwrap();
    let o = thecal(&[
        "implant",
        "--state",
        &s(&link),
        "--listen",
        "127.0.0.1:0",
        "--exit-after",
        "5 s",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("symbolic link"),
        "{}",
        text(&o)
    );

    // Links planted in the directory are never written through.
    let victim = work.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    for name in ["journal.tmp", ".registry.bin.tmp", ".proximity.token.tmp"] {
        let _ = std::fs::remove_file(state.join(name));
        std::os::unix::fs::symlink(&victim, state.join(name)).unwrap();
    }
    std::fs::remove_file(state.join("events.log")).unwrap();
    std::os::unix::fs::symlink(&victim, state.join("events.log")).unwrap();
    let o = thecal(&[
        "implant",
        "--state",
        &s(&state),
        "--listen",
        "127.0.0.1:0",
        "--exit-after",
        "1 s",
        "--wand",
    ]);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "{}", text(&o));
    assert!(
        !o.status.success(),
        "a linked events.log must be refused: {}",
        text(&o)
    );
    std::fs::remove_file(state.join("events.log")).unwrap();
    let o = thecal(&[
        "implant",
        "--state",
        &s(&state),
        "--listen",
        "127.0.0.1:0",
        "--exit-after",
        "1 s",
        "--wand",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");

    // The README suggests no predictable path under /tmp.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    assert!(
        !readme.contains("--state /tmp"),
        "README suggests a /tmp state directory"
    );
    let _ = std::fs::remove_dir_all(&work);
}

// ----- the log and the state commit together -----------------------------------------------

/// Sends `n` forged hellos (each denial may be logged) to `addr`.
fn poke(addr: &str, n: usize, rng: &mut u64) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..n {
        let h = forged_hello(rng, 0x0bad_0000 | (*rng as u32 & 0xffff));
        let _ = sock.send_to(&h, addr);
    }
}

#[test]
fn kill_at_random_never_breaks_the_log_chain_link_019() {
    let work = tmpdir("kill");
    let state = work.join("pump");
    let key = s(&work.join("p.key"));
    let implant = start(&state, &work, &["--speed", "1000"]);
    enrol_programmer(&state, &key, &implant);
    implant.stop();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut kills = 0;
    let started = Instant::now();
    while kills < 120 {
        let mut child = spawn(&state, &work, &["--speed", "1000"]);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Kill it anywhere from before it listens to well into its work: the start-up
        // writes (power-on, alarms) and a burst of denied hellos each log and persist.
        let wait = Duration::from_micros(rng % 60_000);
        let t = Instant::now();
        let addr = {
            // The port is on the first line; read it if it comes in time.
            let stdout = child.stdout.take().unwrap();
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            });
            rx.recv_timeout(wait).ok()
        };
        if let Some(line) = addr {
            let a = line
                .trim()
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_string();
            poke(&a, 20, &mut rng);
        }
        std::thread::sleep(wait.saturating_sub(t.elapsed()));
        let _ = child.kill();
        let _ = child.wait();
        kills += 1;
    }
    // After all the kills: the log on disk is one unbroken chain, and the pump's head
    // (downloaded by the programmer) verifies against it.
    let implant = start(&state, &work, &[]);
    let entries = read_log(&state.join("events.log"));
    assert!(
        verify(entries.iter(), None).is_ok(),
        "the log on disk is broken after {kills} kills:\n{}",
        implant.log()
    );
    let o = ok(
        &[
            "programmer",
            "--key",
            &key,
            "--implant",
            &implant.addr,
            "--json",
            "logs",
        ],
        &implant,
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verified"], true, "after {kills} kills: {}", v["verdict"]);
    let aside = std::fs::read_to_string(state.join("events.rolled-back.log"))
        .map(|t| t.lines().count())
        .unwrap_or(0);
    eprintln!(
        "{kills} SIGKILLs in {:?}; {} log entries verified; {aside} entries set aside as \
         written after the last saved state",
        started.elapsed(),
        entries.len()
    );
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn a_torn_last_line_loses_nothing_after_it_link_019() {
    let work = tmpdir("torn");
    let state = work.join("pump");
    let key = s(&work.join("p.key"));
    let implant = start(&state, &work, &[]);
    enrol_programmer(&state, &key, &implant);
    implant.stop();
    // A power cut in the middle of a line: half an entry, no newline.
    let log = state.join("events.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"{\"seq\":99,\"at\":12");
    std::fs::write(&log, &bytes).unwrap();
    let before = read_log_lenient(&log);
    let implant = start(&state, &work, &[]);
    interrogate(&key, &implant);
    implant.stop();
    let entries = read_log(&log);
    assert!(
        entries.len() > before + 1,
        "entries after the torn line were lost: {} before, {} after",
        before,
        entries.len()
    );
    assert!(verify(entries.iter(), None).is_ok());
    let implant = start(&state, &work, &[]);
    let o = ok(
        &[
            "programmer",
            "--key",
            &key,
            "--implant",
            &implant.addr,
            "--json",
            "logs",
        ],
        &implant,
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verified"], true, "{}", v["verdict"]);
    let _ = std::fs::remove_dir_all(&work);
}

fn read_log_lenient(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| serde_json::from_str::<LogEntry>(l).is_ok())
        .count()
}

// ----- the radio under a flood ---------------------------------------------------------------

#[test]
fn refused_traffic_is_summarised_on_stderr_link_020() {
    let work = tmpdir("diag");
    let state = work.join("pump");
    let implant = start(&state, &work, &[]);
    let before = implant.log().len();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = 0x1234_5678_9abc_def0u64;
    let n = 20_000;
    for i in 0..n {
        let frame = if i % 2 == 0 {
            forged_hello(&mut rng, 0x00c0_ffee)
        } else {
            vec![0x42u8; 40]
        };
        let _ = sock.send_to(&frame, &implant.addr);
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let log = implant.stop();
    let bytes = log.len() - before;
    eprintln!("stderr: {bytes} bytes for {n} refused datagrams");
    assert!(
        bytes < 4_000,
        "{bytes} bytes of diagnostics for {n} refused datagrams:\n{}",
        &log[..log.len().min(2_000)]
    );
    assert!(log.contains("more refused datagram(s)"), "{log}");
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn the_wand_works_under_a_flood_of_2000_hellos_a_second_link_012() {
    let work = tmpdir("flood");
    let state = work.join("pump");
    let key = s(&work.join("p.key"));
    let implant = start(&state, &work, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (stop, sent, addr) = (Arc::clone(&stop), Arc::clone(&sent), implant.addr.clone());
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut rng = 0x0f0f_1234_5555_aaaau64;
            let t0 = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                // Two per millisecond, on schedule: 2,000 a second.
                let due = t0.elapsed().as_micros() as u64 / 500;
                while sent.load(Ordering::SeqCst) < due {
                    let key_id = if rng % 2 == 0 { 0 } else { rng as u32 | 1 };
                    let h = forged_hello(&mut rng, key_id);
                    let _ = sock.send_to(&h, &addr);
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let flood_start = sent.load(Ordering::SeqCst);
    let t = Instant::now();
    // Under the flood: the clinician holds the wand, enrols, and interrogates.
    enrol_programmer(&state, &key, &implant);
    let i = interrogate(&key, &implant);
    assert!(i["status"].is_object(), "{i}");
    // Two more seconds of flood, and the clinician's session still works.
    std::thread::sleep(Duration::from_secs(2));
    let i = interrogate(&key, &implant);
    assert!(i["status"].is_object(), "{i}");
    let during = sent.load(Ordering::SeqCst) - flood_start;
    let rate = during as f64 / t.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    flooder.join().unwrap();
    eprintln!(
        "wand enrolment and interrogation under {during} forged hellos in {:?} ({rate:.0}/s); {} sent in all",
        t.elapsed(),
        sent.load(Ordering::SeqCst)
    );
    assert!(
        rate >= 1_800.0,
        "the flood ran at only {rate:.0} hellos a second"
    );
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn a_directory_named_wand_request_opens_no_window_link_021() {
    let work = tmpdir("wanddir");
    let state = work.join("pump");
    let implant = start(&state, &work, &[]);
    std::fs::create_dir(state.join("wand.request")).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let log = implant.stop();
    assert!(!state.join("proximity.token").exists(), "{log}");
    assert_eq!(
        log.matches("wand:").count(),
        0,
        "a directory must open no window:\n{log}"
    );
    assert_eq!(log.matches("not a regular file").count(), 1, "{log}");
    let _ = std::fs::remove_dir_all(&work);
}

// ----- the clients ---------------------------------------------------------------------------

#[test]
fn the_clients_say_what_happened_in_words_link_022() {
    let work = tmpdir("words");
    let state = work.join("pump");
    let key = s(&work.join("p.key"));
    // Nothing listening: said as such.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let nobody = silent.local_addr().unwrap().to_string();
    drop(silent);
    ok_plain(&["programmer", "keygen", "--key", &key]);
    let mut k: Value = serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    k["pairing"] = serde_json::json!({"implant_key": "09".repeat(32), "preauth": "00".repeat(32), "key_id": 7});
    std::fs::write(&key, k.to_string()).unwrap();
    let o = thecal(&[
        "programmer",
        "--key",
        &key,
        "--implant",
        &nobody,
        "interrogate",
    ]);
    assert!(text(&o).contains("nothing is listening"), "{}", text(&o));
    std::fs::remove_file(&key).unwrap();

    // `--speed` does not shrink the wand's window; `wand` alone opens none.
    let implant = start(&state, &work, &["--speed", "1000", "--json"]);
    let o = ok(&["programmer", "wand", "--state", &s(&state)], &implant);
    assert!(text(&o).contains("no enrolment window"), "{}", text(&o));
    ok_plain(&["programmer", "keygen", "--key", &key]);
    let token = s(&state.join("proximity.token"));
    let o = thecal(&[
        "programmer",
        "--key",
        &key,
        "--implant",
        &implant.addr,
        "enroll",
        "--token",
        &token,
    ]);
    assert!(text(&o).contains("--enrol"), "{}", text(&o));
    ok(
        &["programmer", "wand", "--state", &s(&state), "--enrol"],
        &implant,
    );
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&token).unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(t["expires"].as_str().unwrap()).unwrap();
    let left = expires.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    assert!(
        left > 240_000,
        "the wand's window at --speed 1000 lasts {left} ms of wall time"
    );
    std::thread::sleep(Duration::from_millis(1500));
    ok(
        &[
            "programmer",
            "--key",
            &key,
            "--implant",
            &implant.addr,
            "enroll",
            "--token",
            &token,
        ],
        &implant,
    );

    // The remote enrols at the address in its invite (no --implant).
    let rkey = s(&work.join("r.key"));
    let invite = s(&work.join("invite.json"));
    ok_plain(&["remote", "keygen", "--key", &rkey]);
    ok(
        &[
            "programmer",
            "--key",
            &key,
            "--implant",
            &implant.addr,
            "enroll-remote",
            "--role",
            "patient",
            "--out",
            &invite,
        ],
        &implant,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let o = ok(
        &["remote", "--key", &rkey, "enroll", "--invite", &invite],
        &implant,
    );
    let shown = String::from_utf8_lossy(&o.stdout).to_string();
    let fp: String = shown
        .lines()
        .find(|l| l.starts_with("Fingerprint: "))
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    // Used before the clinician confirms: answered in words, and nobody is shut out.
    let o = thecal(&["remote", "--key", &rkey, "bolus"]);
    assert!(text(&o).contains("not confirmed yet"), "{}", text(&o));
    let o = ok(
        &[
            "programmer",
            "--key",
            &key,
            "--implant",
            &implant.addr,
            "confirm-remote",
            "--fingerprint",
            &fp,
            "--yes",
        ],
        &implant,
    );
    assert!(
        text(&o).contains("to be enrolled as patient remote"),
        "{}",
        text(&o)
    );
    // A clinician role is never offered over the air.
    let o = thecal(&[
        "programmer",
        "--key",
        &key,
        "--implant",
        &implant.addr,
        "enroll-remote",
        "--role",
        "clinician",
        "--out",
        &invite,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // The top-level help lists only what exists.
    let o = thecal(&["--help"]);
    assert!(!text(&o).contains("clinic console"), "{}", text(&o));
    drop(implant);
    let _ = std::fs::remove_dir_all(&work);
}

fn ok_plain(args: &[&str]) -> Output {
    let o = thecal(args);
    assert!(o.status.success(), "{}", text(&o));
    o
}

/// Enrols a patient remote with `rkey`; returns its key id.
fn enrol_remote(key: &str, rkey: &str, invite: &str, implant: &Implant) -> u64 {
    ok_plain(&["remote", "keygen", "--key", rkey]);
    ok(
        &[
            "programmer",
            "--key",
            key,
            "--implant",
            &implant.addr,
            "enroll-remote",
            "--role",
            "patient",
            "--out",
            invite,
        ],
        implant,
    );
    let o = ok(
        &[
            "remote", "--key", rkey, "--json", "enroll", "--invite", invite,
        ],
        implant,
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let fp = v["fingerprint"].as_u64().unwrap();
    let o = ok(
        &[
            "programmer",
            "--key",
            key,
            "--implant",
            &implant.addr,
            "--json",
            "confirm-remote",
            "--fingerprint",
            &format!("{fp:06}"),
            "--yes",
        ],
        implant,
    );
    let c: Value = serde_json::from_slice(&o.stdout).unwrap();
    c["key_id"].as_u64().unwrap()
}

#[test]
fn a_full_registry_is_said_as_such_and_a_removal_frees_a_place_link_010() {
    let work = tmpdir("full");
    let state = work.join("pump");
    let key = s(&work.join("p.key"));
    let invite = s(&work.join("invite.json"));
    let implant = start(&state, &work, &[]);
    enrol_programmer(&state, &key, &implant);
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(enrol_remote(
            &key,
            &s(&work.join(format!("r{i}.key"))),
            &invite,
            &implant,
        ));
    }
    // Eight devices: a ninth window is refused as "full", with what to do.
    let o = thecal(&[
        "programmer",
        "--key",
        &key,
        "--implant",
        &implant.addr,
        "enroll-remote",
        "--role",
        "patient",
        "--out",
        &invite,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("registry is full") && text(&o).contains("remove KEY_ID"),
        "{}",
        text(&o)
    );
    // A lost remote: revoked, then removed; its place is free again.
    let lost = ids[0].to_string();
    let o = thecal(&[
        "programmer",
        "--key",
        &key,
        "--implant",
        &implant.addr,
        "remove",
        &lost,
    ]);
    assert!(text(&o).contains("revoke it first"), "{}", text(&o));
    ok(
        &[
            "programmer",
            "--key",
            &key,
            "--implant",
            &implant.addr,
            "revoke",
            "--yes",
            &lost,
        ],
        &implant,
    );
    ok(
        &[
            "programmer",
            "--key",
            &key,
            "--implant",
            &implant.addr,
            "remove",
            &lost,
        ],
        &implant,
    );
    let o = ok(
        &[
            "programmer",
            "--key",
            &key,
            "--implant",
            &implant.addr,
            "--json",
            "devices",
        ],
        &implant,
    );
    let d: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["devices"].as_array().unwrap().len(), 7, "{d}");
    enrol_remote(&key, &s(&work.join("new.key")), &invite, &implant);
    drop(implant);
    let _ = std::fs::remove_dir_all(&work);
}
