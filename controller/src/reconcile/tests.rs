//! The fetch and apply stages on their own, against a fake API server in kube's mock-service
//! style (as kube-rs' controller-rs example tests its reconciler): each test answers the
//! requests a stage sends and asserts which requests, in which order, with which bodies. What
//! the stages do against a real API server is covered end to end by `tests/e2e`.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

use super::fetch::fetch;
use crate::apply::{Applied, apply};
use crate::caches::tests::fill;
use crate::context::Context;
use crate::decide::tests::rollout;
use crate::decide::{Plan, ReplicaSetPlan, ServicePlan};
use crate::metrics::Metrics;

/// One request the fake API server received.
#[derive(Debug, Clone)]
struct Received {
    /// `METHOD path?query`.
    line: String,
    /// The JSON body, if any.
    body: Option<Value>,
}

/// A fake API server: answers each request with `answer(method, path)` (status and JSON) and
/// records it. Returns the client that talks to it and the record; the record is complete once
/// every clone of the client is dropped and the returned task has finished.
fn fake_api_server(
    answer: impl Fn(&str, &str) -> (u16, Value) + Send + 'static,
) -> (
    kube::Client,
    Arc<Mutex<Vec<Received>>>,
    tokio::task::JoinHandle<()>,
) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let received = Arc::new(Mutex::new(Vec::new()));
    let record = received.clone();
    let server = tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_owned();
            let line = match request.uri().query() {
                Some(query) => format!("{method} {path}?{query}"),
                None => format!("{method} {path}"),
            };
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let body = serde_json::from_slice(&bytes).ok();
            record.lock().unwrap().push(Received { line, body });
            let (status, reply) = answer(&method, &path);
            let response = Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                .unwrap();
            respond.send_response(response);
        }
    });
    (kube::Client::new(service, "shop"), received, server)
}

fn lines(received: &Arc<Mutex<Vec<Received>>>) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.line.clone())
        .collect()
}

/// The requests' `METHOD path`, without their queries.
fn without_queries(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.line.split('?').next().unwrap_or_default().to_owned())
        .collect()
}

/// A ReplicaSet labelled as revision `revision` of `web`, controlled by the owner `owner_uid`.
fn replica_set(name: &str, revision: &str, owner_uid: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "shop",
                        "labels": {"rollgate.io/rollout": "web", "rollgate.io/revision": revision},
                        "ownerReferences": [{"apiVersion": "rollgate.io/v1alpha1", "kind": "Rollout",
                                             "name": "web", "uid": owner_uid, "controller": true}]},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
           "status": {"replicas": 2, "availableReplicas": 2, "readyReplicas": 2}})
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// A context whose stores hold `replica_sets`, `runs` and `approvals` (as their first full
/// list), talking to `client`.
fn context_with_caches(
    client: kube::Client,
    replica_sets: Vec<Value>,
    runs: Vec<Value>,
    approvals: Vec<Value>,
) -> Context {
    let context = Context::new(client, "test".into(), Arc::new(Metrics::default()));
    let (caches, mut writers) = crate::caches::caches();
    fill(&mut writers.replica_sets, parse(replica_sets));
    fill(&mut writers.analysis_runs, parse(runs));
    fill(&mut writers.approvals, parse(approvals));
    context.install_caches(caches);
    context
}

/// `values` as objects of one kind.
fn parse<K: serde::de::DeserializeOwned>(values: Vec<Value>) -> Vec<K> {
    values
        .into_iter()
        .map(|value| serde_json::from_value(value).expect("an object"))
        .collect()
}

/// An Approval of `revision` of the Rollout `rollout` in `shop`.
fn approval(name: &str, rollout: &str) -> Value {
    json!({"apiVersion": "rollgate.io/v1alpha1", "kind": "Approval",
           "metadata": {"name": name, "namespace": "shop"},
           "spec": {"rollout": rollout, "revision": "aaaaaaaaaa",
                    "digests": [format!("sha256:{}", "a".repeat(64))],
                    "decision": "Approve", "approver": "alice"}})
}

