//! Simulates 10,000 synthetic canaries per scenario to measure the sequential error-rate
//! judges on traffic that is not binomial, against a fixed-horizon test.
//!
//! Every interval the canary and the baseline each serve 500 requests (100 + 900 in the
//! unequal-traffic row); `alpha = 0.01`; the judges look after every interval, 100 looks.
//!
//! Traffic models (per interval, per revision):
//! - **binomial**: every request fails independently with the revision's rate (1%, or 2% for
//!   a 2× regression).
//! - **shared drift**: the rate of both revisions moves together, `rate·e^{x_t}` with an AR(1)
//!   `x_t = 0.9·x_{t−1} + N(0, 0.2²)` (stationary sd 0.46: the rate wanders between about
//!   0.4× and 2.5× of its mean), binomial given the rate.
//! - **overdispersed φ×**: each revision's rate is drawn afresh every interval, independently
//!   per revision, from a Beta distribution with the revision's mean and intraclass
//!   correlation `ρ = (φ − 1)/(n − 1)`, so that the error count's variance is `φ` times the
//!   binomial variance (`φ` = 1.3, 2.3, 6).
//!
//! Judges: the betting test (`BettingTest`, the one recommended for real traffic), the mixture
//! SPRT (`SequentialTest`, valid for binomial/Poisson counts), and a **fixed-horizon** one-sided
//! two-proportion z-test whose variance is inflated by the true `φ` (so that it is valid under
//! overdispersion: an oracle advantage) and whose horizon `H` is sized analytically for
//! `alpha = 0.01` and 90% power against the 2× regression:
//! `n = φ·((z_α·sqrt(2p̄q̄) + z_β·sqrt(p₁q₁ + p₂q₂)) / (p₂ − p₁))²` requests per revision. `H`
//! does not depend on the number of simulated runs; neither does any other printed figure
//! except through simulation noise.
//!
//! Run: `cargo run --release -p rollgate-bench --bin judge_simulation` (about a minute).

use rand::SeedableRng;
use rand_distr::{Beta, Binomial, Distribution, Normal as Gaussian};
use rand_pcg::Pcg64;
use rollgate_analysis::judge::{Counts, ErrorRateTest, SequentialDecision, SequentialMethod};
use statrs::distribution::{ContinuousCDF, Normal};

const BASE_RATE: f64 = 0.01;
const REQUESTS: u64 = 500;
const ALPHA: f64 = 0.01;
const RUNS: usize = 10_000;
const LOOKS: usize = 100;
const POWER: f64 = 0.9;
const SEED: u64 = 0x5EED_CA7A_2026;

/// How each interval's error rates are drawn.
#[derive(Clone, Copy)]
enum Traffic {
    /// Fixed rates, binomial counts.
    Binomial,
    /// Both revisions' rates move together (AR(1) on the log rate).
    SharedDrift,
    /// Each revision's rate is Beta-distributed per interval, count variance `φ`× binomial.
    Overdispersed(f64),
}

/// One simulated scenario.
#[derive(Clone, Copy)]
struct Scenario {
    label: &'static str,
    traffic: Traffic,
    canary_requests: u64,
    baseline_requests: u64,
}

impl Scenario {
    const fn new(label: &'static str, traffic: Traffic) -> Self {
        Self {
            label,
            traffic,
            canary_requests: REQUESTS,
            baseline_requests: REQUESTS,
        }
    }

    fn dispersion(&self) -> f64 {
        match self.traffic {
            Traffic::Overdispersed(phi) => phi,
            Traffic::Binomial | Traffic::SharedDrift => 1.0,
        }
    }
}

const SCENARIOS: [Scenario; 6] = [
    Scenario::new("binomial", Traffic::Binomial),
    Scenario::new("shared drift", Traffic::SharedDrift),
    Scenario::new("overdispersed 1.3x", Traffic::Overdispersed(1.3)),
    Scenario::new("overdispersed 2.3x", Traffic::Overdispersed(2.3)),
    Scenario::new("overdispersed 6x", Traffic::Overdispersed(6.0)),
    Scenario {
        label: "overdispersed 2.3x, 100+900 (not covered)",
        traffic: Traffic::Overdispersed(2.3),
        canary_requests: 100,
        baseline_requests: 900,
    },
];

/// Draws one revision's rate for an interval around `mean`.
fn rate(rng: &mut Pcg64, traffic: Traffic, mean: f64, drift: f64, requests: u64) -> f64 {
    match traffic {
        Traffic::Binomial => mean,
        Traffic::SharedDrift => (mean * drift.exp()).min(1.0),
        Traffic::Overdispersed(phi) => {
            let rho = (phi - 1.0) / (requests as f64 - 1.0);
            let size = 1.0 / rho - 1.0;
            Beta::new(mean * size, (1.0 - mean) * size)
                .expect("valid beta")
                .sample(rng)
        }
    }
}

