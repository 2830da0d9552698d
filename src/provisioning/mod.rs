//! Karpenter-style provisioning: batch pending pods, solve, create NodeClaims.
//!
//! The loop is `plan(&Snapshot, &Catalog, nominations, now) -> Plan` (pure: builds the pools from the
//! Provisioners, treats every NodeClaim whose node has not registered as capacity, and calls
//! `scheduling::solve`) and [`Provisioner::act`] (creates each NodeClaim through the [`Actuator`] and nominates
//! its pods). Launching is the [`lifecycle`] loop's job: a claim carries everything needed to launch it, so a
//! restart between creating a claim and launching it loses nothing, and claims not yet launched are in-flight
//! capacity for the next plan (nominations are in memory; the claims are not).

pub mod args;
pub mod batcher;
pub mod lifecycle;
pub mod runner;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Taint as KubeTaint};
use kube::{ResourceExt, api::ObjectMeta};
use tracing::{info, warn};

use self::batcher::Batcher;
use crate::{
    actuator::{Actuator, EventRecord, EventType},
    api::{NodeClaim, NodeClaimSpec, Quantity, labels, node_claim::ResourceRequests},
    cloud::{Catalog, CloudError, CloudProvider, LaunchOption},
    disruption::candidate::{claim_of, is_reschedulable, is_terminating},
    model::{Operator, Pod, Taint},
    scheduling::{
        self, ExistingNode, NodePoolTemplate, Placement, PoolUsage, SolveInput, ValueSet, VolumeTopology,
        allocatable::{self, KubeletSettings},
    },
    state::Snapshot,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read the instance-type catalog: {0}")]
    Catalog(#[source] CloudError),
}

/// Pods wait this long before a plan that left them unplaced is retried.
pub const RETRY_AFTER: SignedDuration = SignedDuration::from_secs(10);

/// Pod key → the in-flight NodeClaim it waits for.
pub type Nominations = BTreeMap<String, String>;

/// What one provisioning pass decided.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// NodeClaims to create and launch.
    pub claims: Vec<PlannedClaim>,
    /// Pods that fit on NodeClaims already launched and not yet registered.
    pub nominations: Nominations,
    /// Pod key and why nothing can host it.
    pub unschedulable: Vec<(String, String)>,
    /// Provisioners left out, with the reason (bad spec).
    pub invalid_provisioners: Vec<String>,
    /// Provisioners whose limits left pods unplaced: name → the limits, for an Event.
    pub limited: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct PlannedClaim {
    /// Created with `generateName: <provisioner>-`; the API server names it.
    pub claim: NodeClaim,
    /// Cheapest first; the claim's instance-type requirement lists their types.
    pub options: Vec<LaunchOption>,
    /// Keys of the pods it is for.
    pub pods: Vec<String>,
}

/// Pods ballast must find room for, not waiting for an in-flight claim: unbound pods other than daemonset
/// pods, and the [`terminating_node_pods`].
pub fn provisionable_pods<'a>(
    snap: &'a Snapshot,
    nominations: &'a Nominations,
) -> impl Iterator<Item = &'a Arc<Pod>> {
    snap.pending_pods()
        .filter(|p| !p.is_daemonset_pod())
        .chain(terminating_node_pods(snap))
        .filter(move |p| !nominations.contains_key(&p.key()))
}

/// The pods that must move off nodes being terminated (tainted for disruption, deleting, or whose NodeClaim
/// is deleting). As Karpenter does, the provisioner schedules them like pending pods while the node
/// drains, so the capacity they need (an interrupted spot node's replacement) launches at once rather than
/// after the eviction.
pub fn terminating_node_pods(snap: &Snapshot) -> impl Iterator<Item = &Arc<Pod>> {
    snap.nodes
        .values()
        .filter(|n| is_terminating(n, claim_of(snap, n).map(|c| &**c)))
        .flat_map(|n| snap.pods_on_node(&n.name))
        .filter(|p| is_reschedulable(p))
}

