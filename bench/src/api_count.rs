//! Counting API requests outside the controller: a plain-HTTP proxy on loopback in front of the
//! local cluster's API server. The controller under test gets a kubeconfig pointing at the proxy
//! ([`CountingProxy::write_kubeconfig`]); the proxy forwards every request, watches included, with
//! the cluster admin's credentials (so the controller keeps the identity the ownership policies
//! expect of it) and counts it by verb and resource as the API server would log it
//! ([`rollgate_runtime::api_requests::classify`], as the controller's own request metric does).
//!
//! Counting here, not by the controller's own metrics, means every request is seen, whichever
//! code path sent it, and two different controller builds are counted the same way.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use rollgate_runtime::api_requests::{RequestKind, classify};

/// Request counts by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<RequestKind, u64>);

impl Counts {
    /// Every request counted.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The requests counted since `earlier` (a snapshot of the same proxy).
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts(
            self.0
                .iter()
                .map(|(kind, n)| (kind.clone(), n - earlier.0.get(kind).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }

    /// The kinds by count, largest first, as `kind: count (per Rollout)` lines.
    pub fn breakdown(&self, rollouts: usize) -> Vec<String> {
        let mut kinds: Vec<(&RequestKind, &u64)> = self.0.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        kinds
            .into_iter()
            .map(|(kind, n)| {
                format!(
                    "{kind}: {n} ({:.2} per Rollout)",
                    *n as f64 / rollouts as f64
                )
            })
            .collect()
    }
}

type Shared = Arc<Mutex<BTreeMap<RequestKind, u64>>>;

/// A running counting proxy; dropping it stops it.
pub struct CountingProxy {
    port: u16,
    counts: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    /// Starts the proxy on a free loopback port, forwarding with `upstream` (the admin client).
    pub async fn start(upstream: kube::Client) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let counts = Shared::default();
        let router = axum::Router::new()
            .fallback(forward)
            .with_state((upstream, counts.clone()));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("the counting proxy stopped: {error}");
            }
        });
        Ok(CountingProxy { port, counts, task })
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Counts {
        Counts(
            self.counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }

    /// Writes a kubeconfig whose server is this proxy (no credentials: the proxy adds them).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<()> {
        let config = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: counted\n  cluster:\n    server: http://127.0.0.1:{}\n\
             users:\n- name: counted\n  user: {{}}\n\
             contexts:\n- name: counted\n  context:\n    cluster: counted\n    user: counted\n\
             current-context: counted\n",
            self.port
        );
        std::fs::write(path, config).with_context(|| format!("write {}", path.display()))
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts one request and forwards it, streaming the answer back (watches stay open).
async fn forward(
    State((upstream, counts)): State<(kube::Client, Shared)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let kind = classify(&parts.method, parts.uri.path(), parts.uri.query());
    *counts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(kind)
        .or_default() += 1;
    let failed = |status: StatusCode, message: String| {
        let mut response = Response::new(Body::from(message));
        *response.status_mut() = status;
        response
    };
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => return failed(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let mut outgoing = http::Request::builder().method(parts.method).uri(path);
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            outgoing = outgoing.header(name, value);
        }
    }
    let outgoing = match outgoing.body(kube::client::Body::from(bytes.to_vec())) {
        Ok(request) => request,
        Err(error) => return failed(StatusCode::BAD_REQUEST, error.to_string()),
    };
    match upstream.send(outgoing).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            Response::from_parts(parts, Body::new(body))
        }
        Err(error) => failed(StatusCode::BAD_GATEWAY, error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_since_a_snapshot() {
        let get = RequestKind {
            verb: "get",
            resource: "rollouts".into(),
        };
        let list = RequestKind {
            verb: "list",
            resource: "replicasets".into(),
        };
        let before = Counts([(get.clone(), 2)].into());
        let after = Counts([(get.clone(), 5), (list.clone(), 1)].into());
        let since = after.since(&before);
        assert_eq!(since.total(), 4);
        assert_eq!(since.0[&get], 3);
        assert_eq!(since.breakdown(2)[0], "get rollouts: 3 (1.50 per Rollout)");
    }
}
