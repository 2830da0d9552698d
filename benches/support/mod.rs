//! Shared by `benches/scheduling.rs` and `examples/bench_schedule.rs` (included by path): the scheduling
//! benchmark's fixtures, shaped like Karpenter's `scheduling_benchmark_test.go`, and the baseline solver that
//! follows Karpenter's published approach.
//!
//! Artificial conditions (see docs/benchmarks.md): a fresh cluster (no nodes, no daemonsets, no volumes);
//! 400 instance types picked from the bundled us-east-1 catalog with seed 42, on-demand offerings only;
//! two Provisioners: `default` (every type without GPUs or neuron devices) and `gpu` (the GPU types, tainted
//! `nvidia.com/gpu=true:NoSchedule`); pods grouped in deployments of [`GROUP_SIZE`] replicas (`app` label),
//! requests drawn with seed 42 from cpu {100, 250, 500, 1000, 1500}m × memory {100, 256, 512, 1024, 2048,
//! 4096}Mi, as Karpenter's bench does.

#![allow(dead_code)] // each includer uses a different part

use std::{collections::BTreeMap, sync::Arc};

use ballast::{
    api::labels,
    cloud::{CapacityType, Catalog, InstanceType},
    model::{
        Affinity, InclusionPolicy, LabelSelector, NodeAffinity, NodeSelectorTerm, Operator, Pod, PodAffinity,
        PodAffinityTerm, Requirement, Taint, TaintEffect, Toleration, TolerationOperator,
        TopologySpreadConstraint, Weighted, WhenUnsatisfiable,
    },
    resources::{NVIDIA_GPU, Resources},
    scheduling::{
        NodePoolTemplate, PoolInstanceType, SolveInput,
        allocatable::{DEFAULT_VM_MEMORY_OVERHEAD_PERCENT, KubeletSettings, allocatable},
        bound, solve,
    },
};
use jiff::Timestamp;
use rand::{Rng, SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;

pub const SEED: u64 = 42;
pub const INSTANCE_TYPES: usize = 400;
pub const SIZES: [usize; 5] = [1, 100, 1_000, 5_000, 20_000];
/// Replicas per deployment: the unit of topology spread and (anti-)affinity.
pub const GROUP_SIZE: usize = 50;
const CPU_CHOICES: [i64; 5] = [100, 250, 500, 1000, 1500];
const MEMORY_CHOICES_MI: [i64; 6] = [100, 256, 512, 1024, 2048, 4096];
const MI: i64 = 1 << 20;
const APP: &str = "app";
const GPU_TAINT_KEY: &str = "nvidia.com/gpu";

// === Instance types and Provisioners ===

/// One instance type as a bench Provisioner offers it.
#[derive(Debug, Clone)]
pub struct PoolType {
    /// On-demand offerings only.
    pub instance_type: Arc<InstanceType>,
    pub allocatable: Resources,
    /// Cheapest on-demand price over its zones.
    pub price: f64,
}

#[derive(Debug, Clone)]
pub struct BenchPool {
    pub name: &'static str,
    pub weight: i32,
    pub taints: Vec<Taint>,
    /// Sorted by price, then name.
    pub types: Vec<PoolType>,
}

/// 400 launchable types from the bundled catalog, shuffled with seed 42, split into the two Provisioners.
pub fn bench_pools() -> Vec<BenchPool> {
    let catalog = Catalog::bundled();
    let mut launchable: Vec<InstanceType> = catalog
        .instance_types
        .iter()
        .filter_map(|t| {
            let mut t = InstanceType::clone(t);
            t.offerings.retain(|o| o.capacity_type == CapacityType::OnDemand);
            // Neuron (and other non-GPU accelerator) types belong to neither Provisioner.
            let plain_or_gpu = t.capacity.extended.keys().all(|k| k == NVIDIA_GPU);
            (!t.offerings.is_empty() && plain_or_gpu).then_some(t)
        })
        .collect();
    launchable.shuffle(&mut ChaCha8Rng::seed_from_u64(SEED));
    launchable.truncate(INSTANCE_TYPES);
    let kubelet = KubeletSettings::default();
    let (mut default, mut gpu) = (Vec::new(), Vec::new());
    for t in launchable {
        let pool_type = PoolType {
            allocatable: allocatable(&t, &kubelet, DEFAULT_VM_MEMORY_OVERHEAD_PERCENT),
            price: t.cheapest_offering(|_| true).map(|o| o.price).unwrap_or(f64::INFINITY),
            instance_type: Arc::new(t),
        };
        let capacity = &pool_type.instance_type.capacity;
        if capacity.get(NVIDIA_GPU) > 0 { gpu.push(pool_type) } else { default.push(pool_type) }
    }
    for types in [&mut default, &mut gpu] {
        types.sort_by(|a, b| {
            a.price.total_cmp(&b.price).then_with(|| a.instance_type.name.cmp(&b.instance_type.name))
        });
    }
    let gpu_taint =
        Taint { key: GPU_TAINT_KEY.into(), value: "true".into(), effect: TaintEffect::NoSchedule };
    vec![
        BenchPool { name: "default", weight: 10, taints: vec![], types: default },
        BenchPool { name: "gpu", weight: 0, taints: vec![gpu_taint], types: gpu },
    ]
}

/// `scheduling::bound`'s lower bound for `pods` on new nodes of the bench pools (taints and node selectors
/// decide which pool types a pod may use; topology and zones are relaxed).
pub fn lower_bound(pods: &[Arc<Pod>], pools: &[BenchPool]) -> Option<f64> {
    bound::lower_bound_on_pools(pods, &solve_input(&[], pools).pools).ok()
}

// === Pods ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Varied cpu/memory, no constraints.
    Generic,
    /// Selectors (arch, zone, instance category), GPU pods tolerating the GPU pool's taint.
    Diverse,
    /// Zonal topology spread, maxSkew 1, DoNotSchedule.
    ZonalSpread,
    /// Hostname topology spread, maxSkew 1, DoNotSchedule.
    HostnameSpread,
    /// Required self anti-affinity on hostname.
    AntiAffinity,
    /// Preferred node affinity no type satisfies (must be relaxed) plus a satisfiable preferred zone.
    Preferences,
    /// Karpenter's "diverse" bench: 1/5 each generic, zonal spread, hostname spread, zonal self-affinity,
    /// hostname anti-affinity.
    Mixed,
}

