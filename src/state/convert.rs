//! Kubernetes objects → domain structs ([`crate::model`]), once, at the edge.
//!
//! Every quantity is parsed here and every enum string checked, so planners never see k8s-openapi types. An
//! object that cannot be converted yields an [`Error`] naming it (`Pod default/web-0`), the field path and the
//! reason; watches log it and skip the object.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::{
    api::{
        apps::v1 as apps,
        core::v1::{self as core, Container, PodSpec, PodTemplateSpec, ResourceRequirements},
        policy::v1 as policy,
        storage::v1 as storage,
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector as KubeLabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};

use crate::{
    model::{
        Affinity, ConfigMap, DaemonSet, HostPort, InclusionPolicy, IntOrPercent, LabelSelector, Labels, Node,
        NodeAffinity, NodeSelectorTerm, Operator, OwnerRef, PersistentVolume, PersistentVolumeClaim, Pod,
        PodAffinity, PodAffinityTerm, PodDisruptionBudget, PodPhase, Requirement, StorageClass, Taint,
        TaintEffect, Toleration, TolerationOperator, TopologySpreadConstraint, VolumeBindingMode, Weighted,
        WhenUnsatisfiable,
    },
    resources::{self, ContainerRequests, Resources},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to convert {object}: {field}: {reason}")]
    Invalid { object: String, field: String, reason: String },
    #[error("failed to convert {object}: {source}")]
    Quantity {
        object: String,
        #[source]
        source: resources::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `kubectl apply`'s copy of the whole object: large and never read.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Pod and Node annotations ballast reads (do-not-disrupt and Karpenter/Cluster Autoscaler equivalents, mirror
/// pods). Every other annotation is dropped at the edge: at 100k pods, sidecar-injector and tooling
/// annotations would cost more memory than everything else the index keeps.
pub const KEPT_ANNOTATION_PREFIXES: &[&str] = &[
    "ballast.dev/",
    "karpenter.sh/",
    "karpenter.k8s.aws/",
    "cluster-autoscaler.kubernetes.io/",
    "kubernetes.io/config.",
];
const DEFAULT_SCHEDULER: &str = "default-scheduler";
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// Names the object being converted in errors.
struct Ctx {
    object: String,
}

impl Ctx {
    fn new(kind: &str, meta: &ObjectMeta) -> Self {
        let name = meta.name.as_deref().unwrap_or("<unnamed>");
        let object = match &meta.namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        Self { object }
    }

    fn invalid(&self, field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid { object: self.object.clone(), field: field.into(), reason: reason.into() }
    }

    fn name(&self, meta: &ObjectMeta) -> Result<String> {
        match meta.name.as_deref() {
            Some(name) if !name.is_empty() => Ok(name.to_string()),
            _ => Err(self.invalid("metadata.name", "missing")),
        }
    }

    fn namespace(&self, meta: &ObjectMeta) -> Result<String> {
        match meta.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => Ok(ns.to_string()),
            _ => Err(self.invalid("metadata.namespace", "missing")),
        }
    }

    fn created(&self, meta: &ObjectMeta) -> Result<Timestamp> {
        meta.creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .ok_or_else(|| self.invalid("metadata.creationTimestamp", "missing"))
    }

    fn resources(&self, field: &str, list: Option<&BTreeMap<String, Quantity>>) -> Result<Resources> {
        let list = list.into_iter().flatten().map(|(k, v)| (k.as_str(), v.0.as_str()));
        Resources::parse(field, list)
            .map_err(|source| Error::Quantity { object: self.object.clone(), source })
    }
}

// === Metadata ===

/// Drops what ballast never reads from objects it caches whole (its own CRDs).
pub fn strip_metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED);
    }
}

fn labels(meta: &ObjectMeta) -> Labels {
    meta.labels.clone().unwrap_or_default()
}

