//! The [`Actuator`] over a kube [`Client`]: the exact requests ballast sends to the API server, and the
//! classification of their failures (conflict → re-read and retry, not found → done, forbidden → a metric
//! and an error naming the missing RBAC permission).

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use k8s_openapi::{
    api::{
        core::v1::{ConfigMap, Node, ObjectReference},
        events::v1::Event,
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client, Resource,
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
    core::Status,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Actuator, Error, EventRecord, EventType, Eviction, FinalizerTarget, Result, ScaleTarget};
use crate::{
    api::{API_VERSION, NodeClaim, NodeClaimStatus},
    clock::Clock,
    model::{Taint, TaintEffect},
};

/// Field manager of every ballast write, and `reportingController` of its Events.
pub const FIELD_MANAGER: &str = "ballast";

/// The Events API caps `note` at 1 KiB.
const MAX_EVENT_NOTE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WriteLabels {
    pub verb: &'static str,
    pub resource: &'static str,
    /// `ok`, `conflict`, `not_found`, `forbidden`, `invalid`, `error`.
    pub result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PermissionLabels {
    pub verb: &'static str,
    pub resource: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct ActuatorMetrics {
    pub writes: Family<WriteLabels, Counter>,
    pub forbidden: Family<PermissionLabels, Counter>,
}

impl ActuatorMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register("writes", "Kube API writes by verb, resource and result", metrics.writes.clone());
        registry.register(
            "forbidden",
            "Writes refused by RBAC, by the missing verb and resource",
            metrics.forbidden.clone(),
        );
        metrics
    }
}

/// One API call, for error messages and metrics: the RBAC verb and resource it needs, and the object.
struct Op {
    verb: &'static str,
    resource: &'static str,
    object: String,
}

impl Op {
    fn new(verb: &'static str, resource: &'static str, object: impl Into<String>) -> Self {
        Self { verb, resource, object: object.into() }
    }
}

pub struct KubeActuator {
    client: Client,
    clock: Arc<dyn Clock>,
    /// `reportingInstance` of Events: this replica's pod name.
    instance: String,
    metrics: ActuatorMetrics,
}

impl KubeActuator {
    pub fn new(
        client: Client,
        clock: Arc<dyn Clock>,
        instance: impl Into<String>,
        metrics: ActuatorMetrics,
    ) -> Self {
        Self { client, clock, instance: instance.into(), metrics }
    }

    fn node_claims(&self) -> Api<NodeClaim> {
        Api::all(self.client.clone())
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// Records the outcome of `op` and turns a kube error into ours.
    fn finish<T>(&self, op: &Op, result: Result<T, kube::Error>) -> Result<T> {
        let outcome = result.map_err(|error| classify(op, error));
        let result = match &outcome {
            Ok(_) => "ok",
            Err(Error::Conflict(_)) => "conflict",
            Err(Error::NotFound(_)) => "not_found",
            Err(Error::Forbidden { .. }) => {
                self.metrics
                    .forbidden
                    .get_or_create(&PermissionLabels { verb: op.verb, resource: op.resource })
                    .inc();
                tracing::warn!(verb = op.verb, resource = op.resource, object = %op.object, "missing RBAC permission");
                "forbidden"
            }
            Err(Error::Invalid { .. }) => "invalid",
            Err(Error::Api(_)) => "error",
        };
        self.metrics
            .writes
            .get_or_create(&WriteLabels { verb: op.verb, resource: op.resource, result })
            .inc();
        outcome
    }

    /// Adds or removes `finalizer` with a JSON patch whose `test` op pins the list it was computed from, so a
    /// concurrent change fails as a conflict instead of being overwritten.
    async fn change_finalizer(&self, target: &FinalizerTarget, finalizer: &str, add: bool) -> Result<()> {
        match target {
            FinalizerTarget::Node(name) => {
                self.patch_finalizers(self.nodes(), name, ("node", "nodes"), finalizer, add).await
            }
            FinalizerTarget::NodeClaim(name) => {
                let kind = ("nodeclaim", "nodeclaims.ballast.dev");
                self.patch_finalizers(self.node_claims(), name, kind, finalizer, add).await
            }
        }
    }

    async fn patch_finalizers<K>(
        &self,
        api: Api<K>,
        name: &str,
        (kind, resource): (&str, &'static str),
        finalizer: &str,
        add: bool,
    ) -> Result<()>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let current = api.get(name).await;
        let object = format!("{kind} {name}");
        let current = self.finish(&Op::new("get", resource, object.clone()), current)?;
        let finalizers = current.meta().finalizers.clone().unwrap_or_default();
        let Some(patch) = finalizer_patch(&finalizers, finalizer, add) else { return Ok(()) };
        let result = api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch)).await;
        self.finish(&Op::new("patch", resource, object), result).map(drop)
    }
}

