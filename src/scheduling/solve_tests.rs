//! Hand-made cases, one per constraint `solve` honours.

use std::{collections::BTreeMap, sync::Arc};

use crate::{
    api::{self, labels},
    cloud::{CapacityType, Catalog, InstanceType, Offering},
    model::{
        DaemonSet, HostPort, InclusionPolicy, LabelSelector, Labels, NodeSelectorTerm, Operator,
        PersistentVolume, PersistentVolumeClaim, Pod, PodAffinityTerm, Requirement, StorageClass, Taint,
        TaintEffect, Toleration, TolerationOperator, TopologySpreadConstraint, VolumeBindingMode, Weighted,
        WhenUnsatisfiable,
    },
    resources::{NVIDIA_GPU, Resources},
};

use super::*;

const GI: i64 = 1 << 30;
pub(crate) const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

pub(crate) fn instance_type(name: &str, cpu: i64, mem_gib: i64, price: f64) -> InstanceType {
    let family = name.split('.').next().unwrap_or(name);
    let labels: Labels = [
        (labels::INSTANCE_TYPE, name),
        (labels::ARCH, "amd64"),
        (labels::OS, "linux"),
        ("instance.ballast.dev/instance-family", family),
        ("karpenter.k8s.aws/instance-family", family),
        ("instance.ballast.dev/instance-cpu", &(cpu / 1000).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut offerings = Vec::new();
    for z in ZONES {
        offerings.push(Offering {
            zone: z.into(),
            capacity_type: CapacityType::OnDemand,
            price,
            available: true,
        });
        offerings.push(Offering {
            zone: z.into(),
            capacity_type: CapacityType::Spot,
            price: price * 0.4,
            available: true,
        });
    }
    InstanceType {
        name: name.into(),
        capacity: Resources::new(cpu, mem_gib * GI).with("pods", 110),
        labels,
        offerings,
    }
}

/// A pool whose allocatable equals capacity (the allocatable math has its own tests).
pub(crate) fn pool(name: &str, types: Vec<InstanceType>) -> NodePoolTemplate {
    NodePoolTemplate::new(
        name,
        types
            .into_iter()
            .map(|t| PoolInstanceType { allocatable: t.capacity.clone(), instance_type: Arc::new(t) })
            .collect(),
    )
}

pub(crate) fn small_types() -> Vec<InstanceType> {
    vec![
        instance_type("c.large", 2000, 4, 0.08),
        instance_type("m.large", 2000, 8, 0.10),
        instance_type("m.xlarge", 4000, 16, 0.18),
        instance_type("m.4xlarge", 16000, 64, 0.80),
    ]
}

pub(crate) fn pod(name: &str, cpu: i64) -> Pod {
    Pod {
        uid: name.into(),
        unschedulable: true,
        requests: Resources::new(cpu, GI / 4).with("pods", 1),
        ..Pod::test("default", name)
    }
}

fn replicas(prefix: &str, n: usize, cpu: i64, edit: impl Fn(&mut Pod)) -> Vec<Arc<Pod>> {
    (0..n)
        .map(|i| {
            let mut p = pod(&format!("{prefix}-{i:03}"), cpu);
            p.labels.insert("app".into(), prefix.into());
            edit(&mut p);
            Arc::new(p)
        })
        .collect()
}

fn app_selector(app: &str) -> LabelSelector {
    LabelSelector { match_labels: [("app".to_string(), app.to_string())].into(), match_expressions: vec![] }
}

fn node(name: &str, zone: &str, cpu: i64, pods: Vec<Arc<Pod>>) -> ExistingNode {
    ExistingNode {
        name: name.into(),
        labels: [(labels::ZONE, zone), (labels::HOSTNAME, name), (labels::ARCH, "amd64")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        taints: vec![],
        allocatable: Resources::new(cpu, 64 * GI).with("pods", 110),
        pods,
        unschedulable: false,
        in_flight: false,
    }
}

fn running(mut p: Pod, node: &str) -> Arc<Pod> {
    p.node_name = Some(node.into());
    p.phase = crate::model::PodPhase::Running;
    Arc::new(p)
}

fn input(pools: Vec<NodePoolTemplate>, pending: Vec<Arc<Pod>>) -> SolveInput {
    SolveInput { pools, pending, ..Default::default() }
}

fn zone_of(claim: &NewClaim) -> Option<&str> {
    claim.requirements.get(labels::ZONE).and_then(ValueSet::single)
}

fn req(key: &str, op: Operator, values: &[&str]) -> Requirement {
    Requirement { key: key.into(), operator: op, values: values.iter().map(|s| s.to_string()).collect() }
}

fn term(reqs: Vec<Requirement>) -> NodeSelectorTerm {
    NodeSelectorTerm { match_expressions: reqs, match_fields: vec![] }
}

fn spread(key: &str, skew: i32, app: &str) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: skew,
        topology_key: key.into(),
        when_unsatisfiable: WhenUnsatisfiable::DoNotSchedule,
        selector: Some(app_selector(app)),
        min_domains: None,
        node_affinity_policy: InclusionPolicy::Honor,
        node_taints_policy: InclusionPolicy::Ignore,
        match_label_keys: vec![],
    }
}

fn affinity_term(key: &str, app: &str) -> PodAffinityTerm {
    PodAffinityTerm { selector: Some(app_selector(app)), topology_key: key.into(), ..Default::default() }
}

fn total_price(r: &Results) -> f64 {
    r.new_claims.iter().map(NewClaim::price).sum()
}

// === The seed exercise ===

#[test]
fn seed_exercise_opens_the_cheapest_valid_mix() {
    // Provisioner: on-demand, c5.large / m5.large / m5.xlarge, from the bundled catalog with real allocatable.
    let provisioner = api::Provisioner::new(
        "default",
        api::ProvisionerSpec {
            requirements: Some(vec![
                k8s_openapi::api::core::v1::NodeSelectorRequirement {
                    key: labels::CAPACITY_TYPE.into(),
                    operator: "In".into(),
                    values: Some(vec!["on-demand".into()]),
                },
                k8s_openapi::api::core::v1::NodeSelectorRequirement {
                    key: labels::INSTANCE_TYPE.into(),
                    operator: "In".into(),
                    values: Some(vec!["c5.large".into(), "m5.large".into(), "m5.xlarge".into()]),
                },
            ]),
            consolidation: Some(api::provisioner::Consolidation { enabled: Some(true) }),
            ..Default::default()
        },
    );
    let pool =
        NodePoolTemplate::from_provisioner(&provisioner, None, &Catalog::bundled(), PoolUsage::default())
            .unwrap();
    let cpu = |name: &str| {
        pool.instance_types.iter().find(|t| t.instance_type.name == name).unwrap().allocatable.cpu
    };
    // kube-reserved cpu: 6 % of core 1 + 1 % of core 2 (+ 0.5 % of cores 3–4).
    assert_eq!(cpu("c5.large"), 2000 - 60 - 10, "1930m: one cpu:1 pod");
    assert_eq!(cpu("m5.large"), 2000 - 60 - 10, "1930m: one cpu:1 pod");
    assert_eq!(cpu("m5.xlarge"), 4000 - 60 - 10 - 10, "3920m: three cpu:1 pods");
    // $/pod: c5.large 0.085 / 1 = 0.085, m5.large 0.096 / 1 = 0.096, m5.xlarge 0.192 / 3 = 0.064.
    // Cheapest mix for 12 pods: 4 × m5.xlarge = 4 × 0.192 = $0.768/h (12 × c5.large would be $1.02/h).
    let pending: Vec<Arc<Pod>> = (0..12)
        .map(|i| {
            let mut p = pod(&format!("inflate-{i:02}"), 1000);
            p.requests = Resources::new(1000, 0).with("pods", 1);
            Arc::new(p)
        })
        .collect();
    let r = solve(&input(vec![pool], pending));
    assert!(r.unschedulable.is_empty(), "{:?}", r.unschedulable);
    assert_eq!(r.new_claims.len(), 4);
    for c in &r.new_claims {
        assert_eq!(c.pods.len(), 3);
        assert_eq!(c.instance_types[0].name, "m5.xlarge");
        assert!(c.launch_options.iter().all(|o| o.capacity_type == CapacityType::OnDemand));
        assert!(c.launch_options.windows(2).all(|w| w[0].price <= w[1].price));
    }
    assert!((total_price(&r) - 0.768).abs() < 1e-9, "{}", total_price(&r));

    // A 13th pod does not justify another m5.xlarge: c5.large at $0.085 hosts it.
    let mut pending: Vec<Arc<Pod>> = (0..13).map(|i| Arc::new(pod(&format!("p{i:02}"), 1000))).collect();
    for p in &mut pending {
        Arc::make_mut(p).requests = Resources::new(1000, 0).with("pods", 1);
    }
    let pool =
        NodePoolTemplate::from_provisioner(&provisioner, None, &Catalog::bundled(), PoolUsage::default())
            .unwrap();
    let r = solve(&input(vec![pool], pending));
    assert!((total_price(&r) - (0.768 + 0.085)).abs() < 1e-9, "{}", total_price(&r));
}

#[test]
fn a_pod_no_type_can_host_gets_a_reason_and_opens_no_node() {
    let r = solve(&input(vec![pool("default", small_types())], vec![Arc::new(pod("huge", 64_000))]));
    assert!(r.new_claims.is_empty());
    assert_eq!(r.unschedulable.len(), 1);
    let (key, reason) = &r.unschedulable[0];
    assert_eq!(key, "default/huge");
    assert!(reason.contains("no instance type of Provisioner default satisfies cpu=64"), "{reason}");
}

// === Resources ===

#[test]
fn every_resource_counts_including_extended_ones() {
    let mut types = small_types();
    let mut gpu = instance_type("g.xlarge", 4000, 16, 0.50);
    gpu.capacity.set(NVIDIA_GPU, 1);
    types.push(gpu);
    let mut p = pod("trainer", 500);
    p.requests.set(NVIDIA_GPU, 1);
    let mut big_mem = pod("cache", 500);
    big_mem.requests.memory = 40 * GI;
    let r = solve(&input(vec![pool("default", types)], vec![Arc::new(p), Arc::new(big_mem)]));
    assert!(r.unschedulable.is_empty(), "{:?}", r.unschedulable);
    let names: Vec<&str> = r.new_claims.iter().map(|c| c.instance_types[0].name.as_str()).collect();
    assert!(names.contains(&"g.xlarge") && names.contains(&"m.4xlarge"), "{names:?}");
    for c in &r.new_claims {
        if c.pods == ["default/trainer"] {
            assert!(c.instance_types.iter().all(|t| t.capacity.get(NVIDIA_GPU) >= 1));
        }
    }
}

#[test]
fn pods_fill_existing_and_in_flight_capacity_first() {
    let existing = node("node-a", ZONES[0], 2000, vec![running(pod("old", 1500), "node-a")]);
    let mut in_flight = node("claim-b", ZONES[1], 4000, vec![]);
    in_flight.in_flight = true;
    let pending = replicas("web", 4, 500, |_| {});
    let r = solve(&SolveInput {
        existing: vec![existing, in_flight],
        ..input(vec![pool("default", small_types())], pending)
    });
    assert!(r.new_claims.is_empty());
    let on = |n: &str| r.placements.values().filter(|p| **p == Placement::Existing(n.into())).count();
    assert_eq!(on("node-a"), 1, "500m left on node-a");
    assert_eq!(on("claim-b"), 3);
}

#[test]
fn host_ports_conflict_on_a_node() {
    let pending = replicas("proxy", 2, 100, |p| {
        p.host_ports = vec![HostPort { port: 8080, protocol: "TCP".into(), ip: "0.0.0.0".into() }]
    });
    let existing = node("node-a", ZONES[0], 8000, vec![]);
    let r = solve(&SolveInput {
        existing: vec![existing],
        ..input(vec![pool("default", small_types())], pending)
    });
    assert_eq!(r.new_claims.len(), 1, "the second pod cannot share node-a's port 8080");
    assert_eq!(r.placements.values().filter(|p| matches!(p, Placement::Existing(_))).count(), 1);
}

// === Node selection ===

#[test]
fn node_selector_narrows_zone_and_rejects_labels_no_pool_offers() {
    let mut a = pod("zonal", 500);
    a.node_selector.insert(labels::ZONE.into(), ZONES[1].into());
    let mut b = pod("picky", 500);
    b.node_selector.insert("team".into(), "search".into());
    let r = solve(&input(vec![pool("default", small_types())], vec![Arc::new(a), Arc::new(b)]));
    assert_eq!(r.new_claims.len(), 1);
    assert_eq!(zone_of(&r.new_claims[0]), Some(ZONES[1]));
    assert!(r.new_claims[0].launch_options.iter().all(|o| o.zone == ZONES[1]));
    assert_eq!(r.unschedulable.len(), 1);
    assert!(
        r.unschedulable[0].1.contains("Provisioner default cannot satisfy team"),
        "{:?}",
        r.unschedulable
    );
}

#[test]
fn custom_labels_via_exists_on_the_provisioner() {
    let mut p = pool("default", small_types());
    p.requirements.add("team", ValueSet::exists());
    let mut a = pod("a", 500);
    a.node_selector.insert("team".into(), "search".into());
    let r = solve(&input(vec![p], vec![Arc::new(a)]));
    assert!(r.unschedulable.is_empty());
    assert_eq!(r.new_claims[0].labels.get("team").map(String::as_str), Some("search"));
}

#[test]
fn required_node_affinity_terms_are_ored_with_every_operator() {
    let mut p = pod("p", 500);
    p.affinity.node.required = vec![
        term(vec![req(labels::ARCH, Operator::In, &["arm64"])]),
        term(vec![
            req("instance.ballast.dev/instance-cpu", Operator::Gt, &["2"]),
            req("instance.ballast.dev/instance-cpu", Operator::Lt, &["16"]),
            req(labels::INSTANCE_TYPE, Operator::NotIn, &["m.4xlarge"]),
            req("karpenter.k8s.aws/instance-family", Operator::Exists, &[]),
            req("gpu", Operator::DoesNotExist, &[]),
        ]),
    ];
    let r = solve(&input(vec![pool("default", small_types())], vec![Arc::new(p)]));
    assert!(r.unschedulable.is_empty(), "{:?}", r.unschedulable);
    let names: Vec<&str> = r.new_claims[0].instance_types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["m.xlarge"], "no arm64 types: the second term, 2 < cpu < 16, not m.4xlarge");
}

