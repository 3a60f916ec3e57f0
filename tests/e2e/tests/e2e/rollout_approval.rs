//! Approval gates with the controller running and real identities: people with client
//! certificates issued through the cluster's CertificateSigningRequest API, a ServiceAccount
//! with a token, RBAC, and rollgate's admission policies (installed with the CRDs).
//!
//! - A gate that needs two distinct approvers from the allowed group (or the listed
//!   ServiceAccount) opens only for them: the requester's own approval, an approval of the
//!   previous revision and one from outside the allowed group do not count. Approvals are given
//!   with `kubectl rollgate approve` and through the API.
//! - A user without RBAC on approvals is refused by the API server; approving in someone
//!   else's name, or with a group one is not in, is refused by the admission policy.
//! - A rejection stops the gate with who rejected and why.
//! - Every step is in the Rollout's audit chain with its actor; editing a record is refused,
//!   and a record an administrator replaced is named by `kubectl rollgate audit verify`.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rollgate_crds::audit::{AuditEventKind, CONTROLLER_ACTOR};
use rollgate_crds::names::REQUESTED_BY_ANNOTATION;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_crds::{Approval, AuditRecord, Rollout};
use rollgate_testsupport::approvals::approve_current_revision;
use rollgate_testsupport::demo_app::workspace_binary;
use rollgate_testsupport::identity::{
    self, Account, CertificateUser, Credentials, Who, certificate_user, client_for, subject,
};
use rollgate_testsupport::{Cluster, TestNamespace, manifests, shared_cluster, shared_controller};
use serde_json::json;

use crate::rollouts::{DIGEST_V1, DIGEST_V2, at, healthy, set_digest, wait_for};

const RELEASE_MANAGERS: &str = "release-managers";

/// The people (and the bot) of one test, in a namespace of their own.
struct Team {
    cluster: &'static Cluster,
    admin: kube::Client,
    namespace: TestNamespace,
    /// Changes the Rollout; a release manager.
    dana: Person,
    /// A release manager.
    erin: Person,
    /// An intern: may create Approvals, but is not in the allowed group.
    olga: Person,
    /// Has no RBAC at all.
    mallory: Person,
    /// A release bot (ServiceAccount), listed by user name in the approval policy.
    bot: Account,
    bot_client: kube::Client,
    dir: tempfile::TempDir,
}

/// A person with a client certificate, and a client of theirs.
struct Person {
    user: CertificateUser,
    client: kube::Client,
}

impl Person {
    async fn issue(
        cluster: &Cluster,
        admin: &kube::Client,
        name: &str,
        group: Option<&str>,
    ) -> anyhow::Result<Self> {
        let user = certificate_user(admin, name, group).await?;
        let client = client_for(cluster, &user.credentials()).await?;
        Ok(Person { user, client })
    }

    fn who<'a>(&'a self, namespace: &'a str) -> Who<'a> {
        Who {
            username: &self.user.username,
            groups: self.user.group.iter().cloned().collect(),
            namespace,
        }
    }
}

