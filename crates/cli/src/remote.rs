//! `thecal remote`: the patient's remote over the UDP bearer: enrolment with an invite
//! from the clinician, the patient bolus (never delivered twice), status and alarms in
//! plain words.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;
use thecal_link::{Body, Reply};
use thecal_pump::command::Command;

use crate::bearer::{ANSWER_TIMEOUT, Bearer, Client, Fail, Hello, finish};
use crate::keyfile::{DeviceKind, Key, random_u32};
use crate::programmer::{
    LinkArgs, fingerprint_text, mode_text, read_invitation, refused, span, status, status_json,
    when,
};

/// Arguments of `thecal remote`.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    #[command(flatten)]
    link: LinkArgs,
    #[command(subcommand)]
    command: RemoteCommand,
}

#[derive(Debug, Subcommand)]
enum RemoteCommand {
    /// Create a new remote key file (0600).
    Keygen,
    /// Enrol with the invite from the clinician; shows the fingerprint to read out.
    Enroll {
        /// The invite file written by `thecal programmer enroll-remote`.
        #[arg(long)]
        invite: PathBuf,
    },
    /// Ask for a patient bolus (as the prescription allows).
    Bolus,
    /// The pump's state: mode, reservoir, next refill, battery.
    Status,
    /// Active alarms, explained.
    Alarms,
    /// Cancel your own patient bolus while it runs (read back: none runs).
    CancelBolus {
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Acknowledge an alarm: silences its tone (a critical alarm sounds again while its
    /// cause persists), e.g. --alarm "low reservoir".
    Acknowledge {
        /// The alarm's name as `alarms` shows it.
        #[arg(long)]
        alarm: String,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Emergency device: reduce every basal flow by a percentage (1-50); never an
    /// increase, never a stop.
    Reduce {
        /// Percentage, 1 to 50.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=50))]
        percent: u8,
        /// Send without asking.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs `thecal remote`; `Err` is a one-line message for exit status 2.
pub fn run(args: RemoteArgs) -> Result<ExitCode, String> {
    finish(run_inner(args))
}

fn connect(args: &RemoteArgs) -> Result<(Key, Client), Fail> {
    args.link.connect(DeviceKind::Remote)
}

fn run_inner(args: RemoteArgs) -> Result<ExitCode, Fail> {
    let out = args.link.out();
    match &args.command {
        RemoteCommand::Keygen => {
            let path = args.link.key_path(DeviceKind::Remote)?;
            let key = Key::generate(&path, DeviceKind::Remote)?;
            out.emit(
                json!({"key": path.display().to_string(), "public": key.file.public, "key_id": key.key_id()}),
                &format!(
                    "new remote key in {} (0600), key id {}\nnext: ask your clinician for an \
                     invite, then: thecal remote --key {} --implant ADDR enroll --invite FILE",
                    path.display(),
                    key.key_id(),
                    path.display()
                ),
                None,
            );
            Ok(ExitCode::SUCCESS)
        }
        RemoteCommand::Enroll { invite } => {
            let mut key = Key::load(&args.link.key_path(DeviceKind::Remote)?, DeviceKind::Remote)?;
            let inv = read_invitation(invite, "invite")?;
            // The invite names the pump that opened the window; --implant overrides it.
            let address = match (&inv.address, args.link.address()) {
                (_, Ok(a)) => a,
                (Some(a), Err(_)) => a.clone(),
                (None, Err(e)) => return Err(e),
            };
            let bearer = Bearer::new(&address, ANSWER_TIMEOUT)?;
            let (client, pairing) =
                thecal_programmer::session::enrol(bearer, &mut key, &inv, &address)?;
            let fingerprint = client.session.fingerprint();
            let key_id = pairing.key_id;
            key.file.pairing = Some(pairing);
            key.save()?;
            out.emit(
                json!({"fingerprint": fingerprint, "fingerprint_text": fingerprint_text(fingerprint), "key_id": key_id}),
                &format!(
                    "Fingerprint: {} — tell your clinician\n(the remote works once the \
                     clinician has compared it and confirmed)",
                    fingerprint_text(fingerprint)
                ),
                Some(client.bearer.stats),
            );
            Ok(ExitCode::SUCCESS)
        }
        RemoteCommand::Bolus => {
            let mut key = Key::load(&args.link.key_path(DeviceKind::Remote)?, DeviceKind::Remote)?;
            key.pairing()?;
            // The request id is on disk before anything is sent: a retry (here or in a
            // later run after a lost answer) carries the same id, and the pump answers it
            // from memory instead of delivering twice.
            let request_id = match key.file.pending_bolus {
                Some(id) => id,
                None => {
                    let id = random_u32()?;
                    key.file.pending_bolus = Some(id);
                    key.save()?;
                    id
                }
            };
            let bearer = Bearer::new(&args.link.address_for(&key)?, ANSWER_TIMEOUT)?;
            let mut client = Client::connect(bearer, &mut key, Hello::Enrolled)?;
            let reply = client.request(Body::Pump(Command::PatientBolus { request_id }))?;
            key.file.pending_bolus = None;
            key.save()?;
            match reply {
                Reply::BolusAccepted { volume, ends_at } => {
                    // The pump's clock, to tell the patient when the bolus ends.
                    let _ = status(&mut client);
                    out.emit(
                        json!({"accepted": true, "volume": volume.to_string(), "ends_at": when(ends_at), "request_id": request_id}),
                        &format!(
                            "bolus accepted: {volume}, finished about {}",
                            when(ends_at)
                        ),
                        Some(client.bearer.stats),
                    );
                    Ok(ExitCode::SUCCESS)
                }
                other => {
                    // The pump's clock, to say when the next bolus is possible.
                    let _ = status(&mut client);
                    Err(refused(&other))
                }
            }
        }
        RemoteCommand::Status => {
            let (_key, mut client) = connect(&args)?;
            let s = status(&mut client)?;
            let text = format!(
                "pump:        {}\nreservoir:   {}\nnext refill: {}\nbattery:     {}\nalarms:      {}",
                mode_text(&s.mode),
                s.reservoir,
                s.next_refill.map_or_else(|| "—".into(), when),
                s.battery_life
                    .map_or_else(|| "unknown".into(), |d| format!("about {} left", span(d))),
                if s.alarms.is_empty() {
                    "none".to_string()
                } else {
                    format!("{} active (see: thecal remote alarms)", s.alarms.len())
                }
            );
            out.emit(status_json(&s), &text, Some(client.bearer.stats));
            Ok(ExitCode::SUCCESS)
        }
        RemoteCommand::Alarms => {
            let (_key, mut client) = connect(&args)?;
            let s = status(&mut client)?;
            let mut text = String::new();
            for a in &s.alarms {
                text += &format!(
                    "{} ({}):\n  {}\n",
                    a.kind.name(),
                    a.priority,
                    a.kind.patient_text()
                );
            }
            if text.is_empty() {
                text = "no active alarms".into();
            }
            out.emit(
                json!({"alarms": s.alarms.iter().map(|a| json!({
                    "kind": a.kind.name(), "priority": a.priority.to_string(),
                    "acknowledged": a.acknowledged, "text": a.kind.patient_text(),
                })).collect::<Vec<_>>()}),
                &text,
                Some(client.bearer.stats),
            );
            Ok(ExitCode::SUCCESS)
        }
        RemoteCommand::CancelBolus { yes } => {
            crate::programmer::cancel_bolus(&out, &args.link, DeviceKind::Remote, *yes)
        }
        RemoteCommand::Acknowledge { alarm, yes } => {
            crate::programmer::acknowledge(&out, &args.link, DeviceKind::Remote, alarm, *yes)
        }
        RemoteCommand::Reduce { percent, yes } => {
            crate::programmer::reduce(&out, &args.link, DeviceKind::Remote, *percent, *yes)
        }
    }
}
