//! `solve`: where pending pods go, and which new nodes are cheapest.
//!
//! Pods are grouped into equivalence classes (see `classes`). For each class, strictest variant first:
//! 1. fill existing and in-flight nodes (free capacity costs nothing);
//! 2. add to NodeClaims opened earlier in this solve when the price increase per pod is no more than a
//!    fresh node would cost per pod (a claim stays flexible over every type that still fits its pods, so
//!    "adding" may move it to a bigger type);
//! 3. open new NodeClaims from the heaviest Provisioner that can host the class, picking the instance type
//!    with the lowest price per pod packed (not the first or largest that fits).
//!
//! Classes without topology constraints or host ports are placed in bulk (as many pods per node as fit);
//! constrained ones one pod at a time, re-checking spread and (anti-)affinity counts after each placement.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use crate::{
    api::labels,
    cloud::{CapacityType, InstanceType, LaunchOption},
    model::{DaemonSet, HostPort, InclusionPolicy, Labels, Pod, Taint},
    resources::{Resources, format_quantity},
};

use super::{
    bound,
    classes::{self, VariantSpec, VolumeTopology},
    requirements::{Requirements, ValueSet, canonical_key, label_value},
    taints::{DisplayTaint, first_untolerated},
    template::{NODES_LIMIT, NodePoolTemplate, limit_charge},
    topology::{GroupKey, Groups, NamespaceScope, NodeFilter, Spread},
};

/// Launch options cover the cheapest this many types of a claim (Karpenter's AWS provider sends 60 to
/// CreateFleet); `NewClaim::instance_types` keeps every type that fits.
pub const MAX_LAUNCH_TYPES: usize = 60;

/// A node pods can be placed on: registered, or launched and not yet registered (in flight).
#[derive(Debug, Clone, PartialEq)]
pub struct ExistingNode {
    pub name: String,
    /// For an in-flight claim, the labels already decided (zone, capacity type, … when single-valued).
    pub labels: Labels,
    /// Taints that block scheduling; the caller leaves out a Provisioner's startup taints.
    pub taints: Vec<Taint>,
    pub allocatable: Resources,
    /// Pods bound or nominated to the node (counted for resources, host ports and topology).
    pub pods: Vec<Arc<Pod>>,
    /// Cordoned or being deleted: its pods still count for topology, but nothing new goes there.
    pub unschedulable: bool,
    pub in_flight: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SolveInput {
    pub existing: Vec<ExistingNode>,
    pub pending: Vec<Arc<Pod>>,
    pub pools: Vec<NodePoolTemplate>,
    pub daemonsets: Vec<Arc<DaemonSet>>,
    pub volumes: VolumeTopology,
    /// Namespace labels, for pod affinity terms with a namespace selector.
    pub namespace_labels: BTreeMap<String, Labels>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Placement {
    /// An existing or in-flight node, by name.
    Existing(String),
    /// Index into [`Results::new_claims`].
    NewClaim(usize),
}

/// A node to launch.
#[derive(Debug, Clone, PartialEq)]
pub struct NewClaim {
    pub pool: String,
    pub node_template: Option<String>,
    /// The placeholder hostname the solver gave the node for hostname topology (the claim's name is free).
    pub hostname: String,
    /// Keys of the pods planned onto it.
    pub pods: Vec<String>,
    /// Pool requirements narrowed by every pod on it (zones, capacity types, instance labels…).
    pub requirements: Requirements,
    /// Pod requests plus the daemonset overhead on the cheapest type.
    pub requests: Resources,
    /// Every type that fits the pods, cheapest available offering first.
    pub instance_types: Vec<Arc<InstanceType>>,
    /// Type × zone × capacity type for the cheapest [`MAX_LAUNCH_TYPES`] types, cheapest first.
    pub launch_options: Vec<LaunchOption>,
    pub labels: Labels,
    pub taints: Vec<Taint>,
    pub startup_taints: Vec<Taint>,
}

impl NewClaim {
    /// The price of the cheapest launch option.
    pub fn price(&self) -> f64 {
        self.launch_options.first().map_or(0.0, |o| o.price)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    /// Pod key → where it goes.
    pub placements: BTreeMap<String, Placement>,
    pub new_claims: Vec<NewClaim>,
    /// Pod key and why no node can host it.
    pub unschedulable: Vec<(String, String)>,
}

/// Places `input.pending`. Pure and deterministic: the same input gives the same results.
pub fn solve(input: &SolveInput) -> Results {
    let mut state = State::new(input);
    let classes = state.build_classes();
    state.run(&classes);
    state.results(&classes)
}

// === Context ===

struct TypeCtx {
    it: Arc<InstanceType>,
    /// Allocatable minus the daemonset pods that would run on this type in this pool.
    room: Resources,
    overhead: Resources,
    /// (index into [`PoolCtx::slots`], cheapest available price there), so pricing under a zone or
    /// capacity-type choice compares no strings.
    prices: Vec<(usize, f64)>,
    /// Per offering of `it`, its slot when available.
    offering_slots: Vec<Option<usize>>,
}

impl TypeCtx {
    /// The cheapest available offering's price among the `allowed` slots (see [`PoolCtx::allowed_slots`]).
    fn price_in(&self, allowed: &[bool]) -> Option<f64> {
        self.prices.iter().filter(|(s, _)| allowed[*s]).map(|&(_, p)| p).min_by(f64::total_cmp)
    }
}

struct PoolCtx<'a> {
    pool: &'a NodePoolTemplate,
    /// What every node of the pool carries (hostname excepted).
    base: Requirements,
    types: Vec<TypeCtx>,
    /// Label keys that instance types define: a type without one launches a node without that label.
    instance_keys: BTreeSet<String>,
    remaining: BTreeMap<String, i64>,
    /// Every (zone, capacity type) some type of the pool offers, sorted.
    slots: Vec<(String, CapacityType)>,
}

impl PoolCtx<'_> {
    /// Which of [`Self::slots`] `req` allows once `pins` fix some keys: [`offering_price`] for many types
    /// under one requirement.
    fn allowed_slots(&self, req: &Requirements, pins: &[(&str, &str)]) -> Vec<bool> {
        let pinned_to =
            |key: &str, value: &str| pins.iter().all(|(k, v)| canonical_key(k) != key || *v == value);
        self.slots
            .iter()
            .map(|(zone, ct)| {
                req.allows_offering_at(zone, *ct)
                    && pinned_to(labels::ZONE, zone)
                    && pinned_to(labels::CAPACITY_TYPE, ct.as_str())
            })
            .collect()
    }

    fn type_matches<'k>(&self, t: &TypeCtx, req: &Requirements, keys: impl Iterator<Item = &'k str>) -> bool {
        keys.filter(|k| *k != labels::ZONE && *k != labels::CAPACITY_TYPE).all(|k| {
            let Some(set) = req.get(k) else { return true };
            match t.it.labels.get(k) {
                Some(v) => set.has(v),
                None => !self.instance_keys.contains(k) || set.allows_absent(),
            }
        })
    }

    fn within_limits(&self, t: &TypeCtx) -> bool {
        self.remaining.iter().all(|(k, left)| {
            let need = if k == NODES_LIMIT { 1 } else { t.it.capacity.get(k) };
            need <= *left
        })
    }
}

fn offering_price(it: &InstanceType, req: &Requirements) -> Option<f64> {
    it.cheapest_offering(|o| req.allows_offering_at(&o.zone, o.capacity_type)).map(|o| o.price)
}

/// How many pods requesting `each` fit in `room` after `used`, at most `max`. Field by field: this is the
/// hot loop, and most calls ask about one pod, which takes comparisons rather than divisions.
fn fit_count(room: &Resources, used: &Resources, each: &Resources, max: i64) -> i64 {
    if max <= 1 {
        let fits = |room: i64, used: i64, each: i64| each <= 0 || room - used >= each;
        let get = |r: &Resources, k: &str| r.extended.get(k).copied().unwrap_or(0);
        let one = fits(room.cpu, used.cpu, each.cpu)
            && fits(room.memory, used.memory, each.memory)
            && fits(room.ephemeral_storage, used.ephemeral_storage, each.ephemeral_storage)
            && fits(room.pods, used.pods, each.pods)
            && each.extended.iter().all(|(k, v)| fits(get(room, k), get(used, k), *v));
        return if one { max.max(0) } else { 0 };
    }
    let mut n = max;
    let mut limit = |room: i64, used: i64, each: i64| {
        if each > 0 {
            n = n.min(((room - used) / each).max(0));
        }
    };
    limit(room.cpu, used.cpu, each.cpu);
    limit(room.memory, used.memory, each.memory);
    limit(room.ephemeral_storage, used.ephemeral_storage, each.ephemeral_storage);
    limit(room.pods, used.pods, each.pods);
    for (k, v) in &each.extended {
        let get = |r: &Resources| r.extended.get(k).copied().unwrap_or(0);
        limit(get(room), get(used), *v);
    }
    n
}

fn add_scaled(total: &mut Resources, each: &Resources, count: i64) {
    total.cpu += each.cpu * count;
    total.memory += each.memory * count;
    total.ephemeral_storage += each.ephemeral_storage * count;
    total.pods += each.pods * count;
    for (k, v) in &each.extended {
        let sum = total.extended.get(k).copied().unwrap_or(0) + v * count;
        total.set(k, sum);
    }
}

fn ports_conflict(a: &[HostPort], b: &[HostPort]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| {
            x.port == y.port
                && x.protocol == y.protocol
                && (x.ip == y.ip
                    || x.ip == "0.0.0.0"
                    || y.ip == "0.0.0.0"
                    || x.ip.is_empty()
                    || y.ip.is_empty())
        })
    })
}

/// `node` narrowed by `pod` on the keys the node side defines (other keys were checked to allow absence).
fn narrow<'r>(node: &'r Requirements, pod: &Requirements) -> Cow<'r, Requirements> {
    let mut out: Option<Requirements> = None;
    for (k, want) in pod.iter() {
        let Some(have) = node.get(k) else { continue };
        let merged = have.intersect(want);
        if &merged != have {
            out.get_or_insert_with(|| node.clone()).add(k, want.clone());
        }
    }
    out.map_or(Cow::Borrowed(node), Cow::Owned)
}

// === Classes ===

struct Variant {
    alternatives: Vec<Requirements>,
    strict_prefer_taints: bool,
    spreads: Vec<Spread>,
    affinity: Vec<usize>,
    anti: Vec<usize>,
    /// The first `required_anti` of `anti` are required terms; only those keep other pods away (symmetry).
    required_anti: usize,
    /// Topology keys a claim must fix to one value before this class's pods land on it.
    pin_keys: Vec<String>,
    /// Placed one pod at a time.
    constrained: bool,
}

