//! The provider conformance suite: what every `CloudProvider` must do, checked the same way against the
//! simulator and against `cloud::aws` on moto, so the simulator stays faithful to the real provider.
//!
//! A harness builds a [`Fixture`] (a ready provider and what a launch request for it needs) and expands
//! [`conformance_suite!`] with an expression producing one; every check runs on a fresh fixture.

use std::{any::Any, collections::BTreeMap, sync::Arc};

use ballast::cloud::{CapacityType, CloudError, CloudProvider, Instance, LaunchOption, LaunchRequest};

pub struct Fixture {
    pub provider: Arc<dyn CloudProvider>,
    pub provisioner: String,
    pub node_template: Option<String>,
    /// Launch options are drawn from these instance types…
    pub instance_types: Vec<String>,
    /// …in these zones (the ones the provider can launch into).
    pub zones: Vec<String>,
    /// Keeps whatever the provider needs alive (a moto server, a clock).
    pub keep_alive: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    /// Options of the fixture's types and zones from the provider's own catalog, cheapest first;
    /// `capacity` restricts them to one capacity type.
    pub async fn options(&self, capacity: Option<CapacityType>) -> Vec<LaunchOption> {
        let catalog = self.provider.catalog().await.expect("catalog");
        let mut options: Vec<LaunchOption> = catalog
            .instance_types
            .iter()
            .filter(|t| self.instance_types.contains(&t.name))
            .flat_map(|t| {
                t.offerings
                    .iter()
                    .filter(|o| o.available && self.zones.contains(&o.zone))
                    .filter(|o| capacity.is_none_or(|c| o.capacity_type == c))
                    .map(|o| LaunchOption {
                        instance_type: t.name.clone(),
                        zone: o.zone.clone(),
                        capacity_type: o.capacity_type,
                        price: o.price,
                    })
            })
            .collect();
        options
            .sort_by(|a, b| a.price.total_cmp(&b.price).then_with(|| a.instance_type.cmp(&b.instance_type)));
        assert!(
            !options.is_empty(),
            "the fixture's catalog has no options for {:?} in {:?}",
            self.instance_types,
            self.zones
        );
        options
    }

    pub async fn request(&self, claim: &str, capacity: Option<CapacityType>) -> LaunchRequest {
        LaunchRequest {
            claim_name: claim.to_string(),
            provisioner: self.provisioner.clone(),
            node_template: self.node_template.clone(),
            options: self.options(capacity).await,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            startup_taints: Vec::new(),
            tags: BTreeMap::from([("team".to_string(), "conformance".to_string())]),
        }
    }

    pub async fn launch(&self, claim: &str, capacity: Option<CapacityType>) -> (LaunchRequest, Instance) {
        let req = self.request(claim, capacity).await;
        let instance = self.provider.create(&req).await.unwrap_or_else(|e| panic!("create {claim}: {e}"));
        (req, instance)
    }
}

fn assert_claim_tags(instance: &Instance, req: &LaunchRequest) {
    assert_eq!(instance.claim_name(), Some(req.claim_name.as_str()), "tags: {:?}", instance.tags);
    assert_eq!(
        instance.tags.get("ballast.dev/provisioner"),
        Some(&req.provisioner),
        "tags: {:?}",
        instance.tags
    );
    assert_eq!(
        instance.tags.get("team").map(String::as_str),
        Some("conformance"),
        "request tags reach the instance"
    );
}

pub async fn catalog_has_priced_offerings(fx: &Fixture) {
    let catalog = fx.provider.catalog().await.expect("catalog");
    assert!(!catalog.instance_types.is_empty());
    let offerings: Vec<_> = catalog.instance_types.iter().flat_map(|t| &t.offerings).collect();
    assert!(!offerings.is_empty(), "no offerings at all");
    for o in &offerings {
        assert!(o.price.is_finite() && o.price > 0.0, "offering {o:?} has no price");
    }
    for capacity in [CapacityType::Spot, CapacityType::OnDemand] {
        assert!(offerings.iter().any(|o| o.capacity_type == capacity), "no {capacity} offering");
    }
    for name in &fx.instance_types {
        let t = catalog.get(name).unwrap_or_else(|| panic!("{name} missing from the catalog"));
        assert!(
            t.capacity.cpu > 0 && t.capacity.memory > 0 && t.capacity.pods > 0,
            "{name}: {:?}",
            t.capacity
        );
        assert_eq!(t.labels.get("node.kubernetes.io/instance-type"), Some(name));
    }
}

