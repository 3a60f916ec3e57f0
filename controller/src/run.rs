//! Running the controller: settings, leader election on a Lease, the admin server, and a
//! graceful stop on SIGTERM or Ctrl-C.
//!
//! Two or more replicas may run; only the one holding the Lease reconciles (and so writes).
//! A replica that loses the Lease stops its controller and waits to win it back; one that stops
//! releases the Lease so another takes over at once instead of after the lease duration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube_lease_manager::LeaseManagerBuilder;

use crate::admin::{self, AdminState};
use crate::context::Context;
use crate::controllers;
use crate::metrics::Metrics;
use crate::verification::{ImageVerification, VerificationMode};
use futures::StreamExt;
use kube::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use rollgate_crds::ImagePolicy;
use rollgate_verify::{Verifier, VerifierConfig};

/// Every setting an operator tunes: a flag, with an environment variable of the same meaning.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "rollgate-controller",
    about = "The rollgate Rollout controller"
)]
pub struct Settings {
    /// Address of the admin server (/live, /ready, /metrics).
    #[arg(long, env = "ROLLGATE_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// Elect a leader on a Lease, so that only one replica writes.
    #[arg(long, env = "ROLLGATE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "ROLLGATE_LEASE_NAME",
        default_value = "rollgate-controller"
    )]
    pub lease_name: String,
    /// Namespace of the leader Lease.
    #[arg(long, env = "ROLLGATE_LEASE_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Seconds a leader's Lease stays valid without renewal (failover takes at most this long).
    #[arg(long, env = "ROLLGATE_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Name of this instance, in the Lease and in Events.
    #[arg(long, env = "ROLLGATE_INSTANCE", default_value = "rollgate-controller")]
    pub instance: String,
    /// Rollouts reconciled at once.
    #[arg(long, env = "ROLLGATE_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// The AnalysisService (the analysis service's gRPC endpoint), for example
    /// `http://rollgate-analysis:50051`. Without it, every analysis measurement is an error, so
    /// analyses never pass.
    #[arg(long, env = "ROLLGATE_ANALYSIS_ADDR")]
    pub analysis_addr: Option<String>,
    /// How the controller authenticates to the AnalysisService.
    #[command(flatten)]
    pub analysis_client: crate::analysis::client::AnalysisClientSettings,
    /// Verify image signatures and attestations against ImagePolicies (`enforce`), or keep
    /// only the digest-pinning rule (`off`, for clusters whose admission already verifies).
    #[arg(
        long,
        env = "ROLLGATE_IMAGE_VERIFICATION",
        value_enum,
        default_value = "enforce"
    )]
    pub image_verification: VerificationMode,
    /// Registries (`host:port`) reached over plain HTTP instead of HTTPS, comma-separated.
    #[arg(long, env = "ROLLGATE_INSECURE_REGISTRIES", value_delimiter = ',')]
    pub insecure_registries: Vec<String>,
    /// Seconds allowed to verify one image, every registry read included.
    #[arg(long, env = "ROLLGATE_VERIFY_TIMEOUT_SECONDS", default_value_t = 30)]
    pub verify_timeout_seconds: u64,
    /// The RolloutService gRPC server.
    #[command(flatten)]
    pub grpc: crate::grpc::GrpcSettings,
    /// The audit log's signing key and external checkpoint store.
    #[command(flatten)]
    pub audit: crate::audit::settings::AuditSettings,
    /// Log format: `text` or `json`.
    #[arg(long, env = "ROLLGATE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    // One crypto provider (ring) for every rustls client and server in the process, whichever
    // TLS features the build happens to unify (with two, rustls cannot choose and refuses).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let admin_state = AdminState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let admin = tokio::spawn(admin::serve(settings.admin_addr, admin_state));
    // The RolloutService runs on every replica: reads come from its own cache, and its writes
    // are API requests as the caller, which need no leadership.
    let grpc = tokio::spawn({
        let (grpc_settings, grpc_client) = (settings.grpc.clone(), client.clone());
        async move {
            if let Err(error) = crate::grpc::serve(
                grpc_settings,
                grpc_client,
                rollgate_runtime::shutdown_signal(),
            )
            .await
            {
                tracing::error!(%error, "the RolloutService gRPC server failed");
            }
        }
    });
    let mut context = Context::new(client.clone(), settings.instance.clone(), metrics.clone());
    if settings.image_verification == VerificationMode::Enforce {
        context.verification = Some(image_verification(client.clone(), &settings).await);
    }
    crate::trust::check(
        &client,
        &metrics,
        &context.recorder,
        (&settings.lease_namespace, &settings.lease_name),
    )
    .await;
    let recorder = context.recorder.clone();
    context
        .audit
        .configure(settings.audit.signer()?, settings.audit.store()?, recorder);
    let context = Arc::new(context);

    if !settings.leader_election {
        ready.store(true, Ordering::Relaxed);
        metrics.leader.set(1);
        tokio::select! {
            () = controllers::run(client, context, &settings) => {}
            () = rollgate_runtime::shutdown_signal() => {}
        }
        admin.abort();
        grpc.abort();
        return Ok(());
    }

    let manager = LeaseManagerBuilder::new(client.clone(), &settings.lease_name)
        .with_namespace(&settings.lease_namespace)
        .with_identity(&settings.instance)
        .with_duration(settings.lease_duration_seconds)
        .with_grace((settings.lease_duration_seconds / 3).max(1))
        .with_field_manager(format!("{}-lease", crate::context::FIELD_MANAGER))
        .build()
        .await?;
    let (mut leader, lease_task) = manager.watch().await;
    ready.store(true, Ordering::Relaxed);
    tracing::info!(lease = %settings.lease_name, instance = %settings.instance, "waiting for the leader lease");
    let shutdown = rollgate_runtime::shutdown_signal();
    tokio::pin!(shutdown);
    'lead: loop {
        while !*leader.borrow_and_update() {
            tokio::select! {
                changed = leader.changed() => changed?,
                () = &mut shutdown => break 'lead,
            }
        }
        tracing::info!(instance = %settings.instance, "leading: the controller starts");
        metrics.leader.set(1);
        let lost = async {
            while *leader.borrow_and_update() {
                if leader.changed().await.is_err() {
                    break;
                }
            }
        };
        tokio::select! {
            () = controllers::run(client.clone(), context.clone(), &settings) => break 'lead,
            () = lost => {
                tracing::warn!(instance = %settings.instance, "lost the leader lease: the controller stops");
                metrics.leader.set(0);
            }
            () = &mut shutdown => break 'lead,
        }
    }
    metrics.leader.set(0);
    drop(leader);
    // Closing the channel ends the manager's task, which releases the Lease.
    if let Ok(Ok(manager)) = lease_task.await {
        let _ = manager.release().await;
    }
    admin.abort();
    grpc.abort();
    tracing::info!("rollgate-controller stopped");
    Ok(())
}

/// The verifier and a reflector of every ImagePolicy, synced before any reconcile: a Rollout
/// verified against an empty store would be refused for want of a policy.
async fn image_verification(client: kube::Client, settings: &Settings) -> ImageVerification {
    let mut config = VerifierConfig::default();
    config.connection.insecure_registries = settings.insecure_registries.clone();
    config.image_timeout = std::time::Duration::from_secs(settings.verify_timeout_seconds);
    let (policies, writer) = reflector::store::<ImagePolicy>();
    let stream = reflector(
        writer,
        watcher(Api::<ImagePolicy>::all(client), watcher::Config::default()).default_backoff(),
    )
    .applied_objects();
    tokio::spawn(stream.for_each(|_| std::future::ready(())));
    tracing::info!("waiting for the ImagePolicies");
    if policies.wait_until_ready().await.is_err() {
        tracing::error!("the ImagePolicy reflector stopped before it synced");
    }
    ImageVerification {
        verifier: Verifier::new(config),
        policies,
    }
}
