//! `thecal programmer update` end to end over loopback UDP: a virtual implant made with a
//! signed factory image, a clinician programmer, and the maker's signing tool.

mod common;

use common::{BIN, text};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

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

fn start_implant(state: &Path, work: &Path, factory: &Path, key: &Path) -> (Implant, String) {
    let stderr = work.join("implant.stderr");
    let mut child = Command::new(BIN)
        .args(["implant", "--state"])
        .arg(state)
        .args(["--listen", "127.0.0.1:0", "--exit-after", "2 min", "--wand"])
        .arg("--firmware")
        .arg(factory)
        .arg("--firmware-key")
        .arg(key)
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
    assert!(
        addr.starts_with("127.0.0.1:"),
        "first line: {line:?}: {}",
        implant.log()
    );
    (implant, addr)
}

fn thecal(args: &[String]) -> Output {
    common::run(args, Some(""), Duration::from_secs(60))
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
"#;

#[test]
fn the_programmer_updates_the_firmware_and_therapy_survives_the_swap_link_032() {
    let work = std::env::temp_dir().join(format!("thecal-fwupdate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let v = |a: &[&str]| -> Vec<String> { a.iter().map(|x| x.to_string()).collect() };
    // The maker: a key, the factory image 1.0.0 (counter 3), an update 1.1.0 (counter
    // 4) and an older release 0.9.0 (counter 2).
    let maker = work.join("maker.key");
    assert!(
        thecal(&v(&["firmware", "keygen", "--out", &s(&maker)]))
            .status
            .success()
    );
    let body = work.join("body.bin");
    std::fs::write(
        &body,
        (0..20_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let sign = |name: &str, version: &str, counter: &str| -> PathBuf {
        let out = work.join(name);
        let o = thecal(&v(&[
            "firmware",
            "sign",
            "--key",
            &s(&maker),
            "--image-version",
            version,
            "--security-counter",
            counter,
            "--hardware",
            "synchromed-20",
            "--out",
            &s(&out),
            &s(&body),
        ]));
        assert!(o.status.success(), "{}", text(&o));
        out
    };
    let factory = sign("factory.img", "1.0.0", "3");
    let update = sign("update.img", "1.1.0", "4");
    let older = sign("older.img", "0.9.0", "2");

    let state = work.join("implant");
    let (implant, addr) = start_implant(&state, &work, &factory, &work.join("maker.key.pub"));
    let pkey = s(&work.join("programmer.key"));
    let prog = |rest: &[&str]| -> Vec<String> {
        let mut a = v(&["programmer", "--key", &pkey, "--implant", &addr]);
        a.extend(rest.iter().map(|x| x.to_string()));
        a
    };
    let ok = |args: Vec<String>| -> Output {
        let o = thecal(&args);
        assert!(
            o.status.success(),
            "{args:?}:\n{}\nimplant:\n{}",
            text(&o),
            implant.log()
        );
        o
    };
    // Enrol with the wand, and set up therapy.
    ok(prog(&["keygen"]));
    let token = state.join("proximity.token");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !token.exists() {
        assert!(Instant::now() < deadline, "no token: {}", implant.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(prog(&["enroll", "--token", &s(&token)]));
    let rx = work.join("rx.toml");
    std::fs::write(&rx, PRESCRIPTION).unwrap();
    ok(prog(&["clock", "--yes"]));
    ok(prog(&[
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
    ]));
    ok(prog(&[
        "program",
        "--prescription",
        &s(&rx),
        "--confirm-soft",
        "screening response",
        "--yes",
    ]));
    ok(prog(&["resume", "--yes"]));
    let before = json(&ok(prog(&["--json", "interrogate"])));
    assert_eq!(before["status"]["running"], true, "{before}");

    // The update: review, transfer, verify, trial restart, confirmation.
    let o = ok(prog(&["--json", "update", &s(&update), "--yes"]));
    let u = json(&o);
    assert_eq!(u["updated"], true, "{u}");
    assert_eq!(u["old"]["version"], "1.0.0");
    assert_eq!(u["running"]["version"], "1.1.0");
    assert_eq!(u["running"]["slot"], "B");
    assert_eq!(u["running"]["security_counter"], 4);
    // The updater's events are in the pump's log, in words, as the implant prints them.
    for line in [
        "firmware transfer started into slot B",
        "firmware image verified: version 1.1.0, security counter 4",
        "firmware image in slot B marked for trial",
        "firmware started: version 1.1.0 from slot B (on trial)",
        "firmware confirmed: version 1.1.0 runs, security counter 4",
    ] {
        assert!(implant.log().contains(line), "{line}:\n{}", implant.log());
    }

    // Therapy survived the swap: the same program, running, reservoir carried over.
    let after = json(&ok(prog(&["--json", "interrogate"])));
    assert_eq!(after["status"]["running"], true, "{after}");
    assert_eq!(after["program"], before["program"]);
    assert_eq!(
        after["status"]["program_version"],
        before["status"]["program_version"]
    );
    let (r0, r1) = (
        before["status"]["reservoir_nl"].as_u64().unwrap(),
        after["status"]["reservoir_nl"].as_u64().unwrap(),
    );
    // Minutes of 0.2 mL/day at most: a few strokes, never a reset reservoir.
    assert!(r1 <= r0 && r0 - r1 < 5_000, "{r0} nL then {r1} nL");

    // The older release is refused: a rollback, with the reason, exit 1.
    let o = thecal(&prog(&["update", &s(&older), "--yes"]));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("rollback refused"), "{}", text(&o));
    // Bad input: exit 2, one line naming the file.
    let o = thecal(&prog(&["update", "/nonexistent/update.img", "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("/nonexistent/update.img: cannot read"),
        "{}",
        text(&o)
    );
    let o = thecal(&prog(&["update", &s(&body), "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not a firmware image"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn keys_rotate_and_revoke_from_the_cli_with_review_and_read_back_link_037() {
    let work = std::env::temp_dir().join(format!("thecal-fwkeys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let v = |a: &[&str]| -> Vec<String> { a.iter().map(|x| x.to_string()).collect() };
    let keygen = |name: &str| -> PathBuf {
        let k = work.join(name);
        let o = thecal(&v(&["firmware", "keygen", "--out", &s(&k)]));
        assert!(o.status.success(), "{}", text(&o));
        k
    };
    let (maker, fresh) = (keygen("maker.key"), keygen("fresh.key"));
    let pub_of = |k: &Path| PathBuf::from(format!("{}.pub", s(k)));
    let body = work.join("body.bin");
    std::fs::write(&body, vec![0x5au8; 9000]).unwrap();
    let sign = |key: &Path, name: &str, version: &str, counter: &str| -> PathBuf {
        let out = work.join(name);
        let o = thecal(&v(&[
            "firmware",
            "sign",
            "--key",
            &s(key),
            "--image-version",
            version,
            "--security-counter",
            counter,
            "--hardware",
            "synchromed-20",
            "--out",
            &s(&out),
            &s(&body),
        ]));
        assert!(o.status.success(), "{}", text(&o));
        out
    };
    let factory = sign(&maker, "factory.img", "1.0.0", "1");
    let by_fresh = sign(&fresh, "fresh.img", "1.1.0", "1");
    let by_maker = sign(&maker, "maker.img", "1.2.0", "1");

    // The maker's rotation statement to the fresh key, and a revocation of the fresh key.
    let rotation = work.join("rotation.json");
    let o = thecal(&v(&[
        "firmware",
        "rotate",
        "--old-key",
        &s(&maker),
        "--new-pub",
        &s(&pub_of(&fresh)),
        "--out",
        &s(&rotation),
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let revocation = work.join("revocation.json");
    let o = thecal(&v(&[
        "firmware",
        "revoke",
        "--key",
        &s(&fresh),
        "--revoke-pub",
        &s(&pub_of(&fresh)),
        "--out",
        &s(&revocation),
    ]));
    assert!(o.status.success(), "{}", text(&o));
    // A statement is never overwritten.
    let o = thecal(&v(&[
        "firmware",
        "revoke",
        "--key",
        &s(&fresh),
        "--revoke-pub",
        &s(&pub_of(&fresh)),
        "--out",
        &s(&revocation),
    ]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    let state = work.join("implant");
    let (implant, addr) = start_implant(&state, &work, &factory, &pub_of(&maker));
    let pkey = s(&work.join("programmer.key"));
    let prog = |rest: &[&str]| -> Vec<String> {
        let mut a = v(&["programmer", "--key", &pkey, "--implant", &addr]);
        a.extend(rest.iter().map(|x| x.to_string()));
        a
    };
    let ok = |args: Vec<String>| -> Output {
        let o = thecal(&args);
        assert!(
            o.status.success(),
            "{args:?}:\n{}\nimplant:\n{}",
            text(&o),
            implant.log()
        );
        o
    };
    ok(prog(&["keygen"]));
    let token = state.join("proximity.token");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !token.exists() {
        assert!(Instant::now() < deadline, "no token: {}", implant.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(prog(&["enroll", "--token", &s(&token)]));

    // Bad input first: exit 2, one line, nothing sent.
    let o = thecal(&prog(&["revoke-key", &s(&rotation), "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("send it with `rotate-key`"),
        "{}",
        text(&o)
    );
    let tampered = work.join("tampered.json");
    let t = std::fs::read_to_string(&rotation).unwrap();
    let sig_at = t.find("\"signature\": \"").unwrap() + 14;
    let flipped = if &t[sig_at..sig_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    std::fs::write(
        &tampered,
        format!("{}{flipped}{}", &t[..sig_at], &t[sig_at + 1..]),
    )
    .unwrap();
    let o = thecal(&prog(&["rotate-key", &s(&tampered), "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("signature does not check"),
        "{}",
        text(&o)
    );

    // An image by the fresh key is refused before the rotation (exit 1).
    let o = thecal(&prog(&["update", &s(&by_fresh), "--yes"]));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // The rotation: reviewed, sent, read back.
    let r = json(&ok(prog(&["--json", "rotate-key", &s(&rotation), "--yes"])));
    assert_eq!(r["changed"], true, "{r}");
    let keys: Vec<(String, bool)> = r["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_string(),
                k["revoked"].as_bool().unwrap(),
            )
        })
        .collect();
    let hexkey = |k: &Path| {
        std::fs::read_to_string(pub_of(k))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(keys, vec![(hexkey(&maker), true), (hexkey(&fresh), false)]);
    assert!(
        r["review"].as_str().unwrap().contains("now:\n  key "),
        "{r}"
    );
    // Now the fresh key's image is installed and the maker's refused.
    let u = json(&ok(prog(&["--json", "update", &s(&by_fresh), "--yes"])));
    assert_eq!(u["running"]["version"], "1.1.0", "{u}");
    let o = thecal(&prog(&["update", &s(&by_maker), "--yes"]));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("revoked"), "{}", text(&o));
    // The fresh key is the last trusted one: its revocation is refused (exit 1).
    let o = thecal(&prog(&["revoke-key", &s(&revocation), "--yes"]));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no trusted key"), "{}", text(&o));
    assert!(
        implant
            .log()
            .contains("firmware signing keys changed: 1 trusted"),
        "{}",
        implant.log()
    );
    drop(implant);
    let _ = std::fs::remove_dir_all(&work);
}
