//! The ValidatingAdmissionPolicies (`admissionregistration.k8s.io/v1`) shipped with the CRDs,
//! each with its binding, rendered to `crds/policies/` by the `crdgen` binary.
//!
//! - `rollgate-approvals`: an Approval is created only in the requesting user's own name
//!   (`spec.approver == request.userInfo.username`) and only with groups the user is in
//!   (`spec.approverGroups` ⊆ `request.userInfo.groups`); an update may not change its spec,
//!   labels or annotations. See [`crate::approval`].
//! - `rollgate-audit-records`: an update may not change an AuditRecord's spec, labels or
//!   annotations, whoever asks. A cluster administrator can still delete and recreate a record,
//!   or delete the policy; the hash chain detects that. See [`crate::audit`].
//! - `rollgate-requested-by`: creating a Rollout or changing its `spec.template` must set the
//!   annotation `rollgate.io/requested-by` to the requesting user's name, and the annotation
//!   changes only together with the template. See [`crate::requester`].
//!
//! They live beside `crds/yaml/`, not in it, because `kubectl wait --for=condition=Established
//! -f crds/yaml` waits on every object in the directory and a policy never has that condition.
//! Install them after the CRDs: `kubectl apply --server-side -f crds/policies`.

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation, Variable,
};
use kube::api::ObjectMeta;

use crate::generate::GeneratedFile;
use crate::requester::REQUESTED_BY_ANNOTATION;

/// The name of the policy on Approvals.
pub const APPROVALS_POLICY: &str = "rollgate-approvals";
/// The name of the policy on AuditRecords.
pub const AUDIT_RECORDS_POLICY: &str = "rollgate-audit-records";
/// The name of the policy on Rollouts' requested-by annotation.
pub const REQUESTED_BY_POLICY: &str = "rollgate-requested-by";

/// CEL: the spec, labels and annotations of an updated object are unchanged.
const UNCHANGED_ON_UPDATE: &str = "request.operation != 'UPDATE' || (object.spec == oldObject.spec && (has(object.metadata.labels) ? object.metadata.labels : {}) == (has(oldObject.metadata.labels) ? oldObject.metadata.labels : {}) && (has(object.metadata.annotations) ? object.metadata.annotations : {}) == (has(oldObject.metadata.annotations) ? oldObject.metadata.annotations : {}))";

/// A policy and its binding.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundPolicy {
    /// The policy.
    pub policy: ValidatingAdmissionPolicy,
    /// Its binding (deny on failure, every namespace).
    pub binding: ValidatingAdmissionPolicyBinding,
}

/// Every admission policy rollgate ships, with its binding.
pub fn admission_policies() -> Vec<BoundPolicy> {
    vec![approvals(), audit_records(), requested_by()]
}

fn approvals() -> BoundPolicy {
    bound(
        APPROVALS_POLICY,
        "approvals",
        &["CREATE", "UPDATE"],
        Vec::new(),
        vec![
            Validation {
                expression: "request.operation != 'CREATE' || object.spec.approver == request.userInfo.username".into(),
                message_expression: Some(
                    "'spec.approver must be your own user name, ' + request.userInfo.username + ': nobody approves in someone else\\'s name'".into(),
                ),
                reason: Some("Forbidden".into()),
                ..Default::default()
            },
            Validation {
                expression: "request.operation != 'CREATE' || !has(object.spec.approverGroups) || object.spec.approverGroups.all(g, has(request.userInfo.groups) && g in request.userInfo.groups)".into(),
                message: Some("spec.approverGroups may list only groups you are in".into()),
                reason: Some("Forbidden".into()),
                ..Default::default()
            },
            Validation {
                expression: UNCHANGED_ON_UPDATE.into(),
                message: Some(
                    "an Approval is immutable: delete it and create a new one instead".into(),
                ),
                ..Default::default()
            },
        ],
    )
}

fn audit_records() -> BoundPolicy {
    bound(
        AUDIT_RECORDS_POLICY,
        "auditrecords",
        &["UPDATE"],
        Vec::new(),
        vec![Validation {
            expression: UNCHANGED_ON_UPDATE.into(),
            message: Some("an AuditRecord is immutable, for everyone".into()),
            reason: Some("Forbidden".into()),
            ..Default::default()
        }],
    )
}

