//! ballast's CRDs (`ballast.dev/v1alpha1`): Provisioner, NodeTemplate and NodeClaim.
//!
//! Provisioner and NodeTemplate carry every field of Karpenter's `karpenter.sh/v1alpha5` Provisioner and
//! `karpenter.k8s.aws/v1alpha1` AWSNodeTemplate, so existing manifests apply with only the apiVersion changed.

pub mod conditions;
pub mod crds;
pub mod labels;
pub mod node_claim;
pub mod node_template;
pub mod provisioner;
pub mod quantity;
pub mod rules;
pub mod validation;

pub use conditions::Condition;
pub use node_claim::{NodeClaim, NodeClaimSpec, NodeClaimStatus};
pub use node_template::{NodeTemplate, NodeTemplateSpec, NodeTemplateStatus};
pub use provisioner::{Provisioner, ProvisionerSpec, ProvisionerStatus};
pub use quantity::Quantity;
pub use validation::{
    FieldProblem, ValidationError, validate_node_claim, validate_node_template, validate_provisioner,
};

pub const API_VERSION: &str = "ballast.dev/v1alpha1";
