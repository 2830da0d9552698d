//! `ballast simulate` end to end: scenarios in, reports out.

use std::path::{Path, PathBuf};

use ballast::simulate::{
    self, Error, SimulateOptions,
    report::{Event, Report},
};

fn run_default() -> Report {
    simulate::run(&SimulateOptions::default()).expect("the default scenario runs")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run_file(path: &Path) -> Result<Report, Error> {
    simulate::run(&SimulateOptions { scenario: Some(path.to_path_buf()), seed: None, progress: false })
}

/// The highest running count with nothing pending, from the timeline's pod events.
fn max_running_with_none_pending(report: &Report) -> usize {
    report
        .timeline
        .iter()
        .filter_map(|e| match e.event {
            Event::Pods { pending: 0, running } => Some(running),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn the_default_scenario_runs_all_twelve_pods_then_scales_down() {
    let report = run_default();
    assert_eq!(max_running_with_none_pending(&report), 12, "{}", report.to_text());
    let s = &report.summary;
    assert_eq!((s.pods_running_at_end, s.pods_pending_at_end), (1, 0), "{}", report.to_text());
    assert!(s.unschedulable.is_empty(), "{:?}", s.unschedulable);
    assert!(s.nodes_launched >= 1 && s.peak_nodes >= 1);
    // Every node is one of the Provisioner's on-demand types.
    for node in &report.nodes {
        assert!(["c5.large", "m5.large", "m5.xlarge"].contains(&node.instance_type.as_str()), "{node:?}");
        assert_eq!(node.capacity_type.to_string(), "on-demand");
    }
    // Pods wait for a batch (1 s), the launch (5 s) and the registration (30 s): well under two minutes.
    assert!(s.longest_pending_seconds > 30 && s.longest_pending_seconds < 120, "{s:?}");
    assert!(s.total_cost > 0.0);
    let bound = s.lower_bound_cost.expect("the bound is computed");
    assert!(bound > 0.0 && bound <= s.total_cost, "bound {bound} vs cost {}", s.total_cost);
    let text = report.to_text();
    for needle in ["Timeline", "scale Deployment default/inflate to 12 replicas", "Summary", "total cost"] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn the_same_seed_gives_byte_identical_output() {
    let (a, b) = (run_default(), run_default());
    assert_eq!(a.to_text(), b.to_text());
    assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
}

const INFLATE: &str = r#"
    apiVersion: ballast.dev/v1alpha1
    kind: Provisioner
    metadata:
      name: default
    spec:
      requirements:
        - key: karpenter.sh/capacity-type
          operator: In
          values: [on-demand]
        - key: node.kubernetes.io/instance-type
          operator: In
          values: [c5.large, m5.large, m5.xlarge]
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: inflate
    spec:
      replicas: 0
      selector:
        matchLabels: {app: inflate}
      template:
        metadata:
          labels: {app: inflate}
        spec:
          containers:
            - name: inflate
              image: pause
              resources:
                requests: {cpu: 1}
"#;

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[test]
fn a_capacity_error_on_the_cheapest_offering_moves_every_pod_to_the_next_cheapest() {
    let dir = tempfile::tempdir().unwrap();
    // m5.xlarge packs three `cpu: 1` pods for $0.192/h, the cheapest per pod; take it away in every zone.
    let zones = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f"];
    let outages: String = zones
        .iter()
        .map(|z| {
            format!(
                "- at: 0s\n  capacityError: {{instanceType: m5.xlarge, zone: {z}, capacityType: on-demand}}\n"
            )
        })
        .collect();
    let scenario = format!(
        "name: outage\nduration: 5m\nobjects:\n  manifests: |\n{}timeline:\n{outages}- at: 0s\n  scale: {{deployment: inflate, replicas: 6}}\n",
        indent(&indent(INFLATE))
    );
    let path = write(dir.path(), "outage.yaml", &scenario);
    let report = run_file(&path).unwrap();
    let s = &report.summary;
    assert_eq!((s.pods_running_at_end, s.pods_pending_at_end), (6, 0), "{}", report.to_text());
    assert!(!report.nodes.is_empty());
    assert!(report.nodes.iter().all(|n| n.instance_type != "m5.xlarge"), "{}", report.to_text());
    // The next-cheapest per pod is c5.large ($0.085/h for one pod).
    assert!(report.nodes.iter().all(|n| n.instance_type == "c5.large"), "{}", report.to_text());
}

#[test]
fn malformed_scenarios_name_the_file_field_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("no-name.yaml", "duration: 5m\n".to_string(), "no-name.yaml: .: missing field `name`"),
        (
            "bad-duration.yaml",
            "name: x\nduration: forever\n".to_string(),
            "bad-duration.yaml: duration: invalid duration",
        ),
        (
            "bad-step.yaml",
            "name: x\nduration: 5m\ntimeline:\n- at: 1m\n  scale: {deployment: web}\n".to_string(),
            "bad-step.yaml: timeline[0].scale: missing field `replicas`",
        ),
        (
            "missing-file.yaml",
            "name: x\nduration: 5m\nobjects: {files: [nope.yaml]}\n".to_string(),
            "missing-file.yaml: objects.files[0]: ",
        ),
        (
            "unknown-deployment.yaml",
            "name: x\nduration: 5m\ntimeline:\n- at: 1m\n  scale: {deployment: web, replicas: 2}\n"
                .to_string(),
            "unknown-deployment.yaml: timeline[0].scale.deployment: no Deployment default/web exists at 0:01:00",
        ),
        (
            "bad-delete.yaml",
            "name: x\nduration: 5m\ntimeline:\n- at: 1m\n  delete: {kind: Service, name: web}\n".to_string(),
            "bad-delete.yaml: timeline[0].delete.kind: cannot delete kind \"Service\"",
        ),
        (
            "bad-quantity.yaml",
            format!(
                "name: x\nduration: 5m\nobjects:\n  manifests: |\n{}",
                indent(&indent(&INFLATE.replace("{cpu: 1}", "{cpu: lots}")))
            ),
            "lots",
        ),
    ];
    for (name, text, expected) in cases {
        let path = write(dir.path(), name, &text);
        let err = run_file(&path).expect_err(name).to_string();
        assert!(err.contains(expected), "{name}: {err}");
        if !name.starts_with("bad-quantity") {
            assert!(err.starts_with("failed to load scenario "), "{name}: {err}");
        }
    }
    let missing = run_file(&dir.path().join("absent.yaml")).unwrap_err().to_string();
    assert!(missing.contains("absent.yaml: .: cannot read the file"), "{missing}");
}

#[test]
fn the_spot_example_runs_with_its_capacity_error_and_interruption() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenario-spot.yaml");
    let report = run_file(&path).unwrap();
    let events = |f: fn(&Event) -> bool| report.timeline.iter().filter(|e| f(&e.event)).count();
    assert!(events(|e| matches!(e, Event::CapacityError { .. })) >= 1, "{}", report.to_text());
    assert!(events(|e| matches!(e, Event::InterruptionNotice { .. })) >= 1, "{}", report.to_text());
    assert!(events(|e| matches!(e, Event::Terminated { .. })) >= 1, "{}", report.to_text());
    assert!(report.nodes.iter().any(|n| n.capacity_type.to_string() == "spot"));
    assert_eq!(report.summary.pods_pending_at_end, 0, "{}", report.to_text());
}

#[test]
fn a_capacity_error_for_an_offering_the_catalog_lacks_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "typo.yaml",
        "name: x\nduration: 5m\ntimeline:\n- at: 0s\n  capacityError: {instanceType: m5.xlarge, zone: us-east-1e, capacityType: spot}\n",
    );
    let err = run_file(&path).unwrap_err().to_string();
    assert!(
        err.contains(
            "typo.yaml: timeline[0].capacityError: the catalog has no offering m5.xlarge/us-east-1e/spot"
        ),
        "{err}"
    );
}