struct Class {
    pods: Vec<usize>,
    rep: Arc<Pod>,
    variants: Vec<Variant>,
    /// Groups whose selector matches these pods.
    member_of: Vec<usize>,
    /// Why no variant can ever work (bad requirement, missing volume, unsatisfiable selectors).
    invalid: Option<String>,
}

/// A node as topology sees it: a registered node's labels, or a planned node's requirements (a key is a
/// domain once it has a single value).
#[derive(Clone, Copy)]
enum Where<'r> {
    Labels(&'r Labels),
    /// A planned node with some keys fixed to one value each (what [`pin`] would make, without copying).
    Planned(&'r Requirements, &'r [(&'r str, &'r str)]),
}

impl<'r> Where<'r> {
    fn domain(self, key: &str) -> Option<&'r str> {
        match self {
            Where::Labels(l) => label_value(l, key),
            Where::Planned(r, pins) => {
                let key = canonical_key(key);
                let mut values = pins.iter().filter(|(k, _)| canonical_key(k) == key).map(|(_, v)| *v);
                match values.next() {
                    // Two pins of one key with different values leave no value, as `pin` would.
                    Some(v) if values.all(|w| w == v) => Some(v),
                    Some(_) => None,
                    None => r.get(key).and_then(ValueSet::single),
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Node(usize),
    Claim(usize),
}

struct Claim {
    pool: usize,
    req: Requirements,
    hostname: String,
    used: Resources,
    /// (type index in the pool, price under `req`), cheapest first.
    types: Vec<(usize, f64)>,
    /// Element-wise maximum room over `types`: a pod that does not fit `hull - used` fits no type.
    hull: Resources,
    ports: Vec<HostPort>,
    pods: Vec<usize>,
    charge: BTreeMap<String, i64>,
}

struct NodeState {
    free: Resources,
    ports: Vec<HostPort>,
}

/// Why a pool cannot take a pod, for the unschedulable reason.
#[derive(Debug, Clone, PartialEq)]
enum PoolFailure {
    Taint(String),
    Requirement(String),
    Topology(String),
    Resources(String),
    Limits(String),
}

/// `plan_claim`'s type scans for one class variant by (pool, alternative, pins): the types that fit, the
/// chosen price and pods per node; `None` when no type fits.
type ScanCache = HashMap<(usize, usize, Vec<(String, String)>), Option<(Vec<(usize, f64)>, f64, i64)>>;

/// A new claim ready to open.
#[derive(Clone)]
struct ClaimPlan {
    pool: usize,
    req: Requirements,
    /// Pods of the class per claim.
    pods: i64,
    types: Vec<(usize, f64)>,
    price_per_pod: f64,
}

/// Which topology rule keeps a pod off a node (see [`State::describe_block`]).
#[derive(Debug, Clone, Copy)]
enum TopologyBlock {
    /// Index into the variant's spreads.
    Spread(usize),
    /// A group of the variant's required affinity, anti-affinity, or a running pod's anti-affinity.
    Affinity(usize),
    AntiAffinity(usize),
    RunningAntiAffinity(usize),
}

/// What nodes packed for several classes share: the classes, each member's variant, the pool, the
/// node requirements and the pool's types they may use (cheapest first).
#[derive(Clone, Copy)]
struct Packed<'s, 'c> {
    classes: &'c [Class],
    chosen: &'s [(usize, &'c Variant)],
    pool: usize,
    req: &'s Requirements,
    types: &'s [(usize, f64)],
}

/// What one node packed for several classes holds: (class, pods) pairs.
type Packing = Vec<(usize, i64)>;

/// Pods a group of classes packed together needs before its nodes come from the configuration LP (see
/// [`State::open_lp_packings`]).
const LP_PACKING_MIN_PODS: usize = 500;
/// Master LP solves of that column generation.
const LP_PACKING_ROUNDS: usize = 8;

enum Attempt {
    Placed(i64),
    /// Nothing more of this class will ever fit here (resources, ports, taints, requirements).
    Full,
    /// Topology forbids it now; later placements may change that.
    Blocked,
}

/// Claims grouped by the values they fix for one set of topology keys (a variant's pin keys): claims of a
/// group look the same to topology, so one check per group and pod judges them all. Kept across classes
/// (see [`State::domain_indexes`]): a claim's group only changes when pods land on it.
#[derive(Default)]
struct DomainIndex {
    keys: Vec<String>,
    /// Per claim, once looked up: its group, or `None` while some key is open.
    group_of: Vec<Option<Option<usize>>>,
    /// Per group: the fixed (key, value) pairs.
    groups: Vec<Vec<(String, String)>>,
    /// Group by its pairs.
    index: HashMap<Vec<(String, String)>, usize>,
}

impl DomainIndex {
    fn group(&mut self, claims: &[Claim], c: usize) -> Option<usize> {
        if self.group_of.len() <= c {
            self.group_of.resize(c + 1, None);
        }
        let (keys, groups, index) = (&self.keys, &mut self.groups, &mut self.index);
        *self.group_of[c].get_or_insert_with(|| {
            let req = &claims[c].req;
            let pins: Vec<(String, String)> = keys
                .iter()
                .map(|k| Some((k.clone(), req.get(k)?.single()?.to_string())))
                .collect::<Option<_>>()?;
            Some(*index.entry(pins).or_insert_with_key(|pins| {
                groups.push(pins.clone());
                groups.len() - 1
            }))
        })
    }

    /// Claim `c`'s requirements changed.
    fn forget(&mut self, c: usize) {
        if let Some(g) = self.group_of.get_mut(c) {
            *g = None;
        }
    }
}

/// One class variant's topology verdicts per group of a [`DomainIndex`] (`None` for hostname keys, where
/// every claim is its own domain and is judged directly).
struct FixedDomains {
    index: Option<usize>,
    /// Per group, once checked since the last placement: whether topology blocks one more pod there.
    verdicts: Vec<Option<bool>>,
}

impl FixedDomains {
    fn new(state: &mut State<'_>, v: &Variant) -> Self {
        let index = (!v.pin_keys.is_empty() && !v.pin_keys.iter().any(|k| classes::is_hostname(k)))
            .then(|| state.domain_index(&v.pin_keys));
        Self { index, verdicts: Vec::new() }
    }

    /// True when claim `c`'s domains are all fixed and topology forbids one more pod of the class there.
    fn blocked(&mut self, state: &mut State<'_>, class: &Class, v: &Variant, c: usize) -> bool {
        if v.pin_keys.is_empty() {
            return false;
        }
        let Some(i) = self.index else {
            let req = &state.claims[c].req;
            return v.pin_keys.iter().all(|k| req.get(k).is_some_and(|s| s.single().is_some()))
                && state.topology_check(class, v, Where::Planned(req, &[])).is_err();
        };
        let Some(g) = state.domain_indexes[i].group(&state.claims, c) else { return false };
        if self.verdicts.len() <= g {
            self.verdicts.resize(g + 1, None);
        }
        *self.verdicts[g].get_or_insert_with(|| {
            let pins: Vec<(&str, &str)> =
                state.domain_indexes[i].groups[g].iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            state.topology_check(class, v, Where::Planned(&Requirements::new(), &pins)).is_err()
        })
    }

    /// Counts changed: every verdict is stale.
    fn forget_verdicts(&mut self) {
        self.verdicts.fill(None);
    }
}

struct State<'a> {
    input: &'a SolveInput,
    pools: Vec<PoolCtx<'a>>,
    /// Indices of schedulable existing nodes: registered first, then in flight, by name.
    node_order: Vec<usize>,
    nodes: Vec<NodeState>,
    claims: Vec<Claim>,
    /// Claims that may still take some pending pod, in opening order (others can never grow).
    open_claims: Vec<usize>,
    /// Element-wise minimum request over pending pods: a claim without room for it is closed.
    smallest_request: Resources,
    groups: Groups,
    /// Groups used as a required anti-affinity term by some pod.
    anti_groups: BTreeSet<usize>,
    assigned: Vec<Option<Target>>,
    reasons: BTreeMap<usize, String>,
    /// Claims grouped by fixed domains, one index per set of pin keys in use.
    domain_indexes: Vec<DomainIndex>,
}

impl<'a> State<'a> {
    fn new(input: &'a SolveInput) -> Self {
        let mut pools: Vec<PoolCtx<'a>> =
            input.pools.iter().map(|p| build_pool(p, &input.daemonsets)).collect();
        pools.sort_by(|a, b| b.pool.weight.cmp(&a.pool.weight).then_with(|| a.pool.name.cmp(&b.pool.name)));
        let nodes = input
            .existing
            .iter()
            .map(|n| {
                let used: Resources = n.pods.iter().map(|p| &p.requests).sum();
                NodeState {
                    free: n.allocatable.clone() - &used,
                    ports: n.pods.iter().flat_map(|p| p.host_ports.iter().cloned()).collect(),
                }
            })
            .collect();
        let mut node_order: Vec<usize> =
            (0..input.existing.len()).filter(|&i| !input.existing[i].unschedulable).collect();
        node_order.sort_by(|&a, &b| {
            let (x, y) = (&input.existing[a], &input.existing[b]);
            x.in_flight.cmp(&y.in_flight).then_with(|| x.name.cmp(&y.name))
        });
        Self {
            input,
            pools,
            node_order,
            nodes,
            claims: Vec::new(),
            open_claims: Vec::new(),
            smallest_request: smallest_request(&input.pending),
            groups: Groups::default(),
            anti_groups: BTreeSet::new(),
            assigned: vec![None; input.pending.len()],
            reasons: BTreeMap::new(),
            domain_indexes: Vec::new(),
        }
    }

    // === Setup ===

