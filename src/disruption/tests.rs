use std::sync::Arc;

use super::{fixtures::*, *};
use crate::{
    api::{ProvisionerSpec, labels, provisioner::Disruption as DisruptionSpec},
    cloud::CapacityType::{OnDemand, Spot},
    model::{IntOrPercent, LabelSelector, PodDisruptionBudget},
    state::Object,
};

fn plan_at(world: &World, snap: &Snapshot, now: jiff::Timestamp) -> Option<Command> {
    let settings = World::settings(snap);
    plan(&world.ctx(snap, &settings, now)).command
}

fn consolidating(tweak: impl FnOnce(&mut ProvisionerSpec)) -> World {
    World::new(provisioner("default", true, tweak), OnDemand)
}

// === Expiration ===

#[test]
fn an_expired_node_is_replaced_when_its_pods_fit_nowhere_else() {
    let mut w =
        World::new(provisioner("default", false, |s| s.ttl_seconds_until_expired = Some(3600)), OnDemand);
    w.add_node("a", "m5.large", OnDemand).add_pods("a", 1, 1000);
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(3599)), None, "not expired yet");
    let cmd = plan_at(&w, &snap, at(3600)).expect("expired");
    assert_eq!(cmd.reason, Reason::Expired);
    assert_eq!(cmd.nodes, ["a"]);
    assert_eq!(cmd.replacements.len(), 1, "the pod needs a new node");
}

#[test]
fn expiration_respects_do_not_disrupt_pods_but_not_do_not_consolidate_nodes() {
    let mut w =
        World::new(provisioner("default", false, |s| s.ttl_seconds_until_expired = Some(60)), OnDemand);
    w.add_node("a", "m5.large", OnDemand);
    let mut p = pod("guarded", Some("a"), 100);
    p.annotations.insert(labels::KARPENTER_DO_NOT_EVICT.into(), "true".into());
    w.add(Object::Pod(Arc::new(p)));
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(120)), None);

    let mut w =
        World::new(provisioner("default", false, |s| s.ttl_seconds_until_expired = Some(60)), OnDemand);
    let (mut n, c) = node("a", "m5.large", OnDemand, t0());
    n.annotations.insert(labels::KARPENTER_DO_NOT_CONSOLIDATE.into(), "true".into());
    w.add(Object::Node(Arc::new(n))).add(Object::NodeClaim(Arc::new(c)));
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(120)).map(|c| c.reason), Some(Reason::Expired));
}

// === Drift ===

#[test]
fn a_node_drifts_when_the_provisioner_requirements_or_labels_change() {
    let mut w = World::new(provisioner("default", false, |_| {}), OnDemand);
    w.add_node("a", "m5.large", OnDemand);
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(60)), None, "matches its pool");

    let pool = w.pools.get_mut("default").unwrap();
    pool.requirements.add(labels::INSTANCE_TYPE, crate::scheduling::ValueSet::one_of(["c5.large"]));
    let cmd = plan_at(&w, &snap, at(60)).expect("drifted");
    assert_eq!(cmd.reason, Reason::Drifted);
    assert!(cmd.detail.contains(labels::INSTANCE_TYPE), "{}", cmd.detail);

    let mut w = World::new(provisioner("default", false, |_| {}), OnDemand);
    w.add_node("a", "m5.large", OnDemand);
    w.pools.get_mut("default").unwrap().labels.insert("team".into(), "blue".into());
    let snap = w.observed();
    let cmd = plan_at(&w, &snap, at(60)).expect("drifted");
    assert!(cmd.detail.contains("team=blue"), "{}", cmd.detail);
}

#[test]
fn a_node_drifts_when_its_pool_taints_change() {
    let mut w = World::new(provisioner("default", false, |_| {}), OnDemand);
    w.add_node("a", "m5.large", OnDemand);
    w.pools.get_mut("default").unwrap().taints.push(crate::model::Taint {
        key: "dedicated".into(),
        value: "gpu".into(),
        effect: crate::model::TaintEffect::NoSchedule,
    });
    let snap = w.observed();
    let cmd = plan_at(&w, &snap, at(60)).expect("drifted");
    assert!(cmd.detail.contains("taints"), "{}", cmd.detail);
}

#[test]
fn node_template_hash_is_stable_and_detects_changes() {
    let spec = crate::api::NodeTemplateSpec::default();
    assert_eq!(methods::node_template_hash(&spec), methods::node_template_hash(&spec.clone()));
    let mut other = spec.clone();
    other.user_data = Some("#!/bin/bash\necho hi".into());
    assert_ne!(methods::node_template_hash(&spec), methods::node_template_hash(&other));
}

