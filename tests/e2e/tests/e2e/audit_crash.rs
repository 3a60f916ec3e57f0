//! The audit log survives crashes: a fleet of 20 canaries rolls out while the controller is
//! killed with SIGKILL at random moments a dozen times; at the end every Rollout's log holds
//! every transition exactly once (RevisionDetected, each StepCompleted, Completed), its step
//! index never went back, no step ran twice, every Rollout finished with its ReplicaSets
//! scaled as the last step says, and `audit verify` finds every log intact against the
//! published checkpoints.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, PostParams};
use rollgate_crds::audit::AuditEventKind;
use rollgate_testsupport::manifests;
use serde_json::json;

use crate::audit_log::SignedLog;
use crate::rollouts::{DIGEST_V1, DIGEST_V2, healthy, replicas_by_revision, set_digest, wait_for};

const FLEET: usize = 20;
const KILLS: usize = 12;
const STEPS: usize = 6;

/// A small xorshift generator seeded from the clock (the seed is printed to replay a run).
struct Moments(u64);

impl Moments {
    fn next_millis(&mut self, from: u64, to: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        from + self.0 % (to - from)
    }
}

fn step_of(message: &str) -> Option<usize> {
    message
        .strip_prefix("step ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

#[tokio::test]
async fn a_fleet_rolled_out_through_a_dozen_sigkills_has_every_transition_recorded_once()
-> anyhow::Result<()> {
    let mut log = SignedLog::start("audit-crash", &["--leader-election=false"]).await?;
    let rollouts = log.rollouts();
    let strategy = json!({"canary": {"steps": [
        {"setWeight": 20}, {"pause": {"duration": "2s"}},
        {"setWeight": 50}, {"pause": {"duration": "2s"}},
        {"setWeight": 80}, {"pause": {"duration": "2s"}},
    ]}});
    let names: Vec<String> = (0..FLEET).map(|i| format!("fleet-{i:02}")).collect();
    for name in &names {
        rollouts
            .create(
                &PostParams::default(),
                &manifests::rollout(name, 2, DIGEST_V1, strategy.clone())?,
            )
            .await?;
    }
    for name in &names {
        wait_for(&rollouts, name, "v1 Healthy", healthy(None)).await?;
    }
    let mut v1 = BTreeMap::new();
    let mut v1_revision = BTreeMap::new();
    for name in &names {
        v1.insert(name.clone(), log.settled(name).await?.len());
        let stable = rollouts
            .get(name)
            .await?
            .status
            .and_then(|s| s.stable_revision);
        v1_revision.insert(name.clone(), stable.unwrap_or_default());
    }

    let seed = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64 | 1;
    println!("kill moments seed {seed}");
    let mut moments = Moments(seed);
    for name in &names {
        set_digest(&rollouts, name, DIGEST_V2).await?;
    }
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(moments.next_millis(200, 2500))).await;
        log.controller.kill();
        log.controller =
            log.start_controller(&format!("crash-{kill}"), &["--leader-election=false"])?;
    }

    let started = Instant::now();
    for name in &names {
        let old = v1_revision[name].clone();
        wait_for(&rollouts, name, "v2 Healthy", move |r| {
            healthy(None)(r)
                && r.status.as_ref().and_then(|s| s.stable_revision.as_ref()) != Some(&old)
        })
        .await?;
    }
    println!("fleet finished {:?} after the last kill", started.elapsed());

    let problems = every_transition_once(&log, &names, &v1, STEPS).await?;
    assert!(
        problems.is_empty(),
        "after {KILLS} SIGKILLs (seed {seed}):\n{}",
        problems.join("\n")
    );
    Ok(())
}

/// What is wrong with the v2 rollout of each of `names` (its records from `v1[name]` on):
/// RevisionDetected and Completed exactly once, each of `0..steps` completed once and in order,
/// no record of another revision, the ReplicaSets scaled to v2's 2 replicas, and `audit verify`
/// intact against the published checkpoints.
pub async fn every_transition_once(
    log: &SignedLog,
    names: &[String],
    v1: &BTreeMap<String, usize>,
    steps: usize,
) -> anyhow::Result<Vec<String>> {
    let rollouts = log.rollouts();
    let replica_sets: Api<ReplicaSet> = Api::namespaced(log.client.clone(), log.ns());
    let mut problems = Vec::new();
    for name in names {
        let records = log.settled(name).await?;
        let status = rollouts.get(name).await?.status.unwrap_or_default();
        let v2 = status.current_revision.clone().unwrap_or_default();
        let of_v2: Vec<_> = records[v1[name]..].iter().collect();
        let count = |kind: AuditEventKind| of_v2.iter().filter(|r| r.spec.event == kind).count();
        if count(AuditEventKind::RevisionDetected) != 1 || count(AuditEventKind::Completed) != 1 {
            problems.push(format!(
                "{name}: RevisionDetected or Completed not exactly once: {of_v2:#?}"
            ));
        }
        let completed: Vec<usize> = of_v2
            .iter()
            .filter(|r| r.spec.event == AuditEventKind::StepCompleted)
            .filter_map(|r| r.spec.message.as_deref().and_then(step_of))
            .collect();
        if completed != (0..steps).collect::<Vec<_>>() {
            problems.push(format!(
                "{name}: steps completed {completed:?}, expected each of 0..{steps} once, in order"
            ));
        }
        if of_v2
            .iter()
            .any(|r| r.spec.revision.as_deref().is_some_and(|rev| rev != v2))
        {
            problems.push(format!(
                "{name}: a record of another revision after v2 was detected"
            ));
        }
        let scale = replicas_by_revision(&replica_sets, name).await?;
        if scale.get(&v2) != Some(&2) || scale.values().sum::<i32>() != 2 {
            problems.push(format!("{name}: ReplicaSets {scale:?}"));
        }
        let (ok, text) = log.verify(name, &[])?;
        if !ok {
            problems.push(format!("{name}: audit verify: {text}"));
        }
    }
    Ok(problems)
}
