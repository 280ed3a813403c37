//! Virtual implants for the demo clinic: each demo patient's pump runs as a virtual
//! implant (the real core and link on a loopback thread), enrolled with the server's
//! programmer station through the wand's window and put in service with the clinic's
//! current prescription, so that a newcomer can interrogate, refill and reprogram a
//! running pump from the console.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use thecal_programmer::implant::{self, Running};

use super::{Station, put_in_service};
use crate::domain::change::rx_of;
use crate::domain::device::Device;
use crate::domain::records::{Implant, Patient, Prescription};
use crate::storage::{Kind, Storage};

/// A demo patient's running pump.
#[derive(Debug)]
pub struct DemoImplant {
    /// The patient's name.
    pub patient: String,
    /// The pump's serial.
    pub serial: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The implant (stopped when dropped).
    pub running: Running,
}

/// The virtual implant's hardware: the record's pump class and reservoir (the same
/// profile the look ahead's twin runs, so the forecast is of this pump).
fn model_of(imp: &Implant) -> Result<&'static str, String> {
    Device::of_implant(
        &imp.details.pump_model,
        thecal_rx::Volume::from_raw(imp.capacity_nl),
        None,
    )
    .profile_name()
    .ok_or_else(|| {
        format!(
            "{} is not a programmable pump model the virtual implant runs",
            imp.details.pump_model
        )
    })
}

/// Starts a virtual implant for each active demo implant with a prescription (at most
/// `max`), state directories under `dir`; implants that cannot be put in service as the
/// record says are skipped with the reason. Each implant's time runs `speed` times faster
/// than the wall clock (1: real time); each is put in service with its catheter primed
/// (the priming bolus runs its length in the implant's time).
///
/// # Errors
/// The store cannot be read.
pub async fn start(
    store: &Arc<dyn Storage>,
    station: &Arc<Station>,
    dir: &Path,
    max: usize,
    speed: u32,
) -> Result<(Vec<DemoImplant>, Vec<String>), String> {
    implant::set_voice(implant::Voice::Silent);
    let rows = store
        .with_status(Kind::Implant, "active")
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for row in rows {
        if out.len() >= max {
            break;
        }
        let imp: Implant = serde_json::from_str(&row.data).map_err(|e| e.to_string())?;
        let Some(rx_row) = store
            .latest(Kind::Prescription, imp.id, None)
            .await
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        let rx: Prescription = serde_json::from_str(&rx_row.data).map_err(|e| e.to_string())?;
        let Some(program) = rx_of(&rx) else { continue };
        let patient = match store
            .get(Kind::Patient, imp.patient_id)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(p) => serde_json::from_str::<Patient>(&p.data)
                .map(|p| p.details.name)
                .unwrap_or_default(),
            None => String::new(),
        };
        let serial = imp.details.serial.clone();
        let state = dir.join(&serial);
        let station = station.clone();
        let model = match model_of(&imp) {
            Ok(m) => m,
            Err(e) => {
                skipped.push(format!("{}: {e}", imp.details.serial));
                continue;
            }
        };
        let cm = imp.details.catheter_length_cm;
        let started = tokio::task::spawn_blocking(move || -> Result<Running, String> {
            let mut config = implant::Config::new(&state);
            config.model = Some(model.into());
            config.speed = speed;
            let running = implant::spawn(config, "127.0.0.1:0")?;
            let (token, _) = implant::wand(&state, std::time::Duration::from_secs(10), true)?;
            let token = std::fs::read_to_string(token).map_err(|e| e.to_string())?;
            station
                .enrol(&serial, &running.addr.to_string(), &token)
                .map_err(|e| e.to_string())?;
            put_in_service(
                &station,
                &serial,
                &program,
                cm,
                "demo: implant and first fill",
                thecal_pump::profile::HardwareProfile::by_model(model).map(|p| p.max_flow),
            )
            .map_err(|e| e.to_string())?;
            Ok(running)
        })
        .await
        .map_err(|e| e.to_string())?;
        match started {
            Ok(running) => out.push(DemoImplant {
                patient,
                serial: imp.details.serial.clone(),
                addr: running.addr,
                running,
            }),
            Err(e) => skipped.push(format!("{}: {e}", imp.details.serial)),
        }
    }
    Ok((out, skipped))
}