    fn build_classes(&mut self) -> Vec<Class> {
        let input = self.input;
        // Running pods' required anti-affinity keeps matching pods out of their domains.
        for node in &input.existing {
            for pod in &node.pods {
                for term in &pod.affinity.pod_anti.required {
                    let g = self.intern(term, &pod.namespace);
                    self.anti_groups.insert(g);
                    if let Some(d) = label_value(&node.labels, &term.topology_key) {
                        self.groups.list[g].add_owners(d, 1);
                    }
                }
            }
        }
        let volumes: Vec<_> = input.pending.iter().map(|p| input.volumes.alternatives(p)).collect();
        let mut classes: Vec<Class> = classes::equivalence_classes(&input.pending, &volumes)
            .into_iter()
            .map(|pods| {
                let rep = input.pending[pods[0]].clone();
                let specs = volumes[pods[0]].clone().and_then(|v| {
                    let alts = classes::pod_alternatives(&rep, &v)?;
                    if alts.is_empty() {
                        return Err(
                            "node selector, required node affinity and volume topology conflict".into()
                        );
                    }
                    classes::variant_specs(&rep, &alts)
                });
                match specs {
                    Ok(specs) => {
                        let variants = specs.iter().map(|s| self.resolve_variant(&rep, s)).collect();
                        Class { pods, rep, variants, member_of: Vec::new(), invalid: None }
                    }
                    Err(reason) => Class {
                        pods,
                        rep,
                        variants: Vec::new(),
                        member_of: Vec::new(),
                        invalid: Some(reason),
                    },
                }
            })
            .collect();
        // Count running pods into every group, now that all are known.
        for node in &input.existing {
            for pod in &node.pods {
                for g in &mut self.groups.list {
                    if let Some(d) = label_value(&node.labels, &g.key.topology_key)
                        && g.key.nodes.admits_node(&node.labels, &node.taints)
                        && g.selects(&pod.namespace, &pod.labels, &input.namespace_labels)
                    {
                        g.add_members(d, 1);
                    }
                }
            }
        }
        for class in &mut classes {
            class.member_of = (0..self.groups.list.len())
                .filter(|&g| {
                    self.groups.list[g].selects(
                        &class.rep.namespace,
                        &class.rep.labels,
                        &input.namespace_labels,
                    )
                })
                .collect();
            let symmetric = class.member_of.iter().any(|g| self.anti_groups.contains(g));
            for v in &mut class.variants {
                v.constrained |= symmetric;
                for &g in &class.member_of {
                    let key = &self.groups.list[g].key.topology_key;
                    if !v.pin_keys.contains(key) {
                        v.pin_keys.push(key.clone());
                    }
                }
            }
        }
        classes
    }

    fn intern(&mut self, term: &crate::model::PodAffinityTerm, namespace: &str) -> usize {
        self.groups.intern(GroupKey {
            topology_key: term.topology_key.clone(),
            scope: NamespaceScope::of_term(term, namespace),
            selector: term.selector.clone(),
            nodes: NodeFilter::default(),
        })
    }

    fn resolve_variant(&mut self, pod: &Pod, spec: &VariantSpec) -> Variant {
        let mut pin_keys: Vec<String> = Vec::new();
        let mut pin = |k: &str| {
            if !pin_keys.iter().any(|p| p == k) {
                pin_keys.push(k.to_string());
            }
        };
        let spreads: Vec<Spread> = spec
            .spreads
            .iter()
            .map(|s| {
                pin(&s.topology_key);
                let selector = s
                    .selector
                    .as_ref()
                    .map(|sel| super::selectors::with_label_keys(sel, &s.match_label_keys, &pod.labels));
                let group = self.groups.intern(GroupKey {
                    topology_key: s.topology_key.clone(),
                    scope: NamespaceScope::only(&pod.namespace),
                    selector,
                    nodes: spread_node_filter(pod, s),
                });
                let (domains, fresh_domains) = self.spread_domains(pod, spec, &s.topology_key, s);
                Spread {
                    group,
                    max_skew: s.max_skew.max(1) as i64,
                    min_domains: s.min_domains.map(i64::from),
                    when_unsatisfiable: s.when_unsatisfiable,
                    domains,
                    fresh_domains,
                }
            })
            .collect();
        let affinity: Vec<usize> = spec
            .affinity
            .iter()
            .map(|t| {
                pin(&t.topology_key);
                self.intern(t, &pod.namespace)
            })
            .collect();
        let required_anti = pod.affinity.pod_anti.required.len();
        let anti: Vec<usize> = spec
            .anti_affinity
            .iter()
            .enumerate()
            .map(|(i, t)| {
                pin(&t.topology_key);
                let g = self.intern(t, &pod.namespace);
                if i < required_anti {
                    self.anti_groups.insert(g);
                }
                g
            })
            .collect();
        let constrained =
            !spreads.is_empty() || !affinity.is_empty() || !anti.is_empty() || !pod.host_ports.is_empty();
        Variant {
            alternatives: spec.alternatives.clone(),
            strict_prefer_taints: spec.strict_prefer_taints,
            spreads,
            affinity,
            anti,
            required_anti,
            pin_keys,
            constrained,
        }
    }

    /// Domains of `key` eligible for `pod` under the spread's node inclusion policies, from existing nodes
    /// and from what the pools can launch; and whether a new node is itself a fresh domain (hostname).
    fn spread_domains(
        &self,
        pod: &Pod,
        spec: &VariantSpec,
        key: &str,
        s: &crate::model::TopologySpreadConstraint,
    ) -> (BTreeSet<String>, bool) {
        let honor_affinity = s.node_affinity_policy == InclusionPolicy::Honor;
        let honor_taints = s.node_taints_policy == InclusionPolicy::Honor;
        let mut domains = BTreeSet::new();
        let mut fresh = false;
        for node in &self.input.existing {
            if honor_affinity && !spec.alternatives.iter().any(|a| a.matches(&node.labels)) {
                continue;
            }
            if honor_taints && first_untolerated(&pod.tolerations, &node.taints, false).is_some() {
                continue;
            }
            if let Some(v) = label_value(&node.labels, key) {
                domains.insert(v.to_string());
            }
        }
        for pool in &self.pools {
            if honor_taints && first_untolerated(&pod.tolerations, &pool.pool.taints, false).is_some() {
                continue;
            }
            let alts: Vec<&Requirements> = spec
                .alternatives
                .iter()
                .filter(|a| !honor_affinity || a.conflict_with_node(&pool.base).is_none())
                .collect();
            if alts.is_empty() || pool.types.is_empty() {
                continue;
            }
            if classes::is_hostname(key) {
                fresh = true;
                continue;
            }
            if let Some(values) = pool.base.get(key).and_then(ValueSet::finite_values) {
                for v in values {
                    if !honor_affinity || alts.iter().any(|a| a.get(key).is_none_or(|set| set.has(v))) {
                        domains.insert(v.clone());
                    }
                }
            }
        }
        (domains, fresh)
    }

    // === Topology ===

    /// Whether one more pod of the class may go `at`; the error names the rule that forbids it (formatted
    /// only when a reason is reported: this runs once per pod and candidate node).
    fn topology_check(&self, class: &Class, v: &Variant, at: Where<'_>) -> Result<(), TopologyBlock> {
        let domain = |key: &str| at.domain(key);
        for (i, s) in v.spreads.iter().enumerate() {
            if !s.allows(&self.groups, domain(&self.groups.list[s.group].key.topology_key)) {
                return Err(TopologyBlock::Spread(i));
            }
        }
        for &g in &v.affinity {
            let group = &self.groups.list[g];
            let ok = match domain(&group.key.topology_key) {
                Some(d) if group.members_in(d) > 0 => true,
                _ => group.total() == 0 && class.member_of.contains(&g),
            };
            if !ok {
                return Err(TopologyBlock::Affinity(g));
            }
        }
        for &g in &v.anti {
            let group = &self.groups.list[g];
            if domain(&group.key.topology_key).is_some_and(|d| group.members_in(d) > 0) {
                return Err(TopologyBlock::AntiAffinity(g));
            }
        }
        for &g in &class.member_of {
            let group = &self.groups.list[g];
            if group.has_owners() && domain(&group.key.topology_key).is_some_and(|d| group.owners_in(d) > 0) {
                return Err(TopologyBlock::RunningAntiAffinity(g));
            }
        }
        Ok(())
    }

    fn describe_block(&self, v: &Variant, block: TopologyBlock) -> String {
        let key = |g: usize| &self.groups.list[g].key.topology_key;
        match block {
            TopologyBlock::Spread(i) => {
                let s = &v.spreads[i];
                format!("topology spread on {} (maxSkew {}) cannot be satisfied", key(s.group), s.max_skew)
            }
            TopologyBlock::Affinity(g) => {
                format!("required pod affinity on {} has no matching pods there", key(g))
            }
            TopologyBlock::AntiAffinity(g) => format!("required pod anti-affinity on {}", key(g)),
            TopologyBlock::RunningAntiAffinity(g) => format!("anti-affinity of running pods on {}", key(g)),
        }
    }

    /// Counts `count` pods of the class placed on `target` into its groups' domains.
    fn record(&mut self, class: &Class, v: &Variant, target: Target, count: i64) {
        let (labels, req, taints): (Option<&Labels>, Option<&Requirements>, &[Taint]) = match target {
            Target::Node(n) => (Some(&self.input.existing[n].labels), None, &self.input.existing[n].taints),
            Target::Claim(c) => {
                let claim = &self.claims[c];
                (None, Some(&claim.req), &self.pools[claim.pool].pool.taints)
            }
        };
        let domain = |key: &str| match (labels, req) {
            (Some(l), _) => label_value(l, key),
            (_, Some(r)) => r.get(key).and_then(ValueSet::single),
            _ => None,
        };
        let admits = |f: &NodeFilter| match (labels, req) {
            (Some(l), _) => f.admits_node(l, taints),
            (_, Some(r)) => f.admits_planned(r, taints),
            _ => false,
        };
        let groups = &mut self.groups.list;
        for &g in &class.member_of {
            if let Some(d) = domain(&groups[g].key.topology_key)
                && admits(&groups[g].key.nodes)
            {
                groups[g].add_members(d, count);
            }
        }
        for &g in &v.anti[..v.required_anti] {
            if let Some(d) = domain(&groups[g].key.topology_key) {
                groups[g].add_owners(d, count);
            }
        }
    }

