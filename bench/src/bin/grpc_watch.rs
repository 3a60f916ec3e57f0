//! RolloutService benchmark: 2,000 Rollouts (default) on a local cluster of its own, no
//! controller (objects only). The gRPC server runs as a process of its own (this binary,
//! re-executed as `grpc_watch serve <kubeconfig>`: the controller's `grpc::serve_on` and nothing
//! else), so its RSS is the server's alone. Measures:
//!
//! - ListRollouts over every Rollout: p50/p99 of sequential calls;
//! - the time to open 1,000 (default) concurrent WatchRollouts streams (resumed from the newest
//!   version, so each starts with SYNCED), and one full initial sync (every Rollout, then SYNCED);
//! - patch-to-delivery latency: status patches of random Rollouts, sent one at a time at a fixed
//!   rate; for each patch and each stream, from just before the patch is sent to the event's
//!   arrival on the stream (p50/p99/max over all streams);
//! - the server's RSS (VmRSS) after loading the Rollouts, with the streams open, after the
//!   patches, and its peak (VmHWM), and its CPU seconds.
//!
//! Everything runs on one machine: client, server and control plane share its cores.
//!
//! Usage: `cargo run --release -p rollgate-bench --bin grpc_watch [-- <rollouts> <streams> <patches>]`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, stream};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rollgate_controller::grpc::{GrpcSettings, server::serve_on};
use rollgate_crds::Rollout;
use rollgate_proto::v1::rollout_event::Type;
use rollgate_proto::v1::rollout_service_client::RolloutServiceClient;
use rollgate_proto::v1::{ListRolloutsRequest, WatchRolloutsRequest};
use rollgate_testsupport::identity::{grant, rollgate_rule, service_account, wait_until_allowed};
use rollgate_testsupport::{Cluster, TestNamespace, manifests};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::Request;
use tonic::transport::Channel;

const DIGEST: &str = "1111111111111111111111111111111111111111111111111111111111111111";
/// Streams per HTTP/2 connection (below the server's default limit of concurrent streams).
const STREAMS_PER_CONNECTION: usize = 100;
/// The interval between two status patches.
const PATCH_INTERVAL: Duration = Duration::from_millis(25);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        return serve(Path::new(args.get(2).context("serve <kubeconfig>")?)).await;
    }
    let number = |index: usize, default: usize| {
        args.get(index)
            .and_then(|arg| arg.parse().ok())
            .unwrap_or(default)
    };
    let (rollouts_n, streams_n, patches_n) = (number(1, 2000), number(2, 1000), number(3, 200));
    run(rollouts_n, streams_n, patches_n).await
}

/// The server role: serve on a free loopback port, print it, run until killed.
async fn serve(kubeconfig: &Path) -> anyhow::Result<()> {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    serve_on(
        listener,
        GrpcSettings::default(),
        client,
        std::future::pending(),
    )
    .await?;
    Ok(())
}

