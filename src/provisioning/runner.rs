//! The node loops of `ballast run`: provisioning (with `--enable-provisioning`), NodeClaim lifecycle, termination
//! and garbage collection over the live index, in that order each pass (as `simulate` runs them), acting only
//! while this replica leads. Disruption and interruption need the last three too: they create replacement claims
//! (launched by the lifecycle) and delete claims (drained and terminated by termination). A pass runs on index changes (debounced), when a loop's timer is due, and at least every [`PERIOD`].

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Provisioner, lifecycle::Lifecycle};
use crate::{
    clock::Clock,
    leader::LeaderGate,
    state::{self, Kind},
    termination::{Terminator, gc::GarbageCollector},
};

/// Termination drains and garbage collection poll at least this often.
pub const PERIOD: Duration = Duration::from_secs(5);
/// Watch events arrive in bursts (a deployment scaled up); one pass handles the burst.
const DEBOUNCE: Duration = Duration::from_millis(200);
const WATCHED: [Kind; 5] = [Kind::Pod, Kind::Node, Kind::NodeClaim, Kind::Provisioner, Kind::NodeTemplate];

pub struct Loops {
    pub index: state::Cluster,
    pub clock: Arc<dyn Clock>,
    /// `None` without `--enable-provisioning`.
    pub provisioner: Option<Provisioner>,
    pub lifecycle: Lifecycle,
    pub terminator: Terminator,
    pub gc: GarbageCollector,
}

impl Loops {
    /// One pass of every loop; returns when the next one is due without changes.
    pub async fn pass(&mut self) -> Option<Timestamp> {
        let now = self.clock.now();
        let provisioned = match &mut self.provisioner {
            Some(provisioner) => provisioner.reconcile(&self.index.snapshot(), now).await,
            None => Ok(None),
        };
        match provisioned {
            Ok(Some((plan, report))) => info!(
                created = report.created.len(),
                failed = report.failed.len(),
                nominated = plan.nominations.len(),
                unschedulable = plan.unschedulable.len(),
                "Provisioning pass"
            ),
            Ok(None) => {}
            Err(error) => warn!(%error, "Provisioning pass failed"),
        }
        let (report, error) = self.lifecycle.reconcile(&self.index.snapshot(), now).await;
        debug!(?report, "NodeClaim lifecycle pass");
        if let Some(error) = error {
            warn!(%error, "NodeClaim lifecycle pass failed");
        }
        let (_, error) = self.terminator.reconcile(&self.index.snapshot(), now).await;
        if let Some(error) = error {
            warn!(%error, "Termination pass failed");
        }
        if let Err(error) = self.gc.reconcile(&self.index.snapshot(), now).await {
            warn!(%error, "Garbage collection failed");
        }
        let snap = self.index.snapshot();
        self.provisioner
            .as_ref()
            .and_then(Provisioner::next_wake)
            .into_iter()
            .chain(self.lifecycle.next_wake(&snap, now))
            .min()
    }

    /// Runs until `shutdown` (the pass in progress finishes) or the index or leader signal is dropped.
    pub async fn run(mut self, gate: LeaderGate, shutdown: CancellationToken) {
        let mut changes = self.index.subscribe();
        let mut leader = gate.receiver();
        loop {
            let mut wake = None;
            if *leader.borrow_and_update() && self.index.synced() {
                match gate.while_leader(self.pass()).await {
                    Some(next) => wake = next,
                    None => warn!("lost the lease while acting: stopped"),
                }
            }
            let until = wake.map_or(PERIOD, |at| {
                let left = at.duration_since(self.clock.now());
                Duration::try_from(left).unwrap_or(Duration::ZERO)
            });
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(until.min(PERIOD)) => {}
                changed = changes.changed(&WATCHED) => {
                    if changed.is_err() {
                        return;
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(DEBOUNCE) => {}
                    }
                }
                changed = leader.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
