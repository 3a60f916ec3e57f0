use serde_json::json;

use super::*;

fn rollout(status: serde_json::Value) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "generation": 2, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 20}, {"pause": {}}, {"approval": {}},
                {"analysis": {"templates": [{"templateName": "error-rate"}]}}, {"pause": {"duration": "5m"}}
            ]}}
        },
        "status": status
    }))
    .unwrap()
}

fn now() -> Timestamp {
    Timestamp::from_second(1_767_225_600 + 3 * 3600).unwrap()
}

#[test]
fn the_table_aligns_columns() {
    let text = table(&["A", "LONGER"], &[vec!["wide cell".into(), "x".into()]]);
    assert_eq!(text, "A           LONGER\nwide cell   x\n");
}

#[test]
fn the_list_shows_phase_step_weight_and_age() {
    let text = rollout_table(
        &[rollout(
            json!({"phase": "AwaitingApproval", "currentStepIndex": 2,
                         "canaryWeight": 20, "availableReplicas": 4,
                         "currentRevision": "0123456789"}),
        )],
        now(),
    );
    let row = text.lines().nth(1).unwrap();
    for cell in [
        "web",
        "canary",
        "AwaitingApproval",
        "2/5",
        "20",
        "0123456789",
        "3h",
    ] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
}

#[test]
fn the_status_view_marks_the_current_step_and_shows_the_gate() {
    let view = status_view(&rollout(json!({
        "phase": "AwaitingApproval", "message": "waiting for approval", "currentStepIndex": 2,
        "canaryWeight": 25, "currentRevision": "0123456789", "stableRevision": "abcdefabcd",
        "gate": {"revision": "0123456789", "required": 2, "received": 1, "approvers": ["alice"]},
        "analysisRuns": ["web-0123456789-3"]
    })));
    assert!(view.contains("  ✓ 0: setWeight 20%"), "{view}");
    assert!(view.contains("  ✓ 1: pause (until promoted)"), "{view}");
    assert!(view.contains("  ▶ 2: approval"), "{view}");
    assert!(view.contains("    3: analysis error-rate"), "{view}");
    assert!(view.contains("    4: pause 5m"), "{view}");
    assert!(view.contains("[#####...............] 25%"), "{view}");
    assert!(
        view.contains("Gate:      revision 0123456789: 1/2 approvals (alice)"),
        "{view}"
    );
    assert!(view.contains("Analysis:  web-0123456789-3"), "{view}");
    assert!(view.contains("Message:   waiting for approval"), "{view}");
}

#[test]
fn weight_bars_clamp() {
    assert_eq!(weight_bar(0), "[....................] 0%");
    assert_eq!(weight_bar(100), "[####################] 100%");
    assert_eq!(weight_bar(150), "[####################] 100%");
}

#[test]
fn a_watch_settles_only_on_the_current_generation() {
    assert_eq!(
        settled(&rollout(
            json!({"phase": "Healthy", "observedGeneration": 2})
        )),
        Some(RolloutPhase::Healthy)
    );
    assert_eq!(
        settled(&rollout(
            json!({"phase": "Healthy", "observedGeneration": 1})
        )),
        None
    );
    assert_eq!(
        settled(&rollout(
            json!({"phase": "Progressing", "observedGeneration": 2})
        )),
        None
    );
    assert_eq!(
        settled(&rollout(
            json!({"phase": "Aborted", "observedGeneration": 2})
        )),
        Some(RolloutPhase::Aborted)
    );
}

#[test]
fn ages_read_like_kubectls() {
    let created = Time(Timestamp::from_second(1_000).unwrap());
    let at = |s: i64| Timestamp::from_second(1_000 + s).unwrap();
    assert_eq!(age(Some(&created), at(59)), "59s");
    assert_eq!(age(Some(&created), at(600)), "10m");
    assert_eq!(age(Some(&created), at(3 * 3600)), "3h");
    assert_eq!(age(Some(&created), at(3 * 86_400)), "3d");
    assert_eq!(age(None, at(0)), "-");
}
