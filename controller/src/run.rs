//! Running the controller: the client (its API requests counted), leader election on a Lease,
//! the admin server, the gRPC server, and a graceful stop on SIGTERM or Ctrl-C.
//!
//! Two or more replicas may run; only the one holding the Lease reconciles (and so writes).
//! A replica that loses the Lease stops its controller and waits to win it back; one that stops
//! releases the Lease so another takes over at once instead of after the lease duration.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use kube_lease_manager::LeaseManagerBuilder;
use rollgate_runtime::Shutdown;
use rollgate_runtime::admin::{self, Admin};
use rollgate_runtime::api_requests::CountRequestsLayer;

use crate::context::Context;
use crate::controllers;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::shards::Shards;
use crate::shards::leases::{self, Hooks, LeaseSet};
use crate::verification::{ImageVerification, VerificationMode};
use crate::write::FieldManager;
use futures::StreamExt;
use kube::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use rollgate_crds::ImagePolicy;
use rollgate_verify::{Verifier, VerifierConfig};
use std::time::Duration;
use tokio::sync::watch;

/// Runs until SIGTERM or Ctrl-C, then stops gracefully: the reconciles in flight finish, the
/// gRPC server finishes its calls, and the Lease is released so a standby takes over at once.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    rollgate_runtime::tls::install_crypto_provider();
    let shutdown = Shutdown::on_signal();
    let metrics = Arc::new(Metrics::default());
    let counting = CountRequestsLayer::new({
        let metrics = metrics.clone();
        move |kind| metrics.api_request(kind)
    });
    let client = kube::client::ClientBuilder::try_from(kube::Config::infer().await?)?
        .with_layer(&counting)
        .build();
    let ready = Arc::new(AtomicBool::new(false));
    let admin = Admin {
        metrics: Arc::new({
            let metrics = metrics.clone();
            move || metrics.encode()
        }),
        ready: ready.clone(),
    };
    let admin_listener = admin::bind(settings.process.admin_addr)
        .await
        .with_context(|| format!("bind the admin address {}", settings.process.admin_addr))?;
    let admin = tokio::spawn(admin::serve(admin_listener, admin, shutdown.requested()));
    // The RolloutService runs on every replica: reads come from its own cache, and its writes
    // are API requests as the caller, which need no leadership.
    let grpc = tokio::spawn({
        let (grpc_settings, grpc_client) = (settings.grpc.clone(), client.clone());
        let stop = shutdown.requested();
        async move {
            if let Err(error) = crate::grpc::serve(grpc_settings, grpc_client, stop).await {
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
    if settings.shards > 0 {
        let set = lease_set(&settings);
        context.shards = Shards::sharded(settings.shards, set.duration - set.grace());
    }
    let recorder = context.recorder.clone();
    context
        .audit
        .configure(settings.audit.signer()?, settings.audit.store()?, recorder);
    let context = Arc::new(context);

    if settings.shards > 0 {
        ready.store(true, Ordering::Relaxed);
        shard(client, context, &settings, &shutdown).await;
    } else if settings.leader_election {
        lead(&client, &context, &settings, &shutdown, &ready).await?;
    } else {
        ready.store(true, Ordering::Relaxed);
        metrics.leader.set(1);
        controllers::run(client, context, &settings, &shutdown, unclaimed()).await;
    }
    metrics.leader.set(0);
    ready.store(false, Ordering::Relaxed);
    if !shutdown.is_requested() {
        tracing::error!("the controllers stopped on their own; stopping");
        grpc.abort();
        admin.abort();
    }
    let _ = grpc.await;
    let _ = admin.await;
    tracing::info!("rollgate-controller stopped");
    Ok(())
}

/// Runs the controllers while this instance holds the leader Lease, until the shutdown; then
/// releases the Lease. A lost Lease stops the controllers at once (another replica may be
/// writing already); a shutdown lets the reconciles in flight finish first.
async fn lead(
    client: &kube::Client,
    context: &Arc<Context>,
    settings: &Settings,
    shutdown: &Shutdown,
    ready: &AtomicBool,
) -> anyhow::Result<()> {
    let metrics = &context.metrics;
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
    let stopping = shutdown.requested();
    tokio::pin!(stopping);
    'lead: loop {
        while !*leader.borrow_and_update() {
            tokio::select! {
                changed = leader.changed() => changed?,
                () = &mut stopping => break 'lead,
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
            () = controllers::run(client.clone(), context.clone(), settings, shutdown, unclaimed()) => break 'lead,
            () = lost => {
                tracing::warn!(instance = %settings.instance, "lost the leader lease: the controller stops");
                metrics.leader.set(0);
            }
        }
    }
    drop(leader);
    // Closing the channel ends the manager's task, which releases the Lease.
    if let Ok(Ok(manager)) = lease_task.await {
        let _ = manager.release().await;
    }
    Ok(())
}

/// A claims channel that never changes (not sharded: nothing is ever claimed); its stream of
/// changes ends at once.
fn unclaimed() -> watch::Receiver<u64> {
    watch::channel(0).1
}

/// The Lease set of a sharded controller, from its settings.
fn lease_set(settings: &Settings) -> LeaseSet {
    LeaseSet {
        namespace: settings.lease_namespace.clone(),
        name: settings.lease_name.clone(),
        identity: settings.instance.clone(),
        duration: Duration::from_secs(settings.lease_duration_seconds.max(3)),
    }
}

/// Runs sharded until the shutdown: the Lease loop claims and releases shards while both
/// reconcilers run, each reconcile skipping what this replica does not hold; on the shutdown
/// the reconciles in flight finish, then the shards are released for the others to claim.
async fn shard(
    client: kube::Client,
    context: Arc<Context>,
    settings: &Settings,
    shutdown: &Shutdown,
) {
    let (claims, claimed) = watch::channel(0);
    let hooks = Hooks {
        before_gain: {
            let context = context.clone();
            move |shard| {
                let shards = &context.shards;
                context.audit.forget(|uid| shards.shard_of(uid) == shard);
            }
        },
        claims,
        held: context.metrics.shards_held.clone(),
    };
    let shards = context.shards.clone();
    tokio::join!(
        leases::run(
            client.clone(),
            lease_set(settings),
            shards,
            hooks,
            shutdown.requested()
        ),
        controllers::run(client, context, settings, shutdown, claimed)
    );
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
