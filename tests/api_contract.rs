//! The exact requests [`KubeActuator`] sends, checked against a mock API server (the ApiServerVerifier
//! pattern with tower-test): method, path, query, content type and body of every call, and how API errors
//! are classified.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use ballast::{
    actuator::{
        Actuator, Error, EventRecord, EventType, Eviction, FinalizerTarget, ScaleTarget,
        kube::{ActuatorMetrics, KubeActuator},
    },
    api::{NodeClaim, NodeClaimSpec, NodeClaimStatus},
    clock::ManualClock,
    model::{Taint, TaintEffect},
    telemetry::metrics,
};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One expected request and the answer the mock API server gives.
struct Exchange {
    method: &'static str,
    /// Path and query exactly as sent.
    uri: String,
    content_type: Option<&'static str>,
    body: Option<Value>,
    status: u16,
    response: Value,
}

fn expect(method: &'static str, uri: impl Into<String>) -> Exchange {
    Exchange { method, uri: uri.into(), content_type: None, body: None, status: 200, response: json!({}) }
}

impl Exchange {
    fn body(mut self, content_type: &'static str, body: Value) -> Self {
        self.content_type = Some(content_type);
        self.body = Some(body);
        self
    }

    fn respond(mut self, status: u16, response: Value) -> Self {
        self.status = status;
        self.response = response;
        self
    }

    fn fail(self, code: u16, reason: &str, message: &str) -> Self {
        self.respond(
            code,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code,
            }),
        )
    }
}

const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const APPLY: &str = "application/apply-patch+yaml";
const JSON: &str = "application/json";

struct Verifier {
    actuator: KubeActuator,
    handle: Handle,
    registry: metrics::Registry,
}

fn verifier() -> Verifier {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let clock = ManualClock::new("2026-11-23T10:00:00Z".parse().unwrap());
    let mut registry = metrics::root_registry();
    let metrics = ActuatorMetrics::register(registry.sub_registry_with_prefix("actuator"));
    Verifier { actuator: KubeActuator::new(client, Arc::new(clock), "ballast-0", metrics), handle, registry }
}

impl Verifier {
    /// Runs `call` while the mock server answers `exchanges` in order, then checks nothing else was sent.
    async fn run<T>(
        mut self,
        exchanges: Vec<Exchange>,
        call: impl AsyncFnOnce(&KubeActuator) -> T,
    ) -> (T, String) {
        let mut handle = self.handle;
        let server = async move {
            for (i, exchange) in exchanges.into_iter().enumerate() {
                let (request, send) = tokio::time::timeout(Duration::from_secs(1), handle.next_request())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("request {i} ({} {}) never came", exchange.method, exchange.uri)
                    })
                    .expect("client alive");
                assert_eq!(request.method().as_str(), exchange.method, "method of request {i}");
                assert_eq!(request.uri().to_string(), exchange.uri, "path and query of request {i}");
                let content_type =
                    request.headers().get(http::header::CONTENT_TYPE).map(|v| v.to_str().unwrap());
                assert_eq!(content_type, exchange.content_type, "content type of request {i}");
                let bytes = request.into_body().collect_bytes().await.unwrap();
                match exchange.body {
                    Some(expected) => {
                        let body: Value = serde_json::from_slice(&bytes).expect("JSON body");
                        assert_eq!(body, expected, "body of request {i}");
                    }
                    None => assert!(bytes.is_empty(), "request {i} has no body"),
                }
                let response = Response::builder()
                    .status(exchange.status)
                    .body(Body::from(serde_json::to_vec(&exchange.response).unwrap()))
                    .unwrap();
                send.send_response(response);
            }
            handle
        };
        let (out, mut handle) = tokio::join!(call(&self.actuator), server);
        let extra = tokio::time::timeout(Duration::from_millis(20), handle.next_request()).await;
        assert!(extra.is_err(), "unexpected extra request");
        self.handle = handle;
        (out, metrics::encode(&self.registry))
    }
}

fn node_claim(name: &str) -> NodeClaim {
    NodeClaim::new(name, NodeClaimSpec { provisioner: "default".into(), ..Default::default() })
}

fn node(name: &str, finalizers: Option<Vec<&str>>, taints: Option<Value>) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": name, "finalizers": finalizers },
        "spec": { "taints": taints },
    })
}

