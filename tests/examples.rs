//! The seed's manifests under `examples/` load through `manifest` with the seed's values and pass validation.

use std::path::Path;

use ballast::{api::Quantity, manifest::Manifest};
use k8s_openapi::api::core::v1::NodeSelectorRequirement;

fn load(name: &str) -> Vec<Manifest> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    let manifests = ballast::manifest::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    for manifest in &manifests {
        manifest.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    manifests
}

fn requirement(key: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: "In".into(),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
    }
}

#[test]
fn spot_provisioner_and_node_template() {
    let manifests = load("provisioner-spot.yaml");
    assert_eq!(manifests.len(), 2);
    let Manifest::Provisioner(provisioner) = &manifests[0] else { panic!("{:?}", manifests[0]) };
    assert_eq!(manifests[0].name(), Some("default"));
    let spec = &provisioner.spec;
    assert_eq!(spec.requirements, Some(vec![requirement("karpenter.sh/capacity-type", &["spot"])]));
    let limits = spec.limits.as_ref().and_then(|l| l.resources.as_ref()).unwrap();
    assert_eq!(limits.len(), 1);
    assert_eq!(limits["cpu"], Quantity::new("1000"));
    assert_eq!(spec.provider_ref.as_ref().map(|r| r.name.as_str()), Some("default"));
    assert_eq!(spec.ttl_seconds_after_empty, Some(30));
    assert_eq!(spec.consolidation, None);

    let Manifest::NodeTemplate(template) = &manifests[1] else { panic!("{:?}", manifests[1]) };
    assert_eq!(manifests[1].name(), Some("default"));
    for selector in [&template.spec.subnet_selector, &template.spec.security_group_selector] {
        assert_eq!(selector.len(), 1);
        assert_eq!(selector["karpenter.sh/discovery"], "${CLUSTER_NAME}");
    }
}

#[test]
fn consolidation_provisioner() {
    let manifests = load("provisioner-consolidation.yaml");
    assert_eq!(manifests.len(), 1);
    let Manifest::Provisioner(provisioner) = &manifests[0] else { panic!("{:?}", manifests[0]) };
    assert_eq!(manifests[0].name(), Some("default"));
    let spec = &provisioner.spec;
    assert_eq!(spec.consolidation.as_ref().and_then(|c| c.enabled), Some(true));
    assert_eq!(spec.ttl_seconds_after_empty, None);
    assert_eq!(spec.labels.as_ref().unwrap().get("type").map(String::as_str), Some("karpenter"));
    assert_eq!(spec.labels.as_ref().unwrap().len(), 1);
    let limits = spec.limits.as_ref().and_then(|l| l.resources.as_ref()).unwrap();
    assert_eq!(limits["cpu"], Quantity::new("1000"));
    assert_eq!(limits["memory"], Quantity::new("1000Gi"));
    assert_eq!(spec.provider_ref.as_ref().map(|r| r.name.as_str()), Some("default"));
    assert_eq!(
        spec.requirements,
        Some(vec![
            requirement("karpenter.sh/capacity-type", &["on-demand"]),
            requirement("node.kubernetes.io/instance-type", &["c5.large", "m5.large", "m5.xlarge"]),
        ])
    );
}

#[test]
fn inflate_deployment() {
    let manifests = load("inflate.yaml");
    assert_eq!(manifests.len(), 1);
    let Manifest::Deployment(deployment) = &manifests[0] else { panic!("{:?}", manifests[0]) };
    assert_eq!(manifests[0].name(), Some("inflate"));
    let spec = &deployment.spec;
    assert_eq!(spec.replicas, Some(0));
    assert_eq!(spec.selector.match_labels.as_ref().unwrap()["app"], "inflate");
    let template = &spec.template;
    assert_eq!(template.metadata.as_ref().unwrap().labels.as_ref().unwrap()["app"], "inflate");
    let pod = template.spec.as_ref().unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(0));
    assert_eq!(pod.containers.len(), 1);
    let container = &pod.containers[0];
    assert_eq!(container.name, "inflate");
    assert_eq!(container.image.as_deref(), Some("public.ecr.aws/eks-distro/kubernetes/pause:3.7"));
    let requests = container.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests["cpu"].0, "1");
}

#[test]
fn seed_manifests_with_karpenter_api_versions_load_the_same() {
    for name in ["provisioner-spot.yaml", "provisioner-consolidation.yaml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
        let ours = std::fs::read_to_string(&path).unwrap();
        // The seed as Karpenter users wrote it: only apiVersion (and AWSNodeTemplate's kind) differ.
        let theirs = ours
            .replacen(
                "apiVersion: ballast.dev/v1alpha1\nkind: Provisioner",
                "apiVersion: karpenter.sh/v1alpha5\nkind: Provisioner",
                1,
            )
            .replacen(
                "apiVersion: ballast.dev/v1alpha1\nkind: NodeTemplate",
                "apiVersion: karpenter.k8s.aws/v1alpha1\nkind: AWSNodeTemplate",
                1,
            );
        assert_ne!(ours, theirs);
        assert_eq!(
            ballast::manifest::load_str(name, &theirs).unwrap(),
            ballast::manifest::load_str(name, &ours).unwrap()
        );
    }
}
