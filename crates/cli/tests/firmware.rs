//! `thecal firmware` as the maker runs it: keygen, sign, verify, inspect, and bad input.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn thecal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_thecal"))
        .args(args)
        .output()
        .expect("run thecal")
}

fn temp_dir(label: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("thecal-fw-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn one_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert_eq!(text.lines().count(), 1, "one line expected: {text:?}");
    assert!(!text.contains("panicked"), "{text}");
    text
}

/// A key, a body and an image signed as version 1.2.0, counter 5, for synchromed-40.
fn setup(label: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = temp_dir(label);
    let key = d.join("maker.key");
    let out = thecal(&["firmware", "keygen", "--out", s(&key)]);
    assert!(out.status.success(), "{out:?}");
    let body = d.join("firmware.bin");
    std::fs::write(
        &body,
        (0..5000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let img = d.join("firmware.img");
    let out = thecal(&[
        "firmware",
        "sign",
        "--key",
        s(&key),
        "--image-version",
        "1.2.0",
        "--security-counter",
        "5",
        "--hardware",
        "synchromed-40",
        "--out",
        s(&img),
        s(&body),
    ]);
    assert!(out.status.success(), "{out:?}");
    (d, key, img)
}

#[test]
fn keygen_sign_verify_and_inspect_fwu_011() {
    let (d, key, img) = setup("ok");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let public = std::fs::read_to_string(d.join("maker.key.pub")).unwrap();
    assert_eq!(public.trim().len(), 64);
    let pubfile = d.join("maker.key.pub");
    let out = thecal(&[
        "firmware",
        "verify",
        "--trusted-key",
        s(&pubfile),
        "--hardware",
        "synchromed-40",
        "--min-counter",
        "5",
        "--running",
        "1.1.9",
        s(&img),
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("verified") && text.contains("version 1.2.0") && text.contains("counter 5"),
        "{text}"
    );
    // The same with the key in hex, as JSON.
    let out = thecal(&[
        "firmware",
        "verify",
        "--trusted-key",
        public.trim(),
        "--hardware",
        "synchromed-40",
        "--json",
        s(&img),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["image"]["version"], "1.2.0");
    assert_eq!(v["image"]["body_len"], 5000);
    let out = thecal(&["firmware", "inspect", "--json", s(&img)]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["image"]["hardware"], "synchromed-40");
    assert_eq!(v["image"]["security_counter"], 5);
    assert_eq!(v["digest_matches"], true);
    let out = thecal(&["firmware", "inspect", s(&img)]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("matches header, body and protected TLVs")
    );
}

#[test]
fn refused_images_say_why_on_one_line_with_exit_1_fwu_011() {
    let (d, _key, img) = setup("refused");
    let pubfile = d.join("maker.key.pub");
    let verify = |image: &Path, extra: &[&str]| {
        let mut args = vec![
            "firmware",
            "verify",
            "--trusted-key",
            s(&pubfile),
            "--hardware",
            "synchromed-40",
        ];
        args.extend_from_slice(extra);
        args.push(s(image));
        thecal(&args)
    };
    // Rollback, downgrade, other hardware.
    let out = verify(&img, &["--min-counter", "6"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_line(&out).contains("rollback refused: security counter 5 is below the implant's 6")
    );
    let out = verify(&img, &["--running", "1.3.0"]);
    assert!(one_line(&out).contains("downgrade refused"));
    let out = thecal(&[
        "firmware",
        "verify",
        "--trusted-key",
        s(&pubfile),
        "--hardware",
        "prometra-20",
        s(&img),
    ]);
    assert!(
        one_line(&out).contains("image for hardware synchromed-40, this implant is prometra-20")
    );
    // Tampered body: hash mismatch (and inspect says so too).
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[100] ^= 1;
    let bad = d.join("bad.img");
    std::fs::write(&bad, &bytes).unwrap();
    let out = verify(&bad, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line(&out).contains("hash mismatch"));
    let out = thecal(&["firmware", "inspect", s(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("MISMATCH"));
    // Truncated.
    std::fs::write(&bad, &std::fs::read(&img).unwrap()[..4000]).unwrap();
    assert!(one_line(&verify(&bad, &[])).contains("truncated image"));
    // Another key.
    let other = d.join("other.key");
    assert!(
        thecal(&["firmware", "keygen", "--out", s(&other)])
            .status
            .success()
    );
    let out = thecal(&[
        "firmware",
        "verify",
        "--trusted-key",
        s(&d.join("other.key.pub")),
        "--hardware",
        "synchromed-40",
        s(&img),
    ]);
    assert!(one_line(&out).contains("a key this implant does not trust"));
}

#[test]
fn bad_input_is_one_line_with_exit_2_fwu_011() {
    let (d, key, img) = setup("badinput");
    let body = d.join("firmware.bin");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["firmware", "keygen", "--out", s(&key)],
            "never overwritten",
        ),
        (
            vec![
                "firmware",
                "sign",
                "--key",
                s(&key),
                "--image-version",
                "1.2",
                "--security-counter",
                "1",
                "--hardware",
                "synchromed-40",
                "--out",
                "/tmp/x.img",
                s(&body),
            ],
            "--image-version 1.2: expected MAJOR.MINOR.REVISION",
        ),
        (
            vec![
                "firmware",
                "sign",
                "--key",
                s(&key),
                "--image-version",
                "1.2.0",
                "--security-counter",
                "1",
                "--hardware",
                "pacemaker",
                "--out",
                "/tmp/x.img",
                s(&body),
            ],
            "--hardware pacemaker: unknown hardware; one of synchromed-20",
        ),
        (
            vec![
                "firmware",
                "sign",
                "--key",
                s(&key),
                "--image-version",
                "1.2.0",
                "--security-counter",
                "-1",
                "--hardware",
                "synchromed-40",
                "--out",
                "/tmp/x.img",
                s(&body),
            ],
            "--security-counter",
        ),
        (
            vec![
                "firmware",
                "verify",
                "--trusted-key",
                "abcd",
                "--hardware",
                "synchromed-40",
                s(&img),
            ],
            "--trusted-key abcd: neither 64 hex digits nor a readable .pub file",
        ),
        (
            vec!["firmware", "inspect", "/nonexistent/firmware.img"],
            "/nonexistent/firmware.img: cannot read",
        ),
    ];
    for (args, expect) in cases {
        let out = thecal(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let line = one_line(&out);
        assert!(line.contains(expect), "{args:?}: {line}");
    }
    // A key file others can read is refused.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = thecal(&[
        "firmware",
        "sign",
        "--key",
        s(&key),
        "--image-version",
        "1.2.0",
        "--security-counter",
        "1",
        "--hardware",
        "synchromed-40",
        "--out",
        s(&d.join("y.img")),
        s(&body),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out).contains("accessible by group or others"));
}