#[test]
fn provisioner_requirements_intersect_pod_requirements() {
    let mut p = pool("default", small_types());
    p.requirements.add(labels::CAPACITY_TYPE, ValueSet::one_of(["spot"]));
    p.requirements.add("karpenter.k8s.aws/instance-family", ValueSet::one_of(["m"]));
    let ok = pod("ok", 500);
    let mut od = pod("wants-on-demand", 500);
    od.node_selector.insert(labels::CAPACITY_TYPE.into(), "on-demand".into());
    let r = solve(&input(vec![p], vec![Arc::new(ok), Arc::new(od)]));
    assert_eq!(r.new_claims.len(), 1);
    let c = &r.new_claims[0];
    assert!(c.instance_types.iter().all(|t| t.name.starts_with("m.")));
    assert!(c.launch_options.iter().all(|o| o.capacity_type == CapacityType::Spot));
    assert_eq!(r.unschedulable.len(), 1);
    assert!(r.unschedulable[0].1.contains("karpenter.sh/capacity-type"), "{:?}", r.unschedulable);
}

#[test]
fn preferred_node_affinity_is_honoured_then_relaxed() {
    let mut a = pod("a", 500);
    a.affinity.node.preferred =
        vec![Weighted { weight: 10, term: term(vec![req(labels::ZONE, Operator::In, &[ZONES[2]])]) }];
    let mut b = pod("b", 500);
    b.affinity.node.preferred =
        vec![Weighted { weight: 10, term: term(vec![req(labels::ZONE, Operator::In, &["mars-1a"])]) }];
    let r = solve(&input(vec![pool("default", small_types())], vec![Arc::new(a), Arc::new(b)]));
    assert!(r.unschedulable.is_empty(), "{:?}", r.unschedulable);
    let a_claim = match &r.placements["default/a"] {
        Placement::NewClaim(i) => &r.new_claims[*i],
        other => panic!("{other:?}"),
    };
    assert_eq!(zone_of(a_claim), Some(ZONES[2]));
}

