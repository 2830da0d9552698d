//! Coalesces NodeClaim status writes: the latest status per object wins, and a flush writes every pending
//! object concurrently, so hundreds of launches do not queue one by one behind client-side throttling. The
//! NodeClaim lifecycle loop submits a pass's statuses and flushes them at the end of the pass.

use std::{collections::BTreeMap, sync::Arc};

use futures::StreamExt;
use parking_lot::Mutex;

use super::{Actuator, Error};
use crate::api::NodeClaimStatus;

pub struct StatusBatcher {
    actuator: Arc<dyn Actuator>,
    pending: Mutex<BTreeMap<String, NodeClaimStatus>>,
    /// Writes in flight at once.
    concurrency: usize,
}

/// What one flush did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flushed {
    pub written: usize,
    /// Kept for the next flush (conflict or transient error) unless a newer status arrived meanwhile.
    pub retried: usize,
    /// Dropped: the NodeClaim is gone, or the write can never succeed (forbidden, invalid).
    pub dropped: usize,
}

impl StatusBatcher {
    pub fn new(actuator: Arc<dyn Actuator>, concurrency: usize) -> Self {
        Self { actuator, pending: Mutex::default(), concurrency: concurrency.max(1) }
    }

    /// Queues `status` for `name`, replacing any status still pending for it.
    pub fn submit(&self, name: impl Into<String>, status: NodeClaimStatus) {
        self.pending.lock().insert(name.into(), status);
    }

    pub fn pending(&self) -> usize {
        self.pending.lock().len()
    }

    /// Writes everything pending now.
    pub async fn flush(&self) -> Flushed {
        let batch = std::mem::take(&mut *self.pending.lock());
        let results: Vec<_> = futures::stream::iter(batch)
            .map(|(name, status)| async move {
                let result = self.actuator.patch_node_claim_status(&name, &status).await;
                (name, status, result)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut flushed = Flushed::default();
        for (name, status, result) in results {
            match result {
                Ok(()) => flushed.written += 1,
                Err(error @ (Error::Conflict(_) | Error::Api(_))) => {
                    tracing::debug!(%error, nodeclaim = %name, "status write failed; retrying");
                    self.pending.lock().entry(name).or_insert(status);
                    flushed.retried += 1;
                }
                Err(error) => {
                    tracing::warn!(%error, nodeclaim = %name, "status write dropped");
                    flushed.dropped += 1;
                }
            }
        }
        flushed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actuator::{Call, RecordingActuator};

    fn status(instance_type: &str) -> NodeClaimStatus {
        NodeClaimStatus { instance_type: Some(instance_type.into()), ..Default::default() }
    }

    #[tokio::test]
    async fn updates_to_one_object_coalesce_to_the_latest() {
        let actuator = Arc::new(RecordingActuator::new());
        let batcher = StatusBatcher::new(actuator.clone(), 8);
        batcher.submit("a", status("m5.large"));
        batcher.submit("b", status("c5.large"));
        batcher.submit("a", status("m5.xlarge"));
        batcher.submit("a", status("m5.2xlarge"));
        assert_eq!(batcher.pending(), 2);
        assert_eq!(batcher.flush().await, Flushed { written: 2, retried: 0, dropped: 0 });
        let mut calls = actuator.take_calls();
        calls.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(
            calls,
            vec![Call::PatchNodeClaimStatus("a".into()), Call::PatchNodeClaimStatus("b".into())]
        );
        assert_eq!(actuator.node_claim_status("a"), Some(status("m5.2xlarge")));
        assert_eq!(batcher.pending(), 0);
        assert_eq!(batcher.flush().await, Flushed::default());
    }
}
