//! Launch templates: one per distinct (AMI, security groups, user data, block devices, metadata options,
//! instance profile, monitoring), named by a hash of that content so every replica and restart reuses it.

use aws_sdk_ec2::{
    operation::create_launch_template::CreateLaunchTemplateInput,
    types::{
        LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
        LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
        LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
        LaunchTemplateInstanceMetadataProtocolIpv6, LaunchTemplatesMonitoringRequest,
        RequestLaunchTemplateData, ResourceType, Tag, TagSpecification, VolumeType,
    },
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    error::{Error, Result},
    template::AmiFamily,
};
use crate::api::{
    NodeTemplate,
    node_template::{BlockDevice, BlockDeviceMapping, MetadataOptions},
};

const GIB: i64 = 1024 * 1024 * 1024;

/// Everything a launch template holds; its hash names the template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaunchTemplateContent {
    pub image_id: String,
    pub security_group_ids: Vec<String>,
    pub user_data: String,
    pub instance_profile: Option<String>,
    pub block_devices: Vec<BlockDeviceMapping>,
    pub metadata: MetadataOptions,
    pub detailed_monitoring: bool,
}

fn ebs(size_gib: i64) -> BlockDevice {
    BlockDevice {
        delete_on_termination: Some(true),
        encrypted: Some(true),
        volume_size: Some(crate::api::Quantity::new(format!("{size_gib}Gi"))),
        volume_type: Some("gp3".into()),
        ..Default::default()
    }
}

/// Karpenter's defaults: a 20 GiB gp3 root volume; Bottlerocket a 4 GiB OS volume plus a 20 GiB data volume.
pub fn default_block_devices(family: AmiFamily) -> Vec<BlockDeviceMapping> {
    let device =
        |name: &str, size| BlockDeviceMapping { device_name: Some(name.into()), ebs: Some(ebs(size)) };
    match family {
        AmiFamily::Bottlerocket => vec![device("/dev/xvda", 4), device("/dev/xvdb", 20)],
        AmiFamily::Custom => Vec::new(),
        _ => vec![device("/dev/xvda", 20)],
    }
}

/// IMDS defaults: endpoint enabled, IPv6 off, hop limit 2 (pods behind the node), IMDSv2 required.
pub fn metadata_options(template: &NodeTemplate) -> MetadataOptions {
    let set = template.spec.metadata_options.clone().unwrap_or_default();
    MetadataOptions {
        http_endpoint: set.http_endpoint.or(Some("enabled".into())),
        http_protocol_ipv6: set.http_protocol_ipv6.or(Some("disabled".into())),
        http_put_response_hop_limit: set.http_put_response_hop_limit.or(Some(2)),
        http_tokens: set.http_tokens.or(Some("required".into())),
    }
}

impl LaunchTemplateContent {
    /// `ballast/<cluster>/<first 16 hex digits of the content's SHA-256>`.
    pub fn name(&self, cluster: &str) -> String {
        let json = serde_json::to_vec(self).expect("launch template content serializes");
        let digest = Sha256::digest(&json);
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("ballast/{cluster}/{hex}")
    }

