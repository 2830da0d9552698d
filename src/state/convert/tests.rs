use serde_json::{Value, json};

use super::*;

const GI: i64 = 1 << 30;
const MI: i64 = 1 << 20;

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("test fixture must deserialize")
}

fn pod_json(spec: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1",
                     "creationTimestamp": "2026-01-02T03:04:05Z"},
        "spec": spec,
    })
}

fn convert_pod(spec: Value) -> Result<Pod> {
    pod(&from(pod_json(spec)))
}

#[test]
fn pod_converts_every_field_planners_read() {
    let v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "web-0", "namespace": "shop", "uid": "u-1",
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "deletionTimestamp": "2026-01-02T04:00:00Z",
            "labels": {"app": "web"},
            "annotations": {"ballast.dev/do-not-disrupt": "true", "karpenter.sh/do-not-evict": "true",
                            "kubernetes.io/config.mirror": "abc", "sidecar.istio.io/status": "{...}",
                            "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "o-0"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "o-1", "controller": true}
            ]
        },
        "spec": {
            "nodeName": "n1",
            "priority": 1000, "priorityClassName": "high", "schedulerName": "custom",
            "terminationGracePeriodSeconds": 5,
            "nodeSelector": {"kubernetes.io/arch": "arm64"},
            "containers": [{"name": "app", "image": "x",
                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                "ports": [{"containerPort": 80, "hostPort": 8080},
                          {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"},
                          {"containerPort": 9090}]}],
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"},
                {"operator": "Exists", "tolerationSeconds": 300}
            ],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}]},
                        {"matchExpressions": [{"key": "instance.ballast.dev/instance-cpu", "operator": "Gt", "values": ["3"]}],
                         "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n9"]}]}
                    ]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 20, "preference": {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1a"]}]}}
                    ]
                },
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname",
                         "matchLabelKeys": ["pod-template-hash"]}
                    ],
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 50, "podAffinityTerm": {"topologyKey": "topology.kubernetes.io/zone",
                          "namespaceSelector": {}, "labelSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}}}
                    ]
                },
                "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": "topology.kubernetes.io/zone", "namespaces": ["db"], "mismatchLabelKeys": ["team"]}
                ]}
            },
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
                 "labelSelector": {"matchLabels": {"app": "web"}}, "minDomains": 3},
                {"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                 "nodeAffinityPolicy": "Ignore", "nodeTaintsPolicy": "Honor", "matchLabelKeys": ["pod-template-hash"]}
            ],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}},
                {"name": "cache", "emptyDir": {"medium": "Memory"}},
                {"name": "config", "configMap": {"name": "cfg"}}
            ]
        },
        "status": {
            "phase": "Running", "nominatedNodeName": "n2",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
        }
    });
    let p = pod(&from(v)).unwrap();
    assert_eq!((p.namespace.as_str(), p.name.as_str(), p.uid.as_str()), ("shop", "web-0", "u-1"));
    assert_eq!(p.key(), "shop/web-0");
    assert_eq!(p.created, "2026-01-02T03:04:05Z".parse::<Timestamp>().unwrap());
    assert_eq!(p.deleting, Some("2026-01-02T04:00:00Z".parse().unwrap()));
    assert_eq!(p.labels["app"], "web");
    assert_eq!(
        p.annotations.keys().collect::<Vec<_>>(),
        ["ballast.dev/do-not-disrupt", "karpenter.sh/do-not-evict", "kubernetes.io/config.mirror"],
        "only annotations ballast reads are kept"
    );
    assert!(p.is_mirror());
    let owner = p.owner.as_ref().unwrap();
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.controller), ("ReplicaSet", "web-abc", true));
    assert_eq!(p.node_name.as_deref(), Some("n1"));
    assert_eq!(p.nominated_node.as_deref(), Some("n2"));
    assert_eq!(p.phase, PodPhase::Running);
    assert!(p.unschedulable);
    assert_eq!((p.requests.cpu, p.requests.memory, p.requests.pods), (500, GI, 1));
    assert_eq!(p.node_selector["kubernetes.io/arch"], "arm64");
    assert_eq!((p.priority, p.priority_class.as_deref()), (1000, Some("high")));
    assert_eq!((p.scheduler_name.as_str(), p.termination_grace_seconds), ("custom", 5));

    assert_eq!(
        p.host_ports,
        vec![
            HostPort { port: 8080, protocol: "TCP".into(), ip: "0.0.0.0".into() },
            HostPort { port: 53, protocol: "UDP".into(), ip: "10.0.0.1".into() },
        ]
    );
    assert_eq!(p.pvcs, ["data-web-0", "web-0-scratch"]);
    assert!(!p.local_storage, "memory-backed emptyDir is not local storage");

    assert_eq!(p.tolerations.len(), 2);
    assert_eq!(p.tolerations[0].effect, Some(TaintEffect::NoSchedule));
    assert_eq!(p.tolerations[0].operator, TolerationOperator::Equal);
    assert_eq!(p.tolerations[1].operator, TolerationOperator::Exists);
    assert_eq!((p.tolerations[1].key.as_str(), p.tolerations[1].effect), ("", None));
    assert_eq!(p.tolerations[1].toleration_seconds, Some(300));

    let node = &p.affinity.node;
    assert_eq!(node.required.len(), 2);
    assert_eq!(node.required[1].match_expressions[0].operator, Operator::Gt);
    assert_eq!(node.required[1].match_fields[0].operator, Operator::NotIn);
    assert_eq!(node.preferred[0].weight, 20);
    assert_eq!(node.preferred[0].term.match_expressions[0].values, ["us-east-1a"]);
    let anti = &p.affinity.pod_anti;
    assert_eq!(anti.required[0].match_label_keys, ["pod-template-hash"]);
    assert_eq!(anti.required[0].selector.as_ref().unwrap().match_labels["app"], "web");
    assert_eq!(anti.preferred[0].weight, 50);
    assert_eq!(anti.preferred[0].term.namespace_selector, Some(LabelSelector::default()));
    assert_eq!(
        anti.preferred[0].term.selector.as_ref().unwrap().match_expressions[0].operator,
        Operator::Exists
    );
    let aff = &p.affinity.pod.required[0];
    assert_eq!((aff.selector.is_none(), aff.namespaces.clone()), (true, vec!["db".to_string()]));
    assert_eq!(aff.mismatch_label_keys, ["team"]);

    let ts = &p.topology_spread;
    assert_eq!((ts[0].max_skew, ts[0].min_domains), (1, Some(3)));
    assert_eq!(ts[0].when_unsatisfiable, WhenUnsatisfiable::DoNotSchedule);
    assert_eq!(ts[0].node_affinity_policy, InclusionPolicy::Honor, "default Honor");
    assert_eq!(ts[0].node_taints_policy, InclusionPolicy::Ignore, "default Ignore");
    assert_eq!(ts[1].when_unsatisfiable, WhenUnsatisfiable::ScheduleAnyway);
    assert_eq!(
        (ts[1].node_affinity_policy, ts[1].node_taints_policy),
        (InclusionPolicy::Ignore, InclusionPolicy::Honor)
    );
    assert_eq!(ts[1].match_label_keys, ["pod-template-hash"]);
}

