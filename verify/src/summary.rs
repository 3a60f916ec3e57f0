//! What the `Verified=True` condition (and so the audit record, which copies it) says about an
//! admitted revision: exactly what happened, never "passed" when something was let through.
//!
//! The reason is the strongest override any check used: `BreakGlass`, then `FailedOpen`, then
//! `DryRun`; `Verified` only when every check of every image verified. The message names, per
//! image, each policy with the ids of the keys that verified (the first 16 hex digits of the
//! SHA-256 of the DER public key, as in the Events' full `keyIds`), or the override that let the
//! policy's failure through and the failure itself.

use crate::verdict::{ImageVerdict, Outcome, PolicyCheck, RevisionVerdict};

/// The reason and message of the Verified condition of an admitted revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `Verified`, `DryRun`, `FailedOpen` or `BreakGlass`.
    pub reason: &'static str,
    /// Per image, what each policy found.
    pub message: String,
}

/// How many hex digits of a key id the message shows.
const SHORT_KEY_ID: usize = 16;

impl RevisionVerdict {
    /// The condition of an admitted revision; `None` when an image is blocked.
    pub fn summary(&self) -> Option<Summary> {
        if !self.admitted() {
            return None;
        }
        let checks = || self.images.iter().flat_map(|image| &image.checks);
        let overridden = |flag: fn(&PolicyCheck) -> bool| {
            checks().any(|check| check.outcome != Outcome::Verified && flag(check))
        };
        let reason = if overridden(|c| c.break_glass) {
            "BreakGlass"
        } else if overridden(|c| c.failed_open) {
            "FailedOpen"
        } else if overridden(|c| c.dry_run) {
            "DryRun"
        } else {
            "Verified"
        };
        let message = self
            .images
            .iter()
            .map(image_line)
            .collect::<Vec<_>>()
            .join("; ");
        Some(Summary { reason, message })
    }
}

fn image_line(image: &ImageVerdict) -> String {
    let checks: Vec<String> = image
        .checks
        .iter()
        .map(|check| check_text(check, image.break_glass_justification.as_deref()))
        .collect();
    format!("{}: {}", image.image, checks.join(", "))
}

fn check_text(check: &PolicyCheck, justification: Option<&str>) -> String {
    let policy = &check.policy.name;
    let failure = match &check.outcome {
        Outcome::Verified => {
            let keys: Vec<&str> = check
                .key_ids
                .iter()
                .map(|id| id.get(..SHORT_KEY_ID).unwrap_or(id))
                .collect();
            return format!("verified by ImagePolicy {policy} (keys {})", keys.join(" "));
        }
        Outcome::Refused { reason, .. } | Outcome::Unavailable { reason } => reason,
    };
    if check.break_glass {
        let justification = justification.unwrap_or_default();
        format!("break-glass ({justification}) over ImagePolicy {policy}, which refused: {failure}")
    } else if check.failed_open {
        format!("failed open under ImagePolicy {policy}: {failure}")
    } else {
        format!("dry run of ImagePolicy {policy}, which would refuse: {failure}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::PolicyId;

    fn check(policy: &str, outcome: Outcome) -> PolicyCheck {
        PolicyCheck {
            policy: PolicyId {
                name: policy.into(),
                generation: Some(1),
            },
            key_ids: if outcome == Outcome::Verified {
                vec!["0123456789abcdef0123".into()]
            } else {
                Vec::new()
            },
            outcome,
            dry_run: false,
            break_glass: false,
            failed_open: false,
            cached: false,
        }
    }

    fn refused() -> Outcome {
        Outcome::Refused {
            reason: "No valid signature from a trusted key for r/app@sha256:aa".into(),
            details: Vec::new(),
        }
    }

    fn revision(checks: Vec<PolicyCheck>) -> RevisionVerdict {
        RevisionVerdict {
            images: vec![ImageVerdict {
                image: "r/app@sha256:aa".into(),
                digest: Some("sha256:aa".into()),
                policy: None,
                key_ids: Vec::new(),
                outcome: Outcome::Verified,
                dry_run: false,
                break_glass: false,
                break_glass_justification: Some("INC-7".into()),
                failed_open: false,
                cached: false,
                checks,
            }],
        }
    }

    #[test]
    fn verified_names_every_policy_and_its_keys() {
        let summary = revision(vec![
            check("base", Outcome::Verified),
            check("shop", Outcome::Verified),
        ])
        .summary()
        .expect("admitted");
        assert_eq!(summary.reason, "Verified");
        assert_eq!(
            summary.message,
            "r/app@sha256:aa: verified by ImagePolicy base (keys 0123456789abcdef), \
             verified by ImagePolicy shop (keys 0123456789abcdef)"
        );
    }

    #[test]
    fn a_dry_run_failure_is_called_a_dry_run_and_never_admits_an_enforcing_refusal() {
        let mut trial = check("trial", refused());
        trial.dry_run = true;
        let summary = revision(vec![check("base", Outcome::Verified), trial.clone()])
            .summary()
            .expect("admitted");
        assert_eq!(summary.reason, "DryRun");
        assert!(
            summary
                .message
                .contains("dry run of ImagePolicy trial, which would refuse: No valid signature"),
            "{}",
            summary.message
        );
        let blocked = revision(vec![check("base", refused()), trial]);
        assert!(!blocked.admitted());
        assert_eq!(blocked.summary(), None);
    }

    #[test]
    fn break_glass_outranks_the_other_overrides() {
        let mut forced = check("base", refused());
        forced.break_glass = true;
        let mut open = check(
            "mirror",
            Outcome::Unavailable {
                reason: "down".into(),
            },
        );
        open.failed_open = true;
        let summary = revision(vec![forced, open]).summary().expect("admitted");
        assert_eq!(summary.reason, "BreakGlass");
        assert!(
            summary
                .message
                .contains("break-glass (INC-7) over ImagePolicy base"),
            "{}",
            summary.message
        );
        assert!(
            summary
                .message
                .contains("failed open under ImagePolicy mirror: down")
        );
    }

    #[test]
    fn no_check_is_no_admission() {
        assert_eq!(revision(Vec::new()).summary(), None);
    }
}
