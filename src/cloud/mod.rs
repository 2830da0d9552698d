//! The cloud seam: instance-type catalog, launch, delete, get and list, speaking only domain types.
//! `sim` implements it over a bundled catalog in virtual time; `aws` (feature `aws`) over EC2.

use std::{collections::BTreeMap, fmt, sync::Arc};

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{api::labels, model::Labels, resources::Resources};

#[cfg(feature = "aws")]
pub mod aws;
pub mod catalog;
pub mod fake;
pub mod sim;

pub use catalog::Catalog;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    Spot,
    OnDemand,
}

impl CapacityType {
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityType::Spot => labels::CAPACITY_TYPE_SPOT,
            CapacityType::OnDemand => labels::CAPACITY_TYPE_ON_DEMAND,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            labels::CAPACITY_TYPE_SPOT => Some(CapacityType::Spot),
            labels::CAPACITY_TYPE_ON_DEMAND => Some(CapacityType::OnDemand),
            _ => None,
        }
    }
}

impl fmt::Display for CapacityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and how an instance type can be bought: one zone × capacity type, with its price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offering {
    pub zone: String,
    pub capacity_type: CapacityType,
    /// USD per hour.
    pub price: f64,
    /// False while the offering is in the insufficient-capacity cache.
    pub available: bool,
}

/// An instance type as the scheduler sees it. Allocatable is derived from `capacity` by
/// `scheduling` (VM overhead, kube/system reserved, eviction threshold, max pods).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceType {
    pub name: String,
    /// Raw capacity: vCPUs in millicores, EC2 memory in bytes, ENI-limited max pods, GPUs/neuron devices.
    pub capacity: Resources,
    /// Well-known labels a node of this type carries: arch, os, instance-type and the instance-* labels
    /// under both ballast's and Karpenter's prefixes.
    pub labels: Labels,
    pub offerings: Vec<Offering>,
}

impl InstanceType {
    /// The cheapest available offering matching `filter`.
    pub fn cheapest_offering(&self, filter: impl Fn(&Offering) -> bool) -> Option<&Offering> {
        self.offerings
            .iter()
            .filter(|o| o.available && filter(o))
            .min_by(|a, b| a.price.total_cmp(&b.price).then_with(|| a.zone.cmp(&b.zone)))
    }
}

/// One launch choice, cheapest first in a [`LaunchRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchOption {
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
    pub price: f64,
}

/// Everything the provider needs to launch the node for one NodeClaim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchRequest {
    pub claim_name: String,
    pub provisioner: String,
    pub node_template: Option<String>,
    /// Every (type, zone, capacity type) that would host the claim's pods, cheapest first. The provider
    /// prefers spot when allowed, falls back to on-demand, and skips offerings it knows are out of capacity.
    pub options: Vec<LaunchOption>,
    pub labels: Labels,
    pub taints: Vec<crate::model::Taint>,
    pub startup_taints: Vec<crate::model::Taint>,
    /// Extra tags for the instance and its volumes (NodeTemplate tags).
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
}

/// A cloud instance launched for a NodeClaim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    /// `aws:///<zone>/<instance-id>`
    pub provider_id: String,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
    pub price: f64,
    pub launched_at: Timestamp,
    pub state: InstanceState,
    /// Includes `ballast.dev/nodeclaim` and `ballast.dev/provisioner`.
    pub tags: BTreeMap<String, String>,
}

impl Instance {
    pub fn claim_name(&self) -> Option<&str> {
        self.tags.get(labels::BALLAST_NODE_CLAIM).map(String::as_str)
    }
}

/// Errors, classified so callers decide between retry, fallback and giving up.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("instance {0} not found")]
    NotFound(String),
    /// No offering in the request had capacity; `offerings` lists (type, zone, capacity type) tried.
    #[error("insufficient capacity for {}", fmt_offerings(.offerings))]
    InsufficientCapacity { offerings: Vec<(String, String, CapacityType)> },
    #[error("request throttled: {0}")]
    Throttled(String),
    #[error("not authorized: {0}")]
    Unauthorized(String),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("transient cloud error: {0}")]
    Transient(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn fmt_offerings(o: &[(String, String, CapacityType)]) -> String {
    o.iter().map(|(t, z, c)| format!("{t}/{z}/{c}")).collect::<Vec<_>>().join(", ")
}

impl CloudError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CloudError::Throttled(_) | CloudError::Transient(_) | CloudError::InsufficientCapacity { .. }
        )
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            CloudError::NotFound(_) => "not_found",
            CloudError::InsufficientCapacity { .. } => "insufficient_capacity",
            CloudError::Throttled(_) => "throttled",
            CloudError::Unauthorized(_) => "unauthorized",
            CloudError::InvalidConfig(_) => "invalid_config",
            CloudError::Transient(_) => "transient",
        }
    }
}

pub type Result<T, E = CloudError> = std::result::Result<T, E>;

#[async_trait]
pub trait CloudProvider: Send + Sync {
    fn name(&self) -> &'static str;

    /// Instance types with current offerings, prices and availability.
    async fn catalog(&self) -> Result<Arc<Catalog>>;

    /// Launches one instance for the claim from `req.options`.
    async fn create(&self, req: &LaunchRequest) -> Result<Instance>;

    /// Terminates the instance. `NotFound` when it is already gone.
    async fn delete(&self, provider_id: &str) -> Result<()>;

    async fn get(&self, provider_id: &str) -> Result<Instance>;

    /// Every instance ballast launched in this cluster (found by tag), for garbage collection.
    async fn list(&self) -> Result<Vec<Instance>>;

    /// Keeps the offering out of catalogs and launches for a while, as a capacity error does (Karpenter's
    /// unavailable-offerings cache): a spot pool that is reclaiming one instance is likely to reclaim the
    /// replacement too. Providers without such a cache ignore it.
    fn mark_unavailable(&self, _instance_type: &str, _zone: &str, _capacity_type: CapacityType) {}
}