// === Taints ===

fn tainted_pool() -> NodePoolTemplate {
    let mut p = pool("db", small_types());
    p.taints = vec![Taint { key: "dedicated".into(), value: "db".into(), effect: TaintEffect::NoSchedule }];
    p.startup_taints = vec![Taint { key: "cni".into(), value: "".into(), effect: TaintEffect::NoSchedule }];
    p
}

#[test]
fn untolerated_taints_block_and_startup_taints_do_not() {
    let r = solve(&input(vec![tainted_pool()], vec![Arc::new(pod("web", 500))]));
    assert_eq!(r.unschedulable[0].1, "taint dedicated=db:NoSchedule not tolerated by any Provisioner");
    let mut db = pod("db", 500);
    db.tolerations = vec![Toleration {
        key: "dedicated".into(),
        operator: TolerationOperator::Equal,
        value: "db".into(),
        effect: Some(TaintEffect::NoSchedule),
        toleration_seconds: None,
    }]
    .into();
    let r = solve(&input(vec![tainted_pool()], vec![Arc::new(db)]));
    assert!(r.unschedulable.is_empty(), "the cni startup taint needs no toleration");
    assert_eq!(r.new_claims[0].startup_taints[0].key, "cni");
}

#[test]
fn prefer_no_schedule_is_avoided_while_possible() {
    let mut soft = node("soft", ZONES[0], 8000, vec![]);
    soft.taints =
        vec![Taint { key: "spare".into(), value: "".into(), effect: TaintEffect::PreferNoSchedule }];
    let r = solve(&SolveInput {
        existing: vec![soft.clone()],
        ..input(vec![pool("default", small_types())], vec![Arc::new(pod("a", 500))])
    });
    assert_eq!(r.new_claims.len(), 1, "a pool without the taint is preferred");
    let r = solve(&SolveInput { existing: vec![soft], ..input(vec![], vec![Arc::new(pod("a", 500))]) });
    assert_eq!(
        r.placements["default/a"],
        Placement::Existing("soft".into()),
        "relaxed when nothing else works"
    );
}

