//! The interruption queue on SQS (Karpenter's `pkg/providers/sqs`): long-poll receive of up to 10 messages,
//! delete by receipt handle. The queue is named by `--interruption-queue`, a name or a URL.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_smithy_types::error::{display::DisplayErrorContext, metadata::ProvideErrorMetadata};

use crate::interruption::{InterruptionQueue, QueueError, RawMessage};

/// SQS's longest long poll; an idle loop costs one request per 20 s.
pub const LONG_POLL: Duration = Duration::from_secs(20);
/// How long a received message stays invisible before SQS delivers it again (Karpenter uses 20 s).
pub const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(20);
/// SQS's largest batch.
const MAX_BATCH: usize = 10;

pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    name: String,
    url: String,
    wait: Duration,
}

fn sdk_error<E, R>(action: &'static str, queue: &str, err: aws_sdk_sqs::error::SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = match (err.code(), err.message()) {
        (Some(code), Some(m)) => format!("{code}: {m}"),
        (Some(code), None) => code.to_string(),
        _ => DisplayErrorContext(&err).to_string(),
    };
    QueueError { action, queue: queue.to_string(), message }
}

impl SqsQueue {
    /// Resolves `queue` (a name, or a URL used as is) to its URL with GetQueueUrl.
    pub async fn connect(config: &SdkConfig, queue: &str) -> Result<Self, QueueError> {
        let client = aws_sdk_sqs::Client::new(config);
        let url = if queue.starts_with("https://") || queue.starts_with("http://") {
            queue.to_string()
        } else {
            let out = client
                .get_queue_url()
                .queue_name(queue)
                .send()
                .await
                .map_err(|e| sdk_error("resolve the queue URL", queue, e))?;
            out.queue_url.ok_or_else(|| QueueError {
                action: "resolve the queue URL",
                queue: queue.to_string(),
                message: "GetQueueUrl returned no URL".into(),
            })?
        };
        Ok(Self { client, name: queue.to_string(), url, wait: LONG_POLL })
    }

    /// Waits at most `wait` for a message (whole seconds, at most 20).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait.min(LONG_POLL);
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

#[async_trait]
impl InterruptionQueue for SqsQueue {
    async fn receive(&self, max: usize) -> Result<Vec<RawMessage>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH) as i32)
            .wait_time_seconds(self.wait.as_secs() as i32)
            .visibility_timeout(VISIBILITY_TIMEOUT.as_secs() as i32)
            .send()
            .await
            .map_err(|e| sdk_error("receive messages", &self.name, e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                // A message without a receipt handle cannot be deleted; SQS always sends one.
                Some(RawMessage {
                    id: m.message_id.unwrap_or_default(),
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| sdk_error("delete a message", &self.name, e))?;
        Ok(())
    }
}
