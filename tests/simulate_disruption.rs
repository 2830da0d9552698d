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
}
