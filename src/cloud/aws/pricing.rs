//! On-demand prices from the AWS Pricing API, over the bundled price table (Karpenter's pricing provider).
//!
//! The Pricing API answers from a few regions only and is missing in GovCloud and isolated VPCs, and the
//! bundled table ages, so prices are layered: the table first, then whatever the last successful
//! `GetProducts` returned. A failed refresh keeps the previous prices and is retried sooner than a good one.

use std::{collections::HashMap, sync::Arc};

use aws_sdk_pricing::types::{Filter, FilterType};
use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use serde::Deserialize;
use tracing::{info, warn};

use super::sdk::{ApiError, PricingApi};
use crate::cloud::{CapacityType, Catalog};

/// The service code of EC2 in the price list.
pub const SERVICE_CODE: &str = "AmazonEC2";

/// (tenancy, product family) of the two queries: ordinary instances are priced under shared tenancy, bare
/// metal ones only under dedicated.
const QUERIES: [(&str, &str); 2] =
    [("Shared", "Compute Instance"), ("Dedicated", "Compute Instance (bare metal)")];

/// The Pricing API endpoint nearest to `region` (it only exists in a few regions), as Karpenter picks it.
pub fn endpoint_region(region: &str) -> &'static str {
    if region.starts_with("ap-") {
        "ap-south-1"
    } else if region.starts_with("cn-") {
        "cn-northwest-1"
    } else if region.starts_with("eu-") {
        "eu-central-1"
    } else {
        "us-east-1"
    }
}

/// GovCloud has no Pricing API: there the bundled table is all there is.
pub fn has_pricing_api(region: &str) -> bool {
    !region.starts_with("us-gov-")
}

/// The price list's currency in `region`.
fn currency(region: &str) -> &'static str {
    if region.starts_with("cn-") { "CNY" } else { "USD" }
}

/// `GetProducts` filters for Linux on-demand instances in `region` without pre-installed software.
pub fn filters(region: &str, tenancy: &str, product_family: &str) -> Vec<Filter> {
    [
        ("regionCode", region),
        ("serviceCode", SERVICE_CODE),
        ("preInstalledSw", "NA"),
        ("operatingSystem", "Linux"),
        ("capacitystatus", "Used"),
        ("marketoption", "OnDemand"),
        ("tenancy", tenancy),
        ("productFamily", product_family),
    ]
    .into_iter()
    .map(|(field, value)| {
        Filter::builder()
            .r#type(FilterType::TermMatch)
            .field(field)
            .value(value)
            .build()
            .expect("type, field and value are all set")
    })
    .collect()
}

/// The part of a price list item we read.
#[derive(Deserialize)]
struct PriceItem {
    product: Product,
    terms: Terms,
}

#[derive(Deserialize)]
struct Product {
    attributes: Attributes,
}

#[derive(Deserialize)]
struct Attributes {
    #[serde(rename = "instanceType", default)]
    instance_type: String,
}

#[derive(Deserialize)]
struct Terms {
    #[serde(rename = "OnDemand", default)]
    on_demand: HashMap<String, Term>,
}

#[derive(Deserialize)]
struct Term {
    #[serde(rename = "priceDimensions", default)]
    price_dimensions: HashMap<String, PriceDimension>,
}

#[derive(Deserialize)]
struct PriceDimension {
    #[serde(rename = "pricePerUnit", default)]
    price_per_unit: HashMap<String, String>,
}

/// Hourly prices by instance type from `GetProducts` items (JSON documents). Items that do not parse or
/// carry no positive price in `currency` are skipped and counted in the second value.
pub fn parse_price_list(items: &[String], currency: &str) -> (HashMap<String, f64>, usize) {
    let mut prices = HashMap::new();
    let mut skipped = 0;
    for item in items {
        let price = serde_json::from_str::<PriceItem>(item).ok().and_then(|item| {
            let price = item
                .terms
                .on_demand
                .values()
                .flat_map(|term| term.price_dimensions.values())
                .filter_map(|d| d.price_per_unit.get(currency)?.parse::<f64>().ok())
                .find(|price| *price > 0.0)?;
            Some((item.product.attributes.instance_type, price))
        });
        match price {
            Some((kind, price)) if !kind.is_empty() => {
                prices.insert(kind, price);
            }
            _ => skipped += 1,
        }
    }
    (prices, skipped)
}

/// The on-demand price of each type in `table` (the bundled catalog's data).
fn table_prices(table: &Catalog) -> HashMap<String, f64> {
    table
        .instance_types
        .iter()
        .filter_map(|t| {
            let on_demand = t.cheapest_offering(|o| o.capacity_type == CapacityType::OnDemand)?;
            Some((t.name.clone(), on_demand.price))
        })
        .collect()
}