#[tokio::test]
async fn fetch_reads_the_replica_sets_from_the_caches_without_a_request() {
    let (client, received, server) = fake_api_server(|_, _| not_found());
    let context = context_with_caches(
        client,
        vec![
            replica_set("web-v1", "v1", "uid-web"),
            replica_set("web-v0", "v0", "uid-someone-else"),
        ],
        Vec::new(),
        Vec::new(),
    );
    let mut web = rollout(json!({"canary": {"steps": [{"setWeight": 50}]}}), 2);
    web.metadata.uid = Some("uid-web".into());
    let fetched = fetch(&context, web).await.expect("fetched");
    drop(context);
    server.await.unwrap();

    assert_eq!(lines(&received), Vec::<String>::new());
    // Only the ReplicaSet the Rollout controls is one of its revisions, whatever the labels say.
    assert_eq!(fetched.revisions.len(), 1, "{:?}", fetched.revisions);
    assert_eq!(fetched.revisions[0].revision, "v1");
    assert_eq!(fetched.revisions[0].available, 2);
    assert!(fetched.runs.is_empty() && fetched.approvals.objects.is_empty());
}

#[tokio::test]
async fn fetch_takes_a_gated_rollouts_own_approvals_from_the_caches() {
    let (client, received, server) = fake_api_server(|_, _| not_found());
    let context = context_with_caches(
        client,
        Vec::new(),
        Vec::new(),
        vec![approval("web-alice", "web"), approval("api-alice", "api")],
    );
    let gated = rollout(
        json!({"canary": {"steps": [
            {"setWeight": 50},
            {"analysis": {"templates": [{"templateName": "slo"}]}},
            {"approval": {}}
        ]}}),
        2,
    );
    let fetched = fetch(&context, gated).await.expect("fetched");
    drop(context);
    server.await.unwrap();

    assert_eq!(lines(&received), Vec::<String>::new());
    let names: Vec<String> = fetched
        .approvals
        .objects
        .iter()
        .map(|approval| approval.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["web-alice"]);
}

