//! What a simulation run reports: a timeline of what happened and a summary, as text or JSON.

use std::collections::BTreeMap;

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::scenario::fmt_offset;
use crate::cloud::{CapacityType, Instance};

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    /// `h:mm:ss`.
    pub duration: String,
    pub timeline: Vec<Entry>,
    /// Every node launched, in launch order.
    pub nodes: Vec<NodeRecord>,
    pub summary: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// `h:mm:ss` from the scenario start.
    pub at: String,
    pub offset_seconds: i64,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Event {
    /// A scenario timeline step ran.
    Step { action: String },
    /// Pod counts changed.
    Pods { pending: usize, running: usize },
    /// A NodeClaim was created and its instance launched.
    Launched {
        node_claim: String,
        instance_type: String,
        zone: String,
        capacity_type: CapacityType,
        price_per_hour: f64,
    },
    /// A launch into the offering failed for lack of capacity; it is skipped until `unavailableUntil`.
    CapacityError { offering: String, unavailable_until: String },
    /// A NodeClaim could not be launched.
    LaunchFailed { node_claim: String, reason: String },
    /// The instance's kubelet registered the node.
    Registered { node: String, instance_type: String, zone: String, capacity_type: CapacityType },
    /// The cloud announced a spot interruption.
    InterruptionNotice { node: String, instance_type: String, zone: String, reclaim_at: String },
    /// The node and its instance are gone.
    Terminated {
        node: String,
        instance_type: String,
        zone: String,
        capacity_type: CapacityType,
        reason: String,
    },
    /// The disruption loop handed nodes to termination (after validating the decision and launching any
    /// replacement).
    Disrupted { nodes: Vec<String>, reason: String, action: String, savings_per_hour: f64, detail: String },
    /// The interruption loop drained the node for a queue message (`reason`: the message kind).
    Drained { node: String, reason: String },
    /// The provisioner found no way to host these pods, for the same reason.
    Unschedulable { pods: Vec<String>, reason: String },
}

/// One node's life and cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub name: String,
    pub instance_id: String,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
    pub price_per_hour: f64,
    pub launched_at: String,
    pub registered_at: Option<String>,
    pub terminated_at: Option<String>,
    /// Billed from launch to termination (or the end of the run).
    pub hours: f64,
    pub cost: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub nodes_launched: usize,
    pub nodes_terminated: usize,
    pub peak_nodes: usize,
    pub node_hours: f64,
    /// USD.
    pub total_cost: f64,
    pub pods_running_at_end: usize,
    pub pods_pending_at_end: usize,
    /// The longest any pod waited from creation to running (still-pending pods count until the end).
    pub longest_pending_seconds: i64,
    pub longest_pending_pod: Option<String>,
    /// Pods the provisioner could not place, with the last reason given.
    pub unschedulable: BTreeMap<String, String>,
    /// USD: what the cheapest fractional mix of allowed instance types would have cost for the pods that
    /// existed at each moment (`scheduling::bound`), with no launch delays. Absent when it cannot be computed.
    pub lower_bound_cost: Option<f64>,
    /// `total_cost / lower_bound_cost`.
    pub cost_vs_lower_bound: Option<f64>,
}

/// Accumulates a run's events into a [`Report`].
#[derive(Debug)]
pub struct Recorder {
    start: Timestamp,
    timeline: Vec<Entry>,
    nodes: Vec<NodeRecord>,
    /// Launch and termination offsets, parallel to `nodes`.
    spans: Vec<(SignedDuration, Option<SignedDuration>)>,
    /// Claim name → index into `nodes`, for nodes not yet terminated.
    live: BTreeMap<String, usize>,
    last_pods: Option<(usize, usize)>,
    unschedulable: BTreeMap<String, String>,
    peak_nodes: usize,
    longest_pending: (i64, Option<String>),
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

impl Recorder {
    pub fn new(start: Timestamp) -> Self {
        Self {
            start,
            timeline: Vec::new(),
            nodes: Vec::new(),
            spans: Vec::new(),
            live: BTreeMap::new(),
            last_pods: None,
            unschedulable: BTreeMap::new(),
            peak_nodes: 0,
            longest_pending: (0, None),
        }
    }

