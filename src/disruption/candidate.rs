//! Candidates: ballast-managed nodes a graceful method may disrupt, with what moving them costs, and the
//! per-node history (when its pods last changed, since when it is empty) that TTLs and the churn guard read.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use jiff::Timestamp;
use kube::ResourceExt;

use crate::{
    api::{NodeClaim, labels},
    cloud::{CapacityType, Catalog},
    model::{IntOrPercent, Node, Pod, PodDisruptionBudget},
    scheduling::selectors,
    state::Snapshot,
};

/// Set on a NodeClaim launched as a replacement, so the cooldown can tell it apart.
pub const REPLACEMENT_ANNOTATION: &str = "ballast.dev/replacement-for";

/// A pod is rescheduled elsewhere when its node goes: not a daemonset, mirror or terminal pod.
pub fn is_reschedulable(pod: &Pod) -> bool {
    !pod.is_daemonset_pod() && !pod.is_mirror() && !pod.is_terminal() && pod.deleting.is_none()
}

fn is_true(annotations: &crate::model::Labels, key: &str) -> bool {
    annotations.get(key).is_some_and(|v| v == "true")
}

/// `ballast.dev/do-not-disrupt`, `karpenter.sh/do-not-disrupt` or `karpenter.sh/do-not-evict` on the pod.
pub fn pod_blocks_disruption(pod: &Pod) -> bool {
    [labels::DO_NOT_DISRUPT, labels::KARPENTER_DO_NOT_DISRUPT, labels::KARPENTER_DO_NOT_EVICT]
        .iter()
        .any(|k| is_true(&pod.annotations, k))
}

pub fn node_blocks_disruption(node: &Node) -> bool {
    [labels::DO_NOT_DISRUPT, labels::KARPENTER_DO_NOT_DISRUPT].iter().any(|k| is_true(&node.annotations, k))
}

/// Being taken down by ballast or anyone else: tainted for disruption, deleting, or its claim deleting.
pub fn is_terminating(node: &Node, claim: Option<&NodeClaim>) -> bool {
    node.deleting.is_some()
        || node.taints.iter().any(|t| t.key == labels::DISRUPTION_TAINT_KEY)
        || claim.is_some_and(|c| c.metadata.deletion_timestamp.is_some())
}

/// The NodeClaim a node was launched for: by the node's label, else by the claim's recorded node name.
pub fn claim_of<'a>(snap: &'a Snapshot, node: &Node) -> Option<&'a Arc<NodeClaim>> {
    node.labels.get(labels::BALLAST_NODE_CLAIM).and_then(|name| snap.node_claims.get(name)).or_else(|| {
        snap.node_claims
            .values()
            .find(|c| c.status.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.name.as_str()))
    })
}

pub fn provisioner_of(node: &Node) -> Option<&str> {
    node.labels
        .get(labels::BALLAST_PROVISIONER)
        .or_else(|| node.labels.get(labels::PROVISIONER_NAME))
        .map(String::as_str)
}

/// Evictions each PDB allows now, computed from the pods in the snapshot (so a stale status cannot let a
/// second eviction through) and capped by the reported status when the spec gives no rule.
pub fn pdb_allowances(snap: &Snapshot) -> BTreeMap<String, i64> {
    snap.pdbs.iter().map(|(key, pdb)| (key.clone(), allowed_disruptions(snap, pdb))).collect()
}

fn allowed_disruptions(snap: &Snapshot, pdb: &PodDisruptionBudget) -> i64 {
    let matching: Vec<&Arc<Pod>> = snap
        .pods
        .values()
        .filter(|p| {
            p.namespace == pdb.namespace && !p.is_terminal() && selectors::matches(&pdb.selector, &p.labels)
        })
        .collect();
    let expected = matching.len() as i64;
    let healthy = matching.iter().filter(|p| p.node_name.is_some() && p.deleting.is_none()).count() as i64;
    let scaled = |v: &IntOrPercent| match v {
        IntOrPercent::Int(n) => i64::from(*n),
        IntOrPercent::Percent(p) => (expected * i64::from(*p) + 99) / 100,
    };
    match (&pdb.min_available, &pdb.max_unavailable) {
        (Some(min), _) => (healthy - scaled(min)).max(0),
        (None, Some(max)) => (scaled(max) - (expected - healthy)).max(0),
        (None, None) => i64::from(pdb.disruptions_allowed).max(0),
    }
}

/// PDBs (by key) whose selector matches the pod.
pub fn pdbs_of<'a>(snap: &'a Snapshot, pod: &'a Pod) -> impl Iterator<Item = &'a String> {
    snap.pdbs
        .iter()
        .filter(move |(_, pdb)| {
            pdb.namespace == pod.namespace && selectors::matches(&pdb.selector, &pod.labels)
        })
        .map(|(k, _)| k)
}

/// A node a graceful method may disrupt.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub node: Arc<Node>,
    pub claim: Option<Arc<NodeClaim>>,
    pub provisioner: String,
    pub instance_type: String,
    pub capacity_type: Option<CapacityType>,
    /// Current $/h of the node's offering.
    pub price: f64,
    /// Pods that must find room elsewhere.
    pub pods: Vec<Arc<Pod>>,
    /// Lower is cheaper to disrupt: pods weighted by priority.
    pub disruption_cost: f64,
}

impl Candidate {
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// The NodeClaim was launched as a replacement less than `cooldown` ago.
    pub fn recently_replaced_in(&self, cooldown: jiff::SignedDuration, now: Timestamp) -> bool {
        self.claim.as_ref().is_some_and(|c| {
            c.annotations().contains_key(REPLACEMENT_ANNOTATION)
                && c.metadata.creation_timestamp.as_ref().is_some_and(|t| now.duration_since(t.0) < cooldown)
        })
    }
}

