//! `NodePoolTemplate`: what a Provisioner (and its NodeTemplate) may launch, in the solver's terms.

use std::{collections::BTreeMap, sync::Arc};

use kube::ResourceExt;

use crate::{
    api::{self, labels},
    cloud::{CapacityType, Catalog, InstanceType},
    model::{Labels, Operator, Requirement, Taint, TaintEffect},
    resources::{self, Resources},
};

use super::{
    Error,
    allocatable::{self, KubeletSettings},
    requirements::{Requirements, ValueSet},
};

/// An instance type as one pool launches it: allocatable after the pool's kubelet settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolInstanceType {
    pub instance_type: Arc<InstanceType>,
    pub allocatable: Resources,
}

/// Resources a pool's nodes (registered and in flight) already hold, charged against its limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolUsage {
    /// Capacity of the pool's nodes (Karpenter counts capacity, not allocatable, against limits).
    pub resources: Resources,
    pub nodes: i64,
}

/// Limit key for the node count.
pub const NODES_LIMIT: &str = "nodes";

#[derive(Debug, Clone, PartialEq)]
pub struct NodePoolTemplate {
    pub name: String,
    pub node_template: Option<String>,
    /// Higher weight is tried first.
    pub weight: i32,
    /// Provisioner requirements (already including `labels` as `In` clauses).
    pub requirements: Requirements,
    pub labels: Labels,
    pub taints: Vec<Taint>,
    /// Present at launch and removed by an agent; pods need not tolerate them.
    pub startup_taints: Vec<Taint>,
    /// Resource name (or [`NODES_LIMIT`]) → maximum total; absent means unlimited.
    pub limits: BTreeMap<String, i64>,
    pub usage: PoolUsage,
    /// Only types whose labels satisfy `requirements` and that have an offering the pool allows.
    pub instance_types: Vec<PoolInstanceType>,
}

impl NodePoolTemplate {
    /// A pool with no requirements, taints or limits over `instance_types` (tests, estimators).
    pub fn new(name: &str, instance_types: Vec<PoolInstanceType>) -> Self {
        Self {
            name: name.to_string(),
            node_template: None,
            weight: 0,
            requirements: Requirements::new(),
            labels: Labels::new(),
            taints: Vec::new(),
            startup_taints: Vec::new(),
            limits: BTreeMap::new(),
            usage: PoolUsage::default(),
            instance_types,
        }
    }