    /// The CreateLaunchTemplate request; `template` names the NodeTemplate for errors.
    pub fn request(&self, name: &str, tags: &[Tag], template: &str) -> Result<CreateLaunchTemplateInput> {
        let invalid =
            |field, reason: String| Error::Template { template: template.to_string(), field, reason };
        let mut devices = Vec::new();
        for (i, mapping) in self.block_devices.iter().enumerate() {
            let mut request = LaunchTemplateBlockDeviceMappingRequest::builder()
                .set_device_name(mapping.device_name.clone());
            if let Some(e) = &mapping.ebs {
                let size = match &e.volume_size {
                    Some(q) => {
                        let bytes =
                            q.parse("storage", "spec.blockDeviceMappings.ebs.volumeSize").map_err(|err| {
                                invalid("spec.blockDeviceMappings", format!("entry {i}: {err}"))
                            })?;
                        let gib = (bytes + GIB - 1) / GIB;
                        Some(i32::try_from(gib).map_err(|_| {
                            invalid(
                                "spec.blockDeviceMappings",
                                format!("entry {i}: volumeSize {q} is too large"),
                            )
                        })?)
                    }
                    None => None,
                };
                let int = |v: Option<i64>, what: &str| {
                    v.map(i32::try_from).transpose().map_err(|_| {
                        invalid("spec.blockDeviceMappings", format!("entry {i}: {what} is too large"))
                    })
                };
                request = request.ebs(
                    LaunchTemplateEbsBlockDeviceRequest::builder()
                        .set_delete_on_termination(e.delete_on_termination)
                        .set_encrypted(e.encrypted)
                        .set_iops(int(e.iops, "iops")?)
                        .set_kms_key_id(e.kms_key_id.clone())
                        .set_snapshot_id(e.snapshot_id.clone())
                        .set_throughput(int(e.throughput, "throughput")?)
                        .set_volume_size(size)
                        .set_volume_type(e.volume_type.as_deref().map(VolumeType::from))
                        .build(),
                );
            }
            devices.push(request.build());
        }
        let hop_limit =
            self.metadata.http_put_response_hop_limit.map(i32::try_from).transpose().map_err(|_| {
                invalid("spec.metadataOptions.httpPutResponseHopLimit", "must be 1–64".into())
            })?;
        let metadata = LaunchTemplateInstanceMetadataOptionsRequest::builder()
            .set_http_endpoint(
                self.metadata.http_endpoint.as_deref().map(LaunchTemplateInstanceMetadataEndpointState::from),
            )
            .set_http_protocol_ipv6(
                self.metadata
                    .http_protocol_ipv6
                    .as_deref()
                    .map(LaunchTemplateInstanceMetadataProtocolIpv6::from),
            )
            .set_http_put_response_hop_limit(hop_limit)
            .set_http_tokens(self.metadata.http_tokens.as_deref().map(LaunchTemplateHttpTokensState::from))
            .build();
        let data = RequestLaunchTemplateData::builder()
            .image_id(&self.image_id)
            .set_security_group_ids(Some(self.security_group_ids.clone()))
            .user_data(aws_smithy_types::base64::encode(&self.user_data))
            .set_iam_instance_profile(
                self.instance_profile
                    .as_ref()
                    .map(|p| LaunchTemplateIamInstanceProfileSpecificationRequest::builder().name(p).build()),
            )
            .set_block_device_mappings((!devices.is_empty()).then_some(devices))
            .metadata_options(metadata)
            .monitoring(LaunchTemplatesMonitoringRequest::builder().enabled(self.detailed_monitoring).build())
            .build();
        CreateLaunchTemplateInput::builder()
            .launch_template_name(name)
            .launch_template_data(data)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::LaunchTemplate)
                    .set_tags(Some(tags.to_vec()))
                    .build(),
            )
            .build()
            .map_err(|e| invalid("spec", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> LaunchTemplateContent {
        let template = NodeTemplate::new("default", Default::default());
        LaunchTemplateContent {
            image_id: "ami-1".into(),
            security_group_ids: vec!["sg-1".into()],
            user_data: "#!/bin/bash".into(),
            instance_profile: Some("node".into()),
            block_devices: default_block_devices(AmiFamily::Al2),
            metadata: metadata_options(&template),
            detailed_monitoring: false,
        }
    }

    #[test]
    fn name_depends_on_content_only() {
        let a = content();
        assert_eq!(a.name("demo"), content().name("demo"));
        assert!(a.name("demo").starts_with("ballast/demo/"));
        assert_eq!(a.name("demo").len(), "ballast/demo/".len() + 16);
        let mut b = content();
        b.image_id = "ami-2".into();
        assert_ne!(a.name("demo"), b.name("demo"));
    }

    #[test]
    fn request_carries_defaults() {
        let input =
            content().request("lt", &[Tag::builder().key("k").value("v").build()], "default").unwrap();
        let data = input.launch_template_data.unwrap();
        let device = &data.block_device_mappings()[0];
        assert_eq!(device.device_name(), Some("/dev/xvda"));
        assert_eq!(device.ebs().unwrap().volume_size(), Some(20));
        assert_eq!(device.ebs().unwrap().volume_type(), Some(&VolumeType::Gp3));
        let metadata = data.metadata_options().unwrap();
        assert_eq!(metadata.http_tokens(), Some(&LaunchTemplateHttpTokensState::Required));
        assert_eq!(metadata.http_put_response_hop_limit(), Some(2));
        assert_eq!(aws_smithy_types::base64::decode(data.user_data().unwrap()).unwrap(), b"#!/bin/bash");
        assert_eq!(input.tag_specifications.unwrap()[0].tags()[0].key(), Some("k"));
    }

    #[test]
    fn bad_volume_size_names_the_field() {
        let mut c = content();
        c.block_devices[0].ebs.as_mut().unwrap().volume_size = Some(crate::api::Quantity::new("lots"));
        let err = c.request("lt", &[], "default").unwrap_err().to_string();
        assert!(err.contains("NodeTemplate default field spec.blockDeviceMappings: entry 0"), "{err}");
    }
}
