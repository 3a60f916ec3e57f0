//! Simulates 10,000 synthetic canaries per row to compare the sequential error-rate test
//! (`rollgate_analysis::judge::SequentialTest`, a mixture SPRT) with fixed-horizon tests.
//!
//! Scenario: each interval the canary and the baseline each serve 500 requests; every request
//! fails independently (binomial counts) with the baseline's error rate of 1%, or the canary's
//! (1% when healthy, 2% for a 2× regression). Significance `alpha = 0.01`, one-sided.
//!
//! Tests:
//! - **sequential**: the mSPRT, looked at after every interval, for at most 60 intervals
//!   (100 for healthy canaries).
//! - **fixed z-test at H**: the one-sided pooled two-proportion z-test
//!   `z = (p̂_c − p̂_b) / sqrt(p̄(1−p̄)(1/n_c + 1/n_b))`, abort when `z > Φ⁻¹(1 − alpha)`,
//!   evaluated once on all the requests of the first `H` intervals. `H` is the usual sample
//!   size `n = ((z_α·sqrt(2p̄q̄) + z_β·sqrt(p₁q₁ + p₂q₂)) / (p₂ − p₁))²` per arm, designed for
//!   90% power against the 2× regression itself or against a minimum effect of interest of
//!   1.5×, and, for the headline comparison, for the 2× regression at the power the sequential
//!   test actually delivered (its detection rate in the simulation; when it missed none of the
//!   10,000, the rule-of-three bound `1 − 3/10,000`). Comparing expected sample sizes at equal
//!   error rates (the same `alpha`, the same power) is how sequential and fixed designs are
//!   compared since Wald; a fixed test sized for less power than the sequential test delivers
//!   would miss regressions the sequential test catches.
//! - **oracle SPRT** (reference only): Wald's one-sided SPRT of ratio 2 against 1 with the same
//!   `1/alpha` threshold; it knows the true effect, which no real test does.
//! - **z-test peeked every interval** (contrast only): the same z-test on the running totals
//!   after every interval, aborting at the first rejection, which is what naively repeating a
//!   fixed-horizon judgement does.
//!
//! Run: `cargo run --release -p rollgate-bench --bin judge_simulation [-- --prior-scale TAU]`.

use rand::SeedableRng;
use rand_distr::{Binomial, Distribution};
use rand_pcg::Pcg64;
use rollgate_analysis::judge::{Counts, Decision, SequentialConfig, SequentialTest};
use statrs::distribution::{ContinuousCDF, Normal};

const BASE_RATE: f64 = 0.01;
const REQUESTS: u64 = 500;
const ALPHA: f64 = 0.01;
const RUNS: usize = 10_000;
const CAP_REGRESSION: usize = 60;
const CAP_HEALTHY: usize = 100;
const SEED: u64 = 0x5EED_CA7A_2024;

/// One interval's binomial error counts (canary, baseline).
fn draw(rng: &mut Pcg64, canary_rate: f64) -> (u64, u64) {
    let canary = Binomial::new(REQUESTS, canary_rate).expect("valid rate");
    let baseline = Binomial::new(REQUESTS, BASE_RATE).expect("valid rate");
    (canary.sample(rng), baseline.sample(rng))
}

/// One-sided pooled two-proportion z-test on totals with equal arms of `n` requests.
fn z_rejects(canary_errors: u64, baseline_errors: u64, n: f64, critical: f64) -> bool {
    let pooled = (canary_errors + baseline_errors) as f64 / (2.0 * n);
    if pooled <= 0.0 || pooled >= 1.0 {
        return false;
    }
    let z = (canary_errors as f64 - baseline_errors as f64)
        / n
        / (pooled * (1.0 - pooled) * 2.0 / n).sqrt();
    z > critical
}

/// Intervals for `power` against `ratio`× the base rate.
fn horizon(ratio: f64, power: f64, normal: &Normal) -> usize {
    let (p1, p2) = (BASE_RATE, BASE_RATE * ratio);
    let mean = (p1 + p2) / 2.0;
    let (za, zb) = (normal.inverse_cdf(1.0 - ALPHA), normal.inverse_cdf(power));
    let root =
        za * (2.0 * mean * (1.0 - mean)).sqrt() + zb * (p1 * (1.0 - p1) + p2 * (1.0 - p2)).sqrt();
    let per_arm = (root / (p2 - p1)).powi(2);
    (per_arm / REQUESTS as f64).ceil() as usize
}

