//! Replica arithmetic: how many pods each revision gets for a canary weight, and how fast the
//! controller may move towards that within `maxSurge` and `maxUnavailable`.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The share of `maxSurge` and `maxUnavailable` when unset, as Deployments and Argo Rollouts do.
pub const DEFAULT_PERCENT: i32 = 25;

/// Resolves a count-or-percentage against `total`. Percentages round up for surge and down for
/// unavailability, as Deployments do. A value the schema would have refused counts as the
/// default.
pub fn resolve(value: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    let percent = match value {
        Some(IntOrString::Int(count)) => return (*count).max(0),
        Some(IntOrString::String(text)) => text
            .strip_suffix('%')
            .and_then(|n| n.parse::<i32>().ok())
            .unwrap_or(DEFAULT_PERCENT),
        None => DEFAULT_PERCENT,
    };
    let scaled = i64::from(total) * i64::from(percent);
    let count = if round_up {
        (scaled + 99) / 100
    } else {
        scaled / 100
    };
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// Pods for the canary at `weight` percent of `desired`: rounded up, so any weight above zero
/// runs at least one canary pod.
pub fn canary_replicas(desired: i32, weight: i32) -> i32 {
    let weight = weight.clamp(0, 100);
    let scaled = i64::from(desired.max(0)) * i64::from(weight);
    i32::try_from((scaled + 99) / 100).unwrap_or(i32::MAX)
}

/// Target pod counts of the two revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    /// Pods of the canary (new) revision.
    pub canary: i32,
    /// Pods of the stable revision.
    pub stable: i32,
}

/// The targets at a canary weight. With a traffic router the weight is set on the route and
/// the stable revision keeps every pod; without one the weight is the ratio of pods.
pub fn targets(desired: i32, weight: i32, routed: bool) -> Targets {
    let canary = canary_replicas(desired, weight);
    let stable = if routed {
        desired
    } else {
        (desired - canary).max(0)
    };
    Targets { canary, stable }
}

/// What exists now for one revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Current {
    /// Pods asked for (ReplicaSet `spec.replicas`).
    pub replicas: i32,
    /// Available pods.
    pub available: i32,
}

