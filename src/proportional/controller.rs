//! The proportional loop: find params ConfigMaps and their targets in the snapshot, read each target's
//! `/scale`, compute replicas from the node view (`plan`, pure), then write only what differs (`act`).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    sync::Arc,
    time::Duration,
};

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    Error,
    args::{NodeLabels, ProportionalArgs},
    params::Params,
    status::{ClusterStatus, Sums, is_schedulable},
    targets::{TargetKind, TargetRef, parse_target_list},
};
use crate::{
    actuator::{self, Actuator, EventRecord, EventType, ScaleTarget},
    api::{NodeClaim, labels},
    clock::Clock,
    model::{ConfigMap, Labels},
    resources::CPU,
    state::{Cluster, Kind, Snapshot},
};

/// `kind/name[,kind/name…]` in the ConfigMap's namespace: makes a ConfigMap a params ConfigMap for them.
pub const TARGET_ANNOTATION: &str = labels::PROPORTIONAL_TARGET;
/// `"true"`: NodeClaims still launching count as schedulable nodes, so add-ons scale ahead of the nodes.
pub const COUNT_LAUNCHING_ANNOTATION: &str = "ballast.dev/proportional-count-launching";
/// `key=value[,…]`: only matching nodes count; replaces `--proportional-node-labels` for this ConfigMap.
pub const NODE_LABELS_ANNOTATION: &str = "ballast.dev/proportional-node-labels";

/// A burst of node changes (a scale-up registering many nodes) gives one pass, not one per node.
const DEBOUNCE: Duration = Duration::from_secs(1);
/// A claim that has not become a node after this long is stuck, not launching: stop counting it.
const LAUNCH_WINDOW: SignedDuration = SignedDuration::from_mins(15);
const WATCHED: [Kind; 3] = [Kind::Node, Kind::NodeClaim, Kind::ConfigMap];

/// What a target's `/scale` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleRead {
    Replicas(i32),
    NotFound,
    Failed(String),
}

/// The nodes one ConfigMap's formula saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Inputs {
    pub status: ClusterStatus,
    /// NodeClaims still launching, included in `status` as schedulable nodes.
    pub launching: i64,
    pub include_unschedulable: bool,
}

impl fmt::Display for Inputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (nodes, cores) = self.status.counts(self.include_unschedulable);
        let which = if self.include_unschedulable { "nodes" } else { "schedulable nodes" };
        write!(f, "{nodes} {which}")?;
        if self.launching > 0 {
            write!(f, " ({} launching)", self.launching)?;
        }
        write!(f, ", {cores} cores")
    }
}

/// Replicas for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub target: ScaleTarget,
    /// `namespace/name` of the params ConfigMap.
    pub config_map: String,
    /// `linear` or `ladder`.
    pub controller: &'static str,
    pub inputs: Inputs,
    pub current: i32,
    pub desired: i32,
}

impl Decision {
    pub fn changes(&self) -> bool {
        self.current != self.desired
    }

    fn event(&self) -> EventRecord {
        let (api_version, kind) = TargetKind::from_name(&self.target.kind)
            .expect("targets are built from parsed TargetRefs")
            .api_version_and_kind();
        EventRecord {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: Some(self.target.namespace.clone()),
            name: self.target.name.clone(),
            type_: EventType::Normal,
            reason: "ScaledReplicas".to_string(),
            message: format!(
                "scaled from {} to {} replicas: {}, {} params in ConfigMap {}",
                self.current, self.desired, self.inputs, self.controller, self.config_map
            ),
        }
    }
}

/// A ConfigMap to create from `--proportional-default-params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConfigMap {
    pub namespace: String,
    pub name: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct Plan {
    /// Every target with valid params and known replicas, changed or not, ordered by target.
    pub decisions: Vec<Decision>,
    /// Warning Events on params ConfigMaps: bad params or annotations, missing or contested targets.
    pub warnings: Vec<EventRecord>,
    pub create_config_map: Option<NewConfigMap>,
    /// Problems with no object to report them on (logged).
    pub errors: Vec<Error>,
}

/// One params ConfigMap and the targets it scales.
struct Source<'a> {
    namespace: &'a str,
    name: &'a str,
    annotations: &'a Labels,
    data: &'a BTreeMap<String, String>,
    /// From `--proportional-target`, for the flag's ConfigMap.
    flag_targets: &'a [TargetRef],
}