    /// Ways to fix each of `v.pin_keys` that `req` leaves open to one value: spread-friendliest (fewest
    /// matching pods) first. Keys with no finite value set stay open (the node will lack a fixed domain).
    fn pin_choices<'r>(&self, v: &'r Variant, req: &'r Requirements) -> Vec<Vec<(&'r str, &'r str)>> {
        let mut out: Vec<Vec<(&str, &str)>> = vec![Vec::new()];
        for key in &v.pin_keys {
            let Some(set) = req.get(key) else { continue };
            if set.single().is_some() {
                continue;
            }
            let Some(values) = set.finite_values() else { continue };
            let mut values: Vec<&str> = values.iter().map(String::as_str).collect();
            values.sort_by_cached_key(|val| {
                let load: i64 = v
                    .spreads
                    .iter()
                    .filter(|s| &self.groups.list[s.group].key.topology_key == key)
                    .map(|s| self.groups.list[s.group].members_in(val))
                    .sum();
                (load, *val)
            });
            out = out
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |val| {
                        let mut p = prefix.clone();
                        p.push((key.as_str(), *val));
                        p
                    })
                })
                .collect();
        }
        out
    }

    /// The [`DomainIndex`] of claims by their values of `keys`.
    fn domain_index(&mut self, keys: &[String]) -> usize {
        match self.domain_indexes.iter().position(|d| d.keys == keys) {
            Some(i) => i,
            None => {
                self.domain_indexes.push(DomainIndex { keys: keys.to_vec(), ..DomainIndex::default() });
                self.domain_indexes.len() - 1
            }
        }
    }

    // === Placement ===

    fn run(&mut self, classes: &[Class]) {
        let mut unplaced: Vec<Vec<usize>> = classes.iter().map(|c| c.pods.clone()).collect();
        let mut pending: Vec<(usize, Vec<usize>)> = Vec::new();
        // Constrained classes (spread, anti-affinity: one pod per placement) go before the unconstrained
        // classes are packed together, which was cheaper on the bench's mixed runs (20k: 345.86 → 333.03
        // $/h, 5k: 85.65 → 83.89, 1k: 19.51 → 19.53; no other mix changed). Only when no unconstrained pod
        // has a higher priority.
        let constrained =
            |c: &Class| c.invalid.is_none() && c.variants.first().is_some_and(|v| v.constrained);
        let top_unconstrained = classes.iter().filter(|c| !constrained(c)).map(|c| c.rep.priority).max();
        for (ci, class) in classes.iter().enumerate() {
            if constrained(class) && top_unconstrained.is_none_or(|p| class.rep.priority >= p) {
                let left = self.place_class(classes, ci, std::mem::take(&mut unplaced[ci]));
                if !left.is_empty() {
                    pending.push((ci, left));
                }
            }
        }
        self.pack_together(classes, &mut unplaced);
        for (ci, class) in classes.iter().enumerate() {
            if let Some(reason) = &class.invalid {
                for &p in &class.pods {
                    self.reasons.insert(p, reason.clone());
                }
                continue;
            }
            if unplaced[ci].is_empty() {
                continue;
            }
            let left = self.place_class(classes, ci, std::mem::take(&mut unplaced[ci]));
            if !left.is_empty() {
                pending.push((ci, left));
            }
        }
        // Pods whose affinity targets were placed later get more chances while that makes progress.
        while !pending.is_empty() {
            let before: usize = pending.iter().map(|(_, l)| l.len()).sum();
            let mut next = Vec::new();
            for (ci, left) in std::mem::take(&mut pending) {
                let left = self.place_class(classes, ci, left);
                if !left.is_empty() {
                    next.push((ci, left));
                }
            }
            let after: usize = next.iter().map(|(_, l)| l.len()).sum();
            pending = next;
            if after == before {
                break;
            }
        }
    }

    /// Places what it can of `pods` (all of class `ci`); returns the rest, with their reasons recorded.
    fn place_class(&mut self, classes: &[Class], ci: usize, mut pods: Vec<usize>) -> Vec<usize> {
        let class = &classes[ci];
        for (vi, v) in class.variants.iter().enumerate() {
            if pods.is_empty() {
                break;
            }
            if v.alternatives.is_empty() {
                continue;
            }
            let placed = if v.constrained {
                self.place_one_by_one(class, v, &pods)
            } else {
                self.place_bulk(class, v, &pods)
            };
            pods.drain(..placed);
            if !pods.is_empty() && vi + 1 == class.variants.len() {
                let reason = self.explain(class, v);
                for &p in &pods {
                    self.reasons.insert(p, reason.clone());
                }
            }
        }
        if !pods.is_empty() && class.variants.iter().all(|v| v.alternatives.is_empty()) {
            for &p in &pods {
                self.reasons
                    .insert(p, "preferences and requirements leave no satisfiable node requirements".into());
            }
        }
        pods
    }

    /// Puts what fits of `pods` (of an unconstrained variant) on existing nodes, in node order.
    fn fill_nodes(&mut self, class: &Class, v: &Variant, pods: &[usize]) -> usize {
        let mut placed = 0usize;
        for oi in 0..self.node_order.len() {
            if placed == pods.len() {
                break;
            }
            let n = self.node_order[oi];
            if let Attempt::Placed(k) =
                self.try_node(class, v, n, (pods.len() - placed) as i64, &pods[placed..])
            {
                placed += k as usize;
            }
        }
        placed
    }

    fn place_bulk(&mut self, class: &Class, v: &Variant, pods: &[usize]) -> usize {
        let mut placed = self.fill_nodes(class, v, pods);
        if placed == pods.len() {
            return placed;
        }
        let plan = self.plan_claim(class, v, (pods.len() - placed) as i64);
        let rho = plan.as_ref().map_or(f64::INFINITY, |p| p.price_per_pod);
        let mut fixed = FixedDomains::new(self, v);
        for c in self.open_claim_list() {
            if placed == pods.len() {
                return placed;
            }
            if let Attempt::Placed(k) =
                self.try_claim(class, v, c, (pods.len() - placed) as i64, rho, &pods[placed..], &mut fixed)
            {
                placed += k as usize;
            }
        }
        let mut plan = match plan {
            Ok(p) if placed == 0 => Some(p),
            _ => self.plan_claim(class, v, (pods.len() - placed) as i64).ok(),
        };
        while let Some(p) = plan.take() {
            let left = (pods.len() - placed) as i64;
            if left == 0 {
                break;
            }
            let p = if left < p.pods
                || !p
                    .types
                    .iter()
                    .all(|&(t, _)| self.pools[p.pool].within_limits(&self.pools[p.pool].types[t]))
            {
                match self.plan_claim(class, v, left) {
                    Ok(p) => p,
                    Err(_) => break,
                }
            } else {
                p
            };
            let k = p.pods.min(left);
            self.open_claim(class, v, &p, &pods[placed..placed + k as usize]);
            placed += k as usize;
            plan = Some(p);
        }
        placed
    }

    fn place_one_by_one(&mut self, class: &Class, v: &Variant, pods: &[usize]) -> usize {
        let mut node_candidates: Vec<usize> = self.node_order.clone();
        let mut claim_candidates = self.open_claim_list();
        let mut scans = ScanCache::new();
        let first_plan = self.plan_claim_cached(class, v, 1, Some(&mut scans));
        let rho = first_plan.as_ref().map_or(f64::INFINITY, |p| p.price_per_pod);
        // A fresh node looks the same to every pod of the class unless its placement depends on counts a
        // fresh node can change (affinity, or topology keys other than the hostname): reuse the plan.
        let reusable = v.affinity.is_empty() && v.pin_keys.iter().all(|k| classes::is_hostname(k));
        // Then counts on a node only grow while the class is placed (a new node being its own, empty
        // spread domain keeps the global minimum at 0): a node blocked once stays blocked.
        let blocked_for_good = reusable && v.spreads.iter().all(|s| s.fresh_domains);
        let mut cached = first_plan.ok().filter(|_| reusable);
        let mut fixed = FixedDomains::new(self, v);
        let mut placed = 0usize;
        while placed < pods.len() {
            let pod = &pods[placed..placed + 1];
            // Counts changed with the last placement.
            fixed.forget_verdicts();
            if self.first_accepting(&mut node_candidates, false, |s, n| s.try_node(class, v, n, 1, pod))
                || self.first_accepting(&mut claim_candidates, blocked_for_good, |s, c| {
                    s.try_claim(class, v, c, 1, rho, pod, &mut fixed)
                })
            {
                placed += 1;
                continue;
            }
            let plan = match cached.take() {
                Some(p)
                    if p.types
                        .iter()
                        .all(|&(t, _)| self.pools[p.pool].within_limits(&self.pools[p.pool].types[t])) =>
                {
                    Ok(p)
                }
                _ => self.plan_claim_cached(class, v, 1, Some(&mut scans)),
            };
            let Ok(plan) = plan else { break };
            claim_candidates.push(self.claims.len());
            self.open_claim(class, v, &plan, pod);
            placed += 1;
            if reusable {
                cached = Some(plan);
            }
        }
        placed
    }

    /// Tries candidates in order until one takes the pod, dropping those that never will (`Full`, and
    /// `Blocked` too when `drop_blocked`).
    fn first_accepting(
        &mut self,
        candidates: &mut Vec<usize>,
        drop_blocked: bool,
        mut attempt: impl FnMut(&mut Self, usize) -> Attempt,
    ) -> bool {
        let (mut write, mut read) = (0, 0);
        let mut accepted = false;
        while read < candidates.len() {
            let c = candidates[read];
            read += 1;
            match attempt(self, c) {
                Attempt::Full => continue,
                Attempt::Blocked if drop_blocked => continue,
                Attempt::Blocked => {}
                Attempt::Placed(_) => accepted = true,
            }
            candidates[write] = c;
            write += 1;
            if accepted {
                break;
            }
        }
        candidates.drain(write..read);
        accepted
    }

    fn try_node(&mut self, class: &Class, v: &Variant, n: usize, max: i64, pods: &[usize]) -> Attempt {
        let node = &self.input.existing[n];
        let pod = &class.rep;
        if first_untolerated(&pod.tolerations, &node.taints, v.strict_prefer_taints).is_some()
            || !v.alternatives.iter().any(|a| a.matches(&node.labels))
            || ports_conflict(&pod.host_ports, &self.nodes[n].ports)
        {
            return Attempt::Full;
        }
        let mut k = fit_count(&self.nodes[n].free, &Resources::default(), &pod.requests, max);
        if k == 0 {
            return Attempt::Full;
        }
        if v.constrained {
            if self.topology_check(class, v, Where::Labels(&node.labels)).is_err() {
                return Attempt::Blocked;
            }
            k = 1;
        }
        let free = &mut self.nodes[n].free;
        *free = free.clone() - &scaled(&pod.requests, k);
        self.nodes[n].ports.extend(pod.host_ports.iter().cloned());
        self.record(class, v, Target::Node(n), k);
        for &p in &pods[..k as usize] {
            self.assigned[p] = Some(Target::Node(n));
        }
        Attempt::Placed(k)
    }

    /// Adds what it can of `pods` to claim `c`; `fixed` judges claims whose topology domains are already
    /// fixed (one scan of one class's placements).
    #[allow(clippy::too_many_arguments)]
    fn try_claim(
        &mut self,
        class: &Class,
        v: &Variant,
        c: usize,
        max: i64,
        rho: f64,
        pods: &[usize],
        fixed: &mut FixedDomains,
    ) -> Attempt {
        let claim = &self.claims[c];
        let pool = &self.pools[claim.pool];
        let pod = &class.rep;
        if fit_count(&claim.hull, &claim.used, &pod.requests, 1) == 0
            || first_untolerated(&pod.tolerations, &pool.pool.taints, v.strict_prefer_taints).is_some()
            || ports_conflict(&pod.host_ports, &claim.ports)
        {
            return Attempt::Full;
        }
        let max = if v.constrained { 1 } else { max };
        if fixed.blocked(self, class, v, c) {
            return Attempt::Blocked;
        }
        let claim = &self.claims[c];
        let pool = &self.pools[claim.pool];
        // Cheap necessary condition before pins and topology: some type, at a price increase the pod would
        // accept, has room. Types come cheapest first and narrowing only raises prices, so stop early.
        let base_price = claim.types.first().map_or(0.0, |t| t.1);
        // What the pod accepts: a price increase of no more than a fresh node's price per pod, for `k` pods.
        let acceptable = |price: f64, k: i64| price - base_price <= rho * k as f64 + 1e-9;
        let room_somewhere =
            claim.types.iter().take_while(|&&(_, price)| acceptable(price, max)).any(|&(t, price)| {
                let k = fit_count(&pool.types[t].room, &claim.used, &pod.requests, max);
                k > 0 && acceptable(price, k)
            });
        if !room_somewhere {
            return Attempt::Full;
        }
        let mut blocked = false;
        for alt in &v.alternatives {
            if alt.conflict_with_node(&claim.req).is_some() {
                continue;
            }
            let narrowed = narrow(&claim.req, alt);
            for pins in self.pin_choices(v, &narrowed) {
                if !v.pin_keys.is_empty()
                    && self.topology_check(class, v, Where::Planned(&narrowed, &pins)).is_err()
                {
                    blocked = true;
                    continue;
                }
                // Only pins of other keys than zone and capacity type (which prices cover) change which
                // types match: copy the requirements for those alone, and otherwise once placing.
                let pinned = pins
                    .iter()
                    .any(|(k, _)| !matches!(canonical_key(k), labels::ZONE | labels::CAPACITY_TYPE))
                    .then(|| pin(&narrowed, &pins));
                let match_req: &Requirements = pinned.as_deref().unwrap_or(&narrowed);
                let reprice = !pins.is_empty()
                    || alt.get(labels::ZONE).is_some()
                    || alt.get(labels::CAPACITY_TYPE).is_some();
                let allowed = reprice.then(|| pool.allowed_slots(&narrowed, &pins));
                let keys = || alt.iter().map(|(k, _)| k).chain(pins.iter().map(|(k, _)| *k));
                // A type's pods and price under these requirements; `None` without room for one more pod
                // (then it can never stay among the claim's types) or without a matching offering.
                let judge = |&(t, price): &(usize, f64)| -> Option<(usize, f64, i64)> {
                    let tc = &pool.types[t];
                    let k = fit_count(&tc.room, &claim.used, &pod.requests, max);
                    if k == 0 || !pool.type_matches(tc, match_req, keys()) {
                        return None;
                    }
                    let price = match &allowed {
                        Some(allowed) => tc.price_in(allowed)?,
                        None => price,
                    };
                    Some((t, price, k))
                };
                // The most pods whose price increase per pod is no worse than a fresh node's. Narrowing
                // only raises prices, so only types within `rho * max` of the base price can qualify:
                // scan every type only once one does.
                let best = claim
                    .types
                    .iter()
                    .take_while(|&&(_, price)| acceptable(price, max))
                    .filter_map(judge)
                    .filter(|&(_, price, k)| acceptable(price, k))
                    .map(|(_, _, k)| k)
                    .max();
                let Some(k) = best else { continue };
                let mut types: Vec<(usize, f64)> = claim
                    .types
                    .iter()
                    .filter_map(judge)
                    .filter(|(_, _, kt)| *kt >= k)
                    .map(|(t, p, _)| (t, p))
                    .collect();
                sort_types(&mut types, &pool.types);
                let req = pinned.unwrap_or_else(|| pin(&narrowed, &pins)).into_owned();
                self.add_to_claim(c, class, v, req, types, k, pods);
                fixed.forget_verdicts();
                return Attempt::Placed(k);
            }
        }
        if blocked { Attempt::Blocked } else { Attempt::Full }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_to_claim(
        &mut self,
        c: usize,
        class: &Class,
        v: &Variant,
        req: Requirements,
        types: Vec<(usize, f64)>,
        k: i64,
        pods: &[usize],
    ) {
        let pool_idx = self.claims[c].pool;
        let pool = &self.pools[pool_idx];
        let charge = max_charge(pool, &types);
        let hull = hull_of(pool, &types);
        let claim = &mut self.claims[c];
        for (key, old) in &claim.charge {
            *self.pools[pool_idx].remaining.get_mut(key).expect("charge keys are limit keys") +=
                old - charge.get(key).copied().unwrap_or(0);
        }
        claim.charge = charge;
        claim.req = req;
        claim.hull = hull;
        claim.types = types;
        add_scaled(&mut claim.used, &class.rep.requests, k);
        if fit_count(&claim.hull, &claim.used, &self.smallest_request, 1) == 0 {
            self.open_claims.retain(|&o| o != c);
        }
        claim.ports.extend(class.rep.host_ports.iter().cloned());
        claim.pods.extend(&pods[..k as usize]);
        for index in &mut self.domain_indexes {
            index.forget(c);
        }
        self.record(class, v, Target::Claim(c), k);
        for &p in &pods[..k as usize] {
            self.assigned[p] = Some(Target::Claim(c));
        }
    }

    fn open_claim(&mut self, class: &Class, v: &Variant, plan: &ClaimPlan, pods: &[usize]) {
        let c = self.claims.len();
        let hostname = format!("{}-{}", self.pools[plan.pool].pool.name, c);
        let mut req = plan.req.clone();
        req.remove(labels::HOSTNAME);
        req.add(labels::HOSTNAME, ValueSet::one_of([hostname.clone()]));
        let pool = &mut self.pools[plan.pool];
        let types: Vec<(usize, f64)> =
            plan.types.iter().copied().filter(|&(t, _)| pool.within_limits(&pool.types[t])).collect();
        let charge = max_charge(pool, &types);
        for (key, amount) in &charge {
            *pool.remaining.get_mut(key).expect("charge keys are limit keys") -= amount;
        }
        self.claims.push(Claim {
            pool: plan.pool,
            req: req.clone(),
            hostname,
            used: Resources::default(),
            types: types.clone(),
            hull: Resources::default(),
            ports: Vec::new(),
            pods: Vec::new(),
            charge: BTreeMap::new(),
        });
        // Charged above; add_to_claim re-charges against the same type set, so start from it.
        self.claims[c].charge = charge;
        self.open_claims.push(c);
        self.add_to_claim(c, class, v, req, types, pods.len() as i64, pods);
    }

    // === Packing classes together ===

    /// Unconstrained classes that can share nodes (same tolerations and node requirements, no topology)
    /// are packed together before the class-by-class pass: each new node gets the mix of their remaining
    /// pods and the instance type that cost least relative to what those pods would cost on nodes of
    /// their own class (its best price per pod), so cpu-heavy and memory-heavy pods fill the same nodes
    /// when that is cheaper. What this leaves (limits, no pool) goes through the usual pass.
    fn pack_together(&mut self, classes: &[Class], unplaced: &mut [Vec<usize>]) {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (ci, class) in classes.iter().enumerate() {
            let Some(v) = packing_variant(class, &self.pools, &self.input.existing) else { continue };
            if class.invalid.is_some()
                || v.constrained
                || v.alternatives.len() != 1
                || !v.pin_keys.is_empty()
                || !class.member_of.is_empty()
            {
                continue;
            }
            let same = |g: &&mut Vec<usize>| {
                let other = &classes[g[0]];
                let w = packing_variant(other, &self.pools, &self.input.existing).expect("grouped");
                other.rep.tolerations == class.rep.tolerations
                    && other.rep.priority == class.rep.priority
                    && w.alternatives == v.alternatives
                    && w.strict_prefer_taints == v.strict_prefer_taints
            };
            match groups.iter_mut().find(same) {
                Some(g) => g.push(ci),
                None => groups.push(vec![ci]),
            }
        }
        for group in groups.into_iter().filter(|g| g.len() > 1) {
            for &ci in &group {
                let v = packing_variant(&classes[ci], &self.pools, &self.input.existing).expect("grouped");
                let placed = self.fill_nodes(&classes[ci], v, &unplaced[ci]);
                unplaced[ci].drain(..placed);
            }
            // Classes of the group that would open nodes of the same pool with the same requirements,
            // with their best price per pod on nodes of their own.
            let mut shared: Vec<(ClaimPlan, Vec<(usize, f64)>)> = Vec::new();
            for &ci in &group {
                let n = unplaced[ci].len() as i64;
                if n == 0 {
                    continue;
                }
                let v = packing_variant(&classes[ci], &self.pools, &self.input.existing).expect("grouped");
                let Ok(plan) = self.plan_claim(&classes[ci], v, n) else { continue };
                let own = plan.price_per_pod;
                match shared.iter_mut().find(|(p, _)| p.pool == plan.pool && p.req == plan.req) {
                    Some((_, members)) => members.push((ci, own)),
                    None => shared.push((plan, vec![(ci, own)])),
                }
            }
            for (plan, members) in shared.into_iter().filter(|(_, m)| m.len() > 1) {
                self.pack_members(classes, &members, plan.pool, &plan.req, unplaced);
            }
        }
    }

    /// Opens nodes for `members` (class, price per pod on its own nodes) until they are all placed.
    fn pack_members(
        &mut self,
        classes: &[Class],
        members: &[(usize, f64)],
        pi: usize,
        req: &Requirements,
        unplaced: &mut [Vec<usize>],
    ) {
        let chosen: Vec<(usize, &Variant)> = members
            .iter()
            .map(|&(ci, _)| {
                (ci, packing_variant(&classes[ci], &self.pools, &self.input.existing).expect("grouped"))
            })
            .collect();
        let variant = |ci: usize| chosen.iter().find(|(c, _)| *c == ci).expect("a member").1;
        let pool = &self.pools[pi];
        let keys: Vec<&str> = variant(members[0].0).alternatives[0].iter().map(|(k, _)| k).collect();
        // Every type of the pool the members may use, cheapest first.
        let allowed = pool.allowed_slots(req, &[]);
        let mut types: Vec<(usize, f64)> = pool
            .types
            .iter()
            .enumerate()
            .filter(|(_, tc)| pool.type_matches(tc, req, keys.iter().copied()))
            .filter_map(|(t, tc)| tc.price_in(&allowed).map(|p| (t, p)))
            .collect();
        sort_types(&mut types, &pool.types);
        // Only types no other type beats on price and every resource can be the best node.
        let candidates: Vec<usize> = types
            .iter()
            .filter(|&&(t, price)| {
                let room = &pool.types[t].room;
                !types.iter().any(|&(u, other)| {
                    let r = &pool.types[u].room;
                    u != t && other <= price && room.fits_in(r) && (other < price || r != room)
                })
            })
            .map(|&(t, _)| t)
            .collect();
        // Biggest pods first within a node (first-fit-decreasing by their own cost).
        let mut order = members.to_vec();
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let packed = Packed { classes, chosen: &chosen, pool: pi, req, types: &types };
        self.open_lp_packings(&packed, &order, &candidates, unplaced);
        while let Some((packing, _)) =
            self.greedy_packing(&packed, &candidates, &order, |ci| unplaced[ci].len() as i64)
        {
            let repeats = packing.iter().map(|&(ci, k)| unplaced[ci].len() as i64 / k).min().unwrap_or(1);
            if self.open_packed(&packed, &packing, repeats.max(1), unplaced) < repeats.max(1) {
                return;
            }
        }
    }

    /// The greedy's next node for `order` (class, price per pod on its own nodes; biggest first) with
    /// `left(class)` pods left: on each of the `candidates` types, first fit of the pods left; of those
    /// packings, the one whose node, priced at the cheapest type that holds it within limits, costs least
    /// relative to the same pods on nodes of their own. Returns it with that cheapest type.
    fn greedy_packing(
        &self,
        packed: &Packed<'_, '_>,
        candidates: &[usize],
        order: &[(usize, f64)],
        left: impl Fn(usize) -> i64,
    ) -> Option<(Packing, usize)> {
        let pool = &self.pools[packed.pool];
        let mut best: Option<(f64, Packing, usize)> = None;
        for &t in candidates {
            let room = &pool.types[t].room;
            let mut used = Resources::default();
            let mut packing = Vec::new();
            let mut value = 0.0;
            for &(ci, own) in order {
                let each = &packed.classes[ci].rep.requests;
                let k = fit_count(room, &used, each, left(ci));
                if k > 0 {
                    add_scaled(&mut used, each, k);
                    packing.push((ci, k));
                    value += own * k as f64;
                }
            }
            if packing.is_empty() {
                continue;
            }
            let Some(&(cheapest, price)) = packed
                .types
                .iter()
                .find(|&&(u, _)| used.fits_in(&pool.types[u].room) && pool.within_limits(&pool.types[u]))
            else {
                continue;
            };
            let score = price / value.max(f64::MIN_POSITIVE);
            if best.as_ref().is_none_or(|b| score < b.0 - 1e-12) {
                best = Some((score, packing, cheapest));
            }
        }
        best.map(|(_, packing, t)| (packing, t))
    }

    /// Opens the whole nodes of the configuration LP's primal solution for `members` (see
    /// [`bound::pattern_nodes`]) over the `candidates` types when they beat the greedy's estimate; the
    /// greedy places what they leave. Stops at the first node a limit forbids. Small groups are left to the
    /// greedy alone: the fractional nodes weigh more there, and the LP's time pays only over many nodes.
    fn open_lp_packings(
        &mut self,
        packed: &Packed<'_, '_>,
        members: &[(usize, f64)],
        candidates: &[usize],
        unplaced: &mut [Vec<usize>],
    ) {
        let pods: usize = members.iter().map(|&(ci, _)| unplaced[ci].len()).sum();
        if pods < LP_PACKING_MIN_PODS {
            return;
        }
        // Members with the same requests are one LP class (same pool and requirements, so the same own
        // cost): the LP's size then does not grow with the number of deployments.
        let mut shapes: Vec<(f64, Vec<usize>)> = Vec::new();
        for &(ci, own) in members {
            let requests = &packed.classes[ci].rep.requests;
            match shapes.iter_mut().find(|(_, m)| &packed.classes[m[0]].rep.requests == requests) {
                Some((_, m)) => m.push(ci),
                None => shapes.push((own, vec![ci])),
            }
        }
        let pool = &self.pools[packed.pool];
        let lp_types: Vec<bound::Candidate> = candidates
            .iter()
            .map(|&t| bound::Candidate {
                name: pool.types[t].it.name.clone(),
                allocatable: pool.types[t].room.clone(),
                price: packed.types.iter().find(|&&(u, _)| u == t).map_or(f64::INFINITY, |&(_, p)| p),
            })
            .collect();
        let pods_of = |m: &[usize]| m.iter().map(|&ci| unplaced[ci].len()).sum::<usize>();
        let lp_classes: Vec<bound::PodClass> = shapes
            .iter()
            .map(|(_, m)| bound::PodClass {
                requests: packed.classes[m[0]].rep.requests.clone(),
                count: pods_of(m),
                candidates: (0..lp_types.len()).collect(),
            })
            .collect();
        let own: Vec<f64> = shapes.iter().map(|&(own, _)| own).collect();
        // The nodes the greedy alone would open (per shape) seed the LP, so its fleet costs no more.
        let by_shape: Vec<(usize, f64)> = shapes.iter().map(|(own, m)| (m[0], *own)).collect();
        let counts: Vec<i64> = lp_classes.iter().map(|c| c.count as i64).collect();
        let (greedy_cost, seeds) = self.greedy_fleet(packed, candidates, &by_shape, counts.clone());
        let Ok(fleet) = bound::pattern_nodes(&lp_classes, &lp_types, &own, &seeds, LP_PACKING_ROUNDS) else {
            return;
        };
        // Whole nodes only: the fractions are left to the greedy (rounding them up opened large nodes for
        // a few pods). Kept only when the LP's whole nodes plus the greedy's estimate for what they leave
        // beat the greedy alone.
        let mut left = counts;
        let mut lp_cost = 0.0;
        for p in &fleet {
            lp_cost += p.nodes as f64 * lp_types[p.candidate].price;
            for &(s, k) in &p.pods {
                left[s] = (left[s] - p.nodes * k).max(0);
            }
        }
        let (rest_cost, _) = self.greedy_fleet(packed, candidates, &by_shape, left);
        if lp_cost + rest_cost >= greedy_cost - 1e-9 {
            return;
        }
        for nodes in &fleet {
            let mut wanted = nodes.nodes;
            while wanted > 0 {
                // Each shape's pods from its classes in turn; where the LP covered a shape more than once
                // over (its constraint is ≥) the node holds what is left.
                let mut packing: Vec<(usize, i64)> = Vec::new();
                let mut whole = true;
                for &(s, k) in &nodes.pods {
                    let mut need = k;
                    for &ci in &shapes[s].1 {
                        let take = need.min(unplaced[ci].len() as i64);
                        if take > 0 {
                            whole &= take == k;
                            packing.push((ci, take));
                            need -= take;
                        }
                    }
                    whole &= need == 0;
                }
                if packing.is_empty() {
                    break;
                }
                let repeats = if whole {
                    packing.iter().map(|&(ci, k)| unplaced[ci].len() as i64 / k).fold(wanted, i64::min)
                } else {
                    1
                };
                if self.open_packed(packed, &packing, repeats, unplaced) < repeats {
                    return;
                }
                wanted -= repeats;
            }
        }
    }

    /// What the greedy would open for `left[i]` pods of each of `shapes` (representative class, own cost;
    /// biggest first), without opening it: its cost in $/h (each node at the cheapest type holding it) and
    /// its distinct packings as (shape, pods) patterns.
    fn greedy_fleet(
        &self,
        packed: &Packed<'_, '_>,
        candidates: &[usize],
        shapes: &[(usize, f64)],
        mut left: Vec<i64>,
    ) -> (f64, Vec<Vec<(usize, i64)>>) {
        let shape = |ci: usize| shapes.iter().position(|&(rep, _)| rep == ci).expect("a shape");
        let (mut cost, mut patterns) = (0.0, Vec::new());
        while let Some((packing, t)) = self.greedy_packing(packed, candidates, shapes, |ci| left[shape(ci)]) {
            let repeats = packing.iter().map(|&(ci, k)| left[shape(ci)] / k).min().unwrap_or(1).max(1);
            for &(ci, k) in &packing {
                left[shape(ci)] -= k * repeats;
            }
            let price = packed.types.iter().find(|&&(u, _)| u == t).map_or(0.0, |&(_, p)| p);
            cost += repeats as f64 * price;
            let mut pattern: Vec<(usize, i64)> = packing.iter().map(|&(ci, k)| (shape(ci), k)).collect();
            pattern.sort_unstable();
            patterns.push(pattern);
        }
        (cost, patterns)
    }

    /// Opens `repeats` nodes holding `packing` (class, pods) from the front of `unplaced`, each a claim
    /// flexible over every type of `packed.types` that holds it. Returns how many it opened: fewer when a
    /// limit forbids every such type.
    fn open_packed(
        &mut self,
        packed: &Packed<'_, '_>,
        packing: &[(usize, i64)],
        repeats: i64,
        unplaced: &mut [Vec<usize>],
    ) -> i64 {
        let Packed { classes, chosen, pool: pi, req, types } = *packed;
        let variant = |ci: usize| chosen.iter().find(|(c, _)| *c == ci).expect("a member").1;
        let mut used = Resources::default();
        for &(ci, k) in packing {
            add_scaled(&mut used, &classes[ci].rep.requests, k);
        }
        let pool = &self.pools[pi];
        let fitting: Vec<(usize, f64)> =
            types.iter().copied().filter(|&(t, _)| used.fits_in(&pool.types[t].room)).collect();
        for opened in 0..repeats {
            let pool = &self.pools[pi];
            if !fitting.iter().any(|&(t, _)| pool.within_limits(&pool.types[t])) {
                return opened;
            }
            let (first, k) = packing[0];
            let plan =
                ClaimPlan { pool: pi, req: req.clone(), pods: k, types: fitting.clone(), price_per_pod: 0.0 };
            let pods: Vec<usize> = unplaced[first].drain(..k as usize).collect();
            self.open_claim(&classes[first], variant(first), &plan, &pods);
            let c = self.claims.len() - 1;
            for &(ci, k) in &packing[1..] {
                let pods: Vec<usize> = unplaced[ci].drain(..k as usize).collect();
                let (claim_req, claim_types) = (self.claims[c].req.clone(), self.claims[c].types.clone());
                self.add_to_claim(c, &classes[ci], variant(ci), claim_req, claim_types, k, &pods);
            }
        }
        repeats
    }

    fn open_claim_list(&self) -> Vec<usize> {
        self.open_claims.clone()
    }

    /// The cheapest way to open a claim for up to `n` pods of the class, from the heaviest pool tier that
    /// can host one; or why every pool fails.
    fn plan_claim(&self, class: &Class, v: &Variant, n: i64) -> Result<ClaimPlan, Vec<(usize, PoolFailure)>> {
        self.plan_claim_cached(class, v, n, None)
    }

    /// [`Self::plan_claim`], reusing the type scans in `cache` (one class variant's, `n` fixed).
    fn plan_claim_cached(
        &self,
        class: &Class,
        v: &Variant,
        n: i64,
        mut cache: Option<&mut ScanCache>,
    ) -> Result<ClaimPlan, Vec<(usize, PoolFailure)>> {
        let pod = &class.rep;
        let cap = if v.constrained { 1 } else { n };
        let mut failures = Vec::new();
        let mut best: Option<ClaimPlan> = None;
        let mut tier: Option<i32> = None;
        for (pi, pool) in self.pools.iter().enumerate() {
            if tier.is_some_and(|w| w != pool.pool.weight) && best.is_some() {
                break;
            }
            tier = Some(pool.pool.weight);
            if let Some(t) = first_untolerated(&pod.tolerations, &pool.pool.taints, v.strict_prefer_taints) {
                failures.push((pi, PoolFailure::Taint(DisplayTaint(t).to_string())));
                continue;
            }
            let hostname = format!("{}-{}", pool.pool.name, self.claims.len());
            let mut base = pool.base.clone();
            base.add(labels::HOSTNAME, ValueSet::one_of([hostname]));
            let mut failure = None;
            for (ai, alt) in v.alternatives.iter().enumerate() {
                if let Some(key) = alt.conflict_with_node(&base) {
                    let want = alt.get(key).map(|s| s.to_string()).unwrap_or_default();
                    failure.get_or_insert(PoolFailure::Requirement(format!("{key} {want}")));
                    continue;
                }
                let narrowed = narrow(&base, alt);
                for pins in self.pin_choices(v, &narrowed) {
                    if let Err(e) = self.topology_check(class, v, Where::Planned(&narrowed, &pins)) {
                        failure.get_or_insert_with(|| PoolFailure::Topology(self.describe_block(v, e)));
                        continue;
                    }
                    let req = pin(&narrowed, &pins);
                    // Limits change as claims open: only limitless pools' scans are reusable.
                    let cache_key =
                        (pi, ai, pins.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
                    let cached = match cache.as_deref_mut() {
                        Some(c) if pool.remaining.is_empty() => c.get(&cache_key).cloned(),
                        _ => None,
                    };
                    let scan = match cached {
                        Some(hit) => hit,
                        None => {
                            let keys: Vec<&str> =
                                alt.iter().map(|(k, _)| k).chain(pins.iter().map(|(k, _)| *k)).collect();
                            let mut fits: Vec<(usize, f64, i64)> = Vec::new();
                            let mut over_limit: BTreeSet<String> = BTreeSet::new();
                            let allowed = pool.allowed_slots(&req, &[]);
                            for (t, tc) in pool.types.iter().enumerate() {
                                if !pool.type_matches(tc, &req, keys.iter().copied()) {
                                    continue;
                                }
                                let Some(price) = tc.price_in(&allowed) else { continue };
                                let k = fit_count(&tc.room, &Resources::default(), &pod.requests, cap);
                                if k == 0 {
                                    continue;
                                }
                                if !pool.within_limits(tc) {
                                    over_limit.extend(limit_blockers(pool, tc));
                                    continue;
                                }
                                fits.push((t, price, k));
                            }
                            let cheapest = fits.iter().min_by(|a, b| {
                                (a.1 / a.2 as f64)
                                    .total_cmp(&(b.1 / b.2 as f64))
                                    .then_with(|| b.2.cmp(&a.2))
                                    .then_with(|| pool.types[a.0].it.name.cmp(&pool.types[b.0].it.name))
                            });
                            let scan = cheapest.map(|&(_, price, k)| {
                                let mut types: Vec<(usize, f64)> = fits
                                    .iter()
                                    .filter(|(_, _, kt)| *kt >= k)
                                    .map(|&(t, p, _)| (t, p))
                                    .collect();
                                sort_types(&mut types, &pool.types);
                                (types, price, k)
                            });
                            if let Some(c) = cache.as_deref_mut()
                                && pool.remaining.is_empty()
                            {
                                c.insert(cache_key, scan.clone());
                            }
                            if scan.is_none() && !over_limit.is_empty() {
                                failure.get_or_insert(PoolFailure::Limits(describe_limit(
                                    &pod.requests,
                                    &over_limit,
                                )));
                                continue;
                            }
                            scan
                        }
                    };
                    let Some((types, price, k)) = scan else {
                        failure.get_or_insert(PoolFailure::Resources(self.unfit_resources(pool, pod)));
                        continue;
                    };
                    let plan = ClaimPlan {
                        pool: pi,
                        req: req.into_owned(),
                        pods: k,
                        types,
                        price_per_pod: price / k as f64,
                    };
                    if best.as_ref().is_none_or(|b| plan.price_per_pod < b.price_per_pod - 1e-12) {
                        best = Some(plan);
                    }
                    break;
                }
            }
            if let Some(f) = failure
                && best.as_ref().is_none_or(|b| b.pool != pi)
            {
                failures.push((pi, f));
            }
        }
        best.ok_or(failures)
    }

    fn unfit_resources(&self, pool: &PoolCtx<'_>, pod: &Pod) -> String {
        let single: Vec<String> = pod
            .requests
            .iter()
            .filter(|(k, v)| pool.types.iter().all(|t| t.room.get(k) < *v))
            .map(|(k, v)| format!("{k}={}", format_quantity(k, v)))
            .collect();
        if single.is_empty() { pod.requests.to_string() } else { single.join(", ") }
    }

    fn explain(&self, class: &Class, v: &Variant) -> String {
        if self.pools.is_empty() {
            return "no existing node has room and no Provisioner can launch one".into();
        }
        let failures = match self.plan_claim(class, v, 1) {
            Ok(_) => return "limits or topology filled up while placing its peers".into(),
            Err(f) => f,
        };
        if failures.is_empty() {
            return "no Provisioner can launch a node for it".into();
        }
        let all_same_taint = match &failures[0].1 {
            PoolFailure::Taint(t) => failures.iter().all(|(_, f)| f == &PoolFailure::Taint(t.clone())),
            _ => false,
        };
        if all_same_taint && failures.len() == self.pools.len() {
            let PoolFailure::Taint(t) = &failures[0].1 else { unreachable!("checked above") };
            return format!("taint {t} not tolerated by any Provisioner");
        }
        failures
            .iter()
            .map(|(pi, f)| {
                let p = &self.pools[*pi].pool.name;
                match f {
                    PoolFailure::Taint(t) => format!("taint {t} of Provisioner {p} not tolerated"),
                    PoolFailure::Requirement(r) => format!("Provisioner {p} cannot satisfy {r}"),
                    PoolFailure::Topology(t) => format!("{t} on Provisioner {p}"),
                    PoolFailure::Resources(r) => format!("no instance type of Provisioner {p} satisfies {r}"),
                    PoolFailure::Limits(r) if r == NODES_LIMIT => {
                        format!("Provisioner {p} reached its node limit")
                    }
                    PoolFailure::Limits(r) => {
                        format!("no instance type satisfies {r} within Provisioner {p} limits")
                    }
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    // === Output ===

    fn results(self, classes: &[Class]) -> Results {
        let input = self.input;
        let mut out = Results::default();
        let mut claim_index: BTreeMap<usize, usize> = BTreeMap::new();
        for (c, claim) in self.claims.iter().enumerate() {
            if claim.pods.is_empty() {
                continue;
            }
            claim_index.insert(c, out.new_claims.len());
            let pool = &self.pools[claim.pool];
            let mut requirements = claim.req.clone();
            requirements.remove(labels::HOSTNAME);
            let mut launch_options: Vec<LaunchOption> = Vec::new();
            let allowed = pool.allowed_slots(&requirements, &[]);
            for &(t, _) in claim.types.iter().take(MAX_LAUNCH_TYPES) {
                let tc = &pool.types[t];
                let it = &tc.it;
                for (o, slot) in it.offerings.iter().zip(&tc.offering_slots) {
                    if slot.is_some_and(|s| allowed[s]) {
                        launch_options.push(LaunchOption {
                            instance_type: it.name.clone(),
                            zone: o.zone.clone(),
                            capacity_type: o.capacity_type,
                            price: o.price,
                        });
                    }
                }
            }
            launch_options.sort_by(|a, b| {
                a.price
                    .total_cmp(&b.price)
                    .then_with(|| a.instance_type.cmp(&b.instance_type))
                    .then_with(|| a.zone.cmp(&b.zone))
                    .then_with(|| a.capacity_type.cmp(&b.capacity_type))
            });
            let overhead =
                claim.types.first().map(|&(t, _)| pool.types[t].overhead.clone()).unwrap_or_default();
            let labels = requirements
                .iter()
                .filter(|(k, _)| {
                    !pool.instance_keys.contains(*k) && *k != labels::ZONE && *k != labels::CAPACITY_TYPE
                })
                .filter_map(|(k, set)| set.single().map(|v| (k.to_string(), v.to_string())))
                .collect();
            out.new_claims.push(NewClaim {
                pool: pool.pool.name.clone(),
                node_template: pool.pool.node_template.clone(),
                hostname: claim.hostname.clone(),
                pods: claim.pods.iter().map(|&p| input.pending[p].key()).collect(),
                requirements,
                requests: claim.used.clone() + &overhead,
                instance_types: claim.types.iter().map(|&(t, _)| pool.types[t].it.clone()).collect(),
                launch_options,
                labels,
                taints: pool.pool.taints.clone(),
                startup_taints: pool.pool.startup_taints.clone(),
            });
        }
        for (p, target) in self.assigned.iter().enumerate() {
            let key = input.pending[p].key();
            match target {
                Some(Target::Node(n)) => {
                    out.placements.insert(key, Placement::Existing(input.existing[*n].name.clone()));
                }
                Some(Target::Claim(c)) => {
                    out.placements.insert(key, Placement::NewClaim(claim_index[c]));
                }
                None => {
                    let reason = self.reasons.get(&p).cloned().unwrap_or_else(|| "not placed".into());
                    out.unschedulable.push((key, reason));
                }
            }
        }
        out.unschedulable.sort();
        debug_assert_eq!(classes.iter().map(|c| c.pods.len()).sum::<usize>(), input.pending.len());
        out
    }
}

/// The variant a class is packed with: its strictest one that some existing node or pool could satisfy
/// (`place_class` would relax the stricter ones at once: nothing can host them).
fn packing_variant<'c>(
    class: &'c Class,
    pools: &[PoolCtx<'_>],
    existing: &[ExistingNode],
) -> Option<&'c Variant> {
    class.variants.iter().find(|v| {
        v.alternatives.iter().any(|a| {
            pools.iter().any(|p| a.conflict_with_node(&p.base).is_none())
                || existing.iter().any(|n| a.matches(&n.labels))
        })
    })
}

/// Element-wise maximum room over `types` (field by field: it runs on every placement).
fn hull_of(pool: &PoolCtx<'_>, types: &[(usize, f64)]) -> Resources {
    let mut hull = Resources::default();
    for &(t, _) in types {
        let room = &pool.types[t].room;
        hull.cpu = hull.cpu.max(room.cpu);
        hull.memory = hull.memory.max(room.memory);
        hull.ephemeral_storage = hull.ephemeral_storage.max(room.ephemeral_storage);
        hull.pods = hull.pods.max(room.pods);
        if !room.extended.is_empty() {
            hull = hull.max_each(room);
        }
    }
    hull
}

/// Element-wise minimum of the pods' requests (extended resources count as 0: not every pod needs one).
fn smallest_request(pods: &[Arc<Pod>]) -> Resources {
    let min = |f: fn(&Resources) -> i64| pods.iter().map(|p| f(&p.requests)).min().unwrap_or(0).max(0);
    Resources {
        cpu: min(|r| r.cpu),
        memory: min(|r| r.memory),
        ephemeral_storage: min(|r| r.ephemeral_storage),
        pods: min(|r| r.pods),
        extended: BTreeMap::new(),
    }
}

fn scaled(each: &Resources, count: i64) -> Resources {
    let mut out = Resources::default();
    add_scaled(&mut out, each, count);
    out
}

fn pin<'r>(req: &Cow<'r, Requirements>, pins: &[(&str, &str)]) -> Cow<'r, Requirements> {
    if pins.is_empty() {
        return req.clone();
    }
    let mut out = req.clone().into_owned();
    for (k, v) in pins {
        out.add(k, ValueSet::one_of([*v]));
    }
    Cow::Owned(out)
}

fn sort_types(types: &mut [(usize, f64)], ctx: &[TypeCtx]) {
    types.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| ctx[a.0].it.name.cmp(&ctx[b.0].it.name)));
}

