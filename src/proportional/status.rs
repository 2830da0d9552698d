//! The node view proportional scaling scales from: counts and allocatable cores of all and of schedulable nodes.

use serde::Serialize;

use crate::{model::Node, resources::CPU};

/// What cluster-proportional-autoscaler's `GetClusterStatus` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    pub total_nodes: i64,
    pub total_cores: i64,
    /// Not cordoned and Ready.
    pub schedulable_nodes: i64,
    pub schedulable_cores: i64,
}

impl ClusterStatus {
    /// Cores are summed in millicores and rounded up once at the end, like CPA's `Quantity.Value()` on the
    /// sum: three nodes of 1930m make 6 cores, not 3 × 2.
    pub fn from_nodes<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> Self {
        let mut sums = Sums::default();
        for node in nodes {
            sums.add(node.allocatable.get(CPU), is_schedulable(node));
        }
        sums.into_status()
    }

    /// `(nodes, cores)` a formula uses: all nodes with `includeUnschedulableNodes`, else schedulable ones.
    pub fn counts(&self, include_unschedulable: bool) -> (i64, i64) {
        if include_unschedulable {
            (self.total_nodes, self.total_cores)
        } else {
            (self.schedulable_nodes, self.schedulable_cores)
        }
    }
}

/// CPA (since v1.10.1): not `spec.unschedulable` and `Ready=True`.
pub fn is_schedulable(node: &Node) -> bool {
    !node.unschedulable && node.ready
}

/// Running sums in millicores, for nodes and for nodes still launching alike.
#[derive(Debug, Default)]
pub(crate) struct Sums {
    total_nodes: i64,
    total_millis: i64,
    schedulable_nodes: i64,
    schedulable_millis: i64,
}

impl Sums {
    pub(crate) fn add(&mut self, cpu_millis: i64, schedulable: bool) {
        self.total_nodes += 1;
        self.total_millis += cpu_millis;
        if schedulable {
            self.schedulable_nodes += 1;
            self.schedulable_millis += cpu_millis;
        }
    }

    pub(crate) fn into_status(self) -> ClusterStatus {
        ClusterStatus {
            total_nodes: self.total_nodes,
            total_cores: ceil_cores(self.total_millis),
            schedulable_nodes: self.schedulable_nodes,
            schedulable_cores: ceil_cores(self.schedulable_millis),
        }
    }
}

fn ceil_cores(millis: i64) -> i64 {
    millis.div_euclid(1000) + i64::from(millis.rem_euclid(1000) != 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::resources::Resources;

    pub(crate) fn mk_node(name: &str, cpu_millis: i64, ready: bool, cordoned: bool) -> Node {
        Node {
            name: name.to_string(),
            provider_id: None,
            labels: Default::default(),
            annotations: Default::default(),
            taints: Vec::new(),
            unschedulable: cordoned,
            capacity: Resources::new(cpu_millis, 8 << 30),
            allocatable: Resources::new(cpu_millis, 7 << 30),
            ready,
            created: Timestamp::UNIX_EPOCH,
            deleting: None,
        }
    }

    #[test]
    fn fractional_cores_are_summed_then_rounded_up() {
        let nodes: Vec<_> = (0..3).map(|i| mk_node(&format!("n{i}"), 1930, true, false)).collect();
        let status = ClusterStatus::from_nodes(&nodes);
        assert_eq!(
            status,
            ClusterStatus { total_nodes: 3, total_cores: 6, schedulable_nodes: 3, schedulable_cores: 6 }
        );
    }

    #[test]
    fn cordoned_and_not_ready_nodes_are_unschedulable() {
        let nodes = [
            mk_node("ready", 4000, true, false),
            mk_node("cordoned", 4000, true, true),
            mk_node("not-ready", 2000, false, false),
        ];
        let status = ClusterStatus::from_nodes(&nodes);
        assert_eq!(
            status,
            ClusterStatus { total_nodes: 3, total_cores: 10, schedulable_nodes: 1, schedulable_cores: 4 }
        );
        assert_eq!(status.counts(false), (1, 4));
        assert_eq!(status.counts(true), (3, 10));
    }
}