impl Team {
    async fn new(prefix: &str) -> anyhow::Result<Team> {
        let cluster = shared_cluster();
        shared_controller();
        let admin = cluster.client().await?;
        let namespace = TestNamespace::create(cluster, &admin, prefix).await?;
        let ns = namespace.name().to_owned();
        let person = |name: &str, group: Option<&'static str>| {
            let name = format!("{name}-{ns}");
            let admin = admin.clone();
            async move { Person::issue(cluster, &admin, &name, group).await }
        };
        let dana = person("dana", Some(RELEASE_MANAGERS)).await?;
        let erin = person("erin", Some(RELEASE_MANAGERS)).await?;
        let olga = person("olga", Some("interns")).await?;
        let mallory = person("mallory", None).await?;
        let bot = identity::service_account(&admin, &ns, "release-bot").await?;
        let rules = vec![
            identity::rollgate_rule(
                &["rollouts"],
                &["get", "list", "watch", "create", "update", "patch"],
            ),
            identity::rollgate_rule(&["approvals"], &["get", "list", "create"]),
            identity::rollgate_rule(&["auditrecords"], &["get", "list"]),
        ];
        let subjects = vec![
            subject("Group", RELEASE_MANAGERS),
            subject("Group", "interns"),
            k8s_openapi::api::rbac::v1::Subject {
                kind: "ServiceAccount".into(),
                name: bot.name.clone(),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
        ];
        identity::grant_subjects(&admin, &ns, "release", rules, subjects).await?;
        for who in [dana.who(&ns), erin.who(&ns), olga.who(&ns)] {
            identity::wait_until_user_allowed(&admin, &who, "create", "approvals").await?;
        }
        identity::wait_until_allowed(&admin, &bot, "create", "approvals").await?;
        let bot_client = client_for(cluster, &Credentials::Token(&bot.token)).await?;
        Ok(Team {
            cluster,
            admin,
            namespace,
            dana,
            erin,
            olga,
            mallory,
            bot,
            bot_client,
            dir: tempfile::tempdir()?,
        })
    }

    fn ns(&self) -> &str {
        self.namespace.name()
    }

    /// Runs `kubectl rollgate` as `credentials` in the test's namespace.
    fn plugin(&self, credentials: &Credentials<'_>, args: &[&str]) -> anyhow::Result<Output> {
        let kubeconfig: PathBuf = self
            .dir
            .path()
            .join(format!("kubeconfig-{}", rand_suffix()));
        identity::write_kubeconfig(self.cluster, credentials, Some(self.ns()), &kubeconfig)?;
        let binary = workspace_binary("kubectl-rollgate", "kubectl-rollgate", "ROLLGATE_CLI_BIN")?;
        Ok(std::process::Command::new(binary)
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .output()?)
    }

    /// Dana's Rollout `name`, gated by two approvals from release managers or the bot, with
    /// v1 stable and v2 waiting at the gate; returns (Rollouts API, v1, v2).
    async fn at_the_gate(&self, name: &str) -> anyhow::Result<(Api<Rollout>, String, String)> {
        let strategy = json!({"canary": {"steps": [
            {"setWeight": 50},
            {"approval": {}},
            {"setWeight": 100}
        ]}});
        let mut rollout = manifests::rollout(name, 2, DIGEST_V1, strategy)?;
        rollout.spec.approval = Some(serde_json::from_value(json!({
            "requiredApprovals": 2,
            "approvers": {"groups": [RELEASE_MANAGERS], "users": [self.bot.username]}
        }))?);
        let as_dana: Api<Rollout> = Api::namespaced(self.dana.client.clone(), self.ns());
        as_dana.create(&PostParams::default(), &rollout).await?;
        // The first revision waits at the gate like any other.
        approve_current_revision(self.cluster, self.ns(), name, 2, &[RELEASE_MANAGERS]).await?;
        let first = wait_for(&as_dana, name, "v1 Healthy", healthy(None)).await?;
        let v1 = first
            .status
            .and_then(|s| s.stable_revision)
            .unwrap_or_default();
        set_digest(&as_dana, name, DIGEST_V2).await?;
        let waiting = wait_for(
            &as_dana,
            name,
            "the approval gate",
            at(1, RolloutPhase::AwaitingApproval),
        )
        .await?;
        let v2 = waiting
            .status
            .and_then(|s| s.current_revision)
            .unwrap_or_default();
        let rollouts: Api<Rollout> = Api::namespaced(self.admin.clone(), self.ns());
        Ok((rollouts, v1, v2))
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

/// An Approval object as its `approver` would write it.
fn approval(
    rollout: &str,
    revision: &str,
    digest: &str,
    approver: &str,
    groups: &[&str],
) -> anyhow::Result<Approval> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Approval",
        "metadata": {"generateName": format!("{rollout}-")},
        "spec": {
            "rollout": rollout,
            "revision": revision,
            "digests": [format!("sha256:{digest}")],
            "decision": "Approve",
            "comment": format!("approved by {approver}"),
            "approver": approver,
            "approverGroups": groups
        }
    }))?)
}

