//! Serving: the RolloutService, the gRPC health service (`grpc.health.v1.Health`; the
//! RolloutService reports SERVING once the Rollouts are loaded) and server reflection (v1 and
//! v1alpha, so `grpcurl` works without proto files), over TLS when a certificate and key are
//! configured.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rollgate_proto::v1::rollout_service_server::RolloutServiceServer;
use rollgate_runtime::grpc::{self, TlsFiles};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use super::GrpcSettings;
use super::auth::Authenticator;
use super::hub::Hub;
use super::limits::{Limits, StreamLimiter};
use super::metrics::GrpcMetrics;
use super::service::Rollouts;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("bind the gRPC address {address}: {source}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The server could not be built (TLS files, reflection).
    #[error(transparent)]
    Build(#[from] grpc::GrpcServerError),
    /// The transport failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Binds `settings.grpc_addr` and serves until `shutdown` resolves.
pub async fn serve(
    settings: GrpcSettings,
    client: kube::Client,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let address = settings.grpc_addr;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Bind { address, source })?;
    serve_on(listener, settings, client, shutdown).await
}

/// Serves on a bound `listener` (its address wins over `settings.grpc_addr`) until `shutdown`
/// resolves; in-flight calls finish, open watch streams end.
pub async fn serve_on(
    listener: TcpListener,
    settings: GrpcSettings,
    client: kube::Client,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let metrics = Arc::new(GrpcMetrics::default());
    serve_on_with(listener, settings, client, metrics, shutdown).await
}

/// [`serve_on`], counting into `metrics` (which the caller may register or read).
pub async fn serve_on_with(
    listener: TcpListener,
    settings: GrpcSettings,
    client: kube::Client,
    metrics: Arc<GrpcMetrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let hub = Hub::new(settings.grpc_watch_buffer);
    let watching = tokio::spawn(hub.clone().run(client.clone()));
    let ttl = Duration::from_secs(settings.grpc_auth_cache_seconds);
    let negative_ttl = Duration::from_secs(settings.grpc_auth_negative_cache_seconds);
    let auth = Arc::new(Authenticator::new(
        client.clone(),
        ttl,
        negative_ttl,
        metrics.clone(),
    ));
    let limits = Limits {
        per_caller: settings.grpc_max_streams_per_caller,
        total: settings.grpc_max_streams,
    };
    let streams = StreamLimiter::new(limits, metrics);
    let service = Rollouts::new(client, auth, hub.clone(), streams);

    let tls = match (&settings.grpc_tls_cert, &settings.grpc_tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let (router, health) = grpc::server(tls, &[rollgate_proto::FILE_DESCRIPTOR_SET])?;
    health
        .set_not_serving::<RolloutServiceServer<Rollouts>>()
        .await;
    let reporter = tokio::spawn(async move {
        // The first list can take long on a big cluster; report SERVING once it is in.
        while hub.wait_synced(Duration::from_secs(3600)).await.is_err() {}
        health.set_serving::<RolloutServiceServer<Rollouts>>().await;
    });
    let tls = tls.is_some();
    let address = listener.local_addr().ok();
    tracing::info!(?address, tls, "RolloutService gRPC server listening");
    let served = router
        .add_service(RolloutServiceServer::new(service))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await;
    watching.abort();
    reporter.abort();
    tracing::info!("RolloutService gRPC server stopped");
    Ok(served?)
}
