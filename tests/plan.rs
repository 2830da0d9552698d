//! `ballast plan` end to end: on the checked-in `examples/snapshot` (text and JSON), and on the same objects
//! served by a fake API server on 127.0.0.1, where it must plan the same and send nothing but GETs.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    convert::Infallible,
    process::{Command, Output, Stdio},
    sync::Arc,
    time::Duration,
};

use axum::{body::Body, extract::Request, response::Response};
use parking_lot::Mutex;
use serde_json::{Value, json};
use support::process::write_kubeconfig;

const NOW: &str = "2026-11-23T12:00:00Z";
const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/snapshot");
const IDLE_NODE: &str = "ip-192-168-130-9.ec2.internal";
const PENDING_INFLATE: [&str; 5] = [
    "default/inflate-6f8b7d9c5-d3r6t",
    "default/inflate-6f8b7d9c5-g9h2b",
    "default/inflate-6f8b7d9c5-k5w8q",
    "default/inflate-6f8b7d9c5-n2x7f",
    "default/inflate-6f8b7d9c5-s6j4l",
];

/// Runs the binary with a clean environment, killing it by PID if it has not finished within 60 s.
fn ballast(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the ballast binary runs");
    let pid = child.id().to_string();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output().expect("ballast's output is read")));
    finished.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("ballast {args:?} did not finish within 60 s")
    })
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "status {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn plan_json(args: &[&str]) -> Value {
    let mut all = vec!["plan", "--now", NOW, "--output", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&stdout_of(&ballast(&all))).expect("the plan is JSON")
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect()
}

