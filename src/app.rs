//! Composition root: turns a parsed [`Command`] into running work.

use std::{collections::BTreeSet, net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use ballast::{
    actuator::kube::{ActuatorMetrics, KubeActuator},
    client::{self, ClientMetrics},
    clock::{Clock, SystemClock},
    config::{ClusterArgs, Command, LeaderArgs, LoopArgs, OutputFormat, PlanArgs, RunArgs, SimulateArgs},
    disruption::{Disruption, DisruptionMetrics},
    leader::{self, Election, LeaderGate, LeaderMetrics, LeaseConfig},
    proportional::{Proportional, ProportionalArgs},
    provisioning::{args::ProvisioningArgs, runner::Loops},
    simulate,
    state::{
        Cluster,
        watch::{self, WatchOptions},
    },
    telemetry::{
        admin::{self, AdminState},
        logging::LogHandle,
        metrics, shutdown,
    },
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

/// How long loops get after SIGTERM to finish their in-flight writes (within the pod's 30 s grace period).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Exit code of the subcommands that are not implemented yet.
const NOT_IMPLEMENTED: u8 = 2;

pub fn main(command: Command, log: LogHandle) -> anyhow::Result<ExitCode> {
    match command {
        Command::Simulate(args) => simulate(&args),
        Command::Crds => {
            print!("{}", ballast::api::crds::crds_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let runtime = tokio::runtime::Runtime::new().context("failed to start the tokio runtime")?;
            runtime.block_on(run(*args, log))
        }
        Command::Plan(args) => plan(&args),
        Command::Convert => not_implemented("convert"),
    }
}

fn not_implemented(command: &str) -> anyhow::Result<ExitCode> {
    eprintln!("ballast {command}: not implemented yet");
    Ok(ExitCode::from(NOT_IMPLEMENTED))
}

fn simulate(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let SimulateArgs { scenario, output, seed, no_progress } = args;
    let options =
        simulate::SimulateOptions { scenario: scenario.clone(), seed: *seed, progress: !no_progress };
    let report = simulate::run(&options).with_context(|| match scenario {
        Some(path) => format!("failed to simulate {}", path.display()),
        None => "failed to simulate the default scenario".to_string(),
    })?;
    match output {
        OutputFormat::Text => print!("{}", report.to_text()),
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&report).context("failed to encode the report")?)
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ballast plan`: what each loop would do now; writes nothing.
fn plan(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let report = ballast::plan::run(args).context("failed to plan")?;
    match args.output {
        OutputFormat::Text => print!("{}", report.to_text()),
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&report).context("failed to encode the plan")?)
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ballast run`: client → watches → leader election → loops → admin server, until SIGTERM or a failure
/// that makes acting unsafe (lost lease task, dead loop).
async fn run(args: RunArgs, log: LogHandle) -> anyhow::Result<ExitCode> {
    // Destructured so a flag that is not wired fails to compile.
    let RunArgs { client, admin, leader, cluster, loops, proportional, provisioning } = args;
    let ClusterArgs { cluster_name, region, interruption_queue } = cluster.clone();
    let LoopArgs {
        enable_provisioning,
        enable_disruption,
        enable_node_groups,
        enable_proportional,
        enable_event_scaler,
    } = loops;
    for (enabled, flag) in
        [(enable_node_groups, "--enable-node-groups"), (enable_event_scaler, "--enable-event-scaler")]
    {
        if enabled {
            bail!("{flag}: this loop is not available in this build of ballast yet");
        }
    }
    check_interruption_queue(interruption_queue.as_deref())?;
    let node_loops = NodeLoops {
        provisioning: enable_provisioning,
        disruption: enable_disruption,
        interruption: interruption_queue.is_some(),
    };
    if let Some(flag) = node_loops.first_flag() {
        check_node_loops(flag, &provisioning)?;
    }
    let identity = identity(&leader)?;

    let shutdown = CancellationToken::new();
    shutdown::cancel_on_signal(shutdown.clone())?;
    let mut registry = metrics::root_registry();
    let kube =
        client::build(&client, ClientMetrics::register(registry.sub_registry_with_prefix("client"))).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let index = Cluster::new();
    let watch_options = WatchOptions { config_maps: proportional_config_maps(&proportional) };
    let watches: Vec<_> = watch::spawn(kube.clone(), &index, &watch_options)
        .into_iter()
        .map(|(kind, task)| (kind, task.abort_handle()))
        .collect();

    let actuator = Arc::new(KubeActuator::new(
        kube.clone(),
        clock.clone(),
        identity.clone(),
        ActuatorMetrics::register(registry.sub_registry_with_prefix("actuator")),
    ));
    let leader_metrics = LeaderMetrics::register(registry.sub_registry_with_prefix("leader"));
    let (gate, mut election) = if leader.leader_elect {
        let config = LeaseConfig {
            namespace: leader.release_namespace.clone(),
            name: leader.lease_name.clone(),
            identity: identity.clone(),
            duration: Duration::from_secs(leader.lease_duration_seconds),
            renew_grace: Duration::from_secs(leader.lease_renew_grace_seconds),
        };
        let election = leader::elect(kube.clone(), config, leader_metrics).await?;
        (election.gate.clone(), Some(election))
    } else {
        warn!("leader election disabled: this replica acts unconditionally; run exactly one");
        leader_metrics.set_always_leader();
        (LeaderGate::always(), None)
    };

    let mut running = JoinSet::new();
    if enable_proportional {
        let controller = Proportional::new(proportional, index.clone(), actuator.clone(), clock.clone());
        running.spawn(
            controller
                .run(gate.receiver(), shutdown.clone())
                .map_named("proportional")
                .instrument(info_span!("proportional")),
        );
    }

    // The EC2 provider the node loops launch through; interruption tells it which spot pools reclaim.
    let mut node_cloud = None;
    if node_loops.first_flag().is_some() {
        let (loops, cloud) = node_loops_over_ec2(
            &node_loops,
            &provisioning,
            &cluster,
            &kube,
            &index,
            &actuator,
            &clock,
            &mut registry,
        )
        .await?;
        node_cloud = Some(cloud.clone());
        running.spawn(
            loops
                .run(gate.clone(), shutdown.clone())
                .map_named("provisioning")
                .instrument(info_span!("provisioning")),
        );
        if enable_disruption {
            let metrics = DisruptionMetrics::default();
            metrics.register(registry.sub_registry_with_prefix("disruption"));
            running.spawn(
                Disruption::new(cloud, actuator.clone(), metrics)
                    .run(index.clone(), clock.clone(), gate.receiver(), shutdown.clone())
                    .map_named("disruption")
                    .instrument(info_span!("disruption")),
            );
        }
    }

    if let Some(queue) = &interruption_queue {
        let metrics = ballast::interruption::InterruptionMetrics::default();
        metrics.register(registry.sub_registry_with_prefix("interruption"));
        let mut controller = interruption_loop(queue, region.clone(), actuator.clone(), metrics).await?;
        if let Some(cloud) = node_cloud.take() {
            controller = controller.with_cloud(cloud);
        }
        running.spawn(
            controller
                .run(index.clone(), clock.clone(), gate.receiver(), shutdown.clone())
                .map_named("interruption")
                .instrument(info_span!("interruption")),
        );
    }

    let admin_shutdown = CancellationToken::new();
    let ready = {
        let index = index.clone();
        Arc::new(move || index.synced())
    };
    let state = AdminState { registry: Arc::new(registry), ready, log };
    let (admin_addr, serve) =
        admin::bind(SocketAddr::new(admin.admin_address, admin.admin_port), state, admin_shutdown.clone())
            .await?;
    let admin_task = tokio::spawn(serve.instrument(info_span!("admin")));
    info!(
        cluster = %cluster_name,
        region = region.as_deref().unwrap_or("<from AWS config>"),
        interruption_queue = interruption_queue.as_deref().unwrap_or("<none>"),
        identity = %identity,
        admin = %admin_addr,
        loops = running.len(),
        "ballast running"
    );

    let mut election_ended = false;
    let failure = tokio::select! {
        biased;
        () = shutdown.cancelled() => None,
        result = wait_election(&mut election) => {
            election_ended = true;
            Some(match result {
                Ok(()) => anyhow::anyhow!("leader election ended unexpectedly"),
                Err(error) => anyhow::Error::new(error)
                    .context("leader election failed; exiting rather than acting without a lease"),
            })
        }
        Some(ended) = running.join_next() => match ended {
            // Loops return on shutdown; that race with the branch above is not a failure.
            Ok(_) if shutdown.is_cancelled() => None,
            Ok(name) => Some(anyhow::anyhow!("the {name} loop ended unexpectedly")),
            Err(join) => Some(anyhow::Error::new(join).context("a loop panicked")),
        },
    };

    // Stop acting: loops see the token, finish the act in progress, and return.
    shutdown.cancel();
    if tokio::time::timeout(DRAIN_TIMEOUT, async { while running.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        warn!(timeout = ?DRAIN_TIMEOUT, "loops did not finish in time; aborting them");
        running.abort_all();
    }
    // Give the Lease up so another replica takes over without waiting for it to expire.
    if let Some(election) = election.filter(|_| !election_ended)
        && let Err(error) = election.release().await
    {
        warn!(%error, "failed to release the lease; it will expire instead");
    }
    for (kind, watch) in watches {
        tracing::debug!(?kind, "stopping watch");
        watch.abort();
    }
    admin_shutdown.cancel();
    if let Ok(Err(error)) = admin_task.await {
        warn!(%error, "admin server failed while stopping");
    }
    match failure {
        None => {
            info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Some(error) => Err(error),
    }
}

/// The loops that launch or terminate EC2 instances. Any of them needs the node loops (lifecycle launches
/// replacement claims, termination drains deleted ones) and so the AWS provider.
struct NodeLoops {
    provisioning: bool,
    disruption: bool,
    interruption: bool,
}

impl NodeLoops {
    /// The flag that asked for the node loops, for error messages; `None` when no loop needs them.
    fn first_flag(&self) -> Option<&'static str> {
        [
            (self.provisioning, "--enable-provisioning"),
            (self.disruption, "--enable-disruption"),
            (self.interruption, "--interruption-queue"),
        ]
        .into_iter()
        .find_map(|(on, flag)| on.then_some(flag))
    }
}

/// Flags the node loops need, checked before connecting to anything.
fn check_node_loops(flag: &str, args: &ProvisioningArgs) -> anyhow::Result<()> {
    if !cfg!(feature = "aws") {
        bail!(
            "{flag}: this build of ballast has no AWS support (built without the `aws` feature); \
             use a release image or build with `--features aws`"
        );
    }
    if args.cluster_endpoint.is_none() {
        bail!(
            "{flag} needs --cluster-endpoint (BALLAST_CLUSTER_ENDPOINT): the API server endpoint \
             new nodes join"
        );
    }
    if args.cluster_service_cidr.is_none() || args.cluster_ca_bundle.is_none() {
        warn!(
            "without --cluster-service-cidr and --cluster-ca-bundle, AL2023 nodes join only if their \
             NodeTemplate's userData carries a NodeConfig with spec.cluster.cidr and certificateAuthority"
        );
    }
    Ok(())
}

/// The provisioning (when enabled), lifecycle, termination and garbage-collection loops over EC2, and the
/// provider for disruption.
#[cfg(feature = "aws")]
#[allow(clippy::too_many_arguments)]
async fn node_loops_over_ec2(
    enabled: &NodeLoops,
    args: &ProvisioningArgs,
    cluster: &ClusterArgs,
    kube: &kube::Client,
    index: &Cluster,
    actuator: &Arc<KubeActuator>,
    clock: &Arc<dyn Clock>,
    registry: &mut prometheus_client::registry::Registry,
) -> anyhow::Result<(Loops, Arc<dyn ballast::cloud::CloudProvider>)> {
    use ballast::{
        actuator::Actuator,
        cloud::{
            Catalog, CloudProvider,
            aws::{self, AwsCloud, AwsSettings, ClusterInfo, Lookups},
        },
        provisioning::{
            Provisioner,
            lifecycle::{Lifecycle, LifecycleMetrics},
        },
        termination::{TerminationMetrics, Terminator, gc::GarbageCollector},
    };

    let version = kube.apiserver_version().await.context("failed to read the API server version")?;
    let minor: String = version.minor.chars().take_while(char::is_ascii_digit).collect();
    let cluster_info = ClusterInfo {
        name: cluster.cluster_name.clone(),
        endpoint: args.cluster_endpoint.clone().context("--cluster-endpoint is required")?,
        ca_bundle: args.cluster_ca_bundle.clone(),
        service_cidr: args.cluster_service_cidr.clone(),
    };
    let mut settings = AwsSettings::new(cluster_info, format!("{}.{minor}", version.major));
    // Region and credentials the standard way; AWS_ENDPOINT_URL (tests, private endpoints) is honoured too.
    let sdk = aws::load_sdk_config(cluster.region.clone(), None).await;
    if let Some(region) = sdk.region() {
        settings.region = region.to_string();
    }
    let (templates, provisioners) = (index.clone(), index.clone());
    let lookups = Lookups {
        node_template: Arc::new(move |name| templates.snapshot().node_templates.get(name).cloned()),
        provisioner: Arc::new(move |name| provisioners.snapshot().provisioners.get(name).cloned()),
    };
    let aws = AwsCloud::from_sdk_config(&sdk, settings, lookups, &Catalog::bundled(), clock.clone());
    aws.metrics().register(registry.sub_registry_with_prefix("aws"));
    let cloud: Arc<dyn CloudProvider> = Arc::new(aws);
    let kube_writes: Arc<dyn Actuator> = actuator.clone();
    let lifecycle_metrics = LifecycleMetrics::register(registry.sub_registry_with_prefix("provisioning"));
    let termination_metrics = TerminationMetrics::default();
    termination_metrics.register(registry.sub_registry_with_prefix("termination"));
    let loops = Loops {
        index: index.clone(),
        clock: clock.clone(),
        provisioner: enabled
            .provisioning
            .then(|| Provisioner::new(cloud.clone(), kube_writes.clone(), args.batcher())),
        lifecycle: Lifecycle::new(cloud.clone(), kube_writes.clone(), args.timeouts(), lifecycle_metrics),
        terminator: Terminator::new(cloud.clone(), kube_writes.clone(), termination_metrics),
        gc: GarbageCollector::new(cloud.clone(), kube_writes),
    };
    Ok((loops, cloud))
}

/// Unreachable: [`check_node_loops`] refuses the node loops without the `aws` feature.
#[cfg(not(feature = "aws"))]
#[allow(clippy::too_many_arguments)]
async fn node_loops_over_ec2(
    _: &NodeLoops,
    _: &ProvisioningArgs,
    _: &ClusterArgs,
    _: &kube::Client,
    _: &Cluster,
    _: &Arc<KubeActuator>,
    _: &Arc<dyn Clock>,
    _: &mut prometheus_client::registry::Registry,
) -> anyhow::Result<(Loops, Arc<dyn ballast::cloud::CloudProvider>)> {
    bail!("the node loops need AWS support, and this build of ballast has none")
}

/// The interruption queue is read through the AWS SDK: fail before connecting anywhere when it is missing.
fn check_interruption_queue(queue: Option<&str>) -> anyhow::Result<()> {
    match queue {
        Some(queue) if !cfg!(feature = "aws") => bail!(
            "--interruption-queue={queue}: this build of ballast has no AWS support (built without the `aws` \
             feature); use a release build or drop the flag"
        ),
        _ => Ok(()),
    }
}

/// The interruption loop over the SQS queue named (or addressed) by `--interruption-queue`.
#[cfg(feature = "aws")]
async fn interruption_loop(
    queue: &str,
    region: Option<String>,
    kube: Arc<dyn ballast::actuator::Actuator>,
    metrics: ballast::interruption::InterruptionMetrics,
) -> anyhow::Result<ballast::interruption::Interruption> {
    let sdk = ballast::cloud::aws::load_sdk_config(region, None).await;
    let sqs = ballast::cloud::aws::sqs::SqsQueue::connect(&sdk, queue)
        .await
        .with_context(|| format!("--interruption-queue={queue}: failed to open the queue"))?;
    info!(queue = %queue, url = %sqs.url(), "Handling interruption messages");
    Ok(ballast::interruption::Interruption::new(Arc::new(sqs), kube, metrics))
}

#[cfg(not(feature = "aws"))]
async fn interruption_loop(
    _: &str,
    _: Option<String>,
    _: Arc<dyn ballast::actuator::Actuator>,
    _: ballast::interruption::InterruptionMetrics,
) -> anyhow::Result<ballast::interruption::Interruption> {
    bail!("the interruption queue needs AWS support, and this build of ballast has none")
}

/// The Lease identity: the pod name, which the chart passes through the downward API.
fn identity(leader: &LeaderArgs) -> anyhow::Result<String> {
    match (&leader.pod_name, leader.leader_elect) {
        (Some(name), _) => Ok(name.clone()),
        (None, false) => Ok("ballast".to_string()),
        (None, true) => bail!(
            "--pod-name (BALLAST_POD_NAME) is required with leader election: set it from the downward API \
             (metadata.name), or pass --leader-elect=false to run a single replica"
        ),
    }
}

/// The ConfigMap named by `--proportional-configmap` must be indexed even without the annotation.
fn proportional_config_maps(args: &ProportionalArgs) -> BTreeSet<String> {
    args.config_map.iter().map(|name| format!("{}/{name}", args.namespace)).collect()
}

/// Resolves when the election's supervisor ends; never without election.
async fn wait_election(election: &mut Option<Election>) -> Result<(), leader::Error> {
    match election {
        Some(election) => match (&mut election.task).await {
            Ok(result) => result,
            Err(join) => Err(leader::Error::LeaseTaskEnded(format!("supervisor panicked: {join}"))),
        },
        None => std::future::pending().await,
    }
}

/// Tags a loop's future with its name, so the composition root can say which one ended.
trait Named: Future<Output = ()> + Sized {
    async fn map_named(self, name: &'static str) -> &'static str {
        self.await;
        name
    }
}

impl<F: Future<Output = ()>> Named for F {}
