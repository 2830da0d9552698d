//! Pure scheduling: where pending pods go and which new nodes are cheapest (`solve`), and how many nodes of
//! one template a set of pods needs (`estimate`).

pub mod allocatable;
pub mod bound;
pub mod classes;
pub mod estimate;
#[cfg(test)]
mod proptests;
pub mod requirements;
pub mod selectors;
#[cfg(test)]
mod solve_tests;
pub mod solver;
pub mod taints;
pub mod template;
pub mod topology;

pub use classes::VolumeTopology;
pub use estimate::{Estimate, NodeGroupTemplate, estimate};
pub use requirements::{Requirements, ValueSet};
pub use solver::{ExistingNode, NewClaim, Placement, Results, SolveInput, solve};
pub use template::{NodePoolTemplate, PoolInstanceType, PoolUsage};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid requirement on {key}: {reason}")]
    InvalidRequirement { key: String, reason: String },
    #[error("failed to read Provisioner {provisioner}: {field}: {reason}")]
    InvalidProvisioner { provisioner: String, field: String, reason: String },
}
