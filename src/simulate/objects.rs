//! Scenario manifests: loading them (inline or from files) and applying them to the simulated cluster.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::{
    Error,
    cluster::SimApi,
    scenario::{LoadedScenario, Manifests},
};
use crate::{
    manifest::{self, Manifest},
    state::{Kind, Object, convert},
};

/// Loads a `files` + `manifests` block. `field` is where it sits in the scenario (`objects`, `timeline[3].apply`);
/// inline manifests are named `<scenario file> <field>.manifests` in errors.
pub fn load(loaded: &LoadedScenario, block: &Manifests, field: &str) -> Result<Vec<Manifest>, Error> {
    let mut out = Vec::new();
    for (i, file) in block.files.iter().enumerate() {
        let path = loaded.resolve(file);
        if !path.is_file() {
            return Err(loaded
                .error(
                    format!("{field}.files[{i}]"),
                    format!("{} does not exist or is not a file", path.display()),
                )
                .into());
        }
        out.extend(manifest::load_file(&path)?);
    }
    if let Some(text) = &block.manifests {
        out.extend(manifest::load_str(&format!("{} {field}.manifests", loaded.source), text)?);
    }
    for m in &out {
        m.validate().map_err(|e| Error::Invalid {
            object: format!("{} {}", m.kind(), m.name().unwrap_or("<unnamed>")),
            reason: e.to_string(),
        })?;
    }
    Ok(out)
}

/// The index kind and key for `kind` (as written in a manifest) and a name.
pub fn kind_key(kind: &str, namespace: &str, name: &str) -> Option<(Kind, String)> {
    let namespaced = |k| Some((k, format!("{namespace}/{name}")));
    match kind {
        "Pod" => namespaced(Kind::Pod),
        "DaemonSet" => namespaced(Kind::DaemonSet),
        "PodDisruptionBudget" => namespaced(Kind::PodDisruptionBudget),
        "PersistentVolumeClaim" => namespaced(Kind::PersistentVolumeClaim),
        "ConfigMap" => namespaced(Kind::ConfigMap),
        "PersistentVolume" => Some((Kind::PersistentVolume, name.to_string())),
        "StorageClass" => Some((Kind::StorageClass, name.to_string())),
        "Provisioner" => Some((Kind::Provisioner, name.to_string())),
        "NodeTemplate" | "AWSNodeTemplate" => Some((Kind::NodeTemplate, name.to_string())),
        "Node" => Some((Kind::Node, name.to_string())),
        _ => None,
    }
}

/// Kinds a timeline `delete` step accepts.
pub const DELETABLE_KINDS: &[&str] = &[
    "Deployment",
    "Pod",
    "DaemonSet",
    "PodDisruptionBudget",
    "PersistentVolumeClaim",
    "ConfigMap",
    "PersistentVolume",
    "StorageClass",
    "Provisioner",
    "NodeTemplate",
    "Node",
];

/// Applies manifests in order; returns a one-line description per object, marking kinds the simulator does
/// not model as ignored.
pub fn apply(api: &SimApi, manifests: &[Manifest], now: Timestamp) -> Result<Vec<String>, Error> {
    let mut described = Vec::new();
    for m in manifests {
        let ns_name = |meta: &kube::api::ObjectMeta| {
            format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or("default"),
                meta.name.as_deref().unwrap_or("")
            )
        };
        let (object, label) = match m {
            Manifest::Provisioner(p) => {
                (Object::Provisioner(Arc::new(p.clone())), format!("Provisioner {}", p.name_any()))
            }
            Manifest::NodeTemplate(t) => {
                (Object::NodeTemplate(Arc::new(t.clone())), format!("NodeTemplate {}", t.name_any()))
            }
            Manifest::Deployment(d) => {
                api.apply_deployment(d)?;
                described.push(format!("Deployment {}", ns_name(&d.metadata)));
                continue;
            }
            Manifest::DaemonSet(d) => (
                Object::DaemonSet(Arc::new(convert::daemonset(&admitted(d, now, true))?)),
                format!("DaemonSet {}", ns_name(&d.metadata)),
            ),
            Manifest::Pod(p) => (
                Object::Pod(Arc::new(convert::pod(&admitted(p, now, true))?)),
                format!("Pod {}", ns_name(&p.metadata)),
            ),
            Manifest::PodDisruptionBudget(p) => (
                Object::PodDisruptionBudget(Arc::new(convert::pdb(&admitted(p, now, true))?)),
                format!("PodDisruptionBudget {}", ns_name(&p.metadata)),
            ),
            Manifest::PersistentVolumeClaim(p) => (
                Object::PersistentVolumeClaim(Arc::new(convert::pvc(&admitted(p, now, true))?)),
                format!("PersistentVolumeClaim {}", ns_name(&p.metadata)),
            ),
            Manifest::ConfigMap(c) => (
                Object::ConfigMap(Arc::new(convert::config_map(&admitted(c, now, true))?)),
                format!("ConfigMap {}", ns_name(&c.metadata)),
            ),
            Manifest::PersistentVolume(p) => (
                Object::PersistentVolume(Arc::new(convert::pv(&admitted(p, now, false))?)),
                format!("PersistentVolume {}", p.name_any()),
            ),
            Manifest::StorageClass(s) => (
                Object::StorageClass(Arc::new(convert::storage_class(&admitted(s, now, false))?)),
                format!("StorageClass {}", s.name_any()),
            ),
            Manifest::Node(n) => (
                Object::Node(Arc::new(convert::node(&admitted(n, now, false))?)),
                format!("Node {}", n.name_any()),
            ),
            other => {
                described.push(format!(
                    "{} {} (ignored: not simulated)",
                    other.kind(),
                    other.name().unwrap_or("<unnamed>")
                ));
                continue;
            }
        };
        api.apply_object(object);
        described.push(label);
    }
    Ok(described)
}

/// What the API server fills in on create: the creation time, and `default` for a namespaced object
/// without a namespace (as `kubectl apply` does).
fn admitted<T: kube::Resource + Clone>(object: &T, now: Timestamp, namespaced: bool) -> T {
    let mut object = object.clone();
    let meta = object.meta_mut();
    if namespaced && meta.namespace.is_none() {
        meta.namespace = Some("default".to_string());
    }
    meta.creation_timestamp.get_or_insert(Time(now));
    object
}
