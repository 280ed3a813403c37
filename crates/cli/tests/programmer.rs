//! The programmer's review → confirm → send → read back on every command that changes
//! therapy or the pump, each device in its own process over loopback UDP, as a clinician
//! runs them; and a read-back mismatch against a fake implant built here from the real
//! pump core and link endpoint.

mod common;

use common::{BIN, text};
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use thecal_pump::command::{Command as PumpCommand, Role, SoftReason};
use thecal_pump::core::Pump;

/// Kills the implant however the test ends.
struct Implant {
    child: Child,
    stderr: PathBuf,
    addr: String,
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
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("thecal-programmer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn start_implant(state: &Path, work: &Path, model: &str) -> Implant {
    let stderr = work.join("implant.stderr");
    let mut child = Command::new(BIN)
        .args(["implant", "--state"])
        .arg(state)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--exit-after",
            "3 min",
            "--wand",
            "--model",
            model,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start the implant");
    let stdout = child.stdout.take().unwrap();
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
    };
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("the implant did not start: {}", implant.log()));
    implant.addr = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        implant.addr.starts_with("127.0.0.1:"),
        "first line: {line:?}"
    );
    implant
}

/// Runs thecal with `stdin` and a deadline.
fn thecal(args: &[String], stdin: &str) -> Output {
    common::run(args, Some(stdin), Duration::from_secs(30))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(o)))
}

/// A device's command line: `thecal DEVICE --key KEY --implant ADDR REST...`.
struct Device {
    device: &'static str,
    key: String,
    addr: String,
}

impl Device {
    fn args(&self, rest: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [self.device, "--key", &self.key, "--implant", &self.addr]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    }

    /// Runs with stdin `answer` and expects success.
    fn ok_with(&self, rest: &[&str], answer: &str, log: &dyn Fn() -> String) -> Output {
        let o = thecal(&self.args(rest), answer);
        assert!(
            o.status.success(),
            "thecal {rest:?} failed:\n{}\nimplant:\n{}",
            text(&o),
            log()
        );
        o
    }

    fn ok(&self, rest: &[&str], log: &dyn Fn() -> String) -> Output {
        self.ok_with(rest, "", log)
    }

    fn fails(&self, rest: &[&str], answer: &str, code: i32) -> Output {
        let o = thecal(&self.args(rest), answer);
        assert_eq!(
            o.status.code(),
            Some(code),
            "thecal {rest:?}:\n{}",
            text(&o)
        );
        o
    }
}

