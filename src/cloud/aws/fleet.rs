//! The CreateFleet request for one claim and what its answer means (Karpenter's instance provider):
//! `instant`, one instance, overrides = instance type × the zone's subnet, spot `price-capacity-optimized`,
//! on-demand `lowest-price`.

use std::collections::BTreeMap;

use aws_sdk_ec2::{
    operation::create_fleet::{CreateFleetInput, CreateFleetOutput},
    types::{
        DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest, FleetLaunchTemplateOverridesRequest,
        FleetLaunchTemplateSpecificationRequest, FleetOnDemandAllocationStrategy, FleetType,
        InstanceLifecycle, InstanceType as Ec2Type, OnDemandOptionsRequest, ResourceType,
        SpotAllocationStrategy, SpotOptionsRequest, Tag, TagSpecification,
        TargetCapacitySpecificationRequest,
    },
};

use crate::cloud::CapacityType;

/// CreateFleet accepts at most this many overrides in total; Karpenter sends the 60 cheapest.
pub const MAX_OVERRIDES: usize = 60;

#[derive(Debug, Clone, PartialEq)]
pub struct FleetOverride {
    pub instance_type: String,
    pub zone: String,
    pub subnet_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FleetRequest {
    pub capacity_type: CapacityType,
    /// Launch template name → its overrides, in preference order.
    pub configs: Vec<(String, Vec<FleetOverride>)>,
    pub tags: BTreeMap<String, String>,
    /// Idempotency token: a retry of the same request launches at most one instance.
    pub client_token: String,
    pub context: Option<String>,
}

pub fn tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

impl FleetRequest {
    pub fn input(&self) -> CreateFleetInput {
        let configs = self
            .configs
            .iter()
            .map(|(name, overrides)| {
                FleetLaunchTemplateConfigRequest::builder()
                    .launch_template_specification(
                        FleetLaunchTemplateSpecificationRequest::builder()
                            .launch_template_name(name)
                            .version("$Latest")
                            .build(),
                    )
                    .set_overrides(Some(
                        overrides
                            .iter()
                            .map(|o| {
                                FleetLaunchTemplateOverridesRequest::builder()
                                    .instance_type(Ec2Type::from(o.instance_type.as_str()))
                                    .subnet_id(&o.subnet_id)
                                    .availability_zone(&o.zone)
                                    .build()
                            })
                            .collect(),
                    ))
                    .build()
            })
            .collect();
        let target = TargetCapacitySpecificationRequest::builder()
            .total_target_capacity(1)
            .default_target_capacity_type(match self.capacity_type {
                CapacityType::Spot => DefaultTargetCapacityType::Spot,
                CapacityType::OnDemand => DefaultTargetCapacityType::OnDemand,
            })
            .build();
        let tag_spec =
            |kind| TagSpecification::builder().resource_type(kind).set_tags(Some(tags(&self.tags))).build();
        let builder = CreateFleetInput::builder()
            .r#type(FleetType::Instant)
            .client_token(&self.client_token)
            .set_launch_template_configs(Some(configs))
            .target_capacity_specification(target)
            .tag_specifications(tag_spec(ResourceType::Instance))
            .tag_specifications(tag_spec(ResourceType::Volume))
            .set_context(self.context.clone());
        let builder = match self.capacity_type {
            CapacityType::Spot => builder.spot_options(
                SpotOptionsRequest::builder()
                    .allocation_strategy(SpotAllocationStrategy::PriceCapacityOptimized)
                    .build(),
            ),
            CapacityType::OnDemand => builder.on_demand_options(
                OnDemandOptionsRequest::builder()
                    .allocation_strategy(FleetOnDemandAllocationStrategy::LowestPrice)
                    .build(),
            ),
        };
        builder.build().expect("CreateFleetInput has no required fields")
    }