/// The next pod counts on the way to `targets`, within the surge and unavailability budget:
/// a revision grows only while all pods together stay within `desired + surge`, and shrinks
/// only as far as the available pods of both stay at or above `desired - unavailable`
/// (unavailable pods may always go). With both budgets zero, one pod of surge is allowed, or
/// nothing could ever move.
pub fn next_step(
    canary: Current,
    stable: Current,
    targets: Targets,
    desired: i32,
    surge: i32,
    unavailable: i32,
) -> Targets {
    let surge = if surge == 0 && unavailable == 0 {
        1
    } else {
        surge
    };
    let min_available = (desired - unavailable).max(0);
    let total_available = canary.available + stable.available;
    let spare_available = (total_available - min_available).max(0);
    let shrink = |current: Current, target: i32| -> i32 {
        let unavailable_pods = (current.replicas - current.available).max(0);
        target.max(current.replicas - unavailable_pods - spare_available)
    };
    let canary_shrunk = if targets.canary < canary.replicas {
        shrink(canary, targets.canary)
    } else {
        canary.replicas
    };
    let stable_shrunk = if targets.stable < stable.replicas {
        shrink(stable, targets.stable)
    } else {
        stable.replicas
    };
    let ceiling = desired + surge;
    let grow = |current: i32, target: i32, other: i32| -> i32 {
        if target <= current {
            current
        } else {
            target.min(current.max(ceiling - other))
        }
    };
    let canary_next = grow(canary_shrunk, targets.canary, stable_shrunk);
    let stable_next = grow(stable_shrunk, targets.stable, canary_next);
    Targets {
        canary: canary_next,
        stable: stable_next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(n: i32) -> IntOrString {
        IntOrString::Int(n)
    }
    fn pct(text: &str) -> IntOrString {
        IntOrString::String(text.into())
    }

    #[test]
    fn resolves_counts_and_percentages() {
        assert_eq!(resolve(Some(&int(3)), 10, true), 3);
        assert_eq!(resolve(Some(&pct("25%")), 10, true), 3);
        assert_eq!(resolve(Some(&pct("25%")), 10, false), 2);
        assert_eq!(resolve(None, 4, true), 1);
        assert_eq!(resolve(None, 4, false), 1);
        assert_eq!(resolve(Some(&pct("0%")), 10, true), 0);
    }

    #[test]
    fn canary_replicas_round_up_so_any_weight_runs_a_pod() {
        assert_eq!(canary_replicas(10, 0), 0);
        assert_eq!(canary_replicas(10, 1), 1);
        assert_eq!(canary_replicas(10, 25), 3);
        assert_eq!(canary_replicas(4, 50), 2);
        assert_eq!(canary_replicas(4, 100), 4);
        assert_eq!(canary_replicas(0, 50), 0);
    }

    #[test]
    fn without_a_router_the_weight_is_the_pod_ratio() {
        assert_eq!(
            targets(4, 25, false),
            Targets {
                canary: 1,
                stable: 3
            }
        );
        assert_eq!(
            targets(4, 100, false),
            Targets {
                canary: 4,
                stable: 0
            }
        );
        assert_eq!(
            targets(4, 25, true),
            Targets {
                canary: 1,
                stable: 4
            }
        );
    }

    #[test]
    fn growth_stays_within_surge() {
        // 10 desired, stable at 10, canary wants 5; surge 2 allows 2 canary pods first.
        let next = next_step(
            Current {
                replicas: 0,
                available: 0,
            },
            Current {
                replicas: 10,
                available: 10,
            },
            Targets {
                canary: 5,
                stable: 5,
            },
            10,
            2,
            0,
        );
        assert_eq!(
            next,
            Targets {
                canary: 2,
                stable: 10
            }
        );
    }

    #[test]
    fn shrinking_keeps_enough_pods_available() {
        // The 2 canary pods are available: stable may drop 2 (unavailable budget 0), which
        // frees room under the surge ceiling for 2 more canary pods.
        let next = next_step(
            Current {
                replicas: 2,
                available: 2,
            },
            Current {
                replicas: 10,
                available: 10,
            },
            Targets {
                canary: 5,
                stable: 5,
            },
            10,
            2,
            0,
        );
        assert_eq!(
            next,
            Targets {
                canary: 4,
                stable: 8
            }
        );
        // Canary pods not yet available: stable keeps its pods.
        let next = next_step(
            Current {
                replicas: 2,
                available: 0,
            },
            Current {
                replicas: 10,
                available: 10,
            },
            Targets {
                canary: 5,
                stable: 5,
            },
            10,
            2,
            0,
        );
        assert_eq!(
            next,
            Targets {
                canary: 2,
                stable: 10
            }
        );
    }

    #[test]
    fn abort_grows_stable_first_then_drops_the_canary() {
        // Canary 5 / stable 5, abort: stable back to 10, canary to 0.
        let targets = Targets {
            canary: 0,
            stable: 10,
        };
        let next = next_step(
            Current {
                replicas: 5,
                available: 5,
            },
            Current {
                replicas: 5,
                available: 5,
            },
            targets,
            10,
            3,
            0,
        );
        assert_eq!(
            next,
            Targets {
                canary: 5,
                stable: 8
            },
            "surge bounds stable's growth"
        );
        let next = next_step(
            Current {
                replicas: 5,
                available: 5,
            },
            Current {
                replicas: 8,
                available: 8,
            },
            targets,
            10,
            3,
            0,
        );
        assert_eq!(
            next,
            Targets {
                canary: 2,
                stable: 10
            },
            "canary drops as stable is available"
        );
    }

    #[test]
    fn unavailable_pods_can_always_go_and_zero_budgets_still_move() {
        let next = next_step(
            Current {
                replicas: 3,
                available: 0,
            },
            Current {
                replicas: 10,
                available: 10,
            },
            Targets {
                canary: 0,
                stable: 10,
            },
            10,
            0,
            0,
        );
        assert_eq!(next.canary, 0);
        let next = next_step(
            Current {
                replicas: 0,
                available: 0,
            },
            Current {
                replicas: 4,
                available: 4,
            },
            Targets {
                canary: 1,
                stable: 3,
            },
            4,
            0,
            0,
        );
        assert_eq!(
            next,
            Targets {
                canary: 1,
                stable: 4
            },
            "one pod of surge when both are 0"
        );
    }
}