    fn offset(&self, at: Timestamp) -> SignedDuration {
        at.duration_since(self.start)
    }

    fn push(&mut self, at: Timestamp, event: Event) {
        let offset = self.offset(at);
        self.timeline.push(Entry { at: fmt_offset(offset), offset_seconds: offset.as_secs(), event });
    }

    pub fn step(&mut self, at: Timestamp, action: String) {
        self.push(at, Event::Step { action });
    }

    /// Records pod counts when they changed since the last call.
    pub fn pods(&mut self, at: Timestamp, pending: usize, running: usize) {
        if self.last_pods != Some((pending, running)) {
            self.last_pods = Some((pending, running));
            self.push(at, Event::Pods { pending, running });
        }
    }

    pub fn launched(&mut self, at: Timestamp, claim: &str, instance: &Instance) {
        self.push(
            at,
            Event::Launched {
                node_claim: claim.to_string(),
                instance_type: instance.instance_type.clone(),
                zone: instance.zone.clone(),
                capacity_type: instance.capacity_type,
                price_per_hour: instance.price,
            },
        );
        self.live.insert(claim.to_string(), self.nodes.len());
        self.spans.push((self.offset(at), None));
        self.nodes.push(NodeRecord {
            name: claim.to_string(),
            instance_id: instance.id.clone(),
            instance_type: instance.instance_type.clone(),
            zone: instance.zone.clone(),
            capacity_type: instance.capacity_type,
            price_per_hour: instance.price,
            launched_at: fmt_offset(self.offset(at)),
            registered_at: None,
            terminated_at: None,
            hours: 0.0,
            cost: 0.0,
        });
        self.peak_nodes = self.peak_nodes.max(self.live.len());
    }

    pub fn capacity_error(&mut self, at: Timestamp, offering: String, unavailable_until: Timestamp) {
        let unavailable_until = fmt_offset(self.offset(unavailable_until));
        self.push(at, Event::CapacityError { offering, unavailable_until });
    }

    pub fn launch_failed(&mut self, at: Timestamp, claim: &str, reason: String) {
        self.push(at, Event::LaunchFailed { node_claim: claim.to_string(), reason });
    }

    pub fn registered(&mut self, at: Timestamp, node: &str) {
        let Some(&i) = self.live.get(node) else { return };
        let offset = fmt_offset(self.offset(at));
        let record = &mut self.nodes[i];
        record.registered_at = Some(offset);
        let event = Event::Registered {
            node: node.to_string(),
            instance_type: record.instance_type.clone(),
            zone: record.zone.clone(),
            capacity_type: record.capacity_type,
        };
        self.push(at, event);
    }

    pub fn interruption_notice(&mut self, at: Timestamp, node: &str, reclaim_at: Timestamp) {
        let Some(&i) = self.live.get(node) else { return };
        let event = Event::InterruptionNotice {
            node: node.to_string(),
            instance_type: self.nodes[i].instance_type.clone(),
            zone: self.nodes[i].zone.clone(),
            reclaim_at: fmt_offset(self.offset(reclaim_at)),
        };
        self.push(at, event);
    }

    pub fn disrupted(&mut self, at: Timestamp, command: &crate::disruption::Command) {
        let action = if command.is_replace() { "replace" } else { "delete" };
        let event = Event::Disrupted {
            nodes: command.nodes.clone(),
            reason: command.reason.to_string(),
            action: action.to_string(),
            savings_per_hour: command.savings,
            detail: command.detail.clone(),
        };
        self.push(at, event);
    }

