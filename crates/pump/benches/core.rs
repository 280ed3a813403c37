//! Criterion benchmarks of the therapy core at 0.5 mL/day of baclofen (SynchroMed-class,
//! 250 nL strokes, 2000 strokes a day):
//!
//! - `stroke`: one delivered stroke, i.e. `handle_timeout` at `poll_timeout()`, its
//!   actions (one persist and the stroke) and `handle_stroke_done`;
//! - `tone_wake`: one wake that sounds an alarm tone and strokes nothing (a stopped
//!   pump's reminder, every hour);
//! - `day`: one day of therapy (2000 strokes).
//!
//! Each starts from a pump restored from the slots written after the set-up, so the
//! state (limiter bins, record size) is that of a pump in steady use.

#[path = "../examples/support/therapy.rs"]
mod therapy;

use std::hint::black_box;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use thecal_pump::command::{Command, Response, Role};
use thecal_pump::core::{Action, Pump};
use thecal_pump::journal::{DEFAULT_PAGES, NorFlash};
use thecal_pump::profile::HardwareProfile;
use thecal_rx::{Duration, Instant};

/// Restarts from the snapshot after this many strokes (the reservoir holds 160 000).
const STROKES_PER_FILL: u64 = 50_000;
/// Restarts the stopped pump from its snapshot after this many tone wakes.
const WAKES_PER_RESTORE: u64 = 1_000;

type Flash = NorFlash<DEFAULT_PAGES>;

struct Driver {
    pump: Pump,
    mem: Box<Flash>,
    now: Instant,
}

impl Driver {
    /// Carries out the queued actions in order; a stroke completes at once.
    fn drain(&mut self) -> u64 {
        let mut strokes = 0;
        loop {
            let mut stroke = false;
            match self.pump.poll_action() {
                None => break,
                Some(Action::Stroke) => stroke = true,
                Some(Action::Store(op)) => self.mem.apply(op).expect("a NOR write"),
                Some(action) => {
                    black_box(action);
                }
            }
            if stroke {
                strokes += 1;
                self.pump.handle_stroke_done(self.now, true);
            }
        }
        strokes
    }

    fn command(&mut self, cmd: Command) {
        let r = self.pump.handle_command(self.now, Role::Clinician, 0, &cmd);
        self.drain();
        assert!(matches!(r, Response::Accepted), "{:?}: {r:?}", cmd.kind());
    }

    /// One wake at `poll_timeout()`; returns the strokes it gave.
    fn wake(&mut self) -> u64 {
        let t = self.pump.poll_timeout().expect("a wake is scheduled");
        self.now = t;
        self.pump.handle_timeout(t);
        self.drain()
    }

    fn run_until(&mut self, until: Instant) -> u64 {
        let mut strokes = 0;
        while let Some(t) = self.pump.poll_timeout().filter(|t| *t <= until) {
            self.now = t;
            self.pump.handle_timeout(t);
            strokes += self.drain();
        }
        self.now = until;
        strokes
    }

    fn restore(mem: &Flash, now: Instant) -> Driver {
        let pump = Pump::restore(profile(), mem.bytes(), now);
        let mut d = Driver {
            pump,
            mem: Box::new(mem.clone()),
            now,
        };
        d.drain();
        d
    }
}

fn profile() -> HardwareProfile {
    HardwareProfile::synchromed_class(40)
}

/// A pump set up for 0.5 mL/day (stopped if `stop`), run for a day; its memory and time.
fn snapshot(stop: bool) -> (Box<Flash>, Instant) {
    let mut d = Driver {
        pump: Pump::new(profile(), Instant::ZERO),
        mem: Box::new(Flash::new()),
        now: Instant::ZERO,
    };
    d.drain();
    for command in therapy::setup(stop) {
        d.command(command);
    }
    d.run_until(Instant::ZERO.saturating_add(Duration::from_days(1)));
    (d.mem, d.now)
}

fn benches(c: &mut Criterion) {
    let (running, t_running) = snapshot(false);
    let (stopped, t_stopped) = snapshot(true);

    c.bench_function("stroke", |b| {
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            let mut done = 0;
            while done < iters {
                let mut d = Driver::restore(&running, t_running);
                let n = (iters - done).min(STROKES_PER_FILL);
                let start = StdInstant::now();
                let mut strokes = 0;
                while strokes < n {
                    strokes += d.wake();
                }
                total += start.elapsed();
                done += n;
            }
            total
        })
    });

    c.bench_function("tone_wake", |b| {
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            let mut done = 0;
            while done < iters {
                // 1000 hourly tones (41 days), far from the battery's end of service.
                let mut d = Driver::restore(&stopped, t_stopped);
                let n = (iters - done).min(WAKES_PER_RESTORE);
                let start = StdInstant::now();
                for _ in 0..n {
                    assert_eq!(d.wake(), 0);
                }
                total += start.elapsed();
                done += n;
            }
            total
        })
    });

    let mut g = c.benchmark_group("therapy");
    g.sample_size(10);
    g.bench_function("day_0.5mL", |b| {
        b.iter_batched(
            || Driver::restore(&running, t_running),
            |mut d| {
                let end = d.now.saturating_add(Duration::from_days(1));
                let strokes = d.run_until(end);
                assert!((1999..=2001).contains(&strokes), "{strokes} strokes");
                d
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(core_benches, benches);
criterion_main!(core_benches);
