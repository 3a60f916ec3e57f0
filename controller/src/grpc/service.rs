//! The RolloutService: each call authenticates the caller, authorises the call, and reads the
//! hub's cache or writes through [`super::intents`].

use std::sync::Arc;
use std::time::Duration;

use rollgate_crds::approval::ApprovalDecision;
use rollgate_crds::rollout::UserActionKind;
use rollgate_proto::v1::{self, rollout_service_server::RolloutService};
use tonic::{Request, Response, Status};

use super::audit;
use super::auth::{Access, Authenticator, Caller};
use super::errors::{required, rollout_not_found, rollout_ref};
use super::hub::{Entry, Hub};
use super::intents::{record_decision, request_action};
use super::limits::StreamLimiter;
use super::selector;
use super::watch::{self, EventStream, Scope};

/// How long a read waits for the first list of Rollouts before `UNAVAILABLE`.
const SYNC_WAIT: Duration = Duration::from_secs(30);

/// The RolloutService implementation.
#[derive(Clone)]
pub struct Rollouts {
    client: kube::Client,
    auth: Arc<Authenticator>,
    hub: Arc<Hub>,
    streams: Arc<StreamLimiter>,
}

impl Rollouts {
    /// A service that writes with `client`, authenticates with `auth`, reads `hub` and admits
    /// WatchRollouts streams through `streams`.
    pub fn new(
        client: kube::Client,
        auth: Arc<Authenticator>,
        hub: Arc<Hub>,
        streams: Arc<StreamLimiter>,
    ) -> Self {
        Rollouts {
            client,
            auth,
            hub,
            streams,
        }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Arc<Caller>, Status> {
        self.auth.authenticate(request.metadata()).await
    }

    async fn check(
        &self,
        caller: &Caller,
        verb: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), Status> {
        let access = rollouts_access(verb, "", namespace, name);
        self.auth.authorize(caller, &access).await
    }

    /// Whether `caller` may `verb` Rollouts in `namespace` (empty: cluster scope).
    async fn may(&self, caller: &Caller, verb: &str, namespace: &str) -> Result<bool, Status> {
        let access = rollouts_access(verb, "", namespace, "");
        self.auth.allowed(caller, &access).await
    }

    async fn action(
        &self,
        request: Request<(Option<v1::RolloutRef>, UserActionKind, Option<String>)>,
    ) -> Result<Response<v1::Rollout>, Status> {
        let caller = self.caller(&request).await?;
        let (rollout, kind, reason) = request.into_inner();
        let (namespace, name) = rollout_ref(rollout.as_ref())?;
        let access = rollouts_access("patch", "status", namespace, name);
        self.auth.authorize(&caller, &access).await?;
        let written = request_action(
            &self.client,
            &caller,
            (namespace, name),
            kind,
            reason.as_deref(),
        )
        .await?;
        Ok(Response::new(written))
    }

    async fn decision(
        &self,
        caller: Arc<Caller>,
        rollout: Option<v1::RolloutRef>,
        revision: String,
        decision: ApprovalDecision,
        comment: String,
    ) -> Result<Response<v1::ApprovalResponse>, Status> {
        let (namespace, name) = rollout_ref(rollout.as_ref())?;
        let revision = required("revision", &revision)?;
        let comment = Some(comment).filter(|comment| !comment.trim().is_empty());
        if decision == ApprovalDecision::Reject && comment.is_none() {
            return Err(Status::invalid_argument(
                "comment: required for a rejection (say why)",
            ));
        }
        let access = Access {
            verb: "create",
            resource: "approvals",
            subresource: "",
            namespace,
            name: "",
        };
        self.auth.authorize(&caller, &access).await?;
        let response = record_decision(
            &self.client,
            &caller,
            (namespace, name),
            revision,
            decision,
            comment,
        )
        .await?;
        Ok(Response::new(response))
    }
}

fn rollouts_access<'a>(
    verb: &'a str,
    subresource: &'a str,
    namespace: &'a str,
    name: &'a str,
) -> Access<'a> {
    Access {
        verb,
        resource: "rollouts",
        subresource,
        namespace,
        name,
    }
}

