//! The fetch stage: everything one reconcile of a Rollout reads, read once, before anything is
//! decided. Its ReplicaSets, AnalysisRuns and Approvals, from the controller's stores
//! ([`crate::caches`], no request); the verdict of image verification for the desired
//! revision. When this process wrote a newer status than the cache holds, the
//! Rollout itself is read again first ([`fresh`]), so a decision is never made from a status
//! older than the controller's own last write.

use kube::ResourceExt;
use kube::api::Api;
use rollgate_crds::Rollout;
use rollgate_crds::analysis::AnalysisRun;
use rollgate_crds::revision::revision_hash;
use rollgate_crds::rollout::ContainerImage;

use crate::approvals::{self, Approvals};
use crate::context::Context;
use crate::decide::{RevisionState, Verification};
use crate::error::Error;
use crate::verification::{self, Verified};
use crate::{gates, replicaset};

/// What a reconcile read about one Rollout.
pub struct Fetched {
    /// The Rollout, as fresh as this process's own last write.
    pub rollout: Rollout,
    /// The revision hash of its pod template.
    pub desired_revision: String,
    /// The template's images, per container.
    pub images: Vec<ContainerImage>,
    /// Its ReplicaSets.
    pub revisions: Vec<RevisionState>,
    /// Its AnalysisRuns.
    pub runs: Vec<AnalysisRun>,
    /// Its Approvals (none looked at when it has no approval gate).
    pub approvals: Approvals,
    /// The verification gate of the desired revision.
    pub verification: Verification,
    /// The verifier's full verdict, when it judged this revision (for the per-image Events).
    pub verified: Option<Verified>,
}

/// `rollout` as the cache has it, or read again from the API server when this process wrote a
/// newer status than the cache holds.
pub async fn fresh(context: &Context, rollout: Rollout) -> Result<Rollout, Error> {
    if !context.written.is_behind(&rollout) {
        return Ok(rollout);
    }
    let namespace = rollout.namespace().ok_or(Error::NoNamespace)?;
    let rollouts: Api<Rollout> = Api::namespaced(context.client.clone(), &namespace);
    Ok(rollouts.get(&rollout.name_any()).await?)
}

/// Reads everything the decision about `rollout` (fresh, see [`fresh`]) needs.
pub async fn fetch(context: &Context, rollout: Rollout) -> Result<Fetched, Error> {
    let caches = context.caches();
    caches.ready().await?;
    let revisions = caches
        .replica_sets_of(&rollout)
        .iter()
        .filter_map(|rs| replicaset::revision_state(&rollout, rs))
        .collect();
    let runs = caches
        .analysis_runs_of(&rollout)
        .iter()
        .map(|run| AnalysisRun::clone(run))
        .collect();
    let approvals = if approvals::uses_approval(&rollout) {
        approvals::with_acting_permissions(context, &rollout, caches.approvals_of(&rollout)).await?
    } else {
        Approvals::default()
    };
    let desired_revision = revision_hash(&rollout.spec.template)?;
    let images = gates::template_images(&rollout);
    let verified = verify(context, &rollout, &desired_revision, &images).await?;
    let verification = verified.as_ref().map_or_else(
        || verification::without_verdict(context.verification.is_some(), &images),
        |verified| verified.gate.clone(),
    );
    Ok(Fetched {
        rollout,
        desired_revision,
        images,
        revisions,
        runs,
        approvals,
        verification,
        verified,
    })
}

/// Verifies the desired revision's images against their ImagePolicies, when verification is
/// on and the revision needs it: not when an image is not even pinned (the pinning rule refuses
/// it first), nor for the stable revision (it was verified when it rolled out, so a rollback
/// is not held by a registry).
async fn verify(
    context: &Context,
    rollout: &Rollout,
    desired_revision: &str,
    images: &[ContainerImage],
) -> Result<Option<Verified>, Error> {
    let Some(service) = &context.verification else {
        return Ok(None);
    };
    let stable = rollout
        .status
        .as_ref()
        .and_then(|status| status.stable_revision.as_deref());
    if stable == Some(desired_revision) || gates::pinning(images).is_err() {
        return Ok(None);
    }
    Ok(Some(
        service.verify(&context.client, rollout, images).await?,
    ))
}
