//! `lint`: validate Rollout manifests offline, as the API server would.
//!
//! Nothing is re-implemented by hand: the checks come from the Rollout CRD that rollgate
//! generates ([`rollgate_crds::generate::custom_resource_definitions`]), so they cannot drift
//! from what the API server enforces.
//!
//! 1. The OpenAPI schema ([`schema`]): types, required fields, unknown fields (which the API
//!    server would drop or refuse), numeric bounds, lengths, item counts, patterns and enums.
//! 2. The type: the manifest must deserialize into [`Rollout`]; `serde_path_to_error` names
//!    the field that does not.
//! 3. The CEL rules (`x-kubernetes-validations`: exactly one strategy, one kind per step,
//!    durations, selector matching the template's labels, ...), evaluated by `kube-cel`, a
//!    client-side implementation of the API server's CEL environment.
//!
//! Steps 2 and 3 run only when the schema holds, as the API server evaluates CEL only on
//! objects that match their schema.

mod fallback;
mod schema;

use rollgate_crds::Rollout;
use rollgate_crds::generate::custom_resource_definitions;
use serde_json::Value;

/// One problem found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The field, as the API server names it (`spec.strategy.canary.steps[1]`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// The findings of one YAML document of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentReport {
    /// Index of the document in the file, from 0.
    pub index: usize,
    /// The object's name, if it has one.
    pub name: Option<String>,
    /// Problems found; empty when the document is a valid Rollout or skipped.
    pub findings: Vec<Finding>,
    /// The kind of a document that is not lint's business (a Service, an HTTPRoute or an
    /// AnalysisTemplate beside the Rollout): skipped, not a finding. Anything of kind `Rollout`
    /// (another API group's is a finding) or of an unknown `rollgate.io` kind is linted.
    pub skipped: Option<String>,
}

/// Why a file could not be linted at all.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    /// The text is not YAML.
    #[error("not valid YAML: {0}")]
    Yaml(String),
    /// The file holds no document.
    #[error("the file holds no YAML document")]
    Empty,
    /// The generated CRD has no schema (a bug).
    #[error("the Rollout CRD has no schema")]
    NoSchema,
}

/// The OpenAPI schema of the Rollout CRD, as JSON.
pub fn rollout_schema() -> Result<Value, LintError> {
    custom_resource_definitions()
        .into_iter()
        .find(|crd| crd.spec.names.kind == "Rollout")
        .and_then(|crd| crd.spec.versions.into_iter().next())
        .and_then(|version| version.schema)
        .and_then(|schema| schema.open_api_v3_schema)
        .and_then(|schema| serde_json::to_value(schema).ok())
        .ok_or(LintError::NoSchema)
}

/// Lints every document of a YAML text.
pub fn lint_text(text: &str) -> Result<Vec<DocumentReport>, LintError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|error| LintError::Yaml(error.to_string()))?;
    let documents: Vec<Value> = documents.into_iter().filter(|d| !d.is_null()).collect();
    if documents.is_empty() {
        return Err(LintError::Empty);
    }
    let schema = rollout_schema()?;
    Ok(documents
        .iter()
        .enumerate()
        .map(|(index, document)| {
            let kind = document.get("kind").and_then(Value::as_str).unwrap_or("");
            let api_version = document
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let ours = kind == "Rollout"
                || (api_version.starts_with("rollgate.io/")
                    // rollgate's other kinds are left to the API server.
                    && !rollgate_crds::KINDS[1..].contains(&kind));
            DocumentReport {
                index,
                name: document
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                findings: if ours {
                    lint_value(&schema, document)
                } else {
                    Vec::new()
                },
                skipped: (!ours).then(|| kind.to_owned()),
            }
        })
        .collect())
}

/// Lints one object against the Rollout CRD's `schema`.
pub fn lint_value(schema: &Value, object: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    let api_version = object.get("apiVersion").and_then(Value::as_str);
    let kind = object.get("kind").and_then(Value::as_str);
    if api_version != Some("rollgate.io/v1alpha1") || kind != Some("Rollout") {
        findings.push(Finding {
            field: String::new(),
            message: format!(
                "not a rollgate Rollout: apiVersion {:?}, kind {:?} (want rollgate.io/v1alpha1, Rollout)",
                api_version.unwrap_or(""),
                kind.unwrap_or("")
            ),
        });
        return findings;
    }
    schema::check(schema, object, "", &mut findings);
    if !findings.is_empty() {
        return findings;
    }
    if let Err(error) = serde_path_to_error::deserialize::<_, Rollout>(object) {
        findings.push(Finding {
            field: error.path().to_string(),
            message: error.inner().to_string(),
        });
        return findings;
    }
    if let Err(errors) = kube_cel::Validator::new().validate(schema, object, None) {
        for error in errors.iter() {
            if error.kind == kube_cel::ErrorKind::UnsupportedReference {
                let passed = fallback::value_at(object, &error.field_path)
                    .and_then(|value| fallback::evaluate(&error.rule, value));
                match passed {
                    Some(true) => continue,
                    Some(false) => findings.push(Finding {
                        field: error.field_path.clone(),
                        message: rule_message(schema, &error.rule),
                    }),
                    None => findings.push(Finding {
                        field: error.field_path.clone(),
                        message: format!("cannot check the rule {:?} offline", error.rule),
                    }),
                }
                continue;
            }
            findings.push(Finding {
                field: error.field_path.clone(),
                message: error.message.clone(),
            });
        }
    }
    findings
}

/// The message the CRD gives for `rule` (found anywhere in the schema).
fn rule_message(schema: &Value, rule: &str) -> String {
    fn find(value: &Value, rule: &str) -> Option<String> {
        match value {
            Value::Object(fields) => {
                if fields.get("rule").and_then(Value::as_str) == Some(rule) {
                    return fields
                        .get("message")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                }
                fields.values().find_map(|child| find(child, rule))
            }
            Value::Array(items) => items.iter().find_map(|item| find(item, rule)),
            _ => None,
        }
    }
    find(schema, rule).unwrap_or_else(|| format!("failed rule: {rule}"))
}

#[cfg(test)]
mod tests;
