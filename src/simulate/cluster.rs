//! The simulated cluster: an in-memory API server (the [`state::Cluster`] index is its store, fed exactly as
//! watches would feed it) plus the controllers a real cluster runs — the deployment and daemonset controllers,
//! the kube-scheduler (binding through `scheduling::solve`, so there is one scheduler), pod garbage collection
//! and the kubelet (a NodeClaim's instance becomes a Node when it registers).
//!
//! Writes from ballast's loops arrive through the [`Actuator`] trait, as they would against a real API server.

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::{
    api::{apps::v1 as apps, core::v1 as core},
    apimachinery::pkg::{api::resource::Quantity as KubeQuantity, apis::meta::v1::Time},
};
use kube::api::ObjectMeta;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{
    actuator::{self, Actuator, EventRecord, Eviction, FinalizerTarget, ScaleTarget},
    api::{NodeClaim, NodeClaimStatus, labels},
    clock::Clock,
    cloud::{Catalog, Instance},
    model::{ConfigMap, DaemonSet, Node, OwnerRef, Pod, PodPhase, Taint},
    resources::Resources,
    scheduling::{
        self, ExistingNode, Placement, SolveInput,
        allocatable::{self, KubeletSettings},
    },
    state::{self, Kind, Object, Snapshot, convert},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to convert {0}")]
    Convert(#[from] convert::Error),
    #[error("failed to apply Deployment {namespace}/{name}: {reason}")]
    Deployment { namespace: String, name: String, reason: String },
    #[error("failed to register the node for NodeClaim {claim}: {reason}")]
    Register { claim: String, reason: String },
}

/// The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

#[derive(Debug, Clone)]
struct Deployment {
    namespace: String,
    replicas: i32,
    /// The pod template converted once; each replica copies it.
    template: Pod,
    /// `<deployment>-<replicaset hash>`: the ReplicaSet owning the pods.
    replica_set: String,
}

#[derive(Debug)]
struct ApiState {
    rng: ChaCha8Rng,
    next_uid: u64,
    /// `namespace/name`.
    deployments: BTreeMap<String, Deployment>,
    /// (daemonset key, node) → the object versions found not to fit, so each pair is checked once per
    /// version. Holding the Arcs keeps their identity unique.
    daemonset_misfits: BTreeMap<(String, String), (Arc<DaemonSet>, Arc<Node>)>,
    events: Vec<EventRecord>,
}

/// The in-memory API server and controllers.
pub struct SimApi {
    index: state::Cluster,
    clock: Arc<dyn Clock>,
    state: Mutex<ApiState>,
}

impl SimApi {
    /// Registers every kind with the index and marks it synced: the simulated API has listed everything.
    pub fn new(index: state::Cluster, clock: Arc<dyn Clock>, seed: u64) -> Self {
        for kind in Kind::ALL {
            index.register(kind);
            index.handle(state::Event::Init(kind));
            index.handle(state::Event::InitDone(kind));
        }
        let state = ApiState {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6b75_6265),
            next_uid: 0,
            deployments: BTreeMap::new(),
            daemonset_misfits: BTreeMap::new(),
            events: Vec::new(),
        };
        Self { index, clock, state: Mutex::new(state) }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.index.snapshot()
    }

    /// Events loops emitted, in order.
    pub fn events(&self) -> Vec<EventRecord> {
        self.state.lock().events.clone()
    }

    fn suffix(rng: &mut ChaCha8Rng, len: usize) -> String {
        (0..len).map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char).collect()
    }

    fn uid(state: &mut ApiState) -> String {
        state.next_uid += 1;
        format!("00000000-0000-0000-0000-{:012x}", state.next_uid)
    }

    // === Objects from manifests ===

    /// Creates or updates a Deployment; its controller reconciles replicas on the next [`Self::reconcile`].
    pub fn apply_deployment(&self, d: &apps::Deployment) -> Result<(), Error> {
        let namespace = d.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
        let name = d.metadata.name.clone().unwrap_or_default();
        let invalid = |reason: &str| Error::Deployment {
            namespace: namespace.clone(),
            name: name.clone(),
            reason: reason.to_string(),
        };
        if name.is_empty() {
            return Err(invalid("metadata.name is missing"));
        }
        let spec = &d.spec;
        let replicas = spec.replicas.unwrap_or(1);
        if replicas < 0 {
            return Err(invalid("spec.replicas must not be negative"));
        }
        let source = format!("Deployment {namespace}/{name}");
        let mut state = self.state.lock();
        let replica_set = match state.deployments.get(&format!("{namespace}/{name}")) {
            Some(existing) => existing.replica_set.clone(),
            None => format!("{name}-{}", Self::suffix(&mut state.rng, 10)),
        };
        let owner = OwnerRef {
            kind: "ReplicaSet".to_string(),
            name: replica_set.clone(),
            uid: Self::uid(&mut state),
            controller: true,
        };
        let template = convert::pod_from_template(&spec.template, &namespace, &name, Some(owner), &source)?;
        state
            .deployments
            .insert(format!("{namespace}/{name}"), Deployment { namespace, replicas, template, replica_set });
        Ok(())
    }

    pub fn delete_deployment(&self, namespace: &str, name: &str) -> bool {
        let removed = self.state.lock().deployments.remove(&format!("{namespace}/{name}"));
        let Some(d) = removed else { return false };
        // Cascading deletion of the ReplicaSet's pods.
        for pod in self.snapshot().pods.values() {
            if owned_by(pod, &d.replica_set) {
                self.index.delete(Kind::Pod, &pod.key());
            }
        }
        true
    }

    /// Sets a Deployment's replicas (`kubectl scale`); false when it does not exist.
    pub fn scale_deployment(&self, namespace: &str, name: &str, replicas: i32) -> bool {
        match self.state.lock().deployments.get_mut(&format!("{namespace}/{name}")) {
            Some(d) => {
                d.replicas = replicas;
                true
            }
            None => false,
        }
    }

    /// Applies an object already in its domain form (everything but Deployments).
    pub fn apply_object(&self, object: Object) {
        let object = match object {
            Object::Pod(pod) if pod.uid.is_empty() || pod.created == Timestamp::UNIX_EPOCH => {
                let mut pod = (*pod).clone();
                let mut state = self.state.lock();
                pod.uid = Self::uid(&mut state);
                pod.created = self.clock.now();
                Object::Pod(Arc::new(pod))
            }
            other => other,
        };
        self.index.apply(object);
    }

    pub fn delete_object(&self, kind: Kind, key: &str) -> bool {
        let exists = self.snapshot().get(kind, key).is_some();
        self.index.delete(kind, key);
        exists
    }

    // === Controllers ===

    /// One pass of the deployment controller, the daemonset controller and pod garbage collection.
    pub fn reconcile(&self) {
        self.collect_orphan_pods();
        self.reconcile_deployments();
        self.reconcile_daemonsets();
    }

    /// Pods bound to nodes that no longer exist are deleted (the pod GC controller).
    fn collect_orphan_pods(&self) {
        let snap = self.snapshot();
        for pod in snap.pods.values() {
            if let Some(node) = &pod.node_name
                && !snap.nodes.contains_key(node)
            {
                self.index.delete(Kind::Pod, &pod.key());
            }
        }
    }

    fn reconcile_deployments(&self) {
        let snap = self.snapshot();
        let now = self.clock.now();
        let deployments: Vec<Deployment> = self.state.lock().deployments.values().cloned().collect();
        for d in deployments {
            let mut pods: Vec<&Arc<Pod>> = snap
                .pods
                .values()
                .filter(|p| p.namespace == d.namespace && owned_by(p, &d.replica_set) && p.deleting.is_none())
                .collect();
            let want = d.replicas as usize;
            if pods.len() < want {
                let mut state = self.state.lock();
                for _ in pods.len()..want {
                    let mut pod = d.template.clone();
                    pod.name = format!("{}-{}", d.replica_set, Self::suffix(&mut state.rng, 5));
                    pod.uid = Self::uid(&mut state);
                    pod.created = now;
                    self.index.apply(Object::Pod(Arc::new(pod)));
                }
            } else if pods.len() > want {
                // The ReplicaSet controller deletes unscheduled pods first, then the newest.
                pods.sort_by(|a, b| {
                    a.node_name
                        .is_some()
                        .cmp(&b.node_name.is_some())
                        .then_with(|| b.created.cmp(&a.created))
                        .then_with(|| b.name.cmp(&a.name))
                });
                for pod in &pods[..pods.len() - want] {
                    self.index.delete(Kind::Pod, &pod.key());
                }
            }
        }
    }

    /// Every daemonset runs one pod on each Ready node it can schedule to.
    fn reconcile_daemonsets(&self) {
        let snap = self.snapshot();
        let now = self.clock.now();
        for ds in snap.daemonsets.values() {
            for node in snap.nodes.values().filter(|n| n.ready && n.deleting.is_none()) {
                if snap.pods_on_node(&node.name).any(|p| {
                    p.owner.as_ref().is_some_and(|o| o.kind == "DaemonSet" && o.name == ds.name)
                        && p.namespace == ds.namespace
                }) {
                    continue;
                }
                let pair = (format!("{}/{}", ds.namespace, ds.name), node.name.clone());
                if self
                    .state
                    .lock()
                    .daemonset_misfits
                    .get(&pair)
                    .is_some_and(|(d, n)| Arc::ptr_eq(d, ds) && Arc::ptr_eq(n, node))
                {
                    continue;
                }
                let mut pod = ds.template.clone();
                {
                    let mut state = self.state.lock();
                    pod.name = format!("{}-{}", ds.name, Self::suffix(&mut state.rng, 5));
                    pod.uid = Self::uid(&mut state);
                }
                pod.created = now;
                let pod = Arc::new(pod);
                // The daemonset controller leaves nodes whose taints or labels the template does not accept.
                let input = SolveInput {
                    existing: vec![existing_node(node, Vec::new())],
                    pending: vec![pod.clone()],
                    ..SolveInput::default()
                };
                if scheduling::solve(&input).placements.get(&pod.key())
                    == Some(&Placement::Existing(node.name.clone()))
                {
                    self.index.apply(Object::Pod(Arc::new(bound(&pod, &node.name))));
                } else {
                    self.state.lock().daemonset_misfits.insert(pair, (ds.clone(), node.clone()));
                }
            }
        }
    }

    /// The kube-scheduler: binds pending pods to Ready nodes through `scheduling::solve` with no Provisioners,
    /// and marks the rest unschedulable. Returns the keys of pods bound.
    pub fn schedule(&self) -> Vec<String> {
        let snap = self.snapshot();
        let pending: Vec<Arc<Pod>> = snap.pending_pods().filter(|p| !p.is_daemonset_pod()).cloned().collect();
        if pending.is_empty() {
            return Vec::new();
        }
        let existing: Vec<ExistingNode> = snap
            .nodes
            .values()
            .filter(|n| n.ready)
            .map(|n| existing_node(n, snap.pods_on_node(&n.name).cloned().collect()))
            .collect();
        let results =
            scheduling::solve(&SolveInput { existing, pending: pending.clone(), ..SolveInput::default() });
        let mut bound_keys = Vec::new();
        for pod in &pending {
            match results.placements.get(&pod.key()) {
                Some(Placement::Existing(node)) => {
                    self.index.apply(Object::Pod(Arc::new(bound(pod, node))));
                    bound_keys.push(pod.key());
                }
                _ if !pod.unschedulable => {
                    let mut p = (**pod).clone();
                    p.unschedulable = true;
                    self.index.apply(Object::Pod(Arc::new(p)));
                }
                _ => {}
            }
        }
        bound_keys
    }

    // === Kubelet ===

    /// The instance's kubelet registers its Node: the claim's labels and taints (the user data passes them),
    /// the instance type's labels, zone and capacity type, capacity and allocatable from the catalog. The Node
    /// goes through the same conversion a watch applies. Linking it to its NodeClaim is ballast's lifecycle
    /// loop's job, as in a real cluster.
    pub fn register_node(&self, instance: &Instance, catalog: &Catalog) -> Result<String, Error> {
        let claim_name = instance.claim_name().unwrap_or_default().to_string();
        let fail = |reason: String| Error::Register { claim: claim_name.clone(), reason };
        let snap = self.snapshot();
        let claim =
            snap.node_claims.get(&claim_name).ok_or_else(|| fail("the NodeClaim no longer exists".into()))?;
        let it = catalog
            .get(&instance.instance_type)
            .ok_or_else(|| fail(format!("instance type {} is not in the catalog", instance.instance_type)))?;
        let kubelet = match &claim.spec.kubelet {
            Some(k) => KubeletSettings::from_api(k).map_err(|e| fail(e.to_string()))?,
            None => KubeletSettings::default(),
        };
        let capacity =
            allocatable::node_capacity(it, &kubelet, allocatable::DEFAULT_VM_MEMORY_OVERHEAD_PERCENT);
        let alloc = allocatable::allocatable(it, &kubelet, allocatable::DEFAULT_VM_MEMORY_OVERHEAD_PERCENT);

        let name = claim_name.clone();
        let mut node_labels = it.labels.clone();
        node_labels.extend(claim.spec.labels.clone().unwrap_or_default());
        let region = instance.zone.trim_end_matches(|c: char| c.is_ascii_alphabetic()).to_string();
        for (k, v) in [
            (labels::ZONE, instance.zone.clone()),
            (labels::REGION, region),
            (labels::CAPACITY_TYPE, instance.capacity_type.to_string()),
            (labels::INSTANCE_TYPE, instance.instance_type.clone()),
            (labels::HOSTNAME, name.clone()),
            (labels::PROVISIONER_NAME, claim.spec.provisioner.clone()),
            (labels::BALLAST_PROVISIONER, claim.spec.provisioner.clone()),
        ] {
            node_labels.insert(k.to_string(), v);
        }
        let now = self.clock.now();
        let quantities = |r: &Resources| -> BTreeMap<String, KubeQuantity> {
            r.to_quantity_map().into_iter().map(|(k, v)| (k, KubeQuantity(v))).collect()
        };
        // Startup taints are removed by the agent that owns them once the node initializes; the simulated
        // node starts initialized, so only the claim's taints remain.
        let node = core::Node {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(node_labels),
                creation_timestamp: Some(Time(now)),
                ..ObjectMeta::default()
            },
            spec: Some(core::NodeSpec {
                provider_id: Some(instance.provider_id.clone()),
                taints: claim.spec.taints.clone().filter(|t| !t.is_empty()),
                ..core::NodeSpec::default()
            }),
            status: Some(core::NodeStatus {
                capacity: Some(quantities(&capacity)),
                allocatable: Some(quantities(&alloc)),
                conditions: Some(vec![core::NodeCondition {
                    type_: "Ready".to_string(),
                    status: "True".to_string(),
                    ..core::NodeCondition::default()
                }]),
                ..core::NodeStatus::default()
            }),
        };
        self.index.apply(Object::Node(Arc::new(convert::node(&node)?)));
        Ok(name)
    }

    /// The instance is gone: its Node and NodeClaim go with it (the pods follow through pod GC).
    pub fn remove_node_of(&self, claim_name: &str) {
        self.index.delete(Kind::Node, claim_name);
        self.index.delete(Kind::NodeClaim, claim_name);
    }
}