#[test]
fn pod_defaults_for_a_fresh_pending_pod() {
    let p = convert_pod(json!({"containers": [{"name": "app"}]})).unwrap();
    assert_eq!(p.phase, PodPhase::Pending);
    assert!(p.is_pending());
    assert!(!p.unschedulable);
    assert_eq!(p.owner, None);
    assert_eq!(p.scheduler_name, "default-scheduler");
    assert_eq!(p.termination_grace_seconds, 30);
    assert_eq!(p.priority, 0);
    assert_eq!(p.requests, Resources::default().with("pods", 1), "no requests still takes a pod slot");
}

#[test]
fn requests_default_to_limits_and_follow_pod_request_math() {
    let p = convert_pod(json!({
        "containers": [
            {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "512Mi", "nvidia.com/gpu": "1"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "2", "memory": "256Mi"}}}
        ],
        "initContainers": [
            {"name": "migrate", "resources": {"requests": {"cpu": "3", "memory": "100Mi"}}},
            {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
             "ports": [{"containerPort": 15000, "hostPort": 15000}]},
            {"name": "late-init", "resources": {"requests": {"memory": "1Gi"}}}
        ],
        "overhead": {"cpu": "10m", "memory": "1Mi"}
    }))
    .unwrap();
    // containers: cpu 1000 (limit) + 250 (request wins over limit) + sidecar 100 = 1350;
    // init max: migrate 3000 (before the sidecar starts), late-init 100 cpu + 1Gi + 64Mi memory.
    assert_eq!(p.requests.cpu, 3000 + 10);
    assert_eq!(p.requests.memory, GI + 64 * MI + MI);
    assert_eq!(p.requests.get("nvidia.com/gpu"), 1);
    assert_eq!(p.requests.pods, 1);
    assert_eq!(p.host_ports.len(), 1, "a native sidecar's host port counts");

    // Pod-level requests replace the container aggregate for cpu and memory; overhead still adds.
    let p = convert_pod(json!({
        "resources": {"requests": {"cpu": "2"}, "limits": {"memory": "4Gi"}},
        "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"}}}],
        "overhead": {"cpu": "100m"}
    }))
    .unwrap();
    assert_eq!((p.requests.cpu, p.requests.memory, p.requests.ephemeral_storage), (2100, 4 * GI, GI));
}

