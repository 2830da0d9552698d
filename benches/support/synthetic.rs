//! Deterministic synthetic Nodes and Pods shaped like an EKS cluster's, for the index benchmark and the
//! heap measurement (`examples/index_memory.rs` includes this file).
//!
//! Conditions: 5,000 nodes in 3 zones with ~20 labels and the status a kubelet reports (images, addresses,
//! conditions); 3 DaemonSet pods per node plus Deployment pods (50 replicas each) up to the requested count, 95%
//! bound round-robin and 5% pending; each pod has 5 labels, 2 annotations, a ReplicaSet owner, 2 containers with
//! requests/limits/env/ports, the two default NoExecute tolerations, a projected token volume, managedFields and
//! full status; every 10th Deployment spreads over zones, every 20th is anti-affine by hostname.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        Container, ContainerPort, ContainerStatus, EnvVar, Node, NodeAddress, NodeCondition, NodeSpec,
        NodeStatus, Pod, PodAffinityTerm, PodAntiAffinity, PodCondition, PodSpec, PodStatus,
        ProjectedVolumeSource, ResourceRequirements, Toleration, TopologySpreadConstraint, Volume,
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ManagedFieldsEntry, ObjectMeta, OwnerReference, Time},
    },
    jiff::Timestamp,
};

pub const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
pub const DAEMONSETS: [&str; 3] = ["aws-node", "kube-proxy", "ebs-csi-node"];
const PODS_PER_DEPLOYMENT: usize = 50;

fn map<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect()
}

fn created() -> Option<Time> {
    Some(Time(Timestamp::from_second(1_780_000_000).unwrap()))
}

fn managed_fields(manager: &str) -> Option<Vec<ManagedFieldsEntry>> {
    Some(vec![ManagedFieldsEntry {
        manager: Some(manager.to_string()),
        operation: Some("Update".to_string()),
        api_version: Some("v1".to_string()),
        time: created(),
        ..Default::default()
    }])
}

pub fn node_name(i: usize) -> String {
    format!("ip-10-{}-{}-{}.ec2.internal", i / 65536 % 256, i / 256 % 256, i % 256)
}

pub fn node(i: usize) -> Node {
    let name = node_name(i);
    let zone = ZONES[i % ZONES.len()];
    let (itype, cpu, mem) = [("m5.xlarge", "4", "15896064Ki"), ("c5.2xlarge", "8", "15896064Ki")][i % 2];
    let labels = map([
        ("beta.kubernetes.io/arch", "amd64".into()),
        ("beta.kubernetes.io/instance-type", itype.into()),
        ("beta.kubernetes.io/os", "linux".into()),
        ("failure-domain.beta.kubernetes.io/region", "us-east-1".into()),
        ("failure-domain.beta.kubernetes.io/zone", zone.into()),
        ("karpenter.k8s.aws/instance-category", itype[..1].into()),
        ("karpenter.k8s.aws/instance-cpu", cpu.into()),
        ("karpenter.k8s.aws/instance-family", itype[..2].into()),
        ("karpenter.k8s.aws/instance-generation", "5".into()),
        ("karpenter.k8s.aws/instance-size", itype[3..].into()),
        ("karpenter.sh/capacity-type", if i.is_multiple_of(3) { "spot" } else { "on-demand" }.into()),
        ("karpenter.sh/provisioner-name", "default".into()),
        ("kubernetes.io/arch", "amd64".into()),
        ("kubernetes.io/hostname", name.clone()),
        ("kubernetes.io/os", "linux".into()),
        ("node.kubernetes.io/instance-type", itype.into()),
        ("topology.ebs.csi.aws.com/zone", zone.into()),
        ("topology.kubernetes.io/region", "us-east-1".into()),
        ("topology.kubernetes.io/zone", zone.into()),
    ]);
    let condition = |type_: &str, status: &str| NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(format!("Kubelet{type_}")),
        message: Some(format!("kubelet reports {type_} {status}")),
        last_heartbeat_time: created(),
        last_transition_time: created(),
    };
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            uid: Some(format!("00000000-0000-4000-8000-{i:012}")),
            resource_version: Some(format!("{}", 1000 + i)),
            creation_timestamp: created(),
            labels: Some(labels),
            annotations: Some(map([
                ("alpha.kubernetes.io/provided-node-ip", format!("10.0.{}.{}", i / 256 % 256, i % 256)),
                ("csi.volume.kubernetes.io/nodeid", format!("{{\"ebs.csi.aws.com\":\"i-{i:017x}\"}}")),
                ("node.alpha.kubernetes.io/ttl", "0".into()),
                ("volumes.kubernetes.io/controller-managed-attach-detach", "true".into()),
            ])),
            managed_fields: managed_fields("kubelet"),
            ..Default::default()
        },
        spec: Some(NodeSpec { provider_id: Some(format!("aws:///{zone}/i-{i:017x}")), ..Default::default() }),
        status: Some(NodeStatus {
            capacity: Some(quantities(&[
                ("cpu", cpu),
                ("memory", mem),
                ("pods", "58"),
                ("ephemeral-storage", "20959212Ki"),
            ])),
            allocatable: Some(quantities(&[
                ("cpu", if cpu == "4" { "3920m" } else { "7910m" }),
                ("memory", "14880256Ki"),
                ("pods", "58"),
                ("ephemeral-storage", "18242267924"),
            ])),
            conditions: Some(vec![
                condition("MemoryPressure", "False"),
                condition("DiskPressure", "False"),
                condition("PIDPressure", "False"),
                condition("Ready", "True"),
            ]),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: format!("10.0.{}.{}", i / 256 % 256, i % 256),
                },
                NodeAddress { type_: "Hostname".into(), address: name.clone() },
                NodeAddress { type_: "InternalDNS".into(), address: name },
            ]),
            ..Default::default()
        }),
    }
}

