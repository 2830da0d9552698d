//! Logging, metrics, the admin HTTP server and shutdown signals.

pub mod admin;
pub mod logging;
pub mod metrics;
pub mod shutdown;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to parse log filter {filter:?}: {source}")]
    InvalidLogFilter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("failed to change the log filter: the logging subscriber is gone")]
    LoggingGone,
    #[error("failed to install the global logging subscriber: {0}")]
    LoggingInit(#[source] tracing_subscriber::util::TryInitError),
    #[error("failed to bind the admin server to {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("admin server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("failed to listen for {signal}: {source}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