fn status_success() -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200 })
}

// === NodeClaims ===

#[tokio::test]
async fn create_node_claim_posts_the_object() {
    let claim = node_claim("default-abc12");
    let (created, _) = verifier()
        .run(
            vec![
                expect("POST", "/apis/ballast.dev/v1alpha1/nodeclaims?&fieldManager=ballast")
                    .body(JSON, serde_json::to_value(&claim).unwrap())
                    .respond(201, serde_json::to_value(&claim).unwrap()),
            ],
            async |a| a.create_node_claim(&claim).await,
        )
        .await;
    assert_eq!(created.unwrap().metadata.name.as_deref(), Some("default-abc12"));
}

#[tokio::test]
async fn node_claim_status_is_server_side_applied() {
    let status = NodeClaimStatus {
        provider_id: Some("aws:///us-east-1a/i-0123".into()),
        instance_type: Some("m5.large".into()),
        ..Default::default()
    };
    let (result, _) = verifier()
        .run(
            vec![
                expect("PATCH", "/apis/ballast.dev/v1alpha1/nodeclaims/default-abc12/status?&force=true&fieldManager=ballast")
                    .body(
                        APPLY,
                        json!({
                            "apiVersion": "ballast.dev/v1alpha1", "kind": "NodeClaim",
                            "status": { "providerID": "aws:///us-east-1a/i-0123", "instanceType": "m5.large" },
                        }),
                    )
                    .respond(200, serde_json::to_value(node_claim("default-abc12")).unwrap()),
            ],
            async |a| a.patch_node_claim_status("default-abc12", &status).await,
        )
        .await;
    result.unwrap();
}