/// Every annotation but last-applied, for objects whose annotations are the point (ConfigMaps).
fn annotations(meta: &ObjectMeta) -> Labels {
    let mut out = meta.annotations.clone().unwrap_or_default();
    out.remove(LAST_APPLIED);
    out
}

/// Only the annotations in [`KEPT_ANNOTATION_PREFIXES`].
fn read_annotations(meta: &ObjectMeta) -> Labels {
    let all = meta.annotations.iter().flatten();
    all.filter(|(k, _)| KEPT_ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The controlling owner, else the first one.
fn owner(meta: &ObjectMeta) -> Option<OwnerRef> {
    let refs = meta.owner_references.as_deref().unwrap_or_default();
    let chosen: &OwnerReference = refs.iter().find(|r| r.controller == Some(true)).or(refs.first())?;
    Some(OwnerRef {
        kind: chosen.kind.clone(),
        name: chosen.name.clone(),
        uid: chosen.uid.clone(),
        controller: chosen.controller == Some(true),
    })
}

// === Pods ===

pub fn pod(pod: &core::Pod) -> Result<Pod> {
    let ctx = Ctx::new("Pod", &pod.metadata);
    let spec = pod.spec.as_ref().ok_or_else(|| ctx.invalid("spec", "missing"))?;
    let name = ctx.name(&pod.metadata)?;
    let namespace = ctx.namespace(&pod.metadata)?;
    let mut out = pod_from_spec(&ctx, "spec", &pod.metadata, spec, namespace, name)?;
    out.uid = pod.metadata.uid.clone().unwrap_or_default();
    out.created = ctx.created(&pod.metadata)?;
    out.deleting = pod.metadata.deletion_timestamp.as_ref().map(|t| t.0);
    out.node_name = spec.node_name.clone().filter(|n| !n.is_empty());
    if let Some(status) = &pod.status {
        out.phase = phase(&ctx, status.phase.as_deref())?;
        out.nominated_node = status.nominated_node_name.clone().filter(|n| !n.is_empty());
        out.unschedulable = status.conditions.iter().flatten().any(|c| {
            c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
        });
    }
    Ok(out)
}

/// A pod as a workload controller would create it from `template` (Deployments and DaemonSets in scenarios,
/// DaemonSet overhead for new nodes). `source` names the owning object in errors (`Deployment default/web`);
/// field paths start at `spec.template`. `uid` is empty and `created` the epoch: the caller that creates the
/// pod sets them.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    name: &str,
    owner: Option<OwnerRef>,
    source: &str,
) -> Result<Pod> {
    let ctx = Ctx { object: source.to_string() };
    let spec = template.spec.as_ref().ok_or_else(|| ctx.invalid("spec.template.spec", "missing"))?;
    let meta = template.metadata.clone().unwrap_or_default();
    let mut out = pod_from_spec(&ctx, "spec.template.spec", &meta, spec, namespace.into(), name.into())?;
    out.owner = owner;
    Ok(out)
}

/// Everything a pod's spec and metadata determine; status-derived fields start at their "new pod" values.
fn pod_from_spec(
    ctx: &Ctx,
    path: &str,
    meta: &ObjectMeta,
    spec: &PodSpec,
    namespace: String,
    name: String,
) -> Result<Pod> {
    let init = spec.init_containers.as_deref().unwrap_or_default();
    Ok(Pod {
        labels: labels(meta).into(),
        annotations: read_annotations(meta),
        owner: owner(meta),
        uid: String::new(),
        node_name: None,
        nominated_node: None,
        phase: PodPhase::Pending,
        unschedulable: false,
        requests: pod_requests(ctx, path, spec)?,
        node_selector: spec.node_selector.clone().unwrap_or_default(),
        affinity: affinity(ctx, &format!("{path}.affinity"), spec.affinity.as_ref())?.into(),
        tolerations: spec
            .tolerations
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| toleration(ctx, &format!("{path}.tolerations[{i}]"), t))
            .collect::<Result<Vec<_>>>()?
            .into(),
        topology_spread: spec
            .topology_spread_constraints
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| topology_spread(ctx, &format!("{path}.topologySpreadConstraints[{i}]"), t))
            .collect::<Result<_>>()?,
        host_ports: spec
            .containers
            .iter()
            .chain(init.iter().filter(|c| is_sidecar(c)))
            .flat_map(host_ports)
            .collect(),
        pvcs: spec
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| match (&v.persistent_volume_claim, &v.ephemeral) {
                (Some(claim), _) => Some(claim.claim_name.clone()),
                // The ephemeral-volume controller names the claim `<pod>-<volume>`.
                (None, Some(_)) => Some(format!("{name}-{}", v.name)),
                (None, None) => None,
            })
            .collect(),
        local_storage: spec.volumes.iter().flatten().any(|v| {
            v.host_path.is_some()
                || v.empty_dir.as_ref().is_some_and(|e| e.medium.as_deref() != Some("Memory"))
        }),
        priority: spec.priority.unwrap_or(0),
        priority_class: spec.priority_class_name.clone().filter(|p| !p.is_empty()),
        scheduler_name: spec.scheduler_name.clone().unwrap_or_else(|| DEFAULT_SCHEDULER.to_string()),
        created: Timestamp::UNIX_EPOCH,
        deleting: None,
        termination_grace_seconds: spec.termination_grace_period_seconds.unwrap_or(DEFAULT_GRACE_SECONDS),
        namespace,
        name,
    })
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// A container's requests, each missing one defaulting to its limit as the API server does.
fn container_requests(ctx: &Ctx, path: &str, resources: Option<&ResourceRequirements>) -> Result<Resources> {
    let requests = resources.and_then(|r| r.requests.as_ref());
    let mut out = ctx.resources(&format!("{path}.requests"), requests)?;
    let limits = resources.and_then(|r| r.limits.as_ref());
    let limit_only: BTreeMap<String, Quantity> = limits
        .into_iter()
        .flatten()
        .filter(|(name, _)| !requests.is_some_and(|r| r.contains_key(*name)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, amount) in ctx.resources(&format!("{path}.limits"), Some(&limit_only))?.iter() {
        out.set(name, amount);
    }
    Ok(out)
}

/// Kubernetes' `PodRequests`: containers, init containers and native sidecars via [`resources::pod_requests`],
/// then pod-level requests (cpu, memory, hugepages) replacing the aggregate, then overhead.
fn pod_requests(ctx: &Ctx, path: &str, spec: &PodSpec) -> Result<Resources> {
    let containers = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            container_requests(ctx, &format!("{path}.containers[{i}].resources"), c.resources.as_ref())
        })
        .collect::<Result<Vec<_>>>()?;
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let field = format!("{path}.initContainers[{i}].resources");
            let requests = container_requests(ctx, &field, c.resources.as_ref())?;
            Ok(ContainerRequests { requests, sidecar: is_sidecar(c) })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = resources::pod_requests(&containers, &init, &Resources::default());
    let pod_level = container_requests(ctx, &format!("{path}.resources"), spec.resources.as_ref())?;
    for (name, amount) in pod_level.iter() {
        if matches!(name, resources::CPU | resources::MEMORY) || name.starts_with("hugepages-") {
            out.set(name, amount);
        }
    }
    out += &ctx.resources(&format!("{path}.overhead"), spec.overhead.as_ref())?;
    Ok(out)
}

