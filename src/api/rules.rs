//! Schema pieces and CEL rules shared by the CRD types: what Karpenter's v1alpha5 webhook checked, expressed as
//! OpenAPI constraints and `x-kubernetes-validations` so the API server enforces them and `validate_cel()`
//! runs the very same rules client-side.

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Taint};
use kube::core::{Message, Rule};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Value, json};

use super::labels;

/// Operators a requirement may use (Karpenter's `SupportedNodeSelectorOps`).
pub const OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"];
pub const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
pub const AMI_FAMILIES: &[&str] =
    &["AL2", "AL2023", "Bottlerocket", "Ubuntu", "Windows2019", "Windows2022", "Custom"];
pub const VOLUME_TYPES: &[&str] = &["standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"];
/// Kubelet eviction signals accepted in `evictionHard` / `evictionSoft`.
pub const EVICTION_SIGNALS: &[&str] = &[
    "memory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "pid.available",
];

/// `30s`, `5m`, `1h30m`: whole seconds, minutes and hours (Karpenter v1's duration grammar).
pub const DURATION_PATTERN: &str = r"^([0-9]+(s|m|h))+$";
/// Go `time.ParseDuration` grammar, as the kubelet reads `evictionSoftGracePeriod`.
pub const GO_DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";
/// A budget's `nodes`: a count or a percentage up to 100%.
pub const BUDGET_NODES_PATTERN: &str = r"^((100|[0-9]{1,2})%|[0-9]+)$";
/// Five cron fields or a `@daily`-style macro (Karpenter v1's schedule pattern).
pub const SCHEDULE_PATTERN: &str =
    r"^(@(annually|yearly|monthly|weekly|daily|midnight|hourly))|((.+)\s(.+)\s(.+)\s(.+)\s(.+))$";
/// Upper bounds on lists and maps that CEL rules iterate, so the API server's cost estimate stays bounded.
pub const MAX_REQUIREMENTS: usize = 100;
pub const MAX_LABELS: usize = 100;
/// A qualified name: a 253-character DNS subdomain prefix, `/`, and a 63-character name.
pub const MAX_LABEL_KEY_LENGTH: usize = 317;
/// A label value (`validation.IsValidLabelValue`): empty, or alphanumerics with `-`, `_`, `.` inside.
pub const LABEL_VALUE_PATTERN: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
/// An eviction threshold: a quantity or a percentage.
pub const EVICTION_THRESHOLD_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?%|[0-9]+(\.[0-9]+)?([KMGTPE]i|[kMGTPE])?)$";

/// Label keys users may require (and that pods may select on) even though their domain is restricted: the
/// kubelet's and ballast's well-known node labels. `kubernetes.io/hostname` is not among them: a Provisioner
/// cannot pin a node name it has not created yet.
pub fn well_known_requirement_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        labels::ARCH,
        labels::OS,
        labels::ZONE,
        labels::REGION,
        labels::INSTANCE_TYPE,
        labels::WINDOWS_BUILD,
        labels::BETA_ZONE,
        labels::BETA_INSTANCE_TYPE,
        labels::BETA_ARCH,
        labels::BETA_OS,
        labels::CAPACITY_TYPE,
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    for suffix in labels::INSTANCE_LABEL_SUFFIXES {
        keys.push(format!("{}{suffix}", labels::KARPENTER_AWS_PREFIX));
        keys.push(format!("{}{suffix}", labels::INSTANCE_LABEL_PREFIX));
    }
    keys
}

/// The domain (prefix before `/`) of a label key, or `""` for an unprefixed key.
pub fn label_domain(key: &str) -> &str {
    key.split_once('/').map_or("", |(domain, _)| domain)
}

fn in_domain(domain: &str, parent: &str) -> bool {
    domain == parent || domain.strip_suffix(parent).is_some_and(|rest| rest.ends_with('.'))
}

/// The restricted domain `key` falls in, unless an allowed exception covers it.
pub fn restricted_domain_of(key: &str) -> Option<&'static str> {
    let domain = label_domain(key);
    if labels::ALLOWED_LABEL_DOMAINS.iter().any(|allowed| in_domain(domain, allowed)) {
        return None;
    }
    labels::RESTRICTED_LABEL_DOMAINS.iter().copied().find(|restricted| in_domain(domain, restricted))
}