/// The JSON patch that adds or removes `finalizer` from `current`; `None` when there is nothing to do.
pub fn finalizer_patch(current: &[String], finalizer: &str, add: bool) -> Option<json_patch::Patch> {
    let ops = match (add, current.iter().position(|f| f == finalizer)) {
        (true, Some(_)) | (false, None) => return None,
        // A missing list tests equal to null.
        (true, None) if current.is_empty() => json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [finalizer] },
        ]),
        (true, None) => json!([
            { "op": "test", "path": "/metadata/finalizers", "value": current },
            { "op": "add", "path": "/metadata/finalizers/-", "value": finalizer },
        ]),
        (false, Some(index)) => json!([
            { "op": "test", "path": format!("/metadata/finalizers/{index}"), "value": finalizer },
            { "op": "remove", "path": format!("/metadata/finalizers/{index}") },
        ]),
    };
    Some(serde_json::from_value(ops).expect("finalizer patch is a valid JSON patch"))
}

/// The JSON patch that puts `taint` on a node whose taints are `current`; `None` when it is already there.
/// A taint with the same key and effect but another value is replaced.
fn taint_patch(current: Option<&[Value]>, taint: &Taint) -> Option<json_patch::Patch> {
    let wanted = json!({ "key": taint.key, "value": taint.value, "effect": effect_name(taint.effect) });
    let same_slot = |t: &Value| t["key"] == wanted["key"] && t["effect"] == wanted["effect"];
    let ops = match current {
        None | Some([]) => json!([
            { "op": "test", "path": "/spec/taints", "value": current.map(|c| json!(c)).unwrap_or(Value::Null) },
            { "op": "add", "path": "/spec/taints", "value": [wanted] },
        ]),
        Some(taints) => match taints.iter().position(same_slot) {
            Some(i) if taints[i].get("value").unwrap_or(&json!("")) == &wanted["value"] => return None,
            Some(i) => json!([
                { "op": "test", "path": "/spec/taints", "value": taints },
                { "op": "replace", "path": format!("/spec/taints/{i}"), "value": wanted },
            ]),
            None => json!([
                { "op": "test", "path": "/spec/taints", "value": taints },
                { "op": "add", "path": "/spec/taints/-", "value": wanted },
            ]),
        },
    };
    Some(serde_json::from_value(ops).expect("taint patch is a valid JSON patch"))
}

fn effect_name(effect: TaintEffect) -> &'static str {
    match effect {
        TaintEffect::NoSchedule => "NoSchedule",
        TaintEffect::PreferNoSchedule => "PreferNoSchedule",
        TaintEffect::NoExecute => "NoExecute",
    }
}

/// Turns an API failure into the [`Error`] loops act on.
fn classify(op: &Op, error: kube::Error) -> Error {
    let kube::Error::Api(status) = &error else { return Error::Api(Box::new(error)) };
    let object = op.object.clone();
    match status.code {
        409 => Error::Conflict(object),
        404 => Error::NotFound(object),
        403 => Error::Forbidden { verb: op.verb.to_string(), resource: op.resource.to_string() },
        // A failed JSON-patch `test` op: the object changed since it was read.
        422 if status.message.to_ascii_lowercase().contains("testing value") => Error::Conflict(object),
        422 => Error::Invalid { object, message: status.message.clone() },
        _ => Error::Api(Box::new(error)),
    }
}

/// The API resource behind a `/scale` target, and its RBAC name.
fn scale_resource(target: &ScaleTarget) -> Result<(ApiResource, &'static str)> {
    let (group, version, kind, rbac) = match target.kind.to_ascii_lowercase().as_str() {
        "deployment" | "deployments" => ("apps", "v1", "Deployment", "deployments.apps/scale"),
        "replicaset" | "replicasets" => ("apps", "v1", "ReplicaSet", "replicasets.apps/scale"),
        "statefulset" | "statefulsets" => ("apps", "v1", "StatefulSet", "statefulsets.apps/scale"),
        "replicationcontroller" | "replicationcontrollers" => {
            ("", "v1", "ReplicationController", "replicationcontrollers/scale")
        }
        _ => {
            return Err(Error::Invalid {
                object: scale_object(target),
                message: format!(
                    "unsupported scale target kind {:?}: expected deployment, replicaset, statefulset or \
                     replicationcontroller",
                    target.kind
                ),
            });
        }
    };
    Ok((ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)), rbac))
}