struct Cached {
    prices: Arc<HashMap<String, f64>>,
    /// When to call the Pricing API again.
    next_refresh: Timestamp,
}

/// On-demand prices: the bundled table overlaid with the Pricing API's answer, refreshed every `ttl`
/// (Karpenter: 12 hours); after a failure, retried after `retry`.
pub struct OnDemandPrices {
    api: Arc<dyn PricingApi>,
    region: String,
    ttl: SignedDuration,
    retry: SignedDuration,
    cached: Mutex<Cached>,
}

impl OnDemandPrices {
    pub fn new(
        api: Arc<dyn PricingApi>,
        region: impl Into<String>,
        table: &Catalog,
        ttl: SignedDuration,
        retry: SignedDuration,
    ) -> Self {
        let cached = Cached { prices: Arc::new(table_prices(table)), next_refresh: Timestamp::MIN };
        Self { api, region: region.into(), ttl, retry, cached: Mutex::new(cached) }
    }

    /// Current prices, calling the Pricing API first when a refresh is due. Never fails: on error the
    /// previous prices (at first, the table's) stay.
    pub async fn get(&self, now: Timestamp) -> Arc<HashMap<String, f64>> {
        {
            let cached = self.cached.lock();
            if now < cached.next_refresh || !has_pricing_api(&self.region) {
                return cached.prices.clone();
            }
        }
        let fetched = self.fetch().await;
        let mut cached = self.cached.lock();
        match fetched {
            Ok(found) => {
                let mut prices = (*cached.prices).clone();
                prices.extend(found);
                cached.prices = Arc::new(prices);
                cached.next_refresh = now + self.ttl;
            }
            Err(err) => {
                warn!(
                    error = %err, region = %self.region, retry_in = %self.retry,
                    "failed to read on-demand prices from the AWS Pricing API; keeping the previous prices"
                );
                cached.next_refresh = now + self.retry;
            }
        }
        cached.prices.clone()
    }