// === Topology spread ===

fn zones_of_placements(r: &Results) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in r.placements.values() {
        if let Placement::NewClaim(i) = p {
            *out.entry(zone_of(&r.new_claims[*i]).unwrap_or("?").to_string()).or_default() += 1;
        }
    }
    out
}

#[test]
fn zonal_spread_balances_across_zones() {
    let pending = replicas("web", 7, 500, |p| p.topology_spread = vec![spread(labels::ZONE, 1, "web")]);
    let r = solve(&input(vec![pool("default", small_types())], pending));
    assert!(r.unschedulable.is_empty(), "{:?}", r.unschedulable);
    let counts: Vec<usize> = zones_of_placements(&r).values().copied().collect();
    assert_eq!(counts.len(), 3);
    assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{counts:?}");
}

#[test]
fn spread_counts_existing_pods() {
    let existing = node(
        "node-a",
        ZONES[0],
        1000,
        (0..2)
            .map(|i| {
                let mut p = pod(&format!("old-{i}"), 500);
                p.labels.insert("app".into(), "web".into());
                running(p, "node-a")
            })
            .collect(),
    );
    let pending = replicas("web", 2, 500, |p| p.topology_spread = vec![spread(labels::ZONE, 1, "web")]);
    let r = solve(&SolveInput {
        existing: vec![existing],
        ..input(vec![pool("default", small_types())], pending)
    });
    let zones = zones_of_placements(&r);
    assert_eq!(zones.get(ZONES[0]), None, "{zones:?}");
    assert_eq!(zones.values().sum::<usize>(), 2);
}

#[test]
fn hostname_spread_puts_one_pod_per_node() {
    let pending = replicas("web", 4, 100, |p| p.topology_spread = vec![spread(labels::HOSTNAME, 1, "web")]);
    let r = solve(&input(vec![pool("default", small_types())], pending));
    assert_eq!(r.new_claims.len(), 4);
}

#[test]
fn capacity_type_spread() {
    let pending =
        replicas("web", 4, 100, |p| p.topology_spread = vec![spread(labels::CAPACITY_TYPE, 1, "web")]);
    let r = solve(&input(vec![pool("default", small_types())], pending));
    let mut by_ct: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &r.new_claims {
        *by_ct
            .entry(c.requirements.get(labels::CAPACITY_TYPE).and_then(ValueSet::single).unwrap())
            .or_default() += c.pods.len();
    }
    assert_eq!(by_ct.values().copied().collect::<Vec<_>>(), [2, 2], "{by_ct:?}");
}

#[test]
fn min_domains_treats_missing_domains_as_empty() {
    let pending = replicas("web", 5, 100, |p| {
        p.topology_spread =
            vec![TopologySpreadConstraint { min_domains: Some(5), ..spread(labels::ZONE, 1, "web") }]
    });
    let r = solve(&input(vec![pool("default", small_types())], pending));
    assert_eq!(
        r.placements.len(),
        3,
        "only 3 zones: one pod each before skew to the 2 missing domains exceeds 1"
    );
    assert_eq!(r.unschedulable.len(), 2);
    assert!(
        r.unschedulable[0].1.contains("topology spread on topology.kubernetes.io/zone"),
        "{:?}",
        r.unschedulable
    );
}

#[test]
fn node_affinity_policy_decides_which_domains_count() {
    let restricted = |policy| {
        move |p: &mut Pod| {
            p.affinity.node.required =
                vec![term(vec![req(labels::ZONE, Operator::In, &[ZONES[0], ZONES[1]])])];
            p.topology_spread = vec![TopologySpreadConstraint {
                node_affinity_policy: policy,
                ..spread(labels::ZONE, 1, "web")
            }];
        }
    };
    let r = solve(&input(
        vec![pool("default", small_types())],
        replicas("web", 4, 100, restricted(InclusionPolicy::Honor)),
    ));
    assert_eq!(r.placements.len(), 4, "{:?}", r.unschedulable);
    let r = solve(&input(
        vec![pool("default", small_types())],
        replicas("web", 4, 100, restricted(InclusionPolicy::Ignore)),
    ));
    assert_eq!(r.placements.len(), 2, "zone c counts as an empty domain the pods cannot reach");
}

