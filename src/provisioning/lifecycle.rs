//! The NodeClaim lifecycle (Karpenter's nodeclaim lifecycle controller): every claim moves
//! created → launched → registered → initialized, one idempotent step at a time, derived from the snapshot.
//!
//! - **Launch.** A claim without `status.providerID` gets an instance: first the one already tagged
//!   `ballast.dev/nodeclaim=<claim>` (a restart between the launch and the status write adopts it instead of
//!   launching a second), else a new one over the claim's own requirements, so nothing in memory is needed.
//! - **Register.** A Node whose `spec.providerID` is the claim's: the claim records the node name, capacity and a
//!   `Registered` condition; the node gets the claim's labels and `ballast.dev/nodeclaim`.
//! - **Initialize.** The node is Ready, its startup and not-ready taints are gone and every extended resource the
//!   claim requested shows in its allocatable: `Initialized`.
//! - **Timeouts.** A claim not launched within the launch timeout, or launched but not registered within the
//!   registration timeout, is deleted; termination terminates its instance and the pods are planned again.

use std::{collections::BTreeMap, sync::Arc};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tracing::{info, warn};

use crate::{
    actuator::{self, Actuator, EventRecord, EventType, batch::StatusBatcher},
    api::{Condition, NodeClaim, NodeClaimStatus, Quantity, labels},
    cloud::{
        Catalog, CloudError, CloudProvider, Instance, InstanceState, InstanceType, LaunchOption,
        LaunchRequest,
    },
    model::{Node, Taint, TaintEffect},
    resources::{self, Resources},
    scheduling::{
        ValueSet,
        allocatable::{self, KubeletSettings},
        template::parse_operator,
    },
    state::Snapshot,
};

/// Karpenter's registration TTL: a node that has not joined by then is not going to.
pub const DEFAULT_TIMEOUT: SignedDuration = SignedDuration::from_secs(15 * 60);
/// Status writes in flight at once.
const STATUS_WRITE_CONCURRENCY: usize = 16;

pub const LAUNCHED: &str = "Launched";
pub const REGISTERED: &str = "Registered";
pub const INITIALIZED: &str = "Initialized";

/// Taints a node carries until its agents finish starting it; an initialized node has none of them.
const NOT_READY_TAINTS: [&str; 3] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.cloudprovider.kubernetes.io/uninitialized",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read the instance-type catalog: {0}")]
    Catalog(#[source] CloudError),
    #[error("failed to list instances to adopt: {0}")]
    List(#[source] CloudError),
    #[error("failed to launch NodeClaim {claim}: {source}")]
    Launch {
        claim: String,
        #[source]
        source: CloudError,
    },
    #[error("failed to {action} for NodeClaim {claim}: {source}")]
    Kube {
        action: &'static str,
        claim: String,
        #[source]
        source: actuator::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From creation to a recorded instance.
    pub launch: SignedDuration,
    /// From the launch to a Node with the claim's provider id.
    pub registration: SignedDuration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { launch: DEFAULT_TIMEOUT, registration: DEFAULT_TIMEOUT }
    }
}

/// One transition of one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No instance recorded: adopt the instance tagged for the claim, or launch one.
    Launch {
        claim: String,
    },
    Register {
        claim: String,
        node: String,
    },
    Initialize {
        claim: String,
        node: String,
    },
    /// Past a timeout: delete the claim.
    Expire {
        claim: String,
        reason: String,
    },
}