    async fn fetch(&self) -> Result<HashMap<String, f64>, ApiError> {
        let mut prices = HashMap::new();
        for (tenancy, family) in QUERIES {
            let items = self.api.get_products(SERVICE_CODE, filters(&self.region, tenancy, family)).await?;
            let (found, skipped) = parse_price_list(&items, currency(&self.region));
            if skipped > 0 {
                warn!(skipped, tenancy, "skipped price list items without a readable on-demand price");
            }
            prices.extend(found);
        }
        if prices.is_empty() {
            return Err(ApiError { code: None, message: "GetProducts returned no on-demand prices".into() });
        }
        info!(types = prices.len(), region = %self.region, "refreshed on-demand prices from the Pricing API");
        Ok(prices)
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::cloud::{InstanceType, Offering};

    /// Answers GetProducts with `items`, or fails while `failing` is set; counts calls.
    #[derive(Default)]
    struct FakePricing {
        items: Mutex<Vec<String>>,
        failing: Mutex<bool>,
        calls: Mutex<usize>,
    }

    #[async_trait]
    impl PricingApi for FakePricing {
        async fn get_products(
            &self,
            service_code: &str,
            filters: Vec<Filter>,
        ) -> Result<Vec<String>, ApiError> {
            assert_eq!(service_code, "AmazonEC2");
            *self.calls.lock() += 1;
            if *self.failing.lock() {
                return Err(ApiError::service("AccessDeniedException", "no pricing:GetProducts"));
            }
            // Bare metal items come from the dedicated-tenancy query only.
            let metal = filters.iter().any(|f| f.value() == "Compute Instance (bare metal)");
            Ok(self.items.lock().iter().filter(|i| i.contains(".metal") == metal).cloned().collect())
        }
    }

    fn table() -> Catalog {
        let on_demand = |name: &str, price| InstanceType {
            name: name.into(),
            capacity: Default::default(),
            labels: Default::default(),
            offerings: vec![Offering {
                zone: "us-east-1a".into(),
                capacity_type: CapacityType::OnDemand,
                price,
                available: true,
            }],
        };
        Catalog::new(vec![on_demand("m5.large", 0.096), on_demand("c5.large", 0.085)])
    }

    fn item(kind: &str, usd: &str) -> String {
        serde_json::json!({
            "product": {"productFamily": "Compute Instance", "attributes": {"instanceType": kind, "regionCode": "us-east-1"}},
            "terms": {"OnDemand": {"ABC.JRTCKXETXF": {"priceDimensions": {
                "ABC.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": usd}}
            }}}}
        })
        .to_string()
    }

    #[test]
    fn endpoints_follow_karpenter() {
        assert_eq!(endpoint_region("us-west-2"), "us-east-1");
        assert_eq!(endpoint_region("ap-northeast-2"), "ap-south-1");
        assert_eq!(endpoint_region("eu-west-1"), "eu-central-1");
        assert_eq!(endpoint_region("cn-north-1"), "cn-northwest-1");
        assert!(!has_pricing_api("us-gov-west-1"));
    }

    #[test]
    fn filters_select_linux_on_demand_in_the_region() {
        let got: Vec<_> = filters("ap-northeast-2", "Shared", "Compute Instance")
            .iter()
            .map(|f| (f.r#type().as_str().to_string(), f.field().to_string(), f.value().to_string()))
            .collect();
        assert!(got.iter().all(|(t, _, _)| t == "TERM_MATCH"));
        for expected in [
            ("regionCode", "ap-northeast-2"),
            ("operatingSystem", "Linux"),
            ("preInstalledSw", "NA"),
            ("capacitystatus", "Used"),
            ("marketoption", "OnDemand"),
            ("tenancy", "Shared"),
            ("productFamily", "Compute Instance"),
        ] {
            assert!(
                got.iter().any(|(_, f, v)| (f.as_str(), v.as_str()) == expected),
                "{expected:?}: {got:?}"
            );
        }
    }

    #[test]
    fn price_list_items_parse_and_bad_ones_are_skipped() {
        let items = vec![
            item("m5.large", "0.0960000000"),
            item("c5.large", "0.0000000000"),
            "not json".to_string(),
            item("", "1.0"),
        ];
        let (prices, skipped) = parse_price_list(&items, "USD");
        assert_eq!(prices, HashMap::from([("m5.large".to_string(), 0.096)]));
        assert_eq!(skipped, 3);
        assert!(parse_price_list(&items[..1], "CNY").0.is_empty());
    }

    #[tokio::test]
    async fn api_prices_override_the_table_and_failures_keep_the_last_good_ones() {
        let api = Arc::new(FakePricing::default());
        *api.items.lock() = vec![item("m5.large", "0.1"), item("m5.metal", "4.608")];
        let (ttl, retry) = (SignedDuration::from_hours(12), SignedDuration::from_mins(5));
        let prices = OnDemandPrices::new(api.clone(), "us-east-1", &table(), ttl, retry);
        let t0: Timestamp = "2026-11-23T00:00:00Z".parse().unwrap();

        let got = prices.get(t0).await;
        assert_eq!((got["m5.large"], got["m5.metal"], got["c5.large"]), (0.1, 4.608, 0.085));
        assert_eq!(*api.calls.lock(), 2, "one query for shared tenancy, one for bare metal");

        // Within the TTL nothing is called; after it a failed refresh keeps the last good prices.
        *api.failing.lock() = true;
        assert_eq!(prices.get(t0 + SignedDuration::from_hours(11)).await["m5.large"], 0.1);
        assert_eq!(*api.calls.lock(), 2);
        let t1 = t0 + ttl;
        assert_eq!(prices.get(t1).await["m5.large"], 0.1);
        assert_eq!(*api.calls.lock(), 3);

        // A failure is retried after `retry`, not after the full TTL.
        *api.failing.lock() = false;
        *api.items.lock() = vec![item("m5.large", "0.2")];
        assert_eq!(prices.get(t1 + SignedDuration::from_mins(4)).await["m5.large"], 0.1);
        assert_eq!(prices.get(t1 + retry).await["m5.large"], 0.2);
    }

    #[tokio::test]
    async fn without_the_api_the_table_prices_stand() {
        let api = Arc::new(FakePricing::default());
        *api.failing.lock() = true;
        let day = SignedDuration::from_hours(24);
        let prices = OnDemandPrices::new(api.clone(), "us-east-1", &table(), day, day);
        let got = prices.get("2026-11-23T00:00:00Z".parse().unwrap()).await;
        assert_eq!((got["m5.large"], got["c5.large"]), (0.096, 0.085));

        // GovCloud has no Pricing API: it is never called.
        let gov = OnDemandPrices::new(api.clone(), "us-gov-west-1", &table(), day, day);
        let calls = *api.calls.lock();
        assert_eq!(gov.get("2026-11-23T00:00:00Z".parse().unwrap()).await["m5.large"], 0.096);
        assert_eq!(*api.calls.lock(), calls);
    }
}
