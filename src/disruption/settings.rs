//! A Provisioner's disruption settings, parsed once per pass: TTLs, consolidation, budgets (with cron windows),
//! the churn guards and the drain bound. Bad values yield an error naming the Provisioner and the field.

use std::str::FromStr;

use croner::Cron;
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use kube::ResourceExt;

use super::Error;
use crate::api::{Provisioner, provisioner::Budget};

/// Karpenter's default budget: 10 % of a Provisioner's nodes at once.
pub const DEFAULT_BUDGET_PERCENT: i64 = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub provisioner: String,
    pub ttl_after_empty: Option<SignedDuration>,
    pub ttl_until_expired: Option<SignedDuration>,
    pub consolidation: bool,
    pub budgets: Vec<BudgetRule>,
    /// A node's pods must not have changed for this long before consolidation considers it.
    pub consolidate_after: SignedDuration,
    /// Only nodes whose requested cpu and memory are both below this percentage are consolidated.
    pub utilization_threshold: Option<i64>,
    /// A node launched as a replacement is not replaced again within this window.
    pub replacement_cooldown: SignedDuration,
    /// Draining longer than this deletes the remaining pods.
    pub max_drain_time: Option<SignedDuration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BudgetNodes {
    Count(i64),
    Percent(i64),
}

#[derive(Debug, Clone)]
pub struct BudgetRule {
    pub nodes: BudgetNodes,
    /// Active for `duration` after each occurrence of the schedule (UTC); always active without one.
    pub window: Option<(Cron, SignedDuration)>,
}

impl PartialEq for BudgetRule {
    fn eq(&self, other: &Self) -> bool {
        let pattern =
            |w: &Option<(Cron, SignedDuration)>| w.as_ref().map(|(c, d)| (c.as_str().to_string(), *d));
        self.nodes == other.nodes && pattern(&self.window) == pattern(&other.window)
    }
}

impl BudgetRule {
    pub fn is_active(&self, now: Timestamp) -> bool {
        let Some((cron, duration)) = &self.window else { return true };
        let now_utc = now.to_zoned(TimeZone::UTC);
        // The latest start at or before now; the budget is active while that start is younger than `duration`.
        match cron.find_previous_occurrence(&now_utc, true) {
            Ok(start) => now.duration_since(start.timestamp()) < *duration,
            Err(_) => false,
        }
    }

    /// How many of `total` nodes this rule lets be disrupted at once (percentages round up, as Karpenter's do).
    pub fn allowed(&self, total: i64) -> i64 {
        match self.nodes {
            BudgetNodes::Count(n) => n,
            BudgetNodes::Percent(p) => (total * p + 99) / 100,
        }
    }
}

impl Settings {
    pub fn from_provisioner(p: &Provisioner) -> Result<Self, Error> {
        let name = p.name_any();
        let bad = |field: &str, reason: String| Error::InvalidSettings {
            provisioner: name.clone(),
            field: field.to_string(),
            reason,
        };
        let seconds = |field: &str, v: Option<i64>| match v {
            Some(s) if s < 0 => Err(bad(field, format!("{s} is negative"))),
            Some(s) => Ok(Some(SignedDuration::from_secs(s))),
            None => Ok(None),
        };
        let spec = &p.spec;
        let d = spec.disruption.clone().unwrap_or_default();
        let duration = |field: &str, v: &Option<String>| {
            v.as_deref().map(|s| parse_duration(s).map_err(|reason| bad(field, reason))).transpose()
        };
        let mut budgets = Vec::new();
        for (i, b) in d.budgets.iter().flatten().enumerate() {
            budgets.push(
                parse_budget(b)
                    .map_err(|(f, reason)| bad(&format!("spec.disruption.budgets[{i}].{f}"), reason))?,
            );
        }
        if budgets.is_empty() {
            budgets.push(BudgetRule { nodes: BudgetNodes::Percent(DEFAULT_BUDGET_PERCENT), window: None });
        }
        let utilization_threshold = match d.utilization_threshold {
            Some(t) if !(1..=100).contains(&t) => {
                return Err(bad(
                    "spec.disruption.utilizationThreshold",
                    format!("{t} is not between 1 and 100"),
                ));
            }
            t => t.map(i64::from),
        };
        Ok(Self {
            ttl_after_empty: seconds("spec.ttlSecondsAfterEmpty", spec.ttl_seconds_after_empty)?,
            ttl_until_expired: seconds("spec.ttlSecondsUntilExpired", spec.ttl_seconds_until_expired)?,
            consolidation: spec.consolidation.as_ref().and_then(|c| c.enabled).unwrap_or(false),
            budgets,
            consolidate_after: duration("spec.disruption.consolidateAfter", &d.consolidate_after)?
                .unwrap_or(SignedDuration::ZERO),
            utilization_threshold,
            replacement_cooldown: duration("spec.disruption.replacementCooldown", &d.replacement_cooldown)?
                .unwrap_or(SignedDuration::ZERO),
            max_drain_time: duration("spec.disruption.maxDrainTime", &d.max_drain_time)?,
            provisioner: name,
        })
    }

    /// Nodes of `total` that may be disrupted at once now: the minimum over the active budgets (no active
    /// budget means no limit beyond the node count).
    pub fn budget(&self, total: i64, now: Timestamp) -> i64 {
        self.budgets.iter().filter(|b| b.is_active(now)).map(|b| b.allowed(total)).min().unwrap_or(total)
    }
}

