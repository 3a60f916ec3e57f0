//! Who may call the AnalysisService: every call carries `authorization: Bearer <token>`, the
//! token is authenticated with a Kubernetes `TokenReview`, and the user name must be on the
//! operator's list (`--allowed-callers`, by default only the controller's ServiceAccount).
//! A missing or refused token is `UNAUTHENTICATED`, an authenticated user not on the list
//! `PERMISSION_DENIED` naming the user.
//!
//! Reviews are cached by a SHA-256 of the token (never the token): an accepted one for
//! `--auth-cache-seconds`, a refused one for `--auth-negative-cache-seconds`, in a bounded
//! cache, and concurrent calls with the same token share one review; API server failures are
//! not cached (`UNAVAILABLE`). `--authentication=none` turns all of this off, for a service that
//! only its own Pod can reach, and says so in the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use moka::future::Cache;
use sha2::{Digest, Sha256};
use tonic::Status;
use tonic::metadata::MetadataMap;

/// Tokens whose review is cached at most.
const CACHE_ENTRIES: u64 = 10_000;

/// How callers are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Authentication {
    /// A bearer token, checked with a TokenReview, of a user on `--allowed-callers`.
    TokenReview,
    /// Anyone who reaches the port (only for a network no one else reaches).
    None,
}

/// A review's outcome: the user name, or why the token was refused.
type Review = Result<Arc<str>, String>;

struct ReviewExpiry {
    accepted: Duration,
    refused: Duration,
}

impl moka::Expiry<[u8; 32], Review> for ReviewExpiry {
    fn expire_after_create(&self, _: &[u8; 32], review: &Review, _: Instant) -> Option<Duration> {
        Some(if review.is_ok() {
            self.accepted
        } else {
            self.refused
        })
    }
}

/// Authenticates callers with TokenReviews and checks them against the allowed user names.
pub struct Callers {
    client: kube::Client,
    allowed: Vec<String>,
    reviews: Cache<[u8; 32], Review>,
}

impl Callers {
    /// Callers reviewed with `client`, `allowed` the user names that may call; accepted reviews
    /// are reused for `accepted`, refusals for `refused`.
    pub fn new(
        client: kube::Client,
        allowed: Vec<String>,
        accepted: Duration,
        refused: Duration,
    ) -> Self {
        Callers {
            client,
            allowed,
            reviews: Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .expire_after(ReviewExpiry { accepted, refused })
                .build(),
        }
    }

    /// `Ok` with the caller's user name when the call in `metadata` may proceed.
    pub async fn check(&self, metadata: &MetadataMap) -> Result<Arc<str>, Status> {
        let token = bearer_token(metadata)?;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let review = self
            .reviews
            .try_get_with(hash, self.review(token))
            .await
            .map_err(|status| Status::new(status.code(), status.message()))?;
        let username = review.map_err(|why| {
            Status::unauthenticated(format!("the bearer token was refused: {why}"))
        })?;
        if !self.allowed.iter().any(|allowed| **allowed == *username) {
            return Err(Status::permission_denied(format!(
                "{username} may not call the AnalysisService (not on --allowed-callers)"
            )));
        }
        Ok(username)
    }

    async fn review(&self, token: &str) -> Result<Review, Status> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|error| Status::unavailable(format!("TokenReview failed: {error}")))?;
        let status = reviewed.status.unwrap_or_default();
        let username = status
            .user
            .filter(|_| status.authenticated == Some(true))
            .and_then(|user| user.username);
        Ok(match username {
            Some(username) => Ok(Arc::from(username)),
            None => Err(status.error.unwrap_or_else(|| "not authenticated".into())),
        })
    }
}

/// The bearer token of `authorization: Bearer <token>`; `UNAUTHENTICATED` without one.
pub fn bearer_token(metadata: &MetadataMap) -> Result<&str, Status> {
    let value = metadata
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            Status::unauthenticated("no credentials: send `authorization: Bearer <token>` metadata")
        })?;
    value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            Status::unauthenticated("the authorization metadata is not `Bearer <token>`")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_without_a_bearer_token_is_unauthenticated() {
        let mut metadata = MetadataMap::new();
        assert_eq!(
            bearer_token(&metadata).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        metadata.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(
            bearer_token(&metadata).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        metadata.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&metadata).unwrap(), "abc");
    }
}
