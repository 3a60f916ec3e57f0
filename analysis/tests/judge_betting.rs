//! Checks the betting judge against vectors computed independently with numpy
//! (`tests/fixtures/judge/betting_vectors.py`, whose output `betting_vectors.json` is
//! committed; this test does not run Python), and its false-abort rate on overdispersed
//! counts by a small fixed-seed simulation.

use rand::SeedableRng;
use rand_distr::{Beta, Binomial, Distribution};
use rand_pcg::Pcg64;
use rollgate_analysis::judge::{BettingConfig, BettingTest, Counts, SequentialDecision};
use serde_json::Value;

const VECTORS: &str = include_str!("fixtures/judge/betting_vectors.json");

fn float(value: &Value) -> f64 {
    value.as_f64().expect("number")
}

#[test]
fn matches_the_numpy_reference() {
    let vectors: Value = serde_json::from_str(VECTORS).unwrap();
    let cases = vectors["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let alpha = float(&case["alpha"]);
        let mut test = BettingTest::new(BettingConfig { alpha }).unwrap();
        let rows = case["counts"].as_array().unwrap();
        for (t, row) in rows.iter().enumerate() {
            let row: Vec<f64> = row.as_array().unwrap().iter().map(float).collect();
            let result = test
                .observe(Counts {
                    canary_errors: row[0],
                    canary_requests: row[1],
                    baseline_errors: row[2],
                    baseline_requests: row[3],
                })
                .unwrap();
            let log_e = float(&case["log_e_value"][t]);
            let p = float(&case["p_value"][t]);
            assert!(
                (result.log_e_value - log_e).abs() <= 1e-10 * log_e.abs().max(1.0),
                "{name}, interval {t}: log e-value {} vs numpy {log_e}",
                result.log_e_value
            );
            assert!(
                (result.p_value - p).abs() <= 1e-10 * p.max(1e-300),
                "{name}, interval {t}: p-value {} vs numpy {p}",
                result.p_value
            );
            let worse = case["canary_worse"][t].as_bool().unwrap();
            assert_eq!(
                result.decision == SequentialDecision::CanaryWorse,
                worse,
                "{name}, interval {t}"
            );
        }
    }
}

/// Fraction of `runs` healthy canaries aborted within `looks`, each revision's error rate
/// drawn per interval from a Beta with count variance `phi`× the binomial (500 + 500).
fn overdispersed_abort_rate(seed: u64, runs: usize, looks: usize, phi: f64, alpha: f64) -> f64 {
    let n = 500u64;
    let size = 1.0 / ((phi - 1.0) / (n as f64 - 1.0)) - 1.0;
    let beta = Beta::new(0.02 * size, 0.98 * size).unwrap();
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut aborts = 0;
    for _ in 0..runs {
        let mut test = BettingTest::new(BettingConfig { alpha }).unwrap();
        for _ in 0..looks {
            let mut draw = || {
                Binomial::new(n, beta.sample(&mut rng))
                    .unwrap()
                    .sample(&mut rng) as f64
            };
            let (c, b) = (draw(), draw());
            let counts = Counts {
                canary_errors: c,
                canary_requests: n as f64,
                baseline_errors: b,
                baseline_requests: n as f64,
            };
            if test.observe(counts).unwrap().decision == SequentialDecision::CanaryWorse {
                aborts += 1;
                break;
            }
        }
    }
    aborts as f64 / runs as f64
}

#[test]
fn false_abort_rate_stays_below_alpha_with_sixfold_overdispersion() {
    // The mixture SPRT aborts about 40% of such canaries at alpha 0.05 (judge_simulation).
    let (runs, alpha) = (1500, 0.05);
    let rate = overdispersed_abort_rate(7, runs, 40, 6.0, alpha);
    let bound = alpha + 3.0 * (alpha * (1.0 - alpha) / runs as f64).sqrt();
    assert!(rate <= bound, "false-abort rate {rate} > alpha {alpha}");
}
