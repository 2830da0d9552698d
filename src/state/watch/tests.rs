use futures::stream;
use k8s_openapi::api::core::v1 as core;
use serde_json::json;

use super::*;
use crate::model::Shared;

fn mk_node(name: &str, cpu: &str) -> core::Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z", "resourceVersion": "1",
                     "managedFields": [{"manager": "kubelet"}]},
        "status": {"allocatable": {"cpu": cpu, "memory": "1Gi", "pods": "10"},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

fn mk_config_map(name: &str, annotated: bool) -> core::ConfigMap {
    let annotations = if annotated { json!({PROPORTIONAL_TARGET: "deployment/coredns"}) } else { json!({}) };
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "kube-system", "annotations": annotations},
        "data": {"linear": "{}"}
    }))
    .unwrap()
}

fn mk_pod(name: &str, app: &str) -> core::Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z",
                     "labels": {"app": app}},
        "spec": {"containers": [{"name": "c"}],
                 "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]}
    }))
    .unwrap()
}

fn node_pump(cluster: &Cluster) -> Pump<core::Node> {
    cluster.register(Kind::Node);
    Pump::new(cluster.clone(), Kind::Node, node_converter())
}

#[test]
fn events_reach_the_index_converted() {
    let cluster = Cluster::new();
    let mut pump = node_pump(&cluster);
    pump.handle(watcher::Event::Init);
    pump.handle(watcher::Event::InitApply(mk_node("n1", "2")));
    assert!(!cluster.synced());
    pump.handle(watcher::Event::InitDone);
    assert!(cluster.synced());
    pump.handle(watcher::Event::Apply(mk_node("n2", "4")));
    let snap = cluster.snapshot();
    assert_eq!(snap.nodes["n1"].allocatable.cpu, 2000);
    assert_eq!(snap.nodes["n2"].allocatable.cpu, 4000);
    pump.handle(watcher::Event::Delete(mk_node("n1", "2")));
    assert_eq!(cluster.snapshot().keys(Kind::Node), ["n2"]);
}

#[test]
fn replicas_listed_by_the_pod_watch_share_equal_labels_and_tolerations() {
    let cluster = Cluster::new();
    let mut pump = Pump::new(cluster.clone(), Kind::Pod, pod_converter());
    for (name, app) in [("web-0", "web"), ("web-1", "web"), ("db-0", "db")] {
        pump.handle(watcher::Event::Apply(mk_pod(name, app)));
    }
    let snap = cluster.snapshot();
    let (web0, web1, db0) =
        (&snap.pods["default/web-0"], &snap.pods["default/web-1"], &snap.pods["default/db-0"]);
    assert!(Shared::ptr_eq(&web0.labels, &web1.labels));
    assert!(!Shared::ptr_eq(&web0.labels, &db0.labels));
    assert_eq!(db0.labels.get("app").map(String::as_str), Some("db"));
    assert!(Shared::ptr_eq(&web0.tolerations, &db0.tolerations));
}

#[test]
fn reconnect_resync_drops_objects_deleted_during_the_gap() {
    let cluster = Cluster::new();
    let mut pump = node_pump(&cluster);
    for event in [
        watcher::Event::Init,
        watcher::Event::InitApply(mk_node("n1", "2")),
        watcher::Event::InitApply(mk_node("n2", "2")),
        watcher::Event::InitDone,
        watcher::Event::Apply(mk_node("n3", "2")),
    ] {
        pump.handle(event);
    }
    let before = cluster.snapshot();
    // The watch drops; n1 and n3 are deleted and n2 resized while it is down; the watcher relists.
    pump.handle(watcher::Event::Init);
    pump.handle(watcher::Event::InitApply(mk_node("n2", "8")));
    pump.handle(watcher::Event::InitApply(mk_node("n4", "2")));
    assert_eq!(cluster.snapshot().keys(Kind::Node), ["n1", "n2", "n3"], "unchanged until InitDone");
    pump.handle(watcher::Event::InitDone);
    let after = cluster.snapshot();
    assert_eq!(after.keys(Kind::Node), ["n2", "n4"]);
    assert_eq!(after.nodes["n2"].allocatable.cpu, 8000);
    assert_eq!(before.keys(Kind::Node), ["n1", "n2", "n3"], "earlier snapshots are untouched");
    assert!(cluster.synced());
}

#[test]
fn objects_that_fail_to_convert_are_skipped_and_stale_versions_dropped() {
    let cluster = Cluster::new();
    let mut pump = node_pump(&cluster);
    pump.handle(watcher::Event::Init);
    pump.handle(watcher::Event::InitApply(mk_node("good", "2")));
    pump.handle(watcher::Event::InitApply(mk_node("bad", "two")));
    pump.handle(watcher::Event::InitDone);
    assert_eq!(cluster.snapshot().keys(Kind::Node), ["good"]);
    assert_eq!(pump.failing().collect::<Vec<_>>(), ["bad"]);

    // An update that no longer converts removes the old version rather than keeping a stale one.
    pump.handle(watcher::Event::Apply(mk_node("good", "lots")));
    assert!(cluster.snapshot().nodes.is_empty());
    // Fixed objects come back and leave the failure set.
    pump.handle(watcher::Event::Apply(mk_node("bad", "1")));
    assert_eq!(cluster.snapshot().keys(Kind::Node), ["bad"]);
    assert_eq!(pump.failing().collect::<Vec<_>>(), ["good"]);
    pump.handle(watcher::Event::Delete(mk_node("good", "lots")));
    assert_eq!(pump.failing().count(), 0);
}

