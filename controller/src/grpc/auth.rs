//! Who calls, and whether they may: the bearer token is authenticated with a `TokenReview`, each
//! call is authorised with a `SubjectAccessReview` for the caller's identity.
//!
//! Reviews are cached, keyed by a SHA-256 of the token (the token itself is never kept), so a
//! busy client does not cost two API requests per call:
//!
//! - a successful TokenReview or an allowing SubjectAccessReview is reused for the cache time
//!   (`--grpc-auth-cache-seconds`): a revoked token or binding keeps working for at most that
//!   long (open WatchRollouts streams re-check on the same clock, see [`super::watch`]);
//! - a refused token is remembered for a shorter time (`--grpc-auth-negative-cache-seconds`),
//!   so a flood of junk tokens costs one TokenReview per distinct token and period, not one per
//!   call; concurrent calls with the same unknown token share one review;
//! - a denial is not cached (a new binding works at once), nor is an API server failure;
//! - every cache is bounded ([`CACHE_ENTRIES`] entries, least recently used evicted first), so
//!   no stream of distinct tokens can grow the server's memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use moka::future::Cache;
use sha2::{Digest, Sha256};
use tonic::Status;
use tonic::metadata::MetadataMap;

use super::metrics::GrpcMetrics;

/// Entries each review cache holds at most.
pub const CACHE_ENTRIES: u64 = 10_000;

/// An authenticated caller, as the TokenReview returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user name (`system:serviceaccount:<ns>:<name>` for a ServiceAccount).
    pub username: String,
    /// The user's uid, if the authenticator reports one.
    pub uid: Option<String>,
    /// The user's groups.
    pub groups: Vec<String>,
    /// Extra attributes the authenticator reports.
    pub extra: BTreeMap<String, Vec<String>>,
    token_hash: [u8; 32],
}

impl Caller {
    /// A caller with this identity, for tests of what is derived from one.
    pub fn new(
        username: &str,
        uid: Option<&str>,
        groups: &[&str],
        extra: BTreeMap<String, Vec<String>>,
    ) -> Self {
        Caller {
            username: username.to_owned(),
            uid: uid.map(str::to_owned),
            groups: groups.iter().map(|group| (*group).to_owned()).collect(),
            extra,
            token_hash: Sha256::digest(username.as_bytes()).into(),
        }
    }
}

/// What a call wants to do, for a SubjectAccessReview in the `rollgate.io` API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access<'a> {
    /// The verb: `get`, `list`, `watch`, `create`, `patch`.
    pub verb: &'a str,
    /// The resource, for example `rollouts`.
    pub resource: &'a str,
    /// The subresource, for example `status`, or empty.
    pub subresource: &'a str,
    /// The namespace; empty for every namespace.
    pub namespace: &'a str,
    /// The object's name; empty for any.
    pub name: &'a str,
}

impl Access<'_> {
    fn describe(&self) -> String {
        let resource = if self.subresource.is_empty() {
            format!("{}.rollgate.io", self.resource)
        } else {
            format!("{}.rollgate.io/{}", self.resource, self.subresource)
        };
        let object = if self.name.is_empty() {
            String::new()
        } else {
            format!(" {:?}", self.name)
        };
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in namespace {:?}", self.namespace)
        };
        format!("{} {resource}{object} {scope}", self.verb)
    }
}

/// What a TokenReview said: the caller, or why the token was refused.
type Review = Result<Arc<Caller>, String>;

/// How long a review stays cached: `ttl` when it authenticated, `negative_ttl` when it refused.
struct ReviewExpiry {
    ttl: Duration,
    negative_ttl: Duration,
}

impl moka::Expiry<[u8; 32], Review> for ReviewExpiry {
    fn expire_after_create(&self, _: &[u8; 32], review: &Review, _: Instant) -> Option<Duration> {
        Some(if review.is_ok() {
            self.ttl
        } else {
            self.negative_ttl
        })
    }
}

/// Authenticates tokens and authorises calls against the API server, with bounded caches.
pub struct Authenticator {
    client: kube::Client,
    ttl: Duration,
    tokens: Cache<[u8; 32], Review>,
    grants: Cache<([u8; 32], String), ()>,
    metrics: Arc<GrpcMetrics>,
}

impl Authenticator {
    /// An authenticator that reviews with `client`, reuses successful reviews for `ttl` and
    /// refusals for `negative_ttl`, and counts its reviews in `metrics`.
    pub fn new(
        client: kube::Client,
        ttl: Duration,
        negative_ttl: Duration,
        metrics: Arc<GrpcMetrics>,
    ) -> Self {
        Authenticator {
            client,
            ttl,
            tokens: Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .expire_after(ReviewExpiry { ttl, negative_ttl })
                .build(),
            grants: Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .build(),
            metrics,
        }
    }

    /// How long a successful review is reused: open streams re-check on this clock.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The caller whose bearer token is in `metadata`.
    pub async fn authenticate(&self, metadata: &MetadataMap) -> Result<Arc<Caller>, Status> {
        let token = bearer_token(metadata)?;
        let token_hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let review = self
            .tokens
            .try_get_with(token_hash, self.review_token(token, token_hash))
            .await
            .map_err(|status| Status::new(status.code(), status.message()))?;
        review
            .map_err(|why| Status::unauthenticated(format!("the bearer token was refused: {why}")))
    }

