//! EC2 behind the `aws` feature: the only module that depends on the AWS SDK.
//!
//! [`AwsCloud`] implements [`CloudProvider`] the way Karpenter's AWS provider does: instance types and offerings
//! from DescribeInstanceTypes / DescribeInstanceTypeOfferings / DescribeSpotPriceHistory (cached, refreshed every
//! 5 minutes; on-demand prices from the Pricing API every 12 hours over the bundled table), NodeTemplates resolved to subnets, security groups and
//! AMIs (cached 1 minute), launch templates created on demand and reused by content hash, one CreateFleet
//! `instant` call per attempt, and offerings that report capacity errors kept out of launches and catalogs for
//! 3 minutes. Throttling and transient failures are retried by the SDK's standard retry mode (exponential
//! backoff with jitter; CreateFleet carries an idempotency token); capacity errors by falling back to the
//! remaining offerings; nothing else is retried here.

mod error;
mod fleet;
mod instance_types;
mod launch_template;
mod metrics;
pub mod pricing;
pub mod sdk;
pub mod sqs;
mod template;
mod user_data;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig};
use aws_sdk_ec2::types::InstanceStateName;
use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

pub use self::{
    error::{Error, is_capacity_code},
    fleet::MAX_OVERRIDES,
    launch_template::LaunchTemplateContent,
    metrics::{AwsMetrics, Metered},
    sdk::{ApiError, Ec2Api, PricingApi, SsmApi},
    template::{AmiFamily, ResolvedTemplate},
    user_data::ClusterInfo,
};
use self::{
    fleet::{FleetOverride, FleetRequest},
    instance_types::UnavailableOfferings,
    pricing::OnDemandPrices,
    sdk::filter,
};
use super::{
    CapacityType, Catalog, CloudError, CloudProvider, Instance, InstanceState, InstanceType, LaunchRequest,
};
use crate::{
    api::{NodeTemplate, NodeTemplateStatus, Provisioner, labels},
    clock::Clock,
    resources,
};

/// Finds the NodeTemplate a launch names (from the watch index in `ballast run`).
pub type NodeTemplateLookup = Arc<dyn Fn(&str) -> Option<Arc<NodeTemplate>> + Send + Sync>;
/// Finds the Provisioner a launch names, for its kubelet configuration.
pub type ProvisionerLookup = Arc<dyn Fn(&str) -> Option<Arc<Provisioner>> + Send + Sync>;

#[derive(Clone)]
pub struct Lookups {
    pub node_template: NodeTemplateLookup,
    pub provisioner: ProvisionerLookup,
}

