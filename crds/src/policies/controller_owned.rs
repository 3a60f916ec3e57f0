//! The admission policies that make the controller's own state writable by the controller's
//! identity alone: what the controller decides from must be either its own or an input designed
//! for people (the spec, `status.userAction`, Approvals), never something a person can forge.
//!
//! - `rollgate-controller-owned` (parameter: the ConfigMap
//!   [`CONTROLLER_IDENTITY_NAMESPACE`]/[`CONTROLLER_IDENTITY_PARAM`], key
//!   [`CONTROLLER_IDENTITY_KEY`], holding the controller's user name):
//!   - a Rollout's status: anyone but the controller may change `status.userAction` alone; every
//!     other field (phase, step, revisions, digests, gate, handled action, audit head,
//!     conditions, …) is refused with a message naming it. The list of fields is taken from the
//!     Rollout's schema when the policy is generated, so a new status field is covered without
//!     anyone remembering to add it;
//!   - AnalysisRuns: created, deleted and given a status by the controller alone; a person may
//!     only set `spec.terminate: true` (the lifecycle then ends running metrics Inconclusive, or
//!     Error when a measurement failed: never Successful), never relabel a run (the labels say
//!     which revision and attempt a verdict belongs to);
//!   - AuditRecords: created by the controller alone.
//!
//!   Kubernetes' own controllers (ServiceAccounts in `kube-system`: the garbage collector and the
//!   namespace controller) may delete, so deleting a namespace or a Rollout still cleans up.
//! - `rollgate-controller-replicasets` (same parameter): ReplicaSets labelled
//!   `rollgate.io/rollout` (the ones the controller counts as a Rollout's revisions) are created,
//!   changed and deleted by the controller (and Kubernetes' own controllers) alone. Their
//!   `/scale` subresource cannot be matched by label; a scale by someone else is undone by the
//!   next reconcile (the ReplicaSet watch triggers it) and is a matter for RBAC (see
//!   docs/security.md).
//!
//! The parameter is missing → every matched request is denied (`parameterNotFoundAction: Deny`):
//! the policies fail closed. The chart creates the ConfigMap with its ServiceAccount's name and
//! renders the bindings for the release's namespace; the controller checks at start-up that the
//! policies are installed and name it (see the controller's `trust` module).

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ParamKind, ParamRef, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation, Variable,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use schemars::JsonSchema;

use super::{BoundPolicy, policy_metadata};
use crate::analysis::AnalysisRunSpec;
use crate::names::ROLLOUT_LABEL;
use crate::rollout::RolloutStatus;

/// The name of the policy on the controller's own rollgate objects.
pub const CONTROLLER_OWNED_POLICY: &str = "rollgate-controller-owned";
/// The name of the policy on the controller's ReplicaSets.
pub const CONTROLLER_REPLICASETS_POLICY: &str = "rollgate-controller-replicasets";
/// The ConfigMap that names the controller's identity (the policies' parameter).
pub const CONTROLLER_IDENTITY_PARAM: &str = "rollgate-controller-identity";
/// The namespace of that ConfigMap in the generated bindings (the chart uses its own).
pub const CONTROLLER_IDENTITY_NAMESPACE: &str = "rollgate-system";
/// The ConfigMap key holding the controller's user name, as the API server authenticates it
/// (for a ServiceAccount: `system:serviceaccount:<namespace>:<name>`).
pub const CONTROLLER_IDENTITY_KEY: &str = "username";

/// The only status field people write.
const USER_ACTION_FIELD: &str = "userAction";
/// The only AnalysisRun spec field people write.
const TERMINATE_FIELD: &str = "terminate";

/// The top-level property names of `T`'s JSON schema, in schema order.
fn fields_of<T: JsonSchema>() -> Vec<String> {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    schema
        .get("properties")
        .and_then(|properties| properties.as_object())
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}

/// CEL: field `field` of `object.<part>` and `oldObject.<part>` is equally present and equal.
fn unchanged(part: &str, field: &str) -> String {
    let new = format!("(has(object.{part}) && has(object.{part}.{field}))");
    let old = format!("(has(oldObject.{part}) && has(oldObject.{part}.{field}))");
    format!("{new} == {old} && (!{new} || object.{part}.{field} == oldObject.{part}.{field})")
}

