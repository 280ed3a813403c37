//! Runs N days of 0.5 mL/day baclofen therapy on a SynchroMed-class pump and prints, per
//! day, the strokes, wake-ups (every `handle_*` call), persist writes and bytes, alarm
//! tones and log entries.
//!
//! ```text
//! cargo run --release -p thecal-pump --example stroke_cost -- 2          # therapy
//! cargo run --release -p thecal-pump --example stroke_cost -- 2 stopped  # tones only
//! cargo run --release -p thecal-pump --example stroke_cost -- 2 nopersist  # no records
//! cargo run --release -p thecal-pump --example stroke_cost -- 2 classify   # tone, battery wakes
//! ```
//!
//! Run under `valgrind --tool=callgrind` with 1 and with 2 days: the set-up cost is
//! the same in both, so the difference in instructions is the cost of one day; divided
//! by the strokes (or tones, with `stopped`) of a day it is the cost of one wake.

#[path = "support/therapy.rs"]
mod therapy;

use thecal_pump::command::{Command, Response, Role};
use thecal_pump::core::{Action, Pump};
use thecal_pump::journal::{DEFAULT_PAGES, NorFlash, StoreOp};
use thecal_pump::profile::HardwareProfile;
use thecal_rx::{Duration, Instant};

const DAY: Duration = Duration::from_days(1);

/// Counters of everything the driver did.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    strokes: u64,
    wakes: u64,
    timeout_wakes: u64,
    stroke_done_wakes: u64,
    command_wakes: u64,
    /// Timeout wakes due to an alarm tone.
    tone_wakes: u64,
    /// Timeout wakes due to the battery's next check.
    battery_wakes: u64,
    /// Timeout wakes that issued no stroke and sounded no tone.
    idle_wakes: u64,
    persists: u64,
    persist_bytes: u64,
    max_persist: u64,
    erases: u64,
    tones: u64,
    logs: u64,
    fault_logs: u64,
}

impl Counts {
    fn minus(self, o: Counts) -> Counts {
        Counts {
            strokes: self.strokes - o.strokes,
            wakes: self.wakes - o.wakes,
            timeout_wakes: self.timeout_wakes - o.timeout_wakes,
            stroke_done_wakes: self.stroke_done_wakes - o.stroke_done_wakes,
            command_wakes: self.command_wakes - o.command_wakes,
            tone_wakes: self.tone_wakes - o.tone_wakes,
            battery_wakes: self.battery_wakes - o.battery_wakes,
            idle_wakes: self.idle_wakes - o.idle_wakes,
            persists: self.persists - o.persists,
            persist_bytes: self.persist_bytes - o.persist_bytes,
            erases: self.erases - o.erases,
            max_persist: self.max_persist,
            tones: self.tones - o.tones,
            logs: self.logs - o.logs,
            fault_logs: self.fault_logs - o.fault_logs,
        }
    }
}

/// The firmware side: the journal's NOR flash, a motor that always completes, and
/// counters.
struct Driver {
    pump: Pump,
    mem: Box<NorFlash<DEFAULT_PAGES>>,
    now: Instant,
    c: Counts,
    /// Whether to tell tone and battery wakes from the others. The two queries this
    /// takes before every wake are the driver's, not the firmware's, and cost about as
    /// much as a tenth of a stroke, so they are left out of the measured runs.
    classify: bool,
}

impl Driver {
    /// Carries out the queued actions in order; returns (strokes, tones) seen.
    fn drain(&mut self) -> (u64, u64) {
        let (mut strokes, mut tones) = (0, 0);
        loop {
            let mut stroke = false;
            match self.pump.poll_action() {
                None => break,
                Some(Action::Stroke) => stroke = true,
                Some(Action::Store(op)) => {
                    self.mem.apply(op).expect("a write NOR flash can do");
                    if let StoreOp::Program { bytes, .. } = op {
                        self.c.persists += 1;
                        self.c.persist_bytes += bytes.len() as u64;
                        self.c.max_persist = self.c.max_persist.max(bytes.len() as u64);
                    } else {
                        self.c.erases += 1;
                    }
                }
                Some(Action::Alarm(_)) => tones += 1,
                Some(Action::Log(_)) => self.c.logs += 1,
                Some(Action::FaultLog(_)) => self.c.fault_logs += 1,
            }
            if stroke {
                strokes += 1;
                self.c.wakes += 1;
                self.c.stroke_done_wakes += 1;
                self.pump.handle_stroke_done(self.now, true);
            }
        }
        self.c.strokes += strokes;
        self.c.tones += tones;
        (strokes, tones)
    }

