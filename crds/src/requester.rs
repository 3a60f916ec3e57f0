//! Who requested a revision: the person who last changed a Rollout's pod template.
//!
//! The approval gate must know the requester, because by default nobody approves their own
//! change. A ValidatingAdmissionPolicy can check a request but cannot change the object, so the
//! requester is recorded by the client and checked by the API server:
//!
//! - A request that creates a Rollout, or changes its `spec.template`, must set the annotation
//!   [`REQUESTED_BY_ANNOTATION`] (`rollgate.io/requested-by`) to the requesting user's own name,
//!   exactly as the API server authenticates them (`request.userInfo.username`). The admission
//!   policy `rollgate-requested-by` (shipped under `crds/policies/`) refuses it otherwise, and
//!   its message names the user name to write.
//! - The annotation may not change without a template change, so it can be neither removed nor
//!   pointed at someone else afterwards: it always names whoever set the current template.
//! - Status and scale updates (subresources) are not affected.
//!
//! How clients comply: with kubectl, put the annotation in the manifest next to the template
//! change (`kubectl apply`), or `kubectl annotate --overwrite` in the same `kubectl patch`. A
//! GitOps tool writes the template as its own service account, so its manifests carry that
//! name (for example `system:serviceaccount:argocd:argocd-application-controller`): the
//! requester is then the GitOps tool, and the people who approve are checked against that. The
//! controller should read the requester when it first detects a revision and keep it with the
//! revision (for example in the RevisionDetected audit record's actor).

use crate::Rollout;

/// The Rollout annotation that names who last changed the pod template.
pub const REQUESTED_BY_ANNOTATION: &str = "rollgate.io/requested-by";

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
