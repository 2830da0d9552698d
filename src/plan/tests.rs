use std::path::Path;

use super::*;
use crate::config::LoopArgs;

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A `kubectl get -o yaml` List: a good node, a node with a bad quantity, a Service.
const NODES_LIST: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: good, creationTimestamp: "2026-11-23T10:00:00Z", labels: {kubernetes.io/arch: amd64}}
  status:
    allocatable: {cpu: 1930m, memory: 7246132Ki, pods: "29"}
    capacity: {cpu: "2", memory: 7936308Ki, pods: "29"}
    conditions: [{type: Ready, status: "True"}]
    nodeInfo: {architecture: amd64, futureField: kept-out}
- apiVersion: v1
  kind: Node
  metadata: {name: broken, creationTimestamp: "2026-11-23T10:00:00Z"}
  status:
    allocatable: {cpu: lots}
- apiVersion: v1
  kind: Service
  metadata: {name: kube-dns, namespace: kube-system}
"#;

/// Multi-document YAML: a running pod, a succeeded pod, a Deployment whose replicas are not a number, a
/// Deployment, a ConfigMap nobody asked for and an annotated one.
const MULTI_DOC: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: default, creationTimestamp: "2026-11-23T10:00:00Z"}
spec:
  nodeName: good
  containers: [{name: web, resources: {requests: {cpu: 500m}}}]
status: {phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: job-1, namespace: default, creationTimestamp: "2026-11-23T10:00:00Z"}
spec:
  containers: [{name: job}]
status: {phase: Succeeded}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad, namespace: default}
spec: {replicas: three, selector: {}, template: {}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system}
spec: {replicas: 2, selector: {}, template: {}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated, namespace: default}
data: {a: b}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: coredns-autoscaler
  namespace: kube-system
  annotations: {ballast.dev/proportional-target: deployment/coredns}
data: {ladder: '{"nodesToReplicas": [[1, 1], [2, 2]]}'}
"#;

/// A single object, as `kubectl get statefulset cache -o json` prints it (no replicas: the default, 1).
const SINGLE_JSON: &str = r#"{"apiVersion": "apps/v1", "kind": "StatefulSet",
  "metadata": {"name": "cache", "namespace": "default"},
  "spec": {"selector": {}, "serviceName": "cache", "template": {}}}"#;

#[test]
fn loads_lists_multi_documents_and_single_objects_skipping_bad_ones_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "nodes.yaml", NODES_LIST);
    write(dir.path(), "more/workloads.yml", MULTI_DOC);
    write(dir.path(), "cache.json", SINGLE_JSON);
    write(dir.path(), "notes.txt", "not a dump");

    let loaded = load_dir(dir.path(), &BTreeSet::new()).unwrap();
    assert_eq!(loaded.files, 3);
    let snap = &loaded.snapshot;
    assert_eq!(snap.keys(Kind::Node), ["good"]);
    assert_eq!(snap.nodes["good"].allocatable.cpu, 1930);
    // The succeeded pod is left out, as the pod watch's field selector leaves it out.
    assert_eq!(snap.keys(Kind::Pod), ["default/web-0"]);
    // Only the annotated ConfigMap is indexed, as by the ConfigMap watch.
    assert_eq!(snap.keys(Kind::ConfigMap), ["kube-system/coredns-autoscaler"]);
    assert_eq!(loaded.ignored_kinds, BTreeMap::from([("Service".to_string(), 1)]));

    let replicas: Vec<(String, ScaleRead)> = loaded
        .replicas
        .iter()
        .map(|(t, r)| (format!("{}/{}/{}", t.kind, t.namespace, t.name), r.clone()))
        .collect();
    assert_eq!(
        replicas,
        [
            ("deployment/kube-system/coredns".to_string(), ScaleRead::Replicas(2)),
            ("statefulset/default/cache".to_string(), ScaleRead::Replicas(1)),
        ]
    );

    let skipped: Vec<(String, String)> = loaded
        .skipped
        .iter()
        .map(|s| (Path::new(&s.file).file_name().unwrap().to_string_lossy().into_owned(), s.object.clone()))
        .collect();
    // Sorted by file path: `more/workloads.yml` before `nodes.yaml`.
    assert_eq!(
        skipped,
        [
            ("workloads.yml".to_string(), "Deployment/bad".to_string()),
            ("nodes.yaml".to_string(), "Node broken".to_string())
        ]
    );
    let reasons: Vec<&str> = loaded.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert!(reasons[0].starts_with("spec.replicas:"), "{reasons:?}");
    assert!(reasons[1].contains("status.allocatable") && reasons[1].contains("lots"), "{reasons:?}");
}

#[test]
fn a_file_that_is_not_yaml_is_skipped_and_the_others_load() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a-broken.yaml", "items: [unclosed");
    write(dir.path(), "b-nodes.yaml", NODES_LIST);
    let loaded = load_dir(dir.path(), &BTreeSet::new()).unwrap();
    assert_eq!(loaded.snapshot.keys(Kind::Node), ["good"]);
    let broken = &loaded.skipped[0];
    assert!(broken.file.ends_with("a-broken.yaml"), "{broken:?}");
    assert!(broken.reason.starts_with("not YAML or JSON"), "{broken:?}");
}