/// Steps for every claim, in claim order. Pure.
pub fn plan(snap: &Snapshot, timeouts: &Timeouts, now: Timestamp) -> Vec<Step> {
    let mut steps = Vec::new();
    for claim in snap.node_claims.values().filter(|c| c.metadata.deletion_timestamp.is_none()) {
        let name = claim.name_any();
        let status = claim.status.as_ref();
        let Some(provider_id) = status.and_then(|s| s.provider_id.as_deref()) else {
            let age = now.duration_since(created(claim).unwrap_or(now));
            steps.push(if age >= timeouts.launch {
                Step::Expire { claim: name, reason: format!("not launched within {}", fmt(timeouts.launch)) }
            } else {
                Step::Launch { claim: name }
            });
            continue;
        };
        let registered = status.and_then(|s| s.node_name.as_deref());
        let node = match registered {
            Some(node) => snap.nodes.get(node),
            None => snap.nodes.values().find(|n| n.provider_id.as_deref() == Some(provider_id)),
        };
        let Some(node) = node else {
            let launched = condition_time(claim, LAUNCHED).or_else(|| created(claim)).unwrap_or(now);
            if registered.is_none() && now.duration_since(launched) >= timeouts.registration {
                steps.push(Step::Expire {
                    claim: name,
                    reason: format!("no node registered within {}", fmt(timeouts.registration)),
                });
            }
            continue;
        };
        if registered.is_none() {
            steps.push(Step::Register { claim: name.clone(), node: node.name.clone() });
        }
        if !has_condition(claim, INITIALIZED) && is_initialized(claim, node) {
            steps.push(Step::Initialize { claim: name, node: node.name.clone() });
        }
    }
    steps
}

/// When [`plan`] next has work without any object changing: a claim to launch (now) or a timeout.
pub fn next_wake(snap: &Snapshot, timeouts: &Timeouts, now: Timestamp) -> Option<Timestamp> {
    snap.node_claims
        .values()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|claim| {
            let status = claim.status.as_ref();
            match status.and_then(|s| s.provider_id.as_deref()) {
                None => Some(now),
                Some(_) if status.and_then(|s| s.node_name.as_ref()).is_none() => {
                    let launched = condition_time(claim, LAUNCHED).or_else(|| created(claim)).unwrap_or(now);
                    Some(launched + timeouts.registration)
                }
                Some(_) => None,
            }
        })
        .min()
}

/// Ready, rid of its startup and not-ready taints, and reporting every extended resource the claim asked for.
fn is_initialized(claim: &NodeClaim, node: &Node) -> bool {
    let startup: Vec<Taint> =
        claim.spec.startup_taints.iter().flatten().filter_map(|t| to_taint(t).ok()).collect();
    let tainted = node.taints.iter().any(|t| {
        NOT_READY_TAINTS.contains(&t.key.as_str())
            || startup.iter().any(|s| s.key == t.key && s.effect == t.effect)
    });
    let requested = requests(claim).unwrap_or_default();
    let extended_reported = requested
        .iter()
        .filter(|(name, _)| {
            ![resources::CPU, resources::MEMORY, resources::EPHEMERAL_STORAGE, resources::PODS].contains(name)
        })
        .all(|(name, _)| node.allocatable.get(name) > 0);
    node.ready && !tainted && extended_reported
}

