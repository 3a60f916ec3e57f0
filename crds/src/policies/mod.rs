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
//! - `rollgate-user-actions`: a person's action written to a Rollout's status
//!   (`status.userAction`: promote, abort, retry, pause, resume) must name the requesting user
//!   in `by`, so the audit trail's actor of an action is who really asked. The gRPC API writes
//!   it while impersonating its caller.
//! - `rollgate-requested-by`: creating a Rollout or changing its `spec.template` must set the
//!   annotation `rollgate.io/requested-by` to the requesting user's name, and the annotation
//!   changes only together with the template. See [`crate::requester`].
//!
//! And one MutatingAdmissionPolicy (`admissionregistration.k8s.io/v1`, GA since Kubernetes
//! 1.36), so that nobody has to write that annotation by hand:
//!
//! - `rollgate-stamp-requested-by`: on a create or a `spec.template` change it sets
//!   `rollgate.io/requested-by` to the requesting user; on any other update it puts back the
//!   value the Rollout had, so the annotation can be neither forged nor removed. Mutating
//!   policies run before validating ones, so `rollgate-requested-by` then always passes; it
//!   stays as the guard for clusters where the mutating policy is absent or switched off.
//!
//! - `rollgate-controller-owned` and `rollgate-controller-replicasets`: the controller's own
//!   state (a Rollout's status but `userAction`, AnalysisRuns, AuditRecords, a Rollout's
//!   ReplicaSets) is written by the controller's identity alone. See [`controller_owned`].
//!
//! They live beside `crds/yaml/`, not in it, because `kubectl wait --for=condition=Established
//! -f crds/yaml` waits on every object in the directory and a policy never has that condition.
//! Install them after the CRDs: `kubectl apply --server-side -f crds/policies`.

use k8s_openapi::api::admissionregistration::v1::{
    ApplyConfiguration, MatchCondition, MatchResources, MutatingAdmissionPolicy,
    MutatingAdmissionPolicyBinding, MutatingAdmissionPolicyBindingSpec,
    MutatingAdmissionPolicySpec, Mutation, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation, Variable,
};
use kube::api::ObjectMeta;

pub mod controller_owned;

use crate::generate::GeneratedFile;
use crate::names::REQUESTED_BY_ANNOTATION;

/// The name of the policy on Approvals.
pub const APPROVALS_POLICY: &str = "rollgate-approvals";
/// The name of the policy on AuditRecords.
pub const AUDIT_RECORDS_POLICY: &str = "rollgate-audit-records";
/// The name of the policy on Rollouts' requested-by annotation.
pub const REQUESTED_BY_POLICY: &str = "rollgate-requested-by";
/// The name of the policy on the user actions people write to Rollouts' status.
pub const USER_ACTIONS_POLICY: &str = "rollgate-user-actions";
/// The name of the mutating policy that writes Rollouts' requested-by annotation.
pub const STAMP_REQUESTED_BY_POLICY: &str = "rollgate-stamp-requested-by";

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
    vec![
        approvals(),
        audit_records(),
        requested_by(),
        user_actions(),
        controller_owned::controller_owned(),
        controller_owned::controller_replicasets(),
    ]
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

fn user_actions() -> BoundPolicy {
    bound(
        USER_ACTIONS_POLICY,
        "rollouts/status",
        &["UPDATE"],
        vec![Variable {
            name: "changed".into(),
            expression: "has(object.status) && has(object.status.userAction) && !(has(oldObject.status) && has(oldObject.status.userAction) && object.status.userAction == oldObject.status.userAction)".into(),
        },
        // The previous action was not handled yet: replacing it would lose it.
        Variable {
            name: "pending".into(),
            expression: "has(oldObject.status) && has(oldObject.status.userAction) && !(has(oldObject.status.handledAction) && oldObject.status.handledAction == oldObject.status.userAction.id)".into(),
        }],
        vec![
            Validation {
                expression: "!variables.changed || object.status.userAction.by == request.userInfo.username".into(),
                message_expression: Some(
                    "'status.userAction.by must be your own user name, ' + request.userInfo.username + ': nobody acts in someone else\\'s name'".into(),
                ),
                reason: Some("Forbidden".into()),
                ..Default::default()
            },
            Validation {
                expression: "!variables.changed || !variables.pending".into(),
                message_expression: Some(
                    "'another action is still pending (' + oldObject.status.userAction.action + ' by ' + oldObject.status.userAction.by + ', id ' + oldObject.status.userAction.id + '): nothing was requested; ask again once the controller has handled it'".into(),
                ),
                reason: Some("Forbidden".into()),
                ..Default::default()
            },
        ],
    )
}

/// CEL: the requested-by annotation of `object` (`object` or `oldObject`), or `''`.
fn requested_by_of(object: &str) -> String {
    format!(
        "has({object}.metadata.annotations) && '{REQUESTED_BY_ANNOTATION}' in {object}.metadata.annotations ? {object}.metadata.annotations['{REQUESTED_BY_ANNOTATION}'] : ''"
    )
}

/// CEL: the request creates the Rollout or changes its pod template.
const TEMPLATE_CHANGED: &str =
    "oldObject == null || object.spec.template != oldObject.spec.template";

