//! Loading the manifests users already apply: multi-document YAML, JSON (`kubectl get -o json`), and
//! `kind: List` dumps (`kubectl get -o yaml`), into typed objects.
//!
//! Karpenter's `karpenter.sh/v1alpha5` Provisioner and `karpenter.k8s.aws/v1alpha1` AWSNodeTemplate load as
//! ballast's Provisioner and NodeTemplate: their fields are the same, only apiVersion and kind differ.
//! Kinds ballast does not model load as [`Manifest::Other`], so a whole cluster dump can be read.

use std::path::{Path, PathBuf};

use k8s_openapi::{
    Resource,
    api::{
        apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet},
        core::v1::{ConfigMap, Node, PersistentVolume, PersistentVolumeClaim, Pod},
        policy::v1::PodDisruptionBudget,
        storage::v1::StorageClass,
    },
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{self, NodeClaim, NodeTemplate, Provisioner, ValidationError};

const KARPENTER_PROVISIONER_API_VERSION: &str = "karpenter.sh/v1alpha5";
const KARPENTER_NODE_TEMPLATE_API_VERSION: &str = "karpenter.k8s.aws/v1alpha1";
const KARPENTER_NODE_TEMPLATE_KIND: &str = "AWSNodeTemplate";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("failed to read manifest file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("failed to parse {file} document {document}: {reason}")]
    Syntax { file: String, document: usize, reason: String },
    #[error("failed to load {file} document {document}{}: {field}: {reason}", object_suffix(object))]
    Invalid { file: String, document: usize, object: Option<String>, field: String, reason: String },
}

fn object_suffix(object: &Option<String>) -> String {
    object.as_ref().map(|o| format!(" ({o})")).unwrap_or_default()
}

/// One object from a manifest file.
// Manifests are read once at startup and moved on; boxing every variant would only add noise for users.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    Provisioner(Provisioner),
    NodeTemplate(NodeTemplate),
    NodeClaim(NodeClaim),
    Deployment(Deployment),
    ReplicaSet(ReplicaSet),
    StatefulSet(StatefulSet),
    DaemonSet(DaemonSet),
    Pod(Pod),
    PodDisruptionBudget(PodDisruptionBudget),
    PersistentVolumeClaim(PersistentVolumeClaim),
    PersistentVolume(PersistentVolume),
    StorageClass(StorageClass),
    ConfigMap(ConfigMap),
    Node(Node),
    /// Any other kind, kept by identity only.
    Other {
        api_version: String,
        kind: String,
        name: Option<String>,
    },
}

impl Manifest {
    pub fn kind(&self) -> &str {
        match self {
            Self::Provisioner(_) => "Provisioner",
            Self::NodeTemplate(_) => "NodeTemplate",
            Self::NodeClaim(_) => "NodeClaim",
            Self::Deployment(_) => Deployment::KIND,
            Self::ReplicaSet(_) => ReplicaSet::KIND,
            Self::StatefulSet(_) => StatefulSet::KIND,
            Self::DaemonSet(_) => DaemonSet::KIND,
            Self::Pod(_) => Pod::KIND,
            Self::PodDisruptionBudget(_) => PodDisruptionBudget::KIND,
            Self::PersistentVolumeClaim(_) => PersistentVolumeClaim::KIND,
            Self::PersistentVolume(_) => PersistentVolume::KIND,
            Self::StorageClass(_) => StorageClass::KIND,
            Self::ConfigMap(_) => ConfigMap::KIND,
            Self::Node(_) => Node::KIND,
            Self::Other { kind, .. } => kind,
        }
    }

    pub fn name(&self) -> Option<&str> {
        let metadata = match self {
            Self::Provisioner(o) => &o.metadata,
            Self::NodeTemplate(o) => &o.metadata,
            Self::NodeClaim(o) => &o.metadata,
            Self::Deployment(o) => &o.metadata,
            Self::ReplicaSet(o) => &o.metadata,
            Self::StatefulSet(o) => &o.metadata,
            Self::DaemonSet(o) => &o.metadata,
            Self::Pod(o) => &o.metadata,
            Self::PodDisruptionBudget(o) => &o.metadata,
            Self::PersistentVolumeClaim(o) => &o.metadata,
            Self::PersistentVolume(o) => &o.metadata,
            Self::StorageClass(o) => &o.metadata,
            Self::ConfigMap(o) => &o.metadata,
            Self::Node(o) => &o.metadata,
            Self::Other { name, .. } => return name.as_deref(),
        };
        metadata.name.as_deref()
    }

