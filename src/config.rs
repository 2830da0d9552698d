//! Command-line flags and environment (clap). Every flag also reads a `BALLAST_*` variable, so the helm chart
//! can pass configuration either way; policy itself lives in CRDs, not flags.

use std::{net::IpAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "ballast", version, about = "One autoscaler for EKS", propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the real loops over a simulated cluster and EC2, in virtual time.
    Simulate(SimulateArgs),
    /// Print ballast's CustomResourceDefinitions as YAML.
    Crds,
    /// Run in a cluster: watch, elect a leader, and run the enabled loops.
    Run(Box<RunArgs>),
    /// Print what each loop would do now, from a snapshot directory or the live cluster, without writing
    /// anything.
    Plan(Box<PlanArgs>),
    /// Convert Karpenter, Cluster Autoscaler, CPA and KEDA objects to ballast's (not implemented yet).
    Convert,
}

impl Command {
    /// The log filter when none is given: a report-printing command keeps stderr for warnings and errors.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Run(_) => "info",
            Command::Simulate(_) | Command::Crds | Command::Plan(_) | Command::Convert => "warn",
        }
    }
}

// === Logging ===

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log filter in `RUST_LOG` syntax, e.g. `info` or `info,ballast::provisioning=debug`. Default: `info`
    /// for `run`, `warn` for the commands whose output is their report (`simulate`, `crds`, …).
    #[arg(long, env = "BALLAST_LOG_LEVEL", default_value = "", hide_default_value = true, global = true)]
    pub log_level: String,
    /// `plain` for people, `json` for log pipelines.
    #[arg(long, env = "BALLAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