fn created(claim: &NodeClaim) -> Option<Timestamp> {
    claim.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn condition_time(claim: &NodeClaim, type_: &str) -> Option<Timestamp> {
    claim
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

fn has_condition(claim: &NodeClaim, type_: &str) -> bool {
    claim
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// `15m`, `1h`, `90s`: the largest whole unit.
fn fmt(d: SignedDuration) -> String {
    match d.as_secs() {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Sets condition `type_` to True (replacing an earlier one of the same type).
fn set_condition(status: &mut NodeClaimStatus, type_: &str, now: Timestamp) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_string(),
        status: "True".to_string(),
        reason: None,
        message: None,
        last_transition_time: Some(Time(now)),
    });
}

/// The claim's `spec.resources.requests`.
fn requests(claim: &NodeClaim) -> Result<Resources, resources::Error> {
    Resources::parse(
        "spec.resources.requests",
        claim.spec.resources.requests.iter().map(|(k, v)| (k.as_str(), v.0.as_str())),
    )
}

pub fn to_taint(t: &k8s_openapi::api::core::v1::Taint) -> Result<Taint, String> {
    let effect = match t.effect.as_str() {
        "NoSchedule" => TaintEffect::NoSchedule,
        "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
        "NoExecute" => TaintEffect::NoExecute,
        other => return Err(format!("taint {}: unknown effect {other:?}", t.key)),
    };
    Ok(Taint { key: t.key.clone(), value: t.value.clone().unwrap_or_default(), effect })
}

/// Every offering the claim may launch on, cheapest first: the instance types, zones and capacity types its
/// requirements allow, among the types whose allocatable fits its requests. Derived from the claim alone, so a
/// restarted process launches what the plan chose.
pub fn launch_options(claim: &NodeClaim, catalog: &Catalog) -> Vec<LaunchOption> {
    let mut allowed = BTreeMap::from([
        (labels::INSTANCE_TYPE, ValueSet::any()),
        (labels::ZONE, ValueSet::any()),
        (labels::CAPACITY_TYPE, ValueSet::any()),
    ]);
    for r in &claim.spec.requirements {
        let Some(set) = allowed.get_mut(r.key.as_str()) else { continue };
        let parsed = parse_operator(&r.operator)
            .and_then(|op| ValueSet::from_clause(&r.key, op, r.values.as_deref().unwrap_or_default()).ok());
        match parsed {
            Some(s) => *set = set.intersect(&s),
            // A requirement ballast cannot read allows nothing rather than everything.
            None => return Vec::new(),
        }
    }
    let Ok(requested) = requests(claim) else { return Vec::new() };
    let kubelet =
        claim.spec.kubelet.as_ref().and_then(|k| KubeletSettings::from_api(k).ok()).unwrap_or_default();
    let mut options: Vec<LaunchOption> = catalog
        .instance_types
        .iter()
        .filter(|it| allowed[labels::INSTANCE_TYPE].has(&it.name))
        .filter(|it| {
            requested.fits_in(&allocatable::allocatable(
                it,
                &kubelet,
                allocatable::DEFAULT_VM_MEMORY_OVERHEAD_PERCENT,
            ))
        })
        .flat_map(|it| {
            it.offerings
                .iter()
                .filter(|o| o.available)
                .filter(|o| {
                    allowed[labels::ZONE].has(&o.zone)
                        && allowed[labels::CAPACITY_TYPE].has(o.capacity_type.as_str())
                })
                .map(|o| LaunchOption {
                    instance_type: it.name.clone(),
                    zone: o.zone.clone(),
                    capacity_type: o.capacity_type,
                    price: o.price,
                })
        })
        .collect();
    options.sort_by(|a, b| {
        a.price
            .total_cmp(&b.price)
            .then_with(|| (&a.instance_type, &a.zone).cmp(&(&b.instance_type, &b.zone)))
    });
    options
}

/// The type a claim is (or will most likely be) launched as: the recorded one, else its cheapest option.
pub fn expected_instance_type<'a>(claim: &NodeClaim, catalog: &'a Catalog) -> Option<&'a Arc<InstanceType>> {
    match claim.status.as_ref().and_then(|s| s.instance_type.as_deref()) {
        Some(t) => catalog.get(t),
        None => launch_options(claim, catalog).first().and_then(|o| catalog.get(&o.instance_type)),
    }
}

/// Launches through the cloud; on insufficient capacity, tries the options not yet tried.
pub async fn launch(
    cloud: &dyn CloudProvider,
    claim: &NodeClaim,
    mut options: Vec<LaunchOption>,
) -> Result<Instance, CloudError> {
    let taints = |list: &Option<Vec<k8s_openapi::api::core::v1::Taint>>| -> Result<Vec<Taint>, CloudError> {
        list.iter().flatten().map(|t| to_taint(t).map_err(CloudError::InvalidConfig)).collect()
    };
    let mut request = LaunchRequest {
        claim_name: claim.name_any(),
        provisioner: claim.spec.provisioner.clone(),
        node_template: claim.spec.node_template.clone(),
        options: Vec::new(),
        labels: claim.spec.labels.clone().unwrap_or_default(),
        taints: taints(&claim.spec.taints)?,
        startup_taints: taints(&claim.spec.startup_taints)?,
        tags: BTreeMap::new(),
    };
    loop {
        request.options = options.clone();
        match cloud.create(&request).await {
            Err(CloudError::InsufficientCapacity { offerings }) => {
                let before = options.len();
                options.retain(|o| {
                    !offerings
                        .iter()
                        .any(|(t, z, c)| *t == o.instance_type && *z == o.zone && *c == o.capacity_type)
                });
                if options.is_empty() || options.len() == before {
                    return Err(CloudError::InsufficientCapacity { offerings });
                }
            }
            other => return other,
        }
    }
}