fn requested_by() -> BoundPolicy {
    let annotation = |object: &str| {
        format!(
            "has({object}.metadata.annotations) && '{REQUESTED_BY_ANNOTATION}' in {object}.metadata.annotations ? {object}.metadata.annotations['{REQUESTED_BY_ANNOTATION}'] : ''"
        )
    };
    bound(
        REQUESTED_BY_POLICY,
        "rollouts",
        &["CREATE", "UPDATE"],
        vec![
            Variable {
                name: "requestedBy".into(),
                expression: annotation("object"),
            },
            Variable {
                name: "previousRequestedBy".into(),
                expression: format!("oldObject == null ? '' : ({})", annotation("oldObject")),
            },
            Variable {
                name: "templateChanged".into(),
                expression: "oldObject == null || object.spec.template != oldObject.spec.template"
                    .into(),
            },
        ],
        vec![
            Validation {
                expression: "!variables.templateChanged || variables.requestedBy == request.userInfo.username".into(),
                message_expression: Some(format!(
                    "'creating a Rollout or changing spec.template must set the annotation {REQUESTED_BY_ANNOTATION} to your own user name, ' + request.userInfo.username"
                )),
                reason: Some("Forbidden".into()),
                ..Default::default()
            },
            Validation {
                expression: "variables.templateChanged || variables.requestedBy == variables.previousRequestedBy".into(),
                message: Some(format!(
                    "the annotation {REQUESTED_BY_ANNOTATION} changes only together with spec.template"
                )),
                reason: Some("Forbidden".into()),
                ..Default::default()
            },
        ],
    )
}

fn bound(
    name: &str,
    resource: &str,
    operations: &[&str],
    variables: Vec<Variable>,
    validations: Vec<Validation>,
) -> BoundPolicy {
    let metadata = ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(
            [(
                "app.kubernetes.io/part-of".to_owned(),
                "rollgate".to_owned(),
            )]
            .into_iter()
            .collect(),
        ),
        ..Default::default()
    };
    let policy = ValidatingAdmissionPolicy {
        metadata: metadata.clone(),
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(vec![crate::API_GROUP.into()]),
                    api_versions: Some(vec![crate::API_VERSION.into()]),
                    operations: Some(operations.iter().map(|op| (*op).to_owned()).collect()),
                    resources: Some(vec![resource.to_owned()]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            variables: (!variables.is_empty()).then_some(variables),
            validations: Some(validations),
            ..Default::default()
        }),
        status: None,
    };
    let binding = ValidatingAdmissionPolicyBinding {
        metadata,
        spec: ValidatingAdmissionPolicyBindingSpec {
            policy_name: name.to_owned(),
            validation_actions: vec!["Deny".into()],
            ..Default::default()
        },
    };
    BoundPolicy { policy, binding }
}

/// The YAML files for every policy (policy and binding in one file), in a stable order.
pub fn policy_files() -> Result<Vec<GeneratedFile>, serde_saphyr::ser_error::Error> {
    admission_policies()
        .into_iter()
        .map(|bound| {
            let name = bound.policy.metadata.name.clone().unwrap_or_default();
            let policy = serde_saphyr::to_string(&bound.policy)?;
            let binding = serde_saphyr::to_string(&bound.binding)?;
            Ok(GeneratedFile {
                file_name: format!("{name}.yaml"),
                content: format!(
                    "# Generated by `cargo run -p rollgate-crds --bin crdgen`. Do not edit.\n{policy}---\n{binding}"
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_is_bound_to_deny() {
        for bound in admission_policies() {
            let spec = &bound.binding.spec;
            assert_eq!(Some(spec.policy_name.clone()), bound.policy.metadata.name);
            assert_eq!(spec.validation_actions, ["Deny"]);
        }
    }

    #[test]
    fn files_hold_policy_and_binding() {
        let files = policy_files().unwrap();
        assert_eq!(files.len(), 3);
        for file in files {
            assert!(file.content.contains("kind: ValidatingAdmissionPolicy\n"));
            assert!(
                file.content
                    .contains("kind: ValidatingAdmissionPolicyBinding\n")
            );
        }
    }
}