fn owned_by(pod: &Pod, owner: &str) -> bool {
    pod.owner.as_ref().is_some_and(|o| o.name == owner)
}

fn bound(pod: &Pod, node: &str) -> Pod {
    let mut p = pod.clone();
    p.node_name = Some(node.to_string());
    p.nominated_node = None;
    p.unschedulable = false;
    p.phase = PodPhase::Running;
    p
}

/// A registered node as the solver sees it.
pub fn existing_node(node: &Node, pods: Vec<Arc<Pod>>) -> ExistingNode {
    ExistingNode {
        name: node.name.clone(),
        labels: node.labels.clone(),
        taints: node.taints.clone(),
        allocatable: node.allocatable.clone(),
        pods,
        unschedulable: node.unschedulable || node.deleting.is_some(),
        in_flight: false,
    }
}

fn not_found(what: String) -> actuator::Error {
    actuator::Error::NotFound(what)
}

#[async_trait]
impl Actuator for SimApi {
    async fn create_node_claim(&self, claim: &NodeClaim) -> actuator::Result<NodeClaim> {
        let mut claim = claim.clone();
        {
            let mut state = self.state.lock();
            if claim.metadata.name.is_none() {
                let prefix = claim.metadata.generate_name.clone().unwrap_or_default();
                claim.metadata.name = Some(format!("{prefix}{}", Self::suffix(&mut state.rng, 5)));
            }
            claim.metadata.uid = Some(Self::uid(&mut state));
        }
        let name = claim.metadata.name.clone().unwrap_or_default();
        if self.snapshot().node_claims.contains_key(&name) {
            return Err(actuator::Error::Conflict(format!("NodeClaim {name} already exists")));
        }
        claim.metadata.creation_timestamp = Some(Time(self.clock.now()));
        self.index.apply(Object::NodeClaim(Arc::new(claim.clone())));
        Ok(claim)
    }

