//! Test fixtures shared by the disruption and termination unit tests: a three-type on-demand catalog, nodes
//! as the kubelet registers them, their NodeClaims, pods and Provisioners.

use std::{collections::BTreeMap, sync::Arc};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;

use super::{Context, History, Settings};
use crate::{
    api::{
        NodeClaim, NodeClaimSpec, NodeClaimStatus, Provisioner, ProvisionerSpec, labels,
        provisioner::Consolidation,
    },
    cloud::{CapacityType, Catalog},
    model::{Node, OwnerRef, Pod, PodPhase},
    resources::Resources,
    scheduling::{
        NodePoolTemplate, PoolInstanceType, Requirements, ValueSet,
        allocatable::{self, KubeletSettings},
    },
    state::{Object, Snapshot},
};

pub fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

pub fn at(secs: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(secs)
}

pub fn catalog() -> Catalog {
    Catalog::bundled().subset(["c5.large", "m5.large", "m5.xlarge", "m5.2xlarge"]).unwrap()
}

/// A pool over the catalog limited to `capacity_type`.
pub fn pool(name: &str, catalog: &Catalog, capacity_type: CapacityType) -> NodePoolTemplate {
    let types = catalog
        .instance_types
        .iter()
        .map(|it| PoolInstanceType {
            instance_type: it.clone(),
            allocatable: allocatable::allocatable(
                it,
                &KubeletSettings::default(),
                allocatable::DEFAULT_VM_MEMORY_OVERHEAD_PERCENT,
            ),
        })
        .collect();
    let mut pool = NodePoolTemplate::new(name, types);
    let mut reqs = Requirements::new();
    reqs.add(labels::CAPACITY_TYPE, ValueSet::one_of([capacity_type.as_str()]));
    pool.requirements = reqs;
    pool
}

pub fn provisioner(name: &str, consolidation: bool, tweak: impl FnOnce(&mut ProvisionerSpec)) -> Provisioner {
    let mut spec = ProvisionerSpec {
        consolidation: Some(Consolidation { enabled: Some(consolidation) }),
        ..ProvisionerSpec::default()
    };
    tweak(&mut spec);
    let mut p = Provisioner::new(name, spec);
    p.metadata.resource_version = Some("1".into());
    p
}

/// A registered node of `instance_type` in us-east-1a, with its labels, allocatable and NodeClaim.
pub fn node(
    name: &str,
    instance_type: &str,
    capacity_type: CapacityType,
    created: Timestamp,
) -> (Node, NodeClaim) {
    let catalog = Catalog::bundled();
    let it = catalog.get(instance_type).unwrap();
    let mut node_labels = it.labels.clone();
    for (k, v) in [
        (labels::ZONE, "us-east-1a"),
        (labels::CAPACITY_TYPE, capacity_type.as_str()),
        (labels::INSTANCE_TYPE, instance_type),
        (labels::HOSTNAME, name),
        (labels::PROVISIONER_NAME, "default"),
        (labels::BALLAST_PROVISIONER, "default"),
        (labels::BALLAST_NODE_CLAIM, name),
    ] {
        node_labels.insert(k.to_string(), v.to_string());
    }
    let kubelet = KubeletSettings::default();
    let node = Node {
        name: name.into(),
        provider_id: Some(format!("aws:///us-east-1a/i-{name}")),
        labels: node_labels,
        annotations: Default::default(),
        taints: vec![],
        unschedulable: false,
        capacity: allocatable::node_capacity(it, &kubelet, allocatable::DEFAULT_VM_MEMORY_OVERHEAD_PERCENT),
        allocatable: allocatable::allocatable(it, &kubelet, allocatable::DEFAULT_VM_MEMORY_OVERHEAD_PERCENT),
        ready: true,
        created,
        deleting: None,
    };
    let claim = NodeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            resource_version: Some("1".into()),
            creation_timestamp: Some(Time(created)),
            finalizers: Some(vec![labels::TERMINATION_FINALIZER.into()]),
            ..ObjectMeta::default()
        },
        spec: NodeClaimSpec {
            provisioner: "default".into(),
            labels: Some(BTreeMap::from([
                (labels::PROVISIONER_NAME.to_string(), "default".to_string()),
                (labels::BALLAST_PROVISIONER.to_string(), "default".to_string()),
            ])),
            ..NodeClaimSpec::default()
        },
        status: Some(NodeClaimStatus {
            provider_id: node.provider_id.clone(),
            node_name: Some(name.into()),
            instance_type: Some(instance_type.into()),
            zone: Some("us-east-1a".into()),
            capacity_type: Some(capacity_type.as_str().into()),
            ..NodeClaimStatus::default()
        }),
    };
    (node, claim)
}

/// A ReplicaSet pod requesting `cpu_millis` and 256Mi, bound to `node`.
pub fn pod(name: &str, node: Option<&str>, cpu_millis: i64) -> Pod {
    Pod {
        labels: [("app".to_string(), "web".to_string())].into(),
        owner: Some(OwnerRef {
            kind: "ReplicaSet".into(),
            name: "web-1".into(),
            uid: "rs".into(),
            controller: true,
        }),
        node_name: node.map(Into::into),
        phase: if node.is_some() { PodPhase::Running } else { PodPhase::Pending },
        requests: Resources::new(cpu_millis, 256 << 20).with("pods", 1),
        created: t0(),
        ..Pod::test("default", name)
    }
}

/// A cluster under construction, turned into a [`Snapshot`] and a planning [`Context`].
pub struct World {
    pub objects: Vec<Object>,
    pub catalog: Catalog,
    pub pools: BTreeMap<String, NodePoolTemplate>,
    pub history: History,
}

impl World {
    pub fn new(provisioner: Provisioner, capacity_type: CapacityType) -> Self {
        let catalog = catalog();
        let pools = BTreeMap::from([("default".to_string(), pool("default", &catalog, capacity_type))]);
        Self {
            objects: vec![Object::Provisioner(Arc::new(provisioner))],
            catalog,
            pools,
            history: History::default(),
        }
    }

    pub fn add_node(&mut self, name: &str, instance_type: &str, capacity_type: CapacityType) -> &mut Self {
        let (n, c) = node(name, instance_type, capacity_type, t0());
        self.objects.push(Object::Node(Arc::new(n)));
        self.objects.push(Object::NodeClaim(Arc::new(c)));
        self
    }

    pub fn add_pods(&mut self, node: &str, count: usize, cpu_millis: i64) -> &mut Self {
        for i in 0..count {
            self.objects.push(Object::Pod(Arc::new(pod(&format!("{node}-p{i}"), Some(node), cpu_millis))));
        }
        self
    }

    pub fn add(&mut self, object: Object) -> &mut Self {
        self.objects.push(object);
        self
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot::from_objects(self.objects.clone())
    }

    /// Observes the snapshot at t0 (nodes' pods "changed" then) and returns it.
    pub fn observed(&mut self) -> Snapshot {
        let snap = self.snapshot();
        self.history.observe(&snap, t0());
        snap
    }

    pub fn settings(snap: &Snapshot) -> BTreeMap<String, Settings> {
        let (settings, errors) = super::settings(snap);
        assert!(errors.is_empty(), "{errors:?}");
        settings
    }

    pub fn ctx<'a>(
        &'a self,
        snap: &'a Snapshot,
        settings: &'a BTreeMap<String, Settings>,
        now: Timestamp,
    ) -> Context<'a> {
        Context { snap, catalog: &self.catalog, pools: &self.pools, settings, history: &self.history, now }
    }
}
