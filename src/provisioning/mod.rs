//! Karpenter-style provisioning: batch pending pods, solve, launch NodeClaims, track their lifecycle.
//!
//! The loop is `plan(&Snapshot, &Catalog, nominations, now) -> Plan` (pure: builds the pools from the
//! Provisioners, treats launched-but-unregistered NodeClaims as capacity, and calls `scheduling::solve`) and
//! [`Provisioner::act`] (creates each NodeClaim through the [`Actuator`], launches it through the
//! [`CloudProvider`], retrying the remaining launch options when the cloud is out of capacity).

pub mod batcher;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::core::v1::{NodeSelectorRequirement, Taint as KubeTaint},
    apimachinery::pkg::apis::meta::v1::Time,
};
use kube::{ResourceExt, api::ObjectMeta};

use self::batcher::Batcher;
use crate::{
    actuator::Actuator,
    api::{
        Condition, NodeClaim, NodeClaimSpec, NodeClaimStatus, Quantity, labels, node_claim::ResourceRequests,
    },
    cloud::{Catalog, CloudError, CloudProvider, Instance, LaunchOption, LaunchRequest},
    disruption::candidate::{claim_of, is_reschedulable, is_terminating},
    model::{Operator, Pod, Taint},
    scheduling::{
        self, ExistingNode, NodePoolTemplate, Placement, PoolUsage, SolveInput, VolumeTopology,
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
}

#[derive(Debug, Clone)]
pub struct PlannedClaim {
    /// Created with `generateName: <provisioner>-`; the API server names it.
    pub claim: NodeClaim,
    /// Cheapest first.
    pub options: Vec<LaunchOption>,
    /// Keys of the pods it is for.
    pub pods: Vec<String>,
    pub taints: Vec<Taint>,
    pub startup_taints: Vec<Taint>,
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
        volumes: VolumeTopology {
            claims: snap.pvcs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            volumes: snap.pvs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            storage_classes: snap.storage_classes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        },
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
    out
}

/// The NodeClaim (and launch details) for one claim the solver opened: `generateName: <provisioner>-`, the
/// Provisioner's labels and kubelet settings, the narrowed requirements and the planned requests.
pub fn planned_claim(snap: &Snapshot, new: scheduling::NewClaim) -> PlannedClaim {
    let kubelet = snap.provisioners.get(&new.pool).and_then(|p| p.spec.kubelet_configuration.clone());
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
            requirements: new
                .requirements
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
    PlannedClaim {
        claim,
        options: new.launch_options,
        pods: new.pods,
        taints: new.taints,
        startup_taints: new.startup_taints,
    }
}

/// Claims launched (an instance type is recorded) whose node has not registered yet.
fn in_flight_claims(snap: &Snapshot) -> impl Iterator<Item = &Arc<NodeClaim>> {
    snap.node_claims.values().filter(|c| {
        c.metadata.deletion_timestamp.is_none()
            && c.status.as_ref().is_some_and(|s| s.instance_type.is_some() && s.node_name.is_none())
            && !snap.nodes.contains_key(&c.name_any())
    })
}

/// An in-flight claim as capacity the solver can fill: the launched type's labels and allocatable.
fn in_flight_node(
    claim: &NodeClaim,
    catalog: &Catalog,
    pool: Option<&NodePoolTemplate>,
    pods: Vec<Arc<Pod>>,
) -> Option<ExistingNode> {
    let status = claim.status.as_ref()?;
    let it = catalog.get(status.instance_type.as_deref()?)?;
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
    if let Some(zone) = &status.zone {
        node_labels.insert(labels::ZONE.to_string(), zone.clone());
    }
    if let Some(ct) = &status.capacity_type {
        node_labels.insert(labels::CAPACITY_TYPE.to_string(), ct.clone());
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
        if claim.spec.provisioner != provisioner || counted.contains(&claim.name_any()) {
            continue;
        }
        if let Some(it) =
            claim.status.as_ref().and_then(|s| s.instance_type.as_deref()).and_then(|t| catalog.get(t))
        {
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
    /// Claim name and its instance.
    pub launched: Vec<(String, Instance)>,
    /// Claim name and why it could not launch (the claim is deleted again).
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
}

impl Provisioner {
    pub fn new(cloud: Arc<dyn CloudProvider>, kube: Arc<dyn Actuator>, batcher: Batcher) -> Self {
        Self { cloud, kube, batcher, nominations: Nominations::new(), seen: BTreeSet::new(), retry_at: None }
    }

    /// When [`Self::reconcile`] next has work without new pods arriving: the open batch closing, or a retry.
    pub fn next_wake(&self) -> Option<Timestamp> {
        self.batcher.deadline().into_iter().chain(self.retry_at).min()
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
        // Nominations end when the pod is no longer pending or its claim is gone or registered.
        self.nominations.retain(|pod, claim| {
            snap.pods.get(pod).is_some_and(|p| p.is_pending())
                && snap.node_claims.get(claim).is_some_and(|c| !snap.nodes.contains_key(&c.name_any()))
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

    /// Creates and launches the plan's NodeClaims and records its nominations.
    pub async fn act(&mut self, plan: &Plan, now: Timestamp) -> ActReport {
        let mut report = ActReport::default();
        self.nominations.extend(plan.nominations.clone());
        for planned in &plan.claims {
            let created = match self.kube.create_node_claim(&planned.claim).await {
                Ok(c) => c,
                Err(e) => {
                    report.failed.push((
                        planned.claim.metadata.generate_name.clone().unwrap_or_default(),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            let name = created.name_any();
            match launch(&*self.cloud, &created, planned).await {
                Ok(instance) => {
                    let status = launched_status(&instance, now);
                    if let Err(e) = self.kube.patch_node_claim_status(&name, &status).await {
                        report.failed.push((name.clone(), format!("failed to record the launch: {e}")));
                    }
                    for pod in &planned.pods {
                        self.nominations.insert(pod.clone(), name.clone());
                    }
                    report.launched.push((name, instance));
                }
                Err(e) => {
                    // Keep no claim for an instance that does not exist; the pods are retried.
                    let _ = self.kube.delete_node_claim(&name).await;
                    report.failed.push((name, e.to_string()));
                }
            }
        }
        report
    }
}

/// Launches through the cloud; on insufficient capacity, tries the options not yet tried.
pub async fn launch(
    cloud: &dyn CloudProvider,
    claim: &NodeClaim,
    planned: &PlannedClaim,
) -> Result<Instance, CloudError> {
    let mut options = planned.options.clone();
    let mut request = LaunchRequest {
        claim_name: claim.name_any(),
        provisioner: claim.spec.provisioner.clone(),
        node_template: claim.spec.node_template.clone(),
        options: Vec::new(),
        labels: claim.spec.labels.clone().unwrap_or_default(),
        taints: planned.taints.clone(),
        startup_taints: planned.startup_taints.clone(),
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

/// The NodeClaim status recording a launched instance.
pub fn launched_status(instance: &Instance, now: Timestamp) -> NodeClaimStatus {
    NodeClaimStatus {
        provider_id: Some(instance.provider_id.clone()),
        instance_type: Some(instance.instance_type.clone()),
        zone: Some(instance.zone.clone()),
        capacity_type: Some(instance.capacity_type.to_string()),
        price: Some(format!("{}", instance.price)),
        conditions: Some(vec![Condition {
            type_: "Launched".to_string(),
            status: "True".to_string(),
            reason: None,
            message: None,
            last_transition_time: Some(Time(now)),
        }]),
        ..NodeClaimStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        actuator::{Call, RecordingActuator},
        api::Provisioner as ProvisionerCrd,
        clock::ManualClock,
        cloud::{
            CapacityType,
            fake::FakeCloud,
            sim::{OfferingKey, SimCloud, SimCloudConfig},
        },
        simulate::cluster::SimApi,
        state::{self, Object, convert},
    };

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
    async fn act_retries_the_next_options_after_a_capacity_error() {
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
        let (name, instance) = &report.launched[0];
        assert_ne!((&instance.instance_type, &instance.zone), (&first.instance_type, &first.zone));
        let claim = api.snapshot().node_claims.get(name).cloned().unwrap();
        let status = claim.status.as_ref().unwrap();
        assert_eq!(status.provider_id.as_deref(), Some(instance.provider_id.as_str()));
        assert_eq!(provisioner.nominations().get("default/a"), Some(name));
    }

    #[tokio::test]
    async fn a_failed_launch_deletes_its_claim_and_is_retried_later() {
        let actuator = Arc::new(RecordingActuator::new());
        let cloud = Arc::new(FakeCloud::new(catalog(), now()));
        cloud.set_next_create_error(CloudError::Unauthorized("no ec2:CreateFleet".into()));
        let snap = Snapshot::from_objects([on_demand(), pod("a", "1")]);
        let mut provisioner = Provisioner::new(cloud.clone(), actuator.clone(), Batcher::default());
        assert!(provisioner.reconcile(&snap, now()).await.unwrap().is_none(), "the batch is still open");
        let later = now() + SignedDuration::from_secs(1);
        let (_, report) = provisioner.reconcile(&snap, later).await.unwrap().expect("the batch closed");
        assert_eq!(report.failed.len(), 1, "{report:?}");
        assert!(report.failed[0].1.contains("not authorized"), "{report:?}");
        assert!(
            actuator.calls().iter().any(|c| matches!(c, Call::DeleteNodeClaim(_))),
            "{:?}",
            actuator.calls()
        );
        // Nothing changed, but the pod is retried after RETRY_AFTER.
        assert!(provisioner.reconcile(&snap, later + SignedDuration::from_secs(5)).await.unwrap().is_none());
        let retry = later + RETRY_AFTER;
        assert!(provisioner.reconcile(&snap, retry).await.unwrap().is_none(), "a new batch opens");
        let (_, report) = provisioner
            .reconcile(&snap, retry + SignedDuration::from_secs(1))
            .await
            .unwrap()
            .expect("retried");
        assert_eq!(report.launched.len(), 1, "{report:?}");
        assert_eq!(cloud.create_calls().len(), 2);
    }
}
