//! Randomized disruption runs on the simulated cluster (in-memory API server + simulated EC2), checking the
//! invariants disruption must never break:
//! - a PodDisruptionBudget, once satisfied, stays satisfied;
//! - a pod annotated do-not-disrupt is never evicted or deleted;
//! - a Provisioner never has more nodes disrupting than its budget allows;
//! - no node is consolidated before `consolidateAfter` or expired before `ttlSecondsUntilExpired`;
//! - no node is taken away while a pod on it has nowhere to go: there is no provisioner in these runs, so such
//!   a pod would stay pending; every pod must be running again within a few seconds.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use async_trait::async_trait;
use ballast::{
    actuator::{self, Actuator, EventRecord, Eviction, FinalizerTarget, ScaleTarget},
    api::{NodeClaim, NodeClaimSpec, NodeClaimStatus, Provisioner, ProvisionerSpec, labels, provisioner},
    clock::ManualClock,
    cloud::{
        CapacityType, Catalog, CloudProvider, LaunchOption, LaunchRequest,
        sim::{SimCloud, SimCloudConfig},
    },
    disruption::{self, Disruption, DisruptionMetrics, Reason, candidate},
    model::{IntOrPercent, LabelSelector, PodDisruptionBudget, Taint},
    simulate::cluster::SimApi,
    state::{self, Object, Snapshot},
    termination::{TerminationMetrics, Terminator, gc::GarbageCollector},
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1 as apps;
use kube::api::ObjectMeta;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;

const TYPES: [&str; 4] = ["c5.large", "m5.large", "m5.xlarge", "m5.2xlarge"];
const TICK: SignedDuration = SignedDuration::from_secs(2);
/// A pod evicted to a node that exists is bound on the next scheduler pass; allow a few.
const MAX_PENDING: SignedDuration = SignedDuration::from_secs(10);

/// The API server's eviction semantics: a PDB's allowance is computed from the live pods at each request (the
/// real server decrements `disruptionsAllowed` on every eviction). Records what was evicted or deleted.
struct EvictionApi {
    api: Arc<SimApi>,
    removed: Mutex<Vec<String>>,
}

#[async_trait]
impl Actuator for EvictionApi {
    async fn create_node_claim(&self, claim: &NodeClaim) -> actuator::Result<NodeClaim> {
        self.api.create_node_claim(claim).await
    }
    async fn patch_node_claim_status(&self, name: &str, status: &NodeClaimStatus) -> actuator::Result<()> {
        self.api.patch_node_claim_status(name, status).await
    }
    async fn delete_node_claim(&self, name: &str) -> actuator::Result<()> {
        self.api.delete_node_claim(name).await
    }
    async fn add_finalizer(&self, target: &FinalizerTarget, finalizer: &str) -> actuator::Result<()> {
        self.api.add_finalizer(target, finalizer).await
    }
    async fn remove_finalizer(&self, target: &FinalizerTarget, finalizer: &str) -> actuator::Result<()> {
        self.api.remove_finalizer(target, finalizer).await
    }
    async fn cordon_node(&self, node: &str) -> actuator::Result<()> {
        self.api.cordon_node(node).await
    }
    async fn taint_node(&self, node: &str, taint: &Taint) -> actuator::Result<()> {
        self.api.taint_node(node, taint).await
    }
    async fn label_node(&self, node: &str, labels: &BTreeMap<String, String>) -> actuator::Result<()> {
        self.api.label_node(node, labels).await
    }
    async fn delete_node(&self, node: &str) -> actuator::Result<()> {
        self.api.delete_node(node).await
    }
    async fn evict_pod(&self, namespace: &str, name: &str) -> actuator::Result<Eviction> {
        let snap = self.api.snapshot();
        let key = format!("{namespace}/{name}");
        let Some(pod) = snap.pods.get(&key) else { return Ok(Eviction::NotFound) };
        let allowances = candidate::pdb_allowances(&snap);
        if candidate::pdbs_of(&snap, pod).any(|pdb| allowances.get(pdb).is_none_or(|a| *a < 1)) {
            return Ok(Eviction::BlockedByBudget);
        }
        self.removed.lock().push(key);
        self.api.delete_pod(namespace, name, None).await?;
        Ok(Eviction::Evicted)
    }
    async fn delete_pod(&self, namespace: &str, name: &str, grace: Option<i64>) -> actuator::Result<()> {
        self.removed.lock().push(format!("{namespace}/{name}"));
        self.api.delete_pod(namespace, name, grace).await
    }
    async fn get_scale(&self, target: &ScaleTarget) -> actuator::Result<i32> {
        self.api.get_scale(target).await
    }
    async fn set_scale(&self, target: &ScaleTarget, replicas: i32) -> actuator::Result<()> {
        self.api.set_scale(target, replicas).await
    }
    async fn emit_event(&self, event: &EventRecord) -> actuator::Result<()> {
        self.api.emit_event(event).await
    }
    async fn create_config_map(
        &self,
        namespace: &str,
        name: &str,
        data: &std::collections::BTreeMap<String, String>,
    ) -> actuator::Result<()> {
        self.api.create_config_map(namespace, name, data).await
    }
}

fn start() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::bundled().subset(TYPES).unwrap())
}

