//! The requests `cloud::aws` sends through the real SDK clients, checked with `aws-smithy-mocks`: CreateFleet
//! (type, target capacity, allocation strategies, ≤ 60 overrides, tags), AMI aliases through SSM, the relaunch
//! after capacity errors, how service errors are classified, and on-demand prices from the Pricing API.
#![cfg(feature = "aws-test-util")]

use std::{collections::BTreeMap, sync::Arc};

use aws_sdk_ec2::{
    Client,
    error::ErrorMetadata,
    operation::{
        create_fleet::{CreateFleetInput, CreateFleetOutput},
        create_launch_template::{CreateLaunchTemplateInput, CreateLaunchTemplateOutput},
        describe_instance_type_offerings::DescribeInstanceTypeOfferingsOutput,
        describe_instance_types::DescribeInstanceTypesOutput,
        describe_instances::{DescribeInstancesError, DescribeInstancesOutput},
        describe_launch_templates::DescribeLaunchTemplatesOutput,
        describe_security_groups::DescribeSecurityGroupsOutput,
        describe_spot_price_history::DescribeSpotPriceHistoryOutput,
        describe_subnets::{DescribeSubnetsError, DescribeSubnetsOutput},
    },
    types::{
        ArchitectureType, CreateFleetError, CreateFleetInstance, DefaultTargetCapacityType,
        FleetLaunchTemplateOverrides, FleetOnDemandAllocationStrategy, FleetType, InstanceLifecycle,
        InstanceType as Ec2Type, InstanceTypeInfo, InstanceTypeOffering, LaunchTemplate,
        LaunchTemplateAndOverridesResponse, MemoryInfo, NetworkInfo, ProcessorInfo, ResourceType,
        SecurityGroup, SpotAllocationStrategy, SpotPrice, Subnet, UsageClassType, VCpuInfo,
    },
};
use aws_sdk_pricing::operation::get_products::{GetProductsError, GetProductsInput, GetProductsOutput};
use aws_sdk_ssm::{
    operation::get_parameter::{GetParameterError, GetParameterOutput},
    types::{Parameter, error::ParameterNotFound},
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use ballast::{
    api::{NodeTemplate, NodeTemplateSpec},
    clock::SystemClock,
    cloud::{
        CapacityType, Catalog, CloudError, CloudProvider, InstanceType, LaunchOption, LaunchRequest,
        Offering,
        aws::{AwsClients, AwsCloud, AwsSettings, ClusterInfo, Lookups},
    },
    resources::Resources,
};
use parking_lot::Mutex;

const ZONES: [&str; 2] = ["us-east-1a", "us-east-1b"];
const AMI: &str = "ami-0eks";

/// `count` amd64 types `m{i}.large` offered in both zones, spot at 0.01·(i+1), on-demand at 0.1·(i+1).
fn type_names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("m{}.large", i + 1)).collect()
}

fn describe_rules(count: usize) -> Vec<Rule> {
    let names = type_names(count);
    let infos: Vec<_> = names
        .iter()
        .map(|name| {
            InstanceTypeInfo::builder()
                .instance_type(Ec2Type::from(name.as_str()))
                .v_cpu_info(VCpuInfo::builder().default_v_cpus(2).build())
                .memory_info(MemoryInfo::builder().size_in_mib(8192).build())
                .processor_info(
                    ProcessorInfo::builder().supported_architectures(ArchitectureType::X8664).build(),
                )
                .network_info(
                    NetworkInfo::builder()
                        .maximum_network_interfaces(3)
                        .ipv4_addresses_per_interface(10)
                        .build(),
                )
                .supported_usage_classes(UsageClassType::OnDemand)
                .supported_usage_classes(UsageClassType::Spot)
                .build()
        })
        .collect();
    let offerings: Vec<_> = names
        .iter()
        .flat_map(|n| {
            ZONES.map(|z| {
                InstanceTypeOffering::builder().instance_type(Ec2Type::from(n.as_str())).location(z).build()
            })
        })
        .collect();
    let spot: Vec<_> = names
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            ZONES.map(|z| {
                SpotPrice::builder()
                    .instance_type(Ec2Type::from(n.as_str()))
                    .availability_zone(z)
                    .spot_price(format!("{:.2}", 0.01 * (i + 1) as f64))
                    .build()
            })
        })
        .collect();
    vec![
        mock!(Client::describe_instance_types).then_output(move || {
            DescribeInstanceTypesOutput::builder().set_instance_types(Some(infos.clone())).build()
        }),
        mock!(Client::describe_instance_type_offerings).then_output(move || {
            DescribeInstanceTypeOfferingsOutput::builder()
                .set_instance_type_offerings(Some(offerings.clone()))
                .build()
        }),
        mock!(Client::describe_spot_price_history).then_output(move || {
            DescribeSpotPriceHistoryOutput::builder().set_spot_price_history(Some(spot.clone())).build()
        }),
        mock!(Client::describe_subnets).then_output(|| {
            DescribeSubnetsOutput::builder()
                .set_subnets(Some(
                    ZONES
                        .iter()
                        .map(|z| {
                            Subnet::builder()
                                .subnet_id(format!("subnet-{z}"))
                                .availability_zone(*z)
                                .available_ip_address_count(100)
                                .build()
                        })
                        .collect(),
                ))
                .build()
        }),
        mock!(Client::describe_security_groups).then_output(|| {
            DescribeSecurityGroupsOutput::builder()
                .security_groups(SecurityGroup::builder().group_id("sg-1").build())
                .build()
        }),
        mock!(Client::describe_launch_templates)
            .then_output(|| DescribeLaunchTemplatesOutput::builder().build()),
    ]
}