/// Decides which NodeClaims to launch for the provisionable pods. Pure.
pub fn plan(snap: &Snapshot, catalog: &Catalog, nominations: &Nominations, _now: Timestamp) -> Plan {
    let mut out = Plan::default();
    let mut pools: BTreeMap<String, NodePoolTemplate> = BTreeMap::new();
    for provisioner in snap.provisioners.values() {
        if provisioner.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = provisioner.name_any();
        let template = provisioner
            .spec
            .provider_ref
            .as_ref()
            .and_then(|r| snap.node_templates.get(&r.name))
            .map(|t| t.as_ref());
        match NodePoolTemplate::from_provisioner(
            provisioner,
            template,
            catalog,
            pool_usage(snap, catalog, &name),
        ) {
            Ok(pool) => {
                pools.insert(name, pool);
            }
            Err(e) => out.invalid_provisioners.push(e.to_string()),
        }
    }

    let mut existing: Vec<ExistingNode> = snap
        .nodes
        .values()
        // A terminating node's capacity is going away; its pods are scheduled below.
        .filter(|n| n.ready && !is_terminating(n, claim_of(snap, n).map(|c| &**c)))
        .map(|n| ExistingNode {
            name: n.name.clone(),
            labels: n.labels.clone(),
            taints: n.taints.clone(),
            allocatable: n.allocatable.clone(),
            pods: snap.pods_on_node(&n.name).cloned().collect(),
            unschedulable: n.unschedulable || n.deleting.is_some(),
            in_flight: false,
        })
        .collect();
    let in_flight: BTreeSet<String> = in_flight_claims(snap).map(|c| c.name_any()).collect();
    for claim in in_flight_claims(snap) {
        let name = claim.name_any();
        let pods = nominations
            .iter()
            .filter(|(_, c)| **c == name)
            .filter_map(|(pod, _)| snap.pods.get(pod))
            .filter(|p| p.is_pending())
            .cloned()
            .collect();
        if let Some(node) = in_flight_node(claim, catalog, pools.get(&claim.spec.provisioner), pods) {
            existing.push(node);
        }
    }

    let pending: Vec<Arc<Pod>> = snap
        .pending_pods()
        .filter(|p| !p.is_daemonset_pod())
        .chain(terminating_node_pods(snap))
        .filter(|p| nominations.get(&p.key()).is_none_or(|c| !in_flight.contains(c)))
        .cloned()
        .collect();
    if pending.is_empty() {
        return out;
    }
    let input = SolveInput {
        existing,
        pending,
        pools: pools.values().cloned().collect(),
        daemonsets: snap.daemonsets.values().cloned().collect(),
        volumes: volume_topology(snap),
        namespace_labels: BTreeMap::new(),
    };
    let results = scheduling::solve(&input);

    for (pod, placement) in &results.placements {
        if let Placement::Existing(node) = placement
            && in_flight.contains(node)
        {
            out.nominations.insert(pod.clone(), node.clone());
        }
    }
    out.claims.extend(results.new_claims.into_iter().map(|new| planned_claim(snap, new)));
    out.unschedulable = results.unschedulable;
    out.limited = limited_provisioners(snap, &out.unschedulable);
    out
}

/// Provisioners with limits named in an unschedulable pod's reason, with their `limits.resources`.
fn limited_provisioners(snap: &Snapshot, unschedulable: &[(String, String)]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for provisioner in snap.provisioners.values() {
        let name = provisioner.name_any();
        let Some(limits) = provisioner.spec.limits.as_ref().and_then(|l| l.resources.as_ref()) else {
            continue;
        };
        let named = format!("Provisioner {name} ");
        if unschedulable.iter().any(|(_, why)| why.contains(&named) && why.contains("limit")) {
            let list: Vec<String> = limits.iter().map(|(k, v)| format!("{k}: {}", v.0)).collect();
            out.insert(name, list.join(", "));
        }
    }
    out
}

