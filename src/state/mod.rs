//! The one watch-fed index of cluster objects shared by every loop, and cheap snapshots of it.
//!
//! Watches (in a cluster) or the simulator's in-memory API feed [`Cluster`] with [`Object`]s; planners take a
//! [`Snapshot`] under a short read lock and never see a half-applied update.

use std::{collections::BTreeMap, sync::Arc};

use parking_lot::RwLock;

use crate::{
    api::{NodeClaim, NodeTemplate, Provisioner},
    model::{
        DaemonSet, Node, PersistentVolume, PersistentVolumeClaim, Pod, PodDisruptionBudget, StorageClass,
    },
};

/// Every kind the index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Node,
    Pod,
    DaemonSet,
    PodDisruptionBudget,
    PersistentVolumeClaim,
    PersistentVolume,
    StorageClass,
    Provisioner,
    NodeTemplate,
    NodeClaim,
}

/// One object, already converted to its domain form.
#[derive(Debug, Clone)]
pub enum Object {
    Node(Arc<Node>),
    Pod(Arc<Pod>),
    DaemonSet(Arc<DaemonSet>),
    PodDisruptionBudget(Arc<PodDisruptionBudget>),
    PersistentVolumeClaim(Arc<PersistentVolumeClaim>),
    PersistentVolume(Arc<PersistentVolume>),
    StorageClass(Arc<StorageClass>),
    Provisioner(Arc<Provisioner>),
    NodeTemplate(Arc<NodeTemplate>),
    NodeClaim(Arc<NodeClaim>),
}

/// A consistent, immutable view of the index for one planning pass. Keys are `namespace/name` for
/// namespaced kinds and `name` otherwise; maps are ordered so planners iterate deterministically.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub nodes: BTreeMap<String, Arc<Node>>,
    pub pods: BTreeMap<String, Arc<Pod>>,
    pub daemonsets: BTreeMap<String, Arc<DaemonSet>>,
    pub pdbs: BTreeMap<String, Arc<PodDisruptionBudget>>,
    pub pvcs: BTreeMap<String, Arc<PersistentVolumeClaim>>,
    pub pvs: BTreeMap<String, Arc<PersistentVolume>>,
    pub storage_classes: BTreeMap<String, Arc<StorageClass>>,
    pub provisioners: BTreeMap<String, Arc<Provisioner>>,
    pub node_templates: BTreeMap<String, Arc<NodeTemplate>>,
    pub node_claims: BTreeMap<String, Arc<NodeClaim>>,
}

/// Shared handle to the index.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    inner: Arc<RwLock<Snapshot>>,
}

impl Cluster {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner.read().clone()
    }
}