// === Emptiness ===

#[test]
fn an_empty_node_is_deleted_after_ttl_seconds_after_empty() {
    let mut w = World::new(provisioner("default", false, |s| s.ttl_seconds_after_empty = Some(30)), OnDemand);
    w.add_node("a", "m5.large", OnDemand).add_node("b", "m5.large", OnDemand).add_pods("b", 1, 500);
    // A daemonset pod does not make a node non-empty.
    let mut ds = pod("ds-a", Some("a"), 100);
    ds.owner = Some(crate::model::OwnerRef {
        kind: "DaemonSet".into(),
        name: "ds".into(),
        uid: "d".into(),
        controller: true,
    });
    w.add(Object::Pod(Arc::new(ds)));
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(29)), None);
    let cmd = plan_at(&w, &snap, at(30)).expect("empty long enough");
    assert_eq!((cmd.reason, cmd.nodes.clone()), (Reason::Empty, vec!["a".to_string()]));
    assert!((cmd.savings - 0.096).abs() < 1e-9, "saves the m5.large price: {}", cmd.savings);
}

#[test]
fn history_tracks_when_a_node_became_empty() {
    let mut w = World::new(provisioner("default", false, |_| {}), OnDemand);
    w.add_node("a", "m5.large", OnDemand).add_pods("a", 1, 500);
    let mut history = History::default();
    history.observe(&w.snapshot(), at(0));
    assert_eq!(history.empty_since("a"), None);
    w.objects.retain(|o| !matches!(o, Object::Pod(_)));
    history.observe(&w.snapshot(), at(10));
    history.observe(&w.snapshot(), at(20));
    assert_eq!(history.empty_since("a"), Some(at(10)));
    assert_eq!(history.last_change("a"), Some(at(10)));
}

// === Consolidation ===

#[test]
fn a_node_whose_pods_fit_elsewhere_is_deleted() {
    let mut w = consolidating(|_| {});
    w.add_node("a", "m5.xlarge", OnDemand).add_pods("a", 1, 1000);
    w.add_node("b", "m5.xlarge", OnDemand).add_pods("b", 1, 1000);
    let snap = w.observed();
    let cmd = plan_at(&w, &snap, at(60)).expect("consolidate");
    assert_eq!(cmd.reason, Reason::Underutilized);
    assert_eq!(cmd.nodes.len(), 1);
    assert!(cmd.replacements.is_empty());
    assert!((cmd.savings - 0.192).abs() < 1e-9);
}

#[test]
fn a_node_is_replaced_by_a_strictly_cheaper_one() {
    let mut w = consolidating(|_| {});
    w.add_node("a", "m5.2xlarge", OnDemand).add_pods("a", 1, 1000);
    let snap = w.observed();
    let cmd = plan_at(&w, &snap, at(60)).expect("replace");
    assert_eq!(cmd.replacements.len(), 1);
    let claim = &cmd.replacements[0];
    assert!(claim.launch_options.iter().all(|o| o.price < 0.384 && o.instance_type != "m5.2xlarge"));
    assert!(cmd.savings > 0.0);
}

#[test]
fn a_node_is_not_replaced_by_the_same_or_a_pricier_type() {
    let mut w = consolidating(|_| {});
    w.add_node("a", "c5.large", OnDemand).add_pods("a", 1, 1500);
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(60)), None, "c5.large is the cheapest type that fits");
}

#[test]
fn multi_node_consolidation_merges_several_nodes_into_one() {
    let mut w = consolidating(|s| {
        s.disruption = Some(DisruptionSpec {
            budgets: Some(vec![crate::api::provisioner::Budget {
                nodes: "100%".into(),
                schedule: None,
                duration: None,
            }]),
            ..DisruptionSpec::default()
        })
    });
    for n in ["a", "b", "c"] {
        w.add_node(n, "m5.xlarge", OnDemand).add_pods(n, 1, 500);
    }
    let snap = w.observed();
    let cmd = plan_at(&w, &snap, at(60)).expect("consolidate");
    assert!(cmd.nodes.len() >= 2, "{cmd:?}");
    assert!(cmd.replacements.len() <= 1);
    let replaced: f64 = cmd.replacements.iter().map(|c| c.price()).sum();
    assert!(replaced < 0.192 * cmd.nodes.len() as f64);
}