#[test]
fn the_flag_config_map_is_indexed_without_the_annotation() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cm.yaml", MULTI_DOC);
    let args = ProportionalArgs {
        config_map: Some("unrelated".into()),
        namespace: "default".into(),
        ..Default::default()
    };
    let loaded = load_dir(dir.path(), &flag_config_maps(&args)).unwrap();
    assert_eq!(
        loaded.snapshot.keys(Kind::ConfigMap),
        ["default/unrelated", "kube-system/coredns-autoscaler"]
    );
}

#[test]
fn unusable_directories_are_errors_naming_them() {
    let missing = load_dir(Path::new("/nonexistent/snapshot"), &BTreeSet::new()).unwrap_err().to_string();
    assert!(missing.contains("/nonexistent/snapshot") && missing.contains("not a directory"), "{missing}");
    let empty = tempfile::tempdir().unwrap();
    write(empty.path(), "README.md", "# nothing to plan from");
    let error = load_dir(empty.path(), &BTreeSet::new()).unwrap_err().to_string();
    assert!(error.contains("no .yaml, .yml or .json files"), "{error}");
}

#[test]
fn loops_default_to_all_that_plan_covers() {
    let none = LoopArgs {
        enable_provisioning: false,
        enable_disruption: false,
        enable_node_groups: false,
        enable_proportional: false,
        enable_event_scaler: false,
    };
    assert_eq!(Loops::from_args(&none).unwrap(), Loops::ALL);
    let one = LoopArgs { enable_proportional: true, ..none.clone() };
    assert_eq!(
        Loops::from_args(&one).unwrap(),
        Loops { provisioning: false, disruption: false, proportional: true }
    );
    let error = Loops::from_args(&LoopArgs { enable_event_scaler: true, ..none }).unwrap_err().to_string();
    assert!(error.contains("--enable-event-scaler"), "{error}");
}

#[test]
fn plans_only_the_enabled_loops_and_never_acts() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "nodes.yaml", NODES_LIST);
    write(dir.path(), "workloads.yaml", MULTI_DOC);
    let input = Input::from_loaded("test".into(), load_dir(dir.path(), &BTreeSet::new()).unwrap());
    let now: Timestamp = "2026-11-23T12:00:00Z".parse().unwrap();
    let only = Loops { provisioning: false, disruption: false, proportional: true };
    let report = plan(&input, &Catalog::bundled(), only, &ProportionalArgs::default(), now);
    assert!(report.provisioning.is_none() && report.disruption.is_none());
    let proportional = report.proportional.unwrap();
    let [target] = proportional.targets.as_slice() else { panic!("{proportional:?}") };
    // One schedulable node: the ladder's first step.
    assert_eq!((target.name.as_str(), target.current, target.desired), ("coredns", 2, 1));
    assert_eq!(report.now, "2026-11-23T12:00:00Z");
}

/// A consolidating Provisioner, one of its nodes, and a pending pod no instance type can host.
const CONSOLIDATING: &str = r#"
apiVersion: ballast.dev/v1alpha1
kind: Provisioner
metadata: {name: general}
spec:
  consolidation: {enabled: true}
---
apiVersion: v1
kind: Node
metadata:
  name: n1
  creationTimestamp: "2026-11-23T10:00:00Z"
  labels:
    karpenter.sh/provisioner-name: general
    karpenter.sh/capacity-type: on-demand
    node.kubernetes.io/instance-type: m5.large
    topology.kubernetes.io/zone: us-east-1a
status:
  allocatable: {cpu: 1930m, memory: 7246132Ki, pods: "29"}
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: v1
kind: Pod
metadata: {name: mainframe, namespace: default, creationTimestamp: "2026-11-23T11:59:00Z"}
spec:
  nodeSelector: {kubernetes.io/arch: s390x}
  containers: [{name: app, resources: {requests: {cpu: 100m}}}]
status: {phase: Pending}
"#;

#[test]
fn reports_unschedulable_pods_with_reasons_and_why_consolidation_holds() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cluster.yaml", CONSOLIDATING);
    let input = Input::from_loaded("test".into(), load_dir(dir.path(), &BTreeSet::new()).unwrap());
    let now: Timestamp = "2026-11-23T12:00:00Z".parse().unwrap();
    let report = plan(&input, &Catalog::bundled(), Loops::ALL, &ProportionalArgs::default(), now);

    let provisioning = report.provisioning.as_ref().unwrap();
    assert!(provisioning.launches.is_empty(), "{provisioning:?}");
    let [problem] = provisioning.unschedulable.as_slice() else { panic!("{provisioning:?}") };
    assert_eq!(problem.pod, "default/mainframe");
    assert!(!problem.reason.is_empty());

    // The empty node would be consolidated, but not while a pod is pending.
    let disruption = report.disruption.as_ref().unwrap();
    assert_eq!(disruption.decision, None);
    assert_eq!(
        disruption.waiting,
        ["consolidation holds while 1 pod(s) are pending: the provisioner is still placing pods"]
    );
    let text = report.to_text();
    assert!(text.contains(&format!("unschedulable default/mainframe: {}", problem.reason)), "{text}");
    assert!(text.contains("Disruption: disrupt nothing"), "{text}");
}
