//! Node requirements as a set algebra: for each label key, the set of values a node may carry.
//!
//! A [`ValueSet`] is either a finite set (`In`), a complement (`NotIn`, `Exists`), optionally bounded by
//! integer limits (`Gt`, `Lt`), and says whether a node *without* the label qualifies (`NotIn`,
//! `DoesNotExist`). Intersecting the sets of a pod, a Provisioner and a volume gives what a new node may be;
//! matching a set against a node's labels says whether an existing node qualifies.

use std::{collections::BTreeMap, collections::BTreeSet, fmt, sync::Arc};

use crate::{
    api::labels,
    cloud::CapacityType,
    model::{Labels, NodeSelectorTerm, Operator, Requirement},
};

use super::Error;

/// The values allowed for one label key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ValueSet {
    /// When true, `values` are the *excluded* values and every other value is allowed.
    complement: bool,
    /// Shared: pools and claims copy requirements often and rarely change most keys.
    values: Arc<BTreeSet<String>>,
    /// Exclusive integer bounds from `Gt` / `Lt`; a value must parse as an integer when either is set.
    greater_than: Option<i64>,
    less_than: Option<i64>,
    /// A node without this label qualifies.
    absent_ok: bool,
}

impl ValueSet {
    /// Any value, or no label at all: the identity of intersection.
    pub fn any() -> Self {
        Self {
            complement: true,
            values: Arc::default(),
            greater_than: None,
            less_than: None,
            absent_ok: true,
        }
    }

    pub fn one_of<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> Self {
        Self {
            complement: false,
            values: Arc::new(values.into_iter().map(Into::into).collect()),
            greater_than: None,
            less_than: None,
            absent_ok: false,
        }
    }

    pub fn exists() -> Self {
        Self { absent_ok: false, ..Self::any() }
    }

    pub fn absent() -> Self {
        Self { absent_ok: true, ..Self::one_of(Vec::<String>::new()) }
    }

    pub fn not_in<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> Self {
        Self { values: Arc::new(values.into_iter().map(Into::into).collect()), ..Self::any() }
    }

    /// Builds the set for `key op values`, rejecting malformed `Gt`/`Lt` values and empty `In`.
    pub fn from_clause(key: &str, op: Operator, values: &[String]) -> Result<Self, Error> {
        let bad = |reason: String| Error::InvalidRequirement { key: key.to_string(), reason };
        let bound = |values: &[String]| -> Result<i64, Error> {
            match values {
                [v] => {
                    v.trim().parse::<i64>().map_err(|_| bad(format!("{op:?} value {v:?} is not an integer")))
                }
                _ => Err(bad(format!("{op:?} needs exactly one value, got {}", values.len()))),
            }
        };
        Ok(match op {
            Operator::In if values.is_empty() => return Err(bad("In needs at least one value".into())),
            Operator::In => Self::one_of(values.iter().cloned()),
            Operator::NotIn => Self::not_in(values.iter().cloned()),
            Operator::Exists => Self::exists(),
            Operator::DoesNotExist => Self::absent(),
            Operator::Gt => Self { greater_than: Some(bound(values)?), ..Self::exists() },
            Operator::Lt => Self { less_than: Some(bound(values)?), ..Self::exists() },
        })
    }

    fn within_bounds(&self, value: &str) -> bool {
        if self.greater_than.is_none() && self.less_than.is_none() {
            return true;
        }
        let Ok(n) = value.parse::<i64>() else { return false };
        self.greater_than.is_none_or(|g| n > g) && self.less_than.is_none_or(|l| n < l)
    }

    /// The same values, or no label at all.
    pub fn with_absent_allowed(self) -> Self {
        Self { absent_ok: true, ..self }
    }

    /// True when a node carrying `value` for this key qualifies.
    pub fn has(&self, value: &str) -> bool {
        self.within_bounds(value) && (self.values.contains(value) != self.complement)
    }

    /// True when a node without this label qualifies.
    pub fn allows_absent(&self) -> bool {
        self.absent_ok
    }

