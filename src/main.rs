//! The `ballast` binary: parse flags, start logging, hand over to [`app`].
#![forbid(unsafe_code)]

mod app;

use std::process::ExitCode;

use ballast::{config::Cli, telemetry::logging};
use clap::Parser;

fn main() -> ExitCode {
    // Two crypto providers are linked with the `aws` feature (ring for kube, aws-lc-rs for the AWS SDK), so
    // rustls cannot choose one itself. Err means one is installed already, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut cli = Cli::parse();
    if cli.log.log_level.is_empty() {
        cli.log.log_level = cli.command.default_log_level().to_string();
    }
    let log = match logging::init(&cli.log) {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match app::main(cli.command, log) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "ballast failed");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
