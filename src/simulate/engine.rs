//! The simulation loop: one-second ticks of virtual time. Each tick runs the due timeline steps, lets the
//! simulated cloud report registrations, interruptions and reclaims, runs the cluster's controllers and the
//! kube-scheduler, then ballast's provisioning and NodeClaim lifecycle loops (as `ballast run` does), and
//! records what changed. Ticks where no timer fires are skipped (they would change nothing), so long scenarios
//! cost what happens in them, not their length.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use super::{
    Error,
    cluster::SimApi,
    objects,
    report::{Recorder, Report},
    scenario::{Action, Interrupt, LoadedScenario, fmt_offset},
};
use crate::{
    api::labels,
    clock::ManualClock,
    cloud::{
        CapacityType, Catalog, CloudProvider,
        sim::{SimCloud, SimCloudConfig, UNAVAILABLE_TTL, instance_id},
    },
    disruption::{self, Disruption, DisruptionMetrics},
    interruption::{self, Interruption, InterruptionMetrics, MemoryQueue},
    manifest::Manifest,
    model::Pod,
    proportional::{Proportional, ProportionalArgs},
    provisioning::{
        Provisioner,
        batcher::Batcher,
        lifecycle::{Lifecycle, LifecycleMetrics, Timeouts},
    },
    scheduling::{
        NodePoolTemplate, PoolUsage,
        bound::{PodClass, PoolCandidates, lower_bound},
    },
    state::{self, Snapshot},
    termination::{TerminationMetrics, Terminator, gc::GarbageCollector},
};

/// Virtual time starts here, so reports do not depend on the wall clock.
pub const START: &str = "2026-01-01T00:00:00Z";
/// Scenarios at least this long (virtual time) show a progress bar when asked to.
const PROGRESS_MIN: SignedDuration = SignedDuration::from_secs(3600);
/// How often the disruption and termination loops run while nodes exist.
const DISRUPTION_TICK: SignedDuration = SignedDuration::from_secs(5);
const TICK: SignedDuration = SignedDuration::from_secs(1);
/// The region in the simulated cloud's events.
const SIM_REGION: &str = "us-east-1";

/// A timeline step with its manifests already loaded.
pub struct PreparedStep {
    pub index: usize,
    pub at: SignedDuration,
    pub action: Action,
    pub manifests: Vec<Manifest>,
}

pub struct Simulation {
    loaded: LoadedScenario,
    seed: u64,
    start: Timestamp,
    clock: ManualClock,
    cloud: Arc<SimCloud>,
    api: Arc<SimApi>,
    provisioner: Provisioner,
    lifecycle: Lifecycle,
    disruption: Disruption,
    terminator: Terminator,
    gc: GarbageCollector,
    /// The interruption loop over an in-memory queue that receives the simulated cloud's notices.
    interruption: Interruption,
    interruption_queue: Arc<MemoryQueue>,
    /// cluster-proportional-autoscaler mode over ConfigMaps in the scenario.
    proportional: Proportional,
    /// How many of the API's events the timeline has already shown.
    events_seen: usize,
    /// Node → why the disruption loop took it, for the timeline when it is terminated.
    disrupted: BTreeMap<String, String>,
    recorder: Recorder,
    /// $ the lower bound accumulated so far; `None` once it could not be computed.
    bound_cost: Option<f64>,
    bound_cache: Option<BoundCache>,
}

impl Simulation {
    pub fn new(loaded: LoadedScenario, seed: u64, catalog: Arc<Catalog>) -> Self {
        let start: Timestamp = START.parse().expect("START is a valid timestamp");
        let clock = ManualClock::new(start);
        let cloud_settings = &loaded.scenario.cloud;
        let config = SimCloudConfig {
            seed,
            launch_delay: cloud_settings.launch_delay.0,
            registration_delay: cloud_settings.registration_delay.0,
        };
        let cloud = Arc::new(SimCloud::new(catalog, Arc::new(clock.clone()), config));
        let index = state::Cluster::new();
        let api = Arc::new(SimApi::new(index.clone(), Arc::new(clock.clone()), seed));
        let proportional =
            Proportional::new(ProportionalArgs::default(), index, api.clone(), Arc::new(clock.clone()));
        let provisioner = Provisioner::new(cloud.clone(), api.clone(), Batcher::default());
        let lifecycle =
            Lifecycle::new(cloud.clone(), api.clone(), Timeouts::default(), LifecycleMetrics::default());
        let disruption = Disruption::new(cloud.clone(), api.clone(), DisruptionMetrics::default());
        let terminator = Terminator::new(cloud.clone(), api.clone(), TerminationMetrics::default());
        let gc = GarbageCollector::new(cloud.clone(), api.clone());
        let interruption_queue = Arc::new(MemoryQueue::new());
        let interruption =
            Interruption::new(interruption_queue.clone(), api.clone(), InterruptionMetrics::default())
                .with_cloud(cloud.clone());
        Self {
            interruption,
            interruption_queue,
            disruption,
            terminator,
            gc,
            proportional,
            events_seen: 0,
            loaded,
            seed,
            start,
            clock,
            cloud,
            api,
            provisioner,
            lifecycle,
            disrupted: BTreeMap::new(),
            recorder: Recorder::new(start),
            bound_cost: Some(0.0),
            bound_cache: None,
        }
    }

