//! Pure scheduling: where pending pods go and which new nodes are cheapest (`solve`).

pub mod allocatable;
