//! The instance-type catalog: the bundled EC2 data and the user catalog file format.
//!
//! # Bundled catalog
//! [`Catalog::bundled`] reads `data/ec2-instance-types-us-east-1.json` (EC2 specs, zones and Linux on-demand
//! list prices; see the file's `sources`), embedded in the binary:
//! - capacity: vCPU in millicores, memory MiB in bytes, pods = the ENI formula value (`max_pods_eni`),
//!   GPUs as `nvidia.com/gpu` / `amd.com/gpu` by manufacturer, neuron devices as `aws.amazon.com/neuron`,
//!   ephemeral storage = the 20 Gi default root volume;
//! - labels: `kubernetes.io/arch` (`amd64` | `arm64`), `kubernetes.io/os: linux`,
//!   `node.kubernetes.io/instance-type`, and the instance labels under both `instance.ballast.dev/` and
//!   `karpenter.k8s.aws/`: category (letters before the generation digit: `c`, `inf`, `u`), family (`c5`),
//!   generation (`5`), size (`large`), cpu (vCPUs), cpu-manufacturer (`intel`, `amd`, `aws`), memory (MiB),
//!   pods, hypervisor (`nitro` | `xen`, absent on bare metal), gpu-name/-manufacturer/-count/-memory (MiB),
//!   accelerator-name/-count for neuron devices (`inferentia`, `inferentia2`, `trainium`, `trainium2`),
//!   local-nvme (GB of local instance storage; the data does not tell NVMe from HDD), network-bandwidth (Mbps,
//!   only where the data gives a fixed figure like `25 Gigabit`, not `Up to …` or `High`).
//!   Encryption in transit is not in the data, so that label is never set.
//! - offerings: on-demand in every listed zone at the list price; spot in every listed zone (for types that
//!   support spot) at a synthetic price, because spot prices change hourly and are not in the data:
//!   `on_demand × (0.30 + 0.40 × u)` with `u = splitmix64(fnv1a64(seed ‖ type ‖ 0xff ‖ zone)) / 2⁶⁴`, rounded to
//!   1e-6 $/h, with the fixed seed [`BUNDLED_SPOT_SEED`] so every run and every machine agrees.
//! - Types with no on-demand price or no zones get no offerings (they can never be launched). macOS types
//!   (`mac*`, arch `*_mac`) are left out: Kubernetes nodes cannot run them.
//!
//! # Catalog file
//! [`Catalog::from_file`] reads YAML (or JSON, which is YAML) so a scenario can ask "what if only these
//! types were available?". See `examples/catalog-small.yaml`:
//! ```yaml
//! instanceTypes:
//!   - name: c5.large          # required, unique
//!     vcpu: 2                 # required, integer > 0
//!     memory: 4Gi             # required quantity: EC2 memory, before VM overhead
//!     architecture: amd64     # required: amd64 | arm64
//!     maxPods: 29             # optional, default 110 (the kubelet's default)
//!     ephemeralStorage: 20Gi  # optional, default 20Gi (the root volume)
//!     resources:              # optional extended resources: nvidia.com/gpu, aws.amazon.com/neuron, …
//!       nvidia.com/gpu: 1
//!     labels:                 # optional, merged over the derived labels
//!       example.com/tier: gold
//!     offerings:              # zone × capacity type (spot | on-demand) with $/h; at least one
//!       - {zone: us-east-1a, capacityType: on-demand, price: 0.085}
//! ```
//! The derived labels are the same as for the bundled catalog where the entry says enough: arch, os,
//! instance-type, cpu, memory, pods, GPU count, and category/family/generation/size when the name is an
//! EC2-style name.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::{Arc, OnceLock},
};

use serde::{Deserialize, Serialize};

use super::{CapacityType, InstanceType, Offering};
use crate::{
    api::labels,
    model::Labels,
    resources::{self, AMD_GPU, AWS_NEURON, NVIDIA_GPU, Resources},
};

const MI: i64 = 1 << 20;
const GI: i64 = 1 << 30;

/// The default root volume: what a node has as `ephemeral-storage` capacity.
pub const DEFAULT_EPHEMERAL_STORAGE: i64 = 20 * GI;
/// Seed of the bundled catalog's synthetic spot prices ("ballast" in ASCII).
pub const BUNDLED_SPOT_SEED: u64 = 0x0062_616c_6c61_7374;