/// Outcome of one simulated canary under each test.
struct Run {
    /// Interval (1-based) at which the sequential test aborted.
    sequential: Option<usize>,
    /// Whether each fixed-horizon test aborted.
    fixed: Vec<bool>,
    /// Interval at which the peeked z-test aborted.
    peeked: Option<usize>,
    /// Interval at which the oracle SPRT (which knows the ratio is 2) aborted.
    oracle: Option<usize>,
}

fn simulate(
    rng: &mut Pcg64,
    canary_rate: f64,
    cap: usize,
    horizons: &[usize],
    config: SequentialConfig,
    critical: f64,
) -> Run {
    let mut test = SequentialTest::new(config).expect("valid config");
    let length = cap.max(horizons.iter().copied().max().unwrap_or(0));
    let (mut canary_total, mut baseline_total) = (0u64, 0u64);
    let mut run = Run {
        sequential: None,
        fixed: vec![false; horizons.len()],
        peeked: None,
        oracle: None,
    };
    let mut oracle_log_lr = 0.0;
    for interval in 1..=length {
        let (c, b) = draw(rng, canary_rate);
        canary_total += c;
        baseline_total += b;
        let n = (interval as u64 * REQUESTS) as f64;
        if interval <= cap {
            if run.sequential.is_none() {
                let result = test
                    .observe(Counts {
                        canary_errors: c as f64,
                        canary_requests: REQUESTS as f64,
                        baseline_errors: b as f64,
                        baseline_requests: REQUESTS as f64,
                    })
                    .expect("valid counts");
                if result.decision == Decision::CanaryWorse {
                    run.sequential = Some(interval);
                }
            }
            oracle_log_lr += c as f64 * 2f64.ln() - (c + b) as f64 * 1.5f64.ln();
            if run.oracle.is_none() && oracle_log_lr >= (1.0 / ALPHA).ln() {
                run.oracle = Some(interval);
            }
            if run.peeked.is_none() && z_rejects(canary_total, baseline_total, n, critical) {
                run.peeked = Some(interval);
            }
        }
        for (k, &h) in horizons.iter().enumerate() {
            if interval == h {
                run.fixed[k] = z_rejects(canary_total, baseline_total, n, critical);
            }
        }
    }
    run
}

