use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::{controller::Report, *};
use crate::{
    actuator::{Call, RecordingActuator},
    cloud::CapacityType::Spot,
    disruption::{
        controller::disruption_taint,
        fixtures::{World, at, node, provisioner},
    },
    state::Object,
};

const SPOT: &str = "i-0a1b2c3d4e5f60001";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/interruption/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("failed to read {path}: {e}"))
}

fn message(kind: Kind, ids: &[&str], time: Timestamp) -> Message {
    Message {
        kind,
        instance_ids: ids.iter().map(|s| s.to_string()).collect(),
        time,
        event_id: "e".into(),
        state: None,
    }
}

/// Nodes named after the fixtures' instances (`i-<name>` is the instance id).
fn world() -> World {
    let mut w = World::new(provisioner("default", true, |_| {}), Spot);
    for n in 1..=5 {
        w.add_node(&format!("0a1b2c3d4e5f6000{n}"), "m5.large", Spot).add_pods(
            &format!("0a1b2c3d4e5f6000{n}"),
            2,
            200,
        );
    }
    w
}

fn actions(plan: &Plan) -> Vec<(&str, Action)> {
    plan.steps.iter().map(|s| (s.instance_id.as_str(), s.action)).collect()
}

#[test]
fn each_kind_maps_to_its_action_on_the_claim_and_node() {
    let snap = world().snapshot();
    let t = at(600);
    let messages = [
        message(Kind::SpotInterruption, &[SPOT], t),
        message(Kind::RebalanceRecommendation, &["i-0a1b2c3d4e5f60002"], t),
        message(Kind::ScheduledChange, &["i-0a1b2c3d4e5f60003"], t),
        message(Kind::StateChange, &["i-0a1b2c3d4e5f60004"], t),
        message(Kind::Unrelated, &[], t),
        message(Kind::SpotInterruption, &["i-0notours"], t),
    ];
    let plan = plan(&snap, &messages, t + SignedDuration::from_secs(3));
    assert_eq!(
        actions(&plan),
        [
            (SPOT, Action::Drain),
            ("i-0a1b2c3d4e5f60002", Action::Notify),
            ("i-0a1b2c3d4e5f60003", Action::Drain),
            ("i-0a1b2c3d4e5f60004", Action::Drain),
            ("i-0notours", Action::UnknownInstance),
        ]
    );
    let spot = &plan.steps[0];
    assert_eq!(
        (spot.claim.as_deref(), spot.node.as_deref()),
        (Some("0a1b2c3d4e5f60001"), Some("0a1b2c3d4e5f60001"))
    );
    assert_eq!((spot.message, spot.age), (0, SignedDuration::from_secs(3)));
    assert_eq!(plan.steps[4].message, 5);
    // Only a spot interruption names the pool to avoid.
    let pools: Vec<_> = plan.steps.iter().map(|s| s.reclaimed_spot_pool.clone()).collect();
    let reclaimed = Some(("m5.large".to_string(), "us-east-1a".to_string()));
    assert_eq!(pools, [reclaimed, None, None, None, None]);
}

#[test]
fn an_instance_is_drained_once_and_a_deleting_claim_not_again() {
    let mut w = world();
    let (n, mut c) = node("gone", "m5.large", Spot, at(0));
    c.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(1)));
    w.add(Object::Node(Arc::new(n))).add(Object::NodeClaim(Arc::new(c)));
    let t = at(600);
    let messages = [
        message(Kind::SpotInterruption, &[SPOT], t),
        message(Kind::StateChange, &[SPOT], t),
        message(Kind::SpotInterruption, &["i-gone"], t),
    ];
    let plan = plan(&w.snapshot(), &messages, t);
    assert_eq!(
        actions(&plan),
        [(SPOT, Action::Drain), (SPOT, Action::AlreadyTerminating), ("i-gone", Action::AlreadyTerminating)]
    );
}

#[test]
fn a_claim_whose_node_never_registered_is_still_drained() {
    let mut w = World::new(provisioner("default", true, |_| {}), Spot);
    let (_, mut c) = node("unregistered", "m5.large", Spot, at(0));
    c.status.as_mut().unwrap().node_name = None;
    w.add(Object::NodeClaim(Arc::new(c)));
    let plan = plan(&w.snapshot(), &[message(Kind::SpotInterruption, &["i-unregistered"], at(5))], at(5));
    assert_eq!(plan.steps[0].action, Action::Drain);
    assert_eq!((plan.steps[0].claim.as_deref(), plan.steps[0].node.as_deref()), (Some("unregistered"), None));
}

