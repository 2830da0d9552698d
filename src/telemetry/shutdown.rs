//! SIGTERM / SIGINT → a [`CancellationToken`] every task watches: loops stop starting new work, in-flight
//! writes finish, the lease is released, the admin server drains.

use tokio_util::sync::CancellationToken;

use super::{Error, Result};

/// Cancels `token` on the first SIGTERM or SIGINT. Returns once the handlers are installed, so a signal
/// arriving right after startup is not lost.
pub fn cancel_on_signal(token: CancellationToken) -> Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|source| Error::Signal { signal: "SIGTERM", source })?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|source| Error::Signal { signal: "SIGINT", source })?;
    Ok(tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            () = token.cancelled() => return,
        };
        tracing::info!(signal = name, "shutting down: stopping loops, finishing in-flight writes");
        token.cancel();
    }))
}