// === simulate ===

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Scenario file; without it the embedded default (the seed's Karpenter exercise) runs.
    #[arg(env = "BALLAST_SCENARIO")]
    pub scenario: Option<PathBuf>,
    #[arg(long, env = "BALLAST_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Overrides the scenario's random seed.
    #[arg(long, env = "BALLAST_SEED")]
    pub seed: Option<u64>,
    /// Do not draw a progress bar on stderr.
    #[arg(long, env = "BALLAST_NO_PROGRESS")]
    pub no_progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

// === run ===

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub leader: LeaderArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub loops: LoopArgs,
    #[command(flatten, next_help_heading = "Proportional scaling")]
    pub proportional: crate::proportional::ProportionalArgs,
    #[command(flatten, next_help_heading = "Provisioning")]
    pub provisioning: crate::provisioning::args::ProvisioningArgs,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Kube client")]
pub struct ClientArgs {
    /// Kubeconfig file; without it the in-cluster service account (or `$KUBECONFIG`) is used.
    #[arg(long, env = "BALLAST_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use instead of the current one.
    #[arg(long, env = "BALLAST_KUBE_CONTEXT")]
    pub kube_context: Option<String>,
    /// Sustained kube API requests per second (client-side token bucket).
    #[arg(long, env = "BALLAST_KUBE_API_QPS", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub kube_api_qps: u32,
    /// Requests allowed in a burst above the sustained rate.
    #[arg(long, env = "BALLAST_KUBE_API_BURST", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub kube_api_burst: u32,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Admin server")]
pub struct AdminArgs {
    /// Address the admin server (/metrics, /healthz, /readyz, /log-level) binds to.
    #[arg(long, env = "BALLAST_ADMIN_ADDRESS", default_value = "0.0.0.0")]
    pub admin_address: IpAddr,
    /// Port of the admin server.
    #[arg(long, env = "BALLAST_ADMIN_PORT", default_value_t = 8080)]
    pub admin_port: u16,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Leader election")]
pub struct LeaderArgs {
    /// Elect a leader over a Lease; `false` makes this replica act unconditionally (one replica only!).
    #[arg(long, env = "BALLAST_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// The release namespace, which holds the Lease.
    #[arg(long = "namespace", env = "BALLAST_NAMESPACE", default_value = "kube-system")]
    pub release_namespace: String,
    /// Name of the coordination.k8s.io Lease replicas compete for.
    #[arg(long, env = "BALLAST_LEASE_NAME", default_value = "ballast-leader")]
    pub lease_name: String,
    /// This replica's identity in the Lease: the pod name (downward API `metadata.name`).
    #[arg(long, env = "BALLAST_POD_NAME")]
    pub pod_name: Option<String>,
    /// Seconds a Lease stays valid after its last renewal.
    #[arg(long, env = "BALLAST_LEASE_DURATION_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..))]
    pub lease_duration_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    #[arg(long, env = "BALLAST_LEASE_RENEW_GRACE_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_renew_grace_seconds: u64,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Cluster")]
pub struct ClusterArgs {
    /// EKS cluster name: tags launched instances and discovers subnets, security groups and node groups.
    #[arg(long, env = "BALLAST_CLUSTER_NAME")]
    pub cluster_name: String,
    /// AWS region; without it the AWS default chain (AWS_REGION, instance metadata) decides.
    #[arg(long, env = "BALLAST_REGION")]
    pub region: Option<String>,
    /// SQS queue name or URL receiving spot interruption, rebalance and health events.
    #[arg(long, env = "BALLAST_INTERRUPTION_QUEUE")]
    pub interruption_queue: Option<String>,
}

// === plan ===

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Directory of `kubectl get -o yaml` (or `-o json`) dumps to plan from; without it the live cluster of
    /// the kubeconfig is read (never written).
    #[arg(long, env = "BALLAST_SNAPSHOT")]
    pub snapshot: Option<PathBuf>,
    /// Instance-type catalog file in the simulator's format; default: the bundled EC2 catalog.
    #[arg(long, env = "BALLAST_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Plan as of this time (RFC 3339, e.g. `2026-11-23T12:00:00Z`) for reproducible output; default: now.
    #[arg(long, env = "BALLAST_NOW")]
    pub now: Option<jiff::Timestamp>,
    #[arg(long, env = "BALLAST_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Live mode: give up when the watches have not listed every kind within this many seconds.
    #[arg(long, env = "BALLAST_SYNC_TIMEOUT_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub sync_timeout_seconds: u64,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Which loops to plan; none given plans every loop `plan` supports.
    #[command(flatten)]
    pub loops: LoopArgs,
    #[command(flatten, next_help_heading = "Proportional scaling")]
    pub proportional: crate::proportional::ProportionalArgs,
}

/// One switch per loop; each loop is wired in `app` by the issue that adds it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Loops")]
pub struct LoopArgs {
    /// Launch nodes for pending pods from Provisioners (Karpenter mode).
    #[arg(long, env = "BALLAST_ENABLE_PROVISIONING")]
    pub enable_provisioning: bool,
    /// Remove empty, expired, drifted and consolidatable nodes.
    #[arg(long, env = "BALLAST_ENABLE_DISRUPTION")]
    pub enable_disruption: bool,
    /// Scale existing Auto Scaling groups (Cluster Autoscaler mode).
    #[arg(long, env = "BALLAST_ENABLE_NODE_GROUPS")]
    pub enable_node_groups: bool,
    /// Scale add-ons in proportion to cluster size (cluster-proportional-autoscaler mode).
    #[arg(long, env = "BALLAST_ENABLE_PROPORTIONAL")]
    pub enable_proportional: bool,
    /// Scale workloads on external events (KEDA mode).
    #[arg(long, env = "BALLAST_ENABLE_EVENT_SCALER")]
    pub enable_event_scaler: bool,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    /// The CLI with every `env` binding removed, so tests parse only their arguments whatever the
    /// environment of the test process holds.
    fn env_free(cmd: clap::Command) -> clap::Command {
        cmd.mut_args(|arg| arg.env(None)).mut_subcommands(env_free)
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let matches = env_free(Cli::command()).try_get_matches_from(args)?;
        Cli::from_arg_matches(&matches)
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match parse(args).expect("run arguments parse").command {
            Command::Run(run) => *run,
            other => panic!("expected run, got {other:?}"),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag and positional (but help/version) is settable from a `BALLAST_*` variable.
    #[test]
    fn every_argument_has_a_ballast_env_var() {
        fn check(cmd: &clap::Command, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                match arg.get_env().and_then(|e| e.to_str()) {
                    Some(env) if env.starts_with("BALLAST_") => {}
                    other => missing.push(format!("{} --{id}: {other:?}", cmd.get_name())),
                }
            }
            cmd.get_subcommands().for_each(|sub| check(sub, missing));
        }
        let mut missing = Vec::new();
        check(&Cli::command(), &mut missing);
        assert!(missing.is_empty(), "arguments without a BALLAST_ env var: {missing:?}");
    }

    #[test]
    fn simulate_defaults_and_flags() {
        let Command::Simulate(sim) = parse(&["ballast", "simulate"]).unwrap().command else { panic!() };
        assert_eq!(sim.scenario, None);
        assert_eq!(sim.output, OutputFormat::Text);
        assert_eq!(sim.seed, None);
        assert!(!sim.no_progress);

        let cli =
            parse(&["ballast", "simulate", "s.yaml", "--output", "json", "--seed", "7", "--no-progress"])
                .unwrap();
        let Command::Simulate(sim) = cli.command else { panic!() };
        assert_eq!(sim.scenario, Some(PathBuf::from("s.yaml")));
        assert_eq!(sim.output, OutputFormat::Json);
        assert_eq!(sim.seed, Some(7));
        assert!(sim.no_progress);
    }

    #[test]
    fn bad_values_are_rejected_with_the_flag_name() {
        let err = parse(&["ballast", "simulate", "--output", "yaml"]).unwrap_err().to_string();
        assert!(err.contains("--output") && err.contains("yaml"), "{err}");
        let err = parse(&["ballast", "simulate", "--seed", "many"]).unwrap_err().to_string();
        assert!(err.contains("--seed"), "{err}");
        let err = parse(&["ballast", "--log-format", "xml", "crds"]).unwrap_err().to_string();
        assert!(err.contains("--log-format"), "{err}");
        let err = run_err(&["ballast", "run", "--cluster-name", "c", "--kube-api-qps", "0"]);
        assert!(err.contains("--kube-api-qps"), "{err}");
    }

    fn run_err(args: &[&str]) -> String {
        parse(args).unwrap_err().to_string()
    }

    #[test]
    fn run_defaults() {
        let run = run_args(&["ballast", "run", "--cluster-name", "prod"]);
        assert_eq!(run.cluster.cluster_name, "prod");
        assert_eq!(run.cluster.region, None);
        assert_eq!(run.client.kube_api_qps, 200);
        assert_eq!(run.client.kube_api_burst, 300);
        assert_eq!(run.admin.admin_port, 8080);
        assert!(run.leader.leader_elect);
        assert_eq!(run.leader.lease_name, "ballast-leader");
        assert_eq!(run.leader.lease_duration_seconds, 15);
        let LoopArgs {
            enable_provisioning,
            enable_disruption,
            enable_node_groups,
            enable_proportional,
            enable_event_scaler,
        } = run.loops;
        assert!(
            !(enable_provisioning
                || enable_disruption
                || enable_node_groups
                || enable_proportional
                || enable_event_scaler)
        );
    }

    #[test]
    fn run_requires_a_cluster_name() {
        let err = run_err(&["ballast", "run"]);
        assert!(err.contains("--cluster-name"), "{err}");
    }

    #[test]
    fn run_flags_as_the_chart_passes_them() {
        let run = run_args(&[
            "ballast",
            "run",
            "--cluster-name=prod",
            "--region=eu-west-1",
            "--interruption-queue=prod-interruptions",
            "--namespace=ballast",
            "--pod-name=ballast-7d9f-abcde",
            "--leader-elect=false",
            "--kube-api-qps=50",
            "--kube-api-burst=80",
            "--admin-address=127.0.0.1",
            "--admin-port=9090",
            "--enable-provisioning",
            "--enable-event-scaler",
            "--log-format=json",
        ]);
        assert_eq!(run.cluster.region.as_deref(), Some("eu-west-1"));
        assert_eq!(run.cluster.interruption_queue.as_deref(), Some("prod-interruptions"));
        assert_eq!(run.leader.release_namespace, "ballast");
        assert_eq!(run.leader.pod_name.as_deref(), Some("ballast-7d9f-abcde"));
        assert!(!run.leader.leader_elect);
        assert_eq!((run.client.kube_api_qps, run.client.kube_api_burst), (50, 80));
        assert_eq!(run.admin.admin_address.to_string(), "127.0.0.1");
        assert_eq!(run.admin.admin_port, 9090);
        assert!(run.loops.enable_provisioning && run.loops.enable_event_scaler);
        assert!(!run.loops.enable_disruption);
    }

    #[test]
    fn global_log_flags_work_after_the_subcommand() {
        let cli = parse(&["ballast", "crds", "--log-level", "debug", "--log-format", "json"]).unwrap();
        assert_eq!(cli.log.log_level, "debug");
        assert_eq!(cli.log.log_format, LogFormat::Json);
        assert!(matches!(cli.command, Command::Crds));
    }

    #[test]
    fn plan_flags() {
        let Command::Plan(plan) = parse(&["ballast", "plan"]).unwrap().command else { panic!() };
        assert_eq!((plan.snapshot, plan.catalog, plan.now), (None, None, None));
        assert_eq!(plan.output, OutputFormat::Text);
        assert_eq!(plan.sync_timeout_seconds, 60);

        let cli = parse(&[
            "ballast",
            "plan",
            "--snapshot=dump",
            "--catalog=catalog.yaml",
            "--now=2026-11-23T12:00:00Z",
            "--output=json",
            "--enable-disruption",
            "--proportional-configmap=dns",
            "--proportional-target=deployment/coredns",
        ])
        .unwrap();
        let Command::Plan(plan) = cli.command else { panic!() };
        assert_eq!(plan.snapshot, Some(PathBuf::from("dump")));
        assert_eq!(plan.catalog, Some(PathBuf::from("catalog.yaml")));
        assert_eq!(plan.now.unwrap().to_string(), "2026-11-23T12:00:00Z");
        assert_eq!(plan.output, OutputFormat::Json);
        assert!(plan.loops.enable_disruption && !plan.loops.enable_provisioning);
        assert_eq!(plan.proportional.config_map.as_deref(), Some("dns"));

        let err = parse(&["ballast", "plan", "--now", "noon"]).unwrap_err().to_string();
        assert!(err.contains("--now") && err.contains("noon"), "{err}");
    }

    #[test]
    fn proportional_flags_are_part_of_run() {
        let run = run_args(&[
            "ballast",
            "run",
            "--cluster-name=prod",
            "--enable-proportional",
            "--proportional-configmap=coredns-autoscaler",
            "--proportional-target=deployment/coredns",
        ]);
        assert!(run.loops.enable_proportional);
        assert_eq!(run.proportional.config_map.as_deref(), Some("coredns-autoscaler"));
        assert_eq!(run.proportional.targets.len(), 1);
        assert_eq!(run.leader.release_namespace, "kube-system");
    }
}