impl Mix {
    pub const ALL: [Mix; 7] = [
        Mix::Generic,
        Mix::Diverse,
        Mix::ZonalSpread,
        Mix::HostnameSpread,
        Mix::AntiAffinity,
        Mix::Preferences,
        Mix::Mixed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mix::Generic => "generic",
            Mix::Diverse => "diverse",
            Mix::ZonalSpread => "zonal-spread",
            Mix::HostnameSpread => "hostname-spread",
            Mix::AntiAffinity => "anti-affinity",
            Mix::Preferences => "preferences",
            Mix::Mixed => "mixed",
        }
    }
}

/// `count` pods of `mix`, identical on every call.
pub fn pods(mix: Mix, count: usize) -> Vec<Arc<Pod>> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    (0..count)
        .map(|i| {
            let kind = match mix {
                // Fifths by deployment, so each deployment has one shape.
                Mix::Mixed => {
                    [Mix::Generic, Mix::ZonalSpread, Mix::HostnameSpread, Mix::AntiAffinity, Mix::Mixed]
                        [(i / GROUP_SIZE) % 5]
                }
                other => other,
            };
            Arc::new(make_pod(&mut rng, mix, kind, i))
        })
        .collect()
}

fn make_pod(rng: &mut ChaCha8Rng, mix: Mix, kind: Mix, i: usize) -> Pod {
    let group = format!("{}-{}", mix.name(), i / GROUP_SIZE);
    let mut pod = base_pod(&format!("{}-{i:05}", mix.name()), &group, i);
    // One request shape per deployment, as replicas share a template.
    let mut shape = ChaCha8Rng::seed_from_u64(SEED ^ (i / GROUP_SIZE) as u64);
    pod.requests = Resources::new(
        CPU_CHOICES[shape.random_range(0..CPU_CHOICES.len())],
        MEMORY_CHOICES_MI[shape.random_range(0..MEMORY_CHOICES_MI.len())] * MI,
    )
    .with("pods", 1);
    let own = || {
        Some(LabelSelector { match_labels: [(APP.to_string(), group.clone())].into(), ..Default::default() })
    };
    match kind {
        Mix::Generic => {}
        Mix::Diverse => match (i / GROUP_SIZE) % 5 {
            0 => {}
            1 => {
                pod.node_selector.insert(labels::ARCH.into(), "arm64".into());
            }
            2 => {
                let zone = ["us-east-1a", "us-east-1b", "us-east-1c"][rng.random_range(0..3)];
                pod.node_selector.insert(labels::ZONE.into(), zone.into());
            }
            3 => {
                pod.affinity.node.required = vec![NodeSelectorTerm {
                    match_expressions: vec![Requirement {
                        key: "karpenter.k8s.aws/instance-category".into(),
                        operator: Operator::In,
                        values: vec!["c".into(), "m".into(), "r".into()],
                    }],
                    match_fields: vec![],
                }];
            }
            _ => {
                pod.requests.set(NVIDIA_GPU, 1);
                pod.tolerations.push(Toleration {
                    key: GPU_TAINT_KEY.into(),
                    operator: TolerationOperator::Exists,
                    effect: Some(TaintEffect::NoSchedule),
                    ..Default::default()
                });
            }
        },
        Mix::ZonalSpread | Mix::HostnameSpread => {
            let key = if kind == Mix::ZonalSpread { labels::ZONE } else { labels::HOSTNAME };
            pod.topology_spread.push(TopologySpreadConstraint {
                max_skew: 1,
                topology_key: key.into(),
                when_unsatisfiable: WhenUnsatisfiable::DoNotSchedule,
                selector: own(),
                min_domains: None,
                node_affinity_policy: InclusionPolicy::Honor,
                node_taints_policy: InclusionPolicy::Ignore,
                match_label_keys: vec![],
            });
        }
        Mix::AntiAffinity => {
            pod.affinity.pod_anti.required.push(PodAffinityTerm {
                selector: own(),
                topology_key: labels::HOSTNAME.into(),
                ..Default::default()
            });
        }
        Mix::Preferences => {
            let term = |key: &str, value: &str| NodeSelectorTerm {
                match_expressions: vec![Requirement {
                    key: key.into(),
                    operator: Operator::In,
                    values: vec![value.into()],
                }],
                match_fields: vec![],
            };
            pod.affinity.node.preferred = vec![
                Weighted { weight: 100, term: term(labels::INSTANCE_TYPE, "no-such-type.large") },
                Weighted { weight: 10, term: term(labels::ZONE, "us-east-1b") },
            ];
        }
        // Within `Mixed`, this slot is Karpenter's zonal self-affinity.
        Mix::Mixed => {
            pod.affinity.pod.required.push(PodAffinityTerm {
                selector: own(),
                topology_key: labels::ZONE.into(),
                ..Default::default()
            });
        }
    }
    pod
}

