//! Metrics of the AWS provider: every EC2/SSM/Pricing call counted and timed (the [`Metered`] decorator), errors by
//! class, offering prices and capacity errors.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use std::sync::{Arc, atomic::AtomicU64};

use async_trait::async_trait;
use aws_sdk_ec2::{
    operation::{
        create_fleet::{CreateFleetInput, CreateFleetOutput},
        create_launch_template::CreateLaunchTemplateInput,
    },
    types::{
        Filter, Image, Instance, InstanceStateChange, InstanceTypeInfo, InstanceTypeOffering, LaunchTemplate,
        SecurityGroup, SpotPrice, Subnet,
    },
};
use aws_smithy_types::DateTime;

use super::{
    error::classify,
    sdk::{ApiResult, Ec2Api, PricingApi, SsmApi},
};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CallLabels {
    pub operation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CallErrorLabels {
    pub operation: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OfferingLabels {
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: String,
}

/// Register with [`AwsMetrics::register`] under a prefix of the caller's choice (e.g. `ballast_aws`).
#[derive(Debug, Clone)]
pub struct AwsMetrics {
    pub calls: Family<CallLabels, Counter>,
    pub call_errors: Family<CallErrorLabels, Counter>,
    pub call_duration: Family<CallLabels, Histogram>,
    /// USD/hour of each offering in the last catalog refresh.
    pub offering_price: Family<OfferingLabels, Gauge<f64, AtomicU64>>,
    /// Offerings marked unavailable after a capacity error.
    pub capacity_errors: Family<OfferingLabels, Counter>,
}

impl Default for AwsMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            call_errors: Family::default(),
            call_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            offering_price: Family::default(),
            capacity_errors: Family::default(),
        }
    }
}

impl AwsMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register("api_calls", "AWS API calls by operation", self.calls.clone());
        registry.register(
            "api_errors",
            "Failed AWS API calls by operation and error class",
            self.call_errors.clone(),
        );
        registry.register_with_unit(
            "api_call_duration",
            "AWS API call latency by operation",
            prometheus_client::registry::Unit::Seconds,
            self.call_duration.clone(),
        );
        registry.register(
            "offering_price",
            "Price in USD/hour of each offering",
            self.offering_price.clone(),
        );
        registry.register(
            "insufficient_capacity",
            "Capacity errors by offering (the offering is then unavailable for 3 minutes)",
            self.capacity_errors.clone(),
        );
    }
}

// === impl Metered ===

/// Counts and times every call of the wrapped client, and counts failures by [`CloudError`] class.
pub struct Metered<T: ?Sized> {
    metrics: AwsMetrics,
    inner: Arc<T>,
}

impl<T: ?Sized> Metered<T> {
    pub fn new(inner: Arc<T>, metrics: AwsMetrics) -> Self {
        Self { metrics, inner }
    }

    async fn observe<R>(&self, operation: &str, call: impl Future<Output = ApiResult<R>>) -> ApiResult<R> {
        let labels = CallLabels { operation: operation.to_string() };
        let start = tokio::time::Instant::now();
        let out = call.await;
        self.metrics.calls.get_or_create(&labels).inc();
        self.metrics.call_duration.get_or_create(&labels).observe(start.elapsed().as_secs_f64());
        if let Err(err) = &out {
            let error = classify(err.code.as_deref(), String::new()).metric_label().to_string();
            self.metrics
                .call_errors
                .get_or_create(&CallErrorLabels { operation: operation.to_string(), error })
                .inc();
        }
        out
    }
}

#[async_trait]
impl<T: Ec2Api + ?Sized> Ec2Api for Metered<T> {
    async fn describe_instance_types(&self, filters: Vec<Filter>) -> ApiResult<Vec<InstanceTypeInfo>> {
        self.observe("DescribeInstanceTypes", self.inner.describe_instance_types(filters)).await
    }

    async fn describe_instance_type_offerings(
        &self,
        filters: Vec<Filter>,
    ) -> ApiResult<Vec<InstanceTypeOffering>> {
        self.observe("DescribeInstanceTypeOfferings", self.inner.describe_instance_type_offerings(filters))
            .await
    }

    async fn describe_spot_price_history(
        &self,
        filters: Vec<Filter>,
        start: DateTime,
    ) -> ApiResult<Vec<SpotPrice>> {
        self.observe("DescribeSpotPriceHistory", self.inner.describe_spot_price_history(filters, start)).await
    }

    async fn describe_subnets(&self, filters: Vec<Filter>, ids: Vec<String>) -> ApiResult<Vec<Subnet>> {
        self.observe("DescribeSubnets", self.inner.describe_subnets(filters, ids)).await
    }

    async fn describe_security_groups(
        &self,
        filters: Vec<Filter>,
        ids: Vec<String>,
    ) -> ApiResult<Vec<SecurityGroup>> {
        self.observe("DescribeSecurityGroups", self.inner.describe_security_groups(filters, ids)).await
    }

    async fn describe_images(
        &self,
        filters: Vec<Filter>,
        ids: Vec<String>,
        owners: Vec<String>,
    ) -> ApiResult<Vec<Image>> {
        self.observe("DescribeImages", self.inner.describe_images(filters, ids, owners)).await
    }

    async fn describe_launch_templates(&self, filters: Vec<Filter>) -> ApiResult<Vec<LaunchTemplate>> {
        self.observe("DescribeLaunchTemplates", self.inner.describe_launch_templates(filters)).await
    }

    async fn create_launch_template(&self, input: CreateLaunchTemplateInput) -> ApiResult<LaunchTemplate> {
        self.observe("CreateLaunchTemplate", self.inner.create_launch_template(input)).await
    }

    async fn create_fleet(&self, input: CreateFleetInput) -> ApiResult<CreateFleetOutput> {
        self.observe("CreateFleet", self.inner.create_fleet(input)).await
    }

    async fn describe_instances(&self, filters: Vec<Filter>, ids: Vec<String>) -> ApiResult<Vec<Instance>> {
        self.observe("DescribeInstances", self.inner.describe_instances(filters, ids)).await
    }

    async fn terminate_instances(&self, ids: Vec<String>) -> ApiResult<Vec<InstanceStateChange>> {
        self.observe("TerminateInstances", self.inner.terminate_instances(ids)).await
    }
}

#[async_trait]
impl<T: SsmApi + ?Sized> SsmApi for Metered<T> {
    async fn get_parameter(&self, name: &str) -> ApiResult<Option<String>> {
        self.observe("GetParameter", self.inner.get_parameter(name)).await
    }
}

#[async_trait]
impl<T: PricingApi + ?Sized> PricingApi for Metered<T> {
    async fn get_products(
        &self,
        service_code: &str,
        filters: Vec<aws_sdk_pricing::types::Filter>,
    ) -> ApiResult<Vec<String>> {
        self.observe("GetProducts", self.inner.get_products(service_code, filters)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_encodes() {
        let metrics = AwsMetrics::default();
        metrics.calls.get_or_create(&CallLabels { operation: "CreateFleet".into() }).inc();
        let mut registry = Registry::with_prefix("ballast_aws");
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(r#"ballast_aws_api_calls_total{operation="CreateFleet"} 1"#), "{text}");
    }
}
