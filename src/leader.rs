//! Leader election over a coordination.k8s.io Lease: every replica indexes, only the holder acts.
//!
//! [`kube-lease-manager`](kube_lease_manager) acquires and renews the Lease. Around it, a supervisor
//! publishes the [`LeaderGate`] that loops check before every act, and independently re-reads the Lease:
//! if this replica believes it leads but the Lease names another holder or has not been renewed within
//! its duration, the lease task is hung, so the gate closes at once and the supervisor fails (the process
//! exits and restarts rather than acting without a lease).

use std::{future::Future, sync::Arc, time::Duration};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to set up the lease {namespace}/{name}: {source}")]
    Setup {
        namespace: String,
        name: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    #[error("lease task for {0} ended unexpectedly")]
    LeaseTaskEnded(String),
    #[error(
        "lease {lease} is {state} although this replica ({identity}) believes it holds it: lease task hung"
    )]
    LeaseTaskHung { lease: String, identity: String, state: LeaseState },
    #[error("could not confirm lease {lease} for {unconfirmed:?}: {reason}")]
    Unconfirmed { lease: String, unconfirmed: Duration, reason: String },
    #[error("failed to release lease {lease}: {source}")]
    Release {
        lease: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

// === LeaderGate ===

/// Whether this replica may act now. Cheap to clone; every loop holds one and checks it before each act.
#[derive(Debug, Clone)]
pub struct LeaderGate {
    rx: watch::Receiver<bool>,
    /// Keeps an [`always`](Self::always) channel open: loops treat a closed signal as "the election ended".
    _always: Option<Arc<watch::Sender<bool>>>,
}

impl LeaderGate {
    pub fn new(rx: watch::Receiver<bool>) -> Self {
        Self { rx, _always: None }
    }

    /// A gate that is always open: `simulate`, tests, and `--leader-elect=false` (a single replica). The
    /// channel stays open while any clone of this gate lives.
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        Self { rx, _always: Some(Arc::new(tx)) }
    }

    /// The raw signal, for loops that select on it themselves.
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }

    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once this replica leads (at once if it already does). Never resolves if the election
    /// has ended without leadership: the supervisor then ends the process.
    pub async fn acquired(&mut self) {
        if self.rx.wait_for(|leader| *leader).await.is_err() && !self.is_leader() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves when leadership is lost. A closed channel keeps its last value: [`LeaderGate::always`]
    /// never loses, and a supervisor closes the gate before it ends.
    pub async fn lost(&mut self) {
        if self.rx.wait_for(|leader| !*leader).await.is_err() && self.is_leader() {
            std::future::pending::<()>().await;
        }
    }

    /// Runs `act` only if this replica leads, and drops it at its next `.await` as soon as leadership is
    /// lost: a former leader must not keep writing. `None` when it did not run to completion.
    pub async fn while_leader<F: Future>(&self, act: F) -> Option<F::Output> {
        if !self.is_leader() {
            return None;
        }
        let mut watcher = self.clone();
        tokio::select! {
            biased;
            () = watcher.lost() => None,
            out = act => Some(out),
        }
    }
}

/// Runs `act` every `interval` while this replica leads, until `shutdown`. The gate is checked right
/// before every act and an act in progress is cancelled when the lease is lost; on shutdown the act in
/// progress finishes (in-flight writes complete) and no new one starts.
pub async fn run_gated<F, Fut>(
    mut gate: LeaderGate,
    shutdown: CancellationToken,
    interval: Duration,
    mut act: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = gate.acquired() => {}
        }
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let act = gate.while_leader(act());
        // Not raced against `shutdown`: let the current act finish its writes.
        if act.await.is_none() {
            tracing::warn!("lost the lease while acting: stopped");
        }
    }
}

// === Lease supervision ===

/// What the Lease object says, seen from this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    HeldByUs,
    HeldBy(String),
    /// Held by us on paper, but not renewed within its duration.
    Expired {
        renewed: Option<Timestamp>,
    },
}

impl std::fmt::Display for LeaseState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::HeldByUs => f.write_str("held by this replica"),
            Self::HeldBy(other) => write!(f, "held by {other:?}"),
            Self::Expired { renewed: Some(at) } => write!(f, "expired (last renewed {at})"),
            Self::Expired { renewed: None } => f.write_str("expired (never renewed)"),
        }
    }
}

