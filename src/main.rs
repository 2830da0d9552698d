//! The `ballast` binary: parse flags, start logging, hand over to [`app`].
#![forbid(unsafe_code)]

mod app;

use std::process::ExitCode;

use ballast::{config::Cli, telemetry::logging};
use clap::Parser;

// mimalloc's size classes waste far less than glibc's malloc on the index's millions of small blocks
// (docs/memory.md: the RSS at 5,000 nodes / 100,000 pods).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
