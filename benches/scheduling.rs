//! Scheduling throughput, shaped like Karpenter's `scheduling_benchmark_test.go` (400 instance types from
//! the bundled catalog, seed 42, 1 to 20,000 pods per mix); see docs/benchmarks.md for the conditions.
//! `cargo bench --no-default-features --bench scheduling [-- FILTER]`; throughput reads as pods/s.

mod support;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use support::{Mix, SIZES, ballast, baseline, bench_pools, pods, solve_input};

fn scheduling(c: &mut Criterion) {
    let pools = bench_pools();
    for mix in Mix::ALL {
        let mut group = c.benchmark_group(mix.name());
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for size in SIZES {
            let pods = pods(mix, size);
            group.throughput(Throughput::Elements(size as u64));
            let input = solve_input(&pods, &pools);
            group.bench_with_input(BenchmarkId::new("ballast", size), &input, |b, input| {
                b.iter(|| ballast(input))
            });
            group.bench_with_input(BenchmarkId::new("baseline", size), &pods, |b, pods| {
                b.iter(|| baseline(pods, &pools))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, scheduling);
criterion_main!(benches);