/// CEL condition: the domain of label key `var` is `domain` or one of its subdomains. A qualified name has at
/// most one `/`, so `.domain/` can only occur at the end of the prefix. String functions rather than
/// `matches()`: a regex is compiled on every evaluation, once per key and rule.
fn in_domain_condition(var: &str, domain: &str) -> String {
    format!("({var}.startsWith('{domain}/') || {var}.contains('.{domain}/'))")
}

fn cel_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

fn restricted_message(domain: &str) -> String {
    format!("label domain \"{domain}\" is restricted")
}

/// CEL condition: label key `var` is not in restricted `domain` (allowed exceptions and `exempt` keys pass).
fn key_allowed_condition(var: &str, domain: &str, exempt: &[String]) -> String {
    let mut alternatives = Vec::new();
    let exempt: Vec<String> =
        exempt.iter().filter(|k| restricted_domain_of(k) == Some(domain)).cloned().collect();
    if !exempt.is_empty() {
        alternatives.push(format!("{var} in {}", cel_list(&exempt)));
    }
    for allowed in labels::ALLOWED_LABEL_DOMAINS {
        alternatives.push(in_domain_condition(var, allowed));
    }
    alternatives.push(format!("!{}", in_domain_condition(var, domain)));
    alternatives.join(" || ")
}

/// Rules for a `labels` map: no key in a restricted domain, one rule (and message) per domain.
fn label_map_rules() -> Vec<Rule> {
    labels::RESTRICTED_LABEL_DOMAINS
        .iter()
        .map(|domain| {
            rule(
                format!("self.all(k, {})", key_allowed_condition("k", domain, &[])),
                restricted_message(domain),
            )
        })
        .collect()
}

/// `schema_with` for a Provisioner's `labels`: valid label values, no key in a restricted domain.
pub fn labels_schema(_: &mut SchemaGenerator) -> Schema {
    let map = json!({
        "type": "object",
        "additionalProperties": { "type": "string", "maxLength": 63, "pattern": LABEL_VALUE_PATTERN },
        "maxProperties": MAX_LABELS,
        "x-kubernetes-validations": rules_json(label_map_rules()),
    });
    Schema::try_from(map).expect("labels schema is an object")
}

/// Rules for one requirement's `key`: custom keys may not use a restricted domain, well-known keys may.
fn requirement_key_rules() -> Vec<Rule> {
    let well_known = well_known_requirement_keys();
    labels::RESTRICTED_LABEL_DOMAINS
        .iter()
        .map(|domain| rule(key_allowed_condition("self", domain, &well_known), restricted_message(domain)))
        .collect()
}

/// Rules for one requirement: valid operator and the values each operator takes.
fn requirement_rules() -> Vec<Rule> {
    let operators: Vec<String> = OPERATORS.iter().map(|o| o.to_string()).collect();
    vec![
        rule(
            format!("self.operator in {}", cel_list(&operators)),
            format!("operator must be one of {}", OPERATORS.join(", ")),
        ),
        rule(
            "self.operator != 'In' || (has(self.values) && size(self.values) > 0)",
            "requirements with operator 'In' must have a value defined",
        ),
        rule(
            "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
            "requirements with operator 'Exists' or 'DoesNotExist' must not have values",
        ),
        rule(
            "!(self.operator in ['Gt', 'Lt']) || (has(self.values) && size(self.values) == 1 && \
             self.values[0].matches('^-?[0-9]+$'))",
            "requirements with operator 'Gt' or 'Lt' must have a single integer value",
        ),
    ]
}

/// A CEL rule with its failure message.
pub fn rule(expression: impl Into<String>, message: impl Into<String>) -> Rule {
    Rule { message: Some(Message::Message(message.into())), ..Rule::new(expression) }
}

fn rules_json(rules: Vec<Rule>) -> Value {
    serde_json::to_value(rules).expect("CEL rules serialize to JSON")
}

fn enum_json(values: &[&str]) -> Value {
    json!(values)
}