    fn command(&mut self, cmd: Command) {
        self.c.wakes += 1;
        self.c.command_wakes += 1;
        let r = self.pump.handle_command(self.now, Role::Clinician, 0, &cmd);
        self.drain();
        match r {
            Response::Refused(why) => eprintln!("{:?} refused: {why}", cmd.kind()),
            Response::Accepted => {}
            other => eprintln!("{:?}: {other:?}", cmd.kind()),
        }
    }

    /// Sleeps and wakes at every `poll_timeout()` up to `until`.
    fn run_until(&mut self, until: Instant) {
        while let Some(t) = self.pump.poll_timeout().filter(|t| *t <= until) {
            let (tone_due, battery_due) = if self.classify {
                (
                    self.pump.alarms().next_due() == Some(t),
                    self.pump.battery().next_check(self.now) == Some(t),
                )
            } else {
                (false, false)
            };
            self.now = t;
            self.c.wakes += 1;
            self.c.timeout_wakes += 1;
            self.pump.handle_timeout(t);
            let (strokes, tones) = self.drain();
            if tone_due {
                self.c.tone_wakes += 1;
            } else if battery_due {
                self.c.battery_wakes += 1;
            }
            if strokes == 0 && tones == 0 {
                self.c.idle_wakes += 1;
            }
        }
        self.now = until;
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let days: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let modes: Vec<String> = args.collect();
    let has = |m: &str| modes.iter().any(|a| a == m);
    let stopped = has("stopped");
    // `nopersist`: the same therapy without any record, to tell the core's own cost
    // from the journal's.
    let persist = !has("nopersist");
    // `classify`: count tone and battery wakes apart (else their columns read 0).
    let classify = has("classify");

    let mut d = Driver {
        pump: Pump::new(HardwareProfile::synchromed_class(40), Instant::ZERO),
        mem: Box::new(NorFlash::new()),
        now: Instant::ZERO,
        c: Counts::default(),
        classify,
    };
    d.pump.set_persistence(persist);
    d.drain();
    for command in therapy::setup(stopped) {
        d.command(command);
    }
    let setup = d.c;
    println!(
        "set-up: {} wakes, {} persists ({} bytes), {} log entries",
        setup.wakes, setup.persists, setup.persist_bytes, setup.logs
    );
    println!(
        "day strokes wakes (timeout stroke_done command) tone_wakes battery_wakes idle_wakes \
         persists bytes/persist max_bytes page_erases tones logs fault_logs"
    );
    let mut prev = d.c;
    for day in 1..=days {
        d.run_until(Instant::ZERO.saturating_add(Duration::from_ms(DAY.ms() * day)));
        let c = d.c.minus(prev);
        prev = d.c;
        println!(
            "{day} {} {} ({} {} {}) {} {} {} {} {:.1} {} {} {} {} {}",
            c.strokes,
            c.wakes,
            c.timeout_wakes,
            c.stroke_done_wakes,
            c.command_wakes,
            c.tone_wakes,
            c.battery_wakes,
            c.idle_wakes,
            c.persists,
            c.persist_bytes as f64 / c.persists.max(1) as f64,
            c.max_persist,
            c.erases,
            c.tones,
            c.logs,
            c.fault_logs
        );
    }
    let s = d.pump.status();
    println!(
        "after {days} days: delivered {} (ideal {}), missed {}, reservoir {}, mode {:?}, alarms {:?}, dropped actions {}",
        s.delivered,
        d.pump.ideal_delivered(),
        s.missed,
        s.reservoir,
        s.mode,
        s.alarms.iter().map(|a| a.kind).collect::<Vec<_>>(),
        d.pump.dropped_actions()
    );
}
