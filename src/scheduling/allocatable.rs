//! What a node of an instance type offers to pods: its capacity minus what the hypervisor, the kubelet and
//! the system keep, following Karpenter's AWS provider (`pkg/providers/instancetype/types.go`):
//!
//! - memory capacity = EC2 memory − `ceil(memory × VM overhead %)` in whole MiB (default 7.5 %);
//! - max pods = kubelet `maxPods` if set, else the ENI-limited value in the catalog (110 when the catalog has
//!   none), then `min(podsPerCore × vCPU, that)`;
//! - kube-reserved defaults (EKS): cpu 6 % of the first core, 1 % of the second, 0.5 % of cores 3–4, 0.25 %
//!   above; memory `11 MiB × maxPods + 255 MiB`; ephemeral-storage 1 Gi. `kubeReserved` replaces them
//!   resource by resource;
//! - system-reserved is whatever `systemReserved` says (nothing by default);
//! - the hard eviction threshold: `memory.available` 100 Mi and `nodefs.available` 10 % of ephemeral storage
//!   unless `evictionHard` sets that signal (absolute or percent of the node's capacity). `evictionSoft` does
//!   not reduce allocatable.

use std::collections::BTreeMap;

use crate::{
    api::provisioner::KubeletConfiguration,
    cloud::InstanceType,
    resources::{self, MEMORY, Resources},
};

const MI: i64 = 1 << 20;
const GI: i64 = 1 << 30;

/// Karpenter's `VM_MEMORY_OVERHEAD_PERCENT` default, as a percentage.
pub const DEFAULT_VM_MEMORY_OVERHEAD_PERCENT: f64 = 7.5;
/// The kubelet's own default when nothing else limits pods.
pub const DEFAULT_MAX_PODS: i64 = 110;

const MEMORY_AVAILABLE: &str = "memory.available";
const NODEFS_AVAILABLE: &str = "nodefs.available";
/// Signals the kubelet accepts; only the first two reduce allocatable.
const EVICTION_SIGNALS: &[&str] = &[
    MEMORY_AVAILABLE,
    NODEFS_AVAILABLE,
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "pid.available",
];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("failed to read kubeletConfiguration.{field}: {source}")]
    Quantity { field: String, source: resources::Error },
    #[error("failed to read kubeletConfiguration.{field}: {value} must be positive")]
    NotPositive { field: &'static str, value: i64 },
    #[error("failed to read kubeletConfiguration.evictionHard: unknown signal {0:?}")]
    UnknownSignal(String),
    #[error("failed to read kubeletConfiguration.evictionHard.{signal}: {value:?} {reason}")]
    Threshold { signal: String, value: String, reason: &'static str },
}

/// An eviction threshold: an absolute amount (bytes) or a percentage of the node's capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Absolute(i64),
    Percent(f64),
}

impl Threshold {
    fn parse(signal: &str, value: &str) -> Result<Self, Error> {
        let err = |reason| Error::Threshold { signal: signal.to_string(), value: value.to_string(), reason };
        if let Some(pct) = value.trim().strip_suffix('%') {
            let pct: f64 = pct.trim().parse().map_err(|_| err("is not a percentage"))?;
            if !(0.0..=100.0).contains(&pct) {
                return Err(err("must be between 0% and 100%"));
            }
            return Ok(Threshold::Percent(pct));
        }
        match resources::parse_resource(MEMORY, &format!("evictionHard.{signal}"), value) {
            Ok(v) => Ok(Threshold::Absolute(v)),
            Err(_) => Err(err("is neither a quantity nor a percentage")),
        }
    }

    /// The amount this threshold keeps back on a node with `capacity` of the resource.
    fn of(self, capacity: i64) -> i64 {
        match self {
            Threshold::Absolute(v) => v,
            Threshold::Percent(p) => (capacity as f64 * p / 100.0).ceil() as i64,
        }
    }
}

/// The kubelet settings that shape allocatable, parsed and validated once from a Provisioner.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeletSettings {
    pub max_pods: Option<i64>,
    pub pods_per_core: Option<i64>,
    /// Added to the reserved amounts.
    pub system_reserved: Resources,
    /// Replaces the EKS default for each resource it names (resource name → canonical amount).
    pub kube_reserved: BTreeMap<String, i64>,
    pub eviction_memory: Option<Threshold>,
    pub eviction_nodefs: Option<Threshold>,
}

