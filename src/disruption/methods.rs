//! The disruption methods, in the order the planner tries them: expiration, drift, emptiness, consolidation
//! (multi-node, then single-node). Each turns candidates into at most one [`Command`]; "fits elsewhere" is
//! `scheduling::solve` over the cluster with the candidates' capacity removed.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use jiff::Timestamp;
use kube::ResourceExt;

use super::{
    Command, Reason,
    candidate::{Candidate, History, claim_of, is_reschedulable, is_terminating},
    settings::Settings,
};
use crate::{
    api::{NodeTemplateSpec, labels},
    cloud::{CapacityType, Catalog},
    model::{Pod, PodPhase, Taint, TaintEffect},
    provisioning,
    scheduling::{self, ExistingNode, NewClaim, NodePoolTemplate, SolveInput},
    state::Snapshot,
};

/// Karpenter's multi-node consolidation looks at no more than this many candidates.
pub const MAX_MULTI_NODE_CANDIDATES: usize = 100;
/// A spot node is replaced by spot only when at least this many cheaper instance types remain, and the
/// replacement may launch only into the cheapest this many (avoids chasing the most-interrupted pool).
pub const MIN_SPOT_TO_SPOT_TYPES: usize = 15;
/// Annotation on a NodeClaim: hash of the NodeTemplate spec it was launched with (see [`node_template_hash`]).
pub const NODE_TEMPLATE_HASH_ANNOTATION: &str = "ballast.dev/node-template-hash";

/// Everything a method reads. Pure data: the same context gives the same command.
pub struct Context<'a> {
    pub snap: &'a Snapshot,
    pub catalog: &'a Catalog,
    pub pools: &'a BTreeMap<String, NodePoolTemplate>,
    pub settings: &'a BTreeMap<String, Settings>,
    pub history: &'a History,
    pub now: Timestamp,
}

impl Context<'_> {
    fn settings_of(&self, c: &Candidate) -> Option<&Settings> {
        self.settings.get(&c.provisioner)
    }

    /// Places the candidates' pods (and any other pending pods) on the rest of the cluster plus new claims.
    /// Errors name the first candidate pod nothing can host.
    pub fn simulate(&self, candidates: &[&Candidate]) -> Result<Vec<NewClaim>, String> {
        let removed: BTreeSet<&str> = candidates.iter().map(|c| c.name()).collect();
        let snap = self.snap;
        let existing = snap
            .nodes
            .values()
            .filter(|n| n.ready && !removed.contains(n.name.as_str()))
            .filter(|n| !is_terminating(n, claim_of(snap, n).map(|c| &**c)))
            .map(|n| ExistingNode {
                name: n.name.clone(),
                labels: n.labels.clone(),
                taints: n.taints.clone(),
                allocatable: n.allocatable.clone(),
                pods: snap.pods_on_node(&n.name).cloned().collect(),
                unschedulable: n.unschedulable,
                in_flight: false,
            })
            .collect();
        let moved: Vec<Arc<Pod>> = candidates
            .iter()
            .flat_map(|c| c.pods.iter())
            .map(|p| {
                let mut p = (**p).clone();
                p.node_name = None;
                p.nominated_node = None;
                p.phase = PodPhase::Pending;
                p.unschedulable = false;
                Arc::new(p)
            })
            .collect();
        let moved_keys: BTreeSet<String> = moved.iter().map(|p| p.key()).collect();
        let pending =
            moved.into_iter().chain(snap.pending_pods().filter(|p| !p.is_daemonset_pod()).cloned()).collect();
        let input = SolveInput {
            existing,
            pending,
            pools: self.pools.values().cloned().collect(),
            daemonsets: snap.daemonsets.values().cloned().collect(),
            volumes: provisioning::volume_topology(snap),
            namespace_labels: BTreeMap::new(),
        };
        let results = scheduling::solve(&input);
        if let Some((pod, why)) = results.unschedulable.iter().find(|(p, _)| moved_keys.contains(p)) {
            return Err(format!("pod {pod} would have nowhere to go: {why}"));
        }
        Ok(results.new_claims)
    }
}

