//! The scenario file: what `ballast simulate` runs.
//!
//! ```yaml
//! name: spot-with-outage
//! seed: 7                      # optional, default 42; `--seed` overrides it
//! duration: 20m                # 30s, 5m, 1h30m
//! cloud:                       # optional
//!   launchDelay: 5s            # create call → instance running (default 5s)
//!   registrationDelay: 30s     # running → node registered and Ready (default 30s)
//!   catalog: bundled           # `bundled` (the EC2 us-east-1 catalog) or a catalog file path
//! objects:                     # ordinary Kubernetes and ballast manifests, applied at 0s
//!   files: [provisioner.yaml]  # paths relative to this file
//!   manifests: |               # inline multi-document YAML
//!     apiVersion: apps/v1
//!     kind: Deployment
//!     ...
//! timeline:                    # one action per step, run in `at` order (file order on ties)
//!   - at: 0s
//!     scale: {deployment: inflate, replicas: 12}          # namespace defaults to `default`
//!   - at: 2m
//!     capacityError: {instanceType: c5.large, zone: us-east-1a, capacityType: spot, for: 10m}
//!   - at: 6m
//!     interrupt: {instanceType: c5.large, count: 1}       # or {node: <name>}; spot nodes only
//!   - at: 8m
//!     apply: {files: [more.yaml], manifests: "..."}
//!   - at: 9m
//!     delete: {kind: Deployment, name: inflate}
//! ```

use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use serde::{Deserialize, Deserializer};

use crate::cloud::{CapacityType, sim::OfferingKey};

/// The embedded default: the seed's Karpenter exercise.
pub const DEFAULT_SCENARIO: &str = include_str!("../../examples/scenario-default.yaml");
/// Name used for the embedded default in messages.
pub const DEFAULT_SCENARIO_NAME: &str = "examples/scenario-default.yaml (embedded)";

pub const DEFAULT_SEED: u64 = 42;

#[derive(Debug, thiserror::Error)]
#[error("failed to load scenario {file}: {field}: {reason}")]
pub struct ScenarioError {
    pub file: String,
    /// Path of the offending field, e.g. `timeline[2].scale.replicas`; `.` for the whole document.
    pub field: String,
    pub reason: String,
}

/// A duration written as `30s`, `5m`, `1h30m` (or ISO 8601 `PT5M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub SignedDuration);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed: SignedDuration = text.parse().map_err(|e| {
            serde::de::Error::custom(format!("invalid duration {text:?} (expected e.g. 30s, 5m, 1h30m): {e}"))
        })?;
        if parsed.is_negative() {
            return Err(serde::de::Error::custom(format!("duration {text:?} is negative")));
        }
        Ok(Duration(parsed))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    pub duration: Duration,
    #[serde(default)]
    pub cloud: CloudSettings,
    #[serde(default)]
    pub objects: Manifests,
    #[serde(default)]
    pub timeline: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudSettings {
    #[serde(default = "default_launch_delay")]
    pub launch_delay: Duration,
    #[serde(default = "default_registration_delay")]
    pub registration_delay: Duration,
    /// `bundled` or a path to a catalog file, relative to the scenario file.
    #[serde(default = "default_catalog")]
    pub catalog: String,
}

fn default_launch_delay() -> Duration {
    Duration(SignedDuration::from_secs(5))
}

fn default_registration_delay() -> Duration {
    Duration(SignedDuration::from_secs(30))
}

fn default_catalog() -> String {
    "bundled".to_string()
}

impl Default for CloudSettings {
    fn default() -> Self {
        Self {
            launch_delay: default_launch_delay(),
            registration_delay: default_registration_delay(),
            catalog: default_catalog(),
        }
    }
}

/// Manifests inline and/or in files (relative to the scenario file).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifests {
    #[serde(default)]
    pub files: Vec<PathBuf>,
    #[serde(default)]
    pub manifests: Option<String>,
}

/// One timeline entry as written: `at` plus exactly one action.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawStep {
    at: Duration,
    #[serde(default)]
    scale: Option<Scale>,
    #[serde(default)]
    apply: Option<Manifests>,
    #[serde(default)]
    delete: Option<Delete>,
    #[serde(default)]
    capacity_error: Option<CapacityError>,
    #[serde(default)]
    interrupt: Option<Interrupt>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub at: SignedDuration,
    pub action: Action,
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawStep::deserialize(d)?;
        let mut actions = Vec::new();
        actions.extend(raw.scale.map(Action::Scale));
        actions.extend(raw.apply.map(Action::Apply));
        actions.extend(raw.delete.map(Action::Delete));
        actions.extend(raw.capacity_error.map(Action::CapacityError));
        actions.extend(raw.interrupt.map(Action::Interrupt));
        if actions.len() != 1 {
            return Err(serde::de::Error::custom(format!(
                "a step needs exactly one of scale, apply, delete, capacityError, interrupt (found {})",
                actions.len()
            )));
        }
        Ok(Step { at: raw.at.0, action: actions.remove(0) })
    }
}