/// Reads the Lease as the API server has it. `duration` applies when the Lease does not state one.
pub fn assess_lease(lease: &Lease, identity: &str, now: Timestamp, duration: Duration) -> LeaseState {
    let spec = lease.spec.clone().unwrap_or_default();
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == identity => {}
        holder => return LeaseState::HeldBy(holder.unwrap_or_default().to_string()),
    }
    let duration = spec
        .lease_duration_seconds
        .map(|s| SignedDuration::from_secs(s.into()))
        .unwrap_or_else(|| SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX));
    let renewed = spec.renew_time.or(spec.acquire_time).map(|t| t.0);
    match renewed {
        Some(at) if at + duration >= now => LeaseState::HeldByUs,
        renewed => LeaseState::Expired { renewed },
    }
}

#[derive(Debug, Clone)]
pub struct LeaderMetrics {
    is_leader: Gauge,
    transitions: Counter,
}

impl LeaderMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self { is_leader: Gauge::default(), transitions: Counter::default() };
        registry.register("is_leader", "1 while this replica holds the lease", metrics.is_leader.clone());
        registry.register(
            "transitions",
            "Times this replica gained or lost the lease",
            metrics.transitions.clone(),
        );
        metrics
    }

    /// Without election (`--leader-elect=false`) this replica always acts.
    pub fn set_always_leader(&self) {
        self.is_leader.set(1);
    }
}

/// Inputs of the supervisor, separate from kube so the state machine is tested with fakes.
pub struct Supervisor<C> {
    /// kube-lease-manager's "am I leader" channel; closed when its task ends.
    pub manager: watch::Receiver<bool>,
    /// Re-reads the Lease.
    pub confirm: C,
    /// How often the holder re-reads the Lease.
    pub check_every: Duration,
    /// How long the holder may go without a successful re-read before it stops acting.
    pub max_unconfirmed: Duration,
    pub lease: String,
    pub identity: String,
    pub metrics: Option<LeaderMetrics>,
}

impl<C, Fut> Supervisor<C>
where
    C: FnMut() -> Fut,
    Fut: Future<Output = Result<LeaseState, kube::Error>>,
{
    /// Publishes leadership on `gate` until `release` is cancelled (then `Ok`) or the lease can no longer be
    /// trusted (then `Err`). The gate is closed on every exit path.
    pub async fn run(mut self, gate: watch::Sender<bool>, release: CancellationToken) -> Result<()> {
        let result = self.supervise(&gate, &release).await;
        self.publish(&gate, false);
        result
    }

    async fn supervise(&mut self, gate: &watch::Sender<bool>, release: &CancellationToken) -> Result<()> {
        let mut last_confirmed = tokio::time::Instant::now();
        let mut ticker = tokio::time::interval(self.check_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = release.cancelled() => return Ok(()),
                changed = self.manager.changed() => {
                    if changed.is_err() {
                        return Err(Error::LeaseTaskEnded(self.lease.clone()));
                    }
                    let leader = *self.manager.borrow_and_update();
                    if leader {
                        last_confirmed = tokio::time::Instant::now();
                    }
                    self.publish(gate, leader);
                }
                _ = ticker.tick(), if *gate.borrow() => {
                    let confirmed = match tokio::time::timeout(self.check_every, (self.confirm)()).await {
                        Ok(Ok(state)) => Ok(state),
                        Ok(Err(error)) => Err(error.to_string()),
                        Err(_) => Err(format!("re-reading the lease took longer than {:?}", self.check_every)),
                    };
                    match confirmed {
                        Ok(LeaseState::HeldByUs) => last_confirmed = tokio::time::Instant::now(),
                        Ok(state) => {
                            self.publish(gate, false);
                            return Err(Error::LeaseTaskHung {
                                lease: self.lease.clone(),
                                identity: self.identity.clone(),
                                state,
                            });
                        }
                        Err(reason) if last_confirmed.elapsed() > self.max_unconfirmed => {
                            self.publish(gate, false);
                            return Err(Error::Unconfirmed {
                                lease: self.lease.clone(),
                                unconfirmed: last_confirmed.elapsed(),
                                reason,
                            });
                        }
                        Err(error) => tracing::warn!(%error, lease = %self.lease, "failed to re-read the lease"),
                    }
                }
            }
        }
    }

    fn publish(&self, gate: &watch::Sender<bool>, leader: bool) {
        let changed = gate.send_if_modified(|current| std::mem::replace(current, leader) != leader);
        if changed {
            tracing::info!(leader, lease = %self.lease, identity = %self.identity, "leadership changed");
            if let Some(metrics) = &self.metrics {
                metrics.is_leader.set(leader.into());
                metrics.transitions.inc();
            }
        }
    }
}

/// Where the Lease lives and who this replica is.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// The pod name.
    pub identity: String,
    pub duration: Duration,
    pub renew_grace: Duration,
}

/// A running election: the gate loops use, and the supervisor task.
pub struct Election {
    pub gate: LeaderGate,
    /// Ends with `Err` when the lease can no longer be trusted; the caller must then exit.
    pub task: tokio::task::JoinHandle<Result<()>>,
    release: CancellationToken,
}

