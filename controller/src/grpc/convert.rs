//! From the API types to the `rollgate.v1` messages. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use rollgate_crds::rollout::{AbortStatus, ContainerImage, GateStatus, RolloutPhase};
use rollgate_crds::{AuditRecord, Rollout};
use rollgate_proto::v1;

/// The message of a Rollout.
pub fn rollout(rollout: &Rollout) -> v1::Rollout {
    let spec = &rollout.spec;
    let status = rollout.status.clone().unwrap_or_default();
    let (strategy, step_count) = match (&spec.strategy.canary, &spec.strategy.blue_green) {
        (Some(canary), _) => ("canary", canary.steps.len()),
        (None, Some(_)) => ("blueGreen", 0),
        (None, None) => ("", 0),
    };
    v1::Rollout {
        id: Some(v1::RolloutRef {
            namespace: rollout.metadata.namespace.clone().unwrap_or_default(),
            name: rollout.metadata.name.clone().unwrap_or_default(),
        }),
        strategy: strategy.to_owned(),
        phase: phase(status.phase) as i32,
        message: status.message.unwrap_or_default(),
        current_step_index: status.current_step_index.unwrap_or_default(),
        step_count: i32::try_from(step_count).unwrap_or(i32::MAX),
        current_revision: status.current_revision.unwrap_or_default(),
        stable_revision: status.stable_revision.unwrap_or_default(),
        current_images: images(&status.current_images),
        stable_images: images(&status.stable_images),
        canary_weight: status.canary_weight.unwrap_or_default(),
        desired_replicas: spec.desired_replicas(),
        replicas: status.replicas.unwrap_or_default(),
        updated_replicas: status.updated_replicas.unwrap_or_default(),
        available_replicas: status.available_replicas.unwrap_or_default(),
        conditions: status.conditions.iter().map(condition).collect(),
        gate: status.gate.as_ref().map(gate),
        analysis_runs: status.analysis_runs,
        abort: status.abort.as_ref().map(abort),
        observed_generation: status.observed_generation.unwrap_or_default(),
        resource_version: rollout
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default(),
    }
}

/// The message of a phase; `UNSPECIFIED` before the controller reported one.
pub fn phase(phase: Option<RolloutPhase>) -> v1::Phase {
    match phase {
        None => v1::Phase::Unspecified,
        Some(RolloutPhase::Progressing) => v1::Phase::Progressing,
        Some(RolloutPhase::Paused) => v1::Phase::Paused,
        Some(RolloutPhase::AwaitingApproval) => v1::Phase::AwaitingApproval,
        Some(RolloutPhase::Healthy) => v1::Phase::Healthy,
        Some(RolloutPhase::Degraded) => v1::Phase::Degraded,
        Some(RolloutPhase::Aborted) => v1::Phase::Aborted,
    }
}

/// The message of a gate.
pub fn gate(gate: &GateStatus) -> v1::Gate {
    v1::Gate {
        revision: gate.revision.clone(),
        required: gate.required,
        received: gate.received,
        approvers: gate.approvers.clone(),
        rejected_by: gate.rejected_by.clone().unwrap_or_default(),
    }
}

/// The message of an audit record.
pub fn audit_record(record: &AuditRecord) -> v1::AuditRecord {
    let spec = &record.spec;
    v1::AuditRecord {
        name: record.metadata.name.clone().unwrap_or_default(),
        sequence: i64::try_from(spec.sequence).unwrap_or(i64::MAX),
        previous_hash: spec.previous_hash.clone().unwrap_or_default(),
        hash: spec.hash.clone(),
        time: Some(timestamp(&spec.time)),
        event: format!("{:?}", spec.event),
        actor: spec.actor.clone(),
        revision: spec.revision.clone().unwrap_or_default(),
        reason: spec.reason.clone().unwrap_or_default(),
        details: spec.details.clone().into_iter().collect(),
        message: spec.message.clone().unwrap_or_default(),
    }
}

fn images(images: &[ContainerImage]) -> Vec<v1::ContainerImage> {
    images
        .iter()
        .map(|image| v1::ContainerImage {
            container: image.container.clone(),
            image: image.image.clone(),
        })
        .collect()
}

fn condition(condition: &Condition) -> v1::Condition {
    v1::Condition {
        r#type: condition.type_.clone(),
        status: condition.status.clone(),
        reason: condition.reason.clone(),
        message: condition.message.clone(),
        last_transition_time: Some(timestamp(&condition.last_transition_time)),
    }
}

fn abort(abort: &AbortStatus) -> v1::Abort {
    v1::Abort {
        reason: abort.reason.clone(),
        by: abort.by.clone(),
        time: Some(timestamp(&abort.time)),
    }
}

fn timestamp(time: &Time) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.0.as_second(),
        nanos: time.0.subsec_nanosecond(),
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
