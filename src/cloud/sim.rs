//! Simulated EC2 in virtual time, the model for `ballast simulate` (Karpenter's KWOK provider).
//!
//! Launches follow CreateFleet: when the request allows spot and a spot option is available, the cheapest
//! spot option with capacity wins; otherwise the cheapest on-demand option. An offering hit by an injected
//! insufficient-capacity error is skipped and kept unavailable for [`UNAVAILABLE_TTL`] (Karpenter's ICE cache),
//! which [`SimCloud::catalog`] reflects. Instance ids come from a seeded RNG, so a seed replays exactly.
//!
//! Time moves only through the injected [`Clock`]; [`SimCloud::poll`] reports what became due since the last
//! poll: instances ready to register as nodes (after launch + registration delay), spot interruption notices
//! (two minutes before the reclaim), and instances the cloud reclaimed.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
};

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{
    CapacityType, Catalog, CloudError, CloudProvider, Instance, InstanceState, LaunchOption, LaunchRequest,
    Result,
};
use crate::{api::labels, clock::Clock};

/// How long an offering stays unavailable after an insufficient-capacity error (Karpenter's ICE cache TTL).
pub const UNAVAILABLE_TTL: SignedDuration = SignedDuration::from_secs(180);
/// Warning EC2 gives before reclaiming a spot instance.
pub const INTERRUPTION_NOTICE: SignedDuration = SignedDuration::from_secs(120);

/// One purchasable pool: instance type × zone × capacity type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OfferingKey {
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
}

impl OfferingKey {
    fn of(option: &LaunchOption) -> Self {
        Self {
            instance_type: option.instance_type.clone(),
            zone: option.zone.clone(),
            capacity_type: option.capacity_type,
        }
    }
}

impl std::fmt::Display for OfferingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.instance_type, self.zone, self.capacity_type)
    }
}

#[derive(Debug, Clone)]
pub struct SimCloudConfig {
    /// Seeds instance ids.
    pub seed: u64,
    /// From the create call until the instance is running.
    pub launch_delay: SignedDuration,
    /// From running until the kubelet registers the node.
    pub registration_delay: SignedDuration,
}

impl Default for SimCloudConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            launch_delay: SignedDuration::from_secs(5),
            registration_delay: SignedDuration::from_secs(30),
        }
    }
}

/// The cloud's warning that a spot instance will be reclaimed, as the interruption queue delivers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterruptionNotice {
    pub instance_id: String,
    pub provider_id: String,
    pub noticed_at: Timestamp,
    pub reclaim_at: Timestamp,
}

/// What became due in one [`SimCloud::poll`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimEvents {
    /// Running instances whose kubelet registers now: the simulator creates their Nodes.
    pub registered: Vec<Instance>,
    /// New spot interruption notices.
    pub notices: Vec<InterruptionNotice>,
    /// Instances the cloud terminated after their notice ran out.
    pub reclaimed: Vec<Instance>,
}

#[derive(Debug, Clone)]
struct CapacityOutage {
    offering: OfferingKey,
    from: Timestamp,
    until: Option<Timestamp>,
}

impl CapacityOutage {
    fn active(&self, now: Timestamp) -> bool {
        self.from <= now && self.until.is_none_or(|until| now < until)
    }
}

#[derive(Debug)]
struct SimInstance {
    instance: Instance,
    registered: bool,
    reclaim_at: Option<Timestamp>,
}

#[derive(Debug)]
struct State {
    rng: ChaCha8Rng,
    /// By instance id.
    instances: BTreeMap<String, SimInstance>,
    outages: Vec<CapacityOutage>,
    /// Offering → when it becomes available again.
    unavailable: BTreeMap<OfferingKey, Timestamp>,
    /// Instance id → when its notice is sent.
    instance_interruptions: BTreeMap<String, Timestamp>,
    /// Every spot instance running in the offering at that time gets a notice.
    offering_interruptions: Vec<(OfferingKey, Timestamp)>,
    /// Delivered and not yet acknowledged, oldest first.
    notices: VecDeque<InterruptionNotice>,
    /// Insufficient-capacity failures not yet taken, with when they happened.
    capacity_errors: Vec<(OfferingKey, Timestamp)>,
}

