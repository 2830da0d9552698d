//! NodeTemplate resolution: subnets, security groups and AMIs from selectors (Karpenter's AWSNodeTemplate
//! semantics), and the AMI-family aliases resolved through SSM public parameters.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{ArchitectureValues, Filter};

use super::{
    error::{Error, Result},
    sdk::{Ec2Api, SsmApi, filter},
};
use crate::api::{
    NodeTemplate, NodeTemplateStatus,
    node_template::{ResolvedAmi, ResolvedSecurityGroup, ResolvedSubnet},
};

/// Which AMI an instance type needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AmiVariant {
    /// `amd64` or `arm64`.
    pub arch: &'static str,
    pub gpu: bool,
}

const VARIANTS: [AmiVariant; 4] = [
    AmiVariant { arch: "amd64", gpu: false },
    AmiVariant { arch: "arm64", gpu: false },
    AmiVariant { arch: "amd64", gpu: true },
    AmiVariant { arch: "arm64", gpu: true },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AmiFamily {
    Al2,
    Al2023,
    Bottlerocket,
    Ubuntu,
    Custom,
}

impl AmiFamily {
    pub fn parse(template: &NodeTemplate) -> Result<Self> {
        match template.spec.ami_family.as_deref().unwrap_or("AL2") {
            "AL2" => Ok(Self::Al2),
            "AL2023" => Ok(Self::Al2023),
            "Bottlerocket" => Ok(Self::Bottlerocket),
            "Ubuntu" => Ok(Self::Ubuntu),
            "Custom" => Ok(Self::Custom),
            other => Err(Error::Template {
                template: name(template),
                field: "spec.amiFamily",
                reason: format!("{other:?} is not supported (AL2, AL2023, Bottlerocket, Ubuntu or Custom)"),
            }),
        }
    }

    /// The SSM public parameter naming this family's EKS-optimized AMI for `variant`; `None` where AWS
    /// publishes none (Ubuntu GPU, Custom).
    pub fn ssm_parameter(self, k8s_version: &str, variant: AmiVariant) -> Option<String> {
        let v = k8s_version;
        let (arch_x, arch_a) = ("x86_64", "arm64");
        let cpu_arch = if variant.arch == "arm64" { arch_a } else { arch_x };
        Some(match (self, variant.gpu) {
            (Self::Al2, false) if variant.arch == "arm64" => {
                format!("/aws/service/eks/optimized-ami/{v}/amazon-linux-2-arm64/recommended/image_id")
            }
            (Self::Al2, false) => {
                format!("/aws/service/eks/optimized-ami/{v}/amazon-linux-2/recommended/image_id")
            }
            (Self::Al2, true) if variant.arch == "amd64" => {
                format!("/aws/service/eks/optimized-ami/{v}/amazon-linux-2-gpu/recommended/image_id")
            }
            (Self::Al2023, gpu) => {
                let flavour = if gpu { "nvidia" } else { "standard" };
                format!(
                    "/aws/service/eks/optimized-ami/{v}/amazon-linux-2023/{cpu_arch}/{flavour}/recommended/image_id"
                )
            }
            (Self::Bottlerocket, gpu) => {
                let flavour = if gpu { "-nvidia" } else { "" };
                format!("/aws/service/bottlerocket/aws-k8s-{v}{flavour}/{cpu_arch}/latest/image_id")
            }
            (Self::Ubuntu, false) => {
                let arch = if variant.arch == "arm64" { "arm64" } else { "amd64" };
                format!(
                    "/aws/service/canonical/ubuntu/eks/20.04/{v}/stable/current/{arch}/hvm/ebs-gp2/ami-id"
                )
            }
            _ => return None,
        })
    }
}

/// What a NodeTemplate resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTemplate {
    pub family: AmiFamily,
    /// Zone → the subnet with the most free IPs there.
    pub subnets: BTreeMap<String, String>,
    pub security_groups: Vec<ResolvedSecurityGroup>,
    pub amis: BTreeMap<AmiVariant, ResolvedAmi>,
}

impl ResolvedTemplate {
    /// The AMI for an instance type of `arch` with or without GPUs: the GPU variant when the family has one,
    /// else the plain one (selector-chosen AMIs serve both).
    pub fn ami_for(&self, arch: &str, gpu: bool) -> Option<&ResolvedAmi> {
        let find = |gpu| self.amis.iter().find(|(v, _)| v.arch == arch && v.gpu == gpu).map(|(_, a)| a);
        if gpu {
            find(true).or_else(|| (self.family == AmiFamily::Custom).then(|| find(false)).flatten())
        } else {
            find(false)
        }
    }