#[test]
fn budgets_limit_how_many_nodes_one_command_takes() {
    let mut w = consolidating(|_| {}); // default 10% of 3 nodes → 1
    for n in ["a", "b", "c"] {
        w.add_node(n, "m5.xlarge", OnDemand).add_pods(n, 1, 500);
    }
    let snap = w.observed();
    let cmd = plan_at(&w, &snap, at(60)).expect("consolidate");
    assert_eq!(cmd.nodes.len(), 1);

    let mut w = consolidating(|s| {
        s.disruption = Some(DisruptionSpec {
            budgets: Some(vec![crate::api::provisioner::Budget {
                nodes: "0".into(),
                schedule: None,
                duration: None,
            }]),
            ..DisruptionSpec::default()
        })
    });
    w.add_node("a", "m5.xlarge", OnDemand).add_node("b", "m5.xlarge", OnDemand);
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(60)), None);
}

#[test]
fn nodes_already_disrupting_use_up_the_budget() {
    let mut w = consolidating(|_| {});
    w.add_node("a", "m5.xlarge", OnDemand).add_node("b", "m5.xlarge", OnDemand);
    let (mut n, c) = node("c", "m5.xlarge", OnDemand, t0());
    n.taints.push(controller::disruption_taint());
    w.add(Object::Node(Arc::new(n))).add(Object::NodeClaim(Arc::new(c)));
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(60)), None, "1 of 3 allowed and 1 already disrupting");
}

#[test]
fn do_not_disrupt_and_pdbs_protect_nodes() {
    let mut w = consolidating(|_| {});
    w.add_node("a", "m5.xlarge", OnDemand);
    let mut p = pod("guarded", Some("a"), 100);
    p.annotations.insert(labels::DO_NOT_DISRUPT.into(), "true".into());
    w.add(Object::Pod(Arc::new(p)));
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(60)), None);
    let settings = World::settings(&snap);
    let plan = plan(&w.ctx(&snap, &settings, at(60)));
    assert!(
        plan.skipped.iter().any(|(n, why)| n == "a" && why.contains("do-not-disrupt")),
        "{:?}",
        plan.skipped
    );

    let mut w = consolidating(|_| {});
    let (mut n, c) = node("a", "m5.xlarge", OnDemand, t0());
    n.annotations.insert(labels::DO_NOT_DISRUPT.into(), "true".into());
    w.add(Object::Node(Arc::new(n))).add(Object::NodeClaim(Arc::new(c)));
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(60)), None);

    let mut w = consolidating(|_| {});
    w.add_node("a", "m5.xlarge", OnDemand).add_pods("a", 2, 100);
    w.add(Object::PodDisruptionBudget(Arc::new(PodDisruptionBudget {
        namespace: "default".into(),
        name: "web".into(),
        selector: LabelSelector {
            match_labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        },
        min_available: Some(IntOrPercent::Int(2)),
        max_unavailable: None,
        disruptions_allowed: 5, // stale status; the spec and the pods say 0
    })));
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(60)), None);
}

#[test]
fn consolidate_after_and_the_utilization_threshold_hold_nodes_back() {
    let spec = |after: &str, threshold: Option<i32>| {
        let after = after.to_string();
        move |s: &mut ProvisionerSpec| {
            s.disruption = Some(DisruptionSpec {
                consolidate_after: Some(after),
                utilization_threshold: threshold,
                ..DisruptionSpec::default()
            })
        }
    };
    let mut w = consolidating(spec("5m", None));
    w.add_node("a", "m5.xlarge", OnDemand).add_pods("a", 1, 500);
    w.add_node("b", "m5.xlarge", OnDemand).add_pods("b", 1, 500);
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(299)), None);
    assert!(plan_at(&w, &snap, at(300)).is_some());

    let mut w = consolidating(spec("0s", Some(20)));
    w.add_node("a", "m5.xlarge", OnDemand).add_pods("a", 1, 1000); // 1 of ~3.9 cpu: above 20 %
    w.add_node("b", "m5.xlarge", OnDemand).add_pods("b", 1, 1000);
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(60)), None);
}

#[test]
fn pending_pods_or_launching_claims_pause_consolidation() {
    let mut w = consolidating(|_| {});
    w.add_node("a", "m5.xlarge", OnDemand).add_node("b", "m5.xlarge", OnDemand);
    let snap = w.observed();
    assert!(plan_at(&w, &snap, at(60)).is_some());
    w.add(Object::Pod(Arc::new(pod("waiting", None, 500))));
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(60)), None);
}