    /// Runs ballast's CRD validation (OpenAPI, CEL and extra checks); other kinds pass.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Self::Provisioner(p) => api::validate_provisioner(p),
            Self::NodeTemplate(t) => api::validate_node_template(t),
            Self::NodeClaim(c) => api::validate_node_claim(c),
            _ => Ok(()),
        }
    }
}

/// Loads every object in a YAML or JSON file.
pub fn load_file(path: &Path) -> Result<Vec<Manifest>, ManifestError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ManifestError::Read { path: path.to_path_buf(), source })?;
    load_str(&path.display().to_string(), &text)
}

/// Loads every object in `text`; `file` names the source in errors. Documents are numbered from 1.
pub fn load_str(file: &str, text: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut manifests = Vec::new();
    for (number, document) in documents(file, text)? {
        let mut at = Location { file, document: number, prefix: String::new(), strict: true };
        let mut loaded = Vec::new();
        from_value(&mut at, document, &mut loaded);
        for manifest in loaded {
            manifests.push(manifest?);
        }
    }
    Ok(manifests)
}

/// Loads a dump of live objects (`kubectl get -o yaml`) one object at a time: an object that does not load is
/// an `Err` naming it, and the objects after it still load. Fields the typed objects do not know are ignored
/// (a newer API server adds some), not errors as in [`load_str`]. A file that is not YAML or JSON at all is
/// one `Err`.
pub fn load_dump_str(file: &str, text: &str) -> Vec<Result<Manifest, ManifestError>> {
    let documents = match documents(file, text) {
        Ok(documents) => documents,
        Err(error) => return vec![Err(error)],
    };
    let mut out = Vec::new();
    for (number, document) in documents {
        let mut at = Location { file, document: number, prefix: String::new(), strict: false };
        from_value(&mut at, document, &mut out);
    }
    out
}

/// Splits `text` into numbered documents: JSON (one or more concatenated values) when it starts with `{`, else
/// YAML. Empty YAML documents (a stray `---`) are skipped but still counted, so numbers match the file.
fn documents(file: &str, text: &str) -> Result<Vec<(usize, Value)>, ManifestError> {
    let syntax =
        |document: usize, reason: String| ManifestError::Syntax { file: file.to_string(), document, reason };
    if text.trim_start().starts_with('{') {
        return serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .enumerate()
            .map(|(i, value)| value.map(|v| (i + 1, v)).map_err(|e| syntax(i + 1, e.to_string())))
            .collect();
    }
    let mut values = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value: Value =
            serde::Deserialize::deserialize(document).map_err(|e| syntax(i + 1, e.to_string()))?;
        if !value.is_null() {
            values.push((i + 1, value));
        }
    }
    Ok(values)
}

/// Where a value came from, for error messages; `prefix` is the path inside a `List` (`items[3]`).
struct Location<'a> {
    file: &'a str,
    document: usize,
    prefix: String,
    /// Unknown fields are errors (manifests users write), or ignored (dumps of live objects).
    strict: bool,
}

impl Location<'_> {
    fn error(&self, object: Option<String>, field: &str, reason: impl Into<String>) -> ManifestError {
        let field = match (self.prefix.is_empty(), field.is_empty()) {
            (true, _) => field.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}.{field}", self.prefix),
        };
        let field = if field.is_empty() { "(document)".to_string() } else { field };
        ManifestError::Invalid {
            file: self.file.to_string(),
            document: self.document,
            object,
            field,
            reason: reason.into(),
        }
    }
}

fn string_field<'v>(value: &'v Value, field: &str) -> Option<&'v str> {
    value.get(field).and_then(Value::as_str)
}

/// `spec.containers[0].name`, from serde_ignored's path (which marks `Option`s and newtypes with `?`).
fn format_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", format_path(parent)),
        Path::Map { parent, key } => match format_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            format_path(parent)
        }
    }
}

/// Pushes the object in `value` (or each item of a `List`) to `out`, an `Err` for each that does not load.
fn from_value(at: &mut Location<'_>, value: Value, out: &mut Vec<Result<Manifest, ManifestError>>) {
    match one_value(at, value, out) {
        Ok(Some(manifest)) => out.push(Ok(manifest)),
        Ok(None) => {}
        Err(error) => out.push(Err(error)),
    }
}

