//! The params ConfigMap: exactly one key, `linear` or `ladder`, whose value is the controller's JSON.

use std::{collections::BTreeMap, str::FromStr};

use serde::Serialize;

use super::{ladder::LadderParams, linear::LinearParams, status::ClusterStatus};

pub const LINEAR: &str = "linear";
pub const LADDER: &str = "ladder";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Params {
    Linear(LinearParams),
    Ladder(LadderParams),
}

impl Params {
    pub fn replicas(&self, status: &ClusterStatus) -> i32 {
        match self {
            Self::Linear(params) => params.replicas(status),
            Self::Ladder(params) => params.replicas(status),
        }
    }

    /// Parses a ConfigMap's `data`, as CPA does on every change of its resourceVersion.
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Self, ParamsProblem> {
        let mut keys = data.keys();
        let (Some(key), None) = (keys.next(), keys.next()) else {
            return Err(if data.is_empty() {
                ParamsProblem::NoKey
            } else {
                ParamsProblem::TooManyKeys(data.keys().cloned().collect())
            });
        };
        match key.as_str() {
            LINEAR => LinearParams::parse(&data[key]).map(Self::Linear),
            LADDER => LadderParams::parse(&data[key]).map(Self::Ladder),
            _ => Err(ParamsProblem::UnknownKey(key.clone())),
        }
    }
}

/// What is wrong with a params ConfigMap; the caller names the ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsProblem {
    #[error("it has no data; expected exactly one key, `linear` or `ladder`")]
    NoKey,
    #[error("it has keys {0:?}; expected exactly one, `linear` or `ladder`")]
    TooManyKeys(Vec<String>),
    #[error("key {0:?} is neither `linear` nor `ladder`")]
    UnknownKey(String),
    #[error("`{key}` is not valid JSON for its params: {message}")]
    InvalidJson { key: &'static str, message: String },
    #[error("{field} must not be negative, got {value}")]
    Negative { field: &'static str, value: String },
    #[error("max ({max}) must be 0 (unbounded) or at least min ({min})")]
    MaxBelowMin { min: i32, max: i32 },
    #[error("coresPerReplica and nodesPerReplica are both 0; set at least one")]
    NoPerReplica,
    #[error("{field}[{index}] has {len} numbers; each entry must be a [threshold, replicas] pair")]
    NotPair { field: &'static str, index: usize, len: usize },
    #[error("{field}[{index}] = [{threshold}, {replicas}] must not be negative")]
    NegativeStep { field: &'static str, index: usize, threshold: i64, replicas: i64 },
    #[error("{field}[{index}] asks for {replicas} replicas, more than a workload can have")]
    TooManyReplicas { field: &'static str, index: usize, replicas: i64 },
}

impl ParamsProblem {
    pub(crate) fn invalid_json(key: &'static str, error: &serde_json::Error) -> Self {
        Self::InvalidJson { key, message: error.to_string() }
    }
}

/// `--proportional-default-params`: `{"linear": {…}}` or `{"ladder": {…}}`, validated when parsed and written
/// as the ConfigMap's `data` when the ConfigMap does not exist.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultParams {
    /// ConfigMap `data`: the one key and its JSON value as a string.
    pub data: BTreeMap<String, String>,
}

impl FromStr for DefaultParams {
    type Err = ParamsProblem;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(s).map_err(|e| {
            ParamsProblem::InvalidJson { key: "--proportional-default-params", message: e.to_string() }
        })?;
        let data: BTreeMap<String, String> =
            object.iter().map(|(key, value)| (key.clone(), value.to_string())).collect();
        Params::from_data(&data)?;
        Ok(Self { data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_either_key() {
        let linear = Params::from_data(&data(&[("linear", r#"{"nodesPerReplica": 16}"#)])).unwrap();
        assert!(matches!(linear, Params::Linear(LinearParams { min: 1, .. })));
        let ladder = Params::from_data(&data(&[("ladder", r#"{"nodesToReplicas": [[1,1]]}"#)])).unwrap();
        assert!(matches!(ladder, Params::Ladder(_)));
    }

    #[test]
    fn needs_exactly_one_known_key() {
        assert_eq!(Params::from_data(&data(&[])), Err(ParamsProblem::NoKey));
        assert_eq!(
            Params::from_data(&data(&[("ladder", "{}"), ("linear", r#"{"nodesPerReplica": 1}"#)])),
            Err(ParamsProblem::TooManyKeys(vec!["ladder".into(), "linear".into()]))
        );
        assert_eq!(
            Params::from_data(&data(&[("Linear", "{}")])),
            Err(ParamsProblem::UnknownKey("Linear".into()))
        );
    }

    #[test]
    fn problems_read_as_sentences() {
        let problem =
            Params::from_data(&data(&[("linear", r#"{"nodesPerReplica": 1, "min": 4, "max": 2}"#)]));
        assert_eq!(problem.unwrap_err().to_string(), "max (2) must be 0 (unbounded) or at least min (4)");
        let problem = Params::from_data(&data(&[("ladder", r#"{"nodesToReplicas": [[1]]}"#)]));
        assert_eq!(
            problem.unwrap_err().to_string(),
            "nodesToReplicas[0] has 1 numbers; each entry must be a [threshold, replicas] pair"
        );
    }

    #[test]
    fn default_params_are_validated_and_kept_as_config_map_data() {
        let params: DefaultParams =
            r#"{"linear":{"coresPerReplica":256,"nodesPerReplica":16,"preventSinglePointFailure":true}}"#
                .parse()
                .unwrap();
        assert_eq!(
            params.data,
            data(&[(
                "linear",
                r#"{"coresPerReplica":256,"nodesPerReplica":16,"preventSinglePointFailure":true}"#
            )])
        );
        assert_eq!("{}".parse::<DefaultParams>(), Err(ParamsProblem::NoKey));
        assert!(matches!("linear".parse::<DefaultParams>(), Err(ParamsProblem::InvalidJson { .. })));
        assert_eq!(r#"{"linear":{}}"#.parse::<DefaultParams>(), Err(ParamsProblem::NoPerReplica));
    }
}
