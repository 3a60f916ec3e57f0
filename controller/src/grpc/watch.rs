//! One WatchRollouts stream: the hub's state (or, resumed, the changes since a version), a
//! SYNCED event, then every change, filtered by namespace, label selector and what the caller
//! may watch.
//!
//! A stream that falls more than the channel's buffer behind (a slow client) is not cut off: it
//! resubscribes from the last version it handled and so receives the newest state of every
//! Rollout that changed meanwhile (intermediate states are skipped, as a Kubernetes watch
//! that relists does). Without a namespace, each namespace is checked with a SubjectAccessReview
//! (`watch` on `rollouts`), unless the caller may watch at the cluster scope.
//!
//! # Losing access
//!
//! An open stream re-checks its caller's access on the clock of the authentication cache
//! ([`Authenticator::ttl`], at least every second), asking the API server afresh, so a revoked
//! RoleBinding ends delivery within that time, as it does for unary calls: a stream of one
//! namespace ends with `PERMISSION_DENIED`; a stream of every namespace stops delivering the
//! namespaces no longer allowed (and loses its cluster-wide view if that went). The stream
//! holds a [`StreamPermit`] of the stream limits for as long as it lives.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use kube::core::{Selector, SelectorExt};
use rollgate_proto::v1::{RolloutEvent, rollout_event::Type};
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tonic::Status;

use super::auth::{Access, Authenticator, Caller, denied};
use super::hub::{Change, Hub};
use super::limits::StreamPermit;

/// The shortest time between two re-checks of an open stream's access.
const MIN_RECHECK: Duration = Duration::from_secs(1);

/// The stream type of WatchRollouts.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RolloutEvent, Status>> + Send>>;

/// What a stream selects.
pub struct Scope {
    /// The namespace; empty for every namespace the caller may watch.
    pub namespace: String,
    /// The label selector.
    pub selector: Selector,
    /// Whether the caller may watch Rollouts at the cluster scope (then no per-namespace check).
    pub cluster_wide: bool,
}

/// A stream for `caller` over `scope`, resumed after version `after` if given, holding
/// `permit` while it lives.
pub fn stream(
    hub: Arc<Hub>,
    auth: Arc<Authenticator>,
    caller: Arc<Caller>,
    (scope, after): (Scope, Option<u64>),
    permit: StreamPermit,
) -> Result<EventStream, Status> {
    let subscription = hub.subscribe(after)?;
    let period = auth.ttl().max(MIN_RECHECK);
    let mut recheck = tokio::time::interval_at(Instant::now() + period, period);
    recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = StreamState {
        _permit: permit,
        recheck,
        hub,
        auth,
        caller,
        scope,
        after: after.unwrap_or(0),
        processed: after.unwrap_or(0),
        pending: subscription.initial.into(),
        newest: subscription.newest,
        synced_sent: false,
        receiver: subscription.receiver,
        allowed: HashMap::new(),
    };
    Ok(Box::pin(futures::stream::unfold(
        Some(state),
        |state| async move {
            let mut state = state?;
            match state.next().await {
                Ok(Some(event)) => Some((Ok(event), Some(state))),
                Ok(None) => None,
                Err(status) => Some((Err(status), None)),
            }
        },
    )))
}

struct StreamState {
    _permit: StreamPermit,
    recheck: Interval,
    hub: Arc<Hub>,
    auth: Arc<Authenticator>,
    caller: Arc<Caller>,
    scope: Scope,
    after: u64,
    processed: u64,
    pending: VecDeque<Arc<Change>>,
    newest: u64,
    synced_sent: bool,
    receiver: broadcast::Receiver<Arc<Change>>,
    allowed: HashMap<String, bool>,
}

impl StreamState {
    async fn next(&mut self) -> Result<Option<RolloutEvent>, Status> {
        loop {
            if let Some(change) = self.pending.pop_front() {
                self.processed = self.processed.max(change.entry.version);
                if let Some(event) = self.event(&change).await? {
                    return Ok(Some(event));
                }
                continue;
            }
            if !self.synced_sent {
                self.synced_sent = true;
                self.processed = self.processed.max(self.newest);
                return Ok(Some(RolloutEvent {
                    r#type: Type::Synced as i32,
                    rollout: None,
                    resource_version: self.processed.to_string(),
                }));
            }
            let received = tokio::select! {
                biased;
                _ = self.recheck.tick() => {
                    self.recheck_access().await?;
                    continue;
                }
                received = self.receiver.recv() => received,
            };
            match received {
                Ok(change) => {
                    self.processed = self.processed.max(change.entry.version);
                    if change.entry.version <= self.after {
                        continue;
                    }
                    if let Some(event) = self.event(&change).await? {
                        return Ok(Some(event));
                    }
                }
                Err(RecvError::Lagged(skipped)) => {
                    tracing::debug!(
                        skipped,
                        from = self.processed,
                        "slow WatchRollouts stream resubscribes"
                    );
                    let subscription = self.hub.subscribe(Some(self.processed))?;
                    self.pending = subscription.initial.into();
                    self.receiver = subscription.receiver;
                }
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }

    /// The event for `change`, if the stream selects it.
    async fn event(&mut self, change: &Change) -> Result<Option<RolloutEvent>, Status> {
        let entry = &change.entry;
        let namespace_matches =
            self.scope.namespace.is_empty() || self.scope.namespace == entry.namespace;
        if !namespace_matches || !self.scope.selector.matches(&entry.labels) {
            return Ok(None);
        }
        if !self.scope.cluster_wide && !self.may_watch(&entry.namespace).await? {
            return Ok(None);
        }
        Ok(Some(RolloutEvent {
            r#type: change.kind as i32,
            rollout: Some(entry.rollout.clone()),
            resource_version: entry.rollout.resource_version.clone(),
        }))
    }

    async fn may_watch(&mut self, namespace: &str) -> Result<bool, Status> {
        if let Some(allowed) = self.allowed.get(namespace) {
            return Ok(*allowed);
        }
        let allowed = self
            .auth
            .allowed_now(&self.caller, &watch_access(namespace))
            .await?;
        self.allowed.insert(namespace.to_owned(), allowed);
        Ok(allowed)
    }

    /// Asks the API server again whether the caller may still watch what the stream selects:
    /// `PERMISSION_DENIED` for a namespace's stream that may not; a stream of every namespace
    /// forgets what it knew and re-checks each namespace at its next change.
    async fn recheck_access(&mut self) -> Result<(), Status> {
        self.allowed.clear();
        let namespace = self.scope.namespace.as_str();
        if namespace.is_empty() && !self.scope.cluster_wide {
            return Ok(());
        }
        let access = watch_access(namespace);
        if self.auth.allowed_now(&self.caller, &access).await? {
            return Ok(());
        }
        if namespace.is_empty() {
            tracing::info!(caller = %self.caller.username, "a WatchRollouts stream lost its cluster-wide view");
            self.scope.cluster_wide = false;
            return Ok(());
        }
        tracing::info!(caller = %self.caller.username, %namespace, "a WatchRollouts stream lost access and ends");
        Err(denied(&self.caller, &access))
    }
}

fn watch_access(namespace: &str) -> Access<'_> {
    Access {
        verb: "watch",
        resource: "rollouts",
        subresource: "",
        namespace,
        name: "",
    }
}