fn price_table(count: usize) -> Catalog {
    Catalog::new(
        type_names(count)
            .into_iter()
            .enumerate()
            .map(|(i, name)| InstanceType {
                name,
                capacity: Resources::default(),
                labels: BTreeMap::new(),
                offerings: vec![Offering {
                    zone: ZONES[0].into(),
                    capacity_type: CapacityType::OnDemand,
                    price: 0.1 * (i + 1) as f64,
                    available: true,
                }],
            })
            .collect(),
    )
}

/// An AL2 template (AMI through the SSM alias) discovering subnets and groups by tag.
fn template() -> NodeTemplate {
    let discovery = BTreeMap::from([("karpenter.sh/discovery".to_string(), "demo".to_string())]);
    NodeTemplate::new(
        "default",
        NodeTemplateSpec {
            subnet_selector: discovery.clone(),
            security_group_selector: discovery,
            tags: Some(BTreeMap::from([("cost-center".to_string(), "42".to_string())])),
            ..Default::default()
        },
    )
}

fn ssm_client() -> aws_sdk_ssm::Client {
    let found = mock!(aws_sdk_ssm::Client::get_parameter)
        .match_requests(|r| {
            r.name() == Some("/aws/service/eks/optimized-ami/1.30/amazon-linux-2/recommended/image_id")
        })
        .then_output(|| {
            GetParameterOutput::builder().parameter(Parameter::builder().value(AMI).build()).build()
        });
    let missing = mock!(aws_sdk_ssm::Client::get_parameter)
        .then_error(|| GetParameterError::ParameterNotFound(ParameterNotFound::builder().build()));
    mock_client!(aws_sdk_ssm, RuleMode::MatchAny, &[&found, &missing])
}

/// A Pricing client over `rules`, without retries.
fn pricing_client(rules: &[&Rule]) -> aws_sdk_pricing::Client {
    mock_client!(aws_sdk_pricing, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_pricing::config::retry::RetryConfig::disabled()))
}

/// GetProducts denied, as without the `pricing:GetProducts` permission: the table's prices stand.
fn denied_pricing() -> aws_sdk_pricing::Client {
    let denied = mock!(aws_sdk_pricing::Client::get_products).then_error(|| {
        GetProductsError::generic(
            ErrorMetadata::builder().code("AccessDeniedException").message("not authorized").build(),
        )
    });
    pricing_client(&[&denied])
}

fn cloud(ec2: Client) -> AwsCloud {
    cloud_with_pricing(ec2, denied_pricing())
}

fn cloud_with_pricing(ec2: Client, pricing: aws_sdk_pricing::Client) -> AwsCloud {
    let settings = AwsSettings::new(
        ClusterInfo { name: "demo".into(), endpoint: "https://demo.example".into(), ..Default::default() },
        "1.30",
    );
    let clients = AwsClients { ec2: Arc::new(ec2), ssm: Arc::new(ssm_client()), pricing: Arc::new(pricing) };
    AwsCloud::new(
        clients,
        settings,
        Lookups::fixed(vec![template()], Vec::new()),
        &price_table(40),
        Arc::new(SystemClock),
    )
}

