//! Scale targets in cluster-proportional-autoscaler's `kind/name[,kind/name…]` form.

use std::{fmt, str::FromStr};

use crate::actuator::ScaleTarget;

/// Workload kinds with a `/scale` subresource that proportional scaling writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetKind {
    Deployment,
    ReplicaSet,
    StatefulSet,
    ReplicationController,
}

impl TargetKind {
    /// The lower-case name used in target lists and in [`ScaleTarget::kind`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::ReplicaSet => "replicaset",
            Self::StatefulSet => "statefulset",
            Self::ReplicationController => "replicationcontroller",
        }
    }

    /// The kind named `name` in lower case, as in target lists.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "deployment" => Self::Deployment,
            "replicaset" => Self::ReplicaSet,
            "statefulset" => Self::StatefulSet,
            "replicationcontroller" => Self::ReplicationController,
            _ => return None,
        })
    }

    /// `(apiVersion, Kind)` of the workload, for Events about it.
    pub fn api_version_and_kind(self) -> (&'static str, &'static str) {
        match self {
            Self::Deployment => ("apps/v1", "Deployment"),
            Self::ReplicaSet => ("apps/v1", "ReplicaSet"),
            Self::StatefulSet => ("apps/v1", "StatefulSet"),
            Self::ReplicationController => ("v1", "ReplicationController"),
        }
    }
}

/// `kind/name` of a workload; its namespace comes from where the reference was given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetRef {
    pub kind: TargetKind,
    pub name: String,
}

impl TargetRef {
    pub fn in_namespace(&self, namespace: &str) -> ScaleTarget {
        ScaleTarget {
            kind: self.kind.as_str().to_string(),
            namespace: namespace.to_string(),
            name: self.name.clone(),
        }
    }
}

impl fmt::Display for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// Why a target reference did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("target {0:?} is not of the form kind/name")]
    NotKindSlashName(String),
    #[error(
        "target {0:?} has an unsupported kind; expected deployment, replicaset, statefulset or \
         replicationcontroller"
    )]
    UnsupportedKind(String),
    #[error("the target list is empty")]
    Empty,
}

impl FromStr for TargetRef {
    type Err = TargetError;

    /// Kinds are case-insensitive, as in CPA, which lower-cases the whole `--target`. Names are kept as given:
    /// Kubernetes names are already lower case, so a mixed-case name is a typo the API server will report.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (kind, name) = s.split_once('/').ok_or_else(|| TargetError::NotKindSlashName(s.to_string()))?;
        if name.is_empty() || name.contains('/') {
            return Err(TargetError::NotKindSlashName(s.to_string()));
        }
        let kind = TargetKind::from_name(&kind.to_ascii_lowercase())
            .ok_or_else(|| TargetError::UnsupportedKind(s.to_string()))?;
        Ok(Self { kind, name: name.to_string() })
    }
}

/// Parses a comma-separated, non-empty list such as `deployment/coredns, statefulset/registry`.
pub fn parse_target_list(list: &str) -> Result<Vec<TargetRef>, TargetError> {
    let targets = list
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(TargetRef::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err(TargetError::Empty);
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_case_insensitively() {
        let targets =
            parse_target_list("deployment/coredns, ReplicaSet/rs,statefulset/db,replicationcontroller/rc")
                .unwrap();
        let kinds: Vec<_> = targets.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                TargetKind::Deployment,
                TargetKind::ReplicaSet,
                TargetKind::StatefulSet,
                TargetKind::ReplicationController
            ]
        );
        assert_eq!(targets[0].to_string(), "deployment/coredns");
        let scale = targets[2].in_namespace("kube-system");
        assert_eq!(
            (scale.kind.as_str(), scale.namespace.as_str(), scale.name.as_str()),
            ("statefulset", "kube-system", "db")
        );
    }

    #[test]
    fn rejects_bad_targets() {
        assert_eq!(parse_target_list("daemonset/x"), Err(TargetError::UnsupportedKind("daemonset/x".into())));
        assert_eq!(parse_target_list("coredns"), Err(TargetError::NotKindSlashName("coredns".into())));
        assert_eq!(
            parse_target_list("deployment/"),
            Err(TargetError::NotKindSlashName("deployment/".into()))
        );
        assert_eq!(
            parse_target_list("deployment/a/b"),
            Err(TargetError::NotKindSlashName("deployment/a/b".into()))
        );
        assert_eq!(parse_target_list(" , "), Err(TargetError::Empty));
    }
}
