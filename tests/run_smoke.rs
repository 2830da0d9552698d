//! `ballast run` end to end against a fake API server on 127.0.0.1: it lists and watches every kind, turns
//! ready once every watch has synced, serves metrics, and exits 0 on SIGTERM.

mod support;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::json;
use support::{
    kube_api::FakeKube,
    process::{Running, write_kubeconfig},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.get(9..12)?.parse().ok()?;
    Some((code, response))
}

fn free_port() -> u16 {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    free.local_addr().unwrap().port()
}

fn start(kubeconfig: &std::path::Path, admin_port: u16, extra: &[&str]) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["run", "--cluster-name", "smoke", "--enable-proportional"])
        .args(["--admin-address", "127.0.0.1", "--admin-port", &admin_port.to_string()])
        .args(extra)
        .env_clear()
        .env("BALLAST_KUBECONFIG", kubeconfig)
        .env("BALLAST_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ballast starts");
    Running(child)
}

async fn wait_ready(running: &mut Running, admin_port: u16) {
    for _ in 0..100 {
        if let Some((200, _)) = get(admin_port, "/readyz").await {
            return;
        }
        assert!(running.0.try_wait().unwrap().is_none(), "ballast exited early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz never turned 200");
}

async fn terminate(mut running: Running) {
    let pid = running.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    for _ in 0..100 {
        if let Some(status) = running.0.try_wait().unwrap() {
            assert!(status.success(), "exit status {status:?}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ballast did not stop within 10 s of SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_becomes_ready_serves_metrics_and_stops_on_sigterm() {
    let fake = FakeKube::new();
    let api = fake.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), api);
    let admin_port = free_port();
    let mut running = start(&kubeconfig, admin_port, &["--leader-elect=false"]);
    wait_ready(&mut running, admin_port).await;

    let listed: Vec<String> =
        fake.requests().into_iter().filter_map(|r| r.strip_prefix("GET ").map(str::to_string)).collect();
    for path in [
        "/api/v1/nodes",
        "/api/v1/pods",
        "/apis/apps/v1/daemonsets",
        "/apis/policy/v1/poddisruptionbudgets",
        "/api/v1/persistentvolumeclaims",
        "/api/v1/persistentvolumes",
        "/apis/storage.k8s.io/v1/storageclasses",
        "/apis/ballast.dev/v1alpha1/provisioners",
        "/apis/ballast.dev/v1alpha1/nodetemplates",
        "/apis/ballast.dev/v1alpha1/nodeclaims",
        "/api/v1/configmaps",
    ] {
        assert!(listed.iter().any(|l| l == path), "{path} was not listed; listed: {listed:?}");
    }
    let (code, metrics) = get(admin_port, "/metrics").await.expect("metrics answer");
    assert_eq!(code, 200);
    assert!(metrics.contains("ballast_leader_is_leader 1"), "{metrics}");
    terminate(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_takes_the_lease_and_releases_it_on_sigterm() {
    let fake = FakeKube::new();
    let api = fake.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), api);
    let admin_port = free_port();
    let mut running = start(&kubeconfig, admin_port, &["--pod-name=ballast-0", "--namespace=ballast"]);
    wait_ready(&mut running, admin_port).await;

    let mut held = false;
    for _ in 0..100 {
        let holder = fake.list("leases").first().map(|l| l["spec"]["holderIdentity"].clone());
        let metrics = get(admin_port, "/metrics").await.map(|(_, m)| m).unwrap_or_default();
        if holder == Some(json!("ballast-0")) && metrics.contains("ballast_leader_is_leader 1") {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(held, "lease never taken: {:?}", fake.list("leases"));
    assert!(
        fake.requests().iter().any(|r| r == "POST /apis/coordination.k8s.io/v1/namespaces/ballast/leases"),
        "{:?}",
        fake.requests()
    );

    terminate(running).await;
    let lease = fake.list("leases")[0].clone();
    assert!(lease["spec"].get("holderIdentity").is_none(), "lease not released: {lease}");
}
