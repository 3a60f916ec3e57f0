//! Who requested a revision: the person who last changed a Rollout's pod template.
//!
//! The approval gate must know the requester, because by default nobody approves their own
//! change. The API server records it, so no client has to cooperate:
//!
//! - The MutatingAdmissionPolicy `rollgate-stamp-requested-by` (shipped under
//!   `crds/policies/`) sets the annotation [`REQUESTED_BY_ANNOTATION`]
//!   (`rollgate.io/requested-by`) to the requesting user, exactly as the API server
//!   authenticates them (`request.userInfo.username`), whenever a request creates a Rollout or
//!   changes its `spec.template`. On any other update it writes back the previous value, so the
//!   annotation can be neither forged nor removed: it always names whoever set the current
//!   template.
//! - The ValidatingAdmissionPolicy `rollgate-requested-by` checks the same rules after every
//!   mutation. With the mutating policy installed it always passes; on a cluster where the
//!   mutating policy is switched off, clients must write the annotation themselves and the
//!   validating policy refuses a wrong one, naming the user name to write.
//! - Status and scale updates (subresources) are not affected.
//!
//! A GitOps tool writes the template as its own service account (for example
//! `system:serviceaccount:argocd:argocd-application-controller`): the requester is then the
//! GitOps tool, and the people who approve are checked against that. The controller reads the
//! requester when it first detects a revision and keeps it as the actor of the revision's
//! audit record.

use crate::Rollout;
use crate::names::REQUESTED_BY_ANNOTATION;

/// The requester of a Rollout's current template, if the Rollout names one.
pub fn requester(rollout: &Rollout) -> Option<&str> {
    rollout
        .metadata
        .annotations
        .as_ref()?
        .get(REQUESTED_BY_ANNOTATION)
        .map(String::as_str)
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RolloutSpec;

    fn rollout(annotation: Option<&str>) -> Rollout {
        let spec: RolloutSpec = serde_json::from_value(serde_json::json!({
            "selector": {}, "template": {}, "strategy": {"canary": {}}
        }))
        .unwrap();
        let mut rollout = Rollout::new("web", spec);
        if let Some(value) = annotation {
            rollout.metadata.annotations = Some(
                [(REQUESTED_BY_ANNOTATION.to_owned(), value.to_owned())]
                    .into_iter()
                    .collect(),
            );
        }
        rollout
    }

    #[test]
    fn reads_the_annotation() {
        assert_eq!(requester(&rollout(Some("alice"))), Some("alice"));
        assert_eq!(requester(&rollout(Some(""))), None);
        assert_eq!(requester(&rollout(None)), None);
    }
}
