//! Client-side validation of ballast's CRDs, so `simulate` and `plan` reject a bad manifest before any loop
//! sees it. Three layers, in the order the API server applies them:
//! 1. the OpenAPI constraints of the generated schema (enum, minimum/maximum, pattern, lengths, required),
//! 2. the CEL `x-kubernetes-validations` with the server's messages: the rules the generated `validate_cel()`
//!    runs, through the same kube-cel validator, but compiled once per CRD instead of on every call,
//! 3. checks CEL cannot express: quantities that must parse, label key syntax, cron schedules.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::LazyLock,
};

use k8s_openapi::api::core::v1::Taint;
use kube::{
    CustomResourceExt, ResourceExt,
    core::cel::{CompiledSchema, Validator, compile_schema},
};
use regex::Regex;
use serde_json::Value;

use super::{NodeClaim, NodeTemplate, Provisioner, Quantity, rules};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    #[error("failed to validate {kind} {name:?}: {}", Problems(problems))]
    Invalid { kind: &'static str, name: String, problems: Vec<FieldProblem> },
}

impl ValidationError {
    pub fn problems(&self) -> &[FieldProblem] {
        let Self::Invalid { problems, .. } = self;
        problems
    }
}

/// One rejected field: its path (`spec.requirements[0]`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

struct Problems<'a>(&'a [FieldProblem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Collects problems for one object.
#[derive(Default)]
struct Report(Vec<FieldProblem>);

impl Report {
    fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldProblem { field: field.into(), reason: reason.into() });
    }

    fn finish(self, kind: &'static str, name: String) -> Result<(), ValidationError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationError::Invalid { kind, name, problems: self.0 })
        }
    }
}

/// Validates a Provisioner as the API server would, plus quantities, label key syntax and cron schedules.
/// The error names the object and every rejected field with its reason.
pub fn validate_provisioner(provisioner: &Provisioner) -> Result<(), ValidationError> {
    let mut report = Report::default();
    PROVISIONER_CRD.check(provisioner, &mut report);
    let spec = &provisioner.spec;
    for (key, _) in spec.labels.iter().flatten() {
        check_qualified_name(&format!("spec.labels[{key}]"), key, &mut report);
    }
    for (i, requirement) in spec.requirements.iter().flatten().enumerate() {
        let field = format!("spec.requirements[{i}]");
        check_qualified_name(&format!("{field}.key"), &requirement.key, &mut report);
        let values = requirement.values.as_deref().unwrap_or_default();
        match requirement.operator.as_str() {
            "Gt" | "Lt" => {
                for value in values {
                    if value.parse::<i64>().is_err() {
                        report.push(format!("{field}.values"), format!("{value:?} is not a 64-bit integer"));
                    }
                }
            }
            _ => check_label_values(&format!("{field}.values"), values, &mut report),
        }
    }
    check_taints("spec.taints", spec.taints.as_deref(), &mut report);
    check_taints("spec.startupTaints", spec.startup_taints.as_deref(), &mut report);
    if let Some(resources) = spec.limits.as_ref().and_then(|l| l.resources.as_ref()) {
        check_quantities("spec.limits.resources", resources, &mut report);
    }
    if let Some(kubelet) = &spec.kubelet_configuration {
        for (field, reserved) in
            [("systemReserved", &kubelet.system_reserved), ("kubeReserved", &kubelet.kube_reserved)]
        {
            if let Some(reserved) = reserved {
                check_quantities(&format!("spec.kubeletConfiguration.{field}"), reserved, &mut report);
            }
        }
    }
    let budgets = spec.disruption.as_ref().and_then(|d| d.budgets.as_ref());
    for (i, budget) in budgets.into_iter().flatten().enumerate() {
        if let Some(schedule) = &budget.schedule
            && let Err(reason) = check_cron(schedule)
        {
            report.push(format!("spec.disruption.budgets[{i}].schedule"), reason);
        }
    }
    report.finish("Provisioner", provisioner.name_any())
}

