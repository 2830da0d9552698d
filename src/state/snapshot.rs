//! [`Snapshot`]: the index's contents as persistent maps, so cloning one costs O(kinds), not O(objects).

use std::sync::Arc;

use kube::ResourceExt;

use super::{Kind, Map, Object};
use crate::model::{
    ConfigMap, DaemonSet, Node, PersistentVolume, PersistentVolumeClaim, Pod, PodDisruptionBudget,
    StorageClass,
};

/// A consistent, immutable view of the index for one planning pass. Keys are `namespace/name` for
/// namespaced kinds and `name` otherwise; maps are ordered so planners iterate deterministically.
///
/// The maps are `imbl::OrdMap`s: a clone shares structure with the index, and later writes to the index copy
/// only the paths they touch, so a snapshot never changes and never costs a full copy. Read the public maps
/// freely; change a snapshot only through [`Snapshot::apply`] / [`Snapshot::delete`], which keep the secondary
/// indexes (pods by node, pending pods, daemonset pods) in step.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub nodes: Map<Node>,
    pub pods: Map<Pod>,
    pub daemonsets: Map<DaemonSet>,
    pub pdbs: Map<PodDisruptionBudget>,
    pub pvcs: Map<PersistentVolumeClaim>,
    pub pvs: Map<PersistentVolume>,
    pub storage_classes: Map<StorageClass>,
    pub provisioners: Map<crate::api::Provisioner>,
    pub node_templates: Map<crate::api::NodeTemplate>,
    pub node_claims: Map<crate::api::NodeClaim>,
    pub config_maps: Map<ConfigMap>,
    /// Node name → pods bound to it.
    pods_by_node: imbl::OrdMap<String, Map<Pod>>,
    /// Pods on no node, not terminal, not being deleted.
    pending_pods: Map<Pod>,
    /// `namespace/daemonset` → the pods it owns.
    daemonset_pods: imbl::OrdMap<String, Map<Pod>>,
    pub(super) revision: u64,
    pub(super) synced: bool,
}

impl Snapshot {
    /// Builds a snapshot from objects (tests, `ballast plan` from dumps). Later objects replace earlier ones
    /// with the same key.
    pub fn from_objects(objects: impl IntoIterator<Item = Object>) -> Self {
        let mut snap = Self { synced: true, ..Self::default() };
        for object in objects {
            snap.apply(object);
        }
        snap
    }

    /// Bumped on every change to the index; equal revisions mean equal contents.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Whether every watch had listed its kind once when this snapshot was taken.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Pods bound to `node`, ordered by `namespace/name`.
    pub fn pods_on_node(&self, node: &str) -> impl Iterator<Item = &Arc<Pod>> {
        self.pods_by_node.get(node).into_iter().flat_map(|pods| pods.values())
    }

    /// Pods waiting for a node (unbound, not terminal, not being deleted), ordered by `namespace/name`.
    pub fn pending_pods(&self) -> impl Iterator<Item = &Arc<Pod>> {
        self.pending_pods.values()
    }

    /// Every pod owned by a DaemonSet, ordered by daemonset then pod.
    pub fn daemonset_pods(&self) -> impl Iterator<Item = &Arc<Pod>> {
        self.daemonset_pods.values().flat_map(|pods| pods.values())
    }

    /// Pods owned by the DaemonSet `namespace/name`.
    pub fn pods_of_daemonset(&self, namespace: &str, name: &str) -> impl Iterator<Item = &Arc<Pod>> {
        self.daemonset_pods.get(&format!("{namespace}/{name}")).into_iter().flat_map(|pods| pods.values())
    }

    pub fn len(&self, kind: Kind) -> usize {
        match kind {
            Kind::Node => self.nodes.len(),
            Kind::Pod => self.pods.len(),
            Kind::DaemonSet => self.daemonsets.len(),
            Kind::PodDisruptionBudget => self.pdbs.len(),
            Kind::PersistentVolumeClaim => self.pvcs.len(),
            Kind::PersistentVolume => self.pvs.len(),
            Kind::StorageClass => self.storage_classes.len(),
            Kind::Provisioner => self.provisioners.len(),
            Kind::NodeTemplate => self.node_templates.len(),
            Kind::NodeClaim => self.node_claims.len(),
            Kind::ConfigMap => self.config_maps.len(),
        }
    }