fn baclofen_rx(work: &Path, name: &str, rate: &str, conc: &str) -> String {
    let path = work.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
reservoir_volume = "20 mL"

[pump]
model = "prometra-20"

[[drug]]
name = "baclofen"
concentration = "{conc}"

[basal]
rate = "{rate}"
"#
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

fn wait_for(path: &Path, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "no {}: {}",
            path.display(),
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_changing_command_reviews_confirms_sends_and_reads_back_rx_031() {
    let work = tmpdir("review");
    let state = work.join("implant");
    // A valve pump (Prometra class): it has an MRI mode.
    let implant = start_implant(&state, &work, "prometra-20");
    let log = || implant.log();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let p = Device {
        device: "programmer",
        key: s(&work.join("programmer.key")),
        addr: implant.addr.clone(),
    };
    thecal(
        &[
            "programmer".into(),
            "keygen".into(),
            "--key".into(),
            p.key.clone(),
        ],
        "",
    );
    let token = state.join("proximity.token");
    wait_for(&token, &log);
    p.ok(&["enroll", "--token", &s(&token)], &log);

    // Clock, answered "y" at the prompt: the review (old against new) comes first.
    let o = p.ok_with(&["clock"], "y\n", &log);
    assert!(
        stdout(&o).contains("OLD: pump clock not set"),
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Set the pump's clock? [y/N]"),
        "{}",
        text(&o)
    );
    assert!(stdout(&o).contains("clock:       set"), "{}", text(&o));

    // Resume a new pump: stopped → running, read back.
    let o = p.ok(&["resume", "--yes"], &log);
    assert!(
        stdout(&o).contains("OLD: stopped") && stdout(&o).contains("mode:        running"),
        "{}",
        text(&o)
    );

    // Answered "n": nothing is sent, the pump still runs.
    let o = p.fails(&["stop", "--reason", "other"], "n\n", 1);
    assert!(
        text(&o).contains("not confirmed: nothing was sent"),
        "{}",
        text(&o)
    );
    let i = json(&p.ok(&["--json", "interrogate"], &log));
    assert_eq!(i["status"]["running"], true, "{i}");

    // MRI mode of the empty valve pump: on (valve shut), acknowledge its alarm, off.
    let o = p.ok(&["mri", "on", "--yes"], &log);
    assert!(
        stdout(&o).contains("OLD: running")
            && stdout(&o).contains("mode:        suspended for MRI (valve shut)"),
        "{}",
        text(&o)
    );
    let a = json(&p.ok(
        &[
            "--json",
            "acknowledge",
            "--alarm",
            "magnet or MRI detected",
            "--yes",
        ],
        &log,
    ));
    // With --json the review travels in the answer too.
    assert_eq!(
        a["review"], "OLD: alarm magnet or MRI detected sounding\nNEW: acknowledged",
        "{a}"
    );
    let alarms = a["status"]["alarms"].as_array().unwrap();
    assert!(
        alarms
            .iter()
            .any(|x| x["kind"] == "magnet or MRI detected" && x["acknowledged"] == true),
        "{a}"
    );
    let o = p.ok(&["mri", "off", "--yes"], &log);
    assert!(stdout(&o).contains("mode:        running"), "{}", text(&o));

    // The first fill: the review names the old and new contents; read back.
    let r = json(&p.ok(
        &[
            "--json",
            "refill",
            "--aspirated",
            "0 mL",
            "--added",
            "20 mL",
            "--contents",
            "baclofen 2000 mcg/mL",
            "--confirm-soft",
            "first fill after implant",
            "--yes",
        ],
        &log,
    ));
    assert_eq!(r["program"]["contents"], "baclofen 2 mg/mL", "{r}");
    assert_eq!(r["status"]["reservoir"], "20 mL", "{r}");

    // The pump's own finding: nothing aspirated where it expects 20 mL always flags; a
    // refill without --confirm-soft is refused as unconfirmed (exit status 4, as the
    // programmer's own gate), --yes does not confirm it.
    let o = p.fails(
        &[
            "refill",
            "--aspirated",
            "0 mL",
            "--added",
            "20 mL",
            "--contents",
            "baclofen 2000 mcg/mL",
            "--yes",
        ],
        "",
        4,
    );
    assert!(
        text(&o).contains("the pump refused (code 3)")
            && text(&o).contains("confirm with --confirm-soft REASON"),
        "{}",
        text(&o)
    );

    // A hard finding (3000 mcg/mL, above the 2000 mcg/mL label maximum) is refused
    // before anything is sent: the program version stays.
    let before = json(&p.ok(&["--json", "interrogate"], &log))["status"]["program_version"]
        .as_u64()
        .unwrap();
    let hard = baclofen_rx(&work, "hard", "0.2 mL/day", "3000 mcg/mL");
    let o = p.fails(
        &[
            "program",
            "--prescription",
            &hard,
            "--confirm-soft",
            "x",
            "--yes",
        ],
        "",
        3,
    );
    assert!(
        text(&o).contains("refused before sending, hard finding(s)"),
        "{}",
        text(&o)
    );
    // A soft finding (1200 mcg/day, above the labelled experience) without a reason:
    // --yes does not confirm it; nothing is sent.
    let soft = baclofen_rx(&work, "soft", "0.6 mL/day", "2000 mcg/mL");
    let o = p.fails(&["program", "--prescription", &soft, "--yes"], "", 4);
    assert!(
        text(&o).contains("need --confirm-soft REASON"),
        "{}",
        text(&o)
    );
    // A reason longer than the pump logs is bad input naming the limit.
    let long = "r".repeat(65);
    let o = p.fails(
        &[
            "program",
            "--prescription",
            &soft,
            "--confirm-soft",
            &long,
            "--yes",
        ],
        "",
        2,
    );
    assert!(
        text(&o).contains("65 bytes") && text(&o).contains("at most 64"),
        "{}",
        text(&o)
    );
    let after = json(&p.ok(&["--json", "interrogate"], &log))["status"]["program_version"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before, "nothing was sent");

    // Confirmed with a reason: sent, read back equal, and the reason is in the pump's
    // log in words.
    let reason = "severe spasticity; 1.2 mg/day agreed at the visit";
    let o = p.ok(
        &[
            "program",
            "--prescription",
            &soft,
            "--confirm-soft",
            reason,
            "--yes",
        ],
        &log,
    );
    let out = stdout(&o);
    assert!(
        out.contains("OLD (running now") && out.contains("NEW ("),
        "{out}"
    );
    assert!(
        out.contains("the pump runs exactly the program sent"),
        "{out}"
    );
    let l = stdout(&p.ok(&["logs"], &log));
    assert!(l.contains("chain verified:"), "{l}");
    assert!(
        l.lines().any(|x| x.contains("refill: ")
            && x.contains(
                "soft finding(s) confirmed by the clinician, reason \"first fill after implant\""
            )),
        "{l}"
    );
    let line = l
        .lines()
        .find(|x| x.contains(&format!("reason \"{reason}\"")))
        .unwrap_or_else(|| panic!("the reason is not in the log:\n{l}"));
    assert!(
        line.contains("program: ") && line.contains("soft finding(s) confirmed by the clinician"),
        "{line}"
    );
    assert!(l.contains("(the reason above, part 2 of 2)"), "{l}");

    // A clinician bolus, then cancelled: each read back.
    let o = p.ok(
        &[
            "bolus",
            "--volume",
            "20 uL",
            "--duration",
            "30 min",
            "--yes",
        ],
        &log,
    );
    assert!(
        stdout(&o).contains("bolus:       under way"),
        "{}",
        text(&o)
    );
    let o = p.ok(&["cancel-bolus", "--yes"], &log);
    assert!(
        stdout(&o).contains("OLD: running, a bolus running")
            && stdout(&o).contains("bolus cancelled")
            && !stdout(&o).contains("bolus:       under way"),
        "{}",
        text(&o)
    );

    // Alarm thresholds: old against new, read back from the pump's status.
    let o = p.ok(
        &[
            "alarm-settings",
            "--low-alarm",
            "3 mL",
            "--low-alarm-days",
            "10",
            "--stopped-reminder",
            "45 min",
            "--yes",
        ],
        &log,
    );
    assert!(
        stdout(&o).contains("OLD: low-reservoir alarm at 2 mL or 7 days of therapy left")
            && stdout(&o).contains("NEW: low-reservoir alarm at 3 mL or 10 days of therapy left"),
        "{}",
        text(&o)
    );
    let i = json(&p.ok(&["--json", "interrogate"], &log));
    assert_eq!(
        i["status"]["alarm_settings"]["low_reservoir"], "3 mL",
        "{i}"
    );
    assert_eq!(
        i["status"]["alarm_settings"]["low_reservoir_days"], 10,
        "{i}"
    );
    assert_eq!(
        i["status"]["alarm_settings"]["stopped_reminder"], "45 min",
        "{i}"
    );

    // Stop (read back: stopped for the reason sent), resume.
    let st = json(&p.ok(
        &["--json", "stop", "--reason", "adverse-effect", "--yes"],
        &log,
    ));
    assert_eq!(st["status"]["running"], false, "{st}");
    assert!(
        st["status"]["mode"]
            .as_str()
            .unwrap()
            .starts_with("stopped (adverse effect)"),
        "{st}"
    );
    p.ok(&["resume", "--yes"], &log);

    // The clinician's reduction: 0.6 mL/day less 10 % = 0.54 mL/day, read back.
    let r = json(&p.ok(&["--json", "reduce", "--percent", "10", "--yes"], &log));
    assert!(r["program"].to_string().contains("0.54 mL/day"), "{r}");

    // An emergency device: enrolled by the clinician, reduces by 20 % (0.54 → 0.432
    // mL/day), reading the program back itself.
    let e = Device {
        device: "remote",
        key: s(&work.join("emergency.key")),
        addr: implant.addr.clone(),
    };
    thecal(
        &[
            "remote".into(),
            "keygen".into(),
            "--key".into(),
            e.key.clone(),
        ],
        "",
    );
    let invite = s(&work.join("invite.json"));
    p.ok(
        &["enroll-remote", "--role", "emergency", "--out", &invite],
        &log,
    );
    let en = stdout(&e.ok(&["enroll", "--invite", &invite], &log));
    let fp: String = en
        .lines()
        .find(|l| l.starts_with("Fingerprint: "))
        .unwrap_or_else(|| panic!("no fingerprint: {en}"))["Fingerprint: ".len()..]
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let c = json(&p.ok(
        &["--json", "confirm-remote", "--fingerprint", &fp, "--yes"],
        &log,
    ));
    let emergency_id = c["key_id"].as_u64().unwrap().to_string();
    let o = e.ok(&["reduce", "--percent", "20", "--yes"], &log);
    assert!(
        stdout(&o).contains("OLD (running):")
            && stdout(&o).contains("basal reduced by 20 %")
            && stdout(&o).contains("0.432 mL/day"),
        "{}",
        text(&o)
    );

    // The reduction sounds its alarm; the emergency device acknowledges it itself.
    let a = json(&e.ok(
        &[
            "--json",
            "acknowledge",
            "--alarm",
            "dose reduced in an emergency",
            "--yes",
        ],
        &log,
    ));
    assert_eq!(
        a["review"], "OLD: alarm dose reduced in an emergency sounding\nNEW: acknowledged",
        "{a}"
    );
    assert!(
        a["status"]["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == "dose reduced in an emergency" && x["acknowledged"] == true),
        "{a}"
    );

    // Revoke the emergency device: the device list before and after, read back.
    let o = p.ok(&["revoke", &emergency_id, "--yes"], &log);
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "OLD: key {emergency_id:>10}  emergency       active"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("key {emergency_id:>10}  emergency       REVOKED")),
        "{out}"
    );
    let d = json(&p.ok(&["--json", "devices"], &log));
    let dev = d["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| {
            x["key_id"].as_u64().map(|k| k.to_string()).as_deref() == Some(emergency_id.as_str())
        })
        .unwrap()
        .clone();
    assert_eq!(dev["revoked"], true, "{d}");
}