impl Source<'_> {
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn targets(&self) -> Result<Vec<ScaleTarget>, Error> {
        let mut targets: BTreeSet<TargetRef> = self.flag_targets.iter().cloned().collect();
        if let Some(list) = self.annotations.get(TARGET_ANNOTATION) {
            targets.extend(parse_target_list(list).map_err(|e| self.invalid(TARGET_ANNOTATION, e))?);
        }
        Ok(targets.iter().map(|t| t.in_namespace(self.namespace)).collect())
    }

    fn count_launching(&self) -> Result<bool, Error> {
        match self.annotations.get(COUNT_LAUNCHING_ANNOTATION).map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => {
                Err(self.invalid(COUNT_LAUNCHING_ANNOTATION, format!("{other:?} is not true or false")))
            }
        }
    }

    fn node_labels(&self, default: &NodeLabels) -> Result<NodeLabels, Error> {
        match self.annotations.get(NODE_LABELS_ANNOTATION) {
            None => Ok(default.clone()),
            Some(value) => value.parse().map_err(|e| self.invalid(NODE_LABELS_ANNOTATION, e)),
        }
    }

    fn invalid(&self, annotation: &'static str, reason: impl ToString) -> Error {
        Error::InvalidAnnotation { config_map: self.key(), annotation, reason: reason.to_string() }
    }

    fn warning(&self, reason: &str, error: &Error) -> EventRecord {
        EventRecord {
            api_version: "v1".to_string(),
            kind: "ConfigMap".to_string(),
            namespace: Some(self.namespace.to_string()),
            name: self.name.to_string(),
            type_: EventType::Warning,
            reason: reason.to_string(),
            message: error.to_string(),
        }
    }
}

/// Replicas as one params ConfigMap computes them for its targets.
#[derive(Debug, Clone, Copy)]
struct Replicas {
    controller: &'static str,
    inputs: Inputs,
    desired: i32,
}

/// `(namespace, name, reason, message)` of a Warning already emitted.
type WarningKey = (Option<String>, String, String, String);

pub struct Proportional {
    args: ProportionalArgs,
    cluster: Cluster,
    actuator: Arc<dyn Actuator>,
    clock: Arc<dyn Clock>,
    /// Warnings emitted and still current, so a standing problem is reported once, not every poll.
    reported: Mutex<BTreeSet<WarningKey>>,
}

impl Proportional {
    pub fn new(
        args: ProportionalArgs,
        cluster: Cluster,
        actuator: Arc<dyn Actuator>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { args, cluster, actuator, clock, reported: Mutex::new(BTreeSet::new()) }
    }

