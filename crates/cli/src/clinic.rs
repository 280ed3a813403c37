//! `thecal clinic …`: work on a clinic's database without the service.
//!
//! `thecal clinic export-fhir` writes a patient's record as a FHIR R4 Bundle (R4B model,
//! see docs/fhir.md). The database is opened as `thecal serve` opens it (migrations
//! applied); the export is audited under the clinic account named with `--user`, which
//! must be active and allowed to read records (physician, nurse, pharmacist or auditor; the
//! audit trail needs an auditor), exactly as the `$everything` endpoint.

use std::path::PathBuf;
use std::process::ExitCode;

use thecal_clinic::auth::Role;
use thecal_clinic::storage::Actor;

/// Arguments of `thecal clinic`.
#[derive(Debug, clap::Args)]
pub struct ClinicArgs {
    #[command(subcommand)]
    command: ClinicCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ClinicCommand {
    /// A patient's record as a FHIR R4 Bundle (JSON), the export audited.
    ExportFhir(ExportArgs),
}

/// Arguments of `thecal clinic export-fhir`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Directory of the SQLite database `clinic.db` (as `thecal serve --data-dir`).
    #[arg(long, default_value = "thecal-data")]
    data_dir: PathBuf,
    /// Database URL instead of the data directory: `postgres://user@host/db` or `sqlite://PATH`.
    #[arg(long)]
    database: Option<String>,
    /// The patient's id (as in `/api/v1/patients/{id}`).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    patient: i64,
    /// The clinic account the export is audited under (physician, nurse, pharmacist or
    /// auditor).
    #[arg(long)]
    user: String,
    /// Add the record's audit trail as AuditEvent resources (the account must be an
    /// auditor).
    #[arg(long)]
    audit: bool,
    /// Write the Bundle to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `thecal clinic`.
pub fn run(args: ClinicArgs) -> Result<ExitCode, String> {
    match args.command {
        ClinicCommand::ExportFhir(a) => export(a),
    }
}

fn export(a: ExportArgs) -> Result<ExitCode, String> {
    let url = match &a.database {
        Some(u) => u.clone(),
        None => {
            let db = a.data_dir.join("clinic.db");
            if !db.exists() {
                return Err(format!(
                    "--data-dir {}: no clinic.db there (give the directory `thecal serve` uses, or --database)",
                    a.data_dir.display()
                ));
            }
            format!("sqlite://{}", db.display())
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        let store = thecal_clinic::storage::open(&url)
            .await
            .map_err(|e| format!("--database: {e}"))?;
        let user = store
            .user_by_name(&a.user)
            .await
            .map_err(|e| e.to_string())?
            .filter(|u| u.active)
            .ok_or_else(|| format!("--user {}: no active account of that name", a.user))?;
        let role = Role::parse(&user.role).ok_or_else(|| format!("--user {}: unknown role", a.user))?;
        if !matches!(
            role,
            Role::Physician | Role::Nurse | Role::Pharmacist | Role::Auditor
        ) {
            return Err(format!(
                "--user {}: a {} may not read records; allowed: physician, nurse, pharmacist, auditor",
                a.user,
                role.as_str()
            ));
        }
        if a.audit && role != Role::Auditor {
            return Err(format!(
                "--audit: a {} may not read the audit trail; auditors only",
                role.as_str()
            ));
        }
        let actor = Actor {
            user_id: user.id,
            username: user.username.clone(),
        };
        let request = format!(
            "thecal clinic export-fhir --patient {}{}",
            a.patient,
            if a.audit { " --audit" } else { "" }
        );
        let bundle = thecal_clinic::fhir::api::export_patient(
            &store,
            &actor,
            a.patient,
            a.audit,
            &request,
            chrono::Utc::now(),
        )
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("--patient {}: no such patient", a.patient))?;
        let text = serde_json::to_string_pretty(&bundle).map_err(|e| e.to_string())?;
        match &a.out {
            Some(path) => std::fs::write(path, text + "\n")
                .map_err(|e| format!("--out {}: {e}", path.display()))?,
            None => println!("{text}"),
        }
        Ok(ExitCode::SUCCESS)
    })
}
