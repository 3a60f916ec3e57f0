//! The reflector stores a reconcile reads a Rollout's ReplicaSets, AnalysisRuns and Approvals
//! from, instead of listing them on every reconcile (three LISTs per reconcile at most, six per
//! Rollout on a canary's way, before these stores).
//!
//! Each store is filled by a watch that also wakes the Rollout reconciler
//! ([`crate::controllers`]): the reflector applies a change to its store before the change is
//! passed on, so a reconcile started by a change always sees it. A reconcile waits until all
//! three stores hold their first full list ([`Caches::ready`]): a decision made from an empty
//! store would believe a Rollout has no ReplicaSets.
//!
//! What a store holds may be older than the controller's own last write (its watch event has
//! not arrived yet). That is safe by construction: every write is a server-side apply of the
//! desired state or a create that tolerates AlreadyExists, so a decision from an older view
//! repeats a write at worst, and the watch event that brings the newer state wakes the Rollout
//! again. The Rollout itself is never read from an older view than this process wrote
//! ([`crate::freshness`]).
//!
//! The stores keep neither managedFields nor `kubectl.kubernetes.io/last-applied-configuration`
//! (about half of an object's metadata, never read by the controller). A new leadership term
//! starts new stores from a fresh list ([`crate::context::Context::install_caches`]).

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::{Resource, ResourceExt};
use rollgate_crds::analysis::AnalysisRun;
use rollgate_crds::names::ROLLOUT_LABEL;
use rollgate_crds::{Approval, Rollout};

/// The annotation `kubectl apply` keeps a second copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Read handles of the three stores.
#[derive(Clone)]
pub struct Caches {
    replica_sets: Store<ReplicaSet>,
    analysis_runs: Store<AnalysisRun>,
    approvals: Store<Approval>,
    /// Whether the three have synced, awaited by one reconcile for all: a store's own
    /// `wait_until_ready` wakes only the last of several concurrent waiters (it polls one
    /// oneshot receiver), which left the first reconciles of a start waiting forever.
    synced: Arc<tokio::sync::OnceCell<Result<(), CachesStopped>>>,
}

/// The write halves of the stores, each consumed by the reflector that fills it.
pub struct CacheWriters {
    /// ReplicaSets labelled `rollgate.io/rollout`.
    pub replica_sets: Writer<ReplicaSet>,
    /// AnalysisRuns labelled `rollgate.io/rollout`.
    pub analysis_runs: Writer<AnalysisRun>,
    /// Every Approval.
    pub approvals: Writer<Approval>,
}

/// Empty stores and the writers that fill them.
pub fn caches() -> (Caches, CacheWriters) {
    let (replica_sets, replica_set_writer) = reflector::store();
    let (analysis_runs, analysis_run_writer) = reflector::store();
    let (approvals, approval_writer) = reflector::store();
    let caches = Caches {
        replica_sets,
        analysis_runs,
        approvals,
        synced: Arc::default(),
    };
    let writers = CacheWriters {
        replica_sets: replica_set_writer,
        analysis_runs: analysis_run_writer,
        approvals: approval_writer,
    };
    (caches, writers)
}

/// The stores have stopped before their first full list (the process is stopping).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the ReplicaSet, AnalysisRun and Approval caches stopped before they synced")]
pub struct CachesStopped;

impl Caches {
    /// Waits until every store holds its first full list. Any number of reconciles may wait
    /// at once: one of them waits on the stores, the others on it.
    pub async fn ready(&self) -> Result<(), CachesStopped> {
        *self
            .synced
            .get_or_init(|| async {
                let (replica_sets, analysis_runs, approvals) = tokio::join!(
                    self.replica_sets.wait_until_ready(),
                    self.analysis_runs.wait_until_ready(),
                    self.approvals.wait_until_ready()
                );
                replica_sets
                    .and(analysis_runs)
                    .and(approvals)
                    .map_err(|_| CachesStopped)
            })
            .await
    }

    /// The ReplicaSets labelled as `rollout`'s (whether it controls them is the caller's
    /// question: a label can be copied).
    pub fn replica_sets_of(&self, rollout: &Rollout) -> Vec<Arc<ReplicaSet>> {
        labelled_for(&self.replica_sets, rollout)
    }

    /// The AnalysisRuns labelled as `rollout`'s.
    pub fn analysis_runs_of(&self, rollout: &Rollout) -> Vec<Arc<AnalysisRun>> {
        labelled_for(&self.analysis_runs, rollout)
    }

    /// The Approvals in `rollout`'s namespace that name it.
    pub fn approvals_of(&self, rollout: &Rollout) -> Vec<Arc<Approval>> {
        let name = rollout.name_any();
        let namespace = rollout.namespace();
        self.approvals
            .state()
            .into_iter()
            .filter(|approval| approval.namespace() == namespace && approval.spec.rollout == name)
            .collect()
    }
}

/// The objects in `store`, in `rollout`'s namespace, whose `rollgate.io/rollout` label names it.
fn labelled_for<K>(store: &Store<K>, rollout: &Rollout) -> Vec<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    let name = rollout.name_any();
    let namespace = rollout.namespace();
    store
        .state()
        .into_iter()
        .filter(|object| {
            object.namespace() == namespace
                && object.labels().get(ROLLOUT_LABEL).map(String::as_str) == Some(name.as_str())
        })
        .collect()
}

/// Drops what the controller never reads from an object before it is stored: managedFields
/// and the last-applied annotation.
pub fn prune<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Filling stores by hand, for tests of what reads them.
#[cfg(test)]
pub mod tests {
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;

    /// Fills `writer`'s store with `objects` as one full list, as the reflector's first list
    /// does.
    pub fn fill<K>(writer: &mut Writer<K>, objects: Vec<K>)
    where
        K: Resource + Clone + 'static,
        K::DynamicType: std::hash::Hash + Eq + Clone,
    {
        writer.apply_watcher_event(&Event::Init);
        for object in objects {
            writer.apply_watcher_event(&Event::InitApply(object));
        }
        writer.apply_watcher_event(&Event::InitDone);
    }

    fn replica_set(namespace: &str, rollout: &str, name: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {ROLLOUT_LABEL: rollout},
                         "annotations": {LAST_APPLIED: "{}", "keep": "yes"},
                         "managedFields": [{"manager": "kubectl"}]}
        }))
        .expect("a ReplicaSet")
    }

    #[test]
    fn a_rollout_sees_only_the_replica_sets_labelled_for_it_in_its_namespace() {
        let (caches, mut writers) = caches();
        fill(
            &mut writers.replica_sets,
            vec![
                replica_set("shop", "web", "web-v1"),
                replica_set("shop", "web-2", "web-2-v1"),
                replica_set("other", "web", "web-v1"),
            ],
        );
        let web = crate::decide::tests::rollout(json!({"canary": {"steps": []}}), 1);
        let names: Vec<String> = caches
            .replica_sets_of(&web)
            .iter()
            .map(|rs| format!("{}/{}", rs.namespace().unwrap(), rs.name_any()))
            .collect();
        assert_eq!(names, ["shop/web-v1"]);
    }

    #[test]
    fn pruning_drops_managed_fields_and_the_last_applied_copy_only() {
        let mut rs = replica_set("shop", "web", "web-v1");
        prune(&mut rs);
        assert_eq!(rs.metadata.managed_fields, None);
        let annotations = rs.metadata.annotations.expect("annotations");
        assert_eq!(annotations.len(), 1);
        assert_eq!(annotations["keep"], "yes");
    }
}