fn base_pod(name: &str, group: &str, i: usize) -> Pod {
    Pod {
        namespace: "bench".into(),
        name: name.into(),
        uid: name.into(),
        labels: [(APP.to_string(), group.to_string())].into(),
        annotations: Default::default(),
        owner: None,
        node_name: None,
        nominated_node: None,
        phase: Default::default(),
        unschedulable: true,
        requests: Resources::default(),
        node_selector: Default::default(),
        affinity: Affinity {
            node: NodeAffinity::default(),
            pod: PodAffinity::default(),
            pod_anti: PodAffinity::default(),
        }
        .into(),
        tolerations: vec![].into(),
        topology_spread: vec![],
        host_ports: vec![],
        pvcs: vec![],
        local_storage: false,
        priority: 0,
        priority_class: None,
        scheduler_name: "default-scheduler".into(),
        created: Timestamp::from_second(1_700_000_000 + i as i64).expect("a valid timestamp"),
        deleting: None,
        termination_grace_seconds: 30,
    }
}

/// What a scheduler produced, reduced to what the bench reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub nodes: usize,
    /// $/h of the nodes opened, each at its cheapest allowed type and zone.
    pub cost: f64,
    pub unschedulable: usize,
}

// === ballast ===

/// `scheduling::solve`'s input for a fresh cluster: the bench pools as Provisioner templates.
pub fn solve_input(pods: &[Arc<Pod>], pools: &[BenchPool]) -> SolveInput {
    let templates = pools
        .iter()
        .map(|pool| {
            let types = pool
                .types
                .iter()
                .map(|t| PoolInstanceType {
                    instance_type: t.instance_type.clone(),
                    allocatable: t.allocatable.clone(),
                })
                .collect();
            let mut template = NodePoolTemplate::new(pool.name, types);
            template.weight = pool.weight;
            template.taints = pool.taints.clone();
            template
        })
        .collect();
    SolveInput { pending: pods.to_vec(), pools: templates, ..SolveInput::default() }
}