// ----- a fake implant that stores another program ----------------------------------------

/// A fake implant: the real pump core and the real link endpoint, except that after
/// every command it lets `defect` change the pump behind the programmer's back (as a pump
/// with a storage defect would). Every answer is otherwise genuine.
struct FakeImplant {
    addr: String,
    token: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakeImplant {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fake_implant(
    work: &Path,
    mut defect: impl FnMut(&mut Pump, thecal_rx::Instant) + Send + 'static,
) -> FakeImplant {
    use thecal_link::frame::{Frame, Kind, MAX_FRAME};
    use thecal_link::{Entropy, Host, Implant, ImplantSession, Registry, StaticKeypair};
    use thecal_pump::core::Action;
    use thecal_pump::log::LogEntry;
    use thecal_pump::profile::HardwareProfile;

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let started = Instant::now();
    let now = move || thecal_rx::Instant::from_ms(started.elapsed().as_millis() as u64);
    let mut pump = Pump::new(HardwareProfile::prometra_class(20), now());
    let keys = StaticKeypair::from_secret(rand::random()).unwrap();
    let mut implant = Implant::new(keys, Registry::new());
    let psk: [u8; 32] = rand::random();
    let token =
        implant.open_proximity_window(now(), psk, thecal_rx::Duration::from_minutes(5), &mut pump);
    let token_path = work.join("fake.token");
    std::fs::write(
        &token_path,
        serde_json::json!({
            "implant_key": hex(&token.implant_key.0),
            "psk": hex(&token.psk),
        })
        .to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&token_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        let mut events: Vec<LogEntry> = Vec::new();
        let mut sessions: HashMap<SocketAddr, ImplantSession> = HashMap::new();
        let drain = |pump: &mut Pump, events: &mut Vec<LogEntry>| {
            let t = now();
            loop {
                let mut strokes = 0;
                while let Some(a) = pump.poll_action() {
                    match a {
                        Action::Stroke => strokes += 1,
                        Action::Log(e) => events.push(e),
                        _ => {}
                    }
                }
                if strokes == 0 {
                    break;
                }
                for _ in 0..strokes {
                    pump.handle_stroke_done(t, true);
                }
            }
        };
        drain(&mut pump, &mut events);
        let mut buf = vec![0u8; MAX_FRAME + 64];
        while !stopping.load(Ordering::SeqCst) {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let bytes = &buf[..n];
            let mut out = vec![0u8; MAX_FRAME];
            let kind = Frame::new_checked(bytes).ok().map(|f| f.kind());
            match kind {
                Some(Kind::HandshakeInit) => {
                    let r = implant.accept(
                        now(),
                        bytes,
                        Entropy::new(rand::random()),
                        &mut pump,
                        &mut out,
                    );
                    drain(&mut pump, &mut events);
                    if let Ok(accepted) = r {
                        let _ = socket.send_to(&out[..accepted.reply_len], peer);
                        sessions.insert(peer, accepted.session);
                    }
                }
                Some(Kind::Transport) => {
                    let Some(session) = sessions.get_mut(&peer) else {
                        continue;
                    };
                    let fresh: [u8; 32] = rand::random();
                    let mut random = move || fresh;
                    let mut host = Host {
                        pump: &mut pump,
                        log: &events,
                        random: &mut random,
                    };
                    let r = implant.handle(session, now(), bytes, &mut host, &mut out);
                    drain(&mut pump, &mut events);
                    defect(&mut pump, now());
                    drain(&mut pump, &mut events);
                    if let Ok(n) = r {
                        let _ = socket.send_to(&out[..n], peer);
                    }
                }
                _ => {}
            }
        }
    });
    FakeImplant {
        addr,
        token: token_path,
        stop,
        thread: Some(thread),
    }
}

/// Enrols a new programmer key with the fake implant and fills it with baclofen.
fn enrol_and_fill(work: &Path, fake: &FakeImplant) -> Device {
    let p = Device {
        device: "programmer",
        key: work.join("programmer.key").to_str().unwrap().to_string(),
        addr: fake.addr.clone(),
    };
    let log = String::new;
    thecal(
        &[
            "programmer".into(),
            "keygen".into(),
            "--key".into(),
            p.key.clone(),
        ],
        "",
    );
    p.ok(&["enroll", "--token", fake.token.to_str().unwrap()], &log);
    p.ok(
        &[
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
        &log,
    );
    p
}

#[test]
fn an_implant_that_holds_other_alarm_thresholds_is_a_read_back_mismatch_rx_031() {
    use thecal_pump::core::AlarmSettings;
    let work = tmpdir("thresholds");
    // The defect: low-reservoir days other than 7 fall back to 7.
    let fake = fake_implant(&work, |pump: &mut Pump, now| {
        let AlarmSettings {
            low_reservoir,
            low_reservoir_days,
            stopped_reminder,
        } = pump.status().alarm_settings;
        if low_reservoir_days != 7 {
            let _ = pump.handle_command(
                now,
                Role::Clinician,
                0,
                &PumpCommand::AlarmSettings {
                    low_reservoir,
                    low_reservoir_days: 7,
                    stopped_reminder,
                },
            );
        }
    });
    let p = enrol_and_fill(&work, &fake);
    let o = p.fails(
        &[
            "alarm-settings",
            "--low-alarm",
            "3 mL",
            "--low-alarm-days",
            "10",
            "--yes",
        ],
        "",
        5,
    );
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains(
            "read-back mismatch: the pump holds: low-reservoir alarm at 3 mL or 7 days of \
             therapy left"
        ),
        "{}",
        text(&o)
    );
}

#[test]
fn an_implant_that_holds_another_program_is_a_read_back_mismatch_rx_031() {
    use thecal_rx::schedule::Schedule;
    let work = tmpdir("mismatch");
    // The defect: a program of 0.2 mL/day is stored as 0.4 mL/day.
    let sent = Schedule::continuous("0.2 mL/day".parse().unwrap());
    let stored = Schedule::continuous("0.4 mL/day".parse().unwrap());
    let fake = fake_implant(&work, move |pump: &mut Pump, now| {
        if pump.program().schedule == sent {
            let mut other = pump.program().clone();
            other.schedule = stored.clone();
            let _ = pump.handle_command(
                now,
                Role::Clinician,
                0,
                &PumpCommand::Program {
                    prescription: other,
                    confirm_soft: SoftReason::new("storage defect").ok(),
                },
            );
        }
    });
    let p = enrol_and_fill(&work, &fake);
    // 0.2 mL/day sent; the fake implant holds 0.4 mL/day.
    let rx = baclofen_rx(&work, "sent", "0.2 mL/day", "2000 mcg/mL");
    let o = p.fails(
        &[
            "program",
            "--prescription",
            &rx,
            "--confirm-soft",
            "screening response lasted over 8 hours",
            "--yes",
        ],
        "",
        5,
    );
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains("read-back mismatch: the pump did not store the program sent; it holds:"),
        "{}",
        text(&o)
    );
    assert!(
        err.contains("basal:         00:00 0.4 mL/day"),
        "{}",
        text(&o)
    );
    assert!(!err.contains("0.2 mL/day"), "{}", text(&o));
    // The JSON form says the same: the read-back and that it does not match.
    let o = p.fails(
        &[
            "--json",
            "program",
            "--prescription",
            &rx,
            "--confirm-soft",
            "screening response lasted over 8 hours",
            "--yes",
        ],
        "",
        5,
    );
    let v = json(&o);
    assert_eq!(v["read_back_matches"], false, "{v}");
    assert!(v["read_back"].to_string().contains("0.4 mL/day"), "{v}");
}

