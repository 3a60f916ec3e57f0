//! The RolloutService against the real local cluster: the server runs in-process on a free
//! loopback port with the cluster's admin client (as the controller would with its
//! ServiceAccount), callers authenticate with real ServiceAccount tokens, and RBAC decides.
//! No controller runs: the tests play its part by writing Rollout statuses as admin.

#[path = "grpc/abuse.rs"]
mod abuse;
#[path = "grpc/approvals.rs"]
mod approvals;
#[path = "grpc/audit.rs"]
mod audit;
#[path = "grpc/auth.rs"]
mod auth;
#[path = "grpc/extra.rs"]
mod extra;
#[path = "grpc/grpcurl.rs"]
mod grpcurl;
#[path = "grpc/watch.rs"]
mod watch;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use std::sync::Arc;

use rollgate_controller::grpc::metrics::GrpcMetrics;
use rollgate_controller::grpc::{GrpcSettings, server::serve_on_with};
use rollgate_crds::Rollout;
use rollgate_proto::v1::rollout_service_client::RolloutServiceClient;
use rollgate_proto::v1::{RolloutEvent, RolloutRef};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Request, Streaming};

/// An image pinned by digest.
pub const IMAGE: &str =
    "registry.example/app@sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// The gRPC server, stopped when dropped.
pub struct Served {
    /// Its address.
    pub address: SocketAddr,
    _stop: oneshot::Sender<()>,
}

/// Starts the server on a free loopback port with `client`'s identity.
pub async fn serve(client: &kube::Client) -> Result<Served> {
    Ok(serve_with(client, GrpcSettings::default()).await?.0)
}

/// Starts the server with `settings` (its address replaced by a free loopback port); its
/// metrics are returned to read.
pub async fn serve_with(
    client: &kube::Client,
    settings: GrpcSettings,
) -> Result<(Served, Arc<GrpcMetrics>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let settings = GrpcSettings {
        grpc_addr: address,
        ..settings
    };
    let metrics = Arc::new(GrpcMetrics::default());
    let shutdown = async {
        let _ = stopped.await;
    };
    tokio::spawn(serve_on_with(
        listener,
        settings,
        client.clone(),
        metrics.clone(),
        shutdown,
    ));
    Ok((
        Served {
            address,
            _stop: stop,
        },
        metrics,
    ))
}

/// A RolloutService client of `served`.
pub async fn connect(served: &Served) -> Result<RolloutServiceClient<Channel>> {
    let channel = Channel::from_shared(format!("http://{}", served.address))?
        .connect()
        .await?;
    Ok(RolloutServiceClient::new(channel))
}

/// `message` with `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value = format!("Bearer {token}").parse().expect("header value");
    request.metadata_mut().insert("authorization", value);
    request
}

/// A reference to a rollout.
pub fn id(namespace: &str, name: &str) -> Option<RolloutRef> {
    Some(RolloutRef {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// Creates a canary Rollout (steps: setWeight 20, pause, setWeight 60, approval) with `labels`.
pub async fn create_rollout(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    labels: Value,
) -> Result<Rollout> {
    let rollout: Rollout = serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": IMAGE}]}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"approval": {}}
            ]}}
        }
    }))?;
    Ok(Api::<Rollout>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &rollout)
        .await?)
}

/// Merges `status` into the Rollout's status, as the controller would write it.
pub async fn set_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    status: Value,
) -> Result<Rollout> {
    Ok(Api::<Rollout>::namespaced(client.clone(), namespace)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?)
}

/// The next event of a stream, within ten seconds.
pub async fn next_event(stream: &mut Streaming<RolloutEvent>) -> Result<RolloutEvent> {
    match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
        Ok(Ok(Some(event))) => Ok(event),
        Ok(Ok(None)) => anyhow::bail!("the stream ended"),
        Ok(Err(status)) => anyhow::bail!("the stream failed: {status}"),
        Err(_) => anyhow::bail!("no event within 10s"),
    }
}