fn rate(count: usize) -> String {
    format!("{:>6.2}%", 100.0 * count as f64 / RUNS as f64)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut config = SequentialConfig {
        alpha: ALPHA,
        ..SequentialConfig::default()
    };
    while let Some(arg) = args.next() {
        if arg == "--prior-scale" {
            config.prior_scale = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--prior-scale TAU");
        }
    }
    let normal = Normal::standard();
    let critical = normal.inverse_cdf(1.0 - ALPHA);
    // The sequential test's power against the 2× regression, to size a matching fixed test.
    let mut rng = Pcg64::seed_from_u64(SEED + 1);
    let sequential_detected = (0..RUNS)
        .filter(|_| {
            simulate(
                &mut rng,
                2.0 * BASE_RATE,
                CAP_REGRESSION,
                &[],
                config,
                critical,
            )
            .sequential
            .is_some()
        })
        .count();
    let matched_power = (sequential_detected as f64 / RUNS as f64).min(1.0 - 3.0 / RUNS as f64);
    let horizons = [
        horizon(2.0, 0.9, &normal),
        horizon(1.5, 0.9, &normal),
        horizon(2.0, matched_power, &normal),
    ];
    println!("judge_simulation: {RUNS} synthetic canaries per scenario, seed {SEED:#x}");
    println!(
        "scenario: {REQUESTS} canary + {REQUESTS} baseline requests per interval, baseline error rate {:.1}%, binomial errors, alpha = {ALPHA} one-sided, mSPRT prior scale tau = {:.4} (ln ratio)",
        BASE_RATE * 100.0,
        config.prior_scale
    );
    println!(
        "fixed horizons (pooled z-test): H = {} intervals for 90% power against a 2x regression, H = {} for 90% power against a 1.5x minimum effect, H = {} for the sequential test's power ({:.2}%) against 2x\n",
        horizons[0],
        horizons[1],
        horizons[2],
        matched_power * 100.0
    );

    let mut rng = Pcg64::seed_from_u64(SEED);
    let healthy: Vec<Run> = (0..RUNS)
        .map(|_| {
            simulate(
                &mut rng,
                BASE_RATE,
                CAP_HEALTHY,
                &horizons,
                config,
                critical,
            )
        })
        .collect();
    let mut rng = Pcg64::seed_from_u64(SEED + 1);
    let regressed: Vec<Run> = (0..RUNS)
        .map(|_| {
            simulate(
                &mut rng,
                2.0 * BASE_RATE,
                CAP_REGRESSION,
                &horizons,
                config,
                critical,
            )
        })
        .collect();

    println!(
        "(a) healthy canaries (canary error rate = baseline's 1%): false-abort rate, target <= 1%"
    );
    println!("{:<58} {:>12}", "test", "false aborts");
    let seq_false = healthy.iter().filter(|r| r.sequential.is_some()).count();
    println!(
        "{:<58} {:>12}",
        format!("sequential mSPRT, looked at after each of {CAP_HEALTHY} intervals"),
        rate(seq_false)
    );
    for (k, &h) in horizons.iter().enumerate() {
        let aborts = healthy.iter().filter(|r| r.fixed[k]).count();
        println!(
            "{:<58} {:>12}",
            format!("fixed z-test, once at H = {h}"),
            rate(aborts)
        );
    }
    let peek_false = healthy.iter().filter(|r| r.peeked.is_some()).count();
    println!(
        "{:<58} {:>12}",
        format!("(contrast) z-test peeked after each of {CAP_HEALTHY} intervals"),
        rate(peek_false)
    );

    println!("\n(b) 2x regression (canary 2% vs baseline 1%): intervals until the abort decision");
    println!(
        "{:<44} {:>9} {:>11} {:>8} {:>8} {:>12}",
        "test", "detected", "mean ivals", "median", "p90", "seq / fixed"
    );
    let mut stops: Vec<usize> = regressed
        .iter()
        .map(|r| r.sequential.unwrap_or(CAP_REGRESSION))
        .collect();
    stops.sort_unstable();
    let detected = regressed.iter().filter(|r| r.sequential.is_some()).count();
    let mean = stops.iter().sum::<usize>() as f64 / RUNS as f64;
    println!(
        "{:<44} {:>9} {:>11.2} {:>8} {:>8} {:>12}",
        format!("sequential mSPRT (cap {CAP_REGRESSION}, misses count as {CAP_REGRESSION})"),
        rate(detected),
        mean,
        stops[RUNS / 2],
        stops[RUNS * 9 / 10],
        "-"
    );
    let mut oracle: Vec<usize> = regressed
        .iter()
        .map(|r| r.oracle.unwrap_or(CAP_REGRESSION))
        .collect();
    oracle.sort_unstable();
    println!(
        "{:<44} {:>9} {:>11.2} {:>8} {:>8} {:>12}",
        "(reference) oracle SPRT that knows ratio = 2",
        rate(regressed.iter().filter(|r| r.oracle.is_some()).count()),
        oracle.iter().sum::<usize>() as f64 / RUNS as f64,
        oracle[RUNS / 2],
        oracle[RUNS * 9 / 10],
        "-"
    );
    for (k, &h) in horizons.iter().enumerate() {
        let power = regressed.iter().filter(|r| r.fixed[k]).count();
        println!(
            "{:<44} {:>9} {:>11.2} {:>8} {:>8} {:>12.3}",
            format!(
                "fixed z-test at H = {h} ({} design)",
                ["2x, 90%", "1.5x, 90%", "2x, matched power"][k]
            ),
            rate(power),
            h as f64,
            h,
            h,
            mean / h as f64
        );
    }
    println!(
        "\nsequential vs fixed at equal error rates (alpha {ALPHA}, power {:.2}%): {:.2}x the samples (target <= 0.5: {})",
        matched_power * 100.0,
        mean / horizons[2] as f64,
        if mean / horizons[2] as f64 <= 0.5 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "also: {:.2}x the 90%-power horizon designed for 2x (which detects fewer), {:.2}x the 90%-power horizon designed for a 1.5x minimum effect",
        mean / horizons[0] as f64,
        mean / horizons[1] as f64
    );
}
