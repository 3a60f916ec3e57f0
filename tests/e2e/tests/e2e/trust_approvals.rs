//! No approval from anyone who could have made the change, on the chart's cluster (the
//! chart's roles and controller RBAC, the built-in `edit` role with the chart's operator role
//! aggregated into it) with real identities.
//!
//! The attack: a GitOps ServiceAccount bound to the chart's operator role deploys a Rollout
//! whose gate needs one approval. Eve has `edit` in the namespace (which lets her impersonate
//! the namespace's ServiceAccounts) and the chart's approver role. She changes the template
//! while impersonating the ServiceAccount, so the requested-by stamp names the ServiceAccount,
//! not her, and then approves the change as herself.
//!
//! With the check on, her approval does not count: the gate keeps waiting, `status.gate.ignored`
//! says why, and an `ApprovalIgnored` Event on her Approval tells her. With it off (the
//! Rollout's policy allows self-approval, which also switches this check off), the very same
//! approval opens the gate: the attack works whenever the check is missing.

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rollgate_crds::approval::{ApprovalDecision, approval_request, decision_target};
use rollgate_crds::requester::requester;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_crds::{Approval, Rollout};
use rollgate_testsupport::TestNamespace;
use rollgate_testsupport::approvals::approve_current_revision;
use rollgate_testsupport::identity::{Credentials, certificate_user, client_for, write_kubeconfig};
use rollgate_testsupport::tools;
use serde_json::json;

use crate::chart::{Installed, bound, canary, client_of, create_rollout, installed, leading};
use crate::rollouts::{DIGEST_V2, at, healthy, wait_for};

