//! Stopping: the signal a pod gets when it is stopped, and one [`Shutdown`] that every server
//! and controller of a process waits on, so each finishes its in-flight work and stops.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Resolves on SIGTERM (what the kubelet sends a container when it stops a pod) or Ctrl-C.
/// Servers pass it to their graceful shutdown, so in-flight requests finish and the process
/// exits at once instead of at the end of the pod's grace period. Where SIGTERM cannot be
/// listened to, only Ctrl-C ends it.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// How long a process stopped by a signal lets its in-flight work finish before it exits anyway:
/// under Kubernetes' default termination grace of 30 s, so the exit is the process's own.
pub const STOP_GRACE: Duration = Duration::from_secs(25);

/// A stop request shared by the parts of a process: each part gets its own future from
/// [`Shutdown::requested`] (kube's `graceful_shutdown_on`, tonic's and axum's graceful
/// shutdown each want one).
#[derive(Debug, Clone)]
pub struct Shutdown {
    stop: watch::Receiver<bool>,
}

impl Shutdown {
    /// A shutdown requested by SIGTERM or Ctrl-C (listened to from now on, in the background).
    /// The in-flight work gets [`STOP_GRACE`]; a process still running then exits (with
    /// status 1), so a call that never returns cannot keep it from stopping.
    pub fn on_signal() -> Self {
        let (shutdown, trigger) = Self::manual();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("stopping: finishing in-flight work");
            let _ = trigger.send(true);
            tokio::time::sleep(STOP_GRACE).await;
            tracing::error!(
                grace_seconds = STOP_GRACE.as_secs(),
                "in-flight work did not finish within the grace; exiting"
            );
            std::process::exit(1);
        });
        shutdown
    }

    /// A shutdown requested by sending `true` on the returned sender (or dropping it).
    pub fn manual() -> (Self, watch::Sender<bool>) {
        let (trigger, stop) = watch::channel(false);
        (Shutdown { stop }, trigger)
    }

    /// Resolves once the shutdown is requested.
    pub fn requested(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut stop = self.stop.clone();
        async move {
            // An error means the sender is gone: nothing can request it any more, so stop too.
            let _ = stop.wait_for(|stopping| *stopping).await;
        }
    }

    /// Whether the shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        *self.stop.borrow()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn every_waiter_stops_once_the_shutdown_is_requested() {
        let (shutdown, trigger) = Shutdown::manual();
        let first = tokio::spawn(shutdown.requested());
        let second = tokio::spawn(shutdown.clone().requested());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!first.is_finished() && !shutdown.is_requested());
        trigger.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            first.await.unwrap();
            second.await.unwrap();
        })
        .await
        .expect("both waiters stop");
        assert!(shutdown.is_requested());
        // A part that starts waiting late stops at once.
        tokio::time::timeout(Duration::from_secs(5), shutdown.requested())
            .await
            .expect("a late waiter stops");
    }
}
