//! Interruption: act on EC2's warnings before the instance goes (Karpenter's interruption controller).
//!
//! EventBridge rules put spot interruption warnings, rebalance recommendations, AWS Health scheduled changes
//! and instance state changes on the queue named by `--interruption-queue`. [`controller::Interruption`]
//! receives a batch ([`queue::InterruptionQueue`]), parses it ([`messages::parse`]), and [`plan`] (pure) maps
//! each instance to its NodeClaim and Node:
//! - spot interruption, scheduled change, state change to stopping/stopped/shutting-down/terminated: drain
//!   now — the node is tainted at once and its NodeClaim deleted, so the termination finalizer evicts its
//!   pods (respecting PDBs) and terminates the instance, while the provisioner plans capacity for the
//!   node's pods as soon as the node is terminating (it schedules the pods of terminating nodes, as
//!   Karpenter does), which starts the replacement well inside the two-minute warning; a spot interruption
//!   also keeps the instance's spot pool (type × zone) out of launches for 3 minutes, so the replacement
//!   does not land in the pool that is being reclaimed;
//! - rebalance recommendation: an Event only (Karpenter's default);
//! - unrelated events and instances ballast does not manage: nothing.
//!
//! Every handled message is deleted; so is a message that cannot be parsed (logged and counted by reason),
//! so nothing is retried forever. A message whose action failed is left for the queue to deliver again.

pub mod controller;
pub mod messages;
pub mod metrics;
pub mod queue;

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

pub use self::{
    controller::Interruption,
    messages::{Kind, Message, ParseError},
    metrics::InterruptionMetrics,
    queue::{InterruptionQueue, MemoryQueue, QueueError, RawMessage},
};
use crate::{api::labels, cloud::sim::instance_id, disruption::candidate::provisioner_of, state::Snapshot};

/// What to do about one instance named by a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Taint the node and delete its NodeClaim: termination drains it, the provisioner replaces it.
    Drain,
    /// Record an Event on the node, nothing more.
    Notify,
    /// The node is already going (claim deleting, or drained for an earlier message).
    AlreadyTerminating,
    /// No NodeClaim or ballast-managed Node runs on the instance.
    UnknownInstance,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Drain => "drain",
            Action::Notify => "notify",
            Action::AlreadyTerminating => "already_terminating",
            Action::UnknownInstance => "unknown_instance",
        }
    }
}

/// One instance of one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Index of the message in the planned slice.
    pub message: usize,
    pub kind: Kind,
    pub instance_id: String,
    pub claim: Option<String>,
    pub node: Option<String>,
    pub action: Action,
    /// The new instance state of a state change.
    pub state: Option<String>,
    /// How long ago the event happened.
    pub age: SignedDuration,
    /// (instance type, zone) of a spot instance being reclaimed: that spot pool is kept out of launches
    /// for a while, so the replacement lands elsewhere.
    pub reclaimed_spot_pool: Option<(String, String)>,
}

impl Step {
    /// The Event reason (Karpenter's names).
    pub fn event_reason(&self) -> &'static str {
        match self.kind {
            Kind::SpotInterruption => "SpotInterrupted",
            Kind::RebalanceRecommendation => "SpotRebalanceRecommendation",
            Kind::ScheduledChange => "InstanceUnhealthy",
            Kind::StateChange => match self.state.as_deref() {
                Some("stopping" | "stopped") => "InstanceStopping",
                _ => "InstanceTerminating",
            },
            Kind::Unrelated => "Unrelated",
        }
    }

    pub fn describe(&self) -> String {
        let what = match self.kind {
            Kind::SpotInterruption => {
                "spot interruption warning: the instance is reclaimed 2m after the warning"
            }
            Kind::RebalanceRecommendation => "rebalance recommendation: elevated risk of spot interruption",
            Kind::ScheduledChange => "AWS Health scheduled change for the instance",
            Kind::StateChange => "the instance is stopping or terminating",
            Kind::Unrelated => "unrelated event",
        };
        let action = match self.action {
            Action::Drain => "draining the node and replacing it",
            Action::Notify => "no action",
            Action::AlreadyTerminating => "already terminating",
            Action::UnknownInstance => "not a ballast node",
        };
        format!("{} {what} ({}s ago); {action}", self.instance_id, self.age.as_secs())
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// In message order; unrelated messages have none.
    pub steps: Vec<Step>,
}

/// Maps each message's instances to NodeClaims and Nodes (by the instance id in their provider id
/// `aws:///<zone>/<instance-id>`) and decides the action. An instance named twice is drained once. Pure.
pub fn plan(snap: &Snapshot, messages: &[Message], now: Timestamp) -> Plan {
    let mut claims: BTreeMap<&str, String> = BTreeMap::new();
    for claim in snap.node_claims.values() {
        if let Some(id) = claim.status.as_ref().and_then(|s| s.provider_id.as_deref()) {
            claims.insert(instance_id(id), claim.name_any());
        }
    }
    let mut nodes: BTreeMap<&str, String> = BTreeMap::new();
    for node in snap.nodes.values() {
        if let Some(id) = node.provider_id.as_deref() {
            nodes.insert(instance_id(id), node.name.clone());
        }
    }
    let mut draining = BTreeSet::new();
    let mut steps = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        for id in &message.instance_ids {
            let claim = claims.get(id.as_str()).cloned().or_else(|| {
                let node = snap.nodes.get(nodes.get(id.as_str())?)?;
                crate::disruption::candidate::claim_of(snap, node).map(|c| c.name_any())
            });
            let node = nodes.get(id.as_str()).cloned().or_else(|| {
                let c = snap.node_claims.get(claim.as_ref()?)?;
                c.status.as_ref()?.node_name.clone().filter(|n| snap.nodes.contains_key(n))
            });
            let managed_node =
                node.as_ref().and_then(|n| snap.nodes.get(n)).is_some_and(|n| provisioner_of(n).is_some());
            let deleting = claim
                .as_ref()
                .and_then(|c| snap.node_claims.get(c))
                .is_some_and(|c| c.metadata.deletion_timestamp.is_some());
            let action = if claim.is_none() && !managed_node {
                Action::UnknownInstance
            } else {
                match message.kind {
                    Kind::RebalanceRecommendation => Action::Notify,
                    Kind::Unrelated => continue,
                    Kind::SpotInterruption | Kind::ScheduledChange | Kind::StateChange => {
                        if deleting || !draining.insert(id.clone()) {
                            Action::AlreadyTerminating
                        } else {
                            Action::Drain
                        }
                    }
                }
            };
            let reclaimed_spot_pool = (message.kind == Kind::SpotInterruption)
                .then(|| spot_pool(snap, claim.as_deref(), node.as_deref()))
                .flatten();
            steps.push(Step {
                message: index,
                kind: message.kind,
                instance_id: id.clone(),
                claim,
                node,
                action,
                state: message.state.clone(),
                age: now.duration_since(message.time),
                reclaimed_spot_pool,
            });
        }
    }
    Plan { steps }
}

/// The (instance type, zone) of the claim's or node's instance, from their well-known labels.
fn spot_pool(snap: &Snapshot, claim: Option<&str>, node: Option<&str>) -> Option<(String, String)> {
    let from = |labels: &BTreeMap<String, String>| {
        Some((labels.get(labels::INSTANCE_TYPE)?.clone(), labels.get(labels::ZONE)?.clone()))
    };
    node.and_then(|n| from(&snap.nodes.get(n)?.labels))
        .or_else(|| from(snap.node_claims.get(claim?)?.metadata.labels.as_ref()?))
}

#[cfg(test)]
mod tests;
