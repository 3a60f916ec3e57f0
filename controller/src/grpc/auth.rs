//! Who calls, and whether they may: the bearer token is authenticated with a `TokenReview`, each
//! call is authorised with a `SubjectAccessReview` for the caller's identity.
//!
//! Successful reviews are cached for a configurable time, keyed by a SHA-256 of the token (the
//! token itself is never kept), so a busy client does not cost two API requests per call. A
//! failed review is never cached: a fixed token or a new binding works at once, while a revoked
//! token or binding keeps working for at most the cache time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use sha2::{Digest, Sha256};
use tonic::Status;
use tonic::metadata::MetadataMap;

/// Cache entries kept before expired ones are swept.
const SWEEP_AT: usize = 4096;

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

/// What a call wants to do, for a SubjectAccessReview in the `rollgate.io` API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access<'a> {
    /// The verb: `get`, `list`, `watch`, `create`, `update`.
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

type Grant = ([u8; 32], String);
/// Authenticated callers by token hash, with their expiry.
type Tokens = HashMap<[u8; 32], (Arc<Caller>, Instant)>;

/// Authenticates tokens and authorises calls against the API server, with a short cache.
pub struct Authenticator {
    client: kube::Client,
    ttl: Duration,
    tokens: Mutex<Tokens>,
    grants: Mutex<HashMap<Grant, Instant>>,
}

impl Authenticator {
    /// An authenticator that reviews with `client` and reuses successful reviews for `ttl`.
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        Authenticator {
            client,
            ttl,
            tokens: Mutex::new(HashMap::new()),
            grants: Mutex::new(HashMap::new()),
        }
    }

    /// The caller whose bearer token is in `metadata`.
    pub async fn authenticate(&self, metadata: &MetadataMap) -> Result<Arc<Caller>, Status> {
        let token = bearer_token(metadata)?;
        let token_hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(caller) = cached(&self.tokens, &token_hash).map(|(caller, _)| caller) {
            return Ok(caller);
        }
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
        let user = status.user.filter(|_| status.authenticated == Some(true));
        let Some(user) = user.filter(|user| user.username.is_some()) else {
            let why = status.error.unwrap_or_else(|| "not authenticated".into());
            return Err(Status::unauthenticated(format!(
                "the bearer token was refused: {why}"
            )));
        };
        let caller = Arc::new(Caller {
            username: user.username.unwrap_or_default(),
            uid: user.uid.filter(|uid| !uid.is_empty()),
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default(),
            token_hash,
        });
        if !self.ttl.is_zero() {
            let expires = Instant::now() + self.ttl;
            insert(&self.tokens, token_hash, (caller.clone(), expires));
        }
        Ok(caller)
    }

    /// Whether `caller` may do `access`.
    pub async fn allowed(&self, caller: &Caller, access: &Access<'_>) -> Result<bool, Status> {
        let key = (caller.token_hash, format!("{access:?}"));
        if cached(&self.grants, &key).is_some() {
            return Ok(true);
        }
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
            insert(&self.grants, key, Instant::now() + self.ttl);
        }
        Ok(allowed)
    }

    /// `Ok` when `caller` may do `access`, `PERMISSION_DENIED` naming it when not.
    pub async fn authorize(&self, caller: &Caller, access: &Access<'_>) -> Result<(), Status> {
        if self.allowed(caller, access).await? {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{} may not {}",
                caller.username,
                access.describe()
            )))
        }
    }
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

/// The cached value under `key`, if it has not expired.
fn cached<K: std::hash::Hash + Eq, V: Clone + Expiring>(
    cache: &Mutex<HashMap<K, V>>,
    key: &K,
) -> Option<V> {
    let cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    cache
        .get(key)
        .filter(|value| value.expires() > Instant::now())
        .cloned()
}

fn insert<K: std::hash::Hash + Eq, V: Expiring>(cache: &Mutex<HashMap<K, V>>, key: K, value: V) {
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if cache.len() >= SWEEP_AT {
        let now = Instant::now();
        cache.retain(|_, value| value.expires() > now);
    }
    cache.insert(key, value);
}

/// A cache value with an expiry time.
trait Expiring {
    fn expires(&self) -> Instant;
}

impl Expiring for Instant {
    fn expires(&self) -> Instant {
        *self
    }
}

impl<T> Expiring for (T, Instant) {
    fn expires(&self) -> Instant {
        self.1
    }
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
            verb: "update",
            resource: "rollouts",
            subresource: "status",
            namespace: "shop",
            name: "web",
        };
        assert_eq!(
            access.describe(),
            "update rollouts.rollgate.io/status \"web\" in namespace \"shop\""
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

    #[test]
    fn expired_entries_are_not_returned() {
        let cache = Mutex::new(HashMap::new());
        insert(&cache, 1, Instant::now() + Duration::from_secs(60));
        insert(&cache, 2, Instant::now() - Duration::from_secs(1));
        assert!(cached(&cache, &1).is_some());
        assert!(cached(&cache, &2).is_none());
    }
}
