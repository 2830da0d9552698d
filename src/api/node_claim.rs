//! `NodeClaim`: ballast's durable record of one node it launched or is launching. Written before the cloud
//! call and updated after it, so a restart mid-launch neither orphans an instance nor launches twice.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Taint};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    Condition, Quantity,
    provisioner::KubeletConfiguration,
    rules::{self, rule},
};

// Several printer columns share `type_ = "string"`, which clippy mistakes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, KubeSchema)]
#[kube(
    group = "ballast.dev",
    version = "v1alpha1",
    kind = "NodeClaim",
    status = "NodeClaimStatus",
    shortname = "nc",
    doc = "ballast's durable record of one node it launched or is launching.",
    derive = "PartialEq",
    cel,
    printcolumn(name = "Type", type_ = "string", json_path = ".status.instanceType"),
    printcolumn(name = "Zone", type_ = "string", json_path = ".status.zone"),
    printcolumn(name = "Capacity", type_ = "string", json_path = ".status.capacityType"),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.nodeName"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Initialized\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaimSpec {
    /// The Provisioner that asked for this node.
    #[schemars(length(min = 1))]
    #[x_kube(validation = rule("size(self) > 0", "provisioner must not be empty"))]
    pub provisioner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_template: Option<String>,
    /// Merged Provisioner and pod requirements; includes the instance types, zones and capacity types allowed.
    #[serde(default)]
    #[schemars(schema_with = "rules::requirements_schema")]
    pub requirements: Vec<NodeSelectorRequirement>,
    /// What the pods planned onto this node request (daemonset overhead included).
    #[serde(default)]
    pub resources: ResourceRequests,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "rules::taints_schema")]
    pub taints: Option<Vec<Taint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "rules::taints_schema")]
    pub startup_taints: Option<Vec<Taint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<KubeletConfiguration>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequests {
    #[serde(default)]
    pub requests: BTreeMap<String, Quantity>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaimStatus {
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "providerID")]
    pub provider_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// `spot` or `on-demand`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<String>,
    /// Price of the launched offering in USD per hour, as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "imageID")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<BTreeMap<String, Quantity>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocatable: Option<BTreeMap<String, Quantity>>,
    /// `Launched`, `Registered`, `Initialized`, `Drifted`, `Expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}
