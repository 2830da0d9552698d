//! The `ballast` binary's exit codes and environment handling, run as a child process with a cleared
//! environment (so this test process never mutates its own).

use std::process::{Command, Output};

fn ballast(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("the ballast binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn crds_prints_and_succeeds() {
    let output = ballast(&["crds"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn convert_says_not_implemented_and_exits_2() {
    let output = ballast(&["convert"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("not implemented yet"), "{}", stderr(&output));
}

#[test]
fn plan_on_a_missing_snapshot_exits_1_naming_it() {
    let output = ballast(&["plan", "--snapshot", "/nonexistent/snapshot"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("/nonexistent/snapshot") && err.contains("not a directory"), "{err}");
}

#[test]
fn a_failing_simulation_exits_non_zero_with_the_error() {
    let output = ballast(&["simulate", "/nonexistent/scenario.yaml", "--no-progress"], &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("error:"), "{}", stderr(&output));
}

#[test]
fn env_vars_are_read() {
    let output = ballast(&["simulate"], &[("BALLAST_OUTPUT", "yaml")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--output") && stderr(&output).contains("yaml"), "{}", stderr(&output));

    let output = ballast(&["crds"], &[("BALLAST_LOG_LEVEL", "ballast=shouty")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("ballast=shouty"), "{}", stderr(&output));

    // The cluster name comes from the environment, so parsing reaches the bad QPS value.
    let output = ballast(&["run"], &[("BALLAST_CLUSTER_NAME", "prod"), ("BALLAST_KUBE_API_QPS", "0")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--kube-api-qps"), "{}", stderr(&output));
}

#[test]
fn flags_override_env_vars() {
    let output = ballast(&["--log-level", "info", "crds"], &[("BALLAST_LOG_LEVEL", "ballast=shouty")]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn run_refuses_loops_that_are_not_built_yet_and_a_missing_identity() {
    let output = ballast(&["run", "--cluster-name", "prod", "--enable-provisioning"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--enable-provisioning"), "{}", stderr(&output));

    let output = ballast(&["run"], &[("BALLAST_CLUSTER_NAME", "prod")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--pod-name"), "{}", stderr(&output));
}

#[test]
fn run_without_cluster_credentials_fails_clearly() {
    let output = ballast(
        &[
            "run",
            "--cluster-name",
            "prod",
            "--pod-name",
            "ballast-0",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("/nonexistent/kubeconfig"), "{}", stderr(&output));
}

#[test]
fn node_loops_fail_clearly_before_connecting_when_they_cannot_work() {
    // Disruption needs the node loops too: its replacements are launched by the lifecycle loop.
    for flag in ["--enable-provisioning", "--enable-disruption"] {
        let output = ballast(&["run", "--cluster-name", "c", "--leader-elect=false", flag], &[]);
        assert!(!output.status.success());
        let expected = if cfg!(feature = "aws") {
            format!("{flag} needs --cluster-endpoint")
        } else {
            format!("{flag}: ")
        };
        assert!(stderr(&output).contains(&expected), "{}", stderr(&output));
        if !cfg!(feature = "aws") {
            assert!(stderr(&output).contains("no AWS support"), "{}", stderr(&output));
        }
    }
}

#[cfg(not(feature = "aws"))]
#[test]
fn the_interruption_queue_needs_the_aws_feature() {
    let output =
        ballast(&["run", "--cluster-name", "prod", "--pod-name", "b-0", "--interruption-queue", "q"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("--interruption-queue=q") && err.contains("`aws` feature"), "{err}");
}
