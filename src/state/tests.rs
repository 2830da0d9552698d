use std::sync::Arc;

use jiff::Timestamp;

use super::*;
use crate::{
    model::{OwnerRef, PodPhase},
    resources::Resources,
};

pub(crate) fn mk_pod(namespace: &str, name: &str, node: Option<&str>) -> Pod {
    Pod {
        labels: [("app".to_string(), "web".to_string())].into(),
        node_name: node.map(Into::into),
        phase: if node.is_some() { PodPhase::Running } else { PodPhase::Pending },
        requests: Resources::new(500, 1 << 30).with("pods", 1),
        ..Pod::test(namespace, name)
    }
}

pub(crate) fn mk_node(name: &str) -> Node {
    Node {
        name: name.into(),
        provider_id: Some(format!("aws:///us-east-1a/i-{name}")),
        labels: Default::default(),
        annotations: Default::default(),
        taints: vec![],
        unschedulable: false,
        capacity: Resources::new(2000, 4 << 30),
        allocatable: Resources::new(1930, 3 << 30),
        ready: true,
        created: Timestamp::UNIX_EPOCH,
        deleting: None,
    }
}

fn pod(namespace: &str, name: &str, node: Option<&str>) -> Object {
    Object::Pod(Arc::new(mk_pod(namespace, name, node)))
}

fn node(name: &str) -> Object {
    Object::Node(Arc::new(mk_node(name)))
}

fn ds_pod(name: &str, ds: &str, node: &str) -> Object {
    let mut p = mk_pod("kube-system", name, Some(node));
    p.owner =
        Some(OwnerRef { kind: "DaemonSet".into(), name: ds.into(), uid: "ds-uid".into(), controller: true });
    Object::Pod(Arc::new(p))
}

fn pod_names<'a>(pods: impl Iterator<Item = &'a Arc<Pod>>) -> Vec<String> {
    pods.map(|p| p.key()).collect()
}

#[test]
fn apply_and_delete_keep_secondary_indexes() {
    let cluster = Cluster::new();
    cluster.apply(node("n1"));
    cluster.apply(pod("default", "a", Some("n1")));
    cluster.apply(pod("default", "b", None));
    cluster.apply(ds_pod("aws-node-1", "aws-node", "n1"));
    let snap = cluster.snapshot();
    assert_eq!(snap.len(Kind::Pod), 3);
    assert_eq!(pod_names(snap.pods_on_node("n1")), ["default/a", "kube-system/aws-node-1"]);
    assert_eq!(pod_names(snap.pending_pods()), ["default/b"]);
    assert_eq!(pod_names(snap.daemonset_pods()), ["kube-system/aws-node-1"]);
    assert_eq!(pod_names(snap.pods_of_daemonset("kube-system", "aws-node")), ["kube-system/aws-node-1"]);

    // b gets bound: it leaves the pending set and joins n1.
    cluster.apply(pod("default", "b", Some("n1")));
    let snap = cluster.snapshot();
    assert_eq!(pod_names(snap.pending_pods()), Vec::<String>::new());
    assert_eq!(pod_names(snap.pods_on_node("n1")), ["default/a", "default/b", "kube-system/aws-node-1"]);

    cluster.delete(Kind::Pod, "default/a");
    cluster.delete(Kind::Pod, "kube-system/aws-node-1");
    cluster.delete(Kind::Node, "n1");
    let snap = cluster.snapshot();
    assert_eq!(pod_names(snap.pods_on_node("n1")), ["default/b"]);
    assert_eq!(snap.daemonset_pods().count(), 0);
    assert!(snap.nodes.is_empty());
    assert!(snap.get(Kind::Pod, "default/a").is_none());
}

#[test]
fn snapshots_do_not_change_after_later_writes() {
    let cluster = Cluster::new();
    cluster.apply(node("n1"));
    cluster.apply(pod("default", "a", None));
    let before = cluster.snapshot();
    cluster.apply(pod("default", "a", Some("n1")));
    cluster.apply(pod("default", "c", None));
    cluster.delete(Kind::Node, "n1");
    assert_eq!(before.nodes.keys().collect::<Vec<_>>(), ["n1"]);
    assert_eq!(pod_names(before.pending_pods()), ["default/a"]);
    assert_eq!(before.pods["default/a"].node_name, None);
    assert_eq!(before.pods_on_node("n1").count(), 0);
    let after = cluster.snapshot();
    assert!(after.revision() > before.revision());
    assert_eq!(pod_names(after.pending_pods()), ["default/c"]);
}

