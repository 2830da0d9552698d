//! Restart safety: ballast dies between creating NodeClaims and recording their instances, a new process starts
//! with empty loop state over the same cluster and cloud, and every pod is scheduled with exactly one instance
//! per claim and nothing orphaned.

use std::{collections::BTreeMap, sync::Arc};

use ballast::{
    actuator::Actuator,
    api::Provisioner as ProvisionerCrd,
    clock::ManualClock,
    cloud::{
        Catalog, CloudProvider, InstanceState,
        sim::{SimCloud, SimCloudConfig},
    },
    provisioning::{
        Provisioner,
        batcher::Batcher,
        lifecycle::{self, Lifecycle, LifecycleMetrics, Timeouts},
    },
    simulate::cluster::SimApi,
    state::{self, Object, convert},
    termination::{TerminationMetrics, Terminator, gc::GarbageCollector},
};
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

fn start() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn provisioner() -> Object {
    let text = "apiVersion: ballast.dev/v1alpha1\nkind: Provisioner\nmetadata: {name: default}\nspec:\n  \
                requirements:\n  - {key: karpenter.sh/capacity-type, operator: In, values: [on-demand]}\n";
    Object::Provisioner(Arc::new(serde_yaml_ng::from_str::<ProvisionerCrd>(text).unwrap()))
}

fn pod(name: &str) -> Object {
    let text = format!(
        "metadata: {{name: {name}, namespace: default, creationTimestamp: '2026-01-01T00:00:00Z'}}\n\
         spec: {{containers: [{{name: c, image: pause, resources: {{requests: {{cpu: '1'}}}}}}]}}\n"
    );
    Object::Pod(Arc::new(convert::pod(&serde_yaml_ng::from_str(&text).unwrap()).unwrap()))
}

struct World {
    clock: ManualClock,
    cloud: Arc<SimCloud>,
    api: Arc<SimApi>,
    catalog: Arc<Catalog>,
}

impl World {
    fn new() -> Self {
        let clock = ManualClock::new(start());
        let catalog = Arc::new(Catalog::bundled().subset(["c5.large", "m5.large", "m5.xlarge"]).unwrap());
        let cloud = Arc::new(SimCloud::new(
            catalog.clone(),
            Arc::new(clock.clone()),
            SimCloudConfig { seed: 7, ..SimCloudConfig::default() },
        ));
        let api = Arc::new(SimApi::new(state::Cluster::new(), Arc::new(clock.clone()), 7));
        api.apply_object(provisioner());
        for i in 0..5 {
            api.apply_object(pod(&format!("p{i}")));
        }
        Self { clock, cloud, api, catalog }
    }

    /// The first process: batches, plans and creates the claims, then dies before any status is written. With
    /// `launched`, it got as far as launching every claim's instance.
    async fn first_process(&self, launched: bool) -> Vec<String> {
        let mut provisioner = Provisioner::new(self.cloud.clone(), self.api.clone(), Batcher::default());
        provisioner.reconcile(&self.api.snapshot(), start()).await.unwrap();
        let (_, report) = provisioner
            .reconcile(&self.api.snapshot(), start() + SignedDuration::from_secs(1))
            .await
            .unwrap()
            .expect("the batch closed");
        assert!(!report.created.is_empty());
        if launched {
            for name in &report.created {
                let claim = self.api.snapshot().node_claims.get(name).cloned().unwrap();
                let options = lifecycle::launch_options(&claim, &self.catalog);
                lifecycle::launch(&*self.cloud, &claim, options).await.unwrap();
            }
        }
        report.created
    }

    /// A fresh process: every loop starts empty. Runs one-second ticks (as `simulate` does) until every pod
    /// runs; returns the claims it created.
    async fn restarted_process(&self) -> Vec<String> {
        let kube: Arc<dyn Actuator> = self.api.clone();
        let cloud: Arc<dyn CloudProvider> = self.cloud.clone();
        let mut provisioner = Provisioner::new(cloud.clone(), kube.clone(), Batcher::default());
        let mut lifecycle =
            Lifecycle::new(cloud.clone(), kube.clone(), Timeouts::default(), LifecycleMetrics::default());
        let mut terminator = Terminator::new(cloud.clone(), kube.clone(), TerminationMetrics::default());
        let mut gc = GarbageCollector::new(cloud, kube);
        let mut created = Vec::new();
        for tick in 2..=300 {
            let now = start() + SignedDuration::from_secs(tick);
            self.clock.set(now);
            for instance in self.cloud.poll().registered {
                self.api.register_node(&instance, &self.catalog).unwrap();
            }
            self.api.reconcile();
            self.api.schedule();
            if let Some((_, report)) = provisioner.reconcile(&self.api.snapshot(), now).await.unwrap() {
                created.extend(report.created);
            }
            let (_, error) = lifecycle.reconcile(&self.api.snapshot(), now).await;
            assert!(error.is_none(), "{error:?}");
            let (_, error) = terminator.reconcile(&self.api.snapshot(), now).await;
            assert!(error.is_none(), "{error:?}");
            let report = gc.reconcile(&self.api.snapshot(), now).await.unwrap();
            assert!(report.terminated_instances.is_empty(), "nothing is orphaned: {report:?}");
            let snap = self.api.snapshot();
            if snap.pods.values().all(|p| p.node_name.is_some()) {
                return created;
            }
        }
        panic!(
            "pods still pending after 300 s: {:?}",
            self.api.snapshot().pending_pods().collect::<Vec<_>>()
        );
    }

    /// Exactly one live instance per claim, recorded on the claim, and one registered node each.
    async fn assert_one_instance_per_claim(&self) {
        let snap = self.api.snapshot();
        let instances: Vec<_> = self
            .cloud
            .list()
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.state != InstanceState::Terminated)
            .collect();
        let mut per_claim: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for i in &instances {
            per_claim.entry(i.claim_name().unwrap().to_string()).or_default().push(i.provider_id.clone());
        }
        assert_eq!(per_claim.len(), snap.node_claims.len(), "{per_claim:?}");
        for claim in snap.node_claims.values() {
            let ids = &per_claim[&claim.name_any()];
            assert_eq!(ids.len(), 1, "claim {} has instances {ids:?}", claim.name_any());
            let status = claim.status.as_ref().unwrap();
            assert_eq!(status.provider_id.as_ref(), Some(&ids[0]));
            let node = status.node_name.as_ref().expect("registered");
            assert_eq!(snap.nodes[node].provider_id.as_ref(), Some(&ids[0]));
        }
        assert_eq!(snap.nodes.len(), snap.node_claims.len());
    }
}

#[tokio::test]
async fn a_restart_between_launch_and_status_update_adopts_the_instances() {
    let world = World::new();
    let mut before = world.first_process(true).await;
    before.sort();
    let launched = world.cloud.list().await.unwrap().len();
    assert_eq!(launched, before.len());

    let created = world.restarted_process().await;
    assert!(created.is_empty(), "the restarted process planned claims again: {created:?}");
    let names: Vec<String> = world.api.snapshot().node_claims.keys().cloned().collect();
    assert_eq!(names, before);
    world.assert_one_instance_per_claim().await;
}

#[tokio::test]
async fn a_restart_between_creating_claims_and_launching_them_launches_each_once() {
    let world = World::new();
    let before = world.first_process(false).await;
    assert!(world.cloud.list().await.unwrap().is_empty());

    let created = world.restarted_process().await;
    assert!(created.is_empty(), "claims not launched yet are in-flight capacity: {created:?}");
    assert_eq!(world.api.snapshot().node_claims.len(), before.len());
    world.assert_one_instance_per_claim().await;
}
