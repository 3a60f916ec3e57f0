//! Scenario tests of the state machine: a simulated world in which every planned ReplicaSet
//! gets its pods at once, so each test reads as the rollout a user would see.

mod blue_green;
mod canary;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rollgate_crds::Rollout;
use rollgate_crds::rollout::{ContainerImage, RolloutPhase, UserAction, UserActionKind};
use serde_json::{Value, json};

use super::{
    AnalysisKey, AnalysisOutcome, ApprovalGate, GateInputs, Observed, Plan, RevisionState,
    TransitionKind, Verification, decide,
};

/// A Rollout, its ReplicaSets and the gates, advanced one decision at a time.
pub struct World {
    pub rollout: Rollout,
    pub revision: String,
    pub revisions: Vec<RevisionState>,
    pub gates: GateInputs,
    pub now: Timestamp,
    /// Whether pods of newly scaled ReplicaSets become available (false: they never do).
    pub pods_become_available: bool,
    created: i64,
    actions: u32,
}

pub fn rollout(strategy: Value, replicas: i32) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "r/web@sha256:aa"}]}},
            "strategy": strategy
        }
    }))
    .expect("a valid Rollout")
}

impl World {
    /// A world whose first revision `v1` is already stable and fully available.
    pub fn stable(rollout: Rollout) -> Self {
        let mut world = World {
            rollout,
            revision: "v1".into(),
            revisions: Vec::new(),
            gates: GateInputs {
                verification: Verification::Passed {
                    reason: "Verified".into(),
                    message: "verified by ImagePolicy test".into(),
                },
                approval: ApprovalGate::Waiting {
                    required: 1,
                    approvers: Vec::new(),
                },
                approval_ignored: Vec::new(),
                analyses: BTreeMap::new(),
            },
            now: "2026-06-01T12:00:00Z".parse().expect("time"),
            pods_become_available: true,
            created: 0,
            actions: 0,
        };
        // The first revision passes its gate when the strategy has one.
        world.gates.approval = ApprovalGate::Open {
            approvers: vec!["first-approver".into()],
        };
        world.settle();
        world.gates.approval = ApprovalGate::Waiting {
            required: 1,
            approvers: Vec::new(),
        };
        assert_eq!(world.phase(), RolloutPhase::Healthy);
        world
    }

    /// Changes the template: a new revision.
    pub fn deploy(&mut self, revision: &str) {
        self.revision = revision.into();
        self.gates.approval = ApprovalGate::Waiting {
            required: 1,
            approvers: Vec::new(),
        };
        self.gates.analyses.clear();
    }

    pub fn decide(&self) -> Plan {
        let images = [ContainerImage {
            container: "web".into(),
            image: format!("r/web@sha256:{}", self.revision),
        }];
        decide(&Observed {
            rollout: &self.rollout,
            desired_revision: &self.revision,
            desired_images: &images,
            revisions: &self.revisions,
            gates: &self.gates,
            now: self.now,
        })
    }

    /// Decides once and makes the plan real: status written, ReplicaSets scaled (and their
    /// pods available, if they become so), deleted revisions gone.
    pub fn step(&mut self) -> Plan {
        let plan = self.decide();
        self.rollout.status = Some(plan.status.clone());
        for replica_set in &plan.replica_sets {
            let available = self.pods_become_available;
            match self
                .revisions
                .iter_mut()
                .find(|state| state.revision == replica_set.revision)
            {
                Some(state) => {
                    state.replicas = replica_set.replicas;
                    state.available = if available {
                        replica_set.replicas
                    } else {
                        state.available.min(replica_set.replicas)
                    };
                    state.ready = state.available;
                }
                None => {
                    self.created += 1;
                    let created = self
                        .now
                        .checked_add(SignedDuration::from_secs(self.created))
                        .expect("time");
                    self.revisions.push(RevisionState {
                        revision: replica_set.revision.clone(),
                        replicas: replica_set.replicas,
                        available: if available { replica_set.replicas } else { 0 },
                        ready: if available { replica_set.replicas } else { 0 },
                        created: Some(created),
                    });
                }
            }
        }
        self.revisions
            .retain(|state| !plan.delete_revisions.contains(&state.revision));
        plan
    }

