//! The seed exercise with disruption running: inflate 0 → 12 → 5 → 1 with consolidation enabled ends on one
//! small node with every pod running, and the timeline shows each consolidation with its reason and savings.

use ballast::simulate::{self, SimulateOptions, report::Event};

#[test]
fn the_seed_exercise_consolidates_down_to_one_small_node() {
    let report = simulate::run(&SimulateOptions::default()).expect("the default scenario runs");
    let text = report.to_text();
    let s = &report.summary;
    assert_eq!((s.pods_running_at_end, s.pods_pending_at_end), (1, 0), "{text}");
    let alive: Vec<_> = report.nodes.iter().filter(|n| n.terminated_at.is_none()).collect();
    assert_eq!(alive.len(), 1, "{text}");
    assert!(["c5.large", "m5.large"].contains(&alive[0].instance_type.as_str()), "{text}");
    let disruptions: Vec<_> = report
        .timeline
        .iter()
        .filter_map(|e| match &e.event {
            Event::Disrupted { reason, savings_per_hour, .. } => Some((reason.clone(), *savings_per_hour)),
            _ => None,
        })
        .collect();
    assert!(!disruptions.is_empty(), "{text}");
    assert!(disruptions.iter().all(|(reason, saved)| reason == "underutilized" && *saved > 0.0), "{text}");
    assert!(text.contains("saves $"), "{text}");
    // Consolidation moves pods without an outage: once running, the deployment always has a pod running
    // (a replace evicts onto the ready replacement, and the pods are replaced and bound in the same tick).
    let counts: Vec<(usize, usize)> = report
        .timeline
        .iter()
        .filter_map(|e| match e.event {
            Event::Pods { pending, running } => Some((pending, running)),
            _ => None,
        })
        .skip_while(|&(_, running)| running == 0)
        .collect();
    assert!(counts.iter().all(|&(pending, running)| running > 0 && pending == 0), "{text}");
}

const SPOT_SCENARIO: &str = r#"
name: spot-interruption
seed: 3
duration: 10m
cloud: {launchDelay: 5s, registrationDelay: 30s, catalog: bundled}
objects:
  manifests: |
    apiVersion: ballast.dev/v1alpha1
    kind: Provisioner
    metadata: {name: spot}
    spec:
      requirements:
        - {key: karpenter.sh/capacity-type, operator: In, values: [spot]}
        - {key: node.kubernetes.io/instance-type, operator: In, values: [c5.xlarge, m5.xlarge]}
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, namespace: default}
    spec:
      replicas: 0
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers:
            - {name: web, image: nginx, resources: {requests: {cpu: 1, memory: 1Gi}}}
timeline:
  - at: 0s
    scale: {deployment: web, replicas: 3}
  - at: 3m
    interrupt: {count: 1}
"#;

/// One launch: the batch window closes 1 s after the pods appear, then launch (5 s) and registration (30 s),
/// and the kube-scheduler binds on the next one-second tick.
const ONE_LAUNCH_SECONDS: i64 = 1 + 5 + 30 + 1;

#[test]
fn a_spot_interruption_drains_and_replaces_the_node_before_the_reclaim_with_no_pod_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spot.yaml");
    std::fs::write(&path, SPOT_SCENARIO).unwrap();
    let report =
        simulate::run(&SimulateOptions { scenario: Some(path), seed: None, progress: false }).unwrap();
    let text = report.to_text();
    let at = |e: &ballast::simulate::report::Entry| e.offset_seconds;

    let notice = report
        .timeline
        .iter()
        .find(|e| matches!(e.event, Event::InterruptionNotice { .. }))
        .unwrap_or_else(|| panic!("no interruption notice:\n{text}"));
    let Event::InterruptionNotice { node: interrupted, .. } = &notice.event else { unreachable!() };
    let reclaim = at(notice) + 120;

    // Drained from the queue message at once.
    let drained = report
        .timeline
        .iter()
        .find(|e| matches!(&e.event, Event::Drained { node, .. } if node == interrupted))
        .unwrap_or_else(|| panic!("{interrupted} was not drained:\n{text}"));
    assert_eq!(at(drained), at(notice), "{text}");
    // The replacement launched within seconds, and the node was gone before EC2 reclaimed it.
    let replacement = report
        .timeline
        .iter()
        .find(|e| at(e) >= at(notice) && matches!(e.event, Event::Launched { .. }))
        .unwrap_or_else(|| panic!("no replacement launched:\n{text}"));
    assert!(at(replacement) < reclaim, "replacement at {}s, reclaim at {reclaim}s:\n{text}", at(replacement));
    // ... and not into the spot pool that is being reclaimed.
    let interrupted_pool = report
        .nodes
        .iter()
        .find(|n| &n.name == interrupted)
        .map(|n| (n.instance_type.clone(), n.zone.clone()))
        .unwrap_or_else(|| panic!("no record of {interrupted}:\n{text}"));
    let Event::Launched { instance_type, zone, .. } = &replacement.event else { unreachable!() };
    assert_ne!((instance_type.clone(), zone.clone()), interrupted_pool, "{text}");
    let terminated = report
        .timeline
        .iter()
        .find_map(|e| match &e.event {
            Event::Terminated { node, reason, .. } if node == interrupted => Some((at(e), reason.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{interrupted} was not terminated:\n{text}"));
    assert!(
        terminated.0 < reclaim && terminated.1 == "drained (spot interruption)",
        "{terminated:?}\n{text}"
    );

    // No pod was lost: every pod runs at the end, and none waited longer than one launch.
    let s = &report.summary;
    assert_eq!((s.pods_running_at_end, s.pods_pending_at_end), (3, 0), "{text}");
    assert!(s.longest_pending_seconds <= ONE_LAUNCH_SECONDS, "{s:?}\n{text}");
    assert!(report.nodes.iter().filter(|n| n.terminated_at.is_none()).count() >= 1, "{text}");
}