/// Simulated EC2 over a [`Catalog`], driven by an injected clock.
pub struct SimCloud {
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    config: SimCloudConfig,
    state: Mutex<State>,
}

impl SimCloud {
    pub fn new(catalog: Arc<Catalog>, clock: Arc<dyn Clock>, config: SimCloudConfig) -> Self {
        let state = State {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            instances: BTreeMap::new(),
            outages: Vec::new(),
            unavailable: BTreeMap::new(),
            instance_interruptions: BTreeMap::new(),
            offering_interruptions: Vec::new(),
            notices: VecDeque::new(),
            capacity_errors: Vec::new(),
        };
        Self { catalog, clock, config, state: Mutex::new(state) }
    }

    pub fn config(&self) -> &SimCloudConfig {
        &self.config
    }

    /// Makes launches into `offering` fail with insufficient capacity from `from` until `until` (forever when
    /// `None`).
    pub fn inject_capacity_error(&self, offering: OfferingKey, from: Timestamp, until: Option<Timestamp>) {
        self.state.lock().outages.push(CapacityOutage { offering, from, until });
    }

    /// Sends a spot interruption notice for the instance at `at`. Only spot instances are interrupted.
    pub fn interrupt_instance(&self, instance_id: &str, at: Timestamp) -> Result<()> {
        let mut state = self.state.lock();
        match state.instances.get(instance_id) {
            None => Err(CloudError::NotFound(instance_id.to_string())),
            Some(s) if s.instance.capacity_type != CapacityType::Spot => {
                Err(CloudError::InvalidConfig(format!(
                    "failed to interrupt instance {instance_id}: it is {}, only spot instances are interrupted",
                    s.instance.capacity_type
                )))
            }
            Some(_) => {
                state.instance_interruptions.insert(instance_id.to_string(), at);
                Ok(())
            }
        }
    }

    /// Sends a notice at `at` to every spot instance then running in `offering`.
    pub fn interrupt_offering(&self, offering: OfferingKey, at: Timestamp) {
        self.state.lock().offering_interruptions.push((offering, at));
    }

    /// Notices delivered and not yet acknowledged, oldest first (an SQS receive).
    pub fn interruption_notices(&self) -> Vec<InterruptionNotice> {
        self.state.lock().notices.iter().cloned().collect()
    }

    /// Removes the notices for the instance (an SQS delete).
    pub fn acknowledge_interruption(&self, instance_id: &str) {
        self.state.lock().notices.retain(|n| n.instance_id != instance_id);
    }

    /// The earliest time after which [`Self::poll`] has something to report: a registration, an
    /// interruption notice or a reclaim. Lets the simulator skip quiet stretches of virtual time.
    pub fn next_due(&self) -> Option<Timestamp> {
        let state = self.state.lock();
        let delay = self.config.launch_delay + self.config.registration_delay;
        let registrations =
            state.instances.values().filter(|s| !s.registered).map(|s| s.instance.launched_at + delay);
        let reclaims = state.instances.values().filter_map(|s| s.reclaim_at);
        let notices = state.instance_interruptions.values().copied();
        let offering_notices = state.offering_interruptions.iter().map(|(_, at)| *at);
        registrations.chain(reclaims).chain(notices).chain(offering_notices).min()
    }

    /// Launch failures for lack of capacity since the last call, in call order, with when they happened.
    pub fn take_capacity_errors(&self) -> Vec<(OfferingKey, Timestamp)> {
        std::mem::take(&mut self.state.lock().capacity_errors)
    }