#[test]
fn node_taints_policy_honor_drops_tainted_domains() {
    let mut tainted = tainted_pool();
    tainted.requirements.add(labels::ZONE, ValueSet::one_of([ZONES[2]]));
    let mut open = pool("default", small_types());
    open.requirements.add(labels::ZONE, ValueSet::one_of([ZONES[0], ZONES[1]]));
    let with = |policy| {
        move |p: &mut Pod| {
            p.topology_spread = vec![TopologySpreadConstraint {
                node_taints_policy: policy,
                ..spread(labels::ZONE, 1, "web")
            }]
        }
    };
    let r = solve(&input(
        vec![open.clone(), tainted.clone()],
        replicas("web", 4, 100, with(InclusionPolicy::Honor)),
    ));
    assert_eq!(r.placements.len(), 4);
    let r = solve(&input(vec![open, tainted], replicas("web", 4, 100, with(InclusionPolicy::Ignore))));
    assert_eq!(r.placements.len(), 2);
}

/// A node in zone a running two `app=web` pods, which pending pods cannot use (`edit` makes it so).
fn zone_a_node_with_two_web_pods(edit: impl Fn(&mut ExistingNode)) -> ExistingNode {
    let web = |i: usize| {
        let mut p = pod(&format!("old-{i}"), 100);
        p.labels.insert("app".into(), "web".into());
        running(p, "node-a")
    };
    let mut n = node("node-a", ZONES[0], 1000, vec![web(0), web(1)]);
    edit(&mut n);
    n
}

/// Zonal spread (maxSkew 1) of 3 web replicas, `edit`ed, next to `existing` (node-a in zone a with two web
/// pods) under both values of the inclusion policy `set` writes: `Honor` must not count node-a's pods
/// (`why`), `Ignore` must.
fn assert_policy_decides_whether_node_a_counts(
    existing: ExistingNode,
    edit: impl Fn(&mut Pod) + Copy,
    set: impl Fn(&mut TopologySpreadConstraint, InclusionPolicy) + Copy,
    why: &str,
) {
    let run = |policy| {
        let with = move |p: &mut Pod| {
            edit(p);
            let mut constraint = spread(labels::ZONE, 1, "web");
            set(&mut constraint, policy);
            p.topology_spread = vec![constraint];
        };
        solve(&SolveInput {
            existing: vec![existing.clone()],
            ..input(vec![pool("default", small_types())], replicas("web", 3, 100, with))
        })
    };
    let honor = zones_of_placements(&run(InclusionPolicy::Honor));
    assert_eq!(honor.values().copied().collect::<Vec<_>>(), [1, 1, 1], "{why}: {honor:?}");
    let ignore = zones_of_placements(&run(InclusionPolicy::Ignore));
    assert_eq!(ignore.get(ZONES[0]), None, "node-a's 2 pods count in zone a: {ignore:?}");
    assert_eq!(ignore.values().sum::<usize>(), 3);
}

#[test]
fn node_affinity_policy_decides_which_existing_pods_count() {
    let existing = zone_a_node_with_two_web_pods(|n| {
        n.labels.insert(labels::ARCH.into(), "arm64".into());
    });
    assert_policy_decides_whether_node_a_counts(
        existing,
        |p| {
            p.node_selector.insert(labels::ARCH.into(), "amd64".into());
        },
        |c, policy| c.node_affinity_policy = policy,
        "arm64 node-a does not count",
    );
}

#[test]
fn node_taints_policy_decides_which_existing_pods_count() {
    let existing = zone_a_node_with_two_web_pods(|n| {
        n.taints =
            vec![Taint { key: "dedicated".into(), value: "db".into(), effect: TaintEffect::NoSchedule }];
    });
    assert_policy_decides_whether_node_a_counts(
        existing,
        |_| {},
        |c, policy| c.node_taints_policy = policy,
        "tainted node-a does not count",
    );
}

#[test]
fn match_label_keys_split_spread_by_revision() {
    let edit = |rev: &'static str| {
        move |p: &mut Pod| {
            p.labels.insert("rev".into(), rev.into());
            p.topology_spread = vec![TopologySpreadConstraint {
                match_label_keys: vec!["rev".into()],
                ..spread(labels::HOSTNAME, 1, "web")
            }];
        }
    };
    let mut pending = replicas("web", 2, 100, edit("1"));
    let mut v2 = replicas("web", 2, 100, edit("2"));
    for (i, p) in v2.iter_mut().enumerate() {
        Arc::make_mut(p).name = format!("web-v2-{i}");
    }
    pending.extend(v2);
    let r = solve(&input(vec![pool("default", small_types())], pending));
    assert_eq!(r.new_claims.len(), 2, "each revision spreads on its own: two nodes with one pod of each");
}

#[test]
fn schedule_anyway_spread_is_relaxed_when_unsatisfiable() {
    let pending = replicas("web", 3, 100, |p| {
        p.node_selector.insert(labels::ZONE.into(), ZONES[0].into());
        p.topology_spread = vec![TopologySpreadConstraint {
            when_unsatisfiable: WhenUnsatisfiable::ScheduleAnyway,
            node_affinity_policy: InclusionPolicy::Ignore,
            ..spread(labels::ZONE, 1, "web")
        }];
    });
    let r = solve(&input(vec![pool("default", small_types())], pending));
    assert_eq!(r.placements.len(), 3, "{:?}", r.unschedulable);
}

// === Pod affinity ===

#[test]
fn hostname_anti_affinity_separates_pods_including_running_ones() {
    let mut old = pod("old", 100);
    old.labels.insert("app".into(), "web".into());
    let existing = node("node-a", ZONES[0], 8000, vec![running(old, "node-a")]);
    let pending = replicas("web", 3, 100, |p| {
        p.affinity.pod_anti.required = vec![affinity_term(labels::HOSTNAME, "web")]
    });
    let r = solve(&SolveInput {
        existing: vec![existing],
        ..input(vec![pool("default", small_types())], pending)
    });
    assert_eq!(r.new_claims.len(), 3);
    assert!(r.new_claims.iter().all(|c| c.pods.len() == 1));
}