/// Validates a NodeTemplate as the API server would, plus block device volume sizes.
pub fn validate_node_template(template: &NodeTemplate) -> Result<(), ValidationError> {
    let mut report = Report::default();
    NODE_TEMPLATE_CRD.check(template, &mut report);
    for (i, mapping) in template.spec.block_device_mappings.iter().flatten().enumerate() {
        if let Some(size) = mapping.ebs.as_ref().and_then(|ebs| ebs.volume_size.as_ref()) {
            let field = format!("spec.blockDeviceMappings[{i}].ebs.volumeSize");
            match size.parse("storage", &field) {
                Ok(bytes) if bytes <= 0 => report.push(field, format!("{size:?} must be positive")),
                Ok(_) => {}
                Err(error) => report.push(field, error.to_string()),
            }
        }
    }
    report.finish("NodeTemplate", template.name_any())
}

/// Validates a NodeClaim as the API server would, plus requested quantities and taint syntax.
pub fn validate_node_claim(claim: &NodeClaim) -> Result<(), ValidationError> {
    let mut report = Report::default();
    NODE_CLAIM_CRD.check(claim, &mut report);
    check_quantities("spec.resources.requests", &claim.spec.resources.requests, &mut report);
    check_taints("spec.taints", claim.spec.taints.as_deref(), &mut report);
    check_taints("spec.startupTaints", claim.spec.startup_taints.as_deref(), &mut report);
    report.finish("NodeClaim", claim.name_any())
}

// === OpenAPI and CEL ===

/// A CRD's schema with its CEL rules and patterns compiled once: evaluating a rule is cheap, compiling it
/// (and the regexes) is not, and `validate_cel()` recompiles on every call.
struct CompiledCrd {
    schema: Value,
    cel: CompiledSchema,
    patterns: HashMap<String, Regex>,
}

impl CompiledCrd {
    fn of<K: CustomResourceExt>() -> Self {
        let crd = K::crd();
        let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
        let schema = serde_json::to_value(schema).expect("CRD schema serializes to JSON");
        let mut patterns = HashMap::new();
        collect_patterns(&schema, &mut patterns);
        Self { cel: compile_schema(&schema), schema, patterns }
    }

    fn check(&self, object: &impl serde::Serialize, report: &mut Report) {
        let value = serde_json::to_value(object).expect("custom resource serializes to JSON");
        check_openapi(&self.schema, &self.patterns, &value, "", report);
        if let Err(errors) = Validator::new().validate_compiled(&self.cel, &value, None) {
            for error in errors.as_slice() {
                report.push(error.field_path.clone(), error.message.clone());
            }
        }
    }
}

static PROVISIONER_CRD: LazyLock<CompiledCrd> = LazyLock::new(CompiledCrd::of::<Provisioner>);
static NODE_TEMPLATE_CRD: LazyLock<CompiledCrd> = LazyLock::new(CompiledCrd::of::<NodeTemplate>);
static NODE_CLAIM_CRD: LazyLock<CompiledCrd> = LazyLock::new(CompiledCrd::of::<NodeClaim>);

fn collect_patterns(schema: &Value, patterns: &mut HashMap<String, Regex>) {
    match schema {
        Value::Object(map) => {
            if let Some(pattern) = map.get("pattern").and_then(Value::as_str) {
                let regex = Regex::new(pattern).expect("schema patterns are valid regexes");
                patterns.insert(pattern.to_string(), regex);
            }
            map.values().for_each(|child| collect_patterns(child, patterns));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_patterns(child, patterns)),
        _ => {}
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_string() } else { format!("{path}.{field}") }
}

