//! Leader election over a coordination.k8s.io Lease: every replica indexes, only the holder acts.
