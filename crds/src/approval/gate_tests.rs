use super::*;
use crate::approval::acting::ActingPermission;
use crate::rollout::Approvers;

const REV: &str = "0123456789";
const OLD_REV: &str = "abcdefabcd";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn digests() -> Vec<String> {
    vec![digest('a'), digest('b')]
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).unwrap()
}

fn approve(name: &str, approver: &str, created: i64) -> ApprovalFacts {
    ApprovalFacts {
        name: name.to_owned(),
        approver: approver.to_owned(),
        groups: Vec::new(),
        revision: REV.to_owned(),
        digests: digests(),
        decision: ApprovalDecision::Approve,
        comment: None,
        created: at(created),
        acts_as_requester: None,
    }
}

fn reject(name: &str, approver: &str, created: i64, comment: &str) -> ApprovalFacts {
    ApprovalFacts {
        decision: ApprovalDecision::Reject,
        comment: Some(comment.to_owned()),
        ..approve(name, approver, created)
    }
}

fn policy(required: i32) -> ApprovalPolicy {
    ApprovalPolicy {
        required_approvals: Some(required),
        ..Default::default()
    }
}

fn gate(
    policy: &ApprovalPolicy,
    approvals: &[ApprovalFacts],
    requester: Option<&str>,
) -> GateVerdict {
    evaluate_gate(policy, approvals, REV, &digests(), requester, at(100))
}

fn waiting(required: i32, approvers: &[&str]) -> GateVerdict {
    GateVerdict::Waiting {
        required,
        received: approvers.len() as i32,
        approvers: approvers.iter().map(|a| a.to_string()).collect(),
    }
}

fn open(required: i32, approvers: &[&str]) -> GateVerdict {
    GateVerdict::Open {
        required,
        approvers: approvers.iter().map(|a| a.to_string()).collect(),
    }
}

#[test]
fn no_approvals_waits_with_the_default_of_one() {
    assert_eq!(gate(&ApprovalPolicy::default(), &[], None), waiting(1, &[]));
}

#[test]
fn one_approval_opens_the_default_gate() {
    let approvals = [approve("a1", "alice", 0)];
    assert_eq!(
        gate(&ApprovalPolicy::default(), &approvals, None),
        open(1, &["alice"])
    );
}

#[test]
fn approvers_are_distinct_people() {
    let approvals = [
        approve("a1", "alice", 0),
        approve("a2", "alice", 1),
        approve("a3", "alice", 2),
    ];
    assert_eq!(gate(&policy(2), &approvals, None), waiting(2, &["alice"]));
    let assessment = assess(&policy(2), &approvals, REV, &digests(), None, at(100));
    assert_eq!(assessment.ignored.len(), 2);
    assert!(
        assessment
            .ignored
            .iter()
            .all(|i| i.reason == IgnoredReason::Duplicate)
    );
}

#[test]
fn approvers_are_listed_in_order_of_approval() {
    let approvals = [
        approve("z", "carol", 5),
        approve("y", "bob", 1),
        approve("x", "alice", 3),
    ];
    assert_eq!(
        gate(&policy(3), &approvals, None),
        open(3, &["bob", "alice", "carol"])
    );
}

#[test]
fn an_approval_of_an_older_revision_never_opens_the_gate() {
    let mut old = approve("a1", "alice", 0);
    old.revision = OLD_REV.to_owned();
    assert_eq!(gate(&policy(1), &[old], None), waiting(1, &[]));
}

#[test]
fn the_digests_must_be_exactly_the_revisions() {
    let mut other = approve("a1", "alice", 0);
    other.digests = vec![digest('a'), digest('c')];
    let mut fewer = approve("a2", "bob", 0);
    fewer.digests = vec![digest('a')];
    let mut reordered = approve("a3", "carol", 0);
    reordered.digests = vec![digest('b'), digest('a'), digest('b')];
    let assessment = assess(
        &policy(1),
        &[other, fewer, reordered],
        REV,
        &digests(),
        None,
        at(100),
    );
    let reasons: Vec<_> = assessment.ignored.iter().map(|i| i.reason).collect();
    assert_eq!(
        reasons,
        [IgnoredReason::OtherDigests, IgnoredReason::OtherDigests]
    );
    assert_eq!(
        assessment.approvals.len(),
        1,
        "order and repeats do not matter"
    );
    assert_eq!(assessment.approvals[0].approver, "carol");
}

