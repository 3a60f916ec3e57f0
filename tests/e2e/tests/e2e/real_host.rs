//! Every scenario on the machine's one real node, one after another in one test.
//!
//! A machine runs one real node at a time (its kubelet and kube-proxy ports, its bridge and
//! its host state are fixed), so the scenarios cannot overlap. As separate tests they would
//! each hold one of the test harness' threads while waiting for the node (`claim_host`
//! blocks), and with two threads the rest of the suite would stall behind them; in one test
//! they hold one thread, in turn, while the other tests go on beside them.
//!
//! Every scenario runs even when one before it failed; the test fails naming each failure.
//! The install goes first: it builds the release images the demo then finds up to date.

use std::time::Instant;

use anyhow::{Result, bail};

use crate::{demo, real_install, real_node};

/// A scenario on the real node.
type Scenario = fn() -> Result<()>;

#[test]
fn each_real_node_scenario_in_turn() -> Result<()> {
    let scenarios: [(&str, Scenario); 4] = [
        (
            "real install: real pods, and real requests follow the canary",
            real_install::rollgate_runs_as_real_pods_and_real_requests_follow_the_canary,
        ),
        (
            "the demo runs every stage",
            demo::the_demo_runs_every_stage_and_leaves_no_process_behind,
        ),
        (
            "an interrupted demo stops everything",
            demo::an_interrupted_demo_stops_everything_it_started,
        ),
        (
            "a real pod serves its ClusterIP, and the host is restored",
            real_node::a_real_pod_serves_its_cluster_ip_reaches_the_api_server_and_the_host_is_restored,
        ),
    ];
    let count = scenarios.len();
    let mut failures = Vec::new();
    for (name, scenario) in scenarios {
        let began = Instant::now();
        let outcome = match std::panic::catch_unwind(scenario) {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(format!("{error:?}")),
            Err(panic) => Some(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                    .unwrap_or_else(|| "a panic without a message".to_owned()),
            ),
        };
        let took = began.elapsed();
        match outcome {
            None => eprintln!("real node: {name}: passed in {took:.0?}"),
            Some(failure) => {
                eprintln!("real node: {name}: FAILED after {took:.0?}");
                failures.push(format!("--- {name} ---\n{failure}"));
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} real-node scenarios failed:\n{}",
            failures.len(),
            count,
            failures.join("\n")
        );
    }
    Ok(())
}
