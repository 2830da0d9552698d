//! `ballast plan`: what each loop would do now, from a snapshot directory or the live cluster, writing nothing.
//!
//! The input becomes the same [`Snapshot`] the loops plan from in `ballast run` (dumps go through the watches'
//! converters, [`load`]; the live cluster through the watches themselves, [`live`]). Then each enabled loop's
//! pure planning function runs once at `now`: [`provisioning::plan`], [`disruption::plan`] and the proportional
//! loop's `plan`. No Actuator or CloudProvider is involved, so nothing can be written; prices come from the
//! bundled catalog or `--catalog`.

mod live;
pub mod load;
pub mod report;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use jiff::{SignedDuration, Timestamp};

use self::report::{
    DisruptionDecision, DisruptionPlan, Launch, NodeProblem, PodProblem, ProportionalPlan, ProvisioningPlan,
    RemovedNode, ReplicaDecision, round6,
};
pub use self::{
    load::{Loaded, SkippedObject, load_dir},
    report::Report,
};
use crate::{
    actuator::{RecordingActuator, ScaleTarget},
    api::labels,
    clock::SystemClock,
    cloud::{Catalog, catalog},
    config::{LoopArgs, PlanArgs},
    disruption::{self, Context, History, VALIDATION_DELAY, candidate},
    proportional::{Proportional, ProportionalArgs, ScaleRead},
    provisioning::{self, Nominations},
    state::{Cluster, Kind, Snapshot},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read snapshot directory {path}: {reason}")]
    Snapshot { path: PathBuf, reason: String },
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
    #[error(transparent)]
    Client(#[from] crate::client::Error),
    #[error(
        "failed to read the cluster: the watches had not listed every kind after {0:?} (see the warnings above; \
         raise --sync-timeout-seconds for a slow API server)"
    )]
    SyncTimeout(Duration),
    #[error("failed to start the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("{0}: ballast plan does not cover this loop yet")]
    UnsupportedLoop(&'static str),
}

/// The loops to plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loops {
    pub provisioning: bool,
    pub disruption: bool,
    pub proportional: bool,
}

impl Loops {
    pub const ALL: Loops = Loops { provisioning: true, disruption: true, proportional: true };

    /// The `--enable-*` flags as `run` takes them; none given means every loop `plan` covers.
    pub fn from_args(args: &LoopArgs) -> Result<Self, Error> {
        let LoopArgs {
            enable_provisioning,
            enable_disruption,
            enable_node_groups,
            enable_proportional,
            enable_event_scaler,
        } = *args;
        if enable_node_groups {
            return Err(Error::UnsupportedLoop("--enable-node-groups"));
        }
        if enable_event_scaler {
            return Err(Error::UnsupportedLoop("--enable-event-scaler"));
        }
        let loops = Loops {
            provisioning: enable_provisioning,
            disruption: enable_disruption,
            proportional: enable_proportional,
        };
        let none = !(loops.provisioning || loops.disruption || loops.proportional);
        Ok(if none { Loops::ALL } else { loops })
    }
}

/// What a plan reads: the snapshot, and what the snapshot cannot hold.
#[derive(Debug, Default)]
pub struct Input {
    /// `snapshot <dir>` or `cluster …`, for the report.
    pub source: String,
    pub snapshot: Snapshot,
    /// Current replicas of scalable workloads (at least of every proportional target).
    pub replicas: BTreeMap<ScaleTarget, ScaleRead>,
    pub skipped: Vec<SkippedObject>,
    pub ignored_kinds: BTreeMap<String, usize>,
}

impl Input {
    pub fn from_loaded(source: String, loaded: Loaded) -> Self {
        let Loaded { snapshot, replicas, skipped, ignored_kinds, files: _ } = loaded;
        Self { source, snapshot, replicas, skipped, ignored_kinds }
    }
}

