//! The built `kubectl-rollgate` binary against the real local cluster (no controller): the
//! tests create Rollouts, set their status through the status subresource as the controller
//! would, and check what the plugin prints and writes. The cluster gets the admission policies
//! of `crds/policies/` too, so approvals and Rollouts go through them.

use std::path::Path;
use std::process::{Command, Output};

use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rollgate_crds::audit::{AuditEvent, AuditEventKind, next_record};
use rollgate_crds::rollout::UserAction;
use rollgate_crds::{Approval, AuditRecord, Rollout};
use rollgate_testsupport::{Cluster, TestNamespace, shared_cluster};
use serde_json::{Value, json};

const DIGEST: &str = "0f6b5c2d9a1e3f4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b";
const ADMIN: &str = "rollgate-admin";

/// The shared cluster; its fixture installs rollgate's admission policies with the CRDs.
fn cluster() -> &'static Cluster {
    shared_cluster()
}

struct Setup {
    client: kube::Client,
    namespace: TestNamespace,
}

async fn setup(prefix: &str) -> Setup {
    let cluster = cluster();
    let client = cluster.client().await.expect("client");
    let namespace = TestNamespace::create(cluster, &client, prefix)
        .await
        .expect("namespace");
    Setup { client, namespace }
}

impl Setup {
    fn rollouts(&self) -> Api<Rollout> {
        Api::namespaced(self.client.clone(), self.namespace.name())
    }

    /// Runs the plugin with the admin kubeconfig in the test's namespace.
    fn plugin(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-rollgate"));
        command
            .arg("--kubeconfig")
            .arg(cluster().kubeconfig())
            .args(["-n", self.namespace.name()])
            .args(args);
        command.output().expect("run kubectl-rollgate")
    }

    /// Creates a canary Rollout (as the admin, who is then its requester) with a status.
    async fn rollout(&self, name: &str, status: Value) -> Rollout {
        let rollout: Rollout = serde_json::from_value(json!({
            "apiVersion": "rollgate.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "annotations": {"rollgate.io/requested-by": ADMIN}},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                             "spec": {"containers": [{"name": "app",
                                 "image": format!("registry.example/app@sha256:{DIGEST}")}]}},
                "strategy": {"canary": {"steps": [
                    {"setWeight": 20}, {"approval": {}}, {"pause": {}}]}}
            }
        }))
        .unwrap();
        let created = self
            .rollouts()
            .create(&PostParams::default(), &rollout)
            .await
            .expect("create rollout");
        let mut status = status;
        status["observedGeneration"] = json!(created.metadata.generation);
        self.rollouts()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await
            .expect("set status")
    }
}

