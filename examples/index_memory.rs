//! Heap and RSS of the state index at 5,000 nodes and 100,000 pods (issue 5's memory goal: ≤ 256 MiB for the
//! whole process). Feeds synthetic watch events through the watches' `Pump`, holds a planner snapshot, applies
//! churn, then relists every pod (a watch reconnect) and prints the figures. docs/memory.md records the results.
//!
//! ```text
//! cargo run --release --no-default-features --example index_memory            # RSS (system allocator)
//! cargo run --release --no-default-features --example index_memory -- --heap  # exact heap via dhat
//! cargo run --release --no-default-features --example index_memory -- --nodes 500 --pods 10000
//! cargo run --release --no-default-features --example index_memory -- --threads 4  # pods converted on 4 threads
//! ```

use std::{sync::Arc, time::Instant};

use ballast::state::{
    Cluster, Kind, Object,
    watch::{Pump, node_converter, pod_converter},
};
use kube::runtime::watcher::Event;

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

// Passes straight through to the system allocator unless a dhat profiler is running.
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const MIB: f64 = 1024.0 * 1024.0;

struct Args {
    heap: bool,
    nodes: usize,
    pods: usize,
    /// Threads converting pods, like the tokio workers the watch tasks run on in the binary.
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { heap: false, nodes: 5_000, pods: 100_000, threads: 1 };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut count = |flag: &str| -> Result<usize, String> {
            let v = it.next().ok_or(format!("{flag} needs a value"))?;
            v.parse().map_err(|_| format!("{flag}: {v:?} is not a count"))
        };
        match arg.as_str() {
            "--heap" => args.heap = true,
            "--nodes" => args.nodes = count("--nodes")?,
            "--pods" => args.pods = count("--pods")?,
            "--threads" => args.threads = count("--threads")?.max(1),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; use --heap, --nodes N, --pods N, --threads N"
                ));
            }
        }
    }
    Ok(args)
}

/// `VmRSS` and `VmHWM` (peak RSS) from /proc/self/status, in MiB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn report(phase: &str, heap: bool) {
    let (rss, peak) = rss();
    if heap {
        let s = dhat::HeapStats::get();
        println!(
            "{phase:<34} heap {:>7.1} MiB (peak {:>7.1} MiB, {:>9} blocks)   RSS {rss:>7.1} MiB (peak {peak:>7.1})",
            s.curr_bytes as f64 / MIB,
            s.max_bytes as f64 / MIB,
            s.curr_blocks,
        );
    } else {
        println!("{phase:<34} RSS {rss:>7.1} MiB (peak {peak:>7.1} MiB)");
    }
}

/// One pod list, its objects converted on `args.threads` threads (each with a pump of its own), as a watch
/// task's allocations land on whichever worker thread runs it.
fn list_pods(cluster: &Cluster, pump: &mut Pump<k8s_openapi::api::core::v1::Pod>, args: &Args) {
    pump.handle(Event::Init);
    if args.threads == 1 {
        (0..args.pods).for_each(|i| pump.handle(Event::InitApply(synthetic::pod(i, args.nodes))));
    } else {
        std::thread::scope(|scope| {
            for t in 0..args.threads {
                scope.spawn(move || {
                    let mut pump = Pump::new(cluster.clone(), Kind::Pod, pod_converter());
                    (t..args.pods)
                        .step_by(args.threads)
                        .for_each(|i| pump.handle(Event::InitApply(synthetic::pod(i, args.nodes))));
                });
            }
        });
    }
    pump.handle(Event::InitDone);
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("index_memory: {e}");
            std::process::exit(2);
        }
    };
    let _profiler = args.heap.then(|| dhat::Profiler::builder().testing().build());
    let started = Instant::now();
    report("start", args.heap);

    let cluster = Cluster::new();
    cluster.register(Kind::Node);
    cluster.register(Kind::Pod);
    let mut nodes = Pump::new(cluster.clone(), Kind::Node, node_converter());
    nodes.handle(Event::Init);
    (0..args.nodes).for_each(|i| nodes.handle(Event::InitApply(synthetic::node(i))));
    nodes.handle(Event::InitDone);
    let mut pods = Pump::new(cluster.clone(), Kind::Pod, pod_converter());
    list_pods(&cluster, &mut pods, &args);
    assert!(cluster.synced());
    report(&format!("indexed {} nodes, {} pods", args.nodes, args.pods), args.heap);

    // A planner holds a snapshot while 1% of the pods change (bound or re-bound).
    let held = cluster.snapshot();
    for (n, pod) in held.pods.values().step_by(100).enumerate() {
        let mut pod = (**pod).clone();
        pod.node_name = Some(synthetic::node_name(n % args.nodes.max(1)));
        cluster.apply(Object::Pod(Arc::new(pod)));
    }
    report("1% churn with a snapshot held", args.heap);
    drop(held);

    // A watch reconnect: the relisted pods are buffered until InitDone replaces the old ones.
    list_pods(&cluster, &mut pods, &args);
    report("after a full pod relist", args.heap);

    let snap = cluster.snapshot();
    println!(
        "index: {} nodes, {} pods ({} pending, {} daemonset pods), {:.1}s",
        snap.nodes.len(),
        snap.pods.len(),
        snap.pending_pods().count(),
        snap.daemonset_pods().count(),
        started.elapsed().as_secs_f64()
    );
}