/// `ballast plan`: loads the input named by `args` (a snapshot directory, else the live cluster), then plans.
pub fn run(args: &PlanArgs) -> Result<Report, Error> {
    let loops = Loops::from_args(&args.loops)?;
    let catalog = match &args.catalog {
        Some(path) => Arc::new(Catalog::from_file(path)?),
        None => Catalog::bundled(),
    };
    let config_maps = flag_config_maps(&args.proportional);
    let input = match &args.snapshot {
        Some(dir) => Input::from_loaded(format!("snapshot {}", dir.display()), load_dir(dir, &config_maps)?),
        None => {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Error::Runtime)?;
            runtime.block_on(live::load(args, config_maps))?
        }
    };
    let now = args.now.unwrap_or_else(Timestamp::now);
    Ok(plan(&input, &catalog, loops, &args.proportional, now))
}

/// The ConfigMap named by `--proportional-configmap` is indexed even without the annotation.
pub fn flag_config_maps(args: &ProportionalArgs) -> BTreeSet<String> {
    args.config_map.iter().map(|name| format!("{}/{name}", args.namespace)).collect()
}

/// Every enabled loop's decisions on `input` at `now`. Pure.
pub fn plan(
    input: &Input,
    catalog: &Catalog,
    loops: Loops,
    proportional: &ProportionalArgs,
    now: Timestamp,
) -> Report {
    let snap = &input.snapshot;
    Report {
        source: input.source.clone(),
        now: now.to_string(),
        objects: Kind::ALL
            .iter()
            .filter(|kind| snap.len(**kind) > 0)
            .map(|kind| (format!("{kind:?}"), snap.len(*kind)))
            .collect(),
        skipped_objects: input.skipped.clone(),
        ignored_kinds: input.ignored_kinds.clone(),
        provisioning: loops.provisioning.then(|| plan_provisioning(snap, catalog, now)),
        disruption: loops.disruption.then(|| plan_disruption(snap, catalog, now)),
        proportional: loops.proportional.then(|| plan_proportional(input, proportional, now)),
    }
}

fn plan_provisioning(snap: &Snapshot, catalog: &Catalog, now: Timestamp) -> ProvisioningPlan {
    // A fresh loop has nominated nothing: pods that fit on launching NodeClaims are nominated by this plan.
    let plan = provisioning::plan(snap, catalog, &Nominations::new(), now);
    let launches: Vec<Launch> = plan
        .claims
        .iter()
        .map(|c| {
            Launch::new(&c.claim.spec.provisioner, c.claim.spec.node_template.as_deref(), &c.pods, &c.options)
        })
        .collect();
    let mut unschedulable: Vec<PodProblem> =
        plan.unschedulable.into_iter().map(|(pod, reason)| PodProblem { pod, reason }).collect();
    unschedulable.sort();
    let mut invalid_provisioners = plan.invalid_provisioners;
    invalid_provisioners.sort();
    ProvisioningPlan {
        cost_per_hour: round6(launches.iter().map(Launch::price).sum()),
        launches,
        nominated: plan.nominations,
        unschedulable,
        invalid_provisioners,
    }
}