/// CEL: the labels and annotations of an updated object are unchanged.
const METADATA_UNCHANGED: &str = "(has(object.metadata.labels) ? object.metadata.labels : {}) == (has(oldObject.metadata.labels) ? oldObject.metadata.labels : {}) && (has(object.metadata.annotations) ? object.metadata.annotations : {}) == (has(oldObject.metadata.annotations) ? oldObject.metadata.annotations : {})";

/// The variables both policies share: who the controller is, and whether the request comes
/// from it or from one of Kubernetes' own controllers.
fn identity_variables() -> Vec<Variable> {
    vec![
        Variable {
            name: "isController".into(),
            expression: format!(
                "params != null && has(params.data) && '{CONTROLLER_IDENTITY_KEY}' in params.data && request.userInfo.username == params.data['{CONTROLLER_IDENTITY_KEY}']"
            ),
        },
        Variable {
            name: "isKubernetes".into(),
            expression: "request.userInfo.username.startsWith('system:serviceaccount:kube-system:') || request.userInfo.username == 'system:kube-controller-manager'".into(),
        },
        Variable {
            name: "resource".into(),
            expression: "request.resource.resource + (has(request.subResource) && request.subResource != '' ? '/' + request.subResource : '')".into(),
        },
    ]
}

fn rule(
    group: &str,
    version: &str,
    resources: &[&str],
    operations: &[&str],
) -> NamedRuleWithOperations {
    NamedRuleWithOperations {
        api_groups: Some(vec![group.to_owned()]),
        api_versions: Some(vec![version.to_owned()]),
        operations: Some(operations.iter().map(|op| (*op).to_owned()).collect()),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        ..Default::default()
    }
}

fn validation(expression: String, message: String) -> Validation {
    Validation {
        expression,
        message: Some(message),
        reason: Some("Forbidden".into()),
        ..Default::default()
    }
}

/// The validations of `rollgate-controller-owned`.
fn owned_validations() -> Vec<Validation> {
    let mut validations: Vec<Validation> = fields_of::<RolloutStatus>()
        .into_iter()
        .filter(|field| field != USER_ACTION_FIELD)
        .map(|field| {
            validation(
                format!(
                    "variables.resource != 'rollouts/status' || variables.isController || ({})",
                    unchanged("status", &field)
                ),
                format!(
                    "status.{field} is written by the rollgate controller alone; people write only status.userAction"
                ),
            )
        })
        .collect();
    validations.push(validation(
        "variables.resource != 'analysisruns/status' || variables.isController".into(),
        "an AnalysisRun's status is written by the rollgate controller alone".into(),
    ));
    validations.push(validation(
        "variables.resource != 'analysisruns' || request.operation != 'CREATE' || variables.isController".into(),
        "AnalysisRuns are created by the rollgate controller alone: a Rollout's steps say which analyses run".into(),
    ));
    let spec_unchanged = fields_of::<AnalysisRunSpec>()
        .into_iter()
        .filter(|field| field != TERMINATE_FIELD)
        .map(|field| format!("({})", unchanged("spec", &field)))
        .collect::<Vec<_>>()
        .join(" && ");
    validations.push(validation(
        format!(
            "variables.resource != 'analysisruns' || request.operation != 'UPDATE' || variables.isController || ({spec_unchanged} && {METADATA_UNCHANGED} && (!has(oldObject.spec.terminate) || !oldObject.spec.terminate || (has(object.spec.terminate) && object.spec.terminate)))"
        ),
        "people may only terminate an AnalysisRun (spec.terminate: true); its metrics, revisions, labels and annotations are the controller's".into(),
    ));
    validations.push(validation(
        "request.operation != 'DELETE' || variables.isController || variables.isKubernetes".into(),
        "AnalysisRuns and AuditRecords are deleted by the rollgate controller (or Kubernetes' garbage collector) alone".into(),
    ));
    validations.push(validation(
        "variables.resource != 'auditrecords' || request.operation != 'CREATE' || variables.isController".into(),
        "AuditRecords are written by the rollgate controller alone".into(),
    ));
    validations
}