    /// Advances the simulated cloud to the clock's `now` and reports what became due, in time order within
    /// each list (ties by instance id).
    pub fn poll(&self) -> SimEvents {
        let now = self.clock.now();
        let mut state = self.state.lock();
        let state = &mut *state;
        let mut events = SimEvents::default();

        state.unavailable.retain(|_, until| now < *until);

        let mut due: Vec<(Timestamp, String)> = Vec::new();
        state.instance_interruptions.retain(|id, at| {
            if *at <= now {
                due.push((*at, id.clone()));
                false
            } else {
                true
            }
        });
        state.offering_interruptions.retain(|(offering, at)| {
            if *at > now {
                return true;
            }
            for (id, sim) in &state.instances {
                let i = &sim.instance;
                if i.capacity_type == CapacityType::Spot
                    && i.instance_type == offering.instance_type
                    && i.zone == offering.zone
                    && i.launched_at <= *at
                {
                    due.push((*at, id.clone()));
                }
            }
            false
        });
        due.sort();
        for (at, id) in due {
            let Some(sim) = state.instances.get_mut(&id) else { continue };
            if sim.reclaim_at.is_some() {
                continue;
            }
            let reclaim_at = at + INTERRUPTION_NOTICE;
            sim.reclaim_at = Some(reclaim_at);
            let notice = InterruptionNotice {
                instance_id: id,
                provider_id: sim.instance.provider_id.clone(),
                noticed_at: at,
                reclaim_at,
            };
            state.notices.push_back(notice.clone());
            events.notices.push(notice);
        }

        let ready_at = |i: &Instance| i.launched_at + self.config.launch_delay;
        let mut registered: Vec<&mut SimInstance> = state
            .instances
            .values_mut()
            .filter(|s| !s.registered && ready_at(&s.instance) + self.config.registration_delay <= now)
            .collect();
        registered.sort_by_key(|s| (s.instance.launched_at, s.instance.id.clone()));
        for sim in registered {
            sim.registered = true;
            sim.instance.state = InstanceState::Running;
            events.registered.push(sim.instance.clone());
        }
        for sim in state.instances.values_mut() {
            if sim.instance.state == InstanceState::Pending && ready_at(&sim.instance) <= now {
                sim.instance.state = InstanceState::Running;
            }
        }

        let reclaimed: Vec<String> = state
            .instances
            .iter()
            .filter(|(_, s)| s.reclaim_at.is_some_and(|at| at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in reclaimed {
            let mut sim = state.instances.remove(&id).expect("id listed above");
            sim.instance.state = InstanceState::Terminated;
            events.reclaimed.push(sim.instance);
        }
        events.reclaimed.sort_by_key(|i| (i.launched_at, i.id.clone()));
        events
    }

    /// The options CreateFleet would try, in order: available spot options cheapest first when the request
    /// allows spot and one is available, else available on-demand options cheapest first. Prices come from the
    /// catalog, not the request.
    fn launch_order(&self, req: &LaunchRequest, state: &State) -> Result<Vec<LaunchOption>> {
        let mut priced: Vec<LaunchOption> = Vec::new();
        let mut unknown = Vec::new();
        for option in &req.options {
            let offering = self.catalog.get(&option.instance_type).and_then(|t| {
                t.offerings.iter().find(|o| o.zone == option.zone && o.capacity_type == option.capacity_type)
            });
            match offering {
                Some(o) => priced.push(LaunchOption { price: o.price, ..option.clone() }),
                None => unknown.push(OfferingKey::of(option).to_string()),
            }
        }
        if priced.is_empty() {
            return Err(CloudError::InvalidConfig(format!(
                "failed to launch NodeClaim {}: no launch option is offered ({})",
                req.claim_name,
                if unknown.is_empty() { "no options given".to_string() } else { unknown.join(", ") }
            )));
        }
        priced.retain(|o| !state.unavailable.contains_key(&OfferingKey::of(o)));
        priced.sort_by(|a, b| {
            a.price
                .total_cmp(&b.price)
                .then_with(|| a.instance_type.cmp(&b.instance_type))
                .then_with(|| a.zone.cmp(&b.zone))
        });
        let spot: Vec<LaunchOption> =
            priced.iter().filter(|o| o.capacity_type == CapacityType::Spot).cloned().collect();
        if spot.is_empty() { Ok(priced) } else { Ok(spot) }
    }

    fn new_instance_id(rng: &mut ChaCha8Rng) -> String {
        // Real ids are 17 hex digits after `i-`.
        format!("i-0{:016x}", rng.random::<u64>())
    }
}

#[async_trait]
impl CloudProvider for SimCloud {
    fn name(&self) -> &'static str {
        "sim"
    }

    async fn catalog(&self) -> Result<Arc<Catalog>> {
        let now = self.clock.now();
        let unavailable: Vec<OfferingKey> = {
            let state = self.state.lock();
            state.unavailable.iter().filter(|(_, until)| now < **until).map(|(k, _)| k.clone()).collect()
        };
        if unavailable.is_empty() {
            return Ok(self.catalog.clone());
        }
        let types = self
            .catalog
            .instance_types
            .iter()
            .map(|t| {
                let mut t = (**t).clone();
                for o in &mut t.offerings {
                    let key = OfferingKey {
                        instance_type: t.name.clone(),
                        zone: o.zone.clone(),
                        capacity_type: o.capacity_type,
                    };
                    if unavailable.binary_search(&key).is_ok() {
                        o.available = false;
                    }
                }
                t
            })
            .collect();
        Ok(Arc::new(Catalog::new(types)))
    }

    async fn create(&self, req: &LaunchRequest) -> Result<Instance> {
        let now = self.clock.now();
        let mut state = self.state.lock();
        let state = &mut *state;
        state.unavailable.retain(|_, until| now < *until);
        let order = self.launch_order(req, state)?;
        let mut tried = Vec::new();
        for option in order {
            let key = OfferingKey::of(&option);
            if state.outages.iter().any(|o| o.offering == key && o.active(now)) {
                state.unavailable.insert(key.clone(), now + UNAVAILABLE_TTL);
                state.capacity_errors.push((key.clone(), now));
                tried.push((key.instance_type, key.zone, key.capacity_type));
                continue;
            }
            let id = Self::new_instance_id(&mut state.rng);
            let mut tags = req.tags.clone();
            tags.insert(labels::BALLAST_NODE_CLAIM.to_string(), req.claim_name.clone());
            tags.insert(labels::BALLAST_PROVISIONER.to_string(), req.provisioner.clone());
            let instance = Instance {
                provider_id: format!("aws:///{}/{}", option.zone, id),
                id: id.clone(),
                instance_type: option.instance_type,
                zone: option.zone,
                capacity_type: option.capacity_type,
                price: option.price,
                launched_at: now,
                state: InstanceState::Pending,
                tags,
            };
            state
                .instances
                .insert(id, SimInstance { instance: instance.clone(), registered: false, reclaim_at: None });
            return Ok(instance);
        }
        if tried.is_empty() {
            // Every option was already in the unavailable cache.
            tried = req
                .options
                .iter()
                .map(|o| (o.instance_type.clone(), o.zone.clone(), o.capacity_type))
                .collect();
        }
        Err(CloudError::InsufficientCapacity { offerings: tried })
    }

    async fn delete(&self, provider_id: &str) -> Result<()> {
        let id = instance_id(provider_id);
        let mut state = self.state.lock();
        state.instance_interruptions.remove(id);
        state.notices.retain(|n| n.instance_id != id);
        match state.instances.remove(id) {
            Some(_) => Ok(()),
            None => Err(CloudError::NotFound(provider_id.to_string())),
        }
    }

    async fn get(&self, provider_id: &str) -> Result<Instance> {
        let state = self.state.lock();
        state
            .instances
            .get(instance_id(provider_id))
            .map(|s| s.instance.clone())
            .ok_or_else(|| CloudError::NotFound(provider_id.to_string()))
    }

    fn mark_unavailable(&self, instance_type: &str, zone: &str, capacity_type: CapacityType) {
        let key = OfferingKey { instance_type: instance_type.into(), zone: zone.into(), capacity_type };
        self.state.lock().unavailable.insert(key, self.clock.now() + UNAVAILABLE_TTL);
    }

    async fn list(&self) -> Result<Vec<Instance>> {
        Ok(self.state.lock().instances.values().map(|s| s.instance.clone()).collect())
    }
}

/// `aws:///us-east-1a/i-0abc` → `i-0abc`; a bare id passes through.
pub fn instance_id(provider_id: &str) -> &str {
    provider_id.rsplit('/').next().unwrap_or(provider_id)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        clock::ManualClock,
        cloud::{InstanceType, Offering},
        resources::Resources,
    };