#[test]
fn constrained_classes_are_placed_before_unconstrained_ones_are_packed_together() {
    let web = |p: &mut Pod| p.affinity.pod_anti.required = vec![affinity_term(labels::HOSTNAME, "web")];
    let mut pending = replicas("a", 3, 600, |_| {});
    pending.extend(replicas("b", 2, 300, |_| {}));
    pending.extend(replicas("web", 3, 1500, web));
    let r = solve(&input(vec![pool("default", small_types())], pending.clone()));
    let first: Vec<&[String]> = r.new_claims.iter().take(3).map(|c| c.pods.as_slice()).collect();
    assert_eq!(first, [["default/web-000"], ["default/web-001"], ["default/web-002"]]);
    assert!(r.new_claims[3..].iter().all(|c| c.pods.iter().all(|p| !p.starts_with("default/web"))));
    // Unless an unconstrained pod has a higher priority: then it goes first.
    for p in pending.iter_mut().filter(|p| p.name.starts_with("a-")) {
        Arc::make_mut(p).priority = 10;
    }
    let r = solve(&input(vec![pool("default", small_types())], pending));
    assert!(r.new_claims[0].pods.iter().any(|p| p.starts_with("default/a-")), "{:?}", r.new_claims[0].pods);
}

#[test]
fn running_pods_anti_affinity_is_symmetric() {
    let mut guard = pod("guard", 100);
    guard.affinity.pod_anti.required = vec![affinity_term(labels::ZONE, "web")];
    let existing = node("node-a", ZONES[0], 8000, vec![running(guard, "node-a")]);
    let r = solve(&SolveInput {
        existing: vec![existing],
        ..input(vec![pool("default", small_types())], replicas("web", 2, 100, |_| {}))
    });
    assert!(r.placements.values().all(|p| matches!(p, Placement::NewClaim(_))));
    assert!(r.new_claims.iter().all(|c| zone_of(c).is_some_and(|z| z != ZONES[0])), "{:?}", r.new_claims);
}

#[test]
fn zonal_affinity_follows_running_pods() {
    let mut db = pod("db", 100);
    db.labels.insert("app".into(), "db".into());
    let existing = node("node-b", ZONES[1], 100, vec![running(db, "node-b")]);
    let pending =
        replicas("api", 2, 500, |p| p.affinity.pod.required = vec![affinity_term(labels::ZONE, "db")]);
    let r = solve(&SolveInput {
        existing: vec![existing],
        ..input(vec![pool("default", small_types())], pending)
    });
    assert_eq!(r.placements.len(), 2, "{:?}", r.unschedulable);
    assert!(r.new_claims.iter().all(|c| zone_of(c) == Some(ZONES[1])));
}

#[test]
fn affinity_to_pods_of_the_same_batch_and_self_affinity() {
    // The first pod of a self-affine group may go anywhere; the rest must join it.
    let pending = replicas("cache", 3, 500, |p| {
        p.affinity.pod.required = vec![affinity_term(labels::HOSTNAME, "cache")]
    });
    let r = solve(&input(vec![pool("default", small_types())], pending));
    assert_eq!(r.new_claims.len(), 1);
    assert_eq!(r.new_claims[0].pods.len(), 3);
    // Pods with affinity to another app in the same batch wait until it is placed.
    let mut pending =
        replicas("api", 2, 500, |p| p.affinity.pod.required = vec![affinity_term(labels::ZONE, "db")]);
    pending.extend(replicas("db", 1, 500, |p| {
        p.node_selector.insert(labels::ZONE.into(), ZONES[2].into());
    }));
    let r = solve(&input(vec![pool("default", small_types())], pending));
    assert_eq!(r.placements.len(), 3, "{:?}", r.unschedulable);
    assert!(r.new_claims.iter().all(|c| zone_of(c) == Some(ZONES[2])));
}

#[test]
fn preferred_anti_affinity_relaxes_when_it_blocks() {
    let mut p = pool("default", small_types());
    p.limits.insert(template::NODES_LIMIT.into(), 1);
    let pending = replicas("web", 2, 100, |p| {
        p.affinity.pod_anti.preferred =
            vec![Weighted { weight: 100, term: affinity_term(labels::HOSTNAME, "web") }]
    });
    let r = solve(&input(vec![p], pending));
    assert_eq!(r.new_claims.len(), 1);
    assert_eq!(r.new_claims[0].pods.len(), 2);
}

// === Daemonsets, pools, limits ===

#[test]
fn daemonset_overhead_only_from_daemonsets_that_run_there() {
    let ds = |name: &str, cpu: i64, arch: &str| {
        let mut t = pod(name, cpu);
        t.node_selector.insert(labels::ARCH.into(), arch.into());
        Arc::new(DaemonSet { namespace: "kube-system".into(), name: name.into(), template: t })
    };
    let daemonsets = vec![ds("agent", 500, "amd64"), ds("arm-agent", 1000, "arm64")];
    let pending = replicas("web", 3, 1000, |_| {});
    let r = solve(&SolveInput {
        daemonsets,
        ..input(vec![pool("default", vec![instance_type("m.xlarge", 4000, 16, 0.18)])], pending)
    });
    assert_eq!(r.new_claims.len(), 1, "3 × 1000m + 500m agent fits 4000m; the arm64 agent does not run here");
    assert_eq!(r.new_claims[0].requests.cpu, 3500);
}

#[test]
fn heavier_provisioner_wins_even_when_pricier() {
    let mut cheap = pool("cheap", small_types());
    cheap.weight = 1;
    let mut pricey = pool("pricey", vec![instance_type("x.large", 2000, 8, 0.5)]);
    pricey.weight = 10;
    let r = solve(&input(vec![cheap, pricey], vec![Arc::new(pod("a", 500))]));
    assert_eq!(r.new_claims[0].pool, "pricey");
}

