//! `cloud::aws` against a real EC2 API server (moto): discovery, launch templates, CreateFleet, tags, listing,
//! termination, the conformance suite, and the capacity-error fallback through a fault-injecting SDK seam
//! (moto always launches the first override and never reports capacity errors).
#![cfg(feature = "aws")]

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use aws_sdk_ec2::{
    operation::{
        create_fleet::{CreateFleetInput, CreateFleetOutput},
        create_launch_template::CreateLaunchTemplateInput,
    },
    types::{
        CreateFleetError, Filter, FleetLaunchTemplateOverrides, Image, Instance as Ec2Instance,
        InstanceLifecycleType, InstanceStateChange, InstanceTypeInfo, InstanceTypeOffering, LaunchTemplate,
        LaunchTemplateAndOverridesResponse, SecurityGroup, SpotPrice, Subnet,
    },
};
use aws_smithy_types::DateTime;
use ballast::{
    api::{NodeTemplate, NodeTemplateSpec, Provisioner, ProvisionerSpec, provisioner::KubeletConfiguration},
    clock::{Clock, ManualClock, SystemClock},
    cloud::{
        CapacityType, Catalog, CloudError, CloudProvider, InstanceType, Offering,
        aws::{
            AwsClients, AwsCloud, AwsSettings, ClusterInfo, Lookups,
            sdk::{ApiResult, Ec2Api},
        },
    },
    resources::Resources,
};
use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use support::{
    conformance::{Fixture, conformance_suite},
    moto::{self, Moto, Network, ZONES, seed_network},
};

const TYPES: [&str; 3] = ["c5.large", "m5.large", "m5.xlarge"];

