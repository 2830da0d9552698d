//! Running the `ballast` binary against a fake API server: its kubeconfig, and a guard that stops it by PID.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Child,
};

/// Kills the child by PID when the test ends before it exits.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A kubeconfig in `dir` pointing at the plain-HTTP API server on `api`, with a dummy token.
pub fn write_kubeconfig(dir: &Path, api: SocketAddr) -> PathBuf {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: \
             http://{api}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\nusers:\n- name: \
             fake\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    kubeconfig
}
