//! The two reconcilers the leader runs side by side: Rollouts (which own their ReplicaSets and
//! AnalysisRuns and watch the Services and HTTPRoutes they name) and AnalysisRuns (whose
//! measurements fall due on a clock of their own).
//!
//! The watches of ReplicaSets, AnalysisRuns and Approvals that wake the Rollout reconciler also
//! fill the stores its reconciles read ([`crate::caches`]); each run (leadership term) starts
//! them afresh.

use std::sync::Arc;

use tokio::sync::watch;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::DynamicObject;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, reflector};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Api, ResourceExt};
use rollgate_crds::analysis::AnalysisRun;
use rollgate_crds::{Approval, ImagePolicy, Rollout};

use crate::analysis::client::analysis_client;
use crate::analysis::measure::{self, MeasureContext};
use crate::caches::{self, prune};
use crate::context::Context;
use crate::reconcile::{error_policy, reconcile};
use crate::route;
use crate::settings::Settings;
use crate::watches::{self, Referent};
use rollgate_crds::names::ROLLOUT_LABEL;
use rollgate_runtime::Shutdown;

/// Runs both reconcilers until `shutdown` is requested and the reconciles in flight then have
/// finished (kube's graceful shutdown: no new reconcile starts, none is cut off mid-write).
/// Every change of `claims` (shards this replica just claimed) reconciles everything again;
/// what belongs to other shards is skipped at once.
pub async fn run(
    client: kube::Client,
    context: Arc<Context>,
    settings: &Settings,
    shutdown: &Shutdown,
    claims: watch::Receiver<u64>,
) {
    // A new term: audit trees another replica may have appended to are loaded again.
    context.audit.forget(|_| true);
    tokio::join!(
        rollouts(
            client.clone(),
            context.clone(),
            settings,
            shutdown,
            changes(claims.clone())
        ),
        analysis_runs(client, context, settings, shutdown, changes(claims))
    );
}

/// A stream that yields once per change of `receiver`.
fn changes(receiver: watch::Receiver<u64>) -> futures::stream::BoxStream<'static, ()> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.changed().await.ok()?;
        Some(((), receiver))
    })
    .boxed()
}

async fn rollouts(
    client: kube::Client,
    context: Arc<Context>,
    settings: &Settings,
    shutdown: &Shutdown,
    claims: futures::stream::BoxStream<'static, ()>,
) {
    let rollouts: Api<DeserializeGuard<Rollout>> = Api::all(client.clone());
    let replica_sets: Api<ReplicaSet> = Api::all(client.clone());
    let analysis_runs: Api<AnalysisRun> = Api::all(client.clone());
    // Metadata is all the mappers need: `PartialObjectMeta` watches fetch nothing else.
    let services: Api<PartialObjectMeta<Service>> = Api::all(client.clone());
    let route_resource = route::http_route_resource();
    let client_for_policies = client.clone();
    let approval_client = client.clone();
    let routes: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &route_resource);
    let (caches, writers) = caches::caches();
    context.install_caches(caches);
    let owned = || watcher::Config::default().labels(ROLLOUT_LABEL);
    let replica_set_changes = reflector(
        writers.replica_sets,
        watcher(replica_sets, owned())
            .default_backoff()
            .modify(prune),
    )
    .touched_objects();
    let analysis_run_changes = reflector(
        writers.analysis_runs,
        watcher(analysis_runs, owned())
            .default_backoff()
            .modify(prune),
    )
    .touched_objects();
    let approval_changes = reflector(
        writers.approvals,
        watcher(
            Api::<Approval>::all(approval_client),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(prune),
    )
    .touched_objects();
    let config = controller::Config::default().concurrency(settings.concurrency);
    let controller = Controller::new(rollouts, watcher::Config::default())
        .with_config(config)
        .graceful_shutdown_on(shutdown.requested());
    let service_store = controller.store();
    let route_store = controller.store();
    // Neither watch stores anything. Without the Gateway API CRDs the route watch fails and
    // retries with backoff, and picks the routes up once they exist.
    let service_changes = watcher(services, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    let route_changes = watcher(routes, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    // A changed ImagePolicy may admit (or refuse) revisions: every Rollout is looked at again.
    // Without verification the stream never yields.
    let policy_changes = if context.verification.is_some() {
        let policies: Api<PartialObjectMeta<ImagePolicy>> = Api::all(client_for_policies);
        watcher(policies, watcher::Config::default())
            .default_backoff()
            .touched_objects()
            .filter_map(|change| std::future::ready(change.ok().map(|_| ())))
            .boxed()
    } else {
        futures::stream::pending().boxed()
    };
    controller
        .owns_stream(replica_set_changes)
        .owns_stream(analysis_run_changes)
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
        .watches_stream(approval_changes, |approval| {
            let rollout = ObjectRef::new(&approval.spec.rollout);
            approval
                .namespace()
                .map(|namespace| rollout.within(&namespace))
        })
        .reconcile_all_on(futures::stream::select(policy_changes, claims))
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile error");
            }
        })
        .await;
}

async fn analysis_runs(
    client: kube::Client,
    context: Arc<Context>,
    settings: &Settings,
    shutdown: &Shutdown,
    claims: futures::stream::BoxStream<'static, ()>,
) {
    let analysis = settings.analysis_addr.as_deref().and_then(|address| {
        match tonic::transport::Endpoint::from_shared(address.to_owned()) {
            Ok(endpoint) => Some(analysis_client(
                endpoint.connect_lazy(),
                &settings.analysis_client,
            )),
            Err(error) => {
                tracing::error!(%address, %error, "the analysis service address is not a URI; analyses will error");
                None
            }
        }
    });
    let measure_context = Arc::new(MeasureContext {
        client: client.clone(),
        analysis,
        metrics: context.metrics.clone(),
        shards: context.shards.clone(),
    });
    let runs: Api<AnalysisRun> = Api::all(client);
    let config = controller::Config::default().concurrency(settings.concurrency);
    Controller::new(runs, watcher::Config::default().labels(ROLLOUT_LABEL))
        .with_config(config)
        .graceful_shutdown_on(shutdown.requested())
        .reconcile_all_on(claims)
        .run(measure::reconcile, measure::error_policy, measure_context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "measure error");
            }
        })
        .await;
}
