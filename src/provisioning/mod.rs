//! Karpenter-style provisioning: batch pending pods, solve, launch NodeClaims, track their lifecycle.

pub mod batcher;
