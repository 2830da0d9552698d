//! A snapshot directory of `kubectl get -o yaml` / `-o json` dumps → the index's [`Snapshot`], through the
//! converters the watches use, so `plan` sees exactly what `run` would see.
//!
//! Files may hold `kind: List` dumps, single objects or multi-document YAML, under any name ending in `.yaml`,
//! `.yml` or `.json` (subdirectories included, in name order). An object that does not load or convert is
//! skipped and reported with its file, name and reason; kinds the loops do not read are counted and skipped.
//! Like the pod watch's field selector, succeeded and failed pods are left out.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use k8s_openapi::api::core::v1 as core;
use kube::ResourceExt;
use serde::Serialize;

use super::Error;
use crate::{
    actuator::ScaleTarget,
    manifest::{self, Manifest, ManifestError},
    proportional::{ScaleRead, TargetKind},
    state::{
        Object, Snapshot,
        convert::Error as ConvertError,
        watch::{self, Converter},
    },
};

const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// An object left out of the snapshot, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SkippedObject {
    pub file: String,
    /// `Kind namespace/name`, or where in the file when the object has no readable identity.
    pub object: String,
    pub reason: String,
}

/// What a snapshot directory holds, ready to plan from.
#[derive(Debug, Default)]
pub struct Loaded {
    pub snapshot: Snapshot,
    /// `spec.replicas` of every Deployment, ReplicaSet and StatefulSet: what their `/scale` would say.
    pub replicas: BTreeMap<ScaleTarget, ScaleRead>,
    pub skipped: Vec<SkippedObject>,
    /// Objects of kinds no loop reads, by kind.
    pub ignored_kinds: BTreeMap<String, usize>,
    pub files: usize,
}

/// Reads every dump under `dir`. `config_maps` (`namespace/name`) are indexed without the proportional
/// annotation, as the ConfigMap watch does for `--proportional-configmap`.
pub fn load_dir(dir: &Path, config_maps: &BTreeSet<String>) -> Result<Loaded, Error> {
    let unusable = |reason: String| Error::Snapshot { path: dir.to_path_buf(), reason };
    if !dir.is_dir() {
        return Err(unusable("does not exist or is not a directory".into()));
    }
    let mut files = Vec::new();
    collect_files(dir, &mut files).map_err(|e| unusable(e.to_string()))?;
    if files.is_empty() {
        return Err(unusable("holds no .yaml, .yml or .json files".into()));
    }
    let mut loader = Loader::new(config_maps.clone());
    for file in &files {
        let name = file.display().to_string();
        match std::fs::read_to_string(file) {
            Ok(text) => loader.add(&name, manifest::load_dump_str(&name, &text)),
            Err(error) => loader.skip(&name, "(file)", format!("failed to read: {error}")),
        }
    }
    Ok(loader.finish(files.len()))
}

/// Dump files under `dir`, depth first in name order.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e)) {
            out.push(path);
        }
    }
    Ok(())
}

/// The watches' converters, one per kind.
struct Converters {
    node: Converter<core::Node>,
    pod: Converter<core::Pod>,
    daemonset: Converter<k8s_openapi::api::apps::v1::DaemonSet>,
    pdb: Converter<k8s_openapi::api::policy::v1::PodDisruptionBudget>,
    pvc: Converter<core::PersistentVolumeClaim>,
    pv: Converter<core::PersistentVolume>,
    storage_class: Converter<k8s_openapi::api::storage::v1::StorageClass>,
    provisioner: Converter<crate::api::Provisioner>,
    node_template: Converter<crate::api::NodeTemplate>,
    node_claim: Converter<crate::api::NodeClaim>,
    config_map: Converter<core::ConfigMap>,
}

/// Accumulates objects from dump files, in order (a later object replaces an earlier one with its key).
pub(super) struct Loader {
    converters: Converters,
    objects: Vec<Object>,
    loaded: Loaded,
}