pub fn ballast(input: &SolveInput) -> Outcome {
    let results = solve(input);
    Outcome {
        nodes: results.new_claims.len(),
        cost: results.new_claims.iter().map(|c| c.price()).sum(),
        unschedulable: results.unschedulable.len(),
    }
}

// === Baseline: Karpenter's published approach ===

/// One node the baseline opened.
struct BaselineNode {
    pool: usize,
    /// Indexes into the pool's types (cheapest first) that still hold every pod on the node.
    types: Vec<usize>,
    /// Component-wise max allocatable over `types`: a quick "cannot fit" test.
    room: Resources,
    requests: Resources,
    /// Zones still possible for the node (`None`: any).
    zones: Option<Vec<String>>,
    /// Pods per `app` group on the node.
    groups: BTreeMap<String, u32>,
}

/// A pod's constraints in the baseline's terms (the constructs [`pods`] generates).
struct PodNeeds<'a> {
    pod: &'a Pod,
    group: &'a str,
    required_terms: Vec<&'a NodeSelectorTerm>,
    zones: Option<Vec<String>>,
    zonal_spread: bool,
    hostname_spread: Option<u32>,
    anti_hostname: bool,
    zone_affinity: bool,
}

/// Karpenter's approach: pods sorted by cpu then memory (descending), each put on the first open node where
/// it fits (first-fit-decreasing), else on a new node from the heaviest Provisioner that fits; a node keeps
/// every type that still holds its pods and launches as the cheapest. Preferences are treated as required
/// and dropped when the pod fits nowhere.
pub fn baseline(pods: &[Arc<Pod>], pools: &[BenchPool]) -> Outcome {
    let mut order: Vec<&Arc<Pod>> = pods.iter().collect();
    order.sort_by(|a, b| {
        (b.requests.cpu, b.requests.memory)
            .cmp(&(a.requests.cpu, a.requests.memory))
            .then(a.created.cmp(&b.created))
            .then(a.uid.cmp(&b.uid))
    });
    let all_zones: Vec<String> = {
        let mut z: Vec<String> = pools
            .iter()
            .flat_map(|p| &p.types)
            .flat_map(|t| t.instance_type.offerings.iter().map(|o| o.zone.clone()))
            .collect();
        z.sort();
        z.dedup();
        z
    };
    let mut nodes: Vec<BaselineNode> = Vec::new();
    let mut zone_counts: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    let mut group_zone: BTreeMap<String, String> = BTreeMap::new();
    let mut unschedulable = 0;
    for pod in order {
        let mut needs = PodNeeds::of(pod);
        let preferred: Vec<&NodeSelectorTerm> = pod.affinity.node.preferred.iter().map(|w| &w.term).collect();
        let mut placed = None;
        // Preferences first (heaviest first, all of them), then without.
        for with_preferences in [true, false] {
            if with_preferences && preferred.is_empty() {
                continue;
            }
            let saved = needs.required_terms.clone();
            if with_preferences {
                needs.required_terms.extend(preferred.iter().copied());
            }
            let allowed_zones = needs.allowed_zones(&all_zones, &zone_counts, &group_zone);
            placed = place(&mut nodes, pools, &needs, &allowed_zones);
            needs.required_terms = saved;
            if placed.is_some() {
                break;
            }
        }
        let Some(index) = placed else {
            unschedulable += 1;
            continue;
        };
        // Record the zone the pod landed in for spread and affinity (`commit` pinned the node to one zone).
        if needs.zonal_spread || needs.zone_affinity {
            let zone = nodes[index]
                .zones
                .as_ref()
                .and_then(|z| z.first())
                .cloned()
                .expect("zonal pods pin their node");
            *zone_counts.entry(needs.group.to_string()).or_default().entry(zone.clone()).or_default() += 1;
            group_zone.entry(needs.group.to_string()).or_insert(zone);
        }
    }
    let cost = nodes.iter().map(|n| node_price(n, pools)).sum();
    Outcome { nodes: nodes.len(), cost, unschedulable }
}