/// Binds `user` to the ClusterRole `role` in `namespace` (a RoleBinding named `binding`).
fn bind_user(
    installed: &Installed,
    namespace: &str,
    binding: &str,
    role: &str,
    user: &str,
) -> anyhow::Result<()> {
    let output = installed.cluster.kubectl(&[
        "create",
        "rolebinding",
        binding,
        "-n",
        namespace,
        &format!("--clusterrole={role}"),
        &format!("--user={user}"),
    ])?;
    anyhow::ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Waits (up to 30 s, aggregation included) until `kubectl auth can-i <question>` says yes for
/// `user` in `namespace`.
fn wait_until_can(
    installed: &Installed,
    namespace: &str,
    user: &str,
    question: &[&str],
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let mut args = vec!["auth", "can-i"];
        args.extend_from_slice(question);
        args.extend_from_slice(&["-n", namespace, "--as", user]);
        if installed.cluster.kubectl(&args)?.status.success() {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "{user} never got `{}`",
            question.join(" ")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test]
async fn an_approver_who_can_impersonate_the_requesting_service_account_does_not_count()
-> anyhow::Result<()> {
    let installed = installed();
    leading(installed).await?;
    let admin = installed.cluster.client().await?;
    let namespace = TestNamespace::create(&installed.cluster, &admin, "trust-approve").await?;
    let ns = namespace.name();

    // The GitOps bot (the chart's operator role) and Eve (edit + the chart's approver role).
    let deployer = bound(installed, &admin, ns, "operator").await?;
    let deployer_client = client_of(installed, &deployer).await?;
    let eve = certificate_user(&admin, &format!("eve-{ns}"), None).await?;
    bind_user(installed, ns, "eve-edit", "edit", &eve.username)?;
    bind_user(
        installed,
        ns,
        "eve-approve",
        "rollgate-approver",
        &eve.username,
    )?;
    wait_until_can(
        installed,
        ns,
        &eve.username,
        &["patch", "rollouts.rollgate.io"],
    )?;
    wait_until_can(
        installed,
        ns,
        &eve.username,
        &["impersonate", &format!("serviceaccounts/{}", deployer.name)],
    )?;
    wait_until_can(
        installed,
        ns,
        &eve.username,
        &["create", "approvals.rollgate.io"],
    )?;
    let eve_client = client_for(&installed.cluster, &eve.credentials()).await?;

    let rollouts: Api<Rollout> = Api::namespaced(deployer_client, ns);
    let gated = canary("web", json!([{"approval": {}}]))?;
    create_rollout(&rollouts, &gated).await?;
    // The first revision is gated too: someone uninvolved approves it.
    approve_current_revision(&installed.cluster, ns, "web", 1, &[]).await?;
    wait_for(&rollouts, "web", "v1 Healthy", healthy(None)).await?;

    // Eve changes the template as the ServiceAccount.
    let eve_kubeconfig = installed.cluster.dir().join(format!("{ns}-eve.kubeconfig"));
    write_kubeconfig(
        &installed.cluster,
        &Credentials::Certificate {
            certificate_pem: &eve.certificate_pem,
            key_pem: &eve.key_pem,
        },
        Some(ns),
        &eve_kubeconfig,
    )?;
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": rollgate_testsupport::manifests::app_image(DIGEST_V2)}]}}}});
    let output = Command::new(tools::kubectl()?)
        .arg("--kubeconfig")
        .arg(&eve_kubeconfig)
        .args(["--as", &deployer.username, "patch", "rollout", "web"])
        .args(["--type", "merge", "-p", &patch.to_string()])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "eve could not impersonate the deployer: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let waiting = wait_for(
        &rollouts,
        "web",
        "the approval gate",
        at(1, RolloutPhase::AwaitingApproval),
    )
    .await?;
    assert_eq!(
        requester(&waiting),
        Some(deployer.username.as_str()),
        "the change is stamped with the ServiceAccount"
    );

    // Eve approves her own change under her own name.
    let target = decision_target("web", waiting.status.as_ref().expect("a status"))?;
    let request = approval_request(
        "web",
        &target,
        ApprovalDecision::Approve,
        Some("looks good".into()),
        &eve.username,
        &[],
    );
    let approval = Api::<Approval>::namespaced(eve_client, ns)
        .create(&PostParams::default(), &request)
        .await?;
    let approval_name = approval.name_any();

    let ignored = wait_for(&rollouts, "web", "eve's approval ignored", |rollout| {
        rollout
            .status
            .as_ref()
            .and_then(|status| status.gate.as_ref())
            .is_some_and(|gate| gate.ignored.iter().any(|i| i.approval == approval_name))
    })
    .await?;
    let status = ignored.status.expect("a status");
    assert_eq!(status.phase, Some(RolloutPhase::AwaitingApproval));
    let gate = status.gate.expect("a gate");
    assert_eq!(gate.received, 0, "{gate:?}");
    let entry = &gate.ignored[0];
    assert_eq!(entry.approver, eve.username);
    assert_eq!(entry.reason, "CouldActAsRequester");
    assert!(
        entry.message.contains(&deployer.username) && entry.message.contains("impersonate"),
        "{}",
        entry.message
    );
    // Nothing else opens the gate meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = rollouts.get("web").await?;
    assert_eq!(
        still.status.and_then(|s| s.phase),
        Some(RolloutPhase::AwaitingApproval)
    );

    // The approver is told, on the Approval.
    let events: Api<Event> = Api::namespaced(admin.clone(), ns);
    let started = Instant::now();
    loop {
        let listed = events.list(&ListParams::default()).await?;
        let told = listed.items.iter().find(|event| {
            event.reason.as_deref() == Some("ApprovalIgnored")
                && event.regarding.as_ref().and_then(|r| r.name.as_deref())
                    == Some(approval_name.as_str())
        });
        if let Some(event) = told {
            let note = event.note.clone().unwrap_or_default();
            assert!(note.contains("CouldActAsRequester"), "{note}");
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "no ApprovalIgnored event on {approval_name}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // With the check off (self-approval allowed), the same approval opens the gate.
    let admin_rollouts: Api<Rollout> = Api::namespaced(admin, ns);
    admin_rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"approval": {"allowSelfApproval": true}}})),
        )
        .await?;
    let v2 = status.current_revision.clone();
    let done = wait_for(&admin_rollouts, "web", "v2 Healthy", healthy(v2)).await?;
    let approved = done.status.and_then(|s| s.gate).map(|g| g.approvers);
    assert_eq!(approved, Some(vec![eve.username.clone()]));
    Ok(())
}