/// The NodeClaim status recording a launched instance (keeping what `current` already says).
pub fn launched_status(
    current: Option<&NodeClaimStatus>,
    instance: &Instance,
    now: Timestamp,
) -> NodeClaimStatus {
    let mut status = current.cloned().unwrap_or_default();
    status.provider_id = Some(instance.provider_id.clone());
    status.instance_type = Some(instance.instance_type.clone());
    status.zone = Some(instance.zone.clone());
    status.capacity_type = Some(instance.capacity_type.to_string());
    status.price = Some(format!("{}", instance.price));
    set_condition(&mut status, LAUNCHED, now);
    status
}

fn quantities(r: &Resources) -> BTreeMap<String, Quantity> {
    r.to_quantity_map().into_iter().map(|(k, v)| (k, Quantity(v))).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TransitionLabels {
    /// `launched`, `adopted`, `registered`, `initialized`, `launch_failed`, `expired`.
    pub transition: String,
}

#[derive(Debug, Clone, Default)]
pub struct LifecycleMetrics {
    pub transitions: Family<TransitionLabels, Counter>,
}

impl LifecycleMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "nodeclaim_transitions",
            "NodeClaim lifecycle transitions",
            metrics.transitions.clone(),
        );
        metrics
    }

    fn count(&self, transition: &str) {
        self.transitions.get_or_create(&TransitionLabels { transition: transition.to_string() }).inc();
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub launched: Vec<(String, Instance)>,
    /// Claims that found the instance launched for them before a restart.
    pub adopted: Vec<(String, Instance)>,
    pub registered: Vec<(String, String)>,
    pub initialized: Vec<String>,
    /// Claims deleted, and why (a launch that cannot succeed, or a timeout).
    pub deleted: Vec<(String, String)>,
}

/// The lifecycle loop. Holds no state a restart would need: the status batcher only coalesces the writes of a pass.
pub struct Lifecycle {
    cloud: Arc<dyn CloudProvider>,
    kube: Arc<dyn Actuator>,
    statuses: StatusBatcher,
    timeouts: Timeouts,
    metrics: LifecycleMetrics,
    /// Instances this process launched whose claim the index does not show launched yet (the watch lags the
    /// status write, and a cloud listing may lag the launch): adopted again rather than launched twice.
    recent: parking_lot::Mutex<BTreeMap<String, Instance>>,
}

impl Lifecycle {
    pub fn new(
        cloud: Arc<dyn CloudProvider>,
        kube: Arc<dyn Actuator>,
        timeouts: Timeouts,
        metrics: LifecycleMetrics,
    ) -> Self {
        let statuses = StatusBatcher::new(kube.clone(), STATUS_WRITE_CONCURRENCY);
        Self { cloud, kube, statuses, timeouts, metrics, recent: Default::default() }
    }

    pub fn next_wake(&self, snap: &Snapshot, now: Timestamp) -> Option<Timestamp> {
        next_wake(snap, &self.timeouts, now)
    }

