//! Interruption metrics (Karpenter's `interruption_*` names under the caller's prefix).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    /// A [`super::Kind`], or `unparseable`.
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ActionLabels {
    pub kind: String,
    /// An [`super::Action`]; `failed` when the write failed.
    pub action: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct InterruptionMetrics {
    pub received: Family<KindLabels, Counter>,
    pub deleted: Family<KindLabels, Counter>,
    /// Per instance named by a message.
    pub actions: Family<ActionLabels, Counter>,
    /// Messages that could not be parsed, by reason; they are deleted.
    pub unparseable: Family<ReasonLabels, Counter>,
}

pub const UNPARSEABLE: &str = "unparseable";

impl InterruptionMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register("received_messages", "Queue messages received, by kind", self.received.clone());
        registry.register("deleted_messages", "Queue messages deleted, by kind", self.deleted.clone());
        registry.register(
            "actions_performed",
            "Actions on instances named by messages",
            self.actions.clone(),
        );
        registry.register(
            "unparseable_messages",
            "Messages deleted because they could not be parsed, by reason",
            self.unparseable.clone(),
        );
    }

    pub fn received(&self, kind: &str) {
        self.received.get_or_create(&KindLabels { kind: kind.to_string() }).inc();
    }

    pub fn deleted(&self, kind: &str) {
        self.deleted.get_or_create(&KindLabels { kind: kind.to_string() }).inc();
    }

    pub fn action(&self, kind: super::Kind, action: &str) {
        self.actions
            .get_or_create(&ActionLabels { kind: kind.to_string(), action: action.to_string() })
            .inc();
    }

    pub fn unparseable(&self, reason: &str) {
        self.unparseable.get_or_create(&ReasonLabels { reason: reason.to_string() }).inc();
    }

    /// The count for one kind, for tests and reports.
    pub fn deleted_count(&self, kind: &str) -> u64 {
        self.deleted.get_or_create(&KindLabels { kind: kind.to_string() }).get()
    }

    pub fn action_count(&self, kind: super::Kind, action: &str) -> u64 {
        self.actions.get_or_create(&ActionLabels { kind: kind.to_string(), action: action.to_string() }).get()
    }
}
