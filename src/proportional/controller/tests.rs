use std::collections::BTreeMap;

use clap::Parser;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::{
    actuator::{Call, RecordingActuator},
    api::{NodeClaimSpec, NodeClaimStatus, Quantity},
    clock::ManualClock,
    model::Node,
    proportional::status::tests::mk_node,
    state::Object,
};

const SEED_LADDER: &str = r#"{"nodesToReplicas": [[1,1],[2,2],[3,3],[4,3],[5,5]]}"#;

fn now() -> Timestamp {
    "2026-11-23T09:00:00Z".parse().unwrap()
}

fn args(flags: &[&str]) -> ProportionalArgs {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        proportional: ProportionalArgs,
    }
    Cli::try_parse_from(std::iter::once("ballast").chain(flags.iter().copied())).unwrap().proportional
}

fn mk_config_map(
    namespace: &str,
    name: &str,
    annotations: &[(&str, &str)],
    data: &[(&str, &str)],
) -> ConfigMap {
    let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ConfigMap {
        namespace: namespace.into(),
        name: name.into(),
        annotations: map(annotations),
        data: map(data),
        resource_version: Some("1".into()),
    }
}

fn ladder_for(name: &str, targets: &str) -> ConfigMap {
    mk_config_map("kube-system", name, &[(TARGET_ANNOTATION, targets)], &[("ladder", SEED_LADDER)])
}

fn ready_nodes(count: usize) -> Vec<Object> {
    (0..count).map(|i| node(mk_node(&format!("node-{i}"), 2000, true, false))).collect()
}

fn node(node: Node) -> Object {
    Object::Node(Arc::new(node))
}

fn cm(cm: ConfigMap) -> Object {
    Object::ConfigMap(Arc::new(cm))
}

fn deployment(name: &str) -> ScaleTarget {
    ScaleTarget { kind: "deployment".into(), namespace: "kube-system".into(), name: name.into() }
}

fn mk_claim(name: &str, cpu: Option<&str>, created: Timestamp) -> NodeClaim {
    let mut claim =
        NodeClaim::new(name, NodeClaimSpec { provisioner: "default".into(), ..Default::default() });
    claim.metadata.creation_timestamp = Some(Time(created));
    claim.status = Some(NodeClaimStatus {
        allocatable: cpu.map(|cpu| BTreeMap::from([(CPU.to_string(), Quantity::new(cpu))])),
        ..Default::default()
    });
    claim
}

struct Fixture {
    cluster: Cluster,
    actuator: Arc<RecordingActuator>,
    loop_: Proportional,
}

fn fixture(flags: &[&str], objects: Vec<Object>) -> Fixture {
    let cluster = Cluster::new();
    objects.into_iter().for_each(|object| cluster.apply(object));
    let actuator = Arc::new(RecordingActuator::new());
    let loop_ =
        Proportional::new(args(flags), cluster.clone(), actuator.clone(), Arc::new(ManualClock::new(now())));
    Fixture { cluster, actuator, loop_ }
}

fn plan_with(loop_: &Proportional, objects: Vec<Object>, current: &[(ScaleTarget, i32)]) -> Plan {
    let snap = Snapshot::from_objects(objects);
    let current = current.iter().map(|(t, r)| (t.clone(), ScaleRead::Replicas(*r))).collect();
    loop_.plan(&snap, &current, now())
}

fn scale_calls(actuator: &RecordingActuator) -> Vec<(String, i32)> {
    actuator
        .calls()
        .into_iter()
        .filter_map(|call| if let Call::SetScale(t, r) = call { Some((t.name, r)) } else { None })
        .collect()
}

// === plan ===

#[test]
fn seed_ladder_target_follows_the_node_count() {
    let f = fixture(&[], vec![]);
    for (nodes, want) in [(0, 1), (1, 1), (2, 2), (3, 3), (4, 3), (5, 5), (6, 5)] {
        let mut objects = ready_nodes(nodes);
        objects.push(cm(ladder_for("nginx-autoscaler", "deployment/nginx-deployment")));
        let plan = plan_with(&f.loop_, objects, &[(deployment("nginx-deployment"), 1)]);
        assert_eq!(plan.decisions.len(), 1);
        assert_eq!(plan.decisions[0].desired, want, "{nodes} nodes");
        assert!(plan.warnings.is_empty());
    }
}

