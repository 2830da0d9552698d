//! Label selectors (`matchLabels` + `matchExpressions`) as used by pod affinity, topology spread and PDBs.

use crate::model::{LabelSelector, Labels, Operator};

/// True when `labels` satisfy `selector`; an empty selector matches everything.
pub fn matches(selector: &LabelSelector, labels: &Labels) -> bool {
    selector.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().all(|e| {
            let value = labels.get(&e.key);
            match e.operator {
                Operator::In => value.is_some_and(|v| e.values.contains(v)),
                Operator::NotIn => value.is_none_or(|v| !e.values.contains(v)),
                Operator::Exists => value.is_some(),
                Operator::DoesNotExist => value.is_none(),
                // Not valid in label selectors; the API server rejects them, so nothing matches.
                Operator::Gt | Operator::Lt => false,
            }
        })
}

/// `selector` narrowed by `matchLabelKeys`: the pod's own values for those keys must also match.
pub fn with_label_keys(selector: &LabelSelector, keys: &[String], pod_labels: &Labels) -> LabelSelector {
    let mut out = selector.clone();
    for k in keys {
        if let Some(v) = pod_labels.get(k) {
            out.match_labels.insert(k.clone(), v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Requirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![
                Requirement {
                    key: "tier".into(),
                    operator: Operator::In,
                    values: vec!["a".into(), "b".into()],
                },
                Requirement { key: "canary".into(), operator: Operator::DoesNotExist, values: vec![] },
            ],
        };
        assert!(matches(&sel, &labels(&[("app", "web"), ("tier", "a")])));
        assert!(!matches(&sel, &labels(&[("app", "web"), ("tier", "c")])));
        assert!(!matches(&sel, &labels(&[("app", "web"), ("tier", "a"), ("canary", "1")])));
        assert!(!matches(&sel, &labels(&[("tier", "a")])));
        assert!(matches(&LabelSelector::default(), &labels(&[])));
    }

    #[test]
    fn match_label_keys_narrow_to_the_pods_values() {
        let sel = LabelSelector { match_labels: labels(&[("app", "web")]), match_expressions: vec![] };
        let narrowed =
            with_label_keys(&sel, &["pod-template-hash".into()], &labels(&[("pod-template-hash", "1")]));
        assert!(matches(&narrowed, &labels(&[("app", "web"), ("pod-template-hash", "1")])));
        assert!(!matches(&narrowed, &labels(&[("app", "web"), ("pod-template-hash", "2")])));
    }
}
