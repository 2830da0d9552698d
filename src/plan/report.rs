//! The plan as a stable serde struct (`--output json`) and as text. Lists are sorted and prices rounded, so the
//! same snapshot and `--now` always give the same bytes.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use super::load::SkippedObject;
use crate::cloud::LaunchOption;

/// Launch options listed per node: the cheapest offering of each instance type, cheapest first.
pub const LISTED_TYPES: usize = 10;
/// Of which the text output shows this many.
const TEXT_TYPES: usize = 4;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `snapshot <dir>` or `cluster <API server URL>`.
    pub source: String,
    /// RFC 3339.
    pub now: String,
    /// Objects indexed, by kind.
    pub objects: BTreeMap<String, usize>,
    pub skipped_objects: Vec<SkippedObject>,
    /// Objects of kinds no loop reads, by kind.
    pub ignored_kinds: BTreeMap<String, usize>,
    pub provisioning: Option<ProvisioningPlan>,
    pub disruption: Option<DisruptionPlan>,
    pub proportional: Option<ProportionalPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProvisioningPlan {
    pub launches: Vec<Launch>,
    /// Sum of the launches' cheapest options.
    pub cost_per_hour: f64,
    /// Pods that fit on NodeClaims already launching, with the claim.
    pub nominated: BTreeMap<String, String>,
    pub unschedulable: Vec<PodProblem>,
    pub invalid_provisioners: Vec<String>,
}