    pub async fn run(
        mut self,
        objects: Vec<Manifest>,
        mut steps: Vec<PreparedStep>,
        progress: bool,
    ) -> Result<Report, Error> {
        let duration = self.loaded.scenario.duration.0;
        let bar = (progress && duration >= PROGRESS_MIN).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(duration.as_secs() as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} virtual seconds ({eta})")
                    .expect("template is valid"),
            );
            bar
        });

        if !objects.is_empty() {
            let applied = objects::apply(&self.api, &objects, self.start)?;
            self.recorder.step(self.start, format!("apply {}", applied.join(", ")));
        }
        steps.sort_by_key(|s| (s.at, s.index));
        let mut steps = steps.into_iter().peekable();
        let catalog = self.cloud.catalog().await.map_err(Error::Cloud)?;

        let mut elapsed = SignedDuration::ZERO;
        while elapsed <= duration {
            let now = self.start + elapsed;
            self.clock.set(now);
            while let Some(step) = steps.next_if(|s| s.at <= elapsed) {
                self.run_step(step, now).await?;
            }
            self.cloud_events(now, &catalog)?;
            self.handle_interruptions(now).await;
            self.run_pod_controllers(now);
            let snap = self.api.snapshot();
            let outcome = self.provisioner.reconcile(&snap, now).await.map_err(Error::Provisioning)?;
            if let Some((plan, acted)) = outcome {
                for reason in &plan.invalid_provisioners {
                    self.recorder.step(now, format!("ignored: {reason}"));
                }
                for (provisioner, limits) in &plan.limited {
                    self.recorder.step(now, format!("Provisioner {provisioner} at its limits ({limits})"));
                }
                for (claim, reason) in &acted.failed {
                    self.recorder.launch_failed(now, claim, reason.clone());
                }
                self.recorder.unschedulable(now, &plan.unschedulable);
            }
            self.advance_lifecycle(now).await;
            self.disrupt(now, &catalog).await?;
            self.scale_proportionally(now).await;
            // The ReplicaSet controller and kube-scheduler react to evictions within a second: replace
            // and bind the pods disruption evicted in this tick, as the cluster would before the next one.
            self.run_pod_controllers(now);
            let snap = self.api.snapshot();
            let (pending, running) = pod_counts(&snap);
            self.recorder.pods(now, pending, running);

            // The controllers above run to completion each tick, so nothing changes until a timer fires:
            // the next timeline step, a cloud event, the batch window or a provisioning retry.
            let wake = [
                steps.peek().map(|s| self.start + s.at),
                self.cloud.next_due(),
                self.provisioner.next_wake(),
                self.lifecycle.next_wake(&snap, now),
                // Disruption polls and termination drains while there are nodes.
                (!snap.nodes.is_empty()).then(|| now + DISRUPTION_TICK),
            ]
            .into_iter()
            .flatten()
            .min();
            let next = match wake {
                Some(at) => ceil_secs(at.duration_since(self.start)).max(elapsed + TICK),
                None => duration + TICK,
            };
            self.accumulate_bound(&snap, &catalog, next.min(duration) - elapsed);
            if let Some(bar) = &bar {
                bar.set_position(elapsed.as_secs() as u64);
            }
            elapsed = next;
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }

        let end = self.start + duration;
        let snap = self.api.snapshot();
        let still_pending: Vec<&Arc<Pod>> = snap.pending_pods().filter(|p| !p.is_daemonset_pod()).collect();
        for pod in &still_pending {
            self.recorder.pod_waited(&pod.key(), end.duration_since(pod.created));
        }
        let pending_keys: BTreeSet<String> = still_pending.iter().map(|p| p.key()).collect();
        self.recorder.retain_unschedulable(|pod| pending_keys.contains(pod));
        let (pending, running) = pod_counts(&snap);
        let mut report = self.recorder.finish(end, &self.loaded.scenario.name, self.seed, pending, running);
        if let Some(bound) = self.bound_cost {
            report.set_lower_bound(bound);
        }
        Ok(report)
    }

    async fn run_step(&mut self, step: PreparedStep, now: Timestamp) -> Result<(), Error> {
        let field = |name: &str| format!("timeline[{}].{name}", step.index);
        let description = match &step.action {
            Action::Scale(s) => {
                if !self.api.scale_deployment(&s.namespace, &s.deployment, s.replicas as i32) {
                    return Err(self
                        .loaded
                        .error(
                            field("scale.deployment"),
                            format!(
                                "no Deployment {}/{} exists at {}",
                                s.namespace,
                                s.deployment,
                                fmt_offset(step.at)
                            ),
                        )
                        .into());
                }
                let plural = if s.replicas == 1 { "" } else { "s" };
                format!("scale Deployment {}/{} to {} replica{plural}", s.namespace, s.deployment, s.replicas)
            }
            Action::Apply(_) => {
                format!("apply {}", objects::apply(&self.api, &step.manifests, now)?.join(", "))
            }
            Action::Delete(d) => {
                let namespace = d.namespace.as_deref().unwrap_or("default");
                let deleted = if d.kind == "Deployment" {
                    self.api.delete_deployment(namespace, &d.name)
                } else {
                    let (kind, key) = objects::kind_key(&d.kind, namespace, &d.name).ok_or_else(|| {
                        self.loaded.error(field("delete.kind"), format!("cannot delete kind {}", d.kind))
                    })?;
                    self.api.delete_object(kind, &key)
                };
                if !deleted {
                    return Err(self
                        .loaded
                        .error(
                            field("delete"),
                            format!("no {} {} exists at {}", d.kind, d.name, fmt_offset(step.at)),
                        )
                        .into());
                }
                format!("delete {} {}", d.kind, d.name)
            }
            Action::CapacityError(c) => {
                let until = c.duration.map(|d| now + d.0);
                self.cloud.inject_capacity_error(c.offering(), now, until);
                match c.duration {
                    Some(d) => format!("insufficient capacity for {} for {}", c.offering(), fmt_offset(d.0)),
                    None => format!("insufficient capacity for {} until the end", c.offering()),
                }
            }
            Action::Interrupt(i) => self.interrupt(i, now, &field("interrupt"))?,
        };
        self.recorder.step(now, description);
        Ok(())
    }

    /// Sends spot interruption notices to the chosen nodes' instances.
    fn interrupt(&mut self, i: &Interrupt, now: Timestamp, field: &str) -> Result<String, Error> {
        let snap = self.api.snapshot();
        let is_spot = |n: &crate::model::Node| {
            n.labels.get(labels::CAPACITY_TYPE).map(String::as_str) == Some(CapacityType::Spot.as_str())
        };
        let targets: Vec<Arc<crate::model::Node>> = match &i.node {
            Some(name) => {
                let node = snap.nodes.get(name).ok_or_else(|| {
                    self.loaded.error(format!("{field}.node"), format!("no node {name} exists at this time"))
                })?;
                if !is_spot(node) {
                    return Err(self
                        .loaded
                        .error(format!("{field}.node"), format!("node {name} is not a spot node"))
                        .into());
                }
                vec![node.clone()]
            }
            None => {
                let mut matching: Vec<Arc<crate::model::Node>> = snap
                    .nodes
                    .values()
                    .filter(|n| is_spot(n) && n.provider_id.is_some())
                    .filter(|n| {
                        i.instance_type
                            .as_ref()
                            .is_none_or(|t| n.labels.get(labels::INSTANCE_TYPE) == Some(t))
                    })
                    .filter(|n| i.zone.as_ref().is_none_or(|z| n.labels.get(labels::ZONE) == Some(z)))
                    .cloned()
                    .collect();
                matching.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
                matching.truncate(i.count.unwrap_or(1) as usize);
                matching
            }
        };
        if targets.is_empty() {
            return Ok(format!(
                "interrupt: no spot node matches{}{}; nothing interrupted",
                i.instance_type.as_ref().map(|t| format!(" instanceType={t}")).unwrap_or_default(),
                i.zone.as_ref().map(|z| format!(" zone={z}")).unwrap_or_default()
            ));
        }
        let mut names = Vec::new();
        for node in targets {
            let provider_id = node.provider_id.as_deref().unwrap_or_default();
            self.cloud.interrupt_instance(instance_id(provider_id), now).map_err(Error::Cloud)?;
            names.push(node.name.clone());
        }
        Ok(format!("spot interruption for node {}", names.join(", ")))
    }

    /// Registrations become Nodes; reclaimed instances take their Node and NodeClaim with them.
    /// Runs the proportional loop and puts its replica changes and warnings on the timeline. Errors are
    /// already Warning events on the ConfigMaps, shown like the changes.
    async fn scale_proportionally(&mut self, now: Timestamp) {
        self.proportional.reconcile().await;
        let events = self.api.events();
        for event in &events[self.events_seen..] {
            let proportional = event.reason == "ScaledReplicas" || event.kind == "ConfigMap";
            if proportional {
                let object = format!(
                    "{} {}",
                    event.kind,
                    event
                        .namespace
                        .as_deref()
                        .map_or(event.name.clone(), |ns| format!("{ns}/{}", event.name))
                );
                self.recorder.step(now, format!("proportional: {object} {}", event.message));
            }
        }
        self.events_seen = events.len();
    }

    /// The deployment, daemonset and pod-GC controllers, then kube-scheduler, recording how long the pods
    /// they bind waited.
    fn run_pod_controllers(&mut self, now: Timestamp) {
        self.api.reconcile();
        for key in self.api.schedule() {
            if let Some(pod) = self.api.snapshot().pods.get(&key) {
                self.recorder.pod_waited(&key, now.duration_since(pod.created));
            }
            self.recorder.schedulable(&key);
        }
    }

    /// Runs the disruption, termination and garbage-collection loops and records what they did.
    async fn disrupt(&mut self, now: Timestamp, catalog: &Catalog) -> Result<(), Error> {
        let snap = self.api.snapshot();
        let (pools, _) = disruption::pools(&snap, catalog);
        let report = self.disruption.reconcile(&snap, &pools, now).await.map_err(Error::Disruption)?;
        if let Some(command) = &report.executed {
            self.recorder.disrupted(now, command);
            for node in &command.nodes {
                self.disrupted.insert(node.clone(), format!("disrupted ({})", command.reason));
            }
        }
        let (report, _) = self.terminator.reconcile(&self.api.snapshot(), now).await;
        for node in &report.terminated {
            let reason = self.disrupted.remove(node).unwrap_or_else(|| "terminated".to_string());
            self.recorder.terminated(now, node, &reason);
        }
        let report = self.gc.reconcile(&self.api.snapshot(), now).await.map_err(Error::GarbageCollection)?;
        for claim in &report.forgotten_claims {
            self.recorder.terminated(now, claim, "instance gone");
        }
        Ok(())
    }

    /// Launches new claims (the provisioner's and the disruption loop's replacements), links registered nodes
    /// and deletes claims past their timeouts; records launches and failures.
    async fn advance_lifecycle(&mut self, now: Timestamp) {
        let (report, _) = self.lifecycle.reconcile(&self.api.snapshot(), now).await;
        for (offering, at) in self.cloud.take_capacity_errors() {
            self.recorder.capacity_error(at, offering.to_string(), at + UNAVAILABLE_TTL);
        }
        for (claim, instance) in report.launched.iter().chain(&report.adopted) {
            self.recorder.launched(now, claim, instance);
        }
        for (claim, reason) in &report.deleted {
            self.recorder.launch_failed(now, claim, reason.clone());
        }
    }

    fn cloud_events(&mut self, now: Timestamp, catalog: &Catalog) -> Result<(), Error> {
        let events = self.cloud.poll();
        for notice in &events.notices {
            if let Some(claim) = self.claim_of(&notice.provider_id) {
                self.recorder.interruption_notice(now, &claim, notice.reclaim_at);
            }
            // EventBridge delivers the notice to the queue; the cloud's copy is done with.
            let id = format!("sim-{}-{}", notice.instance_id, notice.noticed_at.as_second());
            let event = interruption::messages::spot_interruption_event(
                &id,
                &notice.instance_id,
                SIM_REGION,
                notice.noticed_at,
            );
            self.interruption_queue.send(event);
            self.cloud.acknowledge_interruption(&notice.instance_id);
        }
        for instance in &events.reclaimed {
            if let Some(claim) = instance.claim_name() {
                self.api.remove_node_of(claim);
                self.recorder.terminated(now, claim, "spot instance reclaimed");
            }
        }
        for instance in &events.registered {
            let claim = instance.claim_name().unwrap_or_default().to_string();
            if !self.api.snapshot().node_claims.contains_key(&claim) {
                continue;
            }
            let name = self.api.register_node(instance, catalog)?;
            self.recorder.registered(now, &name);
        }
        Ok(())
    }

    /// Runs the interruption loop until the queue is empty and puts the drains on the timeline.
    async fn handle_interruptions(&mut self, now: Timestamp) {
        while !self.interruption_queue.is_empty() {
            let api = self.api.clone();
            let report = match self.interruption.reconcile(|| api.snapshot(), || now).await {
                Ok(report) => report,
                Err(e) => {
                    tracing::warn!(error = %e, "Interruption queue failed");
                    return;
                }
            };
            for step in report.steps.iter().filter(|s| s.action == interruption::Action::Drain) {
                let node = step.node.clone().or_else(|| step.claim.clone()).unwrap_or_default();
                let reason = step.kind.as_str().replace('_', " ");
                self.recorder.drained(now, &node, &reason);
                self.disrupted.insert(node, format!("drained ({reason})"));
            }
            if report.deleted < report.received {
                // A failed action stays queued: retry on the next tick rather than spin.
                return;
            }
        }
    }

    fn claim_of(&self, provider_id: &str) -> Option<String> {
        self.api
            .snapshot()
            .node_claims
            .values()
            .find(|c| c.status.as_ref().and_then(|s| s.provider_id.as_deref()) == Some(provider_id))
            .map(|c| c.name_any())
    }

    /// Adds `lasting` of the $/h lower bound for the pods that exist now (see `scheduling::bound`).
    fn accumulate_bound(&mut self, snap: &Snapshot, catalog: &Catalog, lasting: SignedDuration) {
        let Some(total) = self.bound_cost else { return };
        let pods: Vec<Arc<Pod>> = snap
            .pods
            .values()
            .filter(|p| !p.is_terminal() && p.deleting.is_none() && !p.is_daemonset_pod())
            .cloned()
            .collect();
        // An applied Provisioner or NodeTemplate is a new Arc: same Arcs, same pools.
        let revision = (
            snap.provisioners.values().cloned().collect::<Vec<_>>(),
            snap.node_templates.values().cloned().collect::<Vec<_>>(),
        );
        let cache = match self.bound_cache.take() {
            Some(c) if same_arcs(&c.pools.0, &revision.0) && same_arcs(&c.pools.1, &revision.1) => c,
            _ => BoundCache {
                candidates: PoolCandidates::new(&pool_templates(snap, catalog)),
                pools: revision,
                classes: Vec::new(),
                rate: Some(0.0),
            },
        };
        let classes = cache.candidates.classes(&pods);
        let rate = if classes == cache.classes {
            cache.rate
        } else {
            lower_bound(&classes, &cache.candidates.candidates).ok()
        };
        self.bound_cache = Some(BoundCache { classes, rate, ..cache });
        self.bound_cost = rate.map(|rate| total + rate * lasting.as_secs_f64() / 3600.0);
    }
}

