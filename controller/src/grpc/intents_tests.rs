use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rollgate_crds::rollout::{AbortStatus, GateStatus};

use super::*;

fn status(phase: RolloutPhase) -> RolloutStatus {
    RolloutStatus {
        phase: Some(phase),
        current_revision: Some("0123456789".into()),
        ..Default::default()
    }
}

fn aborted() -> RolloutStatus {
    RolloutStatus {
        abort: Some(AbortStatus {
            reason: "analysis failed".into(),
            by: "analysis".into(),
            time: Time(Timestamp::from_second(0).unwrap()),
        }),
        ..status(RolloutPhase::Aborted)
    }
}

#[test]
fn promote_needs_a_rollout_in_progress() {
    let healthy = status(RolloutPhase::Healthy);
    for kind in [UserActionKind::Promote, UserActionKind::PromoteFull] {
        assert!(
            action_precondition(kind, &healthy)
                .unwrap_err()
                .contains("Healthy")
        );
        assert!(action_precondition(kind, &status(RolloutPhase::Paused)).is_ok());
    }
}

#[test]
fn retry_needs_an_aborted_rollout_and_abort_one_that_is_not() {
    let progressing = status(RolloutPhase::Progressing);
    let refused = action_precondition(UserActionKind::Retry, &progressing).unwrap_err();
    assert!(refused.contains("only an aborted rollout"), "{refused}");
    assert!(action_precondition(UserActionKind::Retry, &aborted()).is_ok());
    assert!(action_precondition(UserActionKind::Abort, &progressing).is_ok());
    assert!(action_precondition(UserActionKind::Abort, &aborted()).is_err());
    let healthy = status(RolloutPhase::Healthy);
    assert!(action_precondition(UserActionKind::Abort, &healthy).is_err());
}

#[test]
fn a_gate_is_decided_only_at_the_current_revision() {
    let mut waiting = status(RolloutPhase::AwaitingApproval);
    waiting.gate = Some(GateStatus {
        revision: "0123456789".into(),
        required: 2,
        ..Default::default()
    });
    assert!(gate_precondition(&waiting, "0123456789").is_ok());
    let other = gate_precondition(&waiting, "aaaaaaaaaa").unwrap_err();
    assert!(
        other.contains("not the rollout's current revision"),
        "{other}"
    );

    let not_waiting = status(RolloutPhase::Progressing);
    let refused = gate_precondition(&not_waiting, "0123456789").unwrap_err();
    assert!(
        refused.contains("not waiting at an approval gate"),
        "{refused}"
    );

    let mut stale_gate = waiting.clone();
    stale_gate.gate.as_mut().unwrap().revision = "bbbbbbbbbb".into();
    let stale = gate_precondition(&stale_gate, "0123456789").unwrap_err();
    assert!(stale.contains("gate of revision bbbbbbbbbb"), "{stale}");

    let mut rejected = waiting;
    rejected.gate.as_mut().unwrap().rejected_by = Some("bob".into());
    assert!(gate_precondition(&rejected, "0123456789").is_ok());
}

#[test]
fn impersonation_forwards_user_uid_groups_and_every_extra_value() {
    let extra = std::collections::BTreeMap::from([
        (
            "authentication.kubernetes.io/pod-name".to_owned(),
            vec!["web-0".to_owned()],
        ),
        (
            "Scopes".to_owned(),
            vec!["read".to_owned(), "write".to_owned()],
        ),
    ]);
    let caller = Caller::new(
        "system:serviceaccount:shop:ci",
        Some("1234"),
        &["system:serviceaccounts", "system:authenticated"],
        extra,
    );
    let headers: Vec<(String, String)> = impersonation_headers(&caller)
        .unwrap()
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    let pair = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    assert_eq!(
        headers,
        [
            pair("impersonate-user", "system:serviceaccount:shop:ci"),
            pair("impersonate-uid", "1234"),
            pair("impersonate-group", "system:serviceaccounts"),
            pair("impersonate-group", "system:authenticated"),
            pair("impersonate-extra-scopes", "read"),
            pair("impersonate-extra-scopes", "write"),
            // Header names are lower-case; the API server unescapes `%2f` as `/`.
            pair(
                "impersonate-extra-authentication.kubernetes.io%2fpod-name",
                "web-0"
            ),
        ]
    );
}

#[test]
fn an_extra_value_that_is_no_header_value_is_refused() {
    let extra = std::collections::BTreeMap::from([("note".to_owned(), vec!["a\nb".to_owned()])]);
    let caller = Caller::new("alice", None, &[], extra);
    let refused = impersonation_headers(&caller).unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
}