/// What a claim that may become any of `types` charges against limits: the most any of them would.
/// What a claim over `types` charges against the pool's limits: per limit, the most any of them would.
fn max_charge(pool: &PoolCtx<'_>, types: &[(usize, f64)]) -> BTreeMap<String, i64> {
    if types.is_empty() {
        return BTreeMap::new();
    }
    pool.pool
        .limits
        .keys()
        .map(|k| {
            let charge = |t: usize| if k == NODES_LIMIT { 1 } else { pool.types[t].it.capacity.get(k) };
            (k.clone(), types.iter().map(|&(t, _)| charge(t)).max().unwrap_or(0))
        })
        .collect()
}

fn limit_blockers(pool: &PoolCtx<'_>, t: &TypeCtx) -> Vec<String> {
    limit_charge(&pool.pool.limits, &t.it)
        .into_iter()
        .filter(|(k, need)| pool.remaining.get(k).is_some_and(|left| need > left))
        .map(|(k, _)| k)
        .collect()
}

fn describe_limit(requests: &Resources, keys: &BTreeSet<String>) -> String {
    let named: Vec<String> = keys
        .iter()
        .filter(|k| requests.get(k) > 0)
        .map(|k| format!("{k}={}", format_quantity(k, requests.get(k))))
        .collect();
    if keys.len() == 1 && keys.contains(NODES_LIMIT) {
        NODES_LIMIT.to_string()
    } else if named.is_empty() {
        format!("{requests} (limited: {})", keys.iter().cloned().collect::<Vec<_>>().join(", "))
    } else {
        named.join(", ")
    }
}

