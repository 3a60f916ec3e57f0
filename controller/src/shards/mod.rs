//! Sharding: Rollouts spread over replicas, each replica writing only for the shards it holds.
//!
//! With `--shards N` (N > 0) the Rollouts are split into N shards by a hash of their uid
//! ([`assign::shard_of`]). Every replica renews a member Lease of its own and holds some shard
//! Leases; who should hold which shard follows from the live members by rendezvous hashing
//! ([`assign::owner`]), so the shards spread evenly and a replica that joins or leaves moves
//! only its share. The Lease loop is [`leases::run`]. Without `--shards`, one leader holds
//! everything ([`Shards::all`], the leader election of [`crate::run`]).
//!
//! # No Rollout written by two replicas
//!
//! - A reconcile (of a Rollout or of one of its AnalysisRuns) runs only while its replica holds
//!   the shard, and holds it for the whole reconcile ([`Shards::hold`] returns a guard).
//! - Giving a shard up to a new replica first waits for the reconciles in flight on it (the
//!   guard is a read lock the release takes for writing), then clears the Lease; only then may
//!   the new owner claim it.
//! - A replica whose member Lease has not been renewed for the lease duration less a grace
//!   (its clock, from when the renewal was sent) stops writing at once: others take its shards
//!   only once its Lease has expired by theirs, the grace covering clock skew. The apply stage
//!   checks again before writing ([`ShardGuard::valid`]).
//! - Behind all of this, every status write is conditional on the Rollout's resourceVersion
//!   ([`crate::freshness`]), and a transition's audit records are committed by that same write
//!   ([`crate::audit::outbox`]): even two writers could not both record one step.
//!
//! A replica that dies holding shards stops renewing; within one lease duration its shards
//! are claimed by the replicas that now win them, and their Rollouts are reconciled at once.
//! The gRPC API and the dashboard answer on every replica from its own watch, sharded or not.

pub mod assign;
pub mod leases;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedRwLockReadGuard, RwLock};

/// Which shards this replica holds, shared by the Lease loop and every reconcile.
#[derive(Clone)]
pub struct Shards {
    inner: Arc<Inner>,
}

struct Inner {
    /// The shard count (1 when not sharded).
    count: u32,
    /// Not sharded: every shard is always held (the leader election guards the whole process).
    everything: bool,
    /// The shards held now.
    held: Mutex<BTreeSet<u32>>,
    /// One lock per shard: reconciles hold it for reading, a release takes it for writing.
    locks: Vec<Arc<RwLock<()>>>,
    /// When the last member renewal that succeeded was sent.
    renewed: Mutex<Option<Instant>>,
    /// How long a renewal keeps this replica's shards valid (lease duration less the grace).
    validity: Duration,
}

/// A reconcile's hold on its shard: while it lives the shard is not released.
pub struct ShardGuard {
    shards: Shards,
    shard: u32,
    _lock: OwnedRwLockReadGuard<()>,
}

impl ShardGuard {
    /// Whether this replica may still write for the shard (its Lease not lost, its renewal
    /// not lapsed).
    pub fn valid(&self) -> bool {
        self.shards.holds(self.shard)
    }
}

impl Shards {
    /// Not sharded: every Rollout is this replica's (guarded by leader election instead).
    pub fn all() -> Self {
        Self::new(1, true, Duration::MAX)
    }

    /// `count` shards, none held yet; a renewal keeps them valid for `validity`.
    pub fn sharded(count: u32, validity: Duration) -> Self {
        Self::new(count.max(1), false, validity)
    }

    fn new(count: u32, everything: bool, validity: Duration) -> Self {
        Shards {
            inner: Arc::new(Inner {
                count,
                everything,
                held: Mutex::default(),
                locks: (0..count).map(|_| Arc::new(RwLock::new(()))).collect(),
                renewed: Mutex::default(),
                validity,
            }),
        }
    }

    /// The shard count.
    pub fn count(&self) -> u32 {
        self.inner.count
    }

    /// Whether the process is sharded (rather than led by one leader).
    pub fn is_sharded(&self) -> bool {
        !self.inner.everything
    }

    /// The shard of the object with `uid`.
    pub fn shard_of(&self, uid: &str) -> u32 {
        assign::shard_of(uid, self.inner.count)
    }

    /// A hold on the shard of `uid` for one reconcile, when this replica holds it.
    pub async fn hold(&self, uid: &str) -> Option<ShardGuard> {
        let shard = self.shard_of(uid);
        if !self.holds(shard) {
            return None;
        }
        let lock = self.inner.locks[shard as usize].clone().read_owned().await;
        // Checked again: a release may have completed while this waited for the lock.
        self.holds(shard).then(|| ShardGuard {
            shards: self.clone(),
            shard,
            _lock: lock,
        })
    }

    /// Whether this replica holds `shard` and its renewal has not lapsed.
    pub fn holds(&self, shard: u32) -> bool {
        if self.inner.everything {
            return true;
        }
        self.renewal_holds() && self.held().contains(&shard)
    }

    /// The shards held now.
    pub fn held(&self) -> BTreeSet<u32> {
        self.inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the last successful renewal is recent enough to write on.
    pub fn renewal_holds(&self) -> bool {
        self.inner
            .renewed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|sent| sent.elapsed() < self.inner.validity)
    }

    /// Records a successful renewal sent at `sent`.
    fn renewed(&self, sent: Instant) {
        *self
            .inner
            .renewed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(sent);
    }

    /// Starts writing for `shard` (its Lease was just claimed).
    fn gain(&self, shard: u32) {
        self.inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(shard);
    }

    /// Stops writing for `shard` at once (its Lease was lost).
    fn lose(&self, shard: u32) {
        self.inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&shard);
    }

    /// Stops writing for `shard` once the reconciles in flight on it have finished; the Lease
    /// may be released when this returns.
    async fn drain(&self, shard: u32) {
        let _exclusive = self.inner.locks[shard as usize].write().await;
        self.lose(shard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reconcile_holds_only_a_held_shard_whose_renewal_holds() {
        let shards = Shards::sharded(4, Duration::from_secs(10));
        let uid = "uid-1";
        let shard = shards.shard_of(uid);
        assert!(shards.hold(uid).await.is_none(), "nothing held yet");
        shards.gain(shard);
        assert!(shards.hold(uid).await.is_none(), "never renewed");
        shards.renewed(Instant::now());
        let guard = shards.hold(uid).await.expect("held");
        assert!(guard.valid());
        shards.lose(shard);
        assert!(!guard.valid(), "a lost shard is not written at once");
    }

    #[tokio::test]
    async fn a_release_waits_for_the_reconciles_in_flight() {
        let shards = Shards::sharded(1, Duration::from_secs(10));
        shards.renewed(Instant::now());
        shards.gain(0);
        let guard = shards.hold("uid").await.expect("held");
        let draining = tokio::spawn({
            let shards = shards.clone();
            async move { shards.drain(0).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !draining.is_finished(),
            "released under a reconcile in flight"
        );
        assert!(guard.valid());
        drop(guard);
        draining.await.unwrap();
        assert!(shards.hold("uid").await.is_none());
    }

    #[test]
    fn a_lapsed_renewal_stops_every_write() {
        let shards = Shards::sharded(1, Duration::from_millis(1));
        shards.renewed(Instant::now() - Duration::from_secs(1));
        shards.gain(0);
        assert!(!shards.holds(0));
        assert!(Shards::all().holds(0), "not sharded: always held");
    }
}
