//! grpcurl, an independent client built from its own Go module, finds the services by
//! reflection and prints every step of a canary that WatchRollouts streams.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rollgate_testsupport::grpcurl::grpcurl;
use rollgate_testsupport::identity::{grant, rollgate_rule, service_account, wait_until_allowed};
use rollgate_testsupport::{TestNamespace, shared_cluster};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdout, Command};

use super::watch::STEPS;
use super::{create_rollout, serve, set_status};

/// The JSON messages grpcurl printed so far (it prints each message as indented JSON).
fn messages(output: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(output)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .collect()
}

/// Reads the child's stdout until `count` messages arrived, or 20 seconds passed.
async fn wait_for(stdout: &mut ChildStdout, output: &mut String, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buffer = [0u8; 8192];
    while messages(output).len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stdout.read(&mut buffer)).await {
            Ok(Ok(read)) if read > 0 => output.push_str(&String::from_utf8_lossy(&buffer[..read])),
            _ => break,
        }
    }
    messages(output)
}

#[tokio::test]
async fn grpcurl_lists_the_services_and_prints_every_step_of_a_canary() -> anyhow::Result<()> {
    let grpcurl = tokio::task::spawn_blocking(grpcurl).await??;
    let cluster = shared_cluster();
    let admin = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &admin, "grpc-grpcurl").await?;
    let ns = namespace.name();
    create_rollout(&admin, ns, "web", json!({})).await?;
    let account = service_account(&admin, ns, "grpcurl").await?;
    let rule = rollgate_rule(&["rollouts"], &["get", "list", "watch"]);
    grant(&admin, &account, "rollout-watcher", vec![rule]).await?;
    wait_until_allowed(&admin, &account, "watch", "rollouts").await?;
    let served = serve(&admin).await?;
    let address = served.address.to_string();

    let listed = Command::new(&grpcurl)
        .args(["-plaintext", &address, "list"])
        .output()
        .await?;
    let services = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{listed:?}");
    for service in [
        "rollgate.v1.RolloutService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(services.lines().any(|line| line == service), "{services}");
    }

    let get = json!({"rollout": {"namespace": ns, "name": "web"}}).to_string();
    let anonymous = Command::new(&grpcurl)
        .args(["-plaintext", "-d", &get, &address])
        .arg("rollgate.v1.RolloutService/GetRollout")
        .output()
        .await?;
    assert!(!anonymous.status.success());
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert!(stderr.contains("Unauthenticated"), "{stderr}");

    let request = json!({"namespace": ns}).to_string();
    let header = format!("authorization: Bearer {}", account.token);
    let mut child = Command::new(&grpcurl)
        .args(["-plaintext", "-H", &header, "-d", &request, &address])
        .arg("rollgate.v1.RolloutService/WatchRollouts")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdout = child.stdout.take().expect("stdout");
    let mut output = String::new();
    let initial = wait_for(&mut stdout, &mut output, 2).await;
    assert_eq!(initial.len(), 2, "grpcurl printed: {output}");
    assert_eq!(initial[0]["type"], "TYPE_ADDED");
    assert_eq!(initial[0]["rollout"]["id"]["name"], "web");
    assert_eq!(initial[1]["type"], "TYPE_SYNCED");

    for (step, weight, phase) in STEPS {
        let status = json!({"currentStepIndex": step, "canaryWeight": weight, "phase": phase});
        set_status(&admin, ns, "web", status).await?;
    }
    let printed = wait_for(&mut stdout, &mut output, 2 + STEPS.len()).await;
    child.kill().await?;
    assert_eq!(printed.len(), 2 + STEPS.len(), "grpcurl printed: {output}");
    for ((step, weight, phase), message) in STEPS.iter().zip(&printed[2..]) {
        assert_eq!(message["type"], "TYPE_MODIFIED");
        let rollout = &message["rollout"];
        // proto3 JSON leaves out zero values.
        assert_eq!(
            rollout["currentStepIndex"].as_i64().unwrap_or(0),
            i64::from(*step)
        );
        assert_eq!(
            rollout["canaryWeight"].as_i64().unwrap_or(0),
            i64::from(*weight)
        );
        let expected_phase = format!("PHASE_{}", snake_upper(phase));
        assert_eq!(rollout["phase"], expected_phase.as_str());
        assert_eq!(message["resourceVersion"], rollout["resourceVersion"]);
    }
    Ok(())
}

fn snake_upper(camel: &str) -> String {
    let mut out = String::new();
    for (index, character) in camel.chars().enumerate() {
        if character.is_uppercase() && index > 0 {
            out.push('_');
        }
        out.push(character.to_ascii_uppercase());
    }
    out
}
