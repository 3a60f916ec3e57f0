//! `rollgate-controller`: runs the Rollout controller against the cluster in the kubeconfig (or
//! the in-cluster service account).
//!
//! Settings: `RUST_LOG` (log filter, default `info`), `ROLLGATE_LOG_FORMAT=json` for JSON logs,
//! `ROLLGATE_INSTANCE` (the instance name in Events, default the host name).

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::Api;
use kube::runtime::{Controller, watcher};
use rollgate_controller::context::Context;
use rollgate_controller::reconcile::{error_policy, reconcile};
use rollgate_controller::replicaset::ROLLOUT_LABEL;
use rollgate_crds::Rollout;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if std::env::var("ROLLGATE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }

    let client = kube::Client::try_default().await?;
    let instance = std::env::var("ROLLGATE_INSTANCE")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "rollgate-controller".to_owned());
    let context = Arc::new(Context::new(client.clone(), instance));
    let rollouts: Api<Rollout> = Api::all(client.clone());
    let replica_sets: Api<ReplicaSet> = Api::all(client);
    tracing::info!("rollgate-controller starting");
    Controller::new(rollouts, watcher::Config::default())
        .owns(
            replica_sets,
            watcher::Config::default().labels(ROLLOUT_LABEL),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile error");
            }
        })
        .await;
    tracing::info!("rollgate-controller stopped");
    Ok(())
}