/// Disruptions each Provisioner may still start now: its active budget minus nodes already disrupting
/// (terminating or not ready).
pub fn remaining_budgets(ctx: &Context<'_>) -> BTreeMap<String, i64> {
    let mut totals: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for node in ctx.snap.nodes.values() {
        let Some(p) = super::candidate::provisioner_of(node) else { continue };
        let entry = totals.entry(p).or_default();
        entry.0 += 1;
        if !node.ready || is_terminating(node, claim_of(ctx.snap, node).map(|c| &**c)) {
            entry.1 += 1;
        }
    }
    ctx.settings
        .iter()
        .map(|(name, s)| {
            let (total, disrupting) = totals.get(name.as_str()).copied().unwrap_or_default();
            (name.clone(), (s.budget(total, ctx.now) - disrupting).max(0))
        })
        .collect()
}

// === Expiration ===

/// The oldest candidate past `ttlSecondsUntilExpired`, with replacements for pods that need them.
pub fn expiration(ctx: &Context<'_>, candidates: &[&Candidate]) -> Option<Command> {
    let mut expired: Vec<&&Candidate> = candidates
        .iter()
        .filter(|c| {
            ctx.settings_of(c)
                .and_then(|s| s.ttl_until_expired)
                .is_some_and(|ttl| ctx.now.duration_since(c.node.created) >= ttl)
        })
        .collect();
    expired.sort_by(|a, b| a.node.created.cmp(&b.node.created).then_with(|| a.name().cmp(b.name())));
    expired
        .into_iter()
        .find_map(|c| forced_command(ctx, Reason::Expired, c, "past its ttlSecondsUntilExpired".into()))
}

/// Expiration and drift replace a node with whatever its pods need, at any price.
fn forced_command(ctx: &Context<'_>, reason: Reason, c: &Candidate, why: String) -> Option<Command> {
    let replacements = ctx.simulate(&[c]).ok()?;
    let savings = c.price - replacements.iter().map(NewClaim::price).sum::<f64>();
    Some(Command { reason, nodes: vec![c.name().to_string()], replacements, savings, detail: why })
}

// === Drift ===

/// One drift check: why the candidate no longer matches its pool, if it does not.
pub type DriftCheck = fn(&Candidate, &NodePoolTemplate, &Snapshot) -> Option<String>;

/// Checks in order. Cloud-specific ones (AMI, subnets, security groups, user data) compare hashes recorded
/// on the NodeClaim at launch with the current NodeTemplate, so adding one is adding a function here.
pub const DRIFT_CHECKS: &[DriftCheck] =
    &[requirements_drift, labels_drift, taints_drift, node_template_drift];

pub fn drift(ctx: &Context<'_>, candidates: &[&Candidate]) -> Option<Command> {
    candidates.iter().find_map(|c| {
        let pool = ctx.pools.get(&c.provisioner)?;
        let why = DRIFT_CHECKS.iter().find_map(|check| check(c, pool, ctx.snap))?;
        forced_command(ctx, Reason::Drifted, c, why)
    })
}

fn requirements_drift(c: &Candidate, pool: &NodePoolTemplate, _: &Snapshot) -> Option<String> {
    let key = pool.requirements.mismatch(&c.node.labels)?;
    Some(format!("label {key} no longer satisfies the Provisioner's requirements"))
}

fn labels_drift(c: &Candidate, pool: &NodePoolTemplate, _: &Snapshot) -> Option<String> {
    let launched = c.claim.as_ref()?.spec.labels.clone().unwrap_or_default();
    let (key, want) = pool.labels.iter().find(|(k, v)| launched.get(*k) != Some(*v))?;
    Some(format!("the Provisioner now sets label {key}={want}"))
}

fn taints_drift(c: &Candidate, pool: &NodePoolTemplate, _: &Snapshot) -> Option<String> {
    let spec = &c.claim.as_ref()?.spec;
    let convert = |ts: &Option<Vec<k8s_openapi::api::core::v1::Taint>>| -> BTreeSet<Taint> {
        ts.iter()
            .flatten()
            .filter_map(|t| {
                let effect = match t.effect.as_str() {
                    "NoSchedule" => TaintEffect::NoSchedule,
                    "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
                    "NoExecute" => TaintEffect::NoExecute,
                    _ => return None,
                };
                Some(Taint { key: t.key.clone(), value: t.value.clone().unwrap_or_default(), effect })
            })
            .collect()
    };
    let want: BTreeSet<Taint> = pool.taints.iter().cloned().collect();
    if convert(&spec.taints) != want {
        return Some("the Provisioner's taints changed".into());
    }
    let want_startup: BTreeSet<Taint> = pool.startup_taints.iter().cloned().collect();
    (convert(&spec.startup_taints) != want_startup).then(|| "the Provisioner's startup taints changed".into())
}

