//! `ballast simulate`: the real loops over an in-memory cluster and simulated EC2, in virtual time.
//!
//! A scenario ([`scenario`]) names the objects (ordinary Kubernetes and ballast manifests) and a timeline of
//! events. [`cluster`] emulates what a real cluster runs around ballast (API server, deployment and daemonset
//! controllers, kube-scheduler, kubelet), `cloud::sim` emulates EC2, and [`engine`] advances virtual time and
//! runs ballast's loops against them, producing a [`Report`].

pub mod cluster;
pub mod engine;
pub mod objects;
pub mod report;
pub mod scenario;

use std::{path::PathBuf, sync::Arc};

pub use report::Report;

use crate::{cloud, manifest, provisioning};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error("failed to load {object}: {reason}")]
    Invalid { object: String, reason: String },
    #[error(transparent)]
    Catalog(#[from] cloud::catalog::Error),
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error(transparent)]
    Convert(#[from] crate::state::convert::Error),
    #[error("simulated cloud: {0}")]
    Cloud(#[source] cloud::CloudError),
    #[error("provisioning: {0}")]
    Provisioning(#[source] provisioning::Error),
    #[error("disruption: {0}")]
    Disruption(#[source] crate::disruption::Error),
    #[error("garbage collection: {0}")]
    GarbageCollection(#[source] crate::termination::gc::Error),
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

/// Loads the scenario and everything it references, then runs it. Bad input fails before the run starts,
/// with the file, field and reason.
pub fn run(opts: &SimulateOptions) -> Result<Report, Error> {
    let loaded = match &opts.scenario {
        Some(path) => scenario::load_file(path)?,
        None => scenario::load_default()?,
    };
    let seed = opts.seed.or(loaded.scenario.seed).unwrap_or(scenario::DEFAULT_SEED);
    let catalog = match loaded.scenario.cloud.catalog.as_str() {
        "bundled" => cloud::Catalog::bundled(),
        path => {
            let resolved = loaded.resolve(std::path::Path::new(path));
            if !resolved.is_file() {
                return Err(loaded
                    .error("cloud.catalog", format!("{} does not exist or is not a file", resolved.display()))
                    .into());
            }
            Arc::new(cloud::Catalog::from_file(&resolved)?)
        }
    };
    let objects = objects::load(&loaded, &loaded.scenario.objects, "objects")?;
    let mut steps = Vec::new();
    for (index, step) in loaded.scenario.timeline.iter().enumerate() {
        let manifests = match &step.action {
            scenario::Action::Apply(block) => {
                objects::load(&loaded, block, &format!("timeline[{index}].apply"))?
            }
            scenario::Action::Delete(d) if !objects::DELETABLE_KINDS.contains(&d.kind.as_str()) => {
                return Err(loaded
                    .error(
                        format!("timeline[{index}].delete.kind"),
                        format!(
                            "cannot delete kind {:?}; one of {}",
                            d.kind,
                            objects::DELETABLE_KINDS.join(", ")
                        ),
                    )
                    .into());
            }
            scenario::Action::CapacityError(c) => {
                let offered = catalog.get(&c.instance_type).is_some_and(|t| {
                    t.offerings.iter().any(|o| o.zone == c.zone && o.capacity_type == c.capacity_type)
                });
                if !offered {
                    return Err(loaded
                        .error(
                            format!("timeline[{index}].capacityError"),
                            format!("the catalog has no offering {}", c.offering()),
                        )
                        .into());
                }
                Vec::new()
            }
            _ => Vec::new(),
        };
        steps.push(engine::PreparedStep { index, at: step.at, action: step.action.clone(), manifests });
    }
    let simulation = engine::Simulation::new(loaded, seed, catalog);
    // Everything the simulation awaits is in memory and ready at once; no runtime is needed (and callers
    // may already be inside one).
    futures::executor::block_on(simulation.run(objects, steps, opts.progress))
}
