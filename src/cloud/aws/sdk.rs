//! The SDK seam: the EC2, SSM and Pricing calls `cloud::aws` makes, and nothing else (Karpenter's `EC2API`).
//! The real implementations wrap the SDK clients and page through describe calls; tests wrap them to inject
//! errors or replace them with fakes.

use async_trait::async_trait;
use aws_sdk_ec2::{
    operation::{
        create_fleet::{CreateFleetInput, CreateFleetOutput},
        create_launch_template::CreateLaunchTemplateInput,
    },
    types::{
        Filter, Image, Instance, InstanceStateChange, InstanceTypeInfo, InstanceTypeOffering, LaunchTemplate,
        LocationType, SecurityGroup, SpotPrice, Subnet,
    },
};
use aws_smithy_types::{DateTime, error::metadata::ProvideErrorMetadata};

/// Why an SDK call failed: the service's error code when it answered, else the transport failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_deref().unwrap_or("no error code"))]
pub struct ApiError {
    /// The service error code (`InvalidInstanceID.NotFound`, `RequestLimitExceeded`…); `None` when the request
    /// never got a service answer (timeout, connection failure).
    pub code: Option<String>,
    pub message: String,
}

impl ApiError {
    pub fn service(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: Some(code.into()), message: message.into() }
    }

    fn from_sdk<E, R>(err: aws_sdk_ec2::error::SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let code = err.code().map(str::to_string);
        let message = match err.message() {
            Some(m) => m.to_string(),
            None => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        };
        Self { code, message }
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// The EC2 calls ballast makes. Describe calls return every page.
#[async_trait]
pub trait Ec2Api: Send + Sync {
    async fn describe_instance_types(&self, filters: Vec<Filter>) -> ApiResult<Vec<InstanceTypeInfo>>;
    /// Offerings by availability zone.
    async fn describe_instance_type_offerings(
        &self,
        filters: Vec<Filter>,
    ) -> ApiResult<Vec<InstanceTypeOffering>>;
    /// Linux/UNIX spot prices since `start_time`.
    async fn describe_spot_price_history(
        &self,
        filters: Vec<Filter>,
        start_time: DateTime,
    ) -> ApiResult<Vec<SpotPrice>>;
    async fn describe_subnets(&self, filters: Vec<Filter>, ids: Vec<String>) -> ApiResult<Vec<Subnet>>;
    async fn describe_security_groups(
        &self,
        filters: Vec<Filter>,
        ids: Vec<String>,
    ) -> ApiResult<Vec<SecurityGroup>>;
    async fn describe_images(
        &self,
        filters: Vec<Filter>,
        ids: Vec<String>,
        owners: Vec<String>,
    ) -> ApiResult<Vec<Image>>;
    async fn describe_launch_templates(&self, filters: Vec<Filter>) -> ApiResult<Vec<LaunchTemplate>>;
    async fn create_launch_template(&self, input: CreateLaunchTemplateInput) -> ApiResult<LaunchTemplate>;
    async fn create_fleet(&self, input: CreateFleetInput) -> ApiResult<CreateFleetOutput>;
    async fn describe_instances(&self, filters: Vec<Filter>, ids: Vec<String>) -> ApiResult<Vec<Instance>>;
    async fn terminate_instances(&self, ids: Vec<String>) -> ApiResult<Vec<InstanceStateChange>>;
}

/// The Pricing call ballast makes: the on-demand price list.
#[async_trait]
pub trait PricingApi: Send + Sync {
    /// The price list items (JSON documents) of every page of `GetProducts`.
    async fn get_products(
        &self,
        service_code: &str,
        filters: Vec<aws_sdk_pricing::types::Filter>,
    ) -> ApiResult<Vec<String>>;
}

/// The SSM call ballast makes: public parameters naming the EKS-optimized AMIs.
#[async_trait]
pub trait SsmApi: Send + Sync {
    /// The parameter's value; `None` when it does not exist.
    async fn get_parameter(&self, name: &str) -> ApiResult<Option<String>>;
}

fn opt_vec<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

#[async_trait]
impl Ec2Api for aws_sdk_ec2::Client {
    async fn describe_instance_types(&self, filters: Vec<Filter>) -> ApiResult<Vec<InstanceTypeInfo>> {
        let mut pages = self.describe_instance_types().set_filters(opt_vec(filters)).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page.map_err(ApiError::from_sdk)?.instance_types.unwrap_or_default());
        }
        Ok(out)
    }

    async fn describe_instance_type_offerings(
        &self,
        filters: Vec<Filter>,
    ) -> ApiResult<Vec<InstanceTypeOffering>> {
        let mut pages = self
            .describe_instance_type_offerings()
            .location_type(LocationType::AvailabilityZone)
            .set_filters(opt_vec(filters))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page.map_err(ApiError::from_sdk)?.instance_type_offerings.unwrap_or_default());
        }
        Ok(out)
    }

    async fn describe_spot_price_history(
        &self,
        filters: Vec<Filter>,
        start_time: DateTime,
    ) -> ApiResult<Vec<SpotPrice>> {
        let mut pages = self
            .describe_spot_price_history()
            .product_descriptions("Linux/UNIX")
            .start_time(start_time)
            .set_filters(opt_vec(filters))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page.map_err(ApiError::from_sdk)?.spot_price_history.unwrap_or_default());
        }
        Ok(out)
    }

    async fn describe_subnets(&self, filters: Vec<Filter>, ids: Vec<String>) -> ApiResult<Vec<Subnet>> {
        let mut pages = self
            .describe_subnets()
            .set_filters(opt_vec(filters))
            .set_subnet_ids(opt_vec(ids))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page.map_err(ApiError::from_sdk)?.subnets.unwrap_or_default());
        }
        Ok(out)
    }

    async fn describe_security_groups(
        &self,
        filters: Vec<Filter>,
        ids: Vec<String>,
    ) -> ApiResult<Vec<SecurityGroup>> {
        let mut pages = self
            .describe_security_groups()
            .set_filters(opt_vec(filters))
            .set_group_ids(opt_vec(ids))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page.map_err(ApiError::from_sdk)?.security_groups.unwrap_or_default());
        }
        Ok(out)
    }

    async fn describe_images(
        &self,
        filters: Vec<Filter>,
        ids: Vec<String>,
        owners: Vec<String>,
    ) -> ApiResult<Vec<Image>> {
        let mut pages = self
            .describe_images()
            .set_filters(opt_vec(filters))
            .set_image_ids(opt_vec(ids))
            .set_owners(opt_vec(owners))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page.map_err(ApiError::from_sdk)?.images.unwrap_or_default());
        }
        Ok(out)
    }

    async fn describe_launch_templates(&self, filters: Vec<Filter>) -> ApiResult<Vec<LaunchTemplate>> {
        let mut pages =
            self.describe_launch_templates().set_filters(opt_vec(filters)).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page.map_err(ApiError::from_sdk)?.launch_templates.unwrap_or_default());
        }
        Ok(out)
    }

    async fn create_launch_template(&self, input: CreateLaunchTemplateInput) -> ApiResult<LaunchTemplate> {
        let out = self
            .create_launch_template()
            .set_launch_template_name(input.launch_template_name)
            .set_launch_template_data(input.launch_template_data)
            .set_tag_specifications(input.tag_specifications)
            .set_version_description(input.version_description)
            .send()
            .await
            .map_err(ApiError::from_sdk)?;
        out.launch_template.ok_or_else(|| ApiError {
            code: None,
            message: "CreateLaunchTemplate returned no template".into(),
        })
    }

    async fn create_fleet(&self, input: CreateFleetInput) -> ApiResult<CreateFleetOutput> {
        self.create_fleet()
            .set_client_token(input.client_token)
            .set_type(input.r#type)
            .set_spot_options(input.spot_options)
            .set_on_demand_options(input.on_demand_options)
            .set_launch_template_configs(input.launch_template_configs)
            .set_target_capacity_specification(input.target_capacity_specification)
            .set_tag_specifications(input.tag_specifications)
            .set_context(input.context)
            .send()
            .await
            .map_err(ApiError::from_sdk)
    }

    async fn describe_instances(&self, filters: Vec<Filter>, ids: Vec<String>) -> ApiResult<Vec<Instance>> {
        let mut pages = self
            .describe_instances()
            .set_filters(opt_vec(filters))
            .set_instance_ids(opt_vec(ids))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            for reservation in page.map_err(ApiError::from_sdk)?.reservations.unwrap_or_default() {
                out.extend(reservation.instances.unwrap_or_default());
            }
        }
        Ok(out)
    }

    async fn terminate_instances(&self, ids: Vec<String>) -> ApiResult<Vec<InstanceStateChange>> {
        let out = self
            .terminate_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .map_err(ApiError::from_sdk)?;
        Ok(out.terminating_instances.unwrap_or_default())
    }
}

#[async_trait]
impl SsmApi for aws_sdk_ssm::Client {
    async fn get_parameter(&self, name: &str) -> ApiResult<Option<String>> {
        match self.get_parameter().name(name).send().await {
            Ok(out) => Ok(out.parameter.and_then(|p| p.value)),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => Ok(None),
            Err(err) => {
                let code = err.code().map(str::to_string);
                let message = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
                Err(ApiError { code, message })
            }
        }
    }
}

#[async_trait]
impl PricingApi for aws_sdk_pricing::Client {
    async fn get_products(
        &self,
        service_code: &str,
        filters: Vec<aws_sdk_pricing::types::Filter>,
    ) -> ApiResult<Vec<String>> {
        let mut pages = self
            .get_products()
            .service_code(service_code)
            .set_filters(opt_vec(filters))
            .max_results(100)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page.map_err(ApiError::from_sdk)?.price_list.unwrap_or_default());
        }
        Ok(out)
    }
}

/// An EC2 filter `name = values…`.
pub fn filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder().name(name).set_values(Some(values.into_iter().map(Into::into).collect())).build()
}
