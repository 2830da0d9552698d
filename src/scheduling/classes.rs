//! Pending pods grouped into equivalence classes, and each class's constraints as a list of variants from
//! strictest (every preference treated as required) to most relaxed.
//!
//! Pods of one owner with identical scheduling-relevant fields (labels, requests, selectors, affinity,
//! tolerations, spread, host ports and volume topology) are interchangeable, so the solver decides for the
//! class and places many of its pods at once: 20,000 replicas of one Deployment cost about one pod.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use crate::{
    api::labels,
    model::{
        HostPort, Labels, PersistentVolume, PersistentVolumeClaim, Pod, PodAffinityTerm, StorageClass,
        Toleration, TopologySpreadConstraint, VolumeBindingMode, WhenUnsatisfiable,
    },
    resources::Resources,
};

use super::requirements::{Requirements, and_alternatives, from_terms};

/// PersistentVolumeClaims (keyed `namespace/name`), PersistentVolumes and StorageClasses (keyed by name).
#[derive(Debug, Clone, Default)]
pub struct VolumeTopology {
    pub claims: BTreeMap<String, Arc<PersistentVolumeClaim>>,
    pub volumes: BTreeMap<String, Arc<PersistentVolume>>,
    pub storage_classes: BTreeMap<String, Arc<StorageClass>>,
}

impl VolumeTopology {
    /// Where the pod's volumes let it run, as ORed alternatives (empty: anywhere). A bound claim pins the
    /// pod to its volume's node affinity; an unbound WaitForFirstConsumer claim to the StorageClass's
    /// allowed topologies. `topology.ebs.csi.aws.com/zone` is read as the zone key.
    pub fn alternatives(&self, pod: &Pod) -> Result<Vec<Requirements>, String> {
        let mut out: Vec<Requirements> = Vec::new();
        for name in &pod.pvcs {
            let key = format!("{}/{}", pod.namespace, name);
            let claim =
                self.claims.get(&key).ok_or_else(|| format!("PersistentVolumeClaim {key} not found"))?;
            let terms = match &claim.volume_name {
                Some(pv) => {
                    let volume = self
                        .volumes
                        .get(pv)
                        .ok_or_else(|| format!("PersistentVolume {pv} bound to claim {key} not found"))?;
                    volume.node_affinity.clone()
                }
                None => match claim.storage_class.as_ref().and_then(|sc| self.storage_classes.get(sc)) {
                    Some(sc) if sc.binding_mode == VolumeBindingMode::WaitForFirstConsumer => {
                        sc.allowed_topologies.clone()
                    }
                    _ => Vec::new(),
                },
            };
            let alts = from_terms(&terms).map_err(|e| format!("volume of claim {key}: {e}"))?;
            out = and_alternatives(&out, &alts);
        }
        Ok(out)
    }
}

/// A pod's ORed node requirements: nodeSelector ∩ (one required node affinity term) ∩ volume topology.
pub fn pod_alternatives(pod: &Pod, volumes: &[Requirements]) -> Result<Vec<Requirements>, String> {
    let base = vec![Requirements::from_labels(&pod.node_selector)];
    let terms = from_terms(&pod.affinity.node.required).map_err(|e| e.to_string())?;
    let alts = and_alternatives(&and_alternatives(&base, &terms), volumes);
    Ok(alts.into_iter().filter(|a| a.unsatisfiable_key().is_none()).collect())
}

/// One way of scheduling a class, with some preferences relaxed.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantSpec {
    pub alternatives: Vec<Requirements>,
    pub spreads: Vec<TopologySpreadConstraint>,
    pub affinity: Vec<PodAffinityTerm>,
    pub anti_affinity: Vec<PodAffinityTerm>,
    /// `PreferNoSchedule` taints still block.
    pub strict_prefer_taints: bool,
}

