//! Disruption: take nodes away when they cost money for nothing, one decision at a time.
//!
//! [`plan`] is pure: from a [`Snapshot`], the pools, each Provisioner's [`Settings`] and the loop's [`History`]
//! it returns at most one [`Command`], trying the methods in order: expiration (`ttlSecondsUntilExpired`),
//! drift, emptiness (`ttlSecondsAfterEmpty`), consolidation (multi-node, then single-node). Candidates exclude
//! nodes protected by `do-not-disrupt` (node or pod), pods whose PDB allows no eviction, and Provisioners whose
//! disruption budget is used up. [`controller::Disruption`] waits [`VALIDATION_DELAY`], re-plans the same
//! command against a fresh snapshot ([`validate`]) and only then acts: it launches replacements, waits for them
//! to initialize, and hands the nodes to termination by tainting them.

pub mod candidate;
pub mod controller;
pub mod methods;
pub mod metrics;
pub mod settings;

use std::{collections::BTreeMap, fmt};

use jiff::SignedDuration;
use kube::ResourceExt;

pub use self::{
    candidate::{Candidate, History},
    controller::Disruption,
    methods::Context,
    metrics::DisruptionMetrics,
    settings::Settings,
};
use crate::{
    cloud::Catalog,
    scheduling::{NewClaim, NodePoolTemplate, PoolUsage},
    state::Snapshot,
};

/// Pods and prices may change between deciding and acting: a command is re-planned after this long.
pub const VALIDATION_DELAY: SignedDuration = SignedDuration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read the disruption settings of Provisioner {provisioner}: {field}: {reason}")]
    InvalidSettings { provisioner: String, field: String, reason: String },
    #[error("failed to read the instance-type catalog: {0}")]
    Catalog(#[source] crate::cloud::CloudError),
}

/// Why a node is disrupted; also the metric label and the Event's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Expired,
    Drifted,
    Empty,
    /// Consolidation: deleted or replaced because its pods fit more cheaply elsewhere.
    Underutilized,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Expired => "expired",
            Reason::Drifted => "drifted",
            Reason::Empty => "empty",
            Reason::Underutilized => "underutilized",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision: take these nodes away, after launching these replacements.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub reason: Reason,
    /// Node names, cheapest to disrupt first.
    pub nodes: Vec<String>,
    pub replacements: Vec<NewClaim>,
    /// $/h saved: the nodes' prices minus the replacements' (negative for an expiry that needs a bigger node).
    pub savings: f64,
    /// Human-readable why, for logs and Events.
    pub detail: String,
}

impl Command {
    pub fn is_replace(&self) -> bool {
        !self.replacements.is_empty()
    }

    pub fn describe(&self) -> String {
        let action = if self.is_replace() {
            format!("replace {} with {} node(s)", self.nodes.join(", "), self.replacements.len())
        } else {
            format!("delete {}", self.nodes.join(", "))
        };
        format!("{}: {action} ({}), saves ${:.4}/h", self.reason, self.detail, self.savings)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub command: Option<Command>,
    /// Nodes left out, and why (do-not-disrupt, PDB, no price…).
    pub skipped: Vec<candidate::Skipped>,
}

/// Each Provisioner's settings; a Provisioner with bad settings is left out (it is never disrupted) and
/// reported.
pub fn settings(snap: &Snapshot) -> (BTreeMap<String, Settings>, Vec<Error>) {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for p in snap.provisioners.values().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        match Settings::from_provisioner(p) {
            Ok(s) => _ = out.insert(p.name_any(), s),
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

/// The pools replacements may come from, built as the provisioner builds them. Limits are not charged: a
/// replacement takes the place of capacity it removes. Provisioners whose spec is invalid are left out and
/// their errors returned.
pub fn pools(snap: &Snapshot, catalog: &Catalog) -> (BTreeMap<String, NodePoolTemplate>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for p in snap.provisioners.values().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let template = p.spec.provider_ref.as_ref().and_then(|r| snap.node_templates.get(&r.name));
        match NodePoolTemplate::from_provisioner(p, template.map(|t| &**t), catalog, PoolUsage::default()) {
            Ok(pool) => _ = out.insert(p.name_any(), pool),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (out, errors)
}

/// The first command of the methods in order, or none. Pure.
pub fn plan(ctx: &Context<'_>) -> Plan {
    let (candidates, skipped) = candidate::candidates(ctx.snap, ctx.catalog);
    let budgets = methods::remaining_budgets(ctx);
    let eligible: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| {
            ctx.settings.contains_key(&c.provisioner) && budgets.get(&c.provisioner).is_some_and(|b| *b > 0)
        })
        .collect();
    let command = methods::expiration(ctx, &eligible)
        .or_else(|| methods::drift(ctx, &eligible))
        .or_else(|| methods::emptiness(ctx, &eligible, &budgets))
        .or_else(|| methods::consolidation(ctx, &eligible, &budgets));
    Plan { command, skipped }
}

/// Re-plans `command` against the current context: the same nodes must still be candidates within budget,
/// and the same method must still reach the same kind of decision (delete stays delete, replace stays
/// replace). Returns the refreshed command (current prices and replacements), or `None` to drop it.
pub fn validate(ctx: &Context<'_>, command: &Command) -> Option<Command> {
    let (candidates, _) = candidate::candidates(ctx.snap, ctx.catalog);
    let set: Vec<&Candidate> =
        command.nodes.iter().map(|n| candidates.iter().find(|c| c.name() == n)).collect::<Option<_>>()?;
    let budgets = methods::remaining_budgets(ctx);
    let mut needed: BTreeMap<&str, i64> = BTreeMap::new();
    for c in &set {
        *needed.entry(c.provisioner.as_str()).or_default() += 1;
    }
    if needed.iter().any(|(p, n)| budgets.get(*p).is_none_or(|b| b < n)) {
        return None;
    }
    let fresh = match command.reason {
        Reason::Expired => methods::expiration(ctx, &set).filter(|c| c.nodes == command.nodes),
        Reason::Drifted => methods::drift(ctx, &set).filter(|c| c.nodes == command.nodes),
        Reason::Empty => methods::emptiness(ctx, &set, &budgets).filter(|c| c.nodes == command.nodes),
        Reason::Underutilized => {
            if set.iter().any(|c| methods::consolidation_blocker(ctx, c).is_some()) {
                return None;
            }
            methods::consolidate(ctx, &set)
        }
    }?;
    (fresh.replacements.len() == command.replacements.len()).then_some(fresh)
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