fn host_ports(c: &Container) -> impl Iterator<Item = HostPort> + '_ {
    c.ports.iter().flatten().filter(|p| p.host_port.is_some_and(|hp| hp > 0)).map(|p| HostPort {
        port: p.host_port.unwrap_or_default(),
        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
        ip: p.host_ip.clone().filter(|ip| !ip.is_empty()).unwrap_or_else(|| "0.0.0.0".to_string()),
    })
}

fn phase(ctx: &Ctx, phase: Option<&str>) -> Result<PodPhase> {
    Ok(match phase {
        None | Some("") | Some("Pending") => PodPhase::Pending,
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        Some("Unknown") => PodPhase::Unknown,
        Some(other) => return Err(ctx.invalid("status.phase", format!("unknown phase {other:?}"))),
    })
}

// === Scheduling constraints ===

fn operator(ctx: &Ctx, field: &str, op: &str, node: bool) -> Result<Operator> {
    Ok(match op {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" if node => Operator::Gt,
        "Lt" if node => Operator::Lt,
        other => return Err(ctx.invalid(field, format!("unknown operator {other:?}"))),
    })
}

fn node_selector_term(ctx: &Ctx, path: &str, term: &core::NodeSelectorTerm) -> Result<NodeSelectorTerm> {
    let reqs = |field: &str, list: Option<&Vec<core::NodeSelectorRequirement>>| {
        list.into_iter()
            .flatten()
            .enumerate()
            .map(|(i, r)| {
                Ok(Requirement {
                    key: r.key.clone(),
                    operator: operator(ctx, &format!("{path}.{field}[{i}].operator"), &r.operator, true)?,
                    values: r.values.clone().unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>>>()
    };
    Ok(NodeSelectorTerm {
        match_expressions: reqs("matchExpressions", term.match_expressions.as_ref())?,
        match_fields: reqs("matchFields", term.match_fields.as_ref())?,
    })
}

fn node_selector_terms(
    ctx: &Ctx,
    path: &str,
    terms: &[core::NodeSelectorTerm],
) -> Result<Vec<NodeSelectorTerm>> {
    terms.iter().enumerate().map(|(i, t)| node_selector_term(ctx, &format!("{path}[{i}]"), t)).collect()
}

fn label_selector(ctx: &Ctx, path: &str, selector: &KubeLabelSelector) -> Result<LabelSelector> {
    Ok(LabelSelector {
        match_labels: selector.match_labels.clone().unwrap_or_default(),
        match_expressions: selector
            .match_expressions
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, r)| {
                Ok(Requirement {
                    key: r.key.clone(),
                    operator: operator(
                        ctx,
                        &format!("{path}.matchExpressions[{i}].operator"),
                        &r.operator,
                        false,
                    )?,
                    values: r.values.clone().unwrap_or_default(),
                })
            })
            .collect::<Result<_>>()?,
    })
}

fn optional_selector(ctx: &Ctx, path: &str, s: Option<&KubeLabelSelector>) -> Result<Option<LabelSelector>> {
    s.map(|s| label_selector(ctx, path, s)).transpose()
}

fn pod_affinity_term(ctx: &Ctx, path: &str, t: &core::PodAffinityTerm) -> Result<PodAffinityTerm> {
    Ok(PodAffinityTerm {
        selector: optional_selector(ctx, &format!("{path}.labelSelector"), t.label_selector.as_ref())?,
        namespaces: t.namespaces.clone().unwrap_or_default(),
        namespace_selector: optional_selector(
            ctx,
            &format!("{path}.namespaceSelector"),
            t.namespace_selector.as_ref(),
        )?,
        topology_key: t.topology_key.clone(),
        match_label_keys: t.match_label_keys.clone().unwrap_or_default(),
        mismatch_label_keys: t.mismatch_label_keys.clone().unwrap_or_default(),
    })
}

fn pod_affinity(
    ctx: &Ctx,
    path: &str,
    required: Option<&Vec<core::PodAffinityTerm>>,
    preferred: Option<&Vec<core::WeightedPodAffinityTerm>>,
) -> Result<PodAffinity> {
    Ok(PodAffinity {
        required: required
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| {
                pod_affinity_term(
                    ctx,
                    &format!("{path}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"),
                    t,
                )
            })
            .collect::<Result<_>>()?,
        preferred: preferred
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, w)| {
                let field =
                    format!("{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}].podAffinityTerm");
                Ok(Weighted { weight: w.weight, term: pod_affinity_term(ctx, &field, &w.pod_affinity_term)? })
            })
            .collect::<Result<_>>()?,
    })
}

