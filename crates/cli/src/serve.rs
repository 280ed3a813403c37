//! `thecal serve`: the clinic service (thecal-clinic) on SQLite in a data directory, or on
//! PostgreSQL with `--database postgres://…`; migrations are applied at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use thecal_clinic::api::{AppState, Config};

/// Arguments of `thecal serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory of the SQLite database `clinic.db` and of the programmer station's key
    /// (`programmer/programmer.key`, 0600); created if absent. With `--database` it still
    /// holds the key.
    #[arg(long, default_value = "thecal-data")]
    data_dir: PathBuf,
    /// Database URL instead of the data directory: `postgres://user@host/db` or `sqlite://PATH`.
    #[arg(long)]
    database: Option<String>,
    /// Mark the session cookie Secure (when served over TLS, directly or behind a proxy).
    #[arg(long)]
    secure_cookies: bool,
    /// Refill visits the clinic can do per day (the calendar's daily list).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=500))]
    capacity: u16,
    /// The clinic's maximum refill interval in days.
    #[arg(long, default_value_t = 180, value_parser = clap::value_parser!(u64).range(1..=365))]
    max_interval_days: u64,
    /// Signing a prescription needs the password given within this many minutes.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    fresh_sign_in_minutes: u64,
    /// How long a break-glass grant lasts, in minutes.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=720))]
    break_glass_minutes: u64,
    /// A fresh demo clinic (new SQLite database in a temporary directory) with synthetic
    /// patients, demo logins, and a running virtual implant for each demo pump, enrolled
    /// with this server's programmer.
    #[arg(long, conflicts_with_all = ["database", "data_dir"])]
    demo: bool,
    /// With --demo: the virtual implants' time runs this many times faster than the wall
    /// clock (1 to 3600; 1 is real time), so a priming, a day of therapy or a dose-limit
    /// window passes while one watches.
    #[arg(long, value_name = "TIMES", default_value_t = 1, requires = "demo",
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    implant_speed: u32,
    /// Before serving, fill an empty clinic with this many synthetic patients for the
    /// benchmark (crates/clinic/bench.sh); a clinic with patients is left as it is.
    #[arg(long, value_name = "PATIENTS", conflicts_with = "demo",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    seed_bench: Option<u64>,
    /// Closed refill visits per synthetic patient (with --seed-bench).
    #[arg(long, default_value_t = 100, requires = "seed_bench",
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    seed_visits: u64,
}

