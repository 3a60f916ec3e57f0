//! The writes: a user action in a Rollout's status (Promote, Abort, Retry), and an Approval
//! created as the caller (Approve, Reject). Each checks its precondition on the Rollout as the
//! API server has it (not the cache), so `FAILED_PRECONDITION` reflects the latest state.

use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use rollgate_crds::approval::{ApprovalDecision, approval_request, decision_target};
use rollgate_crds::rollout::intents::{ActionTarget, action_id, user_action_patch};
use rollgate_crds::rollout::{RolloutPhase, RolloutStatus, UserActionKind};
use rollgate_crds::{Approval, Rollout};
use rollgate_proto::v1;
use tonic::Status;

use super::auth::Caller;
use super::convert;
use super::errors::{kube_status, rollout_not_found};
use crate::write::{self, FieldManager, Part};

/// Why `kind` cannot be requested of a Rollout in `status`, if it cannot.
pub fn action_precondition(kind: UserActionKind, status: &RolloutStatus) -> Result<(), String> {
    let phase = status.phase.unwrap_or_default();
    let aborted = status.abort.is_some() || phase == RolloutPhase::Aborted;
    match kind {
        UserActionKind::Promote | UserActionKind::PromoteFull if phase == RolloutPhase::Healthy => {
            Err("the rollout is Healthy: there is nothing to promote".into())
        }
        UserActionKind::Abort if aborted => Err("the rollout is already aborted".into()),
        UserActionKind::Abort if phase == RolloutPhase::Healthy => {
            Err("the rollout is Healthy: there is nothing to abort".into())
        }
        UserActionKind::Retry if !aborted => Err(format!(
            "only an aborted rollout can be retried, and this one is {phase:?}"
        )),
        _ => Ok(()),
    }
}

/// Why the gate of `revision` cannot be decided on, if it cannot: the rollout must wait at the
/// approval gate of exactly that revision, and it must be the current revision.
pub fn gate_precondition(status: &RolloutStatus, revision: &str) -> Result<(), String> {
    let current = status.current_revision.as_deref().unwrap_or_default();
    if current != revision {
        return Err(format!(
            "revision {revision} is not the rollout's current revision ({})",
            if current.is_empty() {
                "none yet"
            } else {
                current
            }
        ));
    }
    let phase = status.phase.unwrap_or_default();
    match &status.gate {
        Some(gate) if phase == RolloutPhase::AwaitingApproval && gate.revision == revision => {
            Ok(())
        }
        Some(gate) if gate.revision != revision => Err(format!(
            "the rollout waits at the gate of revision {}, not {revision}",
            gate.revision
        )),
        _ => Err(format!(
            "the rollout is not waiting at an approval gate (phase {phase:?})"
        )),
    }
}

/// Requests `kind` on the Rollout, by the caller; returns the Rollout as written.
pub async fn request_action(
    client: &kube::Client,
    caller: &Caller,
    (namespace, name): (&str, &str),
    kind: UserActionKind,
    reason: Option<&str>,
) -> Result<v1::Rollout, Status> {
    let api = Api::<Rollout>::namespaced(client.clone(), namespace);
    let rollout = fetch(&api, namespace, name).await?;
    let target = ActionTarget::of(rollout.status.as_ref()).ok_or_else(|| {
        Status::failed_precondition(format!(
            "{kind:?} rollout {name}: the controller has not seen it yet"
        ))
    })?;
    action_precondition(kind, &rollout.status.unwrap_or_default())
        .map_err(|why| Status::failed_precondition(format!("{kind:?} rollout {name}: {why}")))?;
    let now = Timestamp::now();
    let id = action_id(kind, now);
    let patch = user_action_patch(name, kind, &target, &caller.username, reason, &id, now);
    // As the caller: the admission policy checks that `by` is who really asked.
    let as_caller = Api::<Rollout>::namespaced(impersonating(client, caller)?, namespace);
    let written = write::apply(&as_caller, FieldManager::Api, Part::Status, name, &patch)
        .await
        .map_err(|error| kube_status(error, &format!("request {kind:?} on rollout {name}")))?;
    tracing::info!(namespace, name, action = ?kind, by = %caller.username, %id, "user action requested over gRPC");
    Ok(convert::rollout(&written))
}