fn affinity(ctx: &Ctx, path: &str, affinity: Option<&core::Affinity>) -> Result<Affinity> {
    let Some(a) = affinity else { return Ok(Affinity::default()) };
    let mut out = Affinity::default();
    if let Some(node) = &a.node_affinity {
        let np = format!("{path}.nodeAffinity");
        out.node = NodeAffinity {
            required: match &node.required_during_scheduling_ignored_during_execution {
                Some(sel) => node_selector_terms(
                    ctx,
                    &format!("{np}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"),
                    &sel.node_selector_terms,
                )?,
                None => vec![],
            },
            preferred: node
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, p)| {
                    let field =
                        format!("{np}.preferredDuringSchedulingIgnoredDuringExecution[{i}].preference");
                    Ok(Weighted { weight: p.weight, term: node_selector_term(ctx, &field, &p.preference)? })
                })
                .collect::<Result<_>>()?,
        };
    }
    if let Some(p) = &a.pod_affinity {
        out.pod = pod_affinity(
            ctx,
            &format!("{path}.podAffinity"),
            p.required_during_scheduling_ignored_during_execution.as_ref(),
            p.preferred_during_scheduling_ignored_during_execution.as_ref(),
        )?;
    }
    if let Some(p) = &a.pod_anti_affinity {
        out.pod_anti = pod_affinity(
            ctx,
            &format!("{path}.podAntiAffinity"),
            p.required_during_scheduling_ignored_during_execution.as_ref(),
            p.preferred_during_scheduling_ignored_during_execution.as_ref(),
        )?;
    }
    Ok(out)
}