#[tonic::async_trait]
impl RolloutService for Rollouts {
    async fn list_rollouts(
        &self,
        request: Request<v1::ListRolloutsRequest>,
    ) -> Result<Response<v1::ListRolloutsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let selector = selector::parse(&request.label_selector)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        let namespace = request.namespace.as_str();
        if !namespace.is_empty() {
            self.check(&caller, "list", namespace, "").await?;
        }
        let cluster_wide = namespace.is_empty() && self.may(&caller, "list", "").await?;
        self.hub.wait_synced(SYNC_WAIT).await?;
        let selected = |entry: &Entry| {
            (namespace.is_empty() || entry.namespace == namespace)
                && selector_matches(&selector, entry)
        };
        let mut entries = self.hub.list(selected);
        if namespace.is_empty() && !cluster_wide {
            let mut namespaces: Vec<&str> = entries.iter().map(|e| e.namespace.as_str()).collect();
            namespaces.dedup();
            let mut allowed = Vec::new();
            for candidate in namespaces {
                if self.may(&caller, "list", candidate).await? {
                    allowed.push(candidate.to_owned());
                }
            }
            entries.retain(|entry| allowed.contains(&entry.namespace));
        }
        let rollouts = entries.iter().map(|entry| entry.rollout.clone()).collect();
        Ok(Response::new(v1::ListRolloutsResponse { rollouts }))
    }

    async fn get_rollout(
        &self,
        request: Request<v1::GetRolloutRequest>,
    ) -> Result<Response<v1::Rollout>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let (namespace, name) = rollout_ref(request.rollout.as_ref())?;
        self.check(&caller, "get", namespace, name).await?;
        self.hub.wait_synced(SYNC_WAIT).await?;
        let entry = self
            .hub
            .get(namespace, name)
            .ok_or_else(|| rollout_not_found(namespace, name))?;
        Ok(Response::new(entry.rollout.clone()))
    }

    type WatchRolloutsStream = EventStream;

    async fn watch_rollouts(
        &self,
        request: Request<v1::WatchRolloutsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let selector = selector::parse(&request.label_selector)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        let after = match request.resource_version.trim() {
            "" => None,
            text => Some(text.parse::<u64>().map_err(|_| {
                Status::invalid_argument(format!(
                    "resource_version: {text:?} is not a resource version (a number)"
                ))
            })?),
        };
        let cluster_wide = if request.namespace.is_empty() {
            self.may(&caller, "watch", "").await?
        } else {
            self.check(&caller, "watch", &request.namespace, "").await?;
            true
        };
        let permit = self.streams.acquire(&caller.username)?;
        self.hub.wait_synced(SYNC_WAIT).await?;
        let scope = Scope {
            namespace: request.namespace,
            selector,
            cluster_wide,
        };
        let (hub, auth) = (self.hub.clone(), self.auth.clone());
        let stream = watch::stream(hub, auth, caller, (scope, after), permit)?;
        Ok(Response::new(stream))
    }

    async fn approve(
        &self,
        request: Request<v1::ApproveRequest>,
    ) -> Result<Response<v1::ApprovalResponse>, Status> {
        let caller = self.caller(&request).await?;
        let v1::ApproveRequest {
            rollout,
            revision,
            comment,
        } = request.into_inner();
        self.decision(
            caller,
            rollout,
            revision,
            ApprovalDecision::Approve,
            comment,
        )
        .await
    }

    async fn reject(
        &self,
        request: Request<v1::RejectRequest>,
    ) -> Result<Response<v1::ApprovalResponse>, Status> {
        let caller = self.caller(&request).await?;
        let v1::RejectRequest {
            rollout,
            revision,
            comment,
        } = request.into_inner();
        self.decision(caller, rollout, revision, ApprovalDecision::Reject, comment)
            .await
    }

    async fn promote(
        &self,
        request: Request<v1::PromoteRequest>,
    ) -> Result<Response<v1::Rollout>, Status> {
        let kind = if request.get_ref().full {
            UserActionKind::PromoteFull
        } else {
            UserActionKind::Promote
        };
        self.action(request.map(|r| (r.rollout, kind, None))).await
    }

    async fn abort(
        &self,
        request: Request<v1::AbortRequest>,
    ) -> Result<Response<v1::Rollout>, Status> {
        self.action(request.map(|r| {
            let reason = Some(r.reason).filter(|reason| !reason.trim().is_empty());
            (r.rollout, UserActionKind::Abort, reason)
        }))
        .await
    }

    async fn retry(
        &self,
        request: Request<v1::RetryRequest>,
    ) -> Result<Response<v1::Rollout>, Status> {
        self.action(request.map(|r| (r.rollout, UserActionKind::Retry, None)))
            .await
    }

    async fn list_audit_records(
        &self,
        request: Request<v1::ListAuditRecordsRequest>,
    ) -> Result<Response<v1::ListAuditRecordsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let (namespace, name) = rollout_ref(request.rollout.as_ref())?;
        audit::authorize(&self.auth, &caller, namespace, name).await?;
        let chains = audit::chains(&self.client, namespace, name).await?;
        let records = chains
            .iter()
            .flatten()
            .map(super::convert::audit_record)
            .collect();
        Ok(Response::new(v1::ListAuditRecordsResponse { records }))
    }

    async fn verify_audit_chain(
        &self,
        request: Request<v1::VerifyAuditChainRequest>,
    ) -> Result<Response<v1::VerifyAuditChainResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let (namespace, name) = rollout_ref(request.rollout.as_ref())?;
        audit::authorize(&self.auth, &caller, namespace, name).await?;
        let chains = audit::chains(&self.client, namespace, name).await?;
        if chains.is_empty() {
            return Err(Status::not_found(format!(
                "no audit records of rollout {name:?} in namespace {namespace:?}"
            )));
        }
        let rollout = audit::live_rollout(&self.client, namespace, name).await?;
        Ok(Response::new(audit::verify(&chains, rollout.as_ref())))
    }
}

fn selector_matches(selector: &kube::core::Selector, entry: &Entry) -> bool {
    use kube::core::SelectorExt;
    selector.matches(&entry.labels)
}
