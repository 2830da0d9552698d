//! `NodePoolTemplate`: what a Provisioner (and its NodeTemplate) may launch, in the solver's terms.

use std::{collections::BTreeMap, sync::Arc};

use crate::{
    cloud::InstanceType,
    model::{Labels, Taint},
    resources::Resources,
};

use super::requirements::Requirements;

/// An instance type as one pool launches it: allocatable after the pool's kubelet settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolInstanceType {
    pub instance_type: Arc<InstanceType>,
    pub allocatable: Resources,
}

/// Resources a pool's nodes (registered and in flight) already hold, charged against its limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolUsage {
    /// Capacity of the pool's nodes (Karpenter counts capacity, not allocatable, against limits).
    pub resources: Resources,
    pub nodes: i64,
}

/// Limit key for the node count.
pub const NODES_LIMIT: &str = "nodes";

#[derive(Debug, Clone, PartialEq)]
pub struct NodePoolTemplate {
    pub name: String,
    pub node_template: Option<String>,
    /// Higher weight is tried first.
    pub weight: i32,
    /// Provisioner requirements (already including `labels` as `In` clauses).
    pub requirements: Requirements,
    pub labels: Labels,
    pub taints: Vec<Taint>,
    /// Present at launch and removed by an agent; pods need not tolerate them.
    pub startup_taints: Vec<Taint>,
    /// Resource name (or [`NODES_LIMIT`]) → maximum total; absent means unlimited.
    pub limits: BTreeMap<String, i64>,
    pub usage: PoolUsage,
    /// Only types whose labels satisfy `requirements` and that have an offering the pool allows.
    pub instance_types: Vec<PoolInstanceType>,
}

impl NodePoolTemplate {
    /// A pool with no requirements, taints or limits over `instance_types` (tests, estimators).
    pub fn new(name: &str, instance_types: Vec<PoolInstanceType>) -> Self {
        Self {
            name: name.to_string(),
            node_template: None,
            weight: 0,
            requirements: Requirements::new(),
            labels: Labels::new(),
            taints: Vec::new(),
            startup_taints: Vec::new(),
            limits: BTreeMap::new(),
            usage: PoolUsage::default(),
            instance_types,
        }
    }

    /// What the limits still allow, per limited key.
    pub fn remaining_limits(&self) -> BTreeMap<String, i64> {
        self.limits
            .iter()
            .map(|(k, limit)| {
                let used = if k == NODES_LIMIT { self.usage.nodes } else { self.usage.resources.get(k) };
                (k.clone(), limit - used)
            })
            .collect()
    }
}

/// What launching one node of `it` charges against limits.
pub fn limit_charge(limits: &BTreeMap<String, i64>, it: &InstanceType) -> BTreeMap<String, i64> {
    limits.keys().map(|k| (k.clone(), if k == NODES_LIMIT { 1 } else { it.capacity.get(k) })).collect()
}