fn taint_effect(ctx: &Ctx, field: &str, effect: &str) -> Result<TaintEffect> {
    Ok(match effect {
        "NoSchedule" => TaintEffect::NoSchedule,
        "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
        "NoExecute" => TaintEffect::NoExecute,
        other => return Err(ctx.invalid(field, format!("unknown taint effect {other:?}"))),
    })
}

fn toleration(ctx: &Ctx, path: &str, t: &core::Toleration) -> Result<Toleration> {
    Ok(Toleration {
        key: t.key.clone().unwrap_or_default(),
        operator: match t.operator.as_deref() {
            None | Some("") | Some("Equal") => TolerationOperator::Equal,
            Some("Exists") => TolerationOperator::Exists,
            Some(other) => {
                return Err(ctx.invalid(format!("{path}.operator"), format!("unknown operator {other:?}")));
            }
        },
        value: t.value.clone().unwrap_or_default(),
        effect: match t.effect.as_deref() {
            None | Some("") => None,
            Some(effect) => Some(taint_effect(ctx, &format!("{path}.effect"), effect)?),
        },
        toleration_seconds: t.toleration_seconds,
    })
}

fn inclusion_policy(
    ctx: &Ctx,
    field: &str,
    value: Option<&str>,
    default: InclusionPolicy,
) -> Result<InclusionPolicy> {
    Ok(match value {
        None | Some("") => default,
        Some("Honor") => InclusionPolicy::Honor,
        Some("Ignore") => InclusionPolicy::Ignore,
        Some(other) => return Err(ctx.invalid(field, format!("unknown policy {other:?}"))),
    })
}

