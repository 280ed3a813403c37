//! `thecal implant`: a virtual implant in its own process — the real pump core and
//! telemetry endpoint on a UDP port, with a state directory as its non-volatile memory
//! (the implant itself is [`thecal_programmer::implant`]; this is its command line).

use std::net::UdpSocket;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use clap::Args;
use thecal_programmer::implant::{self as virtual_implant, Config, Voice};
pub use thecal_programmer::implant::{rfc3339, unix_ms, wand};

/// Arguments of `thecal implant`.
#[derive(Debug, Args)]
pub struct ImplantArgs {
    /// The implant's state directory (keys, registry, persistence journal, logs).
    #[arg(long)]
    state: std::path::PathBuf,
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
    /// Stored in the state directory at the first start (default synchromed-20); a later
    /// start may omit it, and a different one is refused.
    #[arg(long)]
    model: Option<String>,
    /// Open a proximity enrolment window at start, as if the wand were held over the pump.
    #[arg(long)]
    wand: bool,
    /// Print JSON lines on standard output: the first with the bound address, then one
    /// per status line (connection, command, refused traffic, alarm tone, wand,
    /// stopping), each `{"event": …, "text": …, "utc": …}` with its fields.
    #[arg(long)]
    json: bool,
    /// The factory firmware image (`thecal firmware sign`), installed at the first start
    /// so that the implant takes signed updates; needs --firmware-key.
    #[arg(long, requires = "firmware_key")]
    firmware: Option<std::path::PathBuf>,
    /// The maker's public key the implant trusts for firmware (64 hex digits or a .pub
    /// file), with --firmware.
    #[arg(long, requires = "firmware")]
    firmware_key: Option<String>,
}

/// Runs `thecal implant`; `Err` is a one-line message for exit status 2.
pub fn run(args: ImplantArgs) -> Result<ExitCode, String> {
    let exit_after = match args.exit_after {
        Some(d) if d.ms() > 0 => Some(StdDuration::from_millis(d.ms())),
        Some(d) => {
            return Err(format!("--exit-after {d}: expected a duration above zero"));
        }
        None => None,
    };
    let config = Config {
        state: args.state,
        speed: args.speed,
        exit_after,
        model: args.model,
        wand: args.wand,
        firmware: match (args.firmware, args.firmware_key) {
            (Some(image), Some(key)) => Some(thecal_programmer::firmware::FirmwareSetup {
                image,
                trusted_key: crate::firmware::trusted(&key)?,
            }),
            _ => None,
        },
    };
    let opened = virtual_implant::open(&config)?;
    let socket = UdpSocket::bind(&args.listen)
        .map_err(|e| format!("--listen {}: cannot bind: {e}", args.listen))?;
    virtual_implant::set_voice(if args.json { Voice::Json } else { Voice::Words });
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    }
    match virtual_implant::serve(&config, opened, socket, stop, |_| {}) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
