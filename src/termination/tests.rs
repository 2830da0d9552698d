use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::*;
use crate::{
    actuator::{Call, RecordingActuator},
    cloud::{CapacityType::OnDemand, Catalog, Instance, LaunchRequest},
    disruption::fixtures::{World, at, node, pod, provisioner},
    model::OwnerRef,
    state::Object,
};

fn tainted(world: &mut World, name: &str) {
    let (mut n, c) = node(name, "m5.large", OnDemand, at(0));
    n.taints.push(disruption_taint());
    world.add(Object::Node(Arc::new(n))).add(Object::NodeClaim(Arc::new(c)));
}

fn ds_pod(name: &str, node: &str) -> Pod {
    let mut p = pod(name, Some(node), 100);
    p.owner =
        Some(OwnerRef { kind: "DaemonSet".into(), name: "agent".into(), uid: "ds".into(), controller: true });
    p
}

fn critical_pod(name: &str, node: &str) -> Pod {
    let mut p = pod(name, Some(node), 100);
    p.priority_class = Some("system-cluster-critical".into());
    p
}

fn steps(world: &World, drain_started: &BTreeMap<String, Timestamp>, now: Timestamp) -> Vec<Step> {
    let snap = world.snapshot();
    let settings = World::settings(&snap);
    let finalized = snap.nodes.keys().cloned().collect();
    plan(&snap, &settings, drain_started, &finalized, now)
}

fn evicted(steps: &[Step]) -> Vec<&str> {
    steps.iter().filter_map(|s| if let Step::Evict(_, n) = s { Some(n.as_str()) } else { None }).collect()
}

#[test]
fn pods_are_evicted_non_critical_then_critical_then_daemonsets_before_the_instance_goes() {
    let mut w = World::new(provisioner("default", true, |_| {}), OnDemand);
    tainted(&mut w, "a");
    let mut mirror = pod("static", Some("a"), 100);
    mirror.annotations.insert("kubernetes.io/config.mirror".into(), "x".into());
    let mut done = pod("job", Some("a"), 100);
    done.phase = crate::model::PodPhase::Succeeded;
    for p in [pod("web", Some("a"), 100), critical_pod("dns", "a"), ds_pod("agent-x", "a"), mirror, done] {
        w.add(Object::Pod(Arc::new(p)));
    }
    let s = steps(&w, &BTreeMap::new(), at(10));
    assert_eq!(evicted(&s), ["web"], "{s:?}");
    assert!(!s.iter().any(|s| matches!(s, Step::Terminate { .. })));

    w.objects.retain(|o| !matches!(o, Object::Pod(p) if p.name == "web"));
    assert_eq!(evicted(&steps(&w, &BTreeMap::new(), at(10))), ["dns"]);

    w.objects.retain(|o| !matches!(o, Object::Pod(p) if p.name == "dns"));
    let s = steps(&w, &BTreeMap::new(), at(10));
    assert_eq!(evicted(&s), ["agent-x"], "mirror and terminal pods are skipped");
    assert_eq!(
        s.last(),
        Some(&Step::Terminate {
            node: Some("a".into()),
            claim: Some("a".into()),
            provider_id: Some("aws:///us-east-1a/i-a".into())
        })
    );
}

#[test]
fn a_deleting_node_is_tainted_and_pods_past_max_drain_time_are_deleted_with_their_grace() {
    let mut w = World::new(
        provisioner("default", true, |s| {
            s.disruption = Some(crate::api::provisioner::Disruption {
                max_drain_time: Some("10m".into()),
                ..Default::default()
            })
        }),
        OnDemand,
    );
    let (mut n, c) = node("a", "m5.large", OnDemand, at(0));
    n.deleting = Some(at(0));
    w.add(Object::Node(Arc::new(n))).add(Object::NodeClaim(Arc::new(c)));
    w.add(Object::Pod(Arc::new(pod("web", Some("a"), 100))));
    let started = BTreeMap::from([("a".to_string(), at(0))]);
    let s = steps(&w, &started, at(599));
    assert_eq!(s[0], Step::Taint("a".into()));
    assert_eq!(evicted(&s), ["web"]);
    let s = steps(&w, &started, at(600));
    assert!(s.contains(&Step::DeletePod("default".into(), "web".into(), 30)), "{s:?}");
    assert!(evicted(&s).is_empty());
}

