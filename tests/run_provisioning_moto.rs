//! `ballast run --enable-provisioning` end to end: the binary watches a fake kube API server holding a
//! Provisioner, a NodeTemplate and three pending pods, creates a NodeClaim, launches its instance in moto (EC2)
//! and records it on the claim.
#![cfg(feature = "aws")]

mod support;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::{
    kube_api::FakeKube,
    moto::{self, seed_network},
    process::{Running, write_kubeconfig},
};

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c", "image": "pause", "resources": {"requests": {"cpu": "1"}}}]},
        "status": {"phase": "Pending"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_pods_become_a_node_claim_and_a_tagged_instance_in_moto() {
    let moto = moto::shared();
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config().await);
    let cluster = format!("e2e{}", std::process::id());
    let ami = seed_network(&ec2, &cluster).await.ami;

    let kube = FakeKube::new();
    kube.insert(
        "provisioners",
        json!({
            "apiVersion": "ballast.dev/v1alpha1", "kind": "Provisioner", "metadata": {"name": "default"},
            "spec": {
                "requirements": [
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m5.large", "m5.xlarge"]}
                ],
                "providerRef": {"name": "default"}
            }
        }),
    );
    kube.insert(
        "nodetemplates",
        json!({
            "apiVersion": "ballast.dev/v1alpha1", "kind": "NodeTemplate", "metadata": {"name": "default"},
            "spec": {
                "subnetSelector": {"karpenter.sh/discovery": cluster},
                "securityGroupSelector": {"karpenter.sh/discovery": cluster},
                "amiSelector": {"aws::ids": ami},
                "instanceProfile": "KarpenterNodeInstanceProfile"
            }
        }),
    );
    for name in ["a", "b", "c"] {
        kube.insert("pods", pod(name));
    }
    let api = kube.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), api);
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _ballast = Running(
        Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(["run", "--cluster-name", &cluster, "--enable-provisioning", "--leader-elect=false"])
            .args(["--cluster-endpoint", "https://cluster.example"])
            .args(["--admin-address", "127.0.0.1", "--admin-port", &admin_port.to_string()])
            .env_clear()
            .env("BALLAST_KUBECONFIG", &kubeconfig)
            .env("BALLAST_LOG_LEVEL", "info")
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_REGION", moto::REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ballast starts"),
    );

    // A NodeClaim whose status records the instance.
    let deadline = Instant::now() + Duration::from_secs(60);
    let claim = loop {
        let launched = kube.list("nodeclaims").into_iter().find(|c| c["status"]["providerID"].is_string());
        if let Some(claim) = launched {
            break claim;
        }
        assert!(
            Instant::now() < deadline,
            "no launched NodeClaim within 60 s: {:?}",
            kube.list("nodeclaims")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let name = claim["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("default-"), "{name}");
    assert_eq!(kube.list("nodeclaims").len(), 1, "one claim for three 1-CPU pods");
    let instance_type = claim["status"]["instanceType"].as_str().expect("instanceType recorded");
    assert!(["m5.large", "m5.xlarge"].contains(&instance_type), "{instance_type}");

    let provider_id = claim["status"]["providerID"].as_str().unwrap();
    let id = provider_id.rsplit('/').next().unwrap();
    let described = ec2.describe_instances().instance_ids(id).send().await.unwrap();
    let instance = &described.reservations()[0].instances()[0];
    let tags: std::collections::BTreeMap<&str, &str> =
        instance.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
    assert_eq!(tags.get(format!("kubernetes.io/cluster/{cluster}").as_str()), Some(&"owned"), "{tags:?}");
    assert_eq!(tags.get("ballast.dev/provisioner"), Some(&"default"), "{tags:?}");
    assert_eq!(tags.get("ballast.dev/nodeclaim"), Some(&name), "{tags:?}");
    assert_eq!(instance.instance_type().map(|t| t.as_str()), Some(instance_type));

    // Termination keeps its finalizer on the claim, so deleting it terminates the instance first.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kube.list("nodeclaims")[0]["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == "ballast.dev/termination"))
    {
        assert!(Instant::now() < deadline, "no termination finalizer: {:?}", kube.list("nodeclaims"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
