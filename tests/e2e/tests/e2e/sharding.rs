//! Sharding across replicas, on the local cluster: three controllers run with `--shards 6`,
//! each holds some of the shard Leases, and together they release a fleet of 24 canaries. One
//! replica is killed with SIGKILL in the middle of the fleet: the two others take its shards
//! within the lease duration, every Rollout finishes, every Rollout's audit trail holds each
//! transition exactly once (no step done twice, by two replicas or after the takeover), and
//! `audit verify` finds every log intact.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::PostParams;
use rollgate_testsupport::{ControllerProcess, manifests};
use serde_json::json;

use crate::audit_crash::every_transition_once;
use crate::audit_log::SignedLog;
use crate::rollouts::{DIGEST_V1, DIGEST_V2, healthy, set_digest, wait_for};

const SHARDS: u32 = 6;
const FLEET: usize = 24;
const STEPS: usize = 4;
const SHARDED: [&str; 2] = ["--shards=6", "--lease-name=rollgate-shards"];

/// The shards each controller holds, by its metric.
fn held(controllers: &[&ControllerProcess]) -> Vec<u32> {
    controllers
        .iter()
        .map(|controller| controller.metric("rollgate_shards_held").unwrap_or(0.0) as u32)
        .collect()
}

/// Waits until `controllers` hold every shard between them, each at least one.
async fn wait_until_spread(controllers: &[&ControllerProcess]) -> anyhow::Result<Vec<u32>> {
    let started = Instant::now();
    loop {
        let held = held(controllers);
        if held.iter().sum::<u32>() == SHARDS && held.iter().all(|&n| n > 0) {
            return Ok(held);
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the shards never spread over the replicas: {held:?}\n{}",
            controllers
                .iter()
                .map(|c| c.log_tail())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn three_replicas_share_the_fleet_and_the_survivors_finish_it_after_one_is_killed()
-> anyhow::Result<()> {
    let mut log = SignedLog::start("sharding", &SHARDED).await?;
    let second = log.start_controller("shard-b", &SHARDED)?;
    let third = log.start_controller("shard-c", &SHARDED)?;
    let spread = wait_until_spread(&[&log.controller, &second, &third]).await?;
    println!("shards held by the three replicas: {spread:?}");

    let rollouts = log.rollouts();
    let strategy = json!({"canary": {"steps": [
        {"setWeight": 25}, {"pause": {"duration": "2s"}},
        {"setWeight": 75}, {"pause": {"duration": "2s"}},
    ]}});
    let names: Vec<String> = (0..FLEET).map(|i| format!("sharded-{i:02}")).collect();
    for name in &names {
        rollouts
            .create(
                &PostParams::default(),
                &manifests::rollout(name, 2, DIGEST_V1, strategy.clone())?,
            )
            .await?;
    }
    let mut v1 = BTreeMap::new();
    let mut v1_revision = BTreeMap::new();
    for name in &names {
        let rollout = wait_for(&rollouts, name, "v1 Healthy", healthy(None)).await?;
        v1.insert(name.clone(), log.settled(name).await?.len());
        let stable = rollout.status.and_then(|s| s.stable_revision);
        v1_revision.insert(name.clone(), stable.unwrap_or_default());
    }

    for name in &names {
        set_digest(&rollouts, name, DIGEST_V2).await?;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_held = held(&[&log.controller])[0];
    log.controller.kill();
    let killed_at = Instant::now();
    println!("killed a replica holding {killed_held} shards mid-fleet");

    let started = Instant::now();
    for name in &names {
        let old = v1_revision[name].clone();
        wait_for(&rollouts, name, "v2 Healthy", move |r| {
            healthy(None)(r)
                && r.status.as_ref().and_then(|s| s.stable_revision.as_ref()) != Some(&old)
        })
        .await?;
    }
    println!("fleet finished {:?} after the kill", started.elapsed());
    let survivors = held(&[&second, &third]);
    assert_eq!(
        survivors.iter().sum::<u32>(),
        SHARDS,
        "the survivors hold {survivors:?}, not every shard, {:?} after the kill",
        killed_at.elapsed()
    );

    // A trail that never settles is reported with `log.controller`'s log: a survivor's.
    log.controller = second;
    let problems = every_transition_once(&log, &names, &v1, STEPS).await?;
    assert!(
        problems.is_empty(),
        "after a replica was killed mid-fleet:\n{}",
        problems.join("\n")
    );
    drop(third);
    Ok(())
}
