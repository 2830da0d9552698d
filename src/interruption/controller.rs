//! The interruption loop: receive a batch, plan it against a fresh snapshot, act, delete what was handled.

use std::{borrow::Borrow, sync::Arc, time::Duration};

use jiff::Timestamp;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    Action, Message, Step,
    messages::parse,
    metrics::{InterruptionMetrics, UNPARSEABLE},
    plan,
    queue::{InterruptionQueue, QueueError, RawMessage},
};
use crate::{
    actuator::{self, Actuator, EventRecord, EventType},
    api::NodeClaim,
    clock::Clock,
    cloud::{CapacityType, CloudProvider},
    disruption::controller::disruption_taint,
    state::{Cluster, Snapshot},
};

/// SQS's maximum batch (Karpenter receives 10 at a time).
pub const BATCH: usize = 10;
/// Pause after a failed receive, so a broken queue does not spin.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);
/// How often a follower (or an unsynced index) checks again.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What one batch did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub received: usize,
    pub deleted: usize,
    /// Why each unparseable message failed (its metric label).
    pub unparseable: Vec<&'static str>,
    /// Steps carried out.
    pub steps: Vec<Step>,
    /// Steps whose write failed; their messages were left on the queue.
    pub failed: Vec<(Step, String)>,
}

pub struct Interruption {
    queue: Arc<dyn InterruptionQueue>,
    kube: Arc<dyn Actuator>,
    /// Told which spot pools are reclaiming, when set.
    cloud: Option<Arc<dyn CloudProvider>>,
    metrics: InterruptionMetrics,
}

impl Interruption {
    pub fn new(
        queue: Arc<dyn InterruptionQueue>,
        kube: Arc<dyn Actuator>,
        metrics: InterruptionMetrics,
    ) -> Self {
        Self { queue, kube, cloud: None, metrics }
    }

    /// Marks the spot pools of interrupted instances unavailable in `cloud`, so replacements avoid them.
    pub fn with_cloud(mut self, cloud: Arc<dyn CloudProvider>) -> Self {
        self.cloud = Some(cloud);
        self
    }

    pub fn metrics(&self) -> &InterruptionMetrics {
        &self.metrics
    }

    /// Receives up to [`BATCH`] messages and handles them against the snapshot taken after the receive (a
    /// long poll may wait). Handles nothing, and deletes nothing, while the snapshot is not synced.
    pub async fn reconcile<S: Borrow<Snapshot>>(
        &self,
        snapshot: impl FnOnce() -> S,
        now: impl FnOnce() -> Timestamp,
    ) -> Result<Report, QueueError> {
        let raw = self.queue.receive(BATCH).await?;
        let snap = snapshot();
        if raw.is_empty() || !snap.borrow().synced() {
            return Ok(Report { received: raw.len(), ..Report::default() });
        }
        Ok(self.handle(snap.borrow(), raw, now()).await)
    }

    async fn handle(&self, snap: &Snapshot, raw: Vec<RawMessage>, now: Timestamp) -> Report {
        let mut report = Report { received: raw.len(), ..Report::default() };
        let mut parsed: Vec<(Message, String)> = Vec::new();
        for m in raw {
            match parse(&m.body) {
                Ok(message) => {
                    self.metrics.received(message.kind.as_str());
                    parsed.push((message, m.receipt));
                }
                Err(e) => {
                    warn!(message_id = %m.id, error = %e, "Deleting an interruption message that cannot be parsed");
                    self.metrics.received(UNPARSEABLE);
                    self.metrics.unparseable(e.reason());
                    report.unparseable.push(e.reason());
                    if self.delete(&m.receipt, UNPARSEABLE).await {
                        report.deleted += 1;
                    }
                }
            }
        }
        let messages: Vec<Message> = parsed.iter().map(|(m, _)| m.clone()).collect();
        let plan = plan(snap, &messages, now);
        let mut failed_messages = vec![false; messages.len()];
        for step in plan.steps {
            match self.act(&step).await {
                Ok(()) => {
                    self.metrics.action(step.kind, step.action.as_str());
                    report.steps.push(step);
                }
                Err(e) => {
                    warn!(step = %step.describe(), error = %e, "Interruption action failed; the message stays queued");
                    self.metrics.action(step.kind, "failed");
                    failed_messages[step.message] = true;
                    report.failed.push((step, e.to_string()));
                }
            }
        }
        for (index, (message, receipt)) in parsed.iter().enumerate() {
            if !failed_messages[index] && self.delete(receipt, message.kind.as_str()).await {
                report.deleted += 1;
            }
        }
        report
    }

    async fn delete(&self, receipt: &str, kind: &str) -> bool {
        match self.queue.delete(receipt).await {
            Ok(()) => {
                self.metrics.deleted(kind);
                true
            }
            Err(e) => {
                warn!(error = %e, "Failed to delete an interruption message; the queue will deliver it again");
                false
            }
        }
    }

    async fn act(&self, step: &Step) -> actuator::Result<()> {
        if let (Some(cloud), Some((instance_type, zone))) = (&self.cloud, &step.reclaimed_spot_pool) {
            info!(%instance_type, %zone, "Spot pool reclaiming: keeping it out of launches for a while");
            cloud.mark_unavailable(instance_type, zone, CapacityType::Spot);
        }
        match step.action {
            Action::Drain => {
                info!(step = %step.describe(), "Interruption: draining");
                if let Some(node) = &step.node {
                    ignore_not_found(self.kube.taint_node(node, &disruption_taint()).await)?;
                }
                if let Some(claim) = &step.claim {
                    ignore_not_found(self.kube.delete_node_claim(claim).await)?;
                }
                self.event(step, EventType::Warning).await;
            }
            Action::Notify => {
                info!(step = %step.describe(), "Interruption: notice only");
                self.event(step, EventType::Normal).await;
            }
            Action::AlreadyTerminating | Action::UnknownInstance => {
                info!(step = %step.describe(), "Interruption: nothing to do");
            }
        }
        Ok(())
    }

    /// Best effort: an Event that fails to write is logged, not retried.
    async fn event(&self, step: &Step, type_: EventType) {
        let (api_version, kind, name) = match (&step.node, &step.claim) {
            (Some(node), _) => ("v1".to_string(), "Node", node.clone()),
            (None, Some(claim)) => {
                (<NodeClaim as kube::Resource>::api_version(&()).into_owned(), "NodeClaim", claim.clone())
            }
            (None, None) => return,
        };
        let event = EventRecord {
            api_version,
            kind: kind.to_string(),
            namespace: None,
            name,
            type_,
            reason: step.event_reason().to_string(),
            message: step.describe(),
        };
        if let Err(e) = self.kube.emit_event(&event).await {
            warn!(error = %e, "Failed to emit the interruption event");
        }
    }

    /// Handles batches while `leader` is true and the index is synced; the queue's long poll paces the loop.
    /// Returns on shutdown or when the leader signal's sender is gone.
    pub async fn run(
        self,
        cluster: Cluster,
        clock: Arc<dyn Clock>,
        mut leader: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        loop {
            if !*leader.borrow_and_update() || !cluster.synced() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = leader.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(IDLE_CHECK) => {}
                }
                continue;
            }
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                result = self.reconcile(|| cluster.snapshot(), || clock.now()) => result,
            };
            if let Err(e) = result {
                warn!(error = %e, "Failed to receive interruption messages; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(RETRY_AFTER_ERROR) => {}
                }
            }
        }
    }
}

fn ignore_not_found(r: actuator::Result<()>) -> actuator::Result<()> {
    match r {
        Err(actuator::Error::NotFound(_)) => Ok(()),
        other => other,
    }
}