/// Fault injection for the crash tests (documented in docs/clinic.md):
/// `THECAL_FAULT_PAUSE_AFTER_SEND_MS` holds every programming send this long after the
/// pump answered the command, before the read-back, so a test can kill the server there.
fn pause_after_send(station: &thecal_clinic::programming::Station) -> Result<(), String> {
    use thecal_clinic::programming::Step;
    let Ok(text) = std::env::var("THECAL_FAULT_PAUSE_AFTER_SEND_MS") else {
        return Ok(());
    };
    let ms: u64 = text.trim().parse().map_err(|_| {
        format!("THECAL_FAULT_PAUSE_AFTER_SEND_MS: '{text}' is not a whole number of milliseconds")
    })?;
    eprintln!("fault injection: each programming send pauses {ms} ms after the pump's answer");
    station.set_fault(Some(std::sync::Arc::new(move |step| {
        if step == Step::AfterSend {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        Ok(())
    })));
    Ok(())
}

/// How many demo pumps run as virtual implants.
const DEMO_IMPLANTS: usize = 4;

/// The URL with any password replaced by `***`.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Runs the service until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> Result<ExitCode, String> {
    let demo_dir = std::env::temp_dir().join(format!("thecal-demo-{}", std::process::id()));
    let url = match &args.database {
        Some(u) => u.clone(),
        None if args.demo => {
            let _ = std::fs::remove_dir_all(&demo_dir);
            std::fs::create_dir_all(&demo_dir).map_err(|e| format!("demo directory: {e}"))?;
            format!("sqlite://{}", demo_dir.join("clinic.db").display())
        }
        None => {
            std::fs::create_dir_all(&args.data_dir)
                .map_err(|e| format!("--data-dir {}: {e}", args.data_dir.display()))?;
            format!("sqlite://{}", args.data_dir.join("clinic.db").display())
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let station_dir = if args.demo {
        demo_dir.join("programmer")
    } else {
        args.data_dir.join("programmer")
    };
    rt.block_on(async move {
        // The programmer key: one per server (station), 0600, never shown.
        let station = std::sync::Arc::new(
            thecal_clinic::programming::Station::open(&station_dir)
                .map_err(|e| format!("programmer station {}: {e}", station_dir.display()))?,
        );
        pause_after_send(&station)?;
        let mut demo_implants = Vec::new();
        let store = thecal_clinic::storage::open(&url)
            .await
            .map_err(|e| format!("--database {}: {e}", redacted(&url)))?;
        if args.demo {
            let logins = thecal_clinic::demo::seed(store.clone(), chrono::Utc::now()).await?;
            println!(
                "demo clinic in {} (synthetic patients); logins, password {}:",
                demo_dir.display(),
                thecal_clinic::demo::DEMO_PASSWORD
            );
            for (user, role) in logins {
                println!("  {user} ({role})");
            }
            let (implants, skipped) = thecal_clinic::programming::demo::start(
                &store,
                &station,
                &demo_dir.join("implants"),
                DEMO_IMPLANTS,
                args.implant_speed,
            )
            .await?;
            println!("virtual implants (enrolled with this server's programmer):");
            for i in &implants {
                println!("  {} {} on udp://{}", i.serial, i.patient, i.addr);
            }
            for s in &skipped {
                println!("  not started: {s}");
            }
            demo_implants = implants;
        } else {
            let admin = std::env::var("THECAL_ADMIN_PASSWORD").ok();
            if let Some((name, password)) = thecal_clinic::bootstrap_admin(&store, admin)
                .await
                .map_err(|e| format!("THECAL_ADMIN_PASSWORD: {e}"))?
            {
                println!("first administrator: {name} / {password} (shown once)");
            }
        }
        if let Some(n) = args.seed_bench {
            let started = std::time::Instant::now();
            let step = (n / 10).max(1);
            let seeded = thecal_clinic::bench::seed(
                &store,
                n,
                args.seed_visits,
                args.max_interval_days,
                chrono::Utc::now(),
                |done| {
                    if done % step == 0 || done == n {
                        eprintln!("seeded {done} of {n} patients");
                    }
                },
            )
            .await?;
            match seeded {
                Some(s) => println!(
                    "seeded {} patients and {} refill visits in {:.1} s",
                    s.patients,
                    s.visits,
                    started.elapsed().as_secs_f64()
                ),
                None => println!("--seed-bench: the clinic has patients already; not seeded"),
            }
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("--listen {}: {e}", args.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!(
            "thecal clinic on {} ({}) listening on http://{addr}/api/v1/",
            redacted(&url),
            store.backend()
        );
        let state = AppState::new(
            store,
            Config {
                secure_cookies: args.secure_cookies,
                capacity_per_day: usize::from(args.capacity),
                clinic_max_days: args.max_interval_days,
                fresh_sign_in_minutes: args.fresh_sign_in_minutes,
                break_glass_minutes: args.break_glass_minutes,
                ..Config::default()
            },
        );
        thecal_clinic::serve_router(listener, thecal_clinic::app_with_station(state, station))
            .await
            .map_err(|e| format!("serve: {e}"))?;
        drop(demo_implants);
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn database_password_prints_as_stars() {
        assert_eq!(
            redacted("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redacted("sqlite:///x/clinic.db"), "sqlite:///x/clinic.db");
    }
}