fn requested_by() -> BoundPolicy {
    bound(
        REQUESTED_BY_POLICY,
        "rollouts",
        &["CREATE", "UPDATE"],
        vec![
            Variable {
                name: "requestedBy".into(),
                expression: requested_by_of("object"),
            },
            Variable {
                name: "previousRequestedBy".into(),
                expression: format!("oldObject == null ? '' : ({})", requested_by_of("oldObject")),
            },
            Variable {
                name: "templateChanged".into(),
                expression: TEMPLATE_CHANGED.into(),
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

pub(crate) fn policy_metadata(name: &str) -> ObjectMeta {
    ObjectMeta {
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
    }
}

/// The rule matching `operations` on rollgate's `resource` (the main resource, not its
/// subresources).
fn rollgate_rule(resource: &str, operations: &[&str]) -> MatchResources {
    MatchResources {
        resource_rules: Some(vec![NamedRuleWithOperations {
            api_groups: Some(vec![crate::API_GROUP.into()]),
            api_versions: Some(vec![crate::API_VERSION.into()]),
            operations: Some(operations.iter().map(|op| (*op).to_owned()).collect()),
            resources: Some(vec![resource.to_owned()]),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// A mutating policy and its binding.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundMutatingPolicy {
    /// The policy.
    pub policy: MutatingAdmissionPolicy,
    /// Its binding (every namespace).
    pub binding: MutatingAdmissionPolicyBinding,
}

/// The mutating policy that records who requested a Rollout's template: see the module docs.
pub fn stamp_requested_by() -> BoundMutatingPolicy {
    let metadata = policy_metadata(STAMP_REQUESTED_BY_POLICY);
    let policy = MutatingAdmissionPolicy {
        metadata: metadata.clone(),
        spec: Some(MutatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            reinvocation_policy: Some("IfNeeded".into()),
            match_constraints: Some(rollgate_rule("rollouts", &["CREATE", "UPDATE"])),
            // An update that keeps the template of a Rollout that never had the annotation
            // (one created before the policy was installed) is left alone.
            match_conditions: Some(vec![MatchCondition {
                name: "sets-or-keeps-requester".into(),
                expression: format!(
                    "{TEMPLATE_CHANGED} || ({}) != ''",
                    requested_by_of("oldObject")
                ),
            }]),
            variables: Some(vec![Variable {
                name: "requester".into(),
                expression: format!(
                    "{TEMPLATE_CHANGED} ? request.userInfo.username : ({})",
                    requested_by_of("oldObject")
                ),
            }]),
            mutations: Some(vec![Mutation {
                patch_type: "ApplyConfiguration".into(),
                apply_configuration: Some(ApplyConfiguration {
                    expression: Some(format!(
                        "Object{{metadata: Object.metadata{{annotations: {{'{REQUESTED_BY_ANNOTATION}': variables.requester}}}}}}"
                    )),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    };
    let binding = MutatingAdmissionPolicyBinding {
        metadata,
        spec: Some(MutatingAdmissionPolicyBindingSpec {
            policy_name: Some(STAMP_REQUESTED_BY_POLICY.into()),
            ..Default::default()
        }),
    };
    BoundMutatingPolicy { policy, binding }
}

fn bound(
    name: &str,
    resource: &str,
    operations: &[&str],
    variables: Vec<Variable>,
    validations: Vec<Validation>,
) -> BoundPolicy {
    let metadata = policy_metadata(name);
    let policy = ValidatingAdmissionPolicy {
        metadata: metadata.clone(),
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(rollgate_rule(resource, operations)),
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

/// The YAML files for every policy (policy and binding in one file), in a stable order: the
/// validating policies, then the mutating one.
pub fn policy_files() -> Result<Vec<GeneratedFile>, serde_saphyr::ser_error::Error> {
    let mut files = admission_policies()
        .into_iter()
        .map(|bound| policy_file(&bound.policy.metadata, &bound.policy, &bound.binding))
        .collect::<Result<Vec<_>, _>>()?;
    let stamp = stamp_requested_by();
    files.push(policy_file(
        &stamp.policy.metadata,
        &stamp.policy,
        &stamp.binding,
    )?);
    Ok(files)
}

/// One file holding `policy` and its `binding`, named after the policy.
fn policy_file(
    metadata: &ObjectMeta,
    policy: &impl serde::Serialize,
    binding: &impl serde::Serialize,
) -> Result<GeneratedFile, serde_saphyr::ser_error::Error> {
    let name = metadata.name.clone().unwrap_or_default();
    let policy = serde_saphyr::to_string(policy)?;
    let binding = serde_saphyr::to_string(binding)?;
    Ok(GeneratedFile {
        file_name: format!("{name}.yaml"),
        content: format!(
            "# Generated by `cargo run -p rollgate-crds --bin crdgen`. Do not edit.\n{policy}---\n{binding}"
        ),
    })
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
        assert_eq!(files.len(), 7);
        let (mutating, validating) = files.split_last().unwrap();
        assert!(
            mutating
                .content
                .contains("kind: MutatingAdmissionPolicyBinding\n")
        );
        for file in validating {
            assert!(file.content.contains("kind: ValidatingAdmissionPolicy\n"));
            assert!(
                file.content
                    .contains("kind: ValidatingAdmissionPolicyBinding\n")
            );
        }
    }
}
