//! Instance types and offerings from DescribeInstanceTypes / DescribeInstanceTypeOfferings /
//! DescribeSpotPriceHistory, and the 3-minute cache of offerings that just ran out of capacity.
//!
//! On-demand prices come from a price table (the bundled catalog): moto has no Pricing API and the table is
//! what Karpenter also falls back to. A type × zone without a known price gets no offering of that capacity type.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_ec2::types::{
    ArchitectureType, InstanceTypeInfo, InstanceTypeOffering, SpotPrice, UsageClassType,
};
use jiff::{SignedDuration, Timestamp};

use crate::{
    api::labels,
    cloud::{CapacityType, Catalog, InstanceType, Offering},
    model::Labels,
    resources::{self, Resources},
};

const MIB: i64 = 1024 * 1024;
/// Root volume size assumed for ephemeral storage (the AL2 default block device, 20 GiB).
const DEFAULT_EPHEMERAL_BYTES: i64 = 20 * 1024 * MIB;

/// `kubernetes.io/arch` value of an EC2 architecture; `None` for ones ballast does not launch (i386, mac).
fn arch_label(arch: &ArchitectureType) -> Option<&'static str> {
    match arch {
        ArchitectureType::X8664 => Some("amd64"),
        ArchitectureType::Arm64 => Some("arm64"),
        _ => None,
    }
}

/// Splits `c5ad.2xlarge` into category `c`, family `c5ad`, generation `5`, size `2xlarge`.
fn name_parts(name: &str) -> Option<(&str, &str, &str, &str)> {
    let (family, size) = name.split_once('.')?;
    let digit = family.find(|c: char| c.is_ascii_digit())?;
    let category = &family[..digit];
    let generation_len = family[digit..].find(|c: char| !c.is_ascii_digit()).unwrap_or(family.len() - digit);
    Some((category, family, &family[digit..digit + generation_len], size))
}

fn put(labels: &mut Labels, suffix: &str, value: impl ToString) {
    let value = value.to_string();
    labels.insert(format!("{}{suffix}", labels::INSTANCE_LABEL_PREFIX), value.clone());
    labels.insert(format!("{}{suffix}", labels::KARPENTER_AWS_PREFIX), value);
}

/// Capacity and labels of an EC2 instance type, without offerings. `None` for types ballast cannot launch
/// (no supported architecture, missing vCPU or memory data).
pub fn convert(info: &InstanceTypeInfo) -> Option<InstanceType> {
    let name = info.instance_type()?.as_str().to_string();
    let arch = info.processor_info()?.supported_architectures().iter().find_map(arch_label)?;
    let vcpus = i64::from(info.v_cpu_info()?.default_v_cpus()?);
    let memory_mib = info.memory_info()?.size_in_mib()?;
    let network = info.network_info();
    let enis = network.and_then(|n| n.maximum_network_interfaces()).map(i64::from).unwrap_or(1);
    let ips_per_eni = network.and_then(|n| n.ipv4_addresses_per_interface()).map(i64::from).unwrap_or(2);
    // The VPC CNI's default: every ENI's IPs but its primary, plus two host-network pods.
    let max_pods = enis * (ips_per_eni - 1) + 2;

    let mut capacity = Resources::new(vcpus * 1000, memory_mib * MIB);
    capacity.ephemeral_storage = DEFAULT_EPHEMERAL_BYTES;
    capacity.pods = max_pods;
    let mut labels = Labels::new();
    labels.insert(labels::ARCH.into(), arch.into());
    labels.insert(labels::OS.into(), "linux".into());
    labels.insert(labels::INSTANCE_TYPE.into(), name.clone());
    if let Some((category, family, generation, size)) = name_parts(&name) {
        put(&mut labels, "instance-category", category);
        put(&mut labels, "instance-family", family);
        put(&mut labels, "instance-generation", generation);
        put(&mut labels, "instance-size", size);
    }
    put(&mut labels, "instance-cpu", vcpus);
    put(&mut labels, "instance-memory", memory_mib);
    put(&mut labels, "instance-pods", max_pods);
    if let Some(hypervisor) = info.hypervisor() {
        put(&mut labels, "instance-hypervisor", hypervisor.as_str());
    }
    if let Some(manufacturer) = info.processor_info().and_then(|p| p.manufacturer()) {
        put(&mut labels, "instance-cpu-manufacturer", manufacturer.to_lowercase());
    }
    if let Some(gpu) = info.gpu_info().and_then(|g| g.gpus().first()) {
        let count = i64::from(gpu.count().unwrap_or(0));
        let manufacturer = gpu.manufacturer().unwrap_or_default().to_lowercase();
        let resource = if manufacturer == "amd" { resources::AMD_GPU } else { resources::NVIDIA_GPU };
        capacity.set(resource, count);
        put(&mut labels, "instance-gpu-name", gpu.name().unwrap_or_default().to_lowercase());
        put(&mut labels, "instance-gpu-manufacturer", manufacturer);
        put(&mut labels, "instance-gpu-count", count);
        if let Some(mib) = gpu.memory_info().and_then(|m| m.size_in_mib()) {
            put(&mut labels, "instance-gpu-memory", mib);
        }
    }
    if let Some(neuron) = info.neuron_info().and_then(|n| n.neuron_devices().first()) {
        let count = i64::from(neuron.count().unwrap_or(0));
        capacity.set(resources::AWS_NEURON, count);
        put(&mut labels, "instance-accelerator-name", neuron.name().unwrap_or_default().to_lowercase());
        put(&mut labels, "instance-accelerator-count", count);
    }
    if let Some(gb) = info.instance_storage_info().and_then(|s| s.total_size_in_gb()) {
        put(&mut labels, "instance-local-nvme", gb);
    }
    Some(InstanceType { name, capacity, labels, offerings: Vec::new() })
}