    /// Recomputes on every node, NodeClaim or ConfigMap change (debounced) and at least every poll period,
    /// acting only while `leader` is true and the index is synced. Returns on shutdown, when the index is
    /// dropped or when the leader signal's sender is gone (its owner exits the process).
    pub async fn run(self, mut leader: watch::Receiver<bool>, shutdown: CancellationToken) {
        let mut changes = self.cluster.subscribe();
        loop {
            if *leader.borrow_and_update() && self.cluster.synced() {
                self.reconcile().await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.args.poll_period()) => {}
                changed = changes.changed(&WATCHED) => {
                    if changed.is_err() {
                        return;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(DEBOUNCE) => {}
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

    /// One pass: snapshot, read `/scale` of every target, plan, act. Returns what failed (already logged).
    pub async fn reconcile(&self) -> Vec<Error> {
        let snap = self.cluster.snapshot();
        let current = self.observe(&snap).await;
        let plan = self.plan(&snap, &current, self.clock.now());
        self.act(plan).await
    }

    /// Reads `/scale` of every target named in the snapshot.
    pub async fn observe(&self, snap: &Snapshot) -> BTreeMap<ScaleTarget, ScaleRead> {
        let mut current = BTreeMap::new();
        for target in self.targets(snap) {
            let read = match self.actuator.get_scale(&target).await {
                Ok(replicas) => ScaleRead::Replicas(replicas),
                Err(actuator::Error::NotFound(_)) => ScaleRead::NotFound,
                Err(error) => ScaleRead::Failed(error.to_string()),
            };
            current.insert(target, read);
        }
        current
    }

    /// Every target named by a params ConfigMap (or the flags) in the snapshot: what [`Self::plan`] needs the
    /// current replicas of.
    pub fn targets(&self, snap: &Snapshot) -> BTreeSet<ScaleTarget> {
        self.sources(snap).iter().filter_map(|source| source.targets().ok()).flatten().collect()
    }

    /// Desired replicas for every target, from the snapshot's nodes (and launching NodeClaims where a
    /// ConfigMap asks for them) and `current`, the targets' `/scale` reads; a target absent from `current`
    /// counts as not found.
    pub fn plan(&self, snap: &Snapshot, current: &BTreeMap<ScaleTarget, ScaleRead>, now: Timestamp) -> Plan {
        let mut plan = Plan::default();
        if let Some(name) = self.missing_flag_config_map(snap) {
            match &self.args.default_params {
                Some(defaults) => {
                    plan.create_config_map = Some(NewConfigMap {
                        namespace: self.args.namespace.clone(),
                        name: name.to_string(),
                        data: defaults.data.clone(),
                    })
                }
                None => plan.errors.push(Error::MissingConfigMap {
                    config_map: format!("{}/{}", self.args.namespace, name),
                }),
            }
        }
        let sources = self.sources(snap);
        let mut claims: BTreeMap<ScaleTarget, Vec<(usize, Replicas)>> = BTreeMap::new();
        for (index, source) in sources.iter().enumerate() {
            match self.compute(snap, source, now) {
                Ok((targets, replicas)) => {
                    for target in targets {
                        claims.entry(target).or_default().push((index, replicas));
                    }
                }
                Err(error) => plan.warnings.push(source.warning("InvalidConfig", &error)),
            }
        }
        for (target, claims) in claims {
            let [(index, replicas)] = claims.as_slice() else {
                let config_maps: Vec<String> =
                    claims.iter().map(|(index, _)| sources[*index].key()).collect();
                let error = Error::TargetConflict { target: describe(&target), config_maps };
                for (index, _) in &claims {
                    plan.warnings.push(sources[*index].warning("TargetConflict", &error));
                }
                continue;
            };
            let source = &sources[*index];
            match current.get(&target).unwrap_or(&ScaleRead::NotFound) {
                ScaleRead::Replicas(current) => plan.decisions.push(Decision {
                    target,
                    config_map: source.key(),
                    controller: replicas.controller,
                    inputs: replicas.inputs,
                    current: *current,
                    desired: replicas.desired,
                }),
                ScaleRead::NotFound => {
                    let error = Error::TargetNotFound { target: describe(&target), config_map: source.key() };
                    plan.warnings.push(source.warning("TargetNotFound", &error));
                }
                ScaleRead::Failed(message) => {
                    plan.errors.push(Error::ReadScale { target: describe(&target), message: message.clone() })
                }
            }
        }
        plan
    }

    /// Writes what the plan changes: the default ConfigMap, `/scale` where replicas differ (with an Event on
    /// the target), and Warnings not already reported. Failures are logged and returned; the next pass retries.
    pub async fn act(&self, plan: Plan) -> Vec<Error> {
        let mut errors = plan.errors;
        if let Some(new) = &plan.create_config_map {
            match self.actuator.create_config_map(&new.namespace, &new.name, &new.data).await {
                Ok(()) => info!(namespace = %new.namespace, name = %new.name, "Created params ConfigMap"),
                // Created meanwhile by someone else; theirs stays.
                Err(actuator::Error::Conflict(_)) => {}
                Err(source) => errors.push(Error::CreateConfigMap {
                    config_map: format!("{}/{}", new.namespace, new.name),
                    source,
                }),
            }
        }
        for decision in plan.decisions.iter().filter(|d| d.changes()) {
            match self.actuator.set_scale(&decision.target, decision.desired).await {
                Ok(()) => {
                    info!(
                        target = %describe(&decision.target),
                        from = decision.current,
                        to = decision.desired,
                        inputs = %decision.inputs,
                        config_map = %decision.config_map,
                        "Scaled proportional target"
                    );
                    self.emit(&decision.event()).await;
                }
                Err(source) => errors.push(Error::Scale { target: describe(&decision.target), source }),
            }
        }
        let current: BTreeSet<WarningKey> = plan.warnings.iter().map(warning_key).collect();
        let already = std::mem::replace(&mut *self.reported.lock(), current);
        for warning in plan.warnings.iter().filter(|w| !already.contains(&warning_key(w))) {
            warn!(
                namespace = ?warning.namespace,
                name = %warning.name,
                reason = %warning.reason,
                message = %warning.message,
                "Proportional scaling problem"
            );
            self.emit(warning).await;
        }
        for error in &errors {
            warn!(%error, "Proportional scaling pass incomplete");
        }
        errors
    }

    async fn emit(&self, event: &EventRecord) {
        if let Err(error) = self.actuator.emit_event(event).await {
            warn!(%error, reason = %event.reason, name = %event.name, "Failed to emit event");
        }
    }

    /// `--proportional-configmap` when it is set and the snapshot has no such ConfigMap.
    fn missing_flag_config_map(&self, snap: &Snapshot) -> Option<&str> {
        let name = self.args.config_map.as_deref()?;
        let missing = !snap.config_maps.contains_key(&format!("{}/{}", self.args.namespace, name));
        missing.then_some(name)
    }

    /// Annotated ConfigMaps, plus the flag's ConfigMap (or its default params while it does not exist).
    fn sources<'a>(&'a self, snap: &'a Snapshot) -> Vec<Source<'a>> {
        let is_flag_config_map = |cm: &ConfigMap| {
            self.args.config_map.as_deref() == Some(&cm.name) && self.args.namespace == cm.namespace
        };
        let mut sources: Vec<Source<'a>> = snap
            .config_maps
            .values()
            .filter(|cm| cm.annotations.contains_key(TARGET_ANNOTATION) || is_flag_config_map(cm))
            .map(|cm| Source {
                namespace: &cm.namespace,
                name: &cm.name,
                annotations: &cm.annotations,
                data: &cm.data,
                flag_targets: if is_flag_config_map(cm) { &self.args.targets } else { &[] },
            })
            .collect();
        if let (Some(name), Some(defaults)) = (self.missing_flag_config_map(snap), &self.args.default_params)
        {
            static NO_ANNOTATIONS: Labels = Labels::new();
            sources.push(Source {
                namespace: &self.args.namespace,
                name,
                annotations: &NO_ANNOTATIONS,
                data: &defaults.data,
                flag_targets: &self.args.targets,
            });
        }
        sources
    }

    fn compute(
        &self,
        snap: &Snapshot,
        source: &Source<'_>,
        now: Timestamp,
    ) -> Result<(Vec<ScaleTarget>, Replicas), Error> {
        let targets = source.targets()?;
        let count_launching = source.count_launching()?;
        let node_labels = source.node_labels(&self.args.node_labels)?;
        let params = Params::from_data(source.data)
            .map_err(|problem| Error::InvalidParams { config_map: source.key(), problem })?;
        let (controller, include_unschedulable) = match &params {
            Params::Linear(p) => ("linear", p.include_unschedulable_nodes),
            Params::Ladder(p) => ("ladder", p.include_unschedulable_nodes),
        };
        let (status, launching) = node_view(snap, &node_labels, count_launching, now);
        let inputs = Inputs { status, launching, include_unschedulable };
        Ok((targets, Replicas { controller, inputs, desired: params.replicas(&status) }))
    }
}

/// Counts matching nodes and, when asked, NodeClaims still launching (as schedulable nodes with the
/// allocatable CPU they report, or the CPU requested of them before they know their instance type).
fn node_view(
    snap: &Snapshot,
    labels: &NodeLabels,
    count_launching: bool,
    now: Timestamp,
) -> (ClusterStatus, i64) {
    let mut sums = Sums::default();
    for node in snap.nodes.values().filter(|node| labels.matches(&node.labels)) {
        sums.add(node.allocatable.get(CPU), is_schedulable(node));
    }
    let mut launching = 0;
    if count_launching {
        let provider_ids: BTreeSet<&str> =
            snap.nodes.values().filter_map(|n| n.provider_id.as_deref()).collect();
        for claim in snap.node_claims.values() {
            if is_launching(claim, snap, &provider_ids, now) && labels.matches(&claim_labels(claim)) {
                sums.add(claim_cpu_millis(claim), true);
                launching += 1;
            }
        }
    }
    (sums.into_status(), launching)
}

/// Not being deleted, not yet a node (by name or provider ID), and created within the launch window.
fn is_launching(claim: &NodeClaim, snap: &Snapshot, provider_ids: &BTreeSet<&str>, now: Timestamp) -> bool {
    let status = claim.status.as_ref();
    let registered =
        status.and_then(|s| s.node_name.as_ref()).is_some_and(|name| snap.nodes.contains_key(name))
            || status.and_then(|s| s.provider_id.as_deref()).is_some_and(|id| provider_ids.contains(id));
    let recent = claim
        .metadata
        .creation_timestamp
        .as_ref()
        .is_none_or(|created| now.duration_since(created.0) < LAUNCH_WINDOW);
    claim.metadata.deletion_timestamp.is_none() && !registered && recent
}

fn claim_labels(claim: &NodeClaim) -> Labels {
    let mut labels = claim.metadata.labels.clone().unwrap_or_default();
    labels.extend(claim.spec.labels.clone().unwrap_or_default());
    labels
}

fn claim_cpu_millis(claim: &NodeClaim) -> i64 {
    let allocatable = claim.status.as_ref().and_then(|s| s.allocatable.as_ref()).and_then(|a| a.get(CPU));
    let (quantity, field) = match allocatable {
        Some(quantity) => (quantity, "status.allocatable.cpu"),
        None => match claim.spec.resources.requests.get(CPU) {
            Some(quantity) => (quantity, "spec.resources.requests.cpu"),
            None => return 0,
        },
    };
    quantity.parse(CPU, field).unwrap_or_else(|error| {
        warn!(%error, claim = ?claim.metadata.name, "Counting a launching NodeClaim without cores");
        0
    })
}

fn describe(target: &ScaleTarget) -> String {
    format!("{}/{} in namespace {}", target.kind, target.name, target.namespace)
}

fn warning_key(event: &EventRecord) -> WarningKey {
    (event.namespace.clone(), event.name.clone(), event.reason.clone(), event.message.clone())
}

#[cfg(test)]
mod tests;