/// Variants from strictest to loosest: preferred pod affinity, then preferred anti-affinity, then preferred
/// node affinity terms are dropped one at a time, lightest first; then `ScheduleAnyway` spreads one at a
/// time; finally `PreferNoSchedule` taints stop blocking. Each is tried only for pods the previous one
/// could not place.
pub fn variant_specs(pod: &Pod, alternatives: &[Requirements]) -> Result<Vec<VariantSpec>, String> {
    let by_weight_desc = |mut v: Vec<(i32, PodAffinityTerm)>| {
        v.sort_by_key(|w| std::cmp::Reverse(w.0));
        v.into_iter().map(|(_, t)| t).collect::<Vec<_>>()
    };
    let pref_aff =
        by_weight_desc(pod.affinity.pod.preferred.iter().map(|w| (w.weight, w.term.clone())).collect());
    let pref_anti =
        by_weight_desc(pod.affinity.pod_anti.preferred.iter().map(|w| (w.weight, w.term.clone())).collect());
    let mut pref_node: Vec<_> = pod.affinity.node.preferred.iter().collect();
    pref_node.sort_by_key(|w| std::cmp::Reverse(w.weight));
    let pref_node: Vec<Requirements> = pref_node
        .iter()
        .map(|w| from_terms(std::slice::from_ref(&w.term)).map(|mut v| v.remove(0)))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let (hard_spreads, soft_spreads): (Vec<_>, Vec<_>) = pod
        .topology_spread
        .iter()
        .cloned()
        .partition(|s| s.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule);

    let build = |aff: usize, anti: usize, node: usize, soft: usize, strict: bool| {
        let mut alternatives = alternatives.to_vec();
        for r in &pref_node[..node] {
            alternatives = alternatives.iter().map(|a| a.intersect(r)).collect();
        }
        alternatives.retain(|a| a.unsatisfiable_key().is_none());
        VariantSpec {
            alternatives,
            spreads: hard_spreads.iter().chain(&soft_spreads[..soft]).cloned().collect(),
            affinity: pod.affinity.pod.required.iter().chain(&pref_aff[..aff]).cloned().collect(),
            anti_affinity: pod.affinity.pod_anti.required.iter().chain(&pref_anti[..anti]).cloned().collect(),
            strict_prefer_taints: strict,
        }
    };
    let (mut aff, mut anti, mut node, mut soft) =
        (pref_aff.len(), pref_anti.len(), pref_node.len(), soft_spreads.len());
    let mut out = vec![build(aff, anti, node, soft, true)];
    while aff > 0 {
        aff -= 1;
        out.push(build(aff, anti, node, soft, true));
    }
    while anti > 0 {
        anti -= 1;
        out.push(build(aff, anti, node, soft, true));
    }
    while node > 0 {
        node -= 1;
        out.push(build(aff, anti, node, soft, true));
    }
    while soft > 0 {
        soft -= 1;
        out.push(build(aff, anti, node, soft, true));
    }
    out.push(build(0, 0, 0, 0, false));
    out.dedup();
    Ok(out)
}

/// The scheduling-relevant fields of a pod; pods with equal signatures are interchangeable.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Signature<'a> {
    namespace: &'a str,
    owner: Option<&'a str>,
    labels: &'a Labels,
    requests: &'a Resources,
    node_selector: &'a Labels,
    affinity: &'a crate::model::Affinity,
    tolerations: &'a [Toleration],
    spread: &'a [TopologySpreadConstraint],
    host_ports: &'a [HostPort],
    volumes: &'a [Requirements],
    priority: i32,
}