/// The latest spot price per (type, zone).
pub fn latest_spot_prices(history: &[SpotPrice]) -> BTreeMap<(String, String), f64> {
    let mut latest: BTreeMap<(String, String), (i64, f64)> = BTreeMap::new();
    for entry in history {
        let (Some(kind), Some(zone), Some(price)) =
            (entry.instance_type(), entry.availability_zone(), entry.spot_price())
        else {
            continue;
        };
        let Ok(price) = price.parse::<f64>() else { continue };
        let at = entry.timestamp().map(|t| t.secs()).unwrap_or(i64::MIN);
        let key = (kind.as_str().to_string(), zone.to_string());
        if latest.get(&key).is_none_or(|(seen, _)| at >= *seen) {
            latest.insert(key, (at, price));
        }
    }
    latest.into_iter().map(|(k, (_, price))| (k, price)).collect()
}

/// Builds the instance types with one offering per zone × capacity type that EC2 offers and that has a price.
pub fn build(
    infos: &[InstanceTypeInfo],
    offerings: &[InstanceTypeOffering],
    spot_prices: &BTreeMap<(String, String), f64>,
    on_demand_prices: &HashMap<String, f64>,
) -> Vec<InstanceType> {
    let mut zones: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for o in offerings {
        if let (Some(kind), Some(zone)) = (o.instance_type(), o.location()) {
            zones.entry(kind.as_str()).or_default().insert(zone);
        }
    }
    let mut types = Vec::new();
    for info in infos {
        let Some(mut kind) = convert(info) else { continue };
        let usage = info.supported_usage_classes();
        let on_demand_price = on_demand_prices.get(&kind.name).copied();
        for zone in zones.get(kind.name.as_str()).into_iter().flatten() {
            if let Some(price) = on_demand_price.filter(|_| usage.contains(&UsageClassType::OnDemand)) {
                kind.offerings.push(Offering {
                    zone: zone.to_string(),
                    capacity_type: CapacityType::OnDemand,
                    price,
                    available: true,
                });
            }
            let spot = spot_prices.get(&(kind.name.clone(), zone.to_string()));
            if let Some(&price) = spot.filter(|_| usage.contains(&UsageClassType::Spot)) {
                kind.offerings.push(Offering {
                    zone: zone.to_string(),
                    capacity_type: CapacityType::Spot,
                    price,
                    available: true,
                });
            }
        }
        types.push(kind);
    }
    types
}

/// (type, zone, capacity type) → when it becomes available again.
#[derive(Debug, Default)]
pub struct UnavailableOfferings {
    until: HashMap<(String, String, CapacityType), Timestamp>,
}

impl UnavailableOfferings {
    pub fn mark(
        &mut self,
        kind: &str,
        zone: &str,
        capacity: CapacityType,
        now: Timestamp,
        ttl: SignedDuration,
    ) {
        self.until.insert((kind.to_string(), zone.to_string(), capacity), now + ttl);
    }

    pub fn is_unavailable(&self, kind: &str, zone: &str, capacity: CapacityType, now: Timestamp) -> bool {
        self.until.get(&(kind.to_string(), zone.to_string(), capacity)).is_some_and(|until| now < *until)
    }

    pub fn expire(&mut self, now: Timestamp) {
        self.until.retain(|_, until| now < *until);
    }