fn container(name: &str, cpu: &str, memory: &str, port: i32) -> Container {
    Container {
        name: name.to_string(),
        image: Some(format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}:v1.2.3")),
        env: Some(
            (0..5)
                .map(|e| EnvVar {
                    name: format!("ENV_{e}"),
                    value: Some(format!("value-{e}")),
                    ..Default::default()
                })
                .collect(),
        ),
        ports: Some(vec![ContainerPort {
            container_port: port,
            name: Some("http".into()),
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", cpu), ("memory", memory)])),
            limits: Some(quantities(&[("memory", memory)])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn default_tolerations() -> Vec<Toleration> {
    ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
        .into_iter()
        .map(|key| Toleration {
            key: Some(key.to_string()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(300),
            ..Default::default()
        })
        .collect()
}

/// Pod `i` of a cluster with `nodes` nodes: the first `3 * nodes` are DaemonSet pods, one per node and
/// DaemonSet; the rest belong to Deployments.
pub fn pod(i: usize, nodes: usize) -> Pod {
    let ds_pods = DAEMONSETS.len() * nodes;
    let (namespace, app, owner_kind, owner_name, node) = if i < ds_pods {
        let ds = DAEMONSETS[i % DAEMONSETS.len()];
        (
            "kube-system".to_string(),
            ds.to_string(),
            "DaemonSet",
            ds.to_string(),
            Some(node_name(i / DAEMONSETS.len())),
        )
    } else {
        let j = i - ds_pods;
        let deployment = j / PODS_PER_DEPLOYMENT;
        let bound = !j.is_multiple_of(20);
        (
            format!("team-{}", deployment % 40),
            format!("service-{deployment}"),
            "ReplicaSet",
            format!("service-{deployment}-7d9f8c6b5"),
            bound.then(|| node_name(j % nodes)),
        )
    };
    let name = format!("{owner_name}-{i:06x}");
    let deployment = i.saturating_sub(ds_pods) / PODS_PER_DEPLOYMENT;
    let mut spec = PodSpec {
        containers: vec![container("app", "250m", "512Mi", 8080), container("envoy", "50m", "64Mi", 15000)],
        node_name: node.clone(),
        tolerations: Some(default_tolerations()),
        service_account_name: Some(app.clone()),
        scheduler_name: Some("default-scheduler".into()),
        priority: Some(0),
        termination_grace_period_seconds: Some(30),
        volumes: Some(vec![Volume {
            name: "kube-api-access".into(),
            projected: Some(ProjectedVolumeSource { default_mode: Some(420), ..Default::default() }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let selector =
        || Some(LabelSelector { match_labels: Some(map([("app", app.clone())])), ..Default::default() });
    if i >= ds_pods && deployment.is_multiple_of(10) {
        spec.topology_spread_constraints = Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "topology.kubernetes.io/zone".into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: selector(),
            ..Default::default()
        }]);
    }
    if i >= ds_pods && deployment % 20 == 5 {
        spec.affinity = Some(k8s_openapi::api::core::v1::Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: selector(),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let condition = |type_: &str, status: &str| PodCondition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: created(),
        ..Default::default()
    };
    let status = match node {
        Some(_) => PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![
                condition("PodScheduled", "True"),
                condition("Initialized", "True"),
                condition("ContainersReady", "True"),
                condition("Ready", "True"),
            ]),
            pod_ip: Some(format!("10.1.{}.{}", i / 256 % 256, i % 256)),
            container_statuses: Some(
                ["app", "envoy"]
                    .iter()
                    .map(|c| ContainerStatus {
                        name: c.to_string(),
                        image: format!("{c}:v1.2.3"),
                        image_id: format!("sha256:{i:064x}"),
                        ready: true,
                        restart_count: 0,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        },
        None => PodStatus {
            phase: Some("Pending".into()),
            conditions: Some(vec![PodCondition {
                reason: Some("Unschedulable".into()),
                message: Some("0/5000 nodes are available: insufficient cpu.".into()),
                ..condition("PodScheduled", "False")
            }]),
            ..Default::default()
        },
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            uid: Some(format!("10000000-0000-4000-8000-{i:012}")),
            resource_version: Some(format!("{}", 100_000 + i)),
            creation_timestamp: created(),
            labels: Some(map([
                ("app", app.clone()),
                ("app.kubernetes.io/name", app.clone()),
                ("pod-template-hash", "7d9f8c6b5".into()),
                ("team", format!("team-{}", deployment % 40)),
                ("version", "v1.2.3".into()),
            ])),
            annotations: Some(map([
                ("kubectl.kubernetes.io/restartedAt", "2026-01-01T00:00:00Z".into()),
                ("prometheus.io/scrape", "true".into()),
            ])),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: owner_kind.into(),
                name: owner_name,
                uid: format!("20000000-0000-4000-8000-{deployment:012}"),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            managed_fields: managed_fields("kube-controller-manager"),
            ..Default::default()
        },
        spec: Some(spec),
        status: Some(status),
    }
}