    fn zone_of_subnet(&self, subnet: &str) -> Option<&str> {
        self.configs.iter().flat_map(|(_, o)| o).find(|o| o.subnet_id == subnet).map(|o| o.zone.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Launched {
    pub instance_id: String,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FleetError {
    pub code: String,
    pub message: String,
    /// The (type, zone) the error is about, when CreateFleet says.
    pub offering: Option<(String, String)>,
}

/// The launched instance, if any, and every error CreateFleet reported (an instant fleet reports the pools it
/// failed in even when another pool launched).
pub fn outcome(request: &FleetRequest, output: &CreateFleetOutput) -> (Option<Launched>, Vec<FleetError>) {
    let errors = output
        .errors()
        .iter()
        .map(|e| {
            let overrides = e.launch_template_and_overrides().and_then(|l| l.overrides());
            let kind = overrides.and_then(|o| o.instance_type()).map(|t| t.as_str().to_string());
            let zone = overrides
                .and_then(|o| o.subnet_id())
                .and_then(|s| request.zone_of_subnet(s))
                .map(str::to_string);
            FleetError {
                code: e.error_code().unwrap_or("UnknownError").to_string(),
                message: e.error_message().unwrap_or_default().to_string(),
                offering: kind.zip(zone),
            }
        })
        .collect();
    (launched(request, output), errors)
}

fn launched(request: &FleetRequest, output: &CreateFleetOutput) -> Option<Launched> {
    for instance in output.instances() {
        let Some(id) = instance.instance_ids().first() else { continue };
        let overrides = instance.launch_template_and_overrides().and_then(|l| l.overrides());
        let instance_type = instance
            .instance_type()
            .map(|t| t.as_str().to_string())
            .or_else(|| overrides.and_then(|o| o.instance_type()).map(|t| t.as_str().to_string()));
        let zone = overrides
            .and_then(|o| o.subnet_id())
            .and_then(|s| request.zone_of_subnet(s))
            .map(str::to_string)
            .or_else(|| overrides.and_then(|o| o.availability_zone()).map(str::to_string));
        let capacity_type = match instance.lifecycle() {
            Some(InstanceLifecycle::Spot) => CapacityType::Spot,
            Some(InstanceLifecycle::OnDemand) => CapacityType::OnDemand,
            _ => request.capacity_type,
        };
        if let (Some(instance_type), Some(zone)) = (instance_type, zone) {
            return Some(Launched { instance_id: id.clone(), instance_type, zone, capacity_type });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{
        CreateFleetError, CreateFleetInstance, FleetLaunchTemplateOverrides,
        LaunchTemplateAndOverridesResponse,
    };

    use super::*;

    fn request(capacity_type: CapacityType) -> FleetRequest {
        let o = |t: &str, z: &str, s: &str| FleetOverride {
            instance_type: t.into(),
            zone: z.into(),
            subnet_id: s.into(),
        };
        FleetRequest {
            capacity_type,
            configs: vec![(
                "lt-amd".into(),
                vec![o("m5.large", "us-east-1a", "subnet-a"), o("m5.large", "us-east-1b", "subnet-b")],
            )],
            tags: BTreeMap::from([("ballast.dev/nodeclaim".to_string(), "c1".to_string())]),
            client_token: "token".into(),
            context: None,
        }
    }

    #[test]
    fn spot_request_shape() {
        let input = request(CapacityType::Spot).input();
        assert_eq!(input.r#type, Some(FleetType::Instant));
        let target = input.target_capacity_specification.unwrap();
        assert_eq!(target.total_target_capacity(), Some(1));
        assert_eq!(target.default_target_capacity_type(), Some(&DefaultTargetCapacityType::Spot));
        assert_eq!(
            input.spot_options.unwrap().allocation_strategy(),
            Some(&SpotAllocationStrategy::PriceCapacityOptimized)
        );
        assert!(input.on_demand_options.is_none());
        let tags = input.tag_specifications.unwrap();
        assert_eq!(
            tags.iter().map(|t| t.resource_type().unwrap().clone()).collect::<Vec<_>>(),
            [ResourceType::Instance, ResourceType::Volume]
        );
        let overrides = input.launch_template_configs.unwrap()[0].overrides().to_vec();
        assert_eq!(
            overrides.iter().map(|o| o.subnet_id().unwrap()).collect::<Vec<_>>(),
            ["subnet-a", "subnet-b"]
        );
    }

    #[test]
    fn on_demand_request_shape() {
        let input = request(CapacityType::OnDemand).input();
        assert_eq!(
            input.on_demand_options.unwrap().allocation_strategy(),
            Some(&FleetOnDemandAllocationStrategy::LowestPrice)
        );
        assert!(input.spot_options.is_none());
    }

    #[test]
    fn outcome_maps_subnet_to_zone_and_errors_to_offerings() {
        let req = request(CapacityType::Spot);
        let overrides = |subnet: &str| {
            LaunchTemplateAndOverridesResponse::builder()
                .overrides(
                    FleetLaunchTemplateOverrides::builder()
                        .instance_type(Ec2Type::M5Large)
                        .subnet_id(subnet)
                        .build(),
                )
                .build()
        };
        let ok = CreateFleetOutput::builder()
            .instances(
                CreateFleetInstance::builder()
                    .instance_ids("i-1")
                    .lifecycle(InstanceLifecycle::Spot)
                    .launch_template_and_overrides(overrides("subnet-b"))
                    .build(),
            )
            .build();
        let (launched, errors) = outcome(&req, &ok);
        let launched = launched.unwrap();
        assert!(errors.is_empty());
        assert_eq!((launched.instance_type.as_str(), launched.zone.as_str()), ("m5.large", "us-east-1b"));
        assert_eq!(launched.capacity_type, CapacityType::Spot);

        let failed = CreateFleetOutput::builder()
            .errors(
                CreateFleetError::builder()
                    .error_code("InsufficientInstanceCapacity")
                    .launch_template_and_overrides(overrides("subnet-a"))
                    .build(),
            )
            .build();
        let (launched, errors) = outcome(&req, &failed);
        assert!(launched.is_none());
        assert_eq!(errors[0].offering, Some(("m5.large".to_string(), "us-east-1a".to_string())));
    }
}