impl Election {
    /// Closes the gate and gives the Lease up so another replica takes over without waiting for expiry.
    /// Call after the loops have finished their in-flight writes.
    pub async fn release(self) -> Result<()> {
        self.release.cancel();
        match self.task.await {
            Ok(result) => result,
            Err(join) => {
                tracing::error!(error = %join, "lease supervisor panicked");
                Ok(())
            }
        }
    }
}

/// Starts leader election. The Lease is created if missing.
pub async fn elect(client: Client, config: LeaseConfig, metrics: LeaderMetrics) -> Result<Election> {
    let LeaseConfig { namespace, name, identity, duration, renew_grace } = config;
    let lease = format!("{namespace}/{name}");
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &name)
        .with_namespace(&namespace)
        .with_identity(&identity)
        .with_duration(duration.as_secs())
        .with_grace(renew_grace.as_secs())
        .build()
        .await
        .map_err(|source| Error::Setup { namespace: namespace.clone(), name: name.clone(), source })?;
    let (manager_rx, manager_task) = manager.watch().await;

    let api: Api<Lease> = Api::namespaced(client, &namespace);
    let supervisor = Supervisor {
        manager: manager_rx,
        confirm: {
            let (api, name, identity) = (api, name.clone(), identity.clone());
            move || {
                let (api, name, identity) = (api.clone(), name.clone(), identity.clone());
                async move {
                    let lease = api.get(&name).await?;
                    Ok(assess_lease(&lease, &identity, Timestamp::now(), duration))
                }
            }
        },
        check_every: duration / 3,
        max_unconfirmed: duration.saturating_sub(renew_grace),
        lease: lease.clone(),
        identity,
        metrics: Some(metrics),
    };
    let (gate_tx, gate_rx) = watch::channel(false);
    let release = CancellationToken::new();
    let task = tokio::spawn({
        let release = release.clone();
        async move {
            let result = supervisor.run(gate_tx, release).await;
            // The supervisor dropped the manager's channel: the manager task releases the Lease and ends.
            match tokio::time::timeout(duration, manager_task).await {
                Ok(Ok(Err(source))) => {
                    tracing::warn!(error = %source, %lease, "failed to release the lease");
                    result.and(Err(Error::Release { lease, source }))
                }
                Ok(_) => result,
                Err(_) => {
                    tracing::warn!(%lease, "lease release timed out; it will expire instead");
                    result
                }
            }
        }
    });
    Ok(Election { gate: LeaderGate::new(gate_rx), task, release })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use k8s_openapi::{api::coordination::v1::LeaseSpec, apimachinery::pkg::apis::meta::v1::MicroTime};

    use super::*;

    fn lease(holder: &str, renewed: Timestamp, duration_s: i32) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(duration_s),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn lease_assessment() {
        let now: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let d = Duration::from_secs(15);
        let ago = |s: i64| now - SignedDuration::from_secs(s);
        assert_eq!(assess_lease(&lease("me", ago(5), 15), "me", now, d), LeaseState::HeldByUs);
        assert_eq!(
            assess_lease(&lease("other", ago(5), 15), "me", now, d),
            LeaseState::HeldBy("other".into())
        );
        assert_eq!(
            assess_lease(&lease("me", ago(16), 15), "me", now, d),
            LeaseState::Expired { renewed: Some(ago(16)) }
        );
        assert_eq!(assess_lease(&Lease::default(), "me", now, d), LeaseState::HeldBy(String::new()));
    }

    /// The loop helper a replica uses: acts while leading, stops at once when the fake lease is lost,
    /// resumes when regained.
    #[tokio::test(start_paused = true)]
    async fn a_replica_that_loses_the_lease_stops_acting() {
        let (lease, rx) = watch::channel(true);
        let acts = Arc::new(AtomicUsize::new(0));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_gated(LeaderGate::new(rx), shutdown.clone(), Duration::from_secs(1), {
            let acts = acts.clone();
            move || {
                let acts = acts.clone();
                async move {
                    acts.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(acts.load(Ordering::SeqCst), 3, "acts at t=0, 1, 2 while leading");

        lease.send(false).unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(acts.load(Ordering::SeqCst), 3, "no act after the lease is lost");

        lease.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(acts.load(Ordering::SeqCst) >= 4, "acting resumes when the lease is regained");

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), task).await.unwrap().unwrap();
    }

    /// An act in progress is dropped at its next await when the lease is lost mid-act.
    #[tokio::test(start_paused = true)]
    async fn an_act_in_progress_stops_when_the_lease_is_lost() {
        let (lease, rx) = watch::channel(true);
        let gate = LeaderGate::new(rx);
        let writes = Arc::new(AtomicUsize::new(0));
        let act = {
            let writes = writes.clone();
            async move {
                for _ in 0..10 {
                    writes.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let running = tokio::spawn(async move { gate.while_leader(act).await });
        tokio::time::sleep(Duration::from_millis(2500)).await;
        lease.send(false).unwrap();
        assert_eq!(running.await.unwrap(), None);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(writes.load(Ordering::SeqCst), 3);
        assert_eq!(LeaderGate::new(lease.subscribe()).while_leader(async { 1 }).await, None);
        assert_eq!(LeaderGate::always().while_leader(async { 1 }).await, Some(1));
    }

    /// On shutdown the act in progress completes, and no new one starts.
    #[tokio::test(start_paused = true)]
    async fn shutdown_lets_the_act_in_progress_finish() {
        let shutdown = CancellationToken::new();
        let done = Arc::new(AtomicUsize::new(0));
        let task =
            tokio::spawn(run_gated(LeaderGate::always(), shutdown.clone(), Duration::from_secs(60), {
                let done = done.clone();
                move || {
                    let done = done.clone();
                    async move {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    fn supervisor(
        manager: watch::Receiver<bool>,
        answers: Arc<parking_lot::Mutex<Vec<Result<LeaseState, kube::Error>>>>,
    ) -> Supervisor<impl FnMut() -> std::future::Ready<Result<LeaseState, kube::Error>>> {
        Supervisor {
            manager,
            confirm: move || {
                let mut answers = answers.lock();
                std::future::ready(if answers.is_empty() {
                    Ok(LeaseState::HeldByUs)
                } else {
                    answers.remove(0)
                })
            },
            check_every: Duration::from_secs(5),
            max_unconfirmed: Duration::from_secs(10),
            lease: "kube-system/ballast-leader".into(),
            identity: "ballast-0".into(),
            metrics: None,
        }
    }

    fn api_error() -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure("etcd timeout", "Timeout").with_code(504)))
    }

    #[tokio::test(start_paused = true)]
    async fn supervisor_follows_the_lease_manager_and_releases() {
        let (manager, manager_rx) = watch::channel(false);
        let (gate_tx, gate_rx) = watch::channel(false);
        let release = CancellationToken::new();
        let task = tokio::spawn(supervisor(manager_rx, Default::default()).run(gate_tx, release.clone()));
        manager.send(true).unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(*gate_rx.borrow());
        manager.send(false).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!*gate_rx.borrow(), "losing the lease closes the gate at once");
        manager.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        release.cancel();
        task.await.unwrap().unwrap();
        assert!(!*gate_rx.borrow(), "released: the gate is closed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_lease_task_fails_the_supervisor() {
        let (manager, manager_rx) = watch::channel(false);
        let (gate_tx, gate_rx) = watch::channel(false);
        let task =
            tokio::spawn(supervisor(manager_rx, Default::default()).run(gate_tx, CancellationToken::new()));
        manager.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(*gate_rx.borrow());
        drop(manager);
        let err = task.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::LeaseTaskEnded(_)), "{err}");
        assert!(!*gate_rx.borrow());
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_lease_task_is_detected_from_the_lease_object() {
        let (manager, manager_rx) = watch::channel(false);
        let (gate_tx, gate_rx) = watch::channel(false);
        let answers = Arc::new(parking_lot::Mutex::new(vec![
            Ok(LeaseState::HeldByUs),
            Ok(LeaseState::HeldBy("ballast-1".into())),
        ]));
        let task = tokio::spawn(supervisor(manager_rx, answers).run(gate_tx, CancellationToken::new()));
        manager.send(true).unwrap();
        let err = tokio::time::timeout(Duration::from_secs(60), task).await.unwrap().unwrap().unwrap_err();
        assert!(err.to_string().contains("held by \"ballast-1\""), "{err}");
        assert!(!*gate_rx.borrow());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unconfirmable_lease_stops_acting_after_the_limit() {
        let (manager, manager_rx) = watch::channel(false);
        let (gate_tx, gate_rx) = watch::channel(false);
        let answers = Arc::new(parking_lot::Mutex::new((0..10).map(|_| Err(api_error())).collect()));
        let task = tokio::spawn(supervisor(manager_rx, answers).run(gate_tx, CancellationToken::new()));
        manager.send(true).unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(*gate_rx.borrow(), "one failed re-read within the limit is tolerated");
        let err = tokio::time::timeout(Duration::from_secs(60), task).await.unwrap().unwrap().unwrap_err();
        assert!(matches!(err, Error::Unconfirmed { .. }), "{err}");
        assert!(!*gate_rx.borrow());
    }
}
