//! Per-interval increments of running totals (cumulative counters read at each step), with
//! counter resets handled.
//!
//! A counter that goes down between two steps was reset: a pod restarted, and a sum over pods
//! lost that pod's count. How much the revision really served in that step is then unknown
//! (the sum dropped by the restarted pod's old total, less what it counted since), so the step
//! is **skipped**: it adds no evidence either way, and the next step continues from the new
//! totals. A reset on either revision skips the step for both, so the test never sees one
//! revision's errors without the other's. Skipping a step keeps both sequential tests valid:
//! their wealth is multiplied by 1 for it, and whether a pod restarts does not depend on how
//! the next errors split between the revisions (a canary that crashes is worse, and that shows
//! in the steps around the crash). A reset whose pod counted past its old total within the
//! same step is invisible, exactly as in Prometheus' own `increase()`: the step then
//! undercounts both errors and requests of that revision by the same pod's history.

use super::sequential::Counts;

/// The increments between consecutive totals.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Increments {
    /// One per step without a reset, in order.
    pub intervals: Vec<Counts>,
    /// Steps skipped because a counter went down.
    pub resets: usize,
}

/// `now − before` per counter, or `None` when any counter went down.
fn difference(before: &Counts, now: &Counts) -> Option<Counts> {
    let pairs = [
        (now.canary_errors, before.canary_errors),
        (now.canary_requests, before.canary_requests),
        (now.baseline_errors, before.baseline_errors),
        (now.baseline_requests, before.baseline_requests),
    ];
    if pairs.iter().any(|(now, before)| now < before) {
        return None;
    }
    Some(Counts {
        canary_errors: now.canary_errors - before.canary_errors,
        canary_requests: now.canary_requests - before.canary_requests,
        baseline_errors: now.baseline_errors - before.baseline_errors,
        baseline_requests: now.baseline_requests - before.baseline_requests,
    })
}

/// The increments of `totals` (running totals at consecutive steps), resets skipped.
pub fn increments(totals: &[Counts]) -> Increments {
    let mut out = Increments::default();
    for pair in totals.windows(2) {
        match difference(&pair[0], &pair[1]) {
            Some(step) => out.intervals.push(step),
            None => out.resets += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(ce: f64, cr: f64, be: f64, br: f64) -> Counts {
        Counts {
            canary_errors: ce,
            canary_requests: cr,
            baseline_errors: be,
            baseline_requests: br,
        }
    }

    #[test]
    fn increments_between_steps() {
        let steps = [
            totals(0.0, 0.0, 0.0, 0.0),
            totals(1.0, 100.0, 2.0, 100.0),
            totals(4.0, 250.0, 2.0, 210.0),
        ];
        let out = increments(&steps);
        assert_eq!(out.resets, 0);
        assert_eq!(
            out.intervals,
            [
                totals(1.0, 100.0, 2.0, 100.0),
                totals(3.0, 150.0, 0.0, 110.0)
            ]
        );
        assert_eq!(increments(&steps[..1]), Increments::default());
    }

    #[test]
    fn a_reset_skips_its_step_for_both_revisions_and_continues() {
        // A canary pod with 60 requests and 3 errors restarts between the second and third step.
        let steps = [
            totals(2.0, 100.0, 1.0, 100.0),
            totals(5.0, 200.0, 2.0, 200.0),
            totals(2.0, 150.0, 3.0, 300.0),
            totals(4.0, 250.0, 4.0, 400.0),
        ];
        let out = increments(&steps);
        assert_eq!(out.resets, 1);
        assert_eq!(
            out.intervals,
            [
                totals(3.0, 100.0, 1.0, 100.0),
                totals(2.0, 100.0, 1.0, 100.0)
            ]
        );
        // Only the requests counter went down (its pod restarted before serving an error).
        let out = increments(&[
            totals(1.0, 100.0, 1.0, 100.0),
            totals(1.0, 100.0, 1.0, 40.0),
        ]);
        assert_eq!((out.intervals.len(), out.resets), (0, 1));
    }
}
