//! Coalesces NodeClaim status writes: the latest status per object wins, and a flush writes every pending
//! object concurrently, so hundreds of launches do not queue one by one behind client-side throttling.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Actuator, Error};
use crate::api::NodeClaimStatus;

pub struct StatusBatcher {
    actuator: Arc<dyn Actuator>,
    pending: Mutex<BTreeMap<String, NodeClaimStatus>>,
    submitted: Notify,
    /// Writes in flight at once.
    concurrency: usize,
    /// How long to wait after the first submission for more to coalesce.
    window: Duration,
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
    pub fn new(actuator: Arc<dyn Actuator>, concurrency: usize, window: Duration) -> Self {
        Self {
            actuator,
            pending: Mutex::default(),
            submitted: Notify::new(),
            concurrency: concurrency.max(1),
            window,
        }
    }

    /// Queues `status` for `name`, replacing any status still pending for it.
    pub fn submit(&self, name: impl Into<String>, status: NodeClaimStatus) {
        self.pending.lock().insert(name.into(), status);
        self.submitted.notify_one();
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

    /// Flushes a window after each submission until `shutdown`, then flushes what is left once.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.submitted.notified() => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.window) => {}
            }
            let flushed = self.flush().await;
            if flushed.retried > 0 {
                // Back off a window before retrying what failed.
                self.submitted.notify_one();
            }
        }
        self.flush().await;
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
        let batcher = StatusBatcher::new(actuator.clone(), 8, Duration::from_millis(50));
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

    #[tokio::test(start_paused = true)]
    async fn run_flushes_after_the_window_and_on_shutdown() {
        let actuator = Arc::new(RecordingActuator::new());
        let batcher = Arc::new(StatusBatcher::new(actuator.clone(), 8, Duration::from_millis(100)));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(batcher.clone().run(shutdown.clone()));
        for i in 0..300 {
            batcher.submit(format!("claim-{}", i % 100), status("m5.large"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(actuator.calls().is_empty(), "nothing written inside the window");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(actuator.take_calls().len(), 100, "one write per object");

        batcher.submit("late", status("c5.large"));
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(actuator.take_calls(), vec![Call::PatchNodeClaimStatus("late".into())]);
    }
}