    async fn patch_node_claim_status(&self, name: &str, status: &NodeClaimStatus) -> actuator::Result<()> {
        let claim = self
            .snapshot()
            .node_claims
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(format!("NodeClaim {name}")))?;
        let mut claim = (*claim).clone();
        claim.status = Some(status.clone());
        self.index.apply(Object::NodeClaim(Arc::new(claim)));
        Ok(())
    }

    /// As the API server does: a NodeClaim with finalizers only gets its deletion timestamp; it goes once the
    /// last finalizer is removed.
    async fn delete_node_claim(&self, name: &str) -> actuator::Result<()> {
        let snap = self.snapshot();
        let claim = snap.node_claims.get(name).ok_or_else(|| not_found(format!("NodeClaim {name}")))?;
        if claim.metadata.finalizers.as_ref().is_none_or(|f| f.is_empty()) {
            self.delete_object(Kind::NodeClaim, name);
        } else if claim.metadata.deletion_timestamp.is_none() {
            let mut claim = (**claim).clone();
            claim.metadata.deletion_timestamp = Some(Time(self.clock.now()));
            self.index.apply(Object::NodeClaim(Arc::new(claim)));
        }
        Ok(())
    }

    async fn add_finalizer(&self, target: &FinalizerTarget, finalizer: &str) -> actuator::Result<()> {
        self.edit_finalizers(target, |list| {
            if !list.iter().any(|f| f == finalizer) {
                list.push(finalizer.to_string());
            }
        })
    }

    async fn remove_finalizer(&self, target: &FinalizerTarget, finalizer: &str) -> actuator::Result<()> {
        self.edit_finalizers(target, |list| list.retain(|f| f != finalizer))
    }

    async fn cordon_node(&self, node: &str) -> actuator::Result<()> {
        self.edit_node(node, |n| n.unschedulable = true)
    }

    async fn taint_node(&self, node: &str, taint: &Taint) -> actuator::Result<()> {
        self.edit_node(node, |n| {
            if !n.taints.contains(taint) {
                n.taints.push(taint.clone());
            }
        })
    }

    async fn label_node(&self, node: &str, node_labels: &BTreeMap<String, String>) -> actuator::Result<()> {
        self.edit_node(node, |n| n.labels.extend(node_labels.clone()))
    }

    async fn delete_node(&self, node: &str) -> actuator::Result<()> {
        if !self.delete_object(Kind::Node, node) {
            return Err(not_found(format!("Node {node}")));
        }
        Ok(())
    }

    async fn evict_pod(&self, namespace: &str, name: &str) -> actuator::Result<Eviction> {
        let key = format!("{namespace}/{name}");
        let snap = self.snapshot();
        let Some(pod) = snap.pods.get(&key) else { return Ok(Eviction::NotFound) };
        let blocked = snap.pdbs.values().any(|pdb| {
            pdb.namespace == pod.namespace
                && pdb.disruptions_allowed <= 0
                && scheduling::selectors::matches(&pdb.selector, &pod.labels)
        });
        if blocked {
            return Ok(Eviction::BlockedByBudget);
        }
        self.index.delete(Kind::Pod, &key);
        Ok(Eviction::Evicted)
    }

    async fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
        _grace_seconds: Option<i64>,
    ) -> actuator::Result<()> {
        if !self.delete_object(Kind::Pod, &format!("{namespace}/{name}")) {
            return Err(not_found(format!("Pod {namespace}/{name}")));
        }
        Ok(())
    }

    async fn get_scale(&self, target: &ScaleTarget) -> actuator::Result<i32> {
        let state = self.state.lock();
        match state.deployments.get(&format!("{}/{}", target.namespace, target.name)) {
            Some(d) if target.kind.eq_ignore_ascii_case("deployment") => Ok(d.replicas),
            _ => Err(not_found(format!("{}/{} in namespace {}", target.kind, target.name, target.namespace))),
        }
    }

    async fn set_scale(&self, target: &ScaleTarget, replicas: i32) -> actuator::Result<()> {
        if !target.kind.eq_ignore_ascii_case("deployment")
            || !self.scale_deployment(&target.namespace, &target.name, replicas)
        {
            return Err(not_found(format!(
                "{}/{} in namespace {}",
                target.kind, target.name, target.namespace
            )));
        }
        Ok(())
    }

    async fn emit_event(&self, event: &EventRecord) -> actuator::Result<()> {
        self.state.lock().events.push(event.clone());
        Ok(())
    }

    async fn create_config_map(
        &self,
        namespace: &str,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> actuator::Result<()> {
        let key = format!("{namespace}/{name}");
        if self.snapshot().config_maps.contains_key(&key) {
            return Err(actuator::Error::Conflict(format!("ConfigMap {key} already exists")));
        }
        let config_map = ConfigMap {
            namespace: namespace.to_string(),
            name: name.to_string(),
            annotations: Default::default(),
            data: data.clone(),
            resource_version: Some("1".to_string()),
        };
        self.index.apply(Object::ConfigMap(Arc::new(config_map)));
        Ok(())
    }
}