/// The claims, volumes and storage classes the solver's volume-topology predicate reads.
pub fn volume_topology(snap: &Snapshot) -> VolumeTopology {
    VolumeTopology {
        claims: snap.pvcs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        volumes: snap.pvs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        storage_classes: snap.storage_classes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// The NodeClaim (and launch details) for one claim the solver opened: `generateName: <provisioner>-`, the
/// Provisioner's labels and kubelet settings, the narrowed requirements and the planned requests.
pub fn planned_claim(snap: &Snapshot, new: scheduling::NewClaim) -> PlannedClaim {
    let kubelet = snap.provisioners.get(&new.pool).and_then(|p| p.spec.kubelet_configuration.clone());
    // The launch types travel in the claim, so the lifecycle loop launches what was planned, restart or not.
    let mut requirements = new.requirements.clone();
    let types: BTreeSet<&str> = new.launch_options.iter().map(|o| o.instance_type.as_str()).collect();
    if !types.is_empty() {
        requirements.add(labels::INSTANCE_TYPE, ValueSet::one_of(types));
    }
    let mut claim_labels = new.labels.clone();
    claim_labels.insert(labels::PROVISIONER_NAME.to_string(), new.pool.clone());
    claim_labels.insert(labels::BALLAST_PROVISIONER.to_string(), new.pool.clone());
    let claim = NodeClaim {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", new.pool)),
            labels: Some(claim_labels.clone()),
            ..ObjectMeta::default()
        },
        spec: NodeClaimSpec {
            provisioner: new.pool.clone(),
            node_template: new.node_template.clone(),
            requirements: requirements
                .to_clauses()
                .into_iter()
                .map(|r| NodeSelectorRequirement {
                    key: r.key,
                    operator: operator_name(r.operator).to_string(),
                    values: (!r.values.is_empty()).then_some(r.values),
                })
                .collect(),
            resources: ResourceRequests {
                requests: new.requests.to_quantity_map().into_iter().map(|(k, v)| (k, Quantity(v))).collect(),
            },
            taints: (!new.taints.is_empty()).then(|| new.taints.iter().map(to_kube_taint).collect()),
            startup_taints: (!new.startup_taints.is_empty())
                .then(|| new.startup_taints.iter().map(to_kube_taint).collect()),
            labels: Some(claim_labels),
            annotations: None,
            kubelet,
        },
        status: None,
    };
    PlannedClaim { claim, options: new.launch_options, pods: new.pods }
}

/// The node registered for a claim: by the recorded name, else by provider id.
fn node_of<'a>(snap: &'a Snapshot, claim: &NodeClaim) -> Option<&'a Arc<crate::model::Node>> {
    let status = claim.status.as_ref()?;
    match (&status.node_name, &status.provider_id) {
        (Some(name), _) => snap.nodes.get(name),
        (None, Some(id)) => snap.nodes.values().find(|n| n.provider_id.as_ref() == Some(id)),
        (None, None) => None,
    }
}

/// Claims whose node has not registered yet, launched or not.
fn in_flight_claims(snap: &Snapshot) -> impl Iterator<Item = &Arc<NodeClaim>> {
    snap.node_claims
        .values()
        .filter(|c| c.metadata.deletion_timestamp.is_none() && node_of(snap, c).is_none())
}

/// An in-flight claim as capacity the solver can fill: the launched (or cheapest planned) type's labels and
/// allocatable.
fn in_flight_node(
    claim: &NodeClaim,
    catalog: &Catalog,
    pool: Option<&NodePoolTemplate>,
    pods: Vec<Arc<Pod>>,
) -> Option<ExistingNode> {
    let status = claim.status.clone().unwrap_or_default();
    let it = lifecycle::expected_instance_type(claim, catalog)?;
    let allocatable =
        match pool.and_then(|p| p.instance_types.iter().find(|t| t.instance_type.name == it.name)) {
            Some(t) => t.allocatable.clone(),
            None => allocatable::allocatable(
                it,
                &KubeletSettings::default(),
                allocatable::DEFAULT_VM_MEMORY_OVERHEAD_PERCENT,
            ),
        };
    let mut node_labels = it.labels.clone();
    node_labels.extend(claim.spec.labels.clone().unwrap_or_default());
    // Not launched yet: a zone or capacity type is known only when every option agrees on it.
    let options =
        if status.provider_id.is_none() { lifecycle::launch_options(claim, catalog) } else { Vec::new() };
    let agreed = |value: fn(&LaunchOption) -> String| {
        let first = value(options.first()?);
        options.iter().all(|o| value(o) == first).then_some(first)
    };
    let zone = status.zone.clone().or_else(|| agreed(|o| o.zone.clone()));
    let capacity_type = status.capacity_type.clone().or_else(|| agreed(|o| o.capacity_type.to_string()));
    if let Some(zone) = zone {
        node_labels.insert(labels::ZONE.to_string(), zone);
    }
    if let Some(ct) = capacity_type {
        node_labels.insert(labels::CAPACITY_TYPE.to_string(), ct);
    }
    node_labels.insert(labels::HOSTNAME.to_string(), claim.name_any());
    Some(ExistingNode {
        name: claim.name_any(),
        labels: node_labels,
        taints: pool.map(|p| p.taints.clone()).unwrap_or_default(),
        allocatable,
        pods,
        unschedulable: false,
        in_flight: true,
    })
}