    /// The pool a Provisioner describes: its requirements (labels included), taints, kubelet-adjusted
    /// allocatable for every catalog type it allows, limits and current usage. Errors name the Provisioner
    /// and the field.
    pub fn from_provisioner(
        provisioner: &api::Provisioner,
        node_template: Option<&api::NodeTemplate>,
        catalog: &Catalog,
        usage: PoolUsage,
    ) -> Result<Self, Error> {
        let name = provisioner.name_any();
        let bad = |field: String, reason: String| Error::InvalidProvisioner {
            provisioner: name.clone(),
            field,
            reason,
        };
        let spec = &provisioner.spec;

        let mut clauses = Vec::new();
        for (i, r) in spec.requirements.iter().flatten().enumerate() {
            let operator = parse_operator(&r.operator).ok_or_else(|| {
                bad(format!("spec.requirements[{i}].operator"), format!("unknown operator {:?}", r.operator))
            })?;
            clauses.push(Requirement {
                key: r.key.clone(),
                operator,
                values: r.values.clone().unwrap_or_default(),
            });
        }
        let mut requirements = Requirements::from_clauses(&clauses)
            .map_err(|e| bad("spec.requirements".into(), e.to_string()))?;
        let labels = spec.labels.clone().unwrap_or_default();
        for key in labels.keys() {
            if is_restricted(key) {
                return Err(bad(
                    format!("spec.labels.{key}"),
                    "label domain is restricted to the kubelet and ballast".into(),
                ));
            }
        }
        requirements = requirements.intersect(&Requirements::from_labels(&labels));
        if let Some(key) = requirements.unsatisfiable_key() {
            return Err(bad(
                "spec.requirements".into(),
                format!("no value of {key} satisfies every requirement"),
            ));
        }
        for (key, set) in requirements.iter() {
            if key == labels::CAPACITY_TYPE
                && let Some(values) = set.finite_values()
                && let Some(v) = values.iter().find(|v| CapacityType::parse(v).is_none())
            {
                return Err(bad("spec.requirements".into(), format!("unknown capacity type {v:?}")));
            }
        }
        let taints = convert_taints(spec.taints.as_deref(), "spec.taints", &bad)?;
        let startup_taints = convert_taints(spec.startup_taints.as_deref(), "spec.startupTaints", &bad)?;
        let kubelet = match &spec.kubelet_configuration {
            Some(k) => KubeletSettings::from_api(k)
                .map_err(|e| bad("spec.kubeletConfiguration".into(), e.to_string()))?,
            None => KubeletSettings::default(),
        };
        let mut limits = BTreeMap::new();
        for (resource, q) in spec.limits.iter().flat_map(|l| l.resources.iter().flatten()) {
            let field = format!("spec.limits.resources.{resource}");
            let amount = if resource == NODES_LIMIT {
                resources::parse_units(&field, &q.0)
            } else {
                q.parse(resource, &field)
            }
            .map_err(|e| bad(field.clone(), e.to_string()))?;
            limits.insert(resource.clone(), amount);
        }
        let instance_types = catalog
            .instance_types
            .iter()
            .filter(|it| type_allowed(&requirements, it))
            .map(|it| PoolInstanceType {
                instance_type: it.clone(),
                allocatable: allocatable::allocatable(
                    it,
                    &kubelet,
                    allocatable::DEFAULT_VM_MEMORY_OVERHEAD_PERCENT,
                ),
            })
            .collect();
        let node_template = node_template
            .map(|t| t.name_any())
            .or_else(|| spec.provider_ref.as_ref().map(|r| r.name.clone()));
        Ok(Self {
            name: name.clone(),
            node_template,
            weight: spec.weight.unwrap_or(0),
            requirements,
            labels,
            taints,
            startup_taints,
            limits,
            usage,
            instance_types,
        })
    }

    /// What the limits still allow, per limited key.
    pub fn remaining_limits(&self) -> BTreeMap<String, i64> {
        self.limits
            .iter()
            .map(|(k, limit)| {
                let used = if k == NODES_LIMIT { self.usage.nodes } else { self.usage.resources.get(k) };
                (k.clone(), limit - used)
            })
            .collect()
    }
}

/// What launching one node of `it` charges against limits.
pub fn limit_charge(limits: &BTreeMap<String, i64>, it: &InstanceType) -> BTreeMap<String, i64> {
    limits.keys().map(|k| (k.clone(), if k == NODES_LIMIT { 1 } else { it.capacity.get(k) })).collect()
}

pub fn parse_operator(s: &str) -> Option<Operator> {
    Some(match s {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::Gt,
        "Lt" => Operator::Lt,
        _ => return None,
    })
}

fn is_restricted(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else { return false };
    let domain_is = |d: &str| prefix == d || prefix.ends_with(&format!(".{d}"));
    labels::RESTRICTED_LABEL_DOMAINS.iter().any(|d| domain_is(d))
        && !labels::ALLOWED_LABEL_DOMAINS.iter().any(|d| domain_is(d))
}

fn convert_taints(
    taints: Option<&[k8s_openapi::api::core::v1::Taint]>,
    field: &str,
    bad: &dyn Fn(String, String) -> Error,
) -> Result<Vec<Taint>, Error> {
    taints
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let effect = match t.effect.as_str() {
                "NoSchedule" => TaintEffect::NoSchedule,
                "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
                "NoExecute" => TaintEffect::NoExecute,
                other => {
                    return Err(bad(format!("{field}[{i}].effect"), format!("unknown effect {other:?}")));
                }
            };
            Ok(Taint { key: t.key.clone(), value: t.value.clone().unwrap_or_default(), effect })
        })
        .collect()
}

