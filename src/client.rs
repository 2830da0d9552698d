//! The kube client ballast uses: configured from flags, with a client-side token bucket (QPS + burst) as a
//! tower layer so a burst of writes cannot overwhelm the API server (or trip its priority-and-fairness
//! limits), while defaults high enough (200/300, like Karpenter) that hundreds of objects do not starve.

use std::{
    pin::Pin,
    sync::{Arc, atomic::AtomicU64},
    task::{Context, Poll, ready},
    time::Duration,
};

use kube::{
    Client, Config,
    client::ClientBuilder,
    config::{KubeConfigOptions, Kubeconfig},
};
use parking_lot::Mutex;
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use crate::config::ClientArgs;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read kubeconfig {path}: {source}")]
    ReadKubeconfig {
        path: std::path::PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("failed to load kubeconfig (context {context:?}): {source}")]
    Kubeconfig {
        context: Option<String>,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("failed to find cluster credentials (in-cluster service account or $KUBECONFIG): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("failed to build the kube client: {0}")]
    Build(#[source] kube::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How much client-side throttling delays requests: if this grows, raise `--kube-api-qps`.
#[derive(Debug, Clone, Default)]
pub struct ClientMetrics {
    throttled: Counter,
    throttled_seconds: Counter<f64, AtomicU64>,
}

impl ClientMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "throttled_requests",
            "Kube API requests delayed by the client-side rate limit",
            metrics.throttled.clone(),
        );
        registry.register(
            "throttled_seconds",
            "Time kube API requests spent waiting for the client-side rate limit",
            metrics.throttled_seconds.clone(),
        );
        metrics
    }

    fn record(&self, delay: Duration) {
        self.throttled.inc();
        self.throttled_seconds.inc_by(delay.as_secs_f64());
    }
}

/// Builds the client from `--kubeconfig` / `--kube-context` (or in-cluster config), rate limited.
pub async fn build(args: &ClientArgs, metrics: ClientMetrics) -> Result<Client> {
    let ClientArgs { kubeconfig, kube_context, kube_api_qps, kube_api_burst } = args;
    let options = KubeConfigOptions { context: kube_context.clone(), ..Default::default() };
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|source| Error::ReadKubeconfig { path: path.clone(), source })?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|source| Error::Kubeconfig { context: kube_context.clone(), source })?
        }
        None if kube_context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|source| Error::Kubeconfig { context: kube_context.clone(), source })?,
        None => Config::infer().await.map_err(Error::Infer)?,
    };
    let limit = RateLimitLayer::new(*kube_api_qps, *kube_api_burst).with_metrics(metrics);
    Ok(ClientBuilder::try_from(config).map_err(Error::Build)?.with_layer(&limit).build())
}

// === TokenBucket ===

/// Tokens refill at `qps` per second up to `burst`. A request takes one token; when none is left it
/// reserves the next one and waits for it, so waiting requests are served in order at exactly `qps`.
#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// Starts full. `qps` and `burst` of 0 are treated as 1.
    pub fn new(qps: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self { qps: f64::from(qps.max(1)), burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Takes a token and returns how long to wait before using it.
    pub fn reserve(&self) -> Duration {
        let mut state = self.state.lock();
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.qps).min(self.burst) - 1.0;
        *last = now;
        if *tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-*tokens / self.qps) }
    }
}

// === RateLimit layer ===

/// A tower layer that makes every request wait for a token from a shared [`TokenBucket`].
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    bucket: Arc<TokenBucket>,
    metrics: Option<ClientMetrics>,
}

impl RateLimitLayer {
    pub fn new(qps: u32, burst: u32) -> Self {
        Self { bucket: Arc::new(TokenBucket::new(qps, burst)), metrics: None }
    }

    pub fn with_metrics(self, metrics: ClientMetrics) -> Self {
        Self { metrics: Some(metrics), ..self }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
            metrics: self.metrics.clone(),
            wait: None,
            has_token: false,
        }
    }
}

/// Waits for the token in `poll_ready`, so it works under kube's `Buffer` (which drives readiness) and
/// needs no `Clone` of the inner service.
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<TokenBucket>,
    metrics: Option<ClientMetrics>,
    wait: Option<Pin<Box<Sleep>>>,
    has_token: bool,
}

impl<S, Request> Service<Request> for RateLimit<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while !self.has_token {
            match &mut self.wait {
                Some(wait) => {
                    ready!(wait.as_mut().poll(cx));
                    self.wait = None;
                    self.has_token = true;
                }
                None => {
                    let delay = self.bucket.reserve();
                    if delay.is_zero() {
                        self.has_token = true;
                    } else {
                        if let Some(metrics) = &self.metrics {
                            metrics.record(delay);
                        }
                        self.wait = Some(Box::pin(tokio::time::sleep(delay)));
                    }
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.has_token = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let start = Instant::now();
        let metrics = ClientMetrics::default();
        let mut service = RateLimitLayer::new(10, 5)
            .with_metrics(metrics.clone())
            .layer(tower::service_fn(|_: ()| async { Ok::<_, std::convert::Infallible>(Instant::now()) }));
        let mut sent = Vec::new();
        for _ in 0..8 {
            sent.push(service.ready().await.unwrap().call(()).await.unwrap() - start);
        }
        let ms: Vec<u128> = sent.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 0, 0, 0, 0, 100, 200, 300]);
        assert_eq!(metrics.throttled.get(), 3);
        // Sent one after another, each throttled request waited one token interval.
        assert!((metrics.throttled_seconds.get() - 0.3).abs() < 1e-6, "{}", metrics.throttled_seconds.get());
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_refill_while_idle_up_to_the_burst() {
        let bucket = TokenBucket::new(10, 3);
        for _ in 0..3 {
            assert_eq!(bucket.reserve(), Duration::ZERO);
        }
        assert_eq!(bucket.reserve(), Duration::from_millis(100));
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert_eq!(bucket.reserve(), Duration::ZERO);
        }
        assert!(bucket.reserve() > Duration::ZERO, "no more than the burst after a long idle");
    }

    /// The layer on a real kube client: requests still reach the API server, paced.
    #[tokio::test(start_paused = true)]
    async fn kube_client_requests_are_paced() {
        use http::{Request, Response};
        use kube::client::Body;
        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = ClientBuilder::new(mock, "default").with_layer(&RateLimitLayer::new(2, 1)).build();
        let start = Instant::now();
        let server = tokio::spawn(async move {
            let mut at = Vec::new();
            for _ in 0..3 {
                let (_, send) = handle.next_request().await.unwrap();
                at.push((Instant::now() - start).as_millis());
                send.send_response(Response::builder().body(Body::from(b"{}".to_vec())).unwrap());
            }
            at
        });
        for _ in 0..3 {
            let request = http::Request::get("/version").body(Vec::new()).unwrap();
            client.request::<serde_json::Value>(request).await.unwrap();
        }
        assert_eq!(server.await.unwrap(), vec![0, 500, 1000]);
    }
}
