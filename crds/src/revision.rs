//! The revision hash: a short, stable name for a pod template.
//!
//! A revision is a ReplicaSet named `<rollout>-<hash>`. The hash must change exactly when the
//! template's meaning changes, and never because a library changed how it serializes the same
//! template (Argo Rollouts redeployed whole fleets when its hash moved with a library upgrade).
//! So the hash is not taken over any library's encoding, but over a canonical form defined here:
//!
//! 1. The template is turned into a JSON value.
//! 2. Nulls, empty objects, empty arrays and empty strings are removed, recursively (an absent
//!    field and an empty one mean the same to Kubernetes, and libraries differ in which they
//!    write). The label [`REVISION_LABEL`] is removed too: rollgate adds it itself.
//! 3. The value is written as JSON with object keys sorted by their UTF-8 bytes, no white space,
//!    integers in plain decimal, and strings escaped as RFC 8259 requires (only `"`, `\` and
//!    control characters; control characters as `\u00XX` lowercase hex).
//! 4. The hash is the first 10 hex digits of SHA-256 over `rollgate-revision-v1\n` followed by
//!    that text. The prefix names the canonical form's version: changing the form means a new
//!    prefix and a deliberate, documented migration.
//!
//! Committed test vectors (`crds/tests/fixtures/revision/`) pin the output, so an accidental
//! change fails the tests.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::names::REVISION_LABEL;

/// Version tag of the canonical form, hashed in front of it.
pub const CANONICAL_FORM_VERSION: &str = "rollgate-revision-v1";

/// Number of hex digits of the hash kept in revision names.
pub const HASH_LENGTH: usize = 10;

/// Why a template could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum RevisionHashError {
    /// The template could not be turned into JSON.
    #[error("pod template cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    /// The template holds a number that is not an integer; pod templates have none.
    #[error("pod template holds a non-integer number at {0}; the canonical form has none")]
    NonIntegerNumber(String),
}

/// The revision hash of a pod template.
pub fn revision_hash(template: &PodTemplateSpec) -> Result<String, RevisionHashError> {
    let value = serde_json::to_value(template)?;
    revision_hash_of_value(&value)
}

/// The revision hash of a pod template given as JSON, for callers that hold it untyped.
pub fn revision_hash_of_value(template: &Value) -> Result<String, RevisionHashError> {
    let canonical = canonical_json(template)?;
    let mut hasher = Sha256::new();
    hasher.update(CANONICAL_FORM_VERSION.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    let digest = hex::encode(hasher.finalize());
    Ok(digest[..HASH_LENGTH].to_owned())
}

/// The canonical text of a pod template (steps 2 and 3 of the module docs).
pub fn canonical_json(template: &Value) -> Result<String, RevisionHashError> {
    let mut pruned = prune(template).unwrap_or(Value::Object(Default::default()));
    remove_revision_label(&mut pruned);
    let mut out = String::new();
    write_canonical(&pruned, "$", &mut out)?;
    Ok(out)
}

/// Removes nulls and empty values, recursively; `None` means the value itself is empty.
fn prune(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(text) if text.is_empty() => None,
        Value::Array(items) => {
            let kept: Vec<Value> = items.iter().filter_map(prune).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        Value::Object(fields) => {
            let kept: serde_json::Map<String, Value> = fields
                .iter()
                .filter_map(|(key, field)| prune(field).map(|field| (key.clone(), field)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        other => Some(other.clone()),
    }
}

fn remove_revision_label(template: &mut Value) {
    let Some(metadata) = template.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) else {
        return;
    };
    labels.remove(REVISION_LABEL);
    if labels.is_empty() {
        metadata.remove("labels");
    }
    if metadata.is_empty()
        && let Some(object) = template.as_object_mut()
    {
        object.remove("metadata");
    }
}

fn write_canonical(value: &Value, path: &str, out: &mut String) -> Result<(), RevisionHashError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                out.push_str(&integer.to_string());
            } else if let Some(integer) = number.as_u64() {
                out.push_str(&integer.to_string());
            } else {
                return Err(RevisionHashError::NonIntegerNumber(path.to_owned()));
            }
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, &format!("{path}[{index}]"), out)?;
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(&fields[key], &format!("{path}.{key}"), out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hash(value: Value) -> String {
        revision_hash_of_value(&value).unwrap()
    }

    #[test]
    fn key_order_does_not_matter() {
        let a = json!({"metadata": {"labels": {"app": "web", "tier": "front"}},
                       "spec": {"containers": [{"name": "web", "image": "r/web@sha256:aa"}]}});
        let b = json!({"spec": {"containers": [{"image": "r/web@sha256:aa", "name": "web"}]},
                       "metadata": {"labels": {"tier": "front", "app": "web"}}});
        assert_eq!(hash(a), hash(b));
    }

    #[test]
    fn absent_null_and_empty_are_the_same() {
        let bare = json!({"spec": {"containers": [{"name": "web", "image": "i"}]}});
        let noisy = json!({"metadata": {"labels": {}, "annotations": null},
                           "spec": {"containers": [{"name": "web", "image": "i", "args": [],
                                                    "env": [], "workingDir": ""}],
                                    "volumes": null}});
        assert_eq!(hash(bare), hash(noisy));
    }

    #[test]
    fn the_revision_label_is_ignored() {
        let plain = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}});
        let labelled = json!({"metadata": {"labels": {"app": "web", REVISION_LABEL: "abc"}},
                              "spec": {"containers": []}});
        assert_eq!(hash(plain), hash(labelled));
    }

    #[test]
    fn any_meaningful_change_changes_the_hash() {
        let base = json!({"spec": {"containers": [{"name": "web", "image": "r@sha256:aa"}]}});
        let other_image =
            json!({"spec": {"containers": [{"name": "web", "image": "r@sha256:ab"}]}});
        let other_order = json!({"spec": {"containers": [
            {"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let swapped = json!({"spec": {"containers": [
            {"name": "b", "image": "y"}, {"name": "a", "image": "x"}]}});
        assert_ne!(hash(base), hash(other_image));
        assert_ne!(
            hash(other_order),
            hash(swapped),
            "container order is meaningful"
        );
    }

    #[test]
    fn canonical_text_is_sorted_compact_and_escaped() {
        let value = json!({"b": 1, "a": ["x\"y", "tab\there", "\u{1}"], "c": {"z": true, "e": -5}});
        assert_eq!(
            canonical_json(&value).unwrap(),
            r#"{"a":["x\"y","tab\u0009here","\u0001"],"b":1,"c":{"e":-5,"z":true}}"#
        );
    }

    #[test]
    fn hash_is_short_lowercase_hex() {
        let value = hash(json!({"spec": {"containers": [{"name": "a", "image": "b"}]}}));
        assert_eq!(value.len(), HASH_LENGTH);
        assert!(
            value
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
    }

    #[test]
    fn floats_are_refused_with_their_path() {
        let error = canonical_json(&json!({"spec": {"x": 1.5}})).unwrap_err();
        assert!(error.to_string().contains("$.spec.x"), "{error}");
    }
}
