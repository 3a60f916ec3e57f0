//! The real node (`up --real-node`): a real pod runs on it, a Service's ClusterIP reaches the pod
//! from the host through kube-proxy, the pod reaches the API server through the `kubernetes`
//! Service, and stopping the cluster leaves the host as it was.
//!
//! One scenario (run by `real_host`): a real node takes the machine's fixed kubelet and
//! kube-proxy ports, and the host comparison needs the host quiet of other real nodes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rollgate_testsupport::host_snapshot::HostSnapshot;
use rollgate_testsupport::real_node::{
    NODE_NAME, PROBE_IMAGE, PROBE_PORT, RealNodeCluster, RealNodeOptions, claim_host,
};

/// The probe pod and a Service in front of it, in the default namespace of the cluster.
fn probe_manifest() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "probe", "labels": {"app": "probe"}},
                "spec": {
                    "nodeName": NODE_NAME,
                    "containers": [{
                        "name": "probe",
                        "image": PROBE_IMAGE,
                        "imagePullPolicy": "Never",
                        "ports": [{"containerPort": PROBE_PORT}],
                        "readinessProbe": {
                            "httpGet": {"path": "/ready", "port": PROBE_PORT},
                            "periodSeconds": 1
                        }
                    }]
                }
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "probe"},
                "spec": {
                    "selector": {"app": "probe"},
                    "ports": [{"port": 80, "targetPort": PROBE_PORT}]
                }
            }
        ]
    })
}

/// The resident memory of each process named in `names` whose command line names `dir`.
fn rss_report(dir: &std::path::Path, names: &[&str]) -> Vec<String> {
    let dir = dir.to_string_lossy();
    let mut report = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let read =
            |file: &str| std::fs::read_to_string(entry.path().join(file)).unwrap_or_default();
        let cmdline = read("cmdline").replace('\0', " ");
        let Some(name) = names.iter().find(|name| {
            cmdline.contains(&format!(" {name} ")) || cmdline.contains(&format!("/{name} "))
        }) else {
            continue;
        };
        if !cmdline.contains(dir.as_ref()) && *name != "containerd-shim-runc-v2" {
            continue;
        }
        if let Some(rss) = read("status").lines().find(|l| l.starts_with("VmRSS:")) {
            report.push(format!(
                "{name} {}",
                rss.trim_start_matches("VmRSS:").trim()
            ));
        }
    }
    report
}

/// The scenario. Run by `real_host`.
pub fn a_real_pod_serves_its_cluster_ip_reaches_the_api_server_and_the_host_is_restored()
-> Result<()> {
    // The host is claimed first: another test's real node must be neither in the picture
    // before nor start before the picture after.
    let claim = claim_host()?;
    let before_dir = std::env::temp_dir().join("rollgate-cluster-none");
    let before = HostSnapshot::take(&before_dir)?;

    let began = Instant::now();
    let node = RealNodeCluster::start_claimed(claim, &RealNodeOptions::default())
        .context("start a cluster with a real node")?;
    let node_ready = began.elapsed();
    let dir = node.cluster().dir().to_path_buf();

    let manifest = dir.join("probe.json");
    std::fs::write(&manifest, serde_json::to_vec(&probe_manifest())?)?;
    let applied = Instant::now();
    node.cluster()
        .kubectl_ok(&["apply", "-f", manifest.to_str().context("path")?])?;
    node.cluster()
        .kubectl_ok(&[
            "wait",
            "--for=condition=Ready",
            "pod/probe",
            "--timeout=90s",
        ])
        .context("the probe pod (Ready only once the API server answered it)")?;
    let pod_ready = applied.elapsed();

    let cluster_ip = node.cluster().kubectl_ok(&[
        "get",
        "service",
        "probe",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ])?;
    assert!(
        cluster_ip.starts_with("198.18."),
        "ClusterIP {cluster_ip} outside the test range"
    );
    let url = format!("http://{cluster_ip}/");
    let deadline = Instant::now() + Duration::from_secs(30);
    let body: serde_json::Value = loop {
        let answer = ureq::get(&url)
            .config()
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .call();
        match answer {
            Ok(mut response) => break response.body_mut().read_json()?,
            Err(error) if Instant::now() > deadline => {
                bail!("{url} did not answer within 30 s: {error}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let cluster_ip_answering = applied.elapsed();
    // The pod used the `kubernetes` Service (its first ClusterIP, from the pod's environment)
    // and the API server authenticated its ServiceAccount token.
    assert_eq!(body["apiServer"], "198.18.128.1:443", "{body}");
    assert_eq!(
        body["user"], "system:serviceaccount:default:default",
        "{body}"
    );
    let pod_ip =
        node.cluster()
            .kubectl_ok(&["get", "pod", "probe", "-o", "jsonpath={.status.podIP}"])?;
    assert!(
        pod_ip.starts_with("198.19.0."),
        "pod IP {pod_ip} outside the node's pod range"
    );

    let during = HostSnapshot::take(&dir)?;
    let changes = before.diff(&during);
    // The snapshot sees the node: without these the comparison after would prove nothing.
    for expected in [
        "+ interface rg-br0",
        "+ interface veth",
        "+ sysctl kernel/panic=",
    ] {
        assert!(
            changes.iter().any(|c| c.starts_with(expected)),
            "{expected} not seen: {changes:#?}"
        );
    }
    for kind in ["process", "mount", "cgroup", "iptables"] {
        assert!(
            during.of_kind(kind).count() > before.of_kind(kind).count(),
            "the running node shows no new {kind}: {changes:#?}"
        );
    }
    let rss = rss_report(
        &dir,
        &[
            "kubelet",
            "kube-proxy",
            "containerd",
            "containerd-shim-runc-v2",
        ],
    );
    eprintln!(
        "real node: node Ready {node_ready:.1?} after start, pod Ready {pod_ready:.1?} and ClusterIP \
         answering {cluster_ip_answering:.1?} after apply; RSS {rss:?}"
    );

    let _claim = node.stop()?;
    let after = HostSnapshot::take(&dir)?;
    let left = before.diff(&after);
    assert!(
        left.is_empty(),
        "the host differs after the real node stopped:\n{}",
        left.join("\n")
    );
    Ok(())
}