fn scale_object(target: &ScaleTarget) -> String {
    format!("{}/{} in namespace {}", target.kind, target.name, target.namespace)
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[async_trait]
impl Actuator for KubeActuator {
    async fn create_node_claim(&self, claim: &NodeClaim) -> Result<NodeClaim> {
        let op = Op::new(
            "create",
            "nodeclaims.ballast.dev",
            format!("nodeclaim {}", claim.metadata.name.as_deref().unwrap_or_default()),
        );
        let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        let result = self.node_claims().create(&params, claim).await;
        self.finish(&op, result)
    }

    async fn patch_node_claim_status(&self, name: &str, status: &NodeClaimStatus) -> Result<()> {
        let op = Op::new("patch", "nodeclaims.ballast.dev/status", format!("nodeclaim {name}"));
        let apply = json!({ "apiVersion": API_VERSION, "kind": "NodeClaim", "status": status });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let result = self.node_claims().patch_status(name, &params, &Patch::Apply(apply)).await;
        self.finish(&op, result).map(drop)
    }

    async fn delete_node_claim(&self, name: &str) -> Result<()> {
        let op = Op::new("delete", "nodeclaims.ballast.dev", format!("nodeclaim {name}"));
        let result = self.node_claims().delete(name, &DeleteParams::default()).await;
        self.finish(&op, result).map(drop)
    }

    async fn add_finalizer(&self, target: &FinalizerTarget, finalizer: &str) -> Result<()> {
        self.change_finalizer(target, finalizer, true).await
    }

    async fn remove_finalizer(&self, target: &FinalizerTarget, finalizer: &str) -> Result<()> {
        self.change_finalizer(target, finalizer, false).await
    }

    async fn cordon_node(&self, node: &str) -> Result<()> {
        let op = Op::new("patch", "nodes", format!("node {node}"));
        let patch = Patch::Merge(json!({ "spec": { "unschedulable": true } }));
        let result = self.nodes().patch(node, &PatchParams::default(), &patch).await;
        self.finish(&op, result).map(drop)
    }

    async fn taint_node(&self, node: &str, taint: &Taint) -> Result<()> {
        let current = self.nodes().get(node).await;
        let current = self.finish(&Op::new("get", "nodes", format!("node {node}")), current)?;
        let taints: Option<Vec<Value>> = current.spec.and_then(|spec| spec.taints).map(|taints| {
            taints.iter().map(|t| serde_json::to_value(t).expect("a Taint serializes")).collect()
        });
        let Some(patch) = taint_patch(taints.as_deref(), taint) else { return Ok(()) };
        let result = self.nodes().patch(node, &PatchParams::default(), &Patch::Json::<()>(patch)).await;
        self.finish(&Op::new("patch", "nodes", format!("node {node}")), result).map(drop)
    }

    async fn label_node(&self, node: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        let op = Op::new("patch", "nodes", format!("node {node}"));
        let patch = Patch::Merge(json!({ "metadata": { "labels": labels } }));
        let result = self.nodes().patch(node, &PatchParams::default(), &patch).await;
        self.finish(&op, result).map(drop)
    }

    async fn delete_node(&self, node: &str) -> Result<()> {
        let op = Op::new("delete", "nodes", format!("node {node}"));
        let result = self.nodes().delete(node, &DeleteParams::default()).await;
        self.finish(&op, result).map(drop)
    }

    async fn evict_pod(&self, namespace: &str, name: &str) -> Result<Eviction> {
        let op = Op::new("create", "pods/eviction", format!("pod {namespace}/{name}"));
        let body = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": { "name": name, "namespace": namespace },
        });
        let request = http::Request::post(format!("/api/v1/namespaces/{namespace}/pods/{name}/eviction"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).expect("an Eviction serializes"))
            .expect("an eviction request is well-formed");
        match self.client.request::<Status>(request).await {
            // 429: a PodDisruptionBudget does not allow it now.
            Err(kube::Error::Api(status)) if status.code == 429 => {
                self.metrics
                    .writes
                    .get_or_create(&WriteLabels { verb: op.verb, resource: op.resource, result: "blocked" })
                    .inc();
                Ok(Eviction::BlockedByBudget)
            }
            result => match self.finish(&op, result) {
                Ok(_) => Ok(Eviction::Evicted),
                Err(Error::NotFound(_)) => Ok(Eviction::NotFound),
                Err(error) => Err(error),
            },
        }
    }

    async fn delete_pod(&self, namespace: &str, name: &str, grace_seconds: Option<i64>) -> Result<()> {
        let op = Op::new("delete", "pods", format!("pod {namespace}/{name}"));
        let grace_period_seconds = grace_seconds
            .map(|s| {
                u32::try_from(s).map_err(|_| Error::Invalid {
                    object: op.object.clone(),
                    message: format!("grace period must be between 0 and {} seconds, got {s}", u32::MAX),
                })
            })
            .transpose()?;
        let params = DeleteParams { grace_period_seconds, ..Default::default() };
        let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(self.client.clone(), namespace);
        let result = api.delete(name, &params).await;
        self.finish(&op, result).map(drop)
    }

    async fn get_scale(&self, target: &ScaleTarget) -> Result<i32> {
        let (resource, rbac) = scale_resource(target)?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &target.namespace, &resource);
        let result = api.get_scale(&target.name).await;
        let scale = self.finish(&Op::new("get", rbac, scale_object(target)), result)?;
        Ok(scale.spec.and_then(|spec| spec.replicas).unwrap_or(0))
    }

    async fn set_scale(&self, target: &ScaleTarget, replicas: i32) -> Result<()> {
        let (resource, rbac) = scale_resource(target)?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &target.namespace, &resource);
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        let patch = Patch::Merge(json!({ "spec": { "replicas": replicas } }));
        let result = api.patch_scale(&target.name, &params, &patch).await;
        self.finish(&Op::new("patch", rbac, scale_object(target)), result).map(drop)
    }

    async fn create_config_map(
        &self,
        namespace: &str,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<()> {
        let op = Op::new("create", "configmaps", format!("configmap {namespace}/{name}"));
        let config_map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            data: Some(data.clone()),
            ..Default::default()
        };
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        // POST never overwrites: an existing ConfigMap answers 409, classified as `Conflict`.
        let result = api.create(&params, &config_map).await;
        self.finish(&op, result).map(drop)
    }

    async fn emit_event(&self, event: &EventRecord) -> Result<()> {
        // Events about cluster-scoped objects (nodes, NodeClaims) live in `default`, as kubectl expects.
        let namespace = event.namespace.clone().unwrap_or_else(|| "default".to_string());
        let op =
            Op::new("create", "events.events.k8s.io", format!("event {} for {}", event.reason, event.name));
        let body = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", event.name)),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            event_time: Some(MicroTime(self.clock.now())),
            action: Some(event.reason.clone()),
            reason: Some(event.reason.clone()),
            note: Some(truncate(&event.message, MAX_EVENT_NOTE)),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_string(),
            ),
            reporting_controller: Some(FIELD_MANAGER.to_string()),
            reporting_instance: Some(self.instance.clone()),
            regarding: Some(ObjectReference {
                api_version: Some(event.api_version.clone()),
                kind: Some(event.kind.clone()),
                name: Some(event.name.clone()),
                namespace: event.namespace.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        let result = api.create(&params, &body).await;
        self.finish(&op, result).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch_json(patch: Option<json_patch::Patch>) -> Value {
        serde_json::to_value(patch.expect("a patch")).unwrap()
    }

    #[test]
    fn finalizer_patches_pin_the_current_list() {
        assert_eq!(
            patch_json(finalizer_patch(&[], "ballast.dev/termination", true)),
            json!([
                { "op": "test", "path": "/metadata/finalizers", "value": null },
                { "op": "add", "path": "/metadata/finalizers", "value": ["ballast.dev/termination"] },
            ])
        );
        let current = vec!["other".to_string(), "ballast.dev/termination".to_string()];
        assert!(finalizer_patch(&current, "ballast.dev/termination", true).is_none());
        assert!(finalizer_patch(&current[..1], "ballast.dev/termination", false).is_none());
        assert_eq!(
            patch_json(finalizer_patch(&current, "ballast.dev/termination", false)),
            json!([
                { "op": "test", "path": "/metadata/finalizers/1", "value": "ballast.dev/termination" },
                { "op": "remove", "path": "/metadata/finalizers/1" },
            ])
        );
    }

    #[test]
    fn taint_patches() {
        let taint = Taint { key: "k".into(), value: "v".into(), effect: TaintEffect::NoSchedule };
        let same = json!({ "key": "k", "value": "v", "effect": "NoSchedule" });
        assert!(taint_patch(Some(std::slice::from_ref(&same)), &taint).is_none());
        let other_value = json!({ "key": "k", "value": "old", "effect": "NoSchedule" });
        assert_eq!(
            patch_json(taint_patch(Some(std::slice::from_ref(&other_value)), &taint)),
            json!([
                { "op": "test", "path": "/spec/taints", "value": [other_value] },
                { "op": "replace", "path": "/spec/taints/0", "value": same },
            ])
        );
    }

    #[test]
    fn scale_targets_map_to_their_api_groups() {
        let target = |kind: &str| ScaleTarget { kind: kind.into(), namespace: "ns".into(), name: "n".into() };
        assert_eq!(scale_resource(&target("Deployment")).unwrap().0.group, "apps");
        assert_eq!(scale_resource(&target("replicationcontroller")).unwrap().0.group, "");
        let err = scale_resource(&target("CronJob")).unwrap_err().to_string();
        assert!(err.contains("CronJob") && err.contains("ns"), "{err}");
    }

    #[test]
    fn event_notes_are_truncated_on_a_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
