//! Disruption metrics (Karpenter's `disruption_*` names under the caller's prefix). The caller registers
//! them in its registry with [`DisruptionMetrics::register`].

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
    /// `delete` or `replace`.
    pub action: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub reason: String,
    /// `executed`, `invalidated` or `replacement_failed`.
    pub outcome: String,
}

#[derive(Debug, Clone, Default)]
pub struct DisruptionMetrics {
    /// Commands decided (before validation), by reason and action.
    pub decisions: Family<ReasonLabels, Counter>,
    /// What became of decided commands.
    pub outcomes: Family<OutcomeLabels, Counter>,
    /// Nodes handed to termination, by reason and action.
    pub nodes_disrupted: Family<ReasonLabels, Counter>,
    /// $/h saved by executed commands, by reason and action.
    pub savings: Family<ReasonLabels, Counter<f64, AtomicU64>>,
}

impl DisruptionMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "decisions",
            "Disruption commands decided, by reason and action",
            self.decisions.clone(),
        );
        registry.register(
            "outcomes",
            "Disruption commands by outcome after validation",
            self.outcomes.clone(),
        );
        registry.register("nodes_disrupted", "Nodes handed to termination", self.nodes_disrupted.clone());
        registry.register(
            "savings_dollars_per_hour",
            "Hourly cost removed by executed commands",
            self.savings.clone(),
        );
    }

    pub fn labels(reason: super::Reason, replace: bool) -> ReasonLabels {
        ReasonLabels {
            reason: reason.as_str().to_string(),
            action: if replace { "replace" } else { "delete" }.to_string(),
        }
    }

    pub fn outcome(&self, reason: super::Reason, outcome: &str) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                reason: reason.as_str().to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn registered_metrics_encode_with_reason_labels() {
        let metrics = DisruptionMetrics::default();
        let mut registry = Registry::with_prefix("ballast_disruption");
        metrics.register(&mut registry);
        metrics.decisions.get_or_create(&DisruptionMetrics::labels(super::super::Reason::Empty, false)).inc();
        metrics
            .savings
            .get_or_create(&DisruptionMetrics::labels(super::super::Reason::Underutilized, true))
            .inc_by(0.5);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        assert!(
            out.contains(r#"ballast_disruption_decisions_total{reason="empty",action="delete"} 1"#),
            "{out}"
        );
        assert!(out.contains(r#"ballast_disruption_savings_dollars_per_hour_total{reason="underutilized",action="replace"} 0.5"#), "{out}");
    }
}