fn errors(rng: &mut Pcg64, requests: u64, rate: f64) -> u64 {
    Binomial::new(requests, rate)
        .expect("valid rate")
        .sample(rng)
}

/// The fixed-horizon z-test: horizon in intervals and critical value.
struct Fixed {
    horizon: usize,
    critical: f64,
    dispersion: f64,
}

impl Fixed {
    /// Sized for `alpha` and 90% power against `ratio`× the base rate at dispersion `φ`.
    fn new(scenario: &Scenario, ratio: f64, normal: &Normal) -> Self {
        let (p1, p2) = (BASE_RATE, BASE_RATE * ratio);
        let mean = (p1 + p2) / 2.0;
        let (za, zb) = (normal.inverse_cdf(1.0 - ALPHA), normal.inverse_cdf(POWER));
        let root = za * (2.0 * mean * (1.0 - mean)).sqrt()
            + zb * (p1 * (1.0 - p1) + p2 * (1.0 - p2)).sqrt();
        let per_arm = scenario.dispersion() * (root / (p2 - p1)).powi(2);
        Self {
            horizon: (per_arm / scenario.canary_requests as f64).ceil() as usize,
            critical: za,
            dispersion: scenario.dispersion(),
        }
    }

    /// Whether the test rejects on totals of `n_c`, `n_b` requests.
    fn rejects(&self, (c, n_c): (u64, f64), (b, n_b): (u64, f64)) -> bool {
        let pooled = (c + b) as f64 / (n_c + n_b);
        if pooled <= 0.0 || pooled >= 1.0 {
            return false;
        }
        let variance = self.dispersion * pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_b);
        (c as f64 / n_c - b as f64 / n_b) / variance.sqrt() > self.critical
    }
}

/// Outcome of one simulated canary: the interval at which each sequential judge aborted, and
/// whether the fixed test did.
struct Run {
    betting: Option<usize>,
    sprt: Option<usize>,
    fixed: bool,
}

fn simulate(rng: &mut Pcg64, scenario: &Scenario, ratio: f64, fixed: &Fixed) -> Run {
    let mut betting = ErrorRateTest::new(SequentialMethod::Betting, ALPHA).expect("config");
    let mut sprt = ErrorRateTest::new(SequentialMethod::MixtureSprt, ALPHA).expect("config");
    let step = Gaussian::new(0.0, 0.2).expect("valid normal");
    let (r, s) = (scenario.canary_requests, scenario.baseline_requests);
    let mut run = Run {
        betting: None,
        sprt: None,
        fixed: false,
    };
    let (mut drift, mut canary_total, mut baseline_total) = (0.0, 0, 0);
    for interval in 1..=LOOKS.max(fixed.horizon) {
        drift = 0.9 * drift + step.sample(rng);
        let canary_rate = rate(rng, scenario.traffic, BASE_RATE * ratio, drift, r);
        let baseline_rate = rate(rng, scenario.traffic, BASE_RATE, drift, s);
        let (c, b) = (errors(rng, r, canary_rate), errors(rng, s, baseline_rate));
        canary_total += c;
        baseline_total += b;
        if interval == fixed.horizon {
            let k = interval as f64;
            run.fixed = fixed.rejects((canary_total, k * r as f64), (baseline_total, k * s as f64));
        }
        if interval > LOOKS {
            continue;
        }
        let counts = Counts {
            canary_errors: c as f64,
            canary_requests: r as f64,
            baseline_errors: b as f64,
            baseline_requests: s as f64,
        };
        for (test, stop) in [(&mut betting, &mut run.betting), (&mut sprt, &mut run.sprt)] {
            if stop.is_none()
                && test.observe(counts).expect("valid").decision == SequentialDecision::CanaryWorse
            {
                *stop = Some(interval);
            }
        }
    }
    run
}

fn percent(count: usize) -> String {
    format!("{:.2}%", 100.0 * count as f64 / RUNS as f64)
}

/// Detection rate, mean intervals over detected runs, mean with misses at `LOOKS`, median,
/// 90th percentile (misses at `LOOKS`).
fn stops(runs: &[Run], pick: fn(&Run) -> Option<usize>) -> (usize, f64, f64, usize, usize) {
    let detected: Vec<usize> = runs.iter().filter_map(pick).collect();
    let mut all: Vec<usize> = runs.iter().map(|r| pick(r).unwrap_or(LOOKS)).collect();
    all.sort_unstable();
    let mean_detected = detected.iter().sum::<usize>() as f64 / detected.len().max(1) as f64;
    let mean_all = all.iter().sum::<usize>() as f64 / all.len() as f64;
    (
        detected.len(),
        mean_detected,
        mean_all,
        all[all.len() / 2],
        all[all.len() * 9 / 10],
    )
}