/// The first command the disruption loop would take if the cluster stays as it is. A loop starting now has
/// no history, so it counts `ttlSecondsAfterEmpty` and `consolidateAfter` from now: the plan is tried now and
/// at each of those waits, and the first command found is reported with its wait.
fn plan_disruption(snap: &Snapshot, catalog: &Catalog, now: Timestamp) -> DisruptionPlan {
    let (pools, pool_errors) = disruption::pools(snap, catalog);
    let (settings, setting_errors) = disruption::settings(snap);
    let mut history = History::default();
    history.observe(snap, now);
    let mut waits = BTreeSet::from([SignedDuration::ZERO]);
    for s in settings.values() {
        waits.extend(s.ttl_after_empty);
        if s.consolidation {
            waits.insert(s.consolidate_after);
        }
    }
    let mut protected = Vec::new();
    let mut found = None;
    for (i, wait) in waits.into_iter().enumerate() {
        let ctx =
            Context { snap, catalog, pools: &pools, settings: &settings, history: &history, now: now + wait };
        let plan = disruption::plan(&ctx);
        if i == 0 {
            protected = plan.skipped.into_iter().map(|(node, reason)| NodeProblem { node, reason }).collect();
        }
        if let Some(command) = plan.command {
            found = Some((wait, command));
            break;
        }
    }

    let (candidates, _) = candidate::candidates(snap, catalog);
    let decision = found.map(|(wait, command)| {
        let nodes = command
            .nodes
            .iter()
            .map(|name| {
                let c = candidates.iter().find(|c| c.name() == name);
                let label = |key: &str| {
                    snap.nodes.get(name).and_then(|n| n.labels.get(key)).cloned().unwrap_or_default()
                };
                RemovedNode {
                    name: name.clone(),
                    provisioner: c.map(|c| c.provisioner.clone()).unwrap_or_default(),
                    instance_type: label(labels::INSTANCE_TYPE),
                    zone: label(labels::ZONE),
                    capacity_type: label(labels::CAPACITY_TYPE),
                    price_per_hour: round6(c.map_or(0.0, |c| c.price)),
                    pods: c.map(|c| c.pods.iter().map(|p| p.key()).collect()).unwrap_or_default(),
                }
            })
            .collect();
        DisruptionDecision {
            reason: command.reason.as_str().to_string(),
            method: if command.is_replace() { "replace" } else { "delete" }.to_string(),
            nodes,
            replacements: command
                .replacements
                .iter()
                .map(|r| Launch::new(&r.pool, r.node_template.as_deref(), &r.pods, &r.launch_options))
                .collect(),
            savings_per_hour: round6(command.savings),
            detail: command.detail.clone(),
            decided_after_seconds: wait.as_secs(),
            acts_after_seconds: (wait + VALIDATION_DELAY).as_secs(),
        }
    });

    let mut waiting = Vec::new();
    if settings.values().any(|s| s.consolidation) {
        let pending = snap.pending_pods().filter(|p| candidate::is_reschedulable(p)).count();
        if pending > 0 {
            waiting.push(format!(
                "consolidation holds while {pending} pod(s) are pending: the provisioner is still placing pods"
            ));
        }
        for claim in snap.node_claims.values().filter(|c| is_launching(snap, c)) {
            waiting.push(format!(
                "consolidation holds while NodeClaim {} launches",
                kube::ResourceExt::name_any(&**claim)
            ));
        }
    }
    let mut invalid_provisioners: Vec<String> =
        pool_errors.into_iter().chain(setting_errors.iter().map(ToString::to_string)).collect();
    invalid_provisioners.sort();
    invalid_provisioners.dedup();
    protected.sort();
    DisruptionPlan { decision, protected, waiting, invalid_provisioners }
}

/// Consolidation's own in-flight test: not being deleted and not yet a registered node.
fn is_launching(snap: &Snapshot, claim: &crate::api::NodeClaim) -> bool {
    claim.metadata.deletion_timestamp.is_none()
        && claim
            .status
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_none_or(|n| !snap.nodes.contains_key(n))
}

/// The proportional loop with its flags; its Actuator is a recorder `plan` never calls (only `act` writes).
fn proportional_loop(args: &ProportionalArgs) -> Proportional {
    Proportional::new(args.clone(), Cluster::new(), Arc::new(RecordingActuator::new()), Arc::new(SystemClock))
}

fn plan_proportional(input: &Input, args: &ProportionalArgs, now: Timestamp) -> ProportionalPlan {
    let plan = proportional_loop(args).plan(&input.snapshot, &input.replicas, now);
    let targets = plan
        .decisions
        .iter()
        .map(|d| ReplicaDecision {
            kind: d.target.kind.clone(),
            namespace: d.target.namespace.clone(),
            name: d.target.name.clone(),
            config_map: d.config_map.clone(),
            controller: d.controller.to_string(),
            inputs: d.inputs.to_string(),
            current: d.current,
            desired: d.desired,
        })
        .collect();
    let mut warnings: Vec<String> = plan
        .warnings
        .iter()
        .map(|e| {
            format!("{} {}/{}: {}", e.kind, e.namespace.as_deref().unwrap_or_default(), e.name, e.message)
        })
        .chain(plan.errors.iter().map(ToString::to_string))
        .collect();
    if let Some(cm) = &plan.create_config_map {
        warnings.push(format!(
            "would create ConfigMap {}/{} from --proportional-default-params",
            cm.namespace, cm.name
        ));
    }
    warnings.sort();
    ProportionalPlan { targets, warnings }
}

#[cfg(test)]
mod tests;
