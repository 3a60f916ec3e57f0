//! Stages 3 and 4: a signed revision released as a canary of real pods, its share of real
//! requests following the weight, measured by analysis on the pods' metrics, held at an
//! approval gate, and approved from the CLI by a release manager.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use rollgate_crds::requester::requester;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::approvals::approve_current_revision;
use rollgate_testsupport::identity::{
    Who, certificate_user, grant_subjects, rollgate_rule, subject, wait_until_user_allowed,
    write_kubeconfig,
};

use super::Walk;
use crate::objects::{self, APPROVER, APPROVERS_GROUP, NAMESPACE, ROLLOUT, TEMPLATE};
use crate::plugin::User;
use crate::waits::{Awaited, finished_run, rollout_until};

impl Walk<'_> {
    /// Stage 3: v1 becomes stable, then v2 rolls out as a canary up to the approval gate.
    pub(super) async fn canary(&mut self) -> Result<()> {
        self.narrator.stage(
            3,
            "Release v2 as a canary, judged by its error rate",
            "A new revision first gets 20% of the pods, so 20% of the requests sent through the\n\
             app's Service. Then an analysis asks the analysis service, which queries Prometheus,\n\
             whether the canary's error ratio stays under 5%; only then does it reach the\n\
             approval gate. The pods are real: containerd runs the signed image on the node.",
        );
        let v1 = self.versions[0].clone();
        let v2 = self.versions[1].clone();
        self.narrator.step(&format!(
            "creating namespace {NAMESPACE}, the app's Services (checkout for clients; \
             checkout-stable and checkout-canary, which rollgate points at the revisions) and \
             the error-rate SLO as an AnalysisTemplate"
        ));
        self.stack
            .apply("namespace", &objects::namespace(NAMESPACE))?;
        self.stack.apply("services", &objects::services())?;
        let template = objects::analysis_template(&self.stack.install.prometheus().url());
        self.stack.apply("analysis-template", &template)?;
        self.narrator
            .detail(&format!("query: {}", objects::ERROR_RATIO));
        self.narrator
            .detail("success: result < 0.05, measured 3 times, 2s apart, the first after 15s (Prometheus finds the new pod and scrapes it)");

        self.narrator.step(
            "creating Rollout checkout with v1; steps: setWeight 20 → analysis error-rate → \
             approval (1 from the release managers) → setWeight 100",
        );
        self.apply_rollout("rollout-v1", &v1)?;
        self.narrator.detail(
            "v1 is verified; as the first revision it has nothing to be compared with, so it \
             skips the steps, but it is gated like any revision: nothing runs until a release \
             manager approves it (here the platform team's bootstrap approver)",
        );
        approve_current_revision(
            self.stack.install.cluster(),
            NAMESPACE,
            ROLLOUT,
            1,
            &[APPROVERS_GROUP],
        )
        .await?;
        let awaited = Awaited {
            what: "v1 stable on 5 Ready pods",
            timeout: Duration::from_secs(120),
            fails_on: &[RolloutPhase::Degraded, RolloutPhase::Aborted],
        };
        rollout_until(&self.rollouts, awaited, |rollout| {
            healthy_at(rollout, &v1.revision)
        })
        .await?;
        println!("  $ kubectl get pods -n {NAMESPACE} -o wide");
        self.narrator.detail(
            &self
                .stack
                .kubectl_ok(&["get", "pods", "-n", NAMESPACE, "-o", "wide"])?,
        );

        let service_ip = self.stack.kubectl_ok(&[
            "get",
            "service",
            objects::SERVICE,
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])?;
        self.narrator.step(&format!(
            "sending requests through Service {} ({service_ip}): {:.0} a second from this \
             machine, a new connection each, so kube-proxy picks a pod for every one",
            objects::SERVICE,
            crate::stack::RPS
        ));
        self.stack
            .start_load(&format!("http://{service_ip}/"))
            .await?;
        self.measure_shares().await?.expect(&v1.revision, 1.0)?;

        self.narrator
            .step("applying v2: the controller verifies its signature, then starts the canary");
        self.apply_rollout("rollout-v2", &v2)?;
        self.start_watch()?;
        let awaited = Awaited {
            what: "the approval gate",
            timeout: Duration::from_secs(120),
            fails_on: &[RolloutPhase::Aborted, RolloutPhase::Degraded],
        };
        rollout_until(&self.rollouts, awaited, |rollout| {
            phase(rollout) == Some(RolloutPhase::AwaitingApproval)
        })
        .await?;
        let run = finished_run(&self.runs, &v2.revision).await?;
        let status = run.status.context("the AnalysisRun has no status")?;
        let metric = status
            .metric_results
            .first()
            .context("the AnalysisRun has no metric result")?;
        let values: Vec<String> = metric
            .measurements
            .iter()
            .filter_map(|m| m.value.clone())
            .collect();
        self.narrator.detail(&format!(
            "AnalysisRun {}: {:?}; {} {}/{} measurements successful, values [{}]",
            run.metadata.name.unwrap_or_default(),
            status.phase,
            metric.name,
            metric.successful,
            metric.count,
            values.join(", ")
        ));
        self.narrator
            .detail(&format!("ReplicaSets:\n{}", self.replica_sets().await?));
        let shares = self.measure_shares().await?;
        shares.expect(&v2.revision, 0.2)?;
        self.plugin
            .run_ok(&self.admin(), &["status", ROLLOUT])
            .await?;
        self.narrator.done(
            3,
            &format!(
                "v2 canary at 20%: its pod answered {:.1}% of the real requests; analysis \
                 {TEMPLATE} {:?} ({} of {} measurements under 5% errors); waiting at the \
                 approval gate",
                shares.of(&v2.revision) * 100.0,
                status.phase,
                metric.successful,
                metric.count
            ),
        );
        Ok(())
    }

    /// Stage 4: the requester's own approval does not count; a release manager's does.
    pub(super) async fn approve(&mut self) -> Result<()> {
        self.narrator.stage(
            4,
            "Approve from the CLI, as someone else",
            "An approval is an Approval object in the approver's own name (the API server checks\n\
             the name and groups). The gate counts it only for this exact revision and digest,\n\
             only from the allowed group, and never from whoever requested the change.",
        );
        let v2_revision = self.versions[1].revision.clone();
        let rollout = self.rollouts.get(ROLLOUT).await?;
        let requested_by = requester(&rollout)
            .context("the Rollout has no rollgate.io/requested-by annotation")?
            .to_owned();
        self.narrator.step(&format!(
            "the change was requested by {requested_by} (annotation rollgate.io/requested-by, \
             checked at admission); {requested_by} approves it anyway"
        ));
        self.plugin
            .run_ok(
                &self.admin(),
                &[
                    "approve",
                    ROLLOUT,
                    "--comment",
                    "my own change, looks fine to me",
                ],
            )
            .await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let gate = self
            .rollouts
            .get(ROLLOUT)
            .await?
            .status
            .and_then(|status| status.gate)
            .context("the Rollout shows no gate")?;
        ensure!(
            gate.received == 0,
            "the requester's own approval was counted: gate {}/{}",
            gate.received,
            gate.required
        );
        self.narrator.detail(&format!(
            "3s later the gate still counts {}/{}: the requester cannot approve their own \
             change (and is not a release manager)",
            gate.received, gate.required
        ));

        self.narrator.step(&format!(
            "release manager {APPROVER} gets a client certificate in group {APPROVERS_GROUP} \
             (a CertificateSigningRequest the cluster signs), a kubeconfig, and, through that \
             group, a Role in {NAMESPACE} that may read Rollouts and create Approvals"
        ));
        let client = &self.stack.client;
        let person = certificate_user(client, APPROVER, Some(APPROVERS_GROUP)).await?;
        let rules = vec![
            rollgate_rule(&["rollouts"], &["get", "list", "watch"]),
            rollgate_rule(&["approvals"], &["get", "list", "create"]),
        ];
        let group = subject("Group", APPROVERS_GROUP);
        grant_subjects(client, NAMESPACE, "rollout-approver", rules, vec![group]).await?;
        let who = Who {
            username: APPROVER,
            groups: vec![
                APPROVERS_GROUP.to_owned(),
                "system:authenticated".to_owned(),
            ],
            namespace: NAMESPACE,
        };
        wait_until_user_allowed(client, &who, "create", "approvals").await?;
        let kubeconfig = self
            .stack
            .install
            .cluster()
            .dir()
            .join(format!("{APPROVER}.kubeconfig"));
        write_kubeconfig(
            self.stack.install.cluster(),
            &person.credentials(),
            Some(NAMESPACE),
            &kubeconfig,
        )?;
        self.narrator
            .detail(&format!("kubeconfig: {}", kubeconfig.display()));

        let approver = User {
            kubeconfig: &kubeconfig,
            name: APPROVER,
        };
        self.plugin
            .run_ok(
                &approver,
                &[
                    "approve",
                    ROLLOUT,
                    "--comment",
                    "canary error rate under the SLO; ship it",
                ],
            )
            .await?;
        let awaited = Awaited {
            what: "v2 stable at 100%",
            timeout: Duration::from_secs(150),
            fails_on: &[RolloutPhase::Aborted, RolloutPhase::Degraded],
        };
        let done = rollout_until(&self.rollouts, awaited, |rollout| {
            healthy_at(rollout, &v2_revision)
        })
        .await?;
        let healthy = self.finish_watch().await?;
        ensure!(
            healthy,
            "kubectl rollgate status --watch did not end Healthy"
        );
        let approvers = done
            .status
            .and_then(|status| status.gate)
            .map(|gate| gate.approvers)
            .unwrap_or_default();
        if approvers != [APPROVER] {
            bail!("the gate opened with approvers {approvers:?}, not {APPROVER}");
        }
        self.narrator
            .detail(&format!("ReplicaSets:\n{}", self.replica_sets().await?));
        self.measure_shares().await?.expect(&v2_revision, 1.0)?;
        self.narrator.done(
            4,
            &format!(
                "approved by {APPROVER} of {APPROVERS_GROUP} (the requester's own approval did \
                 not count); v2 is stable on all {} pods",
                objects::REPLICAS
            ),
        );
        Ok(())
    }
}

fn phase(rollout: &rollgate_crds::Rollout) -> Option<RolloutPhase> {
    rollout.status.as_ref().and_then(|status| status.phase)
}

/// Whether the Rollout is Healthy with `revision` stable.
pub(super) fn healthy_at(rollout: &rollgate_crds::Rollout, revision: &str) -> bool {
    rollout.status.as_ref().is_some_and(|status| {
        status.phase == Some(RolloutPhase::Healthy)
            && status.stable_revision.as_deref() == Some(revision)
    })
}
