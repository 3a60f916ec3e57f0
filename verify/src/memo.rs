//! Memos of the pure work a cached verdict would otherwise repeat on every call: compiling a
//! policy's globs and parsing PEM keys. Keyed by their input (the policy name and glob list, the
//! PEM text), so
//! an edited policy or a rotated Secret is never served a stale result; bounded in size.

use std::sync::Arc;

use globset::GlobSet;
use moka::sync::Cache;
use rollgate_crds::ImagePolicy;

use crate::globs::{compile_globs, policy_name};
use crate::keys::{KeyError, PublicKey};

/// Compiled glob sets and parsed keys.
#[derive(Clone)]
pub struct Memo {
    globs: Cache<(String, Vec<String>), Result<Arc<GlobSet>, String>>,
    keys: Cache<String, Result<PublicKey, KeyError>>,
}

impl Memo {
    /// A memo of at most `capacity` glob sets and as many keys.
    pub fn new(capacity: u64) -> Self {
        Memo {
            globs: Cache::new(capacity),
            keys: Cache::new(capacity),
        }
    }

    /// Whether the policy's globs match the name (see [`crate::globs::policy_covers`]).
    pub fn policy_covers(
        &self,
        policy: &ImagePolicy,
        normalized_name: &str,
    ) -> Result<bool, String> {
        let set = self.globs.get_with(
            (policy_name(policy).to_owned(), policy.spec.images.clone()),
            || compile_globs(policy).map(Arc::new),
        )?;
        Ok(set.is_match(normalized_name))
    }

    /// The key in `pem`, parsed once.
    pub fn public_key(&self, pem: &str) -> Result<PublicKey, KeyError> {
        self.keys
            .get_with(pem.to_owned(), || PublicKey::from_pem(pem))
    }
}
