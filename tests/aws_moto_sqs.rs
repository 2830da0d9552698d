//! The interruption loop against SQS on moto: every fixture kind goes through a real queue (GetQueueUrl, long
//! poll receive, delete), drives the right action on a RecordingActuator, and every message — malformed ones
//! too — is deleted and counted.
#![cfg(feature = "aws")]

mod support;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use ballast::{
    actuator::{Call, RecordingActuator},
    api::{NodeClaim, NodeClaimStatus, labels},
    cloud::aws::sqs::SqsQueue,
    interruption::{Action, Interruption, InterruptionMetrics, Kind},
    model::Node,
    resources::Resources,
    state::{Object, Snapshot},
};
use jiff::Timestamp;
use support::moto;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/interruption/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("failed to read {path}: {e}"))
}

/// A ballast node on instance `i-<name>` with its NodeClaim.
fn node_and_claim(name: &str) -> [Object; 2] {
    let provider_id = format!("aws:///us-east-1a/i-{name}");
    let node = Node {
        name: name.into(),
        provider_id: Some(provider_id.clone()),
        labels: BTreeMap::from([(labels::BALLAST_PROVISIONER.to_string(), "default".to_string())]),
        annotations: BTreeMap::new(),
        taints: vec![],
        unschedulable: false,
        capacity: Resources::default(),
        allocatable: Resources::default(),
        ready: true,
        created: Timestamp::UNIX_EPOCH,
        deleting: None,
    };
    let mut claim: NodeClaim = serde_yaml_ng::from_str(&format!(
        "apiVersion: ballast.dev/v1alpha1\nkind: NodeClaim\nmetadata: {{name: '{name}'}}\nspec: {{provisioner: default}}\n"
    ))
    .unwrap();
    claim.status = Some(NodeClaimStatus {
        provider_id: Some(provider_id),
        node_name: Some(name.into()),
        ..NodeClaimStatus::default()
    });
    [Object::Node(Arc::new(node)), Object::NodeClaim(Arc::new(claim))]
}

#[tokio::test]
async fn every_message_kind_drives_its_action_and_is_deleted_from_sqs() {
    let moto = moto::shared();
    let config = moto.sdk_config().await;
    let name = format!("interruptions-{}", std::process::id());
    let sqs = aws_sdk_sqs::Client::new(&config);
    sqs.create_queue().queue_name(&name).send().await.expect("CreateQueue on moto");
    let queue =
        SqsQueue::connect(&config, &name).await.expect("GetQueueUrl").with_wait(Duration::from_secs(1));
    assert!(queue.url().ends_with(&format!("/{name}")), "{}", queue.url());
    let url = queue.url().to_string();
    // Sent in the order `order.txt` lists them, which the assertions below follow.
    let fixtures = fixture("order.txt");
    for f in fixtures.lines() {
        sqs.send_message().queue_url(&url).message_body(fixture(f)).send().await.unwrap();
    }

    let snap = Snapshot::from_objects((1..=5).flat_map(|n| node_and_claim(&format!("0a1b2c3d4e5f6000{n}"))));
    let kube = Arc::new(RecordingActuator::new());
    let loop_ = Interruption::new(Arc::new(queue), kube.clone(), InterruptionMetrics::default());
    let now: Timestamp = "2026-01-01T00:10:05Z".parse().unwrap();
    let (mut received, mut deleted, mut steps, mut unparseable) = (0, 0, Vec::new(), Vec::new());
    // Bounded: SQS returns at most 10 per receive, and moto may split them.
    for _ in 0..10 {
        let report = loop_.reconcile(|| snap.clone(), || now).await.expect("receive from moto");
        if report.received == 0 && received > 0 {
            break;
        }
        received += report.received;
        deleted += report.deleted;
        steps.extend(report.steps);
        unparseable.extend(report.unparseable);
    }
    let sent = fixtures.lines().count();
    assert_eq!((received, deleted), (sent, sent));
    unparseable.sort();
    assert_eq!(unparseable, ["invalid_detail", "invalid_envelope"]);

    let mut actions: Vec<(String, Kind, Action)> =
        steps.iter().map(|s| (s.instance_id.clone(), s.kind, s.action)).collect();
    actions.sort();
    let id = |n: u8| format!("i-0a1b2c3d4e5f6000{n}");
    assert_eq!(
        actions,
        [
            ("i-0a1b2c3d4e5f60001".into(), Kind::SpotInterruption, Action::Drain),
            (id(2), Kind::RebalanceRecommendation, Action::Notify),
            (id(3), Kind::ScheduledChange, Action::Drain),
            (id(4), Kind::StateChange, Action::Drain),
            (id(5), Kind::StateChange, Action::Drain),
            ("i-0fffffffffffffff9".into(), Kind::SpotInterruption, Action::UnknownInstance),
        ]
    );
    let calls = kube.calls();
    let mut drained: Vec<&str> = calls
        .iter()
        .filter_map(|c| if let Call::DeleteNodeClaim(n) = c { Some(n.as_str()) } else { None })
        .collect();
    drained.sort();
    assert_eq!(drained, ["0a1b2c3d4e5f60001", "0a1b2c3d4e5f60003", "0a1b2c3d4e5f60004", "0a1b2c3d4e5f60005"]);

    let m = loop_.metrics();
    for (kind, count) in [
        ("spot_interruption", 2),
        ("rebalance_recommendation", 1),
        ("scheduled_change", 1),
        ("state_change", 2),
        ("unrelated", 2),
        ("unparseable", 2),
    ] {
        assert_eq!(m.deleted_count(kind), count, "{kind}");
    }

    // The queue is empty: nothing comes back after the visibility timeout either.
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = attrs.attributes.unwrap();
    for key in [
        aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
        aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ] {
        assert_eq!(attrs.get(&key).map(String::as_str), Some("0"), "{key:?}");
    }
}

#[tokio::test]
async fn an_unknown_queue_name_fails_with_the_name_and_the_service_error() {
    let moto = moto::shared();
    let err = match SqsQueue::connect(&moto.sdk_config().await, "no-such-queue").await {
        Ok(_) => panic!("connected to a queue that does not exist"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("no-such-queue") && err.contains("failed to resolve the queue URL"), "{err}");
}