#[test]
fn local_storage_means_disk_empty_dir_or_host_path() {
    let with =
        |volume: Value| convert_pod(json!({"containers": [], "volumes": [volume]})).unwrap().local_storage;
    assert!(with(json!({"name": "v", "emptyDir": {}})));
    assert!(with(json!({"name": "v", "hostPath": {"path": "/var/log"}})));
    assert!(!with(json!({"name": "v", "emptyDir": {"medium": "Memory"}})));
    assert!(!with(json!({"name": "v", "secret": {"secretName": "s"}})));
}

#[test]
fn bad_pods_are_errors_naming_object_field_and_reason() {
    let err = |spec: Value| convert_pod(spec).unwrap_err().to_string();
    let msg = err(
        json!({"containers": [{"name": "a"}, {"name": "b", "resources": {"requests": {"memory": "1Gx"}}}]}),
    );
    assert!(msg.contains("Pod shop/web-0"), "{msg}");
    assert!(msg.contains("spec.containers[1].resources.requests.memory"), "{msg}");
    assert!(msg.contains("\"1Gx\""), "{msg}");
    let msg = err(json!({"containers": [{"name": "a", "resources": {"limits": {"cpu": "-1"}}}]}));
    assert!(msg.contains("spec.containers[0].resources.limits.cpu"), "{msg}");
    let msg = err(json!({"containers": [], "overhead": {"cpu": "x"}}));
    assert!(msg.contains("spec.overhead.cpu"), "{msg}");
    let msg = err(json!({"containers": [], "tolerations": [{"key": "k", "effect": "NoScheduel"}]}));
    assert!(msg.contains("spec.tolerations[0].effect") && msg.contains("NoScheduel"), "{msg}");
    let msg = err(
        json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "Like"}]}]}}}}),
    );
    assert!(
        msg.contains("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator"),
        "{msg}"
    );
    let msg = err(
        json!({"containers": [], "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        [{"topologyKey": "z", "labelSelector": {"matchExpressions": [{"key": "k", "operator": "Gt", "values": ["1"]}]}}]}}}),
    );
    assert!(msg.contains("labelSelector.matchExpressions[0].operator") && msg.contains("\"Gt\""), "{msg}");
    let msg = err(json!({"containers": [], "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "z", "whenUnsatisfiable": "Maybe"}]}));
    assert!(msg.contains("spec.topologySpreadConstraints[0].whenUnsatisfiable"), "{msg}");
    let msg = err(json!({"containers": [], "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "z", "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "Sometimes"}]}));
    assert!(msg.contains("nodeTaintsPolicy"), "{msg}");

    let mut v = pod_json(json!({"containers": []}));
    v["status"] = json!({"phase": "Exploded"});
    let msg = pod(&from(v)).unwrap_err().to_string();
    assert!(msg.contains("status.phase") && msg.contains("Exploded"), "{msg}");
    let mut v = pod_json(json!({"containers": []}));
    v["metadata"].as_object_mut().unwrap().remove("creationTimestamp");
    let msg = pod(&from(v)).unwrap_err().to_string();
    assert!(msg.contains("metadata.creationTimestamp"), "{msg}");
}

#[test]
fn template_pods_carry_owner_namespace_and_name() {
    let template: PodTemplateSpec = from(json!({
        "metadata": {"labels": {"app": "inflate"}},
        "spec": {"containers": [{"name": "pause", "resources": {"requests": {"cpu": "1"}}}],
                 "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]}
    }));
    let owner =
        OwnerRef { kind: "ReplicaSet".into(), name: "inflate-1".into(), uid: "rs".into(), controller: true };
    let p = pod_from_template(
        &template,
        "default",
        "inflate-1-a",
        Some(owner.clone()),
        "Deployment default/inflate",
    )
    .unwrap();
    assert_eq!((p.namespace.as_str(), p.name.as_str()), ("default", "inflate-1-a"));
    assert_eq!(p.owner, Some(owner));
    assert_eq!(p.labels["app"], "inflate");
    assert_eq!(p.requests.cpu, 1000);
    assert_eq!(p.pvcs, ["inflate-1-a-scratch"]);
    assert!(p.is_pending());

    let bad: PodTemplateSpec =
        from(json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "one"}}}]}}));
    let msg =
        pod_from_template(&bad, "default", "x", None, "Deployment default/inflate").unwrap_err().to_string();
    assert!(msg.contains("Deployment default/inflate"), "{msg}");
    assert!(msg.contains("spec.template.spec.containers[0].resources.requests.cpu"), "{msg}");
}