#[test]
fn only_listed_users_or_groups_count() {
    let restricted = ApprovalPolicy {
        required_approvals: Some(2),
        approvers: Some(Approvers {
            users: vec!["alice".into()],
            groups: vec!["release-managers".into()],
        }),
        ..Default::default()
    };
    let mut in_group = approve("a2", "bob", 1);
    in_group.groups = vec!["developers".into(), "release-managers".into()];
    let mut outsider = approve("a3", "mallory", 2);
    outsider.groups = vec!["developers".into()];
    let approvals = [approve("a1", "alice", 0), in_group, outsider];
    assert_eq!(
        gate(&restricted, &approvals, None),
        open(2, &["alice", "bob"])
    );
    let assessment = assess(&restricted, &approvals, REV, &digests(), None, at(100));
    assert_eq!(assessment.ignored[0].reason, IgnoredReason::NotAllowed);
    assert_eq!(assessment.ignored[0].approver, "mallory");
}

#[test]
fn an_empty_approver_list_allows_anyone() {
    let empty = ApprovalPolicy {
        approvers: Some(Approvers::default()),
        ..Default::default()
    };
    assert_eq!(
        gate(&empty, &[approve("a", "anyone", 0)], None),
        open(1, &["anyone"])
    );
}

#[test]
fn approvals_expire_after_the_policys_duration() {
    let expiring = ApprovalPolicy {
        required_approvals: Some(2),
        expires_after: Some("1m".into()),
        ..Default::default()
    };
    // now = 100: created at 39 expired at 99, created at 41 expires at 101.
    let approvals = [approve("old", "alice", 39), approve("fresh", "bob", 41)];
    assert_eq!(gate(&expiring, &approvals, None), waiting(2, &["bob"]));
    // Exactly at the deadline it has expired.
    let edge = [approve("edge", "carol", 40)];
    assert_eq!(gate(&expiring, &edge, None), waiting(2, &[]));
}

#[test]
fn an_expiry_that_does_not_parse_fails_closed() {
    let broken = ApprovalPolicy {
        expires_after: Some("1 day".into()),
        ..Default::default()
    };
    assert_eq!(
        gate(&broken, &[approve("a", "alice", 99)], None),
        waiting(1, &[])
    );
}

#[test]
fn the_requester_may_not_approve_their_own_change_by_default() {
    let approvals = [approve("a1", "alice", 0), approve("a2", "bob", 1)];
    assert_eq!(
        gate(&policy(2), &approvals, Some("alice")),
        waiting(2, &["bob"])
    );
    let assessment = assess(
        &policy(2),
        &approvals,
        REV,
        &digests(),
        Some("alice"),
        at(100),
    );
    assert_eq!(assessment.ignored[0].reason, IgnoredReason::SelfApproval);
}

#[test]
fn an_approver_who_could_act_as_the_requester_does_not_count() {
    let deployer = "system:serviceaccount:shop:deployer";
    let eve = ApprovalFacts {
        acts_as_requester: Some(ActingPermission::ImpersonateServiceAccount),
        ..approve("a1", "eve", 0)
    };
    let approvals = [eve.clone(), approve("a2", "bob", 1)];
    assert_eq!(
        gate(&policy(2), &approvals, Some(deployer)),
        waiting(2, &["bob"])
    );
    let assessment = assess(
        &policy(2),
        &approvals,
        REV,
        &digests(),
        Some(deployer),
        at(100),
    );
    let ignored = &assessment.ignored[0];
    assert_eq!(
        ignored.reason,
        IgnoredReason::CouldActAsRequester(ActingPermission::ImpersonateServiceAccount)
    );
    let status = ignored.to_status(Some(deployer));
    assert_eq!(
        (status.approval.as_str(), status.approver.as_str()),
        ("a1", "eve")
    );
    assert_eq!(status.reason, "CouldActAsRequester");
    assert_eq!(
        status.message,
        "its approver could have made the change as system:serviceaccount:shop:deployer \
         (impersonate serviceaccounts)"
    );
    let lenient = ApprovalPolicy {
        allow_self_approval: Some(true),
        ..Default::default()
    };
    assert_eq!(gate(&lenient, &[eve], Some(deployer)), open(1, &["eve"]));
}

