//! The provider conformance suite against `cloud::sim` over the bundled catalog (the same checks
//! `tests/aws_moto.rs` runs against `cloud::aws` on moto).

mod support;

use std::sync::Arc;

use ballast::{
    clock::ManualClock,
    cloud::{
        Catalog,
        sim::{SimCloud, SimCloudConfig},
    },
};
use support::conformance::{Fixture, conformance_suite};

fn fixture() -> Fixture {
    let clock = ManualClock::new("2026-11-23T10:00:00Z".parse().unwrap());
    let cloud = SimCloud::new(Catalog::bundled(), Arc::new(clock), SimCloudConfig::default());
    Fixture {
        provider: Arc::new(cloud),
        provisioner: "default".into(),
        node_template: Some("default".into()),
        instance_types: ["c5.large", "m5.large", "m5.xlarge"].map(String::from).to_vec(),
        zones: ["us-east-1a", "us-east-1b"].map(String::from).to_vec(),
        keep_alive: Box::new(()),
    }
}

conformance_suite!(fixture());