    pub fn drained(&mut self, at: Timestamp, node: &str, reason: &str) {
        self.push(at, Event::Drained { node: node.to_string(), reason: reason.to_string() });
    }

    pub fn terminated(&mut self, at: Timestamp, node: &str, reason: &str) {
        let Some(i) = self.live.remove(node) else { return };
        let offset = self.offset(at);
        self.spans[i].1 = Some(offset);
        let record = &mut self.nodes[i];
        record.terminated_at = Some(fmt_offset(offset));
        let event = Event::Terminated {
            node: node.to_string(),
            instance_type: record.instance_type.clone(),
            zone: record.zone.clone(),
            capacity_type: record.capacity_type,
            reason: reason.to_string(),
        };
        self.push(at, event);
    }

    /// The pod was placed: forget its reason.
    pub fn schedulable(&mut self, pod: &str) {
        self.unschedulable.remove(pod);
    }

    /// Records the (pod, reason) pairs that are new, one event per reason.
    pub fn unschedulable(&mut self, at: Timestamp, reasons: &[(String, String)]) {
        let mut by_reason: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (pod, reason) in reasons {
            if self.unschedulable.get(pod) != Some(reason) {
                self.unschedulable.insert(pod.clone(), reason.clone());
                by_reason.entry(reason).or_default().push(pod.clone());
            }
        }
        for (reason, pods) in by_reason {
            self.push(at, Event::Unschedulable { pods, reason: reason.to_string() });
        }
    }

    /// Forgets reasons for pods `keep` rejects (bound or deleted since).
    pub fn retain_unschedulable(&mut self, keep: impl Fn(&str) -> bool) {
        self.unschedulable.retain(|pod, _| keep(pod));
    }

    /// A pod waited `waited` before running (or until the end).
    pub fn pod_waited(&mut self, pod: &str, waited: SignedDuration) {
        let secs = waited.as_secs();
        if secs > self.longest_pending.0 {
            self.longest_pending = (secs, Some(pod.to_string()));
        }
    }

    /// Closes the books at `end`: bills live nodes until then.
    pub fn finish(
        mut self,
        end: Timestamp,
        scenario: &str,
        seed: u64,
        pending: usize,
        running: usize,
    ) -> Report {
        let end_offset = self.offset(end);
        let mut summary = Summary {
            nodes_launched: self.nodes.len(),
            peak_nodes: self.peak_nodes,
            pods_running_at_end: running,
            pods_pending_at_end: pending,
            longest_pending_seconds: self.longest_pending.0,
            longest_pending_pod: self.longest_pending.1.clone(),
            unschedulable: self.unschedulable.clone(),
            ..Summary::default()
        };
        for (record, (launched, terminated)) in self.nodes.iter_mut().zip(&self.spans) {
            let until = terminated.unwrap_or(end_offset);
            let hours = (until - *launched).as_secs_f64() / 3600.0;
            record.hours = round6(hours);
            record.cost = round6(hours * record.price_per_hour);
            summary.node_hours += hours;
            summary.total_cost += hours * record.price_per_hour;
            summary.nodes_terminated += usize::from(record.terminated_at.is_some());
        }
        summary.node_hours = round6(summary.node_hours);
        summary.total_cost = round6(summary.total_cost);
        Report {
            scenario: scenario.to_string(),
            seed,
            duration: fmt_offset(end_offset),
            timeline: self.timeline,
            nodes: self.nodes,
            summary,
        }
    }
}

impl Event {
    fn kind(&self) -> &'static str {
        match self {
            Event::Step { .. } => "step",
            Event::Pods { .. } => "pods",
            Event::Launched { .. } => "launch",
            Event::CapacityError { .. } => "no capacity",
            Event::LaunchFailed { .. } => "launch failed",
            Event::Registered { .. } => "ready",
            Event::InterruptionNotice { .. } => "interruption",
            Event::Terminated { .. } => "terminated",
            Event::Disrupted { .. } => "disrupted",
            Event::Drained { .. } => "drained",
            Event::Unschedulable { .. } => "unschedulable",
        }
    }

