//! User intents: the action in `status.userAction` that the controller has not handled yet.

use rollgate_crds::rollout::{RolloutStatus, UserActionKind};

use super::TransitionKind;

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
    /// The revision it was issued for.
    pub revision: String,
    /// The attempt of that revision it was issued for.
    pub attempt: i32,
}

impl PendingAction {
    /// Whether the action was issued for `revision` at `attempt`; otherwise why it does not
    /// apply. An action is never carried over to another revision or another try.
    pub fn bound_to(&self, revision: &str, attempt: i32) -> Result<(), String> {
        if self.revision == revision && self.attempt == attempt {
            Ok(())
        } else {
            Err(format!(
                "it was issued for revision {} attempt {}, and the rollout is at revision {revision} attempt {attempt}",
                self.revision, self.attempt
            ))
        }
    }
}

/// The transition a decision notes when it carries out `kind`.
pub fn carried_out_by(kind: UserActionKind) -> TransitionKind {
    match kind {
        UserActionKind::Promote | UserActionKind::PromoteFull => TransitionKind::Promoted,
        UserActionKind::Abort => TransitionKind::Aborted,
        UserActionKind::Retry => TransitionKind::Retried,
        UserActionKind::Pause => TransitionKind::Paused,
        UserActionKind::Resume => TransitionKind::Resumed,
    }
}

/// The attempt of `revision` that `status` is at: a new revision is at attempt 0.
pub fn attempt_of(status: &RolloutStatus, revision: &str) -> i32 {
    if status.current_revision.as_deref() == Some(revision) {
        status.attempt.unwrap_or(0)
    } else {
        0
    }
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
        revision: action.revision.clone(),
        attempt: action.attempt,
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
    let retrying_this =
        pending(status).is_some_and(|action| action.bound_to(desired_revision, attempt).is_ok());
    let retrying = retrying_this
        && status.abort.is_some()
        && is(pending(status).as_ref(), UserActionKind::Retry);
    if retrying { attempt + 1 } else { attempt }
}
