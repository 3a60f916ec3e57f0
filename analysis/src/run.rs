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
use rollgate_runtime::Shutdown;
use rollgate_runtime::admin::{self, Admin};
use rollgate_runtime::grpc::{self, TlsFiles};
use rollgate_runtime::settings::ProcessSettings;
use tonic::transport::server::TcpIncoming;

use crate::allowlist::AllowList;
use crate::callers::{Authentication, Callers};
use crate::metrics::Metrics;
use crate::service::{Analysis, Limits};

/// Every setting an operator tunes: a flag, with an environment variable of the same meaning.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "rollgate-analysis",
    about = "The rollgate analysis service (AnalysisService over gRPC)"
)]
pub struct Settings {
    /// The admin address and the log format.
    #[command(flatten)]
    pub process: ProcessSettings,
    /// Address of the gRPC server.
    #[arg(
        long,
        env = "ROLLGATE_ANALYSIS_GRPC_ADDR",
        default_value = "0.0.0.0:8090"
    )]
    pub grpc_addr: SocketAddr,
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
    /// How callers authenticate: `token-review` (a bearer token of a user on
    /// `--allowed-callers`, checked with a TokenReview through the kubeconfig or in-cluster
    /// ServiceAccount) or `none`.
    #[arg(
        long,
        env = "ROLLGATE_ANALYSIS_AUTHENTICATION",
        value_enum,
        default_value = "token-review"
    )]
    pub authentication: Authentication,
    /// User names that may call (comma-separated); by default only the controller's
    /// ServiceAccount of the default install.
    #[arg(
        long,
        env = "ROLLGATE_ANALYSIS_ALLOWED_CALLERS",
        value_delimiter = ',',
        default_value = "system:serviceaccount:rollgate-system:rollgate-controller"
    )]
    pub allowed_callers: Vec<String>,
    /// Seconds an accepted TokenReview is reused (0: never).
    #[arg(
        long,
        env = "ROLLGATE_ANALYSIS_AUTH_CACHE_SECONDS",
        default_value_t = 10
    )]
    pub auth_cache_seconds: u64,
    /// Seconds a refused token is remembered (0: never).
    #[arg(
        long,
        env = "ROLLGATE_ANALYSIS_AUTH_NEGATIVE_CACHE_SECONDS",
        default_value_t = 3
    )]
    pub auth_negative_cache_seconds: u64,
    /// Prometheus base URLs that may be queried (comma-separated; `*` as the port allows any
    /// port of that host). Empty allows none.
    #[arg(long, env = "ROLLGATE_PROMETHEUS_ALLOWED", value_delimiter = ',')]
    pub prometheus_allowed: Vec<String>,
    /// The longest timeout a query may ask for; longer ones are lowered to it.
    #[arg(long, env = "ROLLGATE_ANALYSIS_MAX_QUERY_TIMEOUT", default_value = "60s", value_parser = parse_timeout)]
    pub max_query_timeout: Duration,
    /// The largest Prometheus response read, in bytes; a larger one is RESOURCE_EXHAUSTED.
    #[arg(long, env = "ROLLGATE_ANALYSIS_MAX_RESPONSE_BYTES", default_value_t = 8 << 20)]
    pub max_response_bytes: usize,
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
    rollgate_runtime::tls::install_crypto_provider();
    let shutdown = Shutdown::on_signal();
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let admin_listener = admin::bind(settings.process.admin_addr)
        .await
        .with_context(|| format!("bind the admin address {}", settings.process.admin_addr))?;
    let admin = Admin {
        metrics: Arc::new({
            let metrics = metrics.clone();
            move || metrics.encode()
        }),
        ready: ready.clone(),
    };
    let admin = tokio::spawn(admin::serve(admin_listener, admin, shutdown.requested()));

    let prometheus = AllowList::parse(&settings.prometheus_allowed).map_err(anyhow::Error::msg)?;
    if prometheus.is_empty() {
        tracing::warn!("--prometheus-allowed is empty: every query will be refused");
    }
    let limits = Limits {
        default_timeout: settings.query_timeout,
        max_timeout: settings.max_query_timeout,
        max_response_bytes: settings.max_response_bytes,
        prometheus,
    };
    let callers = match settings.authentication {
        Authentication::TokenReview => {
            let client = kube::Client::try_default()
                .await
                .context("a Kubernetes client for TokenReviews (kubeconfig or in-cluster)")?;
            Some(Arc::new(Callers::new(
                client,
                settings.allowed_callers.clone(),
                Duration::from_secs(settings.auth_cache_seconds),
                Duration::from_secs(settings.auth_negative_cache_seconds),
            )))
        }
        Authentication::None => {
            tracing::warn!("--authentication=none: anyone who reaches the port may call");
            None
        }
    };
    let analysis = Analysis::new(limits, callers, metrics)?;
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let (router, health) = grpc::server(tls, &[rollgate_proto::FILE_DESCRIPTOR_SET])?;
    health
        .set_serving::<AnalysisServiceServer<Analysis>>()
        .await;
    let listener = tokio::net::TcpListener::bind(settings.grpc_addr)
        .await
        .with_context(|| format!("bind the gRPC address {}", settings.grpc_addr))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, tls = tls.is_some(), "gRPC server listening");
    ready.store(true, Ordering::Relaxed);
    let served = router
        .add_service(AnalysisServiceServer::new(analysis))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown.requested())
        .await;
    ready.store(false, Ordering::Relaxed);
    let _ = admin.await;
    served.context("the gRPC server failed")?;
    tracing::info!("rollgate-analysis stopped");
    Ok(())
}
