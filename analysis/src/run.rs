//! Running the analysis service: settings (a flag and an environment variable each), the gRPC
//! server (AnalysisService, the standard health service, server reflection; TLS when a
//! certificate and key are given), the admin server, and a graceful stop on SIGTERM or Ctrl-C
//! (in-flight requests finish, new connections are refused).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use rollgate_proto::v1::analysis_service_server::AnalysisServiceServer;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::admin::{self, AdminState};
use crate::metrics::Metrics;
use crate::service::Analysis;

/// Every setting an operator tunes: a flag, with an environment variable of the same meaning.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "rollgate-analysis",
    about = "The rollgate analysis service (AnalysisService over gRPC)"
)]
pub struct Settings {
    /// Address of the gRPC server.
    #[arg(
        long,
        env = "ROLLGATE_ANALYSIS_GRPC_ADDR",
        default_value = "0.0.0.0:8090"
    )]
    pub grpc_addr: SocketAddr,
    /// Address of the admin server (/live, /ready, /metrics).
    #[arg(long, env = "ROLLGATE_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// Timeout of a Prometheus query whose metric sets none (rollgate's duration grammar,
    /// for example `10s`).
    #[arg(long, env = "ROLLGATE_ANALYSIS_QUERY_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub query_timeout: Duration,
    /// PEM certificate chain of the gRPC server; with `--tls-key`, the server speaks TLS.
    #[arg(long, env = "ROLLGATE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the gRPC server.
    #[arg(long, env = "ROLLGATE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "ROLLGATE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = rollgate_crds::duration::parse_duration(text).map_err(|e| e.to_string())?;
    if timeout.is_zero() {
        return Err("the query timeout must be positive".to_owned());
    }
    Ok(timeout)
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    // One crypto provider (ring) for every rustls client and server in the process, whichever
    // TLS features the build happens to unify (with two, rustls cannot choose and refuses).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let admin_listener = admin::bind(settings.admin_addr)
        .await
        .with_context(|| format!("bind the admin address {}", settings.admin_addr))?;
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        AdminState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
    ));

    let analysis = Analysis::new(settings.query_timeout, metrics)?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AnalysisServiceServer<Analysis>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(rollgate_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let mut server = Server::builder();
    if let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) {
        let cert = std::fs::read(cert).with_context(|| format!("read {}", cert.display()))?;
        let key = std::fs::read(key).with_context(|| format!("read {}", key.display()))?;
        server = server
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .context("configure TLS")?;
    }
    let listener = tokio::net::TcpListener::bind(settings.grpc_addr)
        .await
        .with_context(|| format!("bind the gRPC address {}", settings.grpc_addr))?;
    let address = listener.local_addr()?;
    let tls = settings.tls_cert.is_some();
    tracing::info!(%address, tls, "gRPC server listening");
    ready.store(true, Ordering::Relaxed);
    let served = server
        .add_service(health_service)
        .add_service(reflection)
        .add_service(AnalysisServiceServer::new(analysis))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
            shutdown_signal().await;
            tracing::info!("stopping: finishing in-flight requests");
        })
        .await;
    ready.store(false, Ordering::Relaxed);
    admin.abort();
    served.context("the gRPC server failed")?;
    tracing::info!("rollgate-analysis stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
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