/// One node to launch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Launch {
    pub provisioner: String,
    pub node_template: Option<String>,
    /// Keys (`namespace/name`) of the pods it is for.
    pub pods: Vec<String>,
    /// What the node would launch as: the cheapest option.
    pub cheapest: Option<Offer>,
    /// The cheapest offering of each fitting instance type, cheapest first (at most [`LISTED_TYPES`]).
    pub instance_types: Vec<Offer>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offer {
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: String,
    pub price_per_hour: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PodProblem {
    pub pod: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisruptionPlan {
    /// The one command the loop would take first if the cluster stays as it is.
    pub decision: Option<DisruptionDecision>,
    /// Nodes no method may disrupt, and why.
    pub protected: Vec<NodeProblem>,
    /// Why a method is holding back now (pending pods, launching capacity).
    pub waiting: Vec<String>,
    pub invalid_provisioners: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisruptionDecision {
    /// `expired`, `drifted`, `empty` or `underutilized`.
    pub reason: String,
    /// `delete` or `replace`.
    pub method: String,
    pub nodes: Vec<RemovedNode>,
    pub replacements: Vec<Launch>,
    /// The nodes' prices minus the replacements'.
    pub savings_per_hour: f64,
    pub detail: String,
    /// Seconds from `now` until the loop decides: ballast starts counting `ttlSecondsAfterEmpty` and
    /// `consolidateAfter` when it first sees a node, so a fresh start waits them out once.
    pub decided_after_seconds: i64,
    /// Seconds from `now` until it acts: the decision is re-validated after the validation delay.
    pub acts_after_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemovedNode {
    pub name: String,
    pub provisioner: String,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: String,
    pub price_per_hour: f64,
    /// Pods that move elsewhere (daemonset and mirror pods do not count).
    pub pods: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NodeProblem {
    pub node: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProportionalPlan {
    pub targets: Vec<ReplicaDecision>,
    /// Problems the loop reports as Warning Events or logs (bad params, missing targets…).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaDecision {
    /// `deployment`, `replicaset`, `statefulset` or `replicationcontroller`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `namespace/name` of the params ConfigMap.
    pub config_map: String,
    /// `linear` or `ladder`.
    pub controller: String,
    /// The node view the params saw, e.g. `3 schedulable nodes, 8 cores`.
    pub inputs: String,
    pub current: i32,
    pub desired: i32,
}

/// Rounded to 1e-6 $/h, the catalog's precision, so sums print the same everywhere.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

impl Offer {
    pub fn from_option(o: &LaunchOption) -> Self {
        Self {
            instance_type: o.instance_type.clone(),
            zone: o.zone.clone(),
            capacity_type: o.capacity_type.as_str().to_string(),
            price_per_hour: round6(o.price),
        }
    }
}

impl Launch {
    /// `options` cheapest first, as the solver orders them.
    pub fn new(
        provisioner: &str,
        node_template: Option<&str>,
        pods: &[String],
        options: &[LaunchOption],
    ) -> Self {
        let mut instance_types: Vec<Offer> = Vec::new();
        for option in options {
            if !instance_types.iter().any(|o| o.instance_type == option.instance_type) {
                instance_types.push(Offer::from_option(option));
            }
        }
        instance_types.truncate(LISTED_TYPES);
        let mut pods = pods.to_vec();
        pods.sort();
        Self {
            provisioner: provisioner.to_string(),
            node_template: node_template.map(str::to_string),
            pods,
            cheapest: options.first().map(Offer::from_option),
            instance_types,
        }
    }

    pub(super) fn price(&self) -> f64 {
        self.cheapest.as_ref().map_or(0.0, |o| o.price_per_hour)
    }

    fn describe(&self) -> String {
        let mut out = format!("{} pod(s) on a new {} node: ", self.pods.len(), self.provisioner);
        match &self.cheapest {
            Some(o) => {
                let _ = write!(
                    out,
                    "{} {} {} ${:.4}/h",
                    o.instance_type, o.capacity_type, o.zone, o.price_per_hour
                );
            }
            None => out.push_str("no launch option"),
        }
        let others: Vec<String> = self
            .instance_types
            .iter()
            .skip(1)
            .take(TEXT_TYPES)
            .map(|o| format!("{} ${:.4}", o.instance_type, o.price_per_hour))
            .collect();
        if !others.is_empty() {
            let _ = write!(out, "; or {}", others.join(", "));
        }
        out
    }
}

impl Report {
    pub fn to_text(&self) -> String {
        let mut out = format!("ballast plan: {} at {}\n", self.source, self.now);
        let objects: Vec<String> = self.objects.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
        let _ = writeln!(out, "Read {}.", objects.join(", "));
        if !self.ignored_kinds.is_empty() {
            let kinds: Vec<String> =
                self.ignored_kinds.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
            let _ = writeln!(out, "Not read by any loop: {}.", kinds.join(", "));
        }
        if !self.skipped_objects.is_empty() {
            let _ = writeln!(out, "Skipped {} object(s):", self.skipped_objects.len());
            for s in &self.skipped_objects {
                let _ = writeln!(out, "  {}: {}: {}", s.file, s.object, s.reason);
            }
        }
        if let Some(p) = &self.provisioning {
            p.write_text(&mut out);
        }
        if let Some(d) = &self.disruption {
            d.write_text(&mut out);
        }
        if let Some(p) = &self.proportional {
            p.write_text(&mut out);
        }
        out
    }
}

impl ProvisioningPlan {
    fn write_text(&self, out: &mut String) {
        let _ = write!(out, "\nProvisioning: ");
        if self.launches.is_empty() {
            let _ = writeln!(out, "launch nothing");
        } else {
            let _ = writeln!(out, "launch {} node(s), ${:.4}/h", self.launches.len(), self.cost_per_hour);
        }
        for launch in &self.launches {
            let _ = writeln!(out, "  launch {}", launch.describe());
        }
        for (pod, claim) in &self.nominated {
            let _ = writeln!(out, "  wait: {pod} fits on NodeClaim {claim}, which is launching");
        }
        for p in &self.unschedulable {
            let _ = writeln!(out, "  unschedulable {}: {}", p.pod, p.reason);
        }
        for p in &self.invalid_provisioners {
            let _ = writeln!(out, "  invalid Provisioner: {p}");
        }
    }
}

impl DisruptionPlan {
    fn write_text(&self, out: &mut String) {
        let _ = write!(out, "\nDisruption: ");
        match &self.decision {
            None => {
                let _ = writeln!(out, "disrupt nothing");
            }
            Some(d) => {
                let names: Vec<&str> = d.nodes.iter().map(|n| n.name.as_str()).collect();
                let action = match d.replacements.len() {
                    0 => format!("delete {}", names.join(", ")),
                    n => format!("replace {} with {n} node(s)", names.join(", ")),
                };
                let _ = writeln!(
                    out,
                    "{action} ({}: {}), saves ${:.4}/h",
                    d.reason, d.detail, d.savings_per_hour
                );
                for n in &d.nodes {
                    let _ = writeln!(
                        out,
                        "  {} {} {} {} ${:.4}/h, {} pod(s) to move",
                        n.name,
                        n.instance_type,
                        n.capacity_type,
                        n.zone,
                        n.price_per_hour,
                        n.pods.len()
                    );
                }
                for r in &d.replacements {
                    let _ = writeln!(out, "  replacement: {}", r.describe());
                }
                let when = match d.decided_after_seconds {
                    0 => "decided now".to_string(),
                    s => format!("decided in {s}s, once ballast has watched the node that long"),
                };
                let _ = writeln!(out, "  {when}; acts in {}s, after re-validating", d.acts_after_seconds);
            }
        }
        for w in &self.waiting {
            let _ = writeln!(out, "  wait: {w}");
        }
        for p in &self.protected {
            let _ = writeln!(out, "  keep {}: {}", p.node, p.reason);
        }
        for p in &self.invalid_provisioners {
            let _ = writeln!(out, "  invalid Provisioner: {p}");
        }
    }
}

impl ProportionalPlan {
    fn write_text(&self, out: &mut String) {
        let changes = self.targets.iter().filter(|t| t.current != t.desired).count();
        let _ = writeln!(out, "\nProportional: {} target(s), {changes} to scale", self.targets.len());
        for t in &self.targets {
            let verb = if t.current == t.desired { "keep" } else { "scale" };
            let _ = writeln!(
                out,
                "  {verb} {}/{} in {}: {} → {} replicas ({} params in ConfigMap {}: {})",
                t.kind, t.name, t.namespace, t.current, t.desired, t.controller, t.config_map, t.inputs
            );
        }
        for w in &self.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
    }
}
