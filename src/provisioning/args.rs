//! Flags of the provisioning loops (`ballast run --enable-provisioning`).

use clap::Args;
use jiff::SignedDuration;

use super::{
    batcher::{self, Batcher},
    lifecycle::{self, Timeouts},
};

#[derive(Debug, Clone, Args)]
pub struct ProvisioningArgs {
    /// A batch of pending pods closes after this many seconds without a new one.
    #[arg(long, env = "BALLAST_BATCH_IDLE_SECONDS", default_value_t = batcher::DEFAULT_IDLE.as_secs() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_idle_seconds: u64,
    /// A batch closes at the latest this many seconds after its first pod.
    #[arg(long, env = "BALLAST_BATCH_MAX_SECONDS", default_value_t = batcher::DEFAULT_MAX.as_secs() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_max_seconds: u64,
    /// A NodeClaim with no instance this many seconds after its creation is deleted.
    #[arg(long, env = "BALLAST_LAUNCH_TIMEOUT_SECONDS", default_value_t = lifecycle::DEFAULT_TIMEOUT.as_secs() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub launch_timeout_seconds: u64,
    /// A launched NodeClaim whose node has not registered this many seconds later is deleted (its instance
    /// terminated) and its pods are planned again.
    #[arg(long, env = "BALLAST_REGISTRATION_TIMEOUT_SECONDS",
          default_value_t = lifecycle::DEFAULT_TIMEOUT.as_secs() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub registration_timeout_seconds: u64,
    /// The API server endpoint new nodes join (the EKS cluster endpoint); required with provisioning.
    #[arg(long, env = "BALLAST_CLUSTER_ENDPOINT")]
    pub cluster_endpoint: Option<String>,
    /// Base64 CA bundle of the cluster endpoint, passed to the nodes' bootstrap.
    #[arg(long, env = "BALLAST_CLUSTER_CA_BUNDLE")]
    pub cluster_ca_bundle: Option<String>,
    /// The cluster's service CIDR (`aws eks describe-cluster --query cluster.kubernetesNetworkConfig`), e.g.
    /// 10.100.0.0/16. AL2023 nodes need it (nodeadm's `spec.cluster.cidr`) unless NodeTemplate userData sets it.
    #[arg(long, env = "BALLAST_CLUSTER_SERVICE_CIDR")]
    pub cluster_service_cidr: Option<String>,
}

impl ProvisioningArgs {
    pub fn batcher(&self) -> Batcher {
        Batcher::new(secs(self.batch_idle_seconds), secs(self.batch_max_seconds))
    }

    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            launch: secs(self.launch_timeout_seconds),
            registration: secs(self.registration_timeout_seconds),
        }
    }
}

/// Flag values are range-checked by clap and far below `i64::MAX`.
fn secs(s: u64) -> SignedDuration {
    SignedDuration::from_secs(s.min(i64::MAX as u64) as i64)
}