#[derive(Debug, Clone)]
pub enum Action {
    Scale(Scale),
    Apply(Manifests),
    Delete(Delete),
    CapacityError(CapacityError),
    Interrupt(Interrupt),
}

fn default_namespace() -> String {
    "default".to_string()
}

/// Sets a Deployment's `spec.replicas` (`kubectl scale`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scale {
    pub deployment: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub replicas: u32,
}

/// Deletes one object (`kubectl delete`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delete {
    pub kind: String,
    pub name: String,
    /// Defaults to `default` for namespaced kinds.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Launches into one offering fail with insufficient capacity, for `for` (until the end when unset).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapacityError {
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
    #[serde(default, rename = "for")]
    pub duration: Option<Duration>,
}

impl CapacityError {
    pub fn offering(&self) -> OfferingKey {
        OfferingKey {
            instance_type: self.instance_type.clone(),
            zone: self.zone.clone(),
            capacity_type: self.capacity_type,
        }
    }
}

/// A spot interruption notice for one node by name, or for the oldest `count` spot nodes matching
/// `instanceType` / `zone`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interrupt {
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub count: Option<u32>,
}

/// A scenario with its origin, for resolving relative paths and naming the file in errors.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    pub scenario: Scenario,
    /// The file name as given, or [`DEFAULT_SCENARIO_NAME`].
    pub source: String,
    /// Directory relative paths resolve against.
    pub base_dir: PathBuf,
}

impl LoadedScenario {
    pub fn error(&self, field: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
        ScenarioError { file: self.source.clone(), field: field.into(), reason: reason.into() }
    }

    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_path_buf() } else { self.base_dir.join(path) }
    }
}

/// Reads and validates a scenario file.
pub fn load_file(path: &Path) -> Result<LoadedScenario, ScenarioError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: source.clone(),
        field: ".".to_string(),
        reason: format!("cannot read the file: {e}"),
    })?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, source, base_dir)
}

/// The embedded default scenario (relative paths resolve against the working directory).
pub fn load_default() -> Result<LoadedScenario, ScenarioError> {
    parse(DEFAULT_SCENARIO, DEFAULT_SCENARIO_NAME.to_string(), PathBuf::new())
}

/// Parses and validates scenario text; `source` names it in errors.
pub fn parse(text: &str, source: String, base_dir: PathBuf) -> Result<LoadedScenario, ScenarioError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let scenario: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        // serde_yaml_ng prefixes nested messages with the path and appends "at line L column C"; keep the
        // location, it helps find the spot, and drop the repeated path.
        let message = e.into_inner().to_string();
        let reason = match message.split_once(": ") {
            Some((prefix, rest)) if path.starts_with(prefix) => rest.to_string(),
            _ => message,
        };
        ScenarioError { file: source.clone(), field: path, reason }
    })?;
    let loaded = LoadedScenario { scenario, source, base_dir };
    validate(&loaded)?;
    Ok(loaded)
}