impl SimApi {
    fn edit_node(&self, name: &str, edit: impl FnOnce(&mut Node)) -> actuator::Result<()> {
        let node =
            self.snapshot().nodes.get(name).cloned().ok_or_else(|| not_found(format!("Node {name}")))?;
        let mut node = (*node).clone();
        edit(&mut node);
        self.index.apply(Object::Node(Arc::new(node)));
        Ok(())
    }

    /// Finalizers live on NodeClaims; the domain Node does not carry them, so Node targets only check that
    /// the node exists.
    fn edit_finalizers(
        &self,
        target: &FinalizerTarget,
        edit: impl FnOnce(&mut Vec<String>),
    ) -> actuator::Result<()> {
        let snap = self.snapshot();
        match target {
            FinalizerTarget::Node(name) => {
                snap.nodes.get(name).map(|_| ()).ok_or_else(|| not_found(format!("Node {name}")))
            }
            FinalizerTarget::NodeClaim(name) => {
                let claim =
                    snap.node_claims.get(name).ok_or_else(|| not_found(format!("NodeClaim {name}")))?;
                let mut claim = (**claim).clone();
                edit(claim.metadata.finalizers.get_or_insert_with(Vec::new));
                if claim.metadata.deletion_timestamp.is_some()
                    && claim.metadata.finalizers.as_ref().is_none_or(|f| f.is_empty())
                {
                    self.index.delete(Kind::NodeClaim, name);
                } else {
                    self.index.apply(Object::NodeClaim(Arc::new(claim)));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;
    use kube::ResourceExt;

    use super::*;
    use crate::{
        clock::ManualClock,
        cloud::{CapacityType, InstanceState},
    };

    fn start() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn api() -> (SimApi, ManualClock) {
        let clock = ManualClock::new(start());
        (SimApi::new(state::Cluster::new(), Arc::new(clock.clone()), 1), clock)
    }

    fn deployment(replicas: i32) -> apps::Deployment {
        serde_yaml_ng::from_str(&format!(
            "metadata: {{name: web, namespace: default}}\n\
             spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    \
             metadata: {{labels: {{app: web}}}}\n    \
             spec: {{containers: [{{name: c, image: pause, resources: {{requests: {{cpu: '1'}}}}}}]}}\n"
        ))
        .unwrap()
    }

    fn web_pods(api: &SimApi) -> Vec<Arc<Pod>> {
        api.snapshot().pods.values().filter(|p| p.name.starts_with("web-")).cloned().collect()
    }

    fn instance(claim: &str, instance_type: &str) -> Instance {
        Instance {
            id: "i-0123".into(),
            provider_id: "aws:///us-east-1b/i-0123".into(),
            instance_type: instance_type.into(),
            zone: "us-east-1b".into(),
            capacity_type: CapacityType::Spot,
            price: 0.05,
            launched_at: start(),
            state: InstanceState::Running,
            tags: [(labels::BALLAST_NODE_CLAIM.to_string(), claim.to_string())].into(),
        }
    }

    async fn claim(api: &SimApi) -> String {
        let claim: NodeClaim = serde_yaml_ng::from_str(
            "apiVersion: ballast.dev/v1alpha1\nkind: NodeClaim\nmetadata: {generateName: default-}\n\
             spec: {provisioner: default, labels: {team: web}, taints: [{key: dedicated, value: web, effect: NoSchedule}]}\n",
        )
        .unwrap();
        api.create_node_claim(&claim).await.unwrap().name_any()
    }

    #[test]
    fn the_deployment_controller_creates_named_replicas_and_removes_pending_then_newest_first() {
        let (api, clock) = api();
        api.apply_deployment(&deployment(2)).unwrap();
        api.reconcile();
        let first = web_pods(&api);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|p| p.name.len() == "web-".len() + 10 + 1 + 5), "{first:?}");
        assert!(first.iter().all(|p| p.owner.as_ref().unwrap().kind == "ReplicaSet" && p.created == start()));

        // One of the first two runs; two newer ones stay pending.
        api.apply_object(Object::Pod(Arc::new(bound(&first[0], "n1"))));
        clock.advance(SignedDuration::from_secs(10));
        assert!(api.scale_deployment("default", "web", 4));
        api.reconcile();
        // The pod GC removes pods on nodes that do not exist: the bound pod goes, and is replaced.
        assert_eq!(web_pods(&api).len(), 4);
        assert!(web_pods(&api).iter().all(|p| p.node_name.is_none()));

        let keep = web_pods(&api).into_iter().find(|p| p.created == start()).unwrap();
        assert!(api.scale_deployment("default", "web", 1));
        api.reconcile();
        let left = web_pods(&api);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].name, keep.name, "the oldest pod stays");
        assert!(!api.scale_deployment("default", "nope", 1));
        assert!(api.delete_deployment("default", "web"));
        assert!(web_pods(&api).is_empty());
    }