/// The Provisioners and NodeTemplates a bound was computed for.
type Pools = (Vec<Arc<crate::api::Provisioner>>, Vec<Arc<crate::api::NodeTemplate>>);

/// The last lower bound: its pools' candidates, the pod classes it was computed for and the $/h it gave.
struct BoundCache {
    pools: Pools,
    candidates: PoolCandidates,
    classes: Vec<PodClass>,
    rate: Option<f64>,
}

fn same_arcs<T>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}

/// The pools the Provisioners (and their NodeTemplates) launch from.
fn pool_templates(snap: &Snapshot, catalog: &Catalog) -> Vec<NodePoolTemplate> {
    snap.provisioners
        .values()
        .filter_map(|provisioner| {
            let template =
                provisioner.spec.provider_ref.as_ref().and_then(|r| snap.node_templates.get(&r.name));
            NodePoolTemplate::from_provisioner(
                provisioner,
                template.map(|t| t.as_ref()),
                catalog,
                PoolUsage::default(),
            )
            .ok()
        })
        .collect()
}

/// Rounds up to whole seconds: the simulation runs on one-second ticks.
fn ceil_secs(d: SignedDuration) -> SignedDuration {
    let whole = SignedDuration::from_secs(d.as_secs());
    if whole < d { whole + TICK } else { whole }
}

fn pod_counts(snap: &Snapshot) -> (usize, usize) {
    let workload = snap.pods.values().filter(|p| !p.is_daemonset_pod() && !p.is_terminal());
    let (mut pending, mut running) = (0, 0);
    for pod in workload {
        if pod.node_name.is_some() {
            running += 1;
        } else {
            pending += 1;
        }
    }
    (pending, running)
}