/// Creates the caller's Approval (or rejection) of `revision`, impersonating the caller.
pub async fn record_decision(
    client: &kube::Client,
    caller: &Caller,
    (namespace, name): (&str, &str),
    revision: &str,
    decision: ApprovalDecision,
    comment: Option<String>,
) -> Result<v1::ApprovalResponse, Status> {
    let api = Api::<Rollout>::namespaced(client.clone(), namespace);
    let status = fetch(&api, namespace, name)
        .await?
        .status
        .unwrap_or_default();
    let verb = if decision == ApprovalDecision::Approve {
        "approve"
    } else {
        "reject"
    };
    let refuse = |why: String| Status::failed_precondition(format!("{verb} rollout {name}: {why}"));
    gate_precondition(&status, revision).map_err(refuse)?;
    let target = decision_target(name, &status).map_err(|why| refuse(why.to_string()))?;
    let approval = approval_request(
        name,
        &target,
        decision,
        comment,
        &caller.username,
        &caller.groups,
    );
    let as_caller = impersonating(client, caller)?;
    let created = Api::<Approval>::namespaced(as_caller, namespace)
        .create(&PostParams::default(), &approval)
        .await
        .map_err(|error| kube_status(error, "create the Approval as the caller"))?;
    tracing::info!(namespace, name, revision, by = %caller.username, ?decision, "approval created over gRPC");
    Ok(v1::ApprovalResponse {
        approval: created.metadata.name.unwrap_or_default(),
        approver: caller.username.clone(),
        gate: status.gate.as_ref().map(convert::gate),
    })
}

async fn fetch(api: &Api<Rollout>, namespace: &str, name: &str) -> Result<Rollout, Status> {
    api.get_opt(name)
        .await
        .map_err(|error| kube_status(error, &format!("get rollout {name}")))?
        .ok_or_else(|| rollout_not_found(namespace, name))
}

/// A client that sends every request as the caller: the `Impersonate-User`, `-Uid`, `-Group`
/// and `-Extra-<key>` headers on top of the server's own credentials, over the same connections.
pub fn impersonating(client: &kube::Client, caller: &Caller) -> Result<kube::Client, Status> {
    let headers = impersonation_headers(caller)?;
    let base = client.clone();
    let service = tower::service_fn(move |mut request: http::Request<kube::client::Body>| {
        let base = base.clone();
        for (name, value) in &headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        async move { base.send(request).await }
    });
    Ok(kube::Client::new(service, client.default_namespace()))
}

/// The impersonation headers for `caller`: user, uid, one per group and one per extra value
/// (`Impersonate-Extra-<key>`, the key percent-encoded as the API server expects, since keys
/// such as `authentication.kubernetes.io/pod-name` hold characters a header name cannot).
pub fn impersonation_headers(
    caller: &Caller,
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, Status> {
    use http::{HeaderName, HeaderValue};
    let value = |text: &str| {
        HeaderValue::from_str(text).map_err(|_| {
            Status::invalid_argument(format!(
                "the caller's identity {text:?} cannot be sent in a header"
            ))
        })
    };
    let mut headers = vec![(
        HeaderName::from_static("impersonate-user"),
        value(&caller.username)?,
    )];
    if let Some(uid) = &caller.uid {
        headers.push((HeaderName::from_static("impersonate-uid"), value(uid)?));
    }
    for group in &caller.groups {
        headers.push((HeaderName::from_static("impersonate-group"), value(group)?));
    }
    for (key, values) in &caller.extra {
        let name = format!("impersonate-extra-{}", percent_encode_key(key));
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Status::invalid_argument(format!(
                "the caller's extra key {key:?} cannot be sent in a header"
            ))
        })?;
        for extra in values {
            headers.push((name.clone(), value(extra)?));
        }
    }
    Ok(headers)
}

/// `key` lower-cased, with every byte that may not appear in a header name (and `%`)
/// percent-encoded.
fn percent_encode_key(key: &str) -> String {
    let mut encoded = String::with_capacity(key.len());
    for byte in key.to_ascii_lowercase().bytes() {
        let token = byte.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&byte);
        if token {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
#[path = "intents_tests.rs"]
mod tests;
