//! The firmware's scripted stream on x86-64 (PUMP-048): the same source the Cortex-M4
//! image runs on QEMU (`firmware-size/src/script.rs`). Where `THECAL_FIRMWARE_OUTPUT`
//! names the QEMU run's output (test.sh sets it when the target and QEMU are present),
//! every report line must agree exactly, and the RAM it reports (static + the painted
//! stack's high-water mark) must be within the 32 KiB budget (PUMP-050).
#![allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

#[path = "../../../firmware-size/src/script.rs"]
mod script;

use thecal_pump::command::Mode;
use thecal_pump::core::Pump;

fn host_report() -> String {
    let mut flash = Box::new(script::Flash::new());
    let mut out = String::new();
    script::run(&mut flash, &mut out, |mem, now| {
        Box::leak(Box::new(Pump::restore(script::profile(), mem, now)))
    })
    .unwrap();
    out
}

fn field<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
        .unwrap_or_else(|| panic!("no {key} in {report}"))
}

#[test]
fn the_scripted_stream_runs_its_days_on_the_host_pump_048() {
    let report = host_report();
    // Five days of 0.4–0.8 mL/day with boluses: about 3 mL, every write allowed by the
    // flash, no command refused, the pump running after the cut and the restart.
    let delivered: u64 = field(&report, "delivered_nl").parse().unwrap();
    assert!(
        (2_300_000..4_000_000).contains(&delivered),
        "{delivered}\n{report}"
    );
    assert!(field(&report, "writes").ends_with("refused 0"), "{report}");
    assert_eq!(
        field(&report, "commands_refused"),
        format!("0 mode {:?}", Mode::Running),
        "{report}"
    );
    // The run is deterministic: a second run prints the same.
    assert_eq!(report, host_report());
}

#[test]
fn the_cortex_m4_run_agrees_with_the_host_exactly_pump_048() {
    let Ok(path) = std::env::var("THECAL_FIRMWARE_OUTPUT") else {
        eprintln!(
            "notice: THECAL_FIRMWARE_OUTPUT is not set (no QEMU run): the comparison with \
             the Cortex-M4 image is skipped"
        );
        return;
    };
    let qemu = std::fs::read_to_string(&path).unwrap();
    let host = host_report();
    for line in host.lines() {
        assert!(
            qemu.lines().any(|l| l == line),
            "the Cortex-M4 run disagrees: the host printed {line:?}\nhost:\n{host}\nqemu:\n{qemu}"
        );
    }
}

/// The RAM budget of the implant's MCU: static RAM and stack together (PUMP-050).
const RAM_BUDGET: u64 = 32 * 1024;

#[test]
fn the_cortex_m4_run_keeps_its_ram_within_32_kib_pump_050() {
    let Ok(path) = std::env::var("THECAL_FIRMWARE_OUTPUT") else {
        eprintln!(
            "notice: THECAL_FIRMWARE_OUTPUT is not set (no QEMU run): the RAM budget of the \
             Cortex-M4 image is not checked"
        );
        return;
    };
    let qemu = std::fs::read_to_string(&path).unwrap();
    let figure = |key: &str| -> u64 {
        field(&qemu, key)
            .parse()
            .unwrap_or_else(|e| panic!("{key} is not a number ({e}):\n{qemu}"))
    };
    let (statics, stack, total) = (
        figure("ram_static"),
        figure("stack_high_water"),
        figure("ram_total"),
    );
    // The image measured both parts (the stack painted at start and read back at the
    // end): the total is their sum, and neither is zero.
    assert!(statics > 0 && stack > 0, "{qemu}");
    assert_eq!(total, statics + stack, "{qemu}");
    assert!(
        total < RAM_BUDGET,
        "RAM (static {statics} + stack high-water {stack}) = {total} bytes is over the \
         {RAM_BUDGET}-byte budget\n{qemu}"
    );
}