const BUNDLED_EC2_JSON: &str = include_str!("../../data/ec2-instance-types-us-east-1.json");
const BUNDLED_SOURCE: &str = "bundled data/ec2-instance-types-us-east-1.json";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read catalog file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("failed to parse catalog {source_name}: {source}")]
    Parse { source_name: String, source: serde_yaml_ng::Error },
    #[error("failed to parse catalog {source_name}: {source}")]
    ParseJson { source_name: String, source: serde_json::Error },
    #[error("invalid catalog {source_name}: instanceTypes[{index}] ({name}): {field}: {reason}")]
    Invalid { source_name: String, index: usize, name: String, field: String, reason: String },
    #[error("invalid catalog {0}: instanceTypes must list at least one instance type")]
    Empty(String),
    #[error("failed to take a catalog subset: unknown instance type {0:?}")]
    UnknownType(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Sorted by name.
    pub instance_types: Vec<Arc<InstanceType>>,
}

impl Catalog {
    pub fn new(mut instance_types: Vec<InstanceType>) -> Self {
        instance_types.sort_by(|a, b| a.name.cmp(&b.name));
        Self { instance_types: instance_types.into_iter().map(Arc::new).collect() }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<InstanceType>> {
        self.instance_types
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.instance_types[i])
    }

    /// The embedded us-east-1 EC2 catalog, parsed once per process.
    pub fn bundled() -> Arc<Catalog> {
        static BUNDLED: OnceLock<Arc<Catalog>> = OnceLock::new();
        BUNDLED
            .get_or_init(|| {
                // The embedded file is tested; failing here means the binary itself is broken.
                Arc::new(Self::from_ec2_json(BUNDLED_SOURCE, BUNDLED_EC2_JSON, BUNDLED_SPOT_SEED).expect(
                    "the bundled EC2 catalog parses (checked by cloud::catalog::tests::bundled_catalog_parses)",
                ))
            })
            .clone()
    }

    /// Builds a catalog from EC2 data in the bundled file's format, with spot prices derived from `spot_seed`.
    pub fn from_ec2_json(source_name: &str, json: &str, spot_seed: u64) -> Result<Self> {
        let data: Ec2Data = serde_json::from_str(json)
            .map_err(|source| Error::ParseJson { source_name: source_name.to_string(), source })?;
        Ok(Self::new(data.instance_types.iter().filter_map(|t| t.to_instance_type(spot_seed)).collect()))
    }

    /// Reads a user catalog file (YAML or JSON); errors name the file, the entry and the field.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Read { path: path.display().to_string(), source })?;
        Self::from_yaml_str(&path.display().to_string(), &text)
    }

    /// Parses a user catalog; `source_name` (a file name) is used in errors.
    pub fn from_yaml_str(source_name: &str, text: &str) -> Result<Self> {
        let file: CatalogFile = serde_yaml_ng::from_str(text)
            .map_err(|source| Error::Parse { source_name: source_name.to_string(), source })?;
        if file.instance_types.is_empty() {
            return Err(Error::Empty(source_name.to_string()));
        }
        let mut seen = BTreeSet::new();
        let mut types = Vec::with_capacity(file.instance_types.len());
        for (index, entry) in file.instance_types.iter().enumerate() {
            let invalid = |field: &str, reason: String| Error::Invalid {
                source_name: source_name.to_string(),
                index,
                name: entry.name.clone(),
                field: field.to_string(),
                reason,
            };
            if !seen.insert(entry.name.as_str()) {
                return Err(invalid("name", "duplicate instance type name".into()));
            }
            types.push(entry.to_instance_type().map_err(|(field, reason)| invalid(&field, reason))?);
        }
        Ok(Self::new(types))
    }

    /// Only the named types; an unknown name is an error (a typo should not silently shrink the catalog).
    pub fn subset<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut picked = BTreeMap::new();
        for name in names {
            let t = self.get(name).ok_or_else(|| Error::UnknownType(name.to_string()))?;
            picked.insert(name, t.clone());
        }
        Ok(Self { instance_types: picked.into_values().collect() })
    }
}

// === Labels shared by both sources ===

/// What we know about a type, from either source, to derive its labels.
#[derive(Default)]
struct Facts<'a> {
    name: &'a str,
    arch: &'a str,
    vcpu: i64,
    memory_mib: i64,
    pods: i64,
    cpu_manufacturer: Option<String>,
    hypervisor: Option<&'a str>,
    gpu: Option<GpuFacts>,
    neuron_devices: i64,
    local_storage_gb: i64,
    network_mbps: Option<i64>,
}

