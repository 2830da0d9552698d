//! Tracing output, plain or JSON, with an `EnvFilter` behind a reload handle so `PUT /log-level` changes
//! verbosity without a restart.

use std::{io::IsTerminal, sync::Arc};

use parking_lot::Mutex;
use tracing_subscriber::{EnvFilter, Layer, Registry, layer::SubscriberExt, reload, util::SubscriberInitExt};

use super::{Error, Result};
use crate::config::{LogArgs, LogFormat};

/// Changes the active log filter at runtime.
#[derive(Clone)]
pub struct LogHandle {
    reload: reload::Handle<EnvFilter, Registry>,
    /// The filter string last applied, for `GET /log-level`.
    current: Arc<Mutex<String>>,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle").field("current", &*self.current.lock()).finish()
    }
}

impl LogHandle {
    /// Replaces the filter; an unparsable filter leaves the current one in place.
    pub fn set_filter(&self, filter: &str) -> Result<()> {
        let parsed = parse_filter(filter)?;
        self.reload.reload(parsed).map_err(|_| Error::LoggingGone)?;
        *self.current.lock() = filter.trim().to_string();
        Ok(())
    }

    pub fn current_filter(&self) -> String {
        self.current.lock().clone()
    }
}

fn parse_filter(filter: &str) -> Result<EnvFilter> {
    EnvFilter::builder()
        .parse(filter.trim())
        .map_err(|source| Error::InvalidLogFilter { filter: filter.to_string(), source })
}

/// Builds the subscriber without installing it (tests keep it alive locally).
pub fn subscriber(args: &LogArgs) -> Result<(impl tracing::Subscriber + Send + Sync + 'static, LogHandle)> {
    let (filter, reload) = reload::Layer::new(parse_filter(&args.log_level)?);
    let output = match args.log_format {
        LogFormat::Plain => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let subscriber = Registry::default().with(filter).with(output);
    let handle = LogHandle { reload, current: Arc::new(Mutex::new(args.log_level.trim().to_string())) };
    Ok((subscriber, handle))
}

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init(args: &LogArgs) -> Result<LogHandle> {
    let (subscriber, handle) = subscriber(args)?;
    subscriber.try_init().map_err(Error::LoggingInit)?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(level: &str) -> LogArgs {
        LogArgs { log_level: level.to_string(), log_format: LogFormat::Json }
    }

    #[test]
    fn reload_changes_what_is_enabled() {
        let (subscriber, handle) = subscriber(&args("info")).unwrap();
        let dispatch = tracing::Dispatch::new(subscriber);
        tracing::dispatcher::with_default(&dispatch, || {
            assert!(tracing::enabled!(tracing::Level::INFO));
            assert!(!tracing::enabled!(tracing::Level::DEBUG));
            handle.set_filter("debug").unwrap();
            tracing::callsite::rebuild_interest_cache();
            assert!(tracing::enabled!(tracing::Level::DEBUG));
        });
        assert_eq!(handle.current_filter(), "debug");
    }

    #[test]
    fn bad_filter_is_an_error_and_keeps_the_old_one() {
        let (_subscriber, handle) = subscriber(&args("warn")).unwrap();
        let err = handle.set_filter("ballast=loud").unwrap_err().to_string();
        assert!(err.contains("ballast=loud"), "{err}");
        assert_eq!(handle.current_filter(), "warn");
        assert!(subscriber(&args("=[")).is_err());
    }
}
