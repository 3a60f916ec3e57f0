//! The local cluster behaves like a real one: pods are scheduled and become Ready, and
//! stopping it leaves no process behind.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::PostParams;
use rollgate_testsupport::{Cluster, TestNamespace, shared_cluster};
use serde_json::json;

#[tokio::test]
async fn a_deployments_pods_become_ready_within_60_seconds() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, "deploy").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace.name());
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.example/web:1"}]}
            }
        }
    }))?;
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;

    let started = Instant::now();
    loop {
        let ready = deployments
            .get("web")
            .await?
            .status
            .and_then(|s| s.ready_replicas);
        if ready == Some(3) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "3 pods should be Ready within 60s; ready replicas: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("3 pods Ready after {:?}", started.elapsed());
    Ok(())
}

/// Processes whose command line mentions `needle`, from /proc.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = entry.path().join("cmdline");
        if let Ok(bytes) = std::fs::read(cmdline) {
            let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
            if text.contains(needle) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[tokio::test]
async fn stopping_a_cluster_leaves_no_process_behind() -> anyhow::Result<()> {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await??;
    let dir = cluster.dir().to_string_lossy().into_owned();
    let running = processes_mentioning(&dir);
    assert!(
        running.len() >= 6,
        "up, etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok should run: {running:#?}"
    );
    println!("cluster started in {:?}", cluster.startup_time());
    tokio::task::spawn_blocking(move || cluster.stop()).await??;
    let left = processes_mentioning(&dir);
    assert!(left.is_empty(), "processes left after stop: {left:#?}");
    Ok(())
}