fn node_json() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "ip-10-0-0-1", "creationTimestamp": "2026-01-02T03:04:05Z",
                     "labels": {"node.kubernetes.io/instance-type": "m5.large"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "a": "b",
                                     "cluster-autoscaler.kubernetes.io/scale-down-disabled": "true"}},
        "spec": {"providerID": "aws:///us-east-1a/i-0abc", "unschedulable": true,
                 "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]},
        "status": {
            "capacity": {"cpu": "2", "memory": "8009912Ki", "pods": "29", "ephemeral-storage": "20Gi"},
            "allocatable": {"cpu": "1930m", "memory": "7244k", "pods": "29"},
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]
        }
    })
}

#[test]
fn node_converts_capacity_taints_and_readiness() {
    let n = node(&from(node_json())).unwrap();
    assert_eq!(n.name, "ip-10-0-0-1");
    assert_eq!(n.provider_id.as_deref(), Some("aws:///us-east-1a/i-0abc"));
    assert_eq!(n.labels["node.kubernetes.io/instance-type"], "m5.large");
    assert_eq!(
        n.annotations.keys().collect::<Vec<_>>(),
        ["cluster-autoscaler.kubernetes.io/scale-down-disabled"]
    );
    assert!(n.unschedulable);
    assert!(n.ready);
    assert_eq!(n.taints.len(), 2);
    assert_eq!(
        n.taints[1],
        Taint {
            key: "node.kubernetes.io/not-ready".into(),
            value: "".into(),
            effect: TaintEffect::NoExecute
        }
    );
    assert_eq!((n.capacity.cpu, n.capacity.memory, n.capacity.pods), (2000, 8009912 * 1024, 29));
    assert_eq!(n.capacity.ephemeral_storage, 20 * GI);
    assert_eq!((n.allocatable.cpu, n.allocatable.memory), (1930, 7_244_000));

    let mut v = node_json();
    v["status"]["conditions"] = json!([{"type": "Ready", "status": "Unknown"}]);
    v["status"]["allocatable"]["memory"] = json!("lots");
    let msg = node(&from(v)).unwrap_err().to_string();
    assert!(msg.contains("Node ip-10-0-0-1") && msg.contains("status.allocatable.memory"), "{msg}");
    let mut v = node_json();
    v["status"]["conditions"] = json!([{"type": "Ready", "status": "Unknown"}]);
    assert!(!node(&from(v)).unwrap().ready);
    let mut v = node_json();
    v["spec"]["taints"][0]["effect"] = json!("Sometimes");
    let msg = node(&from(v)).unwrap_err().to_string();
    assert!(msg.contains("spec.taints[0].effect"), "{msg}");
}

#[test]
fn daemonset_template_is_owned_by_the_daemonset() {
    let ds: apps::DaemonSet = from(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "aws-node", "namespace": "kube-system", "uid": "ds-1"},
        "spec": {"selector": {"matchLabels": {"k8s-app": "aws-node"}},
                 "template": {"metadata": {"labels": {"k8s-app": "aws-node"}},
                              "spec": {"containers": [{"name": "cni", "resources": {"requests": {"cpu": "25m"}}}],
                                       "tolerations": [{"operator": "Exists"}]}}}
    }));
    let d = daemonset(&ds).unwrap();
    assert_eq!((d.namespace.as_str(), d.name.as_str()), ("kube-system", "aws-node"));
    assert!(d.template.is_daemonset_pod());
    assert_eq!(d.template.owner.as_ref().unwrap().uid, "ds-1");
    assert_eq!(d.template.requests.cpu, 25);
    assert_eq!(d.template.tolerations[0].operator, TolerationOperator::Exists);

    let mut bad = ds.clone();
    bad.spec.template.spec.as_mut().unwrap().containers[0].resources.as_mut().unwrap().requests =
        Some([("cpu".to_string(), Quantity("2 cores".into()))].into());
    let msg = daemonset(&bad).unwrap_err().to_string();
    assert!(msg.contains("DaemonSet kube-system/aws-node"), "{msg}");
    assert!(msg.contains("spec.template.spec.containers[0].resources.requests.cpu"), "{msg}");
}

fn pdb_json(spec: Value) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
           "metadata": {"name": "web", "namespace": "shop"}, "spec": spec, "status": {"disruptionsAllowed": 2,
           "currentHealthy": 3, "desiredHealthy": 1, "expectedPods": 3}})
}

