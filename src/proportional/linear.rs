//! CPA's `linear` controller: replicas proportional to cores and to nodes, whichever is larger.

use serde::{Deserialize, Serialize};

use super::{params::ParamsProblem, status::ClusterStatus};

/// The `linear` ConfigMap value, validated. `min` is at least 1; `max == 0` means unbounded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinearParams {
    pub cores_per_replica: f64,
    pub nodes_per_replica: f64,
    pub min: i32,
    pub max: i32,
    pub prevent_single_point_failure: bool,
    pub include_unschedulable_nodes: bool,
}

/// The JSON as written. Unknown fields are rejected so a misspelt key is reported instead of ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawLinear {
    #[serde(default)]
    cores_per_replica: f64,
    #[serde(default)]
    nodes_per_replica: f64,
    #[serde(default)]
    min: i32,
    #[serde(default)]
    max: i32,
    #[serde(default)]
    prevent_single_point_failure: bool,
    #[serde(default)]
    include_unschedulable_nodes: bool,
}

impl LinearParams {
    pub fn parse(json: &str) -> Result<Self, ParamsProblem> {
        let raw: RawLinear =
            serde_json::from_str(json).map_err(|e| ParamsProblem::invalid_json("linear", &e))?;
        // Checks in CPA's order, so a ConfigMap with several problems reports the same one first.
        if raw.min < 0 {
            return Err(ParamsProblem::Negative { field: "min", value: raw.min.to_string() });
        }
        // Linear never scales to zero: an unset min means 1.
        let min = raw.min.max(1);
        if raw.max != 0 && raw.max < min {
            return Err(ParamsProblem::MaxBelowMin { min, max: raw.max });
        }
        if raw.cores_per_replica == 0.0 && raw.nodes_per_replica == 0.0 {
            return Err(ParamsProblem::NoPerReplica);
        }
        for (field, value) in
            [("coresPerReplica", raw.cores_per_replica), ("nodesPerReplica", raw.nodes_per_replica)]
        {
            if value < 0.0 {
                return Err(ParamsProblem::Negative { field, value: value.to_string() });
            }
        }
        Ok(Self {
            cores_per_replica: raw.cores_per_replica,
            nodes_per_replica: raw.nodes_per_replica,
            min,
            max: raw.max,
            prevent_single_point_failure: raw.prevent_single_point_failure,
            include_unschedulable_nodes: raw.include_unschedulable_nodes,
        })
    }

    pub fn replicas(&self, status: &ClusterStatus) -> i32 {
        let (nodes, cores) = status.counts(self.include_unschedulable_nodes);
        let from_cores = self.replicas_for(cores, self.cores_per_replica);
        let mut from_nodes = self.replicas_for(nodes, self.nodes_per_replica);
        // After the max clamp, as in CPA: `max: 1` with several nodes still gives 2.
        if self.prevent_single_point_failure && nodes > 1 && from_nodes < 2 {
            from_nodes = 2;
        }
        from_cores.max(from_nodes)
    }

