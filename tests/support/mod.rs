//! Shared test support: the provider conformance suite and (with `aws`) the moto server harness.
// Each test binary uses a different part of this module.
#![allow(dead_code, unused_imports, unused_macros)]

pub mod conformance;
pub mod kube_api;
#[cfg(feature = "aws")]
pub mod moto;
pub mod process;