    /// The resolved values as NodeTemplate status fields (conditions are the controller's).
    pub fn status(&self) -> NodeTemplateStatus {
        let mut amis: Vec<ResolvedAmi> = Vec::new();
        for ami in self.amis.values() {
            if !amis.iter().any(|a| a.id == ami.id) {
                amis.push(ami.clone());
            }
        }
        NodeTemplateStatus {
            subnets: Some(
                self.subnets
                    .iter()
                    .map(|(zone, id)| ResolvedSubnet { id: id.clone(), zone: zone.clone() })
                    .collect(),
            ),
            security_groups: Some(self.security_groups.clone()),
            amis: Some(amis),
            conditions: None,
        }
    }
}

fn name(template: &NodeTemplate) -> String {
    template.metadata.name.clone().unwrap_or_default()
}

/// A selector as EC2 describe arguments: (`tag:` / `tag-key` filters, explicit ids from `id_key`).
/// `*` or `""` means the tag exists with any value; comma-separated values are alternatives.
fn selector_filters(selector: &BTreeMap<String, String>, id_key: &str) -> (Vec<Filter>, Vec<String>) {
    let mut filters = Vec::new();
    let mut ids = Vec::new();
    for (key, value) in selector {
        let values: Vec<&str> = value.split(',').map(str::trim).filter(|v| !v.is_empty()).collect();
        if key == id_key {
            ids.extend(values.into_iter().map(str::to_string));
        } else if values.is_empty() || values == ["*"] {
            filters.push(filter("tag-key", [key.as_str()]));
        } else {
            filters.push(filter(&format!("tag:{key}"), values));
        }
    }
    (filters, ids)
}

fn api(operation: &'static str) -> impl FnOnce(super::sdk::ApiError) -> Error {
    move |source| Error::Api { operation, source }
}

pub async fn resolve(
    ec2: &dyn Ec2Api,
    ssm: &dyn SsmApi,
    template: &NodeTemplate,
    k8s_version: &str,
) -> Result<ResolvedTemplate> {
    let family = AmiFamily::parse(template)?;
    let spec = &template.spec;
    let invalid =
        |field, reason: &str| Error::Template { template: name(template), field, reason: reason.into() };

    if spec.subnet_selector.is_empty() {
        return Err(invalid("spec.subnetSelector", "must not be empty"));
    }
    let (filters, ids) = selector_filters(&spec.subnet_selector, "aws-ids");
    let mut subnets: BTreeMap<String, (i32, String)> = BTreeMap::new();
    for subnet in ec2.describe_subnets(filters, ids).await.map_err(api("DescribeSubnets"))? {
        let (Some(zone), Some(id)) = (subnet.availability_zone(), subnet.subnet_id()) else { continue };
        let free = subnet.available_ip_address_count().unwrap_or(0);
        // Most free IPs wins; the lower id breaks ties so every replica picks the same subnet.
        let better = subnets.get(zone).is_none_or(|(f, i)| free > *f || (free == *f && id < i.as_str()));
        if better {
            subnets.insert(zone.to_string(), (free, id.to_string()));
        }
    }
    if subnets.is_empty() {
        return Err(invalid("spec.subnetSelector", "no subnet matches"));
    }

    if spec.security_group_selector.is_empty() {
        return Err(invalid("spec.securityGroupSelector", "must not be empty"));
    }
    let (filters, ids) = selector_filters(&spec.security_group_selector, "aws-ids");
    let mut security_groups: Vec<ResolvedSecurityGroup> = ec2
        .describe_security_groups(filters, ids)
        .await
        .map_err(api("DescribeSecurityGroups"))?
        .into_iter()
        .filter_map(|g| Some(ResolvedSecurityGroup { id: g.group_id?, name: g.group_name }))
        .collect();
    security_groups.sort_by(|a, b| a.id.cmp(&b.id));
    if security_groups.is_empty() {
        return Err(invalid("spec.securityGroupSelector", "no security group matches"));
    }

    let amis = match &spec.ami_selector {
        Some(selector) if !selector.is_empty() => resolve_ami_selector(ec2, selector).await?,
        _ if family == AmiFamily::Custom => {
            return Err(invalid("spec.amiSelector", "is required with amiFamily Custom"));
        }
        _ => {
            let mut amis = BTreeMap::new();
            for variant in VARIANTS {
                let Some(param) = family.ssm_parameter(k8s_version, variant) else { continue };
                if let Some(id) = ssm.get_parameter(&param).await.map_err(api("GetParameter"))? {
                    amis.insert(variant, ResolvedAmi { id, name: None, requirements: None });
                }
            }
            amis
        }
    };
    if amis.is_empty() {
        return Err(invalid("spec.amiSelector", "no AMI found for any architecture"));
    }
    Ok(ResolvedTemplate {
        family,
        subnets: subnets.into_iter().map(|(zone, (_, id))| (zone, id)).collect(),
        security_groups,
        amis,
    })
}