    /// A zero per-value disables that input (it yields 1, below any other result).
    fn replicas_for(&self, amount: i64, per_replica: f64) -> i32 {
        if per_replica == 0.0 {
            return 1;
        }
        let mut replicas = (amount as f64 / per_replica).ceil();
        if self.max != 0 {
            replicas = replicas.min(f64::from(self.max));
        }
        // `as` saturates, so an absurd ratio cannot wrap.
        (replicas as i32).max(self.min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(nodes: i64, cores: i64) -> ClusterStatus {
        ClusterStatus {
            total_nodes: nodes,
            total_cores: cores,
            schedulable_nodes: nodes,
            schedulable_cores: cores,
        }
    }

    fn params(json: &str) -> LinearParams {
        LinearParams::parse(json).unwrap()
    }

    #[test]
    fn readme_example_four_nodes_thirteen_cores_gives_seven() {
        let p = params(r#"{"coresPerReplica": 2, "nodesPerReplica": 1, "min": 1, "max": 100}"#);
        assert_eq!(p.replicas(&status(4, 13)), 7);
    }

    #[test]
    fn min_and_max_clamp_each_input() {
        let p = params(r#"{"coresPerReplica": 2, "nodesPerReplica": 1, "min": 3, "max": 5}"#);
        assert_eq!(p.replicas(&status(1, 1)), 3);
        assert_eq!(p.replicas(&status(100, 400)), 5);
        assert_eq!(p.replicas(&status(0, 0)), 3);
    }

    #[test]
    fn max_zero_is_unbounded_and_min_zero_is_one() {
        let p = params(r#"{"nodesPerReplica": 16}"#);
        assert_eq!((p.min, p.max), (1, 0));
        assert_eq!(p.replicas(&status(0, 0)), 1);
        assert_eq!(p.replicas(&status(1000, 0)), 63);
    }

    #[test]
    fn per_values_are_fractions() {
        let p = params(r#"{"coresPerReplica": 0.5}"#);
        assert_eq!(p.replicas(&status(1, 3)), 6);
    }

    #[test]
    fn prevent_single_point_failure_applies_after_max() {
        let p = params(r#"{"nodesPerReplica": 1, "max": 1, "preventSinglePointFailure": true}"#);
        assert_eq!(p.replicas(&status(3, 12)), 2);
        assert_eq!(p.replicas(&status(1, 4)), 1, "one node needs no second replica");
        let without = params(r#"{"nodesPerReplica": 1, "max": 1}"#);
        assert_eq!(without.replicas(&status(3, 12)), 1);
    }

    #[test]
    fn prevent_single_point_failure_counts_nodes_even_when_nodes_per_replica_is_zero() {
        let p = params(r#"{"coresPerReplica": 256, "preventSinglePointFailure": true}"#);
        assert_eq!(p.replicas(&status(2, 8)), 2);
    }

    #[test]
    fn include_unschedulable_nodes_switches_to_totals() {
        let s =
            ClusterStatus { total_nodes: 10, total_cores: 40, schedulable_nodes: 4, schedulable_cores: 16 };
        assert_eq!(params(r#"{"nodesPerReplica": 1}"#).replicas(&s), 4);
        assert_eq!(params(r#"{"nodesPerReplica": 1, "includeUnschedulableNodes": true}"#).replicas(&s), 10);
        assert_eq!(params(r#"{"coresPerReplica": 4, "includeUnschedulableNodes": true}"#).replicas(&s), 10);
    }

    #[test]
    fn parse_errors() {
        let err = |json: &str| LinearParams::parse(json).unwrap_err();
        assert!(matches!(err("{"), ParamsProblem::InvalidJson { key: "linear", .. }));
        assert!(matches!(err(r#"{"coresPerReplicas": 2}"#), ParamsProblem::InvalidJson { .. }));
        assert!(matches!(err(r#"{"min": 1.5, "nodesPerReplica": 1}"#), ParamsProblem::InvalidJson { .. }));
        assert_eq!(
            err(r#"{"coresPerReplica": -1}"#),
            ParamsProblem::Negative { field: "coresPerReplica", value: "-1".into() }
        );
        assert_eq!(
            err(r#"{"nodesPerReplica": -0.5}"#),
            ParamsProblem::Negative { field: "nodesPerReplica", value: "-0.5".into() }
        );
        assert_eq!(
            err(r#"{"nodesPerReplica": 1, "min": -1}"#),
            ParamsProblem::Negative { field: "min", value: "-1".into() }
        );
        assert_eq!(
            err(r#"{"nodesPerReplica": 1, "max": -3}"#),
            ParamsProblem::MaxBelowMin { min: 1, max: -3 }
        );
        assert_eq!(
            err(r#"{"nodesPerReplica": 1, "min": 5, "max": 2}"#),
            ParamsProblem::MaxBelowMin { min: 5, max: 2 }
        );
        assert_eq!(
            err(r#"{"coresPerReplica": 0, "nodesPerReplica": 0, "min": 1}"#),
            ParamsProblem::NoPerReplica
        );
        assert_eq!(err("{}"), ParamsProblem::NoPerReplica);
    }
}