#[test]
fn the_implants_status_lines_are_json_lines_with_json_rx_027() {
    let work = tmpdir("json-lines");
    let state = work.join("implant");
    let mut child = Command::new(BIN)
        .args(["implant", "--state"])
        .arg(&state)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--exit-after",
            "1 min",
            "--wand",
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the implant");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || -> Value {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a status line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let first = next();
    let addr = first["listening"].as_str().unwrap().to_string();
    let wand = next();
    assert_eq!(wand["event"], "wand-window", "{wand}");
    assert!(
        wand["text"]
            .as_str()
            .unwrap()
            .starts_with("wand: enrolment window open")
    );
    let p = Device {
        device: "programmer",
        key: work.join("programmer.key").to_str().unwrap().to_string(),
        addr,
    };
    let log = String::new;
    thecal(
        &[
            "programmer".into(),
            "keygen".into(),
            "--key".into(),
            p.key.clone(),
        ],
        "",
    );
    let e = json(&p.ok(
        &[
            "--json",
            "enroll",
            "--token",
            state.join("proximity.token").to_str().unwrap(),
        ],
        &log,
    ));
    let key_id = e["key_id"].as_u64().unwrap();
    let hello = next();
    assert_eq!(hello["event"], "connection", "{hello}");
    assert_eq!(hello["key_id"], key_id, "{hello}");
    assert_eq!(hello["role"], "clinician", "{hello}");
    assert!(
        hello["logged"]
            .to_string()
            .contains(&format!("device enrolled: clinician key {key_id}")),
        "{hello}"
    );
    p.ok(&["resume", "--yes"], &log);
    let mut commands = Vec::new();
    while commands.len() < 3 {
        let v = next();
        if v["event"] == "command" {
            commands.push(v);
        }
    }
    // Interrogate, resume, interrogate (the read-back): the resume is logged in words.
    assert!(
        commands
            .iter()
            .any(|c| c["logged"].to_string().contains("delivery resumed")),
        "{commands:?}"
    );
    assert!(
        commands
            .iter()
            .all(|c| c["key_id"] == key_id && c["utc"].is_string())
    );
    let _ = child.kill();
    let _ = child.wait();
}