/// `aws::ids`, `aws::owners` (default `self,amazon` unless ids are given), `aws::name`, else tags; the newest
/// matching AMI per architecture wins.
async fn resolve_ami_selector(
    ec2: &dyn Ec2Api,
    selector: &BTreeMap<String, String>,
) -> Result<BTreeMap<AmiVariant, ResolvedAmi>> {
    let split =
        |v: &str| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>();
    let tags: BTreeMap<String, String> = selector
        .iter()
        .filter(|(k, _)| !k.starts_with("aws::"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (mut filters, _) = selector_filters(&tags, "");
    let ids = selector.get("aws::ids").map(|v| split(v)).unwrap_or_default();
    if let Some(name) = selector.get("aws::name") {
        filters.push(filter("name", split(name)));
    }
    let owners = match selector.get("aws::owners") {
        Some(owners) => split(owners),
        None if ids.is_empty() => vec!["self".into(), "amazon".into()],
        None => Vec::new(),
    };
    let mut images = ec2.describe_images(filters, ids, owners).await.map_err(api("DescribeImages"))?;
    // Newest first (ISO-8601 creation dates sort as strings), then by id for determinism.
    images.sort_by(|a, b| {
        b.creation_date().cmp(&a.creation_date()).then_with(|| a.image_id().cmp(&b.image_id()))
    });
    let mut amis = BTreeMap::new();
    for image in images {
        let arch = match image.architecture() {
            Some(ArchitectureValues::X8664) => "amd64",
            Some(ArchitectureValues::Arm64) => "arm64",
            _ => continue,
        };
        let Some(id) = image.image_id() else { continue };
        amis.entry(AmiVariant { arch, gpu: false }).or_insert_with(|| ResolvedAmi {
            id: id.to_string(),
            name: image.name().map(str::to_string),
            requirements: None,
        });
    }
    Ok(amis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_become_filters_and_ids() {
        let selector = BTreeMap::from([
            ("karpenter.sh/discovery".to_string(), "demo".to_string()),
            ("tier".to_string(), "*".to_string()),
            ("zone".to_string(), "a, b".to_string()),
            ("aws-ids".to_string(), "subnet-1,subnet-2".to_string()),
        ]);
        let (filters, ids) = selector_filters(&selector, "aws-ids");
        let shown: Vec<_> = filters.iter().map(|f| (f.name().unwrap(), f.values().to_vec())).collect();
        assert_eq!(
            shown,
            [
                ("tag:karpenter.sh/discovery", vec!["demo".to_string()]),
                ("tag-key", vec!["tier".to_string()]),
                ("tag:zone", vec!["a".to_string(), "b".to_string()]),
            ]
        );
        assert_eq!(ids, ["subnet-1", "subnet-2"]);
    }

    #[test]
    fn family_parameters() {
        let amd = AmiVariant { arch: "amd64", gpu: false };
        let arm_gpu = AmiVariant { arch: "arm64", gpu: true };
        assert_eq!(
            AmiFamily::Al2.ssm_parameter("1.30", amd).unwrap(),
            "/aws/service/eks/optimized-ami/1.30/amazon-linux-2/recommended/image_id"
        );
        assert_eq!(AmiFamily::Al2.ssm_parameter("1.30", arm_gpu), None);
        assert_eq!(
            AmiFamily::Al2023.ssm_parameter("1.30", AmiVariant { arch: "arm64", gpu: false }).unwrap(),
            "/aws/service/eks/optimized-ami/1.30/amazon-linux-2023/arm64/standard/recommended/image_id"
        );
        assert_eq!(
            AmiFamily::Bottlerocket.ssm_parameter("1.30", AmiVariant { arch: "amd64", gpu: true }).unwrap(),
            "/aws/service/bottlerocket/aws-k8s-1.30-nvidia/x86_64/latest/image_id"
        );
        assert_eq!(AmiFamily::Custom.ssm_parameter("1.30", amd), None);
    }

    #[test]
    fn unknown_family_names_the_field() {
        let mut t = NodeTemplate::new("default", Default::default());
        t.spec.ami_family = Some("Windows2022".into());
        let err = AmiFamily::parse(&t).unwrap_err().to_string();
        assert!(err.contains("NodeTemplate default field spec.amiFamily"), "{err}");
    }
}