pub async fn create_returns_an_instance_matching_an_option(fx: &Fixture) {
    let (req, instance) = fx.launch("conf-create", None).await;
    assert!(
        req.options.iter().any(|o| o.instance_type == instance.instance_type
            && o.zone == instance.zone
            && o.capacity_type == instance.capacity_type),
        "{instance:?} matches none of {:?}",
        req.options
    );
    assert_eq!(instance.provider_id, format!("aws:///{}/{}", instance.zone, instance.id));
    assert_claim_tags(&instance, &req);
}

pub async fn spot_is_preferred_when_allowed(fx: &Fixture) {
    let (_, instance) = fx.launch("conf-spot", None).await;
    assert_eq!(instance.capacity_type, CapacityType::Spot);
    let (_, instance) = fx.launch("conf-on-demand", Some(CapacityType::OnDemand)).await;
    assert_eq!(instance.capacity_type, CapacityType::OnDemand);
}

pub async fn get_and_list_find_the_instance(fx: &Fixture) {
    let (req, created) = fx.launch("conf-get", None).await;
    let got = fx.provider.get(&created.provider_id).await.expect("get");
    assert_eq!(
        (got.id.as_str(), got.instance_type.as_str(), got.zone.as_str()),
        (created.id.as_str(), created.instance_type.as_str(), created.zone.as_str())
    );
    assert_eq!(got.capacity_type, created.capacity_type);
    assert_claim_tags(&got, &req);
    let listed = fx.provider.list().await.expect("list");
    let found = listed.iter().find(|i| i.id == created.id).expect("list finds the instance");
    assert_claim_tags(found, &req);
}

pub async fn delete_then_get_is_not_found(fx: &Fixture) {
    let (_, instance) = fx.launch("conf-delete", None).await;
    fx.provider.delete(&instance.provider_id).await.expect("delete");
    match fx.provider.get(&instance.provider_id).await {
        Err(CloudError::NotFound(_)) => {}
        other => panic!("get after delete: {other:?}"),
    }
    match fx.provider.delete(&instance.provider_id).await {
        Err(CloudError::NotFound(_)) => {}
        other => panic!("second delete: {other:?}"),
    }
}

pub async fn list_excludes_deleted_instances(fx: &Fixture) {
    let (_, kept) = fx.launch("conf-kept", None).await;
    let (_, gone) = fx.launch("conf-gone", None).await;
    fx.provider.delete(&gone.provider_id).await.expect("delete");
    let ids: Vec<_> = fx.provider.list().await.expect("list").into_iter().map(|i| i.id).collect();
    assert!(ids.contains(&kept.id), "{ids:?}");
    assert!(!ids.contains(&gone.id), "{ids:?}");
}

pub async fn unknown_instance_is_not_found(fx: &Fixture) {
    let zone = &fx.zones[0];
    match fx.provider.get(&format!("aws:///{zone}/i-0000000000000dead")).await {
        Err(CloudError::NotFound(_)) => {}
        other => panic!("get of an unknown instance: {other:?}"),
    }
}

/// Expands to one `#[tokio::test]` per check, each on a fresh fixture from `$fixture` (an async expression).
macro_rules! conformance_suite {
    ($fixture:expr) => {
        mod conformance {
            use super::*;
            use crate::support::conformance as suite;

            #[tokio::test]
            async fn catalog_has_priced_offerings() {
                suite::catalog_has_priced_offerings(&$fixture).await;
            }

            #[tokio::test]
            async fn create_returns_an_instance_matching_an_option() {
                suite::create_returns_an_instance_matching_an_option(&$fixture).await;
            }

            #[tokio::test]
            async fn spot_is_preferred_when_allowed() {
                suite::spot_is_preferred_when_allowed(&$fixture).await;
            }

            #[tokio::test]
            async fn get_and_list_find_the_instance() {
                suite::get_and_list_find_the_instance(&$fixture).await;
            }

            #[tokio::test]
            async fn delete_then_get_is_not_found() {
                suite::delete_then_get_is_not_found(&$fixture).await;
            }

            #[tokio::test]
            async fn list_excludes_deleted_instances() {
                suite::list_excludes_deleted_instances(&$fixture).await;
            }

            #[tokio::test]
            async fn unknown_instance_is_not_found() {
                suite::unknown_instance_is_not_found(&$fixture).await;
            }
        }
    };
}
pub(crate) use conformance_suite;
