//! ballast: one autoscaler for Kubernetes on AWS.
//!
//! All loops read one watch-fed [`state`] index and act through the [`cloud::CloudProvider`] seam and the
//! [`actuator::Actuator`] for kube writes. Each loop is a pure `plan(&Snapshot, now) -> Plan` followed by
//! `act(plan)`, so `ballast simulate` drives exactly the loops that `ballast run` runs in a cluster.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod actuator;
pub mod api;
pub mod client;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod disruption;
pub mod interruption;
pub mod leader;
pub mod manifest;
pub mod model;
pub mod plan;
pub mod proportional;
pub mod provisioning;
pub mod resources;
pub mod scheduling;
pub mod simulate;
pub mod state;
pub mod telemetry;
pub mod termination;
