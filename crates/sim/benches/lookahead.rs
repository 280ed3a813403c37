//! A 14-day look ahead from an interrogated pump (SIM-055): baclofen 500 to 2000 mcg/mL
//! at 300 mcg/day with automatic bridging, read over the link's messages.

use criterion::{Criterion, criterion_group, criterion_main};
use thecal_sim::lookahead::{Options, look_ahead};

#[path = "../examples/support/interrogated.rs"]
mod interrogated;

fn bench(c: &mut Criterion) {
    let (profile, state, change) = interrogated::baclofen_concentration_change();
    c.bench_function("look ahead 14 days, 0.6 then 0.15 mL/day", |b| {
        b.iter(|| look_ahead(profile, &state, &change, &Options::default()).unwrap())
    });
    let (profile, state, change) = interrogated::steady_1_2_ml_per_day();
    c.bench_function("look ahead 14 days, 1.2 mL/day", |b| {
        b.iter(|| look_ahead(profile, &state, &change, &Options::default()).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
