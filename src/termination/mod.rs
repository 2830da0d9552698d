//! Termination: the finalizer flow that takes a node away without losing pods.
//!
//! A node is terminating when it carries the disruption taint (the disruption loop's hand-off), is being
//! deleted, or its NodeClaim is. [`plan`] is pure and derives every step from the snapshot, so the flow is
//! idempotent and resumes after a restart at whatever step it reached:
//! 1. taint `ballast.dev/disruption=disrupting:NoSchedule` (nothing new lands there);
//! 2. evict pods through the Eviction API, one tier at a time: non-critical pods, then critical ones
//!    (`system-cluster-critical`/`system-node-critical`), skipping mirror, terminal and already-deleting pods;
//!    a 429 (PDB) is retried on the next pass; past the Provisioner's `disruption.maxDrainTime` the remaining
//!    pods are deleted with their own `terminationGracePeriodSeconds`;
//! 3. evict the daemonset pods, terminate the instance through the [`CloudProvider`];
//! 4. only once the cloud reports the instance gone: delete the Node and the NodeClaim and remove their
//!    finalizers.
//!
//! Replacements are created by the disruption loop, launched by the NodeClaim lifecycle loop, and initialized
//! before the disruption loop taints a node.

pub mod gc;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use jiff::Timestamp;
use kube::ResourceExt;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tracing::{info, warn};

use crate::{
    actuator::{self, Actuator, Eviction, FinalizerTarget},
    api::labels,
    cloud::{CloudError, CloudProvider, InstanceState},
    disruption::{
        Settings,
        candidate::{claim_of, is_terminating, provisioner_of},
        controller::disruption_taint,
    },
    model::Pod,
    state::Snapshot,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to {action} for {target}: {source}")]
    Kube {
        action: &'static str,
        target: String,
        #[source]
        source: actuator::Error,
    },
    #[error("failed to terminate instance {provider_id}: {source}")]
    Cloud {
        provider_id: String,
        #[source]
        source: CloudError,
    },
}

const CRITICAL_PRIORITY_CLASSES: [&str; 2] = ["system-cluster-critical", "system-node-critical"];

pub fn is_critical(pod: &Pod) -> bool {
    pod.priority_class.as_deref().is_some_and(|c| CRITICAL_PRIORITY_CLASSES.contains(&c))
}

/// What may be evicted at all: mirror pods belong to the kubelet, terminal pods hold nothing, deleting pods
/// are already going.
fn is_evictable(pod: &Pod) -> bool {
    !pod.is_mirror() && !pod.is_terminal() && pod.deleting.is_none()
}

/// One action on one terminating node or claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    AddFinalizer(FinalizerTarget),
    Taint(String),
    /// `namespace`, `name`.
    Evict(String, String),
    /// Past the drain bound: `namespace`, `name`, grace seconds.
    DeletePod(String, String, i64),
    /// Drained: terminate the instance, and once it is gone delete and unfinalize the Node and the NodeClaim.
    Terminate {
        node: Option<String>,
        claim: Option<String>,
        provider_id: Option<String>,
    },
}