fn node_template_drift(c: &Candidate, pool: &NodePoolTemplate, snap: &Snapshot) -> Option<String> {
    let launched = c.claim.as_ref()?.annotations().get(NODE_TEMPLATE_HASH_ANNOTATION)?;
    let template = snap.node_templates.get(pool.node_template.as_deref()?)?;
    let current = node_template_hash(&template.spec);
    (*launched != current).then(|| format!("NodeTemplate {} changed since launch", template.name_any()))
}

/// A stable hash (FNV-1a over the canonical JSON) of what a NodeTemplate launches: AMI, subnets, security
/// groups, user data, tags, block devices. Stable across builds, unlike `std`'s hasher.
pub fn node_template_hash(spec: &NodeTemplateSpec) -> String {
    let json = serde_json::to_string(spec).unwrap_or_default();
    let hash =
        json.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{hash:016x}")
}

// === Emptiness ===

/// Every candidate whose Provisioner sets `ttlSecondsAfterEmpty` and that has had no reschedulable pod for
/// that long, within budgets: deleted together.
pub fn emptiness(
    ctx: &Context<'_>,
    candidates: &[&Candidate],
    budgets: &BTreeMap<String, i64>,
) -> Option<Command> {
    let mut left = budgets.clone();
    let mut nodes = Vec::new();
    let mut savings = 0.0;
    for c in candidates {
        let Some(ttl) = ctx.settings_of(c).and_then(|s| s.ttl_after_empty) else { continue };
        let empty_long_enough = c.pods.is_empty()
            && ctx.history.empty_since(c.name()).is_some_and(|t| ctx.now.duration_since(t) >= ttl);
        let budget = left.entry(c.provisioner.clone()).or_default();
        if empty_long_enough && *budget > 0 {
            *budget -= 1;
            nodes.push(c.name().to_string());
            savings += c.price;
        }
    }
    (!nodes.is_empty()).then(|| Command {
        reason: Reason::Empty,
        nodes,
        replacements: Vec::new(),
        savings,
        detail: "empty for ttlSecondsAfterEmpty".into(),
    })
}

// === Consolidation ===

/// Why a candidate may not be consolidated now, if it may not.
pub fn consolidation_blocker(ctx: &Context<'_>, c: &Candidate) -> Option<String> {
    let s = ctx.settings_of(c)?;
    if !s.consolidation {
        return Some("consolidation is not enabled".into());
    }
    if c.node.annotations.get(labels::KARPENTER_DO_NOT_CONSOLIDATE).is_some_and(|v| v == "true") {
        return Some("the node is annotated karpenter.sh/do-not-consolidate".into());
    }
    let stable_since = ctx.history.last_change(c.name())?.max(c.node.created);
    if ctx.now.duration_since(stable_since) < s.consolidate_after {
        return Some("its pods changed within consolidateAfter".into());
    }
    if let Some(threshold) = s.utilization_threshold {
        let requested: crate::resources::Resources =
            ctx.snap.pods_on_node(c.name()).filter(|p| !p.is_terminal()).map(|p| &p.requests).sum();
        let alloc = &c.node.allocatable;
        let below = |used: i64, total: i64| total > 0 && used * 100 < total * threshold;
        if !(below(requested.cpu, alloc.cpu) && below(requested.memory, alloc.memory)) {
            return Some(format!("requests are not below the {threshold}% utilization threshold"));
        }
    }
    None
}