// ----- the catheter record, priming, emergency MRI, the reminder interval ----------------

/// Starts a Prometra-class implant (the valve pump: 30 uL internal path, 2 uL pulses)
/// and enrols a new programmer key with it.
fn implant_and_programmer(name: &str) -> (PathBuf, Implant, Device) {
    let work = tmpdir(name);
    let state = work.join("implant");
    let implant = start_implant(&state, &work, "prometra-20");
    let log = || implant.log();
    let p = Device {
        device: "programmer",
        key: work.join("programmer.key").to_str().unwrap().to_string(),
        addr: implant.addr.clone(),
    };
    thecal(
        &[
            "programmer".into(),
            "keygen".into(),
            "--key".into(),
            p.key.clone(),
        ],
        "",
    );
    let token = state.join("proximity.token");
    wait_for(&token, &log);
    p.ok(&["enroll", "--token", token.to_str().unwrap()], &log);
    (work, implant, p)
}

#[test]
fn a_catheter_is_recorded_then_primed_end_to_end_rx_032() {
    let (work, implant, p) = implant_and_programmer("prime");
    let log = || implant.log();

    // Bad input is refused before anything is sent (exit status 2), saying what is
    // allowed.
    let o = p.fails(
        &["catheter", "--model", "7", "--length", "45 cm", "--yes"],
        "",
        2,
    );
    assert!(
        text(&o).contains("unknown catheter model")
            && text(&o).contains("1 (two-piece intrathecal catheter, 0.53 mm lumen)")
            && text(&o).contains("or custom (code 0) with --volume-per-cm and --pump-segment"),
        "{}",
        text(&o)
    );
    let o = p.fails(
        &["catheter", "--model", "1", "--length", "45", "--yes"],
        "",
        2,
    );
    assert!(
        text(&o).contains("--length '45': no unit")
            && text(&o).contains("\"45 cm\" or \"450 mm\"")
            && text(&o).contains("5 cm to 150 cm"),
        "{}",
        text(&o)
    );
    let o = p.fails(
        &["catheter", "--model", "1", "--length", "151 cm", "--yes"],
        "",
        2,
    );
    assert!(
        text(&o).contains("catheter length after trimming must be 5 cm to 150 cm"),
        "{}",
        text(&o)
    );
    let o = p.fails(
        &[
            "catheter", "--model", "custom", "--length", "45 cm", "--yes",
        ],
        "",
        2,
    );
    assert!(
        text(&o).contains("--model custom needs the labelled --volume-per-cm"),
        "{}",
        text(&o)
    );
    let o = p.fails(
        &[
            "catheter",
            "--model",
            "1",
            "--length",
            "45 cm",
            "--volume-per-cm",
            "3 uL",
            "--yes",
        ],
        "",
        2,
    );
    assert!(text(&o).contains("use model 0 (custom)"), "{}", text(&o));
    let i = json(&p.ok(&["--json", "interrogate"], &log));
    assert_eq!(i["status"]["catheter"], Value::Null, "{i}");

    // A new pump is stopped: the catheter is recorded. 45 cm x 2.2 uL/cm = 99 uL plus
    // the 20 uL pump segment = 119 uL; with the Prometra-class 30 uL internal path the
    // dead volume is 149 uL. The review shows old against new in words.
    let o = p.ok(
        &["catheter", "--model", "1", "--length", "45 cm", "--yes"],
        &log,
    );
    let out = stdout(&o);
    assert!(
        out.contains("OLD: catheter none recorded (priming is refused until one is)"),
        "{out}"
    );
    assert!(
        out.contains(
            "NEW: catheter two-piece intrathecal catheter, 0.53 mm lumen, 45.0 cm after \
             trimming, 0.0022 mL per cm, pump segment 0.02 mL: holds 0.119 mL; dead volume \
             0.149 mL (pump path 0.03 mL + catheter 0.119 mL)"
        ),
        "{out}"
    );
    assert!(out.contains("The pump must be stopped"), "{out}");
    assert!(
        out.contains("catheter recorded. read back:")
            && out.contains("catheter:    two-piece intrathecal catheter, 0.53 mm lumen, 45.0 cm"),
        "{out}"
    );
    let i = json(&p.ok(&["--json", "interrogate"], &log));
    assert_eq!(i["status"]["catheter"]["length_mm"], 450, "{i}");
    assert_eq!(i["status"]["catheter"]["volume_nl"], 119_000, "{i}");
    assert_eq!(i["status"]["dead_volume_nl"], 149_000, "{i}");

    // Fill with baclofen 2000 mcg/mL, program 0.24 mL/day (10 uL an hour), resume.
    p.ok(
        &[
            "refill",
            "--aspirated",
            "0 mL",
            "--added",
            "20 mL",
            "--contents",
            "baclofen 2000 mcg/mL",
            "--confirm-soft",
            "first fill after implant",
            "--yes",
        ],
        &log,
    );
    let rx = baclofen_rx(&work, "prime", "0.24 mL/day", "2000 mcg/mL");
    p.ok(
        &[
            "program",
            "--prescription",
            &rx,
            "--confirm-soft",
            "starting dose agreed after screening",
            "--yes",
        ],
        &log,
    );
    p.ok(&["resume", "--yes"], &log);

    // A running pump: the programmer refuses the record itself, before sending.
    let o = p.fails(
        &["catheter", "--model", "1", "--length", "90 cm", "--yes"],
        "",
        1,
    );
    assert!(
        text(&o).contains("not sent: the pump is running; a catheter record needs a stopped pump"),
        "{}",
        text(&o)
    );
    let i = json(&p.ok(&["--json", "interrogate"], &log));
    assert_eq!(i["status"]["catheter"]["length_mm"], 450, "{i}");

    // Priming over 1 h: the basal pushes 0.24 mL/day / 24 = 10 uL meanwhile, so the
    // pump chooses 149 - 10 = 139 uL, and the programmer prints the pump's figure.
    let v = json(&p.ok(&["--json", "prime", "--duration", "1 h", "--yes"], &log));
    assert_eq!(v["volume_nl"], 139_000, "{v}");
    assert_eq!(v["volume"], "0.139 mL", "{v}");
    assert_eq!(v["dead_volume"], "0.149 mL", "{v}");
    assert_eq!(v["basal_covers"], "0.01 mL", "{v}");
    let review = v["review"].as_str().unwrap();
    assert!(
        review.contains("catheter:    two-piece intrathecal catheter, 0.53 mm lumen, 45.0 cm")
            && review.contains("dead volume: 0.149 mL (pump path 0.03 mL + catheter 0.119 mL)")
            && review.contains("the basal 0.24 mL/day covers 0.01 mL over 1 h")
            && review.contains("about 0.139 mL"),
        "{review}"
    );
    assert_eq!(v["status"]["bolus_active"], true, "{v}");
    // The pump's log says the same volume.
    let l = stdout(&p.ok(&["logs"], &log));
    assert!(l.contains("priming bolus started: 0.139 mL"), "{l}");
    assert!(
        l.contains("catheter recorded: two-piece intrathecal catheter, 0.53 mm lumen, 45.0 cm"),
        "{l}"
    );
}