async fn run(rollouts_n: usize, streams_n: usize, patches_n: usize) -> anyhow::Result<()> {
    let (cluster, admin) = Cluster::start_with_crds().await?;
    let namespace = TestNamespace::create(&cluster, &admin, "grpc-bench").await?;
    let ns = namespace.name().to_owned();
    let rollouts: Api<Rollout> = Api::namespaced(admin.clone(), &ns);
    let started = Instant::now();
    let strategy = json!({"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}});
    let created: Vec<anyhow::Result<Rollout>> = stream::iter(0..rollouts_n)
        .map(|index| {
            let (rollouts, strategy) = (rollouts.clone(), strategy.clone());
            async move {
                let rollout = manifests::rollout(&format!("app-{index}"), 1, DIGEST, strategy)?;
                Ok(rollouts.create(&PostParams::default(), &rollout).await?)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    created.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    println!("created {rollouts_n} Rollouts in {:.1?}", started.elapsed());

    let account = service_account(&admin, &ns, "bench").await?;
    let rule = rollgate_rule(&["rollouts"], &["get", "list", "watch"]);
    grant(&admin, &account, "bench", vec![rule]).await?;
    wait_until_allowed(&admin, &account, "watch", "rollouts").await?;

    let mut server = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg(cluster.kubeconfig())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = server.id().context("server pid")?;
    let mut lines = BufReader::new(server.stdout.take().context("stdout")?).lines();
    let address = loop {
        match lines.next_line().await? {
            Some(line) if line.starts_with("listening ") => break line[10..].to_owned(),
            Some(_) => continue,
            None => bail!("the server exited before listening"),
        }
    };
    let endpoint = format!("http://{address}");
    let token = account.token.clone();
    let mut client =
        RolloutServiceClient::new(Channel::from_shared(endpoint.clone())?.connect().await?)
            .max_decoding_message_size(64 << 20);

    // ListRollouts: the first call waits for the server's first list of Rollouts.
    let list = || ListRolloutsRequest {
        namespace: ns.clone(),
        ..Default::default()
    };
    let loaded = Instant::now();
    let first = client
        .list_rollouts(authed(&token, list()))
        .await?
        .into_inner();
    anyhow::ensure!(
        first.rollouts.len() == rollouts_n,
        "listed {}",
        first.rollouts.len()
    );
    println!(
        "server loaded {rollouts_n} Rollouts {:.1?} after it listened",
        loaded.elapsed()
    );
    let rss_loaded = memory(pid).0;
    let mut list_latencies = Vec::new();
    for _ in 0..100 {
        let call = Instant::now();
        let listed = client
            .list_rollouts(authed(&token, list()))
            .await?
            .into_inner();
        list_latencies.push(call.elapsed());
        anyhow::ensure!(listed.rollouts.len() == rollouts_n);
    }

    // One full initial sync, and the newest version to resume the others from.
    let watch = |version: String| WatchRolloutsRequest {
        namespace: ns.clone(),
        label_selector: String::new(),
        resource_version: version,
    };
    let synced = Instant::now();
    let mut full = client
        .watch_rollouts(authed(&token, watch(String::new())))
        .await?
        .into_inner();
    let mut initial = 0;
    let newest = loop {
        let event = full.message().await?.context("stream ended")?;
        if event.r#type() == Type::Synced {
            break event.resource_version;
        }
        initial += 1;
    };
    let full_sync = synced.elapsed();
    drop(full);
    anyhow::ensure!(initial == rollouts_n, "initial sync sent {initial}");

    // Open the streams, over connections of STREAMS_PER_CONNECTION streams each.
    let opened = Instant::now();
    let mut channels = Vec::new();
    for _ in 0..streams_n.div_ceil(STREAMS_PER_CONNECTION) {
        channels.push(Channel::from_shared(endpoint.clone())?.connect().await?);
    }
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(streams_n);
    for index in 0..streams_n {
        let mut client =
            RolloutServiceClient::new(channels[index / STREAMS_PER_CONNECTION].clone());
        let request = authed(&token, watch(newest.clone()));
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = client.watch_rollouts(request).await?.into_inner();
            let mut arrivals: Vec<(String, Instant)> = Vec::with_capacity(patches_n);
            while arrivals.len() < patches_n {
                let next = tokio::time::timeout(Duration::from_secs(120), stream.message()).await;
                let event = match next {
                    Ok(Ok(Some(event))) => event,
                    _ => break,
                };
                if event.r#type() == Type::Synced {
                    let _ = ready.send(()).await;
                } else {
                    arrivals.push((event.resource_version, Instant::now()));
                }
            }
            anyhow::Ok(arrivals)
        }));
    }
    for _ in 0..streams_n {
        ready_rx.recv().await.context("a stream failed to open")?;
    }
    let open_time = opened.elapsed();
    let rss_streams = memory(pid).0;

    // Patch statuses at a fixed rate; remember when each version's patch was sent.
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(PATCH_INTERVAL);
    for patch in 0..patches_n {
        ticker.tick().await;
        let name = format!("app-{}", (patch * 7919) % rollouts_n);
        let status =
            json!({"status": {"canaryWeight": patch % 100, "message": format!("patch {patch}")}});
        let at = Instant::now();
        let written = rollouts
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
            .await?;
        sent.insert(written.metadata.resource_version.unwrap_or_default(), at);
    }
    let mut latencies = Vec::new();
    let mut incomplete = 0;
    for task in tasks {
        let arrivals = task.await??;
        if arrivals.len() < patches_n {
            incomplete += 1;
        }
        for (version, arrived) in arrivals {
            if let Some(at) = sent.get(&version) {
                latencies.push(arrived.duration_since(*at));
            }
        }
    }
    let (rss_after, peak, cpu) = memory(pid);
    server.kill().await?;

    list_latencies.sort();
    latencies.sort();
    println!();
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| Rollouts | {rollouts_n} |");
    println!(
        "| ListRollouts (all {rollouts_n}) p50 / p99 | {} / {} |",
        ms(pct(&list_latencies, 0.5)),
        ms(pct(&list_latencies, 0.99))
    );
    println!(
        "| one stream's initial sync ({rollouts_n} ADDED + SYNCED) | {} |",
        ms(full_sync)
    );
    println!(
        "| open {streams_n} WatchRollouts streams | {} |",
        ms(open_time)
    );
    println!("| status patches (one per {PATCH_INTERVAL:?}) | {patches_n} |");
    println!(
        "| deliveries measured (patches x streams) | {} (streams short of all: {incomplete}) |",
        latencies.len()
    );
    println!(
        "| patch-to-delivery p50 / p99 / max | {} / {} / {} |",
        ms(pct(&latencies, 0.5)),
        ms(pct(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "| server RSS: loaded / {streams_n} streams / after patches | {rss_loaded:.0} / {rss_streams:.0} / {rss_after:.0} MiB |"
    );
    println!("| server peak RSS (VmHWM), CPU | {peak:.0} MiB, {cpu:.1} s |");
    Ok(())
}

/// `message` with `authorization: Bearer <token>`.
fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value = format!("Bearer {token}").parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    request
}

/// VmRSS and VmHWM (MiB) and CPU seconds of a process, from /proc.
fn memory(pid: u32) -> (f64, f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
            / 1024.0
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        field("VmRSS:"),
        field("VmHWM:"),
        (ticks(11) + ticks(12)) / 100.0,
    )
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}