fn succeeded(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "kubectl rollgate failed: {text}");
    text
}

/// The gate's (received, approvers) of Rollout `name`.
async fn gate_of(rollouts: &Api<Rollout>, name: &str) -> anyhow::Result<(i32, Vec<String>)> {
    let status = rollouts.get(name).await?.status.unwrap_or_default();
    assert_eq!(
        status.phase,
        Some(RolloutPhase::AwaitingApproval),
        "{status:?}"
    );
    let gate = status.gate.unwrap_or_default();
    Ok((gate.received, gate.approvers))
}

/// The audit records of Rollout `name`, in sequence order.
async fn audit_records(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<Vec<AuditRecord>> {
    let mut records: Vec<AuditRecord> = Api::<AuditRecord>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|record| record.spec.rollout == name)
        .collect();
    records.sort_by_key(|record| record.spec.sequence);
    Ok(records)
}

/// The AuditRecords of `name` once its trail has caught up: a transition's records are written
/// just after the status write that commits them, so a test that saw the status waits for them
/// (until the Rollout's audit head names the last record and nothing is behind).
async fn settled_records(
    client: &kube::Client,
    rollouts: &Api<Rollout>,
    name: &str,
) -> anyhow::Result<Vec<AuditRecord>> {
    let ns = rollouts.namespace().unwrap_or_default().to_owned();
    let mut tries = 0;
    loop {
        let records = audit_records(client, &ns, name).await?;
        let head = rollouts.get(name).await?.status.and_then(|s| s.audit_head);
        if head.is_some_and(|h| {
            h.behind.unwrap_or(0) == 0
                && Some(h.sequence) == records.last().map(|r| r.spec.sequence)
        }) {
            return Ok(records);
        }
        tries += 1;
        anyhow::ensure!(tries < 150, "the audit head never caught up: {records:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn two_distinct_approvers_of_the_allowed_group_open_the_gate_and_nobody_else_counts()
-> anyhow::Result<()> {
    let team = Team::new("gate").await?;
    let ns = team.ns().to_owned();
    let (rollouts, v1, v2) = team.at_the_gate("till").await?;
    let created = rollouts.get("till").await?;
    assert_eq!(
        created.annotations().get(REQUESTED_BY_ANNOTATION),
        Some(&team.dana.user.username),
        "the admission policy records who changed the template"
    );

    // The requester approves her own change: the Approval is stored but does not count.
    succeeded(&team.plugin(
        &team.dana.user.credentials(),
        &["approve", "till", "--comment", "mine"],
    )?);
    // A release manager approves the previous revision: not an approval of v2.
    Api::<Approval>::namespaced(team.erin.client.clone(), &ns)
        .create(
            &PostParams::default(),
            &approval(
                "till",
                &v1,
                DIGEST_V1,
                &team.erin.user.username,
                &[RELEASE_MANAGERS],
            )?,
        )
        .await?;
    // An intern approves v2: not in the allowed group.
    succeeded(&team.plugin(&team.olga.user.credentials(), &["approve", "till"])?);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(gate_of(&rollouts, "till").await?, (0, Vec::new()));

    // The first valid approval: a release manager, from the CLI.
    succeeded(&team.plugin(
        &team.erin.user.credentials(),
        &["approve", "till", "--comment", "looks good"],
    )?);
    wait_for(&rollouts, "till", "one approval", |r| {
        r.status
            .as_ref()
            .and_then(|s| s.gate.as_ref())
            .is_some_and(|g| g.received == 1)
    })
    .await?;
    assert_eq!(
        gate_of(&rollouts, "till").await?,
        (1, vec![team.erin.user.username.clone()])
    );
    // The same person again does not make two.
    succeeded(&team.plugin(&team.erin.user.credentials(), &["approve", "till"])?);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(gate_of(&rollouts, "till").await?.0, 1);

    // The second: the release bot, with its ServiceAccount token, through the API.
    Api::<Approval>::namespaced(team.bot_client.clone(), &ns)
        .create(
            &PostParams::default(),
            &approval("till", &v2, DIGEST_V2, &team.bot.username, &[])?,
        )
        .await?;
    let done = wait_for(&rollouts, "till", "v2 stable", healthy(Some(v2.clone()))).await?;
    let gate = done
        .status
        .and_then(|s| s.gate)
        .expect("the gate is on record");
    assert_eq!(gate.revision, v2);
    assert_eq!(
        gate.approvers,
        [team.erin.user.username.clone(), team.bot.username.clone()]
    );

    // The audit chain tells the story, with the people who acted.
    let records = settled_records(&team.admin, &rollouts, "till").await?;
    let story: Vec<(AuditEventKind, &str)> = records
        .iter()
        .filter(|r| r.spec.revision.as_deref() == Some(v2.as_str()))
        .map(|r| (r.spec.event, r.spec.actor.as_str()))
        .collect();
    let dana = team.dana.user.username.as_str();
    let erin = team.erin.user.username.as_str();
    for expected in [
        (AuditEventKind::RevisionDetected, dana),
        (AuditEventKind::Approval, erin),
        (AuditEventKind::Approval, team.bot.username.as_str()),
        (AuditEventKind::GateOpened, CONTROLLER_ACTOR),
        (AuditEventKind::Completed, CONTROLLER_ACTOR),
    ] {
        assert!(
            story.contains(&expected),
            "{expected:?} missing from {story:?}"
        );
    }
    assert!(
        !story
            .iter()
            .any(|(_, actor)| *actor == team.olga.user.username),
        "an approval that did not count is not recorded as one: {story:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_api_server_refuses_approvals_without_rights_or_in_someone_else_s_name()
-> anyhow::Result<()> {
    let team = Team::new("refuse").await?;
    let ns = team.ns().to_owned();
    let revision = "0123456789";

    // No RBAC on approvals: refused by the API server's authorizer.
    let refused = Api::<Approval>::namespaced(team.mallory.client.clone(), &ns)
        .create(
            &PostParams::default(),
            &approval("web", revision, DIGEST_V2, &team.mallory.user.username, &[])?,
        )
        .await
        .expect_err("a user without RBAC cannot approve");
    assert!(
        matches!(&refused, kube::Error::Api(status) if status.code == 403),
        "{refused:?}"
    );
    let output = team.plugin(&team.mallory.user.credentials(), &["approve", "web"])?;
    assert!(
        !output.status.success(),
        "the plugin cannot approve for mallory either"
    );

    // In someone else's name, or with a group one is not in: refused by the admission policy.
    let as_erin = Api::<Approval>::namespaced(team.erin.client.clone(), &ns);
    let erin_approves = |approver: &str, groups: &[&str]| {
        let approval = approval("web", revision, DIGEST_V2, approver, groups);
        let as_erin = as_erin.clone();
        async move { anyhow::Ok(as_erin.create(&PostParams::default(), &approval?).await) }
    };
    for (approver, groups, refusal) in [
        (
            team.dana.user.username.as_str(),
            RELEASE_MANAGERS,
            "must be your own user name",
        ),
        (
            team.erin.user.username.as_str(),
            "admins",
            "only groups you are in",
        ),
    ] {
        let refused = erin_approves(approver, &[groups])
            .await?
            .expect_err("the admission policy refuses it");
        assert!(refused.to_string().contains(refusal), "{refused}");
    }

    // Her own approval is accepted, and cannot be changed afterwards, not even by a cluster
    // administrator.
    let own = erin_approves(&team.erin.user.username, &[RELEASE_MANAGERS]).await??;
    let changed = Api::<Approval>::namespaced(team.admin.clone(), &ns)
        .patch(
            &own.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"revision": "9876543210"}})),
        )
        .await
        .expect_err("an Approval is immutable");
    assert!(changed.to_string().contains("immutable"), "{changed}");
    Ok(())
}

#[tokio::test]
async fn a_rejection_stops_the_gate_with_who_and_why() -> anyhow::Result<()> {
    let team = Team::new("reject").await?;
    let (rollouts, _, v2) = team.at_the_gate("levy").await?;
    succeeded(&team.plugin(
        &team.erin.user.credentials(),
        &["reject", "levy", "--comment", "not on a Friday"],
    )?);
    let erin = team.erin.user.username.clone();
    let rejected = wait_for(&rollouts, "levy", "the rejection", |r| {
        r.status
            .as_ref()
            .and_then(|s| s.gate.as_ref())
            .is_some_and(|g| g.rejected_by.as_deref() == Some(erin.as_str()))
    })
    .await?;
    let status = rejected.status.expect("status");
    assert_eq!(status.phase, Some(RolloutPhase::AwaitingApproval));
    assert_ne!(status.stable_revision.as_deref(), Some(v2.as_str()));
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Approved")
        .expect("an Approved condition");
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "Rejected")
    );
    assert!(
        condition.message.contains("not on a Friday"),
        "{}",
        condition.message
    );
    let records = settled_records(&team.admin, &rollouts, "levy").await?;
    assert!(
        records
            .iter()
            .any(|r| r.spec.event == AuditEventKind::Rejection && r.spec.actor == erin),
        "the rejection is in the audit chain"
    );
    Ok(())
}

