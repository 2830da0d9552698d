//! Topology bookkeeping shared by spread constraints and pod (anti-)affinity: groups of pods selected by
//! one (namespaces, selector) pair, counted per value ("domain") of one topology key.
//!
//! Every term of every pending pod, and every required anti-affinity term of a running pod, becomes one
//! [`TermGroup`]. `members` counts pods the selector matches; `owners` counts pods that carry the group as
//! a required anti-affinity term, so a pod matching it is kept out of those domains (the symmetric rule).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{LabelSelector, Labels, PodAffinityTerm, Taint, Toleration, WhenUnsatisfiable};

use super::{requirements::Requirements, selectors, taints::first_untolerated};

/// Which namespaces a term looks at: `names`, plus every namespace whose labels match `selector`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamespaceScope {
    pub names: BTreeSet<String>,
    pub selector: Option<LabelSelector>,
}

impl NamespaceScope {
    pub fn only(namespace: &str) -> Self {
        Self { names: [namespace.to_string()].into(), selector: None }
    }

    /// A pod affinity term's scope; with neither names nor selector it is the owning pod's namespace.
    pub fn of_term(term: &PodAffinityTerm, owner_namespace: &str) -> Self {
        if term.namespaces.is_empty() && term.namespace_selector.is_none() {
            return Self::only(owner_namespace);
        }
        Self { names: term.namespaces.iter().cloned().collect(), selector: term.namespace_selector.clone() }
    }

    pub fn contains(&self, namespace: &str, namespace_labels: &BTreeMap<String, Labels>) -> bool {
        self.names.contains(namespace)
            || self.selector.as_ref().is_some_and(|s| {
                let empty = Labels::new();
                selectors::matches(s, namespace_labels.get(namespace).unwrap_or(&empty))
            })
    }
}

/// Which nodes' pods a topology spread counts: with `nodeAffinityPolicy: Honor` only nodes matching the
/// pod's nodeSelector and required node affinity, with `nodeTaintsPolicy: Honor` only nodes whose taints the
/// pod tolerates (as the kube-scheduler counts). The default admits every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NodeFilter {
    /// ORed alternatives a node must match; `None` when the policy is Ignore or the pod has no requirement.
    pub affinity: Option<Vec<Requirements>>,
    /// `None` when the policy is Ignore.
    pub tolerations: Option<Vec<Toleration>>,
}

impl NodeFilter {
    /// True when a registered node with these labels and taints counts.
    pub fn admits_node(&self, labels: &Labels, taints: &[Taint]) -> bool {
        self.affinity.as_ref().is_none_or(|alts| alts.iter().any(|a| a.matches(labels)))
            && self.tolerates(taints)
    }

    /// True when a planned node with these requirements (its labels as far as decided) and taints counts.
    pub fn admits_planned(&self, requirements: &Requirements, taints: &[Taint]) -> bool {
        self.affinity
            .as_ref()
            .is_none_or(|alts| alts.iter().any(|a| a.conflict_with_node(requirements).is_none()))
            && self.tolerates(taints)
    }

    fn tolerates(&self, taints: &[Taint]) -> bool {
        self.tolerations.as_ref().is_none_or(|t| first_untolerated(t, taints, false).is_none())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pub topology_key: String,
    pub scope: NamespaceScope,
    /// `None` selects no pods (a nil selector in Kubernetes).
    pub selector: Option<LabelSelector>,
    /// Nodes whose pods count (spread inclusion policies); pod (anti-)affinity counts every node.
    pub nodes: NodeFilter,
}

#[derive(Debug, Clone)]
pub struct TermGroup {
    pub key: GroupKey,
    members: BTreeMap<String, i64>,
    total: i64,
    owners: BTreeMap<String, i64>,
}

impl TermGroup {
    pub fn selects(&self, namespace: &str, labels: &Labels, ns_labels: &BTreeMap<String, Labels>) -> bool {
        self.key.selector.as_ref().is_some_and(|s| selectors::matches(s, labels))
            && self.key.scope.contains(namespace, ns_labels)
    }

    pub fn members_in(&self, domain: &str) -> i64 {
        self.members.get(domain).copied().unwrap_or(0)
    }

    pub fn total(&self) -> i64 {
        self.total
    }

    pub fn owners_in(&self, domain: &str) -> i64 {
        self.owners.get(domain).copied().unwrap_or(0)
    }

    pub fn has_owners(&self) -> bool {
        !self.owners.is_empty()
    }

    pub fn add_members(&mut self, domain: &str, count: i64) {
        *self.members.entry(domain.to_string()).or_default() += count;
        self.total += count;
    }

