//! Interruption: spot and health events from the SQS queue.