#[test]
fn priming_without_a_catheter_record_is_the_pumps_refusal_rx_032() {
    let (_work, implant, p) = implant_and_programmer("prime-none");
    let log = || implant.log();
    p.ok(&["resume", "--yes"], &log);
    let o = p.fails(&["prime", "--duration", "1 h", "--yes"], "", 1);
    let t = text(&o);
    assert!(
        t.contains("catheter:    none recorded")
            && t.contains("No catheter is recorded: the pump will refuse"),
        "{t}"
    );
    // The pump's own words, with what to do.
    assert!(
        t.contains(
            "the pump refused (code 26): no catheter is recorded, so the priming volume is \
             unknown"
        ) && t.contains("catheter --model CODE --length \"45 cm\""),
        "{t}"
    );
    let i = json(&p.ok(&["--json", "interrogate"], &log));
    assert_eq!(i["status"]["bolus_active"], false, "{i}");
}

#[test]
fn an_implant_that_holds_another_catheter_or_reminder_interval_is_a_read_back_mismatch_rx_032() {
    use thecal_pump::catheter::CatheterRecord;
    let work = tmpdir("catheter-mismatch");
    // The defects: a 45 cm catheter is stored as 40 cm; a 2 h reminder interval as 4 h.
    let fake = fake_implant(&work, |pump: &mut Pump, now| {
        let s = pump.status();
        if let Some(c) = s.catheter.filter(|c| c.length_mm == 450) {
            let _ = pump.handle_command(
                now,
                Role::Clinician,
                0,
                &PumpCommand::SetCatheter(CatheterRecord {
                    length_mm: 400,
                    ..c
                }),
            );
        }
        if s.reminder_interval == thecal_rx::Duration::from_hours(2) {
            let _ = pump.handle_command(
                now,
                Role::Clinician,
                0,
                &PumpCommand::SetReminderInterval {
                    interval: thecal_rx::Duration::from_hours(4),
                },
            );
        }
    });
    let p = enrol_and_fill(&work, &fake);
    let o = p.fails(
        &["catheter", "--model", "1", "--length", "45 cm", "--yes"],
        "",
        5,
    );
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains(
            "read-back mismatch: the pump holds catheter two-piece intrathecal catheter, \
             0.53 mm lumen, 40.0 cm after trimming"
        ),
        "{}",
        text(&o)
    );
    let o = p.fails(&["reminder-interval", "--interval", "2 h", "--yes"], "", 5);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains("read-back mismatch: the pump holds a reminder interval of 4 h"),
        "{}",
        text(&o)
    );
}