    async fn review_token(&self, token: &str, token_hash: [u8; 32]) -> Result<Review, Status> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await;
        let reviewed = match reviewed {
            Ok(reviewed) => reviewed,
            Err(error) => {
                self.metrics.token_review("error");
                return Err(Status::unavailable(format!("TokenReview failed: {error}")));
            }
        };
        let status = reviewed.status.unwrap_or_default();
        let user = status.user.filter(|_| status.authenticated == Some(true));
        let Some(user) = user.filter(|user| user.username.is_some()) else {
            self.metrics.token_review("refused");
            return Ok(Err(status
                .error
                .unwrap_or_else(|| "not authenticated".into())));
        };
        self.metrics.token_review("authenticated");
        Ok(Ok(Arc::new(Caller {
            username: user.username.unwrap_or_default(),
            uid: user.uid.filter(|uid| !uid.is_empty()),
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default(),
            token_hash,
        })))
    }

    /// Whether `caller` may do `access` (a cached allowance counts).
    pub async fn allowed(&self, caller: &Caller, access: &Access<'_>) -> Result<bool, Status> {
        let key = (caller.token_hash, format!("{access:?}"));
        if self.grants.get(&key).await.is_some() {
            return Ok(true);
        }
        self.review_access(caller, access, key).await
    }

    /// Whether `caller` may do `access`, asking the API server whatever the cache says (an
    /// open stream's periodic re-check).
    pub async fn allowed_now(&self, caller: &Caller, access: &Access<'_>) -> Result<bool, Status> {
        let key = (caller.token_hash, format!("{access:?}"));
        self.review_access(caller, access, key).await
    }

    async fn review_access(
        &self,
        caller: &Caller,
        access: &Access<'_>,
        key: ([u8; 32], String),
    ) -> Result<bool, Status> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(caller.username.clone()),
                uid: caller.uid.clone(),
                groups: Some(caller.groups.clone()),
                extra: Some(caller.extra.clone()).filter(|extra| !extra.is_empty()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(rollgate_crds::API_GROUP.to_owned()),
                    resource: Some(access.resource.to_owned()),
                    subresource: non_empty(access.subresource),
                    verb: Some(access.verb.to_owned()),
                    namespace: non_empty(access.namespace),
                    name: non_empty(access.name),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewed = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|error| Status::unavailable(format!("SubjectAccessReview failed: {error}")))?;
        let allowed = reviewed.status.is_some_and(|status| status.allowed);
        if allowed && !self.ttl.is_zero() {
            self.grants.insert(key, ()).await;
        } else {
            self.grants.invalidate(&key).await;
        }
        Ok(allowed)
    }

    /// `Ok` when `caller` may do `access`, `PERMISSION_DENIED` naming it when not.
    pub async fn authorize(&self, caller: &Caller, access: &Access<'_>) -> Result<(), Status> {
        if self.allowed(caller, access).await? {
            Ok(())
        } else {
            Err(denied(caller, access))
        }
    }
}

/// `PERMISSION_DENIED` naming who may not do what.
pub fn denied(caller: &Caller, access: &Access<'_>) -> Status {
    Status::permission_denied(format!("{} may not {}", caller.username, access.describe()))
}

/// The bearer token of `authorization: Bearer <token>`.
pub fn bearer_token(metadata: &MetadataMap) -> Result<&str, Status> {
    let Some(value) = metadata.get("authorization") else {
        return Err(Status::unauthenticated(
            "no credentials: send `authorization: Bearer <token>` metadata",
        ));
    };
    let value = value.to_str().map_err(|_| {
        Status::unauthenticated("the authorization metadata is not printable ASCII")
    })?;
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    token.ok_or_else(|| {
        Status::unauthenticated("the authorization metadata is not `Bearer <token>`")
    })
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", value.parse().unwrap());
        metadata
    }

    #[test]
    fn the_bearer_token_is_read_from_the_authorization_metadata() {
        assert_eq!(bearer_token(&metadata("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(&metadata("bearer  abc ")).unwrap(), "abc");
        for bad in ["Basic abc", "Bearer", "Bearer  ", "abc"] {
            let status = bearer_token(&metadata(bad)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{bad}");
        }
        let missing = bearer_token(&MetadataMap::new()).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().contains("Bearer"));
    }

    #[test]
    fn a_denial_names_the_verb_resource_and_namespace() {
        let access = Access {
            verb: "patch",
            resource: "rollouts",
            subresource: "status",
            namespace: "shop",
            name: "web",
        };
        assert_eq!(
            access.describe(),
            "patch rollouts.rollgate.io/status \"web\" in namespace \"shop\""
        );
        let all = Access {
            verb: "list",
            resource: "rollouts",
            subresource: "",
            namespace: "",
            name: "",
        };
        assert_eq!(
            all.describe(),
            "list rollouts.rollgate.io at the cluster scope"
        );
    }
}