    const GIB: i64 = 1 << 30;

    fn offering(zone: &str, capacity_type: CapacityType, price: f64) -> Offering {
        Offering { zone: zone.to_string(), capacity_type, price, available: true }
    }

    /// c5.large and m5.large in two zones, on-demand and spot.
    pub(crate) fn small_catalog() -> Catalog {
        let mk = |name: &str, mem_gib: i64, od: f64, spot_a: f64, spot_b: f64| InstanceType {
            name: name.to_string(),
            capacity: Resources::new(2000, mem_gib * GIB).with("pods", 29),
            labels: [(labels::INSTANCE_TYPE.to_string(), name.to_string())].into(),
            offerings: vec![
                offering("us-east-1a", CapacityType::OnDemand, od),
                offering("us-east-1b", CapacityType::OnDemand, od),
                offering("us-east-1a", CapacityType::Spot, spot_a),
                offering("us-east-1b", CapacityType::Spot, spot_b),
            ],
        };
        Catalog::new(vec![mk("c5.large", 4, 0.085, 0.035, 0.031), mk("m5.large", 8, 0.096, 0.040, 0.042)])
    }

    fn start() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn cloud(seed: u64) -> (SimCloud, ManualClock) {
        let clock = ManualClock::new(start());
        let config = SimCloudConfig { seed, ..SimCloudConfig::default() };
        (SimCloud::new(Arc::new(small_catalog()), Arc::new(clock.clone()), config), clock)
    }

