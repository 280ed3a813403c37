//! Simulator speed: a year of 0.5 mL/day therapy with monthly refills on a
//! SynchroMed-class pump (2000 strokes a day), the stroke loop per stroke (30 days of
//! the same therapy, criterion's throughput in strokes), and a small population in
//! parallel. `cargo bench -p thecal-sim --bench engine`; the seven-year figure comes
//! from `thecal sim run scenarios/seven-years.toml`, which prints its own timing, and
//! its instruction count from `valgrind --tool=callgrind` of that command (SIM-077).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use thecal_sim::{engine, population, scenario};

fn one_year(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/seven-years.toml"
    );
    let text = std::fs::read_to_string(path).expect("scenario");
    let mut sc = scenario::parse(&text).expect("parses");
    sc.duration = thecal_rx::Duration::from_days(365);
    sc.events.retain(|(at, _)| *at < sc.duration);
    // The stroke loop: 30 days, no refill, no replacement; per stroke.
    let mut month = sc.clone();
    month.duration = thecal_rx::Duration::from_days(30);
    month.events.clear();
    month.expectations.clear();
    let strokes = engine::run(&month).totals.strokes;
    let mut group = c.benchmark_group("stroke_loop");
    group.sample_size(10);
    group.throughput(Throughput::Elements(strokes));
    group.bench_function("30_days_0.5mL_per_day", |b| {
        b.iter(|| engine::run(std::hint::black_box(&month)))
    });
    group.finish();

    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.bench_function("one_year_0.5mL_per_day_monthly_refills", |b| {
        b.iter(|| engine::run(std::hint::black_box(&sc)))
    });
    group.bench_function("population_8_patients_x_30_days", |b| {
        b.iter(|| {
            population::run_population(8, 1, false, |i, s| {
                engine::population_patient(i, s, 30.0 / 365.25)
            })
        })
    });
    group.finish();
}

criterion_group!(benches, one_year);
criterion_main!(benches);
