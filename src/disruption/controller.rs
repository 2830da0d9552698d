//! The disruption loop: plan at most every [`POLL_PERIOD`], hold the command for [`VALIDATION_DELAY`], re-plan
//! it, launch its replacements and wait for them to initialize, then hand the nodes to termination by tainting
//! them `ballast.dev/disruption=disrupting:NoSchedule`. One command in flight at a time.
//!
//! Safe to interrupt: nothing is written before a command is validated, and the taint (the only durable
//! mark) is written last. A restart mid-launch leaves a replacement node that consolidation treats like any
//! other.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    Command, Context, Error, History, VALIDATION_DELAY,
    candidate::REPLACEMENT_ANNOTATION,
    methods::{NODE_TEMPLATE_HASH_ANNOTATION, node_template_hash},
    metrics::DisruptionMetrics,
    plan, validate,
};
use crate::{
    actuator::{Actuator, EventRecord, EventType},
    api::labels,
    clock::Clock,
    cloud::CloudProvider,
    model::{Taint, TaintEffect},
    provisioning,
    scheduling::NodePoolTemplate,
    state::{Cluster, Kind, Snapshot},
};

/// Karpenter's disruption controller polls every 10 s.
pub const POLL_PERIOD: SignedDuration = SignedDuration::from_secs(10);
/// `ballast run` passes at least this often (the simulator uses the same period).
pub const RUN_TICK: std::time::Duration = std::time::Duration::from_secs(5);
/// A burst of index changes makes one pass.
const RUN_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(1);
/// What disruption decisions depend on.
const RUN_WATCHED: [Kind; 6] = [
    Kind::Node,
    Kind::NodeClaim,
    Kind::Pod,
    Kind::PodDisruptionBudget,
    Kind::Provisioner,
    Kind::NodeTemplate,
];
/// A replacement that has not initialized by then fails its command.
pub const REPLACEMENT_TIMEOUT: SignedDuration = SignedDuration::from_secs(600);

/// The taint that marks a node for termination.
pub fn disruption_taint() -> Taint {
    Taint {
        key: labels::DISRUPTION_TAINT_KEY.to_string(),
        value: labels::DISRUPTION_TAINT_VALUE.to_string(),
        effect: TaintEffect::NoSchedule,
    }
}

#[derive(Debug, Clone)]
enum Stage {
    Idle {
        next_plan: Timestamp,
    },
    Validating {
        command: Command,
        decided: Timestamp,
    },
    /// `seen`: claims the index has shown; one that vanishes after that failed to launch or was deleted.
    Replacing {
        command: Command,
        claims: Vec<String>,
        seen: BTreeSet<String>,
        started: Timestamp,
    },
}

/// What one pass did, for the simulator's timeline and tests.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub decided: Option<Command>,
    pub executed: Option<Command>,
    /// A command dropped, and why.
    pub dropped: Option<(Command, String)>,
}

pub struct Disruption {
    cloud: Arc<dyn CloudProvider>,
    kube: Arc<dyn Actuator>,
    metrics: DisruptionMetrics,
    history: History,
    stage: Stage,
}

