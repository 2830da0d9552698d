//! The instance-type catalog: the bundled EC2 data and the scenario catalog file format.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::InstanceType;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Sorted by name.
    pub instance_types: Vec<Arc<InstanceType>>,
}

impl Catalog {
    pub fn new(mut instance_types: Vec<InstanceType>) -> Self {
        instance_types.sort_by(|a, b| a.name.cmp(&b.name));
        Self { instance_types: instance_types.into_iter().map(Arc::new).collect() }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<InstanceType>> {
        self.instance_types
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.instance_types[i])
    }
}