    /// True when some label value qualifies.
    pub fn allows_some_value(&self) -> bool {
        if !self.complement {
            return !self.values.is_empty();
        }
        match (self.greater_than, self.less_than) {
            (Some(g), Some(l)) => {
                let width = l.saturating_sub(g).saturating_sub(1);
                width > 0
                    && (width > self.values.len() as i64 || (g + 1..l).any(|n| self.has(&n.to_string())))
            }
            _ => true,
        }
    }

    /// Nothing qualifies: neither a value nor the label's absence.
    pub fn is_unsatisfiable(&self) -> bool {
        !self.absent_ok && !self.allows_some_value()
    }

    /// The finite set of allowed values, when there is one.
    pub fn finite_values(&self) -> Option<&BTreeSet<String>> {
        (!self.complement).then_some(&self.values)
    }

    /// The only allowed value, when exactly one is allowed and the label must exist.
    pub fn single(&self) -> Option<&str> {
        match self.finite_values() {
            Some(v) if v.len() == 1 && !self.absent_ok => v.first().map(String::as_str),
            _ => None,
        }
    }

    pub fn intersect(&self, other: &Self) -> Self {
        if Arc::ptr_eq(&self.values, &other.values) && self == other {
            return self.clone();
        }
        let greater_than = match (self.greater_than, other.greater_than) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let less_than = match (self.less_than, other.less_than) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let (complement, values): (bool, BTreeSet<String>) = match (self.complement, other.complement) {
            (true, true) => (true, self.values.union(&other.values).cloned().collect()),
            (false, false) => (false, self.values.intersection(&other.values).cloned().collect()),
            (false, true) => (false, self.values.difference(&other.values).cloned().collect()),
            (true, false) => (false, other.values.difference(&self.values).cloned().collect()),
        };
        let mut out = Self {
            complement,
            values: Arc::new(values),
            greater_than,
            less_than,
            absent_ok: self.absent_ok && other.absent_ok,
        };
        if !out.complement && (greater_than.is_some() || less_than.is_some()) {
            let keep: BTreeSet<String> =
                out.values.iter().filter(|v| out.within_bounds(v)).cloned().collect();
            out.values = Arc::new(keep);
        }
        out
    }

    /// The clauses that express this set (one key may need several, e.g. `NotIn` plus `Gt`).
    pub fn to_clauses(&self, key: &str) -> Vec<Requirement> {
        let clause = |operator, values: Vec<String>| Requirement { key: key.to_string(), operator, values };
        let mut out = Vec::new();
        if !self.complement {
            if self.values.is_empty() {
                out.push(clause(Operator::DoesNotExist, vec![]));
            } else {
                out.push(clause(Operator::In, self.values.iter().cloned().collect()));
            }
            return out;
        }
        if !self.values.is_empty() {
            out.push(clause(Operator::NotIn, self.values.iter().cloned().collect()));
        }
        if let Some(g) = self.greater_than {
            out.push(clause(Operator::Gt, vec![g.to_string()]));
        }
        if let Some(l) = self.less_than {
            out.push(clause(Operator::Lt, vec![l.to_string()]));
        }
        if out.is_empty() && !self.absent_ok {
            out.push(clause(Operator::Exists, vec![]));
        }
        out
    }
}

impl fmt::Display for ValueSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &BTreeSet<String>| v.iter().cloned().collect::<Vec<_>>().join(",");
        match (self.complement, self.values.is_empty()) {
            (false, true) if self.absent_ok => f.write_str("DoesNotExist")?,
            (false, true) => f.write_str("In []")?,
            (false, false) => write!(f, "In [{}]", list(&self.values))?,
            (true, false) => write!(f, "NotIn [{}]", list(&self.values))?,
            (true, true) if self.absent_ok => f.write_str("(any)")?,
            (true, true) => f.write_str("Exists")?,
        }
        if let Some(g) = self.greater_than {
            write!(f, " Gt {g}")?;
        }
        if let Some(l) = self.less_than {
            write!(f, " Lt {l}")?;
        }
        Ok(())
    }
}

