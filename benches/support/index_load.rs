//! The load of the memory measurements (`examples/index_memory.rs`, `examples/index_heap.rs`): lists synthetic
//! nodes and pods through the watches' `Pump`, holds a planner snapshot while 1% of the pods change, then relists
//! every pod (a watch reconnect), calling `report` after each phase.

use std::{sync::Arc, time::Instant};

use ballast::state::{
    Cluster, Kind, Object,
    watch::{Pump, node_converter, pod_converter},
};
use kube::runtime::watcher::Event;

#[path = "synthetic.rs"]
mod synthetic;

pub struct Size {
    pub nodes: usize,
    pub pods: usize,
}

/// `--nodes N --pods N` (default 5,000 and 100,000); other arguments are passed to `other`, which returns
/// false for ones it does not know.
pub fn parse_args(mut other: impl FnMut(&str) -> bool) -> Result<Size, String> {
    let mut size = Size { nodes: 5_000, pods: 100_000 };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut count = |flag: &str| -> Result<usize, String> {
            let v = it.next().ok_or(format!("{flag} needs a value"))?;
            v.parse().map_err(|_| format!("{flag}: {v:?} is not a count"))
        };
        match arg.as_str() {
            "--nodes" => size.nodes = count("--nodes")?,
            "--pods" => size.pods = count("--pods")?,
            other_arg if other(other_arg) => {}
            unknown => return Err(format!("unknown argument {unknown:?}")),
        }
    }
    Ok(size)
}

/// `VmRSS` and `VmHWM` (peak RSS) from /proc/self/status, in MiB.
pub fn rss() -> (f64, f64) {
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

fn list_pods(pump: &mut Pump<k8s_openapi::api::core::v1::Pod>, size: &Size) {
    pump.handle(Event::Init);
    (0..size.pods).for_each(|i| pump.handle(Event::InitApply(synthetic::pod(i, size.nodes))));
    pump.handle(Event::InitDone);
}

pub fn run(size: &Size, report: impl Fn(&str)) {
    let started = Instant::now();
    report("start");

    let cluster = Cluster::new();
    cluster.register(Kind::Node);
    cluster.register(Kind::Pod);
    let mut nodes = Pump::new(cluster.clone(), Kind::Node, node_converter());
    nodes.handle(Event::Init);
    (0..size.nodes).for_each(|i| nodes.handle(Event::InitApply(synthetic::node(i))));
    nodes.handle(Event::InitDone);
    let mut pods = Pump::new(cluster.clone(), Kind::Pod, pod_converter());
    list_pods(&mut pods, size);
    assert!(cluster.synced());
    report(&format!("indexed {} nodes, {} pods", size.nodes, size.pods));

    // A planner holds a snapshot while 1% of the pods change (bound or re-bound).
    let held = cluster.snapshot();
    for (n, pod) in held.pods.values().step_by(100).enumerate() {
        let mut pod = (**pod).clone();
        pod.node_name = Some(synthetic::node_name(n % size.nodes.max(1)));
        cluster.apply(Object::Pod(Arc::new(pod)));
    }
    report("1% churn with a snapshot held");
    drop(held);

    // A watch reconnect: the relisted pods are buffered until InitDone replaces the old ones.
    list_pods(&mut pods, size);
    report("after a full pod relist");

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