/// Capacity of the Provisioner's registered nodes and in-flight claims, charged against its limits.
fn pool_usage(snap: &Snapshot, catalog: &Catalog, provisioner: &str) -> PoolUsage {
    let mut usage = PoolUsage::default();
    let mut counted = BTreeSet::new();
    for node in snap.nodes.values() {
        if node.labels.get(labels::PROVISIONER_NAME).map(String::as_str) == Some(provisioner) {
            usage.resources += &node.capacity;
            usage.nodes += 1;
            counted.insert(node.name.clone());
        }
    }
    for claim in snap.node_claims.values() {
        let registered = node_of(snap, claim).is_some_and(|n| counted.contains(&n.name));
        if claim.spec.provisioner != provisioner || registered || claim.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        if let Some(it) = lifecycle::expected_instance_type(claim, catalog) {
            usage.resources += &it.capacity;
            usage.nodes += 1;
        }
    }
    usage
}

fn operator_name(op: Operator) -> &'static str {
    match op {
        Operator::In => "In",
        Operator::NotIn => "NotIn",
        Operator::Exists => "Exists",
        Operator::DoesNotExist => "DoesNotExist",
        Operator::Gt => "Gt",
        Operator::Lt => "Lt",
    }
}

fn to_kube_taint(t: &Taint) -> KubeTaint {
    KubeTaint {
        key: t.key.clone(),
        value: (!t.value.is_empty()).then(|| t.value.clone()),
        effect: format!("{:?}", t.effect),
        time_added: None,
    }
}

/// What [`Provisioner::act`] did.
#[derive(Debug, Clone, Default)]
pub struct ActReport {
    /// Names of the NodeClaims created; the lifecycle loop launches them.
    pub created: Vec<String>,
    /// `generateName` of a claim that could not be created, and why.
    pub failed: Vec<(String, String)>,
}

/// The provisioning loop's state: the batching window and the pods nominated to in-flight claims.
pub struct Provisioner {
    cloud: Arc<dyn CloudProvider>,
    kube: Arc<dyn Actuator>,
    batcher: Batcher,
    nominations: Nominations,
    /// Provisionable pods seen on the previous pass; a new one opens or extends a batch.
    seen: BTreeSet<String>,
    retry_at: Option<Timestamp>,
    /// Claims this process created that the index has not shown yet (the watch lags the write), with when.
    unseen: BTreeMap<String, Timestamp>,
}

/// A created claim the index does not show within this time was deleted before the watch delivered it.
const UNSEEN_GRACE: SignedDuration = SignedDuration::from_secs(10);

impl Provisioner {
    pub fn new(cloud: Arc<dyn CloudProvider>, kube: Arc<dyn Actuator>, batcher: Batcher) -> Self {
        Self {
            cloud,
            kube,
            batcher,
            nominations: Nominations::new(),
            seen: BTreeSet::new(),
            retry_at: None,
            unseen: BTreeMap::new(),
        }
    }

    /// When [`Self::reconcile`] next has work without new pods arriving: the open batch closing, a retry, or
    /// the end of the grace of a created claim the index has not shown.
    pub fn next_wake(&self) -> Option<Timestamp> {
        let unseen = self.unseen.values().map(|created| *created + UNSEEN_GRACE);
        self.batcher.deadline().into_iter().chain(self.retry_at).chain(unseen).min()
    }

    pub fn nominations(&self) -> &Nominations {
        &self.nominations
    }

