//! Running the controller: settings, leader election on a Lease, the admin server, and a
//! graceful stop on SIGTERM or Ctrl-C.
//!
//! Two or more replicas may run; only the one holding the Lease reconciles (and so writes).
//! A replica that loses the Lease stops its controller and waits to win it back; one that stops
//! releases the Lease so another takes over at once instead of after the lease duration.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube_lease_manager::LeaseManagerBuilder;
use rollgate_runtime::api_requests::CountRequestsLayer;

use crate::admin::{self, AdminState};
use crate::context::Context;
use crate::controllers;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::verification::{ImageVerification, VerificationMode};
use crate::write::FieldManager;
use futures::StreamExt;
use kube::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use rollgate_crds::ImagePolicy;
use rollgate_verify::{Verifier, VerifierConfig};

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    // One crypto provider (ring) for every rustls client and server in the process, whichever
    // TLS features the build happens to unify (with two, rustls cannot choose and refuses).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Arc::new(Metrics::default());
    let counting = CountRequestsLayer::new({
        let metrics = metrics.clone();
        move |kind| metrics.api_request(kind)
    });
    let client = kube::client::ClientBuilder::try_from(kube::Config::infer().await?)?
        .with_layer(&counting)
        .build();
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
        .with_field_manager(format!("{}-lease", FieldManager::Controller.name()))
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