impl<'a> PodNeeds<'a> {
    fn of(pod: &'a Pod) -> Self {
        let group = pod.labels.get(APP).map(String::as_str).unwrap_or("");
        let zones = pod.node_selector.get(labels::ZONE).map(|z| vec![z.clone()]);
        let spread = |key: &str| pod.topology_spread.iter().find(|c| c.topology_key == key);
        PodNeeds {
            pod,
            group,
            required_terms: pod.affinity.node.required.iter().collect(),
            zones,
            zonal_spread: spread(labels::ZONE).is_some(),
            hostname_spread: spread(labels::HOSTNAME).map(|c| c.max_skew as u32),
            anti_hostname: pod.affinity.pod_anti.required.iter().any(|t| t.topology_key == labels::HOSTNAME),
            zone_affinity: pod.affinity.pod.required.iter().any(|t| t.topology_key == labels::ZONE),
        }
    }

    /// Zones the pod may land in now, given its selector, spread counts and affinity.
    fn allowed_zones(
        &self,
        all: &[String],
        counts: &BTreeMap<String, BTreeMap<String, u32>>,
        group_zone: &BTreeMap<String, String>,
    ) -> Option<Vec<String>> {
        let mut zones = self.zones.clone();
        if self.zone_affinity
            && let Some(z) = group_zone.get(self.group)
        {
            zones = Some(vec![z.clone()]);
        }
        if self.zonal_spread {
            let counts = counts.get(self.group);
            let count = |z: &String| counts.and_then(|c| c.get(z)).copied().unwrap_or(0);
            let min = all.iter().map(count).min().unwrap_or(0);
            let ok: Vec<String> = all.iter().filter(|z| count(z) + 1 - min <= 1).cloned().collect();
            zones = Some(match zones {
                Some(z) => z.into_iter().filter(|z| ok.contains(z)).collect(),
                None => ok,
            });
        }
        zones
    }

    fn tolerates(&self, taints: &[Taint]) -> bool {
        taints.iter().all(|t| {
            t.effect == TaintEffect::PreferNoSchedule
                || self.pod.tolerations.iter().any(|tol| {
                    (tol.key.is_empty() || tol.key == t.key)
                        && tol.effect.is_none_or(|e| e == t.effect)
                        && (tol.operator == TolerationOperator::Exists || tol.value == t.value)
                })
        })
    }

    /// Node selector and required node affinity (ANDed here: the generators use one term) on type labels.
    fn type_matches(&self, t: &InstanceType) -> bool {
        let selector_ok =
            self.pod.node_selector.iter().all(|(k, v)| k == labels::ZONE || t.labels.get(k) == Some(v));
        selector_ok
            && self.required_terms.iter().all(|term| {
                term.match_expressions.iter().all(|r| {
                    if r.key == labels::ZONE {
                        return true; // zones are matched against offerings
                    }
                    let value = t.labels.get(&r.key);
                    match r.operator {
                        Operator::In => value.is_some_and(|v| r.values.contains(v)),
                        Operator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                        Operator::Exists => value.is_some(),
                        Operator::DoesNotExist => value.is_none(),
                        Operator::Gt | Operator::Lt => {
                            let (Some(v), Some(bound)) = (
                                value.and_then(|v| v.parse::<i64>().ok()),
                                r.values.first().and_then(|b| b.parse::<i64>().ok()),
                            ) else {
                                return false;
                            };
                            if r.operator == Operator::Gt { v > bound } else { v < bound }
                        }
                    }
                })
            })
    }

    /// Zones from preferred/required node affinity terms on the zone key.
    fn term_zones(&self) -> Option<Vec<String>> {
        self.required_terms
            .iter()
            .flat_map(|t| &t.match_expressions)
            .find(|r| r.key == labels::ZONE && r.operator == Operator::In)
            .map(|r| r.values.clone())
    }
}

fn intersect_zones(a: Option<Vec<String>>, b: Option<Vec<String>>) -> Option<Vec<String>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.into_iter().filter(|z| b.contains(z)).collect()),
        (a, b) => a.or(b),
    }
}

