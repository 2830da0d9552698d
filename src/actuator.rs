//! Every kube write ballast makes goes through [`Actuator`]: one narrow trait with a kube implementation and
//! a recording fake, so loops are tested without an API server and request shapes are tested once.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    api::{NodeClaim, NodeClaimStatus},
    model::Taint,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object changed since it was read; re-read and retry.
    #[error("conflict writing {0}: re-read and retry")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    /// RBAC is missing `verb` on `resource`.
    #[error("forbidden: missing RBAC permission {verb} on {resource}")]
    Forbidden { verb: String, resource: String },
    #[error("invalid request for {object}: {message}")]
    Invalid { object: String, message: String },
    #[error("failed to write to the API server: {0}")]
    Api(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A kube object a finalizer is added to or removed from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FinalizerTarget {
    Node(String),
    NodeClaim(String),
}

/// What the Eviction API said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Eviction {
    Evicted,
    /// 429: a PodDisruptionBudget does not allow it now. Retry later; not an error.
    BlockedByBudget,
    /// The pod was already gone.
    NotFound,
}

/// A workload with a `/scale` subresource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ScaleTarget {
    /// `deployment`, `replicaset`, `statefulset` or `replicationcontroller` (or any group/resource with /scale).
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

/// A Kubernetes Event about one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// `(apiVersion, kind, namespace, name)` of the object the event is about.
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub type_: EventType,
    /// CamelCase reason, e.g. `Launched`, `ScaledReplicas`, `InvalidConfig`.
    pub reason: String,
    pub message: String,
}

#[async_trait]
pub trait Actuator: Send + Sync {
    async fn create_node_claim(&self, claim: &NodeClaim) -> Result<NodeClaim>;
    /// Server-side apply of the status subresource.
    async fn patch_node_claim_status(&self, name: &str, status: &NodeClaimStatus) -> Result<()>;
    async fn delete_node_claim(&self, name: &str) -> Result<()>;
    /// JSON patch with a `test` op on the current finalizer list (optimistic concurrency).
    async fn add_finalizer(&self, target: &FinalizerTarget, finalizer: &str) -> Result<()>;
    async fn remove_finalizer(&self, target: &FinalizerTarget, finalizer: &str) -> Result<()>;
    async fn cordon_node(&self, node: &str) -> Result<()>;
    async fn taint_node(&self, node: &str, taint: &Taint) -> Result<()>;
    async fn label_node(&self, node: &str, labels: &BTreeMap<String, String>) -> Result<()>;
    async fn delete_node(&self, node: &str) -> Result<()>;
    async fn evict_pod(&self, namespace: &str, name: &str) -> Result<Eviction>;
    async fn delete_pod(&self, namespace: &str, name: &str, grace_seconds: Option<i64>) -> Result<()>;
    /// Current `spec.replicas` from the `/scale` subresource.
    async fn get_scale(&self, target: &ScaleTarget) -> Result<i32>;
    async fn set_scale(&self, target: &ScaleTarget, replicas: i32) -> Result<()>;
    async fn emit_event(&self, event: &EventRecord) -> Result<()>;
    /// Creates a ConfigMap with `data`. An existing one is never overwritten: the call fails with `Conflict`.
    async fn create_config_map(
        &self,
        namespace: &str,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<()>;
}

// === Recording fake ===

/// One call made to a [`RecordingActuator`].
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    CreateNodeClaim(String),
    PatchNodeClaimStatus(String),
    DeleteNodeClaim(String),
    AddFinalizer(FinalizerTarget, String),
    RemoveFinalizer(FinalizerTarget, String),
    CordonNode(String),
    TaintNode(String, Taint),
    LabelNode(String, BTreeMap<String, String>),
    DeleteNode(String),
    EvictPod(String, String),
    DeletePod(String, String),
    SetScale(ScaleTarget, i32),
    Event(EventRecord),
    CreateConfigMap { namespace: String, name: String, data: BTreeMap<String, String> },
}

/// An in-memory [`Actuator`] for loop tests: records every write, answers `/scale` reads from a map,
/// and can be told to block evictions or fail scale reads.
#[derive(Debug, Default)]
pub struct RecordingActuator {
    calls: parking_lot::Mutex<Vec<Call>>,
    scales: parking_lot::Mutex<BTreeMap<ScaleTarget, i32>>,
    /// Pods (`namespace/name`) whose eviction answers 429.
    pub blocked_evictions: parking_lot::Mutex<std::collections::BTreeSet<String>>,
}