/// The nodes whose pods a spread of `pod` counts, under its inclusion policies.
fn spread_node_filter(pod: &Pod, s: &crate::model::TopologySpreadConstraint) -> NodeFilter {
    let affinity = (s.node_affinity_policy == InclusionPolicy::Honor)
        .then(|| classes::pod_alternatives(pod, &[]).unwrap_or_default())
        // No requirement at all admits every node: share the group with unfiltered terms.
        .filter(|alts| !alts.iter().any(Requirements::is_empty));
    let tolerations = (s.node_taints_policy == InclusionPolicy::Honor).then(|| (*pod.tolerations).clone());
    NodeFilter { affinity, tolerations }
}

/// Precomputes a pool: its base node requirements, and per type the room left after daemonsets.
fn build_pool<'a>(pool: &'a NodePoolTemplate, daemonsets: &[Arc<DaemonSet>]) -> PoolCtx<'a> {
    // Per instance label key: the values types carry, and how many types carry it.
    let mut by_key: BTreeMap<&str, (BTreeSet<&str>, usize)> = BTreeMap::new();
    for t in &pool.instance_types {
        for (k, v) in &t.instance_type.labels {
            let e = by_key.entry(k).or_default();
            e.0.insert(v);
            e.1 += 1;
        }
    }
    let mut base = pool.requirements.intersect(&Requirements::from_labels(&pool.labels));
    let constrained_keys: Vec<String> = base.iter().map(|(k, _)| k.to_string()).collect();
    for (key, (values, count)) in &by_key {
        let mut set = ValueSet::one_of(values.iter().copied());
        if *count < pool.instance_types.len() {
            set = set.with_absent_allowed();
        }
        base.add(key, set);
    }
    let instance_keys: BTreeSet<String> = by_key.keys().map(|k| k.to_string()).collect();
    let offerings =
        || pool.instance_types.iter().flat_map(|t| t.instance_type.offerings.iter()).filter(|o| o.available);
    base.add(labels::ZONE, ValueSet::one_of(offerings().map(|o| o.zone.as_str()).collect::<BTreeSet<_>>()));
    base.add(
        labels::CAPACITY_TYPE,
        ValueSet::one_of(offerings().map(|o| o.capacity_type.as_str()).collect::<BTreeSet<_>>()),
    );
    base.add(labels::PROVISIONER_NAME, ValueSet::one_of([pool.name.clone()]));
    base.add(labels::BALLAST_PROVISIONER, ValueSet::one_of([pool.name.clone()]));
    let slots: Vec<(String, CapacityType)> =
        offerings().map(|o| (o.zone.clone(), o.capacity_type)).collect::<BTreeSet<_>>().into_iter().collect();
    let mut ctx =
        PoolCtx { pool, base, types: Vec::new(), instance_keys, remaining: pool.remaining_limits(), slots };
    for t in &pool.instance_types {
        let offering_slots: Vec<Option<usize>> = t
            .instance_type
            .offerings
            .iter()
            .map(|o| {
                o.available.then(|| {
                    ctx.slots
                        .binary_search_by(|(z, ct)| {
                            (z.as_str(), *ct).cmp(&(o.zone.as_str(), o.capacity_type))
                        })
                        .expect("slots hold every available offering")
                })
            })
            .collect();
        let mut prices: Vec<(usize, f64)> = Vec::new();
        for (o, slot) in t.instance_type.offerings.iter().zip(&offering_slots) {
            let Some(slot) = *slot else { continue };
            match prices.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, p)) => *p = p.min(o.price),
                None => prices.push((slot, o.price)),
            }
        }
        let tc = TypeCtx {
            it: t.instance_type.clone(),
            room: t.allocatable.clone(),
            overhead: Resources::default(),
            prices,
            offering_slots,
        };
        // Type-derived keys hold every type's value by construction; only the pool's own clauses filter.
        if !ctx.type_matches(&tc, &ctx.base, constrained_keys.iter().map(String::as_str))
            || offering_price(&tc.it, &ctx.base).is_none()
        {
            continue;
        }
        let overhead = if daemonsets.is_empty() {
            Resources::default()
        } else {
            daemonset_overhead(&ctx, &tc.it, daemonsets)
        };
        let room = tc.room.saturating_sub(&overhead);
        ctx.types.push(TypeCtx { room, overhead, ..tc });
    }
    ctx
}