fn awaiting_approval() -> Value {
    json!({
        "phase": "AwaitingApproval", "message": "waiting for 1 approval",
        "currentStepIndex": 1, "canaryWeight": 20,
        "currentRevision": "0123456789", "stableRevision": "abcdefabcd",
        "currentImages": [{"container": "app",
                           "image": format!("registry.example/app@sha256:{DIGEST}")}],
        "gate": {"revision": "0123456789", "required": 1, "received": 0}
    })
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn list_get_and_status_show_a_rollout() {
    let setup = setup("cli-show").await;
    setup.rollout("web", awaiting_approval()).await;

    let list = setup.plugin(&["list"]);
    assert_exit(&list, 0);
    let text = stdout(&list);
    assert!(text.starts_with("NAME"), "{text}");
    for cell in ["web", "canary", "AwaitingApproval", "1/3", "0123456789"] {
        assert!(text.contains(cell), "{cell} in {text}");
    }

    let get = setup.plugin(&["get", "web", "-o", "json"]);
    assert_exit(&get, 0);
    let object: Value = serde_json::from_str(&stdout(&get)).unwrap();
    assert_eq!(object["status"]["canaryWeight"], 20);
    let yaml = setup.plugin(&["get", "web", "-o", "yaml"]);
    assert_exit(&yaml, 0);
    assert!(
        stdout(&yaml).contains("currentRevision: '0123456789'")
            || stdout(&yaml).contains("currentRevision: \"0123456789\"")
    );

    let status = setup.plugin(&["status", "web"]);
    assert_exit(&status, 0);
    let view = stdout(&status);
    assert!(view.contains("  ✓ 0: setWeight 20%"), "{view}");
    assert!(view.contains("  ▶ 1: approval"), "{view}");
    assert!(view.contains("0/1 approvals (none yet)"), "{view}");
    assert!(view.contains("[####................] 20%"), "{view}");

    let missing = setup.plugin(&["get", "nope"]);
    assert_exit(&missing, 1);
}

#[tokio::test]
async fn status_watch_exits_when_the_rollout_settles() {
    let setup = setup("cli-watch").await;
    setup
        .rollout("done", json!({"phase": "Healthy", "currentStepIndex": 3}))
        .await;
    let healthy = setup.plugin(&["status", "done", "--watch", "--timeout", "30s"]);
    assert_exit(&healthy, 0);
    assert!(stdout(&healthy).contains("rollout done is Healthy"));

    setup
        .rollout(
            "stuck",
            json!({"phase": "Progressing", "currentStepIndex": 0}),
        )
        .await;
    let stuck = setup.plugin(&["status", "stuck", "--watch", "--timeout", "2s"]);
    assert_exit(&stuck, 1);
    assert!(
        stdout(&stuck).contains("did not settle"),
        "{}",
        stdout(&stuck)
    );
}

#[tokio::test]
async fn approve_and_reject_create_approvals_in_the_users_own_name() {
    let setup = setup("cli-approve").await;
    setup.rollout("web", awaiting_approval()).await;
    let approvals: Api<Approval> = Api::namespaced(setup.client.clone(), setup.namespace.name());

    let approve = setup.plugin(&["approve", "web", "--comment", "looks good"]);
    assert_exit(&approve, 0);
    let list = approvals.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 1);
    let spec = &list[0].spec;
    assert_eq!(spec.approver, ADMIN);
    assert!(spec.approver_groups.contains(&"system:masters".to_owned()));
    assert_eq!(spec.revision, "0123456789");
    assert_eq!(spec.digests, [format!("sha256:{DIGEST}")]);
    assert_eq!(spec.comment.as_deref(), Some("looks good"));

    // --comment is required for a rejection: a usage error.
    assert_exit(&setup.plugin(&["reject", "web"]), 2);
    assert_exit(
        &setup.plugin(&["reject", "web", "--comment", "error budget spent"]),
        0,
    );
    assert_eq!(
        approvals
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    // The admission policy refuses an Approval in someone else's name, even from the admin.
    let mut forged = list[0].clone();
    forged.metadata = kube::api::ObjectMeta {
        name: Some("forged".into()),
        ..Default::default()
    };
    forged.spec.approver = "alice".into();
    let refused = approvals.create(&PostParams::default(), &forged).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.message.contains("spec.approver must be your own user name")),
        "{refused:?}"
    );

    // A Rollout without a current revision has nothing to approve.
    setup.rollout("new", json!({"phase": "Progressing"})).await;
    assert_exit(&setup.plugin(&["approve", "new"]), 1);
}

/// What the controller writes when it has handled an action (the test plays the controller:
/// the admin is the controller's identity on the test cluster).
async fn handle(setup: &Setup, name: &str, carried_out: bool, message: &str) -> UserAction {
    let started = std::time::Instant::now();
    let action = loop {
        let status = setup.rollouts().get(name).await.unwrap().status.unwrap();
        if let Some(action) = status
            .user_action
            .filter(|action| status.handled_action.as_deref() != Some(action.id.as_str()))
        {
            break action;
        }
        assert!(started.elapsed().as_secs() < 30, "no action was requested");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let outcome = json!({"status": {"handledAction": action.id,
        "actionOutcome": {"id": action.id, "carriedOut": carried_out, "message": message}}});
    setup
        .rollouts()
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&outcome))
        .await
        .expect("write the outcome");
    action
}