/// The policy on the controller's own rollgate objects: see the module docs.
pub fn controller_owned() -> BoundPolicy {
    let group = crate::API_GROUP;
    let version = crate::API_VERSION;
    bound_with_identity(
        CONTROLLER_OWNED_POLICY,
        MatchResources {
            resource_rules: Some(vec![
                rule(group, version, &["rollouts/status"], &["UPDATE"]),
                rule(
                    group,
                    version,
                    &["analysisruns", "analysisruns/status"],
                    &["CREATE", "UPDATE", "DELETE"],
                ),
                rule(group, version, &["auditrecords"], &["CREATE", "DELETE"]),
            ]),
            ..Default::default()
        },
        owned_validations(),
    )
}

/// The policy on the ReplicaSets the controller counts as a Rollout's revisions.
pub fn controller_replicasets() -> BoundPolicy {
    bound_with_identity(
        CONTROLLER_REPLICASETS_POLICY,
        MatchResources {
            resource_rules: Some(vec![rule(
                "apps",
                "v1",
                &["replicasets"],
                &["CREATE", "UPDATE", "DELETE"],
            )]),
            object_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: ROLLOUT_LABEL.into(),
                    operator: "Exists".into(),
                    values: None,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
        vec![validation(
            "variables.isController || variables.isKubernetes".into(),
            format!(
                "ReplicaSets labelled {ROLLOUT_LABEL} are a Rollout's revisions: the rollgate controller alone creates, changes and deletes them"
            ),
        )],
    )
}

/// A policy with the controller-identity parameter, bound to deny, failing closed when the
/// parameter is missing.
fn bound_with_identity(
    name: &str,
    match_constraints: MatchResources,
    validations: Vec<Validation>,
) -> BoundPolicy {
    let metadata = policy_metadata(name);
    let policy = ValidatingAdmissionPolicy {
        metadata: metadata.clone(),
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            param_kind: Some(ParamKind {
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
            }),
            match_constraints: Some(match_constraints),
            variables: Some(identity_variables()),
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
            param_ref: Some(ParamRef {
                name: Some(CONTROLLER_IDENTITY_PARAM.into()),
                namespace: Some(CONTROLLER_IDENTITY_NAMESPACE.into()),
                parameter_not_found_action: Some("Deny".into()),
                selector: None,
            }),
            ..Default::default()
        },
    };
    BoundPolicy { policy, binding }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_field_but_the_user_action_is_guarded() {
        let fields = fields_of::<RolloutStatus>();
        assert!(fields.iter().any(|f| f == "stableRevision"));
        assert!(fields.iter().any(|f| f == "auditHead"));
        let validations = owned_validations();
        for field in fields.iter().filter(|f| *f != USER_ACTION_FIELD) {
            assert!(
                validations.iter().any(|v| v
                    .message
                    .as_deref()
                    .is_some_and(|m| m.starts_with(&format!("status.{field} ")))),
                "status.{field} is not guarded"
            );
        }
        assert!(!validations.iter().any(|v| {
            v.message
                .as_deref()
                .is_some_and(|m| m.starts_with("status.userAction "))
        }),);
    }

    #[test]
    fn the_analysis_run_rule_leaves_only_terminate_to_people() {
        let fields = fields_of::<AnalysisRunSpec>();
        assert!(fields.iter().any(|f| f == "metrics"));
        let rule = owned_validations()
            .into_iter()
            .find(|v| {
                v.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("people may only terminate"))
            })
            .unwrap();
        assert!(
            rule.expression
                .contains("object.spec.metrics == oldObject.spec.metrics")
        );
        assert!(
            !rule
                .expression
                .contains("object.spec.terminate == oldObject.spec.terminate")
        );
    }

    #[test]
    fn both_fail_closed_without_the_parameter() {
        for bound in [controller_owned(), controller_replicasets()] {
            let reference = bound.binding.spec.param_ref.unwrap();
            assert_eq!(
                reference.parameter_not_found_action.as_deref(),
                Some("Deny")
            );
            assert_eq!(reference.name.as_deref(), Some(CONTROLLER_IDENTITY_PARAM));
        }
    }
}