/// Requests of the daemonsets whose pods would run on a node of `it` in this pool.
fn daemonset_overhead(pool: &PoolCtx<'_>, it: &InstanceType, daemonsets: &[Arc<DaemonSet>]) -> Resources {
    // A daemonset requirement is met when the type's own label satisfies it, or (for keys the type does not
    // define) when the pool's nodes may carry a matching value.
    let runs_on = |alt: &Requirements| {
        alt.iter().all(|(k, want)| match it.labels.get(k) {
            Some(v) => want.has(v),
            None if pool.instance_keys.contains(k) => want.allows_absent(),
            None => {
                pool.base.get(k).map_or(want.allows_absent(), |have| !want.intersect(have).is_unsatisfiable())
            }
        })
    };
    daemonsets
        .iter()
        .filter(|ds| {
            let pod = &ds.template;
            first_untolerated(&pod.tolerations, &pool.pool.taints, false).is_none()
                && classes::pod_alternatives(pod, &[]).is_ok_and(|alts| alts.iter().any(runs_on))
        })
        .map(|ds| &ds.template.requests)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::super::solve_tests::{ZONES, instance_type, pool};
    use super::*;

    #[test]
    fn slot_prices_match_the_cheapest_matching_offering() {
        let mut it = instance_type("m.large", 2000, 8, 0.10);
        it.offerings[0].available = false; // on-demand in ZONES[0]
        it.offerings[3].price = 0.02; // spot in ZONES[1]
        let template = pool("default", vec![it.clone()]);
        let ctx = build_pool(&template, &[]);
        let tc = &ctx.types[0];
        let choices = |values: &[&str]| -> Vec<Option<ValueSet>> {
            std::iter::once(None)
                .chain(values.iter().map(|v| Some(ValueSet::one_of([*v]))))
                .chain(std::iter::once(Some(ValueSet::one_of(values.iter().copied()))))
                .collect()
        };
        for zone in choices(&ZONES) {
            for ct in choices(&["spot", "on-demand"]) {
                let mut req = Requirements::new();
                if let Some(z) = &zone {
                    req.add(labels::ZONE, z.clone());
                }
                if let Some(c) = &ct {
                    req.add(labels::CAPACITY_TYPE, c.clone());
                }
                assert_eq!(tc.price_in(&ctx.allowed_slots(&req, &[])), offering_price(&it, &req), "{req}");
            }
        }
    }

    #[test]
    fn pinned_domains_read_like_the_pinned_requirements() {
        let req = Requirements::from_labels(&[(labels::HOSTNAME.to_string(), "n-1".to_string())].into());
        let pins = vec![(labels::ZONE, ZONES[0])];
        let at = Where::Planned(&req, &pins);
        assert_eq!(at.domain(labels::ZONE), Some(ZONES[0]));
        assert_eq!(at.domain(labels::BETA_ZONE), Some(ZONES[0]), "aliases read the canonical key");
        assert_eq!(at.domain(labels::HOSTNAME), Some("n-1"));
        let conflicting = vec![pins[0], (labels::BETA_ZONE, ZONES[1])];
        assert_eq!(Where::Planned(&req, &conflicting).domain(labels::ZONE), None, "as `pin` leaves no value");
    }
}