    pub fn add_owners(&mut self, domain: &str, count: i64) {
        *self.owners.entry(domain.to_string()).or_default() += count;
    }
}

/// Interned groups, so identical terms from many pods share one count.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    pub list: Vec<TermGroup>,
    index: HashMap<GroupKey, usize>,
}

impl Groups {
    pub fn intern(&mut self, key: GroupKey) -> usize {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = self.list.len();
        self.index.insert(key.clone(), i);
        self.list.push(TermGroup { key, members: BTreeMap::new(), total: 0, owners: BTreeMap::new() });
        i
    }
}

/// One topology spread constraint of a pod, resolved against the cluster's domains.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub group: usize,
    pub max_skew: i64,
    pub min_domains: Option<i64>,
    pub when_unsatisfiable: WhenUnsatisfiable,
    /// Domains eligible under the node affinity and taint policies, from existing nodes and pools.
    pub domains: BTreeSet<String>,
    /// A new node is its own, empty domain (hostname spread with a pool able to launch for the pod).
    pub fresh_domains: bool,
}

impl Spread {
    /// True when one more pod in `domain` keeps the skew within `max_skew`. Nodes without the key are not
    /// eligible, as in the kube-scheduler.
    pub fn allows(&self, groups: &Groups, domain: Option<&str>) -> bool {
        let Some(domain) = domain else { return false };
        let g = &groups.list[self.group];
        let below_min_domains =
            self.min_domains.is_some_and(|m| !self.fresh_domains && (self.domains.len() as i64) < m);
        let global_min = if self.fresh_domains || below_min_domains {
            0
        } else {
            self.domains.iter().map(|d| g.members_in(d)).min().unwrap_or(0)
        };
        g.members_in(domain) + 1 - global_min <= self.max_skew
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_key(key: &str) -> GroupKey {
        GroupKey {
            topology_key: key.into(),
            scope: NamespaceScope::only("default"),
            selector: Some(LabelSelector {
                match_labels: [("app".to_string(), "web".to_string())].into(),
                match_expressions: vec![],
            }),
            nodes: NodeFilter::default(),
        }
    }

    #[test]
    fn identical_terms_share_one_group() {
        let mut groups = Groups::default();
        let a = groups.intern(group_key("zone"));
        let b = groups.intern(group_key("zone"));
        let c = groups.intern(group_key("host"));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn spread_skew_uses_the_minimum_over_eligible_domains() {
        let mut groups = Groups::default();
        let g = groups.intern(group_key("zone"));
        groups.list[g].add_members("a", 2);
        groups.list[g].add_members("b", 1);
        let spread = Spread {
            group: g,
            max_skew: 1,
            min_domains: None,
            when_unsatisfiable: WhenUnsatisfiable::DoNotSchedule,
            domains: ["a".to_string(), "b".to_string(), "c".to_string()].into(),
            fresh_domains: false,
        };
        assert!(spread.allows(&groups, Some("c")));
        assert!(!spread.allows(&groups, Some("b")), "1 + 1 - 0 > 1 while c is empty");
        assert!(!spread.allows(&groups, None), "a node without the key is not eligible");
        groups.list[g].add_members("c", 1);
        assert!(spread.allows(&groups, Some("b")));
        assert!(!spread.allows(&groups, Some("a")));
        let with_min = Spread { min_domains: Some(4), ..spread.clone() };
        assert!(!with_min.allows(&groups, Some("b")), "fewer domains than minDomains: global minimum is 0");
    }

    #[test]
    fn namespace_scope_defaults_to_the_owner_and_honours_selectors() {
        let term = PodAffinityTerm { topology_key: "zone".into(), ..Default::default() };
        let ns_labels: BTreeMap<String, Labels> =
            [("prod".to_string(), [("env".to_string(), "prod".to_string())].into())].into();
        assert!(NamespaceScope::of_term(&term, "a").contains("a", &ns_labels));
        assert!(!NamespaceScope::of_term(&term, "a").contains("b", &ns_labels));
        let sel = PodAffinityTerm {
            namespace_selector: Some(LabelSelector {
                match_labels: [("env".to_string(), "prod".to_string())].into(),
                match_expressions: vec![],
            }),
            ..term.clone()
        };
        assert!(NamespaceScope::of_term(&sel, "a").contains("prod", &ns_labels));
        assert!(!NamespaceScope::of_term(&sel, "a").contains("a", &ns_labels));
        let all = PodAffinityTerm { namespace_selector: Some(LabelSelector::default()), ..term };
        assert!(NamespaceScope::of_term(&all, "a").contains("anything", &ns_labels));
    }
}