#[test]
fn emergency_mri_and_the_reminder_interval_are_reviewed_and_read_back_rx_033() {
    let (_work, implant, p) = implant_and_programmer("emergency-mri");
    let log = || implant.log();
    p.ok(&["resume", "--yes"], &log);
    p.ok(
        &[
            "refill",
            "--aspirated",
            "0 mL",
            "--added",
            "20 mL",
            "--contents",
            "baclofen 2000 mcg/mL",
            "--confirm-soft",
            "first fill after implant",
            "--yes",
        ],
        &log,
    );
    // MRI mode with 20 mL in a valve pump is the pump's refusal, with the way out.
    let o = p.fails(&["mri", "on", "--yes"], "", 1);
    assert!(
        text(&o).contains("the pump refused (code 25): the reservoir holds 20 mL")
            && text(&o)
                .contains("for a scan that cannot wait: thecal programmer ... mri on --emergency"),
        "{}",
        text(&o)
    );
    let o = p.fails(&["mri", "off", "--emergency", "--yes"], "", 2);
    assert!(
        text(&o).contains("--emergency goes with `mri on`"),
        "{}",
        text(&o)
    );
    // Answered "n": nothing is sent.
    let o = p.fails(&["mri", "on", "--emergency"], "n\n", 1);
    assert!(
        text(&o).contains("Shut the valve for an emergency scan with drug in the reservoir? [y/N]")
            && text(&o).contains("not confirmed: nothing was sent"),
        "{}",
        text(&o)
    );
    let o = p.ok_with(&["mri", "on", "--emergency"], "y\n", &log);
    let out = stdout(&o);
    assert!(
        out.contains("OLD: running; the reservoir holds 20 mL")
            && out.contains(
                "NEW: EMERGENCY MRI mode: the valve shut with 20 mL still in the reservoir"
            )
            && out.contains("emergency MRI mode on. read back:")
            && out.contains("mode:        suspended for MRI (valve shut)"),
        "{}",
        text(&o)
    );
    let l = stdout(&p.ok(&["logs"], &log));
    assert!(
        l.contains("emergency MRI mode accepted from clinician key"),
        "{l}"
    );
    let o = p.ok(&["mri", "off", "--yes"], &log);
    assert!(stdout(&o).contains("mode:        running"), "{}", text(&o));

    // The reminder interval: out of range is bad input; in range, old against new and
    // read back from the status.
    let o = p.fails(
        &["reminder-interval", "--interval", "10 min", "--yes"],
        "",
        2,
    );
    assert!(
        text(&o).contains("the no-delivery reminder interval is 15 min to 4 h"),
        "{}",
        text(&o)
    );
    let v = json(&p.ok(
        &["--json", "reminder-interval", "--interval", "2 h", "--yes"],
        &log,
    ));
    let review = v["review"].as_str().unwrap();
    assert!(
        review.starts_with("OLD: an acknowledged no-delivery alarm")
            && review.contains("sounds again every 1 h\nNEW: ")
            && review.ends_with("sounds again every 2 h"),
        "{review}"
    );
    assert_eq!(v["status"]["reminder_interval"], "2 h", "{v}");
    let i = json(&p.ok(&["--json", "interrogate"], &log));
    assert_eq!(i["status"]["reminder_interval"], "2 h", "{i}");
}