impl Disruption {
    pub fn new(cloud: Arc<dyn CloudProvider>, kube: Arc<dyn Actuator>, metrics: DisruptionMetrics) -> Self {
        Self {
            cloud,
            kube,
            metrics,
            history: History::default(),
            stage: Stage::Idle { next_plan: Timestamp::MIN },
        }
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// One pass over `snap` at `now`. `pools` are the Provisioners' pools (as the provisioner builds them).
    pub async fn reconcile(
        &mut self,
        snap: &Snapshot,
        pools: &BTreeMap<String, NodePoolTemplate>,
        now: Timestamp,
    ) -> Result<Report, Error> {
        self.history.observe(snap, now);
        let mut report = Report::default();
        if !snap.synced() {
            return Ok(report);
        }
        let catalog = self.cloud.catalog().await.map_err(Error::Catalog)?;
        let (settings, errors) = super::settings(snap);
        for e in &errors {
            warn!(error = %e, "Skipping Provisioner for disruption");
        }
        let ctx =
            Context { snap, catalog: &catalog, pools, settings: &settings, history: &self.history, now };
        match self.stage.clone() {
            Stage::Idle { next_plan } if now >= next_plan => {
                self.stage = Stage::Idle { next_plan: now + POLL_PERIOD };
                if let Some(command) = plan(&ctx).command {
                    info!(command = %command.describe(), "Disruption decided; validating");
                    self.metrics
                        .decisions
                        .get_or_create(&DisruptionMetrics::labels(command.reason, command.is_replace()))
                        .inc();
                    report.decided = Some(command.clone());
                    self.stage = Stage::Validating { command, decided: now };
                }
            }
            Stage::Idle { .. } => {}
            Stage::Validating { command, decided } if now >= decided + VALIDATION_DELAY => {
                let Some(fresh) = validate(&ctx, &command) else {
                    info!(command = %command.describe(), "Disruption invalidated by changes since the decision");
                    self.metrics.outcome(command.reason, "invalidated");
                    report.dropped = Some((command, "no longer valid".into()));
                    self.stage = Stage::Idle { next_plan: now + POLL_PERIOD };
                    return Ok(report);
                };
                if fresh.is_replace() {
                    match self.launch_replacements(snap, &fresh).await {
                        Ok(claims) => {
                            let seen = BTreeSet::new();
                            self.stage = Stage::Replacing { command: fresh, claims, seen, started: now }
                        }
                        Err(reason) => self.fail(fresh, reason, now, &mut report),
                    }
                } else {
                    self.execute(&fresh, &mut report).await;
                    self.stage = Stage::Idle { next_plan: now + POLL_PERIOD };
                }
            }
            Stage::Validating { .. } => {}
            Stage::Replacing { command, claims, mut seen, started } => {
                seen.extend(claims.iter().filter(|c| snap.node_claims.contains_key(*c)).cloned());
                let node_of = |claim: &str| {
                    let c = snap.node_claims.get(claim)?;
                    let node = c.status.as_ref()?.node_name.as_ref()?;
                    snap.nodes.get(node)
                };
                if claims.iter().all(|c| node_of(c).is_some_and(|n| n.ready)) {
                    self.execute(&command, &mut report).await;
                    self.stage = Stage::Idle { next_plan: now + POLL_PERIOD };
                } else if let Some(gone) = seen.iter().find(|c| !snap.node_claims.contains_key(*c)) {
                    self.fail(command, format!("replacement NodeClaim {gone} disappeared"), now, &mut report);
                } else if now >= started + REPLACEMENT_TIMEOUT {
                    self.fail(command, "replacements did not initialize in time".into(), now, &mut report);
                } else {
                    self.stage = Stage::Replacing { command, claims, seen, started };
                }
            }
        }
        Ok(report)
    }

    /// Runs passes while `leader` is true and the index is synced: on every change to what disruption reads
    /// (debounced) and at least every [`RUN_TICK`], which also drives the validation delay and the wait for
    /// replacements. Returns on shutdown, when the index is dropped or when the leader signal's sender is
    /// gone.
    pub async fn run(
        mut self,
        cluster: Cluster,
        clock: Arc<dyn Clock>,
        mut leader: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        let mut changes = cluster.subscribe();
        loop {
            if *leader.borrow_and_update()
                && cluster.synced()
                && let Err(e) = self.pass(&cluster.snapshot(), clock.now()).await
            {
                warn!(error = %e, "Disruption pass failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RUN_TICK) => {}
                changed = changes.changed(&RUN_WATCHED) => {
                    if changed.is_err() {
                        return;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(RUN_DEBOUNCE) => {}
                    }
                }
                changed = leader.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// One pass with the pools built from the cloud's current catalog.
    pub async fn pass(&mut self, snap: &Snapshot, now: Timestamp) -> Result<Report, Error> {
        let catalog = self.cloud.catalog().await.map_err(Error::Catalog)?;
        let (pools, errors) = super::pools(snap, &catalog);
        for e in &errors {
            warn!(error = %e, "Skipping Provisioner for disruption replacements");
        }
        self.reconcile(snap, &pools, now).await
    }

    fn fail(&mut self, command: Command, reason: String, now: Timestamp, report: &mut Report) {
        warn!(command = %command.describe(), %reason, "Disruption failed");
        self.metrics.outcome(command.reason, "replacement_failed");
        report.dropped = Some((command, reason));
        self.stage = Stage::Idle { next_plan: now + POLL_PERIOD };
    }

    /// Taints the nodes for termination and records why.
    async fn execute(&mut self, command: &Command, report: &mut Report) {
        let labels = DisruptionMetrics::labels(command.reason, command.is_replace());
        let taint = disruption_taint();
        for node in &command.nodes {
            if let Err(e) = self.kube.taint_node(node, &taint).await {
                warn!(%node, error = %e, "Failed to taint node for disruption");
                continue;
            }
            self.metrics.nodes_disrupted.get_or_create(&labels).inc();
            let event = EventRecord {
                api_version: "v1".into(),
                kind: "Node".into(),
                namespace: None,
                name: node.clone(),
                type_: EventType::Normal,
                reason: "Disrupting".into(),
                message: command.describe(),
            };
            if let Err(e) = self.kube.emit_event(&event).await {
                warn!(%node, error = %e, "Failed to emit disruption event");
            }
        }
        info!(command = %command.describe(), "Disrupting");
        self.metrics.savings.get_or_create(&labels).inc_by(command.savings.max(0.0));
        self.metrics.outcome(command.reason, "executed");
        report.executed = Some(command.clone());
    }

    /// Creates one NodeClaim per replacement (as the provisioner would, marked as a replacement for the
    /// cooldown and with the NodeTemplate hash for drift); the lifecycle loop launches them. On failure deletes
    /// what it created.
    async fn launch_replacements(&self, snap: &Snapshot, command: &Command) -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        for new in &command.replacements {
            let mut planned = provisioning::planned_claim(snap, new.clone());
            let meta = &mut planned.claim.metadata;
            let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
            annotations.insert(REPLACEMENT_ANNOTATION.to_string(), command.nodes.join(","));
            if let Some(t) = new.node_template.as_ref().and_then(|t| snap.node_templates.get(t)) {
                annotations.insert(NODE_TEMPLATE_HASH_ANNOTATION.to_string(), node_template_hash(&t.spec));
            }
            meta.finalizers = Some(vec![labels::TERMINATION_FINALIZER.to_string()]);
            match self.kube.create_node_claim(&planned.claim).await {
                Ok(created) => names.push(created.name_any()),
                Err(e) => {
                    for n in &names {
                        let _ = self.kube.delete_node_claim(n).await;
                    }
                    return Err(format!("failed to create a replacement NodeClaim: {e}"));
                }
            }
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        actuator::{Call, RecordingActuator},
        cloud::{CapacityType::OnDemand, fake::FakeCloud},
        disruption::fixtures::{World, at, node, provisioner},
        state::Object,
    };

    fn setup(world: &World) -> (Disruption, Arc<RecordingActuator>, Arc<FakeCloud>) {
        let kube = Arc::new(RecordingActuator::new());
        let cloud = Arc::new(FakeCloud::new(Arc::new(world.catalog.clone()), at(0)));
        (Disruption::new(cloud.clone(), kube.clone(), DisruptionMetrics::default()), kube, cloud)
    }

    #[tokio::test]
    async fn a_command_is_validated_after_the_delay_then_tainted_with_an_event() {
        let mut w = World::new(provisioner("default", true, |_| {}), OnDemand);
        w.add_node("a", "m5.xlarge", OnDemand).add_pods("a", 1, 1000);
        w.add_node("b", "m5.xlarge", OnDemand).add_pods("b", 1, 1000);
        let snap = w.snapshot();
        let (mut d, kube, _) = setup(&w);
        let report = d.reconcile(&snap, &w.pools, at(60)).await.unwrap();
        let decided = report.decided.expect("decided");
        assert!(kube.calls().is_empty(), "nothing is written before validation");
        let report = d.reconcile(&snap, &w.pools, at(70)).await.unwrap();
        assert!(report.executed.is_none() && report.decided.is_none());
        let report = d.reconcile(&snap, &w.pools, at(75)).await.unwrap();
        assert_eq!(report.executed.as_ref().map(|c| &c.nodes), Some(&decided.nodes));
        let calls = kube.calls();
        assert_eq!(calls[0], Call::TaintNode(decided.nodes[0].clone(), disruption_taint()));
        let event = kube.events().pop().unwrap();
        assert_eq!(event.reason, "Disrupting");
        assert!(
            event.message.contains("underutilized") && event.message.contains("$0.1920/h"),
            "{}",
            event.message
        );
        let executed = d.metrics.outcomes.get_or_create(&super::super::metrics::OutcomeLabels {
            reason: "underutilized".into(),
            outcome: "executed".into(),
        });
        assert_eq!(executed.get(), 1);
    }

    #[tokio::test]
    async fn a_replacement_is_launched_and_initialized_before_the_node_is_tainted() {
        let mut w = World::new(provisioner("default", true, |_| {}), OnDemand);
        w.add_node("big", "m5.2xlarge", OnDemand).add_pods("big", 1, 1000);
        let snap = w.snapshot();
        let (mut d, kube, cloud) = setup(&w);
        assert!(d.reconcile(&snap, &w.pools, at(60)).await.unwrap().decided.is_some());
        d.reconcile(&snap, &w.pools, at(75)).await.unwrap();
        assert!(cloud.create_calls().is_empty(), "the lifecycle loop launches the replacement");
        let calls = kube.take_calls();
        assert!(matches!(&calls[0], Call::CreateNodeClaim(_)));
        assert!(!calls.iter().any(|c| matches!(c, Call::TaintNode(..))), "not before the replacement is up");

        // The RecordingActuator keeps the generateName, so the replacement is `default-`.
        let report = d.reconcile(&snap, &w.pools, at(80)).await.unwrap();
        assert!(report.executed.is_none());
        let (n, c) = node("default-", "c5.large", OnDemand, at(100));
        w.add(Object::Node(Arc::new(n))).add(Object::NodeClaim(Arc::new(c)));
        let report = d.reconcile(&w.snapshot(), &w.pools, at(110)).await.unwrap();
        assert_eq!(report.executed.map(|c| c.nodes), Some(vec!["big".to_string()]));
        assert_eq!(kube.calls()[0], Call::TaintNode("big".into(), disruption_taint()));
    }

    #[tokio::test(start_paused = true)]
    async fn run_acts_while_leading_and_returns_on_shutdown() {
        let mut w = World::new(provisioner("default", true, |_| {}), OnDemand);
        w.add_node("a", "m5.xlarge", OnDemand).add_pods("a", 1, 1000);
        w.add_node("b", "m5.xlarge", OnDemand).add_pods("b", 1, 1000);
        let cluster = Cluster::new();
        for object in w.objects.clone() {
            cluster.apply(object);
        }
        let clock = crate::clock::ManualClock::new(at(60));
        let (d, kube, _) = setup(&w);
        let (leader_tx, leader) = watch::channel(true);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(d.run(cluster, Arc::new(clock.clone()), leader, shutdown.clone()));
        // Decided on the first pass; validated once the virtual clock passes the delay.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        clock.set(at(80));
        tokio::time::sleep(RUN_TICK * 2).await;
        assert!(kube.calls().iter().any(|c| matches!(c, Call::TaintNode(..))), "{:?}", kube.calls());
        shutdown.cancel();
        task.await.unwrap();
        drop(leader_tx);
    }

    #[tokio::test]
    async fn a_command_invalidated_by_new_pods_is_dropped() {
        let mut w = World::new(provisioner("default", true, |_| {}), OnDemand);
        w.add_node("a", "m5.xlarge", OnDemand).add_pods("a", 1, 1000);
        w.add_node("b", "m5.xlarge", OnDemand).add_pods("b", 1, 1000);
        let (mut d, kube, _) = setup(&w);
        let decided = d.reconcile(&w.snapshot(), &w.pools, at(60)).await.unwrap().decided.unwrap();
        // A do-not-disrupt pod lands on the chosen node during the wait.
        let mut p = crate::disruption::fixtures::pod("late", Some(&decided.nodes[0]), 100);
        p.annotations.insert(labels::DO_NOT_DISRUPT.into(), "true".into());
        w.add(Object::Pod(Arc::new(p)));
        let report = d.reconcile(&w.snapshot(), &w.pools, at(75)).await.unwrap();
        assert!(report.dropped.is_some() && report.executed.is_none());
        assert!(kube.calls().is_empty());
    }
}