#[test]
fn spot_nodes_are_replaced_by_spot_only_with_enough_cheaper_types() {
    let mut w = World::new(provisioner("default", true, |_| {}), Spot);
    w.add_node("a", "m5.2xlarge", Spot).add_pods("a", 1, 1000);
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(60)), None, "only 3 cheaper spot types in the fixture catalog");

    // The whole bundled catalog has plenty: the replacement may launch into the 15 cheapest spot types only.
    w.catalog = (*crate::cloud::Catalog::bundled()).clone();
    w.pools.insert("default".into(), fixtures::pool("default", &w.catalog, Spot));
    let cmd = plan_at(&w, &snap, at(60)).expect("spot to spot");
    let options = &cmd.replacements[0].launch_options;
    let types: std::collections::BTreeSet<&str> = options.iter().map(|o| o.instance_type.as_str()).collect();
    assert_eq!(types.len(), methods::MIN_SPOT_TO_SPOT_TYPES);
    assert!(options.iter().all(|o| o.capacity_type == Spot));
}

#[test]
fn a_recent_replacement_is_not_replaced_again_within_the_cooldown() {
    let mut w = consolidating(|s| {
        s.disruption =
            Some(DisruptionSpec { replacement_cooldown: Some("1h".into()), ..DisruptionSpec::default() })
    });
    let (n, mut c) = node("a", "m5.2xlarge", OnDemand, t0());
    c.metadata.annotations =
        Some([(candidate::REPLACEMENT_ANNOTATION.to_string(), "old".to_string())].into());
    w.add(Object::Node(Arc::new(n))).add(Object::NodeClaim(Arc::new(c))).add_pods("a", 1, 1000);
    let snap = w.observed();
    assert_eq!(plan_at(&w, &snap, at(600)), None);
    assert!(plan_at(&w, &snap, at(3600)).is_some());
}

#[test]
fn candidates_are_ordered_by_disruption_cost() {
    let mut w = consolidating(|_| {});
    w.add_node("busy", "m5.xlarge", OnDemand).add_pods("busy", 3, 100);
    w.add_node("idle", "m5.xlarge", OnDemand).add_pods("idle", 1, 100);
    let snap = w.observed();
    let (candidates, _) = candidate::candidates(&snap, &w.catalog);
    let names: Vec<&str> = candidates.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["idle", "busy"]);
    let cmd = plan_at(&w, &snap, at(60)).unwrap();
    assert_eq!(cmd.nodes, ["idle"]);
}

// === Validation ===

#[test]
fn validation_drops_a_command_the_cluster_no_longer_supports() {
    let mut w = consolidating(|_| {});
    w.add_node("a", "m5.xlarge", OnDemand).add_pods("a", 1, 1000);
    w.add_node("b", "m5.xlarge", OnDemand).add_pods("b", 1, 1000);
    let snap = w.observed();
    let cmd = plan_at(&w, &snap, at(60)).unwrap();
    let settings = World::settings(&snap);
    assert!(validate(&w.ctx(&snap, &settings, at(75)), &cmd).is_some());

    // The other node filled up meanwhile: the pods no longer fit, so deleting is no longer valid.
    let other = if cmd.nodes[0] == "a" { "b" } else { "a" };
    w.add(Object::Pod(Arc::new(pod("late", Some(other), 2800))));
    let snap = w.snapshot();
    w.history.observe(&snap, at(70));
    assert!(validate(&w.ctx(&snap, &settings, at(75)), &cmd).is_none());
}

#[test]
fn pools_are_built_from_provisioners_and_bad_ones_are_reported() {
    let good = provisioner("default", true, |s| {
        s.requirements = Some(vec![k8s_openapi::api::core::v1::NodeSelectorRequirement {
            key: labels::INSTANCE_TYPE.into(),
            operator: "In".into(),
            values: Some(vec!["m5.large".into()]),
        }])
    });
    let bad = provisioner("bad", true, |s| {
        s.requirements = Some(vec![k8s_openapi::api::core::v1::NodeSelectorRequirement {
            key: labels::INSTANCE_TYPE.into(),
            operator: "Near".into(),
            values: None,
        }])
    });
    let snap =
        Snapshot::from_objects([Object::Provisioner(Arc::new(good)), Object::Provisioner(Arc::new(bad))]);
    let (pools, errors) = pools(&snap, &fixtures::catalog());
    assert_eq!(pools.keys().collect::<Vec<_>>(), ["default"]);
    let names: Vec<&str> =
        pools["default"].instance_types.iter().map(|t| t.instance_type.name.as_str()).collect();
    assert_eq!(names, ["m5.large"]);
    assert!(errors.len() == 1 && errors[0].contains("bad"), "{errors:?}");
}
