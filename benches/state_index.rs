//! The state index at EKS scale: 5,000 nodes and 100,000 pods fed as synthetic watch events through the same
//! `Pump` the watches use (conversion included), then snapshot and query costs at that size.
//!
//! Run: `cargo bench --no-default-features --bench state_index`. Fixture shape: benches/support/synthetic.rs.

use std::{hint::black_box, sync::Arc};

use ballast::state::{
    Cluster, Kind, Object,
    watch::{Pump, node_converter, pod_converter},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kube::runtime::watcher::Event;

#[path = "support/synthetic.rs"]
mod synthetic;

const NODES: usize = 5_000;
const PODS: usize = 100_000;

/// Lists every node and pod the way a starting watch does (Init, InitApply…, InitDone).
fn index(nodes: usize, pods: usize) -> Cluster {
    let cluster = Cluster::new();
    let mut node_pump = Pump::new(cluster.clone(), Kind::Node, node_converter());
    node_pump.handle(Event::Init);
    (0..nodes).for_each(|i| node_pump.handle(Event::InitApply(synthetic::node(i))));
    node_pump.handle(Event::InitDone);
    let mut pod_pump = Pump::new(cluster.clone(), Kind::Pod, pod_converter());
    pod_pump.handle(Event::Init);
    (0..pods).for_each(|i| pod_pump.handle(Event::InitApply(synthetic::pod(i, nodes))));
    pod_pump.handle(Event::InitDone);
    cluster
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("state_index");
    group.sample_size(10);
    group.throughput(Throughput::Elements((NODES + PODS) as u64));
    group.bench_function("list_5k_nodes_100k_pods", |b| b.iter(|| index(NODES, PODS)));
    group.finish();

    let cluster = index(NODES, PODS);
    let mut group = c.benchmark_group("state_index_at_100k_pods");
    group.bench_function("snapshot", |b| b.iter(|| black_box(cluster.snapshot())));

    // A pod update while a planner holds a snapshot: copy-on-write of the touched paths only.
    let snap = cluster.snapshot();
    let pending: Vec<Arc<ballast::model::Pod>> = snap.pending_pods().take(100).cloned().collect();
    let mut n = 0usize;
    group.bench_function("bind_pod_with_snapshot_held", |b| {
        b.iter(|| {
            let held = cluster.snapshot();
            let mut pod = (*pending[n % pending.len()]).clone();
            pod.node_name = Some(synthetic::node_name(n % NODES));
            pod.nominated_node = Some(format!("{n}"));
            cluster.apply(Object::Pod(Arc::new(pod)));
            n += 1;
            black_box(held);
        })
    });
    let node = synthetic::node_name(7);
    group.bench_function("pods_on_node", |b| b.iter(|| black_box(snap.pods_on_node(&node).count())));
    group.bench_function("pending_pods", |b| b.iter(|| black_box(snap.pending_pods().count())));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