    /// A catalog whose offerings reflect the cache at `now`.
    pub fn apply(&self, types: &[InstanceType], now: Timestamp) -> Catalog {
        Catalog::new(
            types
                .iter()
                .map(|t| {
                    let mut t = t.clone();
                    for o in &mut t.offerings {
                        o.available = !self.is_unavailable(&t.name, &o.zone, o.capacity_type, now);
                    }
                    t
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{
        GpuDeviceInfo, GpuInfo, InstanceType as Ec2Type, MemoryInfo, NetworkInfo, ProcessorInfo, VCpuInfo,
    };
    use aws_smithy_types::DateTime;

    use super::*;

    fn info(name: &str, vcpus: i32, mib: i64, arch: ArchitectureType) -> InstanceTypeInfo {
        InstanceTypeInfo::builder()
            .instance_type(Ec2Type::from(name))
            .v_cpu_info(VCpuInfo::builder().default_v_cpus(vcpus).build())
            .memory_info(MemoryInfo::builder().size_in_mib(mib).build())
            .processor_info(
                ProcessorInfo::builder().supported_architectures(arch).manufacturer("Intel").build(),
            )
            .network_info(
                NetworkInfo::builder().maximum_network_interfaces(3).ipv4_addresses_per_interface(10).build(),
            )
            .supported_usage_classes(UsageClassType::OnDemand)
            .supported_usage_classes(UsageClassType::Spot)
            .build()
    }

    #[test]
    fn converts_capacity_and_labels() {
        let t = convert(&info("m5.large", 2, 8192, ArchitectureType::X8664)).unwrap();
        assert_eq!(t.capacity.cpu, 2000);
        assert_eq!(t.capacity.memory, 8192 * MIB);
        assert_eq!(t.capacity.pods, 29);
        assert_eq!(t.labels[labels::ARCH], "amd64");
        assert_eq!(t.labels["karpenter.k8s.aws/instance-family"], "m5");
        assert_eq!(t.labels["instance.ballast.dev/instance-generation"], "5");
        assert_eq!(t.labels["instance.ballast.dev/instance-size"], "large");
        assert_eq!(t.labels["instance.ballast.dev/instance-cpu-manufacturer"], "intel");
        assert_eq!(name_parts("inf2.xlarge"), Some(("inf", "inf2", "2", "xlarge")));
        assert_eq!(name_parts("c6gn.16xlarge"), Some(("c", "c6gn", "6", "16xlarge")));
    }

    #[test]
    fn gpus_become_extended_resources() {
        let gpu = GpuInfo::builder()
            .gpus(GpuDeviceInfo::builder().name("A10G").manufacturer("NVIDIA").count(1).build())
            .build();
        let mut i = info("g5.xlarge", 4, 16384, ArchitectureType::X8664);
        i.gpu_info = Some(gpu);
        let t = convert(&i).unwrap();
        assert_eq!(t.capacity.get(resources::NVIDIA_GPU), 1);
        assert_eq!(t.labels["instance.ballast.dev/instance-gpu-name"], "a10g");
    }

    #[test]
    fn latest_spot_price_wins() {
        let entry = |price: &str, secs: i64| {
            SpotPrice::builder()
                .instance_type(Ec2Type::from("m5.large"))
                .availability_zone("us-east-1a")
                .spot_price(price)
                .timestamp(DateTime::from_secs(secs))
                .build()
        };
        let prices = latest_spot_prices(&[entry("0.05", 100), entry("0.04", 200), entry("0.06", 150)]);
        assert_eq!(prices[&("m5.large".to_string(), "us-east-1a".to_string())], 0.04);
    }

    #[test]
    fn offerings_need_a_zone_and_a_price() {
        let offering = |zone: &str| {
            InstanceTypeOffering::builder().instance_type(Ec2Type::from("m5.large")).location(zone).build()
        };
        let on_demand = HashMap::from([("m5.large".to_string(), 0.096)]);
        let spot = BTreeMap::from([(("m5.large".to_string(), "us-east-1b".to_string()), 0.03)]);
        let found = build(
            &[info("m5.large", 2, 8192, ArchitectureType::X8664)],
            &[offering("us-east-1a"), offering("us-east-1b")],
            &spot,
            &on_demand,
        );
        let got: Vec<_> =
            found[0].offerings.iter().map(|o| (o.zone.as_str(), o.capacity_type, o.price)).collect();
        assert_eq!(
            got,
            [
                ("us-east-1a", CapacityType::OnDemand, 0.096),
                ("us-east-1b", CapacityType::OnDemand, 0.096),
                ("us-east-1b", CapacityType::Spot, 0.03)
            ]
        );
    }

    #[test]
    fn unavailable_offerings_expire() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut cache = UnavailableOfferings::default();
        cache.mark("m5.large", "us-east-1a", CapacityType::Spot, now, SignedDuration::from_mins(3));
        assert!(cache.is_unavailable("m5.large", "us-east-1a", CapacityType::Spot, now));
        assert!(!cache.is_unavailable("m5.large", "us-east-1a", CapacityType::OnDemand, now));
        let later = now + SignedDuration::from_mins(3);
        assert!(!cache.is_unavailable("m5.large", "us-east-1a", CapacityType::Spot, later));
        cache.expire(later);
        assert!(cache.until.is_empty());
    }
}