#[test]
fn finalizers_are_added_to_claims_and_nodes_that_lack_them() {
    let mut w = World::new(provisioner("default", true, |_| {}), OnDemand);
    let (n, mut c) = node("a", "m5.large", OnDemand, at(0));
    c.metadata.finalizers = None;
    w.add(Object::Node(Arc::new(n))).add(Object::NodeClaim(Arc::new(c)));
    let snap = w.snapshot();
    let s = plan(&snap, &BTreeMap::new(), &BTreeMap::new(), &BTreeSet::new(), at(0));
    assert_eq!(
        s,
        [
            Step::AddFinalizer(FinalizerTarget::NodeClaim("a".into())),
            Step::AddFinalizer(FinalizerTarget::Node("a".into()))
        ]
    );
}

/// A cloud whose instances take a while to shut down.
struct SlowCloud {
    state: Mutex<InstanceState>,
}

#[async_trait]
impl CloudProvider for SlowCloud {
    fn name(&self) -> &'static str {
        "slow"
    }
    async fn catalog(&self) -> crate::cloud::Result<Arc<Catalog>> {
        Ok(Arc::new(Catalog::default()))
    }
    async fn create(&self, _: &LaunchRequest) -> crate::cloud::Result<Instance> {
        Err(CloudError::InvalidConfig("not used".into()))
    }
    async fn delete(&self, _: &str) -> crate::cloud::Result<()> {
        let mut state = self.state.lock();
        if *state == InstanceState::Running {
            *state = InstanceState::ShuttingDown;
        }
        Ok(())
    }
    async fn get(&self, id: &str) -> crate::cloud::Result<Instance> {
        Ok(Instance {
            id: id.into(),
            provider_id: id.into(),
            instance_type: "m5.large".into(),
            zone: "us-east-1a".into(),
            capacity_type: OnDemand,
            price: 0.096,
            launched_at: at(0),
            state: *self.state.lock(),
            tags: Default::default(),
        })
    }
    async fn list(&self) -> crate::cloud::Result<Vec<Instance>> {
        Ok(vec![])
    }
}

#[tokio::test]
async fn finalizers_are_removed_only_after_the_instance_is_gone() {
    let mut w = World::new(provisioner("default", true, |_| {}), OnDemand);
    tainted(&mut w, "a");
    let snap = w.snapshot();
    let kube = Arc::new(RecordingActuator::new());
    let cloud = Arc::new(SlowCloud { state: Mutex::new(InstanceState::Running) });
    let mut t = Terminator::new(cloud.clone(), kube.clone(), TerminationMetrics::default());
    t.finalized_nodes.insert("a".into());

    let (report, err) = t.reconcile(&snap, at(1)).await;
    assert!(err.is_none());
    assert!(report.terminated.is_empty());
    let calls = kube.take_calls();
    assert!(!calls.iter().any(|c| matches!(c, Call::RemoveFinalizer(..) | Call::DeleteNode(_))), "{calls:?}");

    *cloud.state.lock() = InstanceState::Terminated;
    let (report, _) = t.reconcile(&snap, at(2)).await;
    assert_eq!(report.terminated, ["a"]);
    let calls = kube.take_calls();
    let remove_claim_finalizer =
        Call::RemoveFinalizer(FinalizerTarget::NodeClaim("a".into()), labels::TERMINATION_FINALIZER.into());
    assert_eq!(calls.last(), Some(&remove_claim_finalizer), "{calls:?}");
    assert!(calls.contains(&Call::DeleteNode("a".into())));
}

#[tokio::test]
async fn an_eviction_refused_by_a_pdb_is_retried_and_keeps_the_node() {
    let mut w = World::new(provisioner("default", true, |_| {}), OnDemand);
    tainted(&mut w, "a");
    w.add(Object::Pod(Arc::new(pod("web", Some("a"), 100))));
    let snap = w.snapshot();
    let kube = Arc::new(RecordingActuator::new());
    kube.blocked_evictions.lock().insert("default/web".into());
    let cloud = Arc::new(crate::cloud::fake::FakeCloud::new(Arc::new(Catalog::default()), at(0)));
    let mut t = Terminator::new(cloud.clone(), kube.clone(), TerminationMetrics::default());
    for i in 1..=3 {
        let (report, err) = t.reconcile(&snap, at(i)).await;
        assert!(err.is_none());
        assert_eq!(report.blocked, ["default/web"]);
        assert!(report.terminated.is_empty());
    }
    assert!(cloud.delete_calls().is_empty(), "the instance stays while a pod cannot leave");
    let evictions = kube.calls().iter().filter(|c| matches!(c, Call::EvictPod(..))).count();
    assert_eq!(evictions, 3);
    let blocked = t.metrics.evictions.get_or_create(&EvictionLabels { result: "blocked".into() }).get();
    assert_eq!(blocked, 3);
}