#[test]
fn the_seed_option_overrides_the_scenario_seed() {
    let seeded = simulate::run(&SimulateOptions { seed: Some(1), ..SimulateOptions::default() }).unwrap();
    let default = run_default();
    assert_eq!(seeded.seed, 1);
    assert_eq!(default.seed, 42);
    // Names come from the seeded RNG; the decisions do not depend on it.
    assert_ne!(seeded.nodes[0].name, default.nodes[0].name);
    assert_eq!(seeded.summary.total_cost, default.summary.total_cost);
}

#[test]
fn a_pod_nothing_can_host_is_reported_unschedulable() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        "name: too-big\nduration: 2m\nobjects:\n  manifests: |\n{}timeline:\n- at: 0s\n  scale: {{deployment: inflate, replicas: 1}}\n",
        indent(&indent(&INFLATE.replace("{cpu: 1}", "{cpu: 64}")))
    );
    let report = run_file(&write(dir.path(), "too-big.yaml", &scenario)).unwrap();
    let s = &report.summary;
    assert_eq!((s.pods_running_at_end, s.pods_pending_at_end, s.nodes_launched), (0, 1, 0));
    assert_eq!(s.unschedulable.len(), 1, "{}", report.to_text());
    assert_eq!(s.longest_pending_seconds, 120);
    assert!(report.timeline.iter().any(|e| matches!(e.event, Event::Unschedulable { .. })));
    assert!(report.to_text().contains("unschedulable default/inflate-"), "{}", report.to_text());
}

