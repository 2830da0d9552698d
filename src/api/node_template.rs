//! `NodeTemplate`: AWS settings for launched nodes. Field-for-field Karpenter's `karpenter.k8s.aws/v1alpha1`
//! AWSNodeTemplate.

use std::collections::BTreeMap;

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
    kind = "NodeTemplate",
    status = "NodeTemplateStatus",
    shortname = "nt",
    doc = "AWS settings for the nodes ballast launches (Karpenter's AWSNodeTemplate).",
    derive = "PartialEq",
    cel,
    printcolumn(name = "AMIFamily", type_ = "string", json_path = ".spec.amiFamily"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = rule(
    "!has(self.launchTemplate) || !(has(self.userData) || has(self.amiSelector) || \
     has(self.blockDeviceMappings) || has(self.metadataOptions) || has(self.detailedMonitoring))",
    "launchTemplate is mutually exclusive with userData, amiSelector, blockDeviceMappings, metadataOptions and \
     detailedMonitoring",
))]
#[x_kube(validation = rule(
    "!has(self.amiFamily) || self.amiFamily != 'Custom' || has(self.amiSelector)",
    "amiFamily Custom requires an amiSelector",
))]
#[serde(rename_all = "camelCase")]
pub struct NodeTemplateSpec {
    /// Tag → value (`*` wildcard, comma-separated alternatives, `""` = tag exists) or `aws-ids: subnet-1,subnet-2`.
    /// Required and non-empty.
    #[schemars(extend("minProperties" = 1))]
    #[x_kube(validation = rule("size(self) > 0", "subnetSelector must not be empty"))]
    pub subnet_selector: BTreeMap<String, String>,
    /// Same syntax as `subnetSelector`; every matching group is attached. Required and non-empty.
    #[schemars(extend("minProperties" = 1))]
    #[x_kube(validation = rule("size(self) > 0", "securityGroupSelector must not be empty"))]
    pub security_group_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile: Option<String>,
    /// `AL2` (default), `AL2023`, `Bottlerocket`, `Ubuntu`, `Windows2019`, `Windows2022` or `Custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = rules::AMI_FAMILIES))]
    pub ami_family: Option<String>,
    /// Tags, or `aws::ids`, `aws::owners`, `aws::name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_selector: Option<BTreeMap<String, String>>,
    /// Merged with ballast's bootstrap (MIME multipart for AL2/Ubuntu, TOML for Bottlerocket, nodeadm for AL2023).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// Added to launched instances; ballast's own tags (`kubernetes.io/cluster/*`,
    /// `karpenter.sh/provisioner-name`, `karpenter.sh/managed-by`, `ballast.dev/*`) cannot be overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = rule(
        "self.all(k, !k.startsWith('kubernetes.io/cluster/') && !k.startsWith('ballast.dev/') && \
         !(k in ['karpenter.sh/provisioner-name', 'karpenter.sh/managed-by']))",
        "tag keys kubernetes.io/cluster/*, karpenter.sh/provisioner-name, karpenter.sh/managed-by and \
         ballast.dev/* are restricted",
    ))]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_options: Option<MetadataOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_device_mappings: Option<Vec<BlockDeviceMapping>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detailed_monitoring: Option<bool>,
    /// Reserved for AWS context (e.g. an Outposts ARN); passed through to the launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Deprecated: an existing launch template name to use instead of generated ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_template: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetadataOptions {
    /// `enabled` (default) or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["enabled", "disabled"]))]
    pub http_endpoint: Option<String>,
    /// `disabled` (default) or `enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "httpProtocolIPv6")]
    #[schemars(extend("enum" = ["enabled", "disabled"]))]
    pub http_protocol_ipv6: Option<String>,
    /// 1–64, default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub http_put_response_hop_limit: Option<i64>,
    /// `required` (default) or `optional`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["required", "optional"]))]
    pub http_tokens: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockDeviceMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs: Option<BlockDevice>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_on_termination: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub iops: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "kmsKeyID")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "snapshotID")]
    pub snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub throughput: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<Quantity>,
    /// `standard`, `io1`, `io2`, `gp2`, `sc1`, `st1` or `gp3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = rules::VOLUME_TYPES))]
    pub volume_type: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeTemplateStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnets: Option<Vec<ResolvedSubnet>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<ResolvedSecurityGroup>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amis: Option<Vec<ResolvedAmi>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedSubnet {
    pub id: String,
    pub zone: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedSecurityGroup {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedAmi {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Requirements (e.g. `kubernetes.io/arch In [arm64]`) of the instance types this AMI serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<Vec<k8s_openapi::api::core::v1::NodeSelectorRequirement>>,
}