#[test]
fn one_config_map_scales_every_listed_target_with_its_inputs() {
    let f = fixture(&[], vec![]);
    let mut objects = ready_nodes(3);
    objects.push(node(mk_node("cordoned", 2000, true, true)));
    objects.push(cm(mk_config_map(
        "kube-system",
        "dns-autoscaler",
        &[(TARGET_ANNOTATION, "deployment/coredns, statefulset/cache")],
        &[("linear", r#"{"coresPerReplica": 4, "nodesPerReplica": 1}"#)],
    )));
    let cache = ScaleTarget { kind: "statefulset".into(), ..deployment("cache") };
    let plan = plan_with(&f.loop_, objects, &[(deployment("coredns"), 3), (cache.clone(), 1)]);
    let summary: Vec<_> =
        plan.decisions.iter().map(|d| (d.target.name.as_str(), d.current, d.desired)).collect();
    assert_eq!(summary, [("coredns", 3, 3), ("cache", 1, 3)]);
    let inputs = plan.decisions[1].inputs;
    assert_eq!(
        inputs.status,
        ClusterStatus { total_nodes: 4, total_cores: 8, schedulable_nodes: 3, schedulable_cores: 6 }
    );
    assert_eq!(inputs.to_string(), "3 schedulable nodes, 6 cores");
    assert!(!plan.decisions[0].changes() && plan.decisions[1].changes());
}

#[test]
fn bad_config_map_warns_and_leaves_other_targets_alone() {
    let f = fixture(&[], vec![]);
    let bad = mk_config_map(
        "kube-system",
        "broken",
        &[(TARGET_ANNOTATION, "deployment/a")],
        &[("linear", r#"{"nodesPerReplica": 1}"#), ("ladder", "{}")],
    );
    let mut objects = ready_nodes(2);
    objects.extend([cm(bad), cm(ladder_for("good", "deployment/b"))]);
    let plan = plan_with(&f.loop_, objects, &[(deployment("a"), 7), (deployment("b"), 1)]);
    assert_eq!(plan.decisions.iter().map(|d| d.target.name.as_str()).collect::<Vec<_>>(), ["b"]);
    assert_eq!(plan.warnings.len(), 1);
    let warning = &plan.warnings[0];
    assert_eq!((warning.kind.as_str(), warning.name.as_str()), ("ConfigMap", "broken"));
    assert_eq!((warning.type_, warning.reason.as_str()), (EventType::Warning, "InvalidConfig"));
    assert_eq!(
        warning.message,
        r#"failed to read proportional params from ConfigMap kube-system/broken: it has keys ["ladder", "linear"]; expected exactly one, `linear` or `ladder`"#
    );
}

#[test]
fn bad_annotations_are_reported() {
    let f = fixture(&[], vec![]);
    for (annotation, value, needle) in [
        (TARGET_ANNOTATION, "daemonset/x", "unsupported kind"),
        (COUNT_LAUNCHING_ANNOTATION, "yes", "\"yes\" is not true or false"),
        (NODE_LABELS_ANNOTATION, "pool", "not of the form key=value"),
    ] {
        let mut config_map = ladder_for("dns", "deployment/coredns");
        config_map.annotations.insert(annotation.into(), value.into());
        let plan = plan_with(&f.loop_, vec![cm(config_map)], &[(deployment("coredns"), 1)]);
        assert!(plan.decisions.is_empty(), "{annotation}");
        assert!(plan.warnings[0].message.contains(annotation), "{}", plan.warnings[0].message);
        assert!(plan.warnings[0].message.contains(needle), "{}", plan.warnings[0].message);
    }
}

#[test]
fn contested_target_is_left_alone_and_reported_on_both_config_maps() {
    let f = fixture(&[], vec![]);
    let objects =
        vec![cm(ladder_for("one", "deployment/coredns")), cm(ladder_for("two", "deployment/coredns"))];
    let plan = plan_with(&f.loop_, objects, &[(deployment("coredns"), 1)]);
    assert!(plan.decisions.is_empty());
    let named: Vec<_> = plan.warnings.iter().map(|w| (w.name.as_str(), w.reason.as_str())).collect();
    assert_eq!(named, [("one", "TargetConflict"), ("two", "TargetConflict")]);
}

#[test]
fn node_labels_flag_and_annotation_select_nodes() {
    let mut objects = ready_nodes(1);
    for i in 0..3 {
        let mut n = mk_node(&format!("dns-{i}"), 2000, true, false);
        n.labels.insert("pool".into(), "dns".into());
        objects.push(node(n));
    }
    let with_flag = fixture(&["--proportional-node-labels=pool=dns"], vec![]);
    let mut objects_flag = objects.clone();
    objects_flag.push(cm(ladder_for("dns", "deployment/coredns")));
    let plan = plan_with(&with_flag.loop_, objects_flag, &[(deployment("coredns"), 1)]);
    assert_eq!(plan.decisions[0].inputs.status.total_nodes, 3);

    let no_flag = fixture(&[], vec![]);
    let mut annotated = ladder_for("dns", "deployment/coredns");
    annotated.annotations.insert(NODE_LABELS_ANNOTATION.into(), "pool=dns".into());
    objects.push(cm(annotated));
    let plan = plan_with(&no_flag.loop_, objects, &[(deployment("coredns"), 1)]);
    assert_eq!(plan.decisions[0].inputs.status.total_nodes, 3);
}

#[test]
fn launching_node_claims_count_only_when_the_config_map_asks() {
    let f = fixture(&[], vec![]);
    let mut registered = mk_claim("registered", Some("2"), now());
    registered.status.as_mut().unwrap().node_name = Some("node-0".into());
    let mut by_provider_id = mk_claim("by-provider-id", Some("2"), now());
    by_provider_id.status.as_mut().unwrap().provider_id = Some("aws:///us-east-1a/i-1".into());
    let mut deleting = mk_claim("deleting", Some("2"), now());
    deleting.metadata.deletion_timestamp = Some(Time(now()));
    let stuck = mk_claim("stuck", Some("2"), now() - SignedDuration::from_mins(20));
    let mut before_launch = mk_claim("before-launch", None, now() - SignedDuration::from_mins(1));
    before_launch.spec.resources.requests.insert(CPU.into(), Quantity::new("1500m"));

    let mut n1 = mk_node("node-1", 2000, true, false);
    n1.provider_id = Some("aws:///us-east-1a/i-1".into());
    let mut objects = vec![node(mk_node("node-0", 2000, true, false)), node(n1)];
    for claim in [
        mk_claim("launching", Some("3930m"), now()),
        registered,
        by_provider_id,
        deleting,
        stuck,
        before_launch,
    ] {
        objects.push(Object::NodeClaim(Arc::new(claim)));
    }
    let counting = {
        let mut c = ladder_for("dns", "deployment/coredns");
        c.annotations.insert(COUNT_LAUNCHING_ANNOTATION.into(), "true".into());
        c
    };
    let mut with = objects.clone();
    with.push(cm(counting));
    let plan = plan_with(&f.loop_, with, &[(deployment("coredns"), 1)]);
    let inputs = plan.decisions[0].inputs;
    assert_eq!(inputs.launching, 2, "launching and before-launch");
    assert_eq!((inputs.status.schedulable_nodes, inputs.status.schedulable_cores), (4, 10));
    assert_eq!(plan.decisions[0].desired, 3);
    assert_eq!(inputs.to_string(), "4 schedulable nodes (2 launching), 10 cores");

    objects.push(cm(ladder_for("dns", "deployment/coredns")));
    let plan = plan_with(&f.loop_, objects, &[(deployment("coredns"), 1)]);
    assert_eq!((plan.decisions[0].inputs.launching, plan.decisions[0].desired), (0, 2));
}

#[test]
fn missing_and_unreadable_targets_get_no_decision() {
    let f = fixture(&[], vec![]);
    let snap = Snapshot::from_objects([cm(ladder_for("dns", "deployment/gone,deployment/flaky"))]);
    let current = BTreeMap::from([(deployment("flaky"), ScaleRead::Failed("timed out".into()))]);
    let plan = f.loop_.plan(&snap, &current, now());
    assert!(plan.decisions.is_empty());
    assert_eq!(plan.warnings.len(), 1);
    assert_eq!(plan.warnings[0].reason, "TargetNotFound");
    assert!(plan.warnings[0].message.contains("deployment/gone in namespace kube-system"));
    assert!(matches!(&plan.errors[..], [Error::ReadScale { message, .. }] if message == "timed out"));
}

// === reconcile: observe, plan, act ===

#[tokio::test]
async fn no_write_when_replicas_already_match() {
    let mut objects = ready_nodes(4);
    objects.push(cm(ladder_for("dns", "deployment/coredns")));
    let f = fixture(&[], objects);
    f.actuator.set_existing_scale(deployment("coredns"), 3);
    assert!(f.loop_.reconcile().await.is_empty());
    assert_eq!(f.actuator.calls(), []);
}

#[tokio::test]
async fn change_writes_scale_and_an_event_with_old_new_and_inputs() {
    let mut objects = ready_nodes(5);
    objects.push(cm(ladder_for("dns", "deployment/coredns")));
    let f = fixture(&[], objects);
    f.actuator.set_existing_scale(deployment("coredns"), 3);
    assert!(f.loop_.reconcile().await.is_empty());
    assert_eq!(f.actuator.scale_of(&deployment("coredns")), Some(5));
    assert_eq!(scale_calls(&f.actuator), [("coredns".to_string(), 5)]);
    assert_eq!(
        f.actuator.events(),
        [EventRecord {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("kube-system".into()),
            name: "coredns".into(),
            type_: EventType::Normal,
            reason: "ScaledReplicas".into(),
            message:
                "scaled from 3 to 5 replicas: 5 schedulable nodes, 10 cores, ladder params in ConfigMap \
                      kube-system/dns"
                    .into(),
        }]
    );
    // Settled: the next pass writes nothing.
    f.actuator.take_calls();
    f.loop_.reconcile().await;
    assert_eq!(f.actuator.calls(), []);
}

#[tokio::test]
async fn bad_config_map_gets_one_warning_and_no_write() {
    let mut objects = ready_nodes(5);
    objects.push(cm(mk_config_map(
        "kube-system",
        "dns",
        &[(TARGET_ANNOTATION, "deployment/coredns")],
        &[("linear", r#"{"nodesPerReplica": 1, "min": 4, "max": 2}"#)],
    )));
    objects.push(cm(ladder_for("other", "deployment/other")));
    let f = fixture(&[], objects);
    f.actuator.set_existing_scale(deployment("coredns"), 2);
    f.actuator.set_existing_scale(deployment("other"), 1);
    f.loop_.reconcile().await;
    assert_eq!(f.actuator.scale_of(&deployment("coredns")), Some(2));
    assert_eq!(scale_calls(&f.actuator), [("other".to_string(), 5)]);
    let warnings: Vec<_> =
        f.actuator.events().into_iter().filter(|e| e.type_ == EventType::Warning).collect();
    assert_eq!(warnings.len(), 1);
    assert_eq!((warnings[0].kind.as_str(), warnings[0].name.as_str()), ("ConfigMap", "dns"));
    assert!(warnings[0].message.ends_with("max (2) must be 0 (unbounded) or at least min (4)"));

    // A standing problem is not re-reported every poll; a fixed then re-broken one is.
    f.actuator.take_calls();
    f.loop_.reconcile().await;
    assert_eq!(f.actuator.calls(), []);
    f.cluster.apply(cm(ladder_for("dns", "deployment/coredns")));
    f.loop_.reconcile().await;
    assert_eq!(scale_calls(&f.actuator), [("coredns".to_string(), 5)]);
}

#[tokio::test]
async fn missing_target_is_reported_once_and_retried() {
    let mut objects = ready_nodes(2);
    objects.push(cm(ladder_for("dns", "deployment/coredns,deployment/later")));
    let f = fixture(&[], objects);
    f.actuator.set_existing_scale(deployment("coredns"), 1);
    let errors = f.loop_.reconcile().await;
    assert!(errors.is_empty(), "a missing target is a warning, not a failed pass: {errors:?}");
    assert_eq!(scale_calls(&f.actuator), [("coredns".to_string(), 2)]);
    let reasons: Vec<_> = f.actuator.events().into_iter().map(|e| (e.name, e.reason)).collect();
    assert_eq!(
        reasons,
        [("coredns".into(), "ScaledReplicas".into()), ("dns".into(), "TargetNotFound".into())]
    );

    f.actuator.take_calls();
    f.loop_.reconcile().await;
    assert_eq!(f.actuator.calls(), [], "reported once");

    f.actuator.set_existing_scale(deployment("later"), 1);
    f.loop_.reconcile().await;
    assert_eq!(scale_calls(&f.actuator), [("later".to_string(), 2)]);
}

#[tokio::test]
async fn flag_config_map_is_created_from_default_params_and_never_overwritten() {
    let flags = [
        "--proportional-configmap=dns-autoscaler",
        "--proportional-target=deployment/coredns",
        r#"--proportional-default-params={"linear":{"nodesPerReplica":1,"preventSinglePointFailure":true}}"#,
    ];
    let f = fixture(&flags, ready_nodes(3));
    f.actuator.set_existing_scale(deployment("coredns"), 1);
    f.loop_.reconcile().await;
    let created = Call::CreateConfigMap {
        namespace: "kube-system".into(),
        name: "dns-autoscaler".into(),
        data: BTreeMap::from([(
            "linear".to_string(),
            r#"{"nodesPerReplica":1,"preventSinglePointFailure":true}"#.to_string(),
        )]),
    };
    assert!(f.actuator.calls().contains(&created));
    assert_eq!(f.actuator.scale_of(&deployment("coredns")), Some(3), "scaled from the defaults at once");

    // The user's own params win once the ConfigMap exists, with or without the annotation.
    f.cluster.apply(cm(mk_config_map("kube-system", "dns-autoscaler", &[], &[("ladder", SEED_LADDER)])));
    f.actuator.take_calls();
    f.loop_.reconcile().await;
    assert!(!f.actuator.calls().iter().any(|c| matches!(c, Call::CreateConfigMap { .. })));
    assert_eq!(f.actuator.scale_of(&deployment("coredns")), Some(3));
    f.cluster.apply(node(mk_node("node-3", 2000, true, false)));
    f.cluster.apply(node(mk_node("node-4", 2000, true, false)));
    f.loop_.reconcile().await;
    assert_eq!(f.actuator.scale_of(&deployment("coredns")), Some(5));
}

#[tokio::test]
async fn flag_config_map_missing_without_defaults_fails_the_pass_without_writes() {
    let flags = ["--proportional-configmap=dns-autoscaler", "--proportional-target=deployment/coredns"];
    let f = fixture(&flags, ready_nodes(3));
    f.actuator.set_existing_scale(deployment("coredns"), 1);
    let errors = f.loop_.reconcile().await;
    assert!(
        matches!(&errors[..], [Error::MissingConfigMap { config_map }] if config_map == "kube-system/dns-autoscaler")
    );
    assert_eq!(f.actuator.calls(), []);
}

// === run ===

#[tokio::test(start_paused = true)]
async fn run_acts_only_as_leader_on_node_changes_and_every_poll_period() {
    let mut objects = ready_nodes(1);
    objects.push(cm(ladder_for("dns", "deployment/coredns")));
    let f = fixture(&[], objects);
    f.actuator.set_existing_scale(deployment("coredns"), 1);
    let (leader_tx, leader_rx) = watch::channel(false);
    let shutdown = CancellationToken::new();
    let Fixture { cluster, actuator, loop_ } = f;
    let task = tokio::spawn(loop_.run(leader_rx, shutdown.clone()));

    // Not leader: nodes come and go, nothing is written.
    cluster.apply(node(mk_node("node-1", 2000, true, false)));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(actuator.calls(), []);

    // Leader: acts at once.
    leader_tx.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(actuator.scale_of(&deployment("coredns")), Some(2));

    // A node change is picked up after the debounce, well before the poll period.
    cluster.apply(node(mk_node("node-2", 2000, true, false)));
    tokio::time::sleep(DEBOUNCE + Duration::from_millis(10)).await;
    assert_eq!(actuator.scale_of(&deployment("coredns")), Some(3));

    // Someone scales the target by hand: the next poll puts it back, with no cluster change.
    actuator.set_existing_scale(deployment("coredns"), 7);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(actuator.scale_of(&deployment("coredns")), Some(3));

    // Losing the lease stops writes.
    leader_tx.send(false).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    actuator.take_calls();
    cluster.apply(node(mk_node("node-3", 2000, true, false)));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(actuator.calls(), []);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(1), task).await.expect("run returns on shutdown").unwrap();
}

#[test]
fn inputs_name_what_the_formula_counted() {
    let status =
        ClusterStatus { total_nodes: 5, total_cores: 20, schedulable_nodes: 3, schedulable_cores: 12 };
    let inputs = Inputs { status, launching: 0, include_unschedulable: true };
    assert_eq!(inputs.to_string(), "5 nodes, 20 cores");
    let inputs = Inputs { status, launching: 1, include_unschedulable: false };
    assert_eq!(inputs.to_string(), "3 schedulable nodes (1 launching), 12 cores");
}