    /// Steps until a decision changes nothing; returns the kind of every transition seen.
    pub fn settle(&mut self) -> Vec<TransitionKind> {
        let mut reasons = Vec::new();
        for _ in 0..50 {
            let before = (self.rollout.status.clone(), self.revisions.clone());
            let plan = self.step();
            reasons.extend(plan.transitions.iter().map(|t| t.kind));
            if (self.rollout.status.clone(), self.revisions.clone()) == before {
                return reasons;
            }
        }
        panic!("the rollout never settled: {:#?}", self.rollout.status);
    }

    pub fn advance_time(&mut self, seconds: i64) {
        self.now = self
            .now
            .checked_add(SignedDuration::from_secs(seconds))
            .expect("time");
    }

    /// A person asks for `kind`.
    pub fn act(&mut self, kind: UserActionKind, by: &str) {
        self.actions += 1;
        let id = format!("action-{}", self.actions);
        let status = self.rollout.status.get_or_insert_with(Default::default);
        let attempt = crate::decide::actions::attempt_of(status, &self.revision);
        status.user_action = Some(UserAction {
            id,
            action: kind,
            by: by.into(),
            revision: self.revision.clone(),
            attempt,
            reason: Some("test".into()),
            time: Time(self.now),
        });
    }

    pub fn set_analysis(&mut self, key: AnalysisKey, outcome: AnalysisOutcome) {
        self.gates.analyses.insert(key, outcome);
    }

    pub fn phase(&self) -> RolloutPhase {
        self.status().phase.expect("a phase")
    }

    pub fn status(&self) -> &rollgate_crds::RolloutStatus {
        self.rollout.status.as_ref().expect("a status")
    }

    pub fn step_index(&self) -> i32 {
        self.status().current_step_index.expect("a step index")
    }

    /// Replicas of each revision, as (revision, replicas), sorted, zero-scaled ones included.
    pub fn scale(&self) -> Vec<(String, i32)> {
        let mut scale: Vec<(String, i32)> = self
            .revisions
            .iter()
            .map(|state| (state.revision.clone(), state.replicas))
            .collect();
        scale.sort();
        scale
    }
}

fn pair(revision: &str, replicas: i32) -> (String, i32) {
    (revision.to_owned(), replicas)
}

#[test]
fn gates_see_the_attempt_a_decision_will_run() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use rollgate_crds::RolloutStatus;
    use rollgate_crds::rollout::{AbortStatus, UserAction, UserActionKind};

    use crate::decide::actions::attempt_for_gates;

    let mut status = RolloutStatus {
        current_revision: Some("v2".into()),
        attempt: Some(1),
        ..RolloutStatus::default()
    };
    assert_eq!(attempt_for_gates(&status, "v2"), 1);
    assert_eq!(
        attempt_for_gates(&status, "v3"),
        0,
        "a new revision starts over"
    );
    status.user_action = Some(UserAction {
        id: "retry-1".into(),
        action: UserActionKind::Retry,
        by: "alice".into(),
        revision: "v2".into(),
        attempt: 1,
        reason: None,
        time: Time(Timestamp::UNIX_EPOCH),
    });
    assert_eq!(
        attempt_for_gates(&status, "v2"),
        1,
        "a retry of a rollout that is not aborted"
    );
    status.abort = Some(AbortStatus {
        reason: "by hand".into(),
        by: "bob".into(),
        time: Time(Timestamp::UNIX_EPOCH),
    });
    assert_eq!(
        attempt_for_gates(&status, "v2"),
        2,
        "the retry starts attempt 2 now"
    );
    status.handled_action = Some("retry-1".into());
    assert_eq!(attempt_for_gates(&status, "v2"), 1, "already handled");
}