/// Runs the plugin in the background while the test plays the controller.
async fn act(
    setup: &Setup,
    args: &[&str],
    carried_out: bool,
    message: &str,
) -> (UserAction, Output) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-rollgate"));
    command
        .arg("--kubeconfig")
        .arg(cluster().kubeconfig())
        .args(["-n", setup.namespace.name()])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().expect("run kubectl-rollgate");
    let action = handle(setup, "web", carried_out, message).await;
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (action, output)
}

#[tokio::test]
async fn actions_are_bound_to_the_revision_and_report_their_outcome() {
    let setup = setup("cli-actions").await;
    setup.rollout("web", awaiting_approval()).await;

    let (action, output) = act(
        &setup,
        &["promote", "web", "--full"],
        true,
        "promoted to step 1",
    )
    .await;
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("promoted to step 1"),
        "{}",
        stdout(&output)
    );
    assert_eq!(format!("{:?}", action.action), "PromoteFull");
    assert_eq!(action.by, ADMIN);
    assert_eq!(
        (action.revision.as_str(), action.attempt),
        ("0123456789", 0)
    );
    let first_id = action.id;

    // An action the controller ignores is not reported as done.
    let (action, output) = act(
        &setup,
        &["abort", "web", "--reason", "latency"],
        false,
        "Abort by rollgate-admin ignored: nothing to act on",
    )
    .await;
    assert_exit(&output, 1);
    assert!(stdout(&output).contains("ignored"), "{}", stdout(&output));
    assert_eq!(format!("{:?}", action.action), "Abort");
    assert_eq!(action.reason.as_deref(), Some("latency"));
    assert_ne!(action.id, first_id, "every request has a new id");
    let rollout = setup.rollouts().get("web").await.unwrap();
    let managers: Vec<String> = rollout
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"kubectl-rollgate".to_owned()),
        "{managers:?}"
    );

    for (verb, kind) in [
        ("retry", "Retry"),
        ("pause", "Pause"),
        ("resume", "Resume"),
        ("promote", "Promote"),
    ] {
        let (action, output) = act(&setup, &[verb, "web"], true, "done").await;
        assert_exit(&output, 0);
        assert_eq!(format!("{:?}", action.action), kind);
    }

    // Two intents at once: the second is refused while the first is pending, never lost.
    assert_exit(&setup.plugin(&["--wait", "0", "pause", "web"]), 0);
    let second = setup.plugin(&["--wait", "0", "resume", "web"]);
    assert_exit(&second, 1);
    let refusal = String::from_utf8_lossy(&second.stderr);
    assert!(
        refusal.contains("another action is still pending (Pause by"),
        "{refusal}"
    );
    let pending = setup.rollouts().get("web").await.unwrap().status.unwrap();
    assert_eq!(
        format!("{:?}", pending.user_action.unwrap().action),
        "Pause"
    );

    assert_exit(&setup.plugin(&["promote", "missing"]), 1);
}

#[tokio::test]
async fn lint_names_bad_fields_and_broken_rules() {
    let setup = setup("cli-lint").await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lint");
    let path = |name: &str| fixtures.join(name).to_str().unwrap().to_owned();

    let ok = setup.plugin(&[
        "lint",
        &path("valid-canary.yaml"),
        &path("valid-blue-green.yaml"),
    ]);
    assert_exit(&ok, 0);
    assert!(stdout(&ok).contains("rollout web: OK"));

    let bad_field = setup.plugin(&["lint", &path("bad-field.yaml")]);
    assert_exit(&bad_field, 1);
    assert!(
        stdout(&bad_field).contains("spec.strategy.canary.stableServce: unknown field"),
        "{}",
        stdout(&bad_field)
    );

    let bad_rule = setup.plugin(&["lint", &path("bad-rule.yaml")]);
    assert_exit(&bad_rule, 1);
    assert!(
        stdout(&bad_rule).contains(
            "spec.strategy.canary.steps[0]: a step sets exactly one of setWeight, pause, approval or analysis"
        ),
        "{}",
        stdout(&bad_rule)
    );

    assert_exit(&setup.plugin(&["lint"]), 2);
    assert_exit(&setup.plugin(&["lint", "/nonexistent.yaml"]), 1);

    // What lint accepts, the API server accepts (with the requested-by annotation of the user).
    let text = std::fs::read_to_string(path("valid-canary.yaml")).unwrap();
    let mut rollout: Rollout = serde_saphyr::from_str(&text).unwrap();
    rollout
        .metadata
        .annotations
        .get_or_insert_default()
        .insert("rollgate.io/requested-by".into(), ADMIN.into());
    setup
        .rollouts()
        .create(&PostParams::default(), &rollout)
        .await
        .expect("the API server accepts it");
}