    #[tokio::test]
    async fn the_kubelet_registers_a_node_with_labels_taints_and_allocatable() {
        let (api, _) = api();
        let name = claim(&api).await;
        assert!(name.starts_with("default-") && name.len() == "default-".len() + 5, "{name}");
        let catalog = Catalog::bundled();
        let node_name = api.register_node(&instance(&name, "m5.large"), &catalog).unwrap();
        let snap = api.snapshot();
        let node = snap.nodes.get(&node_name).unwrap();
        assert!(node.ready);
        assert_eq!(node.provider_id.as_deref(), Some("aws:///us-east-1b/i-0123"));
        for (k, v) in [
            (labels::ZONE, "us-east-1b"),
            (labels::REGION, "us-east-1"),
            (labels::CAPACITY_TYPE, "spot"),
            (labels::INSTANCE_TYPE, "m5.large"),
            (labels::PROVISIONER_NAME, "default"),
            ("team", "web"),
            ("karpenter.k8s.aws/instance-family", "m5"),
        ] {
            assert_eq!(node.labels.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(node.taints.len(), 1);
        assert_eq!(node.taints[0].key, "dedicated");
        // m5.large: 2 vCPU minus 70m kube-reserved; 29 pods.
        assert_eq!((node.allocatable.cpu, node.allocatable.pods), (1930, 29));
        let claim = snap.node_claims.get(&name).unwrap();
        assert!(claim.status.is_none(), "linking the node to its claim is ballast's lifecycle loop's job");

        api.remove_node_of(&name);
        assert!(api.snapshot().nodes.is_empty() && api.snapshot().node_claims.is_empty());
        assert!(api.register_node(&instance(&name, "m5.large"), &catalog).is_err(), "the claim is gone");
    }

    #[tokio::test]
    async fn the_scheduler_binds_what_fits_and_marks_the_rest_unschedulable() {
        let (api, _) = api();
        let catalog = Catalog::bundled();
        let name = claim(&api).await;
        api.register_node(&instance(&name, "m5.large"), &catalog).unwrap();
        // The node is tainted dedicated=web: add a toleration through the template.
        let mut d = deployment(3);
        d.spec.template.spec.as_mut().unwrap().tolerations = Some(vec![core::Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            ..core::Toleration::default()
        }]);
        api.apply_deployment(&d).unwrap();
        api.reconcile();
        let bound_now = api.schedule();
        // m5.large allocates 1930m: one `cpu: 1` pod.
        assert_eq!(bound_now.len(), 1);
        let pods = web_pods(&api);
        assert_eq!(pods.iter().filter(|p| p.node_name.as_deref() == Some(name.as_str())).count(), 1);
        assert_eq!(pods.iter().filter(|p| p.unschedulable && p.node_name.is_none()).count(), 2);
        assert!(api.schedule().is_empty());
    }

    #[tokio::test]
    async fn the_daemonset_controller_runs_one_pod_per_node_it_tolerates() {
        let (api, _) = api();
        let catalog = Catalog::bundled();
        let name = claim(&api).await;
        api.register_node(&instance(&name, "m5.large"), &catalog).unwrap();
        let ds = |name: &str, tolerate: bool| -> apps::DaemonSet {
            let tolerations = if tolerate { "tolerations: [{operator: Exists}], " } else { "" };
            serde_yaml_ng::from_str(&format!(
                "metadata: {{name: {name}, namespace: kube-system, creationTimestamp: '2026-01-01T00:00:00Z'}}\n\
                 spec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    \
                 spec: {{{tolerations}containers: [{{name: c, image: x, resources: {{requests: {{cpu: 100m}}}}}}]}}\n"
            ))
            .unwrap()
        };
        for (n, t) in [("agent", true), ("picky", false)] {
            api.apply_object(Object::DaemonSet(Arc::new(convert::daemonset(&ds(n, t)).unwrap())));
        }
        api.reconcile();
        api.reconcile();
        let snap = api.snapshot();
        let on_node: Vec<&Arc<Pod>> = snap.pods_on_node(&name).collect();
        assert_eq!(on_node.len(), 1, "{on_node:?}");
        assert!(on_node[0].name.starts_with("agent-") && on_node[0].is_daemonset_pod());
    }

    #[tokio::test]
    async fn actuator_writes_reach_the_index() {
        let (api, _) = api();
        let name = claim(&api).await;
        api.register_node(&instance(&name, "m5.large"), &Catalog::bundled()).unwrap();
        api.cordon_node(&name).await.unwrap();
        api.add_finalizer(&FinalizerTarget::NodeClaim(name.clone()), labels::TERMINATION_FINALIZER)
            .await
            .unwrap();
        let snap = api.snapshot();
        assert!(snap.nodes.get(&name).unwrap().unschedulable);
        assert_eq!(
            snap.node_claims.get(&name).unwrap().metadata.finalizers.as_deref(),
            Some(&[labels::TERMINATION_FINALIZER.to_string()][..])
        );
        api.apply_deployment(&deployment(1)).unwrap();
        let target =
            ScaleTarget { kind: "deployment".into(), namespace: "default".into(), name: "web".into() };
        api.set_scale(&target, 3).await.unwrap();
        assert_eq!(api.get_scale(&target).await.unwrap(), 3);
        assert!(matches!(api.delete_node("nope").await, Err(actuator::Error::NotFound(_))));
        let data = BTreeMap::from([("k".to_string(), "v".to_string())]);
        api.create_config_map("kube-system", "params", &data).await.unwrap();
        assert_eq!(api.snapshot().config_maps.get("kube-system/params").unwrap().data, data);
        assert!(matches!(
            api.create_config_map("kube-system", "params", &data).await,
            Err(actuator::Error::Conflict(_))
        ));
        // The finalizer holds the deleted claim until it is removed.
        api.delete_node_claim(&name).await.unwrap();
        let deleting = api.snapshot().node_claims.get(&name).cloned().expect("held by the finalizer");
        assert_eq!(deleting.metadata.deletion_timestamp, Some(Time(start())));
        api.remove_finalizer(&FinalizerTarget::NodeClaim(name.clone()), labels::TERMINATION_FINALIZER)
            .await
            .unwrap();
        assert!(api.snapshot().node_claims.is_empty());
    }
}
