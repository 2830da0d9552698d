//! `ballast simulate`: the real loops over an in-memory cluster and simulated EC2, in virtual time.

pub mod cluster;
pub mod report;
pub mod scenario;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
    #[error("simulate is not implemented yet")]
    NotImplemented,
}

#[derive(Debug, Clone, Default)]
pub struct SimulateOptions {
    /// Scenario file; `None` runs the embedded default (the seed's Karpenter exercise).
    pub scenario: Option<PathBuf>,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// What happened: the timeline and the summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {}

impl Report {
    pub fn to_text(&self) -> String {
        String::new()
    }
}

pub fn run(_opts: &SimulateOptions) -> Result<Report, Error> {
    Err(Error::NotImplemented)
}
