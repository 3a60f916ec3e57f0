//! Decisions are never made from a status older than the one this controller last wrote.
//!
//! The reconciler reads Rollouts from its watch cache, which may not yet hold the status this
//! process wrote a moment ago; deciding from the older status would re-run what was already
//! done (scale a canary back to the previous step's weight, complete a step twice). Two guards:
//!
//! - [`WrittenStatuses`] remembers, per Rollout uid, a fingerprint of the controller's part of
//!   the last status it wrote (everything but `userAction`, which people write, and the audit
//!   head, written separately). A cached Rollout whose status does not match is behind: the
//!   reconciler reads it from the API server before deciding. After a restart the memory is
//!   empty and the cache is fresh from its initial list.
//! - Every status write carries the `resourceVersion` the decision was made from
//!   ([`precondition`]), so a write based on an outdated read (another replica's write during a
//!   leadership change, a person's user action in between) is refused with 409 and the Rollout
//!   is decided again; nothing older than what was read is ever written.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use kube::ResourceExt;
use moka::sync::Cache;
use rollgate_crds::{Rollout, RolloutStatus};

/// How many Rollouts' fingerprints are kept (the least recently used beyond that are dropped,
/// and those Rollouts are decided from the cache as before).
const CAPACITY: u64 = 200_000;

/// The fingerprints of the statuses this process wrote, per Rollout uid.
pub struct WrittenStatuses {
    fingerprints: Cache<String, u64>,
}

impl Default for WrittenStatuses {
    fn default() -> Self {
        WrittenStatuses {
            fingerprints: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }
}

impl WrittenStatuses {
    /// Remembers that `status` was written for `rollout`.
    pub fn record(&self, rollout: &Rollout, status: &RolloutStatus) {
        if let Some(uid) = rollout.uid() {
            self.fingerprints.insert(uid, fingerprint(status));
        }
    }

    /// Whether `rollout`, as cached, shows an older status than this process last wrote.
    pub fn is_behind(&self, rollout: &Rollout) -> bool {
        let Some(written) = rollout.uid().and_then(|uid| self.fingerprints.get(&uid)) else {
            return false;
        };
        let cached = rollout.status.clone().unwrap_or_default();
        fingerprint(&cached) != written
    }
}

/// The controller's part of a status, hashed.
fn fingerprint(status: &RolloutStatus) -> u64 {
    let mut owned = status.clone();
    owned.user_action = None;
    owned.audit_head = None;
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(&owned)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// The `metadata` of a status apply patch for `rollout`: its name, and the resourceVersion the
/// decision was made from as the write's precondition.
pub fn precondition(rollout: &Rollout) -> serde_json::Value {
    serde_json::json!({
        "name": rollout.name_any(),
        "resourceVersion": rollout.resource_version(),
    })
}

/// Whether a write was refused because the object changed since it was read.
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollgate_crds::rollout::RolloutPhase;

    fn rollout_with(status: RolloutStatus) -> Rollout {
        let mut rollout: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "rollgate.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "7"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}},
                     "strategy": {"canary": {"steps": []}}}
        }))
        .unwrap();
        rollout.status = Some(status);
        rollout
    }

    #[test]
    fn a_cache_behind_the_last_write_is_noticed() {
        let written = WrittenStatuses::default();
        let old = RolloutStatus {
            current_step_index: Some(1),
            ..RolloutStatus::default()
        };
        let new = RolloutStatus {
            current_step_index: Some(2),
            phase: Some(RolloutPhase::Progressing),
            ..RolloutStatus::default()
        };
        assert!(
            !written.is_behind(&rollout_with(old.clone())),
            "nothing written yet"
        );
        written.record(&rollout_with(old.clone()), &new);
        assert!(written.is_behind(&rollout_with(old)));
        assert!(!written.is_behind(&rollout_with(new.clone())));
        // A person's user action or the audit head does not make the cache look behind.
        let mut with_head = new;
        with_head.audit_head = Some(rollgate_crds::rollout::AuditHead {
            sequence: 3,
            hash: "0".repeat(64),
            ..Default::default()
        });
        assert!(!written.is_behind(&rollout_with(with_head)));
    }

    #[test]
    fn the_precondition_names_the_version_read() {
        let rollout = rollout_with(RolloutStatus::default());
        assert_eq!(precondition(&rollout)["resourceVersion"], "7");
    }
}