/// The object in `value`; `None` for a `List`, whose items were pushed to `out`.
fn one_value(
    at: &mut Location<'_>,
    mut value: Value,
    out: &mut Vec<Result<Manifest, ManifestError>>,
) -> Result<Option<Manifest>, ManifestError> {
    if !value.is_object() {
        return Err(at.error(None, "", "expected an object with apiVersion and kind"));
    }
    let name = value.get("metadata").and_then(|m| string_field(m, "name")).map(str::to_string);
    let kind = string_field(&value, "kind")
        .ok_or_else(|| {
            at.error(name.as_ref().map(|n| format!("name {n:?}")), "kind", "missing or not a string")
        })?
        .to_string();
    let object = Some(match &name {
        Some(name) => format!("{kind}/{name}"),
        None => kind.clone(),
    });
    let api_version = string_field(&value, "apiVersion")
        .ok_or_else(|| at.error(object.clone(), "apiVersion", "missing or not a string"))?
        .to_string();

    if kind == "List" || (kind.ends_with("List") && value.get("items").is_some_and(Value::is_array)) {
        let Some(Value::Array(items)) = value.get_mut("items").map(Value::take) else {
            return Err(at.error(object, "items", "a List needs an items array"));
        };
        let outer = std::mem::take(&mut at.prefix);
        for (i, item) in items.into_iter().enumerate() {
            at.prefix = if outer.is_empty() { format!("items[{i}]") } else { format!("{outer}.items[{i}]") };
            from_value(at, item, out);
        }
        at.prefix = outer;
        return Ok(None);
    }

    let (api_version, kind) = match (api_version.as_str(), kind.as_str()) {
        (KARPENTER_PROVISIONER_API_VERSION, "Provisioner") => (api::API_VERSION.to_string(), kind),
        (KARPENTER_NODE_TEMPLATE_API_VERSION, KARPENTER_NODE_TEMPLATE_KIND) => {
            (api::API_VERSION.to_string(), "NodeTemplate".to_string())
        }
        _ => (api_version, kind),
    };
    value["apiVersion"] = Value::String(api_version.clone());
    value["kind"] = Value::String(kind.clone());

    fn typed<T: DeserializeOwned>(
        at: &Location<'_>,
        object: &Option<String>,
        value: Value,
        wrap: fn(T) -> Manifest,
    ) -> Result<Option<Manifest>, ManifestError> {
        let mut unknown = Vec::new();
        // kube's custom resource types take apiVersion and kind from the type, not the document (checked above).
        let mut record_unknown = |path: serde_ignored::Path<'_>| match format_path(&path) {
            path if path == "apiVersion" || path == "kind" => {}
            path => unknown.push(path),
        };
        let typed: T =
            serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut record_unknown))
                .map_err(|error| {
                    let path = error.path().to_string();
                    let path = if path == "." { String::new() } else { path };
                    at.error(object.clone(), &path, error.into_inner().to_string())
                })?;
        // Like `kubectl apply`'s strict field validation: a misspelt field is an error, not a silent default.
        // Sorted, so the report does not depend on serde_json's map order.
        unknown.sort();
        if let Some(first) = unknown.first().filter(|_| at.strict) {
            let reason = match unknown.len() {
                1 => "unknown field".to_string(),
                n => format!("unknown field (and {} more: {})", n - 1, unknown[1..].join(", ")),
            };
            return Err(at.error(object.clone(), first, reason));
        }
        Ok(Some(wrap(typed)))
    }

    match (api_version.as_str(), kind.as_str()) {
        (api::API_VERSION, "Provisioner") => typed(at, &object, value, Manifest::Provisioner),
        (api::API_VERSION, "NodeTemplate") => typed(at, &object, value, Manifest::NodeTemplate),
        (api::API_VERSION, "NodeClaim") => typed(at, &object, value, Manifest::NodeClaim),
        (Deployment::API_VERSION, Deployment::KIND) => typed(at, &object, value, Manifest::Deployment),
        (ReplicaSet::API_VERSION, ReplicaSet::KIND) => typed(at, &object, value, Manifest::ReplicaSet),
        (StatefulSet::API_VERSION, StatefulSet::KIND) => typed(at, &object, value, Manifest::StatefulSet),
        (DaemonSet::API_VERSION, DaemonSet::KIND) => typed(at, &object, value, Manifest::DaemonSet),
        (Pod::API_VERSION, Pod::KIND) => typed(at, &object, value, Manifest::Pod),
        (PodDisruptionBudget::API_VERSION, PodDisruptionBudget::KIND) => {
            typed(at, &object, value, Manifest::PodDisruptionBudget)
        }
        (PersistentVolumeClaim::API_VERSION, PersistentVolumeClaim::KIND) => {
            typed(at, &object, value, Manifest::PersistentVolumeClaim)
        }
        (PersistentVolume::API_VERSION, PersistentVolume::KIND) => {
            typed(at, &object, value, Manifest::PersistentVolume)
        }
        (StorageClass::API_VERSION, StorageClass::KIND) => typed(at, &object, value, Manifest::StorageClass),
        (ConfigMap::API_VERSION, ConfigMap::KIND) => typed(at, &object, value, Manifest::ConfigMap),
        (Node::API_VERSION, Node::KIND) => typed(at, &object, value, Manifest::Node),
        _ if api_version.split('/').next() == Some(api::labels::GROUP) => Err(at.error(
            object,
            "apiVersion",
            format!("unsupported {api_version} {kind}: ballast serves Provisioner, NodeTemplate and NodeClaim as {}", api::API_VERSION),
        )),
        _ => Ok(Some(Manifest::Other { api_version, kind, name })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Vec<Manifest> {
        load_str("test.yaml", text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn load_err(text: &str) -> String {
        load_str("test.yaml", text).expect_err("load fails").to_string()
    }

    const DEPLOYMENT_AND_PDB: &str = r#"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx
          resources:
            requests: {cpu: 1, memory: 512Mi}
---
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app: web}
"#;

    #[test]
    fn multi_document_yaml_loads_typed_objects_and_skips_empty_documents() {
        let manifests = load(DEPLOYMENT_AND_PDB);
        assert_eq!(manifests.len(), 2);
        let Manifest::Deployment(deployment) = &manifests[0] else { panic!("{:?}", manifests[0]) };
        assert_eq!(deployment.spec.replicas, Some(3));
        let requests =
            deployment.spec.template.spec.as_ref().unwrap().containers[0].resources.as_ref().unwrap();
        let requests = requests.requests.as_ref().unwrap();
        assert_eq!(requests["cpu"].0, "1");
        assert_eq!(requests["memory"].0, "512Mi");
        assert_eq!((manifests[1].kind(), manifests[1].name()), ("PodDisruptionBudget", Some("web")));
    }

    #[test]
    fn every_modelled_kind_loads_into_its_variant() {
        let text = r#"
apiVersion: v1
kind: List
items:
  - {apiVersion: apps/v1, kind: ReplicaSet, metadata: {name: rs}, spec: {selector: {}}}
  - {apiVersion: apps/v1, kind: StatefulSet, metadata: {name: ss}, spec: {selector: {}, template: {}}}
  - {apiVersion: apps/v1, kind: DaemonSet, metadata: {name: ds}, spec: {selector: {}, template: {}}}
  - {apiVersion: v1, kind: Pod, metadata: {name: p}}
  - {apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: pvc}}
  - {apiVersion: v1, kind: PersistentVolume, metadata: {name: pv}}
  - {apiVersion: storage.k8s.io/v1, kind: StorageClass, metadata: {name: gp3}, provisioner: ebs.csi.aws.com}
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: cm}, data: {a: b}}
  - {apiVersion: v1, kind: Node, metadata: {name: n}}
  - {apiVersion: ballast.dev/v1alpha1, kind: NodeClaim, metadata: {name: nc}, spec: {provisioner: default}}
  - {apiVersion: v1, kind: Service, metadata: {name: svc}}
"#;
        let kinds: Vec<(String, Option<String>)> =
            load(text).iter().map(|m| (m.kind().to_string(), m.name().map(str::to_string))).collect();
        let expected = [
            ("ReplicaSet", "rs"),
            ("StatefulSet", "ss"),
            ("DaemonSet", "ds"),
            ("Pod", "p"),
            ("PersistentVolumeClaim", "pvc"),
            ("PersistentVolume", "pv"),
            ("StorageClass", "gp3"),
            ("ConfigMap", "cm"),
            ("Node", "n"),
            ("NodeClaim", "nc"),
            ("Service", "svc"),
        ];
        let expected: Vec<(String, Option<String>)> =
            expected.iter().map(|(k, n)| (k.to_string(), Some(n.to_string()))).collect();
        assert_eq!(kinds, expected);
        let manifests = load(text);
        assert!(matches!(&manifests[0], Manifest::ReplicaSet(_)));
        assert!(matches!(&manifests[8], Manifest::Node(_)));
        assert_eq!(
            manifests[10],
            Manifest::Other { api_version: "v1".into(), kind: "Service".into(), name: Some("svc".into()) }
        );
    }

    #[test]
    fn kubectl_get_output_with_server_fields_loads() {
        let text = r#"
apiVersion: v1
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    annotations:
      deployment.kubernetes.io/revision: "1"
    creationTimestamp: "2026-11-23T09:00:00Z"
    generation: 1
    managedFields:
    - apiVersion: apps/v1
      fieldsType: FieldsV1
      fieldsV1: {f:spec: {f:replicas: {}}}
      manager: kubectl
      operation: Update
      time: "2026-11-23T09:00:00Z"
    name: inflate
    namespace: default
    resourceVersion: "1234"
    uid: 6f1c2b1e-0000-4000-8000-000000000000
  spec:
    progressDeadlineSeconds: 600
    replicas: 5
    revisionHistoryLimit: 10
    selector:
      matchLabels: {app: inflate}
    strategy:
      rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}
      type: RollingUpdate
    template:
      metadata:
        creationTimestamp: null
        labels: {app: inflate}
      spec:
        containers:
        - image: public.ecr.aws/eks-distro/kubernetes/pause:3.7
          imagePullPolicy: IfNotPresent
          name: inflate
          resources:
            requests: {cpu: "1"}
          terminationMessagePath: /dev/termination-log
          terminationMessagePolicy: File
        dnsPolicy: ClusterFirst
        restartPolicy: Always
        schedulerName: default-scheduler
        securityContext: {}
        terminationGracePeriodSeconds: 0
  status:
    availableReplicas: 5
    conditions:
    - lastTransitionTime: "2026-11-23T09:01:00Z"
      lastUpdateTime: "2026-11-23T09:01:00Z"
      message: Deployment has minimum availability.
      reason: MinimumReplicasAvailable
      status: "True"
      type: Available
    observedGeneration: 1
    readyReplicas: 5
    replicas: 5
    updatedReplicas: 5
