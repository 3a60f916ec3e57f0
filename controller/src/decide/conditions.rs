//! Conditions in the metav1.Condition shape: setting one keeps its transition time while its
//! status is unchanged, so an unchanged world writes an unchanged status (no self-triggered
//! reconcile loop).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Sets condition `type_` to `status` (`"True"`, `"False"` or `"Unknown"`).
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_owned();
    let message = message.into();
    match conditions
        .iter_mut()
        .find(|condition| condition.type_ == type_)
    {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = Time(now);
            }
            existing.status = status;
            existing.reason = reason.to_owned();
            existing.message = message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            "Available",
            false,
            "Waiting",
            "0/3",
            Some(1),
            t0,
        );
        set(
            &mut conditions,
            "Available",
            false,
            "Waiting",
            "1/3",
            Some(1),
            t1,
        );
        assert_eq!(conditions[0].last_transition_time, Time(t0));
        assert_eq!(conditions[0].message, "1/3");
        set(
            &mut conditions,
            "Available",
            true,
            "Available",
            "3/3",
            Some(1),
            t1,
        );
        assert_eq!(conditions[0].last_transition_time, Time(t1));
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions.len(), 1);
    }
}