    fn describe(&self) -> String {
        match self {
            Event::Step { action } => action.clone(),
            Event::Pods { pending, running } => format!("{pending} pending, {running} running"),
            Event::Launched { node_claim, instance_type, zone, capacity_type, price_per_hour } => {
                format!("{node_claim}: {instance_type} {zone} {capacity_type} ${price_per_hour:.4}/h")
            }
            Event::CapacityError { offering, unavailable_until } => {
                format!("{offering} is out of capacity; skipped until {unavailable_until}")
            }
            Event::LaunchFailed { node_claim, reason } => format!("{node_claim}: {reason}"),
            Event::Registered { node, instance_type, zone, capacity_type } => {
                format!("node {node} ({instance_type} {zone} {capacity_type})")
            }
            Event::InterruptionNotice { node, instance_type, zone, reclaim_at } => {
                format!("spot node {node} ({instance_type} {zone}) is reclaimed at {reclaim_at}")
            }
            Event::Terminated { node, instance_type, zone, capacity_type, reason } => {
                format!("node {node} ({instance_type} {zone} {capacity_type}): {reason}")
            }
            Event::Disrupted { nodes, reason, action, savings_per_hour, detail } => {
                format!("{action} {} ({reason}: {detail}), saves ${savings_per_hour:.4}/h", nodes.join(", "))
            }
            Event::Drained { node, reason } => format!("node {node}: {reason}; replacing it"),
            Event::Unschedulable { pods, reason } => match pods.as_slice() {
                [pod] => format!("{pod}: {reason}"),
                [first, ..] => format!("{} pods ({first}, …): {reason}", pods.len()),
                [] => reason.clone(),
            },
        }
    }
}

impl Report {
    /// Adds the lower bound on cost to the summary.
    pub fn set_lower_bound(&mut self, bound: f64) {
        self.summary.lower_bound_cost = Some(round6(bound));
        self.summary.cost_vs_lower_bound = (bound > 0.0).then(|| round6(self.summary.total_cost / bound));
    }

