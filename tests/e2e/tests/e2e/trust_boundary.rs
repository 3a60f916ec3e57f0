//! The gates hold against the people they gate (issue 12, properties 1, 2 and 4), tried as the
//! attacker would, with real identities on a cluster of its own (so the mechanism can be
//! switched off to show the attack is real):
//!
//! - A namespace editor (the built-in `edit` role, plus what the chart's operator role gives:
//!   `patch rollouts/status`) cannot walk around the approval gate by writing the Rollout's
//!   status (`stableRevision`, the step index), cannot create an AnalysisRun or a Rollout's
//!   ReplicaSet: the `rollgate-controller-owned` and `rollgate-controller-replicasets` admission
//!   policies refuse it, naming the field. With the policy's binding deleted the very same write
//!   puts the unapproved revision into service.
//! - The first revision of a Rollout whose strategy has an approval gate runs no pod until it
//!   is approved; the requester's own approval does not open it.
//! - A user action names the revision and attempt it was issued for; one issued for another
//!   revision is ignored, with the reason in `status.actionOutcome` and an `ActionIgnored`
//!   audit record naming who asked. Two actions at once: the second is refused while the first
//!   is pending, and the first is carried out.

use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rollgate_crds::audit::AuditEventKind;
use rollgate_crds::policies::controller_owned::CONTROLLER_OWNED_POLICY;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_crds::{AuditRecord, Rollout};
use rollgate_testsupport::approvals::approve_current_revision;
use rollgate_testsupport::identity::{
    self, CertificateUser, Who, certificate_user, client_for, subject,
};
use rollgate_testsupport::{
    Cluster, ControllerOptions, ControllerProcess, TestNamespace, manifests, shared_cluster,
    shared_controller,
};
use serde_json::json;

use crate::rollouts::{
    DIGEST_V1, DIGEST_V2, at, healthy, in_phase, replicas_by_revision, request, set_digest,
    wait_for,
};

const RELEASE_MANAGERS: &str = "release-managers";