    /// Keys of every object of `kind`, in order.
    pub fn keys(&self, kind: Kind) -> Vec<String> {
        fn keys<V>(map: &Map<V>) -> Vec<String> {
            map.keys().cloned().collect()
        }
        match kind {
            Kind::Node => keys(&self.nodes),
            Kind::Pod => keys(&self.pods),
            Kind::DaemonSet => keys(&self.daemonsets),
            Kind::PodDisruptionBudget => keys(&self.pdbs),
            Kind::PersistentVolumeClaim => keys(&self.pvcs),
            Kind::PersistentVolume => keys(&self.pvs),
            Kind::StorageClass => keys(&self.storage_classes),
            Kind::Provisioner => keys(&self.provisioners),
            Kind::NodeTemplate => keys(&self.node_templates),
            Kind::NodeClaim => keys(&self.node_claims),
            Kind::ConfigMap => keys(&self.config_maps),
        }
    }

    pub fn get(&self, kind: Kind, key: &str) -> Option<Object> {
        Some(match kind {
            Kind::Node => Object::Node(self.nodes.get(key)?.clone()),
            Kind::Pod => Object::Pod(self.pods.get(key)?.clone()),
            Kind::DaemonSet => Object::DaemonSet(self.daemonsets.get(key)?.clone()),
            Kind::PodDisruptionBudget => Object::PodDisruptionBudget(self.pdbs.get(key)?.clone()),
            Kind::PersistentVolumeClaim => Object::PersistentVolumeClaim(self.pvcs.get(key)?.clone()),
            Kind::PersistentVolume => Object::PersistentVolume(self.pvs.get(key)?.clone()),
            Kind::StorageClass => Object::StorageClass(self.storage_classes.get(key)?.clone()),
            Kind::Provisioner => Object::Provisioner(self.provisioners.get(key)?.clone()),
            Kind::NodeTemplate => Object::NodeTemplate(self.node_templates.get(key)?.clone()),
            Kind::NodeClaim => Object::NodeClaim(self.node_claims.get(key)?.clone()),
            Kind::ConfigMap => Object::ConfigMap(self.config_maps.get(key)?.clone()),
        })
    }

    /// Inserts or replaces an object. Returns false (and changes nothing) when an equal object is already
    /// indexed, so relists and status-only updates do not wake loops.
    pub fn apply(&mut self, object: Object) -> bool {
        let key = object.key();
        if self.get(object.kind(), &key).is_some_and(|old| old.same_as(&object)) {
            return false;
        }
        match object {
            Object::Node(v) => _ = self.nodes.insert(key, v),
            Object::Pod(pod) => {
                if let Some(old) = self.pods.insert(key.clone(), pod.clone()) {
                    self.unindex_pod(&key, &old);
                }
                self.index_pod(key, pod);
            }
            Object::DaemonSet(v) => _ = self.daemonsets.insert(key, v),
            Object::PodDisruptionBudget(v) => _ = self.pdbs.insert(key, v),
            Object::PersistentVolumeClaim(v) => _ = self.pvcs.insert(key, v),
            Object::PersistentVolume(v) => _ = self.pvs.insert(key, v),
            Object::StorageClass(v) => _ = self.storage_classes.insert(key, v),
            Object::Provisioner(v) => _ = self.provisioners.insert(key, v),
            Object::NodeTemplate(v) => _ = self.node_templates.insert(key, v),
            Object::NodeClaim(v) => _ = self.node_claims.insert(key, v),
            Object::ConfigMap(v) => _ = self.config_maps.insert(key, v),
        }
        true
    }

    /// Removes an object; returns it when it was indexed.
    pub fn delete(&mut self, kind: Kind, key: &str) -> Option<Object> {
        Some(match kind {
            Kind::Node => Object::Node(self.nodes.remove(key)?),
            Kind::Pod => {
                let pod = self.pods.remove(key)?;
                self.unindex_pod(key, &pod);
                Object::Pod(pod)
            }
            Kind::DaemonSet => Object::DaemonSet(self.daemonsets.remove(key)?),
            Kind::PodDisruptionBudget => Object::PodDisruptionBudget(self.pdbs.remove(key)?),
            Kind::PersistentVolumeClaim => Object::PersistentVolumeClaim(self.pvcs.remove(key)?),
            Kind::PersistentVolume => Object::PersistentVolume(self.pvs.remove(key)?),
            Kind::StorageClass => Object::StorageClass(self.storage_classes.remove(key)?),
            Kind::Provisioner => Object::Provisioner(self.provisioners.remove(key)?),
            Kind::NodeTemplate => Object::NodeTemplate(self.node_templates.remove(key)?),
            Kind::NodeClaim => Object::NodeClaim(self.node_claims.remove(key)?),
            Kind::ConfigMap => Object::ConfigMap(self.config_maps.remove(key)?),
        })
    }

