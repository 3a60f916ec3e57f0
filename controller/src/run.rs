//! Running the controller: settings, leader election on a Lease, the admin server, and a
//! graceful stop on SIGTERM or Ctrl-C.
//!
//! Two or more replicas may run; only the one holding the Lease reconciles (and so writes).
//! A replica that loses the Lease stops its controller and waits to win it back; one that stops
//! releases the Lease so another takes over at once instead of after the lease duration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::DynamicObject;
use kube::core::DeserializeGuard;
use kube::core::PartialObjectMeta;
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Api, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use rollgate_crds::Rollout;

use crate::admin::{self, AdminState};
use crate::context::Context;
use crate::metrics::Metrics;
use crate::reconcile::{error_policy, reconcile};
use crate::replicaset::ROLLOUT_LABEL;
use crate::route;
use crate::watches::{self, Referent};

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
    /// Log format: `text` or `json`.
    #[arg(long, env = "ROLLGATE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let admin_state = AdminState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let admin = tokio::spawn(admin::serve(settings.admin_addr, admin_state));
    let context = Arc::new(Context::new(
        client.clone(),
        settings.instance.clone(),
        metrics.clone(),
    ));

    if !settings.leader_election {
        ready.store(true, Ordering::Relaxed);
        metrics.leader.set(1);
        tokio::select! {
            () = run_controller(client, context, &settings) => {}
            () = shutdown_signal() => {}
        }
        admin.abort();
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
    let shutdown = shutdown_signal();
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
            () = run_controller(client.clone(), context.clone(), &settings) => break 'lead,
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
    tracing::info!("rollgate-controller stopped");
    Ok(())
}

async fn run_controller(client: kube::Client, context: Arc<Context>, settings: &Settings) {
    let rollouts: Api<DeserializeGuard<Rollout>> = Api::all(client.clone());
    let replica_sets: Api<ReplicaSet> = Api::all(client.clone());
    // Metadata is all the mappers need: `PartialObjectMeta` watches fetch nothing else.
    let services: Api<PartialObjectMeta<Service>> = Api::all(client.clone());
    let route_resource = route::http_route_resource();
    let routes: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &route_resource);
    let config = controller::Config::default().concurrency(settings.concurrency);
    let controller = Controller::new(rollouts, watcher::Config::default()).with_config(config);
    let service_store = controller.store();
    let route_store = controller.store();
    // Both watches store nothing. Without the Gateway API CRDs the
    // route watch fails and retries with backoff, and picks the routes up once they exist.
    let service_changes = watcher(services, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    let route_changes = watcher(routes, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    controller
        .owns(
            replica_sets,
            watcher::Config::default().labels(ROLLOUT_LABEL),
        )
        .watches_stream(service_changes, move |service| {
            let name = service.name_any();
            watches::rollouts_naming(
                &service_store,
                service.namespace().as_deref(),
                Referent::Service(&name),
            )
        })
        .watches_stream_with(
            route_changes,
            move |route| {
                let name = route.name_any();
                watches::rollouts_naming(
                    &route_store,
                    route.namespace().as_deref(),
                    Referent::HttpRoute(&name),
                )
            },
            route_resource,
        )
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile error");
            }
        })
        .await;
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
