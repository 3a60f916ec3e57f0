//! Delivery strategies: canary (ordered steps, optional traffic router, background analysis)
//! and blue-green (preview and active Services, promotion gate, analysis around promotion).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::duration::{DURATION_CEL_MESSAGE, DURATION_CEL_RULE};

/// How a new revision is released. Exactly one of `canary` or `blueGreen` is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.canary) != has(self.blueGreen)")
    .message("exactly one of canary or blueGreen must be set"))]
pub struct RolloutStrategy {
    /// Shift traffic to the new revision step by step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,

    /// Run the new revision beside the active one and switch all traffic at promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
}

/// A canary release: the new revision receives a growing share of traffic, step by step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.trafficRouting) || (has(self.stableService) && has(self.canaryService))")
    .message("trafficRouting needs both stableService and canaryService"))]
pub struct CanaryStrategy {
    /// The steps, in order. After the last step the new revision becomes stable. No steps means
    /// the new revision is promoted as soon as it is available.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub steps: Vec<CanaryStep>,

    /// Service whose selector rollgate points at the stable revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_service: Option<String>,

    /// Service whose selector rollgate points at the canary revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_service: Option<String>,

    /// The traffic router. Unset: the canary weight is the ratio of canary pods to all pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,

    /// Background analysis that runs across all steps; a failure aborts the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStep>,

    /// Pods above the desired count allowed while scaling, as a number or a percentage of the
    /// desired count. Defaults to 25%. Not used with trafficRouting: the stable revision then
    /// keeps every pod and the canary's pods come on top.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    #[x_kube(validation = kube::core::Rule::new("type(self) == int ? self >= 0 : self.matches('^[0-9]+%$')")
        .message("must be a non-negative number or a percentage such as 25%"))]
    pub max_surge: Option<IntOrString>,

    /// Pods below the desired count allowed while scaling, as a number or a percentage of the
    /// desired count. Defaults to 25%. Not used with trafficRouting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    #[x_kube(validation = kube::core::Rule::new("type(self) == int ? self >= 0 : self.matches('^[0-9]+%$')")
        .message("must be a non-negative number or a percentage such as 25%"))]
    pub max_unavailable: Option<IntOrString>,
}

/// One canary step. Exactly one of `setWeight`, `pause`, `approval` or `analysis` is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "[has(self.setWeight), has(self.pause), has(self.approval), has(self.analysis)].filter(x, x).size() == 1"
).message("a step sets exactly one of setWeight, pause, approval or analysis"))]
pub struct CanaryStep {
    /// Percent of traffic (0 to 100) to send to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub set_weight: Option<i32>,

    /// Wait for a duration, or without one until a person promotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,

    /// Wait until the approval gate opens (see `spec.approval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalStep>,

    /// Run an analysis and wait for its verdict: success continues, failure aborts,
    /// inconclusive pauses for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStep>,
}

/// A pause step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// How long to wait, for example `30s` or `5m`. Without it the rollout waits until a person
    /// promotes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_CEL_RULE).message(DURATION_CEL_MESSAGE))]
    pub duration: Option<String>,
}

/// An approval step: the rollout waits until the revision has the approvals that
/// `spec.approval` requires.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalStep {}

/// An analysis to run: one or more templates, and the arguments they take.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStep {
    /// The templates whose metrics make up the analysis.
    #[schemars(length(min = 1, max = 20))]
    pub templates: Vec<AnalysisTemplateRef>,

    /// Values for the templates' arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub args: Vec<AnalysisArg>,
}

/// A reference to an AnalysisTemplate or ClusterAnalysisTemplate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateRef {
    /// Name of the template.
    #[schemars(length(min = 1, max = 253))]
    pub template_name: String,

    /// Whether the template is a ClusterAnalysisTemplate. Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
}

/// A value for a template argument.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisArg {
    /// Argument name, as the template declares it.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Argument value.
    pub value: String,
}

/// The traffic router of a canary. Exactly one router is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.gatewayAPI)")
    .message("a traffic router must be set: gatewayAPI"))]
pub struct TrafficRouting {
    /// Route traffic by setting backendRef weights on a Gateway API HTTPRoute.
    #[serde(
        rename = "gatewayAPI",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway_api: Option<GatewayApiRouting>,
}

/// Gateway API routing: rollgate sets the weights of the stable and canary Services'
/// backendRefs in the named HTTPRoute.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiRouting {
    /// Name of the HTTPRoute, in the Rollout's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub http_route: String,
}

/// A blue-green release: the new revision runs beside the active one behind the preview
/// Service; promotion switches the active Service to it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// Service that receives production traffic; its selector points at the active revision.
    #[schemars(length(min = 1, max = 63))]
    pub active_service: String,

    /// Service whose selector points at the new revision before promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<String>,

    /// Pods of the new revision before promotion. Defaults to the full replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub preview_replica_count: Option<i32>,

    /// Promote as soon as the new revision is ready and pre-promotion analysis passed.
    /// Defaults to false: promotion waits for the approval gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion: Option<bool>,

    /// Analysis that must pass before promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<AnalysisStep>,

    /// Analysis that runs after promotion; a failure switches traffic back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<AnalysisStep>,

    /// Seconds to keep the old revision running after promotion. Defaults to 30, at most a day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub scale_down_delay_seconds: Option<i32>,
}
