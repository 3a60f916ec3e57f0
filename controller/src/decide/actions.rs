//! User intents: the action in `status.userAction` that the controller has not handled yet.

use rollgate_crds::rollout::{RolloutStatus, UserActionKind};

/// A requested action the controller has not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAction {
    /// The request's id; the plan records it in `status.handledAction`.
    pub id: String,
    /// What was asked.
    pub kind: UserActionKind,
    /// Who asked.
    pub by: String,
    /// Why, if they said.
    pub reason: Option<String>,
}

/// The pending action of a status, if its id has not been handled.
pub fn pending(status: &RolloutStatus) -> Option<PendingAction> {
    let action = status.user_action.as_ref()?;
    if status.handled_action.as_deref() == Some(action.id.as_str()) {
        return None;
    }
    Some(PendingAction {
        id: action.id.clone(),
        kind: action.action,
        by: action.by.clone(),
        reason: action.reason.clone(),
    })
}

/// Whether `pending` asks for `kind`.
pub fn is(pending: Option<&PendingAction>, kind: UserActionKind) -> bool {
    pending.is_some_and(|action| action.kind == kind)
}

/// The attempt whose gate results a decision on `status` for `desired_revision` must see: a new
/// revision starts at attempt 0, and a pending retry of an aborted rollout starts the next
/// attempt in this very decision, so the verdicts of the aborted attempt no longer count.
pub fn attempt_for_gates(status: &RolloutStatus, desired_revision: &str) -> i32 {
    if status.current_revision.as_deref() != Some(desired_revision) {
        return 0;
    }
    let attempt = status.attempt.unwrap_or(0);
    let retrying = status.abort.is_some() && is(pending(status).as_ref(), UserActionKind::Retry);
    if retrying { attempt + 1 } else { attempt }
}
