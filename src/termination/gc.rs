//! Garbage collection: make the cloud and the NodeClaims agree.
//! - An instance tagged for this cluster with no NodeClaim, launched more than [`ORPHAN_GRACE`] ago, is
//!   terminated (a crash between launch and recording the claim, or a claim deleted by hand).
//! - A launched NodeClaim whose instance is gone is deleted with its Node (spot reclaim, manual termination).
//!
//! Claims that never launch or register are the lifecycle loop's (`provisioning::lifecycle`) timeouts.

use std::{collections::BTreeSet, sync::Arc};

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use tracing::info;

use crate::{
    actuator::Actuator,
    cloud::{CloudError, CloudProvider, Instance, InstanceState},
    state::Snapshot,
};

/// Karpenter terminates untracked instances launched more than 30 s ago.
pub const ORPHAN_GRACE: SignedDuration = SignedDuration::from_secs(30);
/// Instances are listed at most this often.
pub const PERIOD: SignedDuration = SignedDuration::from_secs(30);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Provider ids of orphaned instances.
    pub terminate: Vec<String>,
    /// Claims whose instance is gone: delete them (and their Node) now, nothing is left to drain.
    pub forget: Vec<String>,
}

/// Pure: compares the claims in `snap` with the cloud's `instances`.
pub fn plan(snap: &Snapshot, instances: &[Instance], now: Timestamp) -> Plan {
    let mut out = Plan::default();
    let live: BTreeSet<&str> = instances
        .iter()
        .filter(|i| i.state != InstanceState::Terminated)
        .map(|i| i.provider_id.as_str())
        .collect();
    for i in instances.iter().filter(|i| i.state != InstanceState::Terminated) {
        let tracked = i.claim_name().is_some_and(|c| snap.node_claims.contains_key(c))
            || snap
                .node_claims
                .values()
                .any(|c| c.status.as_ref().and_then(|s| s.provider_id.as_deref()) == Some(&i.provider_id));
        if !tracked && now.duration_since(i.launched_at) >= ORPHAN_GRACE {
            out.terminate.push(i.provider_id.clone());
        }
    }
    for claim in snap.node_claims.values() {
        let created = claim.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let age = created.map(|t| now.duration_since(t)).unwrap_or(SignedDuration::ZERO);
        let provider_id = claim.status.as_ref().and_then(|s| s.provider_id.as_deref());
        if provider_id.is_some_and(|id| !live.contains(id)) && age >= ORPHAN_GRACE {
            out.forget.push(claim.name_any());
        }
    }
    out
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub terminated_instances: Vec<String>,
    pub forgotten_claims: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to list instances: {0}")]
    List(#[source] CloudError),
    #[error("failed to terminate orphaned instance {provider_id}: {source}")]
    Terminate {
        provider_id: String,
        #[source]
        source: CloudError,
    },
    #[error("failed to forget NodeClaim {claim} whose instance is gone: {source}")]
    Forget {
        claim: String,
        #[source]
        source: super::Error,
    },
}

pub struct GarbageCollector {
    cloud: Arc<dyn CloudProvider>,
    kube: Arc<dyn Actuator>,
    next_run: Timestamp,
}

impl GarbageCollector {
    pub fn new(cloud: Arc<dyn CloudProvider>, kube: Arc<dyn Actuator>) -> Self {
        Self { cloud, kube, next_run: Timestamp::MIN }
    }

    /// Runs at most every [`PERIOD`].
    pub async fn reconcile(&mut self, snap: &Snapshot, now: Timestamp) -> Result<Report, Error> {
        if now < self.next_run || !snap.synced() {
            return Ok(Report::default());
        }
        self.next_run = now + PERIOD;
        let instances = self.cloud.list().await.map_err(Error::List)?;
        let plan = plan(snap, &instances, now);
        let mut report = Report::default();
        for id in plan.terminate {
            match self.cloud.delete(&id).await {
                Ok(()) | Err(CloudError::NotFound(_)) => {}
                Err(source) => return Err(Error::Terminate { provider_id: id, source }),
            }
            info!(provider_id = %id, "Terminated orphaned instance");
            report.terminated_instances.push(id);
        }
        for claim in plan.forget {
            let node = snap.node_claims.get(&claim).and_then(|c| c.status.as_ref()?.node_name.clone());
            super::forget(&*self.kube, node.as_deref(), Some(&claim))
                .await
                .map_err(|source| Error::Forget { claim: claim.clone(), source })?;
            info!(%claim, "Deleted NodeClaim whose instance is gone");
            report.forgotten_claims.push(claim);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        actuator::{Call, RecordingActuator},
        api::labels,
        cloud::{CapacityType::OnDemand, Catalog, fake::FakeCloud},
        disruption::fixtures::{at, node},
        state::Object,
    };

    fn instance(claim: &str, provider_id: &str, launched_at: Timestamp) -> Instance {
        Instance {
            id: provider_id.rsplit('/').next().unwrap().into(),
            provider_id: provider_id.into(),
            instance_type: "m5.large".into(),
            zone: "us-east-1a".into(),
            capacity_type: OnDemand,
            price: 0.096,
            launched_at,
            state: InstanceState::Running,
            tags: [(labels::BALLAST_NODE_CLAIM.to_string(), claim.to_string())].into(),
        }
    }

    #[test]
    fn orphans_and_claims_whose_instance_is_gone_are_found() {
        let (n, c) = node("a", "m5.large", OnDemand, at(0));
        let (_, lost) = node("lost", "m5.large", OnDemand, at(0));
        let (_, mut stuck) = node("stuck", "m5.large", OnDemand, at(0));
        stuck.status.as_mut().unwrap().node_name = None;
        let snap = Snapshot::from_objects([
            Object::Node(Arc::new(n)),
            Object::NodeClaim(Arc::new(c)),
            Object::NodeClaim(Arc::new(lost)),
            Object::NodeClaim(Arc::new(stuck)),
        ]);
        let instances = [
            instance("a", "aws:///us-east-1a/i-a", at(0)),
            instance("stuck", "aws:///us-east-1a/i-stuck", at(0)),
            instance("gone-claim", "aws:///us-east-1a/i-orphan", at(100)),
        ];
        let p = plan(&snap, &instances, at(129));
        assert!(p.terminate.is_empty(), "the orphan is younger than 30 s");
        assert_eq!(p.forget, ["lost"]);
        let p = plan(&snap, &instances, at(900));
        assert_eq!(p.terminate, ["aws:///us-east-1a/i-orphan"]);
        assert_eq!(p.forget, ["lost"], "the unregistered claim with a live instance is the lifecycle loop's");
    }

    #[tokio::test]
    async fn the_collector_terminates_orphans_and_deletes_lost_claims() {
        let cloud =
            Arc::new(FakeCloud::new(Arc::new(Catalog::bundled().subset(["m5.large"]).unwrap()), at(0)));
        let orphan = cloud
            .create(&crate::cloud::LaunchRequest {
                claim_name: "nobody".into(),
                provisioner: "default".into(),
                node_template: None,
                options: vec![crate::cloud::LaunchOption {
                    instance_type: "m5.large".into(),
                    zone: "us-east-1a".into(),
                    capacity_type: OnDemand,
                    price: 0.096,
                }],
                labels: Default::default(),
                taints: vec![],
                startup_taints: vec![],
                tags: Default::default(),
            })
            .await
            .unwrap();
        let (n, c) = node("lost", "m5.large", OnDemand, at(0));
        let snap = Snapshot::from_objects([Object::Node(Arc::new(n)), Object::NodeClaim(Arc::new(c))]);
        let kube = Arc::new(RecordingActuator::new());
        let mut gc = GarbageCollector::new(cloud.clone(), kube.clone());
        let report = gc.reconcile(&snap, at(60)).await.unwrap();
        assert_eq!(report.terminated_instances, std::slice::from_ref(&orphan.provider_id));
        assert_eq!(report.forgotten_claims, ["lost"]);
        assert_eq!(cloud.delete_calls(), [orphan.provider_id]);
        let calls = kube.calls();
        assert!(
            calls.contains(&Call::DeleteNode("lost".into()))
                && calls.contains(&Call::DeleteNodeClaim("lost".into()))
        );
        assert_eq!(gc.reconcile(&snap, at(70)).await.unwrap(), Report::default(), "runs at most every 30 s");
    }
}
