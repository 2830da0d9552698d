//! kube-runtime watches feeding the [`Cluster`] index: one task per kind, objects converted at the edge.
//!
//! A [`Pump`] turns one kind's `watcher::Event`s into index [`Event`]s, after kubert/linkerd's pump: `Init` …
//! `InitDone` becomes an atomic reset, so objects deleted while a watch was down disappear on reconnect. Objects
//! that fail to convert are logged once (per object and error) and skipped; the watch keeps going.

use std::{
    collections::{BTreeSet, HashMap},
    fmt::Debug,
    sync::Arc,
};

use futures::{Stream, StreamExt};
use k8s_openapi::api::{
    apps::v1 as apps,
    core::v1::{self as core},
    policy::v1 as policy,
    storage::v1 as storage,
};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{Cluster, Event, Kind, Object, convert, intern::PodInterner};
use crate::api::{NodeClaim, NodeTemplate, Provisioner, labels::PROPORTIONAL_TARGET};

/// What to watch beyond the fixed kinds.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// ConfigMaps (`namespace/name`) to index even without the `ballast.dev/proportional-target` annotation,
    /// e.g. the one named by `--proportional-configmap`.
    pub config_maps: BTreeSet<String>,
}

/// Converts a watched object; `Ok(None)` means "not wanted in the index" (filtered out before caching).
pub type Converter<K> = Box<dyn FnMut(K) -> Result<Option<Object>, convert::Error> + Send>;

/// Feeds one kind's watcher events into the index.
pub struct Pump<K> {
    cluster: Cluster,
    kind: Kind,
    convert: Converter<K>,
    /// Objects whose conversion failed, with the error last logged for them.
    failures: HashMap<String, String>,
    /// Failures from before the current relist, so a reconnect does not log them again.
    previous_failures: HashMap<String, String>,
}

impl<K: Resource> Pump<K> {
    pub fn new(cluster: Cluster, kind: Kind, convert: Converter<K>) -> Self {
        Self { cluster, kind, convert, failures: HashMap::new(), previous_failures: HashMap::new() }
    }

    /// Drives the pump until the stream ends (watchers with backoff never end). Watch errors are logged; the
    /// backoff retries.
    pub async fn run(mut self, events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>) {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => self.handle(event),
                Err(error) => {
                    tracing::warn!(kind = ?self.kind, %error, "watch failed; retrying with backoff")
                }
            }
        }
    }

    pub fn handle(&mut self, event: watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) => {
                let key = key_of(&object);
                match self.convert(&key, object) {
                    Some(object) => self.cluster.handle(Event::Apply(object)),
                    // Filtered out or unreadable: whatever the index held for it is no longer true.
                    None => self.cluster.handle(Event::Delete(self.kind, key)),
                }
            }
            watcher::Event::Delete(object) => {
                let key = key_of(&object);
                self.failures.remove(&key);
                self.cluster.handle(Event::Delete(self.kind, key));
            }
            watcher::Event::Init => {
                self.previous_failures = std::mem::take(&mut self.failures);
                self.cluster.handle(Event::Init(self.kind));
            }
            watcher::Event::InitApply(object) => {
                let key = key_of(&object);
                if let Some(object) = self.convert(&key, object) {
                    self.cluster.handle(Event::InitApply(object));
                }
            }
            watcher::Event::InitDone => {
                self.previous_failures.clear();
                self.cluster.handle(Event::InitDone(self.kind));
            }
        }
    }

    fn convert(&mut self, key: &str, object: K) -> Option<Object> {
        match (self.convert)(object) {
            Ok(converted) => {
                self.failures.remove(key);
                converted
            }
            Err(error) => {
                let message = error.to_string();
                let seen = self.failures.get(key).or(self.previous_failures.get(key));
                if seen != Some(&message) {
                    tracing::warn!(kind = ?self.kind, object = %key, %error, "skipping object that failed to convert");
                } else {
                    tracing::debug!(kind = ?self.kind, object = %key, "still failing to convert; skipped");
                }
                self.failures.insert(key.to_string(), message);
                None
            }
        }
    }

    /// Keys of objects currently skipped because they failed to convert.
    pub fn failing(&self) -> impl Iterator<Item = &str> {
        self.failures.keys().map(String::as_str)
    }
}

fn key_of<K: Resource>(object: &K) -> String {
    match object.namespace() {
        Some(ns) => format!("{ns}/{}", object.name_any()),
        None => object.name_any(),
    }
}

// === Converters ===

fn domain<K: 'static, V: 'static>(
    convert: fn(&K) -> convert::Result<V>,
    wrap: fn(Arc<V>) -> Object,
) -> Converter<K> {
    Box::new(move |object: K| convert(&object).map(|v| Some(wrap(Arc::new(v)))))
}

/// ballast's own CRDs are cached whole, minus the metadata nothing reads.
fn custom<K: Resource + 'static>(wrap: fn(Arc<K>) -> Object) -> Converter<K> {
    Box::new(move |mut object: K| {
        convert::strip_metadata(object.meta_mut());
        Ok(Some(wrap(Arc::new(object))))
    })
}

