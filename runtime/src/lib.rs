//! Process plumbing shared by rollgate's long-running binaries (the controller, the analysis
//! service and the demo app), so each behaves the same way when its pod is stopped, and the
//! naming and counting of the Kubernetes API requests they send ([`api_requests`]).

pub mod api_requests;

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