struct GpuFacts {
    name: String,
    manufacturer: String,
    count: i64,
    memory_mib: Option<i64>,
}

/// `c5.large` → (category `c`, family `c5`, generation `5`, size `large`), following Karpenter's
/// `(^[a-z]+)(-[0-9]+tb)?([0-9]+).*\.` scheme (`u-6tb1.metal` → `u`, `1`).
fn parse_type_name(name: &str) -> Option<(&str, &str, &str, &str)> {
    let (family, size) = name.split_once('.')?;
    let category_len = family.bytes().take_while(u8::is_ascii_lowercase).count();
    if category_len == 0 {
        return None;
    }
    let (category, mut rest) = family.split_at(category_len);
    if let Some(after_dash) = rest.strip_prefix('-') {
        let digits = after_dash.bytes().take_while(u8::is_ascii_digit).count();
        rest = after_dash[digits..].strip_prefix("tb")?;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || size.is_empty() {
        return None;
    }
    Some((category, family, &rest[..digits], size))
}

fn set_instance_label(labels: &mut Labels, suffix: &str, value: impl ToString) {
    let value = value.to_string();
    labels.insert(format!("{}{suffix}", labels::INSTANCE_LABEL_PREFIX), value.clone());
    labels.insert(format!("{}{suffix}", labels::KARPENTER_AWS_PREFIX), value);
}

impl Facts<'_> {
    fn labels(&self) -> Labels {
        let mut l = Labels::new();
        l.insert(labels::ARCH.into(), self.arch.into());
        l.insert(labels::OS.into(), "linux".into());
        l.insert(labels::INSTANCE_TYPE.into(), self.name.into());
        if let Some((category, family, generation, size)) = parse_type_name(self.name) {
            set_instance_label(&mut l, "instance-category", category);
            set_instance_label(&mut l, "instance-family", family);
            set_instance_label(&mut l, "instance-generation", generation);
            set_instance_label(&mut l, "instance-size", size);
            if self.neuron_devices > 0 {
                let accelerator = match (category, generation) {
                    ("inf", "1") => "inferentia".to_string(),
                    ("inf", g) => format!("inferentia{g}"),
                    ("trn", "1") => "trainium".to_string(),
                    ("trn", g) => format!("trainium{g}"),
                    (other, _) => other.to_string(),
                };
                set_instance_label(&mut l, "instance-accelerator-name", accelerator);
            }
        }
        set_instance_label(&mut l, "instance-cpu", self.vcpu);
        if let Some(m) = &self.cpu_manufacturer {
            set_instance_label(&mut l, "instance-cpu-manufacturer", m);
        }
        set_instance_label(&mut l, "instance-memory", self.memory_mib);
        if self.pods > 0 {
            set_instance_label(&mut l, "instance-pods", self.pods);
        }
        if let Some(h) = self.hypervisor {
            set_instance_label(&mut l, "instance-hypervisor", h);
        }
        if let Some(gpu) = &self.gpu {
            set_instance_label(&mut l, "instance-gpu-name", &gpu.name);
            set_instance_label(&mut l, "instance-gpu-manufacturer", &gpu.manufacturer);
            set_instance_label(&mut l, "instance-gpu-count", gpu.count);
            if let Some(m) = gpu.memory_mib {
                set_instance_label(&mut l, "instance-gpu-memory", m);
            }
        }
        if self.neuron_devices > 0 {
            set_instance_label(&mut l, "instance-accelerator-count", self.neuron_devices);
        }
        if self.local_storage_gb > 0 {
            set_instance_label(&mut l, "instance-local-nvme", self.local_storage_gb);
        }
        if let Some(mbps) = self.network_mbps {
            set_instance_label(&mut l, "instance-network-bandwidth", mbps);
        }
        l
    }
}

// === Bundled EC2 data ===

#[derive(Deserialize)]
struct Ec2Data {
    instance_types: Vec<Ec2Type>,
}

#[derive(Deserialize)]
struct Ec2Type {
    name: String,
    vcpu: i64,
    memory_mib: i64,
    arch: Vec<String>,
    cpu_manufacturer: String,
    hypervisor: Option<String>,
    usage_classes: Vec<String>,
    max_pods_eni: i64,
    network_performance: String,
    gpu: Option<Ec2Gpu>,
    neuron_devices: i64,
    local_storage_gb: i64,
    on_demand_usd_per_hour: Option<f64>,
    zones: Vec<String>,
}