#[tokio::test]
async fn fetch_waits_until_the_caches_hold_their_first_list() {
    let (client, _received, _server) = fake_api_server(|_, _| not_found());
    let context = Context::new(client, "test".into(), Arc::new(Metrics::default()));
    let (caches, mut writers) = crate::caches::caches();
    context.install_caches(caches);
    let context = Arc::new(context);
    let web = rollout(json!({"canary": {"steps": [{"setWeight": 50}]}}), 2);
    let fetching = tokio::spawn({
        let context = context.clone();
        async move {
            fetch(&context, web)
                .await
                .map(|fetched| fetched.revisions.len())
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // A decision from an empty view would believe the Rollout has no ReplicaSets.
    assert!(
        !fetching.is_finished(),
        "fetch went on before the stores synced"
    );
    fill(&mut writers.replica_sets, Vec::new());
    fill(&mut writers.analysis_runs, Vec::new());
    fill(&mut writers.approvals, Vec::new());
    let revisions = tokio::time::timeout(std::time::Duration::from_secs(5), fetching)
        .await
        .expect("fetch went on once the stores synced")
        .unwrap()
        .expect("fetched");
    assert_eq!(revisions, 0);
}

/// A plan that points `web-stable` at `v2` and scales `v2` up.
fn plan_for(web: &rollgate_crds::Rollout) -> Plan {
    let mut status = web.status.clone().unwrap_or_default();
    status.current_revision = Some("v2".into());
    Plan {
        replica_sets: vec![ReplicaSetPlan {
            revision: "v2".into(),
            replicas: 2,
        }],
        delete_revisions: Vec::new(),
        services: vec![ServicePlan {
            service: "web-stable".into(),
            revision: "v2".into(),
        }],
        route: None,
        status,
        transitions: Vec::new(),
        start_analyses: Vec::new(),
        requeue_after: None,
    }
}

/// Applies [`plan_for`] a `web` Rollout through `client`, then waits until the fake API server
/// has recorded every request.
async fn apply_plan_for_web(client: kube::Client, server: tokio::task::JoinHandle<()>) -> Applied {
    let written = crate::freshness::WrittenStatuses::default();
    let web = rollout(json!({"canary": {"steps": [{"setWeight": 50}]}}), 2);
    let applied = apply(&client, &written, &web, &plan_for(&web), &[])
        .await
        .expect("applied");
    drop(client);
    server.await.unwrap();
    applied
}

#[tokio::test]
async fn apply_holds_a_plan_whose_service_is_missing_and_writes_only_the_reason() {
    let (client, received, server) = fake_api_server(|method, path| {
        if method == "PATCH" && path.ends_with("/rollouts/web/status") {
            (
                200,
                serde_json::to_value(rollout(json!({"canary": {"steps": []}}), 2)).unwrap(),
            )
        } else {
            not_found()
        }
    });
    let applied = apply_plan_for_web(client, server).await;

    assert!(
        matches!(&applied, Applied::Held(reason) if reason.contains("web-stable")),
        "{applied:?}"
    );
    let received = received.lock().unwrap().clone();
    let requests = without_queries(&received);
    assert_eq!(
        requests,
        [
            "GET /api/v1/namespaces/shop/services/web-stable",
            "PATCH /apis/rollgate.io/v1alpha1/namespaces/shop/rollouts/web/status",
        ],
        "no ReplicaSet is touched while the plan is held"
    );
    let status = &received[1].body.as_ref().expect("a status body")["status"];
    assert_eq!(status["phase"], "Degraded");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("web-stable"))
    );
}

#[tokio::test]
async fn apply_moves_traffic_before_it_scales_and_writes_status_last() {
    let (client, received, server) = fake_api_server(|method, path| match (method, path) {
        ("GET", path) if path.ends_with("/services/web-stable") => (
            200,
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "web-stable", "namespace": "shop",
                                "annotations": {"rollgate.io/managed-by-rollout": "web"}},
                   "spec": {"selector": {"app": "web"}}}),
        ),
        ("PATCH", path) if path.ends_with("/services/web-stable") => (
            200,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-stable"}}),
        ),
        ("PATCH", path) if path.ends_with("/replicasets/web-v2") => (
            200,
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-v2"},
                   "spec": {"selector": {"matchLabels": {"app": "web"}}}}),
        ),
        ("PATCH", path) if path.ends_with("/rollouts/web/status") => (
            200,
            serde_json::to_value(rollout(json!({"canary": {"steps": []}}), 2)).unwrap(),
        ),
        _ => not_found(),
    });
    let applied = apply_plan_for_web(client, server).await;

    assert_eq!(applied, Applied::Complete);
    let received = received.lock().unwrap().clone();
    let requests = without_queries(&received);
    assert_eq!(
        requests,
        [
            "GET /api/v1/namespaces/shop/services/web-stable",
            "PATCH /api/v1/namespaces/shop/services/web-stable",
            "PATCH /apis/apps/v1/namespaces/shop/replicasets/web-v2",
            "PATCH /apis/rollgate.io/v1alpha1/namespaces/shop/rollouts/web/status",
        ]
    );
    assert_eq!(
        received[1].body.as_ref().unwrap()["spec"]["selector"]["rollgate.io/revision"],
        "v2"
    );
    assert!(
        received[1]
            .line
            .contains("fieldManager=rollgate-controller")
            && received[1].line.contains("force=true"),
        "{}",
        received[1].line
    );
    assert_eq!(
        received[3].body.as_ref().unwrap()["status"]["currentRevision"],
        "v2"
    );
}