#[tokio::test]
async fn audit_records_cannot_be_edited_and_a_replaced_one_is_named_by_audit_verify()
-> anyhow::Result<()> {
    let team = Team::new("audit").await?;
    let ns = team.ns().to_owned();
    let (rollouts, _, v2) = team.at_the_gate("ada").await?;
    succeeded(&team.plugin(&team.erin.user.credentials(), &["approve", "ada"])?);
    Api::<Approval>::namespaced(team.bot_client.clone(), &ns)
        .create(
            &PostParams::default(),
            &approval("ada", &v2, DIGEST_V2, &team.bot.username, &[])?,
        )
        .await?;
    wait_for(&rollouts, "ada", "v2 stable", healthy(Some(v2.clone()))).await?;
    let records = settled_records(&team.admin, &rollouts, "ada").await?;
    let verify = |team: &Team| -> anyhow::Result<Output> {
        let binary = workspace_binary("kubectl-rollgate", "kubectl-rollgate", "ROLLGATE_CLI_BIN")?;
        Ok(std::process::Command::new(binary)
            .args(["audit", "verify", "ada", "-n", team.ns()])
            .env("KUBECONFIG", team.cluster.kubeconfig())
            .output()?)
    };
    let intact = verify(&team)?;
    let text = succeeded(&intact);
    assert!(
        text.contains(&format!("{} records verified", records.len())),
        "{text}"
    );

    // Nobody edits a record, not even a cluster administrator.
    let api: Api<AuditRecord> = Api::namespaced(team.admin.clone(), &ns);
    let target = records
        .iter()
        .find(|r| r.spec.event == AuditEventKind::Approval)
        .expect("an approval record")
        .clone();
    let edit = api
        .patch(
            &target.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"actor": "someone-else"}})),
        )
        .await
        .expect_err("an AuditRecord is immutable");
    assert!(edit.to_string().contains("immutable"), "{edit}");
    let relabel = api
        .patch(
            &target.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"forged": "yes"}}})),
        )
        .await
        .expect_err("an AuditRecord's labels are immutable too");
    assert!(relabel.to_string().contains("immutable"), "{relabel}");

    // An administrator deletes the record and writes another in its place: the chain breaks
    // exactly there.
    api.delete(&target.name_any(), &DeleteParams::default())
        .await?;
    let mut forged = AuditRecord::new(&target.name_any(), target.spec.clone());
    forged.spec.actor = "someone-else".into();
    api.create(&PostParams::default(), &forged).await?;
    let broken = verify(&team)?;
    let text = String::from_utf8_lossy(&broken.stdout).to_string();
    assert!(!broken.status.success(), "a tampered chain fails: {text}");
    assert!(
        text.contains(&target.name_any()) && text.contains("hash mismatch"),
        "audit verify names the broken link: {text}"
    );
    Ok(())
}