fn offers_in(t: &InstanceType, zones: &Option<Vec<String>>) -> bool {
    match zones {
        None => true,
        Some(z) => t.offerings.iter().any(|o| z.contains(&o.zone)),
    }
}

/// First fit over open nodes in opening order, else a new node; returns the index of the node used.
fn place(
    nodes: &mut Vec<BaselineNode>,
    pools: &[BenchPool],
    needs: &PodNeeds<'_>,
    allowed: &Option<Vec<String>>,
) -> Option<usize> {
    let pod = needs.pod;
    let zones = intersect_zones(allowed.clone(), needs.term_zones());
    if zones.as_ref().is_some_and(|z| z.is_empty()) {
        return None;
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        let total = node.requests.clone() + &pod.requests;
        if !total.fits_in(&node.room) || !needs.tolerates(&pools[node.pool].taints) {
            continue;
        }
        let on_node = node.groups.get(needs.group).copied().unwrap_or(0);
        if (needs.anti_hostname && on_node > 0)
            || needs.hostname_spread.is_some_and(|skew| on_node + 1 > skew)
        {
            continue;
        }
        let node_zones = intersect_zones(node.zones.clone(), zones.clone());
        if node_zones.as_ref().is_some_and(|z| z.is_empty()) {
            continue;
        }
        let pool = &pools[node.pool];
        let types: Vec<usize> = node
            .types
            .iter()
            .copied()
            .filter(|&t| {
                let pt = &pool.types[t];
                total.fits_in(&pt.allocatable)
                    && needs.type_matches(&pt.instance_type)
                    && offers_in(&pt.instance_type, &node_zones)
            })
            .collect();
        if types.is_empty() {
            continue;
        }
        commit(node, pool, types, total, node_zones, needs);
        return Some(i);
    }
    let mut by_weight: Vec<usize> = (0..pools.len()).collect();
    by_weight.sort_by_key(|&p| std::cmp::Reverse(pools[p].weight));
    for p in by_weight {
        let pool = &pools[p];
        if !needs.tolerates(&pool.taints) {
            continue;
        }
        let types: Vec<usize> = (0..pool.types.len())
            .filter(|&t| {
                let pt = &pool.types[t];
                pod.requests.fits_in(&pt.allocatable)
                    && needs.type_matches(&pt.instance_type)
                    && offers_in(&pt.instance_type, &zones)
            })
            .collect();
        if types.is_empty() {
            continue;
        }
        let mut node = BaselineNode {
            pool: p,
            types: vec![],
            room: Resources::default(),
            requests: Resources::default(),
            zones: None,
            groups: BTreeMap::new(),
        };
        commit(&mut node, pool, types, pod.requests.clone(), zones, needs);
        nodes.push(node);
        return Some(nodes.len() - 1);
    }
    None
}

fn commit(
    node: &mut BaselineNode,
    pool: &BenchPool,
    types: Vec<usize>,
    requests: Resources,
    zones: Option<Vec<String>>,
    needs: &PodNeeds<'_>,
) {
    // A zonal pod pins the node to the cheapest allowed zone of its cheapest type.
    let zones = if needs.zonal_spread || needs.zone_affinity {
        let cheapest = &pool.types[types[0]].instance_type;
        cheapest
            .cheapest_offering(|o| zones.as_ref().is_none_or(|z| z.contains(&o.zone)))
            .map(|o| vec![o.zone.clone()])
    } else {
        zones
    };
    let types: Vec<usize> =
        types.into_iter().filter(|&t| offers_in(&pool.types[t].instance_type, &zones)).collect();
    node.room = types.iter().fold(Resources::default(), |acc, &t| acc.max_each(&pool.types[t].allocatable));
    node.types = types;
    node.requests = requests;
    node.zones = zones;
    *node.groups.entry(needs.group.to_string()).or_default() += 1;
}

fn node_price(node: &BaselineNode, pools: &[BenchPool]) -> f64 {
    let pool = &pools[node.pool];
    node.types
        .iter()
        .filter_map(|&t| {
            pool.types[t]
                .instance_type
                .cheapest_offering(|o| node.zones.as_ref().is_none_or(|z| z.contains(&o.zone)))
                .map(|o| o.price)
        })
        .fold(f64::INFINITY, f64::min)
}
