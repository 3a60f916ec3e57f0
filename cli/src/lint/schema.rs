//! The OpenAPI v3 checks of a structural CRD schema, worded like the API server's messages.

use regex::Regex;
use serde_json::{Map, Value};

use super::Finding;

/// Checks `value` against `schema`, adding a finding for every violation below `path`.
pub fn check(schema: &Value, value: &Value, path: &str, findings: &mut Vec<Finding>) {
    if value.is_null() {
        // The API server drops nulls of non-nullable fields; nothing to check.
        return;
    }
    let mut report = |message: String| {
        findings.push(Finding {
            field: path.to_owned(),
            message,
        })
    };
    if !type_matches(schema, value) {
        let wanted = schema.get("type").and_then(Value::as_str).unwrap_or("?");
        report(format!(
            "must be of type {wanted}, got {}",
            type_name(value)
        ));
        return;
    }
    check_bounds(schema, value, &mut report);
    match value {
        Value::Object(fields) => check_object(schema, fields, path, findings),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{index}]"), findings);
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    schema: &Value,
    fields: &Map<String, Value>,
    path: &str,
    findings: &mut Vec<Finding>,
) {
    let child = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if fields.get(required).is_none_or(Value::is_null) {
            findings.push(Finding {
                field: child(required),
                message: "Required value".into(),
            });
        }
    }
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, field) in fields {
        if let Some(field_schema) = properties.and_then(|p| p.get(key)) {
            check(field_schema, field, &child(key), findings);
        } else if let Some(value_schema) = additional {
            check(value_schema, field, &format!("{path}[{key}]"), findings);
        } else if properties.is_some() && !preserve && !(path.is_empty() && is_root_meta(key)) {
            findings.push(Finding {
                field: child(key),
                message: format!("unknown field {key:?}"),
            });
        }
    }
}

/// Root fields every object has, whatever its schema lists.
fn is_root_meta(key: &str) -> bool {
    matches!(key, "apiVersion" | "kind" | "metadata")
}

fn check_bounds(schema: &Value, value: &Value, report: &mut impl FnMut(String)) {
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    let count = |key: &str| schema.get(key).and_then(Value::as_u64);
    if let Some(actual) = value.as_f64() {
        if let Some(minimum) = number("minimum")
            && actual < minimum
        {
            report(format!(
                "should be greater than or equal to {minimum}, got {value}"
            ));
        }
        if let Some(maximum) = number("maximum")
            && actual > maximum
        {
            report(format!(
                "should be less than or equal to {maximum}, got {value}"
            ));
        }
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if let Some(max) = count("maxLength")
            && length > max
        {
            report(format!("may not be longer than {max}"));
        }
        if let Some(min) = count("minLength")
            && length < min
        {
            report(format!("should be at least {min} chars long"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && let Ok(regex) = Regex::new(pattern)
            && !regex.is_match(text)
        {
            report(format!("should match '{pattern}', got {text:?}"));
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            let supported: Vec<String> = allowed.iter().map(Value::to_string).collect();
            report(format!(
                "Unsupported value: {value}: supported values: {}",
                supported.join(", ")
            ));
        }
    }
    if let Some(items) = value.as_array() {
        let length = items.len() as u64;
        if let Some(max) = count("maxItems")
            && length > max
        {
            report(format!("must have at most {max} items"));
        }
        if let Some(min) = count("minItems")
            && length < min
        {
            report(format!("should have at least {min} items"));
        }
    }
    if let Some(fields) = value.as_object()
        && let Some(max) = count("maxProperties")
        && fields.len() as u64 > max
    {
        report(format!("must have at most {max} properties"));
    }
}

fn type_matches(schema: &Value, value: &Value) -> bool {
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return value.is_string() || value.is_i64() || value.is_u64();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
