//! Termination: finalizers, PDB-aware drain and instance deletion.
