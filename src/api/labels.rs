//! Well-known label, annotation, taint and finalizer names.
//!
//! Instance labels are published twice: under ballast's own prefix and under Karpenter's
//! `karpenter.k8s.aws/` names, so manifests written for Karpenter keep selecting the same nodes.

pub const GROUP: &str = "ballast.dev";

// Kubernetes well-known node labels.
pub const HOSTNAME: &str = "kubernetes.io/hostname";
pub const ARCH: &str = "kubernetes.io/arch";
pub const OS: &str = "kubernetes.io/os";
pub const ZONE: &str = "topology.kubernetes.io/zone";
pub const REGION: &str = "topology.kubernetes.io/region";
pub const INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
pub const WINDOWS_BUILD: &str = "node.kubernetes.io/windows-build";
/// EBS CSI's zone label; an alias of [`ZONE`] for volume topology.
pub const EBS_CSI_ZONE: &str = "topology.ebs.csi.aws.com/zone";
/// Deprecated beta labels that old manifests still select on, aliased to the GA keys.
pub const BETA_ZONE: &str = "failure-domain.beta.kubernetes.io/zone";
pub const BETA_INSTANCE_TYPE: &str = "beta.kubernetes.io/instance-type";
pub const BETA_ARCH: &str = "beta.kubernetes.io/arch";
pub const BETA_OS: &str = "beta.kubernetes.io/os";

// Karpenter-compatible labels (the names users already write in requirements and selectors).
pub const CAPACITY_TYPE: &str = "karpenter.sh/capacity-type";
pub const PROVISIONER_NAME: &str = "karpenter.sh/provisioner-name";
pub const CAPACITY_TYPE_SPOT: &str = "spot";
pub const CAPACITY_TYPE_ON_DEMAND: &str = "on-demand";

// ballast's own labels.
pub const BALLAST_PROVISIONER: &str = "ballast.dev/provisioner";
pub const BALLAST_NODE_CLAIM: &str = "ballast.dev/nodeclaim";
pub const BALLAST_INITIALIZED: &str = "ballast.dev/initialized";
pub const BALLAST_REGISTERED: &str = "ballast.dev/registered";

/// Instance labels: (ballast key, Karpenter key) pairs with the same value.
pub const INSTANCE_LABEL_PREFIX: &str = "instance.ballast.dev/";
pub const KARPENTER_AWS_PREFIX: &str = "karpenter.k8s.aws/";
pub const INSTANCE_LABEL_SUFFIXES: &[&str] = &[
    "instance-hypervisor",
    "instance-encryption-in-transit-supported",
    "instance-category",
    "instance-family",
    "instance-generation",
    "instance-size",
    "instance-cpu",
    "instance-cpu-manufacturer",
    "instance-memory",
    "instance-network-bandwidth",
    "instance-pods",
    "instance-gpu-name",
    "instance-gpu-manufacturer",
    "instance-gpu-count",
    "instance-gpu-memory",
    "instance-accelerator-name",
    "instance-accelerator-count",
    "instance-local-nvme",
];

/// Label domains a Provisioner may not set in `labels` or require with a custom key (Karpenter's webhook rule):
/// the kubelet and ballast own them. Well-known keys above are allowed in requirements.
pub const RESTRICTED_LABEL_DOMAINS: &[&str] =
    &["kubernetes.io", "k8s.io", "karpenter.sh", "karpenter.k8s.aws", "ballast.dev"];
/// Exceptions inside the restricted domains that users may set.
pub const ALLOWED_LABEL_DOMAINS: &[&str] = &["kops.k8s.io", "node-restriction.kubernetes.io"];

// Annotations.
pub const DO_NOT_DISRUPT: &str = "ballast.dev/do-not-disrupt";
pub const KARPENTER_DO_NOT_EVICT: &str = "karpenter.sh/do-not-evict";
pub const KARPENTER_DO_NOT_CONSOLIDATE: &str = "karpenter.sh/do-not-consolidate";
pub const KARPENTER_DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
pub const PROPORTIONAL_TARGET: &str = "ballast.dev/proportional-target";

// Taints and finalizers.
pub const DISRUPTION_TAINT_KEY: &str = "ballast.dev/disruption";
pub const DISRUPTION_TAINT_VALUE: &str = "disrupting";
pub const TERMINATION_FINALIZER: &str = "ballast.dev/termination";