#[test]
fn config_maps_are_filtered_before_caching() {
    let cluster = Cluster::new();
    let names = BTreeSet::from(["kube-system/named".to_string()]);
    let mut pump = Pump::new(cluster.clone(), Kind::ConfigMap, config_map_converter(names));
    pump.handle(watcher::Event::Init);
    for cm in [mk_config_map("annotated", true), mk_config_map("named", false), mk_config_map("other", false)]
    {
        pump.handle(watcher::Event::InitApply(cm));
    }
    pump.handle(watcher::Event::InitDone);
    assert_eq!(cluster.snapshot().keys(Kind::ConfigMap), ["kube-system/annotated", "kube-system/named"]);
    // Removing the annotation removes it from the index.
    pump.handle(watcher::Event::Apply(mk_config_map("annotated", false)));
    assert_eq!(cluster.snapshot().keys(Kind::ConfigMap), ["kube-system/named"]);
}

#[test]
fn custom_resources_are_cached_without_managed_fields() {
    let cluster = Cluster::new();
    let provisioner: Provisioner = serde_json::from_value(json!({
        "apiVersion": "ballast.dev/v1alpha1", "kind": "Provisioner",
        "metadata": {"name": "default", "resourceVersion": "5", "managedFields": [{"manager": "kubectl"}],
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {}
    }))
    .unwrap();
    let mut pump = Pump::new(cluster.clone(), Kind::Provisioner, custom(Object::Provisioner));
    pump.handle(watcher::Event::Apply(provisioner.clone()));
    let rev = cluster.snapshot().revision();
    let cached = cluster.snapshot().provisioners["default"].clone();
    assert_eq!(cached.metadata.managed_fields, None);
    assert!(cached.annotations().is_empty());
    pump.handle(watcher::Event::Apply(provisioner));
    assert_eq!(cluster.snapshot().revision(), rev, "same resourceVersion: no change");
}

#[tokio::test]
async fn run_survives_watch_errors() {
    let cluster = Cluster::new();
    let pump = node_pump(&cluster);
    let events = stream::iter([
        Ok(watcher::Event::Init),
        Ok(watcher::Event::InitApply(mk_node("n1", "2"))),
        Err(watcher::Error::NoResourceVersion),
        Ok(watcher::Event::InitDone),
        Ok(watcher::Event::Apply(mk_node("n2", "2"))),
    ]);
    pump.run(events).await;
    assert!(cluster.synced());
    assert_eq!(cluster.snapshot().keys(Kind::Node), ["n1", "n2"]);
}

/// Answers the watches' list requests from a mock API server (one Node, everything else empty) and parks
/// their watch requests, until the index is synced.
#[tokio::test]
async fn spawn_lists_every_kind_into_the_index() {
    use http::{Request, Response};
    use kube::client::Body;

    let (service, mut server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let cluster = Cluster::new();
    let tasks = spawn(kube::Client::new(service, "default"), &cluster, &WatchOptions::default());
    assert_eq!(tasks.iter().map(|(kind, _)| *kind).collect::<Vec<_>>(), Kind::ALL);
    assert!(!cluster.synced(), "every kind is registered before its watch starts");

    let mut lists = Vec::new();
    let mut parked_watches = Vec::new();
    let serve = async {
        while !cluster.synced() {
            let (request, respond) = server.next_request().await.expect("watch tasks stopped calling");
            let uri = request.uri().to_string();
            if uri.contains("watch=true") {
                parked_watches.push(respond);
                continue;
            }
            let items = if uri.starts_with("/api/v1/nodes?") {
                vec![serde_json::to_value(mk_node("n1", "2")).unwrap()]
            } else {
                vec![]
            };
            let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items});
            respond.send_response(Response::new(Body::from(serde_json::to_vec(&list).unwrap())));
            lists.push(uri);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), serve).await.expect("index never synced");

    assert_eq!(cluster.snapshot().keys(Kind::Node), ["n1"]);
    lists.sort();
    let paths: Vec<&str> = lists.iter().map(|u| u.split('?').next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/configmaps",
            "/api/v1/nodes",
            "/api/v1/persistentvolumeclaims",
            "/api/v1/persistentvolumes",
            "/api/v1/pods",
            "/apis/apps/v1/daemonsets",
            "/apis/ballast.dev/v1alpha1/nodeclaims",
            "/apis/ballast.dev/v1alpha1/nodetemplates",
            "/apis/ballast.dev/v1alpha1/provisioners",
            "/apis/policy/v1/poddisruptionbudgets",
            "/apis/storage.k8s.io/v1/storageclasses",
        ]
    );
    let pods = lists.iter().find(|u| u.starts_with("/api/v1/pods?")).unwrap();
    assert!(pods.contains("fieldSelector=status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed"), "{pods}");
    for (_, task) in tasks {
        task.abort();
    }
}