/// The decisions on `examples/snapshot`, wherever the objects came from.
fn assert_example_decisions(plan: &Value) {
    // Five pending inflate pods (1 CPU each) fit on no node: each gets the cheapest spot node that holds one
    // next to the daemonsets.
    let provisioning = &plan["provisioning"];
    let launches = provisioning["launches"].as_array().unwrap();
    assert_eq!(launches.len(), 5, "{provisioning:#}");
    let mut pods = BTreeSet::new();
    for launch in launches {
        assert_eq!(launch["provisioner"], "default");
        assert_eq!(launch["node_template"], "default");
        let cheapest = &launch["cheapest"];
        assert_eq!(
            (cheapest["instance_type"].as_str(), cheapest["capacity_type"].as_str()),
            (Some("t3a.nano"), Some("spot"))
        );
        assert_eq!(cheapest["zone"], "us-east-1f");
        assert_eq!(cheapest["price_per_hour"], 0.001437);
        let types = launch["instance_types"].as_array().unwrap();
        assert_eq!(types[0], *cheapest);
        let prices: Vec<f64> = types.iter().map(|t| t["price_per_hour"].as_f64().unwrap()).collect();
        assert!(prices.windows(2).all(|w| w[0] <= w[1]), "not cheapest first: {prices:?}");
        assert!(types.iter().all(|t| t["capacity_type"] == "spot"), "the Provisioner allows spot only");
        pods.extend(strings(&launch["pods"]));
    }
    assert_eq!(pods, BTreeSet::from(PENDING_INFLATE));
    assert_eq!(provisioning["cost_per_hour"], 0.007185);
    assert_eq!(provisioning["unschedulable"], json!([]));

    // The t2.small holds only daemonset pods: ttlSecondsAfterEmpty (30 s) deletes it.
    let decision = &plan["disruption"]["decision"];
    assert_eq!((decision["reason"].as_str(), decision["method"].as_str()), (Some("empty"), Some("delete")));
    let nodes = decision["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["name"], IDLE_NODE);
    assert_eq!(nodes[0]["instance_type"], "t2.small");
    assert_eq!(nodes[0]["capacity_type"], "spot");
    assert_eq!(nodes[0]["pods"], json!([]));
    assert_eq!(decision["savings_per_hour"], nodes[0]["price_per_hour"]);
    assert!(decision["savings_per_hour"].as_f64().unwrap() > 0.0);
    assert_eq!(decision["replacements"], json!([]));
    assert_eq!(
        (decision["decided_after_seconds"].as_i64(), decision["acts_after_seconds"].as_i64()),
        (Some(30), Some(45))
    );

    // Three schedulable nodes: the seed's ladder says 3 coredns replicas, up from 2.
    let targets = plan["proportional"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    let coredns = &targets[0];
    assert_eq!(
        (coredns["kind"].as_str(), coredns["namespace"].as_str(), coredns["name"].as_str()),
        (Some("deployment"), Some("kube-system"), Some("coredns"))
    );
    assert_eq!((coredns["current"].as_i64(), coredns["desired"].as_i64()), (Some(2), Some(3)));
    assert_eq!(coredns["controller"], "ladder");
    assert_eq!(coredns["config_map"], "kube-system/coredns-autoscaler");
}

#[test]
fn plans_the_example_snapshot_as_json() {
    let plan = plan_json(&["--snapshot", SNAPSHOT]);
    assert_eq!(plan["now"], NOW);
    assert_eq!(plan["objects"]["Node"], 3);
    // 17 pods: the succeeded Job pod is left out, as the pod watch leaves it out.
    assert_eq!(plan["objects"]["Pod"], 17);
    assert_eq!(plan["ignored_kinds"], json!({"Service": 1}));
    assert_eq!(plan["skipped_objects"], json!([]));
    assert_example_decisions(&plan);
}

#[test]
fn plans_the_example_snapshot_as_text_the_same_every_time() {
    let args = ["plan", "--snapshot", SNAPSHOT, "--now", NOW];
    let text = stdout_of(&ballast(&args));
    for expected in [
        "Provisioning: launch 5 node(s), $0.0072/h",
        "launch 1 pod(s) on a new default node: t3a.nano spot us-east-1f $0.0014/h",
        &format!("Disruption: delete {IDLE_NODE} (empty: empty for ttlSecondsAfterEmpty)"),
        "decided in 30s, once ballast has watched the node that long; acts in 45s",
        "scale deployment/coredns in kube-system: 2 → 3 replicas (ladder params in ConfigMap \
         kube-system/coredns-autoscaler: 3 schedulable nodes, 7 cores)",
        "Not read by any loop: 1 Service.",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(stdout_of(&ballast(&args)), text, "the same snapshot and --now give the same plan");
}

#[test]
fn enable_flags_choose_the_loops_and_catalog_prices_the_plan() {
    let plan = plan_json(&["--snapshot", SNAPSHOT, "--enable-proportional"]);
    assert!(plan["provisioning"].is_null() && plan["disruption"].is_null());
    assert_eq!(plan["proportional"]["targets"][0]["desired"], 3);

    let catalog = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/catalog-small.yaml");
    let plan = plan_json(&["--snapshot", SNAPSHOT, "--catalog", catalog, "--enable-provisioning"]);
    let launches = plan["provisioning"]["launches"].as_array().unwrap();
    assert_eq!(launches.len(), 5);
    for launch in launches {
        assert_eq!(launch["cheapest"]["instance_type"], "c5.large");
        assert_eq!(launch["cheapest"]["price_per_hour"], 0.034, "the catalog file's spot price");
    }
}

#[test]
fn bad_objects_are_reported_and_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(SNAPSHOT).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: v1\nkind: Node\nmetadata: {name: ip-10-0-0-1.ec2.internal, creationTimestamp: \
         '2026-11-23T10:00:00Z'}\nstatus: {allocatable: {memory: 8 gigs}}\n",
    )
    .unwrap();
    let plan = plan_json(&["--snapshot", dir.path().to_str().unwrap()]);
    let skipped = plan["skipped_objects"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0]["file"].as_str().unwrap().ends_with("broken.yaml"));
    assert_eq!(skipped[0]["object"], "Node ip-10-0-0-1.ec2.internal");
    assert!(skipped[0]["reason"].as_str().unwrap().contains("8 gigs"), "{skipped:?}");
    assert_example_decisions(&plan);
}

