//! Cluster Autoscaler's binpacking estimator: how many nodes of one node group's template the pods need,
//! with exactly the predicates of [`solve`](super::solve) (a one-type pool whose nodes are template clones).

use std::sync::Arc;

use crate::{
    api::labels,
    cloud::{CapacityType, InstanceType, Offering},
    model::{DaemonSet, Labels, Pod, Taint},
    resources::Resources,
};

use super::{
    solver::{SolveInput, solve},
    template::{NODES_LIMIT, NodePoolTemplate, PoolInstanceType},
};

/// A node group's template node: what every node it adds looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeGroupTemplate {
    pub name: String,
    /// Labels of a new node (hostname excluded: every clone gets its own).
    pub labels: Labels,
    pub taints: Vec<Taint>,
    pub allocatable: Resources,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Estimate {
    pub nodes: usize,
    /// Keys of the pods the new nodes would host.
    pub scheduled: Vec<String>,
    /// Pods a node of this group cannot host (or that exceed `max_nodes`), with the reason.
    pub unschedulable: Vec<(String, String)>,
}

/// Nodes of `template` needed for `pods`, never more than `max_nodes`. Daemonsets that would run on the
/// template take their share of each node.
pub fn estimate(
    pods: &[Arc<Pod>],
    template: &NodeGroupTemplate,
    daemonsets: &[Arc<DaemonSet>],
    max_nodes: Option<i64>,
) -> Estimate {
    let mut node_labels = template.labels.clone();
    node_labels.remove(labels::HOSTNAME);
    let zone = node_labels.get(labels::ZONE).cloned().unwrap_or_default();
    let capacity_type = node_labels
        .get(labels::CAPACITY_TYPE)
        .and_then(|c| CapacityType::parse(c))
        .unwrap_or(CapacityType::OnDemand);
    let instance_type = InstanceType {
        name: node_labels.get(labels::INSTANCE_TYPE).cloned().unwrap_or_else(|| template.name.clone()),
        capacity: template.allocatable.clone(),
        labels: node_labels
            .into_iter()
            .filter(|(k, _)| k != labels::ZONE && k != labels::CAPACITY_TYPE)
            .collect(),
        offerings: vec![Offering { zone, capacity_type, price: 1.0, available: true }],
    };
    let mut pool = NodePoolTemplate::new(
        &template.name,
        vec![PoolInstanceType {
            allocatable: template.allocatable.clone(),
            instance_type: Arc::new(instance_type),
        }],
    );
    pool.taints = template.taints.clone();
    if let Some(max) = max_nodes {
        pool.limits.insert(NODES_LIMIT.to_string(), max);
    }
    let results = solve(&SolveInput {
        pending: pods.to_vec(),
        pools: vec![pool],
        daemonsets: daemonsets.to_vec(),
        ..SolveInput::default()
    });
    Estimate {
        nodes: results.new_claims.len(),
        scheduled: results.new_claims.iter().flat_map(|c| c.pods.iter().cloned()).collect(),
        unschedulable: results.unschedulable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{LabelSelector, PodAffinityTerm, TaintEffect},
        scheduling::solve_tests::pod,
    };

    const GI: i64 = 1 << 30;

    fn template() -> NodeGroupTemplate {
        NodeGroupTemplate {
            name: "workers".into(),
            labels: [
                (labels::ZONE, "us-east-1a"),
                (labels::INSTANCE_TYPE, "m5.xlarge"),
                ("group", "workers"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            taints: vec![],
            allocatable: Resources::new(3920, 14 * GI).with("pods", 58),
        }
    }

    fn pods(n: usize, cpu: i64, edit: impl Fn(&mut Pod)) -> Vec<Arc<Pod>> {
        (0..n)
            .map(|i| {
                let mut p = pod(&format!("p{i:03}"), cpu);
                p.labels.insert("app".into(), "web".into());
                edit(&mut p);
                Arc::new(p)
            })
            .collect()
    }

    #[test]
    fn packs_pods_onto_template_clones() {
        // 3920m holds three 1-cpu pods: 10 pods need ceil(10 / 3) = 4 nodes.
        let e = estimate(&pods(10, 1000, |_| {}), &template(), &[], None);
        assert_eq!(e.nodes, 4);
        assert_eq!(e.scheduled.len(), 10);
    }

    #[test]
    fn honours_daemonsets_selectors_taints_anti_affinity_and_the_node_cap() {
        let ds = Arc::new(DaemonSet {
            namespace: "kube-system".into(),
            name: "agent".into(),
            template: pod("agent", 1000),
        });
        // 2920m left per node: two 1-cpu pods each.
        assert_eq!(estimate(&pods(10, 1000, |_| {}), &template(), &[ds], None).nodes, 5);
        let e = estimate(
            &pods(2, 100, |p| {
                p.node_selector.insert("group".into(), "other".into());
            }),
            &template(),
            &[],
            None,
        );
        assert_eq!((e.nodes, e.unschedulable.len()), (0, 2));
        let mut tainted = template();
        tainted.taints = vec![Taint { key: "gpu".into(), value: "".into(), effect: TaintEffect::NoSchedule }];
        assert_eq!(estimate(&pods(1, 100, |_| {}), &tainted, &[], None).nodes, 0);
        let anti = |p: &mut Pod| {
            p.affinity.pod_anti.required = vec![PodAffinityTerm {
                selector: Some(LabelSelector {
                    match_labels: [("app".to_string(), "web".to_string())].into(),
                    match_expressions: vec![],
                }),
                topology_key: labels::HOSTNAME.into(),
                ..Default::default()
            }]
        };
        assert_eq!(estimate(&pods(5, 100, anti), &template(), &[], None).nodes, 5);
        let capped = estimate(&pods(10, 1000, |_| {}), &template(), &[], Some(2));
        assert_eq!((capped.nodes, capped.scheduled.len(), capped.unschedulable.len()), (2, 6, 4));
    }
}
