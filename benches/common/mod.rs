//! What the Criterion benches share: their measuring windows, and how they
//! run under `cargo bench` and under `cargo test`.

use std::time::Duration;

use criterion::Criterion;

/// Short windows: the benches measure sub-microsecond to microsecond
/// operations, and each suite should finish in a couple of minutes.
pub(crate) fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// `cargo bench` passes `--bench`: `benches` (a `criterion_group!`) runs as
/// usual. `cargo test --all-targets -- --test-threads=4 …` runs the bench
/// binaries too, with libtest's flags, which Criterion's argument parser
/// refuses: then `all` gets one short pass with a configuration that reads
/// no arguments.
pub(crate) fn main(benches: fn(), all: impl FnOnce(&mut Criterion)) {
    if std::env::args().any(|a| a == "--bench") {
        benches();
        Criterion::default().configure_from_args().final_summary();
        return;
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(10))
        .nresamples(100);
    all(&mut c);
}
