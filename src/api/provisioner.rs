//! `Provisioner`: what nodes ballast may launch for pending pods, and how they are disrupted.
//! Field-for-field Karpenter's `karpenter.sh/v1alpha5` Provisioner, plus ballast's `disruption` extensions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Taint};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    Condition, Quantity,
    rules::{self, rule},
};

#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, KubeSchema)]
#[kube(
    group = "ballast.dev",
    version = "v1alpha1",
    kind = "Provisioner",
    status = "ProvisionerStatus",
    shortname = "prov",
    doc = "What nodes ballast may launch for pending pods, and how they are disrupted.",
    derive = "PartialEq",
    cel,
    printcolumn(name = "Weight", type_ = "integer", json_path = ".spec.weight"),
    printcolumn(name = "Consolidation", type_ = "boolean", json_path = ".spec.consolidation.enabled"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = rule(
    "!(has(self.ttlSecondsAfterEmpty) && has(self.consolidation) && has(self.consolidation.enabled) && \
     self.consolidation.enabled)",
    "consolidation.enabled and ttlSecondsAfterEmpty are mutually exclusive",
))]
#[x_kube(validation = rule(
    "!(has(self.provider) && has(self.providerRef))",
    "provider and providerRef are mutually exclusive",
))]
#[serde(rename_all = "camelCase")]
pub struct ProvisionerSpec {
    /// Annotations applied to every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels applied to every node; keys may not use a restricted domain (kubernetes.io, k8s.io,
    /// karpenter.sh, karpenter.k8s.aws, ballast.dev).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "rules::labels_schema")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Taints applied to every node; pods must tolerate them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "rules::taints_schema")]
    pub taints: Option<Vec<Taint>>,
    /// Taints present at launch and removed by another agent (e.g. a CNI); pods need not tolerate them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "rules::taints_schema")]
    pub startup_taints: Option<Vec<Taint>>,
    /// Constraints on launched nodes, intersected with each pod's node selector and affinity. Operators:
    /// In, NotIn, Exists, DoesNotExist, Gt, Lt; custom keys may not use a restricted label domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "rules::provisioner_requirements_schema")]
    pub requirements: Option<Vec<NodeSelectorRequirement>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet_configuration: Option<KubeletConfiguration>,
    /// The NodeTemplate with cloud-specific settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<ProviderRef>,
    /// Deprecated inline provider settings from Karpenter v1alpha5; kept so old manifests load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown")]
    pub provider: Option<serde_json::Value>,
    /// Delete a node this many seconds after its last non-daemonset pod left. Mutually exclusive with
    /// `consolidation.enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    #[x_kube(validation = rule("self >= 0", "ttlSecondsAfterEmpty must be non-negative"))]
    pub ttl_seconds_after_empty: Option<i64>,
    /// Maximum node lifetime in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    #[x_kube(validation = rule("self >= 0", "ttlSecondsUntilExpired must be non-negative"))]
    pub ttl_seconds_until_expired: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Higher weight is tried first (1–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    #[x_kube(validation = rule("self >= 1 && self <= 100", "weight must be between 1 and 100"))]
    pub weight: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consolidation: Option<Consolidation>,
    /// ballast extensions: budgets, churn guard, utilization threshold, drain bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption: Option<Disruption>,
}

fn preserve_unknown(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Cap on the total resources of this Provisioner's nodes (`cpu`, `memory`, `nvidia.com/gpu`, `nodes`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<BTreeMap<String, Quantity>>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Consolidation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, KubeSchema)]
#[x_kube(validation = rule(
    "!has(self.evictionSoft) || self.evictionSoft.all(k, has(self.evictionSoftGracePeriod) && \
     k in self.evictionSoftGracePeriod)",
    "every evictionSoft signal needs an evictionSoftGracePeriod",
))]
#[x_kube(validation = rule(
    "!has(self.evictionSoftGracePeriod) || self.evictionSoftGracePeriod.all(k, has(self.evictionSoft) && \
     k in self.evictionSoft)",
    "every evictionSoftGracePeriod signal needs an evictionSoft threshold",
))]
#[x_kube(validation = rule(
    "!has(self.imageGCHighThresholdPercent) || !has(self.imageGCLowThresholdPercent) || \
     self.imageGCHighThresholdPercent > self.imageGCLowThresholdPercent",
    "imageGCHighThresholdPercent must be greater than imageGCLowThresholdPercent",
))]
#[serde(rename_all = "camelCase")]
pub struct KubeletConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "clusterDNS")]
    pub cluster_dns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    #[x_kube(validation = rule("self >= 0", "maxPods must be non-negative"))]
    pub max_pods: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    #[x_kube(validation = rule("self >= 0", "podsPerCore must be non-negative"))]
    pub pods_per_core: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_reserved: Option<BTreeMap<String, Quantity>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_reserved: Option<BTreeMap<String, Quantity>>,
    /// Signal → threshold, e.g. `memory.available: 100Mi` or `nodefs.available: 10%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "rules::eviction_thresholds_schema")]
    pub eviction_hard: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "rules::eviction_thresholds_schema")]
    pub eviction_soft: Option<BTreeMap<String, String>>,
    /// Signal → duration string (`1m30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "rules::eviction_grace_periods_schema")]
    pub eviction_soft_grace_period: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub eviction_max_pod_grace_period: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "imageGCHighThresholdPercent")]
    #[schemars(range(min = 0, max = 100))]
    pub image_gc_high_threshold_percent: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "imageGCLowThresholdPercent")]
    #[schemars(range(min = 0, max = 100))]
    pub image_gc_low_threshold_percent: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "cpuCFSQuota")]
    pub cpu_cfs_quota: Option<bool>,
}

/// ballast's disruption controls, beyond Karpenter v1alpha5.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Disruption {
    /// At most this many of the Provisioner's nodes disrupted at once by graceful methods; the minimum of
    /// the active budgets applies. Default: one budget of `10%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Vec<Budget>>,
    /// A node must have had no pod added or removed for this long (`30s`, `5m`) before consolidation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = rules::DURATION_PATTERN))]
    pub consolidate_after: Option<String>,
    /// Only consolidate nodes whose requested cpu and memory are both below this percentage of allocatable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    #[x_kube(validation = rule("self >= 1 && self <= 100", "utilizationThreshold must be between 1 and 100"))]
    pub utilization_threshold: Option<i32>,
    /// A node is not replaced again within this window after a replacement (`1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = rules::DURATION_PATTERN))]
    pub replacement_cooldown: Option<String>,
    /// Upper bound on draining a node before remaining pods are deleted (`15m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = rules::DURATION_PATTERN))]
    pub max_drain_time: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, KubeSchema)]
#[x_kube(validation = rule("has(self.schedule) == has(self.duration)", "'schedule' must be set with 'duration'"))]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// A node count (`5`) or a percentage of the Provisioner's nodes (`10%`).
    #[schemars(regex(pattern = rules::BUDGET_NODES_PATTERN))]
    pub nodes: String,
    /// Cron schedule (UTC) when the budget becomes active; always active when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = rules::SCHEDULE_PATTERN))]
    pub schedule: Option<String>,
    /// How long the budget stays active after each scheduled start (`1h30m`); required with `schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = rules::DURATION_PATTERN))]
    pub duration: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionerStatus {
    /// Resources of the nodes this Provisioner owns, including launching ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<BTreeMap<String, Quantity>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}
