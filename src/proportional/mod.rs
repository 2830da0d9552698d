//! Proportional scaling of cluster add-ons (cluster-proportional-autoscaler mode): workloads such as coredns
//! get a replica count computed from the node count and allocatable cores with CPA's `linear` or `ladder`
//! params, read from a ConfigMap annotated with [`TARGET_ANNOTATION`] or named by `--proportional-configmap`.

mod args;
mod controller;
pub mod ladder;
pub mod linear;
pub mod params;
pub mod status;
pub mod targets;

pub use args::{NodeLabelError, NodeLabels, ProportionalArgs};
pub use controller::{
    COUNT_LAUNCHING_ANNOTATION, Decision, Inputs, NODE_LABELS_ANNOTATION, NewConfigMap, Plan, Proportional,
    ScaleRead, TARGET_ANNOTATION,
};
pub use params::{DefaultParams, Params, ParamsProblem};
pub use status::ClusterStatus;
pub use targets::{TargetError, TargetKind, TargetRef};

use crate::actuator;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read proportional params from ConfigMap {config_map}: {problem}")]
    InvalidParams {
        config_map: String,
        #[source]
        problem: ParamsProblem,
    },
    #[error("failed to parse annotation {annotation} on ConfigMap {config_map}: {reason}")]
    InvalidAnnotation { config_map: String, annotation: &'static str, reason: String },
    #[error(
        "failed to find proportional target {target} named by ConfigMap {config_map}; retrying every poll"
    )]
    TargetNotFound { target: String, config_map: String },
    #[error("failed to scale {target}: ConfigMaps {config_maps:?} all target it; leaving its replicas alone")]
    TargetConflict { target: String, config_maps: Vec<String> },
    #[error(
        "failed to find ConfigMap {config_map} named by --proportional-configmap; create it or set \
         --proportional-default-params"
    )]
    MissingConfigMap { config_map: String },
    #[error("failed to create ConfigMap {config_map} from --proportional-default-params")]
    CreateConfigMap {
        config_map: String,
        #[source]
        source: actuator::Error,
    },
    #[error("failed to read /scale of {target}: {message}")]
    ReadScale { target: String, message: String },
    #[error("failed to scale {target}")]
    Scale {
        target: String,
        #[source]
        source: actuator::Error,
    },
}