/// Groups pod indices into classes of interchangeable pods. Classes come out ordered by priority (highest
/// first), then pods without required pod affinity (so their targets exist), then larger cpu and memory
/// requests (first-fit-decreasing), then the first pod's key; pods within a class by creation time and key.
pub fn equivalence_classes(
    pods: &[Arc<Pod>],
    volumes: &[Result<Vec<Requirements>, String>],
) -> Vec<Vec<usize>> {
    let empty: Vec<Requirements> = Vec::new();
    let mut index: HashMap<Signature<'_>, usize> = HashMap::new();
    let mut classes: Vec<Vec<usize>> = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        let sig = Signature {
            namespace: &pod.namespace,
            owner: pod.owner.as_ref().map(|o| o.uid.as_str()),
            labels: &pod.labels,
            requests: &pod.requests,
            node_selector: &pod.node_selector,
            affinity: &pod.affinity,
            tolerations: &pod.tolerations,
            spread: &pod.topology_spread,
            host_ports: &pod.host_ports,
            volumes: volumes[i].as_ref().unwrap_or(&empty),
            priority: pod.priority,
        };
        // Pods whose volumes cannot be resolved stay alone so each gets its own reason.
        let shareable = volumes[i].is_ok();
        match index.get(&sig) {
            Some(&c) if shareable => classes[c].push(i),
            _ => {
                if shareable {
                    index.insert(sig, classes.len());
                }
                classes.push(vec![i]);
            }
        }
    }
    for class in &mut classes {
        class.sort_by(|&a, &b| {
            pods[a].created.cmp(&pods[b].created).then_with(|| pods[a].key().cmp(&pods[b].key()))
        });
    }
    classes.sort_by_cached_key(|c| {
        let p = &pods[c[0]];
        (
            std::cmp::Reverse(p.priority),
            !p.affinity.pod.required.is_empty(),
            std::cmp::Reverse(p.requests.cpu),
            std::cmp::Reverse(p.requests.memory),
            p.key(),
        )
    });
    classes
}

/// Topology keys a spread or affinity term may use and still be resolved on new nodes.
pub fn is_hostname(key: &str) -> bool {
    key == labels::HOSTNAME
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NodeSelectorTerm, Operator, Requirement, Weighted};

    pub(crate) fn pod(name: &str) -> Pod {
        Pod {
            uid: name.into(),
            unschedulable: true,
            requests: Resources::new(1000, 0),
            ..Pod::test("default", name)
        }
    }

    #[test]
    fn identical_pods_share_a_class_and_different_ones_do_not() {
        let mut a = pod("a");
        let mut b = pod("b");
        let mut c = pod("c");
        c.requests = Resources::new(2000, 0);
        for p in [&mut a, &mut b, &mut c] {
            p.labels.insert("app".into(), "web".into());
        }
        let pods: Vec<Arc<Pod>> = [a, b, c].into_iter().map(Arc::new).collect();
        let vols = vec![Ok(vec![]); 3];
        let classes = equivalence_classes(&pods, &vols);
        assert_eq!(classes, vec![vec![2], vec![0, 1]], "bigger requests first");
    }

    #[test]
    fn preferences_relax_lightest_first_then_soft_spread_then_prefer_no_schedule() {
        let mut p = pod("p");
        let zone_term = |z: &str| NodeSelectorTerm {
            match_expressions: vec![Requirement {
                key: labels::ZONE.into(),
                operator: Operator::In,
                values: vec![z.into()],
            }],
            match_fields: vec![],
        };
        p.affinity.node.preferred =
            vec![Weighted { weight: 1, term: zone_term("a") }, Weighted { weight: 50, term: zone_term("b") }];
        let specs = variant_specs(&p, &[Requirements::new()]).unwrap();
        assert_eq!(specs.len(), 4);
        assert!(specs[0].alternatives.is_empty(), "zone a ∩ zone b is unsatisfiable while both are required");
        let zone = |s: &VariantSpec| s.alternatives[0].get(labels::ZONE).map(|v| v.to_string());
        assert_eq!(zone(&specs[1]).as_deref(), Some("In [b]"), "the lighter preference goes first");
        assert_eq!(zone(&specs[2]), None);
        assert!(specs[2].strict_prefer_taints);
        assert!(!specs[3].strict_prefer_taints);
    }
}