    fn index_pod(&mut self, key: String, pod: Arc<Pod>) {
        if let Some(node) = &pod.node_name {
            self.pods_by_node.entry(node.clone()).or_default().insert(key.clone(), pod.clone());
        }
        if pod.is_pending() {
            self.pending_pods.insert(key.clone(), pod.clone());
        }
        if let Some(ds) = daemonset_key(&pod) {
            self.daemonset_pods.entry(ds).or_default().insert(key, pod);
        }
    }

    fn unindex_pod(&mut self, key: &str, pod: &Pod) {
        if let Some(node) = &pod.node_name {
            remove_nested(&mut self.pods_by_node, node, key);
        }
        self.pending_pods.remove(key);
        if let Some(ds) = daemonset_key(pod) {
            remove_nested(&mut self.daemonset_pods, &ds, key);
        }
    }
}

fn daemonset_key(pod: &Pod) -> Option<String> {
    let owner = pod.owner.as_ref().filter(|o| o.kind == "DaemonSet")?;
    Some(format!("{}/{}", pod.namespace, owner.name))
}

/// Removes `key` from the inner map of `outer[group]`, dropping the group when it empties.
fn remove_nested(outer: &mut imbl::OrdMap<String, Map<Pod>>, group: &str, key: &str) {
    if let Some(inner) = outer.get_mut(group) {
        inner.remove(key);
        if inner.is_empty() {
            outer.remove(group);
        }
    }
}

// === impl Object ===

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Node(_) => Kind::Node,
            Object::Pod(_) => Kind::Pod,
            Object::DaemonSet(_) => Kind::DaemonSet,
            Object::PodDisruptionBudget(_) => Kind::PodDisruptionBudget,
            Object::PersistentVolumeClaim(_) => Kind::PersistentVolumeClaim,
            Object::PersistentVolume(_) => Kind::PersistentVolume,
            Object::StorageClass(_) => Kind::StorageClass,
            Object::Provisioner(_) => Kind::Provisioner,
            Object::NodeTemplate(_) => Kind::NodeTemplate,
            Object::NodeClaim(_) => Kind::NodeClaim,
            Object::ConfigMap(_) => Kind::ConfigMap,
        }
    }

    /// `namespace/name` for namespaced kinds, `name` otherwise.
    pub fn key(&self) -> String {
        let ns = |ns: &str, name: &str| format!("{ns}/{name}");
        match self {
            Object::Node(v) => v.name.clone(),
            Object::Pod(v) => v.key(),
            Object::DaemonSet(v) => ns(&v.namespace, &v.name),
            Object::PodDisruptionBudget(v) => ns(&v.namespace, &v.name),
            Object::PersistentVolumeClaim(v) => ns(&v.namespace, &v.name),
            Object::PersistentVolume(v) => v.name.clone(),
            Object::StorageClass(v) => v.name.clone(),
            Object::Provisioner(v) => v.name_any(),
            Object::NodeTemplate(v) => v.name_any(),
            Object::NodeClaim(v) => v.name_any(),
            Object::ConfigMap(v) => v.key(),
        }
    }

    /// Equal content. Domain structs compare by value; CRDs by `resourceVersion`, which the API server bumps
    /// on every write.
    pub(super) fn same_as(&self, other: &Object) -> bool {
        fn same_version(a: &impl ResourceExt, b: &impl ResourceExt) -> bool {
            a.resource_version().is_some() && a.resource_version() == b.resource_version()
        }
        match (self, other) {
            (Object::Node(a), Object::Node(b)) => a == b,
            (Object::Pod(a), Object::Pod(b)) => a == b,
            (Object::DaemonSet(a), Object::DaemonSet(b)) => a == b,
            (Object::PodDisruptionBudget(a), Object::PodDisruptionBudget(b)) => a == b,
            (Object::PersistentVolumeClaim(a), Object::PersistentVolumeClaim(b)) => a == b,
            (Object::PersistentVolume(a), Object::PersistentVolume(b)) => a == b,
            (Object::StorageClass(a), Object::StorageClass(b)) => a == b,
            (Object::Provisioner(a), Object::Provisioner(b)) => same_version(&**a, &**b),
            (Object::NodeTemplate(a), Object::NodeTemplate(b)) => same_version(&**a, &**b),
            (Object::NodeClaim(a), Object::NodeClaim(b)) => same_version(&**a, &**b),
            (Object::ConfigMap(a), Object::ConfigMap(b)) => a == b,
            _ => false,
        }
    }
}
