//! Criterion benchmarks: iopt against aarch64-paging, the x86_64 crate and a plain fill,
//! one criterion group per workload (W1..W7; see docs/benchmarks.md).
//!
//! The workloads are the ones `iopt bench` runs, from this crate (`iopt_bench`). Each
//! iteration builds what the workload needs, then times only the operations
//! (`iter_custom`). The size defaults to 1 GiB; `IOPT_BENCH_SIZE=64M cargo bench -p
//! iopt-bench` takes a smaller one.
//!
//! Besides criterion's timings, every benchmark prints the table pages its subject used.

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

use iopt_bench::{self as workloads, Params, Subject, Workload, units};

/// `IOPT_BENCH_SIZE` (e.g. `64M`), else 1 GiB.
fn params() -> Params {
    let size = std::env::var("IOPT_BENCH_SIZE")
        .ok()
        .map(|s| units::parse_size(&s).unwrap_or_else(|e| panic!("IOPT_BENCH_SIZE: {e}")))
        .unwrap_or(workloads::GIB);
    assert!(
        size >= 64 << 10 && size.is_multiple_of(64 << 10),
        "IOPT_BENCH_SIZE must be a multiple of 64K"
    );
    Params::new(size)
}

fn bench_workloads(c: &mut Criterion) {
    let p = params();
    workloads::warm_allocator();
    for w in Workload::ALL {
        let mut group = c.benchmark_group(w.name());
        // Iterations take milliseconds: few, flat samples keep `cargo bench` to minutes.
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        for s in w.subjects() {
            if !s.can_run(w, p.size) {
                continue;
            }
            let probe = workloads::run(s, w, &p);
            group.throughput(Throughput::Elements(probe.ops));
            let id = match s {
                Subject::Iopt(_) => format!("iopt {}", s.name()),
                _ => s.name().into_owned(),
            };
            println!(
                "{}/{id}: {} ({} per op); table pages: {} at most, {} at the end{}",
                w.name(),
                w.describe(&p),
                w.op(),
                probe.table_pages,
                probe.table_pages_end,
                s.note(w).map(|n| format!(" [{n}]")).unwrap_or_default()
            );
            group.bench_function(id, |b| {
                b.iter_custom(|iters| (0..iters).map(|_| workloads::run(s, w, &p).elapsed).sum())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_workloads);
criterion_main!(benches);