/// The OpenAPI v3 constraints the API server checks before CEL, with its wording.
fn check_openapi(
    schema: &Value,
    patterns: &HashMap<String, Regex>,
    value: &Value,
    path: &str,
    report: &mut Report,
) {
    if value.is_null() {
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let supported: Vec<String> = allowed.iter().map(Value::to_string).collect();
        report.push(path, format!("Unsupported value: {value}: supported values: {}", supported.join(", ")));
    }
    if let Some(number) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && number < min
        {
            report.push(path, format!("Invalid value: {value}: should be greater than or equal to {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && number > max
        {
            report.push(path, format!("Invalid value: {value}: should be less than or equal to {max}"));
        }
    }
    if let Some(text) = value.as_str() {
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let regex = patterns.get(pattern).expect("patterns are collected from the same schema");
            if !regex.is_match(text) {
                report.push(path, format!("Invalid value: {value}: should match '{pattern}'"));
            }
        }
        let chars = text.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && chars < min
        {
            report.push(path, format!("Invalid value: {value}: should be at least {min} chars long"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && chars > max
        {
            report.push(path, format!("Too long: may not be more than {max} bytes"));
        }
    }
    if let Some(object) = value.as_object() {
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
            && (object.len() as u64) < min
        {
            report.push(path, format!("Invalid value: should have at least {min} properties"));
        }
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
            && (object.len() as u64) > max
        {
            report.push(path, format!("Too many: {}: must have at most {max} items", object.len()));
        }
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if let Some(key) = required.as_str()
                && object.get(key).is_none_or(Value::is_null)
            {
                report.push(join(path, key), "Required value");
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        // Sorted: serde_json keeps insertion order when another crate enables `preserve_order`.
        let mut fields: Vec<_> = object.iter().collect();
        fields.sort_by_key(|(key, _)| *key);
        for (key, child) in fields {
            if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
                check_openapi(child_schema, patterns, child, &join(path, key), report);
            } else if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                check_openapi(additional, patterns, child, &format!("{path}[{key}]"), report);
            }
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            report.push(path, format!("Invalid value: should have at least {min} items"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && (items.len() as u64) > max
        {
            report.push(path, format!("Too many: {}: must have at most {max} items", items.len()));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check_openapi(item_schema, patterns, item, &format!("{path}[{i}]"), report);
            }
        }
    }
}

// === Checks CEL cannot express ===

fn check_quantities(field: &str, quantities: &BTreeMap<String, Quantity>, report: &mut Report) {
    for (resource, quantity) in quantities {
        let field = format!("{field}[{resource}]");
        if let Err(error) = quantity.parse(resource, &field) {
            report.push(field, error.to_string());
        }
    }
}

fn check_taints(field: &str, taints: Option<&[Taint]>, report: &mut Report) {
    for (i, taint) in taints.into_iter().flatten().enumerate() {
        check_qualified_name(&format!("{field}[{i}].key"), &taint.key, report);
        if let Some(value) = &taint.value {
            check_label_values(&format!("{field}[{i}].value"), std::slice::from_ref(value), report);
        }
    }
}

/// `validation.IsQualifiedName`: an optional DNS-1123 subdomain prefix and `/`, then a name of at most 63
/// characters made of alphanumerics, `-`, `_` and `.`, starting and ending with an alphanumeric.
fn check_qualified_name(field: &str, key: &str, report: &mut Report) {
    static NAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").expect("valid regex"));
    static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").expect("valid regex")
    });
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && (prefix.len() > 253 || !PREFIX.is_match(prefix))
    {
        report.push(field, format!("{key:?}: prefix part must be a lowercase DNS-1123 subdomain"));
    }
    if name.len() > 63 || !NAME.is_match(name) {
        report.push(
            field,
            format!(
                "{key:?}: name part must be at most 63 alphanumeric characters, '-', '_' or '.', starting and \
                 ending with an alphanumeric character"
            ),
        );
    }
}

fn check_label_values(field: &str, values: &[String], report: &mut Report) {
    static LABEL_VALUE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(rules::LABEL_VALUE_PATTERN).expect("valid regex"));
    for value in values {
        if value.len() > 63 || !LABEL_VALUE.is_match(value) {
            report.push(
                field,
                format!(
                    "{value:?} is not a valid label value: at most 63 alphanumeric characters, '-', '_' or '.', \
                     starting and ending with an alphanumeric character"
                ),
            );
        }
    }
}

/// Checks a five-field cron expression (minute hour day-of-month month day-of-week) or an `@daily`-style
/// macro: every field a `*`, value, range or list, with an optional `/step`, inside the field's bounds.
fn check_cron(schedule: &str) -> Result<(), String> {
    const MACROS: &[&str] =
        &["@annually", "@yearly", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];
    const FIELDS: [(&str, u32, u32, &[&str]); 5] = [
        ("minute", 0, 59, &[]),
        ("hour", 0, 23, &[]),
        ("day of month", 1, 31, &[]),
        (
            "month",
            1,
            12,
            &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
        ),
        ("day of week", 0, 7, &["sun", "mon", "tue", "wed", "thu", "fri", "sat"]),
    ];
    if schedule.starts_with('@') {
        return if MACROS.contains(&schedule) {
            Ok(())
        } else {
            Err(format!("{schedule:?} is not a cron macro (one of {})", MACROS.join(", ")))
        };
    }
    let parts: Vec<&str> = schedule.split_whitespace().collect();
    if parts.len() != FIELDS.len() {
        return Err(format!("{schedule:?} must have 5 fields (minute hour day-of-month month day-of-week)"));
    }
    for (part, (name, min, max, names)) in parts.iter().zip(FIELDS) {
        let parse_value = |text: &str| -> Option<u32> {
            let offset = if name == "month" { 1 } else { 0 };
            let lower = text.to_ascii_lowercase();
            let value = names
                .iter()
                .position(|n| *n == lower)
                .map(|i| i as u32 + offset)
                .or_else(|| text.parse().ok())?;
            (min..=max).contains(&value).then_some(value)
        };
        for item in part.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            let range_ok = range == "*"
                || match range.split_once('-') {
                    Some((low, high)) => {
                        matches!((parse_value(low), parse_value(high)), (Some(l), Some(h)) if l <= h)
                    }
                    None => parse_value(range).is_some(),
                };
            let step_ok = step.is_none_or(|s| s.parse::<u32>().is_ok_and(|s| s > 0));
            if !range_ok || !step_ok {
                return Err(format!("{schedule:?}: invalid {name} field {item:?} (allowed {min}-{max})"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_accepts_fields_ranges_steps_names_and_macros() {
        for good in ["0 9 * * mon-fri", "*/15 0-6 1,15 jan-mar 0", "@daily", "30 23 31 12 7"] {
            assert_eq!(check_cron(good), Ok(()), "{good}");
        }
        for bad in ["60 * * * *", "* * * *", "* 24 * * *", "*/0 * * * *", "@sometimes", "5-1 * * * *"] {
            assert!(check_cron(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn qualified_names_follow_kubernetes_syntax() {
        let mut report = Report::default();
        for good in ["team", "example.com/team", "a.b-c/x_y.z"] {
            check_qualified_name("f", good, &mut report);
        }
        assert!(report.0.is_empty(), "{:?}", report.0);
        for bad in ["-team", "Example.com/team", "a/b/c", "", &"x".repeat(64)] {
            let mut report = Report::default();
            check_qualified_name("f", bad, &mut report);
            assert!(!report.0.is_empty(), "{bad:?} accepted");
        }
    }

    #[test]
    fn openapi_checks_use_the_api_servers_wording() {
        let schema = serde_json::json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "weight": {"type": "integer", "minimum": 1.0, "maximum": 100.0},
                "family": {"type": "string", "enum": ["AL2", "Bottlerocket"]},
                "nodes": {"type": "string", "pattern": rules::BUDGET_NODES_PATTERN},
                "list": {"type": "array", "items": {"type": "object", "properties": {"n": {"minimum": 0.0}}}},
            },
        });
        let value =
            serde_json::json!({"weight": 0, "family": "Gentoo", "nodes": "101%", "list": [{"n": -1}]});
        let mut report = Report::default();
        let mut patterns = HashMap::new();
        collect_patterns(&schema, &mut patterns);
        check_openapi(&schema, &patterns, &value, "spec", &mut report);
        let fields: Vec<&str> = report.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["spec.name", "spec.family", "spec.list[0].n", "spec.nodes", "spec.weight"]);
        assert_eq!(report.0[0].reason, "Required value");
        assert_eq!(
            report.0[1].reason,
            r#"Unsupported value: "Gentoo": supported values: "AL2", "Bottlerocket""#
        );
        assert_eq!(report.0[4].reason, "Invalid value: 0: should be greater than or equal to 1");
    }
}
