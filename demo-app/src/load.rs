//! `load`: sends `--rps` requests per second, round-robin over the `--target` URLs, for
//! `--duration` (bounded: at most one hour), then prints a summary and exits. Each request has a
//! short timeout, so a slow or dead target never piles up requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The longest run `load` accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Flags of `load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// URL to send GET requests to; repeat for several targets (requests alternate).
    #[arg(long = "target", required = true)]
    pub targets: Vec<String>,
    /// Requests per second, over all targets.
    #[arg(long, default_value_t = 20.0)]
    pub rps: f64,
    /// How long to send load, for example `30s` or `5m` (at most 1h).
    #[arg(long, default_value = "1m", value_parser = crate::parse_duration)]
    pub duration: Duration,
    /// Timeout of one request, for example `2s`.
    #[arg(long, default_value = "2s", value_parser = crate::parse_duration)]
    pub timeout: Duration,
    /// Open a new connection for every request instead of reusing one. A Kubernetes Service
    /// (kube-proxy) picks a pod per connection, so only fresh connections spread requests over
    /// the pods in proportion to their number.
    #[arg(long)]
    pub new_connection_per_request: bool,
}

/// What a load run did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Requests answered with a 2xx status.
    pub ok: AtomicU64,
    /// Requests answered with another status.
    pub failed: AtomicU64,
    /// Requests that got no answer.
    pub unanswered: AtomicU64,
}

/// Sends load as the flags say.
pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rps > 0.0 && args.rps <= 10_000.0,
        "--rps must be above 0 and at most 10000"
    );
    anyhow::ensure!(
        args.duration <= MAX_DURATION,
        "--duration must be at most {MAX_DURATION:?}"
    );
    let mut client = reqwest::Client::builder().timeout(args.timeout);
    if args.new_connection_per_request {
        client = client.pool_max_idle_per_host(0);
    }
    let client = client.build()?;
    let summary = Arc::new(Summary::default());
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rps));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = tokio::time::Instant::now() + args.duration;
    let mut requests = tokio::task::JoinSet::new();
    let mut sent: usize = 0;
    println!(
        "sending {} requests/s to {} target(s) for {:?}",
        args.rps,
        args.targets.len(),
        args.duration
    );
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = tokio::time::sleep_until(deadline) => break,
        }
        let url = args.targets[sent % args.targets.len()].clone();
        sent += 1;
        let client = client.clone();
        let summary = summary.clone();
        requests.spawn(async move {
            let counter = match client.get(&url).send().await {
                Ok(response) if response.status().is_success() => &summary.ok,
                Ok(_) => &summary.failed,
                Err(_) => &summary.unanswered,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        });
        while requests.try_join_next().is_some() {}
    }
    while requests.join_next().await.is_some() {}
    println!(
        "sent {sent} requests: {} ok, {} failed, {} unanswered",
        summary.ok.load(Ordering::Relaxed),
        summary.failed.load(Ordering::Relaxed),
        summary.unanswered.load(Ordering::Relaxed)
    );
    Ok(())
}
