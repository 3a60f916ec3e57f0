//! The verdict records: one per policy an image must pass ([`PolicyCheck`]), one per image,
//! one per revision. The controller writes its Events, its `Verified` condition and its audit
//! records from them.
//!
//! An image may run only when every applicable policy's check lets it through, each on its
//! own: a dryRun policy's failure is let through by that policy's dry run, never by another's,
//! so it never makes up for an enforcing policy that refused.

use serde::Serialize;

/// The policy a verdict was reached under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyId {
    /// The ImagePolicy's name.
    pub name: String,
    /// Its `metadata.generation` when it was read.
    pub generation: Option<i64>,
}

/// What verification found for one image, before any override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Outcome {
    /// Every authority's signatures and every required attestation verified.
    Verified,
    /// The image fails: `reason` is the one-line message (for example
    /// `No valid signature from a trusted key for <image>@<digest>`), `details` say why.
    Refused {
        /// One line, fit for a condition message.
        reason: String,
        /// What was looked at and why it did not count.
        details: Vec<String>,
    },
    /// The registry could not be reached, timed out or answered with a server error.
    Unavailable {
        /// One line, fit for a condition message.
        reason: String,
    },
}

/// What one policy found for one image, and the override (if any) that let a failure through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyCheck {
    /// The policy.
    pub policy: PolicyId,
    /// Ids of the policy's trusted keys whose signatures verified.
    pub key_ids: Vec<String>,
    /// What the policy found.
    pub outcome: Outcome,
    /// The policy is in dryRun mode.
    pub dry_run: bool,
    /// The policy's failure was overridden by break-glass.
    pub break_glass: bool,
    /// The registry was unavailable and the policy's failOpen let the image through.
    pub failed_open: bool,
    /// The verdict came from the cache.
    pub cached: bool,
}

impl PolicyCheck {
    /// Whether this policy lets the image through: verified, or its own failure overridden.
    pub fn admitted(&self) -> bool {
        matches!(self.outcome, Outcome::Verified)
            || self.dry_run
            || self.failed_open
            || self.break_glass
    }
}

/// The verdict for one image of a revision. Besides the per-policy `checks`, it carries a
/// summary of them (the fields before `checks`): the outcome, policy and flags of the first
/// check that blocks (else of the first overridden one, else of the first), the key ids of all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageVerdict {
    /// The image as the pod template names it.
    pub image: String,
    /// Its digest, when the reference has a well-formed one.
    pub digest: Option<String>,
    /// The policy applied, when one applies.
    pub policy: Option<PolicyId>,
    /// Ids (hex SHA-256 of the DER public key) of the trusted keys whose signatures verified.
    pub key_ids: Vec<String>,
    /// What verification found.
    pub outcome: Outcome,
    /// The policy is in dryRun mode: a failure is recorded but does not block.
    pub dry_run: bool,
    /// A failure was overridden by break-glass (allowed by the policy, requested with a
    /// justification).
    pub break_glass: bool,
    /// The break-glass justification, when break-glass was requested.
    pub break_glass_justification: Option<String>,
    /// The registry was unavailable and the policy's `registryFailure: failOpen` let the image
    /// through.
    pub failed_open: bool,
    /// The verdict came from the cache.
    pub cached: bool,
    /// One check per applicable policy; empty when the image was refused before any policy
    /// applied (not pinned by digest, or no policy governs it).
    pub checks: Vec<PolicyCheck>,
}

impl ImageVerdict {
    /// Whether the image may run: at least one policy applied, and every one let it through.
    pub fn admitted(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(PolicyCheck::admitted)
    }

    /// The refusal or unavailability message, when the image did not verify.
    pub fn reason(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Verified => None,
            Outcome::Refused { reason, .. } | Outcome::Unavailable { reason } => Some(reason),
        }
    }
}

/// The verdicts for every image of one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionVerdict {
    /// One verdict per image, in the order given.
    pub images: Vec<ImageVerdict>,
}

impl RevisionVerdict {
    /// Whether every image may run.
    pub fn admitted(&self) -> bool {
        self.images.iter().all(ImageVerdict::admitted)
    }

    /// The verdicts of images that may not run.
    pub fn blocked(&self) -> impl Iterator<Item = &ImageVerdict> {
        self.images.iter().filter(|v| !v.admitted())
    }

    /// The message for the `Verified=False` condition: the first blocked image's reason.
    pub fn message(&self) -> Option<&str> {
        self.blocked().find_map(ImageVerdict::reason)
    }

    /// Whether every blocked image is blocked only because the registry was unavailable, so
    /// that retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        let mut blocked = self.blocked().peekable();
        blocked.peek().is_some()
            && blocked.all(|v| matches!(v.outcome, Outcome::Unavailable { .. }))
    }
}