impl Lookups {
    /// Lookups over a fixed set of objects, keyed by name.
    pub fn fixed(templates: Vec<NodeTemplate>, provisioners: Vec<Provisioner>) -> Self {
        let by_name = |name: Option<String>| name.unwrap_or_default();
        let templates: HashMap<String, Arc<NodeTemplate>> =
            templates.into_iter().map(|t| (by_name(t.metadata.name.clone()), Arc::new(t))).collect();
        let provisioners: HashMap<String, Arc<Provisioner>> =
            provisioners.into_iter().map(|p| (by_name(p.metadata.name.clone()), Arc::new(p))).collect();
        Self {
            node_template: Arc::new(move |name| templates.get(name).cloned()),
            provisioner: Arc::new(move |name| provisioners.get(name).cloned()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub cluster: ClusterInfo,
    /// The region instances run in; on-demand prices are read for it.
    pub region: String,
    /// Kubernetes minor version (`1.30`) selecting the EKS-optimized AMIs of AMI-family aliases.
    pub kubernetes_version: String,
    /// Used when a NodeTemplate sets no `instanceProfile`.
    pub default_instance_profile: Option<String>,
    /// Added to every instance, volume and launch template (NodeTemplate tags override them).
    pub tags: BTreeMap<String, String>,
    /// Discover only these instance types (EC2 name patterns, `*` allowed); all when `None`.
    pub instance_types: Option<Vec<String>>,
    pub catalog_ttl: SignedDuration,
    /// How often on-demand prices are read from the Pricing API (after a failure: every `catalog_ttl`).
    pub pricing_ttl: SignedDuration,
    pub template_ttl: SignedDuration,
    /// How long an offering stays unavailable after a capacity error.
    pub unavailable_ttl: SignedDuration,
}

impl AwsSettings {
    pub fn new(cluster: ClusterInfo, kubernetes_version: impl Into<String>) -> Self {
        Self {
            cluster,
            region: "us-east-1".into(),
            kubernetes_version: kubernetes_version.into(),
            default_instance_profile: None,
            tags: BTreeMap::new(),
            instance_types: None,
            catalog_ttl: SignedDuration::from_mins(5),
            pricing_ttl: SignedDuration::from_hours(12),
            template_ttl: SignedDuration::from_mins(1),
            unavailable_ttl: SignedDuration::from_mins(3),
        }
    }

    fn cluster_tag(&self) -> String {
        format!("kubernetes.io/cluster/{}", self.cluster.name)
    }
}

/// Loads region and credentials the standard way (env, profile, IRSA, IMDS); `endpoint` overrides the service
/// endpoint (tests point it at moto; `AWS_ENDPOINT_URL` does the same).
pub async fn load_sdk_config(region: Option<String>, endpoint: Option<String>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(RetryConfig::standard());
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// The SDK clients [`AwsCloud`] calls, behind the narrow traits of [`sdk`] so tests can wrap or replace them.
pub struct AwsClients {
    pub ec2: Arc<dyn Ec2Api>,
    pub ssm: Arc<dyn SsmApi>,
    pub pricing: Arc<dyn PricingApi>,
}

impl AwsClients {
    /// The SDK's clients; the Pricing client talks to the Pricing endpoint nearest the configured region.
    pub fn from_sdk_config(config: &SdkConfig) -> Self {
        let region = config.region().map_or("us-east-1", |r| r.as_ref());
        let pricing = aws_sdk_pricing::config::Builder::from(config)
            .region(Region::new(pricing::endpoint_region(region)))
            .build();
        Self {
            ec2: Arc::new(aws_sdk_ec2::Client::new(config)),
            ssm: Arc::new(aws_sdk_ssm::Client::new(config)),
            pricing: Arc::new(aws_sdk_pricing::Client::from_conf(pricing)),
        }
    }
}

#[derive(Default)]
struct Caches {
    /// When the instance types were fetched, and what they were.
    types: Option<(Timestamp, Arc<Vec<InstanceType>>)>,
    unavailable: UnavailableOfferings,
    /// NodeTemplate name → (resolved at, the spec it was resolved from, result).
    templates: HashMap<String, (Timestamp, crate::api::NodeTemplateSpec, Arc<ResolvedTemplate>)>,
    /// Launch template name → id, for templates known to exist.
    launch_templates: HashMap<String, String>,
}

pub struct AwsCloud {
    ec2: Arc<dyn Ec2Api>,
    ssm: Arc<dyn SsmApi>,
    settings: AwsSettings,
    lookups: Lookups,
    on_demand: OnDemandPrices,
    clock: Arc<dyn Clock>,
    metrics: AwsMetrics,
    caches: Mutex<Caches>,
    /// One instance-type refresh at a time; others wait and reuse its result.
    refreshing: tokio::sync::Mutex<()>,
}

impl AwsCloud {
    /// The clients are wrapped in [`Metered`], so every call shows in [`AwsCloud::metrics`]. `price_table`
    /// gives on-demand prices until (and wherever) the Pricing API does not.
    pub fn new(
        clients: AwsClients,
        settings: AwsSettings,
        lookups: Lookups,
        price_table: &Catalog,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let metrics = AwsMetrics::default();
        let on_demand = OnDemandPrices::new(
            Arc::new(Metered::new(clients.pricing, metrics.clone())),
            settings.region.clone(),
            price_table,
            settings.pricing_ttl,
            settings.catalog_ttl,
        );
        Self {
            ec2: Arc::new(Metered::new(clients.ec2, metrics.clone())),
            ssm: Arc::new(Metered::new(clients.ssm, metrics.clone())),
            settings,
            lookups,
            on_demand,
            clock,
            metrics,
            caches: Mutex::default(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// With the SDK's clients ([`AwsClients::from_sdk_config`]).
    pub fn from_sdk_config(
        config: &SdkConfig,
        settings: AwsSettings,
        lookups: Lookups,
        price_table: &Catalog,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::new(AwsClients::from_sdk_config(config), settings, lookups, price_table, clock)
    }

    pub fn metrics(&self) -> &AwsMetrics {
        &self.metrics
    }

    /// The template's resolved subnets, security groups and AMIs as status fields.
    pub async fn template_status(&self, template: &NodeTemplate) -> Result<NodeTemplateStatus, CloudError> {
        Ok(self.resolve(template).await?.status())
    }

    async fn resolve(&self, template: &NodeTemplate) -> Result<Arc<ResolvedTemplate>, Error> {
        let name = template.metadata.name.clone().unwrap_or_default();
        let now = self.clock.now();
        if let Some((at, spec, resolved)) = self.caches.lock().templates.get(&name)
            && now < *at + self.settings.template_ttl
            && *spec == template.spec
        {
            return Ok(resolved.clone());
        }
        let resolved = Arc::new(
            template::resolve(&*self.ec2, &*self.ssm, template, &self.settings.kubernetes_version).await?,
        );
        self.caches.lock().templates.insert(name, (now, template.spec.clone(), resolved.clone()));
        Ok(resolved)
    }

    /// Instance types with offerings, refreshed when older than the catalog TTL. A failed refresh keeps
    /// serving the previous result.
    async fn instance_types(&self) -> Result<Arc<Vec<InstanceType>>, Error> {
        let fresh = |caches: &Caches, now: Timestamp| {
            caches
                .types
                .as_ref()
                .filter(|(at, _)| now < *at + self.settings.catalog_ttl)
                .map(|(_, t)| t.clone())
        };
        if let Some(types) = fresh(&self.caches.lock(), self.clock.now()) {
            return Ok(types);
        }
        let _refreshing = self.refreshing.lock().await;
        let now = self.clock.now();
        if let Some(types) = fresh(&self.caches.lock(), now) {
            return Ok(types);
        }
        match self.fetch_instance_types(now).await {
            Ok(types) => {
                let types = Arc::new(types);
                self.caches.lock().types = Some((now, types.clone()));
                Ok(types)
            }
            Err(err) => match self.caches.lock().types.clone() {
                Some((_, stale)) => {
                    warn!(error = %err, "failed to refresh instance types; serving the previous catalog");
                    Ok(stale)
                }
                None => Err(err),
            },
        }
    }

    async fn fetch_instance_types(&self, now: Timestamp) -> Result<Vec<InstanceType>, Error> {
        let filters = || match &self.settings.instance_types {
            Some(names) => vec![filter("instance-type", names.iter().cloned())],
            None => Vec::new(),
        };
        let api = |operation| move |source| Error::Api { operation, source };
        let infos =
            self.ec2.describe_instance_types(filters()).await.map_err(api("DescribeInstanceTypes"))?;
        let offerings = self
            .ec2
            .describe_instance_type_offerings(filters())
            .await
            .map_err(api("DescribeInstanceTypeOfferings"))?;
        let start = aws_smithy_types::DateTime::from_secs(now.as_second());
        // The Pricing API (a different service, slow to page) is read alongside the spot history.
        let (history, on_demand) =
            tokio::join!(self.ec2.describe_spot_price_history(filters(), start), self.on_demand.get(now));
        let history = history.map_err(api("DescribeSpotPriceHistory"))?;
        let spot = instance_types::latest_spot_prices(&history);
        let types = instance_types::build(&infos, &offerings, &spot, &on_demand);
        for t in &types {
            for o in &t.offerings {
                let labels = metrics::OfferingLabels {
                    instance_type: t.name.clone(),
                    zone: o.zone.clone(),
                    capacity_type: o.capacity_type.to_string(),
                };
                self.metrics.offering_price.get_or_create(&labels).set(o.price);
            }
        }
        info!(types = types.len(), spot_prices = spot.len(), "refreshed EC2 instance types");
        Ok(types)
    }

    /// The launch template for `content`, created when it does not exist yet.
    async fn ensure_launch_template(
        &self,
        content: &LaunchTemplateContent,
        template: &str,
    ) -> Result<String, Error> {
        let name = content.name(&self.settings.cluster.name);
        if self.caches.lock().launch_templates.contains_key(&name) {
            return Ok(name);
        }
        let api = |operation| move |source| Error::Api { operation, source };
        let by_name = || vec![filter("launch-template-name", [name.clone()])];
        let existing =
            self.ec2.describe_launch_templates(by_name()).await.map_err(api("DescribeLaunchTemplates"))?;
        let id = match existing.first().and_then(|t| t.launch_template_id()) {
            Some(id) => id.to_string(),
            None => {
                let mut tags = self.settings.tags.clone();
                tags.insert(self.settings.cluster_tag(), "owned".into());
                tags.insert(labels::GROUP.to_string() + "/nodetemplate", template.to_string());
                let request = content.request(&name, &fleet::tags(&tags), template)?;
                match self.ec2.create_launch_template(request).await {
                    Ok(created) => created.launch_template_id().unwrap_or_default().to_string(),
                    // Another replica created it between our describe and create.
                    Err(err) if err.code.as_deref().is_some_and(|c| c.contains("AlreadyExists")) => self
                        .ec2
                        .describe_launch_templates(by_name())
                        .await
                        .map_err(api("DescribeLaunchTemplates"))?
                        .first()
                        .and_then(|t| t.launch_template_id())
                        .unwrap_or_default()
                        .to_string(),
                    Err(source) => return Err(Error::Api { operation: "CreateLaunchTemplate", source }),
                }
            }
        };
        debug!(launch_template = %name, %id, "launch template ready");
        self.caches.lock().launch_templates.insert(name.clone(), id);
        Ok(name)
    }

    /// Tags for the instance and its volumes: settings, then NodeTemplate tags, then the request's, then
    /// ballast's own, which nothing overrides.
    fn launch_tags(&self, req: &LaunchRequest, template: &NodeTemplate) -> BTreeMap<String, String> {
        let mut tags = self.settings.tags.clone();
        tags.extend(template.spec.tags.clone().unwrap_or_default());
        tags.extend(req.tags.clone());
        tags.insert(self.settings.cluster_tag(), "owned".into());
        tags.insert(labels::BALLAST_PROVISIONER.into(), req.provisioner.clone());
        tags.insert(labels::BALLAST_NODE_CLAIM.into(), req.claim_name.clone());
        tags.insert("Name".into(), req.claim_name.clone());
        tags
    }

    fn to_instance(&self, i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
        let id = i.instance_id()?.to_string();
        let zone = i.placement().and_then(|p| p.availability_zone()).unwrap_or_default().to_string();
        let instance_type = i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default();
        let capacity_type = match i.instance_lifecycle() {
            Some(aws_sdk_ec2::types::InstanceLifecycleType::Spot) => CapacityType::Spot,
            _ => CapacityType::OnDemand,
        };
        let state = match i.state().and_then(|s| s.name()) {
            Some(InstanceStateName::Running) => InstanceState::Running,
            Some(InstanceStateName::ShuttingDown) => InstanceState::ShuttingDown,
            Some(InstanceStateName::Terminated) => InstanceState::Terminated,
            _ => InstanceState::Pending,
        };
        let price = self.caches.lock().types.as_ref().and_then(|(_, types)| {
            let t = types.iter().find(|t| t.name == instance_type)?;
            t.offerings.iter().find(|o| o.zone == zone && o.capacity_type == capacity_type).map(|o| o.price)
        });
        let launched_at = i
            .launch_time()
            .and_then(|t| Timestamp::from_second(t.secs()).ok())
            .unwrap_or_else(|| self.clock.now());
        let tags =
            i.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect();
        Some(Instance {
            provider_id: format!("aws:///{zone}/{id}"),
            id,
            instance_type,
            zone,
            capacity_type,
            price: price.unwrap_or(0.0),
            launched_at,
            state,
            tags,
        })
    }

    /// The live (not shutting down or terminated) instance with this id.
    async fn live_instance(&self, provider_id: &str) -> Result<Instance, CloudError> {
        let id = instance_id(provider_id)?;
        let found = match self.ec2.describe_instances(Vec::new(), vec![id.to_string()]).await {
            Ok(found) => found,
            Err(err) if err.code.as_deref().is_some_and(error::is_not_found_code) => Vec::new(),
            Err(source) => return Err(Error::Api { operation: "DescribeInstances", source }.into()),
        };
        found
            .iter()
            .filter_map(|i| self.to_instance(i))
            .find(|i| matches!(i.state, InstanceState::Pending | InstanceState::Running))
            .ok_or_else(|| CloudError::NotFound(id.to_string()))
    }
}

/// `aws:///us-east-1a/i-0123` → `i-0123`.
fn instance_id(provider_id: &str) -> Result<&str, Error> {
    provider_id
        .strip_prefix("aws:///")
        .and_then(|rest| rest.rsplit_once('/'))
        .map(|(_, id)| id)
        .filter(|id| id.starts_with("i-"))
        .ok_or_else(|| Error::ProviderId(provider_id.to_string()))
}

/// One launchable (type, zone, capacity type) of a request: subnet and AMI known, not out of capacity.
struct Candidate<'a> {
    option: &'a super::LaunchOption,
    subnet_id: &'a str,
    ami: &'a str,
}

#[async_trait]
impl CloudProvider for AwsCloud {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn mark_unavailable(&self, instance_type: &str, zone: &str, capacity_type: CapacityType) {
        let (now, ttl) = (self.clock.now(), self.settings.unavailable_ttl);
        self.caches.lock().unavailable.mark(instance_type, zone, capacity_type, now, ttl);
    }

    async fn catalog(&self) -> Result<Arc<Catalog>, CloudError> {
        let types = self.instance_types().await?;
        let now = self.clock.now();
        let mut caches = self.caches.lock();
        caches.unavailable.expire(now);
        Ok(Arc::new(caches.unavailable.apply(&types, now)))
    }

    async fn create(&self, req: &LaunchRequest) -> Result<Instance, CloudError> {
        let template_name = req
            .node_template
            .as_deref()
            .ok_or_else(|| Error::NoNodeTemplate { claim: req.claim_name.clone() })?;
        let template = (self.lookups.node_template)(template_name)
            .ok_or_else(|| Error::UnknownNodeTemplate(template_name.to_string()))?;
        let resolved = self.resolve(&template).await?;
        let types = self.instance_types().await?;
        let provisioner = (self.lookups.provisioner)(&req.provisioner);
        let taints: Vec<_> = req.taints.iter().chain(&req.startup_taints).cloned().collect();
        let bootstrap = user_data::NodeBootstrap {
            labels: &req.labels,
            taints: &taints,
            kubelet: provisioner.as_ref().and_then(|p| p.spec.kubelet_configuration.as_ref()),
            custom: template.spec.user_data.as_deref(),
        };
        let user_data =
            user_data::render(resolved.family, &self.settings.cluster, &bootstrap).map_err(|e| {
                Error::Template { template: template_name.to_string(), field: "spec.userData", reason: e.0 }
            })?;
        let block_devices = template
            .spec
            .block_device_mappings
            .clone()
            .unwrap_or_else(|| launch_template::default_block_devices(resolved.family));
        let tags = self.launch_tags(req, &template);

        let mut tried: Vec<(String, String, CapacityType)> = Vec::new();
        // Every failed round marks at least one offering unavailable, so this ends; the bound is a backstop.
        for _ in 0..=req.options.len() {
            let now = self.clock.now();
            let candidates: Vec<Candidate<'_>> = {
                let caches = self.caches.lock();
                req.options
                    .iter()
                    .filter(|o| {
                        !caches.unavailable.is_unavailable(&o.instance_type, &o.zone, o.capacity_type, now)
                    })
                    .filter_map(|option| {
                        let subnet_id = resolved.subnets.get(&option.zone)?;
                        let kind = types.iter().find(|t| t.name == option.instance_type)?;
                        let arch = kind.labels.get(labels::ARCH)?;
                        let gpu = kind.capacity.get(resources::NVIDIA_GPU) > 0
                            || kind.capacity.get(resources::AMD_GPU) > 0;
                        let ami = resolved.ami_for(arch, gpu)?;
                        Some(Candidate { option, subnet_id, ami: &ami.id })
                    })
                    .collect()
            };
            if candidates.is_empty() {
                if tried.is_empty() {
                    return Err(Error::Unlaunchable {
                        claim: req.claim_name.clone(),
                        reason: format!(
                            "none of its {} options is available with a subnet of NodeTemplate {template_name} in its \
                             zone and an AMI for its architecture",
                            req.options.len()
                        ),
                    }
                    .into());
                }
                return Err(CloudError::InsufficientCapacity { offerings: tried });
            }
            let capacity_type = if candidates.iter().any(|c| c.option.capacity_type == CapacityType::Spot) {
                CapacityType::Spot
            } else {
                CapacityType::OnDemand
            };
            let mut seen = std::collections::HashSet::new();
            let chosen: Vec<&Candidate<'_>> = candidates
                .iter()
                .filter(|c| c.option.capacity_type == capacity_type)
                .filter(|c| seen.insert((c.option.instance_type.as_str(), c.option.zone.as_str())))
                .take(fleet::MAX_OVERRIDES)
                .collect();

            let mut configs: Vec<(String, Vec<FleetOverride>)> = Vec::new();
            let mut by_ami: Vec<(&str, Vec<FleetOverride>)> = Vec::new();
            for c in &chosen {
                let o = FleetOverride {
                    instance_type: c.option.instance_type.clone(),
                    zone: c.option.zone.clone(),
                    subnet_id: c.subnet_id.to_string(),
                };
                match by_ami.iter_mut().find(|(ami, _)| *ami == c.ami) {
                    Some((_, list)) => list.push(o),
                    None => by_ami.push((c.ami, vec![o])),
                }
            }
            for (ami, overrides) in by_ami {
                let content = LaunchTemplateContent {
                    image_id: ami.to_string(),
                    security_group_ids: resolved.security_groups.iter().map(|g| g.id.clone()).collect(),
                    user_data: user_data.clone(),
                    instance_profile: template
                        .spec
                        .instance_profile
                        .clone()
                        .or_else(|| self.settings.default_instance_profile.clone()),
                    block_devices: block_devices.clone(),
                    metadata: launch_template::metadata_options(&template),
                    detailed_monitoring: template.spec.detailed_monitoring.unwrap_or(false),
                };
                configs.push((self.ensure_launch_template(&content, template_name).await?, overrides));
            }
            let request = FleetRequest {
                capacity_type,
                client_token: client_token(&req.claim_name, &configs, capacity_type),
                configs,
                tags: tags.clone(),
                context: template.spec.context.clone(),
            };
            let output = match self.ec2.create_fleet(request.input()).await {
                Ok(output) => output,
                Err(err)
                    if err
                        .code
                        .as_deref()
                        .is_some_and(|c| c.contains("LaunchTemplate") && error::is_not_found_code(c)) =>
                {
                    // Deleted behind our back: forget it, and the next round recreates it.
                    warn!(error = %err, "launch template vanished; recreating");
                    self.caches.lock().launch_templates.clear();
                    continue;
                }
                Err(source) => return Err(Error::Api { operation: "CreateFleet", source }.into()),
            };
            let (launched, errors) = fleet::outcome(&request, &output);
            let capacity: Vec<_> = errors.iter().filter(|e| is_capacity_code(&e.code)).collect();
            if !capacity.is_empty() {
                // Errors naming an offering mark it; errors naming none mark every offering of the request
                // (unless something launched, which proves some offering had capacity).
                let mut marked: Vec<(String, String)> =
                    capacity.iter().filter_map(|e| e.offering.clone()).collect();
                if marked.len() < capacity.len() && launched.is_none() {
                    marked = chosen
                        .iter()
                        .map(|c| (c.option.instance_type.clone(), c.option.zone.clone()))
                        .collect();
                }
                let mut caches = self.caches.lock();
                for (kind, zone) in marked {
                    warn!(claim = %req.claim_name, instance_type = %kind, %zone, %capacity_type,
                        code = %capacity[0].code, "insufficient capacity; offering unavailable for a while");
                    caches.unavailable.mark(&kind, &zone, capacity_type, now, self.settings.unavailable_ttl);
                    let labels = metrics::OfferingLabels {
                        instance_type: kind.clone(),
                        zone: zone.clone(),
                        capacity_type: capacity_type.to_string(),
                    };
                    self.metrics.capacity_errors.get_or_create(&labels).inc();
                    if !tried.contains(&(kind.clone(), zone.clone(), capacity_type)) {
                        tried.push((kind, zone, capacity_type));
                    }
                }
            }
            if let Some(launched) = launched {
                let price = chosen
                    .iter()
                    .find(|c| {
                        c.option.instance_type == launched.instance_type
                            && c.option.zone == launched.zone
                            && c.option.capacity_type == launched.capacity_type
                    })
                    .map(|c| c.option.price)
                    .unwrap_or(0.0);
                info!(claim = %req.claim_name, instance = %launched.instance_id, instance_type = %launched.instance_type,
                    zone = %launched.zone, capacity_type = %launched.capacity_type, "launched instance");
                return Ok(Instance {
                    provider_id: format!("aws:///{}/{}", launched.zone, launched.instance_id),
                    id: launched.instance_id,
                    instance_type: launched.instance_type,
                    zone: launched.zone,
                    capacity_type: launched.capacity_type,
                    price,
                    launched_at: now,
                    state: InstanceState::Pending,
                    tags,
                });
            }
            if capacity.is_empty() {
                let source = match errors.into_iter().next() {
                    Some(e) => ApiError::service(e.code, e.message),
                    None => ApiError {
                        code: None,
                        message: "CreateFleet launched nothing and reported no error".into(),
                    },
                };
                return Err(Error::Api { operation: "CreateFleet", source }.into());
            }
        }
        Err(CloudError::InsufficientCapacity { offerings: tried })
    }

    async fn delete(&self, provider_id: &str) -> Result<(), CloudError> {
        let instance = self.live_instance(provider_id).await?;
        match self.ec2.terminate_instances(vec![instance.id.clone()]).await {
            Ok(_) => {
                info!(instance = %instance.id, "terminated instance");
                Ok(())
            }
            Err(err) if err.code.as_deref().is_some_and(error::is_not_found_code) => {
                Err(CloudError::NotFound(instance.id))
            }
            Err(source) => Err(Error::Api { operation: "TerminateInstances", source }.into()),
        }
    }

    async fn get(&self, provider_id: &str) -> Result<Instance, CloudError> {
        self.live_instance(provider_id).await
    }

    async fn list(&self) -> Result<Vec<Instance>, CloudError> {
        let filters = vec![
            filter(&format!("tag:{}", self.settings.cluster_tag()), ["owned"]),
            filter("tag-key", [labels::BALLAST_NODE_CLAIM]),
            filter("instance-state-name", ["pending", "running"]),
        ];
        let found = self
            .ec2
            .describe_instances(filters, Vec::new())
            .await
            .map_err(|source| Error::Api { operation: "DescribeInstances", source })?;
        let mut instances: Vec<Instance> = found.iter().filter_map(|i| self.to_instance(i)).collect();
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(instances)
    }
}

/// Same claim and same request → same token (a retried call launches nothing new); a relaunch over other
/// offerings gets a new one. At most 64 characters.
fn client_token(claim: &str, configs: &[(String, Vec<FleetOverride>)], capacity: CapacityType) -> String {
    let mut hasher = Sha256::new();
    hasher.update(claim.as_bytes());
    hasher.update(capacity.as_str().as_bytes());
    for (name, overrides) in configs {
        hasher.update(name.as_bytes());
        for o in overrides {
            hasher.update(format!("{}/{}", o.instance_type, o.subnet_id).as_bytes());
        }
    }
    hasher.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids() {
        assert_eq!(instance_id("aws:///us-east-1a/i-0abc").unwrap(), "i-0abc");
        assert!(instance_id("aws:///us-east-1a/").is_err());
        assert!(instance_id("gce://x/i-1").is_err());
    }

    #[test]
    fn client_token_is_stable_and_bounded() {
        let configs = vec![(
            "lt".to_string(),
            vec![FleetOverride { instance_type: "m5.large".into(), zone: "a".into(), subnet_id: "s".into() }],
        )];
        let a = client_token("claim", &configs, CapacityType::Spot);
        assert_eq!(a, client_token("claim", &configs, CapacityType::Spot));
        assert_ne!(a, client_token("claim", &configs, CapacityType::OnDemand));
        assert!(a.len() <= 64);
    }
}