fn unique_cluster() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("t{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// On-demand prices for the test types (what `Catalog::bundled()` provides in production).
fn price_table() -> Catalog {
    let price = |name: &str, price: f64| InstanceType {
        name: name.into(),
        capacity: Resources::default(),
        labels: BTreeMap::new(),
        offerings: vec![Offering {
            zone: "us-east-1a".into(),
            capacity_type: CapacityType::OnDemand,
            price,
            available: true,
        }],
    };
    Catalog::new(vec![price("c5.large", 0.085), price("m5.large", 0.096), price("m5.xlarge", 0.192)])
}

fn node_template(name: &str, net: &Network, user_data: Option<&str>) -> NodeTemplate {
    let discovery = BTreeMap::from([("karpenter.sh/discovery".to_string(), net.cluster.clone())]);
    NodeTemplate::new(
        name,
        NodeTemplateSpec {
            subnet_selector: discovery.clone(),
            security_group_selector: discovery,
            ami_selector: Some(BTreeMap::from([("aws::ids".to_string(), net.ami.clone())])),
            instance_profile: Some("KarpenterNodeInstanceProfile".into()),
            user_data: user_data.map(str::to_string),
            tags: Some(BTreeMap::from([("cost-center".to_string(), "42".to_string())])),
            ..Default::default()
        },
    )
}

fn provisioner() -> Provisioner {
    Provisioner::new(
        "default",
        ProvisionerSpec {
            kubelet_configuration: Some(KubeletConfiguration { max_pods: Some(42), ..Default::default() }),
            ..Default::default()
        },
    )
}

fn settings(cluster: &str) -> AwsSettings {
    let mut settings = AwsSettings::new(
        ClusterInfo {
            name: cluster.to_string(),
            endpoint: "https://cluster.example".into(),
            ca_bundle: Some("Q0E=".into()),
            service_cidr: Some("10.100.0.0/16".into()),
        },
        "1.30",
    );
    settings.tags = BTreeMap::from([("environment".to_string(), "test".to_string())]);
    settings.instance_types = Some(TYPES.iter().map(|t| t.to_string()).collect());
    settings
}

/// A provider for a fresh cluster in moto, with `wrap` around its EC2 client.
struct Harness {
    moto: Arc<Moto>,
    ec2: aws_sdk_ec2::Client,
    net: Network,
    cloud: Arc<AwsCloud>,
}

async fn harness_with(
    clock: Arc<dyn Clock>,
    wrap: impl FnOnce(Arc<dyn Ec2Api>) -> Arc<dyn Ec2Api>,
) -> Harness {
    let moto = moto::shared();
    let config = moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let cluster = unique_cluster();
    let net = seed_network(&ec2, &cluster).await;
    let templates = vec![
        node_template("default", &net, None),
        node_template("custom", &net, Some("#!/bin/bash\necho custom")),
    ];
    // moto has no Pricing API (it answers 500): without retries the fallback to the table is immediate.
    let pricing = aws_sdk_pricing::config::Builder::from(&config)
        .retry_config(aws_sdk_pricing::config::retry::RetryConfig::disabled())
        .build();
    let clients = AwsClients {
        ec2: wrap(Arc::new(ec2.clone())),
        ssm: Arc::new(aws_sdk_ssm::Client::new(&config)),
        pricing: Arc::new(aws_sdk_pricing::Client::from_conf(pricing)),
    };
    let cloud = AwsCloud::new(
        clients,
        settings(&cluster),
        Lookups::fixed(templates, vec![provisioner()]),
        &price_table(),
        clock,
    );
    Harness { moto, ec2, net, cloud: Arc::new(cloud) }
}

async fn harness() -> Harness {
    harness_with(Arc::new(SystemClock), |ec2| ec2).await
}

impl Harness {
    fn fixture(&self) -> Fixture {
        Fixture {
            provider: self.cloud.clone(),
            provisioner: "default".into(),
            node_template: Some("default".into()),
            instance_types: TYPES.iter().map(|t| t.to_string()).collect(),
            zones: ZONES.iter().map(|z| z.to_string()).collect(),
            keep_alive: Box::new(self.moto.clone()),
        }
    }

    async fn describe(&self, id: &str) -> Ec2Instance {
        let out = self.ec2.describe_instances().instance_ids(id).send().await.unwrap();
        out.reservations()[0].instances()[0].clone()
    }

    async fn launch_templates(&self) -> Vec<LaunchTemplate> {
        let filter = Filter::builder()
            .name(format!("tag:kubernetes.io/cluster/{}", self.net.cluster))
            .values("owned")
            .build();
        self.ec2.describe_launch_templates().filters(filter).send().await.unwrap().launch_templates().to_vec()
    }
}

conformance_suite!(harness().await.fixture());

#[tokio::test]
async fn on_demand_prices_fall_back_to_the_table_when_the_pricing_api_fails() {
    let h = harness().await;
    let catalog = h.cloud.catalog().await.unwrap();
    let on_demand = |name: &str| {
        let t = catalog.get(name).unwrap();
        let prices: BTreeSet<String> = t
            .offerings
            .iter()
            .filter(|o| o.capacity_type == CapacityType::OnDemand)
            .map(|o| o.price.to_string())
            .collect();
        assert_eq!(prices.len(), 1, "{name}: one on-demand price in every zone: {prices:?}");
        prices.first().unwrap().parse::<f64>().unwrap()
    };
    assert_eq!((on_demand("c5.large"), on_demand("m5.large"), on_demand("m5.xlarge")), (0.085, 0.096, 0.192));
    // The failed GetProducts call is visible in the metrics.
    let mut registry = prometheus_client::registry::Registry::with_prefix("aws");
    h.cloud.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains(r#"aws_api_errors_total{operation="GetProducts""#), "{text}");
}

#[tokio::test]
async fn discovers_subnets_and_security_groups_by_tag() {
    let h = harness().await;
    let template = node_template("default", &h.net, None);
    let status = h.cloud.template_status(&template).await.unwrap();
    let subnets: BTreeMap<_, _> = status.subnets.unwrap().into_iter().map(|s| (s.zone, s.id)).collect();
    // The /24 beats the /28 in the same zone (more free IPs); the untagged subnet in us-east-1c is not picked.
    assert_eq!(subnets, h.net.subnets);
    assert!(!subnets.values().any(|s| *s == h.net.small_subnet));
    let groups: Vec<_> = status.security_groups.unwrap().into_iter().map(|g| g.id).collect();
    assert_eq!(groups, [h.net.security_group.clone()]);
    assert_eq!(status.amis.unwrap()[0].id, h.net.ami);

    let mut nothing = template.clone();
    nothing.spec.subnet_selector =
        BTreeMap::from([("karpenter.sh/discovery".to_string(), "no-such-cluster".to_string())]);
    let err = h.cloud.template_status(&nothing).await.unwrap_err();
    assert!(matches!(err, CloudError::InvalidConfig(_)), "{err:?}");
    assert!(err.to_string().contains("spec.subnetSelector"), "{err}");
}

#[tokio::test]
async fn launch_templates_are_created_once_per_content_and_reused() {
    let h = harness().await;
    let fx = h.fixture();
    fx.launch("lt-1", None).await;
    fx.launch("lt-2", Some(CapacityType::OnDemand)).await;
    let templates = h.launch_templates().await;
    assert_eq!(templates.len(), 1, "{templates:?}");
    let name = templates[0].launch_template_name().unwrap();
    assert!(name.starts_with(&format!("ballast/{}/", h.net.cluster)), "{name}");

    let versions = h.ec2.describe_launch_template_versions().launch_template_name(name).send().await.unwrap();
    let data = versions.launch_template_versions()[0].launch_template_data().unwrap();
    assert_eq!(data.image_id(), Some(h.net.ami.as_str()));
    assert_eq!(data.security_group_ids(), [h.net.security_group.clone()]);
    assert_eq!(data.iam_instance_profile().and_then(|p| p.name()), Some("KarpenterNodeInstanceProfile"));
    let user_data =
        String::from_utf8(aws_smithy_types::base64::decode(data.user_data().unwrap()).unwrap()).unwrap();
    assert!(
        user_data.contains(&format!(
            "/etc/eks/bootstrap.sh '{}' --apiserver-endpoint 'https://cluster.example'",
            h.net.cluster
        )),
        "{user_data}"
    );
    assert!(user_data.contains("--max-pods=42"), "the Provisioner's kubelet maxPods: {user_data}");

    // Different user data, different template; the same again, no new one.
    let mut custom = fx.request("lt-3", None).await;
    custom.node_template = Some("custom".into());
    h.cloud.create(&custom).await.unwrap();
    custom.claim_name = "lt-4".into();
    h.cloud.create(&custom).await.unwrap();
    assert_eq!(h.launch_templates().await.len(), 2);
}

#[tokio::test]
async fn create_fleet_launches_spot_and_on_demand_with_tags() {
    let check = harness().await;
    let fx = check.fixture();

    let (_, spot) = fx.launch("fleet-spot", None).await;
    let described = check.describe(&spot.id).await;
    assert_eq!(described.instance_lifecycle(), Some(&InstanceLifecycleType::Spot));
    assert_eq!(described.image_id(), Some(check.net.ami.as_str()));
    assert!(check.net.subnets.values().any(|s| Some(s.as_str()) == described.subnet_id()));
    let tags: BTreeMap<_, _> = described
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    let cluster_tag = format!("kubernetes.io/cluster/{}", check.net.cluster);
    for (key, value) in [
        (cluster_tag.as_str(), "owned"),
        ("ballast.dev/nodeclaim", "fleet-spot"),
        ("ballast.dev/provisioner", "default"),
        ("Name", "fleet-spot"),
        ("cost-center", "42"),
        ("environment", "test"),
    ] {
        assert_eq!(tags.get(key).map(String::as_str), Some(value), "tag {key}: {tags:?}");
    }

    let (_, on_demand) = fx.launch("fleet-od", Some(CapacityType::OnDemand)).await;
    assert_eq!(on_demand.capacity_type, CapacityType::OnDemand);
    assert_eq!(check.describe(&on_demand.id).await.instance_lifecycle(), None);
}

#[tokio::test]
async fn list_finds_only_this_clusters_instances() {
    let a = harness().await.fixture();
    let b = harness().await.fixture();
    let (_, mine) = a.launch("list-a", None).await;
    let (_, theirs) = b.launch("list-b", None).await;
    let listed: Vec<_> = a.provider.list().await.unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(listed, [mine.id.clone()]);
    assert!(!listed.contains(&theirs.id));
}

// === Capacity errors, injected at the SDK seam ===

/// Passes calls to moto, except that CreateFleet treats `out_of_capacity` (type, capacity type) pools as empty:
/// it drops them from the overrides and reports InsufficientInstanceCapacity for them, launching from the rest
/// (moto takes the first remaining override) or from nothing.
struct CapacityFaults {
    inner: Arc<dyn Ec2Api>,
    out_of_capacity: Mutex<Vec<(String, CapacityType)>>,
    fleet_requests: Mutex<Vec<CreateFleetInput>>,
}

#[async_trait]
impl Ec2Api for CapacityFaults {
    async fn describe_instance_types(&self, f: Vec<Filter>) -> ApiResult<Vec<InstanceTypeInfo>> {
        self.inner.describe_instance_types(f).await
    }
    async fn describe_instance_type_offerings(&self, f: Vec<Filter>) -> ApiResult<Vec<InstanceTypeOffering>> {
        self.inner.describe_instance_type_offerings(f).await
    }
    async fn describe_spot_price_history(
        &self,
        f: Vec<Filter>,
        start: DateTime,
    ) -> ApiResult<Vec<SpotPrice>> {
        self.inner.describe_spot_price_history(f, start).await
    }
    async fn describe_subnets(&self, f: Vec<Filter>, ids: Vec<String>) -> ApiResult<Vec<Subnet>> {
        self.inner.describe_subnets(f, ids).await
    }
    async fn describe_security_groups(
        &self,
        f: Vec<Filter>,
        ids: Vec<String>,
    ) -> ApiResult<Vec<SecurityGroup>> {
        self.inner.describe_security_groups(f, ids).await
    }
    async fn describe_images(
        &self,
        f: Vec<Filter>,
        ids: Vec<String>,
        owners: Vec<String>,
    ) -> ApiResult<Vec<Image>> {
        self.inner.describe_images(f, ids, owners).await
    }
    async fn describe_launch_templates(&self, f: Vec<Filter>) -> ApiResult<Vec<LaunchTemplate>> {
        self.inner.describe_launch_templates(f).await
    }
    async fn create_launch_template(&self, input: CreateLaunchTemplateInput) -> ApiResult<LaunchTemplate> {
        self.inner.create_launch_template(input).await
    }
    async fn create_fleet(&self, mut input: CreateFleetInput) -> ApiResult<CreateFleetOutput> {
        self.fleet_requests.lock().push(input.clone());
        let capacity =
            match input.target_capacity_specification.as_ref().and_then(|t| t.default_target_capacity_type())
            {
                Some(aws_sdk_ec2::types::DefaultTargetCapacityType::Spot) => CapacityType::Spot,
                _ => CapacityType::OnDemand,
            };
        let empty = self.out_of_capacity.lock().clone();
        let is_empty = |t: &str| empty.iter().any(|(e, c)| e == t && *c == capacity);
        let mut errors = Vec::new();
        for config in input.launch_template_configs.iter_mut().flatten() {
            let (dropped, kept): (Vec<_>, Vec<_>) = config
                .overrides
                .take()
                .unwrap_or_default()
                .into_iter()
                .partition(|o| is_empty(o.instance_type().unwrap().as_str()));
            for o in dropped {
                errors.push(
                    CreateFleetError::builder()
                        .error_code("InsufficientInstanceCapacity")
                        .error_message("We currently do not have sufficient capacity in the Availability Zone you requested.")
                        .launch_template_and_overrides(
                            LaunchTemplateAndOverridesResponse::builder()
                                .overrides(
                                    FleetLaunchTemplateOverrides::builder()
                                        .set_instance_type(o.instance_type().cloned())
                                        .set_subnet_id(o.subnet_id().map(str::to_string))
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                );
            }
            config.overrides = Some(kept);
        }
        input.launch_template_configs.as_mut().unwrap().retain(|c| !c.overrides().is_empty());
        if input.launch_template_configs.as_ref().unwrap().is_empty() {
            return Ok(CreateFleetOutput::builder().set_errors(Some(errors)).build());
        }
        let out = self.inner.create_fleet(input).await?;
        errors.extend(out.errors().iter().cloned());
        Ok(CreateFleetOutput::builder()
            .set_instances(out.instances)
            .set_errors(Some(errors))
            .set_fleet_id(out.fleet_id)
            .build())
    }
    async fn describe_instances(&self, f: Vec<Filter>, ids: Vec<String>) -> ApiResult<Vec<Ec2Instance>> {
        self.inner.describe_instances(f, ids).await
    }
    async fn terminate_instances(&self, ids: Vec<String>) -> ApiResult<Vec<InstanceStateChange>> {
        self.inner.terminate_instances(ids).await
    }
}

async fn faulty(
    clock: ManualClock,
    out_of_capacity: &[(&str, CapacityType)],
) -> (Fixture, Arc<CapacityFaults>) {
    let faults: Arc<Mutex<Option<Arc<CapacityFaults>>>> = Arc::default();
    let slot = faults.clone();
    let empty: Vec<_> = out_of_capacity.iter().map(|(t, c)| (t.to_string(), *c)).collect();
    let h = harness_with(Arc::new(clock), move |inner| {
        let wrapped = Arc::new(CapacityFaults {
            inner,
            out_of_capacity: Mutex::new(empty),
            fleet_requests: Mutex::default(),
        });
        *slot.lock() = Some(wrapped.clone());
        wrapped
    })
    .await;
    let faults = faults.lock().clone().unwrap();
    let fx = h.fixture();
    (fx, faults)
}

fn start() -> Timestamp {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

#[tokio::test]
async fn spot_capacity_errors_fall_back_to_on_demand_and_expire_after_three_minutes() {
    let clock = ManualClock::new(start());
    let all_spot: Vec<_> = TYPES.iter().map(|t| (*t, CapacityType::Spot)).collect();
    let (fx, faults) = faulty(clock.clone(), &all_spot).await;
    let req = fx.request("ice-fallback", None).await;
    assert!(req.options.iter().any(|o| o.capacity_type == CapacityType::Spot));

    let instance = fx.provider.create(&req).await.unwrap();
    assert_eq!(instance.capacity_type, CapacityType::OnDemand);
    let requests = faults.fleet_requests.lock().clone();
    let capacity = |r: &CreateFleetInput| {
        r.target_capacity_specification.as_ref().unwrap().default_target_capacity_type().unwrap().clone()
    };
    assert_eq!(
        requests.iter().map(capacity).collect::<Vec<_>>(),
        [
            aws_sdk_ec2::types::DefaultTargetCapacityType::Spot,
            aws_sdk_ec2::types::DefaultTargetCapacityType::OnDemand
        ]
    );

    // Every spot offering that failed is unavailable in the catalog for three minutes.
    let unavailable_spot = |catalog: &Catalog| {
        catalog
            .instance_types
            .iter()
            .flat_map(|t| t.offerings.iter().map(move |o| (t.name.clone(), o)))
            .filter(|(_, o)| {
                o.capacity_type == CapacityType::Spot && ZONES.contains(&o.zone.as_str()) && !o.available
            })
            .count()
    };
    assert_eq!(unavailable_spot(&fx.provider.catalog().await.unwrap()), TYPES.len() * ZONES.len());
    clock.advance(SignedDuration::from_mins(3));
    assert_eq!(unavailable_spot(&fx.provider.catalog().await.unwrap()), 0);
}

#[tokio::test]
async fn capacity_error_on_the_cheapest_spot_type_launches_the_next() {
    let clock = ManualClock::new(start());
    let (fx, faults) = faulty(clock, &[]).await;
    let req = fx.request("ice-next", Some(CapacityType::Spot)).await;
    // moto launches the first override; make that type's pools empty.
    let first = req.options[0].instance_type.clone();
    faults.out_of_capacity.lock().push((first.clone(), CapacityType::Spot));
    let instance = fx.provider.create(&req).await.unwrap();
    assert_eq!(instance.capacity_type, CapacityType::Spot);
    assert_ne!(instance.instance_type, first);
    assert_eq!(
        faults.fleet_requests.lock().len(),
        1,
        "one CreateFleet call: the other overrides had capacity"
    );
    // The failed pools are remembered: the next launch does not offer them.
    fx.provider.create(&fx.request("ice-next-2", Some(CapacityType::Spot)).await).await.unwrap();
    let last = faults.fleet_requests.lock().last().cloned().unwrap();
    let offered: Vec<_> = last
        .launch_template_configs()
        .iter()
        .flat_map(|c| c.overrides())
        .map(|o| o.instance_type().unwrap().as_str().to_string())
        .collect();
    assert!(!offered.contains(&first), "{offered:?}");
}

#[tokio::test]
async fn no_capacity_anywhere_is_insufficient_capacity() {
    let clock = ManualClock::new(start());
    let everything: Vec<_> =
        TYPES.iter().flat_map(|t| [(*t, CapacityType::Spot), (*t, CapacityType::OnDemand)]).collect();
    let (fx, _) = faulty(clock, &everything).await;
    let req = fx.request("ice-none", None).await;
    match fx.provider.create(&req).await {
        Err(CloudError::InsufficientCapacity { offerings }) => {
            assert_eq!(offerings.len(), req.options.len(), "{offerings:?}");
        }
        other => panic!("expected insufficient capacity, got {other:?}"),
    }
    assert!(fx.provider.list().await.unwrap().is_empty());
}