    /// One pass: plan, act on every step, then write the statuses it produced. A failed step is logged and
    /// retried on the next pass; the first error is returned after the rest were attempted.
    pub async fn reconcile(&mut self, snap: &Snapshot, now: Timestamp) -> (Report, Option<Error>) {
        let mut report = Report::default();
        if !snap.synced() {
            return (report, None);
        }
        self.recent.lock().retain(|claim, _| {
            snap.node_claims
                .get(claim)
                .is_some_and(|c| c.status.as_ref().and_then(|s| s.provider_id.as_ref()).is_none())
        });
        let steps = plan(snap, &self.timeouts, now);
        let mut first_error = None;
        let mut launch = Launcher::default();
        // Statuses of this pass, built on each other (register then initialize in one pass).
        let mut statuses: BTreeMap<String, NodeClaimStatus> = BTreeMap::new();
        for step in steps {
            if let Err(e) = self.act(snap, &step, &mut launch, &mut statuses, &mut report, now).await {
                warn!(error = %e, ?step, "NodeClaim lifecycle step failed; retrying next pass");
                first_error.get_or_insert(e);
            }
        }
        for (name, status) in statuses {
            self.statuses.submit(name, status);
        }
        let flushed = self.statuses.flush().await;
        if flushed.retried > 0 || flushed.dropped > 0 {
            warn!(?flushed, "Some NodeClaim status writes failed");
        }
        (report, first_error)
    }

