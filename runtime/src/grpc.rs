//! The gRPC server both binaries build: TLS when a certificate and key are given, HTTP/2
//! keep-alives so dead clients are noticed, the standard health service
//! (`grpc.health.v1.Health`), and server reflection (v1 and v1alpha, so `grpcurl` and older
//! tools work without the proto files). The binary adds its own services to the [`Router`] and
//! serves it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::server::Router;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::server::HealthReporter;

/// Why the server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GrpcServerError {
    /// A TLS file could not be read.
    #[error("read the TLS file {path}: {source}")]
    ReadTls {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS configuration was refused.
    #[error("configure TLS: {0}")]
    Tls(#[from] tonic::transport::Error),
    /// The reflection service could not be built from the descriptors.
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// The server's certificate chain and private key (PEM files).
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    /// The certificate chain.
    pub cert: &'a Path,
    /// The private key.
    pub key: &'a Path,
}

/// A server with health and reflection for the services in `descriptor_sets` (encoded file
/// descriptor sets; the health service's own is added), over TLS when `tls` is given. The
/// reporter sets each service's health.
pub fn server(
    tls: Option<TlsFiles<'_>>,
    descriptor_sets: &[&'static [u8]],
) -> Result<(Router, HealthReporter), GrpcServerError> {
    let mut builder = Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)));
    if let Some(TlsFiles { cert, key }) = tls {
        let identity = Identity::from_pem(read(cert)?, read(key)?);
        builder = builder.tls_config(ServerTlsConfig::new().identity(identity))?;
    }
    let (reporter, health) = tonic_health::server::health_reporter();
    let mut v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    let mut v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    for set in descriptor_sets {
        v1 = v1.register_encoded_file_descriptor_set(set);
        v1alpha = v1alpha.register_encoded_file_descriptor_set(set);
    }
    let router = builder
        .add_service(health)
        .add_service(v1.build_v1()?)
        .add_service(v1alpha.build_v1alpha()?);
    Ok((router, reporter))
}

fn read(path: &Path) -> Result<Vec<u8>, GrpcServerError> {
    std::fs::read(path).map_err(|source| GrpcServerError::ReadTls {
        path: path.to_owned(),
        source,
    })
}