#[derive(Deserialize)]
struct Ec2Gpu {
    count: i64,
    manufacturer: String,
    name: String,
    memory_mib: Option<i64>,
}

/// `25 Gigabit` → 25000, `4x 100 Gigabit` → 400000; `Up to 10 Gigabit`, `High` → none (no baseline figure).
fn network_mbps(performance: &str) -> Option<i64> {
    let gbit = performance.strip_suffix(" Gigabit")?;
    let (links, per_link) = match gbit.split_once("x ") {
        Some((n, per)) => (n.parse::<f64>().ok()?, per),
        None => (1.0, gbit),
    };
    let per_link: f64 = per_link.parse().ok()?;
    Some((links * per_link * 1000.0).round() as i64)
}

impl Ec2Type {
    fn kube_arch(&self) -> Option<&'static str> {
        if self.arch.iter().any(|a| a == "arm64") {
            Some("arm64")
        } else if self.arch.iter().any(|a| a == "x86_64") {
            Some("amd64")
        } else {
            None // macOS-only (`x86_64_mac`, `arm64_mac`)
        }
    }

    fn to_instance_type(&self, spot_seed: u64) -> Option<InstanceType> {
        let arch = self.kube_arch()?;
        let mut capacity = Resources {
            cpu: self.vcpu * 1000,
            memory: self.memory_mib * MI,
            ephemeral_storage: DEFAULT_EPHEMERAL_STORAGE,
            pods: self.max_pods_eni,
            ..Resources::default()
        };
        let gpu = self.gpu.as_ref().map(|g| GpuFacts {
            name: g.name.to_lowercase(),
            manufacturer: g.manufacturer.to_lowercase(),
            count: g.count,
            memory_mib: g.memory_mib,
        });
        if let Some(g) = &gpu {
            match g.manufacturer.as_str() {
                "nvidia" => capacity.set(NVIDIA_GPU, g.count),
                "amd" => capacity.set(AMD_GPU, g.count),
                _ => {} // other accelerators have no device plugin resource we know of
            }
        }
        capacity.set(AWS_NEURON, self.neuron_devices);
        let facts = Facts {
            name: &self.name,
            arch,
            vcpu: self.vcpu,
            memory_mib: self.memory_mib,
            pods: self.max_pods_eni,
            cpu_manufacturer: Some(self.cpu_manufacturer.to_lowercase()),
            hypervisor: self.hypervisor.as_deref(),
            gpu,
            neuron_devices: self.neuron_devices,
            local_storage_gb: self.local_storage_gb,
            network_mbps: network_mbps(&self.network_performance),
        };
        let mut offerings = Vec::new();
        if let Some(price) = self.on_demand_usd_per_hour {
            let supports = |class: &str| self.usage_classes.iter().any(|c| c == class);
            for zone in &self.zones {
                if supports("spot") {
                    let price = synthetic_spot_price(&self.name, zone, price, spot_seed);
                    offerings.push(offering(zone, CapacityType::Spot, price));
                }
                if supports("on-demand") {
                    offerings.push(offering(zone, CapacityType::OnDemand, price));
                }
            }
        }
        Some(InstanceType { name: self.name.clone(), capacity, labels: facts.labels(), offerings })
    }
}

fn offering(zone: &str, capacity_type: CapacityType, price: f64) -> Offering {
    Offering { zone: zone.to_string(), capacity_type, price, available: true }
}

fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable stand-in for a spot price: 30–70 % of on-demand, fixed per (seed, type, zone). Uses its own
/// hash rather than `std`'s, whose output may change between Rust releases.
pub fn synthetic_spot_price(instance_type: &str, zone: &str, on_demand: f64, seed: u64) -> f64 {
    let h = splitmix64(fnv1a64(&[&seed.to_le_bytes(), instance_type.as_bytes(), &[0xff], zone.as_bytes()]));
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    (on_demand * (0.30 + 0.40 * u) * 1e6).round() / 1e6
}

