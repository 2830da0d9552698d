//! The scheduling benchmark's fixtures and baseline (benches/support) behave as documented.

#[path = "../benches/support/mod.rs"]
mod support;

use std::sync::Arc;

use ballast::{api::labels, resources::NVIDIA_GPU};
use support::{
    BenchPool, GROUP_SIZE, INSTANCE_TYPES, Mix, ballast, baseline, bench_pools, lower_bound, pods,
    solve_input,
};

fn type_names(pools: &[BenchPool]) -> Vec<String> {
    pools.iter().flat_map(|p| p.types.iter().map(|t| t.instance_type.name.clone())).collect()
}

#[test]
fn fixtures_are_deterministic_and_sized() {
    let pools = bench_pools();
    assert_eq!(pools.iter().map(|p| p.types.len()).sum::<usize>(), INSTANCE_TYPES);
    let gpu = pools.iter().find(|p| p.name == "gpu").unwrap();
    assert!(!gpu.types.is_empty() && gpu.types.iter().all(|t| t.instance_type.capacity.get(NVIDIA_GPU) > 0));
    assert_eq!(gpu.taints.len(), 1, "GPU nodes are tainted");
    assert_eq!(type_names(&pools), type_names(&bench_pools()), "seeded pick");
    for mix in Mix::ALL {
        assert_eq!(pods(mix, 300), pods(mix, 300), "{}", mix.name());
        assert_eq!(pods(mix, 300).len(), 300);
    }
    // Replicas of one deployment share their requests.
    let generic = pods(Mix::Generic, 2 * GROUP_SIZE);
    assert!(generic[..GROUP_SIZE].iter().all(|p| p.requests == generic[0].requests));
}

#[test]
fn baseline_honours_constraints_and_costs_at_least_the_bound() {
    let pools = bench_pools();
    for mix in Mix::ALL {
        let pods = pods(mix, 500);
        let outcome = baseline(&pods, &pools);
        assert_eq!(outcome.unschedulable, 0, "{}", mix.name());
        let bound = lower_bound(&pods, &pools).unwrap();
        assert!(outcome.cost >= bound, "{}: {} < bound {bound}", mix.name(), outcome.cost);
        // So does ballast's schedule: every valid one does.
        let ours = ballast(&solve_input(&pods, &pools));
        assert_eq!(ours.unschedulable, 0, "{}", mix.name());
        assert!(ours.cost >= bound, "{}: ballast {} < bound {bound}", mix.name(), ours.cost);
    }
    // Self anti-affinity on hostname: a deployment of 50 needs 50 nodes.
    assert_eq!(baseline(&pods(Mix::AntiAffinity, GROUP_SIZE), &pools).nodes, GROUP_SIZE);
    // GPU pods tolerate the GPU pool's taint and need a GPU type.
    let gpu_pods: Vec<_> =
        pods(Mix::Diverse, 5 * GROUP_SIZE).into_iter().filter(|p| p.requests.get(NVIDIA_GPU) > 0).collect();
    assert_eq!(gpu_pods.len(), GROUP_SIZE);
    let outcome = baseline(&gpu_pods, &pools);
    assert_eq!(outcome.unschedulable, 0);
    assert!(outcome.cost >= pools[1].types[0].price);
    // Zone selectors are honoured: a pod pinned to a zone no type offers is unschedulable.
    let mut pinned = (*pods(Mix::Generic, 1)[0]).clone();
    pinned.node_selector.insert(labels::ZONE.into(), "us-east-1z".into());
    assert_eq!(baseline(&[Arc::new(pinned)], &pools).unschedulable, 1);
}