#[test]
fn self_approval_counts_when_the_policy_allows_it() {
    let lenient = ApprovalPolicy {
        allow_self_approval: Some(true),
        ..Default::default()
    };
    assert_eq!(
        gate(&lenient, &[approve("a1", "alice", 0)], Some("alice")),
        open(1, &["alice"])
    );
}

#[test]
fn an_unknown_requester_excludes_nobody() {
    assert_eq!(
        gate(&policy(1), &[approve("a1", "alice", 0)], None),
        open(1, &["alice"])
    );
}

#[test]
fn one_rejection_stops_the_gate_even_with_enough_approvals() {
    let approvals = [
        approve("a1", "alice", 0),
        approve("a2", "bob", 1),
        reject("r1", "carol", 2, "error budget is spent"),
    ];
    assert_eq!(
        gate(&policy(2), &approvals, None),
        GateVerdict::Rejected {
            by: "carol".into(),
            comment: "error budget is spent".into()
        }
    );
}

#[test]
fn the_earliest_rejection_is_reported() {
    let approvals = [
        reject("r2", "dave", 5, "second"),
        reject("r1", "carol", 2, "first"),
    ];
    assert!(matches!(
        gate(&policy(1), &approvals, None),
        GateVerdict::Rejected { by, .. } if by == "carol"
    ));
}

#[test]
fn rejections_of_other_revisions_or_from_outsiders_do_not_count() {
    let mut old = reject("r1", "carol", 0, "old");
    old.revision = OLD_REV.to_owned();
    let restricted = ApprovalPolicy {
        approvers: Some(Approvers {
            users: vec!["alice".into()],
            groups: Vec::new(),
        }),
        ..Default::default()
    };
    let approvals = [
        old,
        reject("r2", "mallory", 1, "no"),
        approve("a1", "alice", 2),
    ];
    assert_eq!(gate(&restricted, &approvals, None), open(1, &["alice"]));
}

#[test]
fn rejections_do_not_expire_and_the_requester_may_reject() {
    let expiring = ApprovalPolicy {
        expires_after: Some("1s".into()),
        ..Default::default()
    };
    let approvals = [reject("r1", "alice", -1000, "withdrawn")];
    assert!(matches!(
        gate(&expiring, &approvals, Some("alice")),
        GateVerdict::Rejected { by, comment } if by == "alice" && comment == "withdrawn"
    ));
}

#[test]
fn the_verdict_becomes_the_status_gate() {
    let status = open(2, &["alice", "bob"]).to_status(REV, 2);
    assert_eq!(status.received, 2);
    assert_eq!(status.approvers, ["alice", "bob"]);
    assert_eq!(status.rejected_by, None);
    let rejected = GateVerdict::Rejected {
        by: "carol".into(),
        comment: "no".into(),
    }
    .to_status(REV, 2);
    assert_eq!(rejected.rejected_by.as_deref(), Some("carol"));
    assert_eq!(rejected.revision, REV);
}

#[test]
fn facts_come_from_a_stored_approval_only() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let spec = super::super::ApprovalSpec {
        rollout: "web".into(),
        revision: REV.into(),
        digests: digests(),
        decision: ApprovalDecision::Approve,
        comment: None,
        approver: "alice".into(),
        approver_groups: vec!["sre".into()],
    };
    let mut approval = Approval::new("web-alice", spec);
    assert_eq!(ApprovalFacts::from_approval(&approval), None);
    approval.metadata.creation_timestamp = Some(Time(at(0)));
    let facts = ApprovalFacts::from_approval(&approval).unwrap();
    assert_eq!(facts.groups, ["sre"]);
    assert_eq!(facts.created, at(0));
}