fn parse_budget(b: &Budget) -> Result<BudgetRule, (&'static str, String)> {
    let nodes = match b.nodes.strip_suffix('%') {
        Some(p) => match p.parse::<i64>() {
            Ok(p) if (0..=100).contains(&p) => BudgetNodes::Percent(p),
            _ => return Err(("nodes", format!("{:?} is not a percentage between 0% and 100%", b.nodes))),
        },
        None => match b.nodes.parse::<i64>() {
            Ok(n) if n >= 0 => BudgetNodes::Count(n),
            _ => return Err(("nodes", format!("{:?} is neither a node count nor a percentage", b.nodes))),
        },
    };
    let window = match (&b.schedule, &b.duration) {
        (None, None) => None,
        (Some(s), Some(d)) => {
            let cron =
                Cron::from_str(s).map_err(|e| ("schedule", format!("{s:?} is not a cron schedule: {e}")))?;
            Some((cron, parse_duration(d).map_err(|reason| ("duration", reason))?))
        }
        (Some(_), None) => return Err(("duration", "required with schedule".to_string())),
        (None, Some(_)) => return Err(("schedule", "required with duration".to_string())),
    };
    Ok(BudgetRule { nodes, window })
}

/// `1h30m`, `45s`, `10m`: what the CRD's duration pattern allows.
pub fn parse_duration(s: &str) -> Result<SignedDuration, String> {
    let invalid = || format!("{s:?} is not a duration like 30s, 5m or 1h30m");
    let mut total = 0i64;
    let mut digits = String::new();
    for c in s.chars() {
        match c {
            '0'..='9' => digits.push(c),
            'h' | 'm' | 's' if !digits.is_empty() => {
                let n: i64 = digits.parse().map_err(|_| invalid())?;
                let unit = match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(invalid)?;
                digits.clear();
            }
            _ => return Err(invalid()),
        }
    }
    if s.is_empty() || !digits.is_empty() {
        return Err(invalid());
    }
    Ok(SignedDuration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ProvisionerSpec, provisioner::Disruption};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn provisioner(disruption: Disruption) -> Provisioner {
        Provisioner::new(
            "default",
            ProvisionerSpec { disruption: Some(disruption), ..ProvisionerSpec::default() },
        )
    }

    fn budget(nodes: &str, schedule: Option<&str>, duration: Option<&str>) -> Budget {
        Budget { nodes: nodes.into(), schedule: schedule.map(Into::into), duration: duration.map(Into::into) }
    }

    #[test]
    fn durations_parse_compound_units_and_reject_garbage() {
        assert_eq!(parse_duration("1h30m").unwrap(), SignedDuration::from_secs(5400));
        assert_eq!(parse_duration("45s").unwrap(), SignedDuration::from_secs(45));
        for bad in ["", "5", "m", "1d", "1h 2m", "-5m"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn default_budget_is_ten_percent_rounded_up() {
        let s = Settings::from_provisioner(&provisioner(Disruption::default())).unwrap();
        let now = ts("2026-01-01T00:00:00Z");
        assert_eq!(s.budget(1, now), 1);
        assert_eq!(s.budget(10, now), 1);
        assert_eq!(s.budget(11, now), 2);
        assert_eq!(s.budget(0, now), 0);
    }

    #[test]
    fn the_minimum_of_active_budgets_applies() {
        let s = Settings::from_provisioner(&provisioner(Disruption {
            budgets: Some(vec![budget("50%", None, None), budget("3", None, None)]),
            ..Disruption::default()
        }))
        .unwrap();
        let now = ts("2026-01-01T00:00:00Z");
        assert_eq!(s.budget(4, now), 2);
        assert_eq!(s.budget(20, now), 3);
    }

    #[test]
    fn cron_windows_activate_for_their_duration_after_each_start() {
        // No disruption on weekdays 09:00–17:00 UTC; 2026-01-05 is a Monday.
        let s = Settings::from_provisioner(&provisioner(Disruption {
            budgets: Some(vec![budget("0", Some("0 9 * * 1-5"), Some("8h")), budget("5", None, None)]),
            ..Disruption::default()
        }))
        .unwrap();
        assert_eq!(s.budget(10, ts("2026-01-05T08:59:59Z")), 5);
        assert_eq!(s.budget(10, ts("2026-01-05T09:00:00Z")), 0);
        assert_eq!(s.budget(10, ts("2026-01-05T16:59:59Z")), 0);
        assert_eq!(s.budget(10, ts("2026-01-05T17:00:00Z")), 5);
        assert_eq!(s.budget(10, ts("2026-01-10T12:00:00Z")), 5, "Saturday");
    }

    #[test]
    fn bad_settings_name_the_provisioner_and_field() {
        let err = Settings::from_provisioner(&provisioner(Disruption {
            budgets: Some(vec![budget("150%", None, None)]),
            ..Disruption::default()
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("default") && err.contains("spec.disruption.budgets[0].nodes"), "{err}");
        let err = Settings::from_provisioner(&provisioner(Disruption {
            budgets: Some(vec![budget("1", Some("not cron"), Some("1h"))]),
            ..Disruption::default()
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("budgets[0].schedule"), "{err}");
        let err = Settings::from_provisioner(&provisioner(Disruption {
            consolidate_after: Some("5 minutes".into()),
            ..Disruption::default()
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("spec.disruption.consolidateAfter"), "{err}");
    }
}
