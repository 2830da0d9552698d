//! Taints and tolerations, with Kubernetes' matching rules.

use std::fmt;

use crate::model::{Taint, TaintEffect, Toleration, TolerationOperator};

/// True when `toleration` tolerates `taint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration.effect.is_some_and(|e| e != taint.effect) {
        return false;
    }
    match toleration.operator {
        TolerationOperator::Exists => toleration.key.is_empty() || toleration.key == taint.key,
        TolerationOperator::Equal => toleration.key == taint.key && toleration.value == taint.value,
    }
}

/// The first taint that blocks scheduling and is not tolerated. `PreferNoSchedule` counts as blocking only
/// when `strict` (a preference the solver honours until it must relax it).
pub fn first_untolerated<'a>(
    tolerations: &[Toleration],
    taints: &'a [Taint],
    strict: bool,
) -> Option<&'a Taint> {
    taints.iter().find(|t| {
        (strict || t.effect != TaintEffect::PreferNoSchedule)
            && !tolerations.iter().any(|tol| tolerates(tol, t))
    })
}

/// `key=value:Effect`, as kubectl prints taints.
pub struct DisplayTaint<'a>(pub &'a Taint);

impl fmt::Display for DisplayTaint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        if t.value.is_empty() {
            write!(f, "{}:{:?}", t.key, t.effect)
        } else {
            write!(f, "{}={}:{:?}", t.key, t.value, t.effect)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: TaintEffect) -> Taint {
        Taint { key: key.into(), value: value.into(), effect }
    }

    fn tol(key: &str, op: TolerationOperator, value: &str, effect: Option<TaintEffect>) -> Toleration {
        Toleration { key: key.into(), operator: op, value: value.into(), effect, toleration_seconds: None }
    }

    #[test]
    fn toleration_matching_follows_kubernetes() {
        let t = taint("dedicated", "db", TaintEffect::NoSchedule);
        assert!(tolerates(&tol("dedicated", TolerationOperator::Equal, "db", None), &t));
        assert!(tolerates(
            &tol("dedicated", TolerationOperator::Equal, "db", Some(TaintEffect::NoSchedule)),
            &t
        ));
        assert!(!tolerates(
            &tol("dedicated", TolerationOperator::Equal, "db", Some(TaintEffect::NoExecute)),
            &t
        ));
        assert!(!tolerates(&tol("dedicated", TolerationOperator::Equal, "web", None), &t));
        assert!(tolerates(&tol("dedicated", TolerationOperator::Exists, "", None), &t));
        assert!(
            tolerates(&tol("", TolerationOperator::Exists, "", None), &t),
            "empty key + Exists tolerates all"
        );
        assert!(!tolerates(&tol("other", TolerationOperator::Exists, "", None), &t));
    }

    #[test]
    fn prefer_no_schedule_blocks_only_when_strict() {
        let taints = vec![
            taint("soft", "", TaintEffect::PreferNoSchedule),
            taint("hard", "x", TaintEffect::NoExecute),
        ];
        assert_eq!(first_untolerated(&[], &taints, true).unwrap().key, "soft");
        assert_eq!(first_untolerated(&[], &taints, false).unwrap().key, "hard");
        let tols = [tol("hard", TolerationOperator::Exists, "", None)];
        assert!(first_untolerated(&tols, &taints, false).is_none());
        assert_eq!(DisplayTaint(&taints[1]).to_string(), "hard=x:NoExecute");
    }
}
