//! Simulates the Mann-Whitney judge (`compare`, Kayenta's rules, direction Increase, 98%
//! interval) on autocorrelated latency read from Prometheus-like range queries, to show the
//! false-abort rate of healthy canaries with and without thinning the samples.
//!
//! Model: each revision's mean latency per 10-second block is `100 ms · e^{0.1·x_t}` with an
//! AR(1) `x_t = ρ·x_{t−1} + sqrt(1 − ρ²)·ε_t` of its own (ρ per block; the two revisions are
//! independent and identically distributed: a healthy canary). A query with a range `R`
//! evaluated at time `t` reads the mean of the blocks in `(t − R, t]`, like
//! `sum(rate(latency_sum[R])) / sum(rate(latency_count[R]))`.
//!
//! Configurations (each measurement is one window, consecutive measurements of a rollout read
//! consecutive windows):
//! - **unthinned**: `[1m]` range, 5m window, 10s step: 30 overlapping samples per revision
//!   (what the service judged before it thinned samples).
//! - **thinned**: the same query after the service's thinning to one sample per range: 5.
//! - **recommended**: `[30s]` range, 10m window, thinned to one per 30s: 20 per revision.
//!
//! Printed: the share of healthy measurements classified High, and of rollouts of 5
//! measurements that fail with `failureLimit: 0` (any High) and `failureLimit: 1`.
//!
//! Run: `cargo run --release -p rollgate-bench --bin latency_simulation`.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_pcg::Pcg64;
use rollgate_analysis::judge::{Classification, Direction, MetricConfig, compare};

const ROLLOUTS: usize = 4_000;
const MEASUREMENTS: usize = 5;
const BLOCK_SECONDS: usize = 10;
const SEED: u64 = 0x1A7E_2026;

/// A query configuration: range, window and whether samples are thinned (all in blocks).
struct Config {
    label: &'static str,
    range: usize,
    window: usize,
    thinned: bool,
}

const CONFIGS: [Config; 3] = [
    Config {
        label: "unthinned: [1m] range, 5m window, 10s step (30 samples)",
        range: 6,
        window: 30,
        thinned: false,
    },
    Config {
        label: "thinned: same query, one sample per 1m (5 samples)",
        range: 6,
        window: 30,
        thinned: true,
    },
    Config {
        label: "recommended: [30s] range, 10m window, thinned (20 samples)",
        range: 3,
        window: 60,
        thinned: true,
    },
];

/// An AR(1) series of `blocks` block latencies (ms), started from its stationary law.
fn latencies(rng: &mut Pcg64, rho: f64, blocks: usize) -> Vec<f64> {
    let mut x: f64 = StandardNormal.sample(rng);
    let innovation = (1.0 - rho * rho).sqrt();
    (0..blocks)
        .map(|_| {
            let e: f64 = StandardNormal.sample(rng);
            x = rho * x + innovation * e;
            100.0 * (0.1 * x).exp()
        })
        .collect()
}

/// The samples a window ending at block `end` (exclusive) yields.
fn samples(series: &[f64], config: &Config, end: usize) -> Vec<f64> {
    let stride = if config.thinned { config.range } else { 1 };
    (end - config.window..end)
        .rev()
        .step_by(stride)
        .map(|t| series[t + 1 - config.range..=t].iter().sum::<f64>() / config.range as f64)
        .collect()
}

fn main() {
    let mut judge = MetricConfig::new("latency");
    judge.direction = Direction::Increase;
    println!(
        "latency_simulation: {ROLLOUTS} healthy rollouts x {MEASUREMENTS} measurements per row, Mann-Whitney at 98%, direction Increase, seed {SEED:#x}"
    );
    println!(
        "| {:<60} | {:>13} | {:>14} | {:>18} | {:>18} |",
        "configuration", "rho per 10 s", "High per meas.", "rollout fails (0)", "rollout fails (1)"
    );
    println!(
        "|{:-<62}|{:->15}|{:->16}|{:->20}|{:->20}|",
        "", "", "", "", ""
    );
    let mut rng = Pcg64::seed_from_u64(SEED);
    for config in &CONFIGS {
        for rho in [0.0, 0.5, 0.9] {
            let (mut high, mut fail0, mut fail1) = (0usize, 0usize, 0usize);
            for _ in 0..ROLLOUTS {
                let blocks = config.range + config.window * MEASUREMENTS;
                let canary = latencies(&mut rng, rho, blocks);
                let baseline = latencies(&mut rng, rho, blocks);
                let highs = (1..=MEASUREMENTS)
                    .filter(|&k| {
                        let end = config.range + config.window * k;
                        let judged = compare(
                            &judge,
                            &samples(&canary, config, end),
                            &samples(&baseline, config, end),
                        )
                        .expect("valid config");
                        judged.classification == Classification::High
                    })
                    .count();
                high += highs;
                fail0 += usize::from(highs > 0);
                fail1 += usize::from(highs > 1);
            }
            let pct = |n: usize, of: usize| format!("{:.2}%", 100.0 * n as f64 / of as f64);
            println!(
                "| {:<60} | {:>13} | {:>14} | {:>18} | {:>18} |",
                config.label,
                format!("{rho} ({}s)", BLOCK_SECONDS),
                pct(high, ROLLOUTS * MEASUREMENTS),
                pct(fail0, ROLLOUTS),
                pct(fail1, ROLLOUTS)
            );
        }
    }
}