/// Steps for one pass, in order. Pure.
///
/// `drain_started` says when each terminating node (by name) began draining; `finalized_nodes` are nodes
/// this process already gave the finalizer (the domain Node does not carry finalizers).
pub fn plan(
    snap: &Snapshot,
    settings: &BTreeMap<String, Settings>,
    drain_started: &BTreeMap<String, Timestamp>,
    finalized_nodes: &BTreeSet<String>,
    now: Timestamp,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for claim in snap.node_claims.values().filter(|c| c.metadata.deletion_timestamp.is_none()) {
        if !claim.finalizers().iter().any(|f| f == labels::TERMINATION_FINALIZER) {
            steps.push(Step::AddFinalizer(FinalizerTarget::NodeClaim(claim.name_any())));
        }
    }
    let mut handled_claims = BTreeSet::new();
    for node in snap.nodes.values() {
        if provisioner_of(node).is_none() {
            continue;
        }
        let claim = claim_of(snap, node);
        if let Some(c) = claim {
            handled_claims.insert(c.name_any());
        }
        if !is_terminating(node, claim.map(|c| &**c)) {
            if !finalized_nodes.contains(&node.name) && node.deleting.is_none() {
                steps.push(Step::AddFinalizer(FinalizerTarget::Node(node.name.clone())));
            }
            continue;
        }
        if !node.taints.iter().any(|t| t.key == labels::DISRUPTION_TAINT_KEY) {
            steps.push(Step::Taint(node.name.clone()));
        }
        let pods: Vec<&Arc<Pod>> =
            snap.pods_on_node(&node.name).filter(|p| !p.is_mirror() && !p.is_terminal()).collect();
        let workload: Vec<&Arc<Pod>> = pods.iter().filter(|p| !p.is_daemonset_pod()).copied().collect();
        if !workload.is_empty() {
            let max_drain = provisioner_of(node).and_then(|p| settings.get(p)).and_then(|s| s.max_drain_time);
            let started = drain_started.get(&node.name).copied().unwrap_or(now);
            if max_drain.is_some_and(|max| now.duration_since(started) >= max) {
                for p in &workload {
                    steps.push(Step::DeletePod(
                        p.namespace.clone(),
                        p.name.clone(),
                        p.termination_grace_seconds,
                    ));
                }
                continue;
            }
            // One tier at a time: critical pods go only once the others have left.
            let non_critical: Vec<&&Arc<Pod>> = workload.iter().filter(|p| !is_critical(p)).collect();
            let tier = if non_critical.is_empty() { workload.iter().collect() } else { non_critical };
            for p in tier.into_iter().filter(|p| is_evictable(p)) {
                steps.push(Step::Evict(p.namespace.clone(), p.name.clone()));
            }
            continue;
        }
        for p in pods.iter().filter(|p| is_evictable(p)) {
            steps.push(Step::Evict(p.namespace.clone(), p.name.clone()));
        }
        steps.push(Step::Terminate {
            node: Some(node.name.clone()),
            claim: claim.map(|c| c.name_any()),
            provider_id: node
                .provider_id
                .clone()
                .or_else(|| claim.and_then(|c| c.status.as_ref()?.provider_id.clone())),
        });
    }
    // Claims being deleted whose node never registered (or is gone): only the instance is left.
    for claim in snap.node_claims.values() {
        if claim.metadata.deletion_timestamp.is_some() && !handled_claims.contains(&claim.name_any()) {
            steps.push(Step::Terminate {
                node: None,
                claim: Some(claim.name_any()),
                provider_id: claim.status.as_ref().and_then(|s| s.provider_id.clone()),
            });
        }
    }
    steps
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EvictionLabels {
    /// `evicted`, `blocked` (429), `not_found` or `deleted` (past the drain bound).
    pub result: String,
}

#[derive(Debug, Clone, Default)]
pub struct TerminationMetrics {
    pub evictions: Family<EvictionLabels, Counter>,
    pub nodes_terminated: Counter,
}

impl TerminationMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register("evictions", "Pod evictions by result", self.evictions.clone());
        registry.register(
            "nodes_terminated",
            "Nodes whose instance was terminated and finalizer removed",
            self.nodes_terminated.clone(),
        );
    }

    fn eviction(&self, result: &str) {
        self.evictions.get_or_create(&EvictionLabels { result: result.to_string() }).inc();
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub evicted: Vec<String>,
    /// Evictions a PDB refused (429); retried next pass.
    pub blocked: Vec<String>,
    pub deleted_pods: Vec<String>,
    /// Nodes (or claims without a node) fully terminated: instance gone, finalizers removed.
    pub terminated: Vec<String>,
}

/// The termination loop's memory: drain start times (for the drain bound) and nodes already finalized.
pub struct Terminator {
    cloud: Arc<dyn CloudProvider>,
    kube: Arc<dyn Actuator>,
    metrics: TerminationMetrics,
    drain_started: BTreeMap<String, Timestamp>,
    finalized_nodes: BTreeSet<String>,
}

impl Terminator {
    pub fn new(cloud: Arc<dyn CloudProvider>, kube: Arc<dyn Actuator>, metrics: TerminationMetrics) -> Self {
        Self { cloud, kube, metrics, drain_started: BTreeMap::new(), finalized_nodes: BTreeSet::new() }
    }

    /// One pass: plan from the snapshot, then act on every step. A failed step is logged and retried on the
    /// next pass; the first error is returned after the rest were attempted.
    pub async fn reconcile(&mut self, snap: &Snapshot, now: Timestamp) -> (Report, Option<Error>) {
        let (settings, _) = crate::disruption::settings(snap);
        self.finalized_nodes.retain(|n| snap.nodes.contains_key(n));
        self.drain_started.retain(|n, _| snap.nodes.contains_key(n));
        for node in snap.nodes.values() {
            if is_terminating(node, claim_of(snap, node).map(|c| &**c)) {
                self.drain_started.entry(node.name.clone()).or_insert(now);
            }
        }
        let steps = plan(snap, &settings, &self.drain_started, &self.finalized_nodes, now);
        let mut report = Report::default();
        let mut first_error = None;
        for step in steps {
            if let Err(e) = self.act(&step, &mut report).await {
                warn!(error = %e, ?step, "Termination step failed; retrying next pass");
                first_error.get_or_insert(e);
            }
        }
        (report, first_error)
    }

