//! Serving: the RolloutService, the gRPC health service (`grpc.health.v1.Health`; the
//! RolloutService reports SERVING once the Rollouts are loaded) and server reflection (v1 and
//! v1alpha, so `grpcurl` works without proto files), over TLS when a certificate and key are
//! configured.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rollgate_proto::v1::rollout_service_server::RolloutServiceServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

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
    /// A TLS file could not be read.
    #[error("read {path}: {source}")]
    ReadTls {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The reflection service could not be built from the descriptors.
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
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

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_not_serving::<RolloutServiceServer<Rollouts>>()
        .await;
    let reporter = tokio::spawn(async move {
        // The first list can take long on a big cluster; report SERVING once it is in.
        while hub.wait_synced(Duration::from_secs(3600)).await.is_err() {}
        health.set_serving::<RolloutServiceServer<Rollouts>>().await;
    });
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(rollgate_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(rollgate_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let mut server = Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)));
    let tls = match (&settings.grpc_tls_cert, &settings.grpc_tls_key) {
        (Some(cert), Some(key)) => {
            let identity = Identity::from_pem(read(cert)?, read(key)?);
            server = server.tls_config(ServerTlsConfig::new().identity(identity))?;
            true
        }
        _ => false,
    };
    let address = listener.local_addr().ok();
    tracing::info!(?address, tls, "RolloutService gRPC server listening");
    let served = server
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(RolloutServiceServer::new(service))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await;
    watching.abort();
    reporter.abort();
    tracing::info!("RolloutService gRPC server stopped");
    Ok(served?)
}

fn read(path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::ReadTls {
        path: path.display().to_string(),
        source,
    })
}