#[test]
fn init_done_replaces_contents_and_drops_objects_deleted_during_a_gap() {
    let cluster = Cluster::new();
    for name in ["n1", "n2", "n3"] {
        cluster.apply(node(name));
    }
    // The watch reconnects; n2 was deleted while it was down and n4 created.
    cluster.handle(Event::Init(Kind::Node));
    cluster.handle(Event::InitApply(node("n1")));
    cluster.handle(Event::InitApply(node("n3")));
    assert_eq!(cluster.snapshot().nodes.len(), 3, "old contents stay visible until InitDone");
    cluster.handle(Event::InitApply(node("n4")));
    cluster.handle(Event::InitDone(Kind::Node));
    assert_eq!(cluster.snapshot().keys(Kind::Node), ["n1", "n3", "n4"]);

    // A relist of pods drops stale pods from every secondary index too.
    cluster.apply(pod("default", "gone", Some("n1")));
    cluster.apply(pod("default", "gone-pending", None));
    cluster.handle(Event::Init(Kind::Pod));
    cluster.handle(Event::InitApply(pod("default", "kept", Some("n1"))));
    cluster.handle(Event::InitDone(Kind::Pod));
    let snap = cluster.snapshot();
    assert_eq!(pod_names(snap.pods_on_node("n1")), ["default/kept"]);
    assert_eq!(snap.pending_pods().count(), 0);
    assert_eq!(snap.keys(Kind::Node), ["n1", "n3", "n4"], "other kinds untouched");
}

#[test]
fn synced_waits_for_every_registered_kind() {
    let cluster = Cluster::new();
    assert!(cluster.synced(), "nothing registered: fed directly");
    cluster.register(Kind::Node);
    cluster.register(Kind::Pod);
    assert!(!cluster.synced());
    cluster.handle(Event::Init(Kind::Node));
    cluster.handle(Event::InitDone(Kind::Node));
    assert!(!cluster.synced(), "pods not listed yet");
    assert!(!cluster.snapshot().synced());
    cluster.handle(Event::Init(Kind::Pod));
    cluster.handle(Event::InitApply(pod("default", "a", None)));
    cluster.handle(Event::InitDone(Kind::Pod));
    assert!(cluster.synced());
    assert!(cluster.snapshot().synced());
    // A later relist does not un-sync: the old contents stay usable until it completes.
    cluster.handle(Event::Init(Kind::Pod));
    assert!(cluster.synced());
}

#[test]
fn identical_updates_do_not_count_as_changes() {
    let cluster = Cluster::new();
    cluster.apply(node("n1"));
    let rev = cluster.snapshot().revision();
    cluster.apply(node("n1"));
    assert_eq!(cluster.snapshot().revision(), rev);
    cluster.delete(Kind::Node, "missing");
    assert_eq!(cluster.snapshot().revision(), rev);
}

#[tokio::test(start_paused = true)]
async fn subscriptions_wake_on_the_kinds_they_watch() {
    let cluster = Cluster::new();
    let mut sub = cluster.subscribe();
    cluster.apply(pod("default", "a", None));
    let wait_nodes = tokio::time::timeout(std::time::Duration::from_secs(1), sub.changed(&[Kind::Node]));
    assert!(wait_nodes.await.is_err(), "a pod change must not wake a node watcher");
    cluster.apply(node("n1"));
    sub.changed(&[Kind::Node]).await.unwrap();
    sub.changed(&[Kind::Pod]).await.expect("the earlier pod change is still unseen for pods");
}

#[test]
fn config_maps_are_indexed_by_namespace_and_name() {
    let cluster = Cluster::new();
    let cm = ConfigMap {
        namespace: "kube-system".into(),
        name: "dns-autoscaler".into(),
        annotations: Default::default(),
        data: [("linear".to_string(), "{}".to_string())].into(),
        resource_version: Some("7".into()),
    };
    cluster.apply(Object::ConfigMap(Arc::new(cm)));
    let snap = cluster.snapshot();
    assert_eq!(snap.config_maps["kube-system/dns-autoscaler"].data["linear"], "{}");
}

#[test]
fn relists_reuse_unchanged_objects() {
    let cluster = Cluster::new();
    cluster.apply(pod("default", "a", Some("n1")));
    cluster.apply(pod("default", "b", Some("n1")));
    let before = cluster.snapshot();
    cluster.handle(Event::Init(Kind::Pod));
    cluster.handle(Event::InitApply(pod("default", "a", Some("n1"))));
    cluster.handle(Event::InitApply(pod("default", "b", Some("n2"))));
    cluster.handle(Event::InitDone(Kind::Pod));
    let after = cluster.snapshot();
    assert!(Arc::ptr_eq(&before.pods["default/a"], &after.pods["default/a"]), "unchanged: same allocation");
    assert_eq!(after.pods["default/b"].node_name.as_deref(), Some("n2"));
    assert_eq!(pod_names(after.pods_on_node("n2")), ["default/b"]);
}
