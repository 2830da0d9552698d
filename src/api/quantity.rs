//! A quantity field that accepts both `cpu: 1000` and `memory: 1000Gi`, as the Kubernetes API does for
//! `x-kubernetes-int-or-string` quantities (Karpenter's `limits.resources.cpu: 1000` is an integer in YAML).

use std::{borrow::Cow, fmt};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::resources;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Quantity(pub String);

impl Quantity {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// Parses into canonical units for `resource` (millicores for cpu, else units), naming `field` on error.
    pub fn parse(&self, resource: &str, field: &str) -> resources::Result<i64> {
        resources::parse_resource(resource, field, &self.0)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum IntOrString {
            Int(i64),
            Float(f64),
            String(String),
        }
        Ok(Quantity(match IntOrString::deserialize(d)? {
            IntOrString::Int(i) => i.to_string(),
            IntOrString::Float(f) => f.to_string(),
            IntOrString::String(s) => s,
        }))
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$"
        })
    }
}