fn validate(loaded: &LoadedScenario) -> Result<(), ScenarioError> {
    let s = &loaded.scenario;
    if s.name.trim().is_empty() {
        return Err(loaded.error("name", "must not be empty"));
    }
    if s.duration.0.is_zero() {
        return Err(loaded.error("duration", "must be longer than 0s"));
    }
    for (i, step) in s.timeline.iter().enumerate() {
        if step.at > s.duration.0 {
            return Err(loaded.error(
                format!("timeline[{i}].at"),
                format!(
                    "{} is after the scenario's duration {}",
                    fmt_offset(step.at),
                    fmt_offset(s.duration.0)
                ),
            ));
        }
        match &step.action {
            Action::Interrupt(int) => {
                if int.node.is_some()
                    && (int.instance_type.is_some() || int.zone.is_some() || int.count.is_some())
                {
                    return Err(loaded.error(
                        format!("timeline[{i}].interrupt"),
                        "give either node, or instanceType/zone/count, not both",
                    ));
                }
                if int.count == Some(0) {
                    return Err(loaded.error(format!("timeline[{i}].interrupt.count"), "must be at least 1"));
                }
            }
            Action::Apply(m) if m.files.is_empty() && m.manifests.is_none() => {
                return Err(loaded.error(format!("timeline[{i}].apply"), "needs files or manifests"));
            }
            Action::Delete(d) if d.kind.is_empty() || d.name.is_empty() => {
                return Err(loaded.error(format!("timeline[{i}].delete"), "kind and name must not be empty"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `h:mm:ss` from the scenario start.
pub fn fmt_offset(d: SignedDuration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<LoadedScenario, ScenarioError> {
        parse(text, "test.yaml".to_string(), PathBuf::from("/scenarios"))
    }

    #[test]
    fn the_default_scenario_parses() {
        let d = load_default().unwrap();
        assert_eq!(d.scenario.duration.0, SignedDuration::from_mins(15));
        let replicas: Vec<u32> = d
            .scenario
            .timeline
            .iter()
            .filter_map(|s| if let Action::Scale(sc) = &s.action { Some(sc.replicas) } else { None })
            .collect();
        assert_eq!(replicas, [12, 5, 1]);
    }

    #[test]
    fn a_full_scenario_parses_with_defaults() {
        let s = parse_str(
            "name: x\nduration: 1h30m\nobjects: {files: [a.yaml]}\ntimeline:\n\
             - at: 0s\n  scale: {deployment: web, replicas: 3}\n\
             - at: 2m\n  capacityError: {instanceType: c5.large, zone: us-east-1a, capacityType: on-demand, for: 5m}\n\
             - at: 3m\n  interrupt: {instanceType: c5.large, count: 2}\n",
        )
        .unwrap();
        assert_eq!(s.scenario.duration.0, SignedDuration::from_mins(90));
        assert_eq!(s.scenario.cloud.registration_delay.0, SignedDuration::from_secs(30));
        assert_eq!(s.resolve(&s.scenario.objects.files[0]), PathBuf::from("/scenarios/a.yaml"));
        let Action::Scale(scale) = &s.scenario.timeline[0].action else { panic!() };
        assert_eq!((scale.namespace.as_str(), scale.replicas), ("default", 3));
        let Action::CapacityError(ce) = &s.scenario.timeline[1].action else { panic!() };
        assert_eq!(ce.capacity_type, CapacityType::OnDemand);
        assert_eq!(ce.duration, Some(Duration(SignedDuration::from_mins(5))));
    }

    #[test]
    fn errors_name_the_file_field_and_reason() {
        let cases = [
            ("duration: 5m\n", ".", "missing field `name`"),
            ("name: x\nduration: soon\n", "duration", "invalid duration \"soon\""),
            (
                "name: x\nduration: 5m\ntimeline:\n- at: 1m\n  scale: {deployment: d, replicas: -1}\n",
                "timeline[0].scale.replicas",
                "invalid type: integer `-1`",
            ),
            ("name: x\nduration: 5m\ntimeline:\n- at: 1m\n", "timeline[0]", "exactly one of scale"),
            (
                "name: x\nduration: 5m\ntimeline:\n- at: 10m\n  scale: {deployment: d, replicas: 1}\n",
                "timeline[0].at",
                "after the scenario's duration",
            ),
            (
                "name: x\nduration: 5m\ncloud: {catalogue: bundled}\n",
                "cloud.catalogue",
                "unknown field `catalogue`",
            ),
            (
                "name: x\nduration: 5m\ntimeline:\n- at: 1m\n  capacityError: {instanceType: a, zone: b, capacityType: reserved}\n",
                "timeline[0].capacityError.capacityType",
                "unknown variant `reserved`",
            ),
            (
                "name: x\nduration: 5m\ntimeline:\n- at: 1m\n  interrupt: {node: a, count: 1}\n",
                "timeline[0].interrupt",
                "not both",
            ),
        ];
        for (text, field, reason) in cases {
            let err = parse_str(text).unwrap_err();
            assert_eq!(err.file, "test.yaml");
            assert_eq!(err.field, field, "{err}");
            assert!(err.reason.contains(reason), "{err}");
            assert!(err.to_string().starts_with("failed to load scenario test.yaml: "), "{err}");
        }
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = load_file(Path::new("/nonexistent/scenario.yaml")).unwrap_err();
        assert_eq!(err.file, "/nonexistent/scenario.yaml");
        assert!(err.reason.contains("cannot read"), "{err}");
    }

    #[test]
    fn offsets_format_as_clock_time() {
        assert_eq!(fmt_offset(SignedDuration::from_secs(3725)), "1:02:05");
    }
}