/// Multi-node consolidation over the cheapest-to-disrupt prefix (binary search on its length, as Karpenter's
/// `firstNConsolidationOption`), then each candidate alone.
pub fn consolidation(
    ctx: &Context<'_>,
    candidates: &[&Candidate],
    budgets: &BTreeMap<String, i64>,
) -> Option<Command> {
    // Capacity launching or pods waiting for it: the provisioner is mid-decision, so moving pods now would
    // race it (and a pending pod could need the very node being removed).
    let in_flight = ctx.snap.node_claims.values().any(|c| {
        c.metadata.deletion_timestamp.is_none()
            && c.status
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_none_or(|n| !ctx.snap.nodes.contains_key(n))
    });
    if in_flight || ctx.snap.pending_pods().any(|p| is_reschedulable(p)) {
        return None;
    }
    let mut left = budgets.clone();
    let eligible: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| consolidation_blocker(ctx, c).is_none())
        .filter(|c| {
            let budget = left.entry(c.provisioner.clone()).or_default();
            (*budget > 0).then(|| *budget -= 1).is_some()
        })
        .copied()
        .collect();
    let prefix = &eligible[..eligible.len().min(MAX_MULTI_NODE_CANDIDATES)];
    let (mut lo, mut hi, mut best) = (2, prefix.len(), None);
    while lo <= hi {
        let mid = (lo + hi) / 2;
        match consolidate(ctx, &prefix[..mid]) {
            Some(cmd) => {
                best = Some(cmd);
                lo = mid + 1;
            }
            None => hi = mid - 1,
        }
    }
    best.or_else(|| eligible.iter().find_map(|c| consolidate(ctx, &[c])))
}

/// Delete the set when its pods fit on the rest of the cluster; else replace it by one strictly cheaper node.
pub fn consolidate(ctx: &Context<'_>, set: &[&Candidate]) -> Option<Command> {
    let replacements = ctx.simulate(set).ok()?;
    let total: f64 = set.iter().map(|c| c.price).sum();
    let nodes: Vec<String> = set.iter().map(|c| c.name().to_string()).collect();
    match replacements.len() {
        0 => Some(Command {
            reason: Reason::Underutilized,
            nodes,
            replacements,
            savings: total,
            detail: "its pods fit on other nodes".into(),
        }),
        1 => {
            let cooling = set.iter().any(|c| {
                ctx.settings_of(c).is_some_and(|s| c.recently_replaced_in(s.replacement_cooldown, ctx.now))
            });
            if cooling {
                return None;
            }
            let claim = cheaper_replacement(set, replacements.into_iter().next()?, total)?;
            let savings = total - claim.price();
            let detail = format!("replaced by a cheaper {}", claim.launch_options[0].instance_type);
            Some(Command { reason: Reason::Underutilized, nodes, replacements: vec![claim], savings, detail })
        }
        _ => None,
    }
}

/// Narrows the replacement to launch options strictly cheaper than the set (Karpenter's price rule), never the
/// same type for a single node, spot only for spot nodes (and only with enough cheaper spot types), and pinned
/// to spot when spot is allowed, so a failed spot launch never becomes a pricier on-demand one.
fn cheaper_replacement(set: &[&Candidate], mut claim: NewClaim, total: f64) -> Option<NewClaim> {
    let single_type = (set.len() == 1).then(|| set[0].instance_type.as_str());
    claim.launch_options.retain(|o| o.price < total && Some(o.instance_type.as_str()) != single_type);
    let all_spot = set.iter().all(|c| c.capacity_type == Some(CapacityType::Spot));
    let has_spot = claim.launch_options.iter().any(|o| o.capacity_type == CapacityType::Spot);
    if all_spot || has_spot {
        claim.launch_options.retain(|o| o.capacity_type == CapacityType::Spot);
    }
    if all_spot && set.len() == 1 {
        let mut types: Vec<&str> = Vec::new();
        for o in &claim.launch_options {
            if !types.contains(&o.instance_type.as_str()) {
                types.push(&o.instance_type);
            }
        }
        if types.len() < MIN_SPOT_TO_SPOT_TYPES {
            return None;
        }
        let cheapest: BTreeSet<String> =
            types[..MIN_SPOT_TO_SPOT_TYPES].iter().map(|t| t.to_string()).collect();
        claim.launch_options.retain(|o| cheapest.contains(&o.instance_type));
    }
    if claim.launch_options.is_empty() {
        return None;
    }
    let allowed: BTreeSet<&str> = claim.launch_options.iter().map(|o| o.instance_type.as_str()).collect();
    claim.instance_types.retain(|t| allowed.contains(t.name.as_str()));
    Some(claim)
}
