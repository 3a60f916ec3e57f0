//! User intents as the objects clients write: a user action (`promote`, `abort`, `retry`,
//! `pause`, `resume`) as the server-side apply patch of a Rollout's `status.userAction`.
//!
//! Shared by every client that writes intents (the kubectl plugin and the controller's gRPC
//! RolloutService), so both write exactly the same object. The action goes to the status
//! subresource, so a GitOps tool that syncs the spec never undoes it; the controller acts on
//! each new `id` once. Apply the patch with the client's own field manager (never the
//! controller's: the controller's status apply does not carry `userAction` and would remove a
//! field it owned) and `force`, so it takes over `status.userAction` whoever wrote it last.

use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::UserActionKind;

/// Requests made by this process so far, so two ids made in the same nanosecond still differ.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// A unique id for a request: the action, the time in nanoseconds, the process id and a
/// per-process counter.
pub fn action_id(kind: UserActionKind, now: Timestamp) -> String {
    let count = REQUESTS.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}-{:x}-{:x}{}",
        format!("{kind:?}").to_lowercase(),
        now.as_nanosecond(),
        std::process::id(),
        if count == 0 {
            String::new()
        } else {
            format!("-{count:x}")
        }
    )
}

/// The revision and attempt an action is issued for: the Rollout's `status.currentRevision`
/// and `status.attempt` as the client read them. The controller ignores the action for any
/// other (and says so in `status.actionOutcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionTarget {
    /// The revision hash.
    pub revision: String,
    /// The attempt of that revision (0 for the first).
    pub attempt: i32,
}

impl ActionTarget {
    /// The revision and attempt a Rollout's status shows, if it shows a revision.
    pub fn of(status: Option<&super::RolloutStatus>) -> Option<Self> {
        let status = status?;
        Some(ActionTarget {
            revision: status.current_revision.clone()?,
            attempt: status.attempt.unwrap_or(0),
        })
    }
}

/// The apply patch that requests `kind` on the Rollout `name`, for `target`, by `by`, at `now`
/// (stored in whole seconds).
pub fn user_action_patch(
    name: &str,
    kind: UserActionKind,
    target: &ActionTarget,
    by: &str,
    reason: Option<&str>,
    id: &str,
    now: Timestamp,
) -> Value {
    let mut action = json!({
        "id": id,
        "action": kind,
        "by": by,
        "revision": target.revision,
        "attempt": target.attempt,
        "time": Timestamp::from_second(now.as_second()).unwrap_or(now).to_string(),
    });
    if let Some(reason) = reason {
        action["reason"] = json!(reason);
    }
    json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "status": {"userAction": action},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::UserAction;

    #[test]
    fn the_patch_holds_a_valid_user_action() {
        let now = Timestamp::from_second(1_767_225_600).unwrap();
        let target = ActionTarget {
            revision: "abc".into(),
            attempt: 2,
        };
        let patch = user_action_patch(
            "web",
            UserActionKind::PromoteFull,
            &target,
            "alice",
            Some("hotfix"),
            "promotefull-1",
            now,
        );
        assert_eq!(patch["metadata"]["name"], "web");
        let action: UserAction =
            serde_json::from_value(patch["status"]["userAction"].clone()).unwrap();
        assert_eq!(action.action, UserActionKind::PromoteFull);
        assert_eq!(action.by, "alice");
        assert_eq!((action.revision.as_str(), action.attempt), ("abc", 2));
        assert_eq!(action.reason.as_deref(), Some("hotfix"));
        assert_eq!(
            patch["status"]["userAction"]["time"],
            "2026-01-01T00:00:00Z"
        );
        let plain = user_action_patch("web", UserActionKind::Abort, &target, "bob", None, "x", now);
        assert!(plain["status"]["userAction"].get("reason").is_none());
    }

    #[test]
    fn ids_differ_by_time_and_name_the_action() {
        let a = action_id(UserActionKind::Abort, Timestamp::from_second(1).unwrap());
        let b = action_id(UserActionKind::Abort, Timestamp::from_second(2).unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("abort-"));
        let now = Timestamp::from_second(3).unwrap();
        assert_ne!(
            action_id(UserActionKind::Retry, now),
            action_id(UserActionKind::Retry, now)
        );
    }
}
