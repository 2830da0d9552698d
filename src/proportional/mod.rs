//! Proportional scaling of cluster add-ons (cluster-proportional-autoscaler mode).