#[tokio::test]
async fn audit_verify_passes_then_names_a_tampered_record() {
    let setup = setup("cli-audit").await;
    let rollout = setup.rollout("web", awaiting_approval()).await;
    let uid = rollout.metadata.uid.clone().unwrap();
    let records: Api<AuditRecord> = Api::namespaced(setup.client.clone(), setup.namespace.name());
    let mut previous = None;
    let kinds = [
        AuditEventKind::RevisionDetected,
        AuditEventKind::Verification,
        AuditEventKind::WeightSet,
        AuditEventKind::StepEntered,
    ];
    let mut names = Vec::new();
    for kind in kinds {
        let event = AuditEvent {
            kind,
            actor: "rollgate-controller".into(),
            revision: Some("0123456789".into()),
            reason: None,
            message: Some(format!("{kind:?}")),
            details: [("weight".to_owned(), "20".to_owned())].into(),
        };
        let spec = next_record(previous.as_ref(), "web", &uid, event, Timestamp::now()).unwrap();
        let record = AuditRecord::for_spec(setup.namespace.name(), spec.clone());
        names.push(record.metadata.name.clone().unwrap());
        records
            .create(&PostParams::default(), &record)
            .await
            .expect("create record");
        previous = Some(spec);
    }

    let ok = setup.plugin(&["audit", "verify", "web"]);
    assert_exit(&ok, 0);
    assert!(
        stdout(&ok).contains("4 records verified"),
        "{}",
        stdout(&ok)
    );

    let history = setup.plugin(&["history", "web"]);
    assert_exit(&history, 0);
    assert!(
        stdout(&history).contains("WeightSet"),
        "{}",
        stdout(&history)
    );

    // Not even the cluster admin can change a record in place.
    let mut changed = records.get(&names[2]).await.unwrap();
    changed.spec.message = Some("nothing to see".into());
    let refused = records
        .replace(&names[2], &PostParams::default(), &changed)
        .await;
    assert!(refused.is_err(), "an AuditRecord update must be refused");

    // The admin deletes it and creates a changed one in its place: the chain names it.
    records
        .delete(&names[2], &DeleteParams::default())
        .await
        .unwrap();
    let mut forged = AuditRecord::for_spec(setup.namespace.name(), changed.spec.clone());
    forged.spec.actor = "alice".into();
    forged.metadata.name = Some(names[2].clone());
    records
        .create(&PostParams::default(), &forged)
        .await
        .unwrap();
    let broken = setup.plugin(&["audit", "verify", "web"]);
    assert_exit(&broken, 1);
    let text = stdout(&broken);
    assert!(text.contains(&names[2]), "{text}");
    assert!(text.contains("hash mismatch"), "{text}");

    // Deleting a record outright leaves a gap, named at the record after it.
    records
        .delete(&names[1], &DeleteParams::default())
        .await
        .unwrap();
    let gap = setup.plugin(&["audit", "verify", "web"]);
    assert_exit(&gap, 1);
    assert!(stdout(&gap).contains("gap"), "{}", stdout(&gap));

    assert_exit(&setup.plugin(&["audit", "verify", "never-existed"]), 1);
}
