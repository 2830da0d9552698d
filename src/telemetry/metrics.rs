//! Prometheus metrics (prometheus-client). `app` builds one root [`Registry`] with the `ballast` prefix and
//! hands each module its own sub-registry; a module's metrics struct registers itself:
//!
//! ```
//! # use prometheus_client::{metrics::counter::Counter, registry::Registry};
//! #[derive(Clone, Default)]
//! struct ProvisioningMetrics { launches: Counter }
//! impl ProvisioningMetrics {
//!     fn register(registry: &mut Registry) -> Self {
//!         let m = Self::default();
//!         registry.register("launches", "NodeClaims launched", m.launches.clone());
//!         m
//!     }
//! }
//! let mut root = ballast::telemetry::metrics::root_registry();
//! let metrics = ProvisioningMetrics::register(root.sub_registry_with_prefix("provisioning"));
//! metrics.launches.inc();
//! assert!(ballast::telemetry::metrics::encode(&root).contains("ballast_provisioning_launches_total 1"));
//! ```

pub use prometheus_client::registry::Registry;

/// The root registry; every metric is named `ballast_<module>_<name>`.
pub fn root_registry() -> Registry {
    Registry::with_prefix("ballast")
}

/// The registry in OpenMetrics text format, as `/metrics` serves it.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an error here would be a bug in a metric's encoder.
    prometheus_client::encoding::text::encode(&mut out, registry).expect("metrics encode into a String");
    out
}

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