fn deployment(name: &str, replicas: i32, cpu_millis: i64, do_not_disrupt: bool) -> apps::Deployment {
    let annotations = if do_not_disrupt {
        serde_json::json!({ labels::DO_NOT_DISRUPT: "true" })
    } else {
        serde_json::json!({})
    };
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "namespace": "default" },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name }, "annotations": annotations },
                "spec": { "containers": [{ "name": "c", "image": "pause",
                    "resources": { "requests": { "cpu": format!("{cpu_millis}m"), "memory": "128Mi" } } }] }
            }
        }
    }))
    .unwrap()
}

/// Settings of one randomized run.
#[derive(Debug, Clone)]
struct Setup {
    nodes: Vec<&'static str>,
    /// name, replicas, cpu millis, do-not-disrupt, PDB minAvailable
    deployments: Vec<(String, i32, i64, bool, Option<i32>)>,
    consolidation: bool,
    budget: String,
    consolidate_after: i64,
    expire_after: Option<i64>,
    /// (at seconds, deployment index, replicas)
    scale_downs: Vec<(i64, usize, i32)>,
}

fn random_setup(rng: &mut ChaCha8Rng) -> Setup {
    let nodes = (0..rng.random_range(2..=4)).map(|_| *TYPES.choose(rng).unwrap()).collect();
    let deployments = (0..rng.random_range(1..=3))
        .map(|i| {
            let replicas = rng.random_range(1..=5);
            let pdb = rng.random_bool(0.4).then(|| rng.random_range(0..=replicas));
            (format!("app{i}"), replicas, *[100, 250, 500].choose(rng).unwrap(), rng.random_bool(0.15), pdb)
        })
        .collect::<Vec<_>>();
    let scale_downs = (0..rng.random_range(0..=2))
        .map(|_| (rng.random_range(20..120), rng.random_range(0..deployments.len()), rng.random_range(0..=2)))
        .collect();
    Setup {
        nodes,
        deployments,
        consolidation: rng.random_bool(0.8),
        budget: ["10%", "50%", "1", "2", "100%"].choose(rng).unwrap().to_string(),
        consolidate_after: *[0, 30, 60].choose(rng).unwrap(),
        expire_after: rng.random_bool(0.25).then(|| rng.random_range(60..200)),
        scale_downs,
    }
}

struct Run {
    setup: Setup,
    clock: ManualClock,
    cloud: Arc<SimCloud>,
    api: Arc<SimApi>,
    kube: Arc<EvictionApi>,
    catalog: Arc<Catalog>,
}

impl Run {
    async fn new(setup: Setup, seed: u64) -> Option<Self> {
        let clock = ManualClock::new(start());
        let catalog = catalog();
        let config = SimCloudConfig { seed, launch_delay: SignedDuration::ZERO, registration_delay: TICK };
        let cloud = Arc::new(SimCloud::new(catalog.clone(), Arc::new(clock.clone()), config));
        let api = Arc::new(SimApi::new(state::Cluster::new(), Arc::new(clock.clone()), seed));
        let kube = Arc::new(EvictionApi { api: api.clone(), removed: Mutex::new(Vec::new()) });
        let run = Self { setup, clock, cloud, api, kube, catalog };
        run.apply_objects().await;
        // Everything must be running before disruption starts, or the run says nothing.
        run.tick(start() + TICK);
        run.api.reconcile();
        run.api.schedule();
        let snap = run.api.snapshot();
        let all_bound =
            snap.pending_pods().all(|p| p.is_daemonset_pod()) && snap.nodes.len() == run.setup.nodes.len();
        all_bound.then_some(run)
    }

