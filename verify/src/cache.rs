//! A bounded, expiring cache of successful verifications.
//!
//! The key is what a verification depends on: the repository and digest of the image (a
//! signature lives in the image's repository, so one digest may verify in one repository and
//! not in another), the policy's name and generation, and a fingerprint of the resolved key
//! ids (a key held in a Secret may change without the policy changing). Only successes are
//! cached: a refusal is checked again at the next reconcile, so a signature pushed after a
//! refusal takes effect without waiting for the time-to-live.

use std::time::Duration;

use moka::future::Cache;

/// What a cached verification depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// `registry/repository` of the image.
    pub repository: String,
    /// The image digest.
    pub digest: String,
    /// The policy's name.
    pub policy: String,
    /// The policy's generation.
    pub generation: Option<i64>,
    /// Fingerprint of the resolved trusted keys.
    pub keys: String,
}

/// A cached success: the key ids that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedVerification {
    /// Ids of the keys whose signatures verified.
    pub key_ids: Vec<String>,
}

/// The verdict cache.
#[derive(Clone)]
pub struct VerdictCache {
    entries: Cache<CacheKey, CachedVerification>,
}

impl VerdictCache {
    /// A cache of at most `capacity` entries, each kept for `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        VerdictCache {
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The cached success for `key`, if any.
    pub async fn get(&self, key: &CacheKey) -> Option<CachedVerification> {
        self.entries.get(key).await
    }

    /// Records a success.
    pub async fn insert(&self, key: CacheKey, value: CachedVerification) {
        self.entries.insert(key, value).await;
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(generation: i64) -> CacheKey {
        CacheKey {
            repository: "r/app".into(),
            digest: "sha256:00".into(),
            policy: "p".into(),
            generation: Some(generation),
            keys: "k".into(),
        }
    }

    #[tokio::test]
    async fn a_new_generation_misses_and_entries_expire() {
        let cache = VerdictCache::new(10, Duration::from_millis(200));
        cache
            .insert(
                key(1),
                CachedVerification {
                    key_ids: vec!["id".into()],
                },
            )
            .await;
        assert!(cache.get(&key(1)).await.is_some());
        assert!(cache.get(&key(2)).await.is_none());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(cache.get(&key(1)).await.is_none());
    }
}