fn main() {
    let normal = Normal::standard();
    let mut rng = Pcg64::seed_from_u64(SEED);
    println!(
        "judge_simulation: {RUNS} simulated canaries per scenario, {LOOKS} looks, alpha {ALPHA}, baseline error rate {:.0}%, seed {SEED:#x}",
        BASE_RATE * 100.0
    );
    println!(
        "fixed-horizon test: one-sided z-test, variance x phi, sized for alpha {ALPHA} and {:.0}% power against 2x\n",
        POWER * 100.0
    );
    let mut healthy_ok = true;
    let mut power_ok = true;
    println!(
        "(a) healthy canaries (same mean error rate): false-abort rate over {LOOKS} looks (target <= 1%)"
    );
    println!(
        "| {:<42} | {:>8} | {:>13} | {:>17} |",
        "traffic", "betting", "mixture SPRT", "fixed z-test at H"
    );
    println!("|{:-<44}|{:->10}|{:->15}|{:->19}|", "", "", "", "");
    for scenario in &SCENARIOS {
        let fixed = Fixed::new(scenario, 2.0, &normal);
        let runs: Vec<Run> = (0..RUNS)
            .map(|_| simulate(&mut rng, scenario, 1.0, &fixed))
            .collect();
        let betting = runs.iter().filter(|r| r.betting.is_some()).count();
        let sprt = runs.iter().filter(|r| r.sprt.is_some()).count();
        let fixed_aborts = runs.iter().filter(|r| r.fixed).count();
        let covered = scenario.canary_requests == scenario.baseline_requests;
        healthy_ok &= !covered || betting as f64 / RUNS as f64 <= ALPHA;
        println!(
            "| {:<42} | {:>8} | {:>13} | {:>17} |",
            scenario.label,
            percent(betting),
            percent(sprt),
            format!("{} (H={})", percent(fixed_aborts), fixed.horizon)
        );
    }

    println!(
        "\n(b) 2x regression (canary 2% vs 1%): detection within {LOOKS} looks and intervals to the abort (target >= 99%)"
    );
    println!(
        "| {:<20} | {:>8} | {:>10} | {:>12} | {:>6} | {:>4} | {:>13} | {:>11} | {:>12} | {:>13} |",
        "traffic",
        "betting",
        "mean (det)",
        "mean (all)",
        "median",
        "p90",
        "mixture SPRT",
        "fixed H",
        "fixed power",
        "betting / H"
    );
    println!(
        "|{:-<22}|{:->10}|{:->12}|{:->14}|{:->8}|{:->6}|{:->15}|{:->13}|{:->14}|{:->15}|",
        "", "", "", "", "", "", "", "", "", ""
    );
    for scenario in SCENARIOS
        .iter()
        .filter(|s| s.canary_requests == s.baseline_requests)
    {
        let fixed = Fixed::new(scenario, 2.0, &normal);
        let runs: Vec<Run> = (0..RUNS)
            .map(|_| simulate(&mut rng, scenario, 2.0, &fixed))
            .collect();
        let (detected, mean_detected, mean_all, median, p90) = stops(&runs, |r| r.betting);
        let (sprt_detected, sprt_mean, _, _, _) = stops(&runs, |r| r.sprt);
        let fixed_power = runs.iter().filter(|r| r.fixed).count();
        power_ok &= detected as f64 / RUNS as f64 >= 0.99;
        println!(
            "| {:<20} | {:>8} | {:>10.1} | {:>12.1} | {:>6} | {:>4} | {:>13} | {:>11} | {:>12} | {:>13.2} |",
            scenario.label,
            percent(detected),
            mean_detected,
            mean_all,
            median,
            p90,
            format!("{} / {sprt_mean:.1}", percent(sprt_detected)),
            fixed.horizon,
            percent(fixed_power),
            mean_all / fixed.horizon as f64
        );
    }
    println!(
        "\nmean (all) counts a miss as {LOOKS} intervals; 'betting / H' is the betting test's mean samples over the fixed test's (both revisions serve the same requests per interval)."
    );
    println!(
        "targets: false aborts <= 1% in every covered scenario: {}; 2x detected in >= 99%: {}",
        if healthy_ok { "met" } else { "NOT met" },
        if power_ok { "met" } else { "NOT met" }
    );
}