kind: List
metadata:
  resourceVersion: ""
"#;
        let manifests = load(text);
        let Manifest::Deployment(deployment) = &manifests[0] else { panic!("{:?}", manifests[0]) };
        assert_eq!(deployment.spec.replicas, Some(5));
        assert_eq!(deployment.status.as_ref().and_then(|s| s.ready_replicas), Some(5));
    }

    #[test]
    fn json_and_kubectl_lists_load() {
        let json = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}
        ]}
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}}"#;
        let manifests = load(json);
        assert_eq!(manifests.len(), 2);
        let Manifest::ConfigMap(cm) = &manifests[0] else { panic!() };
        assert_eq!(cm.data.as_ref().unwrap()["k"], "v");
        assert_eq!(manifests[1].name(), Some("b"));
        // Typed lists from the raw API (`PodList`) load too.
        let pods = load(
            "apiVersion: v1\nkind: PodList\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: c}}\n",
        );
        assert_eq!(pods[0].name(), Some("c"));
    }

    #[test]
    fn karpenter_kinds_load_as_ballast_crds() {
        let text = r#"
apiVersion: karpenter.sh/v1alpha5
kind: Provisioner
metadata: {name: default}
spec:
  ttlSecondsAfterEmpty: 30
  providerRef: {name: default}
---
apiVersion: karpenter.k8s.aws/v1alpha1
kind: AWSNodeTemplate
metadata: {name: default}
spec:
  subnetSelector: {karpenter.sh/discovery: demo}
  securityGroupSelector: {karpenter.sh/discovery: demo}
"#;
        let manifests = load(text);
        let Manifest::Provisioner(p) = &manifests[0] else { panic!("{:?}", manifests[0]) };
        assert_eq!(manifests[0].kind(), "Provisioner");
        assert_eq!(p.spec.ttl_seconds_after_empty, Some(30));
        let Manifest::NodeTemplate(t) = &manifests[1] else { panic!("{:?}", manifests[1]) };
        assert_eq!(manifests[1].kind(), "NodeTemplate");
        assert_eq!(t.spec.subnet_selector["karpenter.sh/discovery"], "demo");
        assert_eq!(manifests[0].validate(), Ok(()));
        assert_eq!(manifests[1].validate(), Ok(()));
    }

    #[test]
    fn type_errors_name_file_document_object_and_field() {
        let text = DEPLOYMENT_AND_PDB.replace("replicas: 3", "replicas: three");
        assert_eq!(
            load_err(&text),
            "failed to load test.yaml document 1 (Deployment/web): spec.replicas: invalid type: string \
             \"three\", expected i32"
        );
        let text = DEPLOYMENT_AND_PDB.replace("maxUnavailable: 1", "maxUnavailable: [1]");
        let error = load_err(&text);
        assert!(
            error.starts_with(
                "failed to load test.yaml document 3 (PodDisruptionBudget/web): spec.maxUnavailable: "
            ),
            "{error}"
        );
    }

    #[test]
    fn errors_inside_lists_name_the_item() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: ok}}\n- \
                    {apiVersion: v1, kind: Pod, metadata: {name: bad}, spec: {containers: 3}}\n";
        let error = load_err(text);
        assert!(
            error.starts_with("failed to load test.yaml document 1 (Pod/bad): items[1].spec.containers: "),
            "{error}"
        );
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_path() {
        let text =
            DEPLOYMENT_AND_PDB.replace("image: nginx", "image: nginx\n          imagePullPolcy: Always");
        assert_eq!(
            load_err(&text),
            "failed to load test.yaml document 1 (Deployment/web): \
             spec.template.spec.containers[0].imagePullPolcy: unknown field"
        );
        let text = "apiVersion: karpenter.sh/v1alpha5\nkind: Provisioner\nmetadata: {name: p}\nspec:\n  \
                    ttlSecondAfterEmpty: 30\n  consolidation: {enable: true}\n";
        assert_eq!(
            load_err(text),
            "failed to load test.yaml document 1 (Provisioner/p): spec.consolidation.enable: unknown field (and 1 \
             more: spec.ttlSecondAfterEmpty)"
        );
    }

    #[test]
    fn crd_field_errors_carry_the_path() {
        let text = "apiVersion: ballast.dev/v1alpha1\nkind: Provisioner\nmetadata: {name: p}\nspec:\n  \
                    requirements:\n  - {key: a, operator: In, values: yes}\n";
        let error = load_err(text);
        assert!(
            error.starts_with(
                "failed to load test.yaml document 1 (Provisioner/p): spec.requirements[0].values: "
            ),
            "{error}"
        );
    }

    #[test]
    fn missing_identity_and_syntax_errors_are_reported() {
        assert_eq!(
            load_err("apiVersion: v1\nmetadata: {name: x}\n"),
            "failed to load test.yaml document 1 (name \"x\"): kind: missing or not a string"
        );
        assert_eq!(
            load_err("kind: Pod\nmetadata: {name: x}\n"),
            "failed to load test.yaml document 1 (Pod/x): apiVersion: missing or not a string"
        );
        assert_eq!(
            load_err("---\njust a string\n"),
            "failed to load test.yaml document 1: (document): expected an object with apiVersion and kind"
        );
        let error = load_err("apiVersion: v1\nkind: Pod\n---\nmetadata: {name: [}\n");
        assert!(error.starts_with("failed to parse test.yaml document 2: "), "{error}");
        let error = load_str("x.json", "{\"kind\": ").unwrap_err().to_string();
        assert!(error.starts_with("failed to parse x.json document 1: "), "{error}");
        assert_eq!(
            load_err("apiVersion: ballast.dev/v2\nkind: Provisioner\nmetadata: {name: p}\n"),
            "failed to load test.yaml document 1 (Provisioner/p): apiVersion: unsupported ballast.dev/v2 \
             Provisioner: ballast serves Provisioner, NodeTemplate and NodeClaim as ballast.dev/v1alpha1"
        );
    }

    #[test]
    fn dumps_load_object_by_object_and_ignore_unknown_fields() {
        let text = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a, namespace: x}
  fieldFromANewerServer: 1
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: [not, a, name], namespace: x}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c, namespace: x}
"#;
        let results = load_dump_str("dump.yaml", text);
        let names: Vec<Option<&str>> =
            results.iter().map(|r| r.as_ref().ok().and_then(|m| m.name())).collect();
        assert_eq!(names, [Some("a"), None, Some("c")]);
        let error = results[1].as_ref().unwrap_err().to_string();
        assert!(
            error.contains("dump.yaml document 1") && error.contains("items[1].metadata.name"),
            "{error}"
        );
        // Written manifests stay strict.
        assert!(load_err(text).contains("fieldFromANewerServer"));
    }

    #[test]
    fn load_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pdb.yaml");
        std::fs::write(&path, "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {minAvailable: {}}\n")
            .unwrap();
        let error = load_file(&path).unwrap_err().to_string();
        assert!(error.starts_with(&format!("failed to load {} document 1", path.display())), "{error}");
        let missing = load_file(&dir.path().join("missing.yaml")).unwrap_err().to_string();
        assert!(missing.starts_with("failed to read manifest file "), "{missing}");
    }
}
