//! Domain structs: what ballast keeps of Kubernetes objects, converted once at the edge (watch, scenario
//! file, snapshot dump) so planners never touch k8s-openapi types or parse quantities twice.
//!
//! Everything here is plain data. Matching logic (selectors, taints, requirements) lives in `scheduling`.

use std::{
    collections::BTreeMap,
    fmt,
    hash::{Hash, Hasher},
    sync::Arc,
};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::resources::Resources;

pub type Labels = BTreeMap<String, String>;

// === Selectors and requirements ===

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

/// One `key op values` clause: a node selector requirement, a label selector expression (In, NotIn, Exists,
/// DoesNotExist only) or a Provisioner requirement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default)]
    pub values: Vec<String>,
}

/// `nodeSelectorTerms[i]`: its expressions are ANDed; a list of terms is ORed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeSelectorTerm {
    pub match_expressions: Vec<Requirement>,
    /// `matchFields` only supports `metadata.name`.
    pub match_fields: Vec<Requirement>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LabelSelector {
    pub match_labels: Labels,
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeAffinity {
    /// ORed terms; empty means no required node affinity.
    pub required: Vec<NodeSelectorTerm>,
    pub preferred: Vec<Weighted<NodeSelectorTerm>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Weighted<T> {
    pub weight: i32,
    pub term: T,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PodAffinityTerm {
    /// `None` matches no pods (Kubernetes semantics of a nil selector).
    pub selector: Option<LabelSelector>,
    /// Empty with no namespace selector means the pod's own namespace.
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<LabelSelector>,
    pub topology_key: String,
    pub match_label_keys: Vec<String>,
    pub mismatch_label_keys: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PodAffinity {
    pub required: Vec<PodAffinityTerm>,
    pub preferred: Vec<Weighted<PodAffinityTerm>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Affinity {
    pub node: NodeAffinity,
    pub pod: PodAffinity,
    pub pod_anti: PodAffinity,
}

// === Taints and tolerations ===

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: TaintEffect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TolerationOperator {
    #[default]
    Equal,
    Exists,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Toleration {
    /// Empty with `Exists` tolerates every taint.
    pub key: String,
    pub operator: TolerationOperator,
    pub value: String,
    /// `None` tolerates every effect.
    pub effect: Option<TaintEffect>,
    pub toleration_seconds: Option<i64>,
}

// === Topology spread ===

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum WhenUnsatisfiable {
    #[default]
    DoNotSchedule,
    ScheduleAnyway,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InclusionPolicy {
    Honor,
    Ignore,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TopologySpreadConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    pub when_unsatisfiable: WhenUnsatisfiable,
    pub selector: Option<LabelSelector>,
    pub min_domains: Option<i32>,
    /// Default `Honor`.
    pub node_affinity_policy: InclusionPolicy,
    /// Default `Ignore`.
    pub node_taints_policy: InclusionPolicy,
    pub match_label_keys: Vec<String>,
}

// === Pods ===

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum PodPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub controller: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostPort {
    pub port: i32,
    /// `TCP` when unset.
    pub protocol: String,
    /// `0.0.0.0` when unset.
    pub ip: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Shared with the pod's sibling replicas when converted from the API ([`Shared`]).
    pub labels: Shared<Labels>,
    /// Only annotations ballast reads (`state::convert::KEPT_ANNOTATION_PREFIXES`) when converted from the API.
    pub annotations: Labels,
    pub owner: Option<OwnerRef>,
    pub node_name: Option<String>,
    pub nominated_node: Option<String>,
    pub phase: PodPhase,
    /// `PodScheduled=False` with reason `Unschedulable`: the kube-scheduler gave up on it.
    pub unschedulable: bool,
    /// `max(sum(containers), max(init)) + overhead`, with `pods: 1`.
    pub requests: Resources,
    pub node_selector: Labels,
    /// Empty for most pods; shared like `labels`.
    pub affinity: Shared<Affinity>,
    /// Shared like `labels`.
    pub tolerations: Shared<Vec<Toleration>>,
    pub topology_spread: Vec<TopologySpreadConstraint>,
    pub host_ports: Vec<HostPort>,
    /// Names of PersistentVolumeClaims the pod mounts (generic ephemeral volumes as `<pod>-<volume>`).
    pub pvcs: Vec<String>,
    /// Uses emptyDir on disk or hostPath (Cluster Autoscaler's "local storage" rule).
    pub local_storage: bool,
    pub priority: i32,
    pub priority_class: Option<String>,
    pub scheduler_name: String,
    pub created: Timestamp,
    pub deleting: Option<Timestamp>,
    pub termination_grace_seconds: i64,
}

impl Pod {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn is_daemonset_pod(&self) -> bool {
        self.owner.as_ref().is_some_and(|o| o.kind == "DaemonSet")
    }

    /// Static pods mirrored by the kubelet; they cannot be evicted or rescheduled.
    pub fn is_mirror(&self) -> bool {
        self.annotations.contains_key("kubernetes.io/config.mirror")
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.phase, PodPhase::Succeeded | PodPhase::Failed)
    }

    /// Pending on no node, not being deleted: a pod the provisioner must find room for.
    pub fn is_pending(&self) -> bool {
        self.node_name.is_none() && self.deleting.is_none() && !self.is_terminal()
    }
}

#[cfg(test)]
impl Pod {
    /// A pending, unowned pod with Kubernetes' defaults and no requests, for tests to override with struct
    /// update syntax.
    pub(crate) fn test(namespace: &str, name: &str) -> Self {
        Pod {
            namespace: namespace.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            labels: Shared::default(),
            annotations: Labels::new(),
            owner: None,
            node_name: None,
            nominated_node: None,
            phase: PodPhase::Pending,
            unschedulable: false,
            requests: Resources::default(),
            node_selector: Labels::new(),
            affinity: Shared::default(),
            tolerations: Shared::default(),
            topology_spread: vec![],
            host_ports: vec![],
            pvcs: vec![],
            local_storage: false,
            priority: 0,
            priority_class: None,
            scheduler_name: "default-scheduler".into(),
            created: Timestamp::UNIX_EPOCH,
            deleting: None,
            termination_grace_seconds: 30,
        }
    }
}

// === Nodes ===

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// `aws:///us-east-1a/i-0123…`
    pub provider_id: Option<String>,
    pub labels: Labels,
    /// Only annotations ballast reads (`state::convert::KEPT_ANNOTATION_PREFIXES`) when converted from the API.
    pub annotations: Labels,
    pub taints: Vec<Taint>,
    /// Cordoned.
    pub unschedulable: bool,
    pub capacity: Resources,
    pub allocatable: Resources,
    pub ready: bool,
    pub created: Timestamp,
    pub deleting: Option<Timestamp>,
}

// === Workloads, budgets and volumes ===

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonSet {
    pub namespace: String,
    pub name: String,
    /// The pod template, as a pod bound to no node.
    pub template: Pod,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IntOrPercent {
    Int(i32),
    Percent(i32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodDisruptionBudget {
    pub namespace: String,
    pub name: String,
    pub selector: LabelSelector,
    pub min_available: Option<IntOrPercent>,
    pub max_unavailable: Option<IntOrPercent>,
    /// `status.disruptionsAllowed` as last reported by the disruption controller.
    pub disruptions_allowed: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentVolumeClaim {
    pub namespace: String,
    pub name: String,
    pub storage_class: Option<String>,
    /// The bound PersistentVolume.
    pub volume_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentVolume {
    pub name: String,
    /// `spec.nodeAffinity.required` (ORed terms), e.g. the EBS volume's zone.
    pub node_affinity: Vec<NodeSelectorTerm>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VolumeBindingMode {
    #[default]
    Immediate,
    WaitForFirstConsumer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageClass {
    pub name: String,
    pub provisioner: String,
    pub binding_mode: VolumeBindingMode,
    /// `allowedTopologies` as ORed terms.
    pub allowed_topologies: Vec<NodeSelectorTerm>,
}

// === ConfigMaps ===

/// A ConfigMap ballast reads (proportional-scaling parameters). Only annotated or explicitly named ConfigMaps
/// are indexed, so the index never holds the cluster's other configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigMap {
    pub namespace: String,
    pub name: String,
    pub annotations: Labels,
    /// `data` only; `binaryData` is never read.
    pub data: BTreeMap<String, String>,
    pub resource_version: Option<String>,
}

impl ConfigMap {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

// === Sharing ===

/// A value many objects hold equal copies of (the labels, tolerations and constraints of one workload's
/// replicas), stored once behind an `Arc`. Reads deref to `T`; a write through `DerefMut` first copies a value
/// that others share (`Arc::make_mut`), so a change never leaks into another object. The pod watch interns
/// these (`state::intern`); elsewhere `.into()` wraps a value of one's own.
#[derive(Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Shared<T>(Arc<T>);

/// Another holder of the same allocation (whatever `T`'s own `Clone`).
impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Shared<T> {
    pub fn new(value: T) -> Self {
        Self(Arc::new(value))
    }

    /// Whether both hold the very same allocation.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// How many objects (and interning tables) hold this allocation.
    pub fn holders(this: &Self) -> usize {
        Arc::strong_count(&this.0)
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

/// `[("app".to_string(), "web".to_string())].into()`, as for a plain map.
impl<K: Ord, V, const N: usize> From<[(K, V); N]> for Shared<BTreeMap<K, V>> {
    fn from(pairs: [(K, V); N]) -> Self {
        Self::new(BTreeMap::from(pairs))
    }
}

impl<A, T: FromIterator<A>> FromIterator<A> for Shared<T> {
    fn from_iter<I: IntoIterator<Item = A>>(iter: I) -> Self {
        Self::new(T::from_iter(iter))
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> std::ops::DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

/// Lets interning tables look values up by `&T`; hashes exactly as `T` does.
impl<T> std::borrow::Borrow<T> for Shared<T> {
    fn borrow(&self) -> &T {
        &self.0
    }
}

impl<T: Hash> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (*self.0).hash(state)
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