    /// Every offering of the small catalog allowed by `capacity_types`, as launch options.
    fn request(claim: &str, capacity_types: &[CapacityType]) -> LaunchRequest {
        let options = small_catalog()
            .instance_types
            .iter()
            .flat_map(|t| {
                t.offerings.iter().filter(|o| capacity_types.contains(&o.capacity_type)).map(|o| {
                    LaunchOption {
                        instance_type: t.name.clone(),
                        zone: o.zone.clone(),
                        capacity_type: o.capacity_type,
                        price: o.price,
                    }
                })
            })
            .collect();
        LaunchRequest {
            claim_name: claim.to_string(),
            provisioner: "default".to_string(),
            node_template: None,
            options,
            labels: Default::default(),
            taints: vec![],
            startup_taints: vec![],
            tags: Default::default(),
        }
    }

    fn key(t: &str, zone: &str, c: CapacityType) -> OfferingKey {
        OfferingKey { instance_type: t.to_string(), zone: zone.to_string(), capacity_type: c }
    }

    #[tokio::test]
    async fn same_seed_gives_same_ids_and_choices() {
        async fn launches(seed: u64) -> Vec<(String, String, String)> {
            let (cloud, clock) = cloud(seed);
            let mut out = Vec::new();
            for i in 0..5 {
                let inst = cloud.create(&request(&format!("c{i}"), &[CapacityType::OnDemand])).await.unwrap();
                out.push((inst.id, inst.provider_id, inst.instance_type));
                clock.advance(SignedDuration::from_secs(1));
            }
            out
        }
        let a = launches(7).await;
        assert_eq!(a, launches(7).await);
        assert_ne!(a[0].0, launches(8).await[0].0);
        let (id, provider_id, _) = &a[0];
        assert!(id.starts_with("i-0") && id.len() == 19, "{id}");
        assert!(id[2..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(provider_id, &format!("aws:///us-east-1a/{id}"));
    }

    #[tokio::test]
    async fn spot_is_preferred_when_allowed_and_on_demand_otherwise() {
        let (cloud, _) = cloud(1);
        let spot = cloud.create(&request("a", &[CapacityType::Spot, CapacityType::OnDemand])).await.unwrap();
        // Cheapest spot: c5.large in us-east-1b at 0.031.
        assert_eq!((spot.instance_type.as_str(), spot.zone.as_str()), ("c5.large", "us-east-1b"));
        assert_eq!((spot.capacity_type, spot.price), (CapacityType::Spot, 0.031));

        let od = cloud.create(&request("b", &[CapacityType::OnDemand])).await.unwrap();
        assert_eq!((od.instance_type.as_str(), od.zone.as_str()), ("c5.large", "us-east-1a"));
        assert_eq!(od.capacity_type, CapacityType::OnDemand);
        assert_eq!(od.tags[labels::BALLAST_NODE_CLAIM], "b");
    }

    #[tokio::test]
    async fn on_demand_is_the_fallback_when_every_spot_offering_is_unavailable() {
        let (cloud, _) = cloud(1);
        for (t, z) in [("c5.large", "us-east-1a"), ("c5.large", "us-east-1b"), ("m5.large", "us-east-1a")] {
            cloud.inject_capacity_error(key(t, z, CapacityType::Spot), start(), None);
        }
        // The cheapest spot left is m5.large/us-east-1b; the first call skips the three failing pools.
        let both = request("a", &[CapacityType::Spot, CapacityType::OnDemand]);
        let first = cloud.create(&both).await.unwrap();
        assert_eq!((first.instance_type.as_str(), first.zone.as_str()), ("m5.large", "us-east-1b"));
        cloud.inject_capacity_error(key("m5.large", "us-east-1b", CapacityType::Spot), start(), None);
        let err = cloud.create(&both).await.unwrap_err();
        assert!(
            matches!(&err, CloudError::InsufficientCapacity { offerings } if offerings.len() == 1),
            "{err}"
        );
        // Now no spot offering is available: on-demand, cheapest first.
        let od = cloud.create(&both).await.unwrap();
        assert_eq!((od.instance_type.as_str(), od.capacity_type), ("c5.large", CapacityType::OnDemand));
    }

    #[tokio::test]
    async fn capacity_errors_mark_offerings_unavailable_until_the_cache_expires() {
        let (cloud, clock) = cloud(1);
        let od = key("c5.large", "us-east-1a", CapacityType::OnDemand);
        let until = start() + SignedDuration::from_secs(60);
        cloud.inject_capacity_error(od.clone(), start(), Some(until));
        let only = LaunchRequest {
            options: request("a", &[CapacityType::OnDemand])
                .options
                .into_iter()
                .filter(|o| o.instance_type == "c5.large" && o.zone == "us-east-1a")
                .collect(),
            ..request("a", &[])
        };
        let err = cloud.create(&only).await.unwrap_err();
        assert!(matches!(&err, CloudError::InsufficientCapacity { offerings }
            if offerings == &[("c5.large".to_string(), "us-east-1a".to_string(), CapacityType::OnDemand)]));
        assert!(err.is_retryable());
        assert_eq!(cloud.take_capacity_errors(), [(od.clone(), start())]);
        assert!(cloud.take_capacity_errors().is_empty(), "reported once");

        let available = |c: &Catalog| {
            c.get("c5.large")
                .unwrap()
                .offerings
                .iter()
                .find(|o| o.zone == od.zone && o.capacity_type == od.capacity_type)
                .unwrap()
                .available
        };
        assert!(!available(&cloud.catalog().await.unwrap()));
        // With the offering cached as unavailable, the next-cheapest on-demand pool is used.
        let next = cloud.create(&request("b", &[CapacityType::OnDemand])).await.unwrap();
        assert_eq!((next.instance_type.as_str(), next.zone.as_str()), ("c5.large", "us-east-1b"));

        // The outage ended at +60s but the cache holds the offering until +180s.
        clock.advance(SignedDuration::from_secs(179));
        assert!(!available(&cloud.catalog().await.unwrap()));
        clock.advance(SignedDuration::from_secs(1));
        assert!(available(&cloud.catalog().await.unwrap()));
        assert_eq!(cloud.create(&only).await.unwrap().zone, "us-east-1a");
    }

    #[tokio::test]
    async fn delete_makes_get_return_not_found() {
        let (cloud, _) = cloud(1);
        let inst = cloud.create(&request("a", &[CapacityType::OnDemand])).await.unwrap();
        assert_eq!(cloud.get(&inst.provider_id).await.unwrap().id, inst.id);
        assert_eq!(cloud.list().await.unwrap().len(), 1);
        cloud.delete(&inst.provider_id).await.unwrap();
        assert!(matches!(cloud.get(&inst.provider_id).await, Err(CloudError::NotFound(_))));
        assert!(matches!(cloud.delete(&inst.provider_id).await, Err(CloudError::NotFound(_))));
        assert!(cloud.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn instances_register_after_launch_and_registration_delays() {
        let (cloud, clock) = cloud(1);
        let inst = cloud.create(&request("a", &[CapacityType::OnDemand])).await.unwrap();
        assert_eq!(inst.state, InstanceState::Pending);
        assert_eq!(cloud.next_due(), Some(start() + SignedDuration::from_secs(35)));
        clock.advance(SignedDuration::from_secs(5));
        assert!(cloud.poll().registered.is_empty());
        assert_eq!(cloud.get(&inst.provider_id).await.unwrap().state, InstanceState::Running);
        clock.advance(SignedDuration::from_secs(30));
        let events = cloud.poll();
        assert_eq!(events.registered.iter().map(|i| &i.id).collect::<Vec<_>>(), [&inst.id]);
        assert_eq!(cloud.next_due(), None);
        assert!(cloud.poll().registered.is_empty(), "registers once");
    }

    #[tokio::test]
    async fn spot_interruptions_notify_then_reclaim() {
        let (cloud, clock) = cloud(1);
        let spot = request("a", &[CapacityType::Spot]);
        let a = cloud.create(&spot).await.unwrap();
        let b = cloud.create(&spot).await.unwrap();
        let od = cloud.create(&request("c", &[CapacityType::OnDemand])).await.unwrap();
        assert_eq!((a.instance_type.as_str(), a.zone.as_str()), ("c5.large", "us-east-1b"));

        let at = start() + SignedDuration::from_secs(60);
        cloud.interrupt_offering(key("c5.large", "us-east-1b", CapacityType::Spot), at);
        cloud.interrupt_offering(key("c5.large", "us-east-1a", CapacityType::OnDemand), at);
        clock.set(at);
        let events = cloud.poll();
        let noticed: Vec<&str> = events.notices.iter().map(|n| n.instance_id.as_str()).collect();
        let mut expected = vec![a.id.as_str(), b.id.as_str()];
        expected.sort();
        assert_eq!(noticed, expected, "spot instances only, ordered by id");
        assert_eq!(events.notices[0].reclaim_at, at + INTERRUPTION_NOTICE);
        assert_eq!(cloud.interruption_notices().len(), 2);
        cloud.acknowledge_interruption(&a.id);
        assert_eq!(cloud.interruption_notices().len(), 1);

        // The interruption loop deletes `a` itself; the cloud reclaims `b`.
        cloud.delete(&a.provider_id).await.unwrap();
        clock.advance(INTERRUPTION_NOTICE);
        let events = cloud.poll();
        assert_eq!(events.reclaimed.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [b.id.as_str()]);
        assert!(matches!(cloud.get(&b.provider_id).await, Err(CloudError::NotFound(_))));
        assert_eq!(cloud.get(&od.provider_id).await.unwrap().id, od.id);

        assert!(matches!(cloud.interrupt_instance(&od.id, clock.now()), Err(CloudError::InvalidConfig(_))));
        assert!(matches!(cloud.interrupt_instance(&a.id, clock.now()), Err(CloudError::NotFound(_))));
        let c = cloud.create(&spot).await.unwrap();
        cloud.interrupt_instance(&c.id, clock.now()).unwrap();
        assert_eq!(
            cloud.poll().notices.iter().map(|n| n.instance_id.as_str()).collect::<Vec<_>>(),
            [c.id.as_str()]
        );
    }

    #[test]
    fn instance_id_is_the_last_provider_id_segment() {
        assert_eq!(instance_id("aws:///us-east-1a/i-0abc"), "i-0abc");
        assert_eq!(instance_id("i-0abc"), "i-0abc");
    }
}