#[test]
fn a_scenario_can_replace_the_catalog_with_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/catalog-small.yaml");
    std::fs::copy(&catalog, dir.path().join("catalog.yaml")).unwrap();
    // Only c5.large and m5.large of the Provisioner's types exist in this catalog.
    let scenario = format!(
        "name: small-catalog\nduration: 3m\ncloud: {{catalog: catalog.yaml}}\nobjects:\n  manifests: |\n{}timeline:\n- at: 0s\n  scale: {{deployment: inflate, replicas: 2}}\n",
        indent(&indent(INFLATE))
    );
    let report = run_file(&write(dir.path(), "small.yaml", &scenario)).unwrap();
    assert_eq!(report.summary.pods_running_at_end, 2, "{}", report.to_text());
    assert!(report.nodes.iter().all(|n| n.instance_type == "c5.large"), "{}", report.to_text());

    let missing = write(dir.path(), "missing.yaml", "name: x\nduration: 1m\ncloud: {catalog: nope.yaml}\n");
    let err = run_file(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.yaml: cloud.catalog: "), "{err}");
}

/// The seed's CPA ladder, nodes → replicas.
fn seed_ladder(nodes: usize) -> usize {
    match nodes {
        0 | 1 => 1,
        2 => 2,
        3 | 4 => 3,
        _ => 5,
    }
}

#[test]
fn a_ladder_target_follows_the_node_count_through_the_default_exercise() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenario-proportional.yaml");
    let report = run_file(&path).expect("the proportional example runs");
    let text = report.to_text();
    let mut nodes = 0usize;
    let mut replicas = Vec::new();
    let mut last_nodes_at_change = Vec::new();
    for entry in &report.timeline {
        match &entry.event {
            Event::Registered { .. } => nodes += 1,
            Event::Terminated { .. } => nodes -= 1,
            Event::Step { action }
                if action.starts_with("proportional: Deployment default/nginx-deployment") =>
            {
                let to = action.split(" to ").nth(1).and_then(|rest| rest.split(' ').next());
                replicas.push(to.and_then(|n| n.parse::<usize>().ok()).expect(action));
                last_nodes_at_change.push(nodes);
            }
            _ => {}
        }
    }
    assert!(replicas.contains(&3), "4 nodes give 3 replicas: {replicas:?}\n{text}");
    assert_eq!(
        replicas.last(),
        Some(&seed_ladder(nodes)),
        "ends on the ladder's value for {nodes} nodes\n{text}"
    );
    assert_eq!(nodes, 1, "consolidation ends on one node\n{text}");
    // Every change lands on the ladder's value for the nodes Ready at that moment, or for one fewer while
    // a node is cordoned for disruption (cordoned nodes do not count, exactly as in CPA).
    for (to, nodes) in replicas.iter().zip(&last_nodes_at_change) {
        assert!(
            *to == seed_ladder(*nodes) || *to == seed_ladder(nodes.saturating_sub(1)),
            "{to} replicas with {nodes} nodes\n{text}"
        );
    }
}

#[test]
fn the_seeds_spot_only_provisioner_runs_inflate_on_spot_nodes_only() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = format!(
        "{}\n---\n{}",
        include_str!("../examples/provisioner-spot.yaml"),
        include_str!("../examples/inflate.yaml")
    );
    let scenario = format!(
        "name: spot-only\nduration: 5m\nobjects:\n  manifests: |\n{}timeline:\n- at: 0s\n  scale: {{deployment: inflate, replicas: 5}}\n",
        indent(&indent(&manifests))
    );
    let report = run_file(&write(dir.path(), "spot.yaml", &scenario)).unwrap();
    let s = &report.summary;
    assert_eq!((s.pods_running_at_end, s.pods_pending_at_end), (5, 0), "{}", report.to_text());
    assert!(!report.nodes.is_empty());
    assert!(report.nodes.iter().all(|n| n.capacity_type.to_string() == "spot"), "{}", report.to_text());
}

#[test]
fn a_provisioner_limit_stops_launches_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let limited = INFLATE.replace(
        "    spec:\n      requirements:",
        "    spec:\n      limits: {resources: {cpu: 4}}\n      requirements:",
    );
    assert_ne!(limited, INFLATE);
    let scenario = format!(
        "name: limited\nduration: 5m\nobjects:\n  manifests: |\n{}timeline:\n- at: 0s\n  scale: {{deployment: inflate, replicas: 6}}\n",
        indent(&indent(&limited))
    );
    let report = run_file(&write(dir.path(), "limited.yaml", &scenario)).unwrap();
    let text = report.to_text();
    // One m5.xlarge (4 vCPU) fills the limit; it runs three pods.
    assert_eq!(report.nodes.len(), 1, "{text}");
    assert_eq!(report.nodes[0].instance_type, "m5.xlarge", "{text}");
    assert_eq!((report.summary.pods_running_at_end, report.summary.pods_pending_at_end), (3, 3), "{text}");
    let reported = report.timeline.iter().any(|e| {
        matches!(&e.event, Event::Step { action } if action == "Provisioner default at its limits (cpu: 4)")
    });
    assert!(reported, "{text}");
    let reason = report.timeline.iter().find_map(|e| match &e.event {
        Event::Unschedulable { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("Provisioner default") && r.contains("limit")),
        "{text}"
    );
}
