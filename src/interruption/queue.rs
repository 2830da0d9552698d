//! The queue seam: receive a batch, delete what was handled. SQS implements it in `cloud::aws::sqs`;
//! [`MemoryQueue`] is the in-memory queue of the simulator and tests.

use std::collections::BTreeMap;

use async_trait::async_trait;
use parking_lot::Mutex;

/// One message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub id: String,
    /// Handle for [`InterruptionQueue::delete`]; a new one per receive.
    pub receipt: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
#[error("failed to {action} on the interruption queue {queue}: {message}")]
pub struct QueueError {
    pub action: &'static str,
    pub queue: String,
    pub message: String,
}

#[async_trait]
pub trait InterruptionQueue: Send + Sync {
    /// Up to `max` messages; may wait (long poll) for the first. A message received and not deleted comes
    /// back after the queue's visibility timeout.
    async fn receive(&self, max: usize) -> Result<Vec<RawMessage>, QueueError>;
    async fn delete(&self, receipt: &str) -> Result<(), QueueError>;
}

#[derive(Debug, Default)]
struct MemoryState {
    next: u64,
    /// Message id → body, oldest first.
    messages: BTreeMap<u64, String>,
    /// Receipt → message id of messages received and not yet deleted.
    in_flight: BTreeMap<String, u64>,
}

/// An in-memory queue that never waits. Its visibility timeout is one receive: a message received and not
/// deleted is delivered again by the next receive.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    state: Mutex<MemoryState>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Enqueues a body; returns its message id.
    pub fn send(&self, body: impl Into<String>) -> String {
        let mut state = self.state.lock();
        let id = state.next;
        state.next += 1;
        state.messages.insert(id, body.into());
        id.to_string()
    }

    /// Messages not yet deleted.
    pub fn len(&self) -> usize {
        self.state.lock().messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl InterruptionQueue for MemoryQueue {
    async fn receive(&self, max: usize) -> Result<Vec<RawMessage>, QueueError> {
        let mut state = self.state.lock();
        let state = &mut *state;
        state.in_flight.clear();
        let mut out = Vec::new();
        for (id, body) in state.messages.iter().take(max) {
            let receipt = format!("{id}-{}", state.next);
            state.next += 1;
            state.in_flight.insert(receipt.clone(), *id);
            out.push(RawMessage { id: id.to_string(), receipt, body: body.clone() });
        }
        Ok(out)
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        let mut state = self.state.lock();
        let id = state.in_flight.remove(receipt).ok_or_else(|| QueueError {
            action: "delete a message",
            queue: "memory".into(),
            message: format!("receipt {receipt} is not in flight"),
        })?;
        state.messages.remove(&id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn received_messages_come_back_until_deleted() {
        let q = MemoryQueue::new();
        q.send("a");
        q.send("b");
        q.send("c");
        let first = q.receive(2).await.unwrap();
        assert_eq!(first.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        q.delete(&first[0].receipt).await.unwrap();
        let second = q.receive(10).await.unwrap();
        assert_eq!(second.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        assert!(q.delete(&first[1].receipt).await.is_err(), "an old receipt is stale");
        for m in &second {
            q.delete(&m.receipt).await.unwrap();
        }
        assert!(q.is_empty() && q.receive(10).await.unwrap().is_empty());
    }
}
