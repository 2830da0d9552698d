//! Composition root: turns a parsed [`Command`] into running work.

use std::process::ExitCode;

use anyhow::Context;
use ballast::{
    config::{Command, OutputFormat, SimulateArgs},
    simulate,
    telemetry::logging::LogHandle,
};

/// Exit code of the subcommands that are not implemented yet.
const NOT_IMPLEMENTED: u8 = 2;

pub fn main(command: Command, log: LogHandle) -> anyhow::Result<ExitCode> {
    match command {
        Command::Simulate(args) => simulate(&args),
        Command::Crds => {
            print!("{}", ballast::api::crds::crds_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let _ = (args, log);
            not_implemented("run")
        }
        Command::Plan => not_implemented("plan"),
        Command::Convert => not_implemented("convert"),
    }
}

fn not_implemented(command: &str) -> anyhow::Result<ExitCode> {
    eprintln!("ballast {command}: not implemented yet");
    Ok(ExitCode::from(NOT_IMPLEMENTED))
}

fn simulate(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let SimulateArgs { scenario, output, seed, no_progress } = args;
    let options =
        simulate::SimulateOptions { scenario: scenario.clone(), seed: *seed, progress: !no_progress };
    let report = simulate::run(&options).with_context(|| match scenario {
        Some(path) => format!("failed to simulate {}", path.display()),
        None => "failed to simulate the default scenario".to_string(),
    })?;
    match output {
        OutputFormat::Text => print!("{}", report.to_text()),
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&report).context("failed to encode the report")?)
        }
    }
    Ok(ExitCode::SUCCESS)
}
