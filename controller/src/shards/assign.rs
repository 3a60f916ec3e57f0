//! Pure shard arithmetic: which shard a Rollout belongs to, which live replica should hold each
//! shard, and what a replica does next from what the Leases say. No I/O: the Lease loop
//! ([`super::leases`]) feeds it what it read and carries out what it answers.
//!
//! - A Rollout's shard is a hash of its uid modulo the shard count: stable for the object's
//!   life, independent of the replica count, and spread evenly.
//! - Each shard's owner is chosen among the live replicas by rendezvous hashing (the highest
//!   `hash(replica, shard)` wins): every replica computes the same answer from the same view,
//!   and when a replica joins or leaves only the shards it wins or held move.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

/// The shard (`0..shards`) of the object with `uid`.
pub fn shard_of(uid: &str, shards: u32) -> u32 {
    (hash(&[uid.as_bytes()]) % u64::from(shards.max(1))) as u32
}

/// The live replica that should hold `shard`, if any replica is live.
pub fn owner<'a>(shard: u32, live: &BTreeSet<&'a str>) -> Option<&'a str> {
    live.iter()
        .copied()
        .max_by_key(|replica| (hash(&[replica.as_bytes(), &shard.to_be_bytes()]), *replica))
}

/// One shard Lease as read: who holds it, and whether that holder is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLease {
    /// The holder's identity, when someone holds it.
    pub holder: Option<String>,
}

/// What a replica does about one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardStep {
    /// Claim it: it is ours by the assignment and free (no holder, or a holder that is not
    /// live).
    Claim,
    /// Keep it (and keep writing for its Rollouts).
    Keep,
    /// Give it up: another live replica should hold it. Writing stops before the Lease is
    /// released.
    Release,
    /// Stop writing at once: the Lease names another holder (ours expired and was taken).
    Lost,
    /// Nothing: not ours, or ours but still held by a live replica that will release it.
    Wait,
}

/// What `me` does about each shard, from the shard Leases (`leases[i]` for shard `i`, `None`
/// where none exists yet), the live replicas (including `me` when its own renewal holds) and
/// the shards `me` holds now.
pub fn plan(
    me: &str,
    leases: &[Option<ShardLease>],
    live: &BTreeSet<&str>,
    held: &BTreeSet<u32>,
) -> BTreeMap<u32, ShardStep> {
    (0..leases.len() as u32)
        .map(|shard| {
            let lease = leases[shard as usize].as_ref();
            let holder = lease.and_then(|lease| lease.holder.as_deref());
            let ours_by_assignment = owner(shard, live) == Some(me);
            let step = match (held.contains(&shard), holder) {
                (true, Some(holder)) if holder != me => ShardStep::Lost,
                (true, _) if !live.contains(me) => ShardStep::Lost,
                (true, _) if ours_by_assignment => ShardStep::Keep,
                (true, _) => ShardStep::Release,
                (false, Some(holder)) if holder == me && ours_by_assignment => ShardStep::Claim,
                (false, Some(holder)) if holder == me => ShardStep::Release,
                (false, Some(holder)) if live.contains(holder) => ShardStep::Wait,
                (false, _) if ours_by_assignment => ShardStep::Claim,
                (false, _) => ShardStep::Wait,
            };
            (shard, step)
        })
        .collect()
}

fn hash(parts: &[&[u8]]) -> u64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live<'a>(replicas: &[&'a str]) -> BTreeSet<&'a str> {
        replicas.iter().copied().collect()
    }

    #[test]
    fn rollouts_spread_evenly_over_the_shards() {
        let mut counts = [0u32; 8];
        for index in 0..8000 {
            counts[shard_of(&format!("uid-{index}"), 8) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&n| (850..1150).contains(&n)),
            "{counts:?}"
        );
        assert_eq!(shard_of("anything", 0), 0, "no shards counts as one");
    }

    #[test]
    fn each_shard_has_one_owner_and_a_leaving_replica_moves_only_its_shards() {
        let three = live(&["a", "b", "c"]);
        let owners: Vec<&str> = (0..12).map(|s| owner(s, &three).unwrap()).collect();
        for replica in ["a", "b", "c"] {
            assert!(
                owners.contains(&replica),
                "{replica} owns nothing: {owners:?}"
            );
        }
        let two = live(&["a", "b"]);
        for (shard, before) in owners.iter().enumerate() {
            let after = owner(shard as u32, &two).unwrap();
            if *before != "c" {
                assert_eq!(
                    after, *before,
                    "shard {shard} moved though its owner stayed"
                );
            }
        }
        assert_eq!(owner(0, &BTreeSet::new()), None);
    }

    fn lease(holder: Option<&str>) -> Option<ShardLease> {
        Some(ShardLease {
            holder: holder.map(str::to_owned),
        })
    }

    #[test]
    fn a_lone_replica_claims_every_free_or_dead_shard() {
        let leases = [None, lease(None), lease(Some("dead"))];
        let steps = plan("a", &leases, &live(&["a"]), &BTreeSet::new());
        assert!(
            steps.values().all(|step| *step == ShardStep::Claim),
            "{steps:?}"
        );
    }

    #[test]
    fn a_new_replica_waits_for_the_live_holder_to_release_what_it_wins() {
        let both = live(&["a", "b"]);
        let leases: Vec<_> = (0..12).map(|_| lease(Some("a"))).collect();
        let held_by_a: BTreeSet<u32> = (0..12).collect();
        let a = plan("a", &leases, &both, &held_by_a);
        let b = plan("b", &leases, &both, &BTreeSet::new());
        for shard in 0..12 {
            match owner(shard, &both) {
                Some("a") => {
                    assert_eq!(a[&shard], ShardStep::Keep);
                    assert_eq!(b[&shard], ShardStep::Wait);
                }
                _ => {
                    assert_eq!(a[&shard], ShardStep::Release);
                    assert_eq!(b[&shard], ShardStep::Wait, "b must not claim a held shard");
                }
            }
        }
        // Once a has released them (no holder), b claims what it wins.
        let released: Vec<_> = (0..12)
            .map(|shard| lease((owner(shard, &both) == Some("a")).then_some("a")))
            .collect();
        let b = plan("b", &released, &both, &BTreeSet::new());
        for shard in 0..12 {
            let expected = if owner(shard, &both) == Some("b") {
                ShardStep::Claim
            } else {
                ShardStep::Wait
            };
            assert_eq!(b[&shard], expected);
        }
    }

    #[test]
    fn a_holder_stops_at_once_when_its_lease_is_taken_or_its_renewal_lapsed() {
        let held: BTreeSet<u32> = [0].into();
        let taken = plan("a", &[lease(Some("b"))], &live(&["a", "b"]), &held);
        assert_eq!(taken[&0], ShardStep::Lost);
        let lapsed = plan("a", &[lease(Some("a"))], &live(&["b"]), &held);
        assert_eq!(lapsed[&0], ShardStep::Lost);
    }
}
