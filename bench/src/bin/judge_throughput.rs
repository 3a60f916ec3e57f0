//! Throughput of the Mann-Whitney judge on one core: U, p-value, Hodges-Lehmann estimate and
//! its 98% interval on 2×500 samples (250,000 pairwise differences per judgement), and the
//! full Kayenta-style `compare` (which adds NaN handling, the mean ratio and the reason).
//!
//! Samples are lognormal latencies (fixed seed); 64 distinct canary/baseline pairs are cycled
//! (half shifted by 10%, a quarter rounded to produce ties). Each operation runs 40 rounds of
//! 50 ms; the table gives the median and the best round, per wall-clock second and per second of
//! the thread's own CPU time (from `/proc/thread-self/schedstat`, Linux). On a shared machine
//! other processes preempt the benchmark and share its core's caches and execution units, so
//! the best round is the closest to an idle core and the median the typical figure under load.
//! Run with `cargo run --release -p rollgate-bench --bin judge_throughput`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_distr::{Distribution, LogNormal};
use rand_pcg::Pcg64;
use rollgate_analysis::judge::{MetricConfig, compare, mann_whitney};

const SAMPLES: usize = 500;
const PAIRS: usize = 64;
const ROUNDS: usize = 40;
const ROUND_TIME: Duration = Duration::from_millis(50);

/// Canary/baseline sample pairs.
fn pairs() -> Vec<(Vec<f64>, Vec<f64>)> {
    let mut rng = Pcg64::seed_from_u64(0x7A7E_2024);
    let base = LogNormal::new(100f64.ln(), 0.4).expect("valid lognormal");
    (0..PAIRS)
        .map(|i| {
            let shift = if i % 2 == 0 { 1.0 } else { 1.1 };
            let round = |v: f64| if i % 4 == 3 { v.round() } else { v };
            let canary = (0..SAMPLES)
                .map(|_| round(base.sample(&mut rng) * shift))
                .collect();
            let baseline = (0..SAMPLES).map(|_| round(base.sample(&mut rng))).collect();
            (canary, baseline)
        })
        .collect()
}

/// CPU time this thread has run, in nanoseconds (Linux), if available.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Judgements per second of one round: (per wall-clock second, per CPU second if known).
type Round = (f64, Option<f64>);

/// Rounds of `judge`, sorted by their CPU (else wall-clock) rate.
fn measure(data: &[(Vec<f64>, Vec<f64>)], judge: impl Fn(&[f64], &[f64]) -> f64) -> Vec<Round> {
    let mut rounds: Vec<Round> = (0..ROUNDS)
        .map(|_| {
            let cpu_start = thread_cpu_ns();
            let start = Instant::now();
            let mut count = 0u64;
            let mut sink = 0.0;
            while start.elapsed() < ROUND_TIME {
                for (canary, baseline) in data {
                    sink += judge(black_box(canary), black_box(baseline));
                    count += 1;
                }
            }
            let elapsed = start.elapsed().as_secs_f64();
            black_box(sink);
            let cpu = match (cpu_start, thread_cpu_ns()) {
                (Some(a), Some(b)) if b > a => Some(count as f64 / ((b - a) as f64 * 1e-9)),
                _ => None,
            };
            (count as f64 / elapsed, cpu)
        })
        .collect();
    rounds.sort_by(|a, b| a.1.unwrap_or(a.0).total_cmp(&b.1.unwrap_or(b.0)));
    rounds
}

fn main() {
    let data = pairs();
    let config = MetricConfig::new("latency");
    let mw = measure(&data, |c, b| {
        let r = mann_whitney(c, b, 0.98).expect("valid samples");
        r.p_value + r.hodges_lehmann + r.interval.lower + r.interval.upper
    });
    let full = measure(&data, |c, b| {
        let r = compare(&config, c, b).expect("valid config");
        r.p_value + r.reason.len() as f64
    });
    println!(
        "judge_throughput: 2x{SAMPLES} samples, {PAIRS} sample pairs cycled, one thread, {ROUNDS} rounds of {ROUND_TIME:?}"
    );
    println!(
        "{:<52} {:>7} {:>12} {:>12} {:>12}",
        "operation", "round", "per wall s", "per CPU s", "CPU us each"
    );
    for (name, rounds) in [
        ("mann_whitney: U + p-value + HL + 98% interval", mw),
        ("compare: classification, mean ratio, reason", full),
    ] {
        for (label, (wall, cpu)) in [("median", rounds[ROUNDS / 2]), ("best", rounds[ROUNDS - 1])] {
            let (cpu_rate, each) = match cpu {
                Some(c) => (format!("{c:.0}"), format!("{:.2}", 1e6 / c)),
                None => ("n/a".to_owned(), "n/a".to_owned()),
            };
            println!("{name:<52} {label:>7} {wall:>12.0} {cpu_rate:>12} {each:>12}");
        }
    }
    println!("target: >= 20000 judgements/s per core");
}