#[test]
fn unusable_input_exits_1_with_a_clear_message() {
    let output = ballast(&["plan", "--snapshot", "/nonexistent/snapshot"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("failed to read snapshot directory /nonexistent/snapshot"), "{stderr}");

    let output = ballast(&["plan", "--snapshot", SNAPSHOT, "--catalog", "/nonexistent/catalog.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/catalog.yaml"));
}

// === Live mode ===

/// The example's objects by API list path, as the API server serves them.
fn served_objects() -> BTreeMap<&'static str, Vec<Value>> {
    let mut by_path: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
    for entry in std::fs::read_dir(SNAPSHOT).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let list: Value = serde_yaml_ng::from_str(&text).unwrap();
        for mut item in list["items"].as_array().unwrap().clone() {
            let path = match item["kind"].as_str().unwrap() {
                "Node" => "/api/v1/nodes",
                // The pod watch asks for live pods only (a field selector on the phase).
                "Pod" if matches!(item["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) => continue,
                "Pod" => "/api/v1/pods",
                "DaemonSet" => "/apis/apps/v1/daemonsets",
                "PodDisruptionBudget" => "/apis/policy/v1/poddisruptionbudgets",
                "ConfigMap" => "/api/v1/configmaps",
                // Converted as `ballast convert` would before installing ballast's CRDs.
                "Provisioner" => "/apis/ballast.dev/v1alpha1/provisioners",
                "AWSNodeTemplate" => {
                    item["kind"] = json!("NodeTemplate");
                    "/apis/ballast.dev/v1alpha1/nodetemplates"
                }
                _ => continue,
            };
            if path.starts_with("/apis/ballast.dev") {
                item["apiVersion"] = json!("ballast.dev/v1alpha1");
            }
            by_path.entry(path).or_default().push(item);
        }
    }
    by_path
}

fn json_response(status: u16, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Lists from `objects` (empty for other kinds), holds watches open, answers coredns's `/scale`, and records
/// every request as `METHOD path?query`.
async fn fake_api_server(requests: Arc<Mutex<Vec<String>>>) -> std::net::SocketAddr {
    let objects = Arc::new(served_objects());
    let app = axum::Router::new().fallback(move |request: Request| {
        let (requests, objects) = (requests.clone(), objects.clone());
        async move {
            let path = request.uri().path().to_string();
            let query = request.uri().query().unwrap_or_default().to_string();
            requests.lock().push(format!("{} {path}?{query}", request.method()));
            if query.contains("watch=true") {
                let body = Body::from_stream(futures::stream::pending::<Result<Vec<u8>, Infallible>>());
                return Response::builder().header("content-type", "application/json").body(body).unwrap();
            }
            if path == "/apis/apps/v1/namespaces/kube-system/deployments/coredns/scale" {
                return json_response(
                    200,
                    &json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                        "metadata": {"name": "coredns", "namespace": "kube-system"},
                        "spec": {"replicas": 2}, "status": {"replicas": 2}}),
                );
            }
            let items = objects.get(path.as_str()).cloned().unwrap_or_default();
            json_response(200, &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "7"}, "items": items}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_the_live_cluster_the_same_with_only_gets() {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let api = fake_api_server(requests.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), api);
    let kubeconfig = kubeconfig.to_str().unwrap().to_string();
    let plan = tokio::task::spawn_blocking(move || {
        plan_json(&["--kubeconfig", &kubeconfig, "--sync-timeout-seconds", "30"])
    })
    .await
    .unwrap();

    assert!(plan["source"].as_str().unwrap().starts_with("cluster of kubeconfig"), "{}", plan["source"]);
    assert_eq!(plan["objects"]["Pod"], 17);
    assert_example_decisions(&plan);

    let requests = requests.lock().clone();
    let writes: Vec<&String> = requests.iter().filter(|r| !r.starts_with("GET ")).collect();
    assert!(writes.is_empty(), "plan must only read: {writes:?}");
    for listed in ["/api/v1/nodes?", "/api/v1/pods?", "/apis/ballast.dev/v1alpha1/provisioners?"] {
        assert!(requests.iter().any(|r| r.contains(listed)), "{listed} was not listed: {requests:?}");
    }
    assert!(
        requests.iter().any(|r| r.starts_with("GET /api/v1/pods?") && r.contains("fieldSelector")),
        "the pod list filters terminal pods as in `run`: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /apis/apps/v1/namespaces/kube-system/deployments/coredns/scale"))
    );
}