/// Maps deprecated and CSI-specific keys to the well-known key they stand for.
pub fn canonical_key(key: &str) -> &str {
    match key {
        labels::EBS_CSI_ZONE | labels::BETA_ZONE => labels::ZONE,
        labels::BETA_INSTANCE_TYPE => labels::INSTANCE_TYPE,
        labels::BETA_ARCH => labels::ARCH,
        labels::BETA_OS => labels::OS,
        other => other,
    }
}

/// Per-key allowed values; keys not present are unconstrained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Requirements {
    keys: Arc<BTreeMap<String, ValueSet>>,
}

impl Requirements {
    pub fn new() -> Self {
        Self::default()
    }

    /// ANDs `key ∈ set` into these requirements.
    pub fn add(&mut self, key: &str, set: ValueSet) {
        let key = canonical_key(key);
        match self.keys.get(key) {
            Some(existing) => {
                let merged = existing.intersect(&set);
                if merged != *existing {
                    Arc::make_mut(&mut self.keys).insert(key.to_string(), merged);
                }
            }
            None => {
                Arc::make_mut(&mut self.keys).insert(key.to_string(), set);
            }
        }
    }

    pub fn from_clauses(clauses: &[Requirement]) -> Result<Self, Error> {
        let mut out = Self::new();
        for c in clauses {
            out.add(&c.key, ValueSet::from_clause(&c.key, c.operator, &c.values)?);
        }
        Ok(out)
    }

    /// `key In [value]` for each label, as a nodeSelector or a Provisioner's `labels` mean.
    pub fn from_labels(labels: &Labels) -> Self {
        let mut out = Self::new();
        for (k, v) in labels {
            out.add(k, ValueSet::one_of([v.clone()]));
        }
        out
    }

    pub fn remove(&mut self, key: &str) -> Option<ValueSet> {
        Arc::make_mut(&mut self.keys).remove(canonical_key(key))
    }

    pub fn get(&self, key: &str) -> Option<&ValueSet> {
        self.keys.get(canonical_key(key))
    }

    /// Whether a node launched in `zone` as `capacity_type` may carry these requirements' zone and
    /// capacity-type values: which offerings of an instance type can serve them.
    pub fn allows_offering_at(&self, zone: &str, capacity_type: CapacityType) -> bool {
        self.get(labels::ZONE).is_none_or(|z| z.has(zone))
            && self.get(labels::CAPACITY_TYPE).is_none_or(|c| c.has(capacity_type.as_str()))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &ValueSet)> {
        self.keys.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn intersect(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for (k, v) in other.keys.iter() {
            out.add(k, v.clone());
        }
        out
    }

    /// The first key that no node can satisfy.
    pub fn unsatisfiable_key(&self) -> Option<&str> {
        self.keys.iter().find(|(_, v)| v.is_unsatisfiable()).map(|(k, _)| k.as_str())
    }

    /// The first key on which `self` (a pod's needs) conflicts with `node` (what a node will carry). A key
    /// the node side does not mention is a label the node will not have.
    pub fn conflict_with_node(&self, node: &Self) -> Option<&str> {
        self.keys.iter().find_map(|(k, want)| {
            let ok = match node.keys.get(k) {
                Some(have) => !want.intersect(have).is_unsatisfiable(),
                None => want.allows_absent(),
            };
            (!ok).then_some(k.as_str())
        })
    }

    /// The first key whose requirement the labels violate.
    pub fn mismatch(&self, labels: &Labels) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, set)| match label_value(labels, k) {
                Some(v) => !set.has(v),
                None => !set.allows_absent(),
            })
            .map(|(k, _)| k.as_str())
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.mismatch(labels).is_none()
    }

    pub fn to_clauses(&self) -> Vec<Requirement> {
        self.keys.iter().flat_map(|(k, v)| v.to_clauses(k)).collect()
    }
}

