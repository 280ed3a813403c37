//! The telemetry end to end over loopback UDP, each device in its own process: a virtual
//! implant, a clinician programmer and a patient remote, as a user runs them.

mod common;

use common::{BIN, text};
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Kills the implant however the test ends.
struct Implant {
    child: Child,
    stderr: PathBuf,
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

fn tmpdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "thecal-telemetry-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start_implant(state: &Path, work: &Path) -> (Implant, String) {
    let stderr = work.join("implant.stderr");
    let mut child = Command::new(BIN)
        .args(["implant", "--state"])
        .arg(state)
        .args(["--listen", "127.0.0.1:0", "--exit-after", "2 min", "--wand"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start the implant");
    let stdout = child.stdout.take().unwrap();
    let implant = Implant { child, stderr };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("the implant did not start: {}", implant.log()));
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "first line: {line:?}");
    (implant, addr)
}

/// Runs thecal with a deadline (a hung command fails the test instead of hanging it).
fn thecal(args: &[&str], stdin: &str) -> Output {
    common::run(args, Some(stdin), Duration::from_secs(20))
}

fn ok(args: &[&str], implant: &Implant) -> Output {
    let o = thecal(args, "");
    assert!(
        o.status.success(),
        "thecal {args:?} failed:\n{}\nimplant:\n{}",
        text(&o),
        implant.log()
    );
    o
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(o)))
}

const PRESCRIPTION: &str = r#"
reservoir_volume = "20 mL"

[pump]
model = "synchromed-20"

[[drug]]
name = "baclofen"
concentration = "2000 mcg/mL"

[basal]
rate = "0.2 mL/day"

[patient_bolus]
volume = "5 uL"
duration = "10 min"
lockout = "4 h"
max_per_day = 4
"#;

