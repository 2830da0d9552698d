//! One copy of what many pods hold alike. The replicas of a workload carry equal labels, tolerations and
//! scheduling constraints; at 100,000 pods, a copy per pod would be a third of the index. The pod watch interns
//! each converted pod's [`Shared`] fields here, so equal values end up as one allocation.

use std::{collections::HashSet, hash::Hash};

use crate::model::{Affinity, Labels, Pod, Shared, Toleration};

/// Table size below which stale values are not worth a sweep.
const MIN_PRUNE_AT: usize = 1024;

/// Distinct values of one type, each held once.
#[derive(Debug)]
pub struct Interner<T> {
    table: HashSet<Shared<T>>,
    /// Sweep for values no object holds any more when the table reaches this size, so the labels of pods
    /// long gone (every rollout has a new `pod-template-hash`) do not stay forever. Doubling keeps the sweeps
    /// amortised O(1) per value.
    prune_at: usize,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self { table: HashSet::new(), prune_at: MIN_PRUNE_AT }
    }
}

impl<T: Eq + Hash> Interner<T> {
    /// The table's copy of `value` when it holds an equal one, else `value`, which the table keeps from now on.
    pub fn intern(&mut self, value: Shared<T>) -> Shared<T> {
        if let Some(existing) = self.table.get(&*value) {
            return existing.clone();
        }
        if self.table.len() >= self.prune_at {
            self.table.retain(|v| Shared::holders(v) > 1);
            self.prune_at = (2 * self.table.len()).max(MIN_PRUNE_AT);
        }
        self.table.insert(value.clone());
        value
    }

    /// Distinct values held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// Interns the shared fields of pods.
#[derive(Debug, Default)]
pub struct PodInterner {
    labels: Interner<Labels>,
    tolerations: Interner<Vec<Toleration>>,
    affinity: Interner<Affinity>,
}

impl PodInterner {
    /// `pod` with its labels, tolerations and affinity replaced by the interned copies.
    pub fn pod(&mut self, mut pod: Pod) -> Pod {
        pod.labels = self.labels.intern(pod.labels);
        pod.tolerations = self.tolerations.intern(pod.tolerations);
        pod.affinity = self.affinity.intern(pod.affinity);
        pod
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PodAffinityTerm, TolerationOperator};

    fn labels(pairs: &[(&str, &str)]) -> Shared<Labels> {
        Labels::from_iter(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).into()
    }

    fn replica(name: &str) -> Pod {
        Pod {
            labels: labels(&[("app", "web"), ("pod-template-hash", "7d9f")]),
            tolerations: vec![Toleration {
                key: "node.kubernetes.io/not-ready".into(),
                operator: TolerationOperator::Exists,
                ..Toleration::default()
            }]
            .into(),
            ..Pod::test("default", name)
        }
    }

    #[test]
    fn equal_values_of_different_pods_share_one_allocation() {
        let mut interner = PodInterner::default();
        let a = interner.pod(replica("web-0"));
        let b = interner.pod(replica("web-1"));
        assert!(Shared::ptr_eq(&a.labels, &b.labels));
        assert!(Shared::ptr_eq(&a.tolerations, &b.tolerations));
        assert!(Shared::ptr_eq(&a.affinity, &b.affinity));
        assert_eq!(a.labels.get("app").map(String::as_str), Some("web"));

        let other = interner.pod(Pod { labels: labels(&[("app", "db")]), ..replica("db-0") });
        assert!(!Shared::ptr_eq(&a.labels, &other.labels));
        assert!(Shared::ptr_eq(&a.tolerations, &other.tolerations));
        assert_eq!(interner.labels.len(), 2);
    }

    #[test]
    fn changing_one_pods_value_leaves_the_others_alone() {
        let mut interner = PodInterner::default();
        let a = interner.pod(replica("web-0"));
        let mut b = interner.pod(replica("web-1"));
        b.labels.insert("app".into(), "api".into());
        b.tolerations.clear();
        b.affinity.pod_anti.required.push(PodAffinityTerm {
            topology_key: "kubernetes.io/hostname".into(),
            ..PodAffinityTerm::default()
        });

        assert_eq!(a.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(a.tolerations.len(), 1);
        assert!(a.affinity.pod_anti.required.is_empty());
        assert_eq!(b.labels.get("app").map(String::as_str), Some("api"));
        // A third replica still gets the original values, not the changed copy.
        let c = interner.pod(replica("web-2"));
        assert!(Shared::ptr_eq(&a.labels, &c.labels));
        assert_eq!(c.tolerations.len(), 1);
    }

    #[test]
    fn values_no_pod_holds_are_dropped_when_the_table_grows() {
        let mut interner = Interner::<Labels>::default();
        let kept = interner.intern(labels(&[("app", "kept")]));
        for i in 1..MIN_PRUNE_AT {
            // Each pod is gone right away: only the table holds its labels.
            interner.intern(labels(&[("pod-template-hash", &i.to_string())]));
        }
        assert_eq!(interner.len(), MIN_PRUNE_AT);
        interner.intern(labels(&[("app", "new")]));
        // The sweep kept only what a pod still holds, plus the new value.
        assert_eq!(interner.len(), 2);
        assert!(Shared::ptr_eq(&interner.intern(labels(&[("app", "kept")])), &kept));
    }
}