#[tokio::test]
async fn delete_node_claim_and_not_found() {
    let (result, _) = verifier()
        .run(
            vec![
                expect("DELETE", "/apis/ballast.dev/v1alpha1/nodeclaims/default-abc12?")
                    .body(JSON, json!({}))
                    .respond(200, status_success()),
            ],
            async |a| a.delete_node_claim("default-abc12").await,
        )
        .await;
    result.unwrap();
    let (result, metrics) = verifier()
        .run(
            vec![expect("DELETE", "/apis/ballast.dev/v1alpha1/nodeclaims/gone?").body(JSON, json!({})).fail(
                404,
                "NotFound",
                "nodeclaims.ballast.dev \"gone\" not found",
            )],
            async |a| a.delete_node_claim("gone").await,
        )
        .await;
    assert!(matches!(result, Err(Error::NotFound(ref o)) if o == "nodeclaim gone"), "{result:?}");
    assert!(
        metrics.contains(r#"verb="delete",resource="nodeclaims.ballast.dev",result="not_found""#),
        "{metrics}"
    );
}

// === Finalizers ===

#[tokio::test]
async fn add_finalizer_to_an_empty_list_tests_for_null() {
    let (result, _) = verifier()
        .run(
            vec![
                expect("GET", "/api/v1/nodes/n1").respond(200, node("n1", None, None)),
                expect("PATCH", "/api/v1/nodes/n1?")
                    .body(
                        JSON_PATCH,
                        json!([
                            { "op": "test", "path": "/metadata/finalizers", "value": null },
                            { "op": "add", "path": "/metadata/finalizers", "value": ["ballast.dev/termination"] },
                        ]),
                    )
                    .respond(200, node("n1", Some(vec!["ballast.dev/termination"]), None)),
            ],
            async |a| a.add_finalizer(&FinalizerTarget::Node("n1".into()), "ballast.dev/termination").await,
        )
        .await;
    result.unwrap();
}

#[tokio::test]
async fn add_finalizer_pins_the_current_list_and_a_failed_test_is_a_conflict() {
    let mut claim = node_claim("c1");
    claim.metadata.finalizers = Some(vec!["other.io/keep".into()]);
    let (result, metrics) = verifier()
        .run(
            vec![
                expect("GET", "/apis/ballast.dev/v1alpha1/nodeclaims/c1")
                    .respond(200, serde_json::to_value(&claim).unwrap()),
                expect("PATCH", "/apis/ballast.dev/v1alpha1/nodeclaims/c1?")
                    .body(
                        JSON_PATCH,
                        json!([
                            { "op": "test", "path": "/metadata/finalizers", "value": ["other.io/keep"] },
                            { "op": "add", "path": "/metadata/finalizers/-", "value": "ballast.dev/termination" },
                        ]),
                    )
                    .fail(422, "Invalid", "the server rejected our request: Testing value /metadata/finalizers failed"),
            ],
            async |a| a.add_finalizer(&FinalizerTarget::NodeClaim("c1".into()), "ballast.dev/termination").await,
        )
        .await;
    assert!(matches!(result, Err(Error::Conflict(ref o)) if o == "nodeclaim c1"), "{result:?}");
    assert!(metrics.contains(r#"result="conflict""#), "{metrics}");
}

#[tokio::test]
async fn finalizer_already_present_or_absent_sends_no_patch() {
    let (result, _) = verifier()
        .run(
            vec![
                expect("GET", "/api/v1/nodes/n1")
                    .respond(200, node("n1", Some(vec!["ballast.dev/termination"]), None)),
            ],
            async |a| a.add_finalizer(&FinalizerTarget::Node("n1".into()), "ballast.dev/termination").await,
        )
        .await;
    result.unwrap();
    let (result, _) = verifier()
        .run(vec![expect("GET", "/api/v1/nodes/n1").respond(200, node("n1", None, None))], async |a| {
            a.remove_finalizer(&FinalizerTarget::Node("n1".into()), "ballast.dev/termination").await
        })
        .await;
    result.unwrap();
}

#[tokio::test]
async fn remove_finalizer_tests_its_index() {
    let (result, _) = verifier()
        .run(
            vec![
                expect("GET", "/api/v1/nodes/n1")
                    .respond(200, node("n1", Some(vec!["a", "ballast.dev/termination", "b"]), None)),
                expect("PATCH", "/api/v1/nodes/n1?")
                    .body(
                        JSON_PATCH,
                        json!([
                            { "op": "test", "path": "/metadata/finalizers/1", "value": "ballast.dev/termination" },
                            { "op": "remove", "path": "/metadata/finalizers/1" },
                        ]),
                    )
                    .respond(200, node("n1", Some(vec!["a", "b"]), None)),
            ],
            async |a| a.remove_finalizer(&FinalizerTarget::Node("n1".into()), "ballast.dev/termination").await,
        )
        .await;
    result.unwrap();
}

// === Nodes ===

#[tokio::test]
async fn cordon_is_a_merge_patch_of_unschedulable() {
    let (result, _) = verifier()
        .run(
            vec![
                expect("PATCH", "/api/v1/nodes/n1?")
                    .body(MERGE, json!({ "spec": { "unschedulable": true } }))
                    .respond(200, node("n1", None, None)),
            ],
            async |a| a.cordon_node("n1").await,
        )
        .await;
    result.unwrap();
}

#[tokio::test]
async fn taint_appends_with_a_test_on_the_current_taints() {
    let existing = json!([{ "key": "other", "effect": "NoExecute" }]);
    let taint =
        Taint { key: "ballast.dev/disrupted".into(), value: String::new(), effect: TaintEffect::NoSchedule };
    let (result, _) = verifier()
        .run(
            vec![
                expect("GET", "/api/v1/nodes/n1").respond(200, node("n1", None, Some(existing.clone()))),
                expect("PATCH", "/api/v1/nodes/n1?")
                    .body(
                        JSON_PATCH,
                        json!([
                            { "op": "test", "path": "/spec/taints", "value": existing },
                            { "op": "add", "path": "/spec/taints/-",
                              "value": { "key": "ballast.dev/disrupted", "value": "", "effect": "NoSchedule" } },
                        ]),
                    )
                    .respond(200, node("n1", None, None)),
            ],
            async |a| a.taint_node("n1", &taint).await,
        )
        .await;
    result.unwrap();
}

#[tokio::test]
async fn taint_on_an_untainted_node_tests_for_null() {
    let taint = Taint { key: "k".into(), value: "v".into(), effect: TaintEffect::NoExecute };
    let (result, _) = verifier()
        .run(
            vec![
                expect("GET", "/api/v1/nodes/n1").respond(200, node("n1", None, None)),
                expect("PATCH", "/api/v1/nodes/n1?")
                    .body(
                        JSON_PATCH,
                        json!([
                            { "op": "test", "path": "/spec/taints", "value": null },
                            { "op": "add", "path": "/spec/taints", "value": [{ "key": "k", "value": "v", "effect": "NoExecute" }] },
                        ]),
                    )
                    .respond(200, node("n1", None, None)),
            ],
            async |a| a.taint_node("n1", &taint).await,
        )
        .await;
    result.unwrap();
}

#[tokio::test]
async fn label_is_a_merge_patch_of_labels() {
    let labels = BTreeMap::from([("ballast.dev/initialized".to_string(), "true".to_string())]);
    let (result, _) = verifier()
        .run(
            vec![
                expect("PATCH", "/api/v1/nodes/n1?")
                    .body(MERGE, json!({ "metadata": { "labels": { "ballast.dev/initialized": "true" } } }))
                    .respond(200, node("n1", None, None)),
            ],
            async |a| a.label_node("n1", &labels).await,
        )
        .await;
    result.unwrap();
}

#[tokio::test]
async fn delete_node() {
    let (result, _) = verifier()
        .run(
            vec![expect("DELETE", "/api/v1/nodes/n1?").body(JSON, json!({})).respond(200, status_success())],
            async |a| a.delete_node("n1").await,
        )
        .await;
    result.unwrap();
}

#[tokio::test]
async fn forbidden_names_the_rbac_verb_and_resource_and_counts_it() {
    let (result, metrics) = verifier()
        .run(
            vec![expect("DELETE", "/api/v1/nodes/n1?").body(JSON, json!({})).fail(
                403,
                "Forbidden",
                "nodes \"n1\" is forbidden: User cannot delete resource",
            )],
            async |a| a.delete_node("n1").await,
        )
        .await;
    let error = result.unwrap_err();
    assert!(matches!(&error, Error::Forbidden { verb, resource } if verb == "delete" && resource == "nodes"));
    assert_eq!(error.to_string(), "forbidden: missing RBAC permission delete on nodes");
    assert!(
        metrics.contains(r#"ballast_actuator_forbidden_total{verb="delete",resource="nodes"} 1"#),
        "{metrics}"
    );
}

// === Pods ===

fn eviction(namespace: &str, name: &str) -> Exchange {
    expect("POST", format!("/api/v1/namespaces/{namespace}/pods/{name}/eviction")).body(
        JSON,
        json!({
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": { "name": name, "namespace": namespace },
        }),
    )
}

#[tokio::test]
async fn evict_posts_a_policy_v1_eviction() {
    let (result, _) = verifier()
        .run(vec![eviction("web", "web-0").respond(201, status_success())], async |a| {
            a.evict_pod("web", "web-0").await
        })
        .await;
    assert_eq!(result.unwrap(), Eviction::Evicted);
}

#[tokio::test]
async fn eviction_429_is_blocked_by_budget_not_an_error() {
    let (result, metrics) = verifier()
        .run(
            vec![eviction("web", "web-0").fail(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            )],
            async |a| a.evict_pod("web", "web-0").await,
        )
        .await;
    assert_eq!(result.unwrap(), Eviction::BlockedByBudget);
    assert!(metrics.contains(r#"result="blocked""#), "{metrics}");
}

#[tokio::test]
async fn eviction_of_a_gone_pod_is_not_found() {
    let (result, _) = verifier()
        .run(vec![eviction("web", "web-0").fail(404, "NotFound", "pods \"web-0\" not found")], async |a| {
            a.evict_pod("web", "web-0").await
        })
        .await;
    assert_eq!(result.unwrap(), Eviction::NotFound);
}

#[tokio::test]
async fn delete_pod_with_grace() {
    let (result, _) = verifier()
        .run(
            vec![
                expect("DELETE", "/api/v1/namespaces/web/pods/web-0?")
                    .body(JSON, json!({ "gracePeriodSeconds": 30 }))
                    .respond(200, status_success()),
            ],
            async |a| a.delete_pod("web", "web-0", Some(30)).await,
        )
        .await;
    result.unwrap();
    let (result, _) = verifier().run(vec![], async |a| a.delete_pod("web", "web-0", Some(-1)).await).await;
    assert!(matches!(result, Err(Error::Invalid { .. })), "{result:?}");
}

// === /scale ===

fn scale(replicas: i32) -> Value {
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": { "name": "coredns", "namespace": "kube-system" },
        "spec": { "replicas": replicas }, "status": { "replicas": replicas },
    })
}

fn target(kind: &str) -> ScaleTarget {
    ScaleTarget { kind: kind.into(), namespace: "kube-system".into(), name: "coredns".into() }
}

#[tokio::test]
async fn get_scale_of_each_kind() {
    for (kind, path) in [
        ("deployment", "/apis/apps/v1/namespaces/kube-system/deployments/coredns/scale"),
        ("replicaset", "/apis/apps/v1/namespaces/kube-system/replicasets/coredns/scale"),
        ("statefulset", "/apis/apps/v1/namespaces/kube-system/statefulsets/coredns/scale"),
        ("replicationcontroller", "/api/v1/namespaces/kube-system/replicationcontrollers/coredns/scale"),
    ] {
        let (result, _) = verifier()
            .run(vec![expect("GET", path).respond(200, scale(3))], async |a| a.get_scale(&target(kind)).await)
            .await;
        assert_eq!(result.unwrap(), 3, "{kind}");
    }
}

#[tokio::test]
async fn set_scale_merge_patches_replicas() {
    for (kind, path) in [
        (
            "Deployment",
            "/apis/apps/v1/namespaces/kube-system/deployments/coredns/scale?&fieldManager=ballast",
        ),
        (
            "StatefulSet",
            "/apis/apps/v1/namespaces/kube-system/statefulsets/coredns/scale?&fieldManager=ballast",
        ),
        (
            "ReplicationController",
            "/api/v1/namespaces/kube-system/replicationcontrollers/coredns/scale?&fieldManager=ballast",
        ),
    ] {
        let (result, _) = verifier()
            .run(
                vec![
                    expect("PATCH", path)
                        .body(MERGE, json!({ "spec": { "replicas": 5 } }))
                        .respond(200, scale(5)),
                ],
                async |a| a.set_scale(&target(kind), 5).await,
            )
            .await;
        result.unwrap();
    }
}

#[tokio::test]
async fn scale_conflict_and_unsupported_kind() {
    let (result, _) = verifier()
        .run(
            vec![
                expect(
                    "PATCH",
                    "/apis/apps/v1/namespaces/kube-system/deployments/coredns/scale?&fieldManager=ballast",
                )
                .body(MERGE, json!({ "spec": { "replicas": 5 } }))
                .fail(409, "Conflict", "the object has been modified"),
            ],
            async |a| a.set_scale(&target("deployment"), 5).await,
        )
        .await;
    assert!(matches!(result, Err(Error::Conflict(_))), "{result:?}");
    let (result, _) = verifier().run(vec![], async |a| a.set_scale(&target("CronJob"), 5).await).await;
    assert!(
        matches!(result, Err(Error::Invalid { ref message, .. }) if message.contains("CronJob")),
        "{result:?}"
    );
}

// === Events ===

#[tokio::test]
async fn events_use_events_k8s_io_with_ballast_as_reporting_controller() {
    let event = EventRecord {
        api_version: "ballast.dev/v1alpha1".into(),
        kind: "NodeClaim".into(),
        namespace: None,
        name: "default-abc12".into(),
        type_: EventType::Normal,
        reason: "Launched".into(),
        message: "launched m5.large in us-east-1a (on-demand, $0.096/h)".into(),
    };
    let body = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": { "generateName": "default-abc12.", "namespace": "default" },
        "eventTime": "2026-11-23T10:00:00.000000Z",
        "action": "Launched", "reason": "Launched",
        "note": "launched m5.large in us-east-1a (on-demand, $0.096/h)",
        "type": "Normal",
        "reportingController": "ballast", "reportingInstance": "ballast-0",
        "regarding": { "apiVersion": "ballast.dev/v1alpha1", "kind": "NodeClaim", "name": "default-abc12" },
    });
    let (result, _) = verifier()
        .run(
            vec![
                expect("POST", "/apis/events.k8s.io/v1/namespaces/default/events?&fieldManager=ballast")
                    .body(JSON, body.clone())
                    .respond(201, body),
            ],
            async |a| a.emit_event(&event).await,
        )
        .await;
    result.unwrap();
}

// === ConfigMaps ===

#[tokio::test]
async fn create_config_map_posts_and_never_overwrites() {
    let data = BTreeMap::from([("linear".to_string(), r#"{"coresPerReplica":256}"#.to_string())]);
    let body = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "coredns-autoscaler", "namespace": "kube-system" },
        "data": { "linear": "{\"coresPerReplica\":256}" },
    });
    let (result, _) = verifier()
        .run(
            vec![
                expect("POST", "/api/v1/namespaces/kube-system/configmaps?&fieldManager=ballast")
                    .body(JSON, body.clone())
                    .respond(201, body.clone()),
            ],
            async |a| a.create_config_map("kube-system", "coredns-autoscaler", &data).await,
        )
        .await;
    result.unwrap();
    let (result, _) = verifier()
        .run(
            vec![
                expect("POST", "/api/v1/namespaces/kube-system/configmaps?&fieldManager=ballast")
                    .body(JSON, body)
                    .fail(409, "AlreadyExists", "configmaps \"coredns-autoscaler\" already exists"),
            ],
            async |a| a.create_config_map("kube-system", "coredns-autoscaler", &data).await,
        )
        .await;
    assert!(matches!(result, Err(Error::Conflict(_))), "{result:?}");
}

// === proportional loop over the kube actuator ===

/// The proportional loop reads `/scale` and writes nothing when the target already has the desired replicas.
#[tokio::test]
async fn proportional_loop_does_not_write_an_unchanged_scale() {
    use ballast::{
        model::{ConfigMap, Node},
        proportional::{Proportional, ProportionalArgs},
        resources::Resources,
        state::{Cluster, Object},
    };

    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let clock = Arc::new(ManualClock::new("2026-11-23T10:00:00Z".parse().unwrap()));
    let mut registry = metrics::root_registry();
    let metrics = ActuatorMetrics::register(registry.sub_registry_with_prefix("actuator"));
    let actuator = Arc::new(KubeActuator::new(
        kube::Client::new(service, "default"),
        clock.clone(),
        "ballast-0",
        metrics,
    ));

    let cluster = Cluster::new();
    for i in 0..3 {
        cluster.apply(Object::Node(Arc::new(Node {
            name: format!("node-{i}"),
            provider_id: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            taints: vec![],
            unschedulable: false,
            capacity: Resources::new(2000, 8 << 30),
            allocatable: Resources::new(1930, 7 << 30),
            ready: true,
            created: "2026-11-23T09:00:00Z".parse().unwrap(),
            deleting: None,
        })));
    }
    cluster.apply(Object::ConfigMap(Arc::new(ConfigMap {
        namespace: "kube-system".into(),
        name: "dns-autoscaler".into(),
        annotations: BTreeMap::from([(
            "ballast.dev/proportional-target".into(),
            "deployment/coredns".into(),
        )]),
        data: BTreeMap::from([("ladder".into(), r#"{"nodesToReplicas": [[1, 1], [2, 2], [3, 3]]}"#.into())]),
        resource_version: Some("1".into()),
    })));
    let controller = Proportional::new(ProportionalArgs::default(), cluster, actuator, clock);

    let server = async move {
        let (request, send) = tokio::time::timeout(Duration::from_secs(1), handle.next_request())
            .await
            .expect("the loop reads /scale")
            .expect("client alive");
        assert_eq!(request.method().as_str(), "GET");
        assert_eq!(
            request.uri().to_string(),
            "/apis/apps/v1/namespaces/kube-system/deployments/coredns/scale"
        );
        send.send_response(
            Response::builder().body(Body::from(serde_json::to_vec(&scale(3)).unwrap())).unwrap(),
        );
        handle
    };
    let (errors, mut handle) = tokio::join!(controller.reconcile(), server);
    assert!(errors.is_empty(), "{errors:?}");
    let extra = tokio::time::timeout(Duration::from_millis(50), handle.next_request()).await;
    assert!(extra.is_err(), "3 nodes → 3 replicas, already set: no PATCH and no Event");
}
