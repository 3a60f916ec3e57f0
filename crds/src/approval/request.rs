//! The Approval a client creates to decide on a Rollout's current revision: one builder shared
//! by the kubectl plugin and the controller's gRPC RolloutService, so both create the same
//! object (generated name `<rollout>-<revision>-…`, the rollout and revision labels, the
//! revision and digests copied from the Rollout's status).

use std::collections::BTreeMap;

use super::{Approval, ApprovalDecision, ApprovalSpec, digests_of};
use crate::audit::is_label_value;
use crate::names::{APPROVAL_REVISION_LABEL, ROLLOUT_LABEL};
use crate::rollout::RolloutStatus;

/// The most groups an Approval lists (the CRD's bound).
pub const MAX_GROUPS: usize = 100;

/// What is decided on: a Rollout's current revision and the digests of its images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionTarget {
    /// The revision hash (`status.currentRevision`).
    pub revision: String,
    /// The sorted image digests of that revision (`status.currentImages`).
    pub digests: Vec<String>,
}

/// Why a Rollout's revision cannot be decided on yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoTarget {
    /// The controller has not recorded a current revision.
    #[error("rollout {0} has no current revision yet: nothing to decide on")]
    NoRevision(String),
    /// The current revision has no image pinned by digest.
    #[error("rollout {rollout} revision {revision} has no image pinned by digest yet")]
    NoDigests {
        /// The Rollout.
        rollout: String,
        /// Its current revision.
        revision: String,
    },
}

/// The revision and digests to decide on, from the Rollout `name`'s status.
pub fn decision_target(name: &str, status: &RolloutStatus) -> Result<DecisionTarget, NoTarget> {
    let revision = status
        .current_revision
        .clone()
        .ok_or_else(|| NoTarget::NoRevision(name.to_owned()))?;
    let digests = digests_of(status.current_images.iter().map(|i| i.image.as_str()));
    if digests.is_empty() {
        return Err(NoTarget::NoDigests {
            rollout: name.to_owned(),
            revision,
        });
    }
    Ok(DecisionTarget { revision, digests })
}

/// The Approval (to create, with a generated name) of `approver`, as `groups` (at most
/// [`MAX_GROUPS`] are kept), deciding `decision` on `target` of the Rollout `rollout`.
pub fn approval_request(
    rollout: &str,
    target: &DecisionTarget,
    decision: ApprovalDecision,
    comment: Option<String>,
    approver: &str,
    groups: &[String],
) -> Approval {
    let mut approval = Approval::new(
        "",
        ApprovalSpec {
            rollout: rollout.to_owned(),
            revision: target.revision.clone(),
            digests: target.digests.clone(),
            decision,
            comment,
            approver: approver.to_owned(),
            approver_groups: groups.iter().take(MAX_GROUPS).cloned().collect(),
        },
    );
    approval.metadata.name = None;
    let prefix: String = rollout.chars().take(200).collect();
    approval.metadata.generate_name = Some(format!("{prefix}-{}-", target.revision));
    let mut labels =
        BTreeMap::from([(APPROVAL_REVISION_LABEL.to_owned(), target.revision.clone())]);
    if is_label_value(rollout) {
        labels.insert(ROLLOUT_LABEL.to_owned(), rollout.to_owned());
    }
    approval.metadata.labels = Some(labels);
    approval
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::ContainerImage;

    fn status() -> RolloutStatus {
        RolloutStatus {
            current_revision: Some("0123456789".into()),
            current_images: vec![ContainerImage {
                container: "web".into(),
                image: format!("r/web@sha256:{}", "a".repeat(64)),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_target_is_the_current_revision_and_its_digests() {
        let target = decision_target("web", &status()).unwrap();
        assert_eq!(target.revision, "0123456789");
        assert_eq!(target.digests, [format!("sha256:{}", "a".repeat(64))]);
        let mut bare = status();
        bare.current_images.clear();
        assert!(matches!(
            decision_target("web", &bare),
            Err(NoTarget::NoDigests { .. })
        ));
        assert_eq!(
            decision_target("web", &RolloutStatus::default()),
            Err(NoTarget::NoRevision("web".into()))
        );
    }

    #[test]
    fn the_request_has_a_generated_name_labels_and_the_identity() {
        let target = decision_target("web", &status()).unwrap();
        let groups: Vec<String> = (0..150).map(|i| format!("g{i}")).collect();
        let approval = approval_request(
            "web",
            &target,
            ApprovalDecision::Approve,
            None,
            "alice",
            &groups,
        );
        assert_eq!(approval.metadata.name, None);
        assert_eq!(
            approval.metadata.generate_name.as_deref(),
            Some("web-0123456789-")
        );
        let labels = approval.metadata.labels.unwrap();
        assert_eq!(labels[ROLLOUT_LABEL], "web");
        assert_eq!(labels[APPROVAL_REVISION_LABEL], "0123456789");
        assert_eq!(approval.spec.approver, "alice");
        assert_eq!(approval.spec.approver_groups.len(), MAX_GROUPS);
        let long = "x".repeat(70);
        let unlabelled = approval_request(&long, &target, ApprovalDecision::Reject, None, "a", &[]);
        assert!(
            !unlabelled
                .metadata
                .labels
                .unwrap()
                .contains_key(ROLLOUT_LABEL)
        );
    }
}
