//! `--proportional-*` flags, after cluster-proportional-autoscaler's own, for users moving one CPA deployment.

use std::{collections::BTreeMap, str::FromStr, time::Duration};

use super::{params::DefaultParams, targets::TargetRef};
use crate::model::Labels;

#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ProportionalArgs {
    /// A params ConfigMap in `--proportional-namespace` that scales `--proportional-target` (CPA's
    /// `--configmap`). ConfigMaps annotated `ballast.dev/proportional-target` need no flag.
    #[arg(long = "proportional-configmap", env = "BALLAST_PROPORTIONAL_CONFIGMAP", requires = "targets")]
    pub config_map: Option<String>,

    /// Comma-separated `kind/name` workloads that `--proportional-configmap` scales (CPA's `--target`); kinds
    /// deployment, replicaset, statefulset, replicationcontroller.
    #[arg(
        long = "proportional-target",
        env = "BALLAST_PROPORTIONAL_TARGET",
        value_delimiter = ',',
        requires = "config_map"
    )]
    pub targets: Vec<TargetRef>,

    /// `{"linear": {…}}` or `{"ladder": {…}}`: creates `--proportional-configmap` with these params when it is
    /// missing; never overwrites it (CPA's `--default-params`).
    #[arg(
        long = "proportional-default-params",
        env = "BALLAST_PROPORTIONAL_DEFAULT_PARAMS",
        requires = "config_map"
    )]
    pub default_params: Option<DefaultParams>,

    /// Namespace of `--proportional-configmap` and its targets (CPA's `--namespace`).
    #[arg(
        long = "proportional-namespace",
        env = "BALLAST_PROPORTIONAL_NAMESPACE",
        default_value = "kube-system"
    )]
    pub namespace: String,

    /// `key=value[,key=value…]`: only nodes with all these labels count (CPA's `--nodelabels`).
    #[arg(long = "proportional-node-labels", env = "BALLAST_PROPORTIONAL_NODE_LABELS", default_value = "")]
    pub node_labels: NodeLabels,

    /// Recompute at least this often, in seconds, besides on every node change (CPA's `--poll-period-seconds`).
    #[arg(
        long = "proportional-poll-period-seconds",
        env = "BALLAST_PROPORTIONAL_POLL_PERIOD_SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub poll_period_seconds: u64,
}

/// The flags' defaults: no flag ConfigMap, only annotated ConfigMaps (for the simulator and tests).
impl Default for ProportionalArgs {
    fn default() -> Self {
        Self {
            config_map: None,
            targets: Vec::new(),
            default_params: None,
            namespace: "kube-system".to_string(),
            node_labels: NodeLabels::default(),
            poll_period_seconds: 10,
        }
    }
}

impl ProportionalArgs {
    pub fn poll_period(&self) -> Duration {
        Duration::from_secs(self.poll_period_seconds)
    }
}

/// An equality-only node label selector; empty selects every node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeLabels(pub Labels);

impl NodeLabels {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|(key, value)| labels.get(key) == Some(value))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node label {0:?} is not of the form key=value")]
pub struct NodeLabelError(String);

impl FromStr for NodeLabels {
    type Err = NodeLabelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut labels = BTreeMap::new();
        for pair in s.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    labels.insert(key.trim().to_string(), value.trim().to_string());
                }
                _ => return Err(NodeLabelError(pair.to_string())),
            }
        }
        Ok(Self(labels))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::proportional::targets::TargetKind;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        proportional: ProportionalArgs,
    }

    #[test]
    fn defaults_match_cpa() {
        let args = Cli::try_parse_from(["ballast"]).unwrap().proportional;
        assert_eq!(args, ProportionalArgs::default());
        assert_eq!(args.poll_period(), Duration::from_secs(10));
        assert_eq!(args.config_map, None);
        assert!(args.targets.is_empty());
        assert_eq!(args.node_labels, NodeLabels::default());
    }

    #[test]
    fn parses_cpa_style_flags() {
        let args = Cli::try_parse_from([
            "ballast",
            "--proportional-configmap=dns-autoscaler",
            "--proportional-target=deployment/coredns,statefulset/cache",
            r#"--proportional-default-params={"linear":{"nodesPerReplica":16}}"#,
            "--proportional-namespace=dns",
            "--proportional-node-labels=pool=general, arch=arm64",
            "--proportional-poll-period-seconds=30",
        ])
        .unwrap()
        .proportional;
        assert_eq!(args.config_map.as_deref(), Some("dns-autoscaler"));
        assert_eq!(
            args.targets,
            [
                TargetRef { kind: TargetKind::Deployment, name: "coredns".into() },
                TargetRef { kind: TargetKind::StatefulSet, name: "cache".into() }
            ]
        );
        assert_eq!(args.default_params.as_ref().unwrap().data["linear"], r#"{"nodesPerReplica":16}"#);
        assert_eq!(args.namespace, "dns");
        assert_eq!(
            args.node_labels.0,
            Labels::from([("arch".into(), "arm64".into()), ("pool".into(), "general".into())])
        );
        assert_eq!(args.poll_period(), Duration::from_secs(30));
    }

    #[test]
    fn rejects_bad_flags() {
        for bad in [
            vec!["--proportional-configmap=x", "--proportional-target=daemonset/x"],
            vec![
                "--proportional-configmap=x",
                "--proportional-target=deployment/x",
                "--proportional-default-params={}",
            ],
            vec!["--proportional-configmap=x"],
            vec!["--proportional-target=deployment/x"],
            vec!["--proportional-node-labels=novalue"],
            vec!["--proportional-poll-period-seconds=0"],
        ] {
            let argv = std::iter::once("ballast").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn node_labels_match_all_pairs() {
        let selector: NodeLabels = "a=1,b=2".parse().unwrap();
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert!(selector.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(!selector.matches(&labels(&[("a", "1")])));
        assert!(NodeLabels::default().matches(&labels(&[])));
    }
}