#[test]
fn udp_telemetry_end_to_end_link_008() {
    let started = Instant::now();
    let work = tmpdir();
    let state = work.join("implant");
    let (implant, addr) = start_implant(&state, &work);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let pkey = s(&work.join("programmer.key"));
    let rkey = s(&work.join("remote.key"));
    let token = s(&state.join("proximity.token"));
    let invite = s(&work.join("invite.json"));
    let rx = work.join("rx.toml");
    std::fs::write(&rx, PRESCRIPTION).unwrap();
    let rx = s(&rx);

    let prog = |rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["programmer", "--key", &pkey, "--implant", &addr]
            .iter()
            .map(|x| x.to_string())
            .collect();
        v.extend(rest.iter().map(|x| x.to_string()));
        v
    };
    let remote = |rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["remote", "--key", &rkey, "--implant", &addr]
            .iter()
            .map(|x| x.to_string())
            .collect();
        v.extend(rest.iter().map(|x| x.to_string()));
        v
    };
    let run = |args: Vec<String>| -> Output {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&a, &implant)
    };
    let run_fail = |args: Vec<String>| -> Output {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = thecal(&a, "");
        assert!(
            !o.status.success(),
            "thecal {a:?} should fail:\n{}",
            text(&o)
        );
        o
    };

    // A missing key says how to make one.
    let o = run_fail(prog(&["interrogate"]));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("thecal programmer keygen --key"),
        "{}",
        text(&o)
    );

    // Enrol the programmer with the wand's token.
    run(prog(&["keygen"]));
    let mode = std::fs::metadata(&pkey).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !Path::new(&token).exists() {
        assert!(
            Instant::now() < deadline,
            "no proximity token: {}",
            implant.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let e = json(&run(prog(&["--json", "enroll", "--token", &token])));
    assert_eq!(e["enrolled"], true);
    let prog_id = e["key_id"].as_u64().unwrap();

    // Clock, refill, program, resume, interrogate.
    run(prog(&["clock", "--yes"]));
    let r = json(&run(prog(&[
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
    ])));
    assert_eq!(r["accepted"], true, "{r}");
    let p = json(&run(prog(&[
        "--json",
        "program",
        "--prescription",
        &rx,
        "--confirm-soft",
        "screening response lasted over 8 hours",
        "--yes",
    ])));
    assert_eq!(p["read_back_matches"], true, "{p}");
    assert!(p["stats"]["round_trips"].as_u64().unwrap() >= 2, "{p}");
    run(prog(&["resume", "--yes"]));
    // Review, confirm, send, read back: reduce, alarm settings, cancel a bolus (none
    // running: the pump's answer and the read-back agree).
    let r = json(&run(prog(&[
        "--json",
        "reduce",
        "--percent",
        "10",
        "--yes",
    ])));
    assert_eq!(r["accepted"], true, "{r}");
    // 0.2 mL/day less 10 % = 0.18 mL/day, read back from the pump.
    assert!(r["program"].to_string().contains("0.18 mL/day"), "{r}");
    let a = json(&run(prog(&[
        "--json",
        "alarm-settings",
        "--low-alarm",
        "3 mL",
        "--low-alarm-days",
        "10",
        "--yes",
    ])));
    assert_eq!(a["accepted"], true, "{a}");
    let o = run_fail(prog(&["acknowledge", "--alarm", "earthquake", "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("unknown alarm 'earthquake'; known: "),
        "{}",
        text(&o)
    );
    let i = json(&run(prog(&["--json", "interrogate"])));
    assert_eq!(i["status"]["running"], true, "{i}");
    assert_eq!(i["status"]["clock_set"], true, "{i}");
    assert_eq!(i["program"]["contents"], "baclofen 2 mg/mL", "{i}");
    assert!(i["program"].to_string().contains("0.18 mL/day"), "{i}");
    assert!(i["stats"]["bytes_sent"].as_u64().unwrap() > 0, "{i}");
    assert_eq!(i["stats"]["round_trips"], 3, "{i}");

    // Enrol a patient remote: invite, hello with the fingerprint, confirmation.
    run(vec![
        "remote".into(),
        "keygen".into(),
        "--key".into(),
        rkey.clone(),
    ]);
    run(prog(&[
        "enroll-remote",
        "--role",
        "patient",
        "--window",
        "2 min",
        "--out",
        &invite,
    ]));
    let mode = std::fs::metadata(&invite).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let en = run(remote(&["enroll", "--invite", &invite]));
    let shown = String::from_utf8_lossy(&en.stdout).to_string();
    let line = shown
        .lines()
        .find(|l| l.starts_with("Fingerprint: "))
        .unwrap_or_else(|| panic!("no fingerprint: {shown}"));
    let fp: String = line["Fingerprint: ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ' ')
        .filter(|c| c.is_ascii_digit())
        .collect();
    assert_eq!(fp.len(), 6, "{line}");
    // A wrong fingerprint would spend the window; the right one enrols.
    let c = json(&run(prog(&[
        "--json",
        "confirm-remote",
        "--fingerprint",
        &fp,
        "--yes",
    ])));
    assert_eq!(c["enrolled"], true, "{c}");
    let remote_id = c["key_id"].as_u64().unwrap();

    // The patient's bolus, status and alarms.
    let b = json(&run(remote(&["--json", "bolus"])));
    assert_eq!(b["accepted"], true, "{b}");
    // The patient cancels it: review, send, read back that none runs.
    let c = json(&run(remote(&["--json", "cancel-bolus", "--yes"])));
    assert_eq!(
        c["review"], "OLD: running, a bolus running\nNEW: no bolus running",
        "{c}"
    );
    assert_eq!(c["status"]["bolus_active"], false, "{c}");
    let st = json(&run(remote(&["--json", "status"])));
    assert_eq!(st["running"], true, "{st}");
    assert!(st["next_refill"].is_string(), "{st}");
    run(remote(&["alarms"]));

    // The remote's key given to the programmer is refused up front, before anything is
    // sent (the pump's own refusal of a remote's clinician command is tested in the
    // link crate).
    let esc: Vec<String> = [
        "programmer",
        "--key",
        &rkey,
        "--implant",
        &addr,
        "stop",
        "--reason",
        "other",
        "--yes",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let o = run_fail(esc);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("is a remote key") && text(&o).contains("needs a programmer key"),
        "{}",
        text(&o)
    );

    // The devices, then revoke the remote: it gets no answer at all.
    let d = json(&run(prog(&["--json", "devices"])));
    assert_eq!(d["devices"].as_array().unwrap().len(), 2, "{d}");
    run(prog(&["revoke", &remote_id.to_string(), "--yes"]));
    let o = run_fail(remote(&["status"]));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no answer from the pump at")
            && text(&o).contains("may have been revoked"),
        "{}",
        text(&o)
    );
    assert!(
        implant.log().contains("has been revoked"),
        "{}",
        implant.log()
    );

    // The log: downloaded, verified to the head, with who did what.
    let l = run(prog(&["logs"]));
    let log = String::from_utf8_lossy(&l.stdout).to_string();
    assert!(log.contains("chain verified:"), "{log}");
    assert!(
        log.contains(&format!("program accepted from clinician key {prog_id}")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "patient bolus accepted from patient remote key {remote_id}"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("device revoked: key {remote_id}")),
        "{log}"
    );
    // The same log as JSON is what the clinic imports: thecal-clinic verifies its hash
    // chain entry by entry (CLINIC-060) and describes every entry.
    let lj = json(&run(prog(&["--json", "logs"])));
    let export: thecal_clinic::domain::pumplog::LogExport =
        serde_json::from_value(lj.clone()).unwrap();
    let verified = thecal_clinic::domain::pumplog::verify(
        &export,
        &thecal_clinic::domain::pumplog::Stored::default(),
    )
    .unwrap();
    assert_eq!(verified.len(), lj["entries"].as_array().unwrap().len());
    assert!(verified.iter().any(|e| e.category == "program"), "{lj}");

    // Bad input is exit 2 with one line.
    let o = thecal(
        &[
            "programmer",
            "--key",
            &pkey,
            "--implant",
            &addr,
            "refill",
            "--aspirated",
            "0 mL",
            "--added",
            "20 mL",
            "--contents",
            "baclofen",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // A key file others can read is refused, like ssh.
    std::fs::set_permissions(&pkey, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run_fail(prog(&["interrogate"]));
    assert!(text(&o).contains("chmod 600"), "{}", text(&o));

    drop(implant);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&work);
}
