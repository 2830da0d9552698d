//! Proportional scaling of cluster add-ons (cluster-proportional-autoscaler mode): workloads such as coredns
//! get a replica count computed from the node count and allocatable cores with CPA's `linear` or `ladder`
//! params, read from a ConfigMap.

mod args;
pub mod ladder;
pub mod linear;
pub mod params;
pub mod status;
pub mod targets;

pub use args::{NodeLabelError, NodeLabels, ProportionalArgs};
pub use params::{DefaultParams, Params, ParamsProblem};
pub use status::ClusterStatus;
pub use targets::{TargetError, TargetKind, TargetRef};