    async fn act(
        &self,
        snap: &Snapshot,
        step: &Step,
        launcher: &mut Launcher,
        statuses: &mut BTreeMap<String, NodeClaimStatus>,
        report: &mut Report,
        now: Timestamp,
    ) -> Result<(), Error> {
        let kube_err = |action: &'static str, claim: &str| {
            let claim = claim.to_string();
            move |source| Error::Kube { action, claim, source }
        };
        let current = |statuses: &BTreeMap<String, NodeClaimStatus>, name: &str| {
            statuses
                .get(name)
                .cloned()
                .or_else(|| snap.node_claims.get(name)?.status.clone())
                .unwrap_or_default()
        };
        match step {
            Step::Launch { claim: name } => {
                let Some(claim) = snap.node_claims.get(name) else { return Ok(()) };
                let known = self.recent.lock().get(name).cloned();
                let adoptable = match known {
                    Some(instance) => Some(instance),
                    None => launcher.adoptable(&*self.cloud, name).await?,
                };
                if let Some(instance) = adoptable {
                    info!(nodeclaim = %name, provider_id = %instance.provider_id, "Adopted the instance launched for the claim");
                    statuses.insert(name.clone(), launched_status(claim.status.as_ref(), &instance, now));
                    self.metrics.count("adopted");
                    report.adopted.push((name.clone(), instance));
                    return Ok(());
                }
                let catalog = launcher.catalog(&*self.cloud).await?;
                let options = launch_options(claim, &catalog);
                let result = if options.is_empty() {
                    Err(CloudError::InvalidConfig("no available offering satisfies its requirements".into()))
                } else {
                    launch(&*self.cloud, claim, options).await
                };
                match result {
                    Ok(instance) => {
                        info!(
                            nodeclaim = %name,
                            instance_type = %instance.instance_type,
                            zone = %instance.zone,
                            capacity_type = %instance.capacity_type,
                            "Launched"
                        );
                        statuses.insert(name.clone(), launched_status(claim.status.as_ref(), &instance, now));
                        self.recent.lock().insert(name.clone(), instance.clone());
                        self.metrics.count("launched");
                        report.launched.push((name.clone(), instance));
                    }
                    // Throttled or transient: the next pass tries again.
                    Err(e) if e.is_retryable() && !matches!(e, CloudError::InsufficientCapacity { .. }) => {
                        return Err(Error::Launch { claim: name.clone(), source: e });
                    }
                    Err(e) => {
                        // Keep no claim for an instance that cannot exist; its pods are planned again.
                        let reason = format!("launch failed: {e}");
                        self.delete(claim, "LaunchFailed", &reason).await?;
                        self.metrics.count("launch_failed");
                        report.deleted.push((name.clone(), reason));
                    }
                }
            }
            Step::Register { claim: name, node } => {
                let Some(claim) = snap.node_claims.get(name) else { return Ok(()) };
                let Some(n) = snap.nodes.get(node) else { return Ok(()) };
                let mut node_labels = claim.spec.labels.clone().unwrap_or_default();
                node_labels.insert(labels::BALLAST_NODE_CLAIM.to_string(), name.clone());
                node_labels.insert(labels::BALLAST_REGISTERED.to_string(), "true".to_string());
                if node_labels.iter().any(|(k, v)| n.labels.get(k) != Some(v)) {
                    self.kube
                        .label_node(node, &node_labels)
                        .await
                        .map_err(kube_err("label the node", name))?;
                }
                let mut status = current(statuses, name);
                status.node_name = Some(node.clone());
                status.capacity = Some(quantities(&n.capacity));
                status.allocatable = Some(quantities(&n.allocatable));
                set_condition(&mut status, REGISTERED, now);
                statuses.insert(name.clone(), status);
                info!(nodeclaim = %name, %node, "Registered");
                self.metrics.count("registered");
                report.registered.push((name.clone(), node.clone()));
            }
            Step::Initialize { claim: name, node } => {
                if snap.nodes.get(node).is_none_or(|n| !n.labels.contains_key(labels::BALLAST_INITIALIZED)) {
                    let initialized =
                        BTreeMap::from([(labels::BALLAST_INITIALIZED.to_string(), "true".to_string())]);
                    self.kube
                        .label_node(node, &initialized)
                        .await
                        .map_err(kube_err("label the node", name))?;
                }
                let mut status = current(statuses, name);
                set_condition(&mut status, INITIALIZED, now);
                statuses.insert(name.clone(), status);
                info!(nodeclaim = %name, %node, "Initialized");
                self.metrics.count("initialized");
                report.initialized.push(name.clone());
            }
            Step::Expire { claim: name, reason } => {
                let Some(claim) = snap.node_claims.get(name) else { return Ok(()) };
                self.delete(claim, "NodeClaimTimedOut", reason).await?;
                self.metrics.count("expired");
                report.deleted.push((name.clone(), reason.clone()));
            }
        }
        Ok(())
    }

    /// Deletes the claim with a Warning event saying why; termination terminates any instance it has.
    async fn delete(&self, claim: &NodeClaim, reason: &str, message: &str) -> Result<(), Error> {
        let name = claim.name_any();
        warn!(nodeclaim = %name, %message, "Deleting NodeClaim");
        let event = EventRecord {
            api_version: "ballast.dev/v1alpha1".into(),
            kind: "NodeClaim".into(),
            namespace: None,
            name: name.clone(),
            type_: EventType::Warning,
            reason: reason.into(),
            message: message.into(),
        };
        if let Err(e) = self.kube.emit_event(&event).await {
            warn!(nodeclaim = %name, error = %e, "Failed to emit event");
        }
        match self.kube.delete_node_claim(&name).await {
            Ok(()) | Err(actuator::Error::NotFound(_)) => Ok(()),
            Err(source) => Err(Error::Kube { action: "delete", claim: name, source }),
        }
    }
}

/// Cloud reads shared by the launches of one pass: the catalog and the instances already tagged for claims.
#[derive(Default)]
struct Launcher {
    catalog: Option<Arc<Catalog>>,
    by_claim: Option<BTreeMap<String, Instance>>,
}

impl Launcher {
    async fn catalog(&mut self, cloud: &dyn CloudProvider) -> Result<Arc<Catalog>, Error> {
        if self.catalog.is_none() {
            self.catalog = Some(cloud.catalog().await.map_err(Error::Catalog)?);
        }
        Ok(self.catalog.clone().expect("set above"))
    }

    async fn adoptable(&mut self, cloud: &dyn CloudProvider, claim: &str) -> Result<Option<Instance>, Error> {
        if self.by_claim.is_none() {
            let instances = cloud.list().await.map_err(Error::List)?;
            self.by_claim = Some(
                instances
                    .into_iter()
                    .filter(|i| !matches!(i.state, InstanceState::Terminated | InstanceState::ShuttingDown))
                    .filter_map(|i| Some((i.claim_name()?.to_string(), i)))
                    .collect(),
            );
        }
        Ok(self.by_claim.as_mut().and_then(|m| m.remove(claim)))
    }
}

#[cfg(test)]
mod tests;
