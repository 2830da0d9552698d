//! Prints the scheduling benchmark as one table in seconds:
//! `cargo run --release --no-default-features --example bench_schedule [MAX_PODS [MIX…]]` (default: every
//! size and mix).
//!
//! Same fixtures as `benches/scheduling.rs` (see `benches/support/mod.rs` and docs/benchmarks.md). Each cell
//! is timed over repeated runs until half a second has passed (at least one run).

#[path = "../benches/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use support::{Mix, SIZES, ballast, baseline, bench_pools, lower_bound, pods, solve_input};

/// Mean wall time of `run` and its last result.
fn time<T>(mut run: impl FnMut() -> T) -> (Duration, T) {
    let start = Instant::now();
    let mut runs = 0u32;
    loop {
        let out = run();
        runs += 1;
        if start.elapsed() >= Duration::from_millis(500) {
            return (start.elapsed() / runs, out);
        }
    }
}

fn main() {
    let max_pods: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse().unwrap_or_else(|_| panic!("MAX_PODS must be a number, got {arg:?}")),
        None => usize::MAX,
    };
    let only: Vec<String> = std::env::args().skip(2).collect();
    for name in &only {
        assert!(Mix::ALL.iter().any(|m| m.name() == name), "unknown mix {name:?}");
    }
    let pools = bench_pools();
    let types: usize = pools.iter().map(|p| p.types.len()).sum();
    println!(
        "instance types: {types} ({})",
        pools.iter().map(|p| format!("{} {}", p.name, p.types.len())).collect::<Vec<_>>().join(", ")
    );
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "mix",
        "pods",
        "ballast pods/s",
        "nodes",
        "$/h",
        "÷ bound",
        "unsched.",
        "baseline pods/s",
        "nodes",
        "$/h",
        "÷ bound",
        "unsched.",
        "speed ×",
        "cost ×",
        "bound ms",
    ]);
    for mix in Mix::ALL.into_iter().filter(|m| only.is_empty() || only.iter().any(|n| n == m.name())) {
        for size in SIZES.into_iter().filter(|s| *s <= max_pods) {
            let pods = pods(mix, size);
            let (bound_time, bound) = time(|| lower_bound(&pods, &pools));
            let input = solve_input(&pods, &pools);
            let (ours_time, ours) = time(|| ballast(&input));
            let (base_time, base) = time(|| baseline(&pods, &pools));
            let mut row = vec![mix.name().to_string(), size.to_string()];
            for (elapsed, outcome) in [(ours_time, &ours), (base_time, &base)] {
                row.extend([
                    format!("{:.0}", size as f64 / elapsed.as_secs_f64()),
                    outcome.nodes.to_string(),
                    format!("{:.2}", outcome.cost),
                    bound.map_or("-".into(), |b| format!("{:.3}", outcome.cost / b)),
                    outcome.unschedulable.to_string(),
                ]);
            }
            row.push(format!("{:.2}", base_time.as_secs_f64() / ours_time.as_secs_f64()));
            row.push(format!("{:.3}", ours.cost / base.cost));
            row.push(format!("{:.0}", bound_time.as_secs_f64() * 1000.0));
            table.add_row(row);
        }
    }
    println!("{table}");
}