impl fmt::Display for Requirements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.keys.iter().map(|(k, v)| format!("{k} {v}")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// A label's value, also found under its deprecated alias.
pub fn label_value<'a>(labels: &'a Labels, key: &str) -> Option<&'a str> {
    if let Some(v) = labels.get(key) {
        return Some(v);
    }
    let aliases: &[&str] = match key {
        labels::ZONE => &[labels::BETA_ZONE, labels::EBS_CSI_ZONE],
        labels::INSTANCE_TYPE => &[labels::BETA_INSTANCE_TYPE],
        labels::ARCH => &[labels::BETA_ARCH],
        labels::OS => &[labels::BETA_OS],
        _ => &[],
    };
    aliases.iter().find_map(|a| labels.get(*a)).map(String::as_str)
}

/// ORed node selector terms as alternatives; `matchFields` on `metadata.name` becomes a hostname clause.
pub fn from_terms(terms: &[NodeSelectorTerm]) -> Result<Vec<Requirements>, Error> {
    terms
        .iter()
        .map(|t| {
            let mut r = Requirements::from_clauses(&t.match_expressions)?;
            for f in &t.match_fields {
                if f.key != "metadata.name" {
                    return Err(Error::InvalidRequirement {
                        key: f.key.clone(),
                        reason: "matchFields supports only metadata.name".into(),
                    });
                }
                r.add(labels::HOSTNAME, ValueSet::from_clause(&f.key, f.operator, &f.values)?);
            }
            Ok(r)
        })
        .collect()
}

