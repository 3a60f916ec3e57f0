//! The sequential test's type-I error by simulation: healthy canaries (same error rate as the
//! baseline), looked at after every interval, must abort at most `alpha` of the time (plus a
//! small simulation margin). Fixed seeds: deterministic, and small enough for debug builds.

use rand::SeedableRng;
use rand_distr::{Binomial, Distribution};
use rand_pcg::Pcg64;
use rollgate_analysis::judge::{Counts, SequentialConfig, SequentialDecision, SequentialTest};

/// Fraction of `runs` simulated canaries that the test aborts within `intervals` intervals.
fn abort_rate(
    seed: u64,
    runs: usize,
    intervals: usize,
    alpha: f64,
    (canary_requests, baseline_requests): (u64, u64),
    (canary_rate, baseline_rate): (f64, f64),
) -> f64 {
    let mut rng = Pcg64::seed_from_u64(seed);
    let canary = Binomial::new(canary_requests, canary_rate).unwrap();
    let baseline = Binomial::new(baseline_requests, baseline_rate).unwrap();
    let config = SequentialConfig {
        alpha,
        ..SequentialConfig::default()
    };
    let mut aborts = 0;
    for _ in 0..runs {
        let mut test = SequentialTest::new(config).unwrap();
        for _ in 0..intervals {
            let result = test
                .observe(Counts {
                    canary_errors: canary.sample(&mut rng) as f64,
                    canary_requests: canary_requests as f64,
                    baseline_errors: baseline.sample(&mut rng) as f64,
                    baseline_requests: baseline_requests as f64,
                })
                .unwrap();
            if result.decision == SequentialDecision::CanaryWorse {
                aborts += 1;
                break;
            }
        }
    }
    let rate = aborts as f64 / runs as f64;
    println!("seed {seed}: {aborts} of {runs} aborted ({rate:.4}) at alpha {alpha}");
    rate
}

/// `alpha` plus three binomial standard errors of the estimate over `runs`.
fn bound(alpha: f64, runs: usize) -> f64 {
    alpha + 3.0 * (alpha * (1.0 - alpha) / runs as f64).sqrt()
}

#[test]
fn false_abort_rate_stays_below_alpha_with_equal_traffic() {
    let (runs, alpha) = (2000, 0.05);
    let rate = abort_rate(1, runs, 40, alpha, (200, 200), (0.05, 0.05));
    assert!(
        rate <= bound(alpha, runs),
        "false-abort rate {rate} > alpha {alpha}"
    );
}

#[test]
fn false_abort_rate_stays_below_alpha_with_a_small_canary() {
    // 10% of the traffic on the canary, low error rate.
    let (runs, alpha) = (2000, 0.05);
    let rate = abort_rate(2, runs, 40, alpha, (50, 450), (0.02, 0.02));
    assert!(
        rate <= bound(alpha, runs),
        "false-abort rate {rate} > alpha {alpha}"
    );
}

#[test]
fn false_abort_rate_at_one_percent() {
    let (runs, alpha) = (3000, 0.01);
    let rate = abort_rate(3, runs, 30, alpha, (300, 300), (0.03, 0.03));
    assert!(
        rate <= bound(alpha, runs),
        "false-abort rate {rate} > alpha {alpha}"
    );
}

#[test]
fn a_better_canary_is_never_worse() {
    let (runs, alpha) = (1000, 0.05);
    let rate = abort_rate(4, runs, 40, alpha, (200, 200), (0.03, 0.05));
    assert!(
        rate <= alpha / 10.0,
        "abort rate {rate} for a better canary"
    );
}

#[test]
fn a_doubled_error_rate_is_detected() {
    let (runs, alpha) = (500, 0.01);
    let rate = abort_rate(5, runs, 40, alpha, (500, 500), (0.02, 0.01));
    assert!(rate >= 0.95, "power {rate} against a 2x regression");
}