impl KubeletSettings {
    pub fn from_api(config: &KubeletConfiguration) -> Result<Self, Error> {
        let positive = |field, v: Option<i32>| match v.map(i64::from) {
            Some(v) if v <= 0 => Err(Error::NotPositive { field, value: v }),
            v => Ok(v),
        };
        let mut out = KubeletSettings {
            max_pods: positive("maxPods", config.max_pods)?,
            pods_per_core: positive("podsPerCore", config.pods_per_core)?,
            ..Default::default()
        };
        for (name, q) in config.system_reserved.iter().flatten() {
            let field = format!("systemReserved.{name}");
            let v = q.parse(name, &field).map_err(|source| Error::Quantity { field, source })?;
            out.system_reserved.set(name, v);
        }
        for (name, q) in config.kube_reserved.iter().flatten() {
            let field = format!("kubeReserved.{name}");
            let v = q.parse(name, &field).map_err(|source| Error::Quantity { field, source })?;
            out.kube_reserved.insert(name.clone(), v);
        }
        for (signal, value) in config.eviction_hard.iter().flatten() {
            if !EVICTION_SIGNALS.contains(&signal.as_str()) {
                return Err(Error::UnknownSignal(signal.clone()));
            }
            let threshold = Threshold::parse(signal, value)?;
            match signal.as_str() {
                MEMORY_AVAILABLE => out.eviction_memory = Some(threshold),
                NODEFS_AVAILABLE => out.eviction_nodefs = Some(threshold),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Pods a node with `capacity` (vCPU in millicores, ENI-limited pods) will admit.
    pub fn max_pods(&self, capacity: &Resources) -> i64 {
        let eni_or_default = if capacity.pods > 0 { capacity.pods } else { DEFAULT_MAX_PODS };
        let limit = self.max_pods.unwrap_or(eni_or_default);
        match self.pods_per_core {
            Some(per_core) => limit.min(per_core * (capacity.cpu / 1000).max(1)),
            None => limit,
        }
    }
}

/// Memory the VM hides from the OS: `ceil(memory × percent / 100)` rounded up to whole MiB.
pub fn vm_memory_overhead(memory: i64, percent: f64) -> i64 {
    (memory as f64 * percent / 100.0 / MI as f64).ceil() as i64 * MI
}

/// The node's capacity as the kubelet reports it: EC2 memory minus VM overhead, pods = max pods.
pub fn node_capacity(
    instance_type: &InstanceType,
    kubelet: &KubeletSettings,
    vm_overhead_percent: f64,
) -> Resources {
    let mut capacity = instance_type.capacity.clone();
    capacity.memory -= vm_memory_overhead(capacity.memory, vm_overhead_percent);
    capacity.pods = kubelet.max_pods(&instance_type.capacity);
    capacity
}

/// Karpenter's EKS kube-reserved cpu: a decreasing share of each core, in millicores.
pub fn kube_reserved_cpu(cpu_millis: i64) -> i64 {
    const RANGES: [(i64, i64, f64); 4] =
        [(0, 1000, 0.06), (1000, 2000, 0.01), (2000, 4000, 0.005), (4000, i64::MAX, 0.0025)];
    RANGES
        .iter()
        .filter(|(start, _, _)| cpu_millis > *start)
        .map(|(start, end, share)| ((cpu_millis.min(*end) - start) as f64 * share) as i64)
        .sum()
}

/// kube-reserved for a node with `capacity` (pods already the node's max pods).
pub fn kube_reserved(capacity: &Resources, kubelet: &KubeletSettings) -> Resources {
    let mut reserved = Resources {
        cpu: kube_reserved_cpu(capacity.cpu),
        memory: (11 * capacity.pods + 255) * MI,
        ephemeral_storage: GI,
        ..Resources::default()
    };
    for (name, amount) in &kubelet.kube_reserved {
        reserved.set(name, *amount);
    }
    reserved
}

/// The hard eviction threshold on memory and node filesystem.
pub fn eviction_threshold(capacity: &Resources, kubelet: &KubeletSettings) -> Resources {
    let memory = kubelet.eviction_memory.unwrap_or(Threshold::Absolute(100 * MI));
    let nodefs = kubelet.eviction_nodefs.unwrap_or(Threshold::Percent(10.0));
    Resources {
        memory: memory.of(capacity.memory),
        ephemeral_storage: nodefs.of(capacity.ephemeral_storage),
        ..Resources::default()
    }
}

/// What pods may request on a node of this type: capacity − kube-reserved − system-reserved − eviction
/// threshold, never below zero.
pub fn allocatable(
    instance_type: &InstanceType,
    kubelet: &KubeletSettings,
    vm_overhead_percent: f64,
) -> Resources {
    let capacity = node_capacity(instance_type, kubelet, vm_overhead_percent);
    let reserved = kube_reserved(&capacity, kubelet)
        + &kubelet.system_reserved
        + &eviction_threshold(&capacity, kubelet);
    // Reservations of resources the node does not have (e.g. pods, GPUs) must not create negative amounts.
    let mut out = capacity.saturating_sub(&reserved);
    out.pods = capacity.pods;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::quantity::Quantity, resources::NVIDIA_GPU};

    fn instance_type(vcpu: i64, memory_mib: i64, pods: i64) -> InstanceType {
        InstanceType {
            name: "test".into(),
            capacity: Resources {
                cpu: vcpu * 1000,
                memory: memory_mib * MI,
                ephemeral_storage: 20 * GI,
                pods,
                ..Resources::default()
            },
            labels: Default::default(),
            offerings: vec![],
        }
    }

    #[test]
    fn kube_reserved_cpu_follows_the_eks_table() {
        assert_eq!(kube_reserved_cpu(1000), 60);
        assert_eq!(kube_reserved_cpu(2000), 60 + 10);
        assert_eq!(kube_reserved_cpu(4000), 60 + 10 + 10);
        assert_eq!(kube_reserved_cpu(8000), 60 + 10 + 10 + 10, "0.25 % of 4 cores above the fourth");
        assert_eq!(kube_reserved_cpu(96_000), 60 + 10 + 10 + 230);
        assert_eq!(kube_reserved_cpu(500), 30);
    }

    #[test]
    fn m5_large_defaults() {
        // m5.large: 2 vCPU, 8 GiB, 29 ENI pods.
        let a = allocatable(&instance_type(2, 8192, 29), &KubeletSettings::default(), 7.5);
        assert_eq!(a.cpu, 2000 - 70);
        // 8192 MiB − ceil(8192 × 0.075) = 615 MiB overhead − (11 × 29 + 255 = 574 MiB) − 100 MiB eviction.
        assert_eq!(a.memory, (8192 - 615 - 574 - 100) * MI);
        assert_eq!(a.pods, 29);
        // 20 Gi − 1 Gi kube-reserved − 10 % (2 Gi) nodefs eviction.
        assert_eq!(a.ephemeral_storage, 17 * GI);
    }

    #[test]
    fn kubelet_settings_override_the_defaults() {
        let config = KubeletConfiguration {
            max_pods: Some(110),
            pods_per_core: Some(10),
            system_reserved: Some([("cpu".to_string(), Quantity::new("100m"))].into()),
            kube_reserved: Some([("memory".to_string(), Quantity::new("1Gi"))].into()),
            eviction_hard: Some(
                [
                    ("memory.available".to_string(), "5%".to_string()),
                    ("nodefs.available".into(), "1Gi".into()),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let kubelet = KubeletSettings::from_api(&config).unwrap();
        // m5.xlarge: 4 vCPU, 16 GiB; pods = min(110, 10 × 4) = 40.
        let it = instance_type(4, 16384, 58);
        let capacity = node_capacity(&it, &kubelet, 7.5);
        assert_eq!(capacity.pods, 40);
        assert_eq!(capacity.memory, (16384 - 1229) * MI, "ceil(16384 × 0.075) = 1229 MiB");
        let a = allocatable(&it, &kubelet, 7.5);
        assert_eq!(a.cpu, 4000 - 80 - 100);
        let eviction = (capacity.memory as f64 * 0.05).ceil() as i64;
        assert_eq!(a.memory, capacity.memory - GI - eviction, "kubeReserved memory replaces 11 × pods + 255");
        assert_eq!(a.ephemeral_storage, 20 * GI - GI - GI);
        assert_eq!(a.pods, 40);
    }

    #[test]
    fn max_pods_without_eni_data_is_the_kubelet_default() {
        let kubelet = KubeletSettings::default();
        assert_eq!(kubelet.max_pods(&instance_type(2, 4096, 0).capacity), 110);
        let kubelet = KubeletSettings { max_pods: Some(20), ..Default::default() };
        assert_eq!(kubelet.max_pods(&instance_type(2, 4096, 29).capacity), 20);
    }

    #[test]
    fn extended_resources_pass_through() {
        let mut it = instance_type(8, 32768, 58);
        it.capacity.set(NVIDIA_GPU, 1);
        let a = allocatable(&it, &KubeletSettings::default(), 0.0);
        assert_eq!(a.get(NVIDIA_GPU), 1);
        assert_eq!(a.memory, (32768 - (11 * 58 + 255) - 100) * MI);
    }

    #[test]
    fn bad_kubelet_fields_are_named() {
        let bad = |config: KubeletConfiguration| KubeletSettings::from_api(&config).unwrap_err().to_string();
        let msg = bad(KubeletConfiguration {
            system_reserved: Some([("memory".to_string(), Quantity::new("lots"))].into()),
            ..Default::default()
        });
        assert!(msg.contains("systemReserved.memory") && msg.contains("lots"), "{msg}");
        let msg = bad(KubeletConfiguration { max_pods: Some(0), ..Default::default() });
        assert!(msg.contains("maxPods"), "{msg}");
        let msg = bad(KubeletConfiguration {
            eviction_hard: Some([("memory.avail".to_string(), "1Gi".to_string())].into()),
            ..Default::default()
        });
        assert!(msg.contains("memory.avail"), "{msg}");
        let msg = bad(KubeletConfiguration {
            eviction_hard: Some([("nodefs.available".to_string(), "150%".to_string())].into()),
            ..Default::default()
        });
        assert!(msg.contains("evictionHard.nodefs.available") && msg.contains("150%"), "{msg}");
    }
}
