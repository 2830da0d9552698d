//! The one watch-fed index of cluster objects shared by every loop, and cheap snapshots of it.
//!
//! Watches (in a cluster, [`watch`]) or the simulator's in-memory API feed [`Cluster`] with [`Event`]s of
//! [`Object`]s already converted to domain structs ([`convert`]); planners take a [`Snapshot`] under a short
//! read lock and never see a half-applied update. Loops wait for [`Cluster::synced`] before planning and wake on
//! [`Subscription::changed`].

pub mod convert;
pub mod intern;
mod snapshot;
pub mod watch;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use parking_lot::RwLock;
use tokio::sync::watch as notify;

pub use self::snapshot::Snapshot;
use crate::{
    api::{NodeClaim, NodeTemplate, Provisioner},
    model::{
        ConfigMap, DaemonSet, Node, PersistentVolume, PersistentVolumeClaim, Pod, PodDisruptionBudget,
        StorageClass,
    },
};

/// One kind's objects by key, as a persistent ordered map (cheap to clone, deterministic to iterate).
pub type Map<V> = imbl::OrdMap<String, Arc<V>>;

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
    ConfigMap,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Node,
        Kind::Pod,
        Kind::DaemonSet,
        Kind::PodDisruptionBudget,
        Kind::PersistentVolumeClaim,
        Kind::PersistentVolume,
        Kind::StorageClass,
        Kind::Provisioner,
        Kind::NodeTemplate,
        Kind::NodeClaim,
        Kind::ConfigMap,
    ];
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
    ConfigMap(Arc<ConfigMap>),
}

/// A watcher-style event (kube-runtime's `watcher::Event`, after conversion).
#[derive(Debug, Clone)]
pub enum Event {
    /// An object was created or changed.
    Apply(Object),
    /// The object with this key was deleted.
    Delete(Kind, String),
    /// A (re)list of this kind starts; the current contents stay visible until [`Event::InitDone`].
    Init(Kind),
    /// One object of the list in progress.
    InitApply(Object),
    /// The list is complete: the kind's contents become exactly the listed objects, atomically. Objects deleted
    /// while the watch was down disappear here.
    InitDone(Kind),
}

/// Per-kind change counters, published on every write so loops can wake on the kinds they read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    per_kind: [u64; Kind::ALL.len()],
}

impl Changes {
    /// How many writes changed `kind` so far.
    pub fn of(&self, kind: Kind) -> u64 {
        self.per_kind[kind as usize]
    }
}

/// Shared handle to the index.
#[derive(Debug, Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: RwLock<State>,
    changes: notify::Sender<Changes>,
}

#[derive(Debug, Default)]
struct State {
    snapshot: Snapshot,
    /// Kinds fed by a watch; `synced()` waits for each to finish one list.
    registered: BTreeSet<Kind>,
    listed: BTreeSet<Kind>,
    /// Objects of a list in progress, by kind then key.
    relisting: BTreeMap<Kind, BTreeMap<String, Object>>,
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Cluster {
    /// An empty index with no watches registered (so it counts as synced): the simulator and tests feed it
    /// directly. Watches call [`Cluster::register`] for their kinds.
    pub fn new() -> Self {
        let (changes, _) = notify::channel(Changes::default());
        let state = State { snapshot: Snapshot::from_objects([]), ..State::default() };
        Self { inner: Arc::new(Inner { state: RwLock::new(state), changes }) }
    }

    /// Declares that a watch feeds `kind`: the index is not synced until that kind's first `InitDone`.
    pub fn register(&self, kind: Kind) {
        let mut state = self.inner.state.write();
        state.registered.insert(kind);
        state.snapshot.synced = state.is_synced();
    }

    /// True once every registered kind has been listed completely at least once. No loop plans before this.
    pub fn synced(&self) -> bool {
        self.inner.state.read().snapshot.synced
    }

    /// A consistent view for one planning pass; O(kinds) under a short read lock.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.state.read().snapshot.clone()
    }

    /// Wakes the caller on changes; see [`Subscription::changed`].
    pub fn subscribe(&self) -> Subscription {
        let rx = self.inner.changes.subscribe();
        let seen = rx.borrow().clone();
        Subscription { rx, seen }
    }

    pub fn apply(&self, object: Object) {
        self.handle(Event::Apply(object));
    }

    pub fn delete(&self, kind: Kind, key: &str) {
        self.handle(Event::Delete(kind, key.to_string()));
    }

    pub fn handle(&self, event: Event) {
        let mut state = self.inner.state.write();
        let changed = state.handle(event);
        if !changed.is_empty() {
            state.snapshot.revision += 1;
            // Under the write lock, so counters and snapshot revisions move together.
            self.inner.changes.send_modify(|c| changed.iter().for_each(|k| c.per_kind[*k as usize] += 1));
        }
    }
}

impl State {
    fn is_synced(&self) -> bool {
        self.registered.is_subset(&self.listed)
    }

    /// Applies one event; returns the kinds whose contents changed.
    fn handle(&mut self, event: Event) -> Vec<Kind> {
        match event {
            Event::Apply(object) => {
                let kind = object.kind();
                if self.snapshot.apply(object) { vec![kind] } else { vec![] }
            }
            Event::Delete(kind, key) => {
                if self.snapshot.delete(kind, &key).is_some() {
                    vec![kind]
                } else {
                    vec![]
                }
            }
            Event::Init(kind) => {
                self.relisting.insert(kind, BTreeMap::new());
                vec![]
            }
            Event::InitApply(object) => {
                let (kind, key) = (object.kind(), object.key());
                // Most objects are unchanged across a relist: buffer the indexed copy so a relist of 100k pods
                // does not hold a second copy of each until InitDone.
                let object = match self.snapshot.get(kind, &key) {
                    Some(indexed) if indexed.same_as(&object) => indexed,
                    _ => object,
                };
                self.relisting.entry(kind).or_default().insert(key, object);
                vec![]
            }
            Event::InitDone(kind) => {
                let listed = self.relisting.remove(&kind).unwrap_or_default();
                let mut changed = false;
                for stale in self.snapshot.keys(kind).into_iter().filter(|k| !listed.contains_key(k)) {
                    changed |= self.snapshot.delete(kind, &stale).is_some();
                }
                for object in listed.into_values() {
                    changed |= self.snapshot.apply(object);
                }
                let was_synced = self.snapshot.synced;
                self.listed.insert(kind);
                self.snapshot.synced = self.is_synced();
                // Becoming synced is news for loops waiting to plan, even when the list changed nothing.
                if changed || self.snapshot.synced != was_synced { vec![kind] } else { vec![] }
            }
        }
    }
}

/// A loop's view of the change counters.
#[derive(Debug)]
pub struct Subscription {
    rx: notify::Receiver<Changes>,
    seen: Changes,
}

impl Subscription {
    /// Waits until any of `kinds` changed since this subscription last returned for them (or since
    /// subscribing). Errors only when the index was dropped.
    pub async fn changed(&mut self, kinds: &[Kind]) -> Result<(), notify::error::RecvError> {
        loop {
            {
                let current = self.rx.borrow_and_update();
                if kinds.iter().any(|k| current.of(*k) != self.seen.of(*k)) {
                    kinds.iter().for_each(|k| self.seen.per_kind[*k as usize] = current.of(*k));
                    return Ok(());
                }
            }
            self.rx.changed().await?;
        }
    }
}

#[cfg(test)]
mod tests;
