//! What the CLI's process tests share: running `thecal` with a deadline, and its output
//! in words for a failed assertion.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_thecal");

/// Runs thecal with `args`, writing `stdin` (none when `None`), and fails the test when it
/// has not finished within `deadline` (a hung command never hangs the suite).
pub fn run<S: AsRef<OsStr> + std::fmt::Debug>(
    args: &[S],
    stdin: Option<&str>,
    deadline: Duration,
) -> Output {
    run_program(BIN, args, stdin, deadline)
}

/// Runs `program` (thecal, or a wrapper that runs it) as [`run`] does.
pub fn run_program<S: AsRef<OsStr> + std::fmt::Debug>(
    program: &str,
    args: &[S],
    stdin: Option<&str>,
    deadline: Duration,
) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    if let (Some(text), Some(mut i)) = (stdin, child.stdin.take()) {
        let _ = i.write_all(text.as_bytes());
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("{program} {args:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// Exit status, stdout and stderr in words.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
