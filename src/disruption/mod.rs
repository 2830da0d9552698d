//! Disruption: expiry, drift, emptiness and consolidation decisions.
