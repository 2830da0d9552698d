//! `ballast run` end to end against a fake API server on 127.0.0.1: it lists and watches every kind, turns
//! ready once every watch has synced, serves metrics, and exits 0 on SIGTERM.

use std::{
    collections::BTreeSet,
    convert::Infallible,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use axum::{body::Body, extract::Request, response::Response};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers every list with an empty list and holds every watch open without events.
async fn fake_api_server(seen: Arc<Mutex<BTreeSet<String>>>) -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(move |request: Request| {
        let seen = seen.clone();
        async move {
            let watching = request.uri().query().unwrap_or_default().contains("watch=true");
            if !watching {
                seen.lock().insert(request.uri().path().to_string());
            }
            let body = if watching {
                Body::from_stream(futures::stream::pending::<Result<Vec<u8>, Infallible>>())
            } else {
                Body::from(
                    r#"{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":"1"},"items":[]}"#,
                )
            };
            Response::builder().header("content-type", "application/json").body(body).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Kills the child by PID if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.get(9..12)?.parse().ok()?;
    Some((code, response))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_becomes_ready_serves_metrics_and_stops_on_sigterm() {
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let api = fake_api_server(seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: \
             http://{api}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\nusers:\n- name: \
             fake\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    let admin_port = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().port()
    };

    let child = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["run", "--cluster-name", "smoke", "--leader-elect=false", "--enable-proportional"])
        .args(["--admin-address", "127.0.0.1", "--admin-port", &admin_port.to_string()])
        .env_clear()
        .env("BALLAST_KUBECONFIG", &kubeconfig)
        .env("BALLAST_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ballast starts");
    let mut running = Running(child);

    let mut ready = false;
    for _ in 0..100 {
        if let Some((200, _)) = get(admin_port, "/readyz").await {
            ready = true;
            break;
        }
        assert!(running.0.try_wait().unwrap().is_none(), "ballast exited early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "/readyz never turned 200");

    let listed = seen.lock().clone();
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
        assert!(listed.contains(path), "{path} was not listed; listed: {listed:?}");
    }

    let (code, metrics) = get(admin_port, "/metrics").await.expect("metrics answer");
    assert_eq!(code, 200);
    assert!(metrics.contains("ballast_leader_is_leader 1"), "{metrics}");

    let pid = running.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut status = None;
    for _ in 0..100 {
        status = running.0.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.expect("ballast stops within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}
