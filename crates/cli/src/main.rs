//! `thecal`: the one binary of the thecal intrathecal drug-delivery system.
//!
//! Subcommands: `calc` (dosing arithmetic, refill planning, prescription checks), `sim`
//! (the digital twin), `implant` (a virtual implant on a UDP port), `programmer` (the
//! clinician programmer), `remote` (the patient's remote), `serve` (the clinic),
//! `clinic` (the clinic's database: FHIR export) and `firmware` (signing implant firmware). Human output by default, `--json` for machines. Bad input gives a one-line error naming
//! the argument and what is accepted, with exit status 2 — never a panic or backtrace.

mod bearer;
mod calc;
mod clinic;
mod firmware;
mod implant;
mod keyfile;
mod programmer;
mod remote;
mod serve;
mod sim;
mod words;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// thecal: an open intrathecal drug-delivery system.
#[derive(Debug, Parser)]
#[command(
    name = "thecal",
    version,
    about = "thecal: an open intrathecal drug-delivery system: dosing calculators, the digital twin, a virtual implant, the clinician programmer and the patient remote",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dosing arithmetic: dose, rate, refill planning, reconciliation, prescription checks.
    Calc(calc::CalcArgs),
    /// The digital twin: scenarios, accuracy (trumpet curve), population Monte Carlo.
    Sim(sim::SimArgs),
    /// A virtual implant: the real pump core and telemetry on a loopback UDP port.
    Implant(implant::ImplantArgs),
    /// The clinician programmer: enrol, interrogate, program, refill, logs.
    Programmer(programmer::ProgrammerArgs),
    /// The patient's remote: enrol, bolus, status, alarms.
    Remote(remote::RemoteArgs),
    /// The clinic service: records, workflows and the JSON API on SQLite or PostgreSQL.
    Serve(serve::ServeArgs),
    /// Firmware images: create a signing key, sign, verify, inspect.
    Firmware(firmware::FirmwareArgs),
    /// The clinic's database without the service: export a record as FHIR.
    Clinic(clinic::ClinicArgs),
}

/// Renders a clap error as one line: what was wrong, with the argument it concerns.
fn one_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let t = line.trim();
        if t.starts_with("Usage:") || t.starts_with("For more information") {
            break;
        }
        if !t.is_empty() {
            parts.push(t.to_string());
        }
    }
    parts.join(" ")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(
                    e.kind(),
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            eprintln!("{}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    // The calculator and the simulator only print: like other Unix tools they end quietly
    // when the reader of their output goes away (`thecal sim run … | head`). The serving
    // commands keep SIGPIPE ignored, as their sockets need.
    if matches!(
        cli.command,
        Command::Calc(_) | Command::Sim(_) | Command::Firmware(_)
    ) {
        sigpipe::reset();
    }
    let result = match cli.command {
        Command::Calc(args) => calc::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Implant(args) => implant::run(args),
        Command::Programmer(args) => programmer::run(args),
        Command::Remote(args) => remote::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Firmware(args) => firmware::run(args),
        Command::Clinic(args) => clinic::run(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
