use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Taint as KubeTaint};
use kube::api::ObjectMeta;

use super::*;
use crate::{
    actuator::{Call, RecordingActuator},
    api::{NodeClaimSpec, node_claim::ResourceRequests},
    cloud::{CapacityType, fake::FakeCloud},
    disruption::fixtures::{at, node},
    state::Object,
};

const MIN: i64 = 60;

fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::bundled().subset(["c5.large", "m5.large", "m5.xlarge"]).unwrap())
}

fn requirement(key: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: "In".into(),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
    }
}

/// A claim created at 0 s for `cpu`, allowed on m5.large and m5.xlarge on demand in us-east-1a.
fn claim(name: &str, cpu: &str) -> NodeClaim {
    NodeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            creation_timestamp: Some(Time(at(0))),
            ..ObjectMeta::default()
        },
        spec: NodeClaimSpec {
            provisioner: "default".into(),
            requirements: vec![
                requirement(labels::INSTANCE_TYPE, &["m5.large", "m5.xlarge"]),
                requirement(labels::ZONE, &["us-east-1a"]),
                requirement(labels::CAPACITY_TYPE, &["on-demand"]),
            ],
            resources: ResourceRequests { requests: BTreeMap::from([("cpu".into(), Quantity(cpu.into()))]) },
            ..NodeClaimSpec::default()
        },
        status: None,
    }
}

fn launched(mut c: NodeClaim, provider_id: &str, when: Timestamp) -> NodeClaim {
    let instance = Instance {
        id: provider_id.rsplit('/').next().unwrap().into(),
        provider_id: provider_id.into(),
        instance_type: "m5.large".into(),
        zone: "us-east-1a".into(),
        capacity_type: CapacityType::OnDemand,
        price: 0.096,
        launched_at: when,
        state: InstanceState::Running,
        tags: BTreeMap::from([(labels::BALLAST_NODE_CLAIM.to_string(), c.name_any())]),
    };
    c.status = Some(launched_status(None, &instance, when));
    c
}

/// The node the kubelet of `claim`'s instance registers (named unlike the claim, as EC2 names nodes).
fn kubelet_node(provider_id: &str) -> Node {
    let (mut n, _) = node("ip-10-0-0-1.ec2.internal", "m5.large", CapacityType::OnDemand, at(0));
    n.provider_id = Some(provider_id.into());
    n.labels.remove(labels::BALLAST_NODE_CLAIM);
    n
}

fn snapshot(objects: impl IntoIterator<Item = Object>) -> Snapshot {
    Snapshot::from_objects(objects)
}

fn claims(list: impl IntoIterator<Item = NodeClaim>) -> Vec<Object> {
    list.into_iter().map(|c| Object::NodeClaim(Arc::new(c))).collect()
}

