//! EventBridge events as the interruption queue delivers them, parsed the way Karpenter does: the envelope's
//! `version`, `source` and `detail-type` pick the parser; events ballast does not act on (other detail types,
//! instance states, Health services or categories) parse as [`Kind::Unrelated`]; a body that is not an event,
//! or an event whose detail lacks what its type promises, is a [`ParseError`].

use std::fmt;

use jiff::Timestamp;
use serde::Deserialize;

/// Instance states that mean the node is going away (Karpenter's accepted states).
const GOING_AWAY_STATES: [&str; 4] = ["stopping", "stopped", "shutting-down", "terminated"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `aws.ec2` "EC2 Spot Instance Interruption Warning": reclaimed two minutes after `time`.
    SpotInterruption,
    /// `aws.ec2` "EC2 Instance Rebalance Recommendation": elevated risk of interruption.
    RebalanceRecommendation,
    /// `aws.health` "AWS Health Event" for EC2 in category `scheduledChange` (retirement, maintenance).
    ScheduledChange,
    /// `aws.ec2` "EC2 Instance State-change Notification" to stopping, stopped, shutting-down or terminated.
    StateChange,
    /// Any other event: deleted without action.
    Unrelated,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SpotInterruption => "spot_interruption",
            Kind::RebalanceRecommendation => "rebalance_recommendation",
            Kind::ScheduledChange => "scheduled_change",
            Kind::StateChange => "state_change",
            Kind::Unrelated => "unrelated",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed event.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: Kind,
    /// EC2 instance ids the event is about (empty for [`Kind::Unrelated`]).
    pub instance_ids: Vec<String>,
    /// When the event happened (the envelope's `time`).
    pub time: Timestamp,
    /// The EventBridge event id, for logs.
    pub event_id: String,
    /// The new instance state of a [`Kind::StateChange`].
    pub state: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("failed to parse the interruption message as an EventBridge event: {0}")]
    Envelope(#[source] serde_json::Error),
    #[error("failed to parse the detail of the {detail_type:?} event {event_id}: {source}")]
    Detail {
        detail_type: String,
        event_id: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ParseError {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Envelope(_) => "invalid_envelope",
            ParseError::Detail { .. } => "invalid_detail",
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    version: String,
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    time: Timestamp,
    #[serde(default)]
    detail: serde_json::Value,
}

#[derive(Deserialize)]
struct InstanceDetail {
    #[serde(rename = "instance-id")]
    instance_id: String,
}

#[derive(Deserialize)]
struct StateChangeDetail {
    #[serde(rename = "instance-id")]
    instance_id: String,
    state: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthDetail {
    service: String,
    event_type_category: String,
    #[serde(default)]
    affected_entities: Vec<AffectedEntity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AffectedEntity {
    entity_value: String,
}

/// Parses one message body.
pub fn parse(body: &str) -> Result<Message, ParseError> {
    let envelope: Envelope = serde_json::from_str(body).map_err(ParseError::Envelope)?;
    let mut message = Message {
        kind: Kind::Unrelated,
        instance_ids: Vec::new(),
        time: envelope.time,
        event_id: envelope.id.clone(),
        state: None,
    };
    if envelope.version != "0" {
        return Ok(message);
    }
    let detail = |e: serde_json::Error| ParseError::Detail {
        detail_type: envelope.detail_type.clone(),
        event_id: envelope.id.clone(),
        source: e,
    };
    match (envelope.source.as_str(), envelope.detail_type.as_str()) {
        ("aws.ec2", "EC2 Spot Instance Interruption Warning") => {
            let d: InstanceDetail = serde_json::from_value(envelope.detail.clone()).map_err(detail)?;
            message.kind = Kind::SpotInterruption;
            message.instance_ids = vec![d.instance_id];
        }
        ("aws.ec2", "EC2 Instance Rebalance Recommendation") => {
            let d: InstanceDetail = serde_json::from_value(envelope.detail.clone()).map_err(detail)?;
            message.kind = Kind::RebalanceRecommendation;
            message.instance_ids = vec![d.instance_id];
        }
        ("aws.ec2", "EC2 Instance State-change Notification") => {
            let d: StateChangeDetail = serde_json::from_value(envelope.detail.clone()).map_err(detail)?;
            let state = d.state.to_ascii_lowercase();
            if GOING_AWAY_STATES.contains(&state.as_str()) {
                message.kind = Kind::StateChange;
                message.instance_ids = vec![d.instance_id];
            }
            message.state = Some(state);
        }
        ("aws.health", "AWS Health Event") => {
            let d: HealthDetail = serde_json::from_value(envelope.detail.clone()).map_err(detail)?;
            if d.service == "EC2" && d.event_type_category == "scheduledChange" {
                message.kind = Kind::ScheduledChange;
                message.instance_ids = d.affected_entities.into_iter().map(|e| e.entity_value).collect();
            }
        }
        _ => {}
    }
    Ok(message)
}

/// The EventBridge event EC2 sends two minutes before reclaiming a spot instance, as the queue delivers it
/// (the simulator puts its notices on the queue in this shape).
pub fn spot_interruption_event(event_id: &str, instance_id: &str, region: &str, time: Timestamp) -> String {
    serde_json::json!({
        "version": "0",
        "id": event_id,
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": time.to_string(),
        "region": region,
        "resources": [format!("arn:aws:ec2:{region}:instance/{instance_id}")],
        "detail": {"instance-id": instance_id, "instance-action": "terminate"},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/interruption/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("failed to read {path}: {e}"))
    }

    fn parsed(name: &str) -> Message {
        parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn each_event_kind_parses_with_its_instances_and_time() {
        let cases = [
            ("spot_interruption.json", Kind::SpotInterruption, "i-0a1b2c3d4e5f60001", "2026-01-01T00:10:00Z"),
            (
                "rebalance_recommendation.json",
                Kind::RebalanceRecommendation,
                "i-0a1b2c3d4e5f60002",
                "2026-01-01T00:09:00Z",
            ),
            ("scheduled_change.json", Kind::ScheduledChange, "i-0a1b2c3d4e5f60003", "2026-01-01T00:08:00Z"),
            ("state_change_stopping.json", Kind::StateChange, "i-0a1b2c3d4e5f60004", "2026-01-01T00:07:00Z"),
            (
                "state_change_terminated.json",
                Kind::StateChange,
                "i-0a1b2c3d4e5f60005",
                "2026-01-01T00:07:00Z",
            ),
        ];
        for (name, kind, instance, time) in cases {
            let m = parsed(name);
            assert_eq!(
                (m.kind, m.instance_ids.as_slice()),
                (kind, [instance.to_string()].as_slice()),
                "{name}"
            );
            assert_eq!(m.time, time.parse::<Timestamp>().unwrap(), "{name}");
        }
        assert_eq!(parsed("state_change_stopping.json").state.as_deref(), Some("stopping"));
        assert_eq!(parsed("spot_interruption.json").event_id, "1e5527d7-bb36-4607-3370-4164db56a40e");
    }

    #[test]
    fn events_ballast_does_not_act_on_are_unrelated() {
        for name in ["state_change_running.json", "health_other_service.json"] {
            let m = parsed(name);
            assert_eq!(m.kind, Kind::Unrelated, "{name}");
            assert!(m.instance_ids.is_empty(), "{name}");
        }
        let other = r#"{"version":"0","id":"x","detail-type":"EC2 AMI State Change","source":"aws.ec2",
            "time":"2026-01-01T00:00:00Z","detail":{"ImageId":"ami-1"}}"#;
        assert_eq!(parse(other).unwrap().kind, Kind::Unrelated);
        let future = r#"{"version":"1","id":"x","detail-type":"EC2 Spot Instance Interruption Warning",
            "source":"aws.ec2","time":"2026-01-01T00:00:00Z","detail":{}}"#;
        assert_eq!(parse(future).unwrap().kind, Kind::Unrelated, "only version 0 is understood");
    }

    #[test]
    fn a_built_spot_event_parses_like_the_real_one() {
        let time: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let built = parse(&spot_interruption_event("e-1", "i-0a1b2c3d4e5f60001", "us-east-1", time)).unwrap();
        let real = parsed("spot_interruption.json");
        assert_eq!((built.kind, &built.instance_ids, built.time), (real.kind, &real.instance_ids, real.time));
    }

    #[test]
    fn malformed_bodies_fail_with_a_reason() {
        let e = parse(&fixture("not_json.txt")).unwrap_err();
        assert_eq!(e.reason(), "invalid_envelope");
        assert_eq!(parse("").unwrap_err().reason(), "invalid_envelope");
        let e = parse(&fixture("malformed_spot_detail.json")).unwrap_err();
        assert_eq!(e.reason(), "invalid_detail");
        assert!(e.to_string().contains("instance-id") && e.to_string().contains("broken"), "{e}");
    }
}