    /// One pass: watch for new pending pods, and when the batch closes, plan and act. Returns the plan and
    /// what was done, or `None` when no batch closed.
    pub async fn reconcile(
        &mut self,
        snap: &Snapshot,
        now: Timestamp,
    ) -> Result<Option<(Plan, ActReport)>, Error> {
        // Nominations end when the pod is no longer pending or its claim is gone or registered; the pods of a
        // claim that vanished unregistered (a failed launch, a timeout) are planned again in the next batch. A
        // claim this process just created counts as there until the watch shows it.
        self.unseen
            .retain(|claim, created| !snap.node_claims.contains_key(claim) && now < *created + UNSEEN_GRACE);
        let (unseen, seen) = (&self.unseen, &mut self.seen);
        self.nominations.retain(|pod, claim| {
            let pending = snap.pods.get(pod).is_some_and(|p| p.is_pending());
            let waiting = unseen.contains_key(claim)
                || snap.node_claims.get(claim).is_some_and(|c| node_of(snap, c).is_none());
            if pending && !waiting {
                // Provisionable again: counts as new, so it opens a batch.
                seen.remove(pod);
            }
            pending && waiting
        });
        let provisionable: BTreeSet<String> =
            provisionable_pods(snap, &self.nominations).map(|p| p.key()).collect();
        if provisionable.iter().any(|p| !self.seen.contains(p)) {
            self.batcher.trigger(now);
        }
        if !provisionable.is_empty() && self.retry_at.is_some_and(|at| now >= at) {
            self.retry_at = None;
            self.batcher.trigger(now);
        }
        self.seen = provisionable;
        if !snap.synced() || !self.batcher.take_ready(now) {
            return Ok(None);
        }
        let catalog = self.cloud.catalog().await.map_err(Error::Catalog)?;
        let plan = plan(snap, &catalog, &self.nominations, now);
        let report = self.act(&plan, now).await;
        if !plan.unschedulable.is_empty() || !report.failed.is_empty() {
            self.retry_at = Some(now + RETRY_AFTER);
        }
        Ok(Some((plan, report)))
    }