#[test]
fn a_new_claim_is_launched_and_expires_past_the_launch_timeout() {
    let snap = snapshot(claims([claim("a", "1")]));
    let timeouts = Timeouts::default();
    assert_eq!(plan(&snap, &timeouts, at(14 * MIN)), [Step::Launch { claim: "a".into() }]);
    assert_eq!(next_wake(&snap, &timeouts, at(5)), Some(at(5)), "launch at once");
    match &plan(&snap, &timeouts, at(15 * MIN))[..] {
        [Step::Expire { claim, reason }] => {
            assert_eq!(claim, "a");
            assert_eq!(reason, "not launched within 15m");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_launched_claim_waits_for_its_node_then_expires_past_the_registration_timeout() {
    let id = "aws:///us-east-1a/i-a";
    let snap = snapshot(claims([launched(claim("a", "1"), id, at(60))]));
    let timeouts = Timeouts { launch: DEFAULT_TIMEOUT, registration: SignedDuration::from_mins(5) };
    assert!(plan(&snap, &timeouts, at(60 + 5 * MIN - 1)).is_empty());
    assert_eq!(next_wake(&snap, &timeouts, at(61)), Some(at(60 + 5 * MIN)), "counted from the launch");
    match &plan(&snap, &timeouts, at(60 + 5 * MIN))[..] {
        [Step::Expire { claim, reason }] => {
            assert_eq!((claim.as_str(), reason.as_str()), ("a", "no node registered within 5m"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_node_with_the_claims_provider_id_registers_and_initializes_it() {
    let id = "aws:///us-east-1a/i-a";
    let mut objects = claims([launched(claim("a", "1"), id, at(0))]);
    objects.push(Object::Node(Arc::new(kubelet_node(id))));
    let mut other = kubelet_node("aws:///us-east-1a/i-other");
    other.name = "ip-10-0-0-2.ec2.internal".into();
    objects.push(Object::Node(Arc::new(other)));
    let snap = snapshot(objects);
    let node = "ip-10-0-0-1.ec2.internal".to_string();
    assert_eq!(
        plan(&snap, &Timeouts::default(), at(30 * MIN)),
        [
            Step::Register { claim: "a".into(), node: node.clone() },
            Step::Initialize { claim: "a".into(), node: node.clone() }
        ],
        "no timeout once the node is there"
    );
}

#[test]
fn initialization_waits_for_ready_startup_taints_and_extended_resources() {
    let id = "aws:///us-east-1a/i-a";
    let mut c = launched(claim("a", "1"), id, at(0));
    c.spec.startup_taints = Some(vec![KubeTaint {
        key: "cni/starting".into(),
        effect: "NoSchedule".into(),
        ..KubeTaint::default()
    }]);
    c.spec.resources.requests.insert("nvidia.com/gpu".into(), Quantity("1".into()));
    let status = c.status.as_mut().unwrap();
    status.node_name = Some("ip-10-0-0-1.ec2.internal".into());
    set_condition(status, REGISTERED, at(10));
    let registered = c;
    let with_node = |edit: &dyn Fn(&mut Node)| {
        let mut n = kubelet_node(id);
        n.allocatable.set("nvidia.com/gpu", 1);
        edit(&mut n);
        let mut objects = claims([registered.clone()]);
        objects.push(Object::Node(Arc::new(n)));
        plan(&snapshot(objects), &Timeouts::default(), at(60))
    };
    assert!(with_node(&|n| n.ready = false).is_empty(), "not ready");
    assert!(
        with_node(&|n| n.taints.push(Taint {
            key: "cni/starting".into(),
            value: String::new(),
            effect: TaintEffect::NoSchedule
        }))
        .is_empty(),
        "startup taint still there"
    );
    assert!(
        with_node(&|n| n.taints.push(Taint {
            key: "node.kubernetes.io/not-ready".into(),
            value: String::new(),
            effect: TaintEffect::NoSchedule
        }))
        .is_empty(),
        "not-ready taint still there"
    );
    assert!(with_node(&|n| n.allocatable.set("nvidia.com/gpu", 0)).is_empty(), "GPU not reported yet");
    assert_eq!(
        with_node(&|_| {}),
        [Step::Initialize { claim: "a".into(), node: "ip-10-0-0-1.ec2.internal".into() }]
    );
}

#[test]
fn deleting_and_initialized_claims_need_nothing() {
    let id = "aws:///us-east-1a/i-a";
    let mut done = launched(claim("a", "1"), id, at(0));
    let status = done.status.as_mut().unwrap();
    status.node_name = Some("ip-10-0-0-1.ec2.internal".into());
    set_condition(status, REGISTERED, at(0));
    set_condition(status, INITIALIZED, at(0));
    let mut deleting = claim("b", "1");
    deleting.metadata.deletion_timestamp = Some(Time(at(0)));
    let mut objects = claims([done, deleting]);
    objects.push(Object::Node(Arc::new(kubelet_node(id))));
    let snap = snapshot(objects);
    assert!(plan(&snap, &Timeouts::default(), at(60 * MIN)).is_empty());
    assert_eq!(next_wake(&snap, &Timeouts::default(), at(0)), None);
}

#[test]
fn launch_options_come_from_the_claims_requirements_and_requests() {
    let options = launch_options(&claim("a", "1"), &catalog());
    assert!(!options.is_empty());
    assert!(options.iter().all(|o| o.zone == "us-east-1a" && o.capacity_type == CapacityType::OnDemand));
    assert_eq!(options[0].instance_type, "m5.large");
    assert!(options.windows(2).all(|w| w[0].price <= w[1].price));
    // 3 CPUs fit only the m5.xlarge.
    let big = launch_options(&claim("a", "3"), &catalog());
    assert!(!big.is_empty() && big.iter().all(|o| o.instance_type == "m5.xlarge"), "{big:?}");
    let mut bad = claim("a", "1");
    bad.spec.requirements[0].operator = "Near".into();
    assert!(launch_options(&bad, &catalog()).is_empty(), "an unreadable requirement allows nothing");
}

fn lifecycle(cloud: Arc<FakeCloud>, kube: Arc<RecordingActuator>) -> Lifecycle {
    Lifecycle::new(cloud, kube, Timeouts::default(), LifecycleMetrics::default())
}

#[tokio::test]
async fn a_pass_launches_and_records_the_instance() {
    let cloud = Arc::new(FakeCloud::new(catalog(), at(0)));
    let kube = Arc::new(RecordingActuator::new());
    let mut lc = lifecycle(cloud.clone(), kube.clone());
    let (report, error) = lc.reconcile(&snapshot(claims([claim("a", "1")])), at(1)).await;
    assert!(error.is_none(), "{error:?}");
    let (name, instance) = &report.launched[0];
    assert_eq!(name, "a");
    let request = &cloud.create_calls()[0];
    assert_eq!(request.claim_name, "a");
    assert_eq!(request.options[0].instance_type, "m5.large");
    let status = kube.node_claim_status("a").unwrap();
    assert_eq!(status.provider_id.as_deref(), Some(instance.provider_id.as_str()));
    assert_eq!(status.instance_type.as_deref(), Some("m5.large"));
    assert!(has_condition(&NodeClaim { status: Some(status), ..claim("a", "1") }, LAUNCHED));
}

#[tokio::test]
async fn an_instance_already_tagged_for_the_claim_is_adopted_not_launched_again() {
    let cloud = Arc::new(FakeCloud::new(catalog(), at(0)));
    let c = claim("a", "1");
    // A previous process launched it and died before writing the status.
    let before = launch(&*cloud, &c, launch_options(&c, &catalog())).await.unwrap();
    let kube = Arc::new(RecordingActuator::new());
    let mut lc = lifecycle(cloud.clone(), kube.clone());
    let (report, error) = lc.reconcile(&snapshot(claims([c])), at(5)).await;
    assert!(error.is_none(), "{error:?}");
    assert!(report.launched.is_empty());
    assert_eq!(report.adopted[0].1.provider_id, before.provider_id);
    assert_eq!(cloud.create_calls().len(), 1, "no second instance");
    assert_eq!(kube.node_claim_status("a").unwrap().provider_id, Some(before.provider_id));
}

#[tokio::test]
async fn a_launch_that_cannot_succeed_deletes_the_claim_with_an_event() {
    let cloud = Arc::new(FakeCloud::new(catalog(), at(0)));
    cloud.set_next_create_error(CloudError::Unauthorized("no ec2:CreateFleet".into()));
    let kube = Arc::new(RecordingActuator::new());
    let mut lc = lifecycle(cloud, kube.clone());
    let (report, _) = lc.reconcile(&snapshot(claims([claim("a", "1")])), at(1)).await;
    assert_eq!(report.deleted.len(), 1);
    assert!(report.deleted[0].1.contains("not authorized"), "{report:?}");
    assert!(kube.calls().contains(&Call::DeleteNodeClaim("a".into())));
    let event = kube.events().pop().unwrap();
    assert_eq!((event.reason.as_str(), event.type_), ("LaunchFailed", EventType::Warning));
}

#[tokio::test]
async fn a_throttled_launch_keeps_the_claim_for_the_next_pass() {
    let cloud = Arc::new(FakeCloud::new(catalog(), at(0)));
    cloud.set_next_create_error(CloudError::Throttled("slow down".into()));
    let kube = Arc::new(RecordingActuator::new());
    let mut lc = lifecycle(cloud, kube.clone());
    let (report, error) = lc.reconcile(&snapshot(claims([claim("a", "1")])), at(1)).await;
    assert!(matches!(error, Some(Error::Launch { .. })), "{error:?}");
    assert!(report.deleted.is_empty() && kube.calls().is_empty());
}

#[tokio::test]
async fn registration_labels_the_node_and_records_it_on_the_claim() {
    let id = "aws:///us-east-1a/i-a";
    let mut c = launched(claim("a", "1"), id, at(0));
    c.spec.labels = Some(BTreeMap::from([("team".to_string(), "web".to_string())]));
    let mut objects = claims([c]);
    objects.push(Object::Node(Arc::new(kubelet_node(id))));
    let kube = Arc::new(RecordingActuator::new());
    let mut lc = lifecycle(Arc::new(FakeCloud::new(catalog(), at(0))), kube.clone());
    let (report, error) = lc.reconcile(&snapshot(objects), at(60)).await;
    assert!(error.is_none(), "{error:?}");
    let node = "ip-10-0-0-1.ec2.internal";
    assert_eq!(report.registered, [("a".to_string(), node.to_string())]);
    assert_eq!(report.initialized, ["a"]);
    let labelled: Vec<BTreeMap<String, String>> = kube
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::LabelNode(n, l) if n == node => Some(l),
            _ => None,
        })
        .collect();
    assert_eq!(labelled[0]["team"], "web");
    assert_eq!(labelled[0][labels::BALLAST_NODE_CLAIM], "a");
    assert_eq!(labelled[0][labels::BALLAST_REGISTERED], "true");
    assert_eq!(labelled[1][labels::BALLAST_INITIALIZED], "true");
    let status = kube.node_claim_status("a").unwrap();
    assert_eq!(status.node_name.as_deref(), Some(node));
    assert!(status.allocatable.unwrap().contains_key("cpu"));
    let types: Vec<&str> = status.conditions.as_ref().unwrap().iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, [LAUNCHED, REGISTERED, INITIALIZED]);
}

#[tokio::test]
async fn a_timed_out_claim_is_deleted_with_an_event() {
    let snap = snapshot(claims([launched(claim("a", "1"), "aws:///us-east-1a/i-a", at(0))]));
    let kube = Arc::new(RecordingActuator::new());
    let mut lc = lifecycle(Arc::new(FakeCloud::new(catalog(), at(0))), kube.clone());
    let (report, _) = lc.reconcile(&snap, at(15 * MIN)).await;
    assert_eq!(report.deleted, [("a".to_string(), "no node registered within 15m".to_string())]);
    assert!(kube.calls().contains(&Call::DeleteNodeClaim("a".into())));
    assert_eq!(kube.events()[0].reason, "NodeClaimTimedOut");
}