#[test]
fn limits_count_in_flight_usage_and_are_never_exceeded() {
    let mut gpu_type = instance_type("g.2xlarge", 8000, 32, 1.0);
    gpu_type.capacity.set(NVIDIA_GPU, 8);
    let mut gpu = pool("gpu", vec![gpu_type]);
    gpu.limits.insert(NVIDIA_GPU.into(), 8);
    gpu.usage.resources.set(NVIDIA_GPU, 4);
    let mut p = pod("trainer", 1000);
    p.requests.set(NVIDIA_GPU, 8);
    let r = solve(&input(vec![gpu], vec![Arc::new(p)]));
    assert!(r.new_claims.is_empty());
    assert_eq!(
        r.unschedulable[0].1,
        "no instance type satisfies nvidia.com/gpu=8 within Provisioner gpu limits"
    );

    let mut p = pool("default", small_types());
    p.limits.insert("cpu".into(), 6000);
    let r = solve(&input(vec![p], replicas("web", 8, 1000, |_| {})));
    let charged: i64 =
        r.new_claims.iter().map(|c| c.instance_types.iter().map(|t| t.capacity.cpu).max().unwrap()).sum();
    assert!(charged <= 6000, "{charged}");
    assert!(!r.unschedulable.is_empty());
}

// === Volumes ===

#[test]
fn volume_topology_pins_zone() {
    let mut bound = pod("bound", 500);
    bound.pvcs = vec!["data".into()];
    let mut waiting = pod("waiting", 500);
    waiting.pvcs = vec!["scratch".into()];
    let mut missing = pod("missing", 500);
    missing.pvcs = vec!["nope".into()];
    let pvc = |name: &str, sc: Option<&str>, pv: Option<&str>| {
        Arc::new(PersistentVolumeClaim {
            namespace: "default".into(),
            name: name.into(),
            storage_class: sc.map(Into::into),
            volume_name: pv.map(Into::into),
        })
    };
    let volumes = VolumeTopology {
        claims: [
            ("default/data".to_string(), pvc("data", Some("gp3"), Some("pv-1"))),
            ("default/scratch".to_string(), pvc("scratch", Some("gp3"), None)),
        ]
        .into(),
        volumes: [(
            "pv-1".to_string(),
            Arc::new(PersistentVolume {
                name: "pv-1".into(),
                node_affinity: vec![term(vec![req(labels::EBS_CSI_ZONE, Operator::In, &[ZONES[2]])])],
            }),
        )]
        .into(),
        storage_classes: [(
            "gp3".to_string(),
            Arc::new(StorageClass {
                name: "gp3".into(),
                provisioner: "ebs.csi.aws.com".into(),
                binding_mode: VolumeBindingMode::WaitForFirstConsumer,
                allowed_topologies: vec![term(vec![req(labels::EBS_CSI_ZONE, Operator::In, &[ZONES[1]])])],
            }),
        )]
        .into(),
    };
    let r = solve(&SolveInput {
        volumes,
        ..input(
            vec![pool("default", small_types())],
            vec![Arc::new(bound), Arc::new(waiting), Arc::new(missing)],
        )
    });
    let zone_for = |key: &str| match &r.placements[key] {
        Placement::NewClaim(i) => zone_of(&r.new_claims[*i]).map(str::to_string),
        other => panic!("{other:?}"),
    };
    assert_eq!(zone_for("default/bound").as_deref(), Some(ZONES[2]));
    assert_eq!(zone_for("default/waiting").as_deref(), Some(ZONES[1]));
    assert_eq!(
        r.unschedulable,
        vec![("default/missing".to_string(), "PersistentVolumeClaim default/nope not found".to_string())]
    );
}

// === Algorithm ===

#[test]
fn claims_stay_flexible_over_every_type_that_fits() {
    let r = solve(&input(vec![pool("default", small_types())], vec![Arc::new(pod("a", 1500))]));
    let names: Vec<&str> = r.new_claims[0].instance_types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["c.large", "m.large", "m.xlarge", "m.4xlarge"]);
    assert_eq!(r.new_claims[0].launch_options[0].capacity_type, CapacityType::Spot);
    assert_eq!(r.new_claims[0].launch_options.len(), 4 * 3 * 2);
}

#[test]
fn price_per_packed_pod_beats_first_fit() {
    // 16 × 1 cpu, spot at 40 % of on-demand: per pod c.large 0.032 / 2 = 0.016, m.large 0.04 / 2 = 0.02,
    // m.xlarge 0.072 / 4 = 0.018, m.4xlarge 0.32 / 16 = 0.02. Largest-first would open one m.4xlarge
    // ($0.32); the cheapest packing is 8 × c.large = $0.256.
    let r = solve(&input(vec![pool("default", small_types())], replicas("web", 16, 1000, |_| {})));
    assert_eq!(r.new_claims.len(), 8);
    assert!((total_price(&r) - 8.0 * 0.08 * 0.4).abs() < 1e-9, "spot c.large: {}", total_price(&r));
}

