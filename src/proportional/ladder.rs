//! CPA's `ladder` controller: replicas from step functions of cores and of nodes, whichever is larger.

use serde::{Deserialize, Serialize};

use super::{params::ParamsProblem, status::ClusterStatus};

/// One step: from `threshold` cores (or nodes) on, run `replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Step {
    pub threshold: i64,
    pub replicas: i32,
}

/// The `ladder` ConfigMap value, validated; steps sorted by threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LadderParams {
    pub cores_to_replicas: Vec<Step>,
    pub nodes_to_replicas: Vec<Step>,
    pub include_unschedulable_nodes: bool,
}

/// The JSON as written. Unknown fields are rejected so a misspelt key is reported instead of ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawLadder {
    #[serde(default)]
    cores_to_replicas: Vec<Vec<i64>>,
    #[serde(default)]
    nodes_to_replicas: Vec<Vec<i64>>,
    #[serde(default)]
    include_unschedulable_nodes: bool,
}

impl LadderParams {
    pub fn parse(json: &str) -> Result<Self, ParamsProblem> {
        let raw: RawLadder =
            serde_json::from_str(json).map_err(|e| ParamsProblem::invalid_json("ladder", &e))?;
        Ok(Self {
            cores_to_replicas: steps("coresToReplicas", &raw.cores_to_replicas)?,
            nodes_to_replicas: steps("nodesToReplicas", &raw.nodes_to_replicas)?,
            include_unschedulable_nodes: raw.include_unschedulable_nodes,
        })
    }

    /// May be 0: a `[0, 0]` first step keeps an add-on off until the cluster grows.
    pub fn replicas(&self, status: &ClusterStatus) -> i32 {
        let (nodes, cores) = status.counts(self.include_unschedulable_nodes);
        step_for(&self.cores_to_replicas, cores).max(step_for(&self.nodes_to_replicas, nodes))
    }
}

fn steps(field: &'static str, entries: &[Vec<i64>]) -> Result<Vec<Step>, ParamsProblem> {
    let mut steps = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let &[threshold, replicas] = entry.as_slice() else {
                return Err(ParamsProblem::NotPair { field, index, len: entry.len() });
            };
            if threshold < 0 || replicas < 0 {
                return Err(ParamsProblem::NegativeStep { field, index, threshold, replicas });
            }
            let replicas = i32::try_from(replicas).map_err(|_| ParamsProblem::TooManyReplicas {
                field,
                index,
                replicas,
            })?;
            Ok(Step { threshold, replicas })
        })
        .collect::<Result<Vec<_>, _>>()?;
    steps.sort_by_key(|step| step.threshold);
    Ok(steps)
}

/// The step with the largest threshold ≤ `value`; below the first threshold, the first step; no steps, 0.
fn step_for(steps: &[Step], value: i64) -> i32 {
    let above = steps.partition_point(|step| step.threshold <= value);
    steps.get(above.saturating_sub(1)).map_or(0, |step| step.replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: i64) -> ClusterStatus {
        ClusterStatus { total_nodes: n, total_cores: 0, schedulable_nodes: n, schedulable_cores: 0 }
    }

    #[test]
    fn seed_ladder_follows_the_node_count() {
        let p = LadderParams::parse(r#"{"nodesToReplicas": [[1,1],[2,2],[3,3],[4,3],[5,5]]}"#).unwrap();
        let got: Vec<_> = [1, 2, 3, 4, 5, 6, 0].into_iter().map(|n| (n, p.replicas(&nodes(n)))).collect();
        assert_eq!(got, [(1, 1), (2, 2), (3, 3), (4, 3), (5, 5), (6, 5), (0, 1)]);
    }

    #[test]
    fn readme_example_hundred_nodes_four_hundred_cores_gives_three() {
        let p = LadderParams::parse(
            r#"{"coresToReplicas": [[1,1],[64,3],[512,5],[1024,7],[2048,10],[4096,15]],
                "nodesToReplicas": [[1,1],[2,2]]}"#,
        )
        .unwrap();
        let status = ClusterStatus {
            total_nodes: 100,
            total_cores: 400,
            schedulable_nodes: 100,
            schedulable_cores: 400,
        };
        assert_eq!(p.replicas(&status), 3);
    }

    #[test]
    fn unsorted_steps_are_sorted_and_zero_is_allowed() {
        let p = LadderParams::parse(r#"{"nodesToReplicas": [[6,1],[0,0]]}"#).unwrap();
        assert_eq!(p.nodes_to_replicas[0], Step { threshold: 0, replicas: 0 });
        assert_eq!(p.replicas(&nodes(5)), 0);
        assert_eq!(p.replicas(&nodes(6)), 1);
    }

    #[test]
    fn empty_ladder_gives_zero() {
        assert_eq!(LadderParams::parse("{}").unwrap().replicas(&nodes(10)), 0);
    }

    #[test]
    fn include_unschedulable_nodes_switches_to_totals() {
        let s = ClusterStatus { total_nodes: 5, total_cores: 20, schedulable_nodes: 2, schedulable_cores: 8 };
        let ladder = r#""nodesToReplicas": [[1,1],[2,2],[5,5]], "coresToReplicas": [[1,1],[20,4]]"#;
        assert_eq!(LadderParams::parse(&format!("{{{ladder}}}")).unwrap().replicas(&s), 2);
        let total = format!(r#"{{{ladder}, "includeUnschedulableNodes": true}}"#);
        assert_eq!(LadderParams::parse(&total).unwrap().replicas(&s), 5);
    }

    #[test]
    fn parse_errors() {
        let err = |json: &str| LadderParams::parse(json).unwrap_err();
        assert!(matches!(err("[1]"), ParamsProblem::InvalidJson { key: "ladder", .. }));
        assert!(matches!(err(r#"{"nodesToReplica": [[1,1]]}"#), ParamsProblem::InvalidJson { .. }));
        assert!(matches!(err(r#"{"nodesToReplicas": [[1.5,1]]}"#), ParamsProblem::InvalidJson { .. }));
        assert_eq!(
            err(r#"{"nodesToReplicas": [[1,1],[2]]}"#),
            ParamsProblem::NotPair { field: "nodesToReplicas", index: 1, len: 1 }
        );
        assert_eq!(
            err(r#"{"coresToReplicas": [[1,1,1]]}"#),
            ParamsProblem::NotPair { field: "coresToReplicas", index: 0, len: 3 }
        );
        assert_eq!(
            err(r#"{"coresToReplicas": [[-1,1]]}"#),
            ParamsProblem::NegativeStep { field: "coresToReplicas", index: 0, threshold: -1, replicas: 1 }
        );
        assert_eq!(
            err(r#"{"nodesToReplicas": [[1,1],[4,-2]]}"#),
            ParamsProblem::NegativeStep { field: "nodesToReplicas", index: 1, threshold: 4, replicas: -2 }
        );
        assert_eq!(
            err(r#"{"nodesToReplicas": [[1,4294967296]]}"#),
            ParamsProblem::TooManyReplicas { field: "nodesToReplicas", index: 0, replicas: 4294967296 }
        );
    }
}