fn setup() -> (Interruption, Arc<MemoryQueue>, Arc<RecordingActuator>) {
    let queue = Arc::new(MemoryQueue::new());
    let kube = Arc::new(RecordingActuator::new());
    (Interruption::new(queue.clone(), kube.clone(), InterruptionMetrics::default()), queue, kube)
}

async fn run(i: &Interruption, w: &World, now: Timestamp) -> Report {
    i.reconcile(|| w.snapshot(), || now).await.unwrap()
}

#[tokio::test]
async fn every_fixture_is_handled_and_deleted_including_malformed_ones() {
    let (i, queue, kube) = setup();
    let w = world();
    // Sent in the order `order.txt` lists them, which the assertions below follow.
    for name in fixture("order.txt").lines() {
        queue.send(fixture(name));
    }
    let report = run(&i, &w, at(660)).await;
    assert_eq!((report.received, report.deleted), (10, 10));
    assert!(queue.is_empty());
    assert_eq!(report.unparseable, ["invalid_detail", "invalid_envelope"]);

    let calls = kube.calls();
    let deleted: Vec<&str> = calls
        .iter()
        .filter_map(|c| if let Call::DeleteNodeClaim(n) = c { Some(n.as_str()) } else { None })
        .collect();
    assert_eq!(deleted, ["0a1b2c3d4e5f60001", "0a1b2c3d4e5f60003", "0a1b2c3d4e5f60004", "0a1b2c3d4e5f60005"]);
    for node in &deleted {
        assert!(
            calls.contains(&Call::TaintNode(node.to_string(), disruption_taint())),
            "{node} cordoned at once"
        );
    }
    let events: Vec<(String, String)> = kube.events().into_iter().map(|e| (e.name, e.reason)).collect();
    assert_eq!(
        events,
        [
            ("0a1b2c3d4e5f60001".into(), "SpotInterrupted".into()),
            ("0a1b2c3d4e5f60002".into(), "SpotRebalanceRecommendation".into()),
            ("0a1b2c3d4e5f60003".into(), "InstanceUnhealthy".into()),
            ("0a1b2c3d4e5f60004".into(), "InstanceStopping".into()),
            ("0a1b2c3d4e5f60005".into(), "InstanceTerminating".into()),
        ]
    );
    let m = i.metrics();
    assert_eq!(m.deleted_count("spot_interruption"), 2);
    assert_eq!(m.deleted_count("unrelated"), 2);
    assert_eq!(m.deleted_count("unparseable"), 2);
    assert_eq!(m.action_count(Kind::SpotInterruption, "unknown_instance"), 1);
    assert_eq!(m.action_count(Kind::StateChange, "drain"), 2);
    assert_eq!(m.action_count(Kind::RebalanceRecommendation, "notify"), 1);
}

#[tokio::test]
async fn nothing_is_handled_or_deleted_before_the_index_syncs() {
    let (i, queue, kube) = setup();
    queue.send(fixture("spot_interruption.json"));
    let report = i.reconcile(crate::state::Snapshot::default, || at(0)).await.unwrap();
    assert_eq!((report.received, report.deleted), (1, 0));
    assert!(kube.calls().is_empty() && queue.len() == 1);
}

#[tokio::test]
async fn a_managed_node_without_a_claim_is_drained_by_the_taint_alone() {
    let (i, queue, kube) = setup();
    let mut w = World::new(provisioner("default", true, |_| {}), Spot);
    let (n, _) = node("orphan", "m5.large", Spot, at(0));
    w.add(Object::Node(Arc::new(n)));
    queue.send(fixture("spot_interruption.json").replace(SPOT, "i-orphan"));
    let report = run(&i, &w, at(605)).await;
    assert_eq!(report.deleted, 1);
    assert_eq!((report.steps[0].action, report.steps[0].claim.as_deref()), (Action::Drain, None));
    assert_eq!(kube.calls()[0], Call::TaintNode("orphan".into(), disruption_taint()));
    assert!(!kube.calls().iter().any(|c| matches!(c, Call::DeleteNodeClaim(_))));
}
