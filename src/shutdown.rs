//! Shutdown as a signal passed into every task.
//!
//! Binaries create one [`CancellationToken`] with [`on_terminate_signals`]; library code takes
//! it (or a child of it) as an argument and ends promptly when it is cancelled.

pub use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGINT or SIGTERM (r2r installs no handlers of its own).
///
/// Fails only if the signal handlers cannot be installed.
pub fn on_terminate_signals() -> std::io::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};

    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!("{name} received, shutting down");
        cancel.cancel();
    });
    Ok(token)
}

/// How a worker thread ended when [`join_thread`] waited for it.
#[derive(Debug)]
pub enum ThreadEnd<T> {
    /// It returned this.
    Returned(T),
    /// It panicked.
    Panicked,
    /// It was still running after the timeout (it is left to finish on its own).
    StillRunning,
}

/// Waits up to `timeout` for a worker thread without blocking the async runtime.
pub async fn join_thread<T: Send + 'static>(
    thread: std::thread::JoinHandle<T>,
    timeout: std::time::Duration,
) -> ThreadEnd<T> {
    let joined = tokio::time::timeout(timeout, tokio::task::spawn_blocking(move || thread.join()));
    match joined.await {
        Ok(Ok(Ok(value))) => ThreadEnd::Returned(value),
        Ok(Ok(Err(_)) | Err(_)) => ThreadEnd::Panicked,
        Err(_) => ThreadEnd::StillRunning,
    }
}
