//! Evaluation of an attestation's CEL `condition` over its predicate (the `cel` crate).
//!
//! The expression sees two variables: `predicate` (the statement's predicate, JSON mapped to
//! CEL maps, lists, strings, numbers and booleans) and `predicateType`. It must evaluate to
//! the boolean `true`; any other value, or an error, fails the requirement with the reason.

use std::sync::Arc;

use serde_json::Value;

/// Evaluates `condition`; `Ok(true)` only when it yields the boolean true.
pub fn evaluate(condition: &str, predicate_type: &str, predicate: &Value) -> Result<bool, String> {
    let env = Arc::new(cel::Env::stdlib());
    let program = env
        .compile(condition)
        .map_err(|error| format!("condition {condition:?} does not compile: {error}"))?;
    let mut context = cel::Context::with_env(env);
    let predicate = cel::to_value(predicate)
        .map_err(|error| format!("predicate cannot be given to CEL: {error}"))?;
    context.add_variable_from_value("predicate", predicate);
    context.add_variable_from_value("predicateType", predicate_type.to_owned());
    match program.execute(&context) {
        Ok(cel::Value::Bool(result)) => Ok(result),
        Ok(other) => Err(format!(
            "condition {condition:?} yielded {other:?}, not a boolean"
        )),
        Err(error) => Err(format!("condition {condition:?} failed: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_read_the_predicate() {
        let predicate = serde_json::json!({
            "buildType": "https://example.com/ci@v1",
            "materials": [{"uri": "git+https://example.com/app"}],
            "level": 3,
        });
        assert_eq!(evaluate("predicate.level >= 3", "t", &predicate), Ok(true));
        assert_eq!(
            evaluate(
                "predicate.buildType == 'https://example.com/ci@v1' && predicateType == 't'",
                "t",
                &predicate
            ),
            Ok(true)
        );
        assert_eq!(
            evaluate(
                "predicate.materials.exists(m, m.uri.startsWith('git+https://example.com/'))",
                "t",
                &predicate
            ),
            Ok(true)
        );
        assert_eq!(evaluate("predicate.level > 3", "t", &predicate), Ok(false));
    }

    #[test]
    fn errors_and_non_booleans_are_reasons() {
        let predicate = serde_json::json!({"a": 1});
        assert!(
            evaluate("predicate.a +", "t", &predicate)
                .unwrap_err()
                .contains("does not compile")
        );
        assert!(
            evaluate("predicate.missing == 1", "t", &predicate)
                .unwrap_err()
                .contains("failed")
        );
        assert!(
            evaluate("predicate.a", "t", &predicate)
                .unwrap_err()
                .contains("not a boolean")
        );
    }
}