/// Keeps only ConfigMaps annotated as proportional-scaling parameters or named in `names`.
pub fn config_map_converter(names: BTreeSet<String>) -> Converter<core::ConfigMap> {
    Box::new(move |cm: core::ConfigMap| {
        let annotated = cm.annotations().contains_key(PROPORTIONAL_TARGET);
        if !annotated && !names.contains(&key_of(&cm)) {
            return Ok(None);
        }
        convert::config_map(&cm).map(|v| Some(Object::ConfigMap(Arc::new(v))))
    })
}

pub fn node_converter() -> Converter<core::Node> {
    domain(convert::node, Object::Node)
}

/// Pods, with what replicas hold alike interned ([`PodInterner`]).
pub fn pod_converter() -> Converter<core::Pod> {
    let mut interner = PodInterner::default();
    Box::new(move |pod: core::Pod| Ok(Some(Object::Pod(Arc::new(interner.pod(convert::pod(&pod)?))))))
}

pub fn daemonset_converter() -> Converter<apps::DaemonSet> {
    domain(convert::daemonset, Object::DaemonSet)
}

pub fn pdb_converter() -> Converter<policy::PodDisruptionBudget> {
    domain(convert::pdb, Object::PodDisruptionBudget)
}

pub fn pvc_converter() -> Converter<core::PersistentVolumeClaim> {
    domain(convert::pvc, Object::PersistentVolumeClaim)
}

pub fn pv_converter() -> Converter<core::PersistentVolume> {
    domain(convert::pv, Object::PersistentVolume)
}

pub fn storage_class_converter() -> Converter<storage::StorageClass> {
    domain(convert::storage_class, Object::StorageClass)
}

pub fn provisioner_converter() -> Converter<Provisioner> {
    custom(Object::Provisioner)
}

pub fn node_template_converter() -> Converter<NodeTemplate> {
    custom(Object::NodeTemplate)
}

pub fn node_claim_converter() -> Converter<NodeClaim> {
    custom(Object::NodeClaim)
}

// === Spawning ===

/// Registers every kind with `cluster` (so it is not [`Cluster::synced`] until each has listed once) and spawns
/// one watch task per kind. The tasks run until aborted; readiness is `cluster.synced()`.
pub fn spawn(client: kube::Client, cluster: &Cluster, options: &WatchOptions) -> Vec<(Kind, JoinHandle<()>)> {
    let all = watcher::Config::default();
    // Terminal pods hold no resources and block nothing; the API server sends a delete when a pod turns terminal.
    let live_pods = watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let c = &client;
    vec![
        spawn_one(cluster, Kind::Node, Api::all(c.clone()), all.clone(), node_converter()),
        spawn_one(cluster, Kind::Pod, Api::all(c.clone()), live_pods, pod_converter()),
        spawn_one(
            cluster,
            Kind::DaemonSet,
            Api::<apps::DaemonSet>::all(c.clone()),
            all.clone(),
            daemonset_converter(),
        ),
        spawn_one(
            cluster,
            Kind::PodDisruptionBudget,
            Api::<policy::PodDisruptionBudget>::all(c.clone()),
            all.clone(),
            pdb_converter(),
        ),
        spawn_one(
            cluster,
            Kind::PersistentVolumeClaim,
            Api::<core::PersistentVolumeClaim>::all(c.clone()),
            all.clone(),
            pvc_converter(),
        ),
        spawn_one(
            cluster,
            Kind::PersistentVolume,
            Api::<core::PersistentVolume>::all(c.clone()),
            all.clone(),
            pv_converter(),
        ),
        spawn_one(
            cluster,
            Kind::StorageClass,
            Api::<storage::StorageClass>::all(c.clone()),
            all.clone(),
            storage_class_converter(),
        ),
        spawn_one(
            cluster,
            Kind::Provisioner,
            Api::<Provisioner>::all(c.clone()),
            all.clone(),
            provisioner_converter(),
        ),
        spawn_one(
            cluster,
            Kind::NodeTemplate,
            Api::<NodeTemplate>::all(c.clone()),
            all.clone(),
            node_template_converter(),
        ),
        spawn_one(
            cluster,
            Kind::NodeClaim,
            Api::<NodeClaim>::all(c.clone()),
            all.clone(),
            node_claim_converter(),
        ),
        spawn_one(
            cluster,
            Kind::ConfigMap,
            Api::all(c.clone()),
            all,
            config_map_converter(options.config_maps.clone()),
        ),
    ]
}

fn spawn_one<K>(
    cluster: &Cluster,
    kind: Kind,
    api: Api<K>,
    config: watcher::Config,
    convert: Converter<K>,
) -> (Kind, JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    cluster.register(kind);
    let pump = Pump::new(cluster.clone(), kind, convert);
    let events = watcher(api, config).default_backoff();
    let task = tokio::spawn(pump.run(events).instrument(tracing::info_span!("watch", ?kind)));
    (kind, task)
}

#[cfg(test)]
mod tests;
