//! The ReplicaSet of one revision: named `<rollout>-<revision>`, labelled with the rollout and
//! the revision, selecting only its own pods, owned by the Rollout.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{Resource, ResourceExt};
use rollgate_crds::Rollout;
use rollgate_crds::names::{REVISION_LABEL, ROLLOUT_LABEL};

use crate::decide::RevisionState;

/// The name of a revision's ReplicaSet.
pub fn name(rollout: &Rollout, revision: &str) -> String {
    format!("{}-{revision}", rollout.name_any())
}

/// The ReplicaSet of `revision` at `replicas`, as rollgate applies it.
pub fn build(rollout: &Rollout, revision: &str, replicas: i32) -> ReplicaSet {
    let mut template = rollout.spec.template.clone();
    let metadata = template.metadata.get_or_insert_with(Default::default);
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(REVISION_LABEL.to_owned(), revision.to_owned());
    labels.insert(ROLLOUT_LABEL.to_owned(), rollout.name_any());
    let mut selector = rollout.spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_LABEL.to_owned(), revision.to_owned());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name(rollout, revision)),
            namespace: rollout.namespace(),
            labels: Some(BTreeMap::from([
                (REVISION_LABEL.to_owned(), revision.to_owned()),
                (ROLLOUT_LABEL.to_owned(), rollout.name_any()),
            ])),
            owner_references: rollout.controller_owner_ref(&()).map(|owner| vec![owner]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector { ..selector },
            template: Some(template),
            min_ready_seconds: None,
        }),
        status: None,
    }
}

/// The observed state of a ReplicaSet that belongs to `rollout`, or `None` for one that does
/// not (another owner, or no revision label).
pub fn revision_state(rollout: &Rollout, replica_set: &ReplicaSet) -> Option<RevisionState> {
    let owned = replica_set
        .owner_references()
        .iter()
        .any(|owner| owner.controller == Some(true) && Some(&owner.uid) == rollout.uid().as_ref());
    if !owned {
        return None;
    }
    let revision = replica_set.labels().get(REVISION_LABEL)?.clone();
    let status = replica_set.status.as_ref();
    Some(RevisionState {
        revision,
        replicas: replica_set
            .spec
            .as_ref()
            .and_then(|spec| spec.replicas)
            .unwrap_or(0),
        available: status.and_then(|s| s.available_replicas).unwrap_or(0),
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        created: replica_set.creation_timestamp().map(|time| time.0),
    })
}