impl Loader {
    pub(super) fn new(config_maps: BTreeSet<String>) -> Self {
        let converters = Converters {
            node: watch::node_converter(),
            pod: watch::pod_converter(),
            daemonset: watch::daemonset_converter(),
            pdb: watch::pdb_converter(),
            pvc: watch::pvc_converter(),
            pv: watch::pv_converter(),
            storage_class: watch::storage_class_converter(),
            provisioner: watch::provisioner_converter(),
            node_template: watch::node_template_converter(),
            node_claim: watch::node_claim_converter(),
            config_map: watch::config_map_converter(config_maps),
        };
        Self { converters, objects: Vec::new(), loaded: Loaded::default() }
    }

    fn skip(&mut self, file: &str, object: &str, reason: String) {
        self.loaded.skipped.push(SkippedObject { file: file.into(), object: object.into(), reason });
    }

    /// Adds one file's objects (as [`manifest::load_dump_str`] returns them).
    pub(super) fn add(&mut self, file: &str, manifests: Vec<Result<Manifest, ManifestError>>) {
        for result in manifests {
            match result {
                Ok(manifest) => self.add_manifest(file, manifest),
                Err(ManifestError::Invalid { file, document, object, field, reason }) => {
                    let object = object.unwrap_or_else(|| format!("document {document}"));
                    self.skip(&file, &object, format!("{field}: {reason}"));
                }
                Err(ManifestError::Syntax { file, document, reason }) => {
                    self.skip(&file, &format!("document {document}"), format!("not YAML or JSON: {reason}"))
                }
                Err(ManifestError::Read { path, source }) => {
                    self.skip(&path.display().to_string(), "(file)", format!("failed to read: {source}"))
                }
            }
        }
    }

    fn add_manifest(&mut self, file: &str, manifest: Manifest) {
        let c = &mut self.converters;
        let converted: Result<Option<Object>, ConvertError> = match manifest {
            Manifest::Node(o) => (c.node)(o),
            Manifest::Pod(o) if is_terminal(&o) => Ok(None),
            Manifest::Pod(o) => (c.pod)(o),
            Manifest::DaemonSet(o) => (c.daemonset)(o),
            Manifest::PodDisruptionBudget(o) => (c.pdb)(o),
            Manifest::PersistentVolumeClaim(o) => (c.pvc)(o),
            Manifest::PersistentVolume(o) => (c.pv)(o),
            Manifest::StorageClass(o) => (c.storage_class)(o),
            Manifest::Provisioner(o) => (c.provisioner)(o),
            Manifest::NodeTemplate(o) => (c.node_template)(o),
            Manifest::NodeClaim(o) => (c.node_claim)(o),
            Manifest::ConfigMap(o) => (c.config_map)(o),
            Manifest::Deployment(o) => {
                self.workload(TargetKind::Deployment, &o, o.spec.replicas);
                Ok(None)
            }
            Manifest::ReplicaSet(o) => {
                self.workload(TargetKind::ReplicaSet, &o, o.spec.replicas);
                Ok(None)
            }
            Manifest::StatefulSet(o) => {
                self.workload(TargetKind::StatefulSet, &o, o.spec.replicas);
                Ok(None)
            }
            Manifest::Other { kind, .. } => {
                *self.loaded.ignored_kinds.entry(kind).or_default() += 1;
                Ok(None)
            }
        };
        match converted {
            Ok(Some(object)) => self.objects.push(object),
            Ok(None) => {}
            Err(error) => {
                let (object, reason) = match &error {
                    ConvertError::Invalid { object, field, reason } => {
                        (object.clone(), format!("{field}: {reason}"))
                    }
                    ConvertError::Quantity { object, source } => (object.clone(), source.to_string()),
                };
                self.skip(file, &object, reason);
            }
        }
    }

    /// A scalable workload: its replicas, as its `/scale` reports them (the API server defaults them to 1).
    fn workload<K: kube::Resource>(&mut self, kind: TargetKind, object: &K, replicas: Option<i32>) {
        let target = ScaleTarget {
            kind: kind.as_str().to_string(),
            namespace: object.namespace().unwrap_or_else(|| "default".into()),
            name: object.name_any(),
        };
        self.loaded.replicas.insert(target, ScaleRead::Replicas(replicas.unwrap_or(1)));
    }

    pub(super) fn finish(mut self, files: usize) -> Loaded {
        self.loaded.snapshot = Snapshot::from_objects(self.objects);
        self.loaded.files = files;
        self.loaded.skipped.sort();
        self.loaded
    }
}

fn is_terminal(pod: &core::Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}