fn topology_spread(
    ctx: &Ctx,
    path: &str,
    t: &core::TopologySpreadConstraint,
) -> Result<TopologySpreadConstraint> {
    Ok(TopologySpreadConstraint {
        max_skew: t.max_skew,
        topology_key: t.topology_key.clone(),
        when_unsatisfiable: match t.when_unsatisfiable.as_str() {
            "DoNotSchedule" => WhenUnsatisfiable::DoNotSchedule,
            "ScheduleAnyway" => WhenUnsatisfiable::ScheduleAnyway,
            other => {
                return Err(
                    ctx.invalid(format!("{path}.whenUnsatisfiable"), format!("unknown value {other:?}"))
                );
            }
        },
        selector: optional_selector(ctx, &format!("{path}.labelSelector"), t.label_selector.as_ref())?,
        min_domains: t.min_domains,
        node_affinity_policy: inclusion_policy(
            ctx,
            &format!("{path}.nodeAffinityPolicy"),
            t.node_affinity_policy.as_deref(),
            InclusionPolicy::Honor,
        )?,
        node_taints_policy: inclusion_policy(
            ctx,
            &format!("{path}.nodeTaintsPolicy"),
            t.node_taints_policy.as_deref(),
            InclusionPolicy::Ignore,
        )?,
        match_label_keys: t.match_label_keys.clone().unwrap_or_default(),
    })
}

// === Nodes ===

pub fn node(node: &core::Node) -> Result<Node> {
    let ctx = Ctx::new("Node", &node.metadata);
    let spec = node.spec.clone().unwrap_or_default();
    let status = node.status.as_ref();
    Ok(Node {
        name: ctx.name(&node.metadata)?,
        provider_id: spec.provider_id.filter(|p| !p.is_empty()),
        labels: labels(&node.metadata),
        annotations: read_annotations(&node.metadata),
        taints: spec
            .taints
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| {
                Ok(Taint {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: taint_effect(&ctx, &format!("spec.taints[{i}].effect"), &t.effect)?,
                })
            })
            .collect::<Result<_>>()?,
        unschedulable: spec.unschedulable.unwrap_or(false),
        capacity: ctx.resources("status.capacity", status.and_then(|s| s.capacity.as_ref()))?,
        allocatable: ctx.resources("status.allocatable", status.and_then(|s| s.allocatable.as_ref()))?,
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        created: ctx.created(&node.metadata)?,
        deleting: node.metadata.deletion_timestamp.as_ref().map(|t| t.0),
    })
}

// === Workloads, budgets, volumes, config ===

pub fn daemonset(ds: &apps::DaemonSet) -> Result<DaemonSet> {
    let ctx = Ctx::new("DaemonSet", &ds.metadata);
    let name = ctx.name(&ds.metadata)?;
    let namespace = ctx.namespace(&ds.metadata)?;
    let spec = &ds.spec;
    let owner = OwnerRef {
        kind: "DaemonSet".to_string(),
        name: name.clone(),
        uid: ds.metadata.uid.clone().unwrap_or_default(),
        controller: true,
    };
    // Template pods have no name of their own; the daemonset's name keeps ephemeral claim names recognisable.
    let template = pod_from_template(&spec.template, &namespace, &name, Some(owner), &ctx.object)?;
    Ok(DaemonSet { namespace, name, template })
}

fn int_or_percent(ctx: &Ctx, field: &str, v: &IntOrString) -> Result<IntOrPercent> {
    match v {
        IntOrString::Int(i) if *i >= 0 => Ok(IntOrPercent::Int(*i)),
        IntOrString::Int(i) => Err(ctx.invalid(field, format!("{i} is negative"))),
        IntOrString::String(s) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i32>().ok())
            .filter(|p| (0..=100).contains(p))
            .map(IntOrPercent::Percent)
            .ok_or_else(|| {
                ctx.invalid(field, format!("{s:?} is neither an integer nor a percentage 0%..100%"))
            }),
    }
}