/// True when the type's labels and offerings satisfy the pool's requirements on the keys types define.
fn type_allowed(requirements: &Requirements, it: &InstanceType) -> bool {
    let instance_key = |k: &str| {
        k == labels::INSTANCE_TYPE
            || k == labels::ARCH
            || k == labels::OS
            || k.starts_with(labels::INSTANCE_LABEL_PREFIX)
            || k.starts_with(labels::KARPENTER_AWS_PREFIX)
    };
    let labels_ok = requirements.iter().all(|(k, set)| match it.labels.get(k) {
        Some(v) => set.has(v),
        None => !instance_key(k) || set.allows_absent(),
    });
    let zones = requirements.get(labels::ZONE);
    let capacity_types = requirements.get(labels::CAPACITY_TYPE);
    labels_ok
        && it.offerings.iter().any(|o| {
            zones.is_none_or(|z| z.has(&o.zone))
                && capacity_types.is_none_or(|c: &ValueSet| c.has(o.capacity_type.as_str()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        ProvisionerSpec,
        provisioner::{KubeletConfiguration, Limits},
    };
    use k8s_openapi::api::core::v1::NodeSelectorRequirement;

    fn provisioner(spec: ProvisionerSpec) -> api::Provisioner {
        api::Provisioner::new("default", spec)
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn from_provisioner_filters_types_and_parses_every_field() {
        let spec = ProvisionerSpec {
            requirements: Some(vec![
                req(labels::CAPACITY_TYPE, "In", &["on-demand"]),
                req(labels::INSTANCE_TYPE, "In", &["c5.large", "m5.large", "m5.xlarge"]),
            ]),
            labels: Some([("team".to_string(), "a".to_string())].into()),
            taints: Some(vec![k8s_openapi::api::core::v1::Taint {
                key: "dedicated".into(),
                value: Some("db".into()),
                effect: "NoSchedule".into(),
                time_added: None,
            }]),
            kubelet_configuration: Some(KubeletConfiguration { max_pods: Some(20), ..Default::default() }),
            limits: Some(Limits {
                resources: Some(
                    [
                        ("cpu".to_string(), api::Quantity::new("100")),
                        ("nodes".to_string(), api::Quantity::new("5")),
                    ]
                    .into(),
                ),
            }),
            weight: Some(7),
            ..Default::default()
        };
        let pool = NodePoolTemplate::from_provisioner(
            &provisioner(spec),
            None,
            &Catalog::bundled(),
            PoolUsage::default(),
        )
        .unwrap();
        let names: Vec<&str> = pool.instance_types.iter().map(|t| t.instance_type.name.as_str()).collect();
        assert_eq!(names, ["c5.large", "m5.large", "m5.xlarge"]);
        assert!(pool.instance_types.iter().all(|t| t.allocatable.pods == 20), "kubelet maxPods applies");
        assert_eq!(pool.weight, 7);
        assert_eq!(pool.limits["cpu"], 100_000);
        assert_eq!(pool.limits["nodes"], 5);
        assert_eq!(pool.taints[0].effect, TaintEffect::NoSchedule);
        assert!(pool.requirements.get("team").is_some_and(|s| s.has("a")));
    }

    #[test]
    fn from_provisioner_errors_name_the_provisioner_and_field() {
        let cases = [
            ProvisionerSpec { requirements: Some(vec![req("a", "Near", &["x"])]), ..Default::default() },
            ProvisionerSpec {
                taints: Some(vec![k8s_openapi::api::core::v1::Taint {
                    key: "k".into(),
                    value: None,
                    effect: "Sometimes".into(),
                    time_added: None,
                }]),
                ..Default::default()
            },
            ProvisionerSpec {
                limits: Some(Limits {
                    resources: Some([("cpu".to_string(), api::Quantity::new("lots"))].into()),
                }),
                ..Default::default()
            },
            ProvisionerSpec {
                labels: Some([("karpenter.sh/capacity-type".to_string(), "spot".to_string())].into()),
                ..Default::default()
            },
            ProvisionerSpec {
                requirements: Some(vec![req(labels::CAPACITY_TYPE, "In", &["reserved"])]),
                ..Default::default()
            },
        ];
        let fields = [
            "spec.requirements[0].operator",
            "spec.taints[0].effect",
            "spec.limits.resources.cpu",
            "spec.labels",
            "spec.requirements",
        ];
        for (spec, field) in cases.into_iter().zip(fields) {
            let err = NodePoolTemplate::from_provisioner(
                &provisioner(spec),
                None,
                &Catalog::bundled(),
                PoolUsage::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("Provisioner default") && err.contains(field), "{err}");
        }
    }
}