/// The schema of a list of `NodeSelectorRequirement`s with the operator enum and per-item CEL rules.
fn requirement_list_schema(generator: &mut SchemaGenerator, restrict_keys: bool) -> Schema {
    let mut item = serde_json::to_value(NodeSelectorRequirement::json_schema(generator))
        .expect("requirement schema serializes to JSON");
    item["properties"]["operator"]["enum"] = enum_json(OPERATORS);
    // Bounds keep the API server's static CEL cost estimate within budget (the same bounds Karpenter uses).
    item["properties"]["key"]["maxLength"] = json!(MAX_LABEL_KEY_LENGTH);
    item["properties"]["values"]["items"]["maxLength"] = json!(63);
    if restrict_keys {
        item["properties"]["key"]["x-kubernetes-validations"] = rules_json(requirement_key_rules());
    }
    item["x-kubernetes-validations"] = rules_json(requirement_rules());
    let list = json!({ "type": "array", "maxItems": MAX_REQUIREMENTS, "items": item });
    Schema::try_from(list).expect("requirement list schema is an object")
}

/// `schema_with` for a Provisioner's requirements: operators, values and restricted label domains.
pub fn provisioner_requirements_schema(generator: &mut SchemaGenerator) -> Schema {
    requirement_list_schema(generator, true)
}

/// `schema_with` for a NodeClaim's requirements: merged with pod selectors, so any key is allowed.
pub fn requirements_schema(generator: &mut SchemaGenerator) -> Schema {
    requirement_list_schema(generator, false)
}

/// `schema_with` for a list of taints with the effect enum.
pub fn taints_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut item =
        serde_json::to_value(Taint::json_schema(generator)).expect("taint schema serializes to JSON");
    item["properties"]["effect"]["enum"] = enum_json(TAINT_EFFECTS);
    Schema::try_from(json!({ "type": "array", "items": item })).expect("taint list schema is an object")
}

/// A string → string map whose values match `pattern` and whose keys are among `keys` (when given).
fn string_map_schema(pattern: &str, keys: Option<&[&str]>) -> Schema {
    let mut map = json!({
        "type": "object",
        "additionalProperties": { "type": "string", "pattern": pattern },
    });
    if let Some(keys) = keys {
        map["maxProperties"] = json!(keys.len());
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        map["x-kubernetes-validations"] = rules_json(vec![rule(
            format!("self.all(k, k in {})", cel_list(&keys)),
            format!("keys must be one of {}", keys.join(", ")),
        )]);
    }
    Schema::try_from(map).expect("map schema is an object")
}

pub fn eviction_thresholds_schema(_: &mut SchemaGenerator) -> Schema {
    string_map_schema(EVICTION_THRESHOLD_PATTERN, Some(EVICTION_SIGNALS))
}

pub fn eviction_grace_periods_schema(_: &mut SchemaGenerator) -> Schema {
    string_map_schema(GO_DURATION_PATTERN, Some(EVICTION_SIGNALS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_domains_cover_subdomains_but_not_exceptions() {
        assert_eq!(restricted_domain_of("kubernetes.io/hostname"), Some("kubernetes.io"));
        assert_eq!(restricted_domain_of("node.kubernetes.io/instance-type"), Some("kubernetes.io"));
        assert_eq!(restricted_domain_of("karpenter.sh/capacity-type"), Some("karpenter.sh"));
        assert_eq!(restricted_domain_of("instance.ballast.dev/instance-cpu"), Some("ballast.dev"));
        assert_eq!(restricted_domain_of("node-restriction.kubernetes.io/team"), None);
        assert_eq!(restricted_domain_of("kops.k8s.io/ig"), None);
        assert_eq!(restricted_domain_of("example.com/team"), None);
        assert_eq!(restricted_domain_of("notkubernetes.io/x"), None);
        assert_eq!(restricted_domain_of("team"), None);
    }

    #[test]
    fn well_known_keys_include_both_instance_label_prefixes() {
        let keys = well_known_requirement_keys();
        assert!(keys.contains(&"karpenter.k8s.aws/instance-family".to_string()));
        assert!(keys.contains(&"instance.ballast.dev/instance-family".to_string()));
        assert!(keys.contains(&labels::CAPACITY_TYPE.to_string()));
        assert!(!keys.contains(&labels::HOSTNAME.to_string()));
    }
}
