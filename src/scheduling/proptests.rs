//! Property tests: random clusters and pods; every placement `solve` makes satisfies every hard constraint.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{
    api::labels,
    model::{
        DaemonSet, HostPort, LabelSelector, Pod, PodAffinityTerm, Taint, TaintEffect, Toleration,
        TolerationOperator, TopologySpreadConstraint,
    },
    resources::{NVIDIA_GPU, Resources},
};

use super::{
    classes::pod_alternatives,
    requirements::{Requirements, ValueSet, label_value},
    solve_tests::{ZONES, instance_type, pod, pool, small_types},
    taints::first_untolerated,
    template::{NODES_LIMIT, NodePoolTemplate},
    *,
};

const GI: i64 = 1 << 30;

fn taint() -> Taint {
    Taint { key: "dedicated".into(), value: "batch".into(), effect: TaintEffect::NoSchedule }
}

fn random_cluster(seed: u64) -> SolveInput {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut types = small_types();
    let mut gpu = instance_type("g.xlarge", 4000, 16, 0.5);
    gpu.capacity.set(NVIDIA_GPU, 1);
    types.push(gpu);

    let mut pools = Vec::new();
    for i in 0..rng.random_range(1..=3) {
        let mut p = pool(&format!("pool-{i}"), types.clone());
        p.weight = rng.random_range(0..3);
        if rng.random_bool(0.3) {
            p.taints.push(taint());
        }
        if rng.random_bool(0.4) {
            let zones: Vec<&str> = ZONES.iter().copied().filter(|_| rng.random_bool(0.6)).collect();
            if !zones.is_empty() {
                p.requirements.add(labels::ZONE, ValueSet::one_of(zones));
            }
        }
        if rng.random_bool(0.3) {
            p.requirements.add(labels::CAPACITY_TYPE, ValueSet::one_of(["on-demand"]));
        }
        if rng.random_bool(0.4) {
            p.limits.insert("cpu".into(), rng.random_range(2..40) * 1000);
            p.usage.resources.cpu = rng.random_range(0..4) * 1000;
        }
        if rng.random_bool(0.3) {
            p.limits.insert(NODES_LIMIT.into(), rng.random_range(1..6));
            p.usage.nodes = rng.random_range(0..2);
        }
        pools.push(p);
    }

    let mut existing = Vec::new();
    for i in 0..rng.random_range(0..4) {
        let name = format!("node-{i}");
        let zone = ZONES[rng.random_range(0..3)];
        let mut running = Vec::new();
        for j in 0..rng.random_range(0..3) {
            let mut p = pod(&format!("running-{i}-{j}"), rng.random_range(1..5) * 250);
            p.namespace = "prod".into();
            p.labels.insert("app".into(), format!("app-{}", rng.random_range(0..4)));
            p.node_name = Some(name.clone());
            running.push(Arc::new(p));
        }
        existing.push(ExistingNode {
            name: name.clone(),
            labels: [(labels::ZONE, zone), (labels::HOSTNAME, name.as_str()), (labels::ARCH, "amd64")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            taints: if rng.random_bool(0.3) { vec![taint()] } else { vec![] },
            allocatable: Resources::new(rng.random_range(2..9) * 1000, 16 * GI).with("pods", 110),
            pods: running,
            unschedulable: rng.random_bool(0.1),
            in_flight: rng.random_bool(0.3),
        });
    }

    let mut pending = Vec::new();
    for d in 0..rng.random_range(1..6) {
        let app = format!("app-{d}");
        let mut template = pod("t", rng.random_range(1..13) * 250);
        template.namespace = "prod".into();
        template.labels.insert("app".into(), app.clone());
        template.requests.memory = rng.random_range(1..17) * GI / 2;
        if rng.random_bool(0.15) {
            template.requests.set(NVIDIA_GPU, 1);
        }
        if rng.random_bool(0.3) {
            template.tolerations.push(Toleration {
                key: "dedicated".into(),
                operator: TolerationOperator::Exists,
                ..Default::default()
            });
        }
        if rng.random_bool(0.2) {
            template.node_selector.insert(labels::ZONE.into(), ZONES[rng.random_range(0..3)].into());
        }
        let selector = LabelSelector {
            match_labels: [("app".to_string(), app.clone())].into(),
            match_expressions: vec![],
        };
        match rng.random_range(0..5) {
            0 => {
                template.affinity.pod_anti.required = vec![PodAffinityTerm {
                    selector: Some(selector.clone()),
                    topology_key: labels::HOSTNAME.into(),
                    ..Default::default()
                }]
            }
            1 if template.node_selector.is_empty() => {
                template.topology_spread = vec![TopologySpreadConstraint {
                    max_skew: rng.random_range(1..3),
                    topology_key: labels::ZONE.into(),
                    when_unsatisfiable: crate::model::WhenUnsatisfiable::DoNotSchedule,
                    selector: Some(selector.clone()),
                    min_domains: None,
                    node_affinity_policy: crate::model::InclusionPolicy::Honor,
                    node_taints_policy: crate::model::InclusionPolicy::Ignore,
                    match_label_keys: vec![],
                }]
            }
            2 => {
                template.host_ports =
                    vec![HostPort { port: 9100, protocol: "TCP".into(), ip: "0.0.0.0".into() }]
            }
            _ => {}
        }
        for i in 0..rng.random_range(1..15) {
            let mut p = template.clone();
            p.name = format!("{app}-{i:02}");
            p.uid = p.name.clone();
            pending.push(Arc::new(p));
        }
    }
    let daemonsets = if rng.random_bool(0.5) {
        vec![Arc::new(DaemonSet {
            namespace: "kube-system".into(),
            name: "agent".into(),
            template: pod("agent", 200),
        })]
    } else {
        vec![]
    };
    SolveInput { existing, pending, pools, daemonsets, ..Default::default() }
}

/// Checks every hard constraint of every placement; panics with the violation.
fn check(input: &SolveInput, r: &Results) {
    let pods: BTreeMap<String, &Arc<Pod>> = input.pending.iter().map(|p| (p.key(), p)).collect();
    let unschedulable: BTreeSet<&String> = r.unschedulable.iter().map(|(k, _)| k).collect();
    for key in pods.keys() {
        assert!(
            r.placements.contains_key(key) != unschedulable.contains(key),
            "{key}: placed xor unschedulable"
        );
    }
    // Pods per target: existing node name or claim index.
    let mut on_node: BTreeMap<String, Vec<&Arc<Pod>>> = BTreeMap::new();
    let mut on_claim: BTreeMap<usize, Vec<&Arc<Pod>>> = BTreeMap::new();
    for (key, placement) in &r.placements {
        match placement {
            Placement::Existing(n) => on_node.entry(n.clone()).or_default().push(pods[key]),
            Placement::NewClaim(c) => on_claim.entry(*c).or_default().push(pods[key]),
        }
    }
    let hard_ok = |p: &Pod, taints: &[Taint], req_ok: &dyn Fn(&Requirements) -> bool| {
        assert!(first_untolerated(&p.tolerations, taints, false).is_none(), "{}: untolerated taint", p.key());
        let alts = pod_alternatives(p, &[]).unwrap();
        assert!(alts.iter().any(req_ok), "{}: node requirements violated", p.key());
    };
    let ports_ok = |pods: &[&Pod]| {
        let mut seen = BTreeSet::new();
        for p in pods {
            for hp in &p.host_ports {
                assert!(
                    seen.insert((hp.port, hp.protocol.clone())),
                    "{}: host port {} taken",
                    p.key(),
                    hp.port
                );
            }
        }
    };
    for node in &input.existing {
        let placed = on_node.get(&node.name).cloned().unwrap_or_default();
        if placed.is_empty() {
            continue;
        }
        assert!(!node.unschedulable, "pods placed on unschedulable {}", node.name);
        let used: Resources =
            node.pods.iter().map(|p| &p.requests).chain(placed.iter().map(|p| &p.requests)).sum();
        assert!(
            used.fits_in(&node.allocatable),
            "{} over allocatable: {used} > {}",
            node.name,
            node.allocatable
        );
        for p in &placed {
            hard_ok(p, &node.taints, &|a| a.matches(&node.labels));
        }
        let all: Vec<&Pod> =
            node.pods.iter().map(|p| p.as_ref()).chain(placed.iter().map(|p| p.as_ref())).collect();
        ports_ok(&all);
    }
    let mut charged: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (c, claim) in r.new_claims.iter().enumerate() {
        let pool: &NodePoolTemplate = input.pools.iter().find(|p| p.name == claim.pool).unwrap();
        let placed = &on_claim[&c];
        assert_eq!(placed.len(), claim.pods.len());
        let used: Resources = placed.iter().map(|p| &p.requests).sum();
        assert!(!claim.instance_types.is_empty() && !claim.launch_options.is_empty());
        for it in &claim.instance_types {
            let alloc =
                &pool.instance_types.iter().find(|t| t.instance_type.name == it.name).unwrap().allocatable;
            assert!(used.fits_in(alloc), "claim {c}: {used} does not fit {} ({alloc})", it.name);
            assert!(
                claim.requirements.iter().all(|(k, s)| {
                    k == labels::ZONE
                        || k == labels::CAPACITY_TYPE
                        || it.labels.get(k).is_none_or(|v| s.has(v))
                }),
                "claim {c}: type {} outside its requirements",
                it.name
            );
        }
        assert!(
            claim.requests.fits_in(
                &pool
                    .instance_types
                    .iter()
                    .find(|t| t.instance_type.name == claim.instance_types[0].name)
                    .unwrap()
                    .allocatable
            )
        );
        for o in &claim.launch_options {
            assert!(claim.requirements.get(labels::ZONE).is_none_or(|z| z.has(&o.zone)));
            assert!(
                claim.requirements.get(labels::CAPACITY_TYPE).is_none_or(|z| z.has(o.capacity_type.as_str()))
            );
        }
        for p in placed {
            hard_ok(p, &pool.taints, &|a| a.conflict_with_node(&claim.requirements).is_none());
        }
        ports_ok(&placed.iter().map(|p| p.as_ref()).collect::<Vec<_>>());
        let max = |k: &str| claim.instance_types.iter().map(|t| t.capacity.get(k)).max().unwrap_or(0);
        let e = charged.entry(&claim.pool).or_default();
        e.0 += max("cpu");
        e.1 += 1;
    }
    for pool in &input.pools {
        let (cpu, nodes) = charged.get(pool.name.as_str()).copied().unwrap_or_default();
        if let Some(limit) = pool.limits.get("cpu") {
            assert!(
                cpu == 0 || pool.usage.resources.cpu + cpu <= *limit,
                "{}: cpu limit exceeded",
                pool.name
            );
        }
        if let Some(limit) = pool.limits.get(NODES_LIMIT) {
            assert!(nodes == 0 || pool.usage.nodes + nodes <= *limit, "{}: node limit exceeded", pool.name);
        }
    }
    // Topology: domains of every placed pod, per app.
    let zone_of = |key: &str| -> Option<String> {
        match &r.placements[key] {
            Placement::Existing(n) => {
                let node = input.existing.iter().find(|x| &x.name == n).unwrap();
                label_value(&node.labels, labels::ZONE).map(str::to_string)
            }
            Placement::NewClaim(c) => {
                r.new_claims[*c].requirements.get(labels::ZONE).and_then(ValueSet::single).map(str::to_string)
            }
        }
    };
    let host_of = |key: &str| match &r.placements[key] {
        Placement::Existing(n) => n.clone(),
        Placement::NewClaim(c) => format!("claim-{c}"),
    };
    let mut apps: BTreeMap<&str, Vec<&Arc<Pod>>> = BTreeMap::new();
    for p in pods.values() {
        apps.entry(p.labels["app"].as_str()).or_default().push(p);
    }
    for (app, members) in &apps {
        let rep = members[0];
        let placed: Vec<&&Arc<Pod>> =
            members.iter().filter(|p| r.placements.contains_key(&p.key())).collect();
        if !rep.affinity.pod_anti.required.is_empty() {
            let mut hosts: BTreeSet<String> = BTreeSet::new();
            for p in &placed {
                let host = host_of(&p.key());
                assert!(hosts.insert(host.clone()), "{app}: two anti-affine pods on {host}");
                if let Some(node) = input.existing.iter().find(|n| n.name == host) {
                    assert!(
                        node.pods.iter().all(|q| q.labels.get("app") != Some(&app.to_string())),
                        "{app}: joins a running peer"
                    );
                }
            }
        }
        if let Some(s) = rep.topology_spread.first() {
            let mut counts: BTreeMap<String, i64> = BTreeMap::new();
            let mut initial: BTreeMap<String, i64> = BTreeMap::new();
            for p in &placed {
                let zone = zone_of(&p.key())
                    .unwrap_or_else(|| panic!("{app}: spread pod on a claim with no single zone"));
                *counts.entry(zone).or_default() += 1;
            }
            for node in &input.existing {
                for q in &node.pods {
                    if q.labels.get("app") == Some(&app.to_string()) {
                        *counts.entry(node.labels[labels::ZONE].clone()).or_default() += 1;
                        *initial.entry(node.labels[labels::ZONE].clone()).or_default() += 1;
                    }
                }
            }
            let mut domains: BTreeSet<String> =
                input.existing.iter().map(|n| n.labels[labels::ZONE].clone()).collect();
            for pool in &input.pools {
                let zones = pool.requirements.get(labels::ZONE);
                domains
                    .extend(ZONES.iter().filter(|z| zones.is_none_or(|s| s.has(z))).map(|z| z.to_string()));
            }
            let skew = |c: &BTreeMap<String, i64>| {
                let min = domains.iter().map(|d| c.get(d).copied().unwrap_or(0)).min().unwrap_or(0);
                c.values().copied().max().unwrap_or(0) - min
            };
            // Each placement keeps count + 1 - min ≤ maxSkew, so skew never grows beyond the larger of maxSkew
            // and what running pods started with.
            let allowed = (s.max_skew as i64).max(skew(&initial));
            assert!(
                skew(&counts) <= allowed,
                "{app}: zone skew {counts:?} over {domains:?} exceeds {allowed}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_placement_satisfies_every_hard_constraint(seed in any::<u64>()) {
        let input = random_cluster(seed);
        let results = solve(&input);
        check(&input, &results);
        prop_assert_eq!(&results, &solve(&input), "identical inputs give identical outputs");
    }

    #[test]
    fn the_lower_bound_never_exceeds_the_cost_of_a_solution(seed in any::<u64>()) {
        let input = random_cluster(seed);
        let results = solve(&input);
        // Every solution is a valid schedule of the pods it puts on new nodes, so its cost bounds theirs.
        let on_new_nodes: Vec<Arc<Pod>> = input
            .pending
            .iter()
            .filter(|p| matches!(results.placements.get(&p.key()), Some(Placement::NewClaim(_))))
            .cloned()
            .collect();
        let cost: f64 = results.new_claims.iter().map(NewClaim::price).sum();
        let bound = bound::lower_bound_on_pools(&on_new_nodes, &input.pools).unwrap();
        prop_assert!(bound <= cost * (1.0 + 1e-12), "bound {} > cost {}", bound, cost);
        prop_assert_eq!(bound > 0.0, !on_new_nodes.is_empty());
    }
}