    async fn apply_objects(&self) {
        let s = &self.setup;
        let spec = ProvisionerSpec {
            consolidation: Some(provisioner::Consolidation { enabled: Some(s.consolidation) }),
            ttl_seconds_after_empty: (!s.consolidation).then_some(30),
            requirements: Some(vec![k8s_openapi::api::core::v1::NodeSelectorRequirement {
                key: labels::CAPACITY_TYPE.into(),
                operator: "In".into(),
                values: Some(vec![CapacityType::OnDemand.as_str().into()]),
            }]),
            ttl_seconds_until_expired: s.expire_after,
            disruption: Some(provisioner::Disruption {
                budgets: Some(vec![provisioner::Budget {
                    nodes: s.budget.clone(),
                    schedule: None,
                    duration: None,
                }]),
                consolidate_after: Some(format!("{}s", s.consolidate_after)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut p = Provisioner::new("default", spec);
        p.metadata.resource_version = Some("1".into());
        self.api.apply_object(Object::Provisioner(Arc::new(p)));
        for (i, it) in s.nodes.iter().enumerate() {
            let name = format!("node-{i}");
            let claim = NodeClaim {
                metadata: ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() },
                spec: NodeClaimSpec {
                    provisioner: "default".into(),
                    labels: Some(BTreeMap::from([(
                        labels::PROVISIONER_NAME.to_string(),
                        "default".to_string(),
                    )])),
                    ..NodeClaimSpec::default()
                },
                status: None,
            };
            self.kube.create_node_claim(&claim).await.unwrap();
            let price = self
                .catalog
                .get(it)
                .unwrap()
                .cheapest_offering(|o| o.capacity_type == CapacityType::OnDemand && o.zone == "us-east-1a")
                .unwrap()
                .price;
            let instance = self
                .cloud
                .create(&LaunchRequest {
                    claim_name: name.clone(),
                    provisioner: "default".into(),
                    node_template: None,
                    options: vec![LaunchOption {
                        instance_type: it.to_string(),
                        zone: "us-east-1a".into(),
                        capacity_type: CapacityType::OnDemand,
                        price,
                    }],
                    labels: Default::default(),
                    taints: vec![],
                    startup_taints: vec![],
                    tags: Default::default(),
                })
                .await
                .unwrap();
            let status = NodeClaimStatus {
                provider_id: Some(instance.provider_id.clone()),
                instance_type: Some(instance.instance_type.clone()),
                zone: Some(instance.zone.clone()),
                capacity_type: Some(instance.capacity_type.to_string()),
                price: Some(price.to_string()),
                ..NodeClaimStatus::default()
            };
            self.kube.patch_node_claim_status(&name, &status).await.unwrap();
        }
        for (name, replicas, cpu, dnd, pdb) in &s.deployments {
            self.api.apply_deployment(&deployment(name, *replicas, *cpu, *dnd)).unwrap();
            if let Some(min) = pdb {
                self.api.apply_object(Object::PodDisruptionBudget(Arc::new(PodDisruptionBudget {
                    namespace: "default".into(),
                    name: name.clone(),
                    selector: LabelSelector {
                        match_labels: [("app".to_string(), name.clone())].into(),
                        ..Default::default()
                    },
                    min_available: Some(IntOrPercent::Int(*min)),
                    max_unavailable: None,
                    disruptions_allowed: 0,
                })));
            }
        }
    }

    /// Advances virtual time and registers nodes whose instances came up.
    fn tick(&self, now: Timestamp) {
        self.clock.set(now);
        let events = self.cloud.poll();
        for instance in &events.registered {
            if self.api.snapshot().node_claims.contains_key(instance.claim_name().unwrap_or_default()) {
                self.api.register_node(instance, &self.catalog).unwrap();
            }
        }
    }
}

fn healthy(snap: &Snapshot, app: &str) -> i32 {
    snap.pods
        .values()
        .filter(|p| p.labels.get("app").map(String::as_str) == Some(app) && p.node_name.is_some())
        .count() as i32
}

/// Runs one seeded scenario for `duration`; panics with the seed and setup on any violated invariant.
async fn run_one(seed: u64, duration: SignedDuration) -> Option<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let setup = random_setup(&mut rng);
    let run = Run::new(setup.clone(), seed).await?;
    let fail = |what: String| -> ! { panic!("seed {seed}: {what}\nsetup: {setup:?}") };
    let (pools, errors) = disruption::pools(&run.api.snapshot(), &run.catalog);
    assert!(errors.is_empty(), "{errors:?}");
    let mut disruption = Disruption::new(run.cloud.clone(), run.kube.clone(), DisruptionMetrics::default());
    let mut terminator = Terminator::new(run.cloud.clone(), run.kube.clone(), TerminationMetrics::default());
    let mut gc = GarbageCollector::new(run.cloud.clone(), run.kube.clone());
    let protected: BTreeSet<&str> = setup.deployments.iter().filter(|d| d.3).map(|d| d.0.as_str()).collect();
    let mut pdb_satisfied: BTreeSet<String> = BTreeSet::new();
    let mut pending_since: BTreeMap<String, Timestamp> = BTreeMap::new();
    let mut executed = 0;
    let mut replicas_now: BTreeMap<usize, i32> = BTreeMap::new();

    let mut now = start() + TICK;
    while now <= start() + duration {
        now += TICK;
        run.tick(now);
        let elapsed = now.duration_since(start()).as_secs();
        // Only ever down: there is no provisioner to bring capacity back.
        for (at, i, replicas) in &setup.scale_downs {
            if (*at..*at + TICK.as_secs()).contains(&elapsed) {
                let current = replicas_now.entry(*i).or_insert(setup.deployments[*i].1);
                *current = (*current).min(*replicas);
                run.api.scale_deployment("default", &setup.deployments[*i].0, *current);
            }
        }
        run.api.reconcile();
        run.api.schedule();

        let snap = run.api.snapshot();
        let report = disruption.reconcile(&snap, &pools, now).await.unwrap();
        if let Some(cmd) = &report.executed {
            executed += 1;
            for name in &cmd.nodes {
                let node =
                    snap.nodes.get(name).unwrap_or_else(|| fail(format!("disrupted unknown node {name}")));
                let age = now.duration_since(node.created).as_secs();
                match cmd.reason {
                    Reason::Underutilized if age < setup.consolidate_after => {
                        fail(format!("{name} consolidated at age {age}s < consolidateAfter"))
                    }
                    Reason::Expired if setup.expire_after.is_some_and(|ttl| age < ttl) => {
                        fail(format!("{name} expired at age {age}s"))
                    }
                    _ => {}
                }
            }
        }
        let snap = run.api.snapshot();
        let (_, err) = terminator.reconcile(&snap, now).await;
        if let Some(e) = err {
            fail(format!("termination failed: {e}"));
        }
        gc.reconcile(&run.api.snapshot(), now).await.unwrap();

        let snap = run.api.snapshot();
        // Budgets.
        let (settings, _) = disruption::settings(&snap);
        let total = snap.nodes.len() as i64;
        let disrupting = snap
            .nodes
            .values()
            .filter(|n| n.taints.iter().any(|t| t.key == labels::DISRUPTION_TAINT_KEY))
            .count() as i64;
        let budget = settings["default"].budget(total, now);
        if disrupting > budget {
            fail(format!("{disrupting} nodes disrupting with a budget of {budget} at {elapsed}s"));
        }
        // PDBs.
        for (name, _, _, _, pdb) in &setup.deployments {
            let Some(min) = pdb else { continue };
            let h = healthy(&snap, name);
            if h >= *min {
                pdb_satisfied.insert(name.clone());
            } else if pdb_satisfied.contains(name) && h < *min {
                // Scaling down below minAvailable is the user's doing, not a disruption.
                let replicas =
                    setup.scale_downs.iter().filter(|s| setup.deployments[s.1].0 == *name).map(|s| s.2).min();
                if replicas.is_none_or(|r| r >= *min) {
                    fail(format!("PDB {name}: {h} healthy < minAvailable {min} at {elapsed}s"));
                }
            }
        }
        // Nowhere to go.
        pending_since.retain(|k, _| snap.pods.get(k).is_some_and(|p| p.node_name.is_none()));
        for p in snap.pending_pods().filter(|p| !p.is_daemonset_pod()) {
            let since = *pending_since.entry(p.key()).or_insert(now);
            if now.duration_since(since) > MAX_PENDING {
                fail(format!("pod {} pending since {since} has nowhere to go at {elapsed}s", p.key()));
            }
        }
    }
    // do-not-disrupt.
    for key in run.kube.removed.lock().iter() {
        if protected.iter().any(|app| key.starts_with(&format!("default/{app}-"))) {
            fail(format!("do-not-disrupt pod {key} was evicted"));
        }
    }
    Some(executed)
}

#[tokio::test]
async fn randomized_runs_never_break_pdbs_do_not_disrupt_budgets_or_lifetimes() {
    let (mut valid, mut executed) = (0, 0);
    for seed in 0..1000 {
        if let Some(n) = run_one(seed, SignedDuration::from_secs(180)).await {
            valid += 1;
            executed += n;
        }
    }
    assert!(valid >= 900, "only {valid} of 1000 runs started with every pod running");
    assert!(executed >= 500, "only {executed} disruptions executed: the runs exercise too little");
}