/// ANDs two sets of ORed alternatives: every pairing of one from each. An empty side means "no constraint".
pub fn and_alternatives(a: &[Requirements], b: &[Requirements]) -> Vec<Requirements> {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_vec(),
        (_, true) => a.to_vec(),
        _ => a.iter().flat_map(|x| b.iter().map(move |y| x.intersect(y))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(key: &str, op: Operator, values: &[&str]) -> Requirement {
        Requirement { key: key.into(), operator: op, values: values.iter().map(|s| s.to_string()).collect() }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_operator_matches_labels_like_kubernetes() {
        let l = labels(&[("a", "x"), ("n", "5")]);
        let ok = |c: Requirement| Requirements::from_clauses(&[c]).unwrap().matches(&l);
        assert!(ok(clause("a", Operator::In, &["x", "y"])));
        assert!(!ok(clause("a", Operator::In, &["y"])));
        assert!(ok(clause("a", Operator::NotIn, &["y"])));
        assert!(!ok(clause("a", Operator::NotIn, &["x"])));
        assert!(ok(clause("missing", Operator::NotIn, &["x"])), "NotIn matches an absent label");
        assert!(ok(clause("a", Operator::Exists, &[])));
        assert!(!ok(clause("missing", Operator::Exists, &[])));
        assert!(ok(clause("missing", Operator::DoesNotExist, &[])));
        assert!(!ok(clause("a", Operator::DoesNotExist, &[])));
        assert!(ok(clause("n", Operator::Gt, &["4"])));
        assert!(!ok(clause("n", Operator::Gt, &["5"])));
        assert!(ok(clause("n", Operator::Lt, &["6"])));
        assert!(!ok(clause("a", Operator::Lt, &["6"])), "a non-integer value fails Lt");
        assert!(!ok(clause("missing", Operator::Gt, &["1"])));
    }

    #[test]
    fn malformed_clauses_are_errors_naming_the_key() {
        let err = ValueSet::from_clause("size", Operator::Gt, &["big".into()]).unwrap_err();
        assert!(err.to_string().contains("size") && err.to_string().contains("big"), "{err}");
        assert!(ValueSet::from_clause("k", Operator::In, &[]).is_err());
        assert!(ValueSet::from_clause("k", Operator::Lt, &["1".into(), "2".into()]).is_err());
    }

    #[test]
    fn intersection_of_in_notin_and_bounds() {
        let a = ValueSet::one_of(["1", "2", "3", "x"]);
        let b = ValueSet::from_clause("k", Operator::Gt, &["1".into()]).unwrap();
        let c = ValueSet::not_in(["3"]);
        let r = a.intersect(&b).intersect(&c);
        assert_eq!(r.finite_values().unwrap().iter().collect::<Vec<_>>(), ["2"]);
        assert_eq!(r.single(), Some("2"));
        let empty = ValueSet::one_of(["a"]).intersect(&ValueSet::not_in(["a"]));
        assert!(empty.is_unsatisfiable());
        let bounded = ValueSet::from_clause("k", Operator::Gt, &["3".into()])
            .unwrap()
            .intersect(&ValueSet::from_clause("k", Operator::Lt, &["5".into()]).unwrap());
        assert!(bounded.has("4") && !bounded.has("5") && !bounded.is_unsatisfiable());
        let none = bounded.intersect(&ValueSet::not_in(["4"]));
        assert!(none.is_unsatisfiable(), "{none}");
        assert!(!ValueSet::absent().intersect(&ValueSet::not_in(["a"])).is_unsatisfiable());
        assert!(ValueSet::absent().intersect(&ValueSet::exists()).is_unsatisfiable());
    }

    #[test]
    fn conflict_with_node_treats_unmentioned_keys_as_absent_labels() {
        let node = Requirements::from_labels(&labels(&[("team", "a")]));
        let pod = Requirements::from_labels(&labels(&[("team", "a")]));
        assert_eq!(pod.conflict_with_node(&node), None);
        let pod = Requirements::from_labels(&labels(&[("team", "b")]));
        assert_eq!(pod.conflict_with_node(&node), Some("team"));
        let pod = Requirements::from_labels(&labels(&[("other", "b")]));
        assert_eq!(pod.conflict_with_node(&node), Some("other"));
        let pod = Requirements::from_clauses(&[clause("other", Operator::NotIn, &["b"])]).unwrap();
        assert_eq!(pod.conflict_with_node(&node), None);
    }

    #[test]
    fn aliases_map_to_well_known_keys() {
        let r = Requirements::from_clauses(&[clause(labels::EBS_CSI_ZONE, Operator::In, &["us-east-1a"])])
            .unwrap();
        assert!(r.get(labels::ZONE).is_some());
        assert!(r.matches(&labels(&[(labels::ZONE, "us-east-1a")])));
        assert!(r.matches(&labels(&[(labels::BETA_ZONE, "us-east-1a")])));
        assert!(!r.matches(&labels(&[(labels::ZONE, "us-east-1b")])));
    }

    #[test]
    fn terms_are_ored_and_and_alternatives_pairs_them() {
        let terms = vec![
            NodeSelectorTerm {
                match_expressions: vec![clause("a", Operator::In, &["1"])],
                match_fields: vec![],
            },
            NodeSelectorTerm {
                match_expressions: vec![clause("a", Operator::In, &["2"])],
                match_fields: vec![],
            },
        ];
        let alts = from_terms(&terms).unwrap();
        assert_eq!(alts.len(), 2);
        let other = vec![Requirements::from_labels(&labels(&[("b", "1")]))];
        let both = and_alternatives(&alts, &other);
        assert_eq!(both.len(), 2);
        assert!(both[1].matches(&labels(&[("a", "2"), ("b", "1")])));
        assert_eq!(and_alternatives(&[], &other), other);
    }

    #[test]
    fn clauses_round_trip() {
        let src = vec![
            clause("a", Operator::In, &["1", "2"]),
            clause("b", Operator::NotIn, &["x"]),
            clause("c", Operator::Exists, &[]),
            clause("d", Operator::DoesNotExist, &[]),
            clause("e", Operator::Gt, &["3"]),
        ];
        let r = Requirements::from_clauses(&src).unwrap();
        assert_eq!(Requirements::from_clauses(&r.to_clauses()).unwrap(), r);
    }
}
