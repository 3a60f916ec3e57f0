//! Each case mirrors one of the API server's refusals in the e2e CRD validation test
//! (`tests/e2e/tests/e2e/crd_validation.rs`): the same change to the same valid Rollout, and the
//! same field and reason in the message, so the offline lint and the API server agree.

use serde_json::{Value, json};

use super::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/lint/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn valid_canary() -> Value {
    serde_saphyr::from_str(&fixture("valid-canary.yaml")).unwrap()
}

fn with(mut value: Value, pointer: &str, replacement: Value) -> Value {
    *value
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = replacement;
    value
}

fn findings(value: &Value) -> Vec<Finding> {
    lint_value(&rollout_schema().unwrap(), value)
}

fn assert_names(value: Value, field: &str, reason: &str) {
    let found = findings(&value);
    assert!(
        found
            .iter()
            .any(|f| f.field == field && f.message.contains(reason)),
        "expected {field}: {reason:?}, got {found:?}"
    );
}

#[test]
fn the_valid_fixtures_pass() {
    for name in ["valid-canary.yaml", "valid-blue-green.yaml"] {
        let reports = lint_text(&fixture(name)).unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].findings, [], "{name}");
    }
}

#[test]
fn both_or_neither_strategy() {
    let mut both = valid_canary();
    both["spec"]["strategy"]["blueGreen"] = json!({"activeService": "web"});
    let neither = with(valid_canary(), "/spec/strategy", json!({}));
    for value in [both, neither] {
        assert_names(
            value,
            "spec.strategy",
            "exactly one of canary or blueGreen must be set",
        );
    }
}

#[test]
fn a_step_with_zero_or_two_kinds() {
    let empty = with(valid_canary(), "/spec/strategy/canary/steps/1", json!({}));
    let two = with(
        valid_canary(),
        "/spec/strategy/canary/steps/1",
        json!({"setWeight": 10, "pause": {}}),
    );
    for value in [empty, two] {
        assert_names(
            value,
            "spec.strategy.canary.steps[1]",
            "a step sets exactly one of setWeight, pause, approval or analysis",
        );
    }
}

#[test]
fn a_weight_outside_0_to_100() {
    let field = "spec.strategy.canary.steps[0].setWeight";
    let pointer = "/spec/strategy/canary/steps/0/setWeight";
    assert_names(
        with(valid_canary(), pointer, json!(101)),
        field,
        "less than or equal to 100",
    );
    assert_names(
        with(valid_canary(), pointer, json!(-1)),
        field,
        "greater than or equal to 0",
    );
}

#[test]
fn surge_and_unavailable_are_numbers_or_percentages() {
    let field = "spec.strategy.canary.maxSurge";
    let reason = "must be a non-negative number or a percentage such as 25%";
    assert_names(
        with(
            valid_canary(),
            "/spec/strategy/canary/maxSurge",
            json!("25"),
        ),
        field,
        reason,
    );
    assert_names(
        with(valid_canary(), "/spec/strategy/canary/maxSurge", json!(-1)),
        field,
        reason,
    );
    let fine = with(valid_canary(), "/spec/strategy/canary/maxSurge", json!(2));
    assert_eq!(findings(&fine), []);
}

#[test]
fn negative_replicas() {
    assert_names(
        with(valid_canary(), "/spec/replicas", json!(-1)),
        "spec.replicas",
        "greater than or equal to 0",
    );
}

#[test]
fn a_pause_duration_that_does_not_parse() {
    for bad in ["5 minutes", "10", "1.5h", "1d"] {
        assert_names(
            with(
                valid_canary(),
                "/spec/strategy/canary/steps/1/pause/duration",
                json!(bad),
            ),
            "spec.strategy.canary.steps[1].pause.duration",
            "must be a duration such as 30s, 5m, 1h30m or 250ms",
        );
    }
}

#[test]
fn inconsistent_selectors_and_routing() {
    assert_names(
        with(
            valid_canary(),
            "/spec/selector/matchLabels/app",
            json!("api"),
        ),
        "spec.selector",
        "selector.matchLabels must match template.metadata.labels",
    );
    let mut unrouted = valid_canary();
    unrouted["spec"]["strategy"]["canary"]
        .as_object_mut()
        .unwrap()
        .remove("canaryService");
    assert_names(
        unrouted,
        "spec.strategy.canary",
        "trafficRouting needs both stableService and canaryService",
    );
}

#[test]
fn unknown_fields_wrong_types_and_missing_fields_are_named() {
    let reports = lint_text(&fixture("bad-field.yaml")).unwrap();
    assert_eq!(
        reports[0].findings,
        [Finding {
            field: "spec.strategy.canary.stableServce".into(),
            message: "unknown field \"stableServce\"".into()
        }]
    );
    assert_names(
        with(valid_canary(), "/spec/replicas", json!("four")),
        "spec.replicas",
        "must be of type integer, got string",
    );
    let mut no_selector = valid_canary();
    no_selector["spec"]
        .as_object_mut()
        .unwrap()
        .remove("selector");
    assert_names(no_selector, "spec.selector", "Required value");
}

#[test]
fn the_committed_bad_rule_fixture_fails_its_cel_rule() {
    let reports = lint_text(&fixture("bad-rule.yaml")).unwrap();
    assert_eq!(reports[0].name.as_deref(), Some("web"));
    let found = &reports[0].findings;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].field, "spec.strategy.canary.steps[0]");
}

#[test]
fn other_kinds_and_multiple_documents() {
    let text = format!(
        "{}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n---\napiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {{name: r}}\n",
        fixture("valid-blue-green.yaml")
    );
    let reports = lint_text(&text).unwrap();
    assert_eq!(reports.len(), 3);
    assert!(reports[0].findings.is_empty());
    assert_eq!(reports[0].skipped, None);
    assert!(reports[1].findings.is_empty(), "other kinds are skipped");
    assert_eq!(reports[1].skipped.as_deref(), Some("ConfigMap"));
    assert!(
        reports[2].findings[0]
            .message
            .contains("not a rollgate Rollout"),
        "a Rollout of another API group is a finding"
    );
    assert!(matches!(lint_text("a: [b"), Err(LintError::Yaml(_))));
}
