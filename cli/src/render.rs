//! Pure text rendering: the list table, the status view, the history and audit tables.

use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use rollgate_crds::rollout::{CanaryStep, RolloutPhase};
use rollgate_crds::{AuditRecord, Rollout};

/// Left-aligned columns separated by three spaces, like kubectl's tables.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (index, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(index) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(index, cell)| format!("{cell:<width$}", width = widths[index]))
            .collect();
        let _ = writeln!(out, "{}", cells.join("   ").trim_end());
    }
    out
}

/// The phase of a Rollout, or `-`.
pub fn phase(rollout: &Rollout) -> String {
    rollout
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .map_or_else(|| "-".to_owned(), |p| format!("{p:?}"))
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The `list` table.
pub fn rollout_table(rollouts: &[Rollout], now: Timestamp) -> String {
    let rows: Vec<Vec<String>> = rollouts
        .iter()
        .map(|rollout| {
            let status = rollout.status.clone().unwrap_or_default();
            vec![
                rollout.metadata.name.clone().unwrap_or_default(),
                strategy(rollout).to_owned(),
                rollout.spec.desired_replicas().to_string(),
                or_dash(status.available_replicas),
                phase(rollout),
                step_text(rollout),
                or_dash(status.canary_weight),
                or_dash(status.current_revision),
                age(rollout.metadata.creation_timestamp.as_ref(), now),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "STRATEGY",
            "DESIRED",
            "AVAILABLE",
            "PHASE",
            "STEP",
            "WEIGHT",
            "REVISION",
            "AGE",
        ],
        &rows,
    )
}

/// `canary` or `blueGreen`.
pub fn strategy(rollout: &Rollout) -> &'static str {
    if rollout.spec.strategy.canary.is_some() {
        "canary"
    } else {
        "blueGreen"
    }
}

fn steps(rollout: &Rollout) -> &[CanaryStep] {
    rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .map_or(&[], |canary| canary.steps.as_slice())
}

fn step_text(rollout: &Rollout) -> String {
    let total = steps(rollout).len();
    match rollout.status.as_ref().and_then(|s| s.current_step_index) {
        Some(index) if total > 0 => format!("{index}/{total}"),
        _ => "-".to_owned(),
    }
}

/// One canary step in words.
pub fn describe_step(step: &CanaryStep) -> String {
    if let Some(weight) = step.set_weight {
        format!("setWeight {weight}%")
    } else if let Some(pause) = &step.pause {
        match &pause.duration {
            Some(duration) => format!("pause {duration}"),
            None => "pause (until promoted)".to_owned(),
        }
    } else if step.approval.is_some() {
        "approval".to_owned()
    } else if let Some(analysis) = &step.analysis {
        let names: Vec<&str> = analysis
            .templates
            .iter()
            .map(|t| t.template_name.as_str())
            .collect();
        format!("analysis {}", names.join(", "))
    } else {
        "?".to_owned()
    }
}

/// A weight as a 20-character bar: `[#####...............] 25%`.
pub fn weight_bar(weight: i32) -> String {
    let weight = weight.clamp(0, 100);
    let filled = usize::try_from(weight / 5).unwrap_or(0);
    format!(
        "[{}{}] {weight}%",
        "#".repeat(filled),
        ".".repeat(20 - filled)
    )
}

/// The `status` view.
pub fn status_view(rollout: &Rollout) -> String {
    let status = rollout.status.clone().unwrap_or_default();
    let mut out = String::new();
    let name = rollout.metadata.name.as_deref().unwrap_or("");
    let _ = writeln!(out, "Rollout:   {name} ({})", strategy(rollout));
    let _ = writeln!(out, "Phase:     {}", phase(rollout));
    if let Some(message) = &status.message {
        let _ = writeln!(out, "Message:   {message}");
    }
    let _ = writeln!(
        out,
        "Revision:  current {}, stable {}",
        or_dash(status.current_revision.as_ref()),
        or_dash(status.stable_revision.as_ref())
    );
    for image in &status.current_images {
        let _ = writeln!(out, "Image:     {} {}", image.container, image.image);
    }
    let _ = writeln!(
        out,
        "Replicas:  desired {}, current {}, updated {}, available {}",
        rollout.spec.desired_replicas(),
        status.replicas.unwrap_or(0),
        status.updated_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0)
    );
    if rollout.spec.strategy.canary.is_some() {
        let _ = writeln!(
            out,
            "Weight:    {}",
            weight_bar(status.canary_weight.unwrap_or(0))
        );
    }
    let current = status
        .current_step_index
        .and_then(|i| usize::try_from(i).ok());
    if !steps(rollout).is_empty() {
        let _ = writeln!(out, "Steps:");
        for (index, step) in steps(rollout).iter().enumerate() {
            let marker = match current {
                Some(c) if index < c => "✓",
                Some(c) if index == c => "▶",
                _ => " ",
            };
            let _ = writeln!(out, "  {marker} {index}: {}", describe_step(step));
        }
    }
    if let Some(gate) = &status.gate {
        let approvers = if gate.approvers.is_empty() {
            "none yet".to_owned()
        } else {
            gate.approvers.join(", ")
        };
        let _ = writeln!(
            out,
            "Gate:      revision {}: {}/{} approvals ({approvers})",
            gate.revision, gate.received, gate.required
        );
        if let Some(by) = &gate.rejected_by {
            let _ = writeln!(out, "           rejected by {by}");
        }
    }
    if !status.analysis_runs.is_empty() {
        let _ = writeln!(out, "Analysis:  {}", status.analysis_runs.join(", "));
    }
    if let Some(abort) = &status.abort {
        let _ = writeln!(out, "Aborted:   by {}: {}", abort.by, abort.reason);
    }
    out
}

/// Whether a watch should stop: the Rollout has settled for its current generation.
pub fn settled(rollout: &Rollout) -> Option<RolloutPhase> {
    let status = rollout.status.as_ref()?;
    if status.observed_generation != rollout.metadata.generation {
        return None;
    }
    status.phase.filter(|phase| {
        matches!(
            phase,
            RolloutPhase::Healthy | RolloutPhase::Aborted | RolloutPhase::Degraded
        )
    })
}

/// The audit records as a table, in sequence order.
pub fn audit_table(records: &[AuditRecord]) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| {
            let spec = &record.spec;
            let what = spec
                .message
                .clone()
                .or_else(|| spec.reason.clone())
                .unwrap_or_default();
            vec![
                spec.sequence.to_string(),
                spec.time.0.to_string(),
                format!("{:?}", spec.event),
                spec.actor.clone(),
                or_dash(spec.revision.as_ref()),
                what,
            ]
        })
        .collect();
    table(
        &["SEQ", "TIME", "EVENT", "ACTOR", "REVISION", "MESSAGE"],
        &rows,
    )
}

/// A kubectl-style age (`45s`, `3m`, `2h`, `5d`).
pub fn age(created: Option<&Time>, now: Timestamp) -> String {
    let Some(created) = created else {
        return "-".to_owned();
    };
    let seconds = now.as_second().saturating_sub(created.0.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
