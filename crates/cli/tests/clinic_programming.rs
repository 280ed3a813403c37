//! `thecal serve` killed with SIGKILL in the middle of a programming session (CLINIC-152):
//! the program change's intent is recorded (pending) and the server dies — once after the
//! implant (a `thecal implant` process) carried out the command, before the read-back
//! (the server held there by `THECAL_FAULT_PAUSE_AFTER_SEND_MS`); once while the implant
//! is held stopped (SIGSTOP) and then killed too, so the hello waiting in its socket is
//! lost. After a restart on the same data directory, the next interrogation shows what
//! the implant holds and reconciles the record with it: rolled forward, or marked not
//! applied. Never a record that claims a program the implant does not run.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "programming test administrator";
const PASSWORD: &str = "programming test password";

struct Proc {
    child: Child,
    addr: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &p.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// Starts a process and reads its address from standard output: the first line that
/// `find` recognises.
fn start(args: &[&str], find: fn(&str) -> Option<String>) -> Proc {
    start_with(None, args, find)
}

fn start_with(
    env: Option<(&str, String)>,
    args: &[&str],
    find: fn(&str) -> Option<String>,
) -> Proc {
    let mut cmd = Command::new(common::BIN);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(args)
        .env("THECAL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start thecal");
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        assert!(Instant::now() < deadline, "{args:?} did not start");
        let line = lines.next().expect("exited").expect("read");
        if let Some(a) = find(&line) {
            break a;
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Proc { child, addr }
}

fn serve(dir: &Path, pause_ms: Option<u64>) -> Proc {
    start_with(
        pause_ms.map(|ms| ("THECAL_FAULT_PAUSE_AFTER_SEND_MS", ms.to_string())),
        &[
            "serve",
            "--data-dir",
            &dir.display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ],
        |l| {
            l.split("listening on http://")
                .nth(1)
                .map(|r| r.trim_end_matches("/api/v1/").to_owned())
        },
    )
}

fn implant(state: &Path, listen: &str) -> Proc {
    start(
        &[
            "implant",
            "--state",
            &state.display().to_string(),
            "--listen",
            listen,
        ],
        |l| l.strip_prefix("listening on ").map(str::to_owned),
    )
}

fn http(
    addr: &str,
    method: &str,
    path: &str,
    auth: Option<&(String, String)>,
    body: Option<&Value>,
) -> (u16, Option<String>, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some((cookie, csrf)) = auth {
        req.push_str(&format!(
            "Cookie: thecal_session={cookie}\r\nX-CSRF-Token: {csrf}\r\n"
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let (head, text) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: thecal_session="))
        .map(|c| c.split(';').next().unwrap_or("").to_owned());
    (
        status,
        cookie,
        serde_json::from_str(text).unwrap_or(Value::Null),
    )
}

fn login(addr: &str, user: &str, password: &str) -> (String, String) {
    let (s, cookie, v) = http(
        addr,
        "POST",
        "/api/v1/session",
        None,
        Some(&json!({"username": user, "password": password})),
    );
    assert_eq!(s, 200, "{v}");
    (
        cookie.unwrap(),
        v["csrf_token"].as_str().unwrap().to_owned(),
    )
}

fn post(addr: &str, auth: &(String, String), path: &str, body: Value) -> Value {
    let (s, _, v) = http(addr, "POST", path, Some(auth), Some(&body));
    assert!(s == 200 || s == 201, "{path}: {s} {v}");
    v
}

fn get(addr: &str, auth: &(String, String), path: &str) -> Value {
    let (s, _, v) = http(addr, "GET", path, Some(auth), None);
    assert_eq!(s, 200, "{path}: {v}");
    v
}

fn programmer(args: &[&str]) {
    let o = common::run(args, None, Duration::from_secs(60));
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn temp_dir(label: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("thecal-progkill-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A clinic with one patient whose pump (a `thecal implant` process) was put in service
/// by a command-line programmer at 200 mcg/day, and the server's programmer enrolled with
/// it; returns the clinic's data directory, the implant's state directory, the implant
/// id, and the new prescription version's id (260 mcg/day) to send.
struct Setup {
    dir: PathBuf,
    state: PathBuf,
    server: Proc,
    pump: Proc,
    iid: i64,
    rx: i64,
}

fn setup(label: &str, pause_ms: Option<u64>) -> Setup {
    let dir = temp_dir(label);
    let state = dir.join("pump");
    let pump = implant(&state, "127.0.0.1:0");
    // The pump put in service at implant by a command-line programmer.
    let key = dir.join("or.key").display().to_string();
    let st = state.display().to_string();
    programmer(&["programmer", "keygen", "--key", &key]);
    programmer(&["programmer", "wand", "--state", &st, "--enrol"]);
    let token = state.join("proximity.token").display().to_string();
    programmer(&[
        "programmer",
        "--key",
        &key,
        "--implant",
        &pump.addr,
        "enroll",
        "--token",
        &token,
    ]);
    programmer(&[
        "programmer",
        "--key",
        &key,
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
    ]);
    let rx = dir.join("rx.toml");
    std::fs::write(&rx, "reservoir_volume = \"20 mL\"\n\n[pump]\nmodel = \"synchromed-20\"\n\n[[drug]]\nname = \"baclofen\"\nconcentration = \"2000 mcg/mL\"\n\n[basal]\nrate = \"0.1 mL/day\"\n").unwrap();
    programmer(&[
        "programmer",
        "--key",
        &key,
        "program",
        "--prescription",
        &rx.display().to_string(),
        "--confirm-soft",
        "first program",
        "--yes",
    ]);
    // The clinic.
    let server = serve(&dir.join("clinic"), pause_ms);
    let addr = server.addr.clone();
    let admin = login(&addr, "admin", ADMIN_PASSWORD);
    post(
        &addr,
        &admin,
        "/api/v1/users",
        json!({"username": "dr", "password": PASSWORD, "role": "physician"}),
    );
    let dr = login(&addr, "dr", PASSWORD);
    let p = post(
        &addr,
        &dr,
        "/api/v1/patients",
        json!({"mrn": "K1", "name": "Kay Kill",
        "date_of_birth": "1970-05-01", "condition": {"kind": "spasticity", "origin": "spinal"}}),
    );
    let pid = p["id"].as_i64().unwrap();
    let today = chrono::Utc::now().date_naive().to_string();
    let i = post(
        &addr,
        &dr,
        &format!("/api/v1/patients/{pid}/implants"),
        json!({
        "pump_model": "SynchroMed II 8637-20", "serial": "KILL-1", "reservoir": "20 mL",
        "implanted_on": today, "pocket": "subfascial", "catheter_model": "8709SC",
        "catheter_length_cm": 45, "tip_level": "T10", "accuracy_margin_permille": 145,
        "low_alarm": "2 mL"}),
    );
    let iid = i["id"].as_i64().unwrap();
    let rx = |dose: &str| {
        json!({"drug": "baclofen", "concentration": "2000 mcg/mL",
        "daily_dose": dose, "reservoir_volume": "20 mL", "reason": "titration",
        "confirm_soft_findings": "titration agreed"})
    };
    post(
        &addr,
        &dr,
        &format!("/api/v1/implants/{iid}/prescriptions"),
        rx("200 mcg/day"),
    );
    let new = post(
        &addr,
        &dr,
        &format!("/api/v1/implants/{iid}/prescriptions"),
        rx("260 mcg/day"),
    );
    // The server's programmer enrolled through the wand's window.
    programmer(&["programmer", "wand", "--state", &st, "--enrol"]);
    let token = std::fs::read_to_string(state.join("proximity.token")).unwrap();
    post(
        &addr,
        &dr,
        &format!("/api/v1/implants/{iid}/link"),
        json!({"address": pump.addr, "token": token}),
    );
    Setup {
        dir,
        state,
        server,
        pump,
        iid,
        rx: new["id"].as_i64().unwrap(),
    }
}

/// The implant's log holds a program change to a version above `above`.
fn changed_past(state: &Path, above: u64) -> bool {
    std::fs::read_to_string(state.join("events.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|e| {
            e["event"]["ProgramChanged"]["version"]
                .as_u64()
                .is_some_and(|v| v > above)
        })
}

fn kill_mid_send(label: &str, implant_survives: bool) {
    let mut s = setup(label, implant_survives.then_some(30_000));
    let addr = s.server.addr.clone();
    let dr = login(&addr, "dr", PASSWORD);
    let v = post(
        &addr,
        &dr,
        &format!("/api/v1/implants/{}/interrogate", s.iid),
        json!({}),
    );
    assert_eq!(v["before"]["flow_nl_day"], 100_000, "{v}");
    let version = v["before"]["program_version"].as_u64().unwrap();
    let sid = v["id"].as_i64().unwrap();
    post(
        &addr,
        &dr,
        &format!("/api/v1/programming/{sid}/change"),
        json!({"prescription_id": s.rx, "confirm": "titration agreed"}),
    );
    // This pump holds saline in its catheter and is stopped for the procedure: the look
    // ahead rightly warns that no drug reaches the tip, which the physician acknowledges.
    let v = post(
        &addr,
        &dr,
        &format!("/api/v1/programming/{sid}/acknowledge"),
        json!({}),
    );
    assert_eq!(v["session"]["acknowledged"]["by"], "dr", "{v}");
    if !implant_survives {
        // The implant stops answering (held stopped): the hello waits in its socket.
        signal(&s.pump, "-STOP");
    }
    let (a2, dr2) = (addr.clone(), dr.clone());
    let sender = std::thread::spawn(move || {
        http(
            &a2,
            "POST",
            &format!("/api/v1/programming/{sid}/send"),
            Some(&dr2),
            Some(&json!({})),
        )
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get(&addr, &dr, &format!("/api/v1/programming/{sid}"));
        let ready =
            v["status"] == "pending" && (!implant_survives || changed_past(&s.state, version));
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "never reached the step: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The intent is recorded (and, with the implant running, the implant has carried the
    // command out): the server dies before it reads back.
    signal(&s.server, "-KILL");
    let _ = s.server.child.wait();
    let (status, _, _) = sender.join().unwrap();
    assert_ne!(status, 200, "the send cannot have been acknowledged");
    if !implant_survives {
        // Killed too: what waited in its socket is lost; restarted on its state.
        let listen = s.pump.addr.clone();
        signal(&s.pump, "-KILL");
        let _ = s.pump.child.wait();
        s.pump = implant(&s.state, &listen);
    }
    // The server restarted on the same data directory: the session is still pending.
    s.server = serve(&s.dir.join("clinic"), None);
    let addr = s.server.addr.clone();
    let dr = login(&addr, "dr", PASSWORD);
    assert_eq!(
        get(&addr, &dr, &format!("/api/v1/programming/{sid}"))["status"],
        "pending"
    );
    let p = get(
        &addr,
        &dr,
        &format!("/api/v1/implants/{}/programming", s.iid),
    );
    assert_eq!(
        p["runs"]["flow_nl_day"], 100_000,
        "pending is never claimed: {p}"
    );
    // The next interrogation: what the implant holds, and the record reconciled to it.
    let v = post(
        &addr,
        &dr,
        &format!("/api/v1/implants/{}/interrogate", s.iid),
        json!({}),
    );
    let held = v["before"]["flow_nl_day"].as_u64().unwrap();
    let old = get(&addr, &dr, &format!("/api/v1/programming/{sid}"));
    if implant_survives {
        assert_eq!(held, 130_000, "{v}");
        assert_eq!(old["status"], "rolled_forward", "{old}");
    } else {
        assert_eq!(held, 100_000, "{v}");
        assert_eq!(old["status"], "not_applied", "{old}");
    }
    assert_eq!(old["session"]["confirmed"]["flow_nl_day"], held, "{old}");
    let p = get(
        &addr,
        &dr,
        &format!("/api/v1/implants/{}/programming", s.iid),
    );
    assert_eq!(p["runs"]["flow_nl_day"], held, "{p}");
    drop(s.server);
    drop(s.pump);
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
fn a_server_killed_mid_send_is_reconciled_after_restart_applied_clinic_152() {
    kill_mid_send("applied", true);
}

#[test]
fn a_server_killed_mid_send_is_reconciled_after_restart_lost_clinic_152() {
    kill_mid_send("lost", false);
}