/// An editor of the namespace: the built-in `edit` ClusterRole, and the rollgate rights the
/// chart aggregates into it (Rollouts, their status for user actions, reading the rest).
async fn editor(
    cluster: &Cluster,
    admin: &kube::Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<(CertificateUser, kube::Client)> {
    let user = certificate_user(admin, name, None).await?;
    let binding = RoleBinding {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{name}-edit")),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "edit".into(),
        },
        subjects: Some(vec![subject("User", &user.username)]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await?;
    let rules = vec![
        identity::rollgate_rule(
            &["rollouts"],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        identity::rollgate_rule(&["rollouts/status"], &["get", "patch", "update"]),
        identity::rollgate_rule(
            &["analysisruns", "approvals", "auditrecords"],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
    ];
    identity::grant_subjects(
        admin,
        namespace,
        &format!("{name}-rollgate"),
        rules,
        vec![subject("User", &user.username)],
    )
    .await?;
    let who = Who {
        username: &user.username,
        groups: Vec::new(),
        namespace,
    };
    identity::wait_until_user_allowed(admin, &who, "patch", "rollouts/status").await?;
    let client = client_for(cluster, &user.credentials()).await?;
    Ok((user, client))
}

/// The message of an API refusal, or a description of the success.
fn refusal<T: std::fmt::Debug>(result: &kube::Result<T>) -> Option<(u16, String)> {
    match result {
        Err(kube::Error::Api(status)) => Some((status.code, status.message.clone())),
        _ => None,
    }
}

/// The attack: mark the waiting revision stable and every step done.
async fn forge_stable(as_editor: &Api<Rollout>, v2: &str) -> kube::Result<Rollout> {
    let forged = json!({"status": {"stableRevision": v2, "currentStepIndex": 3}});
    as_editor
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&forged))
        .await
}

#[tokio::test]
async fn a_namespace_editor_cannot_walk_around_the_gate_by_writing_status() -> anyhow::Result<()> {
    let (cluster, admin) = Cluster::start_with_crds().await?;
    let controller = ControllerProcess::start(&cluster, &ControllerOptions::named("trust"))?;
    // The start-up check finds the policies in force, naming this controller.
    policies_in_force(&controller, 1.0).await;
    let namespace = TestNamespace::create(&cluster, &admin, "trust").await?;
    let ns = namespace.name();
    let (dana, as_dana) = editor(&cluster, &admin, ns, "dana").await?;
    let rollouts: Api<Rollout> = Api::namespaced(as_dana.clone(), ns);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(admin.clone(), ns);

    let strategy = json!({"canary": {"steps": [
        {"setWeight": 50}, {"approval": {}}, {"setWeight": 100}
    ]}});
    let mut rollout = manifests::rollout("web", 2, DIGEST_V1, strategy)?;
    rollout.spec.approval = Some(serde_json::from_value(
        json!({"approvers": {"groups": [RELEASE_MANAGERS]}}),
    )?);
    rollouts.create(&PostParams::default(), &rollout).await?;

    // Property 4: the first revision waits at the gate with no pod, and the requester's own
    // approval (dana's, through the API as she is) does not open it.
    wait_for(
        &rollouts,
        "web",
        "the first revision's gate",
        in_phase(RolloutPhase::AwaitingApproval),
    )
    .await?;
    let status = rollouts.get("web").await?.status.unwrap_or_default();
    let v1 = status.current_revision.clone().unwrap_or_default();
    let own: rollgate_crds::Approval = serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1", "kind": "Approval",
        "metadata": {"generateName": "web-"},
        "spec": {"rollout": "web", "revision": v1,
                 "digests": [format!("sha256:{DIGEST_V1}")], "decision": "Approve",
                 "approver": dana.username}
    }))?;
    Api::<rollgate_crds::Approval>::namespaced(as_dana.clone(), ns)
        .create(&PostParams::default(), &own)
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = rollouts.get("web").await?.status.unwrap_or_default();
    assert_eq!(
        status.phase,
        Some(RolloutPhase::AwaitingApproval),
        "{status:?}"
    );
    assert_eq!(status.stable_revision, None);
    let pods: i32 = replicas_by_revision(&replica_sets, "web")
        .await?
        .values()
        .sum();
    assert_eq!(pods, 0, "an unapproved first revision runs no pod");
    approve_current_revision(&cluster, ns, "web", 1, &[RELEASE_MANAGERS]).await?;
    wait_for(&rollouts, "web", "v1 Healthy", healthy(Some(v1.clone()))).await?;

    // v2 waits at the approval gate of step 1.
    set_digest(&rollouts, "web", DIGEST_V2).await?;
    let waiting = wait_for(
        &rollouts,
        "web",
        "v2 at the gate",
        at(1, RolloutPhase::AwaitingApproval),
    )
    .await?;
    let v2 = waiting
        .status
        .and_then(|s| s.current_revision)
        .unwrap_or_default();

    // Property 1: the editor's forged status is refused, naming the field.
    let forged = forge_stable(&rollouts, &v2).await;
    let (code, message) = refusal(&forged).expect("the forged status was accepted");
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("is written by the rollgate controller alone"),
        "{message}"
    );
    // Nor can the editor make a passing AnalysisRun or a ReplicaSet of the Rollout's own.
    let run = json!({
        "apiVersion": "rollgate.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "web-forged", "labels": {"rollgate.io/rollout": "web"}},
        "spec": {"rollout": "web", "revisions": {"canary": v2},
                 "metrics": [{"name": "m", "provider": {"prometheus": {"address": "http://127.0.0.1:1", "query": "1"}},
                              "successCondition": "true"}]}
    });
    let created = Api::<rollgate_crds::analysis::AnalysisRun>::namespaced(as_dana.clone(), ns)
        .create(&PostParams::default(), &serde_json::from_value(run)?)
        .await;
    let (code, message) = refusal(&created).expect("the editor created an AnalysisRun");
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("created by the rollgate controller alone"),
        "{message}"
    );
    let mut fake = replica_sets.get(&format!("web-{v2}")).await?;
    fake.metadata = kube::api::ObjectMeta {
        name: Some("web-forged".into()),
        labels: fake.metadata.labels.clone(),
        ..Default::default()
    };
    let created = Api::<ReplicaSet>::namespaced(as_dana.clone(), ns)
        .create(&PostParams::default(), &fake)
        .await;
    let (code, message) = refusal(&created).expect("the editor created a Rollout's ReplicaSet");
    assert_eq!(code, 403, "{message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = rollouts.get("web").await?.status.unwrap_or_default();
    assert_eq!(
        status.phase,
        Some(RolloutPhase::AwaitingApproval),
        "{status:?}"
    );
    assert_eq!(status.stable_revision.as_deref(), Some(v1.as_str()));

    // With the mechanism switched off, the same write walks around the gate: the controller
    // takes the forged stable revision for a rollback and serves v2 unapproved.
    Api::<ValidatingAdmissionPolicyBinding>::all(admin.clone())
        .delete(CONTROLLER_OWNED_POLICY, &DeleteParams::default())
        .await?;
    let started = Instant::now();
    while refusal(&forge_stable(&rollouts, &v2).await).is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the policy stayed in force"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for(
        &rollouts,
        "web",
        "the unapproved v2 in service",
        healthy(Some(v2.clone())),
    )
    .await?;
    let scale = replicas_by_revision(&replica_sets, "web").await?;
    assert_eq!(scale.get(&v2), Some(&2), "{scale:?}");

    // A controller started on the cluster as it is now says what it lost: the gauge at 0 and
    // a Warning Event.
    let checking = ControllerProcess::start(&cluster, &ControllerOptions::named("trust-check"))?;
    policies_in_force(&checking, 0.0).await;
    // The Event is published beside the gauge, not before it: give it a moment.
    let started = Instant::now();
    loop {
        let events = Api::<Event>::all(admin.clone())
            .list(&ListParams::default())
            .await?;
        let warned = events.items.iter().any(|event| {
            event.reason.as_deref() == Some("TrustPoliciesNotInForce")
                && event.type_.as_deref() == Some("Warning")
                && event
                    .note
                    .as_deref()
                    .is_some_and(|note| note.contains(CONTROLLER_OWNED_POLICY))
        });
        if warned {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no TrustPoliciesNotInForce Warning Event naming the unbound policy"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(checking);
    drop(controller);
    Ok(())
}

/// Waits until the controller's `rollgate_trust_policies_in_force` gauge reads `expected`.
async fn policies_in_force(controller: &ControllerProcess, expected: f64) {
    let started = Instant::now();
    while controller.metric("rollgate_trust_policies_in_force") != Some(expected) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "rollgate_trust_policies_in_force is {:?}, not {expected}:\n{}",
            controller.metric("rollgate_trust_policies_in_force"),
            controller.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn user_actions_are_bound_to_their_revision_and_never_lost() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    shared_controller();
    let admin = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &admin, "intents").await?;
    let ns = namespace.name();
    let rollouts: Api<Rollout> = Api::namespaced(admin.clone(), ns);
    let strategy =
        json!({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]}});
    rollouts
        .create(
            &PostParams::default(),
            &manifests::rollout("web", 2, DIGEST_V1, strategy)?,
        )
        .await?;
    let v1 = wait_for(&rollouts, "web", "v1 Healthy", healthy(None))
        .await?
        .status
        .and_then(|s| s.stable_revision)
        .unwrap_or_default();
    set_digest(&rollouts, "web", DIGEST_V2).await?;
    wait_for(&rollouts, "web", "v2 paused", at(1, RolloutPhase::Paused)).await?;

    // A promote issued for v1 (a stale screen, an old script) does not promote v2.
    let stale = json!({"status": {"userAction": {
        "id": "promote-stale", "action": "Promote", "by": "rollgate-admin",
        "revision": v1, "attempt": 0, "time": "2026-01-01T00:00:00Z"}}});
    rollouts
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&stale))
        .await?;
    let ignored = wait_for(&rollouts, "web", "the stale promote handled", |r| {
        r.status.as_ref().and_then(|s| s.handled_action.as_deref()) == Some("promote-stale")
    })
    .await?;
    let status = ignored.status.unwrap_or_default();
    let outcome = status.action_outcome.expect("an outcome");
    assert!(!outcome.carried_out, "{outcome:?}");
    assert!(
        outcome
            .message
            .contains(&format!("issued for revision {v1}")),
        "{outcome:?}"
    );
    assert_eq!(status.current_step_index, Some(1), "still at the pause");
    assert_eq!(status.phase, Some(RolloutPhase::Paused));
    let records = Api::<AuditRecord>::namespaced(admin.clone(), ns)
        .list(&ListParams::default())
        .await?;
    assert!(
        records
            .items
            .iter()
            .any(|r| r.spec.event == AuditEventKind::ActionIgnored
                && r.spec.actor == "rollgate-admin"),
        "no ActionIgnored record naming who asked"
    );

    // Two actions at the same moment: the second is refused while the first is pending, or,
    // when the controller handled the first before the second arrived, both are carried out in
    // order. Either way each one taken leaves its own audit record: nothing is lost.
    let answered = || async {
        let records = Api::<AuditRecord>::namespaced(admin.clone(), ns)
            .list(&ListParams::default())
            .await?;
        anyhow::Ok(
            records
                .items
                .iter()
                .filter(|r| {
                    r.spec.actor == "rollgate-admin"
                        && matches!(
                            r.spec.event,
                            AuditEventKind::Abort
                                | AuditEventKind::Promote
                                | AuditEventKind::ActionIgnored
                        )
                })
                .count(),
        )
    };
    let before = answered().await?;
    let ask = |id: &'static str, action: &'static str| {
        let rollouts = rollouts.clone();
        let revision = status.current_revision.clone();
        async move {
            let patch = json!({"status": {"userAction": {
                "id": id, "action": action, "by": "rollgate-admin",
                "revision": revision, "attempt": 0, "time": "2026-01-01T00:00:00Z"}}});
            rollouts
                .patch_status("web", &PatchParams::default(), &Patch::Merge(&patch))
                .await
        }
    };
    let (abort, promote) = tokio::join!(ask("abort-now", "Abort"), ask("promote-now", "Promote"));
    let results = [("abort-now", &abort), ("promote-now", &promote)];
    let taken: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| *id)
        .collect();
    let refused: Vec<String> = results
        .iter()
        .filter_map(|(_, r)| refusal(r))
        .map(|(_, m)| m)
        .collect();
    assert_eq!(
        taken.len() + refused.len(),
        2,
        "each is taken or refused: {taken:?} / {refused:?}"
    );
    assert!(!taken.is_empty(), "one at least is taken: {refused:?}");
    assert!(
        refused
            .iter()
            .all(|m| m.contains("another action is still pending")),
        "{refused:?}"
    );
    let last = rollouts
        .get("web")
        .await?
        .status
        .and_then(|s| s.user_action)
        .map(|a| a.id)
        .unwrap_or_default();
    assert!(taken.contains(&last.as_str()), "{last} / {taken:?}");
    wait_for(&rollouts, "web", "the last action answered", |r| {
        r.status
            .as_ref()
            .and_then(|s| s.action_outcome.as_ref())
            .is_some_and(|o| o.id == last)
    })
    .await?;
    let started = Instant::now();
    while answered().await? < before + taken.len() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "an action taken left no audit record: {taken:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The refused one can be asked again now, and is carried out or answered too.
    request(&rollouts, "web", "Resume", "resume-after").await?;
    Ok(())
}
