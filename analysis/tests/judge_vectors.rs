//! Checks the Mann-Whitney judge against vectors computed independently with scipy and a
//! literal evaluation of R's `wilcox.test` interval (`tests/fixtures/judge/vectors.py`, whose
//! output `vectors.json` is committed; this test does not run Python).

use rollgate_analysis::judge::mann_whitney;
use serde_json::Value;

const VECTORS: &str = include_str!("fixtures/judge/vectors.json");

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

fn number(case: &Value, field: &str) -> f64 {
    case[field]
        .as_f64()
        .unwrap_or_else(|| panic!("field {field}"))
}

/// `|a − b| ≤ rel·max(|a|, |b|)`, exact equality included.
fn close(actual: f64, expected: f64, rel: f64) -> bool {
    actual == expected || (actual - expected).abs() <= rel * actual.abs().max(expected.abs())
}

#[test]
fn mann_whitney_matches_independent_vectors() {
    let doc: Value = serde_json::from_str(VECTORS).expect("valid JSON");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 20, "only {} vectors", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let canary = floats(&case["canary"]);
        let baseline = floats(&case["baseline"]);
        let result = mann_whitney(&canary, &baseline, number(case, "confidence"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let checks = [
            ("u", result.u_statistic, number(case, "u"), 0.0),
            ("p_value", result.p_value, number(case, "p_value"), 1e-9),
            (
                "hodges_lehmann",
                result.hodges_lehmann,
                number(case, "hodges_lehmann"),
                1e-12,
            ),
            ("lower", result.interval.lower, number(case, "lower"), 1e-12),
            ("upper", result.interval.upper, number(case, "upper"), 1e-12),
        ];
        for (field, actual, expected, rel) in checks {
            if !close(actual, expected, rel) {
                failures.push(format!(
                    "{name}.{field}: got {actual:e}, expected {expected:e}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