/// A PDB without a selector selects no pods; it is reported as an error so the watch skips it, which has the
/// same effect on eviction planning.
pub fn pdb(pdb: &policy::PodDisruptionBudget) -> Result<PodDisruptionBudget> {
    let ctx = Ctx::new("PodDisruptionBudget", &pdb.metadata);
    let spec = pdb.spec.clone().unwrap_or_default();
    let selector =
        spec.selector.as_ref().ok_or_else(|| ctx.invalid("spec.selector", "missing: selects no pods"))?;
    Ok(PodDisruptionBudget {
        namespace: ctx.namespace(&pdb.metadata)?,
        name: ctx.name(&pdb.metadata)?,
        selector: label_selector(&ctx, "spec.selector", selector)?,
        min_available: spec
            .min_available
            .as_ref()
            .map(|v| int_or_percent(&ctx, "spec.minAvailable", v))
            .transpose()?,
        max_unavailable: spec
            .max_unavailable
            .as_ref()
            .map(|v| int_or_percent(&ctx, "spec.maxUnavailable", v))
            .transpose()?,
        disruptions_allowed: pdb.status.as_ref().and_then(|s| s.disruptions_allowed).unwrap_or(0),
    })
}

pub fn pvc(pvc: &core::PersistentVolumeClaim) -> Result<PersistentVolumeClaim> {
    let ctx = Ctx::new("PersistentVolumeClaim", &pvc.metadata);
    let spec = pvc.spec.as_ref();
    Ok(PersistentVolumeClaim {
        namespace: ctx.namespace(&pvc.metadata)?,
        name: ctx.name(&pvc.metadata)?,
        storage_class: spec.and_then(|s| s.storage_class_name.clone()).filter(|s| !s.is_empty()),
        volume_name: spec.and_then(|s| s.volume_name.clone()).filter(|s| !s.is_empty()),
    })
}

pub fn pv(pv: &core::PersistentVolume) -> Result<PersistentVolume> {
    let ctx = Ctx::new("PersistentVolume", &pv.metadata);
    let required = pv.spec.as_ref().and_then(|s| s.node_affinity.as_ref()).and_then(|a| a.required.as_ref());
    Ok(PersistentVolume {
        name: ctx.name(&pv.metadata)?,
        node_affinity: match required {
            Some(sel) => node_selector_terms(
                &ctx,
                "spec.nodeAffinity.required.nodeSelectorTerms",
                &sel.node_selector_terms,
            )?,
            None => vec![],
        },
    })
}

pub fn storage_class(sc: &storage::StorageClass) -> Result<StorageClass> {
    let ctx = Ctx::new("StorageClass", &sc.metadata);
    Ok(StorageClass {
        name: ctx.name(&sc.metadata)?,
        provisioner: sc.provisioner.clone(),
        binding_mode: match sc.volume_binding_mode.as_deref() {
            None | Some("") | Some("Immediate") => VolumeBindingMode::Immediate,
            Some("WaitForFirstConsumer") => VolumeBindingMode::WaitForFirstConsumer,
            Some(other) => {
                return Err(ctx.invalid("volumeBindingMode", format!("unknown mode {other:?}")));
            }
        },
        allowed_topologies: sc
            .allowed_topologies
            .iter()
            .flatten()
            .map(|term| NodeSelectorTerm {
                match_expressions: term
                    .match_label_expressions
                    .iter()
                    .flatten()
                    .map(|r| Requirement {
                        key: r.key.clone(),
                        operator: Operator::In,
                        values: r.values.clone(),
                    })
                    .collect(),
                match_fields: vec![],
            })
            .collect(),
    })
}

pub fn config_map(cm: &core::ConfigMap) -> Result<ConfigMap> {
    let ctx = Ctx::new("ConfigMap", &cm.metadata);
    Ok(ConfigMap {
        namespace: ctx.namespace(&cm.metadata)?,
        name: ctx.name(&cm.metadata)?,
        annotations: annotations(&cm.metadata),
        data: cm.data.clone().unwrap_or_default(),
        resource_version: cm.metadata.resource_version.clone(),
    })
}

#[cfg(test)]
mod tests;