    /// The timeline, the nodes and the summary as readable text.
    pub fn to_text(&self) -> String {
        let mut out =
            format!("Scenario {} (seed {}, {})\n\nTimeline\n", self.scenario, self.seed, self.duration);
        for entry in &self.timeline {
            out.push_str(&format!(
                "  {:>8}  {:<13} {}\n",
                entry.at,
                entry.event.kind(),
                entry.event.describe()
            ));
        }

        out.push_str("\nNodes\n");
        let mut nodes = Table::new();
        nodes.load_preset(UTF8_FULL_CONDENSED).set_header([
            "node",
            "type",
            "zone",
            "capacity",
            "$/h",
            "launched",
            "ready",
            "terminated",
            "hours",
            "cost $",
        ]);
        for n in &self.nodes {
            nodes.add_row([
                Cell::new(&n.name),
                Cell::new(&n.instance_type),
                Cell::new(&n.zone),
                Cell::new(n.capacity_type),
                Cell::new(format!("{:.4}", n.price_per_hour)).set_alignment(CellAlignment::Right),
                Cell::new(&n.launched_at),
                Cell::new(n.registered_at.as_deref().unwrap_or("-")),
                Cell::new(n.terminated_at.as_deref().unwrap_or("-")),
                Cell::new(format!("{:.3}", n.hours)).set_alignment(CellAlignment::Right),
                Cell::new(format!("{:.4}", n.cost)).set_alignment(CellAlignment::Right),
            ]);
        }
        out.push_str(&nodes.to_string());

        let s = &self.summary;
        out.push_str("\n\nSummary\n");
        let mut summary = Table::new();
        summary.load_preset(UTF8_FULL_CONDENSED);
        let longest = match &s.longest_pending_pod {
            Some(pod) => {
                format!("{} ({pod})", fmt_offset(SignedDuration::from_secs(s.longest_pending_seconds)))
            }
            None => "0:00:00".to_string(),
        };
        let rows = [
            ("nodes launched", s.nodes_launched.to_string()),
            ("nodes terminated", s.nodes_terminated.to_string()),
            ("peak nodes", s.peak_nodes.to_string()),
            ("node-hours", format!("{:.3}", s.node_hours)),
            ("total cost", format!("${:.4}", s.total_cost)),
            ("pods running at end", s.pods_running_at_end.to_string()),
            ("pods pending at end", s.pods_pending_at_end.to_string()),
            ("longest pending", longest),
            ("lower bound on cost", s.lower_bound_cost.map_or("-".to_string(), |b| format!("${b:.4}"))),
            ("cost / lower bound", s.cost_vs_lower_bound.map_or("-".to_string(), |r| format!("{r:.2}"))),
        ];
        for (k, v) in rows {
            summary.add_row([Cell::new(k), Cell::new(v)]);
        }
        let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (pod, reason) in &s.unschedulable {
            by_reason.entry(reason).or_default().push(pod);
        }
        for (reason, pods) in by_reason {
            let label = match pods.as_slice() {
                [pod] => format!("unschedulable {pod}"),
                _ => format!("unschedulable ({} pods, e.g. {})", pods.len(), pods[0]),
            };
            summary.add_row([Cell::new(label), Cell::new(reason)]);
        }
        out.push_str(&summary.to_string());
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cloud::InstanceState;

    fn instance(id: &str, price: f64, at: Timestamp) -> Instance {
        Instance {
            id: id.to_string(),
            provider_id: format!("aws:///us-east-1a/{id}"),
            instance_type: "m5.large".to_string(),
            zone: "us-east-1a".to_string(),
            capacity_type: CapacityType::OnDemand,
            price,
            launched_at: at,
            state: InstanceState::Pending,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn bills_nodes_from_launch_to_termination_or_end() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |mins: i64| start + SignedDuration::from_mins(mins);
        let mut r = Recorder::new(start);
        r.pods(at(0), 3, 0);
        r.pods(at(0), 3, 0);
        r.launched(at(0), "a", &instance("i-1", 0.1, at(0)));
        r.launched(at(0), "b", &instance("i-2", 0.2, at(0)));
        r.registered(at(1), "a");
        r.pods(at(1), 0, 3);
        r.pod_waited("default/p", SignedDuration::from_secs(65));
        r.terminated(at(30), "b", "spot interruption");
        let q = vec![("default/q".to_string(), "no instance type fits".to_string())];
        r.unschedulable(at(2), &q);
        r.unschedulable(at(3), &q);
        let report = r.finish(at(60), "test", 1, 1, 3);

        let kinds: Vec<&str> = report.timeline.iter().map(|e| e.event.kind()).collect();
        assert_eq!(kinds, ["pods", "launch", "launch", "ready", "pods", "terminated", "unschedulable"]);
        let s = &report.summary;
        assert_eq!((s.nodes_launched, s.nodes_terminated, s.peak_nodes), (2, 1, 2));
        assert_eq!(s.node_hours, 1.5);
        assert_eq!(s.total_cost, 0.1 + 0.2 * 0.5);
        assert_eq!((s.longest_pending_seconds, s.longest_pending_pod.as_deref()), (65, Some("default/p")));
        assert_eq!(report.nodes[1].terminated_at.as_deref(), Some("0:30:00"));

        let text = report.to_text();
        assert!(text.contains("0:00:00  launch        a: m5.large us-east-1a on-demand $0.1000/h"), "{text}");
        assert!(text.contains("total cost"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["timeline"][1]["event"], "launched");
        assert_eq!(json["timeline"][1]["capacityType"], "on-demand");
        assert_eq!(json["summary"]["peakNodes"], 2);
    }
}