fn ec2_client(extra: Vec<Rule>, count: usize) -> Client {
    let mut rules = extra;
    rules.extend(describe_rules(count));
    let refs: Vec<&Rule> = rules.iter().collect();
    mock_client!(aws_sdk_ec2, RuleMode::MatchAny, refs, |c| c
        .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled()))
}

/// CreateLaunchTemplate answering with an id, recording each request.
fn create_launch_template(seen: Arc<Mutex<Vec<CreateLaunchTemplateInput>>>) -> Rule {
    mock!(Client::create_launch_template)
        .match_requests(move |r| {
            seen.lock().push(r.clone());
            true
        })
        .then_output(|| {
            CreateLaunchTemplateOutput::builder()
                .launch_template(LaunchTemplate::builder().launch_template_id("lt-1").build())
                .build()
        })
}

fn launched(instance_type: &str, subnet: &str, lifecycle: InstanceLifecycle) -> CreateFleetOutput {
    CreateFleetOutput::builder()
        .instances(
            CreateFleetInstance::builder()
                .instance_ids("i-0123456789")
                .lifecycle(lifecycle)
                .launch_template_and_overrides(
                    LaunchTemplateAndOverridesResponse::builder()
                        .overrides(
                            FleetLaunchTemplateOverrides::builder()
                                .instance_type(Ec2Type::from(instance_type))
                                .subnet_id(subnet)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
}

/// Every (type, zone) of the first `count` types, spot and on-demand, cheapest first.
fn options(count: usize, capacity: Option<CapacityType>) -> Vec<LaunchOption> {
    let mut out: Vec<_> = type_names(count)
        .into_iter()
        .enumerate()
        .flat_map(|(i, name)| {
            ZONES.iter().flat_map(move |z| {
                let name = name.clone();
                [(CapacityType::Spot, 0.01), (CapacityType::OnDemand, 0.1)].map(move |(c, unit)| {
                    LaunchOption {
                        instance_type: name.clone(),
                        zone: z.to_string(),
                        capacity_type: c,
                        price: unit * (i + 1) as f64,
                    }
                })
            })
        })
        .filter(|o| capacity.is_none_or(|c| o.capacity_type == c))
        .collect();
    out.sort_by(|a, b| a.price.total_cmp(&b.price));
    out
}

fn request(claim: &str, options: Vec<LaunchOption>) -> LaunchRequest {
    LaunchRequest {
        claim_name: claim.into(),
        provisioner: "default".into(),
        node_template: Some("default".into()),
        options,
        labels: BTreeMap::from([("team".to_string(), "a".to_string())]),
        taints: Vec::new(),
        startup_taints: Vec::new(),
        tags: BTreeMap::new(),
    }
}

fn overrides(input: &CreateFleetInput) -> Vec<(String, String)> {
    input
        .launch_template_configs()
        .iter()
        .flat_map(|c| c.overrides())
        .map(|o| (o.instance_type().unwrap().as_str().to_string(), o.subnet_id().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn spot_fleet_request_shape() {
    let fleets: Arc<Mutex<Vec<CreateFleetInput>>> = Arc::default();
    let templates: Arc<Mutex<Vec<CreateLaunchTemplateInput>>> = Arc::default();
    let seen = fleets.clone();
    let create_fleet = mock!(Client::create_fleet)
        .match_requests(move |r| {
            seen.lock().push(r.clone());
            true
        })
        .then_output(|| launched("m1.large", "subnet-us-east-1a", InstanceLifecycle::Spot));
    let cloud = cloud(ec2_client(vec![create_fleet, create_launch_template(templates.clone())], 40));

    // 40 types × 2 zones = 80 spot pools (and 80 on-demand ones): spot wins, the 60 cheapest are sent.
    let instance = cloud.create(&request("claim-1", options(40, None))).await.unwrap();
    assert_eq!(instance.provider_id, "aws:///us-east-1a/i-0123456789");
    assert_eq!(instance.capacity_type, CapacityType::Spot);
    assert_eq!(instance.price, 0.01);

    let fleets = fleets.lock();
    assert_eq!(fleets.len(), 1);
    let input = &fleets[0];
    assert_eq!(input.r#type(), Some(&FleetType::Instant));
    let target = input.target_capacity_specification().unwrap();
    assert_eq!(target.total_target_capacity(), Some(1));
    assert_eq!(target.default_target_capacity_type(), Some(&DefaultTargetCapacityType::Spot));
    assert_eq!(
        input.spot_options().unwrap().allocation_strategy(),
        Some(&SpotAllocationStrategy::PriceCapacityOptimized)
    );
    assert!(input.on_demand_options().is_none());
    assert!(input.client_token().is_some_and(|t| !t.is_empty() && t.len() <= 64));
    let sent = overrides(input);
    assert_eq!(sent.len(), 60);
    let expected: Vec<_> = options(40, Some(CapacityType::Spot))
        .into_iter()
        .take(60)
        .map(|o| (o.instance_type, format!("subnet-{}", o.zone)))
        .collect();
    assert_eq!(sent, expected, "cheapest first, each type in each zone's subnet");
    let config = &input.launch_template_configs()[0];
    let name = config.launch_template_specification().unwrap().launch_template_name().unwrap();
    assert!(name.starts_with("ballast/demo/"), "{name}");
    assert_eq!(config.launch_template_specification().unwrap().version(), Some("$Latest"));

    let kinds: Vec<_> =
        input.tag_specifications().iter().map(|t| t.resource_type().unwrap().clone()).collect();
    assert_eq!(kinds, [ResourceType::Instance, ResourceType::Volume]);
    let tags: BTreeMap<_, _> = input.tag_specifications()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    assert_eq!(
        tags,
        BTreeMap::from([
            ("Name".to_string(), "claim-1".to_string()),
            ("ballast.dev/nodeclaim".to_string(), "claim-1".to_string()),
            ("ballast.dev/provisioner".to_string(), "default".to_string()),
            ("cost-center".to_string(), "42".to_string()),
            ("kubernetes.io/cluster/demo".to_string(), "owned".to_string()),
        ])
    );

    // The AL2 alias resolved through SSM; the launch template carries it and the bootstrap user data.
    let templates = templates.lock();
    assert_eq!(templates.len(), 1);
    let data = templates[0].launch_template_data().unwrap();
    assert_eq!(data.image_id(), Some(AMI));
    assert_eq!(data.security_group_ids(), ["sg-1"]);
    let user_data =
        String::from_utf8(aws_smithy_types::base64::decode(data.user_data().unwrap()).unwrap()).unwrap();
    assert!(
        user_data.contains("/etc/eks/bootstrap.sh 'demo' --apiserver-endpoint 'https://demo.example'"),
        "{user_data}"
    );
    assert!(user_data.contains("--node-labels=team=a"), "{user_data}");
}

#[tokio::test]
async fn on_demand_fleet_uses_lowest_price() {
    let fleets: Arc<Mutex<Vec<CreateFleetInput>>> = Arc::default();
    let seen = fleets.clone();
    let create_fleet = mock!(Client::create_fleet)
        .match_requests(move |r| {
            seen.lock().push(r.clone());
            true
        })
        .then_output(|| launched("m2.large", "subnet-us-east-1b", InstanceLifecycle::OnDemand));
    let cloud = cloud(ec2_client(vec![create_fleet, create_launch_template(Arc::default())], 3));
    let instance =
        cloud.create(&request("claim-od", options(3, Some(CapacityType::OnDemand)))).await.unwrap();
    assert_eq!((instance.instance_type.as_str(), instance.zone.as_str()), ("m2.large", "us-east-1b"));
    assert_eq!(instance.capacity_type, CapacityType::OnDemand);
    assert_eq!(instance.price, 0.2);
    let input = &fleets.lock()[0];
    assert_eq!(
        input.target_capacity_specification().unwrap().default_target_capacity_type(),
        Some(&DefaultTargetCapacityType::OnDemand)
    );
    assert_eq!(
        input.on_demand_options().unwrap().allocation_strategy(),
        Some(&FleetOnDemandAllocationStrategy::LowestPrice)
    );
    assert!(input.spot_options().is_none());
    assert_eq!(overrides(input).len(), 6);
}

#[tokio::test]
async fn capacity_errors_relaunch_without_the_failed_pools() {
    let fleets: Arc<Mutex<Vec<CreateFleetInput>>> = Arc::default();
    let seen = fleets.clone();
    let ice = |t: &str, subnet: &str| {
        CreateFleetError::builder()
            .error_code("InsufficientInstanceCapacity")
            .launch_template_and_overrides(
                LaunchTemplateAndOverridesResponse::builder()
                    .overrides(
                        FleetLaunchTemplateOverrides::builder()
                            .instance_type(Ec2Type::from(t))
                            .subnet_id(subnet)
                            .build(),
                    )
                    .build(),
            )
            .build()
    };
    let create_fleet = mock!(Client::create_fleet)
        .match_requests(move |r| {
            seen.lock().push(r.clone());
            true
        })
        .sequence()
        .output(move || {
            CreateFleetOutput::builder()
                .errors(ice("m1.large", "subnet-us-east-1a"))
                .errors(ice("m1.large", "subnet-us-east-1b"))
                .build()
        })
        .output(|| launched("m2.large", "subnet-us-east-1a", InstanceLifecycle::Spot))
        .build();
    let cloud = cloud(ec2_client(vec![create_fleet, create_launch_template(Arc::default())], 2));
    let instance = cloud.create(&request("claim-ice", options(2, Some(CapacityType::Spot)))).await.unwrap();
    assert_eq!(instance.instance_type, "m2.large");

    let fleets = fleets.lock();
    assert_eq!(fleets.len(), 2);
    assert_eq!(overrides(&fleets[0]).len(), 4);
    assert_eq!(
        overrides(&fleets[1]),
        [
            ("m2.large".to_string(), "subnet-us-east-1a".to_string()),
            ("m2.large".to_string(), "subnet-us-east-1b".to_string())
        ]
    );
    assert_ne!(fleets[0].client_token(), fleets[1].client_token(), "a relaunch is a new request");
    let catalog = cloud.catalog().await.unwrap();
    let m1 = catalog.get("m1.large").unwrap();
    assert!(m1.offerings.iter().filter(|o| o.capacity_type == CapacityType::Spot).all(|o| !o.available));
    assert!(m1.offerings.iter().filter(|o| o.capacity_type == CapacityType::OnDemand).all(|o| o.available));
}

/// A price list item as GetProducts returns it (trimmed to the fields that matter).
fn price_item(kind: &str, usd: f64) -> String {
    serde_json::json!({
        "product": {"productFamily": "Compute Instance", "attributes": {"instanceType": kind}},
        "terms": {"OnDemand": {"T.JRTCKXETXF": {"priceDimensions": {
            "T.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": format!("{usd:.10}")}}
        }}}}
    })
    .to_string()
}

#[tokio::test]
async fn on_demand_prices_come_from_the_pricing_api_paged_and_override_the_table() {
    let seen: Arc<Mutex<Vec<GetProductsInput>>> = Arc::default();
    let record = |seen: &Arc<Mutex<Vec<GetProductsInput>>>, r: &GetProductsInput| {
        seen.lock().push(r.clone());
    };
    let shared = |r: &GetProductsInput| r.filters().iter().any(|f| f.value() == "Shared");
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let first_page = mock!(aws_sdk_pricing::Client::get_products)
        .match_requests(move |r| {
            shared(r) && r.next_token().is_none() && {
                record(&s1, r);
                true
            }
        })
        .then_output(|| {
            GetProductsOutput::builder().price_list(price_item("m1.large", 0.5)).next_token("page-2").build()
        });
    let second_page = mock!(aws_sdk_pricing::Client::get_products)
        .match_requests(move |r| {
            shared(r) && r.next_token() == Some("page-2") && {
                record(&s2, r);
                true
            }
        })
        .then_output(|| GetProductsOutput::builder().price_list(price_item("m2.large", 0.6)).build());
    let bare_metal = mock!(aws_sdk_pricing::Client::get_products)
        .match_requests(move |r| {
            !shared(r) && {
                record(&s3, r);
                true
            }
        })
        .then_output(|| GetProductsOutput::builder().build());
    let pricing = pricing_client(&[&first_page, &second_page, &bare_metal]);
    let cloud = cloud_with_pricing(ec2_client(Vec::new(), 3), pricing);

    let catalog = cloud.catalog().await.unwrap();
    let on_demand = |name: &str| {
        let t = catalog.get(name).unwrap();
        t.offerings.iter().find(|o| o.capacity_type == CapacityType::OnDemand).unwrap().price
    };
    // m1 and m2 from the API (table: 0.1, 0.2), m3 from the table.
    assert_eq!((on_demand("m1.large"), on_demand("m2.large"), on_demand("m3.large")), (0.5, 0.6, 0.1 * 3.0));

    let seen = seen.lock();
    assert_eq!(seen.len(), 3, "two pages of shared tenancy, one of bare metal");
    for request in seen.iter() {
        assert_eq!(request.service_code(), Some("AmazonEC2"));
        assert_eq!(request.max_results(), Some(100));
        let filters: BTreeMap<&str, &str> =
            request.filters().iter().map(|f| (f.field(), f.value())).collect();
        assert!(request.filters().iter().all(|f| f.r#type().as_str() == "TERM_MATCH"));
        assert_eq!(filters["regionCode"], "us-east-1");
        assert_eq!(filters["operatingSystem"], "Linux");
        assert_eq!(filters["marketoption"], "OnDemand");
        assert_eq!(filters["capacitystatus"], "Used");
        assert_eq!(filters["preInstalledSw"], "NA");
    }
    let families: Vec<_> = seen
        .iter()
        .flat_map(|r| r.filters().iter().filter(|f| f.field() == "productFamily").map(|f| f.value()))
        .collect();
    assert_eq!(families, ["Compute Instance", "Compute Instance", "Compute Instance (bare metal)"]);
}

#[tokio::test]
async fn a_denied_pricing_api_leaves_the_table_prices() {
    let cloud = cloud(ec2_client(Vec::new(), 2));
    let catalog = cloud.catalog().await.unwrap();
    let m2 = catalog.get("m2.large").unwrap();
    let on_demand: Vec<f64> =
        m2.offerings.iter().filter(|o| o.capacity_type == CapacityType::OnDemand).map(|o| o.price).collect();
    assert_eq!(on_demand, [0.2, 0.2]);
}

#[tokio::test]
async fn service_errors_are_classified() {
    let throttled = mock!(Client::describe_subnets).then_error(|| {
        DescribeSubnetsError::generic(
            ErrorMetadata::builder().code("RequestLimitExceeded").message("slow down").build(),
        )
    });
    let cloud_throttled = cloud(ec2_client(vec![throttled], 1));
    let err = cloud_throttled.template_status(&template()).await.unwrap_err();
    assert!(matches!(err, CloudError::Throttled(_)), "{err:?}");
    assert!(err.is_retryable());

    let denied = mock!(Client::describe_subnets).then_error(|| {
        DescribeSubnetsError::generic(
            ErrorMetadata::builder().code("UnauthorizedOperation").message("no").build(),
        )
    });
    let err = cloud(ec2_client(vec![denied], 1)).template_status(&template()).await.unwrap_err();
    assert!(matches!(err, CloudError::Unauthorized(_)), "{err:?}");

    let gone = mock!(Client::describe_instances).then_error(|| {
        DescribeInstancesError::generic(
            ErrorMetadata::builder().code("InvalidInstanceID.NotFound").message("gone").build(),
        )
    });
    let cloud_gone = cloud(ec2_client(vec![gone], 1));
    assert!(matches!(cloud_gone.get("aws:///us-east-1a/i-0abc").await, Err(CloudError::NotFound(_))));
    assert!(matches!(cloud_gone.delete("aws:///us-east-1a/i-0abc").await, Err(CloudError::NotFound(_))));

    let empty = mock!(Client::describe_instances).then_output(|| DescribeInstancesOutput::builder().build());
    assert!(matches!(
        cloud(ec2_client(vec![empty], 1)).get("aws:///us-east-1a/i-0abc").await,
        Err(CloudError::NotFound(_))
    ));
}

#[tokio::test]
async fn every_call_is_counted() {
    let create_fleet = mock!(Client::create_fleet)
        .then_output(|| launched("m1.large", "subnet-us-east-1a", InstanceLifecycle::Spot));
    let cloud = cloud(ec2_client(vec![create_fleet, create_launch_template(Arc::default())], 1));
    cloud.create(&request("claim-m", options(1, None))).await.unwrap();
    let mut registry = prometheus_client::registry::Registry::with_prefix("ballast_aws");
    cloud.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for op in
        ["DescribeInstanceTypes", "DescribeSubnets", "GetParameter", "CreateLaunchTemplate", "CreateFleet"]
    {
        assert!(
            text.contains(&format!("ballast_aws_api_calls_total{{operation=\"{op}\"}}")),
            "{op} missing: {text}"
        );
    }
    assert!(
        text.contains("ballast_aws_api_call_duration_seconds_count{operation=\"CreateFleet\"} 1"),
        "{text}"
    );
    assert!(text.contains("ballast_aws_offering_price{"), "{text}");
}