// === User catalog file ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CatalogFile {
    instance_types: Vec<CatalogEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CatalogEntry {
    name: String,
    vcpu: i64,
    memory: crate::api::quantity::Quantity,
    architecture: String,
    #[serde(default)]
    max_pods: Option<i64>,
    #[serde(default)]
    ephemeral_storage: Option<crate::api::quantity::Quantity>,
    #[serde(default)]
    resources: BTreeMap<String, crate::api::quantity::Quantity>,
    #[serde(default)]
    labels: Labels,
    offerings: Vec<OfferingEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OfferingEntry {
    zone: String,
    capacity_type: CapacityType,
    price: f64,
}

impl CatalogEntry {
    /// On error, (field, reason).
    fn to_instance_type(&self) -> Result<InstanceType, (String, String)> {
        let fail = |field: &str, reason: String| (field.to_string(), reason);
        if self.name.is_empty() || self.name.contains(char::is_whitespace) {
            return Err(fail("name", "must be a non-empty name without spaces".into()));
        }
        if self.vcpu <= 0 {
            return Err(fail("vcpu", format!("{} must be a positive integer", self.vcpu)));
        }
        let memory =
            self.memory.parse(resources::MEMORY, "memory").map_err(|e| fail("memory", e.to_string()))?;
        if memory < MI {
            return Err(fail("memory", format!("{} is less than 1Mi", self.memory)));
        }
        if !matches!(self.architecture.as_str(), "amd64" | "arm64") {
            return Err(fail("architecture", format!("{:?} is not amd64 or arm64", self.architecture)));
        }
        let pods = self.max_pods.unwrap_or(crate::scheduling::allocatable::DEFAULT_MAX_PODS);
        if pods <= 0 {
            return Err(fail("maxPods", format!("{pods} must be positive")));
        }
        let ephemeral_storage = match &self.ephemeral_storage {
            Some(q) => q
                .parse(resources::EPHEMERAL_STORAGE, "ephemeralStorage")
                .map_err(|e| fail("ephemeralStorage", e.to_string()))?,
            None => DEFAULT_EPHEMERAL_STORAGE,
        };
        let mut capacity =
            Resources { cpu: self.vcpu * 1000, memory, ephemeral_storage, pods, ..Resources::default() };
        for (name, q) in &self.resources {
            let field = format!("resources.{name}");
            if matches!(name.as_str(), "cpu" | "memory" | "pods" | "ephemeral-storage") {
                return Err(fail(&field, "set it with vcpu, memory, maxPods or ephemeralStorage".into()));
            }
            let amount = q.parse(name, &field).map_err(|e| fail(&field, e.to_string()))?;
            capacity.set(name, amount);
        }
        if self.offerings.is_empty() {
            return Err(fail("offerings", "must list at least one zone × capacity type".into()));
        }
        let mut offerings = Vec::with_capacity(self.offerings.len());
        let mut seen = BTreeSet::new();
        for (i, o) in self.offerings.iter().enumerate() {
            if o.zone.is_empty() {
                return Err(fail(&format!("offerings[{i}].zone"), "must not be empty".into()));
            }
            if !o.price.is_finite() || o.price < 0.0 {
                return Err(fail(&format!("offerings[{i}].price"), format!("{} must be >= 0", o.price)));
            }
            if !seen.insert((o.zone.as_str(), o.capacity_type)) {
                let reason = format!("{} {} is listed twice", o.zone, o.capacity_type);
                return Err(fail(&format!("offerings[{i}]"), reason));
            }
            offerings.push(offering(&o.zone, o.capacity_type, o.price));
        }
        let gpu = [(NVIDIA_GPU, "nvidia"), (AMD_GPU, "amd")].into_iter().find_map(|(resource, maker)| {
            let count = capacity.get(resource);
            (count > 0).then(|| GpuFacts {
                name: String::new(),
                manufacturer: maker.into(),
                count,
                memory_mib: None,
            })
        });
        let facts = Facts {
            name: &self.name,
            arch: &self.architecture,
            vcpu: self.vcpu,
            memory_mib: memory / MI,
            pods,
            neuron_devices: capacity.get(AWS_NEURON),
            ..Facts::default()
        };
        let mut labels = facts.labels();
        if let Some(g) = gpu {
            set_instance_label(&mut labels, "instance-gpu-manufacturer", g.manufacturer);
            set_instance_label(&mut labels, "instance-gpu-count", g.count);
        }
        for (k, v) in &self.labels {
            if k.is_empty() {
                return Err(fail("labels", "label keys must not be empty".into()));
            }
            labels.insert(k.clone(), v.clone());
        }
        Ok(InstanceType { name: self.name.clone(), capacity, labels, offerings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label<'a>(t: &'a InstanceType, suffix: &str) -> Option<&'a str> {
        let ballast = t.labels.get(&format!("instance.ballast.dev/{suffix}")).map(String::as_str);
        let karpenter = t.labels.get(&format!("karpenter.k8s.aws/{suffix}")).map(String::as_str);
        assert_eq!(ballast, karpenter, "{suffix} is published under both prefixes");
        ballast
    }

    fn price(t: &InstanceType, zone: &str, ct: CapacityType) -> f64 {
        t.offerings.iter().find(|o| o.zone == zone && o.capacity_type == ct).unwrap().price
    }

    #[test]
    fn bundled_catalog_parses() {
        let c = Catalog::bundled();
        assert!(c.instance_types.len() > 1300, "{}", c.instance_types.len());
        assert!(c.instance_types.windows(2).all(|w| w[0].name < w[1].name), "sorted by name");
        assert!(c.get("mac1.metal").is_none(), "macOS types are left out");
        assert!(Arc::ptr_eq(&c, &Catalog::bundled()), "parsed once");
        for t in &c.instance_types {
            for key in t.labels.keys() {
                if let Some(suffix) = key.strip_prefix("karpenter.k8s.aws/") {
                    assert!(labels::INSTANCE_LABEL_SUFFIXES.contains(&suffix), "{key} on {}", t.name);
                }
            }
        }
    }

    #[test]
    fn seed_types_have_ec2_values_and_labels() {
        let c = Catalog::bundled();
        let c5 = c.get("c5.large").unwrap();
        assert_eq!(
            c5.capacity,
            Resources::new(2000, 4096 * MI).with("pods", 29).with("ephemeral-storage", 20 * GI)
        );
        assert_eq!(c5.labels[labels::ARCH], "amd64");
        assert_eq!(c5.labels[labels::OS], "linux");
        assert_eq!(c5.labels[labels::INSTANCE_TYPE], "c5.large");
        assert_eq!(label(c5, "instance-category"), Some("c"));
        assert_eq!(label(c5, "instance-family"), Some("c5"));
        assert_eq!(label(c5, "instance-generation"), Some("5"));
        assert_eq!(label(c5, "instance-size"), Some("large"));
        assert_eq!(label(c5, "instance-cpu"), Some("2"));
        assert_eq!(label(c5, "instance-cpu-manufacturer"), Some("intel"));
        assert_eq!(label(c5, "instance-memory"), Some("4096"));
        assert_eq!(label(c5, "instance-pods"), Some("29"));
        assert_eq!(label(c5, "instance-hypervisor"), Some("nitro"));
        assert_eq!(label(c5, "instance-network-bandwidth"), None, "'Up to 10 Gigabit' has no baseline");
        assert_eq!(price(c5, "us-east-1a", CapacityType::OnDemand), 0.085);
        // Five zones × {spot, on-demand}.
        assert_eq!(c5.offerings.len(), 10);

        let m5 = c.get("m5.large").unwrap();
        assert_eq!((m5.capacity.cpu, m5.capacity.memory, m5.capacity.pods), (2000, 8192 * MI, 29));
        assert_eq!(price(m5, "us-east-1f", CapacityType::OnDemand), 0.096);
        let m5x = c.get("m5.xlarge").unwrap();
        assert_eq!((m5x.capacity.cpu, m5x.capacity.memory, m5x.capacity.pods), (4000, 16384 * MI, 58));
        assert_eq!(label(m5x, "instance-size"), Some("xlarge"));
        assert_eq!(price(m5x, "us-east-1c", CapacityType::OnDemand), 0.192);
    }

    #[test]
    fn accelerators_and_odd_names() {
        let c = Catalog::bundled();
        let g4 = c.get("g4dn.12xlarge").unwrap();
        assert_eq!(g4.capacity.get(NVIDIA_GPU), 4);
        assert_eq!(label(g4, "instance-gpu-name"), Some("t4"));
        assert_eq!(label(g4, "instance-gpu-manufacturer"), Some("nvidia"));
        assert_eq!(label(g4, "instance-gpu-count"), Some("4"));
        assert_eq!(label(g4, "instance-gpu-memory"), Some("16384"));
        assert_eq!(label(g4, "instance-local-nvme"), Some("900"));
        assert_eq!(label(g4, "instance-network-bandwidth"), Some("50000"));
        let inf = c.get("inf1.xlarge").unwrap();
        assert_eq!(inf.capacity.get(AWS_NEURON), 1);
        assert_eq!(label(inf, "instance-category"), Some("inf"));
        assert_eq!(label(inf, "instance-accelerator-name"), Some("inferentia"));
        assert_eq!(label(inf, "instance-accelerator-count"), Some("1"));
        let graviton = c.get("c6gn.medium").unwrap();
        assert_eq!(graviton.labels[labels::ARCH], "arm64");
        assert_eq!(label(graviton, "instance-cpu-manufacturer"), Some("aws"));
        assert_eq!(parse_type_name("u-6tb1.metal"), Some(("u", "u-6tb1", "1", "metal")));
        assert_eq!(parse_type_name("m7i-flex.large"), Some(("m", "m7i-flex", "7", "large")));
        assert_eq!(parse_type_name("weird"), None);
        assert_eq!(network_mbps("4x 100 Gigabit"), Some(400_000));
        assert_eq!(network_mbps("High"), None);
    }

    #[test]
    fn types_without_price_or_spot_support() {
        let data = r#"{"instance_types": [
            {"name":"x1.big","vcpu":4,"memory_mib":8192,"arch":["x86_64"],"cpu_manufacturer":"Intel",
             "hypervisor":"nitro","usage_classes":["on-demand"],"max_pods_eni":58,"network_performance":"10 Gigabit",
             "gpu":null,"neuron_devices":0,"local_storage_gb":0,"on_demand_usd_per_hour":0.2,"zones":["z1","z2"]},
            {"name":"x1.free","vcpu":4,"memory_mib":8192,"arch":["x86_64"],"cpu_manufacturer":"Intel",
             "hypervisor":null,"usage_classes":["on-demand","spot"],"max_pods_eni":58,"network_performance":"High",
             "gpu":null,"neuron_devices":0,"local_storage_gb":0,"on_demand_usd_per_hour":null,"zones":["z1"]}]}"#;
        let c = Catalog::from_ec2_json("test", data, 1).unwrap();
        let big = c.get("x1.big").unwrap();
        assert_eq!(big.offerings.len(), 2);
        assert!(big.offerings.iter().all(|o| o.capacity_type == CapacityType::OnDemand));
        assert!(c.get("x1.free").unwrap().offerings.is_empty(), "no on-demand price: not launchable");
    }

    #[test]
    fn spot_prices_are_deterministic_and_in_range() {
        let a = Catalog::from_ec2_json("a", BUNDLED_EC2_JSON, BUNDLED_SPOT_SEED).unwrap();
        assert_eq!(&a, Catalog::bundled().as_ref(), "same seed, same catalog");
        let other = Catalog::from_ec2_json("b", BUNDLED_EC2_JSON, 7).unwrap();
        let m5 = a.get("m5.large").unwrap();
        let spot = price(m5, "us-east-1a", CapacityType::Spot);
        assert!((0.3 * 0.096..=0.7 * 0.096).contains(&spot), "{spot}");
        assert_ne!(spot, price(other.get("m5.large").unwrap(), "us-east-1a", CapacityType::Spot));
        assert_ne!(spot, price(m5, "us-east-1b", CapacityType::Spot), "zones differ");
        assert_eq!(spot, synthetic_spot_price("m5.large", "us-east-1a", 0.096, BUNDLED_SPOT_SEED));
        // Pinned so a change of formula is a deliberate decision (it changes every simulation's output).
        assert_eq!(synthetic_spot_price("m5.large", "us-east-1a", 1.0, 42), 0.652_139);
        for t in &a.instance_types {
            for o in t.offerings.iter().filter(|o| o.capacity_type == CapacityType::Spot) {
                let od = price(t, &o.zone, CapacityType::OnDemand);
                assert!(o.price >= 0.3 * od - 1e-6 && o.price <= 0.7 * od + 1e-6, "{} {}", t.name, o.zone);
            }
        }
    }

    #[test]
    fn example_catalog_file_loads() {
        let c =
            Catalog::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/catalog-small.yaml")).unwrap();
        let names: Vec<_> = c.instance_types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["c5.large", "g4dn.xlarge", "m5.large", "m6g.large"]);
        let c5 = c.get("c5.large").unwrap();
        assert_eq!(
            c5.capacity,
            Resources::new(2000, 4 * GI).with("pods", 29).with("ephemeral-storage", 20 * GI)
        );
        assert_eq!(label(c5, "instance-family"), Some("c5"));
        assert_eq!(c5.labels["example.com/tier"], "standard");
        let gpu = c.get("g4dn.xlarge").unwrap();
        assert_eq!(gpu.capacity.get(NVIDIA_GPU), 1);
        assert_eq!(label(gpu, "instance-gpu-count"), Some("1"));
        assert_eq!(gpu.offerings.len(), 2);
        assert_eq!(c.get("m6g.large").unwrap().labels[labels::ARCH], "arm64");
    }

    #[test]
    fn catalog_file_errors_name_file_entry_and_field() {
        let entry = |extra: &str| {
            format!(
                "instanceTypes:\n  - name: ok.large\n    vcpu: 2\n    memory: 4Gi\n    architecture: amd64\n    \
                 offerings: [{{zone: a, capacityType: spot, price: 0.1}}]\n  - name: bad.large\n{extra}"
            )
        };
        let base = "    vcpu: 2\n    memory: 4Gi\n    architecture: amd64\n";
        let offer = "    offerings: [{zone: a, capacityType: on-demand, price: 0.1}]\n";
        let cases = [
            (format!("    vcpu: 0\n    memory: 4Gi\n    architecture: amd64\n{offer}"), "vcpu"),
            (format!("    vcpu: 2\n    memory: 4Gx\n    architecture: amd64\n{offer}"), "memory"),
            (format!("    vcpu: 2\n    memory: 4Gi\n    architecture: s390x\n{offer}"), "architecture"),
            (format!("{base}    resources: {{nvidia.com/gpu: one}}\n{offer}"), "resources.nvidia.com/gpu"),
            (format!("{base}    resources: {{cpu: 1}}\n{offer}"), "resources.cpu"),
            (
                format!("{base}    offerings: [{{zone: a, capacityType: spot, price: -1}}]\n"),
                "offerings[0].price",
            ),
            (format!("{base}    offerings: []\n"), "offerings"),
            (
                format!(
                    "{base}    offerings: [{{zone: a, capacityType: spot, price: 1}}, {{zone: a, capacityType: spot, price: 2}}]\n"
                ),
                "offerings[1]",
            ),
        ];
        for (extra, field) in cases {
            let msg = Catalog::from_yaml_str("my-catalog.yaml", &entry(&extra)).unwrap_err().to_string();
            assert!(msg.contains("my-catalog.yaml"), "{msg}");
            assert!(msg.contains("instanceTypes[1] (bad.large)"), "{msg}");
            assert!(msg.contains(&format!(": {field}:")), "{field}: {msg}");
        }
        // Structural errors come from the parser with their path.
        let msg =
            Catalog::from_yaml_str("f.yaml", &entry(&format!("{base}{offer}    gpus: 1\n"))).unwrap_err();
        assert!(msg.to_string().contains("f.yaml") && msg.to_string().contains("gpus"), "{msg}");
        let msg = Catalog::from_yaml_str("f.yaml", &entry("    vcpu: 2\n")).unwrap_err().to_string();
        assert!(msg.contains("instanceTypes[1]") && msg.contains("memory"), "{msg}");
        let msg = Catalog::from_yaml_str(
            "f.yaml",
            &entry(&format!("{base}    offerings: [{{zone: a, capacityType: reserved, price: 1}}]\n")),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("reserved"), "{msg}");
        let dup = entry(&format!("{base}{offer}")).replace("bad.large", "ok.large");
        let msg = Catalog::from_yaml_str("f.yaml", &dup).unwrap_err().to_string();
        assert!(msg.contains("name: duplicate"), "{msg}");
        assert!(matches!(Catalog::from_yaml_str("f.yaml", "instanceTypes: []"), Err(Error::Empty(_))));
        let msg = Catalog::from_file("/nonexistent/catalog.yaml").unwrap_err().to_string();
        assert!(msg.contains("/nonexistent/catalog.yaml"), "{msg}");
    }

    #[test]
    fn subset_keeps_named_types_and_rejects_unknown_names() {
        let c = Catalog::bundled();
        let s = c.subset(["m5.xlarge", "c5.large", "m5.large"]).unwrap();
        let names: Vec<_> = s.instance_types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["c5.large", "m5.large", "m5.xlarge"]);
        assert!(Arc::ptr_eq(&s.instance_types[0], c.get("c5.large").unwrap()), "shares the types");
        let err = c.subset(["c5.large", "c5.lrage"]).unwrap_err();
        assert!(err.to_string().contains("c5.lrage"), "{err}");
    }
}
