//! The admin HTTP server: `/metrics`, `/healthz`, `/readyz`, and `GET`/`PUT /log-level`.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio_util::sync::CancellationToken;

use super::{Error, Result, logging::LogHandle, metrics};

/// Readiness: true once every watch has synced its initial list.
pub type Readiness = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone)]
pub struct AdminState {
    pub registry: Arc<metrics::Registry>,
    pub ready: Readiness,
    pub log: LogHandle,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(serve_ready))
        .route("/log-level", get(get_log_level).put(put_log_level))
        .with_state(state)
}

async fn serve_metrics(State(state): State<AdminState>) -> Response {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics::encode(&state.registry)).into_response()
}

async fn serve_ready(State(state): State<AdminState>) -> Response {
    if (state.ready)() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: watches have not synced yet\n").into_response()
    }
}

async fn get_log_level(State(state): State<AdminState>) -> String {
    format!("{}\n", state.log.current_filter())
}

async fn put_log_level(State(state): State<AdminState>, body: String) -> Response {
    match state.log.set_filter(&body) {
        Ok(()) => {
            tracing::info!(filter = %body.trim(), "log filter changed");
            (StatusCode::OK, format!("{}\n", body.trim())).into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    }
}

/// Binds `addr` now (so a taken port fails startup) and returns the server future, which runs until
/// `shutdown` is cancelled.
pub async fn bind(
    addr: SocketAddr,
    state: AdminState,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, impl Future<Output = Result<()>>)> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
    let serve = async move {
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(Error::Serve)
    };
    Ok((local, serve))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::body::Body;
    use http::Request;
    use prometheus_client::metrics::counter::Counter;
    use tower::ServiceExt;

    use super::*;
    use crate::{
        config::{LogArgs, LogFormat},
        telemetry::logging,
    };

    struct Fixture {
        router: Router,
        ready: Arc<AtomicBool>,
        log: LogHandle,
        _subscriber: Box<dyn tracing::Subscriber + Send + Sync>,
    }

    fn fixture() -> Fixture {
        let mut registry = metrics::root_registry();
        let counter = Counter::<u64>::default();
        registry.sub_registry_with_prefix("test").register("things", "Things", counter.clone());
        counter.inc_by(3);
        let (subscriber, log) =
            logging::subscriber(&LogArgs { log_level: "info".into(), log_format: LogFormat::Plain }).unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        let flag = ready.clone();
        let state = AdminState {
            registry: Arc::new(registry),
            ready: Arc::new(move || flag.load(Ordering::SeqCst)),
            log: log.clone(),
        };
        Fixture { router: router(state), ready, log, _subscriber: Box::new(subscriber) }
    }

    async fn call(router: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
        let request = Request::builder().method(method).uri(uri).body(Body::from(body.to_string())).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn metrics_are_served_in_openmetrics_format() {
        let f = fixture();
        let request = Request::get("/metrics").body(Body::empty()).unwrap();
        let response = f.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], metrics::CONTENT_TYPE);
        let (_, body) = call(&f.router, "GET", "/metrics", "").await;
        assert!(body.contains("ballast_test_things_total 3"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
    }

    #[tokio::test]
    async fn readyz_follows_the_readiness_check_and_healthz_is_always_ok() {
        let f = fixture();
        assert_eq!(call(&f.router, "GET", "/readyz", "").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(call(&f.router, "GET", "/healthz", "").await.0, StatusCode::OK);
        f.ready.store(true, Ordering::SeqCst);
        assert_eq!(call(&f.router, "GET", "/readyz", "").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn log_level_can_be_read_and_changed() {
        let f = fixture();
        assert_eq!(call(&f.router, "GET", "/log-level", "").await, (StatusCode::OK, "info\n".into()));
        let (status, _) = call(&f.router, "PUT", "/log-level", "info,ballast=debug\n").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(f.log.current_filter(), "info,ballast=debug");
        let (status, body) = call(&f.router, "PUT", "/log-level", "ballast=shouty").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("ballast=shouty"), "{body}");
        assert_eq!(f.log.current_filter(), "info,ballast=debug");
        assert_eq!(call(&f.router, "POST", "/log-level", "debug").await.0, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn server_binds_a_free_port_and_stops_on_cancel() {
        let f = fixture();
        let shutdown = CancellationToken::new();
        let state = AdminState {
            registry: Arc::new(metrics::root_registry()),
            ready: Arc::new(|| true),
            log: f.log.clone(),
        };
        let (addr, serve) = bind("127.0.0.1:0".parse().unwrap(), state, shutdown.clone()).await.unwrap();
        let server = tokio::spawn(serve);
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
        // A second server on the same port fails loudly with the address in the error.
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let state =
            AdminState { registry: Arc::new(metrics::root_registry()), ready: Arc::new(|| true), log: f.log };
        let err = bind(addr, state, CancellationToken::new()).await.err().unwrap().to_string();
        assert!(err.contains(&addr.to_string()), "{err}");
    }
}
