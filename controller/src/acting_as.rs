//! Whether an approver could have acted as the requester of a change, as the API server
//! answers: one SubjectAccessReview per question of [`rollgate_crds::approval::acting`]
//! (impersonating the requester, minting a token for the requester's ServiceAccount), the
//! first allowed one being the answer. Answers are kept for [`ANSWER_TTL`], so a Rollout
//! waiting at a gate asks again at most that often per approver; a revoked permission thus
//! stops excluding its holder within that time, and a new one starts excluding them too.
//!
//! A review that fails (the API server unreachable, the controller not allowed to create
//! SubjectAccessReviews) fails the reconcile: the gate stays closed rather than counting an
//! approval nobody could check.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use rollgate_crds::approval::acting::{
    AccessQuestion, ActingPermission, questions, service_account_groups,
};

/// How long an answer is reused.
pub const ANSWER_TTL: Duration = Duration::from_secs(30);
/// More cached answers than this and expired ones are dropped.
const PRUNE_ABOVE: usize = 1024;

/// Who asks (the approver with their recorded groups) about whom (the requester).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    approver: String,
    groups: Vec<String>,
    requester: String,
}

/// Recent answers to "could this approver act as this requester?".
#[derive(Debug, Default)]
pub struct ActingAsReviews {
    answers: Mutex<HashMap<Key, (Instant, Option<ActingPermission>)>>,
}

impl ActingAsReviews {
    /// The permission through which `approver` (in `groups`, as recorded on their Approval)
    /// could act as `requester`, or `None`.
    pub async fn check(
        &self,
        client: &kube::Client,
        approver: &str,
        groups: &[String],
        requester: &str,
    ) -> Result<Option<ActingPermission>, kube::Error> {
        let mut groups = subject_groups(approver, groups);
        groups.sort();
        groups.dedup();
        let key = Key {
            approver: approver.to_owned(),
            groups,
            requester: requester.to_owned(),
        };
        if let Some(answer) = self.cached(&key) {
            return Ok(answer);
        }
        let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
        let mut answer = None;
        for question in questions(requester) {
            let review = reviews
                .create(&PostParams::default(), &review(&key, &question))
                .await?;
            if review.status.is_some_and(|status| status.allowed) {
                answer = Some(question.permission);
                break;
            }
        }
        self.remember(key, answer);
        Ok(answer)
    }

    fn cached(&self, key: &Key) -> Option<Option<ActingPermission>> {
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        answers
            .get(key)
            .filter(|(at, _)| at.elapsed() < ANSWER_TTL)
            .map(|(_, answer)| *answer)
    }

    fn remember(&self, key: Key, answer: Option<ActingPermission>) {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if answers.len() > PRUNE_ABOVE {
            answers.retain(|_, (at, _)| at.elapsed() < ANSWER_TTL);
        }
        answers.insert(key, (Instant::now(), answer));
    }
}

/// The groups the approver is reviewed with: those recorded on the Approval, every
/// authenticated user's, and a ServiceAccount's own.
fn subject_groups(approver: &str, recorded: &[String]) -> Vec<String> {
    let mut groups = recorded.to_vec();
    groups.push("system:authenticated".to_owned());
    groups.extend(service_account_groups(approver));
    groups
}

fn review(key: &Key, question: &AccessQuestion) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(key.approver.clone()),
            groups: Some(key.groups.clone()),
            resource_attributes: Some(ResourceAttributes {
                group: Some(String::new()),
                resource: Some(question.resource.to_owned()),
                subresource: question.subresource.map(str::to_owned),
                verb: Some(question.verb.to_owned()),
                name: Some(question.name.clone()),
                namespace: question.namespace.clone(),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_approver_is_reviewed_with_recorded_and_implied_groups() {
        assert_eq!(
            subject_groups("alice", &["release".into()]),
            ["release", "system:authenticated"]
        );
        assert_eq!(
            subject_groups("system:serviceaccount:shop:bot", &[]),
            [
                "system:authenticated",
                "system:serviceaccounts",
                "system:serviceaccounts:shop"
            ]
        );
    }

    #[test]
    fn a_review_asks_about_the_named_object_in_the_core_group() {
        let key = Key {
            approver: "eve".into(),
            groups: vec!["system:authenticated".into()],
            requester: "system:serviceaccount:shop:deployer".into(),
        };
        let question = &questions(&key.requester)[2];
        let spec = review(&key, question).spec;
        assert_eq!(spec.user.as_deref(), Some("eve"));
        let attributes = spec.resource_attributes.expect("resource attributes");
        assert_eq!(attributes.group.as_deref(), Some(""));
        assert_eq!(attributes.resource.as_deref(), Some("serviceaccounts"));
        assert_eq!(attributes.subresource.as_deref(), Some("token"));
        assert_eq!(attributes.verb.as_deref(), Some("create"));
        assert_eq!(attributes.name.as_deref(), Some("deployer"));
        assert_eq!(attributes.namespace.as_deref(), Some("shop"));
    }

    #[test]
    fn answers_are_reused_until_they_expire() {
        let reviews = ActingAsReviews::default();
        let key = Key {
            approver: "eve".into(),
            groups: Vec::new(),
            requester: "bob".into(),
        };
        assert_eq!(reviews.cached(&key), None);
        reviews.remember(key.clone(), Some(ActingPermission::ImpersonateUser));
        assert_eq!(
            reviews.cached(&key),
            Some(Some(ActingPermission::ImpersonateUser))
        );
        let stale = Instant::now().checked_sub(ANSWER_TTL + Duration::from_secs(1));
        if let Some(stale) = stale {
            reviews
                .answers
                .lock()
                .expect("lock")
                .insert(key.clone(), (stale, None));
            assert_eq!(reviews.cached(&key), None);
        }
    }
}
