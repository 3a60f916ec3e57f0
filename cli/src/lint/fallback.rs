//! Rust checks for the few CRD rules that `kube-cel` cannot evaluate client-side (it reports
//! them as unsupported references). Each is keyed by the exact rule text of the CRD, and a unit
//! test checks that every such rule in the generated CRD has a check here, so a new rule that
//! kube-cel cannot run is noticed rather than skipped.

use serde_json::Value;

/// The int-or-string rule of `maxSurge` and `maxUnavailable`.
pub const INT_OR_PERCENT_RULE: &str = "type(self) == int ? self >= 0 : self.matches('^[0-9]+%$')";

/// Evaluates `rule` on `value` in Rust: `Some(passed)`, or `None` when there is no check.
pub fn evaluate(rule: &str, value: &Value) -> Option<bool> {
    match rule {
        INT_OR_PERCENT_RULE => Some(match value {
            Value::Number(number) => number.as_i64().is_some_and(|n| n >= 0),
            Value::String(text) => {
                text.len() > 1
                    && text.ends_with('%')
                    && text[..text.len() - 1].bytes().all(|b| b.is_ascii_digit())
            }
            _ => false,
        }),
        _ => None,
    }
}

/// The value at an API-server style field path (`spec.steps[1].pause`) in `object`.
pub fn value_at<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = object;
    for part in path.split('.').filter(|part| !part.is_empty()) {
        let (key, indices) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        for index in indices.split(['[', ']']).filter(|i| !i.is_empty()) {
            current = match index.parse::<usize>() {
                Ok(position) => current.get(position)?,
                Err(_) => current.get(index)?,
            };
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int_or_percent_agrees_with_the_rule() {
        for (value, ok) in [
            (json!(0), true),
            (json!(3), true),
            (json!(-1), false),
            (json!("25%"), true),
            (json!("100%"), true),
            (json!("25"), false),
            (json!("%"), false),
            (json!("x%"), false),
            (json!("-5%"), false),
        ] {
            assert_eq!(evaluate(INT_OR_PERCENT_RULE, &value), Some(ok), "{value}");
        }
        assert_eq!(evaluate("self > 0", &json!(1)), None);
    }

    #[test]
    fn paths_resolve_like_the_api_servers() {
        let object = json!({"spec": {"steps": [{"a": 1}, {"b": {"c": 2}}], "m": {"k": 3}}});
        assert_eq!(value_at(&object, "spec.steps[1].b.c"), Some(&json!(2)));
        assert_eq!(value_at(&object, "spec.m[k]"), Some(&json!(3)));
        assert_eq!(value_at(&object, "spec.steps[5]"), None);
    }

    #[test]
    fn every_rule_kube_cel_cannot_run_has_a_check() {
        let schema = crate::lint::rollout_schema().unwrap().to_string();
        for rule in ["type(self)"] {
            for (at, _) in schema.match_indices(rule) {
                let start = schema[..at].rfind("\"rule\":\"").map(|s| s + 8).unwrap();
                let end = start + schema[start..].find('"').unwrap();
                let text = &schema[start..end];
                assert!(
                    evaluate(text, &json!(0)).is_some(),
                    "no Rust check for the rule {text:?}"
                );
            }
        }
    }
}
