//! Composition root: turns a parsed [`Command`] into running work.

use std::{collections::BTreeSet, net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use ballast::{
    actuator::kube::{ActuatorMetrics, KubeActuator},
    client::{self, ClientMetrics},
    clock::{Clock, SystemClock},
    config::{ClusterArgs, Command, LeaderArgs, LoopArgs, OutputFormat, RunArgs, SimulateArgs},
    leader::{self, Election, LeaderGate, LeaderMetrics, LeaseConfig},
    proportional::{Proportional, ProportionalArgs},
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
        Command::Plan => not_implemented("plan"),
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

/// `ballast run`: client → watches → leader election → loops → admin server, until SIGTERM or a failure
/// that makes acting unsafe (lost lease task, dead loop).
async fn run(args: RunArgs, log: LogHandle) -> anyhow::Result<ExitCode> {
    // Destructured so a flag that is not wired fails to compile.
    let RunArgs { client, admin, leader, cluster, loops, proportional } = args;
    let ClusterArgs { cluster_name, region, interruption_queue } = cluster;
    let LoopArgs {
        enable_provisioning,
        enable_disruption,
        enable_node_groups,
        enable_proportional,
        enable_event_scaler,
    } = loops;
    for (enabled, flag) in [
        (enable_provisioning, "--enable-provisioning"),
        (enable_disruption, "--enable-disruption"),
        (enable_node_groups, "--enable-node-groups"),
        (enable_event_scaler, "--enable-event-scaler"),
    ] {
        if enabled {
            bail!("{flag}: this loop is not available in this build of ballast yet");
        }
    }
    check_interruption_queue(interruption_queue.as_deref())?;
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

    #[cfg(feature = "aws")]
    if let Some(queue) = &interruption_queue {
        let metrics = ballast::interruption::InterruptionMetrics::default();
        metrics.register(registry.sub_registry_with_prefix("interruption"));
        let controller = interruption_loop(queue, region.clone(), actuator.clone(), metrics).await?;
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