    async fn act(&mut self, step: &Step, report: &mut Report) -> Result<(), Error> {
        let kube_err = |action: &'static str, target: &str| {
            let target = target.to_string();
            move |source| Error::Kube { action, target, source }
        };
        match step {
            Step::AddFinalizer(target) => {
                let name = match target {
                    FinalizerTarget::Node(n) | FinalizerTarget::NodeClaim(n) => n.clone(),
                };
                ignore_not_found(self.kube.add_finalizer(target, labels::TERMINATION_FINALIZER).await)
                    .map_err(kube_err("add the termination finalizer", &name))?;
                if let FinalizerTarget::Node(n) = target {
                    self.finalized_nodes.insert(n.clone());
                }
            }
            Step::Taint(node) => {
                self.kube.taint_node(node, &disruption_taint()).await.map_err(kube_err("taint", node))?;
            }
            Step::Evict(ns, name) => {
                let key = format!("{ns}/{name}");
                match self.kube.evict_pod(ns, name).await.map_err(kube_err("evict", &key))? {
                    Eviction::Evicted => {
                        self.metrics.eviction("evicted");
                        report.evicted.push(key);
                    }
                    Eviction::BlockedByBudget => {
                        self.metrics.eviction("blocked");
                        report.blocked.push(key);
                    }
                    Eviction::NotFound => self.metrics.eviction("not_found"),
                }
            }
            Step::DeletePod(ns, name, grace) => {
                let key = format!("{ns}/{name}");
                ignore_not_found(self.kube.delete_pod(ns, name, Some(*grace)).await)
                    .map_err(kube_err("delete pod past maxDrainTime", &key))?;
                self.metrics.eviction("deleted");
                report.deleted_pods.push(key);
            }
            Step::Terminate { node, claim, provider_id } => {
                if let Some(id) = provider_id
                    && !self.terminate_instance(id).await?
                {
                    return Ok(());
                }
                // The instance is gone: only now may the objects that track it go.
                forget(&*self.kube, node.as_deref(), claim.as_deref()).await?;
                let name = node.clone().or_else(|| claim.clone()).unwrap_or_default();
                info!(%name, "Terminated");
                self.metrics.nodes_terminated.inc();
                report.terminated.push(name);
            }
        }
        Ok(())
    }

    /// Asks the cloud to terminate the instance; true once the cloud reports it gone.
    async fn terminate_instance(&self, provider_id: &str) -> Result<bool, Error> {
        let cloud_err = |source| Error::Cloud { provider_id: provider_id.to_string(), source };
        match self.cloud.delete(provider_id).await {
            Ok(()) | Err(CloudError::NotFound(_)) => {}
            Err(e) => return Err(cloud_err(e)),
        }
        match self.cloud.get(provider_id).await {
            Err(CloudError::NotFound(_)) => Ok(true),
            Ok(instance) => Ok(instance.state == InstanceState::Terminated),
            Err(e) => Err(cloud_err(e)),
        }
    }
}

/// Deletes the Node and the NodeClaim that tracked an instance that is gone, and removes their finalizers.
/// Shared by termination (after terminating) and garbage collection (an instance that vanished).
pub async fn forget(kube: &dyn Actuator, node: Option<&str>, claim: Option<&str>) -> Result<(), Error> {
    let kube_err = |action: &'static str, target: &str| {
        let target = target.to_string();
        move |source| Error::Kube { action, target, source }
    };
    if let Some(node) = node {
        ignore_not_found(kube.delete_node(node).await).map_err(kube_err("delete Node", node))?;
        let target = FinalizerTarget::Node(node.to_string());
        ignore_not_found(kube.remove_finalizer(&target, labels::TERMINATION_FINALIZER).await)
            .map_err(kube_err("remove the finalizer", node))?;
    }
    if let Some(claim) = claim {
        ignore_not_found(kube.delete_node_claim(claim).await).map_err(kube_err("delete NodeClaim", claim))?;
        let target = FinalizerTarget::NodeClaim(claim.to_string());
        ignore_not_found(kube.remove_finalizer(&target, labels::TERMINATION_FINALIZER).await)
            .map_err(kube_err("remove the finalizer", claim))?;
    }
    Ok(())
}

fn ignore_not_found(r: actuator::Result<()>) -> actuator::Result<()> {
    match r {
        Err(actuator::Error::NotFound(_)) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests;