impl RecordingActuator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().clone()
    }

    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock())
    }

    pub fn events(&self) -> Vec<EventRecord> {
        self.calls().into_iter().filter_map(|c| if let Call::Event(e) = c { Some(e) } else { None }).collect()
    }

    /// Makes a scalable target exist with `replicas`.
    pub fn set_existing_scale(&self, target: ScaleTarget, replicas: i32) {
        self.scales.lock().insert(target, replicas);
    }

    pub fn scale_of(&self, target: &ScaleTarget) -> Option<i32> {
        self.scales.lock().get(target).copied()
    }

    fn record(&self, call: Call) {
        self.calls.lock().push(call);
    }
}

#[async_trait]
impl Actuator for RecordingActuator {
    async fn create_node_claim(&self, claim: &NodeClaim) -> Result<NodeClaim> {
        self.record(Call::CreateNodeClaim(claim.metadata.name.clone().unwrap_or_default()));
        Ok(claim.clone())
    }
    async fn patch_node_claim_status(&self, name: &str, _status: &NodeClaimStatus) -> Result<()> {
        self.record(Call::PatchNodeClaimStatus(name.to_string()));
        Ok(())
    }
    async fn delete_node_claim(&self, name: &str) -> Result<()> {
        self.record(Call::DeleteNodeClaim(name.to_string()));
        Ok(())
    }
    async fn add_finalizer(&self, target: &FinalizerTarget, finalizer: &str) -> Result<()> {
        self.record(Call::AddFinalizer(target.clone(), finalizer.to_string()));
        Ok(())
    }
    async fn remove_finalizer(&self, target: &FinalizerTarget, finalizer: &str) -> Result<()> {
        self.record(Call::RemoveFinalizer(target.clone(), finalizer.to_string()));
        Ok(())
    }
    async fn cordon_node(&self, node: &str) -> Result<()> {
        self.record(Call::CordonNode(node.to_string()));
        Ok(())
    }
    async fn taint_node(&self, node: &str, taint: &Taint) -> Result<()> {
        self.record(Call::TaintNode(node.to_string(), taint.clone()));
        Ok(())
    }
    async fn label_node(&self, node: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        self.record(Call::LabelNode(node.to_string(), labels.clone()));
        Ok(())
    }
    async fn delete_node(&self, node: &str) -> Result<()> {
        self.record(Call::DeleteNode(node.to_string()));
        Ok(())
    }
    async fn evict_pod(&self, namespace: &str, name: &str) -> Result<Eviction> {
        self.record(Call::EvictPod(namespace.to_string(), name.to_string()));
        if self.blocked_evictions.lock().contains(&format!("{namespace}/{name}")) {
            return Ok(Eviction::BlockedByBudget);
        }
        Ok(Eviction::Evicted)
    }
    async fn delete_pod(&self, namespace: &str, name: &str, _grace_seconds: Option<i64>) -> Result<()> {
        self.record(Call::DeletePod(namespace.to_string(), name.to_string()));
        Ok(())
    }
    async fn get_scale(&self, target: &ScaleTarget) -> Result<i32> {
        self.scale_of(target).ok_or_else(|| {
            Error::NotFound(format!("{}/{} in namespace {}", target.kind, target.name, target.namespace))
        })
    }
    async fn set_scale(&self, target: &ScaleTarget, replicas: i32) -> Result<()> {
        if !self.scales.lock().contains_key(target) {
            return Err(Error::NotFound(format!(
                "{}/{} in namespace {}",
                target.kind, target.name, target.namespace
            )));
        }
        self.scales.lock().insert(target.clone(), replicas);
        self.record(Call::SetScale(target.clone(), replicas));
        Ok(())
    }
    async fn emit_event(&self, event: &EventRecord) -> Result<()> {
        self.record(Call::Event(event.clone()));
        Ok(())
    }
    async fn create_config_map(
        &self,
        namespace: &str,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.record(Call::CreateConfigMap {
            namespace: namespace.to_string(),
            name: name.to_string(),
            data: data.clone(),
        });
        Ok(())
    }
}