#[test]
fn cpu_heavy_and_memory_heavy_classes_share_nodes_when_cheaper() {
    // Own nodes: cpu-heavy A (3 cpu, 1 GiB) one per c.x = 0.40 a pod; memory-heavy B (0.5 cpu, 7 GiB) two
    // per r.x = 0.20 a pod (on-demand prices; spot is 40 % of them). One m.x holds 1 A + 2 B (4 cpu,
    // 15 GiB) for 0.50 instead of 0.80; the last A goes on a c.x: 0.90 in all, against 1.20 apart.
    let types = vec![
        instance_type("c.x", 4000, 4, 0.40),
        instance_type("r.x", 1000, 16, 0.40),
        instance_type("m.x", 4000, 16, 0.50),
    ];
    let mut pending = replicas("a", 2, 3000, |p| p.requests = Resources::new(3000, GI).with("pods", 1));
    pending.extend(replicas("b", 2, 500, |p| p.requests = Resources::new(500, 7 * GI).with("pods", 1)));
    let r = solve(&input(vec![pool("default", types)], pending));
    assert!(r.unschedulable.is_empty(), "{:?}", r.unschedulable);
    assert!((total_price(&r) - 0.90 * 0.4).abs() < 1e-9, "{}", total_price(&r));
    let mixed = r.new_claims.iter().find(|c| c.instance_types[0].name == "m.x").expect("an m.x node");
    assert_eq!(mixed.pods.len(), 3);
    assert!(mixed.pods.iter().any(|p| p.contains("/a-")) && mixed.pods.iter().any(|p| p.contains("/b-")));
}

/// 200 pods of 4 cpu and 400 of 3 cpu (a quarter GiB each) on one 10-cpu type: $0.50 on demand, $0.20 spot.
fn ffd_trap() -> SolveInput {
    let mut pending = replicas("a", 200, 4000, |_| {});
    pending.extend(replicas("b", 400, 3000, |_| {}));
    input(vec![pool("default", vec![instance_type("t.x", 10_000, 64, 0.50)])], pending)
}

#[test]
fn many_pods_are_packed_as_the_configuration_lp_buys_them() {
    // First fit by own cost puts two 4-cpu pods on a node (8 of 10 cpu) and three 3-cpu pods on the next:
    // 100 + 134 nodes = $46.80 spot. The LP's pattern 1 × 4 cpu + 2 × 3 cpu fills nodes exactly: 200 nodes
    // = $40.00, the cpu bound (800 + 1,200 cpu on 10-cpu nodes).
    let r = solve(&ffd_trap());
    assert!(r.unschedulable.is_empty(), "{:?}", r.unschedulable);
    assert_eq!(r.new_claims.len(), 200);
    assert!((total_price(&r) - 200.0 * 0.20).abs() < 1e-6, "{}", total_price(&r));
    for claim in &r.new_claims {
        let a = claim.pods.iter().filter(|p| p.contains("/a-")).count();
        assert_eq!((a, claim.pods.len() - a), (1, 2), "{:?}", claim.pods);
    }
    assert_eq!(r, solve(&ffd_trap()), "deterministic");
}

#[test]
fn lp_packing_stops_at_limits() {
    // The LP wants 200 nodes; a 50-cpu limit allows five 10-cpu ones.
    let mut i = ffd_trap();
    i.pools[0].limits.insert("cpu".into(), 50_000);
    let r = solve(&i);
    assert_eq!(r.new_claims.len(), 5);
    assert!(r.new_claims.iter().all(|c| c.pods.len() == 3));
    assert_eq!(r.placements.len(), 15);
    assert_eq!(r.unschedulable.len(), 585);
}

#[test]
fn twenty_thousand_replicas_cost_about_one_class() {
    let pending = replicas("web", 20_000, 250, |p| {
        p.owner = Some(crate::model::OwnerRef {
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: "rs-1".into(),
            controller: true,
        })
    });
    let start = std::time::Instant::now();
    let r = solve(&input(vec![pool("default", small_types())], pending));
    assert_eq!(r.placements.len(), 20_000);
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "{:?}", start.elapsed());
}

#[test]
fn identical_inputs_give_identical_results() {
    let mut pending = replicas("web", 30, 700, |p| p.topology_spread = vec![spread(labels::ZONE, 1, "web")]);
    pending.extend(replicas("api", 10, 1300, |_| {}));
    let i = input(vec![pool("default", small_types())], pending);
    assert_eq!(solve(&i), solve(&i));
}

// === Fast paths (same answers as the slow ones) ===

/// Pods of `app` per zone of the new claims they landed on.
fn zones_of_app(r: &Results, app: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (key, p) in &r.placements {
        if let Placement::NewClaim(i) = p
            && key.contains(&format!("/{app}-"))
        {
            *out.entry(zone_of(&r.new_claims[*i]).unwrap_or("?").to_string()).or_default() += 1;
        }
    }
    out
}

#[test]
fn later_zonal_classes_join_claims_fixed_in_the_zones_their_spread_allows() {
    // Claims fixed to a zone are judged by zone, once per pod: every claim of a blocked zone is skipped,
    // every claim of an allowed zone is still a candidate.
    let mut pending = replicas("web", 3, 1000, |p| p.topology_spread = vec![spread(labels::ZONE, 1, "web")]);
    pending.extend(replicas("api", 6, 500, |p| p.topology_spread = vec![spread(labels::ZONE, 1, "api")]));
    let r = solve(&input(vec![pool("default", small_types())], pending));
    assert!(r.unschedulable.is_empty(), "{:?}", r.unschedulable);
    assert_eq!(r.new_claims.len(), 3, "both classes fit on one c.large per zone: {:?}", r.new_claims);
    for app in ["web", "api"] {
        let counts: Vec<usize> = zones_of_app(&r, app).values().copied().collect();
        assert_eq!(counts.len(), 3, "{app}: {counts:?}");
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{app}: {counts:?}");
    }
}

#[test]
fn zonal_self_affinity_fills_claims_of_its_zone_only() {
    let mut pending = replicas("web", 3, 1000, |p| p.topology_spread = vec![spread(labels::ZONE, 1, "web")]);
    pending.extend(replicas("cache", 4, 500, |p| {
        p.affinity.pod.required = vec![affinity_term(labels::ZONE, "cache")]
    }));
    let r = solve(&input(vec![pool("default", small_types())], pending));
    assert!(r.unschedulable.is_empty(), "{:?}", r.unschedulable);
    assert_eq!(zones_of_app(&r, "cache").len(), 1, "{:?}", zones_of_app(&r, "cache"));
}