#[test]
fn pdb_converts_int_and_percent_budgets() {
    let p = pdb(&from(pdb_json(json!({"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 1}))))
        .unwrap();
    assert_eq!(p.min_available, Some(IntOrPercent::Int(1)));
    assert_eq!(p.max_unavailable, None);
    assert_eq!(p.disruptions_allowed, 2);
    assert_eq!(p.selector.match_labels["app"], "web");
    let p = pdb(&from(pdb_json(json!({"selector": {}, "maxUnavailable": "25%"})))).unwrap();
    assert_eq!(p.max_unavailable, Some(IntOrPercent::Percent(25)));

    let msg = pdb(&from(pdb_json(json!({"selector": {}, "maxUnavailable": "5"})))).unwrap_err().to_string();
    assert!(msg.contains("PodDisruptionBudget shop/web") && msg.contains("spec.maxUnavailable"), "{msg}");
    let msg = pdb(&from(pdb_json(json!({"selector": {}, "minAvailable": "150%"})))).unwrap_err().to_string();
    assert!(msg.contains("spec.minAvailable"), "{msg}");
    let msg = pdb(&from(pdb_json(json!({"minAvailable": 1})))).unwrap_err().to_string();
    assert!(msg.contains("spec.selector") && msg.contains("selects no pods"), "{msg}");
}

#[test]
fn volumes_and_storage_classes() {
    let c = pvc(&from(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "db"},
        "spec": {"storageClassName": "gp3", "volumeName": "pv-1"}})))
    .unwrap();
    assert_eq!((c.storage_class.as_deref(), c.volume_name.as_deref()), (Some("gp3"), Some("pv-1")));
    let c = pvc(&from(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "db"}, "spec": {"storageClassName": ""}})))
    .unwrap();
    assert_eq!((c.storage_class, c.volume_name), (None, None));

    let v = pv(&from(json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"},
        "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": ["us-east-1b"]}]}]}}}})))
    .unwrap();
    assert_eq!(v.node_affinity[0].match_expressions[0].values, ["us-east-1b"]);
    assert!(
        pv(&from(
            json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "nfs"}, "spec": {}})
        ))
        .unwrap()
        .node_affinity
        .is_empty()
    );

    let sc = storage_class(&from(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "gp3"}, "provisioner": "ebs.csi.aws.com", "volumeBindingMode": "WaitForFirstConsumer",
        "allowedTopologies": [{"matchLabelExpressions": [{"key": "topology.ebs.csi.aws.com/zone", "values": ["us-east-1a", "us-east-1b"]}]}]})))
    .unwrap();
    assert_eq!(sc.binding_mode, VolumeBindingMode::WaitForFirstConsumer);
    assert_eq!(sc.provisioner, "ebs.csi.aws.com");
    let req = &sc.allowed_topologies[0].match_expressions[0];
    assert_eq!((req.operator, req.values.len()), (Operator::In, 2));
    let sc = storage_class(&from(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "gp2"}, "provisioner": "kubernetes.io/aws-ebs"})))
    .unwrap();
    assert_eq!(sc.binding_mode, VolumeBindingMode::Immediate);
    let msg = storage_class(&from(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "gp2"}, "provisioner": "p", "volumeBindingMode": "Later"})))
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("StorageClass gp2") && msg.contains("volumeBindingMode") && msg.contains("Later"),
        "{msg}"
    );
}

#[test]
fn config_maps_keep_data_annotations_and_version() {
    let cm = config_map(&from(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dns-autoscaler", "namespace": "kube-system", "resourceVersion": "42",
                     "annotations": {"ballast.dev/proportional-target": "deployment/coredns"}},
        "data": {"linear": "{\"coresPerReplica\": 256}"}})))
    .unwrap();
    assert_eq!(cm.key(), "kube-system/dns-autoscaler");
    assert_eq!(cm.annotations[crate::api::labels::PROPORTIONAL_TARGET], "deployment/coredns");
    assert_eq!(cm.data["linear"], "{\"coresPerReplica\": 256}");
    assert_eq!(cm.resource_version.as_deref(), Some("42"));
}

#[test]
fn strip_metadata_drops_managed_fields_and_last_applied() {
    let mut meta: ObjectMeta = from(json!({"name": "x", "managedFields": [{"manager": "m"}],
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "1"}}));
    strip_metadata(&mut meta);
    assert_eq!(meta.managed_fields, None);
    assert_eq!(meta.annotations.unwrap().keys().collect::<Vec<_>>(), ["keep"]);
}