    /// Creates the plan's NodeClaims, records its nominations and reports Provisioners at their limits.
    pub async fn act(&mut self, plan: &Plan, now: Timestamp) -> ActReport {
        let mut report = ActReport::default();
        self.nominations.extend(plan.nominations.clone());
        for planned in &plan.claims {
            match self.kube.create_node_claim(&planned.claim).await {
                Ok(created) => {
                    let name = created.name_any();
                    info!(nodeclaim = %name, pods = planned.pods.len(), "Created NodeClaim");
                    for pod in &planned.pods {
                        self.nominations.insert(pod.clone(), name.clone());
                    }
                    self.unseen.insert(name.clone(), now);
                    report.created.push(name);
                }
                Err(e) => {
                    let name = planned.claim.metadata.generate_name.clone().unwrap_or_default();
                    warn!(nodeclaim = %name, error = %e, "Failed to create NodeClaim");
                    report.failed.push((name, e.to_string()));
                }
            }
        }
        for (provisioner, limits) in &plan.limited {
            let waiting =
                plan.unschedulable.iter().filter(|(_, why)| why.contains(provisioner.as_str())).count();
            let event = EventRecord {
                api_version: "ballast.dev/v1alpha1".into(),
                kind: "Provisioner".into(),
                namespace: None,
                name: provisioner.clone(),
                type_: EventType::Warning,
                reason: "LimitReached".into(),
                message: format!("limits.resources reached ({limits}); {waiting} pod(s) cannot be placed"),
            };
            if let Err(e) = self.kube.emit_event(&event).await {
                warn!(%provisioner, error = %e, "Failed to emit event");
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::{NodeClaimStatus, Provisioner as ProvisionerCrd},
        clock::ManualClock,
        cloud::{
            CapacityType,
            sim::{OfferingKey, SimCloud, SimCloudConfig},
        },
        provisioning::lifecycle::{Lifecycle, LifecycleMetrics, Timeouts},
        simulate::cluster::SimApi,
        state::{self, Object, convert},
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn catalog() -> Arc<Catalog> {
        Arc::new(Catalog::bundled().subset(["c5.large", "m5.large", "m5.xlarge"]).unwrap())
    }

    fn provisioner(yaml_spec: &str) -> Object {
        let text = format!(
            "apiVersion: ballast.dev/v1alpha1\nkind: Provisioner\nmetadata: {{name: default}}\nspec:\n{yaml_spec}"
        );
        Object::Provisioner(Arc::new(serde_yaml_ng::from_str::<ProvisionerCrd>(&text).unwrap()))
    }

    fn on_demand() -> Object {
        provisioner(
            "  requirements:\n  - {key: karpenter.sh/capacity-type, operator: In, values: [on-demand]}\n",
        )
    }

    fn pod(name: &str, cpu: &str) -> Object {
        let text = format!(
            "metadata: {{name: {name}, namespace: default, creationTimestamp: '2026-01-01T00:00:00Z'}}\n\
             spec: {{containers: [{{name: c, image: pause, resources: {{requests: {{cpu: '{cpu}'}}}}}}]}}\n"
        );
        Object::Pod(Arc::new(convert::pod(&serde_yaml_ng::from_str(&text).unwrap()).unwrap()))
    }

    #[test]
    fn plans_the_cheapest_claims_for_pending_pods() {
        let snap = Snapshot::from_objects([on_demand(), pod("a", "1"), pod("b", "1"), pod("c", "1")]);
        let plan = plan(&snap, &catalog(), &Nominations::new(), now());
        assert!(plan.unschedulable.is_empty() && plan.invalid_provisioners.is_empty(), "{plan:?}");
        // Three `cpu: 1` pods: one m5.xlarge ($0.192/h, 3 pods after kube-reserved) beats three c5.large.
        assert_eq!(plan.claims.len(), 1, "{plan:?}");
        let claim = &plan.claims[0];
        assert_eq!(claim.pods, ["default/a", "default/b", "default/c"]);
        assert_eq!(claim.options[0].instance_type, "m5.xlarge");
        assert!(claim.options.iter().all(|o| o.capacity_type == CapacityType::OnDemand));
        assert!(claim.options.windows(2).all(|w| w[0].price <= w[1].price), "cheapest first");
        assert_eq!(claim.claim.metadata.generate_name.as_deref(), Some("default-"));
        assert_eq!(claim.claim.spec.provisioner, "default");
        assert_eq!(claim.claim.spec.resources.requests["cpu"].0, "3");
        let labels = claim.claim.spec.labels.as_ref().unwrap();
        assert_eq!(labels[labels::PROVISIONER_NAME], "default");
    }

    #[test]
    fn pods_that_fit_an_in_flight_claim_open_no_new_claim() {
        let mut claim: NodeClaim = serde_yaml_ng::from_str(
            "apiVersion: ballast.dev/v1alpha1\nkind: NodeClaim\nmetadata: {name: default-abcde}\nspec: {provisioner: default}\n",
        )
        .unwrap();
        claim.status = Some(NodeClaimStatus {
            instance_type: Some("m5.xlarge".into()),
            zone: Some("us-east-1a".into()),
            capacity_type: Some("on-demand".into()),
            ..NodeClaimStatus::default()
        });
        let snap = Snapshot::from_objects([
            on_demand(),
            Object::NodeClaim(Arc::new(claim)),
            pod("a", "1"),
            pod("b", "1"),
        ]);
        let nominated = Nominations::from([("default/a".to_string(), "default-abcde".to_string())]);
        let plan = plan(&snap, &catalog(), &nominated, now());
        assert!(plan.claims.is_empty(), "{plan:?}");
        assert_eq!(plan.nominations.get("default/b").map(String::as_str), Some("default-abcde"));
    }

    #[test]
    fn the_pods_of_a_terminating_node_get_new_capacity_before_they_are_evicted() {
        use crate::disruption::fixtures::{at, node, pod as bound_pod};
        let (n, mut c) = node("spot-a", "m5.large", CapacityType::OnDemand, at(0));
        let objects = |c: &NodeClaim| {
            [
                on_demand(),
                Object::Node(Arc::new(n.clone())),
                Object::NodeClaim(Arc::new(c.clone())),
                Object::Pod(Arc::new(bound_pod("web-1", Some("spot-a"), 500))),
            ]
        };
        let healthy = Snapshot::from_objects(objects(&c));
        assert_eq!(provisionable_pods(&healthy, &Nominations::new()).count(), 0);
        assert!(plan(&healthy, &catalog(), &Nominations::new(), now()).claims.is_empty());

        c.metadata.deletion_timestamp = Some(Time(at(10)));
        let terminating = Snapshot::from_objects(objects(&c));
        let keys: Vec<String> =
            provisionable_pods(&terminating, &Nominations::new()).map(|p| p.key()).collect();
        assert_eq!(keys, ["default/web-1"]);
        let plan = plan(&terminating, &catalog(), &Nominations::new(), now());
        assert_eq!(plan.claims.len(), 1, "the terminating node is no capacity: {plan:?}");
        assert_eq!(plan.claims[0].pods, ["default/web-1"]);
    }

    #[test]
    fn a_pod_no_type_can_host_gets_a_reason_and_no_claim() {
        let snap = Snapshot::from_objects([on_demand(), pod("huge", "64")]);
        let plan = plan(&snap, &catalog(), &Nominations::new(), now());
        assert!(plan.claims.is_empty());
        assert_eq!(plan.unschedulable.len(), 1);
        assert_eq!(plan.unschedulable[0].0, "default/huge");
        assert!(!plan.unschedulable[0].1.is_empty());
    }

    #[test]
    fn an_invalid_provisioner_is_reported_and_left_out() {
        let bad = provisioner(
            "  requirements:\n  - {key: karpenter.sh/capacity-type, operator: Near, values: [x]}\n",
        );
        let snap = Snapshot::from_objects([bad, pod("a", "1")]);
        let plan = plan(&snap, &catalog(), &Nominations::new(), now());
        assert!(plan.claims.is_empty());
        assert_eq!(plan.invalid_provisioners.len(), 1);
        assert!(plan.invalid_provisioners[0].contains("default"), "{:?}", plan.invalid_provisioners);
    }

    fn sim(seed: u64) -> (Arc<SimCloud>, Arc<SimApi>) {
        let clock = Arc::new(ManualClock::new(now()));
        let cloud = Arc::new(SimCloud::new(
            catalog(),
            clock.clone(),
            SimCloudConfig { seed, ..SimCloudConfig::default() },
        ));
        (cloud, Arc::new(SimApi::new(state::Cluster::new(), clock, seed)))
    }

    #[tokio::test]
    async fn created_claims_carry_their_launch_types_and_the_lifecycle_falls_back_on_capacity_errors() {
        let (cloud, api) = sim(1);
        api.apply_object(on_demand());
        api.apply_object(pod("a", "1"));
        let snap = api.snapshot();
        let plan = plan(&snap, &catalog(), &Nominations::new(), now());
        let first = plan.claims[0].options[0].clone();
        cloud.inject_capacity_error(
            OfferingKey {
                instance_type: first.instance_type.clone(),
                zone: first.zone.clone(),
                capacity_type: first.capacity_type,
            },
            now(),
            None,
        );
        let mut provisioner = Provisioner::new(cloud.clone(), api.clone(), Batcher::default());
        let report = provisioner.act(&plan, now()).await;
        assert!(report.failed.is_empty(), "{report:?}");
        let name = report.created[0].clone();
        assert_eq!(provisioner.nominations().get("default/a"), Some(&name));
        let claim = api.snapshot().node_claims.get(&name).cloned().unwrap();
        let types = claim.spec.requirements.iter().find(|r| r.key == labels::INSTANCE_TYPE).unwrap();
        let planned: BTreeSet<String> =
            plan.claims[0].options.iter().map(|o| o.instance_type.clone()).collect();
        assert_eq!(types.values.clone().unwrap().into_iter().collect::<BTreeSet<_>>(), planned);

        let mut lc =
            Lifecycle::new(cloud.clone(), api.clone(), Timeouts::default(), LifecycleMetrics::default());
        let (report, error) = lc.reconcile(&api.snapshot(), now()).await;
        assert!(error.is_none(), "{error:?}");
        let (launched, instance) = &report.launched[0];
        assert_eq!(launched, &name);
        assert_ne!((&instance.instance_type, &instance.zone), (&first.instance_type, &first.zone));
        let claim = api.snapshot().node_claims.get(&name).cloned().unwrap();
        assert_eq!(claim.status.clone().unwrap().provider_id.as_deref(), Some(instance.provider_id.as_str()));
    }

    #[tokio::test]
    async fn pods_of_a_claim_that_vanished_unregistered_are_planned_again() {
        let (cloud, api) = sim(1);
        api.apply_object(on_demand());
        api.apply_object(pod("a", "1"));
        let mut provisioner = Provisioner::new(cloud.clone(), api.clone(), Batcher::default());
        assert!(provisioner.reconcile(&api.snapshot(), now()).await.unwrap().is_none(), "the batch is open");
        let later = now() + SignedDuration::from_secs(1);
        let (_, report) =
            provisioner.reconcile(&api.snapshot(), later).await.unwrap().expect("the batch closed");
        let name = report.created[0].clone();
        let again = later + SignedDuration::from_secs(1);
        assert!(
            provisioner.reconcile(&api.snapshot(), again).await.unwrap().is_none(),
            "the pod waits for it"
        );
        assert_eq!(provisioner.next_wake(), None, "the index showed the claim");
        // Its launch failed: the lifecycle loop deleted it.
        api.delete_node_claim(&name).await.unwrap();
        assert!(provisioner.reconcile(&api.snapshot(), again).await.unwrap().is_none(), "a new batch opens");
        let (_, report) = provisioner
            .reconcile(&api.snapshot(), again + SignedDuration::from_secs(1))
            .await
            .unwrap()
            .expect("planned again");
        assert_eq!(report.created.len(), 1, "{report:?}");
        assert_ne!(report.created[0], name);
    }

    #[tokio::test]
    async fn a_created_claim_the_watch_has_not_shown_keeps_its_pods_nominated() {
        let (cloud, _) = sim(1);
        let kube = Arc::new(crate::actuator::RecordingActuator::new());
        let snap = Snapshot::from_objects([on_demand(), pod("a", "1")]);
        let mut provisioner = Provisioner::new(cloud, kube, Batcher::default());
        provisioner.reconcile(&snap, now()).await.unwrap();
        let (_, report) = provisioner
            .reconcile(&snap, now() + SignedDuration::from_secs(1))
            .await
            .unwrap()
            .expect("planned");
        assert_eq!(report.created.len(), 1);
        // The snapshot does not show the claim: no second plan within the grace, a re-plan after it.
        let t = now() + SignedDuration::from_secs(2);
        assert!(provisioner.reconcile(&snap, t).await.unwrap().is_none());
        assert!(provisioner.reconcile(&snap, t + SignedDuration::from_secs(1)).await.unwrap().is_none());
        assert_eq!(provisioner.next_wake(), Some(now() + SignedDuration::from_secs(1) + UNSEEN_GRACE));
        let expired = now() + SignedDuration::from_secs(1) + UNSEEN_GRACE;
        assert!(provisioner.reconcile(&snap, expired).await.unwrap().is_none(), "a new batch opens");
        assert!(
            provisioner.reconcile(&snap, expired + SignedDuration::from_secs(1)).await.unwrap().is_some()
        );
    }

    #[tokio::test]
    async fn a_claim_not_launched_yet_is_capacity_for_the_next_plan_after_a_restart() {
        let (cloud, api) = sim(1);
        api.apply_object(on_demand());
        api.apply_object(pod("a", "1"));
        let plan1 = plan(&api.snapshot(), &catalog(), &Nominations::new(), now());
        Provisioner::new(cloud.clone(), api.clone(), Batcher::default()).act(&plan1, now()).await;
        // A new process: no nominations, the claim has no status yet.
        let plan2 = plan(&api.snapshot(), &catalog(), &Nominations::new(), now());
        assert!(plan2.claims.is_empty(), "{plan2:?}");
        assert_eq!(plan2.nominations.len(), 1);
    }

    #[test]
    fn a_provisioner_at_its_limit_is_reported_with_its_limits() {
        let limited = provisioner(
            "  requirements:\n  - {key: karpenter.sh/capacity-type, operator: In, values: [on-demand]}\n  limits: {resources: {cpu: '1'}}\n",
        );
        let snap = Snapshot::from_objects([limited, pod("a", "1")]);
        let plan = plan(&snap, &catalog(), &Nominations::new(), now());
        assert!(plan.claims.is_empty());
        assert!(plan.unschedulable[0].1.contains("Provisioner default"), "{:?}", plan.unschedulable);
        assert_eq!(plan.limited.get("default").map(String::as_str), Some("cpu: 1"));
    }

    #[tokio::test]
    async fn a_provisioner_at_its_limit_gets_a_warning_event_naming_the_limit() {
        let limited = provisioner("  limits: {resources: {cpu: '1'}}\n");
        let snap = Snapshot::from_objects([limited, pod("a", "1")]);
        let plan = plan(&snap, &catalog(), &Nominations::new(), now());
        let (cloud, _) = sim(1);
        let kube = Arc::new(crate::actuator::RecordingActuator::new());
        Provisioner::new(cloud, kube.clone(), Batcher::default()).act(&plan, now()).await;
        let event = kube.events().pop().expect("an event");
        assert_eq!(
            (event.kind.as_str(), event.name.as_str(), event.reason.as_str()),
            ("Provisioner", "default", "LimitReached")
        );
        assert_eq!(event.type_, crate::actuator::EventType::Warning);
        assert!(event.message.contains("cpu: 1") && event.message.contains("1 pod(s)"), "{}", event.message);
    }
}