/// Why a node is not a candidate (for logs and the Unconsolidatable-style debug output).
pub type Skipped = (String, String);

/// Every ready, ballast-managed node not already terminating, not protected by `do-not-disrupt` (node or pod)
/// and whose pods' PDBs all allow an eviction now. Ordered by disruption cost, then age, then name.
pub fn candidates(snap: &Snapshot, catalog: &Catalog) -> (Vec<Candidate>, Vec<Skipped>) {
    let allowances = pdb_allowances(snap);
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for node in snap.nodes.values() {
        let Some(provisioner) = provisioner_of(node) else { continue };
        let claim = claim_of(snap, node).cloned();
        if !node.ready || is_terminating(node, claim.as_deref()) {
            continue;
        }
        let mut skip = |why: String| skipped.push((node.name.clone(), why));
        if node_blocks_disruption(node) {
            skip("the node is annotated do-not-disrupt".into());
            continue;
        }
        let pods: Vec<Arc<Pod>> =
            snap.pods_on_node(&node.name).filter(|p| is_reschedulable(p)).cloned().collect();
        if let Some(p) = pods.iter().find(|p| pod_blocks_disruption(p)) {
            skip(format!("pod {} is annotated do-not-disrupt", p.key()));
            continue;
        }
        if let Some((p, pdb)) = pods.iter().find_map(|p| {
            pdbs_of(snap, p).find(|k| allowances.get(*k).is_none_or(|a| *a < 1)).map(|k| (p, k))
        }) {
            skip(format!("PodDisruptionBudget {pdb} allows no eviction of pod {}", p.key()));
            continue;
        }
        let instance_type = node.labels.get(labels::INSTANCE_TYPE).cloned().unwrap_or_default();
        let capacity_type = node.labels.get(labels::CAPACITY_TYPE).and_then(|c| CapacityType::parse(c));
        let Some(price) = node_price(catalog, node, claim.as_deref()) else {
            skip(format!("no price is known for instance type {instance_type:?}"));
            continue;
        };
        let disruption_cost = pods.iter().map(|p| eviction_cost(p)).sum();
        out.push(Candidate {
            node: node.clone(),
            claim,
            provisioner: provisioner.to_string(),
            instance_type,
            capacity_type,
            price,
            pods,
            disruption_cost,
        });
    }
    out.sort_by(|a, b| {
        a.disruption_cost
            .total_cmp(&b.disruption_cost)
            .then_with(|| a.node.created.cmp(&b.node.created))
            .then_with(|| a.node.name.cmp(&b.node.name))
    });
    (out, skipped)
}

/// Karpenter's per-pod eviction cost: 1 plus the priority scaled by 2^25, clamped to [-10, 10].
fn eviction_cost(pod: &Pod) -> f64 {
    (1.0 + f64::from(pod.priority) / f64::from(1 << 25)).clamp(-10.0, 10.0)
}

/// The node's offering at today's catalog price, else the price recorded at launch.
pub fn node_price(catalog: &Catalog, node: &Node, claim: Option<&NodeClaim>) -> Option<f64> {
    let it = node.labels.get(labels::INSTANCE_TYPE).and_then(|t| catalog.get(t));
    let zone = node.labels.get(labels::ZONE);
    let capacity_type = node.labels.get(labels::CAPACITY_TYPE).and_then(|c| CapacityType::parse(c));
    let listed = it.and_then(|it| {
        it.offerings
            .iter()
            .find(|o| Some(&o.zone) == zone && Some(o.capacity_type) == capacity_type)
            .map(|o| o.price)
    });
    listed.or_else(|| claim?.status.as_ref()?.price.as_deref()?.parse().ok())
}

// === History ===

/// What the disruption loop remembers between passes: when each node's pods last changed and since when it
/// has been empty. Fed from successive snapshots, so replaying the same snapshots gives the same history.
#[derive(Debug, Clone, Default)]
pub struct History {
    nodes: BTreeMap<String, NodeHistory>,
}

#[derive(Debug, Clone, PartialEq)]
struct NodeHistory {
    pods: BTreeSet<String>,
    last_change: Timestamp,
    empty_since: Option<Timestamp>,
}

impl History {
    /// Records the snapshot taken at `now`. A node first seen now counts as changed now (conservative after
    /// a restart: TTLs and the churn guard start over rather than fire early).
    pub fn observe(&mut self, snap: &Snapshot, now: Timestamp) {
        self.nodes.retain(|name, _| snap.nodes.contains_key(name));
        for node in snap.nodes.values() {
            let pods: BTreeSet<String> =
                snap.pods_on_node(&node.name).filter(|p| is_reschedulable(p)).map(|p| p.key()).collect();
            let empty = pods.is_empty();
            match self.nodes.get_mut(&node.name) {
                Some(h) if h.pods == pods => {}
                Some(h) => {
                    h.pods = pods;
                    h.last_change = now;
                    h.empty_since = if empty { h.empty_since.or(Some(now)) } else { None };
                }
                None => {
                    let empty_since = empty.then_some(now);
                    self.nodes.insert(node.name.clone(), NodeHistory { pods, last_change: now, empty_since });
                }
            }
        }
    }

    /// When the node's set of reschedulable pods last changed (`None`: never observed).
    pub fn last_change(&self, node: &str) -> Option<Timestamp> {
        self.nodes.get(node).map(|h| h.last_change)
    }

    pub fn empty_since(&self, node: &str) -> Option<Timestamp> {
        self.nodes.get(node).and_then(|h| h.empty_since)
    }
}
