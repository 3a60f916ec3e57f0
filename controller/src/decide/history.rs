//! Old revisions: scaled to zero, the newest `revisionHistoryLimit` kept for rollback, the rest
//! deleted.

use super::{ReplicaSetPlan, RevisionState};

/// Plans the revisions not in `live`: each scaled to zero, and those beyond `limit` (oldest
/// first) deleted. Returns (scale-downs, deletions).
pub fn retire(
    revisions: &[RevisionState],
    live: &[&str],
    limit: i32,
) -> (Vec<ReplicaSetPlan>, Vec<String>) {
    let mut old: Vec<&RevisionState> = revisions
        .iter()
        .filter(|state| !live.contains(&state.revision.as_str()))
        .collect();
    // Newest first; ties (or unknown times) by name, for a stable order.
    old.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| a.revision.cmp(&b.revision))
    });
    let keep = usize::try_from(limit.max(0)).unwrap_or(0);
    let scale_downs = old
        .iter()
        .take(keep)
        .map(|state| ReplicaSetPlan {
            revision: state.revision.clone(),
            replicas: 0,
        })
        .collect();
    let deletions = old
        .iter()
        .skip(keep)
        .map(|state| state.revision.clone())
        .collect();
    (scale_downs, deletions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(revision: &str, minute: u32) -> RevisionState {
        RevisionState {
            revision: revision.into(),
            replicas: 1,
            available: 1,
            ready: 1,
            created: Some(format!("2026-01-01T00:{minute:02}:00Z").parse().unwrap()),
        }
    }

    #[test]
    fn keeps_the_newest_old_revisions_and_deletes_the_rest() {
        let revisions = [
            state("a", 1),
            state("b", 2),
            state("c", 3),
            state("d", 4),
            state("e", 5),
        ];
        let (kept, deleted) = retire(&revisions, &["e", "d"], 2);
        assert_eq!(
            kept,
            [
                ReplicaSetPlan {
                    revision: "c".into(),
                    replicas: 0
                },
                ReplicaSetPlan {
                    revision: "b".into(),
                    replicas: 0
                }
            ]
        );
        assert_eq!(deleted, ["a"]);
        let (kept, deleted) = retire(&revisions, &["e"], 0);
        assert!(kept.is_empty());
        assert_eq!(deleted.len(), 4);
    }
}
